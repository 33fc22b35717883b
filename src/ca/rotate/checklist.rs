//! What kubecert cannot do from the node, printed after each phase, and the components to
//! restart.

use std::path::Path;

use super::kubelet;
use super::phase::State;
use super::Phase;
use crate::ca::join_hash;
use crate::ops::endpoints::Owner;
use crate::pki::inventory::CaId;
use crate::pki::Layout;

pub(super) fn checklist(
    id: CaId,
    phase: Phase,
    rollback: bool,
    s: &State,
    layout: &Layout,
    kubelet_pki: &Path,
) -> Vec<String> {
    let mut v = Vec::new();
    let (old, new) = s.old_new();
    let restart = owner_names(&components(id));
    v.push(format!(
        "restart {restart} on this node so that they load the new files (`kubecert restart`); \
         run this phase on every control-plane node before the next phase starts"
    ));
    if id == CaId::Ca {
        v.push(CLUSTER_INFO_MANUAL.into());
        v.push(
            "kubeconfigs of users elsewhere: give them the CA data of this phase (and, after \
             promote, client certificates signed by the new CA)"
                .into(),
        );
        v.push(
            "workloads: pods read the cluster CA from the kube-root-ca.crt ConfigMap of each \
             namespace (published by kube-controller-manager from its --root-ca-file); \
             restart workloads that cache it"
                .into(),
        );
        for c in kubelet::file_clients(layout) {
            if kubelet::in_kubelet_pki(&c, kubelet_pki) {
                v.push(format!(
                    "{}: its client certificate {} (the kubelet's rotated pair in {}) is \
                     re-issued by the new CA at promote, same key and identity (a rollback of \
                     promote puts the old pair back)",
                    c.kubeconfig.display(),
                    c.file.display(),
                    kubelet_pki.display()
                ));
            } else {
                v.push(format!(
                    "{}: its client certificate {} is a file kubecert does not re-sign \
                     (not the kubelet-client-current.pem of the kubelet PKI dir {}, \
                     --kubelet-pki): after promote, let the kubelet request a new one \
                     (kube-controller-manager signs it with the new key) or rebuild it with \
                     `kubecert kubelet-conf rebuild`, before distrust",
                    c.kubeconfig.display(),
                    c.file.display(),
                    kubelet_pki.display()
                ));
            }
        }
    }
    if let (Some(o), Some(n)) = (old, new) {
        let signing = match (phase, rollback) {
            (Phase::Stage, false) | (Phase::Promote, true) => o,
            _ => n,
        };
        if id == CaId::Ca {
            v.push(format!(
                "kubeadm join: --discovery-token-ca-cert-hash {} (the old CA's is {}, the new \
                 CA's {}; give both while both are trusted)",
                join_hash(&signing.info.spki_der),
                join_hash(&o.info.spki_der),
                join_hash(&n.info.spki_der)
            ));
        }
    }
    if id == CaId::Ca && phase == Phase::Distrust && !rollback {
        v.push(
            "service-account tokens are signed by sa.key, not by the CA: rotate sa.key/sa.pub \
             separately (docs/ca-rotation.md)"
                .into(),
        );
    }
    v
}

/// The checklist line for cluster-info without `--kubeconfig`.
pub(super) const CLUSTER_INFO_MANUAL: &str =
    "the cluster-info ConfigMap in kube-public (its kubeconfig's \
     certificate-authority-data): pass --kubeconfig /etc/kubernetes/admin.conf to have kubecert \
     update it, or update it by hand with the bundle of this phase (`kubectl -n kube-public \
     edit configmap cluster-info`); its jws-kubeconfig-<token-id> signatures are re-computed \
     by kube-controller-manager's bootstrapsigner controller";

pub(super) fn owner_names(v: &[Owner]) -> String {
    v.iter().map(|o| o.name()).collect::<Vec<_>>().join(", ")
}

pub(super) fn components(id: CaId) -> Vec<Owner> {
    match id {
        CaId::Ca => vec![
            Owner::KubeApiserver,
            Owner::KubeControllerManager,
            Owner::KubeScheduler,
            Owner::Kubelet,
        ],
        CaId::EtcdCa => vec![Owner::Etcd, Owner::KubeApiserver],
        CaId::FrontProxyCa => vec![Owner::KubeApiserver],
    }
}
