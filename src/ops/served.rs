//! The served-certificate proof: connect over TLS to each endpoint of the chosen components,
//! take the leaf the server presents and compare it with the certificate file it should
//! serve. A process that was not restarted after a renewal still serves the old
//! certificate: `stale`. The endpoints are probed concurrently, each within its own bound,
//! so a run takes about one timeout however many ports are dead.
//!
//! `check --served` ([`ServedProbe`], flattened into `check`'s and `metrics`' params) runs
//! the same proof and adds its [`ServedResult`] to the check's result.

use std::path::{Path, PathBuf};
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::endpoints::{self, Endpoint, EndpointOverride, Owner, Source, OWNERS};
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
    /// Components to probe: the four static pods and `kubelet` (default: all five).
    #[serde(default)]
    pub components: Vec<Owner>,
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
    /// The kubelet's config file its address and serving certificate are read from (default
    /// /var/lib/kubelet/config.yaml).
    #[serde(default)]
    pub kubelet_config: Option<String>,
    /// The kubelet's cert dir (`kubelet.crt`, `kubelet-server-current.pem`; default
    /// /var/lib/kubelet/pki).
    #[serde(default)]
    pub kubelet_pki: Option<String>,
}

/// The served proof as an option of `check` and `metrics`, flattened into their params: the
/// PKI dir, the kubelet's cert dir and the clock are theirs.
/// (No `deny_unknown_fields` here: the params that flatten it refuse unknown fields.)
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ServedProbe {
    /// Also probe what every component serves (etcd client and peer, kube-apiserver,
    /// controller-manager, scheduler, kubelet) and report it under `served`; a stale or
    /// expired served certificate makes the level `fail`, an unreachable endpoint at least
    /// `warn`. Default false: the result is then kubeadm's shape unchanged.
    #[serde(default)]
    pub served: bool,
    /// With `served`: the static pod manifests dir the endpoints are read from (default
    /// /etc/kubernetes/manifests).
    #[serde(default)]
    pub manifests_dir: Option<String>,
    /// With `served`: per-endpoint address / certificate file overrides.
    #[serde(default)]
    pub endpoints: Vec<EndpointOverride>,
    /// With `served`: bound on connect + TLS handshake of each endpoint, in milliseconds
    /// (default 3000); the endpoints are probed concurrently.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// With `served`: the kubelet's config file (default /var/lib/kubelet/config.yaml).
    #[serde(default)]
    pub kubelet_config: Option<String>,
}

impl ServedProbe {
    /// The options of the proof for a check of `cert_dir` at `now` (None: not asked for).
    /// `external_etcd`: etcd does not run here, its endpoints are not probed.
    pub fn resolve(
        &self,
        cert_dir: &Path,
        kubelet_pki: &Path,
        external_etcd: bool,
        now: i64,
    ) -> crate::Result<Option<ServedOptions>> {
        if !self.served {
            return Ok(None);
        }
        check_overrides(&self.endpoints)?;
        Ok(Some(ServedOptions {
            components: OWNERS
                .into_iter()
                .filter(|o| !(external_etcd && *o == Owner::Etcd))
                .collect(),
            cert_dir: cert_dir.to_path_buf(),
            manifests_dir: PathBuf::from(
                self.manifests_dir
                    .as_deref()
                    .unwrap_or(DEFAULT_MANIFESTS_DIR),
            ),
            overrides: self.endpoints.clone(),
            timeout: timeout_ms("timeout_ms", self.timeout_ms, DEFAULT_TIMEOUT_MS)?,
            now,
            kubelet_config: PathBuf::from(
                self.kubelet_config
                    .as_deref()
                    .unwrap_or(endpoints::DEFAULT_KUBELET_CONFIG),
            ),
            kubelet_pki: kubelet_pki.to_path_buf(),
        }))
    }
}

