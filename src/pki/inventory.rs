//! The one table of everything kubeadm manages (kubeadm `certlist.go` + the kubeconfig
//! handlers of `renewal/manager.go`). check, renew, csr and approve all iterate it; adding a
//! certificate means adding a row here.

use serde::{Deserialize, Serialize};
use x509_parser::prelude::FromDer;

use crate::pki::cert::CertInfo;

/// The three kubeadm certificate authorities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum CaId {
    /// `ca`: the cluster CA (`ca.crt`/`ca.key`).
    Ca,
    /// `etcd-ca`: the etcd CA (`etcd/ca.crt`).
    EtcdCa,
    /// `front-proxy-ca`: the front proxy CA.
    FrontProxyCa,
}

impl CaId {
    /// All CAs in kubeadm's display order (sorted by name).
    pub const ALL: [CaId; 3] = [CaId::Ca, CaId::EtcdCa, CaId::FrontProxyCa];

    /// The name shown to users (`ca`, `etcd-ca`, `front-proxy-ca`).
    pub fn name(self) -> &'static str {
        match self {
            CaId::Ca => "ca",
            CaId::EtcdCa => "etcd-ca",
            CaId::FrontProxyCa => "front-proxy-ca",
        }
    }

    /// The file stem under the cert dir (`etcd/ca` for the etcd CA), which is also what
    /// kubeadm prints in "Detected external <base>".
    pub fn base_name(self) -> &'static str {
        match self {
            CaId::Ca => "ca",
            CaId::EtcdCa => "etcd/ca",
            CaId::FrontProxyCa => "front-proxy-ca",
        }
    }

    /// Whether this CA only exists with stacked (local) etcd.
    pub fn local_etcd(self) -> bool {
        self == CaId::EtcdCa
    }

    /// The inventory row of this CA.
    pub fn entry(self) -> &'static Entry {
        match self {
            CaId::Ca => &INVENTORY[0],
            CaId::EtcdCa => &INVENTORY[1],
            CaId::FrontProxyCa => &INVENTORY[2],
        }
    }

    /// Parses a user-facing CA name.
    pub fn from_name(name: &str) -> Option<CaId> {
        CaId::ALL.into_iter().find(|c| c.name() == name)
    }
}

/// Where a certificate lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    /// `<cert-dir>/<base>.crt` and `<cert-dir>/<base>.key`.
    Pki {
        /// File stem relative to the cert dir, e.g. `etcd/server`.
        base: &'static str,
    },
    /// The client cert of the current context's user in `<kubeconfig-dir>/<file>`.
    Kubeconfig {
        /// File name in the kubeconfig dir, e.g. `admin.conf`.
        file: &'static str,
    },
}

/// What a row is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// A certificate authority (never renewed).
    Ca,
    /// A leaf certificate in the PKI dir.
    Leaf,
    /// A client certificate embedded in (or referenced by) a kubeconfig.
    KubeconfigClient,
}

/// The TLS role of a leaf, which fixes the extended key usages a replacement must carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// A CA.
    Authority,
    /// serverAuth.
    Server,
    /// clientAuth.
    Client,
    /// serverAuth + clientAuth (etcd server and peer, etcd-io/etcd#9785).
    ServerAndClient,
}

