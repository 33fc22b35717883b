//! Where each control-plane component listens and which certificate file it serves, read
//! from its static pod manifest (`<manifests>/<component>.yaml`) when present, kubeadm's
//! defaults otherwise, and overridable per endpoint.

use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::pki::inventory::Component;

/// A TLS endpoint of a control-plane component.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Endpoint {
    /// etcd's client port (2379), serving etcd/server.crt.
    EtcdClient,
    /// etcd's peer port (2380), serving etcd/peer.crt.
    EtcdPeer,
    /// kube-apiserver's secure port (6443), serving apiserver.crt.
    KubeApiserver,
    /// kube-controller-manager's secure port (10257).
    KubeControllerManager,
    /// kube-scheduler's secure port (10259).
    KubeScheduler,
}

/// Every endpoint, in probe order.
pub const ENDPOINTS: [Endpoint; 5] = [
    Endpoint::EtcdClient,
    Endpoint::EtcdPeer,
    Endpoint::KubeApiserver,
    Endpoint::KubeControllerManager,
    Endpoint::KubeScheduler,
];

impl Endpoint {
    /// The component that serves it.
    pub fn component(self) -> Component {
        match self {
            Endpoint::EtcdClient | Endpoint::EtcdPeer => Component::Etcd,
            Endpoint::KubeApiserver => Component::KubeApiserver,
            Endpoint::KubeControllerManager => Component::KubeControllerManager,
            Endpoint::KubeScheduler => Component::KubeScheduler,
        }
    }

    /// Its name in results.
    pub fn name(self) -> &'static str {
        match self {
            Endpoint::EtcdClient => "etcd-client",
            Endpoint::EtcdPeer => "etcd-peer",
            Endpoint::KubeApiserver => "kube-apiserver",
            Endpoint::KubeControllerManager => "kube-controller-manager",
            Endpoint::KubeScheduler => "kube-scheduler",
        }
    }

    /// The endpoints of `c`.
    pub fn of(c: Component) -> Vec<Endpoint> {
        ENDPOINTS
            .into_iter()
            .filter(|e| e.component() == c)
            .collect()
    }

    fn default_port(self) -> u16 {
        match self {
            Endpoint::EtcdClient => 2379,
            Endpoint::EtcdPeer => 2380,
            Endpoint::KubeApiserver => 6443,
            Endpoint::KubeControllerManager => 10257,
            Endpoint::KubeScheduler => 10259,
        }
    }

    /// The certificate flag of the component's command line.
    fn cert_flag(self) -> &'static str {
        match self {
            Endpoint::EtcdClient => "cert-file",
            Endpoint::EtcdPeer => "peer-cert-file",
            _ => "tls-cert-file",
        }
    }

    /// kubeadm's file when the flag is absent (controller-manager and scheduler then serve
    /// a self-signed certificate made in memory: nothing on disk to compare with).
    fn default_cert(self, cert_dir: &Path) -> Option<PathBuf> {
        match self {
            Endpoint::EtcdClient => Some(cert_dir.join("etcd/server.crt")),
            Endpoint::EtcdPeer => Some(cert_dir.join("etcd/peer.crt")),
            Endpoint::KubeApiserver => Some(cert_dir.join("apiserver.crt")),
            _ => None,
        }
    }
}

/// Per-endpoint override of where to connect and which file to compare with.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointOverride {
    /// The endpoint.
    pub endpoint: Option<Endpoint>,
    /// host:port to connect to.
    #[serde(default)]
    pub address: Option<String>,
    /// The certificate file it should serve (root only on the socket).
    #[serde(default)]
    pub cert: Option<String>,
}

/// Where an address or file came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
#[schemars(rename = "EndpointSource")]
pub enum Source {
    /// The static pod manifest.
    Manifest,
    /// kubeadm's default.
    Default,
    /// The caller's override.
    Override,
}

