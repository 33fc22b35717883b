//! The accept loop: policy, socket (bound or inherited from systemd), connection slots,
//! one task per connection, graceful shutdown at SIGTERM/SIGINT.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jsonrpsee::server::{HttpRequest, HttpResponse};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;

use super::super::{Enforce, ServeError};
use super::auth::{effective_uid, lookup_group, Policy};
use super::conn::{Conn, Slots, Tracked};
use super::http::{http_request, Shared};
use super::socket::{bind, check_path_len, ensure_parent, take_lock};
use super::SocketOptions;

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
            Error = std::convert::Infallible,
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

/// `kubecert serve --socket`: runs until SIGTERM/SIGINT. `inherited` is a listening socket
/// passed by systemd (socket activation), used instead of binding `opts.path`.
pub fn run(
    opts: SocketOptions,
    inherited: Option<std::os::unix::net::UnixListener>,
) -> Result<(), ServeError> {
    if inherited.is_none() {
        check_path_len(&opts.path)?;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|source| ServeError::Os {
            what: "cannot start the tokio runtime",
            source,
        })?;
    let shutdown_timeout = opts.shutdown_timeout;
    let r = rt.block_on(serve(opts, inherited));
    rt.shutdown_timeout(shutdown_timeout);
    r
}

async fn serve(
    opts: SocketOptions,
    inherited: Option<std::os::unix::net::UnixListener>,
) -> Result<(), ServeError> {
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
    let listener = std_listener
        .set_nonblocking(true)
        .and_then(|()| tokio::net::UnixListener::from_std(std_listener))
        .map_err(|source| ServeError::Os {
            what: "cannot listen on the socket",
            source,
        })?;
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
        methods: super::super::module(Enforce::PeerCredentials, opts.roots.clone()).into(),
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
    let signals = |source| ServeError::Os {
        what: "cannot handle signals",
        source,
    };
    let mut sigterm = signal(SignalKind::terminate()).map_err(signals)?;
    let mut sigint = signal(SignalKind::interrupt()).map_err(signals)?;

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
            // Every request gets an HTTP answer: the service never fails.
            async move { Ok::<_, std::convert::Infallible>(http_request(req, sh, c, caller).await) }
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
