//! Test harness for Homeward's integration suites. The harness itself (the
//! moto server and the multi-Region cluster) lives in the simulator crate,
//! `homeward-sim`; this crate re-exports it so the suites keep their paths.

pub use homeward_sim::{unique_table, workspace_root, HarnessError, MotoServer, MOTO_ENV};

pub mod cluster {
    pub use homeward_sim::cluster::*;
}
