//! Typed errors of the kubecert library. Every variant names the certificate or path it is
//! about; none ever carries key material.

use std::path::PathBuf;

/// Why PEM input could not be used.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PemError {
    /// The bytes are not PEM at all (what failed, never the bytes: see [`pem_error`]).
    #[error("malformed PEM: {0}")]
    Malformed(String),
    /// PEM, but no `CERTIFICATE` block.
    #[error("no CERTIFICATE block found")]
    NoCertificate,
    /// A `CERTIFICATE` block whose DER does not parse.
    #[error("invalid certificate: {0}")]
    BadCertificate(String),
    /// PEM, but no private key block.
    #[error("no PRIVATE KEY block found")]
    NoPrivateKey,
    /// A key block kubecert does not support (kubeadm accepts RSA and ECDSA only).
    #[error("unsupported private key: {0}")]
    UnsupportedKey(String),
}

/// What failed in a PEM parse, without any of the input (the `pem` crate's messages can
/// carry labels and bytes of it).
pub fn pem_error(e: &::pem::PemError) -> PemError {
    use ::pem::PemError as P;
    PemError::Malformed(
        match e {
            P::MismatchedTags(..) => "BEGIN and END labels differ",
            P::MalformedFraming => "malformed framing",
            P::MissingBeginTag => "a BEGIN line is missing",
            P::MissingEndTag => "an END line is missing",
            P::MissingData => "a block has no data",
            P::InvalidData(_) => "a block is not valid base64",
            P::InvalidHeader(_) => "invalid header",
            P::NotUtf8(_) => "not UTF-8",
        }
        .to_string(),
    )
}

