//! `kubecert sign --signer-name NAME [--watch]`: kubecert as the external signer of a signer
//! name (the `csrsigning` role of kube-controller-manager, for the certificates no built-in
//! signer issues: serving, etcd and front-proxy certificates).
//!
//! It acts on CertificateSigningRequests of its signer name that are Approved, not Denied or
//! Failed, and carry no certificate yet. Each request is matched, by subject (DER) and SAN
//! set, to the current certificate of an inventory row of this node's PKI; that row's CA
//! (`ca`, `front-proxy-ca` or `etcd/ca`) signs it:
//!
//! - usages come from `spec.usages` and must fit the row's role (digital signature and the
//!   role's extended key usages required; key encipherment allowed; nothing else) — else a
//!   `Failed` condition (reason `SignerValidationFailure`);
//! - a CA request (basicConstraints CA:TRUE in the extension request) → `Failed`;
//! - validity: NotBefore = now − 5 min, NotAfter = now + `spec.expirationSeconds` (at least
//!   600 s) capped at `--max-duration` and at the CA's NotAfter;
//! - subject copied byte for byte, SANs from the request, basicConstraints CA:FALSE, keyUsage
//!   from the usages, AKI = the CA's SKI, random serial;
//! - the certificate goes to `status.certificate` through the `/status` subresource.
//!
//! Requests that match no certificate of this PKI are left alone (another control-plane
//! node's signer may own them), as are requests whose CA key is absent here.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestStatus,
};
use k8s_openapi::ByteString;
use kube::api::{ListParams, PostParams, WatchEvent, WatchParams};
use kube::Api;
use rcgen::KeyUsagePurpose;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{
    api_err, client, condition, csr_api, describe, match_request, name_of, parse_request,
    usage_problems, CsrState, KubeApiError, Matching, Result, CLIENT_AUTH, DIGITAL_SIGNATURE,
    KEY_ENCIPHERMENT, SERVER_AUTH,
};
use crate::pki::cert;
use crate::pki::inventory::CaId;
use crate::pki::issue::{self, CaSigner, LeafSpec};
use crate::pki::{Cas, Layout};
use crate::timefmt;

/// Options of `kubecert sign`.
#[derive(Debug, Clone)]
pub struct SignOptions {
    /// This node's PKI.
    pub layout: Layout,
    /// The kubeconfig to reach the API server with.
    pub kubeconfig: PathBuf,
    /// The signer name handled.
    pub signer_name: String,
    /// Longest validity issued (seconds).
    pub max_duration: i64,
}

/// What the signer did with one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum SignAction {
    /// A certificate was issued.
    Signed,
    /// A `Failed` condition was set.
    Failed,
    /// Left alone (not approved yet, already done, not this node's, CA key absent, ...).
    Ignored,
}

/// One request's outcome.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SignItem {
    /// CSR object name.
    pub name: String,
    /// What happened.
    pub action: SignAction,
    /// Why.
    pub reason: String,
    /// The inventory row(s) the request matched.
    pub certificates: Vec<String>,
    /// The CA that signed it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_name: Option<String>,
    /// Serial of the issued certificate (hex).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    /// NotAfter of the issued certificate (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_after: Option<String>,
}

/// Result of one pass of `kubecert sign`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SignResult {
    /// The signer name handled.
    pub signer_name: String,
    /// Every request of that signer name seen.
    pub requests: Vec<SignItem>,
}

fn item(name: &str, action: SignAction, reason: impl Into<String>) -> SignItem {
    SignItem {
        name: name.to_string(),
        action,
        reason: reason.into(),
        certificates: vec![],
        ca_name: None,
        serial: None,
        not_after: None,
    }
}

/// The certificate to issue for an approved request, or why not.
enum Decision {
    Ignore(SignItem),
    Fail(SignItem),
    Sign {
        item: SignItem,
        ca: CaId,
        spec: Box<LeafSpec>,
        spki: Vec<u8>,
        key_usages: Vec<KeyUsagePurpose>,
    },
}

