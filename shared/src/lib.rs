//! Homeward's core: write stamps, the per-attribute merge, and the stamped
//! writer for DynamoDB global tables written from several Regions.
//!
//! The pure modules ([`dot`], [`version`], [`stamp`], [`rules`], [`merge`],
//! [`edit`], [`size`]) take no SDK types; DynamoDB I/O sits behind the
//! [`store::Store`] trait, with [`dynamo::DynamoStore`] its real adapter.

pub mod adopt;
pub mod classify;
pub mod control;
pub mod custom_rules;
pub mod dot;
pub mod dynamo;
pub mod edit;
pub mod error;
pub mod faults;
pub mod fixtures;
pub mod home;
pub mod merge;
pub mod routing;
pub mod rules;
pub mod size;
pub mod stamp;
pub mod store;
pub mod version;
pub mod writer;

pub use dot::{Dot, Region, Tick, TimedDot};
pub use edit::{Draft, EditError, WriteContext};
pub use error::{ConfigError, StampError};
pub use merge::{Decision, Explanation, Merged, Merger, Side};
pub use rules::{MergeRule, Registry, Rule, Rules};
pub use stamp::{PlainEdit, Schema};
pub use store::{PutCondition, PutResult, Store, StoreError};
pub use version::{Home, PendingMove, Version, WriterKind};
pub use writer::{WriteError, Writer};
