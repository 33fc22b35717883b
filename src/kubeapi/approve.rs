//! `kubecert approve [NAME...|--all-pending]`: a policy-checked approver for
//! CertificateSigningRequests that renew certificates of this node's PKI.
//!
//! A pending request is **this node's business** when its request (PKCS#10) has the subject
//! (DER) and the SAN set of the current certificate of an inventory row. Such a request is
//! approved when every rule holds, and denied (condition `Denied`, reason `KubecertPolicy`,
//! every broken rule in the message) otherwise:
//!
//! - the signer name is allowed by the policy (and `kubernetes.io/kube-apiserver-client`
//!   only for client certificates of the cluster CA, the only ones it issues);
//! - the requester (`spec.username`, `spec.groups`) is allowed by the policy;
//! - `spec.expirationSeconds`, when given, is within the policy maximum;
//! - it is not a CA request (basicConstraints CA:TRUE in the extension request);
//! - the usages are those of the row's role (digital signature and the role's extended key
//!   usages required, key encipherment allowed, nothing else).
//!
//! Every other request is left pending (it may be another node's, or a kubelet's). With
//! `unmatched: deny` in the policy, a request that shares the subject **or** the SAN set with
//! a certificate of this node but not both (a forged variant: an extra SAN, a changed CN) is
//! denied instead. Approval is done as kubectl does it: GET, append the condition, PUT the
//! `/approval` subresource.

use std::path::{Path, PathBuf};

use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestStatus,
};
use kube::api::{ListParams, PostParams};
use kube::Api;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{
    api_err, client, condition, csr_api, describe, match_request, name_of, parse_request,
    usage_problems, CsrState, KubeApiError, Matching, Result, KUBE_APISERVER_CLIENT,
};
use crate::pki::inventory::{CaId, Role};
use crate::pki::Layout;

/// Default policy: signer names allowed.
pub const DEFAULT_SIGNER_NAMES: &[&str] = &[KUBE_APISERVER_CLIENT, "kubecert.io/*"];
/// Default policy: requester groups allowed (kubeadm's admin groups).
pub const DEFAULT_GROUPS: &[&str] = &["kubeadm:cluster-admins", "system:masters"];
/// Default policy: longest `expirationSeconds` (8760h, kubeadm's leaf validity).
pub const DEFAULT_MAX_EXPIRATION_SECONDS: i64 = 365 * 86400;
/// Reason of the `Approved` condition.
pub const APPROVE_REASON: &str = "KubecertApprove";
/// Reason of the `Denied` condition.
pub const DENY_REASON: &str = "KubecertPolicy";

/// What to do with a request that looks like a forged variant of one of this node's
/// certificates (same subject or same SANs, not both).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Unmatched {
    /// Leave it pending (the default: in an HA cluster it may be another node's).
    #[default]
    Leave,
    /// Deny it.
    Deny,
}

/// The approve policy (`--policy FILE`, YAML or JSON, camelCase keys; every key is optional
/// and an absent key keeps its default).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Policy {
    /// Signer names a request may use; an entry ending in `*` matches by prefix. Default
    /// `["kubernetes.io/kube-apiserver-client", "kubecert.io/*"]`.
    #[serde(default = "default_signers")]
    pub signer_names: Vec<String>,
    /// Requesters (`spec.username`) allowed. Default none.
    #[serde(default)]
    pub users: Vec<String>,
    /// Requester groups (`spec.groups`) allowed. Default `["kubeadm:cluster-admins",
    /// "system:masters"]`.
    #[serde(default = "default_groups")]
    pub groups: Vec<String>,
    /// Longest `spec.expirationSeconds` approved. Default 31536000 (8760h). Requests without
    /// expirationSeconds get the signer's default duration.
    #[serde(default = "default_max")]
    pub max_expiration_seconds: i64,
    /// `leave` (default) or `deny` requests that share the subject or the SANs with a
    /// certificate of this node, but not both.
    #[serde(default)]
    pub unmatched: Unmatched,
    /// `--kubelet-serving`: a request Approved but without a certificate for longer than this
    /// is reported (`approved-not-issued`). Default 300 (5 min).
    #[serde(default = "default_issued_within")]
    pub issued_within_seconds: i64,
}