fn decide(o: &SignOptions, cas: &Cas, csr: &CertificateSigningRequest, now: i64) -> Decision {
    let name = name_of(csr);
    if csr.spec.signer_name != o.signer_name {
        return Decision::Ignore(item(
            &name,
            SignAction::Ignored,
            format!("signer {} is not {}", csr.spec.signer_name, o.signer_name),
        ));
    }
    let st = CsrState::of(csr);
    if st.issued || st.denied.is_some() || st.failed.is_some() || !st.approved {
        return Decision::Ignore(item(
            &name,
            SignAction::Ignored,
            format!("{}: nothing to sign", st.describe()),
        ));
    }
    let req = match parse_request(&csr.spec.request.0) {
        Ok(r) => r,
        Err(why) => {
            return Decision::Fail(item(
                &name,
                SignAction::Failed,
                format!("spec.request: {}", crate::error::report(&why)),
            ))
        }
    };
    let rows = match match_request(&o.layout, &req) {
        Matching::Rows(r) => r,
        Matching::None { nearest } => {
            return Decision::Ignore(item(
                &name,
                SignAction::Ignored,
                format!(
                    "no certificate of this node's PKI has subject \"{}\" and these SANs{}; \
                     left for another signer",
                    req.subject,
                    nearest
                        .map(|(n, d)| format!(" (nearest: {n}, {d})"))
                        .unwrap_or_default()
                ),
            ))
        }
    };
    let mut it = item(&name, SignAction::Signed, "");
    it.certificates = rows.iter().map(|r| r.entry.name.to_string()).collect();
    let Some(first) = rows.first().copied() else {
        return Decision::Ignore(item(&name, SignAction::Ignored, "no matching certificate"));
    };
    let (ca, role) = (first.ca, first.entry.role);
    if rows.iter().any(|r| r.ca != ca || r.entry.role != role) {
        it.action = SignAction::Ignored;
        it.reason = format!(
            "matches {} issued by different CAs or with different roles; refusing to guess",
            it.certificates.join(", ")
        );
        return Decision::Ignore(it);
    }
    it.ca_name = Some(ca.name().to_string());
    let fail = |mut it: SignItem, why: String| {
        it.action = SignAction::Failed;
        it.reason = why;
        Decision::Fail(it)
    };
    if req.is_ca {
        return fail(
            it,
            "the request asks for a CA certificate (basicConstraints CA:TRUE); only leaf \
             certificates are signed"
                .into(),
        );
    }
    let usages: Vec<String> = csr.spec.usages.clone().unwrap_or_default();
    let problems = usage_problems(&usages, role);
    if !problems.is_empty() {
        return fail(
            it,
            format!(
                "invalid usages for {}: {}",
                first.entry.name,
                problems.join("; ")
            ),
        );
    }
    let Some(ca_cert) = cas.get(ca).and_then(|c| c.cert()) else {
        it.action = SignAction::Ignored;
        it.reason = format!("the {} certificate is missing here", ca.name());
        return Decision::Ignore(it);
    };
    if cas.get(ca).is_some_and(|c| c.externally_managed()) {
        it.action = SignAction::Ignored;
        it.reason = format!(
            "{} is absent: {} is externally managed",
            o.layout.ca_key(ca).display(),
            ca.name()
        );
        return Decision::Ignore(it);
    }
    if !ca_cert.info.is_ca {
        it.action = SignAction::Ignored;
        it.reason = format!("{} is not a CA certificate", ca.name());
        return Decision::Ignore(it);
    }
    if ca_cert.info.not_after <= now {
        return fail(
            it,
            format!(
                "the {} certificate expired at {}",
                ca.name(),
                timefmt::rfc3339(ca_cert.info.not_after)
            ),
        );
    }
    let ttl = match csr.spec.expiration_seconds {
        Some(s) => i64::from(s).max(600).min(o.max_duration),
        None => o.max_duration,
    };
    let not_before = now - issue::BACKDATE_SECONDS;
    let not_after = (now + ttl).min(ca_cert.info.not_after);
    let mut ekus = Vec::new();
    if usages.iter().any(|u| u == SERVER_AUTH) {
        ekus.push("serverAuth".to_string());
    }
    if usages.iter().any(|u| u == CLIENT_AUTH) {
        ekus.push("clientAuth".to_string());
    }
    let mut key_usages = Vec::new();
    if usages.iter().any(|u| u == DIGITAL_SIGNATURE) {
        key_usages.push(KeyUsagePurpose::DigitalSignature);
    }
    if usages.iter().any(|u| u == KEY_ENCIPHERMENT) {
        key_usages.push(KeyUsagePurpose::KeyEncipherment);
    }
    let spec = LeafSpec {
        subject_der: req.subject_der.clone(),
        dns_names: req.dns_names.clone(),
        ip_addresses: req.ip_addresses.clone(),
        uris: req.uris.clone(),
        emails: req.emails.clone(),
        ext_key_usage: ekus,
        not_before,
        not_after,
    };
    Decision::Sign {
        item: it,
        ca,
        spec: Box::new(spec),
        spki: req.spki_der,
        key_usages,
    }
}

