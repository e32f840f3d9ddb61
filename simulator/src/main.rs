//! `homeward-sim`: the demo, scenario runs and the convergence checker.

fn main() {
    eprintln!("homeward-sim: commands arrive in the next commit");
}
