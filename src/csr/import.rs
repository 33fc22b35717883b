//! `csr import`: every signed certificate of the CSR dir validated, then all installed in
//! one transaction of the store, or none.

use super::*;

/// Parameters of `csr import` (CLI flags and JSON-RPC params of `csr-import`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CsrImportParams {
    /// Inventory names, or `["all"]` (the default).
    #[serde(default)]
    pub names: Vec<String>,
    /// Where the signed `<name>.crt` files and their `<name>.key` are.
    pub csr_dir: String,
    /// Where the PKI is: `cert_dir`, `kubeconfig_dir`, `external_etcd` (top-level params).
    #[serde(flatten)]
    pub location: PkiLocation,
    /// Validate and report only; write nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// Fixed clock, RFC 3339 (validity is judged at this instant).
    #[serde(default)]
    pub now: Option<String>,
    /// Where backups go (default `<cert_dir>/../kubecert-backup`).
    #[serde(default)]
    pub backup_dir: Option<String>,
}

/// What `csr import` did for one certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ImportAction {
    /// Installed.
    Installed,
    /// Valid; not installed (dry run, or another certificate of the run was refused).
    WouldInstall,
    /// The signed certificate and key are already the ones in use.
    Unchanged,
    /// Not acceptable: see the findings.
    Refused,
    /// No `<name>.crt` in the CSR dir.
    Absent,
}

/// One certificate's outcome of `csr import`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ImportItem {
    /// Inventory name.
    pub name: String,
    /// kubeadm's long name.
    pub long_name: String,
    /// What happened.
    pub action: ImportAction,
    /// Why.
    pub reason: String,
    /// The CA it must chain to.
    pub ca_name: String,
    /// The signed certificate file.
    pub crt_path: String,
    /// Its key file.
    pub key_path: String,
    /// Everything wrong with it (empty unless refused, or absent when explicitly named).
    pub findings: Vec<Finding>,
    /// The certificate in use.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old: Option<CertSnapshot>,
    /// The signed certificate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new: Option<CertSnapshot>,
    /// Files written (or that would be).
    pub files: Vec<String>,
}

/// Result of `csr import`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CsrImportResult {
    /// Whether this was a dry run.
    pub dry_run: bool,
    /// The CSR dir.
    pub csr_dir: String,
    /// The backup of every replaced file (null when nothing was written).
    pub backup_dir: Option<String>,
    /// Per certificate.
    pub certificates: Vec<ImportItem>,
    /// Components whose certificates changed (or would) and must restart.
    pub components_to_restart: Vec<Component>,
    /// Whether anything changed (or would, in a dry run).
    pub changed: bool,
    /// What recovery of an interrupted earlier run did, if anything.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovered: Option<String>,
}

impl CsrImportResult {
    /// Whether every certificate was acceptable (no findings anywhere).
    pub fn ok(&self) -> bool {
        self.certificates.iter().all(|i| i.findings.is_empty())
    }
}

/// A signed certificate that passed every check.
struct Accepted {
    idx: usize,
    unchanged: bool,
    writes: Vec<Write_>,
}

/// Examines one row; fills `item` (findings, snapshots, files) and returns the writes when
/// the certificate is acceptable.
fn examine(
    row: &RowCheck,
    crt: &Path,
    key_path: &Path,
    item: &mut ImportItem,
) -> Option<(bool, Vec<Write_>)> {
    let e = row.e;
    let mut f: Vec<Finding> = Vec::new();
    e.ca?;
    // The signed certificate.
    let signed = match cert::read_file(crt) {
        Err(err) => {
            f.push(finding(FindingCode::Unreadable, crate::error::report(&err)));
            None
        }
        Ok(bytes) => match cert::parse_pem_bundle(&bytes) {
            Ok(c) => Some(c),
            Err(err) => {
                f.push(finding(
                    FindingCode::BadCertificate,
                    format!("{}: {err}", crt.display()),
                ));
                None
            }
        },
    };
    if let Some(s) = &signed {
        item.new = Some(CertSnapshot::of(&s.info));
    }
    // Its key (errors never carry key bytes).
    let key = if !exists_nofollow(key_path) {
        f.push(finding(
            FindingCode::KeyMissing,
            format!(
                "{} is absent: the key that {} was requested for must sit next to it",
                key_path.display(),
                crt.display()
            ),
        ));
        None
    } else {
        match cert::read_file(key_path) {
            Err(err) => {
                f.push(finding(FindingCode::Unreadable, crate::error::report(&err)));
                None
            }
            Ok(bytes) => match cert::parse_private_key(&bytes) {
                Ok(k) => Some(k),
                Err(err) => {
                    f.push(finding(
                        FindingCode::BadKey,
                        format!("{}: {err}", key_path.display()),
                    ));
                    None
                }
            },
        }
    };
    let key_desc = key_path.display().to_string();
    let (old, accepted) = judge(row, signed.as_ref(), key.as_ref(), &key_desc, &mut f);
    item.old = old;
    let accepted = accepted.map(|a| (a.unchanged, a.writes));
    item.findings = f;
    accepted
}

