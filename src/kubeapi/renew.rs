//! `kubecert renew NAME...|all --use-api`: renewal through the certificates API, as kubeadm
//! 1.15–1.18's `alpha certs renew --use-api` did (kubeadm-compat.md §5), on
//! `certificates.k8s.io/v1`.
//!
//! For each certificate: a new key (in memory only), a PKCS#10 request with the current
//! subject (DER, verbatim) and SANs, and a CertificateSigningRequest object named through
//! `generateName: kubeadm-cert-<CN>-`, with the signer name and the usages of the
//! certificate's role. Then a watch (field selector `metadata.name`) until every request is
//! approved and issued. Each issued certificate is validated as `csr import` validates one
//! (chain to the right CA of the PKI, key match, subject and SANs equal to the current
//! certificate's, EKU for the role, not a CA, valid now, not outliving the CA) and all of
//! them are installed in one locked, journaled, backed-up transaction.
//!
//! When a request is denied, fails, is deleted or does not complete within the timeout,
//! nothing is written: the new keys are dropped and every file stays as it was. The
//! CertificateSigningRequest objects are always left in the cluster (for inspection, as
//! kubeadm did; kube-controller-manager's csrcleaner garbage-collects them).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::ByteString;
use kube::api::{PostParams, WatchEvent, WatchParams};
use kube::Api;

use super::{
    api_err, client, csr_api, generate_name, CsrState, KubeApiError, Result, KUBE_APISERVER_CLIENT,
};
use crate::csr;
use crate::error::Error;
use crate::pki::cert::{self, CertInfo, PrivateKey};
use crate::pki::inventory::{self, CaId, Entry, Role};
use crate::pki::issue::{self, LeafSpec};
use crate::pki::snapshot::CertSnapshot;
use crate::pki::store::{self, Store};
use crate::pki::{self, Cas};
use crate::renew::{self, RenewAction, RenewItem, RenewOptions, RenewResult};
use crate::timefmt;

/// Options of `renew --use-api`.
#[derive(Debug, Clone)]
pub struct ApiRenewOptions {
    /// The resolved renew options (layout, names, key algorithm, validity, backup root).
    pub renew: RenewOptions,
    /// The kubeconfig to reach the API server with.
    pub kubeconfig: PathBuf,
    /// The signer name for every request (default: `kubernetes.io/kube-apiserver-client`
    /// for client certificates of the cluster CA; required for everything else).
    pub signer_name: Option<String>,
    /// How long to wait for approval and issuance (all requests together).
    pub timeout: Duration,
    /// Request `spec.expirationSeconds` = the validity (the signer may cap it).
    pub request_expiration: bool,
}

/// Why a row's request has no signer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NoSigner {
    /// `--signer-name` without a `/`.
    #[error("--signer-name {given:?} is not a qualified signer name (DOMAIN/PATH, e.g. kubecert.io/{ca})")]
    NoPath {
        /// What was given.
        given: String,
        /// The row's CA (for the example).
        ca: &'static str,
    },
    /// `--signer-name` whose domain or path is empty, or a domain without a dot.
    #[error("--signer-name {given:?} is not a qualified signer name (DOMAIN/PATH)")]
    NotQualified {
        /// What was given.
        given: String,
    },
    /// No built-in signer issues this row.
    #[error(
        "{cert} is a {role} certificate issued by {ca}: no built-in signer issues it; pass \
         --signer-name and run an external signer for it (e.g. `kubecert sign \
         --signer-name kubecert.io/{ca}` on a control-plane node)"
    )]
    NoBuiltIn {
        /// Inventory name.
        cert: &'static str,
        /// Role wording.
        role: &'static str,
        /// CA name.
        ca: &'static str,
    },
    /// `kube-apiserver-client` asked for a row it does not issue.
    #[error(
        "{KUBE_APISERVER_CLIENT} issues client certificates from the cluster CA only, \
         but {cert} is a {role} certificate issued by {ca}; pass another --signer-name"
    )]
    NotClientOfCa {
        /// Inventory name.
        cert: &'static str,
        /// Role wording.
        role: &'static str,
        /// CA name.
        ca: &'static str,
    },
    /// `kube-apiserver-client` and O=system:masters, which admission refuses.
    #[error(
        "{cert} has O=system:masters, which the API server's CertificateSubjectRestriction \
         admission refuses for {KUBE_APISERVER_CLIENT}; pass --signer-name for an \
         external signer"
    )]
    SystemMasters {
        /// Inventory name.
        cert: &'static str,
    },
}