/// Signs with the CA key from disk (re-read for every signature); returns the leaf DER.
fn issue(
    o: &SignOptions,
    cas: &Cas,
    ca: CaId,
    spec: &LeafSpec,
    spki: &[u8],
    key_usages: &[KeyUsagePurpose],
) -> std::result::Result<Vec<u8>, String> {
    let ca_cert = cas
        .get(ca)
        .and_then(|c| c.cert())
        .ok_or_else(|| format!("the {} certificate is missing", ca.name()))?;
    let key_path = o.layout.ca_key(ca);
    let bytes = cert::read_file(&key_path).map_err(|e| crate::error::report(&e))?;
    let key =
        cert::parse_private_key(&bytes).map_err(|e| format!("{}: {e}", key_path.display()))?;
    if !key.matches(&ca_cert.info) {
        return Err(format!(
            "{} does not match the {} certificate",
            key_path.display(),
            ca.name()
        ));
    }
    let public = rcgen::SubjectPublicKeyInfo::from_der(spki)
        .map_err(|e| format!("unsupported public key in the request: {e}"))?;
    let der = issue::sign_leaf_for(
        spec,
        &public,
        key_usages,
        &CaSigner {
            cert: ca_cert,
            key: &key,
        },
    )
    .map_err(|e| format!("signing failed: {e}"))?;
    // Never hand out something we would not accept.
    let info = cert::parse_der(&der).map_err(|e| crate::error::report(&e))?;
    if info.spki_der != spki {
        return Err("the issued certificate does not carry the requested public key".into());
    }
    if !cert::signed_by(&der, &ca_cert.der) {
        return Err(format!(
            "the issued certificate does not verify with {}",
            ca.name()
        ));
    }
    Ok(der)
}

/// Writes the outcome to the object's `/status` (certificate or Failed condition), retrying
/// once on a conflict with a fresh copy that still needs it.
async fn write_status(
    api: &Api<CertificateSigningRequest>,
    csr: &CertificateSigningRequest,
    certificate: Option<&[u8]>,
    failure: Option<&str>,
) -> std::result::Result<(), String> {
    let name = name_of(csr);
    let mut obj = csr.clone();
    for attempt in 0..2 {
        let st = obj
            .status
            .get_or_insert_with(CertificateSigningRequestStatus::default);
        if let Some(c) = certificate {
            st.certificate = Some(ByteString(c.to_vec()));
        }
        if let Some(msg) = failure {
            st.conditions.get_or_insert_with(Vec::new).push(condition(
                "Failed",
                "SignerValidationFailure",
                msg,
            ));
        }
        match api
            .replace_status(&name, &PostParams::default(), &obj)
            .await
        {
            Ok(_) => return Ok(()),
            Err(kube::Error::Api(s)) if s.code == 409 && attempt == 0 => {
                let fresh = api.get(&name).await.map_err(|e| describe(&e))?;
                let fs = CsrState::of(&fresh);
                if fs.issued || fs.failed.is_some() || fs.denied.is_some() || !fs.approved {
                    return Err(format!("changed meanwhile ({})", fs.describe()));
                }
                obj = fresh;
            }
            Err(e) => return Err(describe(&e)),
        }
    }
    Err("conflict on every attempt".into())
}

/// Handles one object: decides, signs or fails it, writes the status.
async fn handle(
    o: &SignOptions,
    api: &Api<CertificateSigningRequest>,
    csr: &CertificateSigningRequest,
) -> SignItem {
    let cas = Cas::load(&o.layout);
    let now = timefmt::now_unix();
    match decide(o, &cas, csr, now) {
        Decision::Ignore(it) => it,
        Decision::Fail(mut it) => {
            if let Err(e) = write_status(api, csr, None, Some(&it.reason)).await {
                it.action = SignAction::Ignored;
                it.reason = format!("could not set the Failed condition ({e}): {}", it.reason);
            }
            it
        }
        Decision::Sign {
            mut item,
            ca,
            spec,
            spki,
            key_usages,
        } => match issue(o, &cas, ca, &spec, &spki, &key_usages) {
            Err(e) => {
                item.action = SignAction::Ignored;
                item.reason = format!("not signed: {e}");
                item
            }
            Ok(der) => {
                let pem = issue::cert_pem(&der);
                match write_status(api, csr, Some(pem.as_bytes()), None).await {
                    Ok(()) => {
                        if let Ok(info) = cert::parse_der(&der) {
                            item.serial = Some(info.serial.clone());
                            item.not_after = Some(timefmt::rfc3339(info.not_after));
                        }
                        item.reason = format!(
                            "signed for {} with {}",
                            item.certificates.join(", "),
                            ca.name()
                        );
                        item
                    }
                    Err(e) => {
                        item.action = SignAction::Ignored;
                        item.reason = format!("could not write status.certificate: {e}");
                        item
                    }
                }
            }
        },
    }
}

fn list_params(o: &SignOptions) -> ListParams {
    ListParams::default().fields(&format!("spec.signerName={}", o.signer_name))
}

