//! Health of the control plane, polled until healthy or until ONE bound for the whole wait
//! (each request is cut to what is left of it, so the wait never exceeds the bound by more
//! than a connect):
//!
//! - etcd: the member list from the v3 gateway (`POST /v3/cluster/member/list`, etcd ≥ 3.4)
//!   and `GET /health` on every member's client URL, over TLS, verified against
//!   `etcd/ca.crt`, authenticated with `etcd/healthcheck-client.{crt,key}`;
//! - kube-apiserver: `GET /readyz`, verified against `ca.crt` (name `kubernetes`);
//! - kube-controller-manager, kube-scheduler: `GET /healthz` (their serving certificate is
//!   self-signed by default, so, like the kubelet's probes, it is not verified).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::endpoints::{self, Endpoint, EndpointOverride};
use super::served::{components_or_all, timeout_ms, DEFAULT_MANIFESTS_DIR};
use super::tls::HttpsClient;
use crate::pki::inventory::Component;
use crate::Error;

/// Default bound on the whole wait.
pub const DEFAULT_TIMEOUT_MS: u64 = 30_000;
/// Default bound on one request.
pub const DEFAULT_REQUEST_TIMEOUT_MS: u64 = 5_000;
/// Default pause between polls.
pub const DEFAULT_INTERVAL_MS: u64 = 1_000;

/// Params of `health`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HealthParams {
    /// Components to check (default: all four).
    #[serde(default)]
    pub components: Vec<Component>,
    /// PKI dir: CAs and the etcd healthcheck client (default /etc/kubernetes/pki).
    #[serde(default)]
    pub cert_dir: Option<String>,
    /// Static pod manifests dir the endpoints are read from (default /etc/kubernetes/manifests).
    #[serde(default)]
    pub manifests_dir: Option<String>,
    /// Per-endpoint address overrides (`cert` is not used here).
    #[serde(default)]
    pub endpoints: Vec<EndpointOverride>,
    /// Bound on the whole wait, in milliseconds (default 30000): the call returns within it.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// Bound on one request, in milliseconds (default 5000; cut to what is left).
    #[serde(default)]
    pub request_timeout_ms: Option<u64>,
    /// Pause between polls, in milliseconds (default 1000).
    #[serde(default)]
    pub interval_ms: Option<u64>,
}

/// One etcd member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EtcdMember {
    /// Member ID (decimal, as the gateway renders it).
    pub id: String,
    /// Member name (empty for a member that has not started).
    pub name: String,
    /// Client URLs.
    pub client_urls: Vec<String>,
    /// Peer URLs.
    pub peer_urls: Vec<String>,
    /// `/health` answered `"health":"true"` on its first client URL.
    pub healthy: bool,
    /// What it answered, or why not.
    pub detail: String,
}

/// Health of etcd.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EtcdHealth {
    /// The endpoint the member list came from.
    pub endpoint: String,
    /// The members.
    pub members: Vec<EtcdMember>,
    /// Healthy members.
    pub healthy_members: usize,
    /// More than half of the members are healthy.
    pub quorum: bool,
}

/// One component's health.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ComponentHealth {
    /// The component.
    pub component: Component,
    /// Healthy (etcd: every member).
    pub healthy: bool,
    /// What was asked (URL).
    pub url: String,
    /// What it answered, or why not.
    pub detail: String,
    /// etcd's members.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub etcd: Option<EtcdHealth>,
}

/// Result of `health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HealthResult {
    /// Every checked component is healthy.
    pub healthy: bool,
    /// Per component, in order (the last poll's answer).
    pub components: Vec<ComponentHealth>,
    /// How long the wait took, in milliseconds.
    pub elapsed_ms: u64,
    /// Polls made.
    pub polls: u32,
}

/// Resolved options (also what a restart waits with).
#[derive(Debug, Clone)]
pub struct HealthOptions {
    /// PKI dir.
    pub cert_dir: PathBuf,
    /// Manifests dir.
    pub manifests_dir: PathBuf,
    /// Address overrides.
    pub overrides: Vec<EndpointOverride>,
    /// Bound on one request.
    pub request_timeout: Duration,
    /// Pause between polls.
    pub interval: Duration,
}

