//! `homeward`, Homeward's operator CLI, as a library: the command line
//! ([`Cli`]), the settings it reads ([`settings::Settings`]), and one module
//! per command ([`inspect`], [`journal`], [`replay`]), each returning a
//! report that renders as text or JSON. `main.rs` only parses and prints.
//!
//! Configuration comes from flags, with the resolver's environment
//! variables as fallbacks (`TABLE_NAME`, `TABLE_KEY`, `STAMP_ATTRIBUTE`,
//! `HOME_STRATEGY`, `MERGE_RULES`, `JOURNAL_TABLE`), plus `REGIONS`, the
//! comma-separated Regions of the global table. The AWS SDK is configured
//! as usual (credentials, `AWS_ENDPOINT_URL`, profiles).

pub mod error;
pub mod inspect;
pub mod journal;
pub mod key;
pub mod render;
pub mod replay;
pub mod settings;

use std::time::Duration;

use aws_config::{BehaviorVersion, SdkConfig};
use clap::{Args, Parser, Subcommand};
use homeward::{Region, Registry};

pub use error::CliError;
pub use settings::Settings;

/// Homeward's operator CLI: an item in every Region side by side, its
/// conflict journal, and replaying the resolver's on-failure queue.
#[derive(Debug, Parser)]
#[command(name = "homeward", version)]
pub struct Cli {
    #[command(flatten)]
    pub table: TableArgs,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// The endpoint of every AWS call (a local DynamoDB, moto).
    #[arg(long, env = "AWS_ENDPOINT_URL", global = true)]
    pub endpoint_url: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

/// The deployment, as the resolver's variables name it.
#[derive(Debug, Clone, Args)]
pub struct TableArgs {
    /// The global table.
    #[arg(long, env = "TABLE_NAME", global = true)]
    pub table: Option<String>,
    /// Its key attributes: `partition` or `partition,sort`.
    #[arg(long, env = "TABLE_KEY", global = true)]
    pub table_key: Option<String>,
    /// The key attributes' types for the `pk=value` shorthand (`S`, `N,S`,
    /// ...); default: the table's description.
    #[arg(long, env = "TABLE_KEY_TYPES", global = true)]
    pub key_types: Option<String>,
    /// The stamp attribute (default `_hw`).
    #[arg(long, env = "STAMP_ATTRIBUTE", global = true)]
    pub stamp_attribute: Option<String>,
    /// The home strategy (default `attribute:home_region`).
    #[arg(long, env = "HOME_STRATEGY", global = true)]
    pub home_strategy: Option<String>,
    /// The merge rules, JSON (default `{}`).
    #[arg(long, env = "MERGE_RULES", global = true)]
    pub merge_rules: Option<String>,
    /// The conflict journal table (default `<table>-journal`).
    #[arg(long, env = "JOURNAL_TABLE", global = true)]
    pub journal_table: Option<String>,
    /// The Regions of the global table, comma-separated.
    #[arg(long, env = "REGIONS", global = true)]
    pub regions: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The item in every Region side by side: values, last writes,
    /// siblings, counters, home, and the dots each Region lacks.
    Inspect {
        /// DynamoDB JSON (`{"pk":{"S":"user-42"}}`) or `pk=value[,sk=value]`.
        key: String,
    },
    /// The item's conflict journal entries in every Region, with their
    /// explanations.
    Journal {
        /// DynamoDB JSON or `pk=value[,sk=value]`.
        key: String,
        /// Also the stored versions (with their values) and merged stamps.
        #[arg(long)]
        full: bool,
    },
    /// Replays the on-failure queue's messages through the resolver.
    Replay {
        /// The on-failure queue's URL.
        #[arg(long)]
        queue: String,
        /// The Region of the queue and its stream.
        #[arg(long, env = "AWS_REGION")]
        region: String,
        /// Print what would be replayed; replay and delete nothing.
        #[arg(long)]
        dry_run: bool,
        /// At most this many messages.
        #[arg(long, default_value_t = 100)]
        max_messages: usize,
        /// Seconds a received message stays hidden from other consumers.
        #[arg(long, default_value_t = 300)]
        visibility_timeout: i32,
        /// ReceiveMessage's long-poll wait, in seconds (0 to 20).
        #[arg(long, default_value_t = 1)]
        wait_seconds: i32,
        /// Seconds the resolver gets per message (Lambda's timeout).
        #[arg(long, default_value_t = 60)]
        timeout_seconds: u64,
    },
}

impl TableArgs {
    /// The settings, checked: `TABLE_NAME` and `TABLE_KEY` are required;
    /// `REGIONS` for `inspect` and `journal` (checked there); the
    /// resolver's other variables are taken from `env`.
    ///
    /// # Errors
    /// [`CliError::Config`] naming the variable.
    pub fn settings(&self, env: impl Fn(&str) -> Option<String>) -> Result<Settings, CliError> {
        let required = |v: &Option<String>, name: &str, flag: &str| {
            v.clone()
                .filter(|s| !s.is_empty())
                .ok_or_else(|| CliError::Config(format!("{name}: must be set (or pass {flag})")))
        };
        let table = required(&self.table, "TABLE_NAME", "--table")?;
        let key = required(&self.table_key, "TABLE_KEY", "--table-key")?;
        let regions = settings::parse_regions(self.regions.as_deref().unwrap_or_default())?;
        let mut s = Settings::new(&table, &key, &regions);
        for (name, value) in [
            ("STAMP_ATTRIBUTE", &self.stamp_attribute),
            ("HOME_STRATEGY", &self.home_strategy),
            ("MERGE_RULES", &self.merge_rules),
            ("JOURNAL_TABLE", &self.journal_table),
        ] {
            if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
                s = s.var(name, v);
            }
        }
        for name in settings::PASSED_THROUGH {
            if let Some(v) = env(name) {
                s = s.var(name, &v);
            }
        }
        if let Some(types) = &self.key_types {
            s = s.with_key_types(settings::parse_key_types(types)?);
        }
        Ok(s)
    }
}

