//! The text of `ca rotate`.

use super::checklist::owner_names;
use super::{CaRotateResult, RotateAction};

/// The text of `ca rotate`.
pub fn render(r: &CaRotateResult) -> String {
    let mut s = format!("{}\n", r.message);
    for c in &r.changes {
        let verb = match c.action {
            RotateAction::Written => "written",
            RotateAction::Removed => "removed",
            RotateAction::WouldWrite => "would write",
            RotateAction::WouldRemove => "would remove",
        };
        s.push_str(&format!("  {verb}: {} ({})\n", c.path, c.what));
    }
    if let Some(o) = &r.old_ca {
        s.push_str(&format!(
            "old CA: serial {}, NotAfter {}, join hash {}\n",
            o.serial, o.not_after, o.spki_sha256
        ));
    }
    if let Some(n) = &r.new_ca {
        s.push_str(&format!(
            "new CA: serial {}, NotAfter {}, join hash {}\n",
            n.serial, n.not_after, n.spki_sha256
        ));
    }
    if !r.join_hash.is_empty() {
        s.push_str(&format!("signing CA's join hash: {}\n", r.join_hash));
    }
    if let Some(b) = &r.backup_dir {
        s.push_str(&format!("backup: {b}\n"));
    }
    if !r.components_to_restart.is_empty() && r.changed {
        s.push_str(&format!(
            "restart: {}\n",
            owner_names(&r.components_to_restart)
        ));
    }
    if let Some(ci) = &r.cluster_info {
        let server = ci.server.as_deref().unwrap_or("-");
        let state = match (&ci.error, ci.would_update, ci.updated) {
            (Some(e), _, _) => format!("NOT updated through {server}: {e}"),
            (None, Some(true), _) => format!("would be updated through {server}"),
            (None, _, true) => format!("updated through {server}"),
            (None, _, false) => format!("already current on {server}"),
        };
        s.push_str(&format!(
            "cluster-info (kube-public): {state}{}\n",
            ci.resource_version
                .as_deref()
                .map(|v| format!(" (resourceVersion {v})"))
                .unwrap_or_default()
        ));
    }
    if !r.checklist.is_empty() {
        s.push_str("checklist (not done by kubecert on this node):\n");
        for c in &r.checklist {
            s.push_str(&format!("  - {c}\n"));
        }
    }
    s
}
