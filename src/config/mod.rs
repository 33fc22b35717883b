//! kubeadm's configuration as the source of what the certificates should be: reading a
//! kubeadm config file (`--config`: InitConfiguration or JoinConfiguration plus
//! ClusterConfiguration, `kubeadm.k8s.io/v1beta3` or `v1beta4`, multi-document YAML),
//! the node's own facts (name, advertise address), and the expectations kubeadm derives
//! from them: SANs ([`sans`]), validity and key algorithm ([`Expectations`]).
//!
//! Reading is strict like kubeadm's: a kubeadm document of another apiVersion, a kind
//! kubeadm does not have, or a field its kind does not have ([`schema`]) is a
//! [`ConfigError`] naming the document and the field. KubeletConfiguration and
//! KubeProxyConfiguration documents are skipped. The file is read through
//! [`crate::pki::fsread`] (no symlinks, regular files, 1 MiB); no value of the file goes
//! into an error except the apiVersion, kind and field names it names, cut and reduced to
//! plain characters.

use std::net::IpAddr;
use std::path::Path;
#[cfg(test)]
use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use crate::error::{ConfigError, ConfigMapProblem, ConfigOrigin};
use crate::pki::cert::PublicKeyAlgorithm;
use crate::pki::inventory::{Entry, SanRule};

pub mod sans;
mod schema;

/// kubeadm's API group.
pub const GROUP: &str = "kubeadm.k8s.io";
/// The versions kubecert reads.
pub const VERSIONS: [&str; 2] = ["kubeadm.k8s.io/v1beta3", "kubeadm.k8s.io/v1beta4"];
/// kubeadm's default leaf validity (`constants.CertificateValidityPeriod`, 8760h).
pub const DEFAULT_CERT_VALIDITY: i64 = 8760 * 3600;
/// kubeadm's default CA validity (`constants.CACertificateValidityPeriod`, 87600h).
pub const DEFAULT_CA_VALIDITY: i64 = 87600 * 3600;
/// The values of `encryptionAlgorithm` kubeadm accepts (`EncryptionAlgorithmType`, with
/// ECDSA-P384 since 1.34).
pub const ALGORITHMS: [&str; 5] = [
    "RSA-2048",
    "RSA-3072",
    "RSA-4096",
    "ECDSA-P256",
    "ECDSA-P384",
];

/// A text from the file, made safe to print: at most 64 characters of
/// `[A-Za-z0-9./_-]`, anything else replaced by `?`.
fn shown(s: &str) -> String {
    let mut out: String = s
        .chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_alphanumeric() || "./_-[]".contains(c) {
                c
            } else {
                '?'
            }
        })
        .collect();
    if s.chars().count() > 64 {
        out.push('…');
    }
    out
}

/// Where the node name came from.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum NodeNameSource {
    /// `nodeRegistration.name`.
    Config,
    /// The hostname (kubeadm's default for `nodeRegistration.name`).
    Hostname,
    /// etcd's `--name` in its static pod manifest (kubeadm sets it to the node name).
    Manifest,
    /// The `node_name` param (`--node-name`).
    Param,
}

/// A kubeadm configuration, as far as the certificates are concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeadmConfig {
    /// Where it was read from.
    pub origin: ConfigOrigin,
    /// `kubeadm.k8s.io/v1beta3` or `kubeadm.k8s.io/v1beta4`.
    pub api_version: String,
    /// The node name.
    pub node_name: String,
    /// Where it came from.
    pub node_name_source: NodeNameSource,
    /// `localAPIEndpoint.advertiseAddress` (Init) or `controlPlane.localAPIEndpoint` (Join),
    /// or the `advertise_address` param.
    pub advertise_address: Option<IpAddr>,
    /// Where the advertise address of `san_inputs` came from: `config`, `param` or
    /// `manifest` (filled by `ops::endpoints::fill_node_facts`); `None`: unknown.
    pub advertise_address_source: Option<&'static str>,
    /// The inputs of the SAN rules (advertise address included when known).
    pub san_inputs: sans::SanInputs,
    /// `encryptionAlgorithm` (v1beta4; v1beta3: `ECDSA-P256` with the `PublicKeysECDSA`
    /// feature gate, else `RSA-2048`).
    pub encryption_algorithm: String,
    /// `certificateValidityPeriod`, seconds (default 8760h).
    pub cert_validity: i64,
    /// `caCertificateValidityPeriod`, seconds (default 87600h).
    pub ca_validity: i64,
    /// `certificatesDir`, when set.
    pub certificates_dir: Option<String>,
    /// certSANs entries kubeadm leaves out (not an IP nor an RFC 1123 name).
    pub ignored_sans: Vec<String>,
}