impl Role {
    /// The extended key usages kubeadm issues for this role, exactly (`certlist.go`).
    pub fn ext_key_usages(self) -> &'static [&'static str] {
        match self {
            Role::Server => &["serverAuth"],
            Role::Client => &["clientAuth"],
            Role::ServerAndClient => &["serverAuth", "clientAuth"],
            Role::Authority => &[],
        }
    }

    /// The certificates API's `spec.usages` for a request of this role: digital signature,
    /// key encipherment and the role's extended key usages, in the API's words
    /// (`server auth`), as kubeadm's `certs renew --use-api` requests them.
    pub fn api_usages(self) -> &'static [&'static str] {
        match self {
            Role::Server => &["digital signature", "key encipherment", "server auth"],
            Role::Client => &["digital signature", "key encipherment", "client auth"],
            Role::ServerAndClient => &[
                "digital signature",
                "key encipherment",
                "server auth",
                "client auth",
            ],
            Role::Authority => &["digital signature", "key encipherment"],
        }
    }

    /// The role in one word for `csr export`'s text (`sign ... as a server certificate`).
    pub fn short_name(self) -> &'static str {
        match self {
            Role::Server => "server",
            Role::Client => "client",
            Role::ServerAndClient => "server-and-client",
            Role::Authority => "CA",
        }
    }

    /// How the certificates-API paths (renew `--use-api`, sign, approve) name the role:
    /// `serving`, as Kubernetes calls server certificates.
    pub fn api_name(self) -> &'static str {
        match self {
            Role::Server => "serving",
            Role::Client => "client",
            Role::ServerAndClient => "server-and-client (etcd)",
            Role::Authority => "CA",
        }
    }

    /// How the role is named in messages.
    pub fn describe(self) -> &'static str {
        match self {
            Role::Server => "server",
            Role::Client => "client",
            Role::ServerAndClient => "server-and-client (etcd)",
            Role::Authority => "CA",
        }
    }

    /// Whether kubeadm puts SANs into certificates of this role: server and etcd
    /// server/peer certificates carry DNS and IP SANs (`GetAPIServerAltNames`,
    /// `getAltNames`), client certificates carry none.
    pub fn has_sans(self) -> bool {
        matches!(self, Role::Server | Role::ServerAndClient | Role::Authority)
    }
}

/// The subject CN kubeadm gives a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommonName {
    /// A constant (`kube-apiserver`, `kubernetes-admin`, ...).
    Fixed(&'static str),
    /// The node name (`nodeRegistration.name`, mutator `setCommonNameToNodeName`): any
    /// non-empty value.
    NodeName,
    /// A CA: whatever the CA says (CAs are never renewed).
    Any,
}

/// Who a row's certificate identifies, as every kubeadm version issued it: the subject holds
/// only CN and O (`NewSignedCert`: `Subject = {CN, O}`), the CN is [`CommonName`], and the O
/// values are exactly one of `organizations` (compared as sets). Checked by renew before it
/// re-signs anything, so that renewal cannot turn a foreign identity into a kubeadm one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    /// The CN.
    pub common_name: CommonName,
    /// Every O set kubeadm has issued for the row; `&[]` is "no O".
    pub organizations: &'static [&'static [&'static str]],
}

/// No O at all (the only choice for most rows).
const NO_O: &[&[&str]] = &[&[]];
/// `kubeadm:cluster-admins` (kubeadm >= 1.29) or `system:masters` (before).
const ADMINS: &[&[&str]] = &[&["kubeadm:cluster-admins"], &["system:masters"]];
/// None (recent kubeadm) or `system:masters` (kubeadm <= 1.2x, e.g. v1.11-v1.22 fixtures).
const NONE_OR_MASTERS: &[&[&str]] = &[&[], &["system:masters"]];

const fn fixed(cn: &'static str, organizations: &'static [&'static [&'static str]]) -> Identity {
    Identity {
        common_name: CommonName::Fixed(cn),
        organizations,
    }
}

/// A control-plane component that reads certificates and must restart to pick up new ones.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Component {
    /// The etcd static pod.
    Etcd,
    /// kube-apiserver.
    KubeApiserver,
    /// kube-controller-manager.
    KubeControllerManager,
    /// kube-scheduler.
    KubeScheduler,
}

impl Component {
    /// The component's name as the static pod manifest is named.
    pub fn name(self) -> &'static str {
        match self {
            Component::Etcd => "etcd",
            Component::KubeApiserver => "kube-apiserver",
            Component::KubeControllerManager => "kube-controller-manager",
            Component::KubeScheduler => "kube-scheduler",
        }
    }
}

impl std::fmt::Display for Component {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The components that read any of `entries`, each once, in restart order (etcd first, then
/// the apiserver, controller-manager and scheduler: the enum's order).
pub fn components_of<'a>(entries: impl IntoIterator<Item = &'a Entry>) -> Vec<Component> {
    let set: std::collections::BTreeSet<Component> = entries
        .into_iter()
        .flat_map(|e| e.components.iter().copied())
        .collect();
    set.into_iter().collect()
}

/// Joins component names with `, ` (for messages).
pub fn join_components(components: &[Component]) -> String {
    components
        .iter()
        .map(|c| c.name())
        .collect::<Vec<_>>()
        .join(", ")
}

/// One row of the inventory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// User-facing name (`apiserver`, `etcd-peer`, `admin.conf`).
    pub name: &'static str,
    /// kubeadm's LongName, used in renew messages.
    pub long_name: &'static str,
    /// Where it lives.
    pub location: Location,
    /// Issuing CA; `None` for CAs.
    pub ca: Option<CaId>,
    /// What it is.
    pub kind: Kind,
    /// TLS role.
    pub role: Role,
    /// Only present with stacked etcd.
    pub local_etcd: bool,
    /// Components that read this certificate.
    pub components: &'static [Component],
    /// The subject kubeadm issues for this row.
    pub identity: Identity,
    /// Which of kubeadm's SAN rules gives this row's SANs from the configuration
    /// (`crate::config::sans`).
    pub sans: SanRule,
}

