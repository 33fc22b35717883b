//! Prometheus series of the served-certificate proof (`kubecert metrics --served`,
//! `check --served -o prometheus`, the `metrics` method with `served: true`), rendered from
//! the typed [`ServedResult`] that `check` carries. Kept apart from the per-file families
//! of [`super`]: [`super::render`] appends this text when the check has a served section,
//! and nothing otherwise.
//!
//! The labels follow the x509-certificate-exporter's conventions where they apply
//! (`serial_number` in decimal, `subject_CN`), plus what identifies a live endpoint:
//!
//! | metric | labels | value |
//! |---|---|---|
//! | `kubecert_served_cert_not_after_seconds` | component, endpoint, address, serial_number, subject_CN | NotAfter (Unix) of the leaf the endpoint presents |
//! | `kubecert_served_cert_expired` | component, endpoint, address, serial_number, subject_CN | 1 when that leaf has expired |
//! | `kubecert_served_cert_verdict` | component, endpoint, address, verdict | 1 for the endpoint's verdict, 0 for the three others |
//!
//! An endpoint that presented nothing (unreachable) has no `not_after`/`expired` sample, only
//! its `verdict="unreachable"` 1: an alert on `kubecert_served_cert_verdict{verdict!="current"}
//! == 1` never mistakes a dead port for a good one.

use std::fmt::Write as _;

use super::escape_label;
use crate::ops::served::{ServedResult, Verdict};

const VERDICTS: [(Verdict, &str); 4] = [
    (Verdict::Current, "current"),
    (Verdict::Stale, "stale"),
    (Verdict::Unreachable, "unreachable"),
    (Verdict::NotChecked, "not-checked"),
];

fn sample(out: &mut String, name: &str, labels: &[(&str, &str)], value: i64) {
    out.push_str(name);
    let labels: Vec<&(&str, &str)> = labels.iter().filter(|(_, v)| !v.is_empty()).collect();
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

fn header(out: &mut String, name: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} gauge");
}

/// The served families, in the text exposition format (empty when no endpoint was probed).
pub fn render(r: &ServedResult) -> String {
    let mut not_after = String::new();
    let mut expired = String::new();
    let mut verdict = String::new();
    for e in &r.endpoints {
        let (component, endpoint) = (e.component.name(), e.endpoint.name());
        if let Some(s) = &e.served {
            let (serial, cn) = (&s.serial_decimal, &s.subject_cn);
            let labels = [
                ("component", component),
                ("endpoint", endpoint),
                ("address", e.address.as_str()),
                ("serial_number", serial.as_str()),
                ("subject_CN", cn.as_str()),
            ];
            if let Some(t) = s.not_after_seconds {
                sample(
                    &mut not_after,
                    "kubecert_served_cert_not_after_seconds",
                    &labels,
                    t,
                );
            }
            sample(
                &mut expired,
                "kubecert_served_cert_expired",
                &labels,
                i64::from(e.served_expired),
            );
        }
        for (v, name) in VERDICTS {
            sample(
                &mut verdict,
                "kubecert_served_cert_verdict",
                &[
                    ("component", component),
                    ("endpoint", endpoint),
                    ("address", e.address.as_str()),
                    ("verdict", name),
                ],
                i64::from(e.verdict == v),
            );
        }
    }
    let mut out = String::new();
    for (name, help, body) in [
        (
            "kubecert_served_cert_not_after_seconds",
            "NotAfter (Unix) of the leaf certificate the endpoint presents over TLS.",
            not_after,
        ),
        (
            "kubecert_served_cert_expired",
            "1 when the leaf certificate the endpoint presents has expired.",
            expired,
        ),
        (
            "kubecert_served_cert_verdict",
            "1 for the endpoint's served-certificate verdict (current, stale, unreachable, not-checked), 0 for the others.",
            verdict,
        ),
    ] {
        if !body.is_empty() {
            header(&mut out, name, help);
            out.push_str(&body);
        }
    }
    out
}
