//! One connection's state (for the request deadline, the idle timeout and the slot
//! policy), the connection slots, and the byte-counting socket wrapper.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::UnixStream;
use tokio::sync::Notify;

/// What one connection is doing, for the timeouts and the slot policy.
#[derive(Debug)]
pub(super) struct State {
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
pub(super) struct Conn {
    state: Mutex<State>,
    /// Wakes the connection's task when it is evicted.
    pub(super) close: Notify,
    /// Wakes the accept loop when a slot may have become free.
    pub(super) freed: Arc<Notify>,
}

impl Conn {
    pub(super) fn new(freed: Arc<Notify>) -> Arc<Self> {
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
    pub(super) fn request_started(&self) {
        self.with(|s| {
            if s.executing == 0 && s.receiving_since.is_none() {
                s.receiving_since = Some(Instant::now());
            }
        });
    }

    /// The request is complete: its calls may run, unless the connection is closing.
    pub(super) fn begin_exec(&self) -> bool {
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

    pub(super) fn busy(&self) -> bool {
        self.with(|s| s.executing > 0)
    }

    /// Marks the connection closing when it is not running a call and a timeout passed;
    /// returns which.
    pub(super) fn expire(
        &self,
        request_timeout: Duration,
        idle_timeout: Duration,
    ) -> Option<&'static str> {
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
pub(super) struct Slots {
    pub(super) max: usize,
    pub(super) conns: Mutex<Vec<Arc<Conn>>>,
    pub(super) freed: Arc<Notify>,
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
    pub(super) fn admit(&self, conn: &Arc<Conn>) -> bool {
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
    pub(super) fn evict_one(&self) -> bool {
        Self::evict_oldest(&self.lock())
    }

    pub(super) fn remove(&self, conn: &Arc<Conn>) {
        self.lock().retain(|c| !Arc::ptr_eq(c, conn));
        self.freed.notify_one();
    }
}

/// The socket, reporting every byte read or written to its [`Conn`].
pub(super) struct Tracked {
    pub(super) inner: UnixStream,
    pub(super) conn: Arc<Conn>,
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
pub(super) struct Exec(pub(super) Arc<Conn>);

impl Drop for Exec {
    fn drop(&mut self) {
        self.0.end_exec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