/// The SDK configuration: the default chain (credentials, Region,
/// `AWS_ENDPOINT_URL`), the resolver's timeouts, and `endpoint` when given.
pub async fn load_sdk(endpoint: Option<&str>) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .timeout_config(resolver::calls::sdk_timeouts());
    if let Some(e) = endpoint.filter(|e| !e.is_empty()) {
        loader = loader.endpoint_url(e);
    }
    loader.load().await
}

/// What a command printed, and whether it did all it was asked.
#[derive(Debug)]
pub struct Output {
    pub text: String,
    /// Set when the command ran but fell short (a Region did not answer, a
    /// message was kept): the process exits non-zero.
    pub failure: Option<CliError>,
}

fn render<T: serde::Serialize>(json: bool, report: &T, text: impl FnOnce() -> String) -> String {
    if json {
        let mut s = serde_json::to_string_pretty(report).unwrap_or_default();
        s.push('\n');
        s
    } else {
        text()
    }
}

/// Runs `cli` with `settings` (from [`TableArgs::settings`]) and the custom
/// merge rules of `registry` (the ones the resolver registers).
///
/// # Errors
/// [`CliError`] when the command could not run at all.
pub async fn run(
    cli: &Cli,
    settings: &Settings,
    sdk: &SdkConfig,
    registry: &Registry,
) -> Result<Output, CliError> {
    match &cli.command {
        Command::Inspect { key } => {
            let schema = settings.schema(registry)?;
            let item = item_key(sdk, settings, &schema, key).await?;
            let report = inspect::inspect(sdk, settings, registry, &item).await?;
            let failure = (!report.complete()).then(|| {
                CliError::Incomplete("some Regions did not answer (see their columns)".into())
            });
            Ok(Output {
                text: render(cli.json, &report, || report.to_text()),
                failure,
            })
        }
        Command::Journal { key, full } => {
            let schema = settings.schema(registry)?;
            let item = item_key(sdk, settings, &schema, key).await?;
            let report = journal::journal(sdk, settings, &item, *full).await?;
            let failure = (!report.complete())
                .then(|| CliError::Incomplete("some Regions' journals could not be read".into()));
            Ok(Output {
                text: render(cli.json, &report, || report.to_text()),
                failure,
            })
        }
        Command::Replay {
            queue,
            region,
            dry_run,
            max_messages,
            visibility_timeout,
            wait_seconds,
            timeout_seconds,
        } => {
            let region = Region::parse(region).map_err(|e| {
                CliError::Config(format!("--region: `{region}` is not a Region: {e}"))
            })?;
            if !(0..=20).contains(wait_seconds) {
                return Err(CliError::Config(
                    "--wait-seconds: must be from 0 to 20".into(),
                ));
            }
            let options = replay::ReplayOptions {
                dry_run: *dry_run,
                max_messages: *max_messages,
                visibility_timeout: *visibility_timeout,
                wait_seconds: *wait_seconds,
                timeout: Duration::from_secs(*timeout_seconds),
                ..replay::ReplayOptions::new(queue, region)
            };
            let report = replay::replay(sdk, settings, registry, &options).await?;
            let failure = (!report.complete()).then(|| {
                CliError::Incomplete(format!(
                    "{} message{} kept on the queue (see why above)",
                    report.kept,
                    if report.kept == 1 { "" } else { "s" }
                ))
            });
            Ok(Output {
                text: render(cli.json, &report, || report.to_text()),
                failure,
            })
        }
    }
}

/// The key given on the command line, typed.
///
/// # Errors
/// [`CliError::Key`], or the table's description failing.
pub async fn item_key(
    sdk: &SdkConfig,
    settings: &Settings,
    schema: &homeward::Schema,
    text: &str,
) -> Result<serde_dynamo::Item, CliError> {
    if settings.regions.is_empty() {
        return Err(CliError::Config(
            "REGIONS: must be set (or pass --regions us-east-1,us-west-2,...)".into(),
        ));
    }
    let types = if text.trim_start().starts_with('{') {
        Vec::new()
    } else {
        key::key_types(sdk, settings, schema).await?
    };
    key::parse_key(text, schema, &types)
}
