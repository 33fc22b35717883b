//! `kubecert serve --socket PATH`: JSON-RPC over HTTP/1.1 on a unix socket (the
//! Docker-socket convention), hyper serving each connection (jsonrpsee's
//! `serve_with_graceful_shutdown`) and the request path shared with stdio ([`wire`]):
//!
//! ```text
//! curl -s --unix-socket /run/kubecert/kubecert.sock http://localhost \
//!   -H 'content-type: application/json' -d '{"jsonrpc":"2.0","id":1,"method":"check","params":{}}'
//! ```
//!
//! Socket file: created 0600 (0660 and group-owned with `--group`) under a temporary name
//! and renamed into place, so it is never reachable with looser permissions; its parent dir
//! is created 0755 when absent; a symlink at the path is refused; an existing socket is
//! replaced only when nobody listens on it; `<socket>.lock` (flock) is held while serving;
//! a path longer than a socket address holds (107 bytes) is refused before anything is
//! created. With systemd socket activation the inherited socket is used as is (systemd
//! owns the file and its mode).
//!
//! Authorization: the kernel checks the socket file's mode first; then SO_PEERCRED gives the
//! caller's uid/gid/pid, turned into a [`Caller`] put in every call's extensions. Read
//! methods: root, the server's own uid, `--allow-uid`, `--allow-write-uid` and members of
//! `--group`. Mutating methods: root, the server's own uid and `--allow-write-uid`. A refused
//! call gets -31004 and is logged with uid/pid.
//!
//! HTTP: `POST` with a JSON content type; every JSON-RPC answer (parse errors and invalid
//! requests included) is 200, notifications only → 204, a body over the limit → 413 with
//! -31008 (by `Content-Length` or, chunked, at the first byte over), a broken HTTP body →
//! 400, other methods → 405, other content types → 415.
//!
//! Robustness (docs/rpc.md "Limits"): one task per connection; the library calls run on
//! the blocking pool. Every byte read or written is seen by the connection's `State`:
//! a request must arrive whole (headers and body) within `request_timeout` of its first
//! byte and may not stall for `idle_timeout`; a connection between requests is closed after
//! `idle_timeout` (and jsonrpsee closes one that sends no request within 30 s). At most
//! `max_connections` connections hold a slot; when all are taken, a new connection takes
//! the slot of the connection whose current phase (idle, receiving, or not reading its
//! response) started earliest; only connections running a call are never evicted, and a
//! new connection waits only when every slot runs a call. SIGTERM/SIGINT: stop accepting,
//! remove the socket, let in-flight calls finish (up to `shutdown_timeout`), exit 0.

use std::fs::{File, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use hyper::header::{self, HeaderValue};
use hyper::StatusCode;
use jsonrpsee::server::{HttpBody, HttpRequest, HttpResponse};
use tokio::net::UnixStream;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;

use super::{errors, wire, Caller, Enforce};

/// Default socket path.
pub const DEFAULT_SOCKET: &str = "/run/kubecert/kubecert.sock";

/// Options of the socket server.
#[derive(Debug, Clone)]
pub struct SocketOptions {
    /// Socket path.
    pub path: PathBuf,
    /// Group allowed to read (socket 0660, group-owned).
    pub group: Option<String>,
    /// Extra uids allowed to call read methods.
    pub allow_uids: Vec<u32>,
    /// Extra uids allowed to call mutating methods (and read methods).
    pub allow_write_uids: Vec<u32>,
    /// Maximum HTTP request body.
    pub max_request_bytes: usize,
    /// Batch length and response bounds.
    pub limits: wire::Limits,
    /// A request (headers and body) must arrive within this time of its first byte.
    pub request_timeout: Duration,
    /// Maximum connections served at once.
    pub max_connections: u32,
    /// Close a connection with no request in flight after this long.
    pub idle_timeout: Duration,
    /// How long to wait for in-flight calls at shutdown.
    pub shutdown_timeout: Duration,
    /// The PKI served (see [`crate::confine`]).
    pub roots: super::Roots,
}

impl Default for SocketOptions {
    fn default() -> Self {
        SocketOptions {
            path: PathBuf::from(DEFAULT_SOCKET),
            group: None,
            allow_uids: Vec::new(),
            allow_write_uids: Vec::new(),
            max_request_bytes: super::DEFAULT_MAX_REQUEST_BYTES,
            limits: wire::Limits::default(),
            request_timeout: Duration::from_secs(10),
            max_connections: 1024,
            idle_timeout: Duration::from_secs(60),
            shutdown_timeout: Duration::from_secs(60),
            roots: super::Roots::default(),
        }
    }
}

/// A group from /etc/group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// Name.
    pub name: String,
    /// Gid.
    pub gid: u32,
    /// Supplementary members (user names).
    pub members: Vec<String>,
}

