//! The CLI's errors. Each names what was wrong (the variable, the flag, the
//! Region and call) and never an item's values.

use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// A setting is missing or malformed (exit code 2).
    #[error("configuration: {0}")]
    Config(String),
    /// The key given on the command line (exit code 2).
    #[error("key: {0}")]
    Key(String),
    /// An AWS call failed.
    #[error("{region}: {call} on {target} failed: {message}")]
    Aws {
        region: String,
        call: &'static str,
        target: String,
        /// The service's error code, when it gave one.
        code: Option<String>,
        message: String,
    },
    /// The command ran but did not do all it was asked (some Region did
    /// not answer, some queue messages were kept).
    #[error("{0}")]
    Incomplete(String),
}

impl CliError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Config(_) | CliError::Key(_) => 2,
            CliError::Aws { .. } | CliError::Incomplete(_) => 1,
        }
    }

    /// An SDK error of `call` on `target` in `region`: the service's code and
    /// message when it answered, else the whole error chain (a connection
    /// refused, a timeout, missing credentials).
    pub fn aws<E>(region: &str, call: &'static str, target: &str, err: &E) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let code = err.code().map(str::to_owned);
        let message = match (err.code(), err.message()) {
            (Some(code), Some(message)) => format!("{code}: {message}"),
            (Some(code), None) => code.to_owned(),
            _ => DisplayErrorContext(err).to_string(),
        };
        CliError::Aws {
            region: region.to_owned(),
            call,
            target: target.to_owned(),
            code,
            message,
        }
    }

    /// The service's error code of an AWS error.
    pub fn code(&self) -> Option<&str> {
        match self {
            CliError::Aws { code, .. } => code.as_deref(),
            _ => None,
        }
    }
}
