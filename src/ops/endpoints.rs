//! Where each control-plane component listens and which certificate file it serves, read
//! from its static pod manifest (`<manifests>/<component>.yaml`) when present, kubeadm's
//! defaults otherwise, and overridable per endpoint. The kubelet (:10250) is not a static
//! pod: its address and serving certificate come from its config file
//! (`/var/lib/kubelet/config.yaml`: `address`, `port`, `tlsCertFile`, `serverTLSBootstrap`)
//! and its PKI dir, with the kubelet's own defaults (see [`kubelet_cert`]).

use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::pki::inventory::Component;

/// Who serves an endpoint: one of the four static pods, or the kubelet (a host service, not
/// a static pod: `kubecert restart` and `health` never concern it). Serialized like
/// [`Component`] (`etcd`, `kube-apiserver`, …) plus `kubelet`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
#[schemars(rename = "ServedComponent")]
pub enum Owner {
    /// The etcd static pod.
    Etcd,
    /// kube-apiserver.
    KubeApiserver,
    /// kube-controller-manager.
    KubeControllerManager,
    /// kube-scheduler.
    KubeScheduler,
    /// The kubelet (systemd service).
    Kubelet,
}

/// Every owner, in probe order (the static pods in restart order, then the kubelet).
pub const OWNERS: [Owner; 5] = [
    Owner::Etcd,
    Owner::KubeApiserver,
    Owner::KubeControllerManager,
    Owner::KubeScheduler,
    Owner::Kubelet,
];

impl Owner {
    /// The static pod, `None` for the kubelet.
    pub fn static_pod(self) -> Option<Component> {
        match self {
            Owner::Etcd => Some(Component::Etcd),
            Owner::KubeApiserver => Some(Component::KubeApiserver),
            Owner::KubeControllerManager => Some(Component::KubeControllerManager),
            Owner::KubeScheduler => Some(Component::KubeScheduler),
            Owner::Kubelet => None,
        }
    }

    /// Its name (as in `restart <name>`).
    pub fn name(self) -> &'static str {
        match self.static_pod() {
            Some(c) => c.name(),
            None => "kubelet",
        }
    }
}

impl From<Component> for Owner {
    fn from(c: Component) -> Self {
        match c {
            Component::Etcd => Owner::Etcd,
            Component::KubeApiserver => Owner::KubeApiserver,
            Component::KubeControllerManager => Owner::KubeControllerManager,
            Component::KubeScheduler => Owner::KubeScheduler,
        }
    }
}

impl std::fmt::Display for Owner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A TLS endpoint of a control-plane component or of the kubelet.
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
    /// The kubelet's port (10250), from the kubelet config.
    Kubelet,
}

/// Every endpoint, in probe order.
pub const ENDPOINTS: [Endpoint; 6] = [
    Endpoint::EtcdClient,
    Endpoint::EtcdPeer,
    Endpoint::KubeApiserver,
    Endpoint::KubeControllerManager,
    Endpoint::KubeScheduler,
    Endpoint::Kubelet,
];

impl Endpoint {
    /// Who serves it.
    pub fn owner(self) -> Owner {
        match self {
            Endpoint::EtcdClient | Endpoint::EtcdPeer => Owner::Etcd,
            Endpoint::KubeApiserver => Owner::KubeApiserver,
            Endpoint::KubeControllerManager => Owner::KubeControllerManager,
            Endpoint::KubeScheduler => Owner::KubeScheduler,
            Endpoint::Kubelet => Owner::Kubelet,
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
            Endpoint::Kubelet => "kubelet",
        }
    }

    /// The endpoints of `o` (a [`Component`] converts into an [`Owner`]).
    pub fn of(o: impl Into<Owner>) -> Vec<Endpoint> {
        let o = o.into();
        ENDPOINTS.into_iter().filter(|e| e.owner() == o).collect()
    }

