//! `kubecert approve --kubelet-serving`: the approver of kubelet serving certificate requests
//! (signer `kubernetes.io/kubelet-serving`) that kube-controller-manager does not implement
//! (kubernetes#73356). The rule is the one the Kubernetes documentation gives for a
//! deployment-specific approver ("kubelet TLS bootstrapping", certificate rotation): approve
//! only requests that
//!
//! - are made by a node: `spec.username` is `system:node:<name>` and `spec.groups` contains
//!   `system:nodes`, and the request's subject is that node's: CN `system:node:<name>`,
//!   O exactly `system:nodes` (the subject the signer requires);
//! - ask for serving usages: `server auth`, optionally `digital signature` and/or
//!   `key encipherment`, nothing else;
//! - carry at least one DNS or IP subjectAltName, each of them an address of **that** Node
//!   (`status.addresses`, read the way the kubelet reads them when it builds its request:
//!   InternalIP/ExternalIP give IPs, InternalDNS/ExternalDNS give DNS names, Hostname gives an
//!   IP or a DNS name), and no URI, email or other SAN;
//! - are not CA requests and ask for no longer than the policy's `maxExpirationSeconds`.
//!
//! What is **denied** and what is **left pending**: a request that breaks a rule about itself
//! (requester, subject, usages, SANs not of the Node, CA, duration) is denied: it can never
//! become acceptable, and the kubelet makes a new request after a denial. A request whose
//! Node does not exist (yet), or exists without any address reported yet, is left pending:
//! the kubelet creates its serving request around the time it registers the Node, so a later
//! run may approve it. A request of another signer is not touched. Every reason is a typed
//! [`Finding`] whose message names the request, the node and the offending SAN or usage.
//!
//! A request that was Approved but has no certificate after `issuedWithinSeconds` (policy;
//! `--issued-within` overrides; default 5 min) is reported with an
//! [`Code::ApprovedNotIssued`] finding: no signer is issuing it.

use std::collections::BTreeSet;
use std::net::IpAddr;

use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use k8s_openapi::api::core::v1::Node;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use kube::api::ListParams;
use kube::Api;

use super::approve::{ApproveItem, ApproveParams, ApproveResult, Decision, Policy};
use super::{CsrState, KubeApiError, Request, DIGITAL_SIGNATURE, KEY_ENCIPHERMENT, SERVER_AUTH};

/// The signer of kubelet serving certificates.
pub const KUBELET_SERVING: &str = "kubernetes.io/kubelet-serving";
/// Prefix of a node's user name.
pub const NODE_USER_PREFIX: &str = "system:node:";
/// The group of the nodes.
pub const NODES_GROUP: &str = "system:nodes";
/// Default bound for "approved but not issued" (5 min).
pub const DEFAULT_ISSUED_WITHIN_SECONDS: i64 = 300;

/// What a finding is about, as a stable kebab-case code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
#[schemars(rename = "KubeletServingCode")]
#[non_exhaustive]
pub enum Code {
    /// The signer is not `kubernetes.io/kubelet-serving`: not judged, left alone.
    NotKubeletServing,
    /// `spec.request` cannot be read or its signature does not verify: left pending.
    RequestUnreadable,
    /// `spec.username` is not `system:node:<name>`: denied.
    RequesterNotANode,
    /// `spec.groups` lacks `system:nodes`: denied.
    RequesterNotInNodesGroup,
    /// The subject's CN names another node than the requester: denied.
    ForeignNode,
    /// The subject is not CN `system:node:<name>`, O `system:nodes`: denied.
    SubjectInvalid,
    /// A usage other than server auth, digital signature, key encipherment: denied.
    UsageNotAllowed,
    /// `server auth` is not requested: denied.
    UsageMissing,
    /// Neither a DNS nor an IP subjectAltName: denied.
    NoDnsOrIp,
    /// A URI, email or other subjectAltName: denied.
    ForbiddenSan,
    /// A DNS name or IP that is not an address of the Node: denied.
    SanNotOfNode,
    /// basicConstraints CA:TRUE requested: denied.
    CaRequested,
    /// `expirationSeconds` above the policy maximum: denied.
    ExpirationTooLong,
    /// The Node does not exist (yet): left pending.
    NodeNotFound,
    /// The Node has no address in `status.addresses` (yet): left pending.
    NodeWithoutAddresses,
    /// Approved, but no certificate after the bound: reported.
    ApprovedNotIssued,
}

/// What a finding does to the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// The request is denied.
    Deny,
    /// The request is left pending.
    Pending,
    /// Reported only (the request is not pending).
    Report,
}

