//! `homeward`: parse the command line, run it, print the report.
//!
//! Exit codes: 0 done; 1 done in part (a Region did not answer, a queue
//! message was kept) or an AWS call failed; 2 a bad flag, setting or key.

use clap::Parser;
use homeward_cli::{load_sdk, run, Cli};

#[tokio::main]
async fn main() {
    // The resolver's warnings and errors (replay) on stderr; they never
    // carry item values. RUST_LOG changes the level.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let code = match cli.table.settings(|name| std::env::var(name).ok()) {
        Err(e) => fail(&e),
        Ok(settings) => {
            let sdk = load_sdk(cli.endpoint_url.as_deref()).await;
            // Custom merge rules are registered here by name, as in the
            // resolver's main.rs.
            match run(&cli, &settings, &sdk, &homeward::custom_rules::registry()).await {
                Err(e) => fail(&e),
                Ok(output) => {
                    print!("{}", output.text);
                    output.failure.as_ref().map_or(0, fail)
                }
            }
        }
    };
    std::process::exit(code);
}

fn fail(e: &homeward_cli::CliError) -> i32 {
    eprintln!("homeward: {e}");
    e.exit_code()
}