/// Errors of the kubecert library.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be read or written. The cause is the `source` (printed by
    /// [`report`], not repeated here).
    #[error("{path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A PEM file could not be parsed (what failed is the `source`).
    #[error("{path}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: PemError,
    },
    /// A kubeconfig is malformed or lacks what is needed.
    #[error("invalid kubeconfig {path}: {reason}")]
    Kubeconfig {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A name that is not in the inventory (kubeadm: "%s is not a valid certificate for this cluster").
    #[error("{0} is not a valid certificate for this cluster")]
    UnknownCertificate(String),
    /// The CA certificate is absent or unusable ("couldn't load %s certificate authority
    /// from %s", plus why).
    #[error("couldn't load {ca} certificate authority from {dir}: {reason}")]
    CaMissing {
        /// CA name.
        ca: String,
        /// Cert dir.
        dir: PathBuf,
        /// Which file and what is wrong with it (never its bytes).
        reason: String,
    },
    /// The CA key is absent: the CA is externally managed.
    #[error("the {ca} key is absent ({path}): {ca} is externally managed")]
    CaKeyMissing {
        /// CA name.
        ca: String,
        /// Expected key path.
        path: PathBuf,
    },
    /// The CA certificate has expired; renewing under it would produce unverifiable certs.
    #[error("{ca} has expired (NotAfter {not_after}); refusing to sign with it (pass --allow-expired-ca to override)")]
    CaExpired {
        /// CA name.
        ca: String,
        /// Its NotAfter, RFC 3339.
        not_after: String,
    },
    /// The CA certificate is not valid yet (NotBefore in the future); what it signs would not
    /// verify either.
    #[error("{ca} is not yet valid (NotBefore {not_before}); refusing to sign with it (pass --allow-expired-ca to override)")]
    CaNotYetValid {
        /// CA name.
        ca: String,
        /// Its NotBefore, RFC 3339.
        not_before: String,
    },
    /// The certificate to renew is not one kubeadm would have issued for its row under the CA
    /// that is about to sign it (another issuer, or another subject, SANs or usages): renewing
    /// it would launder a foreign identity into one signed by the cluster CA.
    #[error(
        "refusing to renew {cert}: {path} {reason} (pass --allow-foreign-identity to override)"
    )]
    ForeignIdentity {
        /// The inventory name.
        cert: String,
        /// The file holding the certificate.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The file named as a CA is not a CA certificate.
    #[error("{ca} certificate is not a certificate authority")]
    NotACa {
        /// CA name.
        ca: String,
    },
    /// Another kubecert run holds the PKI lock.
    #[error("the PKI at {dir} is locked by pid {pid}")]
    Locked {
        /// The locked dir.
        dir: PathBuf,
        /// The holder, if known (0 when unknown).
        pid: u32,
    },
    /// A symlink where kubecert will not follow or replace one.
    #[error("refusing symlink at {0}")]
    Symlink(PathBuf),
    /// A planned or imported certificate failed validation.
    #[error("validation failed for {cert}")]
    Validation {
        /// The inventory name.
        cert: String,
        /// What is wrong, with its typed cause when there is one.
        #[source]
        reason: Reason,
    },
    /// Issuing (key generation, signing, encoding) failed.
    #[error("failed to issue {cert}")]
    Issue {
        /// The inventory name.
        cert: String,
        /// What failed, with its typed cause when there is one.
        #[source]
        reason: Reason,
    },
    /// A CA rotation phase asked out of order (or one whose files are an inconsistent mix):
    /// nothing is written.
    #[error("cannot {requested} {ca}: the rotation is at phase {phase} ({detail})")]
    RotationPhase {
        /// CA name.
        ca: String,
        /// What was asked (`stage`, `rollback of promote`, ...).
        requested: String,
        /// The phase derived from the files.
        phase: String,
        /// Where it stands exactly.
        detail: String,
    },
    /// Promote of a CA rotation without a key it needs (an external CA): what the operator
    /// must do is in `todo`. Nothing is written. RPC -31001, like [`Error::CaKeyMissing`].
    #[error("cannot promote {ca}: {path} is absent, and {todo}; nothing was changed")]
    PromoteKeyMissing {
        /// CA name.
        ca: &'static str,
        /// The missing key.
        path: PathBuf,
        /// What to do, with the commands.
        todo: String,
    },
    /// A CA rotation phase that must know who signed a client certificate file a node
    /// kubeconfig references (the kubelet's `kubelet-client-current.pem`) and cannot read it:
    /// missing, unreadable, or not a certificate (and key). Nothing is written.
    #[error("cannot {requested} {ca}: the client certificate file {file} referenced by {kubeconfig} cannot be read, so whether the API server accepts it after {requested} cannot be told; restore it or re-issue it (`kubecert kubelet-conf rebuild`), then run {requested} again; nothing was changed")]
    RotationClientFile {
        /// CA name.
        ca: &'static str,
        /// The phase asked (`promote`, `distrust`).
        requested: &'static str,
        /// The kubeconfig referencing the file.
        kubeconfig: PathBuf,
        /// The file (as the kubeconfig names it).
        file: PathBuf,
        /// Why it cannot be read, with its typed cause.
        #[source]
        reason: Reason,
    },
    /// A `ca renew --validity` that would make the CA expire sooner than it does now.
    #[error("refusing to renew {ca}: the new NotAfter {new_not_after} is before the current {old_not_after} (give a longer --validity)")]
    CaValidityShortened {
        /// CA name.
        ca: String,
        /// The current NotAfter, RFC 3339.
        old_not_after: String,
        /// The NotAfter the renewal would give, RFC 3339.
        new_not_after: String,
    },
    /// A bad argument (key algorithm, option combination).
    #[error("{0}")]
    InvalidArgument(String),
    /// A kubeadm configuration that cannot be read or is not valid (names the file, the
    /// document and the field).
    #[error(transparent)]
    Config(Box<ConfigError>),
    /// A time or duration argument that does not parse (an invalid argument to RPC callers).
    #[error(transparent)]
    Time(#[from] crate::timefmt::TimeError),
    /// The Kubernetes certificates API failed, or a request was denied, failed or timed out
    /// (the cause is `kubeapi::KubeApiError`).
    #[error(transparent)]
    KubeApi(Reason),
    /// `ca rotate ca --kubeconfig`: the phase's files ARE committed (they are the source of
    /// truth and are not rolled back), but the `cluster-info` ConfigMap in kube-public could
    /// not be updated through the API server. `result` is the phase's result (JSON, its
    /// `clusterInfo.updated` false), for the caller to show.
    #[error(
        "the cluster-info ConfigMap in kube-public was not updated through the API server \
         {server}: {reason}; the files of this node are committed ({what}) and are not rolled \
         back: run the same phase again with --kubeconfig to update cluster-info, or update it \
         by hand"
    )]
    ClusterInfo {
        /// The API server (URL), or what named it (`the kubeconfig <path>`).
        server: String,
        /// What failed (the server's status or the transport error; never a file's contents).
        reason: String,
        /// What was committed (`stage of ca: phase none -> staged`).
        what: String,
        /// The phase's result.
        result: Box<serde_json::Value>,
    },
    /// The journal of an interrupted run could not be replayed.
    #[error("recovery of an interrupted run failed")]
    Recovery {
        /// Which file and what is wrong with it (never its contents).
        #[source]
        reason: Reason,
    },
    /// A path param the caller may not choose: the agent serves only its configured roots.
    #[error("{param}: {given} is not allowed for this caller: {}", match configured {
        Some(c) => format!("the agent serves {}; omit {param} or pass that", c.display()),
        None => format!("the agent has no {param} configured, so only root may pass one"),
    })]
    PathNotAllowed {
        /// The params field.
        param: String,
        /// What the caller passed.
        given: PathBuf,
        /// The agent's configured value (None: none configured).
        configured: Option<PathBuf>,
    },
    /// A backup dir or manifest that restore will not use.
    #[error("backup {path} refused: {reason}")]
    BackupRefused {
        /// The backup dir (or the file in it that is wrong).
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// An input file that must be a regular file is something else (a FIFO, a device, a
    /// directory, a socket): refused before reading.
    #[error("{path}: not a regular file ({kind})")]
    NotRegularFile {
        /// The file.
        path: PathBuf,
        /// What it is (`a FIFO`, `a character device`, `a directory`, ...).
        kind: &'static str,
    },
    /// `check` found no file of a kubeadm PKI at all: a wrong `--cert-dir` /
    /// `--kubeconfig-dir` rather than a node whose certificates are all missing.
    #[error("no kubeadm PKI found: none of {pki_files} in {cert_dir} nor {kubeconfig_files} in {kubeconfig_dir}")]
    NoPki {
        /// The PKI dir searched.
        cert_dir: PathBuf,
        /// The files looked for there, comma-separated.
        pki_files: String,
        /// The kubeconfig dir searched.
        kubeconfig_dir: PathBuf,
        /// The kubeconfigs looked for there, comma-separated.
        kubeconfig_files: String,
    },
    /// A file of kubecert's own store (the journal of a run, a backup manifest) could not be
    /// encoded or does not read back: the store refuses to guess.
    #[error("{path}: {reason}")]
    StoreCorrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong (never its contents).
        reason: String,
    },
    /// The async runtime a call needs could not be started.
    #[error("tokio runtime")]
    Runtime {
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// An input file is larger than [`crate::pki::fsread::MAX_FILE_BYTES`].
    #[error("{path}: larger than {limit} bytes, the limit for a kubeadm file")]
    FileTooLarge {
        /// The file.
        path: PathBuf,
        /// The limit.
        limit: u64,
    },
    /// A certificate's NotBefore lies ahead of the local clock: the clock is wrong (or was
    /// when the certificate was made), and an expiry judged with it would be too.
    #[error("clock skew: {path} is not valid before {not_before}, but the local clock says {now} ({ahead} s earlier); fix the clock (NTP) first: this is not an expiry")]
    ClockSkew {
        /// The certificate file with the newest NotBefore.
        path: PathBuf,
        /// Its NotBefore, RFC 3339.
        not_before: String,
        /// The local clock, RFC 3339.
        now: String,
        /// How many seconds the NotBefore lies ahead.
        ahead: i64,
    },
}