impl Code {
    /// The kebab-case code, as serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::NotKubeletServing => "not-kubelet-serving",
            Code::RequestUnreadable => "request-unreadable",
            Code::RequesterNotANode => "requester-not-a-node",
            Code::RequesterNotInNodesGroup => "requester-not-in-nodes-group",
            Code::ForeignNode => "foreign-node",
            Code::SubjectInvalid => "subject-invalid",
            Code::UsageNotAllowed => "usage-not-allowed",
            Code::UsageMissing => "usage-missing",
            Code::NoDnsOrIp => "no-dns-or-ip",
            Code::ForbiddenSan => "forbidden-san",
            Code::SanNotOfNode => "san-not-of-node",
            Code::CaRequested => "ca-requested",
            Code::ExpirationTooLong => "expiration-too-long",
            Code::NodeNotFound => "node-not-found",
            Code::NodeWithoutAddresses => "node-without-addresses",
            Code::ApprovedNotIssued => "approved-not-issued",
        }
    }

    /// Deny, leave pending, or report.
    pub fn effect(self) -> Effect {
        match self {
            Code::NotKubeletServing
            | Code::RequestUnreadable
            | Code::NodeNotFound
            | Code::NodeWithoutAddresses => Effect::Pending,
            Code::ApprovedNotIssued => Effect::Report,
            _ => Effect::Deny,
        }
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One typed reason of `approve --kubelet-serving`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "KubeletServingFinding")]
pub struct Finding {
    /// The code.
    pub code: Code,
    /// What is wrong, naming the request, the node and the offending SAN or usage.
    pub message: String,
}

/// The Node a request is judged against, as read from the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeLookup {
    /// No node to look up (the requester is not a node).
    NotApplicable,
    /// `GET /api/v1/nodes/NAME` answered 404.
    NotFound,
    /// The Node's addresses, as the kubelet reads them.
    Found(NodeAddresses),
}

/// The DNS names and IPs of a Node (`status.addresses`), read like the kubelet's
/// `addressesToHostnamesAndIPs`: InternalIP/ExternalIP → IP (when it parses), InternalDNS/
/// ExternalDNS → DNS name, Hostname → IP when it parses as one, else DNS name; other types
/// and empty addresses are not used.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeAddresses {
    /// DNS names, lowercased.
    pub dns_names: BTreeSet<String>,
    /// IPs.
    pub ips: BTreeSet<IpAddr>,
    /// Every address as `Type=address`, for messages.
    pub listed: Vec<String>,
}

impl NodeAddresses {
    /// Reads a Node's `status.addresses`.
    pub fn of(node: &Node) -> NodeAddresses {
        let mut a = NodeAddresses::default();
        let addrs = node
            .status
            .as_ref()
            .and_then(|s| s.addresses.as_ref())
            .map(Vec::as_slice)
            .unwrap_or_default();
        for addr in addrs {
            let value = addr.address.as_str();
            if value.is_empty() {
                continue;
            }
            a.listed.push(format!("{}={value}", addr.type_));
            let ip = value.parse::<IpAddr>().ok();
            match addr.type_.as_str() {
                "Hostname" => match ip {
                    Some(ip) => {
                        a.ips.insert(ip);
                    }
                    None => {
                        a.dns_names.insert(value.to_ascii_lowercase());
                    }
                },
                "InternalIP" | "ExternalIP" => {
                    if let Some(ip) = ip {
                        a.ips.insert(ip);
                    }
                }
                "InternalDNS" | "ExternalDNS" => {
                    a.dns_names.insert(value.to_ascii_lowercase());
                }
                _ => {}
            }
        }
        a
    }

    /// Whether the Node has any usable address.
    pub fn is_empty(&self) -> bool {
        self.dns_names.is_empty() && self.ips.is_empty()
    }
}

/// The node name of a requester `system:node:<name>` (None for anybody else, and for a name
/// no Node can have: not a lowercase RFC 1123 subdomain).
pub fn requester_node(csr: &CertificateSigningRequest) -> Option<String> {
    csr.spec
        .username
        .as_deref()
        .and_then(|u| u.strip_prefix(NODE_USER_PREFIX))
        .filter(|n| is_node_name(n))
        .map(str::to_string)
}

