//! The entity-table core of tsql: how trees of JSON entities become
//! flexible-schema relational tables (see `shared/spec/entity-tables.md`),
//! shared by every connector.
//!
//! Two kinds of connector share it:
//! - a store of revisions (local files) implements [`EntitySource`]: the core
//!   resolves revisions and infers shapes; [`EntitySchema`] turns it into a
//!   DataFusion schema of [`EntityTable`]s;
//! - a service that resolves revisions itself (a Cyoda entity service)
//!   implements [`LiveSource`]: it streams envelopes of a model at an instant,
//!   with pushed [`Predicate`]s, and declares the shape; [`LiveSchema`] holds
//!   its tables.
//!
//! Both decode envelopes ([`envelope`]) with the same [`decode::TableDecoder`].

pub mod builder;
pub mod catalog;
pub mod decode;
pub mod envelope;
pub mod json;
pub mod layout;
pub mod live;
pub mod naming;
pub mod predicate;
pub mod shape;
pub mod source;
pub mod table;
pub mod temporal;
pub mod types;
pub mod upstream;

pub use catalog::{CATALOG, EntitySchema, SCHEMA, UnavailableSchema};
pub use layout::{DeclaredTypes, ModelId, TableLayout};
pub use live::{
    EnvelopePages, LiveModel, LiveRead, LiveSchema, LiveSource, live_tables, shape_of_paths,
};
pub use predicate::{CompareOp, Field, Literal, Predicate};
pub use shape::ObjectShape;
pub use source::{
    BadRecordPolicy, BadRecords, EntitySource, Location, ModelSnapshot, PayloadStore, Revision,
};
pub use table::{EntityTable, ScanOptions};
pub use types::SqlType;
pub use upstream::{UpstreamError, UpstreamErrorKind};