    fn default_port(self) -> u16 {
        match self {
            Endpoint::EtcdClient => 2379,
            Endpoint::EtcdPeer => 2380,
            Endpoint::KubeApiserver => 6443,
            Endpoint::KubeControllerManager => 10257,
            Endpoint::KubeScheduler => 10259,
            Endpoint::Kubelet => 10250,
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
    /// The kubelet's config file (`address`, `port`, `tlsCertFile`, `serverTLSBootstrap`).
    KubeletConfig,
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
    let flags = e
        .owner()
        .static_pod()
        .and_then(|c| manifest_flags(manifests_dir, c));
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

/// The kubelet's default config file (kubeadm writes it; `kubelet --config`).
pub const DEFAULT_KUBELET_CONFIG: &str = "/var/lib/kubelet/config.yaml";

/// What the kubelet config says about serving (absent fields: the kubelet's defaults).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KubeletServing {
    /// `address` (default 0.0.0.0).
    pub address: Option<String>,
    /// `port` (default 10250).
    pub port: Option<u16>,
    /// `tlsCertFile`.
    pub tls_cert_file: Option<String>,
    /// `tlsPrivateKeyFile` (its key; the kubelet section checks the pair).
    pub tls_private_key_file: Option<String>,
    /// `serverTLSBootstrap`.
    pub server_tls_bootstrap: bool,
}

/// Reads the serving fields of a KubeletConfiguration; `None` when the file is absent or is
/// not a YAML mapping (defaults then apply, and the result says so).
pub fn kubelet_serving(config: &Path) -> Option<KubeletServing> {
    let bytes = crate::pki::cert::read_file(config).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let v: serde_json::Value = serde_saphyr::from_str(&text).ok()?;
    v.as_object()?;
    let s = |k: &str| {
        v.get(k)
            .and_then(|x| x.as_str())
            .filter(|x| !x.is_empty())
            .map(str::to_string)
    };
    Some(KubeletServing {
        address: s("address"),
        port: v
            .get("port")
            .and_then(|p| p.as_u64())
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p != 0),
        tls_cert_file: s("tlsCertFile"),
        tls_private_key_file: s("tlsPrivateKeyFile"),
        server_tls_bootstrap: v
            .get("serverTLSBootstrap")
            .and_then(|b| b.as_bool())
            .unwrap_or(false),
    })
}

/// The certificate the kubelet serves, as the kubelet chooses it (cmd/kubelet/app/server.go
/// `InitializeTLS`, pkg/kubelet/certificate `NewKubeletServerCertificateManager`):
///
/// - `serverTLSBootstrap: true`: the certificate manager's file store (prefix
///   `kubelet-server` in the kubelet's cert dir): `kubelet-server-current.pem` (a symlink to
///   the dated PEM of the last rotation), else `tlsCertFile`, else `kubelet-server.crt`;
///   none before its first CSR is signed;
/// - otherwise `tlsCertFile`, and without one `<cert dir>/kubelet.crt`, the self-signed
///   certificate the kubelet generates on first start.
pub fn kubelet_cert(serving: &KubeletServing, kubelet_pki: &Path) -> Option<PathBuf> {
    if serving.server_tls_bootstrap {
        let current = kubelet_pki.join("kubelet-server-current.pem");
        if crate::pki::fsread::exists_nofollow(&current) {
            return Some(current);
        }
        if let Some(f) = &serving.tls_cert_file {
            return Some(PathBuf::from(f));
        }
        let plain = kubelet_pki.join("kubelet-server.crt");
        return crate::pki::fsread::exists_nofollow(&plain).then_some(plain);
    }
    Some(match &serving.tls_cert_file {
        Some(f) => PathBuf::from(f),
        None => kubelet_pki.join("kubelet.crt"),
    })
}

/// Resolves the kubelet's endpoint: the override, else its config file, else the kubelet's
/// defaults (`0.0.0.0:10250`, probed on loopback, and `<kubelet_pki>/kubelet.crt`).
pub fn resolve_kubelet(
    kubelet_config: &Path,
    kubelet_pki: &Path,
    overrides: &[EndpointOverride],
) -> Target {
    let conf = kubelet_serving(kubelet_config);
    let o = overrides
        .iter()
        .find(|o| o.endpoint == Some(Endpoint::Kubelet));
    let (address, address_source) = match (o.and_then(|o| o.address.clone()), &conf) {
        (Some(a), _) => (a, Source::Override),
        (None, Some(c)) => {
            let host = match c.address.as_deref() {
                None | Some("0.0.0.0") => "127.0.0.1",
                Some("::") => "::1",
                Some(h) => h,
            };
            (
                host_port(host, c.port.unwrap_or(10250)),
                Source::KubeletConfig,
            )
        }
        (None, None) => (host_port("127.0.0.1", 10250), Source::Default),
    };
    let (cert, cert_source) = match (o.and_then(|o| o.cert.clone()), &conf) {
        (Some(c), _) => (Some(PathBuf::from(c)), Source::Override),
        (None, Some(c)) => (kubelet_cert(c, kubelet_pki), Source::KubeletConfig),
        (None, None) => (
            kubelet_cert(&KubeletServing::default(), kubelet_pki),
            Source::Default,
        ),
    };
    Target {
        endpoint: Endpoint::Kubelet,
        address,
        address_source,
        cert,
        cert_source,
    }
}

/// Fills the node's own facts the kubeadm configuration `cfg` lacks from the static pod
/// manifests in `manifests_dir` (what kubeadm configured at init/join):
///
/// - the advertise address, when neither the configuration nor a param gives one:
///   kube-apiserver's `--advertise-address`;
/// - the node name, when it is only the hostname (no `nodeRegistration.name`, no param):
///   etcd's `--name` (kubeadm's etcd manifest sets it to the node name).
///
/// Returns where the advertise address comes from (`config`, `param`, `manifest`; `None`:
/// unknown, the apiserver/etcd SAN rules then cannot be computed), also kept in
/// `cfg.advertise_address_source`.
pub fn fill_node_facts(
    cfg: &mut crate::config::KubeadmConfig,
    manifests_dir: &Path,
) -> Option<&'static str> {
    use crate::config::NodeNameSource;
    if cfg.node_name_source == NodeNameSource::Hostname {
        let from_etcd = manifest_flags(manifests_dir, Component::Etcd)
            .and_then(|f| f.get("name").map(str::to_string))
            .filter(|n| !n.is_empty());
        if let Some(n) = from_etcd {
            cfg.san_inputs.node_name = n.clone();
            cfg.node_name = n;
            cfg.node_name_source = NodeNameSource::Manifest;
        }
    }
    if cfg.san_inputs.advertise_address.is_none() {
        let from_manifest = manifest_flags(manifests_dir, Component::KubeApiserver)
            .and_then(|f| f.get("advertise-address").map(str::to_string))
            .and_then(|a| a.parse().ok());
        if let Some(a) = from_manifest {
            cfg.san_inputs.advertise_address = Some(a);
            cfg.advertise_address_source = Some("manifest");
        }
    }
    cfg.advertise_address_source
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
    fn kubelet_config_gives_address_and_served_file() {
        let d = tempfile::tempdir().unwrap();
        let pki = d.path().join("pki");
        std::fs::create_dir_all(&pki).unwrap();
        let conf = d.path().join("config.yaml");
        // No config: the kubelet's defaults.
        let t = resolve_kubelet(&conf, &pki, &[]);
        assert_eq!(
            (t.address.as_str(), t.address_source, t.cert.clone()),
            (
                "127.0.0.1:10250",
                Source::Default,
                Some(pki.join("kubelet.crt"))
            )
        );
        // kubeadm's config: no tlsCertFile, no bootstrap → the self-signed kubelet.crt.
        std::fs::write(
            &conf,
            "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nport: 10350\naddress: 127.0.0.3\n",
        )
        .unwrap();
        let t = resolve_kubelet(&conf, &pki, &[]);
        assert_eq!(t.address, "127.0.0.3:10350");
        assert_eq!(t.address_source, Source::KubeletConfig);
        assert_eq!(t.cert, Some(pki.join("kubelet.crt")));
        // tlsCertFile.
        std::fs::write(
            &conf,
            "kind: KubeletConfiguration\ntlsCertFile: /srv/k.crt\n",
        )
        .unwrap();
        let t = resolve_kubelet(&conf, &pki, &[]);
        assert_eq!(t.address, "127.0.0.1:10250");
        assert_eq!(t.cert.as_deref(), Some(Path::new("/srv/k.crt")));
        // serverTLSBootstrap: nothing yet, then the rotated current.pem.
        std::fs::write(
            &conf,
            "kind: KubeletConfiguration\nserverTLSBootstrap: true\n",
        )
        .unwrap();
        assert_eq!(resolve_kubelet(&conf, &pki, &[]).cert, None);
        std::os::unix::fs::symlink(
            "kubelet-server-2026-01-01.pem",
            pki.join("kubelet-server-current.pem"),
        )
        .unwrap();
        assert_eq!(
            resolve_kubelet(&conf, &pki, &[]).cert,
            Some(pki.join("kubelet-server-current.pem"))
        );
        // Override wins.
        let o = EndpointOverride {
            endpoint: Some(Endpoint::Kubelet),
            address: Some("127.0.0.1:1".into()),
            cert: Some("/x.crt".into()),
        };
        let t = resolve_kubelet(&conf, &pki, &[o]);
        assert_eq!(
            (t.address.as_str(), t.address_source, t.cert_source),
            ("127.0.0.1:1", Source::Override, Source::Override)
        );
        // The kubelet is no static pod: the static-pod resolver never reads a manifest for it.
        assert_eq!(Endpoint::of(Owner::Kubelet), vec![Endpoint::Kubelet]);
        assert_eq!(Endpoint::of(Component::Etcd).len(), 2);
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
