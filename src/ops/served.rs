//! The served-certificate proof: connect over TLS to each endpoint of the chosen components,
//! take the leaf the server presents and compare it with the certificate file it should
//! serve. A process that was not restarted after a renewal still serves the old
//! certificate: `stale`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::endpoints::{self, Endpoint, EndpointOverride, Source};
use super::tls;
use crate::pki::cert::{parse_der, parse_pem_bundle, read_file, CertInfo};
use crate::pki::inventory::Component;
use crate::{timefmt, Error};

/// Default bound on connect + handshake of one endpoint.
pub const DEFAULT_TIMEOUT_MS: u64 = 3000;

/// Params of `served`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServedParams {
    /// Components to probe (default: all four).
    #[serde(default)]
    pub components: Vec<Component>,
    /// PKI dir (default /etc/kubernetes/pki).
    #[serde(default)]
    pub cert_dir: Option<String>,
    /// Static pod manifests dir the endpoints are read from (default /etc/kubernetes/manifests).
    #[serde(default)]
    pub manifests_dir: Option<String>,
    /// Per-endpoint address / certificate file overrides.
    #[serde(default)]
    pub endpoints: Vec<EndpointOverride>,
    /// Bound on connect + TLS handshake of each endpoint, in milliseconds (default 3000).
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// Fixed clock (RFC 3339) for the expiry of the served certificates.
    #[serde(default)]
    pub now: Option<String>,
}

/// Verdict on one endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
#[schemars(rename = "ServedVerdict")]
pub enum Verdict {
    /// Serves the certificate on disk.
    Current,
    /// Serves another certificate than the one on disk: restart the component.
    Stale,
    /// No TLS answer within the bound.
    Unreachable,
    /// Nothing to compare with (no certificate file, e.g. a self-signed in-memory one).
    NotChecked,
}

/// Overall level.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
#[schemars(rename = "ServedLevel")]
pub enum Level {
    /// Every probed endpoint serves its file, or has none to compare with.
    Ok,
    /// An endpoint is unreachable.
    Warn,
    /// An endpoint serves a stale or expired certificate.
    Fail,
}

impl Level {
    /// The CLI exit code of this level (as `check`: 0, 3, 4).
    pub fn exit_code(self) -> u8 {
        match self {
            Level::Ok => 0,
            Level::Warn => 3,
            Level::Fail => 4,
        }
    }
}

/// Facts of a certificate, as served or on disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CertFacts {
    /// Serial, lowercase hex.
    pub serial: String,
    /// NotAfter, RFC 3339.
    pub not_after: String,
    /// Subject.
    pub subject: String,
}

impl CertFacts {
    fn of(i: &CertInfo) -> Self {
        CertFacts {
            serial: i.serial.clone(),
            not_after: timefmt::rfc3339(i.not_after),
            subject: i.subject.clone(),
        }
    }
}

/// One endpoint's proof.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServedEndpoint {
    /// The endpoint.
    pub endpoint: Endpoint,
    /// The component serving it.
    pub component: Component,
    /// host:port probed.
    pub address: String,
    /// Where the address came from.
    pub address_source: Source,
    /// The certificate file it should serve.
    pub cert_path: Option<String>,
    /// That file's certificate.
    pub on_disk: Option<CertFacts>,
    /// The leaf the server presented.
    pub served: Option<CertFacts>,
    /// The served leaf has expired.
    pub served_expired: bool,
    /// The verdict.
    pub verdict: Verdict,
    /// Why, in words.
    pub message: String,
}

/// Result of `served`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServedResult {
    /// `fail` when an endpoint serves a stale or expired certificate, `warn` when one is
    /// unreachable, else `ok`.
    pub level: Level,
    /// Per endpoint, in order.
    pub endpoints: Vec<ServedEndpoint>,
    /// Components serving a stale certificate (restart these).
    pub stale_components: Vec<Component>,
}

/// Resolved options.
#[derive(Debug, Clone)]
pub struct ServedOptions {
    /// Components (non-empty).
    pub components: Vec<Component>,
    /// PKI dir.
    pub cert_dir: PathBuf,
    /// Manifests dir.
    pub manifests_dir: PathBuf,
    /// Overrides.
    pub overrides: Vec<EndpointOverride>,
    /// Bound per endpoint.
    pub timeout: Duration,
    /// Clock (Unix seconds).
    pub now: i64,
}

