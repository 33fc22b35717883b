//! `csr export`: a CSR and a new (or the current) key per selected certificate, written
//! into a CSR dir of its own; the PKI is never touched.

use super::*;

/// Parameters of `csr export` (CLI flags and JSON-RPC params of `csr-export`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CsrExportParams {
    /// Inventory names, or `["all"]` (the default).
    #[serde(default)]
    pub names: Vec<String>,
    /// Where `<name>.csr` and `<name>.key` go (created 0700): a directory of its own, never
    /// one that holds live files of the cluster (the cert dir, `pki/etcd`, the kubeconfig dir).
    pub csr_dir: String,
    /// Where the PKI is: `cert_dir`, `kubeconfig_dir`, `external_etcd` (top-level params).
    #[serde(flatten)]
    pub location: PkiLocation,
    /// Reuse the certificate's current private key instead of generating one.
    #[serde(default)]
    pub reuse_key: bool,
    /// Algorithm of new keys (default `same` as the current key); not with `reuse_key`.
    #[serde(default)]
    pub key_algorithm: KeyAlgorithm,
    /// Replace existing `<name>.csr`/`<name>.key` files in the CSR dir (never live files).
    #[serde(default)]
    pub force: bool,
    /// Put the key usages and extended key usages into the CSR (kubeadm requests none).
    #[serde(default)]
    pub request_usages: bool,
}

/// What `csr export` did for one certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ExportAction {
    /// A CSR and key were written.
    Exported,
    /// `<name>.csr` or `<name>.key` already existed and was kept (no `force`).
    Kept,
    /// The certificate is absent, so there is nothing to base a CSR on.
    Missing,
}

/// One certificate's outcome of `csr export`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ExportItem {
    /// Inventory name.
    pub name: String,
    /// What happened.
    pub action: ExportAction,
    /// Why / details.
    pub reason: String,
    /// The CA that must sign the CSR.
    pub ca_name: String,
    /// Whether that CA's key is absent from the PKI (external CA).
    pub externally_managed: bool,
    /// Extended key usages the signed certificate must carry (what `csr import` requires).
    pub required_usages: Vec<String>,
    /// The CSR file.
    pub csr_path: String,
    /// The key file.
    pub key_path: String,
    /// Subject of the request.
    pub subject: Option<String>,
    /// DNS SANs of the request.
    pub dns_names: Vec<String>,
    /// IP SANs of the request.
    pub ip_addresses: Vec<String>,
    /// Usages put into the request (empty unless `request_usages`).
    pub requested_usages: Vec<String>,
    /// Algorithm of the key in `keyPath`.
    pub key_algorithm: Option<String>,
    /// Whether the current key was reused.
    pub key_reused: bool,
}

/// Result of `csr export`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CsrExportResult {
    /// The CSR dir.
    pub csr_dir: String,
    /// Per certificate.
    pub certificates: Vec<ExportItem>,
    /// Whether any file was written.
    pub changed: bool,
}

struct Output {
    path: PathBuf,
    contents: Vec<u8>,
}

/// Builds the CSR (DER) and key PEM for one certificate.
fn build_request(
    e: &Entry,
    found: &Found,
    p: &CsrExportParams,
    item: &mut ExportItem,
) -> Result<(Vec<u8>, String)> {
    let info = &found.cert.info;
    let issue_err = |reason: crate::error::Reason| Error::Issue {
        cert: e.name.to_string(),
        reason,
    };
    let mut spec = LeafSpec::from_existing(info, 0, 0);
    spec.normalize();
    for u in e.role.ext_key_usages() {
        if !spec.ext_key_usage.iter().any(|x| x == u) {
            spec.ext_key_usage.push((*u).to_string());
        }
    }
    let key = if p.reuse_key {
        let k = found.load_key()?;
        if !k.matches(info) {
            let path = match &found.key {
                KeyOrigin::File(f) | KeyOrigin::Embedded(f) => f.display().to_string(),
                KeyOrigin::Absent => found.cert_path.display().to_string(),
            };
            return Err(Error::Validation {
                cert: e.name.to_string(),
                reason: format!(
                    "the current key ({path}) does not match the current certificate; cannot reuse it"
                )
                .into(),
            });
        }
        item.key_reused = true;
        item.key_algorithm = Some(info.key_algorithm.to_string());
        k
    } else {
        let alg = p.key_algorithm.resolve(&info.key_algorithm);
        let (key, _pem) =
            issue::new_key(alg).map_err(|e| issue_err(crate::error::Reason::of(e)))?;
        item.key_algorithm = Some(alg.display().to_string());
        key
    };
    let der = issue::csr_der(&spec, &key.pair, p.request_usages)
        .map_err(|e| issue_err(crate::error::Reason::of(e)))?;
    // Never hand out a request we would not accept ourselves.
    {
        use x509_parser::certification_request::X509CertificationRequest;
        use x509_parser::prelude::FromDer;
        let (_, req) = X509CertificationRequest::from_der(&der)
            .map_err(|e| issue_err(crate::error::Reason::with("the CSR does not parse", e)))?;
        req.verify_signature().map_err(|e| {
            issue_err(crate::error::Reason::with(
                "the CSR signature does not verify",
                e,
            ))
        })?;
        if req.certification_request_info.subject.as_raw() != info.subject_der.as_slice() {
            return Err(issue_err(
                "the CSR subject differs from the certificate's".into(),
            ));
        }
    }
    item.subject = Some(info.subject.clone());
    item.dns_names = spec.dns_names.clone();
    item.ip_addresses = spec.ip_addresses.iter().map(|i| i.to_string()).collect();
    if p.request_usages {
        item.requested_usages = vec!["digitalSignature".into(), "keyEncipherment".into()];
        item.requested_usages
            .extend(spec.ext_key_usage.iter().cloned());
    }
    Ok((der, key_pem_same_format(&key)))
}