/// Looks a group up in `/etc/group` by name or number.
pub fn lookup_group(name_or_gid: &str) -> anyhow::Result<Group> {
    let text = std::fs::read_to_string("/etc/group").unwrap_or_default();
    let numeric: Option<u32> = name_or_gid.parse().ok();
    for line in text.lines() {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() < 4 {
            continue;
        }
        let Ok(gid) = f[2].parse::<u32>() else {
            continue;
        };
        if f[0] == name_or_gid || numeric == Some(gid) {
            return Ok(Group {
                name: f[0].to_string(),
                gid,
                members: f[3]
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect(),
            });
        }
    }
    match numeric {
        Some(gid) => Ok(Group {
            name: name_or_gid.to_string(),
            gid,
            members: Vec::new(),
        }),
        None => bail!("unknown group {name_or_gid:?} (not in /etc/group)"),
    }
}

fn user_name(uid: u32) -> Option<String> {
    let text = std::fs::read_to_string("/etc/passwd").ok()?;
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() > 2 && f[2].parse::<u32>().ok() == Some(uid)).then(|| f[0].to_string())
    })
}

/// The effective uid of this process (from /proc, without unsafe code).
pub fn effective_uid() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2))
                .and_then(|u| u.parse().ok())
        })
        .or_else(|| std::fs::metadata("/proc/self").ok().map(|m| m.uid()))
        .unwrap_or(u32::MAX)
}

/// Who may call what.
#[derive(Debug, Clone)]
pub struct Policy {
    /// The server's uid (always allowed).
    pub server_uid: u32,
    /// Read-tier uids.
    pub read_uids: Vec<u32>,
    /// Write-tier uids.
    pub write_uids: Vec<u32>,
    /// Read-tier group.
    pub group: Option<Group>,
}

impl Policy {
    /// The tiers of a peer.
    pub fn caller(&self, uid: u32, gid: u32, pid: Option<i32>) -> Caller {
        let may_write = uid == 0 || uid == self.server_uid || self.write_uids.contains(&uid);
        let in_group = self.group.as_ref().is_some_and(|g| {
            g.gid == gid
                || (!g.members.is_empty() && user_name(uid).is_some_and(|n| g.members.contains(&n)))
        });
        let may_read = may_write || self.read_uids.contains(&uid) || in_group;
        Caller {
            uid,
            gid,
            pid,
            may_read,
            may_write,
        }
    }
}

/// The socket file this process created (removed at exit only if still the same file).
struct Owned {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

impl Owned {
    fn remove(&self) {
        match std::fs::symlink_metadata(&self.path) {
            Ok(m) if m.dev() == self.dev && m.ino() == self.ino => {
                if let Err(e) = std::fs::remove_file(&self.path) {
                    tracing::warn!(path = %self.path.display(), error = %e, "cannot remove socket");
                }
            }
            _ => {
                tracing::warn!(path = %self.path.display(), "socket path replaced by someone else; left alone")
            }
        }
    }
}

fn lock_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".lock");
    PathBuf::from(s)
}

fn take_lock(path: &Path) -> anyhow::Result<File> {
    let lp = lock_path(path);
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&lp)
        .with_context(|| format!("cannot open lock file {}", lp.display()))?;
    match f.try_lock() {
        Ok(()) => Ok(f),
        Err(std::fs::TryLockError::WouldBlock) => bail!(
            "another kubecert serve holds {} (serving {})",
            lp.display(),
            path.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("cannot lock {}", lp.display()))
        }
    }
}

/// The socket's parent dir, created 0755 when absent.
fn ensure_parent(path: &Path) -> anyhow::Result<PathBuf> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if path.file_name().is_none() {
        bail!("{} is not a socket file path", path.display());
    }
    if !parent.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(&parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    Ok(parent)
}

/// The temporary name the socket is bound under, beside `path`.
fn temp_name(path: &Path) -> PathBuf {
    let name = format!(".kubecert-{}.sock", std::process::id());
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.join(name),
        _ => PathBuf::from(name),
    }
}

