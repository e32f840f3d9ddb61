//! The resolver's configuration, read once at cold start from the
//! environment. Every problem names the variable and what it expected.

use std::collections::BTreeSet;
use std::time::Duration;

use homeward::control::parse_regions;
use homeward::home::{HomeStrategy, Trigger};
use homeward::{Merger, Region, Registry, Rules, Schema};

/// What the resolver does with a write made outside its item's home.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Merge it into the home copy.
    Reconcile,
    /// The home's values win; the write is journaled.
    Reject,
    /// Only journal it.
    JournalOnly,
}

impl Action {
    pub fn parse(text: &str) -> Result<Self, String> {
        match text {
            "reconcile" => Ok(Action::Reconcile),
            "reject" => Ok(Action::Reject),
            "journal-only" => Ok(Action::JournalOnly),
            other => Err(format!(
                "`{other}` is not one of reconcile, reject, journal-only"
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Reconcile => "reconcile",
            Action::Reject => "reject",
            Action::JournalOnly => "journal-only",
        }
    }
}

/// Items of one batch worked on at once, unless `CONCURRENCY` says.
pub const DEFAULT_CONCURRENCY: usize = 64;

#[derive(Debug, thiserror::Error)]
#[error("configuration: {variable}: {problem}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub problem: String,
}

/// Everything the resolver needs to know, typed.
#[derive(Debug, Clone)]
pub struct Config {
    pub table: String,
    pub schema: Schema,
    /// The Region whose stream this resolver reads.
    pub region: Region,
    pub homes: HomeStrategy,
    pub merger: Merger,
    pub action: Action,
    pub journal_table: String,
    pub journal_ttl_days: u64,
    /// Whether writes without a usable stamp are journaled (always counted).
    pub journal_unattributed: bool,
    /// How many items of one batch are worked on at once.
    pub concurrency: usize,
    /// When a foreign write moves its item's home to the writer's Region.
    pub rehome: Trigger,
    /// Regions evacuated by configuration (the control item adds more).
    pub evacuated: BTreeSet<Region>,
    /// How long a read of the control item (evacuated Regions) or of an
    /// assignment is trusted.
    pub control_refresh: Duration,
    /// For `negotiated` homes: the Region whose journal table holds the
    /// assignments.
    pub assignments_table: String,
    /// Whether log lines may name item keys (`LOG_KEYS=true`); by default
    /// they name a short hash of the key.
    pub log_keys: bool,
    /// The CloudWatch namespace of the metrics (`METRICS_NAMESPACE`).
    pub metrics_namespace: String,
}

/// The merge rules of `homeward::fixtures::stream_batch`'s items, as
/// `MERGE_RULES` spells them.
pub const STREAM_BATCH_RULES: &str =
    r#"{"attributes":{"stock":"counter","tags":"union","rating":"max"}}"#;

impl Config {
    /// The configuration `homeward::fixtures::stream_batch`'s events are
    /// made for (the resolver of its first Region, homes by `home_region`,
    /// its merge rules), on `table` and `journal`: the benchmarks and their
    /// tests read those events with it.
    ///
    /// # Panics
    /// Never: the configuration is a constant one.
    pub fn for_stream_batch(table: &str, journal: &str) -> Self {
        let vars = [
            ("TABLE_NAME", table),
            ("TABLE_KEY", "pk,sk"),
            ("AWS_REGION", homeward::fixtures::BATCH_REGIONS[0]),
            ("JOURNAL_TABLE", journal),
            ("MERGE_RULES", STREAM_BATCH_RULES),
        ];
        Self::from_lookup(
            |k| {
                vars.iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| (*v).to_owned())
            },
            &Registry::new(),
        )
        .expect("the stream batch's configuration is valid")
    }