/// Where kubeadm takes a certificate's SANs from (`certs.go`: the `AltNames` function of its
/// `KubeadmCert`; `pki_helpers.go`: `GetAPIServerAltNames`, `GetEtcdAltNames`,
/// `GetEtcdPeerAltNames`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SanRule {
    /// None: kubeadm issues it without SANs (client certificates).
    NoSans,
    /// `GetAPIServerAltNames`.
    ApiServer,
    /// `GetEtcdAltNames`.
    EtcdServer,
    /// `GetEtcdPeerAltNames`.
    EtcdPeer,
    /// Not compared: a CA (client-go's self-signed CA carries its CN as a DNS SAN, which no
    /// configuration field sets).
    NotCompared,
}

impl Entry {
    /// Whether this row is a CA.
    pub fn is_ca(&self) -> bool {
        self.kind == Kind::Ca
    }

    /// What in `info` differs from what kubeadm issues for this row (its [`Identity`], the
    /// usages of its [`Role`], SANs of the right kinds only, CA:FALSE); empty when it is a
    /// certificate kubeadm could have issued. Each entry names the offending value and what
    /// was expected; values are certificate attributes, never file bytes.
    pub fn identity_mismatches(&self, info: &CertInfo) -> Vec<String> {
        let mut out = Vec::new();
        if self.is_ca() {
            return out;
        }
        // Subject: CN and O only, one CN.
        match x509_parser::x509::X509Name::from_der(&info.subject_der) {
            Ok((_, name)) => {
                let mut cns = 0;
                for a in name.iter_attributes() {
                    let oid = a.attr_type();
                    if *oid == x509_parser::oid_registry::OID_X509_COMMON_NAME {
                        cns += 1;
                    } else if *oid != x509_parser::oid_registry::OID_X509_ORGANIZATION_NAME {
                        let short = x509_parser::oid_registry::format_oid(
                            oid,
                            x509_parser::objects::oid_registry(),
                        );
                        out.push(format!(
                            "subject attribute {short} (kubeadm puts only CN and O in a subject)"
                        ));
                    }
                }
                if cns > 1 {
                    out.push(format!("{cns} CN attributes (kubeadm puts exactly one)"));
                }
            }
            Err(_) => out.push("subject does not parse".to_string()),
        }
        let cn = info.common_name.as_deref().unwrap_or("");
        match self.identity.common_name {
            CommonName::Fixed(want) if cn != want => {
                out.push(format!("CN={cn:?} (expected {want:?})"));
            }
            CommonName::NodeName if cn.is_empty() => {
                out.push("an empty CN (expected the node name)".to_string());
            }
            _ => {}
        }
        let mut orgs: Vec<&str> = info.organizations.iter().map(String::as_str).collect();
        orgs.sort_unstable();
        let org_ok = self.identity.organizations.iter().any(|set| {
            let mut want = set.to_vec();
            want.sort_unstable();
            want == orgs
        });
        if !org_ok {
            let show = |v: &[&str]| {
                if v.is_empty() {
                    "no O".to_string()
                } else {
                    v.iter()
                        .map(|o| format!("O={o}"))
                        .collect::<Vec<_>>()
                        .join(",")
                }
            };
            let want: Vec<String> = self
                .identity
                .organizations
                .iter()
                .map(|s| show(s))
                .collect();
            out.push(format!(
                "{} (expected {})",
                show(
                    &info
                        .organizations
                        .iter()
                        .map(String::as_str)
                        .collect::<Vec<_>>()
                ),
                want.join(" or ")
            ));
        }
        let mut eku: Vec<&str> = info.ext_key_usage.iter().map(String::as_str).collect();
        eku.sort_unstable();
        eku.dedup();
        let mut want_eku = self.role.ext_key_usages().to_vec();
        want_eku.sort_unstable();
        if eku != want_eku {
            out.push(format!(
                "extended key usages [{}] (expected [{}] for a {} certificate)",
                eku.join(", "),
                self.role.ext_key_usages().join(", "),
                self.role.describe()
            ));
        }
        if info.is_ca {
            out.push("CA:TRUE (a leaf is CA:FALSE)".to_string());
        }
        if self.role.has_sans() {
            for u in &info.uris {
                out.push(format!(
                    "SAN URI:{u} (kubeadm server certificates carry DNS and IP SANs only)"
                ));
            }
            for e in &info.emails {
                out.push(format!(
                    "SAN email:{e} (kubeadm server certificates carry DNS and IP SANs only)"
                ));
            }
        } else {
            for s in info.san_strings() {
                out.push(format!("SAN {s} (a client certificate carries no SANs)"));
            }
        }
        out
    }
}

