//! Confinement of the root agent: the PKI it serves is fixed when it starts
//! (`kubecert serve --cert-dir … --kubeconfig-dir … --kubelet-pki … --backup-root …`), not
//! chosen by its callers.
//!
//! Every params type that carries paths lists them in ONE place, its [`PathParams`] impl
//! below (approve's, which lives behind the `k8s` feature, beside its row in
//! `rpc::api`). Before a call runs, [`Roots::apply`]:
//!
//! - fills every absent path param from the configured roots (for every caller: an agent
//!   started with `--cert-dir X` serves X by default), and
//! - for a *confined* caller (on the socket: not root and not the agent's own uid), refuses
//!   any path param that is present and not the configured root (compared after lexical
//!   normalisation: absolute, `.` and `..` resolved, trailing `/` dropped) with
//!   [`Error::PathNotAllowed`]; an accepted value is replaced by the configured root itself,
//!   so what runs is exactly what the agent was started with.
//!
//! Roots that have no sensible default ([`Roots::csr_dir`], [`Roots::textfile_dir`],
//! [`Roots::approve_policy`], [`Roots::kubeadm_config`]) are `None` unless configured; then
//! a confined caller cannot use the param at all.
//!
//! The kubeadm config file of `check`/`metrics` `drift` and of `renew` (`config`) is such a
//! root: the agent reads it as root, so a confined caller may name only the file the agent
//! was started with (`serve --kubeadm-config`); it is never filled in (the check reads it
//! only with `drift`, and `config` without `drift` is refused; renew follows it only when
//! asked). Their other source, `kubeconfig` (the kubeadm-config ConfigMap), is confined to
//! the agent's `--api-kubeconfig` and never filled in either.

use std::path::{Path, PathBuf};

use crate::check::CheckParams;
use crate::csr::{CsrExportParams, CsrImportParams};
use crate::error::{Error, Result};
use crate::kubelet::KubeletConfParams;
use crate::metrics::MetricsParams;
use crate::ops::health::HealthParams;
use crate::ops::restart::RestartParams;
use crate::ops::served::ServedParams;
use crate::pki::restore::RestoreParams;
use crate::pki::{self, PkiLocation};
use crate::renew::RenewParams;

/// What the agent serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Roots {
    /// PKI dir (`--cert-dir`, default `/etc/kubernetes/pki`).
    pub cert_dir: PathBuf,
    /// Kubeconfig dir (`--kubeconfig-dir`, default `/etc/kubernetes`).
    pub kubeconfig_dir: PathBuf,
    /// kubelet PKI dir (`--kubelet-pki`, default `/var/lib/kubelet/pki`).
    pub kubelet_pki: PathBuf,
    /// Where renew/csr-import put backups and the only place restore reads them from
    /// (`--backup-root`, default `<cert-dir>/../kubecert-backup`).
    pub backup_root: PathBuf,
    /// The scheduled renewal's state file read by `metrics` (`--state-file`, default
    /// `<cert-dir>/../kubecert-state.json`).
    pub state_file: PathBuf,
    /// CSR dir of csr-export/csr-import (`--csr-dir`; none by default).
    pub csr_dir: Option<PathBuf>,
    /// node_exporter textfile dir of `metrics` (`--textfile-dir`; none by default). Never
    /// filled in: without `textfile_dir` metrics only reads.
    pub textfile_dir: Option<PathBuf>,
    /// Kubeconfig approve reaches the API server with (`--api-kubeconfig`, default
    /// `<kubeconfig-dir>/admin.conf`).
    pub api_kubeconfig: PathBuf,
    /// approve's policy file (`--approve-policy`; none: the built-in policy).
    pub approve_policy: Option<PathBuf>,
    /// The kubeadm config file `drift` may read (`--kubeadm-config`; none by default).
    pub kubeadm_config: Option<PathBuf>,
    /// Static pod manifests of `restart`, `health` and `served` (default
    /// `<kubeconfig-dir>/manifests`).
    pub manifests_dir: PathBuf,
    /// Where `restart` parks manifests (default `<manifests-dir>/../kubecert-parked-manifests`).
    pub park_dir: PathBuf,
    /// The kubelet config the served proof reads the kubelet's endpoint from
    /// (`--kubelet-config`, default `/var/lib/kubelet/config.yaml`).
    pub kubelet_config: PathBuf,
}

impl Default for Roots {
    /// The kubeadm layout.
    fn default() -> Self {
        Roots::for_dirs(pki::DEFAULT_CERT_DIR, pki::DEFAULT_KUBECONFIG_DIR)
    }
}

