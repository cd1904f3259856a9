//! The entity-table core of tsql: how trees of JSON entities become
//! flexible-schema relational tables (see `shared/spec/entity-tables.md`),
//! shared by every connector.
//!
//! A connector implements [`EntitySource`]; [`EntitySchema`] turns it into a
//! DataFusion schema of [`EntityTable`]s.

pub mod builder;
pub mod catalog;
pub mod decode;
pub mod json;
pub mod layout;
pub mod naming;
pub mod shape;
pub mod source;
pub mod table;
pub mod temporal;
pub mod types;

pub use catalog::{CATALOG, EntitySchema, SCHEMA};
pub use layout::{ModelId, TableLayout};
pub use shape::ObjectShape;
pub use source::{
    BadRecordPolicy, BadRecords, EntitySource, Location, ModelSnapshot, PayloadStore, Revision,
};
pub use table::{EntityTable, ScanOptions};
pub use types::SqlType;