/// The signer a row's request goes to, or why there is none.
pub fn signer_for(
    e: &Entry,
    info: &CertInfo,
    explicit: Option<&str>,
) -> std::result::Result<String, NoSigner> {
    let ca = e.ca.unwrap_or(CaId::Ca);
    let client_of_ca = e.role == Role::Client && ca == CaId::Ca;
    let masters = info.organizations.iter().any(|o| o == "system:masters");
    let signer = match explicit {
        Some(s) => {
            let s = s.trim();
            let Some((domain, path)) = s.split_once('/') else {
                return Err(NoSigner::NoPath {
                    given: s.to_string(),
                    ca: ca.name(),
                });
            };
            if domain.is_empty() || path.is_empty() || !domain.contains('.') {
                return Err(NoSigner::NotQualified {
                    given: s.to_string(),
                });
            }
            s.to_string()
        }
        None if client_of_ca => KUBE_APISERVER_CLIENT.to_string(),
        None => {
            return Err(NoSigner::NoBuiltIn {
                cert: e.name,
                role: e.role.api_name(),
                ca: ca.name(),
            })
        }
    };
    if signer == KUBE_APISERVER_CLIENT {
        if !client_of_ca {
            return Err(NoSigner::NotClientOfCa {
                cert: e.name,
                role: e.role.api_name(),
                ca: ca.name(),
            });
        }
        if masters {
            return Err(NoSigner::SystemMasters { cert: e.name });
        }
    }
    Ok(signer)
}

/// One certificate on its way through the API.
struct Pending {
    idx: usize,
    entry: &'static Entry,
    csr_name: String,
    signer: String,
    key: PrivateKey,
    current_der: Vec<u8>,
}