impl Roots {
    /// Roots for a PKI dir and a kubeconfig dir, the rest derived as kubecert's CLI derives
    /// them (backup root and state file beside the PKI dir, admin.conf in the kubeconfig
    /// dir, the kubeadm kubelet PKI dir, no csr/textfile dir, the built-in policy).
    pub fn for_dirs(cert_dir: impl Into<PathBuf>, kubeconfig_dir: impl Into<PathBuf>) -> Self {
        let cert_dir = normalize(&cert_dir.into());
        let kubeconfig_dir = normalize(&kubeconfig_dir.into());
        Roots {
            backup_root: crate::pki::store::default_backup_root(&cert_dir),
            state_file: crate::renew_state::default_state_file(&cert_dir),
            api_kubeconfig: kubeconfig_dir.join("admin.conf"),
            kubelet_pki: PathBuf::from(pki::DEFAULT_KUBELET_PKI),
            csr_dir: None,
            textfile_dir: None,
            approve_policy: None,
            kubeadm_config: None,
            manifests_dir: kubeconfig_dir.join("manifests"),
            park_dir: crate::ops::restart::default_park_dir(&kubeconfig_dir.join("manifests")),
            kubelet_config: PathBuf::from(crate::ops::endpoints::DEFAULT_KUBELET_CONFIG),
            cert_dir,
            kubeconfig_dir,
        }
    }

    /// The configured value of a root (`None`: not configured).
    pub fn get(&self, r: Root) -> Option<&Path> {
        match r {
            Root::CertDir => Some(&self.cert_dir),
            Root::KubeconfigDir => Some(&self.kubeconfig_dir),
            Root::KubeletPki => Some(&self.kubelet_pki),
            Root::BackupRoot => Some(&self.backup_root),
            Root::StateFile => Some(&self.state_file),
            Root::CsrDir => self.csr_dir.as_deref(),
            Root::TextfileDir => self.textfile_dir.as_deref(),
            Root::ApiKubeconfig | Root::ApiKubeconfigIfGiven => Some(&self.api_kubeconfig),
            Root::ApprovePolicy => self.approve_policy.as_deref(),
            Root::KubeadmConfig => self.kubeadm_config.as_deref(),
            Root::ManifestsDir => Some(&self.manifests_dir),
            Root::ParkDir => Some(&self.park_dir),
            Root::KubeletConfig => Some(&self.kubelet_config),
            Root::RootOnly => None,
        }
    }

    /// Fills absent path params of `p` from the roots and, when `confined`, refuses path
    /// params that are not the configured roots (see the module docs). On error `p` may be
    /// partly filled; the caller drops it.
    pub fn apply<P: PathParams + ?Sized>(&self, p: &mut P, confined: bool) -> Result<()> {
        let mut params = p.path_params();
        // Backups and the state file follow the PKI dir: they are filled from the roots only
        // when the call is about the configured PKI (otherwise the library derives them from
        // the caller's cert_dir, as the CLI does).
        let serves_cert_dir = params
            .iter()
            .find(|x| x.root == Root::CertDir)
            .is_none_or(|x| x.slot.value().is_none_or(|v| same(v, &self.cert_dir)));
        // Likewise the park dir follows the manifests dir.
        let serves_manifests_dir = params
            .iter()
            .find(|x| x.root == Root::ManifestsDir)
            .is_none_or(|x| x.slot.value().is_none_or(|v| same(v, &self.manifests_dir)));
        for x in params.iter_mut() {
            let configured = self.get(x.root);
            match x.slot.value() {
                None => {
                    let fill = match x.root {
                        Root::TextfileDir
                        | Root::CsrDir
                        | Root::KubeadmConfig
                        | Root::ApiKubeconfigIfGiven => false,
                        Root::BackupRoot | Root::StateFile => serves_cert_dir,
                        Root::ParkDir => serves_manifests_dir,
                        _ => true,
                    };
                    if let (true, Some(c)) = (fill, configured) {
                        x.slot.set(path_string(c));
                    }
                }
                Some(v) if confined => match configured {
                    Some(c) if same(v, c) => x.slot.set(path_string(c)),
                    _ => {
                        return Err(Error::PathNotAllowed {
                            param: x.name.to_string(),
                            given: PathBuf::from(v),
                            configured: configured.map(Path::to_path_buf),
                        })
                    }
                },
                Some(_) => {}
            }
        }
        Ok(())
    }
}