/// A cause of any type, kept typed (for `downcast_ref`) behind a box.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What is wrong: a message, a typed cause, or a message and the cause under it.
///
/// With a message, it prints the message and its `source` is the cause, so [`report`] prints
/// `message: cause: …`. With a cause only it is transparent (prints the cause, its `source`
/// is the cause's source): no link of an error chain is ever empty or repeated.
#[derive(Debug)]
pub struct Reason {
    what: Option<String>,
    cause: Option<BoxError>,
}

impl Reason {
    /// A message without a cause.
    pub fn msg(what: impl Into<String>) -> Self {
        Reason {
            what: Some(what.into()),
            cause: None,
        }
    }

    /// A typed cause, printed as itself.
    pub fn of(cause: impl Into<BoxError>) -> Self {
        Reason {
            what: None,
            cause: Some(cause.into()),
        }
    }

    /// A message and the typed cause under it (`what: cause`).
    pub fn with(what: impl Into<String>, cause: impl Into<BoxError>) -> Self {
        Reason {
            what: Some(what.into()),
            cause: Some(cause.into()),
        }
    }

    /// The typed cause, if any.
    pub fn cause(&self) -> Option<&(dyn std::error::Error + Send + Sync + 'static)> {
        self.cause.as_deref()
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.what, &self.cause) {
            (Some(w), _) => f.write_str(w),
            (None, Some(c)) => c.fmt(f),
            (None, None) => Ok(()),
        }
    }
}

