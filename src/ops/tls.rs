//! The one TLS client of the operations modules (blocking, std sockets, rustls with
//! aws-lc-rs): [`served_leaf`] takes the leaf certificate a server presents, without
//! judging it and without ever sending a client certificate; [`HttpsClient`] makes one
//! bounded HTTP/1.1 request (health endpoints, etcd's v3 gateway), verifying the server
//! against a CA when given one and authenticating with a client certificate only when told
//! to.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme};

use crate::error::{Error, PemError};

/// Why a probe got no answer. Not a library error: callers turn it into a verdict
/// (`unreachable`, `unhealthy`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProbeError {
    /// The address does not resolve or is malformed.
    #[error("cannot resolve {addr}: {reason}")]
    Resolve {
        /// host:port.
        addr: String,
        /// Why.
        reason: String,
    },
    /// TCP connect failed (refused, unreachable, timed out).
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// host:port.
        addr: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The TLS handshake failed before the server showed its certificate, or (HTTPS) at all.
    #[error("TLS handshake with {addr} failed: {reason}")]
    Handshake {
        /// host:port.
        addr: String,
        /// Why.
        reason: String,
    },
    /// The exchange did not finish within its bound.
    #[error("{addr}: no answer within {ms} ms")]
    Timeout {
        /// host:port.
        addr: String,
        /// The bound.
        ms: u128,
    },
    /// Not an HTTP response.
    #[error("{addr}: bad HTTP response: {reason}")]
    Http {
        /// host:port.
        addr: String,
        /// Why.
        reason: String,
    },
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Accepts any chain after recording the leaf (the served proof compares it with the file;
/// trust is not its question). Handshake signatures are still verified, so the server has
/// proven it holds the key of the certificate it showed.
#[derive(Debug)]
struct Recorder {
    inner: Option<Arc<WebPkiServerVerifier>>,
    provider: Arc<CryptoProvider>,
    leaf: Mutex<Option<Vec<u8>>>,
}

impl ServerCertVerifier for Recorder {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        *self.leaf.lock().unwrap_or_else(|e| e.into_inner()) = Some(end_entity.to_vec());
        match &self.inner {
            Some(v) => v.verify_server_cert(end_entity, intermediates, server_name, ocsp, now),
            None => Ok(ServerCertVerified::assertion()),
        }
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Splits `host:port` (`[v6]:port` too) and resolves it.
fn resolve(addr: &str) -> Result<(String, Vec<SocketAddr>), ProbeError> {
    let bad = |reason: &str| ProbeError::Resolve {
        addr: addr.to_string(),
        reason: reason.to_string(),
    };
    let (host, port) = addr
        .rsplit_once(':')
        .ok_or_else(|| bad("expected host:port"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port: u16 = port.parse().map_err(|_| bad("bad port"))?;
    if host.is_empty() {
        return Err(bad("empty host"));
    }
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| bad(&e.to_string()))?
        .collect();
    if addrs.is_empty() {
        return Err(bad("no address"));
    }
    Ok((host.to_string(), addrs))
}

fn remaining(addr: &str, deadline: Instant, timeout: Duration) -> Result<Duration, ProbeError> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(ProbeError::Timeout {
            addr: addr.to_string(),
            ms: timeout.as_millis(),
        });
    }
    Ok(left)
}

fn connect(
    addr: &str,
    timeout: Duration,
    deadline: Instant,
) -> Result<(String, TcpStream), ProbeError> {
    let (host, addrs) = resolve(addr)?;
    let mut last = None;
    for a in addrs {
        let left = remaining(addr, deadline, timeout)?;
        match TcpStream::connect_timeout(&a, left) {
            Ok(s) => return Ok((host, s)),
            Err(e) => last = Some(e),
        }
    }
    Err(ProbeError::Connect {
        addr: addr.to_string(),
        source: last.unwrap_or_else(|| std::io::Error::other("no address")),
    })
}

fn server_name(host: &str, addr: &str) -> Result<ServerName<'static>, ProbeError> {
    ServerName::try_from(host.to_string()).map_err(|e| ProbeError::Resolve {
        addr: addr.to_string(),
        reason: e.to_string(),
    })
}

fn io_error(addr: &str, e: std::io::Error, timeout: Duration) -> ProbeError {
    match e.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => ProbeError::Timeout {
            addr: addr.to_string(),
            ms: timeout.as_millis(),
        },
        _ => ProbeError::Handshake {
            addr: addr.to_string(),
            reason: e.to_string(),
        },
    }
}

/// Drives the handshake of `conn` on `sock` until done, failed or past `deadline`.
fn handshake(
    conn: &mut ClientConnection,
    sock: &mut TcpStream,
    addr: &str,
    timeout: Duration,
    deadline: Instant,
) -> Result<(), ProbeError> {
    while conn.is_handshaking() {
        let left = remaining(addr, deadline, timeout)?;
        // Socket timeouts are the per-call bound of complete_io's reads and writes.
        let _ = sock.set_read_timeout(Some(left));
        let _ = sock.set_write_timeout(Some(left));
        if let Err(e) = conn.complete_io(sock) {
            return Err(io_error(addr, e, timeout));
        }
    }
    Ok(())
}