/// Creates the socket: refuses a symlink, replaces a stale socket only if nobody listens,
/// binds under a temporary name, sets mode/group, renames into place.
fn bind(
    path: &Path,
    group: Option<&Group>,
) -> anyhow::Result<(std::os::unix::net::UnixListener, Owned)> {
    ensure_parent(path)?;
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => {
            bail!("refusing symlink at {}", path.display())
        }
        Ok(m) if m.file_type().is_socket() => match std::os::unix::net::UnixStream::connect(path) {
            Ok(_) => bail!("{} is in use: a server is listening on it", path.display()),
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => {
                tracing::info!(path = %path.display(), "removing stale socket");
                std::fs::remove_file(path)
                    .with_context(|| format!("cannot remove stale socket {}", path.display()))?;
            }
            Err(e) => return Err(e).with_context(|| format!("cannot probe {}", path.display())),
        },
        Ok(_) => bail!(
            "{} exists and is not a socket; refusing to replace it",
            path.display()
        ),
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot stat {}", path.display())),
    }
    let tmp = temp_name(path);
    let _ = std::fs::remove_file(&tmp);
    let listener = std::os::unix::net::UnixListener::bind(&tmp)
        .with_context(|| format!("cannot bind {}", tmp.display()))?;
    let setup = || -> anyhow::Result<()> {
        let mode = if group.is_some() { 0o660 } else { 0o600 };
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))?;
        if let Some(g) = group {
            std::os::unix::fs::chown(&tmp, None, Some(g.gid))
                .with_context(|| format!("cannot chown {} to group {}", tmp.display(), g.name))?;
        }
        std::fs::rename(&tmp, path)
            .with_context(|| format!("cannot rename {} to {}", tmp.display(), path.display()))?;
        Ok(())
    };
    if let Err(e) = setup() {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    let m = std::fs::symlink_metadata(path)?;
    Ok((
        listener,
        Owned {
            path: path.to_path_buf(),
            dev: m.dev(),
            ino: m.ino(),
        },
    ))
}

/// What one connection is doing, for the timeouts and the slot policy.
#[derive(Debug)]
struct State {
    /// When a byte was last read or written, or a call ended.
    last: Instant,
    /// When the first byte of the request being received arrived (`None`: between
    /// requests, or a call is running).
    receiving_since: Option<Instant>,
    /// Calls running on this connection.
    executing: usize,
    /// Told to close (idle, deadline passed, evicted): no call may start any more.
    closing: bool,
}

/// One connection: its [`State`], and how to tell it to close.
struct Conn {
    state: Mutex<State>,
    /// Wakes the connection's task when it is evicted.
    close: Notify,
    /// Wakes the accept loop when a slot may have become free.
    freed: Arc<Notify>,
}

impl Conn {
    fn new(freed: Arc<Notify>) -> Arc<Self> {
        Arc::new(Conn {
            state: Mutex::new(State {
                last: Instant::now(),
                receiving_since: None,
                executing: 0,
                closing: false,
            }),
            close: Notify::new(),
            freed,
        })
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        match self.state.lock() {
            Ok(mut g) => f(&mut g),
            Err(p) => f(&mut p.into_inner()),
        }
    }

    /// Bytes arrived: the first byte between requests starts the request deadline.
    fn on_read(&self) {
        self.with(|s| {
            s.last = Instant::now();
            if s.executing == 0 && s.receiving_since.is_none() {
                s.receiving_since = Some(s.last);
            }
        });
    }

    fn on_write(&self) {
        self.with(|s| s.last = Instant::now());
    }

    /// A request's headers are in (a pipelined request may start without a new read).
    fn request_started(&self) {
        self.with(|s| {
            if s.executing == 0 && s.receiving_since.is_none() {
                s.receiving_since = Some(Instant::now());
            }
        });
    }

    /// The request is complete: its calls may run, unless the connection is closing.
    fn begin_exec(&self) -> bool {
        self.with(|s| {
            if s.closing {
                return false;
            }
            s.executing += 1;
            s.receiving_since = None;
            true
        })
    }

    fn end_exec(&self) {
        self.with(|s| {
            s.executing = s.executing.saturating_sub(1);
            s.last = Instant::now();
        });
        self.freed.notify_one();
    }

    fn busy(&self) -> bool {
        self.with(|s| s.executing > 0)
    }

