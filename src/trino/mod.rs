//! The Trino client protocol front end: existing Trino clients (JDBC, CLI,
//! the Python `trino` package) query tsql over HTTP, on the same engine,
//! users, admission and query view as Flight SQL.

mod describe;
mod dialect;
mod errors;
mod jdbc;
mod query;
mod rows;
mod server;
mod show;
mod statements;
mod types;

pub use server::{TrinoOptions, serve_trino};