impl std::error::Error for Reason {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match (&self.what, &self.cause) {
            (Some(_), Some(c)) => Some(c.as_ref()),
            (None, Some(c)) => c.source(),
            _ => None,
        }
    }
}

impl From<&str> for Reason {
    fn from(s: &str) -> Self {
        Reason::msg(s)
    }
}

impl From<String> for Reason {
    fn from(s: String) -> Self {
        Reason::msg(s)
    }
}

/// A JSON document that does not parse, kept typed but printed as [`describe_json`] prints
/// it: serde_json's own message may quote the input, so it is never shown.
#[derive(Debug)]
pub struct JsonError(pub serde_json::Error);

impl std::fmt::Display for JsonError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&describe_json(&self.0))
    }
}

impl std::error::Error for JsonError {}

/// A YAML document that does not parse, printed as [`describe_yaml`] prints it (never any
/// of the input).
#[derive(Debug)]
pub struct YamlError(pub serde_saphyr::Error);

impl std::fmt::Display for YamlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&describe_yaml(&self.0))
    }
}

impl std::error::Error for YamlError {}

impl Error {
    /// Wraps an io::Error with its path.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// The inventory name this error is about, when it has one.
    pub fn cert(&self) -> Option<&str> {
        match self {
            Error::UnknownCertificate(n) => Some(n),
            Error::CaMissing { ca, .. }
            | Error::CaKeyMissing { ca, .. }
            | Error::CaExpired { ca, .. }
            | Error::CaNotYetValid { ca, .. }
            | Error::NotACa { ca }
            | Error::RotationPhase { ca, .. }
            | Error::CaValidityShortened { ca, .. } => Some(ca),
            Error::RotationClientFile { ca, .. } | Error::PromoteKeyMissing { ca, .. } => Some(ca),
            Error::Validation { cert, .. }
            | Error::Issue { cert, .. }
            | Error::ForeignIdentity { cert, .. } => Some(cert),
            _ => None,
        }
    }

    /// The path this error is about, when it has one.
    pub fn path(&self) -> Option<&std::path::Path> {
        match self {
            Error::Io { path, .. }
            | Error::Pem { path, .. }
            | Error::Kubeconfig { path, .. }
            | Error::CaKeyMissing { path, .. }
            | Error::NotRegularFile { path, .. }
            | Error::FileTooLarge { path, .. }
            | Error::ClockSkew { path, .. }
            | Error::ForeignIdentity { path, .. }
            | Error::Symlink(path)
            | Error::StoreCorrupt { path, .. }
            | Error::RotationClientFile { file: path, .. }
            | Error::PromoteKeyMissing { path, .. }
            | Error::BackupRefused { path, .. } => Some(path),
            Error::PathNotAllowed { given, .. } => Some(given),
            Error::CaMissing { dir, .. } | Error::Locked { dir, .. } => Some(dir),
            _ => None,
        }
    }

    /// Whether reading the file failed (permissions, a refused symlink, not a regular file,
    /// over the size limit), as opposed to its contents being wrong.
    pub fn is_unreadable(&self) -> bool {
        matches!(
            self,
            Error::Io { .. }
                | Error::Symlink(_)
                | Error::NotRegularFile { .. }
                | Error::FileTooLarge { .. }
        )
    }
}

/// An error and its causes as one line, `outer: cause: cause`, scrubbed: the one way an error
/// becomes text for a result, a log line or stderr (Display of a variant never repeats its
/// `#[source]`, so each cause appears once).
pub fn report(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        let t = c.to_string();
        if !t.is_empty() {
            s.push_str(": ");
            s.push_str(&t);
        }
        src = c.source();
    }
    scrub(&s)
}