    /// Marks the connection closing when it is not running a call and a timeout passed;
    /// returns which.
    fn expire(&self, request_timeout: Duration, idle_timeout: Duration) -> Option<&'static str> {
        self.with(|s| {
            if s.executing > 0 || s.closing {
                return None;
            }
            let why = match s.receiving_since {
                Some(t) if t.elapsed() >= request_timeout => "request deadline passed",
                Some(_) if s.last.elapsed() >= idle_timeout => "request stalled",
                None if s.last.elapsed() >= idle_timeout => "idle",
                _ => return None,
            };
            s.closing = true;
            Some(why)
        })
    }

    /// When its current phase (idle or receiving) started, if it may be evicted.
    fn evictable_since(&self) -> Option<Instant> {
        self.with(|s| (s.executing == 0 && !s.closing).then(|| s.receiving_since.unwrap_or(s.last)))
    }

    /// Marks it closing if it still runs no call.
    fn evict(&self) -> bool {
        let done = self.with(|s| {
            if s.executing > 0 || s.closing {
                return false;
            }
            s.closing = true;
            true
        });
        if done {
            self.close.notify_one();
        }
        done
    }

    fn closing(&self) -> bool {
        self.with(|s| s.closing)
    }
}

/// The connection slots (`--max-connections`). A connection not running a call (idle,
/// still sending its request, or not reading its response) holds its slot only until a
/// new connection needs it: then the one whose current phase started earliest is closed.
struct Slots {
    max: usize,
    conns: Mutex<Vec<Arc<Conn>>>,
    freed: Arc<Notify>,
}

impl Slots {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Arc<Conn>>> {
        self.conns.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Closes the oldest connection that runs no call; false when every one runs a call.
    fn evict_oldest(conns: &[Arc<Conn>]) -> bool {
        let mut candidates: Vec<(Instant, &Arc<Conn>)> = conns
            .iter()
            .filter_map(|c| c.evictable_since().map(|t| (t, c)))
            .collect();
        candidates.sort_by_key(|(t, _)| *t);
        candidates.into_iter().any(|(_, c)| c.evict())
    }

    /// Takes a slot for `conn`, evicting if needed; false when all slots run calls.
    fn admit(&self, conn: &Arc<Conn>) -> bool {
        let mut conns = self.lock();
        let live = conns.iter().filter(|c| !c.closing()).count();
        if live >= self.max {
            if !Self::evict_oldest(&conns) {
                return false;
            }
            tracing::debug!(
                max = self.max,
                "all connection slots taken: evicted the oldest connection not running a call"
            );
        }
        conns.push(conn.clone());
        true
    }

    /// Frees a file descriptor (accept failed with EMFILE/ENFILE).
    fn evict_one(&self) -> bool {
        Self::evict_oldest(&self.lock())
    }

    fn remove(&self, conn: &Arc<Conn>) {
        self.lock().retain(|c| !Arc::ptr_eq(c, conn));
        self.freed.notify_one();
    }
}

/// The socket, reporting every byte read or written to its [`Conn`].
struct Tracked {
    inner: UnixStream,
    conn: Arc<Conn>,
}

impl tokio::io::AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, std::task::Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.conn.on_read();
        }
        r
    }
}