fn default_signers() -> Vec<String> {
    DEFAULT_SIGNER_NAMES.iter().map(|s| s.to_string()).collect()
}
fn default_groups() -> Vec<String> {
    DEFAULT_GROUPS.iter().map(|s| s.to_string()).collect()
}
fn default_max() -> i64 {
    DEFAULT_MAX_EXPIRATION_SECONDS
}
fn default_issued_within() -> i64 {
    super::kubelet_serving::DEFAULT_ISSUED_WITHIN_SECONDS
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            signer_names: default_signers(),
            users: vec![],
            groups: default_groups(),
            max_expiration_seconds: default_max(),
            unmatched: Unmatched::Leave,
            issued_within_seconds: default_issued_within(),
        }
    }
}

impl Policy {
    /// Reads a policy file (YAML or JSON).
    pub fn load(path: &Path) -> Result<Policy> {
        let perr = |reason: String| KubeApiError::Policy {
            path: path.to_path_buf(),
            reason,
        };
        let bytes = crate::pki::fsread::read(path).map_err(|e| perr(crate::error::report(&e)))?;
        let text = String::from_utf8(bytes).map_err(|_| perr("not UTF-8".into()))?;
        if text.trim().is_empty() {
            return Ok(Policy::default());
        }
        let p: Policy =
            serde_saphyr::from_str(&text).map_err(|e| perr(crate::error::describe_yaml(&e)))?;
        if p.max_expiration_seconds < 600 {
            return Err(perr(
                "maxExpirationSeconds must be at least 600 (the API's minimum)".into(),
            ));
        }
        if p.issued_within_seconds < 0 {
            return Err(perr("issuedWithinSeconds must not be negative".into()));
        }
        Ok(p)
    }

    /// Whether `signer` is allowed.
    pub fn signer_allowed(&self, signer: &str) -> bool {
        self.signer_names.iter().any(|p| match p.strip_suffix('*') {
            Some(prefix) => signer.starts_with(prefix),
            None => p == signer,
        })
    }

    /// Whether the requester is allowed.
    pub fn requester_allowed(&self, user: &str, groups: &[String]) -> bool {
        self.users.iter().any(|u| u == user) || groups.iter().any(|g| self.groups.contains(g))
    }
}

/// Parameters of `approve` (CLI flags and JSON-RPC params).
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ApproveParams {
    /// CSR object names to judge (or `all_pending`).
    #[serde(default)]
    pub names: Vec<String>,
    /// Judge every pending request instead of named ones.
    #[serde(default)]
    pub all_pending: bool,
    /// Kubeconfig to reach the API server (default `/etc/kubernetes/admin.conf`).
    #[serde(default)]
    pub kubeconfig: Option<String>,
    /// Policy file, YAML or JSON (default: the built-in policy).
    #[serde(default)]
    pub policy: Option<String>,
    /// Decide and report only; change nothing in the cluster.
    #[serde(default)]
    pub dry_run: bool,
    /// Judge kubelet serving certificate requests (signer `kubernetes.io/kubelet-serving`)
    /// by the kubelet rule (requester, subject, usages, SANs among the Node's
    /// `status.addresses`) instead of this node's PKI.
    #[serde(default)]
    pub kubelet_serving: bool,
    /// With `kubelet_serving`: report a request Approved but not issued after this long
    /// (duration, e.g. `5m`; default the policy's `issuedWithinSeconds`, 300 s).
    #[serde(default)]
    pub issued_within: Option<String>,
    /// Fixed clock for the approved-not-issued bound, RFC 3339 (default: now).
    #[serde(default)]
    pub now: Option<String>,
    /// Where the PKI is: `cert_dir`, `kubeconfig_dir`, `external_etcd` (top-level params).
    #[serde(flatten)]
    pub location: crate::pki::PkiLocation,
}

/// The decision on one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Decision {
    /// Approved (an `Approved` condition was added).
    Approved,
    /// Denied (a `Denied` condition, reason `KubecertPolicy`, was added).
    Denied,
    /// Left pending: not this node's business.
    Pending,
    /// Dry run: would be approved.
    WouldApprove,
    /// Dry run: would be denied.
    WouldDeny,
    /// Not pending (already approved, denied, failed or issued): left alone.
    Skipped,
    /// A named request does not exist.
    NotFound,
}