/// Makes text safe to put in a result, a response, a log line or stderr. Errors about a file
/// never carry its bytes in the first place (they say which file and what is wrong); this is
/// the last line of defence, applied to all of them:
///
/// - anything from `-----BEGIN` on to the next `-----END …-----` (or to the end of the line)
///   is cut;
/// - the words `PRIVATE KEY` never appear (`private key` instead);
/// - a run of 40 or more base64 characters that mixes upper case, lower case and digits (a
///   line of PEM or of `*-data` in a kubeconfig) is replaced by `[data removed]`. Hex (serial
///   numbers, digests) and paths (`.`, `-`, `_` break runs) are left alone.
pub fn scrub(text: &str) -> String {
    const CUT: &str = "[PEM data removed]";
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("-----BEGIN") {
        out.push_str(&rest[..i]);
        out.push_str(CUT);
        let after = &rest[i + "-----BEGIN".len()..];
        rest = match after.find("-----END") {
            Some(j) => {
                let tail = &after[j + "-----END".len()..];
                match tail.find("-----") {
                    Some(k) => &tail[k + "-----".len()..],
                    None => "",
                }
            }
            // No END: cut to the end of the line (base64 lines after it are caught below).
            None => after.find('\n').map_or("", |j| &after[j..]),
        };
    }
    out.push_str(rest);
    let out = scrub_base64_runs(&out);
    if out.contains("PRIVATE KEY") {
        out.replace("PRIVATE KEY", "private key")
    } else {
        out
    }
}

fn scrub_base64_runs(text: &str) -> String {
    const MIN: usize = 40;
    let is_b64 = |c: char| c.is_ascii_alphanumeric() || c == '+' || c == '/' || c == '=';
    let mut out = String::with_capacity(text.len());
    let mut run_start: Option<usize> = None;
    let flush = |out: &mut String, run: &str| {
        let mixed = run.chars().any(|c| c.is_ascii_uppercase())
            && run.chars().any(|c| c.is_ascii_lowercase())
            && run.chars().any(|c| c.is_ascii_digit());
        if run.len() >= MIN && mixed {
            out.push_str("[data removed]");
        } else {
            out.push_str(run);
        }
    };
    for (i, c) in text.char_indices() {
        if is_b64(c) {
            if run_start.is_none() {
                run_start = Some(i);
            }
        } else {
            if let Some(s) = run_start.take() {
                flush(&mut out, &text[s..i]);
            }
            out.push(c);
        }
    }
    if let Some(s) = run_start {
        flush(&mut out, &text[s..]);
    }
    out
}

/// What is wrong with a YAML document, without any of its text: the generic kind and where.
pub fn describe_yaml(e: &serde_saphyr::Error) -> String {
    use serde_saphyr::Error as Y;
    let kind = match e {
        Y::Eof { .. } => "unexpected end of input",
        Y::MultipleDocuments { .. } => "more than one document",
        Y::InvalidUtf8Input => "not UTF-8",
        Y::AliasReplayCounterOverflow { .. }
        | Y::AliasReplayLimitExceeded { .. }
        | Y::AliasExpansionLimitExceeded { .. }
        | Y::AliasReplayStackDepthExceeded { .. } => "too many aliases",
        _ => "syntax error",
    };
    match e.location() {
        Some(l) if l.line() > 0 => format!(
            "not valid YAML ({kind} at line {}, column {})",
            l.line(),
            l.column()
        ),
        _ => format!("not valid YAML ({kind})"),
    }
}

/// What is wrong with a JSON document, without any of its text: the category and where.
pub fn describe_json(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let kind = match e.classify() {
        Category::Io => "read error",
        Category::Syntax => "syntax error",
        Category::Data => "data error",
        Category::Eof => "unexpected end of input",
    };
    if e.line() > 0 {
        format!(
            "not valid JSON ({kind} at line {}, column {})",
            e.line(),
            e.column()
        )
    } else {
        format!("not valid JSON ({kind})")
    }
}