impl tokio::io::AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, std::task::Poll::Ready(Ok(n)) if n > 0) {
            self.conn.on_write();
        }
        r
    }
    fn poll_flush(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Ends a call on its connection, even when the request's future is dropped.
struct Exec(Arc<Conn>);

impl Drop for Exec {
    fn drop(&mut self) {
        self.0.end_exec();
    }
}

/// What every request of the server shares.
struct Shared {
    methods: jsonrpsee::Methods,
    limits: wire::Limits,
    max_request_bytes: usize,
}

fn text(status: StatusCode, body: &'static str) -> HttpResponse {
    let mut r = HttpResponse::new(HttpBody::from(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn json(status: StatusCode, body: String) -> HttpResponse {
    let mut r = HttpResponse::new(HttpBody::from(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    r
}

/// Answered before the body was read to its end: the connection cannot be reused.
fn closing(mut r: HttpResponse) -> HttpResponse {
    r.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    r
}

/// The content types jsonrpsee accepts as JSON.
fn is_json(v: Option<&HeaderValue>) -> bool {
    v.and_then(|v| v.to_str().ok()).is_some_and(|c| {
        let c = c.to_ascii_lowercase().replace(' ', "");
        matches!(
            c.as_str(),
            "application/json"
                | "application/json;charset=utf-8"
                | "application/json-rpc"
                | "application/json-rpc;charset=utf-8"
        )
    })
}

/// Why a request body was not read.
#[derive(Debug, PartialEq, Eq)]
pub enum BodyError {
    /// Over the limit (by `Content-Length` or by the bytes that arrived).
    TooLarge,
    /// The HTTP framing of the body is broken (bad chunk, connection cut).
    Broken,
}

/// Whether a declared `Content-Length` is already over `limit`.
pub fn declared_too_large(headers: &hyper::HeaderMap, limit: usize) -> bool {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .is_some_and(|n| n > limit as u64)
}

/// Reads a body of at most `limit` bytes (stops reading at the first byte over it).
async fn read_body(body: hyper::body::Incoming, limit: usize) -> Result<Vec<u8>, BodyError> {
    use hyper::body::Body;
    let mut body = std::pin::pin!(body);
    let mut buf = Vec::new();
    loop {
        let frame = std::future::poll_fn(|cx| body.as_mut().poll_frame(cx)).await;
        match frame {
            None => return Ok(buf),
            Some(Err(_)) => return Err(BodyError::Broken),
            Some(Ok(f)) => {
                if let Some(d) = f.data_ref() {
                    if buf.len() + d.len() > limit {
                        return Err(BodyError::TooLarge);
                    }
                    buf.extend_from_slice(d);
                }
            }
        }
    }
}

/// One HTTP request: `POST` with a JSON content type and a body within the limit, then
/// the shared request path ([`wire`]). Status codes: 200 with a JSON-RPC response (errors
/// included: parse errors and invalid requests too), 204 when only notifications were
/// sent, 413 over the size limit, 400 for a broken HTTP body, 405 / 415 for the wrong
/// method / content type.
async fn http_request(
    req: HttpRequest<hyper::body::Incoming>,
    shared: Arc<Shared>,
    conn: Arc<Conn>,
    caller: Caller,
) -> HttpResponse {
    conn.request_started();
    if req.method() != hyper::Method::POST {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            "Used HTTP Method is not allowed. POST is required\n",
        );
    }
    if !is_json(req.headers().get(header::CONTENT_TYPE)) {
        return closing(text(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Supplied content type is not allowed. Content-Type: application/json is required\n",
        ));
    }
    let limit = shared.max_request_bytes;
    let too_large = || {
        tracing::warn!(limit, "request body too large");
        closing(json(
            StatusCode::PAYLOAD_TOO_LARGE,
            errors::too_large_response(limit).to_string(),
        ))
    };
    if declared_too_large(req.headers(), limit) {
        return too_large();
    }
    let body = match read_body(req.into_body(), limit).await {
        Ok(b) => b,
        Err(BodyError::TooLarge) => return too_large(),
        Err(BodyError::Broken) => {
            return closing(text(StatusCode::BAD_REQUEST, "Malformed HTTP body\n"))
        }
    };
    if !conn.begin_exec() {
        return closing(text(
            StatusCode::SERVICE_UNAVAILABLE,
            "Connection closing\n",
        ));
    }
    let _exec = Exec(conn.clone());
    let msg = match wire::parse(&body, &shared.limits) {
        // An empty body is not JSON.
        wire::Message::Empty => wire::Message::Reject(wire::parse_error()),
        m => m,
    };
    let mut ext = jsonrpsee::Extensions::new();
    ext.insert(caller);
    let out = wire::handle(&shared.methods, msg, &ext, &shared.limits).await;
    match out {
        Some(body) => json(StatusCode::OK, body),
        None => {
            let mut r = HttpResponse::new(HttpBody::empty());
            *r.status_mut() = StatusCode::NO_CONTENT;
            r
        }
    }
}

/// Per-connection timeouts.
#[derive(Debug, Clone, Copy)]
struct Timeouts {
    request: Duration,
    idle: Duration,
}

/// Serves one connection until it ends, times out, is evicted, or the server shuts down.
async fn connection<S>(
    sock: Tracked,
    svc: S,
    conn: Arc<Conn>,
    mut shutdown: watch::Receiver<bool>,
    timeouts: Timeouts,
) where
    S: tower::Service<
            HttpRequest<hyper::body::Incoming>,
            Response = HttpResponse,
            Error = anyhow::Error,
        > + Clone
        + Send
        + 'static,
    S::Future: Send,
{
    let (stop_tx, mut stop_rx) = watch::channel(false);
    let stopped = async move {
        let _ = stop_rx.wait_for(|v| *v).await;
    };
    let serve = jsonrpsee::server::serve_with_graceful_shutdown(sock, svc, stopped);
    tokio::pin!(serve);
    let mut tick = tokio::time::interval(
        (timeouts.request.min(timeouts.idle) / 4)
            .min(Duration::from_millis(250))
            .max(Duration::from_millis(10)),
    );
    let mut stopping: Option<Instant> = None;
    let mut shutdown_seen = *shutdown.borrow();
    loop {
        if shutdown_seen && stopping.is_none() {
            let _ = stop_tx.send(true);
            stopping = Some(Instant::now());
        }
        tokio::select! {
            r = &mut serve => {
                if let Err(e) = r {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            changed = shutdown.changed(), if !shutdown_seen => {
                shutdown_seen = changed.is_err() || *shutdown.borrow();
            }
            _ = conn.close.notified() => {
                tracing::debug!("connection evicted: its slot went to a new connection");
                return;
            }
            _ = tick.tick() => {
                if let Some(why) = conn.expire(timeouts.request, timeouts.idle) {
                    tracing::debug!(reason = why, "closing connection");
                    return;
                }
                // At shutdown, a connection that does not close promptly (e.g. a half-sent
                // request) is dropped, unless a call is still running on it.
                if let Some(t) = stopping {
                    if !conn.busy() && t.elapsed() >= Duration::from_secs(2) {
                        return;
                    }
                }
            }
        }
    }
}

/// Longest path a unix socket address holds (`sun_path` is 108 bytes with its NUL).
pub const MAX_SOCKET_PATH: usize = 107;

/// Refuses a socket path (or the temporary name it is bound under) that does not fit in a
/// unix socket address: bound, it would be unreachable.
pub fn check_path_len(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let n = path.as_os_str().as_bytes().len();
    if n > MAX_SOCKET_PATH {
        bail!(
            "socket path {} is {n} bytes; a unix socket path is at most {MAX_SOCKET_PATH} bytes",
            path.display()
        );
    }
    let tmp = temp_name(path);
    let t = tmp.as_os_str().as_bytes().len();
    if t > MAX_SOCKET_PATH {
        bail!(
            "socket path {}: its temporary name {} is {t} bytes; a unix socket path is at most {MAX_SOCKET_PATH} bytes",
            path.display(),
            tmp.display()
        );
    }
    Ok(())
}

/// `kubecert serve --socket`: runs until SIGTERM/SIGINT. `inherited` is a listening socket
/// passed by systemd (socket activation), used instead of binding `opts.path`.
pub fn run(
    opts: SocketOptions,
    inherited: Option<std::os::unix::net::UnixListener>,
) -> anyhow::Result<()> {
    if inherited.is_none() {
        check_path_len(&opts.path)?;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let shutdown_timeout = opts.shutdown_timeout;
    let r = rt.block_on(serve(opts, inherited));
    rt.shutdown_timeout(shutdown_timeout);
    r
}

async fn serve(
    opts: SocketOptions,
    inherited: Option<std::os::unix::net::UnixListener>,
) -> anyhow::Result<()> {
    let group = opts.group.as_deref().map(lookup_group).transpose()?;
    let policy = Arc::new(Policy {
        server_uid: effective_uid(),
        read_uids: opts.allow_uids.clone(),
        write_uids: opts.allow_write_uids.clone(),
        group: group.clone(),
    });
    let (std_listener, owned, _lock) = match inherited {
        Some(l) => {
            let path = l
                .local_addr()
                .ok()
                .and_then(|a| a.as_pathname().map(Path::to_path_buf));
            let lock = match &path {
                Some(p) => match take_lock(p) {
                    Ok(f) => Some(f),
                    Err(e) => {
                        tracing::warn!(error = %format!("{e:#}"), "socket activation: lock not taken");
                        None
                    }
                },
                None => None,
            };
            tracing::info!(path = ?path, "using the socket passed by systemd");
            (l, None, lock)
        }
        None => {
            check_path_len(&opts.path)?;
            ensure_parent(&opts.path)?;
            let lock = take_lock(&opts.path)?;
            let (l, owned) = bind(&opts.path, group.as_ref())?;
            (l, Some(owned), Some(lock))
        }
    };
    std_listener.set_nonblocking(true)?;
    let listener = tokio::net::UnixListener::from_std(std_listener)?;
    tracing::info!(
        path = %opts.path.display(),
        server_uid = policy.server_uid,
        group = ?group.as_ref().map(|g| &g.name),
        allow_uids = ?policy.read_uids,
        allow_write_uids = ?policy.write_uids,
        max_connections = opts.max_connections,
        "kubecert agent listening"
    );

    let shared = Arc::new(Shared {
        methods: super::module(Enforce::PeerCredentials, opts.roots.clone()).into(),
        limits: opts.limits,
        max_request_bytes: opts.max_request_bytes,
    });
    let timeouts = Timeouts {
        request: opts.request_timeout,
        idle: opts.idle_timeout,
    };
    let freed = Arc::new(Notify::new());
    let slots = Arc::new(Slots {
        max: opts.max_connections.max(1) as usize,
        conns: Mutex::new(Vec::new()),
        freed: freed.clone(),
    });
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let mut tasks: JoinSet<()> = JoinSet::new();
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;

    'accept: loop {
        while tasks.try_join_next().is_some() {}
        let (sock, _) = tokio::select! {
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
            r = listener.accept() => match r {
                Ok(s) => s,
                Err(e) => {
                    // Out of file descriptors: a connection not running a call gives its up.
                    let fds = matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE));
                    if fds && slots.evict_one() {
                        tracing::warn!(error = %e, "accept failed: evicted a connection");
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    } else {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    continue;
                }
            },
        };
        let cred = match sock.peer_cred() {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "SO_PEERCRED failed; closing connection");
                continue;
            }
        };
        let caller = policy.caller(cred.uid(), cred.gid(), cred.pid());
        let conn = Conn::new(freed.clone());
        // A slot: free, or taken from the oldest connection not running a call; when every
        // slot runs a call, wait until one ends.
        while !slots.admit(&conn) {
            tokio::select! {
                _ = sigterm.recv() => break 'accept,
                _ = sigint.recv() => break 'accept,
                _ = freed.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
        }
        tracing::debug!(
            uid = caller.uid,
            gid = caller.gid,
            pid = caller.pid,
            read = caller.may_read,
            write = caller.may_write,
            "connection accepted"
        );
        let (sh, c) = (shared.clone(), conn.clone());
        let svc = tower::service_fn(move |req: HttpRequest<hyper::body::Incoming>| {
            let (sh, c) = (sh.clone(), c.clone());
            // anyhow::Error (not BoxError) sidesteps a higher-ranked lifetime inference
            // problem in serve_with_graceful_shutdown's bounds (as jsonrpsee's examples do).
            async move { Ok::<_, anyhow::Error>(http_request(req, sh, c, caller).await) }
        });
        let io = Tracked {
            inner: sock,
            conn: conn.clone(),
        };
        let shutdown = shutdown_rx.clone();
        let slots = slots.clone();
        tasks.spawn(async move {
            connection(io, svc, conn.clone(), shutdown, timeouts).await;
            slots.remove(&conn);
        });
    }

    tracing::info!(
        in_flight_connections = tasks.len(),
        "shutting down: no new connections"
    );
    drop(listener);
    if let Some(o) = &owned {
        o.remove();
    }
    let _ = shutdown_tx.send(true);
    let wait_all = async { while tasks.join_next().await.is_some() {} };
    tokio::select! {
        _ = wait_all => tracing::info!("all connections closed"),
        _ = tokio::time::sleep(opts.shutdown_timeout) => {
            tracing::warn!("shutdown timeout: dropping the remaining connections");
        }
        _ = sigterm.recv() => tracing::warn!("second signal: dropping the remaining connections"),
        _ = sigint.recv() => tracing::warn!("second signal: dropping the remaining connections"),
    }
    tasks.abort_all();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiers() {
        let p = Policy {
            server_uid: 1000,
            read_uids: vec![2000],
            write_uids: vec![3000],
            group: Some(Group {
                name: "kc".into(),
                gid: 500,
                members: vec![],
            }),
        };
        let t = |uid, gid| {
            let c = p.caller(uid, gid, Some(1));
            (c.may_read, c.may_write)
        };
        assert_eq!(t(0, 0), (true, true));
        assert_eq!(t(1000, 1000), (true, true));
        assert_eq!(t(3000, 3000), (true, true));
        assert_eq!(t(2000, 2000), (true, false));
        assert_eq!(t(4000, 500), (true, false));
        assert_eq!(t(4000, 4000), (false, false));
    }

    fn slots(max: usize) -> Slots {
        Slots {
            max,
            conns: Mutex::new(Vec::new()),
            freed: Arc::new(Notify::new()),
        }
    }

    #[test]
    fn slots_evict_the_oldest_connection_not_running_a_call() {
        let s = slots(2);
        let (a, b) = (Conn::new(s.freed.clone()), Conn::new(s.freed.clone()));
        assert!(s.admit(&a) && s.admit(&b));
        // a receives a request (older phase), b is idle since later: a goes first.
        a.with(|st| st.receiving_since = Some(Instant::now() - Duration::from_secs(5)));
        let c = Conn::new(s.freed.clone());
        assert!(s.admit(&c));
        assert!(a.closing() && !b.closing() && !c.closing());
        // A call running on a connection protects it: b and c run calls, d must wait.
        assert!(b.begin_exec() && c.begin_exec());
        let d = Conn::new(s.freed.clone());
        assert!(!s.admit(&d));
        assert!(!b.closing() && !c.closing());
        // An evicted connection can start no call.
        assert!(!a.begin_exec());
        // A call ends: its connection is evictable again, d gets a slot.
        b.end_exec();
        assert!(s.admit(&d) && b.closing() && !c.closing());
    }

    #[test]
    fn request_deadline_stall_and_idle() {
        let c = Conn::new(Arc::new(Notify::new()));
        let (req, idle) = (Duration::from_millis(100), Duration::from_millis(300));
        assert_eq!(c.expire(req, idle), None);
        // Trickling: bytes keep arriving, yet the request deadline cuts it.
        c.on_read();
        for _ in 0..3 {
            std::thread::sleep(Duration::from_millis(40));
            c.on_read();
        }
        assert_eq!(c.expire(req, idle), Some("request deadline passed"));
        // Running a call is never cut; once done, the connection idles out.
        let c = Conn::new(Arc::new(Notify::new()));
        c.on_read();
        assert!(c.begin_exec());
        std::thread::sleep(Duration::from_millis(350));
        assert_eq!(c.expire(req, idle), None);
        c.end_exec();
        assert_eq!(c.expire(req, idle), None);
        c.with(|st| st.last = Instant::now() - idle);
        assert_eq!(c.expire(req, idle), Some("idle"));
        assert!(!c.begin_exec());
    }

    #[test]
    fn socket_path_length() {
        let ok = PathBuf::from(format!("/{}/k.sock", "d".repeat(95)));
        assert!(check_path_len(&PathBuf::from("/run/kubecert/kubecert.sock")).is_ok());
        let long = PathBuf::from(format!("/{}", "a".repeat(MAX_SOCKET_PATH)));
        let e = check_path_len(&long).map(|_| ()).unwrap_err().to_string();
        assert!(
            e.contains("is 108 bytes") && e.contains("at most 107 bytes"),
            "{e}"
        );
        // Fits, but its temporary name beside it would not.
        let e = check_path_len(&ok).map(|_| ()).unwrap_err().to_string();
        assert!(e.contains("temporary name"), "{e}");
    }

    #[test]
    fn declared_length_over_limit() {
        let mut h = hyper::HeaderMap::new();
        assert!(!declared_too_large(&h, 10));
        h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("11"));
        assert!(declared_too_large(&h, 10));
        assert!(!declared_too_large(&h, 11));
        assert!(is_json(Some(&HeaderValue::from_static(
            "Application/JSON; charset=UTF-8"
        ))));
        assert!(!is_json(Some(&HeaderValue::from_static("text/plain"))));
        assert!(!is_json(None));
    }

    #[test]
    fn lock_path_appends() {
        assert_eq!(
            lock_path(Path::new("/run/kubecert/kubecert.sock")),
            PathBuf::from("/run/kubecert/kubecert.sock.lock")
        );
    }

    #[test]
    fn bind_refuses_symlink_and_non_socket_and_replaces_stale() {
        let d = tempfile::tempdir().expect("tempdir");
        let target = d.path().join("t");
        std::fs::write(&target, b"x").expect("write");
        let link = d.path().join("l.sock");
        std::os::unix::fs::symlink(&target, &link).expect("symlink");
        assert!(bind(&link, None).is_err());
        assert!(bind(&target, None).is_err());
        // A stale socket (bound, then the listener dropped) is replaced.
        let stale = d.path().join("sub/s.sock");
        std::fs::create_dir_all(d.path().join("sub")).expect("mkdir");
        drop(std::os::unix::net::UnixListener::bind(&stale).expect("bind"));
        let (l, owned) = bind(&stale, None).expect("replace stale");
        let m = std::fs::metadata(&stale).expect("stat");
        assert_eq!(m.permissions().mode() & 0o777, 0o600);
        // A live one is not.
        assert!(bind(&stale, None).is_err());
        drop(l);
        owned.remove();
        assert!(!stale.exists());
        // Parent dir created 0755.
        let deep = d.path().join("new/dir/k.sock");
        let (_l, _o) = bind(&deep, None).expect("bind deep");
        let pm = std::fs::metadata(d.path().join("new/dir")).expect("stat");
        assert_eq!(pm.permissions().mode() & 0o777, 0o755);
    }
}
