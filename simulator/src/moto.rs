//! A local moto server speaking DynamoDB and DynamoDB Streams for the
//! simulator and the integration suites (writer, resolver), SDK configs
//! pointing at it, and a helper to create one table per run or test.
//!
//! One server is shared by every test of a test binary ([`MotoServer::shared`]),
//! since starting moto takes a second or two; tests isolate themselves by
//! each using its own table ([`unique_table`]). moto tells Regions apart by
//! the request signature, so the same table name in two Regions is two
//! independent tables on one server; it never replicates between them.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_dynamodb::config::{Credentials, Region};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    StreamSpecification, StreamViewType,
};
use aws_sdk_dynamodb::Client;
use thiserror::Error;

/// Overrides where the `moto_server` executable is.
pub const MOTO_ENV: &str = "HOMEWARD_MOTO_SERVER";

/// SDK builders only fail when a required field is missing.
const ALL_SET: &str = "every required field is set";

const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);

/// Why a moto server could not be started.
#[derive(Debug, Error)]
pub enum HarnessError {
    #[error(
        "moto_server not found at {0}: install it with `bash scripts/test.sh venv` (it creates \
         .venv and installs moto[server]), or set {MOTO_ENV} to a moto_server executable"
    )]
    MotoMissing(PathBuf),
    #[error("{0} is not the Python script pip installs as moto_server (no #! line)")]
    NotAScript(PathBuf),
    #[error("could not start moto_server: {0}")]
    Io(#[from] std::io::Error),
    #[error("moto_server exited early ({status}); its log is {log}")]
    Exited { status: String, log: PathBuf },
    #[error(
        "moto_server did not answer on {endpoint} within {STARTUP_TIMEOUT:?}; its log is {log}"
    )]
    NoAnswer { endpoint: String, log: PathBuf },
}

/// A running `moto_server -H 127.0.0.1 -p PORT` on a free port (one request
/// at a time, see `SERIAL_MOTO`), stopped on drop.
pub struct MotoServer {
    wrapper: Child,
    /// The wrapper stops moto when this pipe closes: on drop, and also when
    /// the test process dies without dropping (a static never is).
    lifeline: Option<ChildStdin>,
    endpoint: String,
    log: PathBuf,
}

/// Runs `"$@"` (moto) in the background and kills it once stdin reaches
/// EOF; exits when moto does, so an early failure shows as the wrapper's exit.
const WRAPPER: &str = r#"exec 3<&0
"$@" </dev/null &
pid=$!
{ cat <&3 >/dev/null; kill "$pid" 2>/dev/null; } &
wait "$pid""#;

/// Runs the moto_server script (argv[1]) handling one request at a time.
/// moto serves requests on threads but its handlers are not atomic: PutItem
/// reads the item, checks the condition, then stores, with no lock, so two
/// concurrent conditional writes can both succeed: the concurrent writer test
/// lost an update in about one run in 30 before this. DynamoDB never does.
const SERIAL_MOTO: &str = r#"import runpy, sys, threading
from moto.moto_server.werkzeug_app import DomainDispatcherApplication as App
lock, call = threading.Lock(), App.__call__
def serial(self, environ, start_response):
    with lock:
        return call(self, environ, start_response)
App.__call__ = serial
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"#;

