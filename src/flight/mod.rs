//! The Arrow Flight SQL front end: what the Arrow Flight SQL JDBC driver,
//! ADBC, pyarrow and BI tools talk to.

pub mod errors;
mod front_end;
mod metadata;
mod query_log;
mod running;
mod server;
mod service;
pub(crate) mod session;
pub(crate) mod session_protocol;
pub(crate) mod ticket;
mod types;

pub use front_end::TsqlFlightService;
pub use server::{ServeOptions, serve};
pub use service::TsqlFlightSql;