/// Which configured root a path param is compared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Root {
    /// [`Roots::cert_dir`].
    CertDir,
    /// [`Roots::kubeconfig_dir`].
    KubeconfigDir,
    /// [`Roots::kubelet_pki`].
    KubeletPki,
    /// [`Roots::backup_root`].
    BackupRoot,
    /// [`Roots::state_file`].
    StateFile,
    /// [`Roots::csr_dir`].
    CsrDir,
    /// [`Roots::textfile_dir`].
    TextfileDir,
    /// [`Roots::api_kubeconfig`].
    ApiKubeconfig,
    /// [`Roots::api_kubeconfig`], for a param whose presence is the choice to use the API
    /// (`ca-rotate`'s `kubeconfig`: update cluster-info): confined the same way, never
    /// filled in when absent.
    ApiKubeconfigIfGiven,
    /// [`Roots::approve_policy`].
    ApprovePolicy,
    /// [`Roots::kubeadm_config`].
    KubeadmConfig,
    /// [`Roots::manifests_dir`].
    ManifestsDir,
    /// [`Roots::park_dir`].
    ParkDir,
    /// [`Roots::kubelet_config`].
    KubeletConfig,
    /// Never configured: only an unconfined caller (root, the agent's uid, stdio) may pass
    /// it (command templates, endpoint addresses and certificate overrides).
    RootOnly,
}

/// A path field of a params struct.
#[derive(Debug)]
pub enum Slot<'a> {
    /// An optional path (absent: default).
    Opt(&'a mut Option<String>),
    /// A required path.
    Req(&'a mut String),
}

impl Slot<'_> {
    fn value(&self) -> Option<&str> {
        match self {
            Slot::Opt(o) => o.as_deref(),
            Slot::Req(s) => Some(s.as_str()),
        }
    }
    fn set(&mut self, v: String) {
        match self {
            Slot::Opt(o) => **o = Some(v),
            Slot::Req(s) => **s = v,
        }
    }
}

/// One path param: its params-field name, the root it must equal, the field.
#[derive(Debug)]
pub struct PathParam<'a> {
    /// The field name (as in the JSON params).
    pub name: &'static str,
    /// The configured root it is compared with.
    pub root: Root,
    /// The field.
    pub slot: Slot<'a>,
}

/// A params type's path fields, listed once.
pub trait PathParams {
    /// Every path field of `self`.
    fn path_params(&mut self) -> Vec<PathParam<'_>>;
}

fn opt<'a>(name: &'static str, root: Root, v: &'a mut Option<String>) -> PathParam<'a> {
    PathParam {
        name,
        root,
        slot: Slot::Opt(v),
    }
}

fn req<'a>(name: &'static str, root: Root, v: &'a mut String) -> PathParam<'a> {
    PathParam {
        name,
        root,
        slot: Slot::Req(v),
    }
}

/// The path params of a [`PkiLocation`] (`cert_dir`, `kubeconfig_dir`), in the order every
/// params type lists them.
pub fn location(l: &mut PkiLocation) -> Vec<PathParam<'_>> {
    vec![
        opt("cert_dir", Root::CertDir, &mut l.cert_dir),
        opt("kubeconfig_dir", Root::KubeconfigDir, &mut l.kubeconfig_dir),
    ]
}

impl PathParams for CheckParams {
    fn path_params(&mut self) -> Vec<PathParam<'_>> {
        let mut v = location(&mut self.location);
        v.push(opt("kubelet_pki", Root::KubeletPki, &mut self.kubelet_pki));
        v.extend(kubeadm_source(&mut self.kubeadm));
        v.extend(served_probe(&mut self.served));
        v
    }
}

/// The path params of a kubeadm configuration source (`config`: the agent's
/// `--kubeadm-config`; `kubeconfig`, the kubeadm-config ConfigMap: the agent's
/// `--api-kubeconfig`), never filled in.
fn kubeadm_source(p: &mut crate::config::ConfigParams) -> Vec<PathParam<'_>> {
    vec![
        opt("config", Root::KubeadmConfig, &mut p.config),
        opt("kubeconfig", Root::ApiKubeconfigIfGiven, &mut p.kubeconfig),
    ]
}

/// The path params of the served proof flattened into `check` and `metrics`.
fn served_probe(p: &mut crate::ops::served::ServedProbe) -> Vec<PathParam<'_>> {
    let mut v = vec![
        opt("manifests_dir", Root::ManifestsDir, &mut p.manifests_dir),
        opt("kubelet_config", Root::KubeletConfig, &mut p.kubelet_config),
    ];
    v.extend(endpoint_overrides(&mut p.endpoints));
    v
}

impl PathParams for RenewParams {
    fn path_params(&mut self) -> Vec<PathParam<'_>> {
        let mut v = location(&mut self.location);
        v.push(opt("backup_dir", Root::BackupRoot, &mut self.backup_dir));
        v.extend(kubeadm_source(&mut self.kubeadm));
        v
    }
}

impl PathParams for crate::ca::CaCheckParams {
    fn path_params(&mut self) -> Vec<PathParam<'_>> {
        location(&mut self.location)
    }
}