fn check_overrides(o: &[EndpointOverride]) -> crate::Result<()> {
    if o.iter().any(|o| o.endpoint.is_none()) {
        return Err(Error::InvalidArgument(
            "endpoints[]: each override needs an endpoint".into(),
        ));
    }
    Ok(())
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
    /// NotAfter, Unix seconds (not serialized; for metrics).
    #[serde(skip)]
    pub not_after_seconds: Option<i64>,
    /// Serial, decimal (not serialized; for metrics' x509-exporter labels).
    #[serde(skip)]
    pub serial_decimal: String,
    /// The subject's CN (not serialized; for metrics).
    #[serde(skip)]
    pub subject_cn: String,
}

impl CertFacts {
    fn of(i: &CertInfo) -> Self {
        CertFacts {
            serial: i.serial.clone(),
            not_after: timefmt::rfc3339(i.not_after),
            subject: i.subject.clone(),
            not_after_seconds: Some(i.not_after),
            serial_decimal: i.serial_decimal.clone(),
            subject_cn: crate::pki::cert::dn_fields(&i.subject_der)
                .remove("CN")
                .unwrap_or_default(),
        }
    }
}

/// One endpoint's proof.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServedEndpoint {
    /// The endpoint.
    pub endpoint: Endpoint,
    /// Who serves it (a static pod, or `kubelet`).
    pub component: Owner,
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
    /// Whether the served certificate's NotBefore lies after the clock (every client refuses
    /// it: the level is at least warn; the message says so). Not serialized.
    #[serde(skip)]
    pub served_not_yet_valid: bool,
    /// The verdict.
    pub verdict: Verdict,
    /// The verdict in words: `current`, `stale: serving a certificate other than the one on
    /// disk — restart <component>`, `unreachable`, `not-checked`; followed by `; expired:
    /// the served certificate expired <NotAfter>` when it has.
    pub summary: String,
    /// Why, in words.
    pub message: String,
}

/// The `summary` of a verdict.
fn summary(verdict: Verdict, owner: Owner, expired_at: Option<i64>) -> String {
    let mut s = match verdict {
        Verdict::Current => "current".to_string(),
        Verdict::Stale => format!(
            "stale: serving a certificate other than the one on disk — restart {}",
            owner.name()
        ),
        Verdict::Unreachable => "unreachable".to_string(),
        Verdict::NotChecked => "not-checked".to_string(),
    };
    if let Some(t) = expired_at {
        s.push_str(&format!(
            "; expired: the served certificate expired {}",
            timefmt::rfc3339(t)
        ));
    }
    s
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
    /// Components serving a stale certificate (restart these: the static pods with `kubecert
    /// restart`, the kubelet with `systemctl restart kubelet`).
    pub stale_components: Vec<Owner>,
}

