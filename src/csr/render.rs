//! Text renderings of `csr export` and `csr import` results.

use super::*;

/// Text output of `csr export`.
pub fn render_export_text(r: &CsrExportResult) -> String {
    let mut s = String::new();
    for i in &r.certificates {
        match i.action {
            ExportAction::Exported => s.push_str(&format!(
                "[csr] {}: wrote {} and {} ({}; sign with {} as a {} certificate: {})\n",
                i.name,
                i.csr_path,
                i.key_path,
                i.reason,
                i.ca_name,
                inventory::find(&i.name).map_or("unknown", |e| e.role.short_name()),
                i.required_usages.join("+"),
            )),
            ExportAction::Kept => s.push_str(&format!("[csr] {}: {}\n", i.name, i.reason)),
            ExportAction::Missing => {
                let long = inventory::find(&i.name)
                    .map(|e| e.long_name)
                    .unwrap_or(i.name.as_str());
                s.push_str(&format!("MISSING! {long}\n"));
            }
        }
    }
    let exported: Vec<&str> = r
        .certificates
        .iter()
        .filter(|i| i.action == ExportAction::Exported)
        .map(|i| i.name.as_str())
        .collect();
    if !exported.is_empty() {
        let names = if exported.len() == r.certificates.len() && exported.len() > 1 {
            "all".to_string()
        } else {
            exported.join(" ")
        };
        s.push_str(&format!(
            "Sign each CSR with its CA, save the certificate as <name>.crt in {}, then run \
             `kubecert csr import {names} --csr-dir {}`.\n",
            r.csr_dir, r.csr_dir
        ));
    } else {
        s.push_str("No file was written.\n");
    }
    s
}

/// Text output of `csr import`.
pub fn render_import_text(r: &CsrImportResult) -> String {
    let mut s = String::new();
    if let Some(rec) = &r.recovered {
        s.push_str(&format!("[csr-import] {rec}\n"));
    }
    for i in &r.certificates {
        let action = match i.action {
            ImportAction::Installed => "installed",
            ImportAction::WouldInstall => "would install",
            ImportAction::Unchanged => "unchanged",
            ImportAction::Refused => "REFUSED",
            ImportAction::Absent => "absent",
        };
        let detail = match (&i.action, &i.new) {
            (ImportAction::Installed | ImportAction::WouldInstall, Some(n)) => format!(
                " (serial {}, NotAfter {}): {}",
                n.serial.as_deref().unwrap_or("?"),
                n.not_after,
                i.reason
            ),
            (ImportAction::Refused, _) => format!(" {}", i.crt_path),
            _ => format!(": {}", i.reason),
        };
        s.push_str(&format!("[csr-import] {}: {action}{detail}\n", i.name));
        for f in &i.findings {
            s.push_str(&format!("    - {}: {}\n", f.code.as_str(), f.message));
        }
    }
    if !r.ok() {
        let n = r
            .certificates
            .iter()
            .filter(|i| !i.findings.is_empty())
            .count();
        s.push_str(&format!(
            "Nothing was changed: {n} certificate(s) refused (csr import installs all or nothing).\n"
        ));
    } else if r.components_to_restart.is_empty() {
        if r.changed {
            s.push_str("No component needs a restart.\n");
        } else if r
            .certificates
            .iter()
            .all(|i| i.action == ImportAction::Absent)
        {
            s.push_str(&format!(
                "No signed certificate (<name>.crt) found in {}; nothing to import.\n",
                r.csr_dir
            ));
        } else {
            s.push_str("No certificate changed; no component needs a restart.\n");
        }
    } else {
        s.push_str(&crate::render::components_changed(
            r.dry_run,
            &r.components_to_restart,
        ));
    }
    s.push_str(&crate::render::backup_line(r.backup_dir.as_deref()));
    s
}