    /// Reads the configuration from the process environment.
    ///
    /// # Errors
    /// [`ConfigError`] naming the variable.
    pub fn from_env(custom_rules: &Registry) -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok(), custom_rules)
    }

    /// Reads the configuration through `var` (the environment, or a map in
    /// tests).
    ///
    /// # Errors
    /// [`ConfigError`] naming the variable.
    pub fn from_lookup(
        var: impl Fn(&str) -> Option<String>,
        custom_rules: &Registry,
    ) -> Result<Self, ConfigError> {
        let required = |name: &'static str| {
            var(name).filter(|v| !v.is_empty()).ok_or(ConfigError {
                variable: name,
                problem: "must be set".into(),
            })
        };
        let bad = |variable: &'static str| move |problem: String| ConfigError { variable, problem };

        let table = required("TABLE_NAME")?;
        let key = required("TABLE_KEY")?;
        let mut parts = key.split(',').map(str::trim);
        let partition = parts.next().filter(|p| !p.is_empty()).ok_or_else(|| {
            bad("TABLE_KEY")(format!("`{key}` should be `partition` or `partition,sort`"))
        })?;
        let sort = parts.next();
        if parts.next().is_some() || sort.is_some_and(str::is_empty) {
            return Err(bad("TABLE_KEY")(format!(
                "`{key}` should be `partition` or `partition,sort`"
            )));
        }
        let stamp_attribute = var("STAMP_ATTRIBUTE")
            .unwrap_or_else(|| homeward::stamp::DEFAULT_STAMP_ATTRIBUTE.into());
        let schema = Schema::new(partition, sort).with_stamp_attribute(&stamp_attribute);

        let region = Region::parse(&required("AWS_REGION")?)
            .map_err(|e| bad("AWS_REGION")(e.to_string()))?;
        let homes = HomeStrategy::parse(
            &var("HOME_STRATEGY").unwrap_or_else(|| "attribute:home_region".into()),
            &stamp_attribute,
            &table,
        )
        .map_err(bad("HOME_STRATEGY"))?;
        let rehome = Trigger::parse(&var("REHOME").unwrap_or_else(|| "evacuated".into()))
            .map_err(bad("REHOME"))?;
        if rehome != Trigger::Never && rehome != Trigger::Evacuated {
            if let Some(reason) = homes.fixed_reason() {
                return Err(bad("REHOME")(format!(
                    "re-homing cannot apply: {reason}; use REHOME=never or evacuated"
                )));
            }
        }
        let evacuated = parse_regions(&var("EVACUATED_REGIONS").unwrap_or_default())
            .map_err(bad("EVACUATED_REGIONS"))?;
        let control_refresh = match var("CONTROL_REFRESH_SECONDS") {
            Some(s) => Duration::from_secs(
                parse_number(&s, 0, 3600).map_err(bad("CONTROL_REFRESH_SECONDS"))? as u64,
            ),
            None => Duration::from_secs(5),
        };
        // Negotiated homes: the assignments' global table, read and written
        // in this Region's replica (reachable whenever this Region is up).
        let assignments_table = var("ASSIGNMENTS_TABLE")
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| format!("{table}-assignments"));
        let rules = Rules::from_json(
            &var("MERGE_RULES").unwrap_or_else(|| "{}".into()),
            custom_rules,
        )
        .map_err(|e| bad("MERGE_RULES")(e.to_string()))?;
        rules
            .check_schema(&schema)
            .map_err(|e| bad("MERGE_RULES")(e.to_string()))?;
        // The `home` rule decides by the item's home under every strategy.
        let mut merger = Merger::new(rules).with_homes(homes.clone());
        if let Some(w) = var("DOT_WINDOW") {
            merger.window =
                parse_number(&w, 4, homeward::merge::MAX_WINDOW).map_err(bad("DOT_WINDOW"))?;
        }
        let action = Action::parse(&var("ACTION").unwrap_or_else(|| "reconcile".into()))
            .map_err(bad("ACTION"))?;
        let journal_table = required("JOURNAL_TABLE")?;
        let journal_ttl_days = match var("JOURNAL_TTL_DAYS") {
            Some(d) => parse_number(&d, 1, 3650).map_err(bad("JOURNAL_TTL_DAYS"))? as u64,
            None => 30,
        };
        let journal_unattributed =
            parse_bool(var("JOURNAL_UNATTRIBUTED"), true).map_err(bad("JOURNAL_UNATTRIBUTED"))?;
        let log_keys = parse_bool(var("LOG_KEYS"), false).map_err(bad("LOG_KEYS"))?;
        let metrics_namespace = var("METRICS_NAMESPACE")
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| crate::metrics::DEFAULT_NAMESPACE.into());
        let concurrency = match var("CONCURRENCY") {
            Some(c) => parse_number(&c, 1, 1024).map_err(bad("CONCURRENCY"))?,
            // The work waits on cross-Region calls (two for a foreign write
            // whose home copy moved on): 64 in flight keeps 1,000 of them at
            // 50 ms a call under 2 s, at a few KB of memory each.
            None => DEFAULT_CONCURRENCY,
        };
        Ok(Config {
            table,
            schema,
            region,
            homes,
            merger,
            action,
            journal_table,
            journal_ttl_days,
            journal_unattributed,
            concurrency,
            rehome,
            evacuated,
            control_refresh,
            assignments_table,
            log_keys,
            metrics_namespace,
        })
    }
}