struct Doc<'a> {
    n: usize,
    api_version: String,
    kind: String,
    v: &'a Value,
}

impl Doc<'_> {
    fn get(&self, path: &[&str]) -> Option<&Value> {
        let mut v = self.v;
        for k in path {
            v = v.get(k)?;
        }
        (!v.is_null()).then_some(v)
    }
    fn str(&self, path: &[&str]) -> Option<String> {
        self.get(path).and_then(Value::as_str).map(str::to_string)
    }
    fn strs(&self, path: &[&str]) -> Vec<String> {
        self.get(path)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    }
    fn invalid(
        &self,
        origin: &ConfigOrigin,
        field: &str,
        expected: impl Into<String>,
    ) -> Box<ConfigError> {
        Box::new(ConfigError::Invalid {
            origin: origin.clone(),
            doc: self.n,
            kind: self.kind.clone(),
            api_version: self.api_version.clone(),
            field: field.to_string(),
            expected: expected.into(),
        })
    }
}

/// Reads a kubeadm config file. `hostname` gives the node name when the file has none
/// (kubeadm's default); pass [`hostname`].
pub fn load(
    path: &Path,
    hostname: impl FnOnce() -> Option<String>,
) -> Result<KubeadmConfig, Box<ConfigError>> {
    let bytes = crate::pki::fsread::read(path).map_err(|e| ConfigError::Read {
        path: path.to_path_buf(),
        source: Box::new(e),
    })?;
    let text = String::from_utf8(bytes).map_err(|_| ConfigError::Invalid {
        origin: ConfigOrigin::File(path.to_path_buf()),
        doc: 0,
        kind: "-".into(),
        api_version: "-".into(),
        field: "the file".into(),
        expected: "UTF-8 text".into(),
    })?;
    parse(path, &text, hostname)
}

/// Parses the text of a kubeadm config file (see [`load`]); `path` names it in errors.
pub fn parse(
    path: &Path,
    text: &str,
    hostname: impl FnOnce() -> Option<String>,
) -> Result<KubeadmConfig, Box<ConfigError>> {
    parse_from(&ConfigOrigin::File(path.to_path_buf()), text, hostname)
}

/// Parses the `ClusterConfiguration` key of the `kubeadm-config` ConfigMap: the same
/// strict reading as a file, named `configmap kube-system/kubeadm-config` in errors; the
/// key holds one ClusterConfiguration document and nothing else (kubeadm's
/// `upload-config`), so another kind is an error. The node facts are not in it: the node
/// name is the hostname until `ops::endpoints::fill_node_facts` or a param gives it.
pub fn parse_configmap(
    text: &str,
    hostname: impl FnOnce() -> Option<String>,
) -> Result<KubeadmConfig, Box<ConfigError>> {
    let origin = ConfigOrigin::ConfigMap;
    let cfg = parse_from(&origin, text, hostname)?;
    if let Some((doc, kind)) = node_document(text) {
        return Err(Box::new(ConfigError::Conflict {
            origin,
            doc,
            kind,
            why: "the ClusterConfiguration key holds only a ClusterConfiguration document".into(),
        }));
    }
    Ok(cfg)
}

/// The first document of a (parsed) multi-document text that is not a ClusterConfiguration.
fn node_document(text: &str) -> Option<(usize, String)> {
    let docs: Vec<Value> = serde_saphyr::from_multiple(text).ok()?;
    docs.iter().enumerate().find_map(|(i, v)| {
        let kind = v.get("kind")?.as_str()?;
        (kind != "ClusterConfiguration").then(|| (i + 1, shown(kind)))
    })
}

