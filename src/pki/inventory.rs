//! The one table of everything kubeadm manages (kubeadm `certlist.go` + the kubeconfig
//! handlers of `renewal/manager.go`). check, renew, csr and approve all iterate it; adding a
//! certificate means adding a row here.

use serde::{Deserialize, Serialize};

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
}

impl Entry {
    /// Whether this row is a CA.
    pub fn is_ca(&self) -> bool {
        self.kind == Kind::Ca
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

    #[test]
    fn kubelet_conf_is_not_a_row() {
        assert!(find("kubelet.conf").is_none());
        assert!(find("apiserver").is_some());
    }
}