/// A valid Node name (a lowercase RFC 1123 subdomain, at most 253 characters).
pub fn is_node_name(n: &str) -> bool {
    n.len() <= 253
        && !n.is_empty()
        && n.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// The subject's CN (when there is exactly one) and O values, from its DER.
pub fn subject_cn_o(subject_der: &[u8]) -> (Option<String>, Vec<String>) {
    use x509_parser::prelude::FromDer;
    let Ok((_, name)) = x509_parser::x509::X509Name::from_der(subject_der) else {
        return (None, vec![]);
    };
    let cns: Vec<String> = name
        .iter_common_name()
        .filter_map(|a| a.as_str().ok().map(str::to_string))
        .collect();
    let orgs = name
        .iter_organization()
        .filter_map(|a| a.as_str().ok().map(str::to_string))
        .collect();
    let cn = if cns.len() == 1 {
        cns.into_iter().next()
    } else {
        None
    };
    (cn, orgs)
}

/// What the rule says about one pending kubelet-serving request (no side effect).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Judgement {
    /// The node (from the requester), when the requester is a node.
    pub node: Option<String>,
    /// Every finding, in rule order; empty when the request is approved.
    pub findings: Vec<Finding>,
}

impl Judgement {
    /// Deny when any finding denies, else pending when any finding leaves it pending, else
    /// approve.
    pub fn effect(&self) -> Option<Effect> {
        if self
            .findings
            .iter()
            .any(|f| f.code.effect() == Effect::Deny)
        {
            Some(Effect::Deny)
        } else if self.findings.is_empty() {
            None
        } else {
            Some(Effect::Pending)
        }
    }
}

/// Judges a pending kubelet-serving request: `req` is its parsed `spec.request`, `node` the
/// lookup of the requester's Node, `max_expiration_seconds` the policy's maximum.
pub fn judge(
    csr: &CertificateSigningRequest,
    req: &Request,
    subject_cn: Option<&str>,
    subject_o: &[String],
    node: &NodeLookup,
    max_expiration_seconds: i64,
) -> Judgement {
    let name = super::name_of(csr);
    let mut out = Vec::new();
    let mut f = |code: Code, message: String| out.push(Finding { code, message });
    let username = csr.spec.username.clone().unwrap_or_default();
    let node_name = requester_node(csr);
    let who = match &node_name {
        Some(n) => format!("node \"{n}\""),
        None => format!("requester \"{username}\""),
    };
    // The requester.
    if node_name.is_none() {
        f(
            Code::RequesterNotANode,
            format!(
                "CSR \"{name}\": requester \"{username}\" is not a node (spec.username must be \
                 system:node:<name> with a valid node name)"
            ),
        );
    }
    let groups = csr.spec.groups.clone().unwrap_or_default();
    if !groups.iter().any(|g| g == NODES_GROUP) {
        f(
            Code::RequesterNotInNodesGroup,
            format!(
                "CSR \"{name}\": requester \"{username}\" is not in group {NODES_GROUP} (groups: \
                 {})",
                if groups.is_empty() {
                    "none".to_string()
                } else {
                    groups.join(", ")
                }
            ),
        );
    }
    // The subject.
    match (
        subject_cn.and_then(|cn| cn.strip_prefix(NODE_USER_PREFIX)),
        &node_name,
    ) {
        (Some(cn_node), Some(n)) if cn_node != n => f(
            Code::ForeignNode,
            format!(
                "CSR \"{name}\": node \"{n}\" asks for a certificate of node \"{cn_node}\" \
                 (subject CN system:node:{cn_node})"
            ),
        ),
        (Some(_), _) => {}
        (None, _) => f(
            Code::SubjectInvalid,
            format!(
                "CSR \"{name}\" of {who}: subject CN is {}, not system:node:<name>",
                subject_cn.map_or("absent (or repeated)".to_string(), |c| format!("\"{c}\""))
            ),
        ),
    }
    if subject_o != [NODES_GROUP] {
        f(
            Code::SubjectInvalid,
            format!(
                "CSR \"{name}\" of {who}: subject O is [{}], not exactly [{NODES_GROUP}]",
                subject_o.join(", ")
            ),
        );
    }
    // The usages.
    let usages = csr.spec.usages.clone().unwrap_or_default();
    for u in &usages {
        if ![SERVER_AUTH, DIGITAL_SIGNATURE, KEY_ENCIPHERMENT].contains(&u.as_str()) {
            f(
                Code::UsageNotAllowed,
                format!(
                    "CSR \"{name}\" of {who}: usage \"{u}\" is not allowed for a kubelet serving \
                     certificate (allowed: {SERVER_AUTH}, {DIGITAL_SIGNATURE}, {KEY_ENCIPHERMENT})"
                ),
            );
        }
    }
    if !usages.iter().any(|u| u == SERVER_AUTH) {
        f(
            Code::UsageMissing,
            format!("CSR \"{name}\" of {who}: usage \"{SERVER_AUTH}\" is missing"),
        );
    }
    if req.is_ca {
        f(
            Code::CaRequested,
            format!(
                "CSR \"{name}\" of {who}: asks for a CA certificate (basicConstraints CA:TRUE)"
            ),
        );
    }
    if let Some(s) = csr.spec.expiration_seconds {
        if i64::from(s) > max_expiration_seconds {
            f(
                Code::ExpirationTooLong,
                format!(
                    "CSR \"{name}\" of {who}: requested duration {s}s (expirationSeconds) \
                     exceeds the policy maximum {max_expiration_seconds}s"
                ),
            );
        }
    }
    // The SANs.
    for s in req
        .uris
        .iter()
        .map(|u| format!("URI:{u}"))
        .chain(req.emails.iter().map(|e| format!("email:{e}")))
        .chain(req.other_sans.iter().cloned())
    {
        f(
            Code::ForbiddenSan,
            format!(
                "CSR \"{name}\" of {who}: subjectAltName {s} is not allowed (only DNS names and \
                 IPs of the node)"
            ),
        );
    }
    if req.dns_names.is_empty() && req.ip_addresses.is_empty() {
        f(
            Code::NoDnsOrIp,
            format!("CSR \"{name}\" of {who}: no DNS or IP subjectAltName"),
        );
    }
    match (node, &node_name) {
        (NodeLookup::NotFound, Some(n)) => f(
            Code::NodeNotFound,
            format!(
                "CSR \"{name}\": node \"{n}\" not found (GET /api/v1/nodes/{n}: 404); left \
                 pending until the Node exists"
            ),
        ),
        (NodeLookup::Found(a), Some(n)) if a.is_empty() => f(
            Code::NodeWithoutAddresses,
            format!(
                "CSR \"{name}\": node \"{n}\" reports no address in status.addresses yet; left \
                 pending"
            ),
        ),
        (NodeLookup::Found(a), Some(n)) => {
            let listed = a.listed.join(", ");
            for d in &req.dns_names {
                if !a.dns_names.contains(&d.to_ascii_lowercase()) {
                    f(
                        Code::SanNotOfNode,
                        format!(
                            "CSR \"{name}\": subjectAltName DNS:{d} is not an address of node \
                             \"{n}\" (status.addresses: {listed})"
                        ),
                    );
                }
            }
            for ip in &req.ip_addresses {
                if !a.ips.contains(ip) {
                    f(
                        Code::SanNotOfNode,
                        format!(
                            "CSR \"{name}\": subjectAltName IP:{ip} is not an address of node \
                             \"{n}\" (status.addresses: {listed})"
                        ),
                    );
                }
            }
        }
        _ => {}
    }
    Judgement {
        node: node_name,
        findings: out,
    }
}

