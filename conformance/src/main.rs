//! `homeward-conformance generate [DIR]`: writes the vectors (default
//! `conformance/vectors` next to this crate). `check [DIR]`: fails when the
//! files there differ from what the core generates now.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let default = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("vectors");
    let dir = args.get(1).map_or(default, PathBuf::from);
    match args.first().map(String::as_str) {
        Some("generate") => {
            if let Err(e) = std::fs::create_dir_all(&dir) {
                eprintln!("cannot create {}: {e}", dir.display());
                return ExitCode::FAILURE;
            }
            for (name, text) in homeward_conformance::files() {
                let path = dir.join(&name);
                if let Err(e) = std::fs::write(&path, text) {
                    eprintln!("cannot write {}: {e}", path.display());
                    return ExitCode::FAILURE;
                }
                println!("wrote {}", path.display());
            }
            ExitCode::SUCCESS
        }
        Some("check") => {
            let stale = homeward_conformance::stale(&dir);
            if stale.is_empty() {
                println!("vectors in {} are up to date", dir.display());
                ExitCode::SUCCESS
            } else {
                eprintln!(
                    "stale vectors in {}: {} (run `cargo run -p homeward-conformance -- generate`)",
                    dir.display(),
                    stale.join(", ")
                );
                ExitCode::FAILURE
            }
        }
        _ => {
            eprintln!("usage: homeward-conformance generate [DIR] | check [DIR]");
            ExitCode::from(2)
        }
    }
}