impl PathParams for crate::ca::CaExportParams {
    fn path_params(&mut self) -> Vec<PathParam<'_>> {
        location(&mut self.location)
    }
}

impl PathParams for crate::ca::CaRenewParams {
    fn path_params(&mut self) -> Vec<PathParam<'_>> {
        let mut v = location(&mut self.location);
        v.push(opt("backup_dir", Root::BackupRoot, &mut self.backup_dir));
        v
    }
}

impl PathParams for crate::ca::CaInstallParams {
    fn path_params(&mut self) -> Vec<PathParam<'_>> {
        let mut v = location(&mut self.location);
        v.push(opt("backup_dir", Root::BackupRoot, &mut self.backup_dir));
        v
    }
}

impl PathParams for crate::ca::rotate::CaRotateParams {
    fn path_params(&mut self) -> Vec<PathParam<'_>> {
        let mut v = location(&mut self.location);
        v.push(opt("backup_dir", Root::BackupRoot, &mut self.backup_dir));
        v.push(opt(
            "kubeconfig",
            Root::ApiKubeconfigIfGiven,
            &mut self.kubeconfig,
        ));
        v.push(opt("kubelet_pki", Root::KubeletPki, &mut self.kubelet_pki));
        v
    }
}

impl PathParams for RestoreParams {
    /// `backup_dir` itself is not a root: restore accepts it only as a direct child of
    /// `backup_root`, for every caller (see [`crate::pki::restore::restore`]).
    fn path_params(&mut self) -> Vec<PathParam<'_>> {
        vec![
            opt("cert_dir", Root::CertDir, &mut self.cert_dir),
            opt(
                "kubeconfig_dir",
                Root::KubeconfigDir,
                &mut self.kubeconfig_dir,
            ),
            opt("kubelet_pki", Root::KubeletPki, &mut self.kubelet_pki),
            opt("backup_root", Root::BackupRoot, &mut self.backup_root),
        ]
    }
}

impl PathParams for KubeletConfParams {
    fn path_params(&mut self) -> Vec<PathParam<'_>> {
        vec![
            opt("cert_dir", Root::CertDir, &mut self.cert_dir),
            opt(
                "kubeconfig_dir",
                Root::KubeconfigDir,
                &mut self.kubeconfig_dir,
            ),
            opt("kubelet_pki", Root::KubeletPki, &mut self.kubelet_pki),
        ]
    }
}

impl PathParams for crate::kubelet::rebuild::KubeletRebuildParams {
    fn path_params(&mut self) -> Vec<PathParam<'_>> {
        vec![
            opt("cert_dir", Root::CertDir, &mut self.cert_dir),
            opt(
                "kubeconfig_dir",
                Root::KubeconfigDir,
                &mut self.kubeconfig_dir,
            ),
            opt("kubelet_pki", Root::KubeletPki, &mut self.kubelet_pki),
            opt("backup_dir", Root::BackupRoot, &mut self.backup_dir),
        ]
    }
}

impl PathParams for CsrExportParams {
    fn path_params(&mut self) -> Vec<PathParam<'_>> {
        let mut v = vec![req("csr_dir", Root::CsrDir, &mut self.csr_dir)];
        v.extend(location(&mut self.location));
        v
    }
}

impl PathParams for CsrImportParams {
    fn path_params(&mut self) -> Vec<PathParam<'_>> {
        let mut v = vec![req("csr_dir", Root::CsrDir, &mut self.csr_dir)];
        v.extend(location(&mut self.location));
        v.push(opt("backup_dir", Root::BackupRoot, &mut self.backup_dir));
        v
    }
}

impl PathParams for MetricsParams {
    fn path_params(&mut self) -> Vec<PathParam<'_>> {
        let mut v = location(&mut self.location);
        v.extend([
            opt("kubelet_pki", Root::KubeletPki, &mut self.kubelet_pki),
            opt("state_file", Root::StateFile, &mut self.state_file),
            opt("textfile_dir", Root::TextfileDir, &mut self.textfile_dir),
        ]);
        v.extend(kubeadm_source(&mut self.kubeadm));
        v.extend(served_probe(&mut self.served));
        v
    }
}

fn endpoint_overrides(v: &mut [crate::ops::endpoints::EndpointOverride]) -> Vec<PathParam<'_>> {
    let mut out = Vec::new();
    for o in v.iter_mut() {
        out.push(opt("endpoints[].address", Root::RootOnly, &mut o.address));
        out.push(opt("endpoints[].cert", Root::RootOnly, &mut o.cert));
    }
    out
}

