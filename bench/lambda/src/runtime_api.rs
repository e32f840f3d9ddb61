//! A loopback Lambda Runtime API: the four routes a bootstrap calls
//! (`invocation/next`, `invocation/{id}/response`, `invocation/{id}/error`,
//! `init/error`), on plain HTTP/1.1 with keep-alive, one thread per
//! connection. Enough for `lambda_runtime`'s client; not a general server.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const PREFIX: &str = "/2018-06-01/runtime/";

/// One event handed to the bootstrap.
pub struct Invocation {
    pub id: String,
    pub body: Arc<Vec<u8>>,
    /// The function's timeout from the moment the bootstrap takes it.
    pub timeout: Duration,
}

/// What the bootstrap did, when the harness saw it.
#[derive(Debug)]
pub enum Call {
    /// `GET invocation/next` arrived (before it is answered).
    Next(Instant),
    Response {
        id: String,
        at: Instant,
        body: Vec<u8>,
    },
    Error(Vec<u8>),
    InitError(Vec<u8>),
}

struct Shared {
    queue: Mutex<VecDeque<Invocation>>,
    ready: Condvar,
    closed: AtomicBool,
    calls: Mutex<Sender<Call>>,
}

/// The server; dropping it stops answering `next` (a waiting poll ends
/// with the connection).
pub struct RuntimeApi {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl RuntimeApi {
    /// Listens on a free loopback port; the receiver gets every call.
    ///
    /// # Errors
    /// When the port cannot be bound.
    pub fn start() -> std::io::Result<(Self, Receiver<Call>)> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let (tx, rx) = channel();
        let shared = Arc::new(Shared {
            queue: Mutex::default(),
            ready: Condvar::new(),
            closed: AtomicBool::new(false),
            calls: Mutex::new(tx),
        });
        let s = shared.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if s.closed.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let s = s.clone();
                std::thread::spawn(move || {
                    // A connection that breaks ends its thread; the harness
                    // notices through the missing call.
                    let _ = serve(stream, &s);
                });
            }
        });
        Ok((RuntimeApi { addr, shared }, rx))
    }

    /// `127.0.0.1:<port>`, the value of `AWS_LAMBDA_RUNTIME_API`.
    pub fn address(&self) -> String {
        self.addr.to_string()
    }

    /// Queues an event for the next poll.
    pub fn invoke(&self, invocation: Invocation) {
        self.shared.queue.lock().unwrap().push_back(invocation);
        self.shared.ready.notify_all();
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::Relaxed);
        self.shared.ready.notify_all();
        // Wakes the accept loop so it sees `closed`.
        let _ = TcpStream::connect(self.addr);
    }
}

struct Request {
    method: String,
    path: String,
    body: Vec<u8>,
}

fn read_request(reader: &mut BufReader<TcpStream>) -> std::io::Result<Option<Request>> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let (method, path) = match (parts.next(), parts.next()) {
        (Some(m), Some(p)) => (m.to_owned(), p.to_owned()),
        _ => return Err(std::io::Error::other(format!("bad request line {line:?}"))),
    };
    let (mut length, mut chunked) = (0usize, false);
    loop {
        let mut header = String::new();
        reader.read_line(&mut header)?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                length = value.parse().map_err(std::io::Error::other)?;
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.eq_ignore_ascii_case("chunked");
            }
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size)?;
            let size = usize::from_str_radix(size.trim().split(';').next().unwrap_or(""), 16)
                .map_err(std::io::Error::other)?;
            let mut chunk = vec![0; size + 2]; // the chunk and its CRLF
            reader.read_exact(&mut chunk)?;
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    } else {
        body.resize(length, 0);
        reader.read_exact(&mut body)?;
    }
    Ok(Some(Request { method, path, body }))
}

fn respond(
    stream: &mut TcpStream,
    status: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> std::io::Result<()> {
    let mut head = format!("HTTP/1.1 {status}\r\ncontent-length: {}\r\n", body.len());
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    stream.flush()
}

fn serve(stream: TcpStream, s: &Shared) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let mut out = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    let send = |call| {
        let _ = s.calls.lock().unwrap().send(call);
    };
    while let Some(request) = read_request(&mut reader)? {
        let route = request.path.strip_prefix(PREFIX).unwrap_or("");
        let at = Instant::now();
        match (request.method.as_str(), route) {
            ("GET", "invocation/next") => {
                send(Call::Next(at));
                let Some(invocation) = next(s) else {
                    return Ok(());
                };
                let deadline = SystemTime::now() + invocation.timeout;
                let deadline_ms = deadline.duration_since(UNIX_EPOCH).unwrap().as_millis();
                respond(
                    &mut out,
                    "200 OK",
                    &[
                        ("content-type", "application/json".into()),
                        ("lambda-runtime-aws-request-id", invocation.id.clone()),
                        ("lambda-runtime-deadline-ms", deadline_ms.to_string()),
                        (
                            "lambda-runtime-invoked-function-arn",
                            "arn:aws:lambda:us-east-1:123456789012:function:resolver".into(),
                        ),
                        (
                            "lambda-runtime-trace-id",
                            "Root=1-00000000-000000000000000000000000".into(),
                        ),
                    ],
                    &invocation.body,
                )?;
            }
            ("POST", "init/error") => {
                send(Call::InitError(request.body));
                respond(&mut out, "202 Accepted", &[], br#"{"status":"OK"}"#)?;
            }
            ("POST", route) if route.starts_with("invocation/") => {
                let rest = &route["invocation/".len()..];
                let call = match rest.rsplit_once('/') {
                    Some((id, "response")) => Call::Response {
                        id: id.to_owned(),
                        at,
                        body: request.body,
                    },
                    Some((_, "error")) => Call::Error(request.body),
                    _ => {
                        respond(&mut out, "404 Not Found", &[], b"")?;
                        continue;
                    }
                };
                send(call);
                respond(&mut out, "202 Accepted", &[], br#"{"status":"OK"}"#)?;
            }
            _ => respond(&mut out, "404 Not Found", &[], b"")?,
        }
    }
    Ok(())
}

/// Waits for a queued invocation; `None` once the server is dropped.
fn next(s: &Shared) -> Option<Invocation> {
    let mut queue = s.queue.lock().unwrap();
    loop {
        if s.closed.load(Ordering::Relaxed) {
            return None;
        }
        if let Some(invocation) = queue.pop_front() {
            return Some(invocation);
        }
        queue = s
            .ready
            .wait_timeout(queue, Duration::from_millis(200))
            .unwrap()
            .0;
    }
}