fn parse_from(
    origin: &ConfigOrigin,
    text: &str,
    hostname: impl FnOnce() -> Option<String>,
) -> Result<KubeadmConfig, Box<ConfigError>> {
    let docs: Vec<Value> = serde_saphyr::from_multiple(text).map_err(|e| ConfigError::Yaml {
        origin: origin.clone(),
        doc: 0,
        source: crate::error::YamlError(e),
    })?;
    let mut node: Option<Doc<'_>> = None;
    let mut cluster: Option<Doc<'_>> = None;
    for (i, v) in docs.iter().enumerate() {
        let n = i + 1;
        if v.is_null() {
            continue;
        }
        let Some(m) = v.as_object() else {
            return Err(Box::new(ConfigError::NoTypeMeta {
                origin: origin.clone(),
                doc: n,
                what: "mapping",
            }));
        };
        let field = |k: &'static str| {
            m.get(k)
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| {
                    Box::new(ConfigError::NoTypeMeta {
                        origin: origin.clone(),
                        doc: n,
                        what: k,
                    })
                })
        };
        let api_version = field("apiVersion")?;
        let kind = field("kind")?;
        let (group, _) = api_version.split_once('/').unwrap_or(("", &api_version));
        // The component configs kubeadm passes on: not ours to read.
        if matches!(
            (group, kind.as_str()),
            ("kubelet.config.k8s.io", "KubeletConfiguration")
                | ("kubeproxy.config.k8s.io", "KubeProxyConfiguration")
        ) {
            continue;
        }
        if !VERSIONS.contains(&api_version.as_str()) {
            return Err(Box::new(ConfigError::ApiVersion {
                origin: origin.clone(),
                doc: n,
                kind: shown(&kind),
                api_version: shown(&api_version),
            }));
        }
        let v4 = api_version.ends_with("v1beta4");
        let shape = match (kind.as_str(), v4) {
            ("InitConfiguration", false) => schema::INIT_V1BETA3,
            ("InitConfiguration", true) => schema::INIT_V1BETA4,
            ("ClusterConfiguration", false) => schema::CLUSTER_V1BETA3,
            ("ClusterConfiguration", true) => schema::CLUSTER_V1BETA4,
            ("JoinConfiguration", false) => schema::JOIN_V1BETA3,
            ("JoinConfiguration", true) => schema::JOIN_V1BETA4,
            // kubeadm reset / upgrade configuration: no certificate facts.
            ("ResetConfiguration" | "UpgradeConfiguration", true) => continue,
            _ => {
                return Err(Box::new(ConfigError::Kind {
                    origin: origin.clone(),
                    doc: n,
                    kind: shown(&kind),
                    api_version,
                }))
            }
        };
        let doc = Doc {
            n,
            api_version: api_version.clone(),
            kind: kind.clone(),
            v,
        };
        schema::check(v, shape, "").map_err(|m| match m {
            schema::Mismatch::Unknown(f) => Box::new(ConfigError::UnknownField {
                origin: origin.clone(),
                doc: n,
                kind: kind.clone(),
                api_version: api_version.clone(),
                field: shown(&f),
            }),
            schema::Mismatch::Type(f, t) => doc.invalid(origin, &shown(&f), t),
        })?;
        let slot = if kind == "ClusterConfiguration" {
            &mut cluster
        } else {
            &mut node
        };
        if let Some(prev) = slot {
            return Err(Box::new(ConfigError::Conflict {
                origin: origin.clone(),
                doc: n,
                kind,
                why: format!(
                    "a second node/cluster document (document {} is {})",
                    prev.n, prev.kind
                ),
            }));
        }
        *slot = Some(doc);
    }
    let version = match (&node, &cluster) {
        (None, None) => {
            return Err(Box::new(ConfigError::Empty {
                origin: origin.clone(),
            }))
        }
        (Some(a), Some(b)) if a.api_version != b.api_version => {
            return Err(Box::new(ConfigError::MixedVersions {
                origin: origin.clone(),
                first: a.api_version.clone(),
                second: b.api_version.clone(),
            }))
        }
        (Some(d), _) | (None, Some(d)) => d.api_version.clone(),
    };
    let v4 = version.ends_with("v1beta4");
    // Node facts.
    let (name, adv) = match &node {
        Some(d) => {
            let adv_path: &[&str] = if d.kind == "JoinConfiguration" {
                &["controlPlane", "localAPIEndpoint", "advertiseAddress"]
            } else {
                &["localAPIEndpoint", "advertiseAddress"]
            };
            let adv = match d.str(adv_path) {
                Some(a) if !a.is_empty() => Some(
                    a.parse::<IpAddr>()
                        .map_err(|_| d.invalid(origin, &adv_path.join("."), "an IP address"))?,
                ),
                _ => None,
            };
            (
                d.str(&["nodeRegistration", "name"])
                    .filter(|s| !s.is_empty()),
                adv,
            )
        }
        None => (None, None),
    };
    let (node_name, node_name_source) = match name {
        Some(n) => (n, NodeNameSource::Config),
        None => (
            hostname().unwrap_or_default().to_lowercase(),
            NodeNameSource::Hostname,
        ),
    };
    // Cluster facts (kubeadm's defaults when there is no ClusterConfiguration).
    let empty = Value::Null;
    let c = cluster.unwrap_or(Doc {
        n: 0,
        api_version: version.clone(),
        kind: "ClusterConfiguration".into(),
        v: &empty,
    });
    let etcd_local = c.get(&["etcd", "external"]).is_none();
    let san_inputs = sans::SanInputs {
        node_name: node_name.clone(),
        advertise_address: adv,
        service_subnet: c
            .str(&["networking", "serviceSubnet"])
            .unwrap_or_else(|| "10.96.0.0/12".into()),
        dns_domain: c
            .str(&["networking", "dnsDomain"])
            .unwrap_or_else(|| "cluster.local".into()),
        control_plane_endpoint: c.str(&["controlPlaneEndpoint"]),
        cert_sans: c.strs(&["apiServer", "certSANs"]),
        etcd_server_sans: c.strs(&["etcd", "local", "serverCertSANs"]),
        etcd_peer_sans: c.strs(&["etcd", "local", "peerCertSANs"]),
        etcd_local,
    };
    if sans::service_vip(&san_inputs.service_subnet).is_none() {
        return Err(c.invalid(
            origin,
            "networking.serviceSubnet",
            "a CIDR list such as 10.96.0.0/12",
        ));
    }
    if let Some(ep) = san_inputs
        .control_plane_endpoint
        .as_deref()
        .filter(|e| !e.is_empty())
    {
        if sans::endpoint_host(ep).is_none() {
            return Err(c.invalid(
                origin,
                "controlPlaneEndpoint",
                "host[:port] with an IP or an RFC 1123 DNS name as host",
            ));
        }
    }
    let encryption_algorithm = if v4 {
        match c.str(&["encryptionAlgorithm"]) {
            None => "RSA-2048".to_string(),
            Some(a) if ALGORITHMS.contains(&a.as_str()) => a,
            Some(_) => {
                return Err(c.invalid(
                    origin,
                    "encryptionAlgorithm",
                    format!("one of {}", ALGORITHMS.join(", ")),
                ))
            }
        }
    } else if c
        .get(&["featureGates", "PublicKeysECDSA"])
        .and_then(Value::as_bool)
        == Some(true)
    {
        "ECDSA-P256".to_string()
    } else {
        "RSA-2048".to_string()
    };
    let duration = |field: &str, default: i64| -> Result<i64, Box<ConfigError>> {
        match c.str(&[field]) {
            None => Ok(default),
            Some(s) => {
                // metav1.Duration: Go's time.ParseDuration (no days or weeks).
                let go = !s.contains(['d', 'w']);
                match crate::timefmt::parse_duration(&s) {
                    Ok(v) if go && v > 0 => Ok(v),
                    _ => Err(c.invalid(origin, field, "a positive Go duration such as 8760h")),
                }
            }
        }
    };
    let (cert_validity, ca_validity) = if v4 {
        (
            duration("certificateValidityPeriod", DEFAULT_CERT_VALIDITY)?,
            duration("caCertificateValidityPeriod", DEFAULT_CA_VALIDITY)?,
        )
    } else {
        (DEFAULT_CERT_VALIDITY, DEFAULT_CA_VALIDITY)
    };
    let ignored_sans = sans::ignored(
        &san_inputs
            .cert_sans
            .iter()
            .chain(&san_inputs.etcd_server_sans)
            .chain(&san_inputs.etcd_peer_sans)
            .cloned()
            .collect::<Vec<_>>(),
    );
    Ok(KubeadmConfig {
        origin: origin.clone(),
        api_version: version,
        node_name,
        node_name_source,
        advertise_address: adv,
        advertise_address_source: adv.map(|_| "config"),
        san_inputs,
        encryption_algorithm,
        cert_validity,
        ca_validity,
        certificates_dir: c.str(&["certificatesDir"]),
        ignored_sans,
    })
}