/// What was decided for one request, and why.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ApproveItem {
    /// CSR object name.
    pub name: String,
    /// The decision.
    pub decision: Decision,
    /// Why: the rules it broke (denied), what it matched (approved), why it is not ours.
    pub reasons: Vec<String>,
    /// `spec.signerName`.
    pub signer_name: String,
    /// `spec.username`.
    pub username: String,
    /// `spec.groups`.
    pub groups: Vec<String>,
    /// `spec.usages`.
    pub usages: Vec<String>,
    /// `spec.expirationSeconds`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expiration_seconds: Option<i32>,
    /// Subject of the request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// The inventory row(s) whose current certificate the request matches.
    pub certificates: Vec<String>,
    /// The CA those rows belong to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_name: Option<String>,
    /// `--kubelet-serving`: the node the request is for (from `spec.username`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// `--kubelet-serving`: every denial, pending and report reason as a typed finding (the
    /// messages are also in `reasons`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<super::kubelet_serving::Finding>,
}

/// Result of `approve`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ApproveResult {
    /// Whether this was a dry run.
    pub dry_run: bool,
    /// Per request, in name order (named ones in the order given).
    pub requests: Vec<ApproveItem>,
    /// Whether any request was approved or denied.
    pub changed: bool,
    /// The policy applied.
    pub policy: Policy,
    /// Whether this was `--kubelet-serving`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub kubelet_serving: bool,
}

impl ApproveResult {
    /// Names of the requests reported `approved-not-issued`.
    pub fn not_issued(&self) -> Vec<&str> {
        self.requests
            .iter()
            .filter(|i| {
                i.findings
                    .iter()
                    .any(|f| f.code == super::kubelet_serving::Code::ApprovedNotIssued)
            })
            .map(|i| i.name.as_str())
            .collect()
    }
}

pub(super) fn base_item(csr: &CertificateSigningRequest) -> ApproveItem {
    ApproveItem {
        name: name_of(csr),
        decision: Decision::Pending,
        reasons: vec![],
        signer_name: csr.spec.signer_name.clone(),
        username: csr.spec.username.clone().unwrap_or_default(),
        groups: csr.spec.groups.clone().unwrap_or_default(),
        usages: csr.spec.usages.clone().unwrap_or_default(),
        expiration_seconds: csr.spec.expiration_seconds,
        subject: None,
        certificates: vec![],
        ca_name: None,
        node: None,
        findings: vec![],
    }
}

/// The item of a named request that does not exist.
pub(super) fn not_found_item(name: &str) -> ApproveItem {
    ApproveItem {
        name: name.to_string(),
        decision: Decision::NotFound,
        reasons: vec![format!(
            "certificatesigningrequests.certificates.k8s.io \"{name}\" not found"
        )],
        signer_name: String::new(),
        username: String::new(),
        groups: vec![],
        usages: vec![],
        expiration_seconds: None,
        subject: None,
        certificates: vec![],
        ca_name: None,
        node: None,
        findings: vec![],
    }
}