/// A resolved endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Which.
    pub endpoint: Endpoint,
    /// host:port.
    pub address: String,
    /// Where the address came from.
    pub address_source: Source,
    /// The certificate it should serve (None: none on disk).
    pub cert: Option<PathBuf>,
    /// Where the file came from.
    pub cert_source: Source,
}

/// The `--flag=value` (or `--flag value`) arguments of a static pod's first container.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Flags(Vec<(String, String)>);

impl Flags {
    /// A flag's value.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Parses the arguments of a command line.
    pub fn from_args<'a>(args: impl IntoIterator<Item = &'a str>) -> Self {
        let mut out = Vec::new();
        let args: Vec<&str> = args.into_iter().collect();
        let mut i = 0;
        while i < args.len() {
            if let Some(f) = args[i].strip_prefix("--") {
                match f.split_once('=') {
                    Some((k, v)) => out.push((k.to_string(), v.to_string())),
                    None => match args.get(i + 1) {
                        Some(v) if !v.starts_with("--") => {
                            out.push((f.to_string(), v.to_string()));
                            i += 1;
                        }
                        _ => out.push((f.to_string(), "true".to_string())),
                    },
                }
            }
            i += 1;
        }
        Flags(out)
    }
}

/// The flags of `<manifests_dir>/<component>.yaml`; `None` when the manifest is absent or
/// is not a pod with a command (a parked or foreign file), so that defaults apply.
pub fn manifest_flags(manifests_dir: &Path, c: Component) -> Option<Flags> {
    let path = manifests_dir.join(format!("{}.yaml", c.name()));
    let text = std::fs::read_to_string(&path).ok()?;
    let v: serde_json::Value = serde_saphyr::from_str(&text).ok()?;
    let container = v.get("spec")?.get("containers")?.get(0)?;
    let mut args: Vec<&str> = Vec::new();
    for key in ["command", "args"] {
        if let Some(a) = container.get(key).and_then(|a| a.as_array()) {
            args.extend(a.iter().filter_map(|x| x.as_str()));
        }
    }
    if args.is_empty() {
        return None;
    }
    Some(Flags::from_args(args))
}

/// `host:port` of the first URL in a comma-separated list (`https://10.0.0.1:2379,...`).
pub fn url_host_port(urls: &str) -> Option<String> {
    let first = urls.split(',').next()?.trim();
    let rest = first.split_once("://").map_or(first, |(_, r)| r);
    let hp = rest.split('/').next()?;
    (!hp.is_empty() && hp.contains(':')).then(|| hp.to_string())
}

fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Where `e` listens according to `flags` (None: no usable flag).
fn address_from(e: Endpoint, flags: &Flags) -> Option<String> {
    match e {
        Endpoint::EtcdClient => flags.get("advertise-client-urls").and_then(url_host_port),
        Endpoint::EtcdPeer => flags
            .get("listen-peer-urls")
            .or_else(|| flags.get("initial-advertise-peer-urls"))
            .and_then(url_host_port),
        _ => {
            let port = match flags.get("secure-port") {
                Some(p) => p.parse().ok()?,
                None => e.default_port(),
            };
            let host = match flags.get("bind-address") {
                // Every interface: loopback reaches it.
                None | Some("0.0.0.0") | Some("") => "127.0.0.1",
                Some("::") => "::1",
                Some(h) => h,
            };
            Some(host_port(host, port))
        }
    }
}