impl HealthOptions {
    /// kubeadm's layout with the default bounds.
    pub fn new(cert_dir: &Path, manifests_dir: &Path) -> Self {
        HealthOptions {
            cert_dir: cert_dir.to_path_buf(),
            manifests_dir: manifests_dir.to_path_buf(),
            overrides: vec![],
            request_timeout: Duration::from_millis(DEFAULT_REQUEST_TIMEOUT_MS),
            interval: Duration::from_millis(DEFAULT_INTERVAL_MS),
        }
    }
}

impl HealthParams {
    /// Resolves defaults: (options, components, total bound).
    pub fn resolve(&self) -> crate::Result<(HealthOptions, Vec<Component>, Duration)> {
        if self.endpoints.iter().any(|o| o.endpoint.is_none()) {
            return Err(Error::InvalidArgument(
                "endpoints[]: each override needs an endpoint".into(),
            ));
        }
        let o = HealthOptions {
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
            request_timeout: timeout_ms(
                "request_timeout_ms",
                self.request_timeout_ms,
                DEFAULT_REQUEST_TIMEOUT_MS,
            )?,
            interval: timeout_ms("interval_ms", self.interval_ms, DEFAULT_INTERVAL_MS)?,
        };
        let total = timeout_ms("timeout_ms", self.timeout_ms, DEFAULT_TIMEOUT_MS)?;
        Ok((o, components_or_all(&self.components), total))
    }
}

/// The client of etcd's v3 gateway: verifies against `<cert_dir>/etcd/ca.crt`, authenticates
/// with `etcd/healthcheck-client.{crt,key}` (what kubeadm's own etcd probes use).
pub fn etcd_client(cert_dir: &Path) -> crate::Result<HttpsClient> {
    HttpsClient::new(
        Some(&cert_dir.join("etcd/ca.crt")),
        Some((
            &cert_dir.join("etcd/healthcheck-client.crt"),
            &cert_dir.join("etcd/healthcheck-client.key"),
        )),
        None,
    )
}

/// The clients of one check, built once per wait (they read the PKI files).
struct Clients {
    etcd: Option<HttpsClient>,
    apiserver: HttpsClient,
    insecure: HttpsClient,
    /// Why the etcd client could not be built.
    etcd_error: Option<String>,
}

impl Clients {
    fn new(o: &HealthOptions) -> crate::Result<Self> {
        let pki = &o.cert_dir;
        let (etcd, etcd_error) = match etcd_client(pki) {
            Ok(c) => (Some(c), None),
            Err(e) => (None, Some(e.to_string())),
        };
        let ca = pki.join("ca.crt");
        let apiserver = if ca.is_file() {
            HttpsClient::new(Some(&ca), None, Some("kubernetes"))?
        } else {
            HttpsClient::new(None, None, None)?
        };
        Ok(Clients {
            etcd,
            apiserver,
            insecure: HttpsClient::new(None, None, None)?,
            etcd_error,
        })
    }
}

/// Time left before `deadline`, capped at `cap`.
pub(super) fn budget(deadline: Instant, cap: Duration) -> Duration {
    deadline.saturating_duration_since(Instant::now()).min(cap)
}

pub(super) fn snippet(body: &str) -> String {
    let t = body.trim();
    let mut s: String = t.chars().take(200).collect();
    if t.chars().count() > 200 {
        s.push('…');
    }
    s
}