/// Judges one request against the policy and this node's PKI (no side effect). The
/// decision is `Approved`, `Denied`, `Pending` or `Skipped`.
pub fn evaluate(policy: &Policy, layout: &Layout, csr: &CertificateSigningRequest) -> ApproveItem {
    let mut it = base_item(csr);
    let st = CsrState::of(csr);
    if !st.pending() {
        it.decision = Decision::Skipped;
        it.reasons
            .push(format!("not pending ({}): left alone", st.describe()));
        return it;
    }
    let req = match parse_request(&csr.spec.request.0) {
        Ok(r) => r,
        Err(why) => {
            it.reasons.push(format!(
                "spec.request cannot be judged ({}); left pending",
                crate::error::report(&why)
            ));
            return it;
        }
    };
    it.subject = Some(req.subject.clone());
    let rows = match match_request(layout, &req) {
        Matching::Rows(r) => r,
        Matching::None { nearest } => {
            match nearest {
                Some((row, diff)) if policy.unmatched == Unmatched::Deny => {
                    it.decision = Decision::Denied;
                    it.certificates = vec![];
                    it.reasons.push(format!(
                        "the request does not match the current certificate of any row of \
                         this node's PKI: nearest is {row} ({diff})"
                    ));
                }
                Some((row, diff)) => it.reasons.push(format!(
                    "no certificate of this node's PKI has this subject and these SANs \
                     (nearest: {row}, {diff}); not this node's business, left pending"
                )),
                None => it.reasons.push(format!(
                    "no certificate of this node's PKI has subject \"{}\"; not this node's \
                     business, left pending",
                    req.subject
                )),
            }
            return it;
        }
    };
    it.certificates = rows.iter().map(|r| r.entry.name.to_string()).collect();
    let Some(first) = rows.first().copied() else {
        return it;
    };
    let (ca, role) = (first.ca, first.entry.role);
    if rows.iter().any(|r| r.ca != ca || r.entry.role != role) {
        it.reasons.push(format!(
            "matches {} with different CAs or roles; left pending",
            it.certificates.join(", ")
        ));
        return it;
    }
    it.ca_name = Some(ca.name().to_string());
    let row = first.entry.name;
    let mut broken = Vec::new();
    let signer = csr.spec.signer_name.as_str();
    if !policy.signer_allowed(signer) {
        broken.push(format!(
            "signer {signer} is not allowed by the policy (allowed: {})",
            policy.signer_names.join(", ")
        ));
    } else if signer == KUBE_APISERVER_CLIENT && !(role == Role::Client && ca == CaId::Ca) {
        broken.push(format!(
            "signer {signer} issues client certificates from the cluster CA, but {row} is a \
             {} certificate issued by {}",
            role.api_name(),
            ca.name()
        ));
    }
    if !policy.requester_allowed(&it.username, &it.groups) {
        broken.push(format!(
            "requester {:?} (groups {}) is not allowed by the policy (users: {}; groups: {})",
            it.username,
            if it.groups.is_empty() {
                "none".to_string()
            } else {
                it.groups.join(", ")
            },
            if policy.users.is_empty() {
                "none".to_string()
            } else {
                policy.users.join(", ")
            },
            policy.groups.join(", ")
        ));
    }
    if let Some(s) = csr.spec.expiration_seconds {
        if i64::from(s) > policy.max_expiration_seconds {
            broken.push(format!(
                "requested duration {s}s (expirationSeconds) exceeds the policy maximum {}s",
                policy.max_expiration_seconds
            ));
        }
    }
    if req.is_ca {
        broken.push(
            "the request asks for a CA certificate (basicConstraints CA:TRUE in its extension \
             request)"
                .into(),
        );
    }
    broken.extend(
        usage_problems(&it.usages, role)
            .into_iter()
            .map(|p| format!("{p} ({row})")),
    );
    if broken.is_empty() {
        it.decision = Decision::Approved;
        it.reasons.push(format!(
            "renews {} of this node's PKI: same subject and SANs as the current certificate, \
             usages of a {} certificate, signer {signer} and requester {:?} allowed",
            it.certificates.join(" / "),
            role.api_name(),
            it.username
        ));
    } else {
        it.decision = Decision::Denied;
        it.reasons = broken;
    }
    it
}

/// Appends the condition and PUTs the `/approval` subresource (as `kubectl certificate
/// approve|deny` does), retrying once on a conflict. Refuses when the object is no longer
/// pending, or is no longer the object judged (`judged_uid`).
pub(super) async fn write_decision(
    api: &Api<CertificateSigningRequest>,
    name: &str,
    judged_uid: Option<&str>,
    approve: bool,
    message: &str,
) -> std::result::Result<(), String> {
    for attempt in 0..2 {
        let mut obj = api.get(name).await.map_err(|e| describe(&e))?;
        // The object judged, not another one created under its name since (the request
        // of a CSR cannot change, but the object can be deleted and created again).
        let uid = obj.metadata.uid.as_deref();
        if let Some(judged) = judged_uid.filter(|j| uid != Some(*j)) {
            return Err(format!(
                "replaced meanwhile (uid {}, judged {judged}): the judged request is gone",
                uid.unwrap_or("none")
            ));
        }
        let st = CsrState::of(&obj);
        if !st.pending() {
            return Err(format!("changed meanwhile ({})", st.describe()));
        }
        let c = if approve {
            condition("Approved", APPROVE_REASON, message)
        } else {
            condition("Denied", DENY_REASON, message)
        };
        obj.status
            .get_or_insert_with(CertificateSigningRequestStatus::default)
            .conditions
            .get_or_insert_with(Vec::new)
            .push(c);
        match api
            .replace_subresource("approval", name, &PostParams::default(), &obj)
            .await
        {
            Ok(_) => return Ok(()),
            Err(kube::Error::Api(s)) if s.code == 409 && attempt == 0 => continue,
            Err(e) => return Err(describe(&e)),
        }
    }
    Err("conflict on every attempt".into())
}

