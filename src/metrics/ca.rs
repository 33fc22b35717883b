//! Prometheus series of the CA section (`kubecert metrics --ca`, `check --ca -o prometheus`,
//! the `metrics` method with `ca: true`), rendered from the typed [`CaCheckResult`] that
//! `check` carries. [`super::render`] appends this text when the check has a `ca` section,
//! and nothing otherwise.
//!
//! | metric | labels | value |
//! |---|---|---|
//! | `kubecert_ca_present` | ca | 1 when the CA certificate was found and parsed |
//! | `kubecert_ca_not_after_seconds` | ca, spki_sha256 | NotAfter (Unix) of the CA certificate |
//! | `kubecert_ca_key_present` | ca | 1 when `<ca>.key` exists (0: externally managed) |
//! | `kubecert_ca_signed_certificates` | ca | inventory certificates it signed (by signature) |
//! | `kubecert_ca_unsigned_certificates` | ca | inventory certificates of this CA it did not sign |
//! | `kubecert_ca_trust_bundles` | ca, match | trust locations holding it (`exact` or `same-key`) |
//!
//! A CA that is missing or unreadable has no `not_after` sample and `kubecert_ca_present` 0.

use std::fmt::Write as _;

use super::escape_label;
use crate::ca::{BundleMatch, CaCheckResult};
use crate::timefmt;

pub(super) fn sample(out: &mut String, name: &str, labels: &[(&str, &str)], value: i64) {
    out.push_str(name);
    if !labels.is_empty() {
        out.push('{');
        for (i, (k, v)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "{k}=\"{}\"", escape_label(v));
        }
        out.push('}');
    }
    let _ = writeln!(out, " {value}");
}

/// The CA families in the text exposition format.
pub fn render(r: &CaCheckResult) -> String {
    let mut fams: [(&str, &str, String); 6] = [
        (
            "kubecert_ca_present",
            "1 when the CA certificate was found and parsed.",
            String::new(),
        ),
        (
            "kubecert_ca_not_after_seconds",
            "NotAfter (Unix seconds) of the CA certificate; spki_sha256 is kubeadm's join hash.",
            String::new(),
        ),
        (
            "kubecert_ca_key_present",
            "1 when the CA key exists on this node (0: externally managed).",
            String::new(),
        ),
        (
            "kubecert_ca_signed_certificates",
            "Inventory certificates the CA signed (verified by signature).",
            String::new(),
        ),
        (
            "kubecert_ca_unsigned_certificates",
            "Inventory certificates of this CA that it did not sign (or that are unreadable).",
            String::new(),
        ),
        (
            "kubecert_ca_trust_bundles",
            "Trust locations (CA files, kubeconfigs) that hold the CA, by match.",
            String::new(),
        ),
    ];
    for c in &r.cas {
        let ca = c.name.as_str();
        sample(
            &mut fams[0].2,
            fams[0].0,
            &[("ca", ca)],
            i64::from(c.present),
        );
        if let (Some(na), Some(h)) = (&c.not_after, &c.spki_sha256) {
            if let Ok(t) = timefmt::parse_rfc3339(na) {
                sample(
                    &mut fams[1].2,
                    fams[1].0,
                    &[("ca", ca), ("spki_sha256", h)],
                    t,
                );
            }
        }
        sample(
            &mut fams[2].2,
            fams[2].0,
            &[("ca", ca)],
            i64::from(c.key_present),
        );
        if c.present {
            sample(
                &mut fams[3].2,
                fams[3].0,
                &[("ca", ca)],
                c.chained.len() as i64,
            );
            sample(
                &mut fams[4].2,
                fams[4].0,
                &[("ca", ca)],
                c.not_chained.len() as i64,
            );
            for (m, label) in [
                (BundleMatch::Exact, "exact"),
                (BundleMatch::SameKey, "same-key"),
            ] {
                let n = c.bundles.iter().filter(|b| b.matches == m).count() as i64;
                sample(
                    &mut fams[5].2,
                    fams[5].0,
                    &[("ca", ca), ("match", label)],
                    n,
                );
            }
        }
    }
    let mut out = String::new();
    for (name, help, body) in &fams {
        if !body.is_empty() {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} gauge");
            out.push_str(body);
        }
    }
    out
}