use Component::*;

/// Every certificate kubeadm manages. The first three rows are the CAs, in `CaId::ALL` order.
///
/// kubelet.conf is deliberately not a row: kubeadm's renewal manager excludes it because
/// "management of this certificate is delegated to kubelet" (client cert rotation);
/// `check` diagnoses it separately (see `crate::check::kubelet_conf_status`).
pub static INVENTORY: [Entry; 14] = [
    Entry {
        name: "ca",
        long_name: "self-signed Kubernetes CA to provision identities for other Kubernetes components",
        location: Location::Pki { base: "ca" },
        ca: None,
        kind: Kind::Ca,
        role: Role::Authority,
        local_etcd: false,
        identity: Identity { common_name: CommonName::Any, organizations: &[] },
        sans: SanRule::NotCompared,
        components: &[],
    },
    Entry {
        name: "etcd-ca",
        long_name: "self-signed CA to provision identities for etcd",
        location: Location::Pki { base: "etcd/ca" },
        ca: None,
        kind: Kind::Ca,
        role: Role::Authority,
        local_etcd: true,
        identity: Identity { common_name: CommonName::Any, organizations: &[] },
        sans: SanRule::NotCompared,
        components: &[],
    },
    Entry {
        name: "front-proxy-ca",
        long_name: "self-signed CA to provision identities for front proxy",
        location: Location::Pki {
            base: "front-proxy-ca",
        },
        ca: None,
        kind: Kind::Ca,
        role: Role::Authority,
        local_etcd: false,
        identity: Identity { common_name: CommonName::Any, organizations: &[] },
        sans: SanRule::NotCompared,
        components: &[],
    },
    Entry {
        name: "admin.conf",
        long_name: "certificate embedded in the kubeconfig file for the admin to use and for kubeadm itself",
        location: Location::Kubeconfig { file: "admin.conf" },
        ca: Some(CaId::Ca),
        kind: Kind::KubeconfigClient,
        role: Role::Client,
        local_etcd: false,
        identity: fixed("kubernetes-admin", ADMINS),
        sans: SanRule::NoSans,
        components: &[],
    },
    Entry {
        name: "apiserver",
        long_name: "certificate for serving the Kubernetes API",
        location: Location::Pki { base: "apiserver" },
        ca: Some(CaId::Ca),
        kind: Kind::Leaf,
        role: Role::Server,
        local_etcd: false,
        identity: fixed("kube-apiserver", NO_O),
        sans: SanRule::ApiServer,
        components: &[KubeApiserver],
    },
    Entry {
        name: "apiserver-etcd-client",
        long_name: "certificate the apiserver uses to access etcd",
        location: Location::Pki {
            base: "apiserver-etcd-client",
        },
        ca: Some(CaId::EtcdCa),
        kind: Kind::Leaf,
        role: Role::Client,
        local_etcd: true,
        identity: fixed("kube-apiserver-etcd-client", NONE_OR_MASTERS),
        sans: SanRule::NoSans,
        components: &[KubeApiserver],
    },
    Entry {
        name: "apiserver-kubelet-client",
        long_name: "certificate for the API server to connect to kubelet",
        location: Location::Pki {
            base: "apiserver-kubelet-client",
        },
        ca: Some(CaId::Ca),
        kind: Kind::Leaf,
        role: Role::Client,
        local_etcd: false,
        identity: fixed("kube-apiserver-kubelet-client", ADMINS),
        sans: SanRule::NoSans,
        components: &[KubeApiserver],
    },
    Entry {
        name: "controller-manager.conf",
        long_name: "certificate embedded in the kubeconfig file for the controller manager to use",
        location: Location::Kubeconfig {
            file: "controller-manager.conf",
        },
        ca: Some(CaId::Ca),
        kind: Kind::KubeconfigClient,
        role: Role::Client,
        local_etcd: false,
        identity: fixed("system:kube-controller-manager", NO_O),
        sans: SanRule::NoSans,
        components: &[KubeControllerManager],
    },
    Entry {
        name: "etcd-healthcheck-client",
        long_name: "certificate for liveness probes to healthcheck etcd",
        location: Location::Pki {
            base: "etcd/healthcheck-client",
        },
        ca: Some(CaId::EtcdCa),
        kind: Kind::Leaf,
        role: Role::Client,
        local_etcd: true,
        identity: fixed("kube-etcd-healthcheck-client", NONE_OR_MASTERS),
        sans: SanRule::NoSans,
        components: &[],
    },
    Entry {
        name: "etcd-peer",
        long_name: "certificate for etcd nodes to communicate with each other",
        location: Location::Pki { base: "etcd/peer" },
        ca: Some(CaId::EtcdCa),
        kind: Kind::Leaf,
        role: Role::ServerAndClient,
        local_etcd: true,
        identity: Identity { common_name: CommonName::NodeName, organizations: NO_O },
        sans: SanRule::EtcdPeer,
        components: &[Etcd],
    },
    Entry {
        name: "etcd-server",
        long_name: "certificate for serving etcd",
        location: Location::Pki { base: "etcd/server" },
        ca: Some(CaId::EtcdCa),
        kind: Kind::Leaf,
        role: Role::ServerAndClient,
        local_etcd: true,
        identity: Identity { common_name: CommonName::NodeName, organizations: NO_O },
        sans: SanRule::EtcdServer,
        components: &[Etcd],
    },
    Entry {
        name: "front-proxy-client",
        long_name: "certificate for the front proxy client",
        location: Location::Pki {
            base: "front-proxy-client",
        },
        ca: Some(CaId::FrontProxyCa),
        kind: Kind::Leaf,
        role: Role::Client,
        local_etcd: false,
        identity: fixed("front-proxy-client", NO_O),
        sans: SanRule::NoSans,
        components: &[KubeApiserver],
    },
    Entry {
        name: "scheduler.conf",
        long_name: "certificate embedded in the kubeconfig file for the scheduler manager to use",
        location: Location::Kubeconfig {
            file: "scheduler.conf",
        },
        ca: Some(CaId::Ca),
        kind: Kind::KubeconfigClient,
        role: Role::Client,
        local_etcd: false,
        identity: fixed("system:kube-scheduler", NO_O),
        sans: SanRule::NoSans,
        components: &[KubeScheduler],
    },
    Entry {
        name: "super-admin.conf",
        long_name: "certificate embedded in the kubeconfig file for the super-admin",
        location: Location::Kubeconfig {
            file: "super-admin.conf",
        },
        ca: Some(CaId::Ca),
        kind: Kind::KubeconfigClient,
        role: Role::Client,
        local_etcd: false,
        identity: fixed("kubernetes-super-admin", &[&["system:masters"]]),
        sans: SanRule::NoSans,
        components: &[],
    },
];

