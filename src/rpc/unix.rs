//! `kubecert serve --socket PATH`: JSON-RPC over HTTP/1.1 on a unix socket, served by
//! jsonrpsee's tower service on a tokio `UnixListener` (the Docker-socket convention):
//!
//! ```text
//! curl -s --unix-socket /run/kubecert/kubecert.sock http://localhost \
//!   -H 'content-type: application/json' -d '{"jsonrpc":"2.0","id":1,"method":"check","params":{}}'
//! ```
//!
//! Socket file: created 0600 (0660 and group-owned with `--group`) under a temporary name
//! and renamed into place, so it is never reachable with looser permissions; its parent dir
//! is created 0755 when absent; a symlink at the path is refused; an existing socket is
//! replaced only when nobody listens on it; `<socket>.lock` (flock) is held while serving.
//! With systemd socket activation the inherited socket is used as is (systemd owns the
//! file and its mode).
//!
//! Authorization: the kernel checks the socket file's mode first; then SO_PEERCRED gives the
//! caller's uid/gid/pid, turned into a [`Caller`] put in every request's extensions. Read
//! methods: root, the server's own uid, `--allow-uid`, `--allow-write-uid` and members of
//! `--group`. Mutating methods: root, the server's own uid and `--allow-write-uid`. A refused
//! call gets -32004 and is logged with uid/pid.
//!
//! Robustness: one task per connection (a slow client only holds its own task); the library
//! calls run on the blocking pool; request bodies over the limit get -32008; connections
//! with no request in flight for `idle_timeout` (a request whose body stopped arriving
//! counts as none) are closed (and jsonrpsee closes connections
//! that send no request within 30 s); at most `max_connections` connections are accepted at
//! once (more wait in the listen backlog). SIGTERM/SIGINT: stop accepting, remove the
//! socket, let in-flight calls finish (up to `shutdown_timeout`), exit 0.