impl MotoServer {
    /// The server shared by every test in this test binary, started on
    /// first use.
    ///
    /// # Panics
    /// When the server cannot be started (the message says how to fix it).
    pub fn shared() -> &'static MotoServer {
        static SHARED: OnceLock<Result<MotoServer, String>> = OnceLock::new();
        match SHARED.get_or_init(|| MotoServer::start().map_err(|e| e.to_string())) {
            Ok(server) => server,
            Err(e) => panic!("{e}"),
        }
    }

    /// Starts a private server and waits until it answers HTTP.
    ///
    /// # Errors
    /// [`HarnessError::MotoMissing`] when moto is not installed; the others
    /// when it does not come up.
    pub fn start() -> Result<Self, HarnessError> {
        let moto = moto_path();
        if !moto.is_file() {
            return Err(HarnessError::MotoMissing(moto));
        }
        // Another process may grab the port before moto binds it; rare
        // enough for tests, and the log then says so.
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let log_dir = workspace_root().join("target").join("moto");
        std::fs::create_dir_all(&log_dir)?;
        let log = log_dir.join(log_name());
        let out = std::fs::File::create(&log)?;
        let wrapper = Command::new("sh")
            .args(["-c", WRAPPER, "sh"])
            .args(interpreter(&moto)?)
            .args(["-c", SERIAL_MOTO])
            .arg(&moto)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::piped())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()?;
        let mut server = MotoServer {
            lifeline: None,
            endpoint: format!("http://127.0.0.1:{port}"),
            log,
            wrapper,
        };
        server.lifeline = server.wrapper.stdin.take();
        server.wait_until_ready(SocketAddr::from(([127, 0, 0, 1], port)))?;
        Ok(server)
    }

    fn wait_until_ready(&mut self, addr: SocketAddr) -> Result<(), HarnessError> {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        while Instant::now() < deadline {
            if let Some(status) = self.wrapper.try_wait()? {
                return Err(HarnessError::Exited {
                    status: status.to_string(),
                    log: self.log.clone(),
                });
            }
            if answers_http(addr) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(HarnessError::NoAnswer {
            endpoint: self.endpoint.clone(),
            log: self.log.clone(),
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// SDK config for this server: its endpoint, fake static credentials,
    /// Region `us-east-1` (clients override the Region per call site).
    /// Load one per test: SDK clients should not outlive the test's runtime.
    pub async fn sdk_config(&self) -> SdkConfig {
        aws_config::defaults(BehaviorVersion::latest())
            .endpoint_url(&self.endpoint)
            .credentials_provider(Credentials::new("test", "test", None, None, "moto"))
            .region(Region::new("us-east-1"))
            .load()
            .await
    }

    /// A DynamoDB client for `region` on this server.
    pub async fn client(&self, region: &str) -> Client {
        let config = aws_sdk_dynamodb::config::Builder::from(&self.sdk_config().await)
            .region(Region::new(region.to_owned()))
            .build();
        Client::from_conf(config)
    }

    /// Creates an on-demand table with a NEW_AND_OLD_IMAGES stream in
    /// `region`, keyed by `pk` and optionally `sk`.
    ///
    /// # Errors
    /// The SDK's error, e.g. when the table already exists in `region`.
    pub async fn create_table(
        &self,
        region: &str,
        table: &str,
        pk: (&str, ScalarAttributeType),
        sk: Option<(&str, ScalarAttributeType)>,
    ) -> Result<(), aws_sdk_dynamodb::Error> {
        let mut request = self
            .client(region)
            .await
            .create_table()
            .table_name(table)
            .billing_mode(BillingMode::PayPerRequest)
            .stream_specification(
                StreamSpecification::builder()
                    .stream_enabled(true)
                    .stream_view_type(StreamViewType::NewAndOldImages)
                    .build()
                    .expect(ALL_SET),
            );
        let keys = std::iter::once((pk, KeyType::Hash)).chain(sk.map(|sk| (sk, KeyType::Range)));
        for ((name, ty), key_type) in keys {
            request = request
                .key_schema(
                    KeySchemaElement::builder()
                        .attribute_name(name)
                        .key_type(key_type)
                        .build()
                        .expect(ALL_SET),
                )
                .attribute_definitions(
                    AttributeDefinition::builder()
                        .attribute_name(name)
                        .attribute_type(ty)
                        .build()
                        .expect(ALL_SET),
                );
        }
        request.send().await?;
        Ok(())
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        // Closing the pipe makes the wrapper kill moto and exit.
        drop(self.lifeline.take());
        if self.wrapper.wait().is_err() {
            let _ = self.wrapper.kill();
        }
    }
}

/// A table name no other test uses: `t-<test>-<random>`.
pub fn unique_table(test: &str) -> String {
    format!("t-{test}-{:08x}", rand::random::<u32>())
}

/// The workspace root: the parent of this crate.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the simulator crate sits inside the workspace")
        .to_path_buf()
}

/// `<test binary>-<n>.log`: the n-th server this process started, so
/// reruns overwrite old logs instead of piling them up.
fn log_name() -> String {
    static STARTED: AtomicUsize = AtomicUsize::new(0);
    let exe = std::env::current_exe().ok();
    let stem = exe
        .as_deref()
        .and_then(Path::file_stem)
        .map_or("moto".into(), |s| s.to_string_lossy());
    format!("{stem}-{}.log", STARTED.fetch_add(1, Ordering::Relaxed))
}

fn moto_path() -> PathBuf {
    match std::env::var_os(MOTO_ENV) {
        Some(path) if !path.is_empty() => PathBuf::from(path),
        _ => workspace_root().join(".venv/bin/moto_server"),
    }
}

/// The Python that runs the `moto_server` script, from its `#!` line.
fn interpreter(moto: &Path) -> Result<Vec<String>, HarnessError> {
    let text = std::fs::read(moto)?;
    let first = text.split(|b| *b == b'\n').next().unwrap_or_default();
    match String::from_utf8_lossy(first).strip_prefix("#!") {
        Some(command) => Ok(command.split_whitespace().map(str::to_owned).collect()),
        None => Err(HarnessError::NotAScript(moto.to_path_buf())),
    }
}

/// Whether something on `addr` answers an HTTP request.
fn answers_http(addr: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = b"GET /moto-api/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    let mut head = [0u8; 5];
    stream.write_all(request).is_ok() && stream.read_exact(&mut head).is_ok() && &head == b"HTTP/"
}