/// kubeadm's static pod manifests dir.
pub const DEFAULT_MANIFESTS_DIR: &str = "/etc/kubernetes/manifests";

/// Every component, in restart order (etcd first, then the API server, then its clients).
pub const COMPONENTS: [Component; 4] = [
    Component::Etcd,
    Component::KubeApiserver,
    Component::KubeControllerManager,
    Component::KubeScheduler,
];

/// `components`, or all four when empty; duplicates dropped, restart order kept.
pub fn components_or_all(components: &[Component]) -> Vec<Component> {
    COMPONENTS
        .into_iter()
        .filter(|c| components.is_empty() || components.contains(c))
        .collect()
}

impl ServedParams {
    /// Resolves defaults and checks the values.
    pub fn resolve(&self) -> crate::Result<ServedOptions> {
        for o in &self.endpoints {
            if o.endpoint.is_none() {
                return Err(Error::InvalidArgument(
                    "endpoints[]: each override needs an endpoint".into(),
                ));
            }
        }
        Ok(ServedOptions {
            components: components_or_all(&self.components),
            cert_dir: PathBuf::from(
                self.cert_dir
                    .as_deref()
                    .unwrap_or(crate::pki::DEFAULT_CERT_DIR),
            ),
            manifests_dir: PathBuf::from(
                self.manifests_dir
                    .as_deref()
                    .unwrap_or(DEFAULT_MANIFESTS_DIR),
            ),
            overrides: self.endpoints.clone(),
            timeout: timeout_ms("timeout_ms", self.timeout_ms, DEFAULT_TIMEOUT_MS)?,
            now: match &self.now {
                Some(n) => timefmt::parse_rfc3339(n)?,
                None => timefmt::now_unix(),
            },
        })
    }
}

/// A millisecond bound from params: default when absent, refused when 0 or over a day.
pub fn timeout_ms(name: &str, v: Option<u64>, default: u64) -> crate::Result<Duration> {
    match v.unwrap_or(default) {
        0 => Err(Error::InvalidArgument(format!("{name} must be positive"))),
        ms if ms > 86_400_000 => Err(Error::InvalidArgument(format!(
            "{name} must be at most 86400000 (a day)"
        ))),
        ms => Ok(Duration::from_millis(ms)),
    }
}