/// What went wrong reading a kubeadm configuration. Every variant names where it came from
/// (the file, or the `kubeadm-config` ConfigMap).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read (missing, a symlink, not a regular file, too large).
    #[error("kubeadm config {path}: cannot be read")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: Box<crate::Error>,
    },
    /// Not YAML.
    #[error("{origin}: document {doc}")]
    Yaml {
        /// Where the configuration came from.
        origin: ConfigOrigin,
        /// The document, 1-based (0: the stream as a whole).
        doc: usize,
        /// The cause, without any of the input.
        #[source]
        source: YamlError,
    },
    /// A document without apiVersion or kind, or not a mapping.
    #[error("{origin}: document {doc} has no {what}")]
    NoTypeMeta {
        /// Where the configuration came from.
        origin: ConfigOrigin,
        /// The document, 1-based.
        doc: usize,
        /// `apiVersion`, `kind` or `mapping`.
        what: &'static str,
    },
    /// A kubeadm document of a version kubecert does not read, or a document of an API
    /// group that has no place in a kubeadm config file.
    #[error("{origin}: document {doc} ({kind}): apiVersion {api_version} is not supported (kubecert reads kubeadm.k8s.io/v1beta3, kubeadm.k8s.io/v1beta4)")]
    ApiVersion {
        /// Where the configuration came from.
        origin: ConfigOrigin,
        /// The document, 1-based.
        doc: usize,
        /// Its kind.
        kind: String,
        /// Its apiVersion.
        api_version: String,
    },
    /// A kind kubeadm does not have.
    #[error("{origin}: document {doc}: kind {kind} is not a kind of {api_version} (InitConfiguration, ClusterConfiguration, JoinConfiguration{})", if api_version.ends_with("v1beta4") { ", ResetConfiguration, UpgradeConfiguration" } else { "" })]
    Kind {
        /// Where the configuration came from.
        origin: ConfigOrigin,
        /// The document, 1-based.
        doc: usize,
        /// The kind.
        kind: String,
        /// Its apiVersion.
        api_version: String,
    },
    /// A field the kind does not have.
    #[error("{origin}: document {doc} ({kind}, {api_version}): unknown field {field}")]
    UnknownField {
        /// Where the configuration came from.
        origin: ConfigOrigin,
        /// The document, 1-based.
        doc: usize,
        /// Its kind.
        kind: String,
        /// Its apiVersion.
        api_version: String,
        /// The dotted path of the field.
        field: String,
    },
    /// A field of the wrong type or with a value kubeadm refuses.
    #[error("{origin}: document {doc} ({kind}, {api_version}): {field} must be {expected}")]
    Invalid {
        /// Where the configuration came from.
        origin: ConfigOrigin,
        /// The document, 1-based.
        doc: usize,
        /// Its kind.
        kind: String,
        /// Its apiVersion.
        api_version: String,
        /// The dotted path of the field.
        field: String,
        /// What it must be.
        expected: String,
    },
    /// The same kind twice, or InitConfiguration and JoinConfiguration together.
    #[error("{origin}: document {doc} ({kind}): {why}")]
    Conflict {
        /// Where the configuration came from.
        origin: ConfigOrigin,
        /// The document, 1-based.
        doc: usize,
        /// Its kind.
        kind: String,
        /// What conflicts.
        why: String,
    },
    /// Neither an InitConfiguration/JoinConfiguration nor a ClusterConfiguration.
    #[error("{origin}: no InitConfiguration, JoinConfiguration or ClusterConfiguration document")]
    Empty {
        /// Where the configuration came from.
        origin: ConfigOrigin,
    },
    /// kubeadm's SAN rule of a certificate cannot be computed from the configuration
    /// (`renew --reconcile-sans`).
    #[error("{origin}: the SANs kubeadm issues for {cert} cannot be computed")]
    SanRule {
        /// Where the configuration came from.
        origin: ConfigOrigin,
        /// The inventory name.
        cert: String,
        /// Why.
        #[source]
        source: SanRuleError,
    },
    /// InitConfiguration and ClusterConfiguration of different versions.
    #[error(
        "{origin}: documents of both {first} and {second}; kubeadm reads one version per file"
    )]
    MixedVersions {
        /// Where the configuration came from.
        origin: ConfigOrigin,
        /// The first version.
        first: String,
        /// The other.
        second: String,
    },
    /// The `kubeadm-config` ConfigMap could not be read through the API server (missing,
    /// without its `ClusterConfiguration` key, forbidden, the API server unreachable, the
    /// kubeconfig unusable).
    #[error("configmap kube-system/kubeadm-config (kubeconfig {kubeconfig}{}): {problem}", server.as_deref().map(|s| format!(", API server {s}")).unwrap_or_default())]
    ConfigMap {
        /// The kubeconfig used.
        kubeconfig: PathBuf,
        /// The API server it names, when it could be read.
        server: Option<String>,
        /// What went wrong.
        problem: ConfigMapProblem,
    },
    /// The ConfigMap source was asked for but this build cannot reach an API server.
    #[error("configmap kube-system/kubeadm-config (kubeconfig {kubeconfig}): kubecert was built without the k8s feature (not compiled in); give the kubeadm config file with --config instead")]
    NotCompiledIn {
        /// The kubeconfig given.
        kubeconfig: PathBuf,
    },
}

