//! Prometheus metrics: one rendering of a [`CheckResult`] (plus the state file the scheduled
//! renewal writes) in the text exposition format, for `kubecert check -o prometheus`,
//! `kubecert metrics` (stdout or an atomically replaced node_exporter textfile) and the
//! `metrics` JSON-RPC method. There is one code path: [`crate::check::check`] → [`render`].
//!
//! The `x509_*` series use the names and labels of enix's x509-certificate-exporter
//! (`x509_cert_not_before`, `x509_cert_not_after`, `x509_cert_expired`, `x509_cert_error`,
//! `x509_read_errors`; labels `filename`, `filepath`, `serial_number` (decimal),
//! `issuer_{C,ST,L,O,OU,CN}`, `subject_{C,ST,L,O,OU,CN}` (first value of each), and for
//! kubeconfigs `embedded_kind="user"` / `embedded_key=<user name>`), so dashboards and alerts
//! written for that exporter work unchanged. Empty labels are left out, which Prometheus
//! treats the same as the exporter's empty strings. kubecert's own series carry the
//! inventory `name`:
//!
//! | metric | labels | value |
//! |---|---|---|
//! | `kubecert_cert_not_after_timestamp_seconds` | name, ca | NotAfter (Unix) |
//! | `kubecert_cert_residual_seconds` | name, ca | NotAfter − the check's clock |
//! | `kubecert_cert_missing` | name | 1 when the file is absent |
//! | `kubecert_cert_externally_managed` | name | 1 when its CA key is absent |
//! | `kubecert_cert_problems` | name, code | 1 per finding (`expired`, `key-mismatch`, …) |
//! | `kubecert_kubelet_conf_embedded_client_cert` | path | 1 when kubelet.conf embeds its cert |
//! | `kubecert_kubelet_conf_client_cert_not_after_timestamp_seconds` | path | NotAfter |
//! | `kubecert_kubelet_cert_not_after_timestamp_seconds` | name, path, rotation | NotAfter of `kubelet-client` / `kubelet-serving` (with the kubelet section) |
//! | `kubecert_kubelet_cert_residual_seconds` | name, path, rotation | NotAfter − the check's clock |
//! | `kubecert_kubelet_cert_problems` | name, code | 1 per finding about a kubelet certificate |
//! | `kubecert_check_timestamp_seconds` | | the check's clock |
//! | `kubecert_renew_last_success_timestamp_seconds` | | last successful `auto-renew` (0: never) |
//! | `kubecert_renew_last_failure_timestamp_seconds` | | last failed `auto-renew` (0: never) |
//! | `kubecert_renew_last_renewed_certificates` | | certificates the last success renewed |
//! | `kubecert_renew_pending_restarts` | | components renewed but not yet restarted |
//!
//! `ca` is the issuing CA of a leaf, and the CA's own name on a CA row.
//! No series ever carries key material: only names, paths, subjects, issuers and serials.

pub mod ca;
pub mod drift;
pub mod served;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::check::{CertificateStatus, CheckParams, CheckResult};
use crate::error::Result;
use crate::pki::inventory::{self, Location};
use crate::pki::kubeconfig::Kubeconfig;
use crate::pki::Layout;
use crate::renew_state::{self, RenewState};

/// The file name written in a textfile-collector dir.
pub const TEXTFILE_NAME: &str = "kubecert.prom";

/// Content type of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Parameters of `metrics` (CLI flags and JSON-RPC params).
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MetricsParams {
    /// Where the PKI is: `cert_dir`, `kubeconfig_dir`, `external_etcd` (top-level params).
    #[serde(flatten)]
    pub location: crate::pki::PkiLocation,
    /// Fixed clock, RFC 3339 (default: now).
    #[serde(default)]
    pub now: Option<String>,
    /// kubelet PKI dir (default `/var/lib/kubelet/pki`).
    #[serde(default)]
    pub kubelet_pki: Option<String>,
    /// The scheduled renewal's state file (default `<cert_dir>/../kubecert-state.json`).
    #[serde(default)]
    pub state_file: Option<String>,
    /// Also write `<textfile_dir>/kubecert.prom` atomically (node_exporter textfile
    /// collector). Writing needs the write tier on the socket.
    #[serde(default)]
    pub textfile_dir: Option<String>,
    /// `served`: also probe what each component serves (`kubecert_served_*` series,
    /// [`served`]), with the probe's options (top-level params).
    #[serde(flatten)]
    pub served: crate::ops::served::ServedProbe,
    /// Also render the CA series (`kubecert_ca_*`, [`ca`]).
    #[serde(default)]
    pub ca: bool,
    /// Also render the drift series (`kubecert_drift_*`, [`drift`]) against `config` or
    /// `kubeconfig`.
    #[serde(default)]
    pub drift: bool,
    /// The kubeadm configuration `drift` reads (as check's: `config`, `kubeconfig`,
    /// `node_name`, `advertise_address`; confined alike; top-level params).
    #[serde(flatten)]
    pub kubeadm: crate::config::ConfigParams,
}