/// Validates every signed certificate in the CSR dir and installs them all in one
/// transaction — or none of them, when any is refused.
pub fn import(p: &CsrImportParams) -> Result<CsrImportResult> {
    let layout = p.location.layout();
    let (entries, all) = inventory::select(&p.names, &layout)?;
    let dir = csr_dir_of(&p.csr_dir)?;
    let now = match &p.now {
        Some(s) => timefmt::parse_rfc3339(s)?,
        None => timefmt::now_unix(),
    };
    let backup_root = match &p.backup_dir {
        Some(b) => PathBuf::from(b),
        None => store::default_backup_root(&layout.cert_dir),
    };
    if !dir.is_dir() {
        return Err(Error::io(
            &dir,
            std::io::Error::new(std::io::ErrorKind::NotFound, "CSR dir not found"),
        ));
    }
    let sources: Vec<PathBuf> = entries
        .iter()
        .flat_map(|e| [file_in(&dir, e, "crt"), file_in(&dir, e, "key")])
        .collect();
    if let Some((src, live)) = find_collision(&layout, &sources) {
        return Err(Error::InvalidArgument(format!(
            "{} is the live file {}: signed certificates are imported from a directory of \
             their own; pass --csr-dir",
            src.display(),
            live.display()
        )));
    }
    let mut store = if p.dry_run {
        None
    } else {
        Some(Store::open(&layout.cert_dir, LOCK_TIMEOUT)?)
    };
    let recovered = store
        .as_ref()
        .and_then(|s| s.recovered().map(str::to_string));
    let cas = Cas::load(&layout);
    let ca_pem = cas
        .get(CaId::Ca)
        .and_then(|c| c.cert())
        .map(|c| issue::cert_pem(&c.der).into_bytes());
    let mut items: Vec<ImportItem> = Vec::new();
    let mut accepted: Vec<Accepted> = Vec::new();
    for e in &entries {
        let ca =
            e.ca.ok_or_else(|| Error::UnknownCertificate(e.name.to_string()))?;
        let crt = file_in(&dir, e, "crt");
        let key = file_in(&dir, e, "key");
        let mut item = ImportItem {
            name: e.name.to_string(),
            long_name: e.long_name.to_string(),
            action: ImportAction::Absent,
            reason: String::new(),
            ca_name: ca.name().to_string(),
            crt_path: crt.display().to_string(),
            key_path: key.display().to_string(),
            findings: vec![],
            old: None,
            new: None,
            files: vec![],
        };
        if !exists_nofollow(&crt) {
            item.reason = format!("{} does not exist", crt.display());
            if !all {
                item.findings.push(finding(
                    FindingCode::NotFound,
                    format!("{} was named but {} does not exist", e.name, crt.display()),
                ));
            }
            items.push(item);
            continue;
        }
        let row = RowCheck {
            e,
            layout: &layout,
            cas: &cas,
            ca_pem: ca_pem.as_deref(),
            now,
        };
        match examine(&row, &crt, &key, &mut item) {
            Some((unchanged, writes)) => {
                item.files = writes
                    .iter()
                    .map(|w| w.target.display().to_string())
                    .collect();
                accepted.push(Accepted {
                    idx: items.len(),
                    unchanged,
                    writes,
                });
            }
            None => {
                item.action = ImportAction::Refused;
                item.reason = format!("{} finding(s); see below", item.findings.len().max(1));
                if item.findings.is_empty() {
                    item.findings.push(finding(
                        FindingCode::NotInstallable,
                        "refused for an unknown reason",
                    ));
                }
            }
        }
        items.push(item);
    }
    let failed: Vec<String> = items
        .iter()
        .filter(|i| !i.findings.is_empty())
        .map(|i| i.name.clone())
        .collect();
    let mut all_writes: Vec<Write_> = Vec::new();
    let mut dry_writes: Vec<Write_> = Vec::new();
    for a in &accepted {
        let Some(item) = items.get_mut(a.idx) else {
            continue;
        };
        if a.unchanged {
            item.action = ImportAction::Unchanged;
            item.reason = "already installed: the signed certificate is the one in use".into();
        } else if !failed.is_empty() {
            item.action = ImportAction::WouldInstall;
            item.reason = format!(
                "valid, but not installed: {} refused and csr import installs all or nothing",
                failed.join(", ")
            );
        } else if p.dry_run {
            item.action = ImportAction::WouldInstall;
            item.reason = "valid; dry run".into();
            dry_writes.extend(a.writes.iter().cloned());
        } else {
            item.action = ImportAction::Installed;
            item.reason = "valid; installed".into();
            all_writes.extend(a.writes.iter().cloned());
        }
    }
    // A dry run makes every check the apply makes on its writes.
    store::plan(&dry_writes)?;
    let mut backup_dir = None;
    if !all_writes.is_empty() {
        if let Some(s) = &mut store {
            backup_dir = s.commit(&all_writes, &backup_root, &store::stamp(now))?;
        }
    }
    drop(store);
    let changing = |i: &ImportItem| {
        i.action == ImportAction::Installed
            || (i.action == ImportAction::WouldInstall && failed.is_empty())
    };
    let components = inventory::components_of(
        items
            .iter()
            .filter(|i| changing(i))
            .filter_map(|i| inventory::find(&i.name)),
    );
    let changed = items.iter().any(changing);
    Ok(CsrImportResult {
        dry_run: p.dry_run,
        csr_dir: dir.display().to_string(),
        backup_dir: backup_dir.map(|d| d.display().to_string()),
        components_to_restart: components,
        changed,
        certificates: items,
        recovered,
    })
}
