//! Replays the fuzz corpus under plain `cargo test`: every file of
//! `fuzz/regressions/<target>/` (minimized crash reproducers and seeds) and
//! every stream event of `events/` goes through the same functions as the
//! cargo-fuzz targets (`resolver::fuzzing`), and none may panic.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use homeward::StampError;
use resolver::fuzzing::{config, event_one, stamp_one};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    out.sort();
    out
}

/// Runs `one` on every file; fails naming each file that panicked.
fn replay(paths: &[PathBuf], one: fn(&[u8])) -> usize {
    let panicked: Vec<String> = paths
        .iter()
        .filter(|path| {
            let bytes = std::fs::read(path).unwrap();
            catch_unwind(AssertUnwindSafe(|| one(&bytes))).is_err()
        })
        .map(|p| p.display().to_string())
        .collect();
    assert!(panicked.is_empty(), "panicked on {panicked:?}");
    paths.len()
}

#[test]
fn event_regressions_and_seed_events_do_not_panic() {
    let mut paths = files(&root().join("fuzz/regressions/event"));
    paths.extend(
        files(&root().join("events"))
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "json")),
    );
    assert!(replay(&paths, event_one) >= 10);
}

#[test]
fn stamp_regressions_do_not_panic() {
    let paths = files(&root().join("fuzz/regressions/stamp"));
    assert!(replay(&paths, stamp_one) >= 10);
    // The event files as items too (a target's corpus holds both).
    replay(&files(&root().join("events")), stamp_one);
}

/// The crafted stamps (an epoch or a counter at the top of its range,
/// contributions that overflow, stamps over a cap) are refused by the
/// decoder with an overflow or a cap, never read as valid.
#[test]
fn crafted_stamps_are_refused_by_name() {
    let crafted: Vec<PathBuf> = files(&root().join("fuzz/regressions/stamp"))
        .into_iter()
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("crafted-"))
        })
        .collect();
    assert!(crafted.len() >= 5);
    for path in crafted {
        let item = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        match config().schema.decode(&item) {
            Err(StampError::Overflow { .. } | StampError::CapExceeded { .. }) => {}
            other => panic!("{}: {other:?}", path.display()),
        }
    }
}
