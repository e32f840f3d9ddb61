//! What the CLI needs to know about the deployment: the table, its key,
//! the stamp attribute, the home strategy, the merge rules, the journal
//! table and the Regions of the global table. The names are the resolver's
//! variables (`TABLE_NAME`, `TABLE_KEY`, ...), so an operator can source
//! the function's environment and run the CLI; flags override them.

use std::collections::BTreeMap;

use homeward::{Region, Registry, Schema};
use resolver::Config;

use crate::error::CliError;

/// Resolver variables the CLI passes through from the environment (the
/// ones it has no flag for), so `replay` runs the resolver as deployed.
pub const PASSED_THROUGH: &[&str] = &[
    "ACTION",
    "REHOME",
    "EVACUATED_REGIONS",
    "CONTROL_REFRESH_SECONDS",
    "ASSIGNMENTS_TABLE",
    "CONCURRENCY",
    "DOT_WINDOW",
    "JOURNAL_TTL_DAYS",
    "JOURNAL_UNATTRIBUTED",
    "LOG_KEYS",
];

/// A key attribute's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    S,
    N,
    B,
}

impl KeyType {
    /// `S`, `N` or `B`.
    ///
    /// # Errors
    /// A message naming the text.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text.trim() {
            "S" | "s" => Ok(KeyType::S),
            "N" | "n" => Ok(KeyType::N),
            "B" | "b" => Ok(KeyType::B),
            other => Err(format!("`{other}` is not a key type (S, N or B)")),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            KeyType::S => "S",
            KeyType::N => "N",
            KeyType::B => "B",
        }
    }
}

/// The CLI's view of a deployment.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The resolver's variables (without `AWS_REGION`).
    vars: BTreeMap<String, String>,
    /// The Regions of the global table, in the order given.
    pub regions: Vec<Region>,
    /// The key attributes' types, when given (`--key-types`); otherwise
    /// the table's description tells them.
    pub key_types: Option<Vec<KeyType>>,
}

impl Settings {
    /// Settings for `table` keyed by `table_key` (`partition[,sort]`) in
    /// `regions`; the journal defaults to `<table>-journal`.
    pub fn new(table: &str, table_key: &str, regions: &[Region]) -> Self {
        let mut vars = BTreeMap::new();
        vars.insert("TABLE_NAME".to_owned(), table.to_owned());
        vars.insert("TABLE_KEY".to_owned(), table_key.to_owned());
        Settings {
            vars,
            regions: regions.to_vec(),
            key_types: None,
        }
    }

    /// Sets one of the resolver's variables (`HOME_STRATEGY`,
    /// `MERGE_RULES`, `JOURNAL_TABLE`, `STAMP_ATTRIBUTE`, ...).
    pub fn var(mut self, name: &str, value: &str) -> Self {
        self.vars.insert(name.to_owned(), value.to_owned());
        self
    }

    pub fn with_key_types(mut self, types: Vec<KeyType>) -> Self {
        self.key_types = Some(types);
        self
    }

    /// The value of one of the resolver's variables, as the CLI uses it.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str)
    }

    pub fn table(&self) -> &str {
        self.get("TABLE_NAME").unwrap_or_default()
    }

    /// `JOURNAL_TABLE`, or `<table>-journal` as the template names it.
    pub fn journal_table(&self) -> String {
        match self.get("JOURNAL_TABLE") {
            Some(t) if !t.is_empty() => t.to_owned(),
            _ => format!("{}-journal", self.table()),
        }
    }

    /// The resolver's configuration for `region`, checked as the resolver
    /// checks it at cold start (errors name the variable).
    ///
    /// # Errors
    /// [`CliError::Config`].
    pub fn config(&self, region: &Region, registry: &Registry) -> Result<Config, CliError> {
        let journal = self.journal_table();
        let lookup = |name: &str| match name {
            "AWS_REGION" => Some(region.to_string()),
            "JOURNAL_TABLE" => Some(journal.clone()),
            other => self.vars.get(other).cloned(),
        };
        Config::from_lookup(lookup, registry).map_err(|e| CliError::Config(e.to_string()))
    }

    /// The configuration of the first Region: the schema, home strategy and
    /// rules, which are the same in every Region.
    ///
    /// # Errors
    /// [`CliError::Config`], also when no Region is given.
    pub fn first_config(&self, registry: &Registry) -> Result<Config, CliError> {
        let first = self.regions.first().ok_or_else(|| {
            CliError::Config(
                "REGIONS: must be set (--regions or REGIONS: the comma-separated Regions of the global table)"
                    .into(),
            )
        })?;
        self.config(first, registry)
    }

    pub fn schema(&self, registry: &Registry) -> Result<Schema, CliError> {
        Ok(self.first_config(registry)?.schema)
    }
}

/// Parses `REGIONS` (comma-separated, no duplicates).
///
/// # Errors
/// [`CliError::Config`] naming the entry that is not a Region.
pub fn parse_regions(text: &str) -> Result<Vec<Region>, CliError> {
    let mut out: Vec<Region> = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let region = Region::parse(part)
            .map_err(|e| CliError::Config(format!("REGIONS: `{part}` is not a Region: {e}")))?;
        if !out.contains(&region) {
            out.push(region);
        }
    }
    Ok(out)
}

/// Parses `--key-types` (`S`, `N,S`, ...).
///
/// # Errors
/// [`CliError::Config`].
pub fn parse_key_types(text: &str) -> Result<Vec<KeyType>, CliError> {
    text.split(',')
        .map(|t| KeyType::parse(t).map_err(|e| CliError::Config(format!("--key-types: {e}"))))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(name: &str) -> Region {
        Region::parse(name).unwrap()
    }

    #[test]
    fn the_journal_defaults_to_the_template_name_and_errors_name_the_variable() {
        let s = Settings::new("Movies", "year,title", &[r("us-east-1")]);
        assert_eq!(s.journal_table(), "Movies-journal");
        let c = s.config(&r("us-west-1"), &Registry::new()).unwrap();
        assert_eq!(c.region.as_str(), "us-west-1");
        assert_eq!(c.journal_table, "Movies-journal");
        let bad = s.clone().var("MERGE_RULES", "{\"default\":\"sometimes\"}");
        let err = bad.first_config(&Registry::new()).unwrap_err().to_string();
        assert!(err.contains("MERGE_RULES"), "{err}");
        let none = Settings::new("Movies", "year", &[]);
        let err = none.first_config(&Registry::new()).unwrap_err().to_string();
        assert!(err.contains("REGIONS"), "{err}");
    }

    #[test]
    fn regions_and_key_types_parse_strictly() {
        let regions = parse_regions("us-east-1, eu-west-1,us-east-1").unwrap();
        assert_eq!(regions, vec![r("us-east-1"), r("eu-west-1")]);
        let err = parse_regions("us-east-1,Moon").unwrap_err().to_string();
        assert!(err.contains("`Moon`"), "{err}");
        assert_eq!(
            parse_key_types("N,S").unwrap(),
            vec![KeyType::N, KeyType::S]
        );
        assert!(parse_key_types("N,X")
            .unwrap_err()
            .to_string()
            .contains("`X`"));
    }
}