/// When the request was approved (the `Approved` condition's lastUpdateTime, else its
/// lastTransitionTime, else the object's creation), as Unix seconds.
pub fn approved_at(csr: &CertificateSigningRequest) -> Option<i64> {
    let cond = csr
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Approved" && c.status == "True")?;
    cond.last_update_time
        .as_ref()
        .or(cond.last_transition_time.as_ref())
        .or(csr.metadata.creation_timestamp.as_ref())
        .map(|t| t.0.as_second())
}

/// The `approved-not-issued` finding for a request Approved (not Denied or Failed) without a
/// certificate for longer than `bound` seconds at `now`.
pub fn not_issued(csr: &CertificateSigningRequest, now: i64, bound: i64) -> Option<Finding> {
    let st = CsrState::of(csr);
    if !st.approved || st.issued || st.denied.is_some() || st.failed.is_some() {
        return None;
    }
    let at = approved_at(csr)?;
    let age = now - at;
    if age <= bound {
        return None;
    }
    let name = super::name_of(csr);
    let node = requester_node(csr)
        .map(|n| format!(" (node \"{n}\")"))
        .unwrap_or_default();
    Some(Finding {
        code: Code::ApprovedNotIssued,
        message: format!(
            "CSR \"{name}\"{node}: approved {} ago ({}), no certificate issued within {}: is a \
             signer for {} running (kube-controller-manager --cluster-signing-*)?",
            crate::timefmt::format_duration(age),
            crate::timefmt::rfc3339(at),
            crate::timefmt::format_duration(bound),
            csr.spec.signer_name
        ),
    })
}

// ---------------------------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------------------------