/// The node's hostname (kubeadm's default node name), from uname.
pub fn hostname() -> Option<String> {
    let u = rustix::system::uname();
    let n = u.nodename().to_str().ok()?.trim().to_string();
    (!n.is_empty()).then_some(n)
}

impl KubeadmConfig {
    /// The validity kubeadm gives `e` when it issues it (CAs: caCertificateValidityPeriod).
    pub fn validity_of(&self, e: &Entry) -> i64 {
        if e.is_ca() {
            self.ca_validity
        } else {
            self.cert_validity
        }
    }

    /// The key algorithm kubeadm gives every key it generates.
    pub fn key_algorithm(&self) -> PublicKeyAlgorithm {
        PublicKeyAlgorithm::from(self.encryption_algorithm.clone())
    }

    /// The SANs kubeadm issues for `e` ([`sans::expected`]).
    pub fn expected_sans(
        &self,
        e: &Entry,
    ) -> Result<Option<std::collections::BTreeSet<String>>, sans::SanRuleError> {
        sans::expected(e.sans, &self.san_inputs)
    }
}

/// Where the kubeadm configuration comes from, and the node facts that override it:
/// flattened into the params of `check`/`metrics` (`drift`), `renew` and `config expected`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct ConfigParams {
    /// The kubeadm config file (InitConfiguration/JoinConfiguration + ClusterConfiguration,
    /// v1beta3 or v1beta4). On the socket a confined caller may name only the file the
    /// agent was started with (`serve --kubeadm-config`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<String>,
    /// Instead of `config`: read the ClusterConfiguration from the ConfigMap
    /// `kube-system/kubeadm-config` (key `ClusterConfiguration`) through the API server of
    /// this kubeconfig; the node's name and advertise address then come from the static pod
    /// manifests (etcd's `--name`, kube-apiserver's `--advertise-address`), the hostname, or
    /// `node_name`/`advertise_address`. On the socket a confined caller may name only the
    /// agent's `--api-kubeconfig`. Needs the `k8s` feature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubeconfig: Option<String>,
    /// The node's name, over the configuration's `nodeRegistration.name`, etcd's `--name`
    /// and the hostname (an HA node's own name: a per-host inventory variable).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,
    /// The node's advertise address (an IP), over the configuration's and
    /// kube-apiserver's `--advertise-address`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advertise_address: Option<String>,
}

