//! `kubecert check -o prometheus` and `kubecert metrics` on the real kubeadm PKIs in
//! tests/fixtures: values compared with the openssl-derived expectations
//! (expected/check.json), format validated by `promtool check metrics`, the textfile written
//! atomically, missing and externally managed certificates represented.

mod common;
use common::*;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;

/// One sample: metric name, labels, value.
#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// A small parser of the text exposition format (enough for kubecert's output), independent
/// of kubecert's code.
fn parse(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let (head, value) = line.rsplit_once(' ').expect("sample has a value");
        let value: f64 = value.parse().expect("numeric value");
        let (name, labels) = match head.split_once('{') {
            None => (head.to_string(), BTreeMap::new()),
            Some((n, rest)) => {
                let body = rest.strip_suffix('}').expect("closing brace");
                let mut labels = BTreeMap::new();
                let mut chars = body.chars().peekable();
                loop {
                    let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
                    if key.is_empty() {
                        break;
                    }
                    assert_eq!(chars.next(), Some('"'));
                    let mut v = String::new();
                    while let Some(c) = chars.next() {
                        match c {
                            '\\' => match chars.next() {
                                Some('n') => v.push('\n'),
                                Some(o) => v.push(o),
                                None => panic!("dangling escape"),
                            },
                            '"' => break,
                            c => v.push(c),
                        }
                    }
                    labels.insert(key, v);
                    if chars.peek() == Some(&',') {
                        chars.next();
                    }
                }
                (n.to_string(), labels)
            }
        };
        out.push(Sample {
            name,
            labels,
            value,
        });
    }
    out
}

fn samples<'a>(all: &'a [Sample], name: &str) -> Vec<&'a Sample> {
    all.iter().filter(|s| s.name == name).collect()
}

fn by_name(all: &[Sample], metric: &str) -> BTreeMap<String, f64> {
    samples(all, metric)
        .into_iter()
        .map(|s| (s.labels["name"].clone(), s.value))
        .collect()
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm), so the expected
/// epochs do not come from kubecert's own time code.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

/// `2025-02-03T07:54:34Z` → Unix seconds.
fn epoch(s: &str) -> i64 {
    let n = |r: std::ops::Range<usize>| s[r].parse::<i64>().unwrap();
    assert_eq!(s.len(), 20, "{s}");
    days_from_civil(n(0..4), n(5..7), n(8..10)) * 86400
        + n(11..13) * 3600
        + n(14..16) * 60
        + n(17..19)
}

/// The file each inventory row is read from, relative to the fixture.
fn row_file(name: &str) -> &'static str {
    match name {
        "ca" => "ca.crt",
        "etcd-ca" => "etcd/ca.crt",
        "front-proxy-ca" => "front-proxy-ca.crt",
        "apiserver" => "apiserver.crt",
        "apiserver-etcd-client" => "apiserver-etcd-client.crt",
        "apiserver-kubelet-client" => "apiserver-kubelet-client.crt",
        "etcd-healthcheck-client" => "etcd/healthcheck-client.crt",
        "etcd-peer" => "etcd/peer.crt",
        "etcd-server" => "etcd/server.crt",
        "front-proxy-client" => "front-proxy-client.crt",
        "admin.conf" => "kubeconfig/admin.conf",
        "controller-manager.conf" => "kubeconfig/controller-manager.conf",
        "scheduler.conf" => "kubeconfig/scheduler.conf",
        "super-admin.conf" => "kubeconfig/super-admin.conf",
        other => panic!("unknown row {other}"),
    }
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap()
}

fn expected(fixture: &str, which: &str) -> (String, Vec<Value>) {
    let dir = fixtures().join(fixture).join("expected");
    let (now_f, json_f) = match which {
        "now" => ("now.txt", "check.json"),
        _ => ("now-expired.txt", "check-expired.json"),
    };
    let now = read(&dir.join(now_f)).trim().to_string();
    let v: Value = serde_json::from_str(&read(&dir.join(json_f))).unwrap();
    let mut rows: Vec<Value> = v["certificates"].as_array().unwrap().clone();
    rows.extend(
        v["certificateAuthorities"]
            .as_array()
            .unwrap()
            .iter()
            .cloned(),
    );
    (now, rows)
}