/// Judges (and, unless `dry_run`, approves or denies) the named or all pending requests.
pub async fn approve(p: &ApproveParams) -> Result<ApproveResult> {
    if p.all_pending != p.names.is_empty() {
        return Err(KubeApiError::InvalidArgument(
            "name the certificate signing requests to judge, or pass --all-pending (not both)"
                .into(),
        ));
    }
    let policy = match &p.policy {
        Some(f) => Policy::load(Path::new(f))?,
        None => Policy::default(),
    };
    let kubeconfig = PathBuf::from(p.kubeconfig.as_deref().unwrap_or(super::DEFAULT_KUBECONFIG));
    if p.kubelet_serving {
        return super::kubelet_serving::run(p, policy, client(&kubeconfig).await?).await;
    }
    if p.issued_within.is_some() || p.now.is_some() {
        return Err(KubeApiError::InvalidArgument(
            "issued_within and now apply to --kubelet-serving only".into(),
        ));
    }
    let layout = p.location.layout();
    if !layout.cert_dir.is_dir() {
        return Err(crate::Error::io(
            &layout.cert_dir,
            std::io::Error::new(std::io::ErrorKind::NotFound, "cert dir not found"),
        )
        .into());
    }
    let api = csr_api(client(&kubeconfig).await?);
    let mut objs: Vec<Result<CertificateSigningRequest, String>> = Vec::new();
    if p.all_pending {
        let list = api
            .list(&ListParams::default())
            .await
            .map_err(api_err("listing certificate signing requests"))?;
        let mut items: Vec<CertificateSigningRequest> = list
            .items
            .into_iter()
            .filter(|c| CsrState::of(c).pending())
            .collect();
        items.sort_by_key(name_of);
        objs.extend(items.into_iter().map(Ok));
    } else {
        for n in &p.names {
            match api.get(n).await {
                Ok(o) => objs.push(Ok(o)),
                Err(kube::Error::Api(s)) if s.code == 404 => objs.push(Err(n.clone())),
                Err(e) => {
                    return Err(api_err(format!(
                        "reading certificate signing request \"{n}\""
                    ))(e))
                }
            }
        }
    }
    let mut requests = Vec::new();
    let mut changed = false;
    for o in objs {
        let csr = match o {
            Ok(c) => c,
            Err(name) => {
                requests.push(not_found_item(&name));
                continue;
            }
        };
        let mut it = evaluate(&policy, &layout, &csr);
        let approve = match it.decision {
            Decision::Approved => true,
            Decision::Denied => false,
            _ => {
                requests.push(it);
                continue;
            }
        };
        if p.dry_run {
            it.decision = if approve {
                Decision::WouldApprove
            } else {
                Decision::WouldDeny
            };
        } else {
            let message = if approve {
                format!("Approved by kubecert approve: {}", it.reasons.join("; "))
            } else {
                format!("Denied by kubecert approve: {}", it.reasons.join("; "))
            };
            match write_decision(
                &api,
                &it.name,
                csr.metadata.uid.as_deref(),
                approve,
                &message,
            )
            .await
            {
                Ok(()) => {
                    changed = true;
                    tracing::info!(csr = %it.name, decision = ?it.decision, "decided");
                }
                Err(why) => {
                    it.reasons.push(format!(
                        "could not write the decision ({why}); left as it is"
                    ));
                    it.decision = Decision::Skipped;
                }
            }
        }
        requests.push(it);
    }
    Ok(ApproveResult {
        dry_run: p.dry_run,
        requests,
        changed,
        policy,
        kubelet_serving: false,
    })
}

/// [`approve`] from blocking code (the JSON-RPC method), as a library result.
pub fn approve_blocking(p: &ApproveParams) -> crate::Result<ApproveResult> {
    super::block_on(approve(p))?.map_err(Into::into)
}