/// `approve --kubelet-serving`: judges the named requests, or every pending request of the
/// signer (and reports the approved ones that were not issued in time); approves and denies
/// unless `dry_run`. Every Node is read before anything is written: a failed read (other
/// than 404) fails the run with nothing written.
pub(super) async fn run(
    p: &ApproveParams,
    mut policy: Policy,
    client: kube::Client,
) -> super::Result<ApproveResult> {
    let now = match &p.now {
        Some(s) => crate::timefmt::parse_rfc3339(s)
            .map_err(|e| KubeApiError::InvalidArgument(format!("now {s:?}: {e}")))?,
        None => crate::timefmt::now_unix(),
    };
    if let Some(s) = &p.issued_within {
        let n = crate::timefmt::parse_duration(s)
            .map_err(|e| KubeApiError::InvalidArgument(format!("issued_within {s:?}: {e}")))?;
        if n < 0 {
            return Err(KubeApiError::InvalidArgument(format!(
                "issued_within {s:?} must not be negative"
            )));
        }
        policy.issued_within_seconds = n;
    }
    let bound = policy.issued_within_seconds;
    let api = super::csr_api(client.clone());
    let nodes: Api<Node> = Api::all(client);
    let mut objs: Vec<std::result::Result<CertificateSigningRequest, String>> = Vec::new();
    if p.all_pending {
        let lp = ListParams::default().fields(&format!("spec.signerName={KUBELET_SERVING}"));
        let list = api.list(&lp).await.map_err(super::api_err(
            "listing kubelet-serving certificate signing requests",
        ))?;
        let mut items: Vec<CertificateSigningRequest> = list
            .items
            .into_iter()
            .filter(|c| c.spec.signer_name == KUBELET_SERVING)
            .filter(|c| CsrState::of(c).pending() || not_issued(c, now, bound).is_some())
            .collect();
        items.sort_by_key(super::name_of);
        objs.extend(items.into_iter().map(Ok));
    } else {
        for n in &p.names {
            match api.get(n).await {
                Ok(o) => objs.push(Ok(o)),
                Err(kube::Error::Api(s)) if s.code == 404 => objs.push(Err(n.clone())),
                Err(e) => {
                    return Err(super::api_err(format!(
                        "reading certificate signing request \"{n}\""
                    ))(e))
                }
            }
        }
    }
    // Phase 1: judge (reads only).
    // The decision to write (approve?), with the uid of the object judged.
    type Write = Option<(bool, Option<String>)>;
    let mut judged: Vec<(ApproveItem, Write)> = Vec::new();
    let mut node_cache: std::collections::BTreeMap<String, NodeLookup> = Default::default();
    for o in objs {
        let csr = match o {
            Ok(c) => c,
            Err(name) => {
                judged.push((super::approve::not_found_item(&name), None));
                continue;
            }
        };
        let mut it = super::approve::base_item(&csr);
        it.node = requester_node(&csr);
        let st = CsrState::of(&csr);
        if csr.spec.signer_name != KUBELET_SERVING {
            let msg = format!(
                "CSR \"{}\": signer {} is not {KUBELET_SERVING}; not judged by \
                 --kubelet-serving, left as it is",
                it.name, csr.spec.signer_name
            );
            push_finding(&mut it, Code::NotKubeletServing, msg);
            it.decision = if st.pending() {
                Decision::Pending
            } else {
                Decision::Skipped
            };
            judged.push((it, None));
            continue;
        }
        if !st.pending() {
            it.decision = Decision::Skipped;
            match not_issued(&csr, now, bound) {
                Some(f) => push_finding(&mut it, f.code, f.message),
                None => it
                    .reasons
                    .push(format!("not pending ({}): left alone", st.describe())),
            }
            judged.push((it, None));
            continue;
        }
        let req = match super::parse_request(&csr.spec.request.0) {
            Ok(r) => r,
            Err(why) => {
                let msg = format!(
                    "CSR \"{}\": spec.request cannot be judged ({}); left pending",
                    it.name,
                    crate::error::report(&why)
                );
                push_finding(&mut it, Code::RequestUnreadable, msg);
                judged.push((it, None));
                continue;
            }
        };
        it.subject = Some(req.subject.clone());
        let lookup = match &it.node {
            None => NodeLookup::NotApplicable,
            Some(n) => match node_cache.get(n) {
                Some(l) => l.clone(),
                None => {
                    let l = match nodes.get_opt(n).await {
                        Ok(Some(node)) => NodeLookup::Found(NodeAddresses::of(&node)),
                        Ok(None) => NodeLookup::NotFound,
                        Err(e) => {
                            return Err(super::api_err(format!(
                                "reading Node \"{n}\" for certificate signing request \"{}\" \
                                 (nothing was approved or denied)",
                                it.name
                            ))(e))
                        }
                    };
                    node_cache.insert(n.clone(), l.clone());
                    l
                }
            },
        };
        let (cn, orgs) = subject_cn_o(&req.subject_der);
        let j = judge(
            &csr,
            &req,
            cn.as_deref(),
            &orgs,
            &lookup,
            policy.max_expiration_seconds,
        );
        let write = match j.effect() {
            None => {
                let n = j.node.clone().unwrap_or_default();
                let sans: Vec<String> = req.san_set().into_iter().collect();
                it.reasons.push(format!(
                    "kubelet serving certificate of node \"{n}\": requested by system:node:{n} \
                     in {NODES_GROUP}, subject CN system:node:{n} O {NODES_GROUP}, usages {}, \
                     subjectAltNames {} all addresses of the Node",
                    it.usages.join(", "),
                    sans.join(", ")
                ));
                it.decision = Decision::Approved;
                Some(true)
            }
            Some(Effect::Deny) => {
                it.decision = Decision::Denied;
                Some(false)
            }
            Some(_) => {
                it.decision = Decision::Pending;
                None
            }
        };
        for f in j.findings {
            push_finding(&mut it, f.code, f.message);
        }
        judged.push((it, write.map(|w| (w, csr.metadata.uid.clone()))));
    }
    // Phase 2: write.
    let mut requests = Vec::new();
    let mut changed = false;
    for (mut it, write) in judged {
        if let Some((approve, uid)) = write {
            if p.dry_run {
                it.decision = if approve {
                    Decision::WouldApprove
                } else {
                    Decision::WouldDeny
                };
            } else {
                let message = format!(
                    "{} by kubecert approve --kubelet-serving: {}",
                    if approve { "Approved" } else { "Denied" },
                    it.reasons.join("; ")
                );
                match super::approve::write_decision(
                    &api,
                    &it.name,
                    uid.as_deref(),
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
        }
        requests.push(it);
    }
    Ok(ApproveResult {
        dry_run: p.dry_run,
        requests,
        changed,
        policy,
        kubelet_serving: true,
    })
}

fn push_finding(it: &mut ApproveItem, code: Code, message: String) {
    it.reasons.push(message.clone());
    it.findings.push(Finding { code, message });
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::certificates::v1::CertificateSigningRequestSpec;
    use k8s_openapi::api::core::v1::{NodeAddress, NodeStatus};

    fn node(addrs: &[(&str, &str)]) -> Node {
        Node {
            status: Some(NodeStatus {
                addresses: Some(
                    addrs
                        .iter()
                        .map(|(t, a)| NodeAddress {
                            type_: t.to_string(),
                            address: a.to_string(),
                        })
                        .collect(),
                ),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn csr(user: &str, groups: &[&str], usages: &[&str]) -> CertificateSigningRequest {
        CertificateSigningRequest {
            metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                name: Some("csr-x".into()),
                ..Default::default()
            },
            spec: CertificateSigningRequestSpec {
                signer_name: KUBELET_SERVING.into(),
                username: Some(user.into()),
                groups: Some(groups.iter().map(|s| s.to_string()).collect()),
                usages: Some(usages.iter().map(|s| s.to_string()).collect()),
                ..Default::default()
            },
            status: None,
        }
    }

    fn request(dns: &[&str], ips: &[&str]) -> Request {
        Request {
            der: vec![],
            subject_der: vec![],
            subject: String::new(),
            dns_names: dns.iter().map(|s| s.to_string()).collect(),
            ip_addresses: ips.iter().map(|s| s.parse().expect("ip")).collect(),
            uris: vec![],
            emails: vec![],
            other_sans: vec![],
            is_ca: false,
            spki_der: vec![],
        }
    }

    fn codes(j: &Judgement) -> Vec<Code> {
        j.findings.iter().map(|f| f.code).collect()
    }

    #[test]
    fn addresses_read_like_the_kubelet() {
        let a = NodeAddresses::of(&node(&[
            ("InternalIP", "10.0.0.1"),
            ("ExternalIP", "not-an-ip"),
            ("Hostname", "192.168.1.5"),
            ("Hostname", "Worker-1"),
            ("InternalDNS", "w1.internal"),
            ("ExternalDNS", ""),
            ("Other", "other.example"),
        ]));
        assert_eq!(
            a.ips.iter().map(|i| i.to_string()).collect::<Vec<_>>(),
            ["10.0.0.1", "192.168.1.5"]
        );
        assert_eq!(
            a.dns_names.iter().cloned().collect::<Vec<_>>(),
            ["w1.internal", "worker-1"]
        );
        assert!(NodeAddresses::of(&node(&[])).is_empty());
    }

    /// review15: the textual forms of a SAN. The same address spelled otherwise (IPv6
    /// expanded in the Node, compressed in the request; DNS case) is the Node's; a form that
    /// is not the same name or address to a TLS client (trailing dot, IPv4-mapped IPv6 of the
    /// Node's IPv4, a CN differing in case, a requester in system:nodes that is not
    /// system:node:<name>) is never approved. A string comparison of IPs would deny the
    /// first; a canonicalising one (to_canonical) would approve the mapped form.
    #[test]
    fn san_spellings() {
        let n = NodeLookup::Found(NodeAddresses::of(&node(&[
            ("InternalIP", "10.0.0.1"),
            ("InternalIP", "2001:db8:0:0:0:0:0:1"),
            ("InternalDNS", "W1.Example.Internal"),
        ])));
        let nodes = ["system:nodes".to_string()];
        let good = csr("system:node:w1", &["system:nodes"], &["server auth"]);
        let j = |c: &CertificateSigningRequest, dns: &[&str], ips: &[&str], cn: &str| {
            judge(c, &request(dns, ips), Some(cn), &nodes, &n, 3600)
        };
        let ok = j(
            &good,
            &[
                "w1.example.internal",
                "w1.EXAMPLE.internal",
                "w1.example.internal",
            ],
            &["2001:db8::1", "10.0.0.1", "10.0.0.1"],
            "system:node:w1",
        );
        assert_eq!(ok.effect(), None, "{ok:?}");
        for (dns, ips) in [
            (&["w1.example.internal."][..], &[][..]),
            (&[][..], &["::ffff:10.0.0.1"][..]),
            (&[][..], &["::ffff:a00:1"][..]),
            (&[][..], &["2001:db8::2"][..]),
        ] {
            let d = j(&good, dns, ips, "system:node:w1");
            assert_eq!(codes(&d), [Code::SanNotOfNode], "{dns:?} {ips:?}: {d:?}");
            assert_eq!(d.effect(), Some(Effect::Deny));
        }
        let d = j(&good, &[], &["10.0.0.1"], "system:node:W1");
        assert_eq!(codes(&d), [Code::ForeignNode], "{d:?}");
        let d = j(&good, &[], &["10.0.0.1"], "System:Node:w1");
        assert_eq!(codes(&d), [Code::SubjectInvalid], "{d:?}");
        let boot = csr(
            "system:bootstrap:abcdef",
            &["system:nodes"],
            &["server auth"],
        );
        let d = j(&boot, &[], &["10.0.0.1"], "system:node:w1");
        assert_eq!(codes(&d), [Code::RequesterNotANode], "{d:?}");
        assert_eq!(d.effect(), Some(Effect::Deny));
        assert_eq!(
            d.findings[0].message,
            "CSR \"csr-x\": requester \"system:bootstrap:abcdef\" is not a node (spec.username \
             must be system:node:<name> with a valid node name)"
        );
        let upper = csr("system:node:W1", &["system:nodes"], &["server auth"]);
        let d = j(&upper, &[], &["10.0.0.1"], "system:node:W1");
        assert_eq!(d.effect(), Some(Effect::Deny), "{d:?}");
        assert_eq!(codes(&d)[0], Code::RequesterNotANode, "{d:?}");
    }

    #[test]
    fn the_rule() {
        let n = NodeLookup::Found(NodeAddresses::of(&node(&[
            ("InternalIP", "10.0.0.1"),
            ("Hostname", "w1"),
        ])));
        let nodes = ["system:nodes".to_string()];
        let good = csr(
            "system:node:w1",
            &["system:nodes", "system:authenticated"],
            &["digital signature", "server auth"],
        );
        let j = judge(
            &good,
            &request(&["W1"], &["10.0.0.1"]),
            Some("system:node:w1"),
            &nodes,
            &n,
            3600,
        );
        assert_eq!(j.findings, vec![], "{j:?}");
        assert_eq!(j.effect(), None);
        assert_eq!(j.node.as_deref(), Some("w1"));
        // An extra SAN: denied, the SAN and the node named.
        let j = judge(
            &good,
            &request(&["w1", "evil.example"], &["10.0.0.1", "10.9.9.9"]),
            Some("system:node:w1"),
            &nodes,
            &n,
            3600,
        );
        assert_eq!(codes(&j), [Code::SanNotOfNode, Code::SanNotOfNode]);
        assert!(j.findings[0].message.contains("DNS:evil.example"), "{j:?}");
        assert!(j.findings[0].message.contains("node \"w1\""), "{j:?}");
        assert!(j.findings[1].message.contains("IP:10.9.9.9"), "{j:?}");
        assert_eq!(j.effect(), Some(Effect::Deny));
        // Another node's CN, wrong O, client auth, no server auth, CA, too long, URI.
        let mut bad = csr(
            "system:node:w1",
            &["system:authenticated"],
            &["client auth"],
        );
        bad.spec.expiration_seconds = Some(7200);
        let mut r = request(&[], &[]);
        r.is_ca = true;
        r.uris = vec!["spiffe://x".into()];
        let j = judge(
            &bad,
            &r,
            Some("system:node:w2"),
            &["system:masters".to_string()],
            &n,
            3600,
        );
        assert_eq!(
            codes(&j),
            [
                Code::RequesterNotInNodesGroup,
                Code::ForeignNode,
                Code::SubjectInvalid,
                Code::UsageNotAllowed,
                Code::UsageMissing,
                Code::CaRequested,
                Code::ExpirationTooLong,
                Code::ForbiddenSan,
                Code::NoDnsOrIp,
            ]
        );
        assert!(j.findings[1]
            .message
            .contains("node \"w1\" asks for a certificate of node \"w2\""));
        assert!(j.findings[3].message.contains("usage \"client auth\""));
        // Not a node at all.
        let j = judge(
            &csr("kubernetes-admin", &["system:masters"], &["server auth"]),
            &request(&["w1"], &[]),
            Some("kubernetes-admin"),
            &nodes,
            &NodeLookup::NotApplicable,
            3600,
        );
        assert_eq!(
            codes(&j),
            [
                Code::RequesterNotANode,
                Code::RequesterNotInNodesGroup,
                Code::SubjectInvalid
            ]
        );
        // The Node is missing or has no address yet: pending.
        for (lookup, code) in [
            (NodeLookup::NotFound, Code::NodeNotFound),
            (
                NodeLookup::Found(NodeAddresses::default()),
                Code::NodeWithoutAddresses,
            ),
        ] {
            let j = judge(
                &good,
                &request(&["w1"], &[]),
                Some("system:node:w1"),
                &nodes,
                &lookup,
                3600,
            );
            assert_eq!(codes(&j), [code]);
            assert_eq!(j.effect(), Some(Effect::Pending));
            assert!(j.findings[0].message.contains("node \"w1\""), "{j:?}");
        }
    }

    #[test]
    fn approved_not_issued_after_the_bound() {
        use k8s_openapi::api::certificates::v1::CertificateSigningRequestStatus;
        let mut c = csr("system:node:w1", &["system:nodes"], &["server auth"]);
        assert_eq!(not_issued(&c, 1000, 300), None);
        let mut cond = super::super::condition("Approved", "KubecertApprove", "ok");
        cond.last_update_time = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            k8s_openapi::jiff::Timestamp::from_second(1_000).expect("ts"),
        ));
        c.status = Some(CertificateSigningRequestStatus {
            conditions: Some(vec![cond]),
            certificate: None,
        });
        assert_eq!(not_issued(&c, 1300, 300), None);
        let f = not_issued(&c, 1301, 300).expect("reported");
        assert_eq!(f.code, Code::ApprovedNotIssued);
        assert!(
            f.message.contains("CSR \"csr-x\" (node \"w1\")"),
            "{}",
            f.message
        );
        if let Some(st) = c.status.as_mut() {
            st.certificate = Some(k8s_openapi::ByteString(b"x".to_vec()));
        }
        assert_eq!(not_issued(&c, 5000, 300), None);
    }

    #[test]
    fn node_names_and_subjects() {
        for ok in ["w1", "node-a.example.com", "a"] {
            assert!(is_node_name(ok), "{ok}");
        }
        for bad in ["", "../x", "W1", "-a", "a-", "a..b", "a/b", &"a".repeat(64)] {
            assert!(!is_node_name(bad), "{bad}");
        }
        let c = csr("system:node:../etc", &["system:nodes"], &["server auth"]);
        assert_eq!(requester_node(&c), None);
        let c = csr("system:node:w1", &["system:nodes"], &["server auth"]);
        assert_eq!(requester_node(&c).as_deref(), Some("w1"));
        use crate::pki::issue;
        let (cn, o) = subject_cn_o(&issue::name_der("system:node:w1", &["system:nodes", "x"]));
        assert_eq!(cn.as_deref(), Some("system:node:w1"));
        assert_eq!(o, ["system:nodes", "x"]);
        assert_eq!(subject_cn_o(b"garbage"), (None, vec![]));
    }

    #[test]
    fn codes_serialize_as_as_str() {
        for c in [
            Code::NotKubeletServing,
            Code::SanNotOfNode,
            Code::ApprovedNotIssued,
            Code::RequesterNotInNodesGroup,
        ] {
            assert_eq!(
                serde_json::to_value(c).expect("json"),
                serde_json::json!(c.as_str())
            );
        }
    }
}