impl PathParams for ServedParams {
    fn path_params(&mut self) -> Vec<PathParam<'_>> {
        let mut v = vec![
            opt("cert_dir", Root::CertDir, &mut self.cert_dir),
            opt("manifests_dir", Root::ManifestsDir, &mut self.manifests_dir),
            opt(
                "kubelet_config",
                Root::KubeletConfig,
                &mut self.kubelet_config,
            ),
            opt("kubelet_pki", Root::KubeletPki, &mut self.kubelet_pki),
        ];
        v.extend(endpoint_overrides(&mut self.endpoints));
        v
    }
}

impl PathParams for HealthParams {
    fn path_params(&mut self) -> Vec<PathParam<'_>> {
        let mut v = vec![
            opt("cert_dir", Root::CertDir, &mut self.cert_dir),
            opt("manifests_dir", Root::ManifestsDir, &mut self.manifests_dir),
        ];
        v.extend(endpoint_overrides(&mut self.endpoints));
        v
    }
}

impl PathParams for RestartParams {
    /// Command templates run as the agent (root): only unconfined callers may pass them.
    fn path_params(&mut self) -> Vec<PathParam<'_>> {
        let mut v = vec![
            opt("cert_dir", Root::CertDir, &mut self.cert_dir),
            opt("manifests_dir", Root::ManifestsDir, &mut self.manifests_dir),
            opt("park_dir", Root::ParkDir, &mut self.park_dir),
            opt("restart_command", Root::RootOnly, &mut self.restart_command),
            opt("crictl", Root::RootOnly, &mut self.crictl),
            opt("stop_command", Root::RootOnly, &mut self.stop_command),
            opt("health_command", Root::RootOnly, &mut self.health_command),
        ];
        v.extend(endpoint_overrides(&mut self.endpoints));
        v
    }
}

pub use crate::pki::store::normalize;

/// Whether `given` names `configured` (lexically).
fn same(given: &str, configured: &Path) -> bool {
    !given.is_empty() && normalize(Path::new(given)) == normalize(configured)
}