/// One pass: every request of the signer name, in name order.
pub async fn sign_once(o: &SignOptions) -> Result<SignResult> {
    validate(o)?;
    let api = csr_api(client(&o.kubeconfig).await?);
    let list = api
        .list(&list_params(o))
        .await
        .map_err(api_err("listing certificate signing requests"))?;
    let mut requests = Vec::new();
    let mut objs: Vec<&CertificateSigningRequest> = list
        .items
        .iter()
        .filter(|c| c.spec.signer_name == o.signer_name)
        .collect();
    objs.sort_by_key(|c| name_of(c));
    for c in objs {
        requests.push(handle(o, &api, c).await);
    }
    Ok(SignResult {
        signer_name: o.signer_name.clone(),
        requests,
    })
}

fn validate(o: &SignOptions) -> Result<()> {
    if !o.signer_name.contains('/') || o.signer_name.starts_with("kubernetes.io/") {
        return Err(KubeApiError::InvalidArgument(format!(
            "--signer-name {:?}: give a qualified name of your own (e.g. kubecert.io/apiserver); \
             kubernetes.io/ signers belong to kube-controller-manager",
            o.signer_name
        )));
    }
    if o.max_duration < 600 {
        return Err(KubeApiError::InvalidArgument(
            "--max-duration must be at least 10m".into(),
        ));
    }
    Ok(())
}

/// Runs until `shutdown` completes: lists and handles every request of the signer name, then
/// watches for new and modified ones (re-listing whenever a watch ends). `report` gets every
/// signed or failed request, and each ignored one once per reason.
pub async fn run_watch(
    o: &SignOptions,
    shutdown: impl std::future::Future<Output = ()>,
    report: &(dyn Fn(&SignItem) + Sync),
) -> Result<()> {
    validate(o)?;
    let api = csr_api(client(&o.kubeconfig).await?);
    let mut seen: HashSet<(String, String)> = HashSet::new();
    let mut tell = |it: &SignItem| {
        if it.action != SignAction::Ignored || seen.insert((it.name.clone(), it.reason.clone())) {
            if it.action == SignAction::Ignored && it.reason.ends_with("nothing to sign") {
                tracing::debug!(csr = %it.name, reason = %it.reason, "ignored");
            } else {
                report(it);
            }
        }
    };
    let work = async {
        let mut failures = 0u32;
        loop {
            let list = match api.list(&list_params(o)).await {
                Ok(l) => {
                    failures = 0;
                    l
                }
                Err(e) => {
                    failures += 1;
                    tracing::warn!(error = %describe(&e), "listing certificate signing requests failed; retrying");
                    tokio::time::sleep(Duration::from_secs(u64::from(failures.min(5)))).await;
                    continue;
                }
            };
            for c in list
                .items
                .iter()
                .filter(|c| c.spec.signer_name == o.signer_name)
            {
                let it = handle(o, &api, c).await;
                tell(&it);
            }
            let rv = list
                .metadata
                .resource_version
                .clone()
                .unwrap_or_else(|| "0".into());
            let wp = WatchParams::default()
                .fields(&format!("spec.signerName={}", o.signer_name))
                .timeout(290);
            match api.watch(&wp, &rv).await {
                Ok(stream) => {
                    let mut stream = stream.boxed();
                    while let Some(ev) = stream.next().await {
                        match ev {
                            Ok(WatchEvent::Added(c)) | Ok(WatchEvent::Modified(c)) => {
                                let it = handle(o, &api, &c).await;
                                tell(&it);
                            }
                            Ok(WatchEvent::Deleted(_)) | Ok(WatchEvent::Bookmark(_)) => {}
                            Ok(WatchEvent::Error(s)) => {
                                tracing::debug!(code = s.code, message = %s.message, "watch error event; listing again");
                                break;
                            }
                            Err(e) => {
                                tracing::debug!(error = %describe(&e), "watch stream failed; listing again");
                                break;
                            }
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %describe(&e), "watch failed; listing again");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    };
    tokio::select! {
        _ = shutdown => Ok(()),
        r = work => r,
    }
}

/// One line per request for the text output.
pub fn item_line(it: &SignItem) -> String {
    let what = match it.action {
        SignAction::Signed => "signed",
        SignAction::Failed => "FAILED",
        SignAction::Ignored => "ignored",
    };
    let mut s = format!("[sign] {}: {what}: {}", it.name, it.reason);
    if let (Some(serial), Some(na)) = (&it.serial, &it.not_after) {
        s.push_str(&format!(" (serial {serial}, NotAfter {na})"));
    }
    s
}

/// Text output of one pass.
pub fn render_text(r: &SignResult) -> String {
    let mut s = String::new();
    for it in &r.requests {
        s.push_str(&item_line(it));
        s.push('\n');
    }
    if r.requests.is_empty() {
        s.push_str(&format!(
            "[sign] no certificate signing request for {}\n",
            r.signer_name
        ));
    }
    s
}