fn read_cert(path: &Path) -> Result<CertInfo, String> {
    let bytes = read_file(path).map_err(|e| e.to_string())?;
    parse_pem_bundle(&bytes)
        .map(|c| c.info)
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Probes one endpoint.
pub fn probe(t: &endpoints::Target, timeout: Duration, now: i64) -> ServedEndpoint {
    let c = t.endpoint.component();
    let mut r = ServedEndpoint {
        endpoint: t.endpoint,
        component: c,
        address: t.address.clone(),
        address_source: t.address_source,
        cert_path: t.cert.as_ref().map(|p| p.display().to_string()),
        on_disk: None,
        served: None,
        served_expired: false,
        verdict: Verdict::NotChecked,
        message: String::new(),
    };
    let disk = match &t.cert {
        None => Err(format!(
            "no certificate file configured for {} (it serves one made in memory)",
            t.endpoint.name()
        )),
        Some(p) => read_cert(p),
    };
    if let Ok(d) = &disk {
        r.on_disk = Some(CertFacts::of(d));
    }
    let served = match tls::served_leaf(&t.address, timeout) {
        Ok(der) => der,
        Err(e) => {
            r.verdict = Verdict::Unreachable;
            r.message = format!("{} unreachable: {e}", t.endpoint.name());
            return r;
        }
    };
    let info = match parse_der(&served) {
        Ok(i) => i,
        Err(e) => {
            r.verdict = Verdict::Unreachable;
            r.message = format!(
                "{} presented a certificate kubecert cannot parse: {}",
                t.endpoint.name(),
                crate::error::report(&e)
            );
            return r;
        }
    };
    r.served = Some(CertFacts::of(&info));
    r.served_expired = info.not_after < now;
    let expired = if r.served_expired {
        format!(
            "; the served certificate expired {}",
            timefmt::rfc3339(info.not_after)
        )
    } else {
        String::new()
    };
    match disk {
        Err(why) => {
            r.verdict = Verdict::NotChecked;
            r.message = format!("{}: not compared: {why}{expired}", t.endpoint.name());
        }
        Ok(d) => {
            // The same certificate: same serial, same key, same bytes.
            let same = d.serial == info.serial && d.spki_der == info.spki_der && d == info;
            if same {
                r.verdict = Verdict::Current;
                r.message = format!(
                    "{} serves the certificate on disk (serial {}){expired}",
                    t.endpoint.name(),
                    info.serial
                );
            } else {
                r.verdict = Verdict::Stale;
                r.message = format!(
                    "{} at {} is serving a certificate other than the one on disk (served \
                     serial {}, NotAfter {}; on disk serial {}, NotAfter {}) — restart {}{expired}",
                    t.endpoint.name(),
                    t.address,
                    info.serial,
                    timefmt::rfc3339(info.not_after),
                    d.serial,
                    timefmt::rfc3339(d.not_after),
                    c.name()
                );
            }
        }
    }
    r
}

/// Runs the proof over every endpoint of the chosen components.
pub fn served(o: &ServedOptions) -> ServedResult {
    let mut eps = Vec::new();
    for c in &o.components {
        for e in Endpoint::of(*c) {
            let t = endpoints::resolve(e, &o.cert_dir, &o.manifests_dir, &o.overrides);
            eps.push(probe(&t, o.timeout, o.now));
        }
    }
    let fail = eps
        .iter()
        .any(|e| e.verdict == Verdict::Stale || e.served_expired);
    let warn = eps.iter().any(|e| e.verdict == Verdict::Unreachable);
    let mut stale_components: Vec<Component> = eps
        .iter()
        .filter(|e| e.verdict == Verdict::Stale)
        .map(|e| e.component)
        .collect();
    stale_components.dedup();
    ServedResult {
        level: if fail {
            Level::Fail
        } else if warn {
            Level::Warn
        } else {
            Level::Ok
        },
        endpoints: eps,
        stale_components,
    }
}

/// The `served` method: resolve, probe.
pub fn served_call(p: &ServedParams) -> crate::Result<ServedResult> {
    Ok(served(&p.resolve()?))
}

/// Human-readable lines.
pub fn render_text(r: &ServedResult) -> String {
    let mut s = String::new();
    for e in &r.endpoints {
        let tag = match e.verdict {
            Verdict::Current => "current",
            Verdict::Stale => "STALE",
            Verdict::Unreachable => "unreachable",
            Verdict::NotChecked => "not-checked",
        };
        s.push_str(&format!(
            "[served] {:<24} {:<12} {}\n",
            e.endpoint.name(),
            tag,
            e.message
        ));
    }
    s.push_str(&format!(
        "[served] level: {}\n",
        match r.level {
            Level::Ok => "ok",
            Level::Warn => "warn",
            Level::Fail => "fail",
        }
    ));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_are_checked() {
        let p = ServedParams {
            timeout_ms: Some(0),
            ..Default::default()
        };
        assert_eq!(
            p.resolve().unwrap_err().to_string(),
            "timeout_ms must be positive"
        );
        let p = ServedParams {
            endpoints: vec![EndpointOverride::default()],
            ..Default::default()
        };
        assert!(p.resolve().is_err());
        let o = ServedParams {
            components: vec![Component::KubeScheduler, Component::Etcd, Component::Etcd],
            ..Default::default()
        }
        .resolve()
        .unwrap();
        assert_eq!(
            o.components,
            vec![Component::Etcd, Component::KubeScheduler]
        );
        assert_eq!(o.timeout, Duration::from_millis(3000));
    }

    #[test]
    fn dead_port_is_unreachable_and_no_file_is_not_checked() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let d = tempfile::tempdir().unwrap();
        let o = ServedOptions {
            components: vec![Component::KubeScheduler],
            cert_dir: d.path().into(),
            manifests_dir: d.path().into(),
            overrides: vec![EndpointOverride {
                endpoint: Some(Endpoint::KubeScheduler),
                address: Some(format!("127.0.0.1:{port}")),
                cert: None,
            }],
            timeout: Duration::from_millis(500),
            now: 0,
        };
        let r = served(&o);
        assert_eq!(r.level, Level::Warn);
        assert_eq!(r.endpoints[0].verdict, Verdict::Unreachable);
        assert!(r.endpoints[0]
            .message
            .starts_with("kube-scheduler unreachable: cannot connect"));
    }
}