/// Resolved options.
#[derive(Debug, Clone)]
pub struct ServedOptions {
    /// Components (non-empty).
    pub components: Vec<Owner>,
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
    /// The kubelet's config file.
    pub kubelet_config: PathBuf,
    /// The kubelet's cert dir.
    pub kubelet_pki: PathBuf,
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

/// `owners`, or all five when empty; duplicates dropped, probe order kept.
pub fn owners_or_all(owners: &[Owner]) -> Vec<Owner> {
    OWNERS
        .into_iter()
        .filter(|c| owners.is_empty() || owners.contains(c))
        .collect()
}

impl ServedParams {
    /// Resolves defaults and checks the values.
    pub fn resolve(&self) -> crate::Result<ServedOptions> {
        check_overrides(&self.endpoints)?;
        Ok(ServedOptions {
            components: owners_or_all(&self.components),
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
            kubelet_config: PathBuf::from(
                self.kubelet_config
                    .as_deref()
                    .unwrap_or(endpoints::DEFAULT_KUBELET_CONFIG),
            ),
            kubelet_pki: PathBuf::from(
                self.kubelet_pki
                    .as_deref()
                    .unwrap_or(crate::pki::DEFAULT_KUBELET_PKI),
            ),
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
    // The kubelet's rotated `kubelet-server-current.pem` is a symlink to the dated PEM in
    // its own dir (cert and key): the one symlink the reader follows.
    let rotated = path
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.ends_with("-current.pem"));
    let bytes = if rotated {
        crate::pki::fsread::read_link_in_dir(path)
    } else {
        read_file(path)
    }
    .map_err(|e| crate::error::report(&e))?;
    parse_pem_bundle(&bytes)
        .map(|c| c.info)
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Probes one endpoint.
pub fn probe(t: &endpoints::Target, timeout: Duration, now: i64) -> ServedEndpoint {
    let c = t.endpoint.owner();
    let mut r = ServedEndpoint {
        endpoint: t.endpoint,
        component: c,
        address: t.address.clone(),
        address_source: t.address_source,
        cert_path: t.cert.as_ref().map(|p| p.display().to_string()),
        on_disk: None,
        served: None,
        served_expired: false,
        served_not_yet_valid: false,
        verdict: Verdict::NotChecked,
        summary: String::new(),
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
            r.summary = summary(r.verdict, c, None);
            r.message = format!("{} unreachable: {e}", t.endpoint.name());
            return r;
        }
    };
    let info = match parse_der(&served) {
        Ok(i) => i,
        Err(e) => {
            r.verdict = Verdict::Unreachable;
            r.summary = summary(r.verdict, c, None);
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
    r.served_not_yet_valid = info.not_before > now;
    let mut expired = if r.served_expired {
        format!(
            "; the served certificate expired {}",
            timefmt::rfc3339(info.not_after)
        )
    } else {
        String::new()
    };
    if r.served_not_yet_valid {
        expired.push_str(&format!(
            "; the served certificate is not valid before {} (the clock says {}: clock skew?)",
            timefmt::rfc3339(info.not_before),
            timefmt::rfc3339(now)
        ));
    }
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
    r.summary = summary(r.verdict, c, r.served_expired.then_some(info.not_after));
    r
}

/// The endpoints of `o`, resolved.
pub fn targets(o: &ServedOptions) -> Vec<endpoints::Target> {
    let mut out = Vec::new();
    for c in &o.components {
        for e in Endpoint::of(*c) {
            out.push(match e {
                Endpoint::Kubelet => {
                    endpoints::resolve_kubelet(&o.kubelet_config, &o.kubelet_pki, &o.overrides)
                }
                _ => endpoints::resolve(e, &o.cert_dir, &o.manifests_dir, &o.overrides),
            });
        }
    }
    out
}

/// Runs the proof over every endpoint of the chosen components, concurrently (one thread
/// per endpoint, at most six), each within `o.timeout`: a run takes about one timeout
/// however many ports are dead. Results keep the probe order.
pub fn served(o: &ServedOptions) -> ServedResult {
    let targets = targets(o);
    let eps: Vec<ServedEndpoint> = std::thread::scope(|s| {
        let handles: Vec<_> = targets
            .iter()
            .map(|t| (t, s.spawn(move || probe(t, o.timeout, o.now))))
            .collect();
        handles
            .into_iter()
            .map(|(t, h)| {
                h.join().unwrap_or_else(|_| {
                    let mut r = probe_failed(t);
                    r.message = format!("{}: the probe panicked", t.endpoint.name());
                    r
                })
            })
            .collect()
    });
    let fail = eps
        .iter()
        .any(|e| e.verdict == Verdict::Stale || e.served_expired);
    // Unreachable, or a certificate file that is configured but cannot be read: nothing
    // proven, never ok.
    let warn = eps.iter().any(|e| {
        e.verdict == Verdict::Unreachable
            || (e.verdict == Verdict::NotChecked && e.cert_path.is_some() && e.on_disk.is_none())
            || e.served_not_yet_valid
    });
    let mut stale_components: Vec<Owner> = eps
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

/// An `unreachable` result for `t` (its message to be filled in).
fn probe_failed(t: &endpoints::Target) -> ServedEndpoint {
    ServedEndpoint {
        endpoint: t.endpoint,
        component: t.endpoint.owner(),
        address: t.address.clone(),
        address_source: t.address_source,
        cert_path: t.cert.as_ref().map(|p| p.display().to_string()),
        on_disk: None,
        served: None,
        served_expired: false,
        served_not_yet_valid: false,
        verdict: Verdict::Unreachable,
        summary: summary(Verdict::Unreachable, t.endpoint.owner(), None),
        message: String::new(),
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

/// The section `check --served` prints under kubeadm's table: per endpoint its address and
/// verdict, then the served leaf next to the on-disk one (serial, NotAfter, file), or why
/// there is nothing to compare.
pub fn render_check_section(r: &ServedResult) -> String {
    let mut s = String::from("\nSERVED CERTIFICATES\n");
    for e in &r.endpoints {
        s.push_str(&format!(
            "{} ({}) {}: {}\n",
            e.endpoint.name(),
            e.component.name(),
            e.address,
            e.summary
        ));
        match (&e.served, &e.on_disk) {
            (Some(sv), disk) => {
                s.push_str(&format!(
                    "    served   serial {}  NotAfter {}\n",
                    sv.serial, sv.not_after
                ));
                match (disk, &e.cert_path) {
                    (Some(d), Some(p)) => s.push_str(&format!(
                        "    on disk  serial {}  NotAfter {}  {p}\n",
                        d.serial, d.not_after
                    )),
                    _ => s.push_str(&format!("    {}\n", e.message)),
                }
            }
            (None, _) => s.push_str(&format!("    {}\n", e.message)),
        }
    }
    s.push_str(&format!(
        "served level: {}\n",
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
            components: vec![
                Owner::Kubelet,
                Owner::KubeScheduler,
                Owner::Etcd,
                Owner::Etcd,
            ],
            ..Default::default()
        }
        .resolve()
        .unwrap();
        assert_eq!(
            o.components,
            vec![Owner::Etcd, Owner::KubeScheduler, Owner::Kubelet]
        );
        assert_eq!(o.timeout, Duration::from_millis(3000));
        assert_eq!(
            o.kubelet_config,
            PathBuf::from(endpoints::DEFAULT_KUBELET_CONFIG)
        );
        // The default is every owner, the kubelet included.
        let o = ServedParams::default().resolve().unwrap();
        assert_eq!(o.components, OWNERS.to_vec());
        // As check's option: absent unless asked; etcd left out with an external etcd.
        let p = ServedProbe::default();
        assert!(p
            .resolve(Path::new("/p"), Path::new("/k"), false, 0)
            .unwrap()
            .is_none());
        let p = ServedProbe {
            served: true,
            ..Default::default()
        };
        let o = p
            .resolve(Path::new("/p"), Path::new("/k"), true, 7)
            .unwrap()
            .unwrap();
        assert_eq!(
            o.components,
            vec![
                Owner::KubeApiserver,
                Owner::KubeControllerManager,
                Owner::KubeScheduler,
                Owner::Kubelet
            ]
        );
        assert_eq!((o.now, o.kubelet_pki.as_path()), (7, Path::new("/k")));
        let p = ServedProbe {
            served: true,
            timeout_ms: Some(0),
            ..Default::default()
        };
        assert_eq!(
            p.resolve(Path::new("/p"), Path::new("/k"), false, 0)
                .unwrap_err()
                .to_string(),
            "timeout_ms must be positive"
        );
    }

    #[test]
    fn dead_port_is_unreachable_and_no_file_is_not_checked() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let d = tempfile::tempdir().unwrap();
        let o = ServedOptions {
            components: vec![Component::KubeScheduler.into()],
            cert_dir: d.path().into(),
            manifests_dir: d.path().into(),
            overrides: vec![EndpointOverride {
                endpoint: Some(Endpoint::KubeScheduler),
                address: Some(format!("127.0.0.1:{port}")),
                cert: None,
            }],
            timeout: Duration::from_millis(500),
            now: 0,
            kubelet_config: d.path().join("config.yaml"),
            kubelet_pki: d.path().into(),
        };
        let r = served(&o);
        assert_eq!(r.level, Level::Warn);
        assert_eq!(r.endpoints[0].verdict, Verdict::Unreachable);
        assert!(r.endpoints[0]
            .message
            .starts_with("kube-scheduler unreachable: cannot connect"));
        assert_eq!(r.endpoints[0].summary, "unreachable");
    }

    /// `check`'s params carry the probe's options at top level; unknown fields are still
    /// refused; without `served` the result has no `served` key.
    #[test]
    fn check_params_wire_format() {
        let p: crate::check::CheckParams = serde_json::from_str(
            r#"{"cert_dir":"/p","served":true,"timeout_ms":500,"kubelet_config":"/k.yaml",
                "endpoints":[{"endpoint":"kubelet","address":"127.0.0.1:1"}]}"#,
        )
        .unwrap();
        assert!(p.served.served);
        assert_eq!(p.served.timeout_ms, Some(500));
        assert_eq!(p.served.kubelet_config.as_deref(), Some("/k.yaml"));
        assert_eq!(p.served.endpoints[0].endpoint, Some(Endpoint::Kubelet));
        for bad in [
            r#"{"served":true,"timeout":5}"#,
            r#"{"served_options":{}}"#,
            r#"{"endpoints":[{"endpoint":"kubelet","port":1}]}"#,
        ] {
            let e = serde_json::from_str::<crate::check::CheckParams>(bad).expect_err(bad);
            assert!(e.to_string().starts_with("unknown field"), "{bad}: {e}");
        }
        let p: crate::check::CheckParams = serde_json::from_str("{}").unwrap();
        assert!(!p.served.served);
    }

    /// Six endpoints, none answering TLS: three accept TCP and stay silent (each would hold
    /// a sequential probe for the whole timeout), three are closed. The probes run
    /// concurrently: the run takes about one timeout, not three.
    #[test]
    fn six_dead_ports_take_about_one_timeout() {
        let silent: Vec<std::net::TcpListener> = (0..3)
            .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
            .collect();
        let closed: Vec<u16> = (0..3)
            .map(|_| {
                let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
                l.local_addr().unwrap().port()
            })
            .collect();
        let mut addrs: Vec<String> = silent
            .iter()
            .map(|l| l.local_addr().unwrap().to_string())
            .collect();
        addrs.extend(closed.iter().map(|p| format!("127.0.0.1:{p}")));
        let d = tempfile::tempdir().unwrap();
        let o = ServedOptions {
            components: OWNERS.to_vec(),
            cert_dir: d.path().into(),
            manifests_dir: d.path().into(),
            overrides: endpoints::ENDPOINTS
                .iter()
                .zip(&addrs)
                .map(|(e, a)| EndpointOverride {
                    endpoint: Some(*e),
                    address: Some(a.clone()),
                    cert: None,
                })
                .collect(),
            timeout: Duration::from_millis(1000),
            now: 0,
            kubelet_config: d.path().join("config.yaml"),
            kubelet_pki: d.path().into(),
        };
        let t0 = std::time::Instant::now();
        let r = served(&o);
        let took = t0.elapsed();
        assert_eq!(r.level, Level::Warn);
        let got: Vec<(Endpoint, Verdict)> = r
            .endpoints
            .iter()
            .map(|e| (e.endpoint, e.verdict))
            .collect();
        let want: Vec<(Endpoint, Verdict)> = endpoints::ENDPOINTS
            .iter()
            .map(|e| (*e, Verdict::Unreachable))
            .collect();
        assert_eq!(got, want);
        for e in &r.endpoints[..3] {
            assert!(
                e.message.contains("no answer within 1000 ms"),
                "{}",
                e.message
            );
        }
        for e in &r.endpoints[3..] {
            assert!(
                e.message.contains("cannot connect to 127.0.0.1:"),
                "{}",
                e.message
            );
        }
        assert_eq!(r.endpoints[5].component, Owner::Kubelet);
        // Sequential probing would take at least 3 s (three silent ports).
        assert!(took < Duration::from_millis(2500), "{took:?}");
    }
}