/// The DER of the leaf certificate the TLS server at `addr` (`host:port`) presents, within
/// `timeout` (connect + handshake). Sends no client certificate: a server that requires one
/// has shown its own certificate before it can ask, so the leaf is taken even when the
/// handshake then fails.
pub fn served_leaf(addr: &str, timeout: Duration) -> Result<Vec<u8>, ProbeError> {
    let deadline = Instant::now() + timeout;
    let (host, mut sock) = connect(addr, timeout, deadline)?;
    let provider = provider();
    let recorder = Arc::new(Recorder {
        inner: None,
        provider: provider.clone(),
        leaf: Mutex::new(None),
    });
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ProbeError::Handshake {
            addr: addr.to_string(),
            reason: e.to_string(),
        })?
        .dangerous()
        .with_custom_certificate_verifier(recorder.clone())
        .with_no_client_auth();
    let mut conn =
        ClientConnection::new(Arc::new(config), server_name(&host, addr)?).map_err(|e| {
            ProbeError::Handshake {
                addr: addr.to_string(),
                reason: e.to_string(),
            }
        })?;
    let outcome = handshake(&mut conn, &mut sock, addr, timeout, deadline);
    let leaf = recorder
        .leaf
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take();
    match (leaf, outcome) {
        (Some(der), _) => {
            conn.send_close_notify();
            let _ = conn.complete_io(&mut sock);
            Ok(der)
        }
        (None, Err(e)) => Err(e),
        (None, Ok(())) => Err(ProbeError::Handshake {
            addr: addr.to_string(),
            reason: "the server presented no certificate".into(),
        }),
    }
}

/// An HTTPS client for one kind of endpoint: how the server is verified and whether a
/// client certificate is sent.
#[derive(Clone)]
pub struct HttpsClient {
    config: Arc<ClientConfig>,
    /// Name to verify (and send as SNI) instead of the URL's host.
    server_name: Option<String>,
}

impl std::fmt::Debug for HttpsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpsClient")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

fn pem_err(path: &Path, reason: String) -> Error {
    Error::Pem {
        path: path.to_path_buf(),
        source: PemError::Malformed(reason),
    }
}

