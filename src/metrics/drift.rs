//! The drift series (`kubecert_drift_*`, `metrics --drift --config FILE`): a rendering of
//! the check's [`DriftSection`] (src/check/drift.rs).

use crate::check::drift::{DriftSection, DriftStatus, ValidityStatus};

use super::ca::sample;

/// The drift families in the text exposition format.
pub fn render(d: &DriftSection) -> String {
    let mut fams: [(&str, &str, String); 6] = [
        (
            "kubecert_drift",
            "1 when the certificate differs from the kubeadm configuration, 0 when it matches, -1 when it could not be compared.",
            String::new(),
        ),
        (
            "kubecert_drift_sans_missing",
            "SANs the kubeadm configuration gives that the certificate lacks.",
            String::new(),
        ),
        (
            "kubecert_drift_sans_extra",
            "SANs the certificate has beyond the kubeadm configuration.",
            String::new(),
        ),
        (
            "kubecert_drift_validity",
            "1 when NotAfter - NotBefore differs from certificateValidityPeriod (CAs: caCertificateValidityPeriod), 0 when it matches or was capped at the CA, -1 when undetermined.",
            String::new(),
        ),
        (
            "kubecert_drift_key_algorithm",
            "1 when the key algorithm differs from encryptionAlgorithm.",
            String::new(),
        ),
        (
            "kubecert_drift_validity_expected_seconds",
            "The validity the kubeadm configuration gives a new certificate.",
            String::new(),
        ),
    ];
    for c in &d.certificates {
        let l = [("certificate", c.name.as_str())];
        let v = match c.status {
            DriftStatus::Match => 0,
            DriftStatus::Drift => 1,
            DriftStatus::Unknown => -1,
        };
        sample(&mut fams[0].2, fams[0].0, &l, v);
        if c.status == DriftStatus::Unknown {
            continue;
        }
        if c.sans_compared {
            sample(&mut fams[1].2, fams[1].0, &l, c.missing_sans.len() as i64);
            sample(&mut fams[2].2, fams[2].0, &l, c.extra_sans.len() as i64);
        }
        if let Some(v) = &c.validity {
            let x = match v.status {
                ValidityStatus::Differs => 1,
                ValidityStatus::Match | ValidityStatus::Capped => 0,
                ValidityStatus::Undetermined => -1,
            };
            sample(&mut fams[3].2, fams[3].0, &l, x);
            sample(&mut fams[5].2, fams[5].0, &l, v.expected_seconds);
        }
        if let Some(a) = &c.key_algorithm {
            sample(&mut fams[4].2, fams[4].0, &l, i64::from(a.differs));
        }
    }
    let mut out = String::new();
    for (name, help, samples) in fams {
        if !samples.is_empty() {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} gauge\n{samples}"
            ));
        }
    }
    out
}
