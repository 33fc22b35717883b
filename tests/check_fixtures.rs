//! `kubecert check` on the real kubeadm PKIs in tests/fixtures, compared with expectations
//! produced independently by openssl (tests/fixtures/gen-expected.sh), plus golden text.

mod common;
use common::*;
use serde_json::Value;

const FIXTURES: &[&str] = &[
    "pki-devopsyuva-2018",
    "pki-ebenneil-2023",
    "pki-edgecenter-ecdsa-2025",
    "pki-maxxmoney-2019",
    "pki-minahilnisar-2025",
    "pki-nielslemmens-2017",
    "pki-zetaoss-2024",
];

/// Runs `check`; it must produce its report and exit 0 or 4. issue 13: fixtures with expired
/// certificates or missing keys (at their clocks) are `fail`, exit 4, with no thresholds;
/// before, these ran through `ok()` (exit 0). The report itself is unchanged.
fn checked(check: Check) -> String {
    let o = check.output();
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let code = o.status.code();
    assert!(
        matches!(code, Some(0) | Some(4)) && !out.is_empty(),
        "{check:?}: {code:?}\n{out}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

fn check_json(fixture: &str, now: &str) -> Value {
    let out = checked(Check::fixture(fixture).args(&["--now", now, "-o", "json"]));
    serde_json::from_str(&out).unwrap()
}

/// Keeps only kubeadm's fields, so the comparison covers exactly what kubeadm prints.
fn kubeadm_view(v: &Value) -> Value {
    let strip = |rows: &Value| -> Value {
        Value::Array(
            rows.as_array()
                .unwrap()
                .iter()
                .map(|r| {
                    let mut m = r.as_object().unwrap().clone();
                    m.remove("detail");
                    Value::Object(m)
                })
                .collect(),
        )
    };
    serde_json::json!({
        "kind": v["kind"],
        "apiVersion": v["apiVersion"],
        "certificates": strip(&v["certificates"]),
        "certificateAuthorities": strip(&v["certificateAuthorities"]),
    })
}

#[test]
fn every_fixture_matches_openssl_expectations() {
    for f in FIXTURES {
        for (now_file, exp_file) in [
            ("now.txt", "check.json"),
            ("now-expired.txt", "check-expired.json"),
        ] {
            let exp_dir = fixtures().join(f).join("expected");
            let now = std::fs::read_to_string(exp_dir.join(now_file)).unwrap();
            let expected: Value =
                serde_json::from_str(&std::fs::read_to_string(exp_dir.join(exp_file)).unwrap())
                    .unwrap();
            let got = check_json(f, now.trim());
            assert_eq!(kubeadm_view(&got), expected, "{f} at {}", now.trim());
        }
    }
}

#[test]
fn json_key_order_and_indent_are_kubeadms() {
    let out = checked(Check::fixture("pki-zetaoss-2024").args(&[
        "--now",
        "2024-03-05T00:00:00Z",
        "-o",
        "json",
    ]));
    assert!(out.starts_with("{\n    \"kind\": \"CertificateExpirationInfo\",\n    \"apiVersion\": \"output.kubeadm.k8s.io/v1alpha3\",\n    \"certificates\": [\n        {\n            \"name\": \"admin.conf\",\n            \"expirationDate\": \"2025-02-03T07:54:"), "{out}");
}

#[test]
fn golden_text_zetaoss() {
    // Built from kubeadm's format rules (tabwriter minwidth 10 padding 3, `%-8v` yes/no,
    // `Jan 02, 2006 15:04 MST`, ShortHumanDuration); dates from openssl-facts.txt.
    let out = checked(Check::fixture("pki-zetaoss-2024").args(&["--now", "2024-03-05T00:00:00Z"]));
    let golden = std::fs::read_to_string(fixtures().join("golden/zetaoss-2024.txt")).unwrap();
    assert_eq!(out, golden);
}

#[test]
fn golden_text_missing_and_external() {
    // nielslemmens: no etcd dir (external etcd auto-detected), no kubeconfigs (!MISSING!);
    // minahilnisar: no keys at all (every CA externally managed).
    for (f, now, golden) in [
        (
            "pki-nielslemmens-2017",
            "2017-09-20T00:00:00Z",
            "nielslemmens-2017.txt",
        ),
        (
            "pki-minahilnisar-2025",
            "2025-10-25T00:00:00Z",
            "minahilnisar-2025.txt",
        ),
    ] {
        let out = checked(Check::fixture(f).args(&["--now", now]));
        let g = std::fs::read_to_string(fixtures().join("golden").join(golden)).unwrap();
        assert_eq!(out, g, "{f}");
    }
}

#[test]
fn yaml_is_kubeadm_shaped() {
    let out = checked(Check::fixture("pki-maxxmoney-2019").args(&[
        "--now",
        "2020-01-25T00:00:00Z",
        "-o",
        "yaml",
    ]));
    // Keys sorted as the k8s YAML printer sorts them.
    let top: Vec<&str> = out
        .lines()
        .filter(|l| !l.starts_with(' ') && !l.starts_with('-'))
        .collect();
    assert_eq!(top[0], "apiVersion: output.kubeadm.k8s.io/v1alpha3");
    assert!(top.iter().any(|l| l.starts_with("certificateAuthorities:")));
    assert!(top.contains(&"kind: CertificateExpirationInfo"));
    let v: Value = serde_saphyr::from_str(&out).unwrap();
    assert_eq!(v["certificates"].as_array().unwrap().len(), 11);
}

#[test]
fn detail_reports_identical_ca_subjects_resolved_by_signature() {
    // devopsyuva (kubeadm 1.11): all three CAs are CN=kubernetes; leaves must be matched to
    // their CA by signature.
    let v = check_json("pki-devopsyuva-2018", "2018-10-06T00:00:00Z");
    let rows = v["certificates"].as_array().unwrap();
    assert_eq!(rows.iter().filter(|c| c["missing"] == false).count(), 10);
    for c in rows.iter().filter(|c| c["missing"] == false) {
        let d = &c["detail"];
        assert_eq!(d["signedBy"], c["caName"], "{}", c["name"]);
        assert!(d["problems"].as_array().unwrap().is_empty(), "{c}");
    }
}