/// The rows that apply to a cluster: with external etcd the five etcd rows disappear, exactly
/// as kubeadm's `GetCertsWithoutEtcd` does.
pub fn rows(external_etcd: bool) -> impl Iterator<Item = &'static Entry> {
    INVENTORY
        .iter()
        .filter(move |e| !(external_etcd && e.local_etcd))
}

/// The non-CA rows (what `renew all` iterates), sorted by name as kubeadm sorts handlers.
pub fn renewable(external_etcd: bool) -> impl Iterator<Item = &'static Entry> {
    rows(external_etcd).filter(|e| !e.is_ca())
}

/// Looks a row up by its user-facing name.
pub fn find(name: &str) -> Option<&'static Entry> {
    INVENTORY.iter().find(|e| e.name == name)
}

/// Resolves the `names` list against the inventory (kubeadm's error for unknown names).
pub fn select(
    names: &[String],
    layout: &crate::pki::Layout,
) -> crate::Result<(Vec<&'static Entry>, bool)> {
    let all = names.is_empty() || names.iter().any(|n| n == "all");
    if all {
        if names.len() > 1 {
            return Err(crate::Error::InvalidArgument(
                "`all` cannot be combined with other names".into(),
            ));
        }
        return Ok((renewable(layout.external_etcd).collect(), true));
    }
    let mut out: Vec<&'static Entry> = Vec::new();
    for n in names {
        let e = renewable(layout.external_etcd)
            .find(|e| e.name == n)
            .ok_or_else(|| crate::Error::UnknownCertificate(n.clone()))?;
        if !out.contains(&e) {
            out.push(e);
        }
    }
    out.sort_by_key(|e| e.name);
    Ok((out, false))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn names_unique_and_cas_resolve() {
        let mut seen = HashSet::new();
        for e in INVENTORY.iter() {
            assert!(seen.insert(e.name), "duplicate {}", e.name);
            if let Some(ca) = e.ca {
                let row = ca.entry();
                assert!(row.is_ca());
                assert_eq!(row.name, ca.name());
                assert_eq!(
                    row.location,
                    Location::Pki {
                        base: ca.base_name()
                    }
                );
                // A leaf of the etcd CA is an etcd row.
                assert_eq!(ca.local_etcd(), e.local_etcd, "{}", e.name);
            } else {
                assert!(e.is_ca());
            }
        }
    }

    #[test]
    fn leaves_sorted_like_kubeadm() {
        let names: Vec<_> = renewable(false).map(|e| e.name).collect();
        assert_eq!(
            names,
            [
                "admin.conf",
                "apiserver",
                "apiserver-etcd-client",
                "apiserver-kubelet-client",
                "controller-manager.conf",
                "etcd-healthcheck-client",
                "etcd-peer",
                "etcd-server",
                "front-proxy-client",
                "scheduler.conf",
                "super-admin.conf"
            ]
        );
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);
        // kubeadm TestNewManager: 11 handlers stacked, 7 with external etcd.
        assert_eq!(renewable(true).count(), 7);
        let cas: Vec<_> = rows(true).filter(|e| e.is_ca()).map(|e| e.name).collect();
        assert_eq!(cas, ["ca", "front-proxy-ca"]);
    }

    /// Every certificate of every real kubeadm fixture (v1.7 to v1.31) has the identity its
    /// row says kubeadm issues, and is signed by its row's CA.
    #[test]
    fn every_real_fixture_has_a_kubeadm_identity() {
        use crate::pki::{load, Cas, Layout, Material};
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        let mut checked = 0;
        for f in std::fs::read_dir(&root).unwrap() {
            let dir = f.unwrap().path();
            if !dir.join("ca.crt").exists() {
                continue;
            }
            let layout = Layout::new(&dir, dir.join("kubeconfig"), None);
            let cas = Cas::load(&layout);
            for e in renewable(layout.external_etcd) {
                let Material::Present(found) = load(&layout, e) else {
                    continue;
                };
                let m = e.identity_mismatches(&found.cert.info);
                assert!(m.is_empty(), "{}: {}: {m:?}", dir.display(), e.name);
                let ca = cas.get(e.ca.unwrap()).and_then(|c| c.cert()).unwrap();
                assert!(crate::pki::cert::signed_by(&found.cert.der, &ca.der));
                checked += 1;
            }
        }
        assert!(checked >= 50, "{checked}");
    }

    #[test]
    fn identity_mismatches_name_the_value() {
        let e = find("apiserver-kubelet-client").unwrap();
        let info = crate::pki::cert::parse_der(
            &crate::pki::issue::self_signed_ca(
                "kube-apiserver-kubelet-client",
                &crate::pki::issue::generate_key(crate::pki::issue::KeyAlgorithm::EcdsaP256)
                    .unwrap(),
                0,
                1000,
            )
            .unwrap(),
        )
        .unwrap();
        let m = e.identity_mismatches(&info);
        assert_eq!(
            m,
            [
                "no O (expected O=kubeadm:cluster-admins or O=system:masters)",
                "extended key usages [] (expected [clientAuth] for a client certificate)",
                "CA:TRUE (a leaf is CA:FALSE)",
                "SAN DNS:kube-apiserver-kubelet-client (a client certificate carries no SANs)",
            ]
        );
    }

    #[test]
    fn kubelet_conf_is_not_a_row() {
        assert!(find("kubelet.conf").is_none());
        assert!(find("apiserver").is_some());
    }
}