/// Writes a CSR and a private key for each selected certificate into the CSR dir. Nothing is
/// written unless every request could be built, and nothing in the PKI is ever touched.
pub fn export(p: &CsrExportParams) -> Result<CsrExportResult> {
    let layout = p.location.layout();
    let (entries, _) = inventory::select(&p.names, &layout)?;
    let dir = csr_dir_of(&p.csr_dir)?;
    if p.reuse_key && p.key_algorithm != KeyAlgorithm::Same {
        return Err(Error::InvalidArgument(
            "--reuse-key keeps the current key; it cannot be combined with --key-algorithm".into(),
        ));
    }
    if exists_nofollow(&dir) && !dir.is_dir() {
        return Err(Error::InvalidArgument(format!(
            "--csr-dir {} exists and is not a directory",
            dir.display()
        )));
    }
    // Refuse before writing anything: no target may be a live file, none may be a symlink.
    let targets: Vec<PathBuf> = entries
        .iter()
        .flat_map(|e| [file_in(&dir, e, "csr"), file_in(&dir, e, "key")])
        .collect();
    if let Some((target, live)) = find_collision(&layout, &targets) {
        return Err(Error::InvalidArgument(format!(
            "refusing to write {}: it is the live file {} in use by the cluster; pass --csr-dir \
             with a directory of its own (nothing was written)",
            target.display(),
            live.display()
        )));
    }
    // Nor may the CSR dir be a directory the cluster keeps live files in (the cert dir,
    // pki/etcd, the kubeconfig dir): new keys do not belong next to the ones in use.
    let here = resolved(&dir);
    if let Some(live) = live_files(&layout)
        .into_iter()
        .find(|l| exists_nofollow(l) && l.parent().is_some_and(|d| resolved(d) == here))
    {
        return Err(Error::InvalidArgument(format!(
            "refusing --csr-dir {}: it holds live files of the cluster (such as {}); pass \
             --csr-dir with a directory of its own (nothing was written)",
            dir.display(),
            live.display()
        )));
    }
    for t in &targets {
        store::refuse_symlink(t)?;
    }
    let cas = Cas::load(&layout);
    let mut items = Vec::new();
    let mut outputs: Vec<Output> = Vec::new();
    for e in &entries {
        let ca =
            e.ca.ok_or_else(|| Error::UnknownCertificate(e.name.to_string()))?;
        let csr_path = file_in(&dir, e, "csr");
        let key_path = file_in(&dir, e, "key");
        let mut item = ExportItem {
            name: e.name.to_string(),
            action: ExportAction::Missing,
            reason: String::new(),
            ca_name: ca.name().to_string(),
            externally_managed: cas.get(ca).is_some_and(|c| c.externally_managed()),
            required_usages: e
                .role
                .ext_key_usages()
                .iter()
                .map(|s| s.to_string())
                .collect(),
            csr_path: csr_path.display().to_string(),
            key_path: key_path.display().to_string(),
            subject: None,
            dns_names: vec![],
            ip_addresses: vec![],
            requested_usages: vec![],
            key_algorithm: None,
            key_reused: false,
        };
        let found = match pki::load(&layout, e) {
            Material::Missing => {
                item.reason = format!("{} does not exist", layout.primary_path(e).display());
                items.push(item);
                continue;
            }
            Material::Broken(err) => return Err(err),
            Material::Present(f) => f,
        };
        let present: Vec<String> = [&csr_path, &key_path]
            .into_iter()
            .filter(|p| exists_nofollow(p))
            .map(|p| p.display().to_string())
            .collect();
        if !present.is_empty() && !p.force {
            item.action = ExportAction::Kept;
            item.subject = Some(found.cert.info.subject.clone());
            item.reason = format!(
                "{} already exist{}; kept (pass --force to replace)",
                present.join(" and "),
                if present.len() == 1 { "s" } else { "" }
            );
            items.push(item);
            continue;
        }
        let (der, key_pem) = build_request(e, &found, p, &mut item)?;
        item.action = ExportAction::Exported;
        item.reason = if p.reuse_key {
            "CSR for the current key".to_string()
        } else {
            "CSR for a new key".to_string()
        };
        if !present.is_empty() {
            item.reason
                .push_str(&format!("; replaced {}", present.join(" and ")));
        }
        let signed = file_in(&dir, e, "crt");
        if exists_nofollow(&signed) && !p.reuse_key {
            item.reason.push_str(&format!(
                "; {} is now stale (it cannot match the new key)",
                signed.display()
            ));
        }
        outputs.push(Output {
            path: key_path,
            contents: key_pem.into_bytes(),
        });
        outputs.push(Output {
            path: csr_path,
            contents: issue::csr_pem(&der).into_bytes(),
        });
        items.push(item);
    }
    if !outputs.is_empty() {
        if !dir.is_dir() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)
                .map_err(|e| Error::io(&dir, e))?;
        }
        for o in &outputs {
            // 0600 whatever the file is (CSRs too: they sit beside their keys).
            store::write_atomic(&o.path, &o.contents, 0o600)?;
        }
    }
    Ok(CsrExportResult {
        csr_dir: dir.display().to_string(),
        changed: !outputs.is_empty(),
        certificates: items,
    })
}