impl HttpsClient {
    /// `ca`: verify the server's chain and name against these roots (None: accept any
    /// server, as kubelet probes do). `client`: certificate and key files to authenticate
    /// with (None: none is sent). `server_name`: the name to verify instead of the host.
    pub fn new(
        ca: Option<&Path>,
        client: Option<(&Path, &Path)>,
        server_name: Option<&str>,
    ) -> crate::Result<Self> {
        let provider = provider();
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::InvalidArgument(format!("TLS configuration: {e}")))?;
        let verifier: Arc<dyn ServerCertVerifier> = match ca {
            Some(ca) => {
                let bytes = crate::pki::cert::read_file(ca)?;
                let mut roots = rustls::RootCertStore::empty();
                for c in CertificateDer::pem_slice_iter(&bytes) {
                    let c = c.map_err(|e| pem_err(ca, e.to_string()))?;
                    roots.add(c).map_err(|e| pem_err(ca, e.to_string()))?;
                }
                if roots.is_empty() {
                    return Err(Error::Pem {
                        path: ca.to_path_buf(),
                        source: PemError::NoCertificate,
                    });
                }
                WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                    .build()
                    .map_err(|e| pem_err(ca, e.to_string()))?
            }
            None => Arc::new(Recorder {
                inner: None,
                provider,
                leaf: Mutex::new(None),
            }),
        };
        let builder = builder
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let config = match client {
            None => builder.with_no_client_auth(),
            Some((crt, key)) => {
                let cbytes = crate::pki::cert::read_file(crt)?;
                let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cbytes)
                    .collect::<Result<_, _>>()
                    .map_err(|e| pem_err(crt, e.to_string()))?;
                if chain.is_empty() {
                    return Err(Error::Pem {
                        path: crt.to_path_buf(),
                        source: PemError::NoCertificate,
                    });
                }
                let kbytes = crate::pki::cert::read_file(key)?;
                // The key's contents never appear in an error: only "no usable key".
                let k = PrivateKeyDer::from_pem_slice(&kbytes).map_err(|_| Error::Pem {
                    path: key.to_path_buf(),
                    source: PemError::NoPrivateKey,
                })?;
                builder
                    .with_client_auth_cert(chain, k)
                    .map_err(|e| pem_err(key, e.to_string()))?
            }
        };
        Ok(HttpsClient {
            config: Arc::new(config),
            server_name: server_name.map(str::to_string),
        })
    }

    /// One request: `method` `path` on `addr` (`host:port`), with an optional JSON body,
    /// finished within `timeout` (connect, handshake, request, whole response). Returns the
    /// status code and body.
    pub fn request(
        &self,
        addr: &str,
        method: &str,
        path: &str,
        body: Option<&str>,
        timeout: Duration,
    ) -> Result<(u16, String), ProbeError> {
        let deadline = Instant::now() + timeout;
        let (host, mut sock) = connect(addr, timeout, deadline)?;
        let name = server_name(self.server_name.as_deref().unwrap_or(&host), addr)?;
        let mut conn = ClientConnection::new(self.config.clone(), name).map_err(|e| {
            ProbeError::Handshake {
                addr: addr.to_string(),
                reason: e.to_string(),
            }
        })?;
        handshake(&mut conn, &mut sock, addr, timeout, deadline)?;
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: kubecert\r\nAccept: */*\r\nConnection: close\r\n"
        );
        if let Some(b) = body {
            req.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                b.len()
            ));
        }
        req.push_str("\r\n");
        req.push_str(body.unwrap_or(""));
        let mut tls = rustls::Stream::new(&mut conn, &mut sock);
        let left = remaining(addr, deadline, timeout)?;
        let _ = tls.sock.set_write_timeout(Some(left));
        tls.write_all(req.as_bytes())
            .map_err(|e| io_error(addr, e, timeout))?;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 8192];
        loop {
            let left = remaining(addr, deadline, timeout)?;
            let _ = tls.sock.set_read_timeout(Some(left));
            match tls.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => {
                    buf.extend_from_slice(&chunk[..n]);
                    if buf.len() > 4 << 20 {
                        break;
                    }
                    if response_complete(&buf) {
                        break;
                    }
                }
                // A peer that closes without close_notify: keep what arrived.
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
                Err(e) if !buf.is_empty() && e.kind() == std::io::ErrorKind::ConnectionReset => {
                    break
                }
                Err(e) => return Err(io_error(addr, e, timeout)),
            }
        }
        parse_response(&buf).map_err(|reason| ProbeError::Http {
            addr: addr.to_string(),
            reason,
        })
    }
}

fn split_head(buf: &[u8]) -> Option<(&str, &[u8])> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&buf[..end]).ok()?;
    Some((head, &buf[end + 4..]))
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// Whether a response with Content-Length has fully arrived (chunked and close-delimited
/// bodies are read to the end of the stream).
fn response_complete(buf: &[u8]) -> bool {
    let Some((head, body)) = split_head(buf) else {
        return false;
    };
    match header(head, "content-length").and_then(|v| v.parse::<usize>().ok()) {
        Some(n) => body.len() >= n,
        None => false,
    }
}

fn dechunk(mut body: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let nl = body
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("truncated chunk size")?;
        let size_text = std::str::from_utf8(&body[..nl]).map_err(|_| "bad chunk size")?;
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| "bad chunk size")?;
        body = &body[nl + 2..];
        if size == 0 {
            return Ok(out);
        }
        if body.len() < size {
            return Err("truncated chunk".into());
        }
        out.extend_from_slice(&body[..size]);
        body = body.get(size + 2..).unwrap_or(&[]);
    }
}

/// Status code and body of a raw HTTP/1.x response.
fn parse_response(buf: &[u8]) -> Result<(u16, String), String> {
    let (head, body) = split_head(buf).ok_or("no complete header")?;
    let status_line = head.lines().next().unwrap_or("");
    let mut parts = status_line.split_whitespace();
    let proto = parts.next().unwrap_or("");
    if !proto.starts_with("HTTP/") {
        return Err("not HTTP".into());
    }
    let code: u16 = parts
        .next()
        .and_then(|c| c.parse().ok())
        .ok_or("no status code")?;
    let body = if header(head, "transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
    {
        dechunk(body)?
    } else {
        match header(head, "content-length").and_then(|v| v.parse::<usize>().ok()) {
            Some(n) => body.get(..n).unwrap_or(body).to_vec(),
            None => body.to_vec(),
        }
    };
    Ok((code, String::from_utf8_lossy(&body).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_responses_parse() {
        let r = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello-extra";
        assert!(response_complete(r));
        assert_eq!(parse_response(r).unwrap(), (200, "hello".to_string()));
        let c = b"HTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n";
        assert!(!response_complete(c));
        assert_eq!(parse_response(c).unwrap(), (503, "abcde".to_string()));
        assert!(parse_response(b"SSH-2.0\r\n\r\n").is_err());
        assert!(parse_response(b"HTTP/1.1 200 OK\r\n").is_err());
    }

    #[test]
    fn dead_port_is_connect_error_and_bad_addresses_are_resolve_errors() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let t = Instant::now();
        let e = served_leaf(&format!("127.0.0.1:{port}"), Duration::from_millis(500))
            .expect_err("nothing listens");
        assert!(matches!(e, ProbeError::Connect { .. }), "{e}");
        assert!(t.elapsed() < Duration::from_secs(2));
        assert!(matches!(
            served_leaf("no-port", Duration::from_millis(100)),
            Err(ProbeError::Resolve { .. })
        ));
    }

    #[test]
    fn silent_server_times_out_within_the_bound() {
        // Accepts TCP but never speaks TLS.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let t = Instant::now();
        let e = served_leaf(&addr, Duration::from_millis(400)).expect_err("silent");
        assert!(matches!(e, ProbeError::Timeout { .. }), "{e}");
        assert!(
            t.elapsed() < Duration::from_millis(1500),
            "{:?}",
            t.elapsed()
        );
        drop(l);
    }
}