/// Reads the text of the `ClusterConfiguration` key of `kube-system/kubeadm-config` through
/// the API server of a kubeconfig. `config` cannot depend on the API client (`kubeapi`
/// depends on `renew`, which depends on `config`): the caller passes it in
/// (`kubecert::kubeadm_configmap_reader()`, or [`configmap_not_compiled_in`]).
pub type ConfigMapReader<'a> = &'a (dyn Fn(&Path) -> Result<String, Box<ConfigError>> + Sync);

/// The [`ConfigMapReader`] of a build without the `k8s` feature: always
/// [`ConfigError::NotCompiledIn`].
pub fn configmap_not_compiled_in(kubeconfig: &Path) -> Result<String, Box<ConfigError>> {
    Err(Box::new(ConfigError::NotCompiledIn {
        kubeconfig: kubeconfig.to_path_buf(),
    }))
}

impl ConfigParams {
    /// Whether a configuration source (`config` or `kubeconfig`) is given.
    pub fn given(&self) -> bool {
        self.config.is_some() || self.kubeconfig.is_some()
    }

    /// Checks the combination before anything is read: not both sources, no node fact
    /// without a source, a node name kubeadm accepts, an IP as advertise address.
    pub fn validate(&self) -> crate::Result<()> {
        let bad = |m: &str| Err(crate::Error::InvalidArgument(m.to_string()));
        if self.config.is_some() && self.kubeconfig.is_some() {
            return bad("give either --config (a kubeadm config file) or --kubeconfig (the kubeadm-config ConfigMap), not both");
        }
        if !self.given() && (self.node_name.is_some() || self.advertise_address.is_some()) {
            return bad("--node-name and --advertise-address go with --config or --kubeconfig (the configuration they complete)");
        }
        if let Some(n) = &self.node_name {
            let ok = !n.is_empty()
                && n.len() <= 253
                && n.split('.').all(|l| {
                    !l.is_empty()
                        && l.len() <= 63
                        && l.bytes()
                            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                        && !l.starts_with('-')
                        && !l.ends_with('-')
                });
            if !ok {
                return bad(
                    "--node-name must be a lower-case RFC 1123 DNS name (a Kubernetes node name)",
                );
            }
        }
        if let Some(a) = &self.advertise_address {
            if a.parse::<IpAddr>().is_err() {
                return bad("--advertise-address must be an IP address");
            }
        }
        Ok(())
    }