use std::fs::{File, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use jsonrpsee::server::middleware::rpc::{
    Batch, BatchEntry, MethodResponse, Notification, Request, RpcServiceBuilder, RpcServiceT,
};
use jsonrpsee::server::{HttpBody, HttpRequest, HttpResponse, Server, ServerConfig};
use jsonrpsee::types::Id;
use std::future::Future;
use tokio::net::UnixStream;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tower::Service;

use super::{errors, Caller, Enforce};

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

/// Creates the socket: refuses a symlink, replaces a stale socket only if nobody listens,
/// binds under a temporary name, sets mode/group, renames into place.
fn bind(
    path: &Path,
    group: Option<&Group>,
) -> anyhow::Result<(std::os::unix::net::UnixListener, Owned)> {
    let parent = ensure_parent(path)?;
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
    let tmp = parent.join(format!(".kubecert-{}.sock", std::process::id()));
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

/// Counts requests in flight on one connection and remembers when something last happened
/// (a request started or ended, a piece of a request body arrived).
struct Activity {
    in_flight: AtomicUsize,
    /// Request bodies still being received.
    reading: AtomicUsize,
    last: Mutex<Instant>,
}

/// A request body that reports its progress to the connection's [`Activity`], so that a
/// client that stops sending in the middle of a body is treated as idle (and disconnected)
/// rather than as a call in flight.
struct TrackedBody {
    inner: Pin<Box<hyper::body::Incoming>>,
    activity: Arc<Activity>,
    done: bool,
}

impl TrackedBody {
    fn new(inner: hyper::body::Incoming, activity: Arc<Activity>) -> Self {
        activity.reading.fetch_add(1, Ordering::SeqCst);
        TrackedBody {
            inner: Box::pin(inner),
            activity,
            done: false,
        }
    }

    fn finish(&mut self) {
        if !self.done {
            self.done = true;
            self.activity.reading.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

impl Drop for TrackedBody {
    fn drop(&mut self) {
        self.finish();
    }
}

impl hyper::body::Body for TrackedBody {
    type Data = hyper::body::Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        let r = self.inner.as_mut().poll_frame(cx);
        match &r {
            std::task::Poll::Ready(None) | std::task::Poll::Ready(Some(Err(_))) => self.finish(),
            std::task::Poll::Ready(Some(Ok(_))) => {
                self.activity.touch();
                if self.inner.is_end_stream() {
                    self.finish();
                }
            }
            std::task::Poll::Pending => {}
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

impl Activity {
    fn touch(&self) {
        if let Ok(mut l) = self.last.lock() {
            *l = Instant::now();
        }
    }
    fn idle_for(&self) -> Duration {
        self.last.lock().map(|l| l.elapsed()).unwrap_or_default()
    }
    /// A call is running (not just waiting for the rest of its request body).
    fn busy(&self) -> bool {
        self.in_flight.load(Ordering::SeqCst) > self.reading.load(Ordering::SeqCst)
    }
}

struct InFlight(Arc<Activity>);

impl InFlight {
    fn enter(a: &Arc<Activity>) -> Self {
        a.in_flight.fetch_add(1, Ordering::SeqCst);
        a.touch();
        InFlight(a.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// jsonrpsee's HTTP transport accepts notifications (requests without `id`) but does not run
/// them. JSON-RPC 2.0 says the server executes them and sends nothing back: this RPC
/// middleware runs them as calls (with the caller's extensions) and drops the response.
#[derive(Clone)]
struct RunNotifications<S>(S);

fn notification_as_call(n: Notification<'_>) -> Request<'static> {
    let ext = n.extensions().clone();
    let params = n.params.map(|p| p.into_owned());
    let mut r = Request::owned(n.method.into_owned(), params, Id::Null);
    *r.extensions_mut() = ext;
    r
}

/// Marks a response that must have no body (only notifications were sent): jsonrpsee would
/// answer `null`; the HTTP layer turns it into `204 No Content`.
#[derive(Debug, Clone, Copy)]
struct NoContent;

fn no_content() -> MethodResponse {
    let mut ext = jsonrpsee::Extensions::new();
    ext.insert(NoContent);
    MethodResponse::notification().with_extensions(ext)
}

impl<S> RpcServiceT for RunNotifications<S>
where
    S: RpcServiceT<
            MethodResponse = MethodResponse,
            BatchResponse = MethodResponse,
            NotificationResponse = MethodResponse,
        > + Clone
        + Send
        + Sync
        + 'static,
{
    type MethodResponse = MethodResponse;
    type BatchResponse = MethodResponse;
    type NotificationResponse = MethodResponse;

    fn call<'a>(&self, req: Request<'a>) -> impl Future<Output = MethodResponse> + Send + 'a {
        self.0.call(req)
    }

    fn batch<'a>(&self, batch: Batch<'a>) -> impl Future<Output = MethodResponse> + Send + 'a {
        let s = self.0.clone();
        async move {
            let mut rest = Vec::new();
            let mut notes = Vec::new();
            for e in batch {
                match e {
                    Ok(BatchEntry::Notification(n)) => notes.push(n),
                    other => rest.push(other),
                }
            }
            let only_notes = rest.is_empty() && !notes.is_empty();
            for n in notes {
                let _ = s.call(notification_as_call(n)).await;
            }
            if only_notes {
                return no_content();
            }
            s.batch(Batch::from(rest)).await
        }
    }

    fn notification<'a>(
        &self,
        n: Notification<'a>,
    ) -> impl Future<Output = MethodResponse> + Send + 'a {
        let s = self.0.clone();
        async move {
            let _ = s.call(notification_as_call(n)).await;
            no_content()
        }
    }
}

/// Post-processes jsonrpsee's HTTP responses: notifications only → 204 without a body;
/// an oversized body is answered by jsonrpsee with its own code (-32007, which kubecert
/// uses for "CA expired"): rewritten to kubecert's -32008.
fn fix_response(resp: HttpResponse, limit: usize) -> HttpResponse {
    if resp.extensions().get::<NoContent>().is_some() {
        let mut r = HttpResponse::new(HttpBody::empty());
        *r.status_mut() = hyper::StatusCode::NO_CONTENT;
        return r;
    }
    if resp.status() != hyper::StatusCode::PAYLOAD_TOO_LARGE {
        return resp;
    }
    let body = errors::too_large_response(limit).to_string();
    let mut r = HttpResponse::new(HttpBody::from(body));
    *r.status_mut() = hyper::StatusCode::PAYLOAD_TOO_LARGE;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json; charset=utf-8"),
    );
    r
}

/// Serves one connection until it ends, goes idle, or the server shuts down.
async fn connection<S>(
    sock: UnixStream,
    svc: S,
    activity: Arc<Activity>,
    mut shutdown: watch::Receiver<bool>,
    idle_timeout: Duration,
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
    let conn = jsonrpsee::server::serve_with_graceful_shutdown(sock, svc, stopped);
    tokio::pin!(conn);
    let mut tick = tokio::time::interval(
        Duration::from_millis(250)
            .min(idle_timeout)
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
            r = &mut conn => {
                if let Err(e) = r {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            changed = shutdown.changed(), if !shutdown_seen => {
                shutdown_seen = changed.is_err() || *shutdown.borrow();
            }
            _ = tick.tick() => {
                let busy = activity.busy();
                if stopping.is_none() && !busy && activity.idle_for() >= idle_timeout {
                    tracing::debug!("closing idle connection");
                    let _ = stop_tx.send(true);
                    stopping = Some(Instant::now());
                }
                // A connection that does not close promptly once told (e.g. a half-sent
                // request) is dropped, unless a call is still running on it.
                if let Some(t) = stopping {
                    if !busy && t.elapsed() >= Duration::from_secs(2) {
                        return;
                    }
                }
            }
        }
    }
}

/// `kubecert serve --socket`: runs until SIGTERM/SIGINT. `inherited` is a listening socket
/// passed by systemd (socket activation), used instead of binding `opts.path`.
pub fn run(
    opts: SocketOptions,
    inherited: Option<std::os::unix::net::UnixListener>,
) -> anyhow::Result<()> {
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
        "kubecert agent listening"
    );

    let limit = opts.max_request_bytes;
    let cfg = ServerConfig::builder()
        .max_request_body_size(u32::try_from(limit).unwrap_or(u32::MAX))
        .max_response_body_size(u32::MAX)
        .max_connections(opts.max_connections.max(1))
        .http_only()
        .build();
    let svc_builder = Server::builder()
        .set_config(cfg)
        .set_rpc_middleware(RpcServiceBuilder::new().layer_fn(RunNotifications))
        .to_service_builder();
    let methods: jsonrpsee::Methods =
        super::module(Enforce::PeerCredentials, opts.roots.clone()).into();
    let (stop_handle, server_handle) = jsonrpsee::server::stop_channel();
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let permits = Arc::new(Semaphore::new(opts.max_connections.max(1) as usize));
    let mut tasks: JoinSet<()> = JoinSet::new();
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;

    loop {
        while tasks.try_join_next().is_some() {}
        let permit = tokio::select! {
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (sock, _) = tokio::select! {
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
            r = listener.accept() => match r {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
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
        tracing::debug!(
            uid = caller.uid,
            gid = caller.gid,
            pid = caller.pid,
            read = caller.may_read,
            write = caller.may_write,
            "connection accepted"
        );
        let activity = Arc::new(Activity {
            in_flight: AtomicUsize::new(0),
            reading: AtomicUsize::new(0),
            last: Mutex::new(Instant::now()),
        });
        let (b, m, stop, act) = (
            svc_builder.clone(),
            methods.clone(),
            stop_handle.clone(),
            activity.clone(),
        );
        let svc = tower::service_fn(move |req: HttpRequest<hyper::body::Incoming>| {
            let guard = InFlight::enter(&act);
            let mut req = req.map(|body| TrackedBody::new(body, act.clone()));
            req.extensions_mut().insert(caller);
            let mut svc = b.clone().build(m.clone(), stop.clone());
            async move {
                let resp = svc.call(req).await;
                drop(guard);
                // anyhow::Error (not BoxError) sidesteps a higher-ranked lifetime inference
                // problem in serve_with_graceful_shutdown's bounds (as jsonrpsee's examples do).
                resp.map(|r| fix_response(r, limit))
                    .map_err(|e| anyhow::anyhow!("{e}"))
            }
        });
        let shutdown = shutdown_rx.clone();
        let idle = opts.idle_timeout;
        tasks.spawn(async move {
            connection(sock, svc, activity, shutdown, idle).await;
            drop(permit);
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
    let _ = server_handle.stop();
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