/// Renews through the certificates API. `progress` receives kubeadm's progress lines
/// (`[certs] certificate request "kubeadm-cert-kube-apiserver-x7k2p" created`).
pub async fn renew_with_api(
    o: &ApiRenewOptions,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<RenewResult> {
    let r = &o.renew;
    let layout = &r.layout;
    if r.dry_run || r.within.is_some() || r.allow_expired_ca {
        return Err(KubeApiError::InvalidArgument(
            "--use-api cannot be combined with --dry-run, --within or --allow-expired-ca".into(),
        ));
    }
    let cas = Cas::load(layout);
    // Plan everything (and refuse bad combinations) before creating any object.
    let mut items: Vec<RenewItem> = Vec::new();
    let mut planned: Vec<(usize, &'static Entry, Box<pki::Found>, String)> = Vec::new();
    let mut refusals: Vec<String> = Vec::new();
    for e in &r.entries {
        let (ca, mut item, found) = RenewItem::pending(layout, e)?;
        let Some(found) = found else {
            items.push(item);
            continue;
        };
        let Some(ca_cert) = cas.get(ca).and_then(|c| c.cert()) else {
            return Err(crate::renew::ca_missing_error(layout, ca, &cas).into());
        };
        // The API's signer must not launder a foreign identity either (issue 12 item 2).
        crate::renew::check_identity(e, &found, ca, ca_cert, layout, r.allow_foreign_identity)?;
        match signer_for(e, &found.cert.info, o.signer_name.as_deref()) {
            Ok(s) => {
                item.old = Some(CertSnapshot::of(&found.cert.info));
                let idx = items.len();
                items.push(item);
                planned.push((idx, e, found, s));
            }
            Err(why) => refusals.push(why.to_string()),
        }
    }
    if !refusals.is_empty() {
        return Err(KubeApiError::InvalidArgument(format!(
            "nothing was requested: {}",
            refusals.join("; ")
        )));
    }
    if planned.is_empty() {
        return Ok(finish(items, None));
    }
    let api = csr_api(client(&o.kubeconfig).await?);
    let expiration = o
        .request_expiration
        .then(|| i32::try_from(r.validity.max(600)).unwrap_or(i32::MAX));
    // Create one request per certificate.
    let mut pending: Vec<Pending> = Vec::new();
    for (idx, e, found, signer) in planned {
        let info = &found.cert.info;
        let issue_err = |x: issue::IssueError| Error::Issue {
            cert: e.name.to_string(),
            reason: crate::error::Reason::of(x),
        };
        let alg = r.key_algorithm.resolve(&info.key_algorithm);
        let (key, _) = issue::new_key(alg).map_err(issue_err)?;
        let mut spec = LeafSpec::from_existing(info, 0, 0);
        spec.normalize();
        let der = issue::csr_der(&spec, &key.pair, false).map_err(issue_err)?;
        let cn = info.common_name.clone().unwrap_or_default();
        let obj = CertificateSigningRequest {
            metadata: ObjectMeta {
                generate_name: Some(generate_name(&cn)),
                labels: Some(
                    [(
                        "app.kubernetes.io/managed-by".to_string(),
                        "kubecert".to_string(),
                    )]
                    .into(),
                ),
                annotations: Some(
                    [("kubecert.io/certificate".to_string(), e.name.to_string())].into(),
                ),
                ..Default::default()
            },
            spec: CertificateSigningRequestSpec {
                request: ByteString(issue::csr_pem(&der).into_bytes()),
                signer_name: signer.clone(),
                usages: Some(e.role.api_usages().iter().map(|u| u.to_string()).collect()),
                expiration_seconds: expiration,
                ..Default::default()
            },
            status: None,
        };
        let created = api
            .create(&PostParams::default(), &obj)
            .await
            .map_err(api_err(format!(
                "creating a certificate signing request for {}{}",
                e.name,
                if pending.is_empty() {
                    String::new()
                } else {
                    format!(
                        " (already created, left in the cluster: {})",
                        pending
                            .iter()
                            .map(|p| p.csr_name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                }
            )))?;
        let csr_name = created.metadata.name.clone().unwrap_or_default();
        progress(&format!(
            "[certs] certificate request \"{csr_name}\" created"
        ));
        tracing::info!(cert = e.name, csr = %csr_name, signer = %signer, "certificate request created");
        pending.push(Pending {
            idx,
            entry: e,
            csr_name,
            signer,
            key,
            current_der: found.cert.der.clone(),
        });
    }
    // Wait for all of them, together, within the timeout.
    let deadline = tokio::time::Instant::now() + o.timeout;
    let waits = pending.iter().map(|p| {
        let api = api.clone();
        let timeout_text = timefmt::format_duration(o.timeout.as_secs() as i64);
        async move {
            match tokio::time::timeout_at(deadline, wait_issued(&api, &p.csr_name)).await {
                Ok(r) => r,
                Err(_) => Err(KubeApiError::Timeout {
                    name: p.csr_name.clone(),
                    timeout: timeout_text,
                    state: state_now(&api, &p.csr_name, &p.signer).await,
                }),
            }
        }
    });
    let results = futures::future::join_all(waits).await;
    let mut issued: Vec<Vec<u8>> = Vec::new();
    let mut errors: Vec<KubeApiError> = Vec::new();
    for res in results {
        match res {
            Ok(c) => issued.push(c),
            Err(e) => errors.push(e),
        }
    }
    if !errors.is_empty() {
        return Err(if errors.len() == 1 {
            errors.remove(0)
        } else {
            KubeApiError::Several(errors)
        });
    }
    // Validate under the PKI lock, then install everything in one transaction.
    let mut store = Store::open(&layout.cert_dir, r.lock_timeout)?;
    let cas = Cas::load(layout);
    let now = timefmt::now_unix();
    let mut all_writes = Vec::new();
    for (p, pem) in pending.iter().zip(issued.iter()) {
        let refused = |findings: String| KubeApiError::Refused {
            cert: p.entry.name.to_string(),
            name: p.csr_name.clone(),
            findings,
        };
        let signed =
            cert::parse_pem_bundle(pem).map_err(|e| refused(format!("status.certificate: {e}")))?;
        let key_desc = format!("the key generated for \"{}\"", p.csr_name);
        let v = csr::validate_issued(p.entry, layout, &cas, &signed, &p.key, &key_desc, now)
            .map_err(|f| {
                refused(
                    f.iter()
                        .map(|x| format!("{}: {}", x.code.as_str(), x.message))
                        .collect::<Vec<_>>()
                        .join("; "),
                )
            })?;
        if v.current_der != p.current_der {
            return Err(refused(format!(
                "{} changed while the request was pending (another renewal?)",
                layout.primary_path(p.entry).display()
            )));
        }
        let Some(item) = items.get_mut(p.idx) else {
            continue;
        };
        item.action = RenewAction::Renewed;
        item.reason = format!(
            "issued through certificate signing request \"{}\" (signer {})",
            p.csr_name, p.signer
        );
        item.new = Some(v.new);
        item.files = v
            .writes
            .iter()
            .map(|w| w.target.display().to_string())
            .collect();
        all_writes.extend(v.writes);
    }
    let backup_dir = if all_writes.is_empty() {
        None
    } else {
        store.commit(&all_writes, &r.backup_root, &store::stamp(now))?
    };
    let recovered = store.recovered().map(str::to_string);
    drop(store);
    let mut res = finish(items, backup_dir.map(|d| d.display().to_string()));
    res.recovered = recovered;
    Ok(res)
}

fn finish(items: Vec<RenewItem>, backup_dir: Option<String>) -> RenewResult {
    let components = inventory::components_of(
        items
            .iter()
            .filter(|i| i.action == RenewAction::Renewed)
            .filter_map(|i| inventory::find(&i.name)),
    );
    let changed = items.iter().any(|i| i.action == RenewAction::Renewed);
    RenewResult {
        dry_run: false,
        backup_dir,
        certificates: items,
        components_to_restart: components,
        changed,
        recovered: None,
        unrenewable: vec![],
    }
}

/// What the object says: issued (the certificate), denied, failed, or nothing yet.
fn verdict(o: &CertificateSigningRequest, name: &str) -> Option<Result<Vec<u8>>> {
    let s = CsrState::of(o);
    if let Some((reason, message)) = s.denied {
        return Some(Err(KubeApiError::Denied {
            name: name.to_string(),
            reason,
            message,
        }));
    }
    if let Some((reason, message)) = s.failed {
        return Some(Err(KubeApiError::Failed {
            name: name.to_string(),
            reason,
            message,
        }));
    }
    if s.approved && s.issued {
        let c = o
            .status
            .as_ref()
            .and_then(|st| st.certificate.as_ref())
            .map(|c| c.0.clone())
            .unwrap_or_default();
        return Some(Ok(c));
    }
    None
}

fn not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

/// Waits until the request is issued, denied, failed or deleted: GET, then watch from the
/// object's resourceVersion; a watch that ends (server timeout, 410 Gone, dropped
/// connection) is followed by a new GET and watch.
async fn wait_issued(api: &Api<CertificateSigningRequest>, name: &str) -> Result<Vec<u8>> {
    loop {
        let obj = match api.get(name).await {
            Ok(o) => o,
            Err(e) if not_found(&e) => {
                return Err(KubeApiError::Deleted {
                    name: name.to_string(),
                })
            }
            Err(e) => {
                return Err(api_err(format!(
                    "reading certificate signing request \"{name}\""
                ))(e))
            }
        };
        if let Some(v) = verdict(&obj, name) {
            return v;
        }
        let rv = obj
            .metadata
            .resource_version
            .clone()
            .unwrap_or_else(|| "0".into());
        let wp = WatchParams::default()
            .fields(&format!("metadata.name={name}"))
            .timeout(290);
        let started = Instant::now();
        match api.watch(&wp, &rv).await {
            Ok(stream) => {
                let mut stream = stream.boxed();
                while let Some(ev) = stream.next().await {
                    match ev {
                        Ok(WatchEvent::Added(o)) | Ok(WatchEvent::Modified(o)) => {
                            if let Some(v) = verdict(&o, name) {
                                return v;
                            }
                        }
                        Ok(WatchEvent::Deleted(_)) => {
                            return Err(KubeApiError::Deleted {
                                name: name.to_string(),
                            })
                        }
                        Ok(WatchEvent::Bookmark(_)) => {}
                        Ok(WatchEvent::Error(s)) => {
                            tracing::debug!(csr = name, code = s.code, message = %s.message, "watch error event; watching again");
                            break;
                        }
                        Err(e) => {
                            tracing::debug!(csr = name, error = %super::describe(&e), "watch stream failed; watching again");
                            break;
                        }
                    }
                }
            }
            Err(e) => {
                tracing::debug!(csr = name, error = %super::describe(&e), "watch failed; retrying");
            }
        }
        if started.elapsed() < Duration::from_secs(1) {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

/// Where a request stands, for the timeout message.
async fn state_now(api: &Api<CertificateSigningRequest>, name: &str, signer: &str) -> String {
    match api.get(name).await {
        Ok(o) => {
            let s = CsrState::of(&o);
            if s.pending() {
                "still Pending: nobody approved it (kubectl certificate approve NAME)".into()
            } else if s.approved && !s.issued {
                format!(
                    "Approved, but no certificate was issued: is a signer for {signer} running?"
                )
            } else {
                s.describe()
            }
        }
        Err(e) => format!("its state is unknown ({})", super::describe(&e)),
    }
}

/// kubeadm's text for a renewal through the API (the progress lines come first), then
/// which components must restart and where the backup is.
pub fn render_text(r: &RenewResult) -> String {
    let mut s = String::new();
    if let Some(rec) = &r.recovered {
        s.push_str(&format!("[renew] {rec}\n"));
    }
    for i in &r.certificates {
        s.push_str(&renew::item_line(i));
        s.push('\n');
    }
    if !r.changed {
        s.push_str("No certificate changed; no component needs a restart.\n");
    } else if r.components_to_restart.is_empty() {
        s.push_str("No component needs a restart.\n");
    } else {
        s.push_str(&format!(
            "Components whose certificates changed: {}\n",
            inventory::join_components(&r.components_to_restart)
        ));
    }
    if let Some(b) = &r.backup_dir {
        s.push_str(&format!("Backup of the replaced files: {b}\n"));
    }
    s
}
