//! The Trino client protocol front end: existing Trino clients (JDBC, CLI,
//! the Python `trino` package) query tsql over HTTP, on the same engine,
//! users, admission and query view as Flight SQL.

pub(crate) mod describe;
pub(crate) mod dialect;
pub(crate) mod errors;
pub(crate) mod headers;
pub(crate) mod jdbc;
mod query;
mod rows;
mod server;
pub(crate) mod show;
pub(crate) mod statements;
mod types;

pub use server::{TrinoOptions, check_tls, serve_trino};
