//! The text summary of a run.

use super::*;

/// Human-readable summary of a run.
pub fn render_text(r: &AutoRenewResult) -> String {
    let mut s = String::new();
    for m in &r.recovered_manifests {
        s.push_str(&format!("[auto-renew] moved back parked manifest {m}\n"));
    }
    if let Some(renew) = &r.renew {
        for i in &renew.certificates {
            s.push_str(&format!("[auto-renew] {}\n", crate::renew::item_line(i)));
        }
        if let Some(b) = &renew.backup_dir {
            s.push_str(&format!("[auto-renew] backup of the replaced files: {b}\n"));
        }
    }
    if r.components_to_restart.is_empty() {
        s.push_str("[auto-renew] no component needs a restart\n");
    } else if r.dry_run {
        s.push_str(&format!(
            "[auto-renew] [dry-run] would restart: {}\n",
            crate::pki::inventory::join_components(&r.components_to_restart)
        ));
    } else if r.restarts.is_empty() && r.failure.is_none() {
        s.push_str(&format!(
            "[auto-renew] restart these components yourself: {}\n",
            crate::pki::inventory::join_components(&r.components_to_restart)
        ));
    }
    for o in &r.restarts {
        if o.ok {
            s.push_str(&format!(
                "[auto-renew] {} {} after {:.1}s\n",
                o.component.name(),
                o.message,
                o.seconds
            ));
        } else {
            s.push_str(&format!(
                "[auto-renew] {}: {}\n",
                o.component.name(),
                o.message
            ));
        }
    }
    match &r.failure {
        Some(f) => s.push_str(&format!(
            "[auto-renew] FAILED at {}: {}\n",
            f.stage, f.message
        )),
        None if !r.dry_run => s.push_str("[auto-renew] done\n"),
        None => {}
    }
    if !r.dry_run {
        s.push_str(&format!(
            "[auto-renew] outcome recorded in {}\n",
            r.state_file
        ));
    }
    if let Some(t) = &r.textfile {
        s.push_str(&format!("[auto-renew] metrics written to {t}\n"));
    }
    s
}