/// Where a kubeadm configuration was read from (named by every [`ConfigError`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigOrigin {
    /// A kubeadm config file (`--config`).
    File(PathBuf),
    /// The `ClusterConfiguration` key of the ConfigMap `kube-system/kubeadm-config`
    /// (`--kubeconfig`).
    ConfigMap,
}

impl ConfigOrigin {
    /// The short label of results (`drift.config`, `config expected`'s `config`): the file's
    /// path, or `configmap kube-system/kubeadm-config`.
    pub fn label(&self) -> String {
        match self {
            ConfigOrigin::File(p) => p.display().to_string(),
            ConfigOrigin::ConfigMap => "configmap kube-system/kubeadm-config".to_string(),
        }
    }
}

impl std::fmt::Display for ConfigOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConfigOrigin::File(p) => write!(f, "kubeadm config {}", p.display()),
            ConfigOrigin::ConfigMap => {
                f.write_str("configmap kube-system/kubeadm-config (key ClusterConfiguration)")
            }
        }
    }
}

/// Why the `kubeadm-config` ConfigMap could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigMapProblem {
    /// The kubeconfig cannot be read or used.
    #[error("the kubeconfig cannot be used: {0}")]
    Kubeconfig(String),
    /// The API server answered 404 for the ConfigMap.
    #[error("not found on the API server (is this a kubeadm cluster? `kubeadm init phase upload-config kubeadm` creates it)")]
    NotFound,
    /// The ConfigMap has no `data.ClusterConfiguration`.
    #[error("it has no data.ClusterConfiguration")]
    NoKey,
    /// Any other failure of the GET (unreachable, forbidden, timeout), as the client saw it.
    #[error("reading it failed: {0}")]
    Api(String),
}

impl From<Box<ConfigError>> for Error {
    fn from(e: Box<ConfigError>) -> Self {
        Error::Config(e)
    }
}

impl From<ConfigError> for Error {
    fn from(e: ConfigError) -> Self {
        Error::Config(Box::new(e))
    }
}