/// Result of `metrics`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MetricsResult {
    /// The metrics in the Prometheus text exposition format 0.0.4.
    pub text: String,
    /// `text/plain; version=0.0.4; charset=utf-8`.
    pub content_type: String,
    /// The file written, when `textfile_dir` was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub textfile: Option<String>,
}

/// What [`render`] needs besides the [`CheckResult`]: where the kubeconfigs are (for the
/// `filepath` of kubeconfig rows), their user names (`embedded_key`) and the renewal state.
#[derive(Debug, Clone, Default)]
pub struct RenderContext {
    /// The kubeconfig dir.
    pub kubeconfig_dir: Option<PathBuf>,
    /// Row name → the current context's user name, for kubeconfig rows.
    pub kubeconfig_users: BTreeMap<String, String>,
    /// The scheduled renewal's records (absent: never ran).
    pub state: Option<RenewState>,
}

impl RenderContext {
    /// Builds the context for a layout: reads the user name of each kubeconfig row that
    /// exists, and the state file (an unreadable state file is logged and treated as absent).
    pub fn for_layout(layout: &Layout, state_file: &Path) -> Self {
        let mut users = BTreeMap::new();
        for e in layout.rows() {
            if let Location::Kubeconfig { file } = e.location {
                let path = layout.kubeconfig_dir.join(file);
                if let Ok(kc) = Kubeconfig::load(&path) {
                    users.insert(e.name.to_string(), kc.user);
                }
            }
        }
        let state = match renew_state::read_state(state_file) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %crate::error::report(&e), "ignoring the renewal state file");
                None
            }
        };
        RenderContext {
            kubeconfig_dir: Some(layout.kubeconfig_dir.clone()),
            kubeconfig_users: users,
            state,
        }
    }
}

/// Runs a check and renders it; with `textfile_dir`, also writes the textfile.
pub fn metrics(p: &MetricsParams) -> Result<MetricsResult> {
    metrics_with(p, &crate::config::configmap_not_compiled_in)
}

/// [`metrics`], reading the kubeadm-config ConfigMap with `read_configmap` when the params
/// name a `kubeconfig`.
pub fn metrics_with(
    p: &MetricsParams,
    read_configmap: crate::config::ConfigMapReader<'_>,
) -> Result<MetricsResult> {
    let check_params = CheckParams {
        location: p.location.clone(),
        now: p.now.clone(),
        warn_within: None,
        fail_within: None,
        kubelet_pki: p.kubelet_pki.clone(),
        served: p.served.clone(),
        // The kubelet's certificates when its PKI dir exists (a node), so that fixtures
        // without one render exactly as before.
        kubelet: std::path::Path::new(
            p.kubelet_pki
                .as_deref()
                .unwrap_or(crate::pki::DEFAULT_KUBELET_PKI),
        )
        .is_dir(),
        ca: p.ca,
        drift: p.drift,
        kubeadm: p.kubeadm.clone(),
    };
    let opts = check_params.resolve_with(read_configmap)?;
    let state_file = match &p.state_file {
        Some(s) => PathBuf::from(s),
        None => renew_state::default_state_file(&opts.layout.cert_dir),
    };
    let report = crate::check::check(&opts)?;
    let ctx = RenderContext::for_layout(&opts.layout, &state_file);
    let text = render(&report, &ctx);
    let textfile = match &p.textfile_dir {
        Some(dir) => Some(write_textfile(Path::new(dir), &text)?),
        None => None,
    };
    Ok(MetricsResult {
        text,
        content_type: CONTENT_TYPE.to_string(),
        textfile: textfile.map(|p| p.display().to_string()),
    })
}