fn check_etcd(o: &HealthOptions, cl: &Clients, deadline: Instant) -> ComponentHealth {
    let t = endpoints::resolve(
        Endpoint::EtcdClient,
        &o.cert_dir,
        &o.manifests_dir,
        &o.overrides,
    );
    let url = format!("https://{}/v3/cluster/member/list", t.address);
    let mut h = ComponentHealth {
        component: Component::Etcd,
        healthy: false,
        url: url.clone(),
        detail: String::new(),
        etcd: None,
    };
    let Some(client) = &cl.etcd else {
        h.detail = format!(
            "cannot use the healthcheck client: {}",
            cl.etcd_error.as_deref().unwrap_or("unknown")
        );
        return h;
    };
    let list = client.request(
        &t.address,
        "POST",
        "/v3/cluster/member/list",
        Some("{}"),
        budget(deadline, o.request_timeout),
    );
    let body = match list {
        Ok((200, b)) => b,
        Ok((code, b)) => {
            h.detail = format!("member list: HTTP {code}: {}", snippet(&b));
            return h;
        }
        Err(e) => {
            h.detail = format!("member list: {e}");
            return h;
        }
    };
    let v: serde_json::Value = match serde_json::from_str(&body) {
        Ok(v) => v,
        Err(e) => {
            h.detail = format!("member list: not JSON: {e}");
            return h;
        }
    };
    let strs = |x: &serde_json::Value| -> Vec<String> {
        x.as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(str::to_string))
            .collect()
    };
    let mut members = Vec::new();
    for m in v["members"].as_array().into_iter().flatten() {
        let id = match &m["ID"] {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let client_urls = strs(&m["clientURLs"]);
        let (healthy, detail) = match client_urls
            .first()
            .and_then(|u| endpoints::url_host_port(u))
        {
            None => (false, "no client URL (not started?)".to_string()),
            Some(addr) => match client.request(
                &addr,
                "GET",
                "/health",
                None,
                budget(deadline, o.request_timeout),
            ) {
                Ok((200, b)) => {
                    let ok = serde_json::from_str::<serde_json::Value>(&b)
                        .map(|j| j["health"] == "true" || j["health"] == true)
                        .unwrap_or(false);
                    (ok, snippet(&b))
                }
                Ok((code, b)) => (false, format!("HTTP {code}: {}", snippet(&b))),
                Err(e) => (false, e.to_string()),
            },
        };
        members.push(EtcdMember {
            id,
            name: m["name"].as_str().unwrap_or("").to_string(),
            client_urls,
            peer_urls: strs(&m["peerURLs"]),
            healthy,
            detail,
        });
    }
    let healthy_members = members.iter().filter(|m| m.healthy).count();
    let n = members.len();
    h.healthy = n > 0 && healthy_members == n;
    h.detail = if n == 0 {
        "the member list is empty".to_string()
    } else {
        let bad: Vec<String> = members
            .iter()
            .filter(|m| !m.healthy)
            .map(|m| format!("{} ({})", m.name, m.detail))
            .collect();
        format!(
            "{healthy_members}/{n} members healthy, quorum {}{}",
            if healthy_members > n / 2 {
                "ok"
            } else {
                "LOST"
            },
            if bad.is_empty() {
                String::new()
            } else {
                format!("; unhealthy: {}", bad.join(", "))
            }
        )
    };
    h.etcd = Some(EtcdHealth {
        endpoint: t.address,
        members,
        healthy_members,
        quorum: healthy_members > n / 2,
    });
    h
}

fn check_http(c: Component, o: &HealthOptions, cl: &Clients, deadline: Instant) -> ComponentHealth {
    let (e, path, client) = match c {
        Component::KubeApiserver => (Endpoint::KubeApiserver, "/readyz", &cl.apiserver),
        Component::KubeControllerManager => {
            (Endpoint::KubeControllerManager, "/healthz", &cl.insecure)
        }
        _ => (Endpoint::KubeScheduler, "/healthz", &cl.insecure),
    };
    let t = endpoints::resolve(e, &o.cert_dir, &o.manifests_dir, &o.overrides);
    let url = format!("https://{}{path}", t.address);
    let (healthy, detail) = match client.request(
        &t.address,
        "GET",
        path,
        None,
        budget(deadline, o.request_timeout),
    ) {
        Ok((200, b)) => (true, format!("HTTP 200: {}", snippet(&b))),
        Ok((code, b)) => (false, format!("HTTP {code}: {}", snippet(&b))),
        Err(e) => (false, e.to_string()),
    };
    ComponentHealth {
        component: c,
        healthy,
        url,
        detail,
        etcd: None,
    }
}