/// Library result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_cause_is_printed_once() {
        let e = Error::io(
            "/etc/kubernetes/admin.conf",
            std::io::Error::from_raw_os_error(13),
        );
        assert_eq!(e.to_string(), "/etc/kubernetes/admin.conf");
        assert_eq!(
            report(&e),
            "/etc/kubernetes/admin.conf: Permission denied (os error 13)"
        );
        let e = Error::Pem {
            path: "/p/ca.crt".into(),
            source: PemError::NoCertificate,
        };
        assert_eq!(report(&e), "/p/ca.crt: no CERTIFICATE block found");
        // Through anyhow's chain printing (what the CLI does), once as well.
        let a = anyhow::Error::new(Error::io("/x", std::io::Error::from_raw_os_error(2)));
        assert_eq!(
            format!("{a:#}"),
            "/x: No such file or directory (os error 2)"
        );
    }

    #[test]
    fn scrub_cuts_pem_key_lines_and_base64_runs() {
        let key = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun\nVTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u+qKhbwKfBstIs+bMY2Zkp18gnTxK\n-----END RSA PRIVATE KEY-----\n";
        let s = scrub(&format!("bad: {key}after"));
        assert_eq!(s, "bad: [PEM data removed]\nafter");
        // Lines of a key without its BEGIN line (a parser excerpt from the middle).
        let s = scrub("7 |     MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun\n");
        assert_eq!(s, "7 |     [data removed]\n");
        // BEGIN without END: cut to the end of that line only.
        assert_eq!(
            scrub("a -----BEGIN CERTIFICATE\nnext line"),
            "a [PEM data removed]\nnext line"
        );
        assert_eq!(
            scrub("no PRIVATE KEY block found"),
            "no private key block found"
        );
        // Left alone: paths, hex serials and digests, ordinary messages.
        for keep in [
            "/tmp/.tmpAb3dEf/k8s/pki/apiserver-kubelet-client.crt: Permission denied (os error 13)",
            "serial 3f1c2a9b8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a3928170",
            "expired at 2025-01-01T00:00:00Z",
        ] {
            assert_eq!(scrub(keep), keep);
        }
    }

    #[test]
    fn yaml_and_json_errors_carry_no_input() {
        let text = "a: 1\nb: \"-----BEGIN RSA PRIVATE KEY-----\n  MIIEowIBAAKCAQEAsecret\n";
        let e = serde_saphyr::from_str::<serde_json::Value>(text).unwrap_err();
        let d = describe_yaml(&e);
        assert!(d.starts_with("not valid YAML ("), "{d}");
        assert!(!d.contains("MIIE") && !d.contains("BEGIN"), "{d}");
        let e = serde_json::from_str::<serde_json::Value>("{\"k\": MIIEsecret}").unwrap_err();
        assert_eq!(
            describe_json(&e),
            "not valid JSON (syntax error at line 1, column 7)"
        );
    }

    #[test]
    fn pem_errors_carry_no_labels_or_bytes() {
        let e = ::pem::parse_many("-----BEGIN SECRET-A-----\nAAAA\n-----END SECRET-B-----\n")
            .unwrap_err();
        let p = pem_error(&e).to_string();
        assert_eq!(p, "malformed PEM: BEGIN and END labels differ");
    }

    #[test]
    fn reasons_keep_their_cause_and_print_each_link_once() {
        let io = || std::io::Error::from_raw_os_error(13);
        let e = Error::Validation {
            cert: "apiserver".into(),
            reason: Reason::msg("not signed by ca"),
        };
        assert_eq!(
            report(&e),
            "validation failed for apiserver: not signed by ca"
        );
        let e = Error::Issue {
            cert: "apiserver".into(),
            reason: Reason::of(Error::io("/p/k", io())),
        };
        assert_eq!(
            report(&e),
            "failed to issue apiserver: /p/k: Permission denied (os error 13)"
        );
        // Through anyhow (the CLI): the same text, no empty link.
        let a = anyhow::Error::new(e);
        assert_eq!(
            format!("{a:#}"),
            "failed to issue apiserver: /p/k: Permission denied (os error 13)"
        );
        let e = Error::Recovery {
            reason: Reason::with(
                "/p/.kubecert-journal",
                JsonError(serde_json::from_str::<serde_json::Value>("{x").unwrap_err()),
            ),
        };
        assert_eq!(
            report(&e),
            "recovery of an interrupted run failed: /p/.kubecert-journal: not valid JSON (syntax error at line 1, column 2)"
        );
        // The cause is still typed.
        let Error::Recovery { reason } = &e else {
            unreachable!()
        };
        assert!(reason
            .cause()
            .is_some_and(|c| c.downcast_ref::<JsonError>().is_some()));
        let e = Error::KubeApi(Reason::of(Error::io("/k", io())));
        assert_eq!(report(&e), "/k: Permission denied (os error 13)");
    }
}

/// Why the SANs of a rule cannot be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SanRuleError {
    /// No advertise address in the configuration nor in the apiserver's manifest.
    #[error("the advertise address is unknown (no localAPIEndpoint.advertiseAddress in the configuration and no --advertise-address in the kube-apiserver manifest)")]
    NoAdvertiseAddress,
    /// `serviceSubnet` is not a CIDR list (kubeadm: "unable to get first IP address from the
    /// given CIDR").
    #[error("networking.serviceSubnet is not a CIDR (kubeadm: unable to get first IP address from the given CIDR)")]
    ServiceSubnet,
    /// `controlPlaneEndpoint` is not `host[:port]` (kubeadm: "error parsing cluster
    /// controlPlaneEndpoint").
    #[error("controlPlaneEndpoint is not host[:port] with an IP or a DNS name as host")]
    ControlPlaneEndpoint,
}