/// Writes `<dir>/kubecert.prom` atomically: a temp file in `dir`, fsync, mode 0644, rename,
/// fsync of the dir. node_exporter never sees a partial file.
pub fn write_textfile(dir: &Path, text: &str) -> Result<PathBuf> {
    let target = dir.join(TEXTFILE_NAME);
    crate::pki::store::write_atomic(&target, text.as_bytes(), 0o644)?;
    Ok(target)
}

/// One metric family being built: HELP/TYPE once, then its samples.
struct Family {
    name: &'static str,
    help: &'static str,
    samples: Vec<String>,
}

impl Family {
    fn new(name: &'static str, help: &'static str) -> Self {
        Family {
            name,
            help,
            samples: Vec::new(),
        }
    }

    fn push(&mut self, labels: &[(&str, &str)], value: i64) {
        let mut s = String::from(self.name);
        let labels: Vec<&(&str, &str)> = labels.iter().filter(|(_, v)| !v.is_empty()).collect();
        if !labels.is_empty() {
            s.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    s.push(',');
                }
                let _ = write!(s, "{k}=\"{}\"", escape_label(v));
            }
            s.push('}');
        }
        let _ = write!(s, " {value}");
        self.samples.push(s);
    }

    fn write_to(&self, out: &mut String) {
        let _ = writeln!(out, "# HELP {} {}", self.name, self.help);
        let _ = writeln!(out, "# TYPE {} gauge", self.name);
        for s in &self.samples {
            out.push_str(s);
            out.push('\n');
        }
    }
}

