//! `kubecert serve --stdio`: newline-delimited JSON-RPC on stdin/stdout.
//!
//! One compact JSON message per line: a request, a notification or a batch (array).
//! Responses go to stdout, one per line, in the order of the input lines; notifications are
//! executed and answered with nothing; a batch is answered with an array of the responses
//! to its requests (nothing when it held only notifications). Empty lines are skipped.
//! A line over the size limit → -31008 (id null), its bytes discarded unbuffered, and the
//! stream goes on at the next line. Everything else (validation of ids and request objects,
//! batch and response bounds, dispatch) is [`wire`], shared with the socket. Lines are
//! processed one after the other. EOF ends the loop. Logs go to stderr only.

use jsonrpsee::{Extensions, RpcModule};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWrite, AsyncWriteExt};

use super::{errors, wire};

/// Options of the stdio transport.
#[derive(Debug, Clone)]
pub struct StdioOptions {
    /// Maximum line length in bytes (without the newline).
    pub max_request_bytes: usize,
    /// Batch length and response bounds.
    pub limits: wire::Limits,
}

impl Default for StdioOptions {
    fn default() -> Self {
        StdioOptions {
            max_request_bytes: super::DEFAULT_MAX_REQUEST_BYTES,
            limits: wire::Limits::default(),
        }
    }
}

/// One input line.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// A complete line (without `\n` / `\r\n`).
    Data(Vec<u8>),
    /// A line longer than the limit; its bytes were discarded.
    TooLong,
}

/// Reads one line of at most `max` bytes into memory; longer lines are skipped to their end
/// without being buffered. `None` at EOF.
pub async fn read_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    max: usize,
) -> std::io::Result<Option<Line>> {
    let mut buf = Vec::new();
    let mut too_long = false;
    let mut seen_any = false;
    loop {
        let avail = reader.fill_buf().await?;
        if avail.is_empty() {
            // EOF: a last line without a newline still counts.
            return Ok(match (seen_any, too_long) {
                (false, _) => None,
                (true, true) => Some(Line::TooLong),
                (true, false) => Some(Line::Data(strip_cr(buf))),
            });
        }
        seen_any = true;
        let (chunk, consumed, done) = match avail.iter().position(|b| *b == b'\n') {
            Some(i) => (&avail[..i], i + 1, true),
            None => (avail, avail.len(), false),
        };
        if !too_long {
            // Allow one byte more for a trailing '\r'.
            if buf.len() + chunk.len() > max.saturating_add(1) {
                too_long = true;
                buf = Vec::new();
            } else {
                buf.extend_from_slice(chunk);
            }
        }
        reader.consume(consumed);
        if done {
            if !too_long {
                buf = strip_cr(buf);
                if buf.len() > max {
                    too_long = true;
                }
            }
            return Ok(Some(if too_long {
                Line::TooLong
            } else {
                Line::Data(buf)
            }));
        }
    }
}

fn strip_cr(mut b: Vec<u8>) -> Vec<u8> {
    if b.last() == Some(&b'\r') {
        b.pop();
    }
    b
}

/// Handles one line (a message or a batch); `None` when nothing is to be answered.
pub async fn handle_message(
    module: &RpcModule<()>,
    line: &[u8],
    limits: &wire::Limits,
) -> Option<String> {
    let msg = wire::parse(line, limits);
    wire::handle(module, msg, &Extensions::new(), limits).await
}

/// Serves `module` on `reader`/`writer` until EOF.
pub async fn serve<R, W>(
    module: &RpcModule<()>,
    mut reader: R,
    mut writer: W,
    opts: &StdioOptions,
) -> std::io::Result<()>
where
    R: AsyncBufRead + Unpin,
    W: AsyncWrite + Unpin,
{
    while let Some(line) = read_line(&mut reader, opts.max_request_bytes).await? {
        let out = match line {
            Line::TooLong => {
                tracing::warn!(limit = opts.max_request_bytes, "request line too large");
                Some(errors::too_large_response(opts.max_request_bytes).to_string())
            }
            Line::Data(bytes) => handle_message(module, &bytes, &opts.limits).await,
        };
        if let Some(mut s) = out {
            s.push('\n');
            writer.write_all(s.as_bytes()).await?;
            writer.flush().await?;
        }
    }
    writer.flush().await
}