fn path_string(p: &Path) -> String {
    p.display().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The location fields are flattened: still top-level params, and unknown fields (or a
    /// nested `location`) are still refused.
    #[test]
    fn flattened_location_keeps_the_wire_format() {
        fn roundtrip<P: serde::de::DeserializeOwned + std::fmt::Debug>(
            extra: &str,
            location: impl Fn(&P) -> &PkiLocation,
        ) {
            let ok =
                format!(r#"{{{extra}"cert_dir":"/a","kubeconfig_dir":"/b","external_etcd":true}}"#);
            let p: P = serde_json::from_str(&ok).expect(&ok);
            assert_eq!(
                location(&p),
                &PkiLocation {
                    cert_dir: Some("/a".into()),
                    kubeconfig_dir: Some("/b".into()),
                    external_etcd: Some(true),
                }
            );
            for bad in [
                format!(r#"{{{extra}"cert_dirr":"/a"}}"#),
                format!(r#"{{{extra}"location":{{}}}}"#),
            ] {
                let e = serde_json::from_str::<P>(&bad).expect_err(&bad);
                assert!(e.to_string().starts_with("unknown field"), "{bad}: {e}");
            }
        }
        roundtrip::<CheckParams>("", |p| &p.location);
        roundtrip::<RenewParams>(r#""names":["all"],"#, |p| &p.location);
        roundtrip::<CsrExportParams>(r#""csr_dir":"/c","#, |p| &p.location);
        roundtrip::<CsrImportParams>(r#""csr_dir":"/c","#, |p| &p.location);
        roundtrip::<MetricsParams>("", |p| &p.location);
    }

    /// ca-rotate's `kubeconfig` (update cluster-info through the API) is a file root reads:
    /// a confined caller may pass only the agent's API kubeconfig; absent, it stays absent
    /// (its presence is the choice to use the API, so it is never filled in).
    #[test]
    fn ca_rotate_kubeconfig_is_confined_and_never_filled() {
        use crate::ca::rotate::CaRotateParams;
        let roots = Roots::for_dirs("/srv/pki", "/srv/kc");
        let parse = |kc: Option<&str>| -> CaRotateParams {
            let mut v = serde_json::json!({"ca": "ca", "phase": "stage"});
            if let Some(k) = kc {
                v["kubeconfig"] = k.into();
            }
            serde_json::from_value(v).unwrap()
        };
        for confined in [false, true] {
            let mut p = parse(None);
            roots.apply(&mut p, confined).unwrap();
            assert_eq!(p.kubeconfig, None);
            assert_eq!(p.location.cert_dir.as_deref(), Some("/srv/pki"));
            let mut p = parse(Some("/srv/kc/./admin.conf"));
            roots.apply(&mut p, confined).unwrap();
            let want = if confined {
                "/srv/kc/admin.conf"
            } else {
                "/srv/kc/./admin.conf"
            };
            assert_eq!(p.kubeconfig.as_deref(), Some(want));
        }
        let mut p = parse(Some("/home/eve/stolen.conf"));
        roots.apply(&mut p, false).unwrap();
        assert_eq!(p.kubeconfig.as_deref(), Some("/home/eve/stolen.conf"));
        let mut p = parse(Some("/home/eve/stolen.conf"));
        let e = roots.apply(&mut p, true).unwrap_err();
        assert!(
            matches!(&e, Error::PathNotAllowed { param, configured: Some(c), .. }
                if param == "kubeconfig" && c == Path::new("/srv/kc/admin.conf")),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            "kubeconfig: /home/eve/stolen.conf is not allowed for this caller: the agent serves \
             /srv/kc/admin.conf; omit kubeconfig or pass that"
        );
    }

    #[test]
    fn normalize_is_lexical() {
        assert_eq!(
            normalize(Path::new("/etc/kubernetes/./pki/")),
            PathBuf::from("/etc/kubernetes/pki")
        );
        assert_eq!(
            normalize(Path::new("/etc/kubernetes/x/../pki")),
            PathBuf::from("/etc/kubernetes/pki")
        );
        assert_eq!(normalize(Path::new("/../..")), PathBuf::from("/"));
    }

    #[test]
    fn absent_paths_are_filled_for_everyone() {
        let roots = Roots::for_dirs("/srv/pki", "/srv/kc");
        for confined in [false, true] {
            let mut p = RenewParams::default();
            roots
                .apply(&mut p, confined)
                .expect("absent paths are fine");
            assert_eq!(p.location.cert_dir.as_deref(), Some("/srv/pki"));
            assert_eq!(p.location.kubeconfig_dir.as_deref(), Some("/srv/kc"));
            assert_eq!(p.backup_dir.as_deref(), Some("/srv/kubecert-backup"));
        }
        // metrics: textfile_dir is never filled (it makes the call write).
        let mut m = MetricsParams::default();
        let mut r = roots.clone();
        r.textfile_dir = Some("/var/lib/node-exporter".into());
        r.apply(&mut m, true).expect("ok");
        assert_eq!(m.textfile_dir, None);
        assert_eq!(m.state_file.as_deref(), Some("/srv/kubecert-state.json"));
    }

    #[test]
    fn confined_callers_get_only_the_roots() {
        let roots = Roots::for_dirs("/srv/pki", "/srv/kc");
        let mut p = RenewParams {
            location: PkiLocation {
                cert_dir: Some("/srv/x/../pki/".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        roots
            .apply(&mut p, true)
            .expect("the same dir, spelled differently");
        assert_eq!(p.location.cert_dir.as_deref(), Some("/srv/pki"));

        let mut p = RenewParams {
            location: PkiLocation {
                kubeconfig_dir: Some("/home/u/kc".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        let e = roots.apply(&mut p, true).expect_err("foreign dir");
        assert_eq!(
            e.to_string(),
            "kubeconfig_dir: /home/u/kc is not allowed for this caller: the agent serves \
             /srv/kc; omit kubeconfig_dir or pass that"
        );
        // Not confined (root, stdio): the caller's own choice stands; backups then follow
        // the caller's cert dir (library default), not the agent's backup root.
        let mut p = RenewParams {
            location: PkiLocation {
                cert_dir: Some("/tmp/p".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        roots.apply(&mut p, false).expect("root may");
        assert_eq!(p.location.cert_dir.as_deref(), Some("/tmp/p"));
        assert_eq!(p.backup_dir, None);

        let mut c = CsrExportParams {
            csr_dir: "/tmp/csr".into(),
            ..Default::default()
        };
        let e = roots
            .apply(&mut c, true)
            .expect_err("no csr dir configured");
        assert_eq!(
            e.to_string(),
            "csr_dir: /tmp/csr is not allowed for this caller: the agent has no csr_dir \
             configured, so only root may pass one"
        );
    }

    #[test]
    fn operations_are_confined_to_the_manifests_and_commands_are_root_only() {
        let roots = Roots::for_dirs("/srv/pki", "/srv/kc");
        let mut p = RestartParams::default();
        roots.apply(&mut p, true).expect("absent paths are fine");
        assert_eq!(p.manifests_dir.as_deref(), Some("/srv/kc/manifests"));
        assert_eq!(
            p.park_dir.as_deref(),
            Some("/srv/kc/kubecert-parked-manifests")
        );
        assert_eq!(p.restart_command, None);
        let mut p = RestartParams {
            manifests_dir: Some("/tmp/m".into()),
            ..Default::default()
        };
        let e = roots
            .apply(&mut p, true)
            .expect_err("foreign manifests dir");
        assert!(
            e.to_string()
                .starts_with("manifests_dir: /tmp/m is not allowed"),
            "{e}"
        );
        // Root may; the park dir then follows the caller's manifests dir (library default).
        roots.apply(&mut p, false).expect("root may");
        assert_eq!(p.park_dir, None);
        let mut p = RestartParams {
            restart_command: Some("id".into()),
            ..Default::default()
        };
        let e = roots
            .apply(&mut p, true)
            .expect_err("commands are root only");
        assert_eq!(
            e.to_string(),
            "restart_command: id is not allowed for this caller: the agent has no \
             restart_command configured, so only root may pass one"
        );
        let mut h = HealthParams {
            endpoints: vec![crate::ops::endpoints::EndpointOverride {
                endpoint: Some(crate::ops::endpoints::Endpoint::EtcdClient),
                address: Some("evil:2379".into()),
                cert: None,
            }],
            ..Default::default()
        };
        let e = roots
            .apply(&mut h, true)
            .expect_err("addresses are root only");
        assert!(
            e.to_string().starts_with("endpoints[].address: evil:2379"),
            "{e}"
        );
        let mut s = ServedParams::default();
        roots.apply(&mut s, true).expect("defaults");
        assert_eq!(s.cert_dir.as_deref(), Some("/srv/pki"));
        assert_eq!(
            s.kubelet_config.as_deref(),
            Some(crate::ops::endpoints::DEFAULT_KUBELET_CONFIG)
        );
    }

    /// The kubeadm config of `drift` is read by root: a confined caller may name only the
    /// file the agent was started with (`--kubeadm-config`), nothing when none was; it is
    /// never filled in; an unconfined caller (root, the agent's uid, stdio) may name any.
    #[test]
    fn drift_config_is_confined_to_the_configured_file() {
        let mut roots = Roots::for_dirs("/srv/pki", "/srv/kc");
        let check = |c: &str| CheckParams {
            drift: true,
            kubeadm: crate::config::ConfigParams {
                config: Some(c.into()),
                ..Default::default()
            },
            ..Default::default()
        };
        let metrics = |c: &str| MetricsParams {
            drift: true,
            kubeadm: crate::config::ConfigParams {
                config: Some(c.into()),
                ..Default::default()
            },
            ..Default::default()
        };
        // Not configured: refused for a confined caller, whatever the file.
        for f in ["/etc/shadow", "/etc/kubernetes/kubeadm.yaml"] {
            let e = roots.apply(&mut check(f), true).expect_err(f);
            assert!(
                e.to_string()
                    .starts_with(&format!("config: {f} is not allowed")),
                "{e}"
            );
            let e = roots.apply(&mut metrics(f), true).expect_err(f);
            assert!(e.to_string().starts_with("config: "), "{e}");
        }
        roots.kubeadm_config = Some(PathBuf::from("/srv/kc/kubeadm.yaml"));
        // The configured file (also spelled differently) is accepted, and replaced by it.
        let mut p = check("/srv/kc/./kubeadm.yaml");
        roots.apply(&mut p, true).expect("configured file");
        assert_eq!(p.kubeadm.config.as_deref(), Some("/srv/kc/kubeadm.yaml"));
        // Another file, a traversal to one: refused.
        for f in [
            "/etc/shadow",
            "/srv/kc/../../etc/shadow",
            "/srv/kc/kubeadm.yaml.bak",
        ] {
            let e = roots.apply(&mut check(f), true).expect_err(f);
            assert!(matches!(e, Error::PathNotAllowed { .. }), "{e}");
        }
        // Never filled in: a call without config stays without (and drift alone is refused
        // by the check itself).
        let mut p = CheckParams::default();
        roots.apply(&mut p, true).expect("defaults");
        assert_eq!(p.kubeadm.config, None);
        // Unconfined: any file, unchanged.
        let mut p = check("/tmp/other.yaml");
        roots.apply(&mut p, false).expect("unconfined");
        assert_eq!(p.kubeadm.config.as_deref(), Some("/tmp/other.yaml"));
    }

    /// `renew`'s `config` is confined like check's: refused when the agent has no
    /// `--kubeadm-config`, only that file when it has, never filled in, any file unconfined.
    #[test]
    fn renew_config_is_confined_to_the_configured_file() {
        let mut roots = Roots::for_dirs("/srv/pki", "/srv/kc");
        let renew = |c: &str| RenewParams {
            names: vec!["apiserver".into()],
            kubeadm: crate::config::ConfigParams {
                config: Some(c.into()),
                ..Default::default()
            },
            reconcile_sans: true,
            ..Default::default()
        };
        let e = roots
            .apply(&mut renew("/srv/kc/kubeadm.yaml"), true)
            .expect_err("not configured");
        assert!(
            e.to_string()
                .starts_with("config: /srv/kc/kubeadm.yaml is not allowed"),
            "{e}"
        );
        roots.kubeadm_config = Some(PathBuf::from("/srv/kc/kubeadm.yaml"));
        let mut p = renew("/srv/kc/./kubeadm.yaml");
        roots.apply(&mut p, true).expect("configured file");
        assert_eq!(p.kubeadm.config.as_deref(), Some("/srv/kc/kubeadm.yaml"));
        for f in ["/etc/shadow", "/srv/kc/../../etc/shadow"] {
            let e = roots.apply(&mut renew(f), true).expect_err(f);
            assert!(matches!(e, Error::PathNotAllowed { .. }), "{e}");
        }
        let mut p = RenewParams {
            names: vec!["all".into()],
            ..Default::default()
        };
        roots.apply(&mut p, true).expect("defaults");
        assert_eq!(p.kubeadm.config, None);
        let mut p = renew("/tmp/other.yaml");
        roots.apply(&mut p, false).expect("unconfined");
        assert_eq!(p.kubeadm.config.as_deref(), Some("/tmp/other.yaml"));
    }

    /// The kubeconfig of the kubeadm-config ConfigMap source is confined to the agent's
    /// `--api-kubeconfig` for a confined caller, never filled in.
    #[test]
    fn configmap_kubeconfig_is_confined_to_the_api_kubeconfig() {
        let roots = Roots::for_dirs("/srv/pki", "/srv/kc");
        let src = |k: &str| crate::config::ConfigParams {
            kubeconfig: Some(k.into()),
            ..Default::default()
        };
        let mut p = CheckParams {
            drift: true,
            kubeadm: src("/srv/kc/./admin.conf"),
            ..Default::default()
        };
        roots.apply(&mut p, true).expect("the api kubeconfig");
        assert_eq!(p.kubeadm.kubeconfig.as_deref(), Some("/srv/kc/admin.conf"));
        let mut p = RenewParams {
            names: vec!["apiserver".into()],
            reconcile_sans: true,
            kubeadm: src("/root/.kube/config"),
            ..Default::default()
        };
        let e = roots.apply(&mut p, true).expect_err("another kubeconfig");
        assert!(
            e.to_string()
                .starts_with("kubeconfig: /root/.kube/config is not allowed"),
            "{e}"
        );
        let mut p = MetricsParams {
            drift: true,
            kubeadm: src("/tmp/x.conf"),
            ..Default::default()
        };
        assert!(roots.apply(&mut p, true).is_err());
        let mut p = CheckParams::default();
        roots.apply(&mut p, true).expect("defaults");
        assert_eq!(p.kubeadm.kubeconfig, None);
    }

    /// `check`'s and `metrics`' served options are confined like `served`'s: the manifests
    /// dir and the kubelet config are roots, endpoint overrides are root only.
    #[test]
    fn check_served_options_are_confined() {
        use crate::ops::served::ServedProbe;
        let roots = Roots::for_dirs("/srv/pki", "/srv/kc");
        let mut p = CheckParams {
            served: ServedProbe {
                served: true,
                ..Default::default()
            },
            ..Default::default()
        };
        roots.apply(&mut p, true).expect("defaults");
        assert_eq!(p.served.manifests_dir.as_deref(), Some("/srv/kc/manifests"));
        assert_eq!(
            p.served.kubelet_config.as_deref(),
            Some("/var/lib/kubelet/config.yaml")
        );
        for (probe, param) in [
            (
                ServedProbe {
                    kubelet_config: Some("/tmp/k.yaml".into()),
                    ..Default::default()
                },
                "kubelet_config",
            ),
            (
                ServedProbe {
                    manifests_dir: Some("/tmp/m".into()),
                    ..Default::default()
                },
                "manifests_dir",
            ),
            (
                ServedProbe {
                    endpoints: vec![crate::ops::endpoints::EndpointOverride {
                        endpoint: Some(crate::ops::endpoints::Endpoint::Kubelet),
                        address: None,
                        cert: Some("/etc/shadow".into()),
                    }],
                    ..Default::default()
                },
                "endpoints[].cert",
            ),
        ] {
            let mut c = CheckParams {
                served: probe.clone(),
                ..Default::default()
            };
            let e = roots.apply(&mut c, true).expect_err(param);
            assert!(e.to_string().starts_with(&format!("{param}: ")), "{e}");
            let mut m = MetricsParams {
                served: probe,
                ..Default::default()
            };
            let e = roots.apply(&mut m, true).expect_err(param);
            assert!(e.to_string().starts_with(&format!("{param}: ")), "{e}");
        }
    }
}