/// Text output of `approve`.
pub fn render_text(r: &ApproveResult) -> String {
    let mut s = String::new();
    for it in &r.requests {
        let what = match it.decision {
            Decision::Approved => "approved",
            Decision::Denied => "DENIED",
            Decision::Pending => "left pending",
            Decision::WouldApprove => "[dry-run] would approve",
            Decision::WouldDeny => "[dry-run] would DENY",
            Decision::Skipped => "skipped",
            Decision::NotFound => "NOT FOUND",
        };
        let rows = if !it.certificates.is_empty() {
            format!(" ({})", it.certificates.join(", "))
        } else if let Some(n) = &it.node {
            format!(" (node {n})")
        } else {
            String::new()
        };
        s.push_str(&format!("[approve] {}: {what}{rows}\n", it.name));
        if it.findings.is_empty() {
            for why in &it.reasons {
                s.push_str(&format!("    - {why}\n"));
            }
        } else {
            // The reasons that are not findings (the approval, a failed write), then each
            // finding with its code.
            for why in it
                .reasons
                .iter()
                .filter(|w| !it.findings.iter().any(|f| &f.message == *w))
            {
                s.push_str(&format!("    - {why}\n"));
            }
            for f in &it.findings {
                s.push_str(&format!("    - [{}] {}\n", f.code, f.message));
            }
        }
    }
    if r.requests.is_empty() {
        s.push_str(if r.kubelet_serving {
            "[approve] no pending kubelet-serving certificate signing request\n"
        } else {
            "[approve] no pending certificate signing request\n"
        });
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// review15: between the judgement and the write, the object of that name was deleted
    /// and created again (another request, another uid): the decision about the judged
    /// request must not be written onto the new one. A mock API server answers the re-read
    /// with the new object and records any PUT of `/approval`.
    #[tokio::test]
    async fn a_request_replaced_meanwhile_is_not_decided() {
        use std::sync::{Arc, Mutex};
        let puts: Arc<Mutex<Vec<String>>> = Arc::default();
        let seen = puts.clone();
        let svc = tower::service_fn(move |req: hyper::Request<kube::client::Body>| {
            let seen = seen.clone();
            async move {
                let path = req.uri().path().to_string();
                if req.method() == hyper::Method::PUT {
                    if let Ok(mut v) = seen.lock() {
                        v.push(path.clone());
                    }
                }
                let obj = serde_json::json!({
                    "apiVersion": "certificates.k8s.io/v1",
                    "kind": "CertificateSigningRequest",
                    "metadata": {"name": "x", "uid": "uid-new", "resourceVersion": "2"},
                    "spec": {"request": "", "signerName": "kubernetes.io/kubelet-serving",
                             "usages": ["server auth"]},
                    "status": {},
                });
                let body = kube::client::Body::from(serde_json::to_vec(&obj).unwrap_or_default());
                Ok::<_, std::convert::Infallible>(hyper::Response::new(body))
            }
        });
        let client = kube::Client::new(svc, "default");
        let api: Api<CertificateSigningRequest> = Api::all(client);
        let e = write_decision(&api, "x", Some("uid-judged"), true, "ok")
            .await
            .expect_err("another object now");
        assert_eq!(
            e,
            "replaced meanwhile (uid uid-new, judged uid-judged): the judged request is gone"
        );
        assert_eq!(*puts.lock().expect("lock"), Vec::<String>::new());
        // The judged object itself is still written.
        write_decision(&api, "x", Some("uid-new"), true, "ok")
            .await
            .expect("the same object");
        assert_eq!(puts.lock().expect("lock").len(), 1);
    }

    #[test]
    fn policy_defaults_and_patterns() {
        let p = Policy::default();
        assert!(p.signer_allowed("kubernetes.io/kube-apiserver-client"));
        assert!(p.signer_allowed("kubecert.io/apiserver"));
        assert!(!p.signer_allowed("kubernetes.io/kubelet-serving"));
        assert!(!p.signer_allowed("example.com/x"));
        assert!(p.requester_allowed("x", &["kubeadm:cluster-admins".into()]));
        assert!(!p.requester_allowed("developer", &["developers".into()]));
        let t = tempfile::tempdir().expect("tempdir");
        let f = t.path().join("p.yaml");
        std::fs::write(
            &f,
            "users: [alice]\nmaxExpirationSeconds: 3600\nunmatched: deny\n",
        )
        .expect("write");
        let q = Policy::load(&f).expect("load");
        assert_eq!(q.users, ["alice"]);
        assert_eq!(q.groups, DEFAULT_GROUPS);
        assert_eq!(q.max_expiration_seconds, 3600);
        assert_eq!(q.unmatched, Unmatched::Deny);
        std::fs::write(&f, r#"{"signerNames": ["a.io/*"], "bogus": 1}"#).expect("write");
        assert!(Policy::load(&f).is_err());
        std::fs::write(&f, r#"{"signerNames": ["a.io/*"]}"#).expect("write");
        assert_eq!(Policy::load(&f).expect("json").signer_names, ["a.io/*"]);
    }

    #[test]
    fn params_need_names_or_all_pending() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("rt");
        let r = rt.block_on(approve(&ApproveParams::default()));
        assert!(matches!(r, Err(KubeApiError::InvalidArgument(_))));
        let both = ApproveParams {
            names: vec!["x".into()],
            all_pending: true,
            ..Default::default()
        };
        assert!(matches!(
            rt.block_on(approve(&both)),
            Err(KubeApiError::InvalidArgument(_))
        ));
    }
}