/// One check of one component, bounded by `deadline`.
fn check_one(c: Component, o: &HealthOptions, cl: &Clients, deadline: Instant) -> ComponentHealth {
    match c {
        Component::Etcd => check_etcd(o, cl, deadline),
        _ => check_http(c, o, cl, deadline),
    }
}

/// Polls `components` until all are healthy or `timeout` has passed (the call returns
/// within `timeout` plus at most one connect attempt's slack); with `interval >= timeout`
/// it checks once. Errors only on unusable PKI files for the API server's CA.
pub fn wait_healthy(
    o: &HealthOptions,
    components: &[Component],
    timeout: Duration,
) -> crate::Result<HealthResult> {
    let start = Instant::now();
    let deadline = start + timeout;
    let clients = Clients::new(o)?;
    let mut last: Vec<ComponentHealth> = Vec::new();
    let mut polls = 0u32;
    loop {
        polls += 1;
        let mut now: Vec<ComponentHealth> = Vec::new();
        for c in components {
            // A component already healthy in this wait stays so; recheck only the others.
            match last.iter().find(|h| h.component == *c && h.healthy) {
                Some(h) => now.push(h.clone()),
                None => now.push(check_one(*c, o, &clients, deadline)),
            }
        }
        last = now;
        let healthy = last.iter().all(|h| h.healthy);
        if healthy || Instant::now() + o.interval >= deadline {
            return Ok(HealthResult {
                healthy,
                components: last,
                elapsed_ms: u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX),
                polls,
            });
        }
        std::thread::sleep(o.interval);
    }
}

/// The `health` method.
pub fn health_call(p: &HealthParams) -> crate::Result<HealthResult> {
    let (o, components, total) = p.resolve()?;
    wait_healthy(&o, &components, total)
}

/// Human-readable lines.
pub fn render_text(r: &HealthResult) -> String {
    let mut s = String::new();
    for h in &r.components {
        s.push_str(&format!(
            "[health] {:<24} {:<9} {} ({})\n",
            h.component.name(),
            if h.healthy { "healthy" } else { "UNHEALTHY" },
            h.url,
            h.detail
        ));
        for m in h.etcd.iter().flat_map(|e| &e.members) {
            s.push_str(&format!(
                "[health]   member {} {} {}\n",
                if m.name.is_empty() { &m.id } else { &m.name },
                m.client_urls.join(","),
                if m.healthy { "healthy" } else { "UNHEALTHY" }
            ));
        }
    }
    s.push_str(&format!(
        "[health] {} after {} ms ({} poll{})\n",
        if r.healthy { "healthy" } else { "NOT healthy" },
        r.elapsed_ms,
        r.polls,
        if r.polls == 1 { "" } else { "s" }
    ));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dead_ports_fail_within_the_bound() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        // Accepts TCP but never answers: each request would hang for its own bound.
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let d = tempfile::tempdir().unwrap();
        let p = HealthParams {
            components: vec![Component::KubeApiserver, Component::KubeScheduler],
            cert_dir: Some(d.path().display().to_string()),
            manifests_dir: Some(d.path().display().to_string()),
            endpoints: vec![
                EndpointOverride {
                    endpoint: Some(Endpoint::KubeApiserver),
                    address: Some(format!("127.0.0.1:{port}")),
                    cert: None,
                },
                EndpointOverride {
                    endpoint: Some(Endpoint::KubeScheduler),
                    address: Some(silent.local_addr().unwrap().to_string()),
                    cert: None,
                },
            ],
            timeout_ms: Some(1500),
            request_timeout_ms: Some(5000),
            interval_ms: Some(200),
        };
        let t = Instant::now();
        let r = health_call(&p).unwrap();
        let took = t.elapsed();
        assert!(!r.healthy);
        assert!(took < Duration::from_millis(2500), "{took:?}");
        assert!(took >= Duration::from_millis(1000), "{took:?}");
        assert!(
            r.components[0].detail.starts_with("cannot connect"),
            "{r:?}"
        );
        assert!(r.components[1].detail.contains("no answer"), "{r:?}");
    }
}
