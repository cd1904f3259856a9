//! tsql: SQL over Cyoda entities. The library behind the `tsql` binary:
//! engine sessions over entity sources, and result output.

pub mod admission;
pub mod config;
pub mod cooperative;
pub mod engine;
pub mod executor;
pub mod flight;
pub mod memory;
pub mod metrics;
pub mod output;
pub mod queries;
pub mod serving;
pub mod trino;
pub mod trino_functions;

pub use engine::{Caller, DataSource, Engine, EngineOptions, Source};
pub use executor::QueryExecutor;
