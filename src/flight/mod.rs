//! The Arrow Flight SQL front end: what the Arrow Flight SQL JDBC driver,
//! ADBC, pyarrow and BI tools talk to.

mod auth;
pub mod errors;
mod front_end;
mod metadata;
mod query_log;
mod running;
mod server;
mod service;
mod session;
mod session_protocol;
mod ticket;
mod types;

pub use auth::Authenticator;
pub use front_end::TsqlFlightService;
pub use server::{ServeOptions, serve};
pub use service::TsqlFlightSql;