    /// Reads the configuration (`None` when no source is given) and applies `node_name` and
    /// `advertise_address`. The manifests' facts are filled in by the caller
    /// (`ops::endpoints::fill_node_facts`: `config` cannot depend on `ops`).
    pub fn load(
        &self,
        read_configmap: ConfigMapReader<'_>,
    ) -> crate::Result<Option<KubeadmConfig>> {
        self.validate()?;
        let mut cfg = match (&self.config, &self.kubeconfig) {
            (Some(path), _) => load(Path::new(path), hostname)?,
            (None, Some(kc)) => parse_configmap(&read_configmap(Path::new(kc))?, hostname)?,
            (None, None) => return Ok(None),
        };
        if let Some(n) = &self.node_name {
            cfg.node_name = n.clone();
            cfg.san_inputs.node_name = n.clone();
            cfg.node_name_source = NodeNameSource::Param;
        }
        if let Some(a) = self
            .advertise_address
            .as_deref()
            .and_then(|a| a.parse().ok())
        {
            cfg.advertise_address = Some(a);
            cfg.san_inputs.advertise_address = Some(a);
            cfg.advertise_address_source = Some("param");
        }
        Ok(Some(cfg))
    }
}

/// Params of `config expected` (CLI only): what kubeadm would issue for this configuration.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ExpectedParams {
    /// The kubeadm config file, or the ConfigMap through `kubeconfig`, and node facts.
    #[serde(flatten)]
    pub source: ConfigParams,
    /// Treat etcd as external: no etcd rows.
    #[serde(default)]
    pub external_etcd: bool,
}

/// One certificate as kubeadm would issue it for the configuration.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ExpectedCert {
    /// Inventory name.
    pub name: String,
    /// Its SANs (`DNS:x`, `IP:y`), sorted; absent for CAs (not compared) or when the rule
    /// cannot be computed (see `sansError`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sans: Option<Vec<String>>,
    /// Why the SANs cannot be computed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sans_error: Option<String>,
    /// Validity of a new certificate, seconds.
    pub validity_seconds: i64,
    /// Key algorithm of a new key.
    pub key_algorithm: String,
}

/// What kubeadm would issue for a configuration.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Expected {
    /// The file read, or `configmap kube-system/kubeadm-config`.
    pub config: String,
    /// Its version.
    pub api_version: String,
    /// The node name.
    pub node_name: String,
    /// Where it came from.
    pub node_name_source: NodeNameSource,
    /// The advertise address, when the configuration (or the param) has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advertise_address: Option<String>,
    /// `encryptionAlgorithm` as kubeadm applies it.
    pub encryption_algorithm: String,
    /// certSANs/serverCertSANs/peerCertSANs entries kubeadm leaves out.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignored_sans: Vec<String>,
    /// Per certificate.
    pub certificates: Vec<ExpectedCert>,
}

/// `config expected`: reads the configuration and lists what kubeadm would issue (the node
/// facts from the configuration or the params only: no manifest is read).
pub fn expected(
    p: &ExpectedParams,
    read_configmap: ConfigMapReader<'_>,
) -> crate::Result<Expected> {
    let Some(cfg) = p.source.load(read_configmap)? else {
        return Err(crate::Error::InvalidArgument(
            "config expected needs --config FILE or --kubeconfig FILE (the kubeadm-config ConfigMap)".into(),
        ));
    };
    let certificates = crate::pki::inventory::rows(p.external_etcd || !cfg.san_inputs.etcd_local)
        .map(|e| {
            let (sans, sans_error) = match cfg.expected_sans(e) {
                Ok(s) => (s.map(|s| s.into_iter().collect()), None),
                Err(err) => (None, Some(err.to_string())),
            };
            ExpectedCert {
                name: e.name.to_string(),
                sans,
                sans_error,
                validity_seconds: cfg.validity_of(e),
                key_algorithm: cfg.encryption_algorithm.clone(),
            }
        })
        .collect();
    Ok(Expected {
        config: cfg.origin.label(),
        api_version: cfg.api_version.clone(),
        node_name: cfg.node_name.clone(),
        node_name_source: cfg.node_name_source,
        advertise_address: cfg.advertise_address.map(|a| a.to_string()),
        encryption_algorithm: cfg.encryption_algorithm.clone(),
        ignored_sans: cfg.ignored_sans.clone(),
        certificates,
    })
}