/// stdin or stdout read and written in place, blocking the runtime's one thread. The loop
/// handles one line at a time, so that thread has nothing else to do while it waits for the
/// next line or for the reader to take the answer; tokio's own `stdin()`/`stdout()` hand
/// every read and write to a blocking-pool thread and back (futex wake-ups and context
/// switches on every call: more CPU than a cached check itself).
struct Blocking<T>(T);

impl<T: std::io::Read + Unpin> tokio::io::AsyncRead for Blocking<T> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let r = loop {
            match self.0.read(buf.initialize_unfilled()) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                r => break r,
            }
        };
        std::task::Poll::Ready(r.map(|n| buf.advance(n)))
    }
}

impl<T: std::io::Write + Unpin> tokio::io::AsyncWrite for Blocking<T> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::task::Poll::Ready(self.0.write(buf))
    }
    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(self.0.flush())
    }
    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        self.poll_flush(cx)
    }
}

/// `kubecert serve --stdio`: runs until EOF on stdin; exit status 0 at EOF or when stdout
/// is closed.
pub fn run(opts: StdioOptions, roots: super::Roots) -> Result<(), super::ServeError> {
    // Lines are handled one after the other: one thread does it all, and only a call that
    // may block (a cache miss, a write) goes to the blocking pool. A multi-thread runtime
    // only added worker threads (their stacks and malloc arenas) and cross-thread wake-ups.
    let rt = tokio::runtime::Builder::new_current_thread()
        // One call at a time blocks (plus what it may itself hand to the pool: a DNS
        // lookup of the API server's name). Without a bound, back-to-back calls grew the
        // pool to a dozen idle threads (a finished thread is not yet idle when the next
        // call comes), each with its stack and malloc arena.
        .max_blocking_threads(4)
        .enable_all()
        .build()
        .map_err(|source| super::ServeError::Os {
            what: "cannot start the tokio runtime",
            source,
        })?;
    let module = super::module(super::Enforce::None, roots);
    let res = rt.block_on(async {
        let stdin = tokio::io::BufReader::with_capacity(64 * 1024, Blocking(std::io::stdin()));
        serve(&module, stdin, Blocking(std::io::stdout()), &opts).await
    });
    rt.shutdown_timeout(std::time::Duration::from_secs(5));
    match res {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(source) => Err(super::ServeError::Os {
            what: "stdio",
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn run_lines(input: &str, max: usize) -> Vec<Value> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let module = crate::rpc::module(crate::rpc::Enforce::None, crate::rpc::Roots::default());
        let mut out: Vec<u8> = Vec::new();
        rt.block_on(serve(
            &module,
            input.as_bytes(),
            &mut out,
            &StdioOptions {
                max_request_bytes: max,
                limits: wire::Limits::default(),
            },
        ))
        .expect("serve");
        let text = String::from_utf8(out).expect("utf8");
        text.lines()
            .map(|l| serde_json::from_str(l).expect("each output line is JSON"))
            .collect()
    }

    #[test]
    fn single_request_and_unknown_method() {
        let out = run_lines(
            "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"version\"}\n{\"jsonrpc\":\"2.0\",\"id\":\"a\",\"method\":\"nope\",\"params\":{}}\n",
            1024,
        );
        assert_eq!(out.len(), 2);
        assert_eq!(out[0]["id"], 1);
        assert_eq!(out[0]["result"]["version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(out[1]["id"], "a");
        assert_eq!(out[1]["error"]["code"], -32601);
    }

    #[test]
    fn notification_gets_no_response() {
        let out = run_lines(
            "{\"jsonrpc\":\"2.0\",\"method\":\"version\"}\n{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"version\"}\n",
            1024,
        );
        assert_eq!(out.len(), 1);
        assert_eq!(out[0]["id"], 2);
    }

    #[test]
    fn batches() {
        let out = run_lines(
            concat!(
                "[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"version\"},",
                "{\"jsonrpc\":\"2.0\",\"method\":\"version\"},",
                "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"nope\"}, 42]\n",
                "[]\n",
                "[{\"jsonrpc\":\"2.0\",\"method\":\"version\"}]\n",
                "{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"version\"}\n",
            ),
            4096,
        );
        assert_eq!(out.len(), 3, "{out:?}");
        let batch = out[0].as_array().cloned().unwrap_or_default();
        assert_eq!(batch.len(), 3);
        assert_eq!(batch[0]["id"], 1);
        assert_eq!(batch[1]["error"]["code"], -32601);
        assert_eq!(batch[2]["error"]["code"], -32600);
        assert!(batch[2]["id"].is_null());
        assert_eq!(out[1]["error"]["code"], -32600);
        assert_eq!(out[2]["id"], 9);
    }

    #[test]
    fn garbage_non_objects_and_invalid_requests() {
        let out = run_lines(
            concat!(
                "{not json\n",
                "\n",
                "42\n",
                "\"x\"\n",
                "{\"jsonrpc\":\"1.0\",\"id\":5,\"method\":\"version\"}\n",
                "{\"jsonrpc\":\"2.0\",\"id\":{},\"method\":\"version\"}\n",
                "{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":7}\n",
                "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"version\",\"params\":3}\n",
                "{\"jsonrpc\":\"2.0\",\"id\":-3,\"method\":\"version\"}\n",
                "{\"jsonrpc\":\"2.0\",\"id\":8,\"method\":\"version\"}",
            ),
            4096,
        );
        let codes: Vec<Value> = out.iter().map(|v| v["error"]["code"].clone()).collect();
        assert_eq!(out.len(), 9, "{out:?}");
        assert_eq!(codes[0], -32700);
        assert!(out[0]["id"].is_null());
        assert_eq!(codes[1], -32600);
        assert_eq!(codes[2], -32600);
        assert_eq!(
            (codes[3].clone(), out[3]["id"].clone()),
            (Value::from(-32600), Value::from(5))
        );
        assert_eq!(out[4]["id"], serde_json::json!({}));
        assert_eq!(codes[5], -32600);
        assert_eq!(codes[6], -32600);
        assert_eq!(out[7]["id"], -3);
        assert!(out[7]["result"].is_object());
        // An id that is neither a string, an integer nor null: -32600, echoed, not run.
        assert_eq!(out[4]["error"]["code"], -32600);
        // The last line had no newline: still answered.
        assert_eq!(out[8]["id"], 8);
    }

    #[test]
    fn params_by_name_only() {
        let out = run_lines(
            concat!(
                "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"check\",\"params\":{\"bogus\":1}}\n",
                "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"check\",\"params\":[\"/x\"]}\n",
                "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"version\",\"params\":[]}\n",
                "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"restore\",\"params\":{}}\n",
                "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"check\",\"params\":{\"warn_within\":\"soon\",\"cert_dir\":\"/nonexistent\"}}\n",
            ),
            4096,
        );
        assert_eq!(out[0]["error"]["code"], -32602);
        assert!(out[0]["error"]["data"]["cause"]
            .as_str()
            .unwrap_or("")
            .contains("bogus"));
        assert_eq!(out[1]["error"]["code"], -32602);
        assert!(out[2]["result"].is_object());
        assert_eq!(out[3]["error"]["code"], -32602);
        assert_eq!(out[4]["error"]["code"], -32602);
    }

    #[test]
    fn over_long_line_then_continue() {
        let long = format!(
            "{{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"version\",\"params\":{{\"x\":\"{}\"}}}}\n",
            "a".repeat(500)
        );
        let input =
            format!("{long}{{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"version\"}}\r\n{long}");
        let out = run_lines(&input, 100);
        assert_eq!(out.len(), 3, "{out:?}");
        assert_eq!(out[0]["error"]["code"], -31008);
        assert!(out[0]["id"].is_null());
        assert_eq!(out[1]["id"], 2);
        assert_eq!(out[2]["error"]["code"], -31008);
    }

    #[test]
    fn read_line_limits() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let mut r: &[u8] = b"abc\r\nabcdef\nxyz";
            assert_eq!(
                read_line(&mut r, 4).await.ok().flatten(),
                Some(Line::Data(b"abc".to_vec()))
            );
            assert_eq!(
                read_line(&mut r, 4).await.ok().flatten(),
                Some(Line::TooLong)
            );
            assert_eq!(
                read_line(&mut r, 4).await.ok().flatten(),
                Some(Line::Data(b"xyz".to_vec()))
            );
            assert_eq!(read_line(&mut r, 4).await.ok().flatten(), None);
            let mut r: &[u8] = b"abcd\nabcde\n";
            assert_eq!(
                read_line(&mut r, 4).await.ok().flatten(),
                Some(Line::Data(b"abcd".to_vec()))
            );
            assert_eq!(
                read_line(&mut r, 4).await.ok().flatten(),
                Some(Line::TooLong)
            );
        });
    }
}