/// Escapes a label value (backslash, double quote, newline).
pub fn escape_label(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

/// Labels of the x509-certificate-exporter series for one row (None when nothing was read).
fn x509_labels(row: &CertificateStatus, ctx: &RenderContext) -> Option<Vec<(String, String)>> {
    let detail = row.detail.as_ref()?;
    let kubeconfig_file = inventory::find(&row.name).and_then(|e| match e.location {
        Location::Kubeconfig { file } => Some(file),
        Location::Pki { .. } => None,
    });
    let mut labels: Vec<(String, String)> = Vec::new();
    match kubeconfig_file {
        Some(file) => {
            let path = ctx
                .kubeconfig_dir
                .as_ref()
                .map(|d| d.join(file).display().to_string())
                .unwrap_or_else(|| detail.path.clone());
            labels.push(("filename".into(), file.to_string()));
            labels.push(("filepath".into(), path));
            labels.push(("embedded_kind".into(), "user".into()));
            labels.push((
                "embedded_key".into(),
                ctx.kubeconfig_users
                    .get(&row.name)
                    .cloned()
                    .unwrap_or_default(),
            ));
        }
        None => {
            let name = Path::new(&detail.path)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            labels.push(("filename".into(), name));
            labels.push(("filepath".into(), detail.path.clone()));
        }
    }
    if let Some(facts) = &row.facts {
        labels.push(("serial_number".into(), facts.serial_decimal.clone()));
        for (prefix, dn) in [("issuer", &facts.issuer), ("subject", &facts.subject)] {
            for (k, v) in dn {
                labels.push((format!("{prefix}_{k}"), v.clone()));
            }
        }
    }
    Some(labels)
}

/// One group of metric families: what it reads (the check and the render context) → its
/// families, in the order they are rendered. A family with no sample is left out.
type FamilyGroup = fn(&CheckResult, &RenderContext) -> Vec<Family>;

/// Every family group, in output order. To add a metric family, write a function with the
/// [`FamilyGroup`] signature that builds its [`Family`] values from the typed fields of the
/// report (never by parsing the rendered strings) and add it here.
const FAMILY_GROUPS: &[FamilyGroup] = &[
    cert_families,
    kubelet_families,
    kubelet_cert_families,
    check_families,
    state_families,
];

/// Renders the metrics (text exposition format 0.0.4, every family a gauge with HELP/TYPE).
pub fn render(report: &CheckResult, ctx: &RenderContext) -> String {
    let mut out = String::new();
    for group in FAMILY_GROUPS {
        for f in group(report, ctx) {
            if !f.samples.is_empty() {
                f.write_to(&mut out);
            }
        }
    }
    // The served section renders its own families (metrics/served.rs).
    if let Some(s) = &report.served {
        out.push_str(&served::render(s));
    }
    if let Some(c) = &report.ca {
        out.push_str(&ca::render(c));
    }
    if let Some(d) = &report.drift {
        out.push_str(&drift::render(d));
    }
    out
}

/// The check's clock, Unix seconds (absent from a result read back from JSON).
fn check_now(report: &CheckResult) -> Option<i64> {
    report.status.as_ref().and_then(|s| s.now_seconds)
}

/// The family of the check's clock.
fn check_families(report: &CheckResult, _ctx: &RenderContext) -> Vec<Family> {
    let mut check_ts = Family::new(
        "kubecert_check_timestamp_seconds",
        "The clock of the check these metrics come from.",
    );
    if let Some(n) = check_now(report) {
        check_ts.push(&[], n);
    }
    vec![check_ts]
}

/// The per-certificate families (x509-certificate-exporter's and kubecert's own).
struct CertFamilies {
    not_before: Family,
    not_after: Family,
    expired: Family,
    cert_error: Family,
    read_errors: Family,
    k_not_after: Family,
    residual: Family,
    missing: Family,
    external: Family,
    problems: Family,
    /// Rows whose file could not be read or parsed.
    errors: i64,
}

impl CertFamilies {
    fn new() -> Self {
        CertFamilies {
            not_before: Family::new(
                "x509_cert_not_before",
                "Unix timestamp of the certificate's NotBefore.",
            ),
            not_after: Family::new(
                "x509_cert_not_after",
                "Unix timestamp of the certificate's NotAfter.",
            ),
            expired: Family::new(
                "x509_cert_expired",
                "1 if the certificate is expired, 0 otherwise.",
            ),
            cert_error: Family::new(
                "x509_cert_error",
                "1 if the certificate file could not be read or parsed, 0 otherwise.",
            ),
            read_errors: Family::new(
                "x509_read_errors",
                "Number of certificate files that could not be read or parsed.",
            ),
            k_not_after: Family::new(
                "kubecert_cert_not_after_timestamp_seconds",
                "NotAfter of each kubeadm certificate, by inventory name.",
            ),
            residual: Family::new(
                "kubecert_cert_residual_seconds",
                "Seconds from the check's clock to NotAfter (negative once expired).",
            ),
            missing: Family::new(
                "kubecert_cert_missing",
                "1 if the certificate's file is absent.",
            ),
            external: Family::new(
                "kubecert_cert_externally_managed",
                "1 if the certificate's CA key is absent (kubecert cannot renew it).",
            ),
            problems: Family::new(
                "kubecert_cert_problems",
                "1 for each finding about a certificate (code: expired, key-mismatch, ...).",
            ),
            errors: 0,
        }
    }

    /// Adds one row's samples.
    fn push_row(&mut self, row: &CertificateStatus, ctx: &RenderContext, now: Option<i64>) {
        let ca = row.ca_name.clone().unwrap_or_else(|| row.name.clone());
        let name = row.name.as_str();
        self.missing.push(&[("name", name)], i64::from(row.missing));
        self.external
            .push(&[("name", name)], i64::from(row.externally_managed));
        if let Some(d) = &row.detail {
            for p in &d.problems {
                self.problems
                    .push(&[("name", name), ("code", p.code.as_str())], 1);
            }
        }
        let Some(labels) = x509_labels(row, ctx) else {
            return;
        };
        let lv: Vec<(&str, &str)> = labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        match &row.facts {
            Some(facts) => {
                let na = facts.not_after;
                self.not_before.push(&lv, facts.not_before);
                self.not_after.push(&lv, na);
                let is_expired = now.map(|n| n > na).unwrap_or(row.residual_time < 0);
                self.expired.push(&lv, i64::from(is_expired));
                self.cert_error.push(&lv, 0);
                self.k_not_after.push(&[("name", name), ("ca", &ca)], na);
                self.residual
                    .push(&[("name", name), ("ca", &ca)], row.residual_time);
            }
            None => {
                self.errors += 1;
                self.cert_error.push(&lv, 1);
            }
        }
    }

    /// The families, in the order they are rendered.
    fn into_vec(mut self) -> Vec<Family> {
        self.read_errors.push(&[], self.errors);
        vec![
            self.not_before,
            self.not_after,
            self.expired,
            self.cert_error,
            self.read_errors,
            self.k_not_after,
            self.residual,
            self.missing,
            self.external,
            self.problems,
        ]
    }
}

/// The per-certificate families, in order.
fn cert_families(report: &CheckResult, ctx: &RenderContext) -> Vec<Family> {
    let now = check_now(report);
    let mut f = CertFamilies::new();
    let rows = report
        .certificate_authorities
        .iter()
        .chain(report.certificates.iter());
    for row in rows {
        f.push_row(row, ctx, now);
    }
    f.into_vec()
}

/// The families about kubelet.conf's client certificate.
fn kubelet_families(report: &CheckResult, _ctx: &RenderContext) -> Vec<Family> {
    let mut kubelet_embedded = Family::new(
        "kubecert_kubelet_conf_embedded_client_cert",
        "1 if kubelet.conf embeds its client certificate, which the kubelet never rotates (kubeadm#1753).",
    );
    let mut kubelet_not_after = Family::new(
        "kubecert_kubelet_conf_client_cert_not_after_timestamp_seconds",
        "NotAfter of the client certificate kubelet.conf uses.",
    );
    if let Some(k) = report.kubelet_conf.as_ref().filter(|k| k.present) {
        kubelet_embedded.push(
            &[("path", &k.path)],
            i64::from(k.mode == Some(crate::check::KubeletConfMode::Embedded)),
        );
        if let Some(na) = k.not_after {
            kubelet_not_after.push(&[("path", &k.path)], na);
        }
    }

    vec![kubelet_embedded, kubelet_not_after]
}

/// The families of the kubelet section (`check --kubelet`; `metrics` when the kubelet PKI dir
/// exists): NotAfter and residual time of the kubelet's client and serving certificates, and
/// 1 per finding. No family at all without the section, so other output is unchanged.
fn kubelet_cert_families(report: &CheckResult, _ctx: &RenderContext) -> Vec<Family> {
    let Some(k) = &report.kubelet else {
        return vec![];
    };
    let mut not_after = Family::new(
        "kubecert_kubelet_cert_not_after_timestamp_seconds",
        "NotAfter of the kubelet's client and serving certificates.",
    );
    let mut residual = Family::new(
        "kubecert_kubelet_cert_residual_seconds",
        "Seconds until the kubelet certificate's NotAfter, at the check's clock.",
    );
    let mut problems = Family::new(
        "kubecert_kubelet_cert_problems",
        "1 per finding about a kubelet certificate (not-found, expired, not-signed-by-ca, ...).",
    );
    for c in k.certs() {
        let rotation = serde_json::to_value(c.rotation)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        let labels = [
            ("name", c.name.as_str()),
            ("path", c.path.as_str()),
            ("rotation", rotation.as_str()),
        ];
        // NotAfter = the check's clock + the residual time it computed (typed, not re-parsed).
        if let (Some(n), Some(r)) = (check_now(report), c.residual_time) {
            not_after.push(&labels, n + r);
        }
        if let Some(r) = c.residual_time {
            residual.push(&labels, r);
        }
        for p in &c.problems {
            problems.push(&[("name", c.name.as_str()), ("code", p.code.as_str())], 1);
        }
    }
    vec![not_after, residual, problems]
}

/// The families of the scheduled renewal's state file.
fn state_families(_report: &CheckResult, ctx: &RenderContext) -> Vec<Family> {
    let state = ctx.state.clone().unwrap_or_default();
    let mut last_success = Family::new(
        "kubecert_renew_last_success_timestamp_seconds",
        "When the scheduled renewal (kubecert auto-renew) last succeeded; 0 if never.",
    );
    last_success.push(
        &[],
        state
            .last_success
            .as_ref()
            .map(|r| r.timestamp)
            .unwrap_or(0),
    );
    let mut last_failure = Family::new(
        "kubecert_renew_last_failure_timestamp_seconds",
        "When the scheduled renewal (kubecert auto-renew) last failed; 0 if never.",
    );
    last_failure.push(
        &[],
        state
            .last_failure
            .as_ref()
            .map(|r| r.timestamp)
            .unwrap_or(0),
    );
    let mut last_renewed = Family::new(
        "kubecert_renew_last_renewed_certificates",
        "How many certificates the last successful scheduled renewal renewed.",
    );
    last_renewed.push(
        &[],
        state
            .last_success
            .as_ref()
            .map(|r| r.renewed.len() as i64)
            .unwrap_or(0),
    );
    let mut pending = Family::new(
        "kubecert_renew_pending_restarts",
        "Components whose certificates were renewed but which were not restarted successfully yet.",
    );
    pending.push(&[], state.pending_restart.len() as i64);

    vec![last_success, last_failure, last_renewed, pending]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_escaping() {
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
