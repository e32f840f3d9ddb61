//! The committed vectors are what the core generates now.

use std::path::PathBuf;

#[test]
fn committed_vectors_are_up_to_date() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("vectors");
    let stale = homeward_conformance::stale(&dir);
    assert!(
        stale.is_empty(),
        "stale conformance vectors: {} -- run `cargo run -p homeward-conformance -- generate` and commit conformance/vectors",
        stale.join(", ")
    );
}