fn check_prom(fixture: &str, now: &str) -> String {
    let o = Check::fixture(fixture)
        .args(&["--now", now, "-o", "prometheus"])
        .output();
    // Exit code follows check's verdict: no thresholds here, so 0, or 4 when a certificate
    // is expired or its key is missing (issue 13; was always 0). Never an error.
    assert!(
        matches!(o.status.code(), Some(0) | Some(4)),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

fn promtool_ok(text: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (apt-get install prometheus; scripts/deps.sh installs it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(
        o.status.success(),
        "promtool check metrics failed:\n{}{}\n--- input ---\n{text}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    // promtool prints lint findings (and exits 0 for some); kubecert must have none.
    assert!(
        o.stdout.is_empty() && o.stderr.is_empty(),
        "promtool findings:\n{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn zetaoss_not_after_matches_openssl_and_promtool_passes() {
    let fixture = "pki-zetaoss-2024";
    let (now, rows) = expected(fixture, "now");
    let text = check_prom(fixture, &now);
    promtool_ok(&text);
    let all = parse(&text);
    let dir = fixtures().join(fixture);

    // Every family has HELP and TYPE gauge.
    let mut families: Vec<&str> = all.iter().map(|s| s.name.as_str()).collect();
    families.dedup();
    for f in &families {
        assert!(text.contains(&format!("# HELP {f} ")), "no HELP for {f}");
        assert!(
            text.contains(&format!("# TYPE {f} gauge\n")),
            "no TYPE for {f}"
        );
    }

    let not_after = samples(&all, "x509_cert_not_after");
    assert_eq!(not_after.len(), rows.len(), "one series per certificate");
    let k_not_after = by_name(&all, "kubecert_cert_not_after_timestamp_seconds");
    let residual = by_name(&all, "kubecert_cert_residual_seconds");
    let now_epoch = epoch(&now);
    for r in &rows {
        let name = r["name"].as_str().unwrap();
        let want = epoch(r["expirationDate"].as_str().unwrap());
        let path = dir.join(row_file(name)).display().to_string();
        let s = not_after
            .iter()
            .find(|s| s.labels["filepath"] == path)
            .unwrap_or_else(|| panic!("no x509_cert_not_after for {path}"));
        assert_eq!(s.value as i64, want, "{name}: x509_cert_not_after");
        assert_eq!(
            s.labels["filename"],
            Path::new(&path).file_name().unwrap().to_str().unwrap()
        );
        assert_eq!(k_not_after[name] as i64, want, "{name}");
        assert_eq!(residual[name] as i64, want - now_epoch, "{name}");
        assert_eq!(
            residual[name] as i64,
            r["residualTime"].as_i64().unwrap(),
            "{name}"
        );
        // Kubeconfig rows carry the exporter's embedded_kind/embedded_key.
        if name.ends_with(".conf") {
            assert_eq!(s.labels["embedded_kind"], "user", "{name}");
            assert!(!s.labels["embedded_key"].is_empty(), "{name}");
        } else {
            assert!(!s.labels.contains_key("embedded_kind"), "{name}");
        }
    }
    // Labels of one well-known certificate, compared with openssl's view.
    let apiserver = not_after
        .iter()
        .find(|s| s.labels["filename"] == "apiserver.crt")
        .unwrap();
    let (ok, serial) = openssl_status(&[
        "x509",
        "-noout",
        "-serial",
        "-in",
        dir.join("apiserver.crt").to_str().unwrap(),
    ]);
    assert!(ok);
    let hex = serial.trim().trim_start_matches("serial=");
    assert_eq!(
        apiserver.labels["serial_number"],
        u128::from_str_radix(hex, 16).unwrap().to_string()
    );
    assert_eq!(apiserver.labels["subject_CN"], "kube-apiserver");
    assert_eq!(apiserver.labels["issuer_CN"], "kubernetes");
    let admin = not_after
        .iter()
        .find(|s| s.labels["filename"] == "admin.conf")
        .unwrap();
    assert_eq!(admin.labels["embedded_key"], "kubernetes-admin");
    assert_eq!(admin.labels["subject_O"], "kubeadm:cluster-admins");
    let super_admin = not_after
        .iter()
        .find(|s| s.labels["filename"] == "super-admin.conf")
        .unwrap();
    assert_eq!(super_admin.labels["subject_O"], "system:masters");

    // Nothing expired at NOW; nothing missing; renewal never ran.
    assert!(samples(&all, "x509_cert_expired")
        .iter()
        .all(|s| s.value == 0.0));
    assert!(by_name(&all, "kubecert_cert_missing")
        .values()
        .all(|v| *v == 0.0));
    assert_eq!(samples(&all, "x509_read_errors")[0].value, 0.0);
    assert_eq!(
        samples(&all, "kubecert_check_timestamp_seconds")[0].value as i64,
        now_epoch
    );
    assert_eq!(
        samples(&all, "kubecert_renew_last_success_timestamp_seconds")[0].value,
        0.0
    );
    // No key material.
    assert!(!text.contains("PRIVATE KEY") && !text.contains("BEGIN"));
}

#[test]
fn expired_clock_shows_expired_and_problems() {
    let fixture = "pki-zetaoss-2024";
    let (now, rows) = expected(fixture, "expired");
    let text = check_prom(fixture, &now);
    promtool_ok(&text);
    let all = parse(&text);
    let expired = samples(&all, "x509_cert_expired");
    assert_eq!(expired.len(), rows.len());
    assert!(expired.iter().all(|s| s.value == 1.0));
    let problems = samples(&all, "kubecert_cert_problems");
    for r in &rows {
        let name = r["name"].as_str().unwrap();
        assert!(
            problems.iter().any(|s| s.labels["name"] == name
                && s.labels["code"] == "expired"
                && s.value == 1.0),
            "{name} has no expired problem"
        );
    }
    let residual = by_name(&all, "kubecert_cert_residual_seconds");
    for r in &rows {
        let name = r["name"].as_str().unwrap();
        assert_eq!(
            residual[name] as i64,
            r["residualTime"].as_i64().unwrap(),
            "{name}"
        );
        assert!(residual[name] < 0.0);
    }
}

#[test]
fn missing_certificates_are_represented() {
    // nielslemmens: no kubeconfigs at all, no etcd dir (external etcd).
    let fixture = "pki-nielslemmens-2017";
    let (now, rows) = expected(fixture, "now");
    let text = check_prom(fixture, &now);
    promtool_ok(&text);
    let all = parse(&text);
    let missing = by_name(&all, "kubecert_cert_missing");
    assert_eq!(missing.len(), rows.len());
    let mut n_missing = 0;
    for r in &rows {
        let name = r["name"].as_str().unwrap();
        let want = r["missing"].as_bool().unwrap();
        n_missing += usize::from(want);
        assert_eq!(missing[name], f64::from(u8::from(want)), "{name}");
    }
    assert_eq!(
        n_missing, 4,
        "admin, controller-manager, scheduler, super-admin"
    );
    // Missing rows have no x509 series and no residual (nothing to read).
    assert_eq!(
        samples(&all, "x509_cert_not_after").len(),
        rows.len() - n_missing
    );
    let residual = by_name(&all, "kubecert_cert_residual_seconds");
    assert!(!residual.contains_key("admin.conf"));
    for r in rows.iter().filter(|r| !r["missing"].as_bool().unwrap()) {
        let name = r["name"].as_str().unwrap();
        assert_eq!(
            residual[name] as i64,
            epoch(r["expirationDate"].as_str().unwrap()) - epoch(&now)
        );
    }
    // A missing file is not a read error.
    assert_eq!(samples(&all, "x509_read_errors")[0].value, 0.0);
}

#[test]
fn externally_managed_certificates_are_represented() {
    // minahilnisar: certificates but no CA keys.
    let fixture = "pki-minahilnisar-2025";
    let (now, rows) = expected(fixture, "now");
    let text = check_prom(fixture, &now);
    promtool_ok(&text);
    let all = parse(&text);
    let ext = by_name(&all, "kubecert_cert_externally_managed");
    let mut n_ext = 0;
    for r in &rows {
        let name = r["name"].as_str().unwrap();
        let want = r["externallyManaged"].as_bool().unwrap();
        n_ext += usize::from(want);
        assert_eq!(ext[name], f64::from(u8::from(want)), "{name}");
    }
    assert!(n_ext >= 10, "every present cert is externally managed");
    // Still monitored: their NotAfter is exported.
    let not_after = samples(&all, "x509_cert_not_after");
    let dir = fixtures().join(fixture);
    for r in rows.iter().filter(|r| !r["missing"].as_bool().unwrap()) {
        let name = r["name"].as_str().unwrap();
        let path = dir.join(row_file(name)).display().to_string();
        let s = not_after
            .iter()
            .find(|s| s.labels["filepath"] == path)
            .unwrap();
        assert_eq!(
            s.value as i64,
            epoch(r["expirationDate"].as_str().unwrap()),
            "{name}"
        );
    }
}

#[test]
fn textfile_is_written_atomically_and_matches_stdout() {
    use std::os::unix::fs::PermissionsExt;
    let fixture = "pki-zetaoss-2024";
    let (now, _) = expected(fixture, "now");
    let dir = fixtures().join(fixture);
    let tmp = tempfile::tempdir().unwrap();
    let args = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = [
            "metrics",
            "--cert-dir",
            dir.to_str().unwrap(),
            "--kubeconfig-dir",
            dir.join("kubeconfig").to_str().unwrap(),
            "--now",
            &now,
            "--state-file",
            tmp.path().join("absent-state.json").to_str().unwrap(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let stdout_args = args(&[]);
    let printed = ok(&stdout_args.iter().map(String::as_str).collect::<Vec<_>>());
    let tf = tmp.path().join("textfile");
    std::fs::create_dir(&tf).unwrap();
    // An old file is replaced, not appended to.
    std::fs::write(tf.join("kubecert.prom"), "stale\n").unwrap();
    let file_args = args(&["--textfile-dir", tf.to_str().unwrap()]);
    let out = ok(&file_args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(out.is_empty(), "nothing on stdout with --textfile-dir");
    let written = read(&tf.join("kubecert.prom"));
    assert_eq!(written, printed);
    promtool_ok(&written);
    let mode = std::fs::metadata(tf.join("kubecert.prom"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o644, "node_exporter must be able to read it");
    let names: Vec<String> = std::fs::read_dir(&tf)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        vec!["kubecert.prom".to_string()],
        "no temp file left"
    );
    // check -o prometheus is the same rendering.
    assert_eq!(check_prom(fixture, &now), printed);
    // A missing textfile dir is an error (exit 1), not a silent success.
    let bad = args(&["--textfile-dir", tmp.path().join("nope").to_str().unwrap()]);
    let o = kubecert(&bad.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn renewal_state_is_exported() {
    let fixture = "pki-zetaoss-2024";
    let (now, _) = expected(fixture, "now");
    let dir = fixtures().join(fixture);
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state.json");
    std::fs::write(
        &state,
        r#"{"lastSuccess":{"time":"2024-03-01T00:00:00Z","timestamp":1709251200,"renewed":["apiserver","etcd-server"],"restarted":["etcd","kube-apiserver"]},
            "lastFailure":{"time":"2024-03-02T00:00:00Z","timestamp":1709337600,"stage":"health:etcd","error":"x"},
            "pendingRestart":["etcd"]}"#,
    )
    .unwrap();
    let text = ok(&[
        "metrics",
        "--cert-dir",
        dir.to_str().unwrap(),
        "--kubeconfig-dir",
        dir.join("kubeconfig").to_str().unwrap(),
        "--now",
        &now,
        "--state-file",
        state.to_str().unwrap(),
    ]);
    promtool_ok(&text);
    let all = parse(&text);
    let one = |n: &str| samples(&all, n)[0].value as i64;
    assert_eq!(
        one("kubecert_renew_last_success_timestamp_seconds"),
        1709251200
    );
    assert_eq!(
        one("kubecert_renew_last_failure_timestamp_seconds"),
        1709337600
    );
    assert_eq!(one("kubecert_renew_last_renewed_certificates"), 2);
    assert_eq!(one("kubecert_renew_pending_restarts"), 1);
}

#[test]
fn label_values_are_escaped() {
    // A path with a quote, a backslash and a newline still yields valid exposition text.
    let tmp = tempfile::tempdir().unwrap();
    let weird = tmp.path().join("we\"ird\\dir\nx");
    copy_dir(&fixtures().join("pki-zetaoss-2024"), &weird);
    let (now, rows) = expected("pki-zetaoss-2024", "now");
    let text = ok(&[
        "metrics",
        "--cert-dir",
        weird.to_str().unwrap(),
        "--kubeconfig-dir",
        weird.join("kubeconfig").to_str().unwrap(),
        "--now",
        &now,
    ]);
    promtool_ok(&text);
    let all = parse(&text);
    let not_after = samples(&all, "x509_cert_not_after");
    assert_eq!(not_after.len(), rows.len());
    let want = weird.join("apiserver.crt").display().to_string();
    assert!(not_after.iter().any(|s| s.labels["filepath"] == want));
}

#[test]
fn broken_certificate_is_a_read_error() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("pki");
    copy_dir(&fixtures().join("pki-zetaoss-2024"), &d);
    std::fs::write(d.join("apiserver.crt"), "garbage\n").unwrap();
    let (now, _) = expected("pki-zetaoss-2024", "now");
    let text = ok(&[
        "metrics",
        "--cert-dir",
        d.to_str().unwrap(),
        "--kubeconfig-dir",
        d.join("kubeconfig").to_str().unwrap(),
        "--now",
        &now,
    ]);
    promtool_ok(&text);
    let all = parse(&text);
    assert_eq!(samples(&all, "x509_read_errors")[0].value, 1.0);
    let err = samples(&all, "x509_cert_error");
    let bad: Vec<_> = err.iter().filter(|s| s.value == 1.0).collect();
    assert_eq!(bad.len(), 1);
    assert_eq!(bad[0].labels["filename"], "apiserver.crt");
    assert!(samples(&all, "kubecert_cert_problems")
        .iter()
        .any(|s| s.labels["name"] == "apiserver" && s.labels["code"] == "malformed"));
    assert!(!by_name(&all, "kubecert_cert_residual_seconds").contains_key("apiserver"));
}

/// The alert rules of docs/monitoring.md: valid (`promtool check rules`) and firing as
/// documented (`promtool test rules` on synthetic series).
#[test]
fn documented_alert_rules_are_valid_and_fire() {
    let doc = read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/monitoring.md"));
    let start = doc.find("# kubecert-alerts.yml").expect("rules block");
    let end = start + doc[start..].find("```").expect("end of the rules block");
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("kubecert-alerts.yml"), &doc[start..end]).unwrap();
    std::fs::write(
        tmp.path().join("test.yml"),
        r#"rule_files: [kubecert-alerts.yml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'x509_cert_not_after{filepath="/etc/kubernetes/pki/apiserver.crt",instance="n1"}'
        values: '1209600x60'
      - series: 'x509_cert_not_after{filepath="/etc/kubernetes/pki/ca.crt",instance="n1"}'
        values: '315360000x60'
      - series: 'kubecert_cert_missing{name="admin.conf",instance="n1"}'
        values: '1x90'
      - series: 'kubecert_cert_missing{name="super-admin.conf",instance="n1"}'
        values: '1x90'
      - series: 'kubecert_renew_last_success_timestamp_seconds{instance="n1"}'
        values: '100x90'
      - series: 'kubecert_renew_last_failure_timestamp_seconds{instance="n1"}'
        values: '200x90'
      - series: 'kubecert_renew_last_success_timestamp_seconds{instance="n2"}'
        values: '300x90'
      - series: 'kubecert_renew_last_failure_timestamp_seconds{instance="n2"}'
        values: '200x90'
    alert_rule_test:
      - eval_time: 20m
        alertname: KubeadmCertificateExpiresSoon
        exp_alerts:
          - exp_labels: {severity: warning, filepath: /etc/kubernetes/pki/apiserver.crt, instance: n1}
            exp_annotations:
              summary: "/etc/kubernetes/pki/apiserver.crt on n1 expires in 13d 23h 40m 0s"
              description: "kubecert-renew.timer should have renewed it (window KUBECERT_WITHIN). Check `journalctl -u kubecert-renew.service` and run `systemctl start kubecert-renew.service`."
      - eval_time: 20m
        alertname: KubeadmCertificateExpiresVerySoon
        exp_alerts: []
      - eval_time: 70m
        alertname: KubeadmCertificateMissing
        exp_alerts:
          - exp_labels: {severity: warning, name: admin.conf, instance: n1}
            exp_annotations:
              summary: "admin.conf is missing on n1"
      - eval_time: 5m
        alertname: KubecertRenewalFailed
        exp_alerts:
          - exp_labels: {severity: critical, instance: n1}
            exp_annotations:
              summary: "The last scheduled certificate renewal on n1 failed"
              description: "See `journalctl -u kubecert-renew.service` and /etc/kubernetes/kubecert-state.json."
"#,
    )
    .unwrap();
    for args in [
        vec!["check", "rules", "kubecert-alerts.yml"],
        vec!["test", "rules", "test.yml"],
    ] {
        let o = Command::new("promtool")
            .args(&args)
            .current_dir(tmp.path())
            .output()
            .expect("promtool");
        assert!(
            o.status.success(),
            "promtool {args:?}:\n{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

/// The `metrics` JSON-RPC method returns the same text (and writes the textfile when asked).
#[test]
fn rpc_metrics_method_matches_the_cli() {
    let fixture = "pki-zetaoss-2024";
    let (now, _) = expected(fixture, "now");
    let dir = fixtures().join(fixture);
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state.json").display().to_string();
    let (cd, kd) = (
        dir.display().to_string(),
        dir.join("kubeconfig").display().to_string(),
    );
    let cli = ok(&[
        "metrics",
        "--cert-dir",
        &cd,
        "--kubeconfig-dir",
        &kd,
        "--now",
        &now,
        "--state-file",
        &state,
    ]);
    let params = serde_json::json!({
        "cert_dir": cd, "kubeconfig_dir": kd, "now": now, "state_file": state,
    });
    let mut with_tf = params.clone();
    with_tf["textfile_dir"] = Value::String(tmp.path().display().to_string());
    let req = format!(
        "{}\n{}\n",
        serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "metrics", "params": params}),
        serde_json::json!({"jsonrpc": "2.0", "id": 2, "method": "metrics", "params": with_tf}),
    );
    let mut child = Command::new(bin())
        .args(["serve", "--stdio"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(req.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let responses: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(responses.len(), 2, "{responses:?}");
    for r in &responses {
        assert_eq!(r["result"]["text"].as_str(), Some(cli.as_str()), "{r}");
        assert_eq!(
            r["result"]["contentType"],
            "text/plain; version=0.0.4; charset=utf-8"
        );
    }
    let written = tmp.path().join("kubecert.prom");
    let r2 = responses.iter().find(|r| r["id"] == 2).unwrap();
    assert_eq!(
        r2["result"]["textfile"].as_str(),
        Some(written.display().to_string().as_str())
    );
    assert_eq!(read(&written), cli);
}
