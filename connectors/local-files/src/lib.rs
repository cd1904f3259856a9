//! tsql's connector for local entity files: a folder laid out as
//! `<model>/<version>/*.ndjson|*.json`, holding Cyoda envelopes or bare objects.

pub mod demo;
pub mod records;
pub mod store;

pub use store::LocalStore;