fn parse_bool(text: Option<String>, default: bool) -> Result<bool, String> {
    match text.as_deref() {
        None | Some("") => Ok(default),
        Some("true") => Ok(true),
        Some("false") => Ok(false),
        Some(other) => Err(format!("`{other}` is not true or false")),
    }
}

fn parse_number(text: &str, min: usize, max: usize) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(format!(
            "`{text}` is not a whole number from {min} to {max}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn load(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned(), &Registry::new())
    }

    const BASE: &[(&str, &str)] = &[
        ("TABLE_NAME", "Movies"),
        ("TABLE_KEY", "year,title"),
        ("AWS_REGION", "us-east-1"),
        ("JOURNAL_TABLE", "MoviesJournal"),
    ];

    #[test]
    fn defaults() {
        let c = load(BASE).unwrap();
        assert_eq!(c.schema.sort_key.as_deref(), Some("title"));
        assert_eq!(c.action, Action::Reconcile);
        assert_eq!(c.concurrency, DEFAULT_CONCURRENCY);
        assert_eq!(c.homes, HomeStrategy::default());
        assert_eq!(c.rehome, Trigger::Evacuated);
        assert!(c.evacuated.is_empty());
        // The template passes empty values for unset parameters.
        let mut empty = BASE.to_vec();
        empty.extend([("ASSIGNMENTS_TABLE", ""), ("EVACUATED_REGIONS", "")]);
        let c = load(&empty).unwrap();
        assert_eq!(
            (c.assignments_table.as_str(), c.evacuated.len()),
            ("Movies-assignments", 0)
        );
    }

    #[test]
    fn errors_name_the_variable() {
        let with = |k: &'static str, v: &'static str| {
            let mut vars = BASE.to_vec();
            vars.retain(|(name, _)| *name != k);
            vars.push((k, v));
            load(&vars).unwrap_err().to_string()
        };
        assert!(with("ACTION", "merge").contains("ACTION: `merge` is not one of"));
        assert!(with("MERGE_RULES", r#"{"attributes":{"year":"max"}}"#)
            .contains("MERGE_RULES: attribute `year` is a key"));
        assert!(with("CONCURRENCY", "0").contains("CONCURRENCY"));
        assert!(with("TABLE_KEY", "a,b,c").contains("TABLE_KEY"));
        assert!(with("HOME_STRATEGY", "nearest").contains("HOME_STRATEGY"));
        assert!(with("TABLE_NAME", "").contains("TABLE_NAME: must be set"));
        assert!(with("REHOME", "after:x").contains("REHOME: `after:x`"));
        assert!(with("EVACUATED_REGIONS", "us-east-1,Moon").contains("EVACUATED_REGIONS: `Moon`"));
        let mut keyed = BASE.to_vec();
        keyed.push(("HOME_STRATEGY", "key-prefix:title"));
        keyed.push(("REHOME", "always"));
        let err = load(&keyed).unwrap_err().to_string();
        assert!(
            err.contains("REHOME") && err.contains("never re-homed"),
            "{err}"
        );
        let mut tables = BASE.to_vec();
        tables.push(("HOME_STRATEGY", "table:Movies-{region}"));
        let err = load(&tables).unwrap_err().to_string();
        assert!(
            err.contains("HOME_STRATEGY") && err.contains("does not match"),
            "{err}"
        );
    }
}
