//! Homeward's local multi-Region simulator: a global table in several
//! Regions (on a local moto server, or in memory), replication played the
//! way global tables do it, each Region's resolver fed the way Lambda's
//! event source mapping does, scenarios, the demo, and a randomized
//! convergence checker.

pub mod checker;
pub mod cluster;
pub mod conform;
pub mod delivery;
pub mod faults;
pub mod filter;
pub mod lineage;
pub mod memory;
pub mod moto;
pub mod plain;
mod plan;
pub mod replication;
pub mod scenario;
pub mod streams;
pub mod truth;
mod verdicts;

pub use moto::{unique_table, workspace_root, HarnessError, MotoServer, MOTO_ENV};