/// Whether a rule applies to the row at all (used by the drift report's wording).
pub fn has_san_rule(e: &Entry) -> bool {
    !matches!(e.sans, SanRule::NotCompared)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> (PathBuf, String) {
        let p = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/config")
            .join(name);
        let t = std::fs::read_to_string(&p).unwrap();
        (p, t)
    }

    #[test]
    fn v1beta4_fixture() {
        let (p, t) = fixture("v1beta4-init.yaml");
        let c = parse(&p, &t, || None).unwrap();
        assert_eq!(c.api_version, "kubeadm.k8s.io/v1beta4");
        assert_eq!(c.node_name, "ec2-10-100-0-1");
        assert_eq!(c.node_name_source, NodeNameSource::Config);
        assert_eq!(c.advertise_address, Some("10.100.0.1".parse().unwrap()));
        assert_eq!(c.encryption_algorithm, "ECDSA-P256");
        assert_eq!(c.cert_validity, 8760 * 3600);
        assert_eq!(c.ca_validity, 87600 * 3600);
        assert_eq!(c.san_inputs.service_subnet, "10.96.0.0/16");
        assert_eq!(c.san_inputs.etcd_peer_sans, ["10.100.0.1"]);
        assert_eq!(c.certificates_dir.as_deref(), Some("/etc/kubernetes/pki"));
    }

    #[test]
    fn v1beta3_fixture_and_hostname_default() {
        let (p, t) = fixture("v1beta3-init.yaml");
        let c = parse(&p, &t, || None).unwrap();
        assert_eq!(c.api_version, "kubeadm.k8s.io/v1beta3");
        assert_eq!(c.encryption_algorithm, "RSA-2048");
        assert_eq!(c.san_inputs.cert_sans.len(), 2);
        // No nodeRegistration.name: the hostname, lower-cased as kubeadm does.
        let t = "apiVersion: kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration\nfeatureGates:\n  PublicKeysECDSA: true\n";
        let c = parse(&p, t, || Some("CP-1".into())).unwrap();
        assert_eq!(c.node_name, "cp-1");
        assert_eq!(c.node_name_source, NodeNameSource::Hostname);
        assert_eq!(c.encryption_algorithm, "ECDSA-P256");
        assert_eq!(c.advertise_address, None);
    }

    #[test]
    fn strict_errors_name_document_and_field_without_values() {
        let p = Path::new("/x/kubeadm.yaml");
        let e = parse(p, "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nnodeRegistration:\n  nmae: secret-value\n", || None).unwrap_err();
        assert_eq!(e.to_string(), "kubeadm config /x/kubeadm.yaml: document 1 (InitConfiguration, kubeadm.k8s.io/v1beta4): unknown field nodeRegistration.nmae");
        let e = parse(
            p,
            "---\napiVersion: kubeadm.k8s.io/v1beta1\nkind: ClusterConfiguration\n",
            || None,
        )
        .unwrap_err();
        assert!(matches!(*e, ConfigError::ApiVersion { doc: 1, .. }), "{e}");
        let e = parse(p, "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\ncertificateValidityPeriod: 365d\n", || None).unwrap_err();
        assert!(
            e.to_string()
                .contains("certificateValidityPeriod must be a positive Go duration"),
            "{e}"
        );
        let e = parse(p, "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nlocalAPIEndpoint:\n  advertiseAddress: sekrit\n", || None).unwrap_err();
        assert!(!e.to_string().contains("sekrit"), "{e}");
        let e = parse(
            p,
            "apiVersion: kubeadm.k8s.io/v1beta4\nkind: FooConfiguration\n",
            || None,
        )
        .unwrap_err();
        assert!(matches!(*e, ConfigError::Kind { .. }), "{e}");
        let e = parse(p, "apiVersion: v1\nkind: ConfigMap\n", || None).unwrap_err();
        assert!(matches!(*e, ConfigError::ApiVersion { .. }), "{e}");
        let e = parse(
            p,
            "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n",
            || None,
        )
        .unwrap_err();
        assert!(matches!(*e, ConfigError::Empty { .. }), "{e}");
        let e = parse(p, "apiVersion: kubeadm.k8s.io/v1beta3\nkind: InitConfiguration\n---\napiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\n", || None).unwrap_err();
        assert!(matches!(*e, ConfigError::MixedVersions { .. }), "{e}");
        let e = parse(p, "a: [", || None).unwrap_err();
        assert!(matches!(*e, ConfigError::Yaml { .. }), "{e}");
    }

    #[test]
    fn configmap_text_is_read_strictly_and_named_as_the_configmap() {
        let t = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\napiServer:\n  certSANs: [a.example]\n";
        let c = parse_configmap(t, || Some("host-1".into())).unwrap();
        assert_eq!(c.origin, ConfigOrigin::ConfigMap);
        assert_eq!(c.origin.label(), "configmap kube-system/kubeadm-config");
        assert_eq!(c.node_name, "host-1");
        assert_eq!(c.node_name_source, NodeNameSource::Hostname);
        assert_eq!(c.advertise_address_source, None);
        let e = parse_configmap(&t.replace("certSANs", "certSans"), || None).unwrap_err();
        assert_eq!(e.to_string(), "configmap kube-system/kubeadm-config (key ClusterConfiguration): document 1 (ClusterConfiguration, kubeadm.k8s.io/v1beta4): unknown field apiServer.certSans");
        // The key holds a ClusterConfiguration only.
        let e = parse_configmap(
            &format!("{t}---\napiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\n"),
            || None,
        )
        .unwrap_err();
        assert!(matches!(*e, ConfigError::Conflict { doc: 2, .. }), "{e}");
        assert!(
            e.to_string()
                .starts_with("configmap kube-system/kubeadm-config"),
            "{e}"
        );
    }

    #[test]
    fn config_params_validate_before_reading_and_override_node_facts() {
        let fail = |p: ConfigParams, needle: &str| {
            let e = p.load(&configmap_not_compiled_in).unwrap_err();
            assert!(e.to_string().contains(needle), "{needle}: {e}");
        };
        let kc = || Some("/etc/kubernetes/admin.conf".to_string());
        fail(
            ConfigParams {
                config: Some("/x".into()),
                kubeconfig: kc(),
                ..Default::default()
            },
            "not both",
        );
        fail(
            ConfigParams {
                node_name: Some("n".into()),
                ..Default::default()
            },
            "go with --config or --kubeconfig",
        );
        fail(
            ConfigParams {
                kubeconfig: kc(),
                node_name: Some("Node_1".into()),
                ..Default::default()
            },
            "--node-name must be",
        );
        fail(
            ConfigParams {
                kubeconfig: kc(),
                advertise_address: Some("10.0.0.300".into()),
                ..Default::default()
            },
            "--advertise-address must be an IP",
        );
        // Without the API client: not compiled in, named.
        fail(
            ConfigParams {
                kubeconfig: kc(),
                ..Default::default()
            },
            "configmap kube-system/kubeadm-config (kubeconfig /etc/kubernetes/admin.conf): kubecert was built without the k8s feature (not compiled in)",
        );
        // A reader's text, with the node facts of the params.
        let read = |_: &Path| -> Result<String, Box<ConfigError>> {
            Ok("apiVersion: kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration\n".into())
        };
        let c = ConfigParams {
            kubeconfig: kc(),
            node_name: Some("cp-2".into()),
            advertise_address: Some("10.0.0.2".into()),
            ..Default::default()
        }
        .load(&read)
        .unwrap()
        .unwrap();
        assert_eq!(c.node_name, "cp-2");
        assert_eq!(c.san_inputs.node_name, "cp-2");
        assert_eq!(c.node_name_source, NodeNameSource::Param);
        assert_eq!(
            c.san_inputs.advertise_address,
            Some("10.0.0.2".parse().unwrap())
        );
        assert_eq!(c.advertise_address_source, Some("param"));
        assert_eq!(ConfigParams::default().load(&read).unwrap(), None);
    }
}