/// Resolves `e`: the override, else the manifest, else kubeadm's defaults.
pub fn resolve(
    e: Endpoint,
    cert_dir: &Path,
    manifests_dir: &Path,
    overrides: &[EndpointOverride],
) -> Target {
    let flags = manifest_flags(manifests_dir, e.component());
    let o = overrides.iter().find(|o| o.endpoint == Some(e));
    let (address, address_source) = match (
        o.and_then(|o| o.address.clone()),
        flags.as_ref().and_then(|f| address_from(e, f)),
    ) {
        (Some(a), _) => (a, Source::Override),
        (None, Some(a)) => (a, Source::Manifest),
        (None, None) => (host_port("127.0.0.1", e.default_port()), Source::Default),
    };
    let (cert, cert_source) = match (
        o.and_then(|o| o.cert.clone()),
        flags.as_ref().and_then(|f| f.get(e.cert_flag())),
    ) {
        (Some(c), _) => (Some(PathBuf::from(c)), Source::Override),
        (None, Some(c)) => (Some(PathBuf::from(c)), Source::Manifest),
        (None, None) => (e.default_cert(cert_dir), Source::Default),
    };
    Target {
        endpoint: e,
        address,
        address_source,
        cert,
        cert_source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ETCD: &str = "apiVersion: v1
kind: Pod
metadata:
  name: etcd
spec:
  containers:
  - command:
    - etcd
    - --advertise-client-urls=https://10.0.0.5:2379
    - --cert-file=/etc/kubernetes/pki/etcd/server.crt
    - --listen-client-urls=https://127.0.0.1:2379,https://10.0.0.5:2379
    - --listen-peer-urls=https://10.0.0.5:2380
    - --peer-cert-file=/srv/peer.crt
    image: registry.k8s.io/etcd:3.5.9-0
";

    const SCHED: &str = "apiVersion: v1
kind: Pod
spec:
  containers:
  - command:
    - kube-scheduler
    - --bind-address=127.0.0.2
    - --secure-port
    - '11259'
    - --leader-elect=true
";

    #[test]
    fn manifests_give_addresses_and_files() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("etcd.yaml"), ETCD).unwrap();
        std::fs::write(d.path().join("kube-scheduler.yaml"), SCHED).unwrap();
        std::fs::write(d.path().join("kube-apiserver.yaml"), "not: [a pod").unwrap();
        let pki = Path::new("/p");
        let t = resolve(Endpoint::EtcdClient, pki, d.path(), &[]);
        assert_eq!(t.address, "10.0.0.5:2379");
        assert_eq!(t.address_source, Source::Manifest);
        assert_eq!(
            t.cert.as_deref(),
            Some(Path::new("/etc/kubernetes/pki/etcd/server.crt"))
        );
        let t = resolve(Endpoint::EtcdPeer, pki, d.path(), &[]);
        assert_eq!(
            (t.address.as_str(), t.cert.as_deref()),
            ("10.0.0.5:2380", Some(Path::new("/srv/peer.crt")))
        );
        let t = resolve(Endpoint::KubeScheduler, pki, d.path(), &[]);
        assert_eq!(t.address, "127.0.0.2:11259");
        assert_eq!(t.cert, None, "self-signed in memory: nothing on disk");
        // Unparsable manifest: defaults.
        let t = resolve(Endpoint::KubeApiserver, pki, d.path(), &[]);
        assert_eq!(t.address, "127.0.0.1:6443");
        assert_eq!(t.address_source, Source::Default);
        assert_eq!(t.cert.as_deref(), Some(Path::new("/p/apiserver.crt")));
        // Override wins.
        let o = EndpointOverride {
            endpoint: Some(Endpoint::KubeApiserver),
            address: Some("127.0.0.1:1".into()),
            cert: Some("/x.crt".into()),
        };
        let t = resolve(Endpoint::KubeApiserver, pki, d.path(), &[o]);
        assert_eq!(
            (t.address.as_str(), t.address_source, t.cert_source),
            ("127.0.0.1:1", Source::Override, Source::Override)
        );
    }

    #[test]
    fn urls() {
        assert_eq!(
            url_host_port("https://[::1]:2379,https://x:1").as_deref(),
            Some("[::1]:2379")
        );
        assert_eq!(url_host_port("https://h:1/p").as_deref(), Some("h:1"));
        assert_eq!(url_host_port("https://h"), None);
        assert_eq!(host_port("::1", 5), "[::1]:5");
    }
}
