//! tsql: SQL over Cyoda entities. The library behind the `tsql` binary:
//! engine sessions over entity sources, and result output.

pub mod admission;
pub mod auth;
pub mod caller;
pub mod cluster;
pub mod config;
pub mod container;
pub mod cooperative;
pub mod engine;
pub mod error_class;
pub mod executor;
pub mod flight;
pub mod fuzzing;
pub mod memory;
pub mod metrics;
pub mod output;
pub mod probe;
pub mod queries;
pub mod seal;
pub mod serving;
pub mod shutdown;
pub mod spill;
pub mod sql_types;
pub mod trino;
pub mod trino_functions;

pub use caller::{Caller, Owner};
pub use engine::{DataSource, Engine, EngineOptions, Source};
pub use executor::QueryExecutor;
