//! Reading and rewriting kubeconfig files: the current context's user client cert (embedded
//! `client-certificate-data` or a `client-certificate` file reference) and cluster CA.
//!
//! Rewrites are textual: only the base64 values of the current context's user (and the
//! cluster's `certificate-authority-data`) are replaced, so every other byte of the file —
//! comments, order, other users — stays as it was. The result is parsed again and checked.

use std::path::{Path, PathBuf};

use base64::Engine;
use serde_json::Value;

use crate::error::{Error, Result};

pub mod block;

/// Where a credential of the kubeconfig comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Embedded base64 (`*-data`). Holds the base64 text exactly as in the file.
    Embedded(String),
    /// A file reference, resolved against the kubeconfig's directory.
    File(PathBuf),
    /// Not set.
    Absent,
}

/// What kubecert reads from a kubeconfig.
#[derive(Debug, Clone)]
pub struct Kubeconfig {
    /// The file.
    pub path: PathBuf,
    /// The raw text.
    pub text: String,
    /// `current-context`.
    pub current_context: String,
    /// The current context's user name.
    pub user: String,
    /// The current context's cluster name.
    pub cluster: String,
    /// The cluster's server URL.
    pub server: Option<String>,
    /// Client certificate source.
    pub client_cert: Source,
    /// Client key source.
    pub client_key: Source,
    /// Cluster CA source.
    pub ca: Source,
    /// The parsed document.
    doc: Value,
}

fn invalid(path: &Path, reason: impl Into<String>) -> Error {
    Error::Kubeconfig {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// The document of a kubeconfig text: the block reader for the shape kubeadm and kubectl
/// write, the full YAML parser for anything else (the same value either way: `block`'s
/// tests). `label` names the document in errors, which never quote it.
fn parse_doc(label: &Path, text: &str) -> Result<Value> {
    match block::parse(text) {
        Some(doc) => Ok(doc),
        None => serde_saphyr::from_str(text)
            .map_err(|e| invalid(label, crate::error::describe_yaml(&e))),
    }
}

fn find_named<'a>(doc: &'a Value, list: &str, name: &str, inner: &str) -> Option<&'a Value> {
    doc.get(list)?
        .as_array()?
        .iter()
        .find(|e| e.get("name").and_then(Value::as_str) == Some(name))?
        .get(inner)
}

fn source(dir: &Path, obj: &Value, data_key: &str, file_key: &str) -> Source {
    if let Some(s) = obj.get(data_key).and_then(Value::as_str) {
        if !s.is_empty() {
            return Source::Embedded(s.to_string());
        }
    }
    if let Some(p) = obj.get(file_key).and_then(Value::as_str) {
        if !p.is_empty() {
            let p = Path::new(p);
            return Source::File(if p.is_absolute() {
                p.to_path_buf()
            } else {
                dir.join(p)
            });
        }
    }
    Source::Absent
}

/// Decodes a `*-data` value (base64 of PEM). The error says what is wrong, never which
/// bytes.
pub fn decode_data(path: &Path, b64: &str) -> Result<Vec<u8>> {
    // The same filter on bytes when the value is ASCII (every kubeadm value is): `char`-wise
    // collection into a String was 0.5 M instructions of a `check` (callgrind). A value
    // without whitespace (kubeadm writes one line) is decoded in place: the byte-wise copy
    // was another 0.2 M.
    let cleaned: Vec<u8>;
    let text: &[u8] = if b64.is_ascii() {
        let ws = |b: &u8| char::from(*b).is_whitespace();
        // Every ASCII whitespace character is at most b' ': one comparison per byte (which
        // the compiler vectorizes) decides the common case; `char::is_whitespace` per byte
        // was 0.2 M instructions of a check.
        if !b64.bytes().any(|b| b <= b' ') {
            b64.as_bytes()
        } else {
            cleaned = b64.bytes().filter(|b| !ws(b)).collect();
            &cleaned
        }
    } else {
        cleaned = b64
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect::<String>()
            .into_bytes();
        &cleaned
    };
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| {
            let what = match e {
                base64::DecodeError::InvalidByte(at, _) => {
                    format!("an invalid byte at offset {at}")
                }
                base64::DecodeError::InvalidLength(_) => "an invalid length".into(),
                base64::DecodeError::InvalidLastSymbol(at, _) => {
                    format!("an invalid last symbol at offset {at}")
                }
                base64::DecodeError::InvalidPadding => "invalid padding".into(),
            };
            invalid(path, format!("invalid base64 data ({what})"))
        })
}

/// The first two entries of `list` with the same `name` (1-based), if any: client-go refuses
/// such a file ("duplicate name ... in list"), so kubecert does too.
fn duplicate_names(doc: &Value, list: &str) -> Option<(usize, usize)> {
    let items = doc.get(list)?.as_array()?;
    let names: Vec<Option<&str>> = items
        .iter()
        .map(|e| e.get("name").and_then(Value::as_str))
        .collect();
    names.iter().enumerate().find_map(|(j, n)| {
        let n = (*n)?;
        names[..j]
            .iter()
            .position(|m| *m == Some(n))
            .map(|i| (i + 1, j + 1))
    })
}

/// A kubeconfig as `kubeadm kubeconfig user` writes one (cluster `cluster` with `server` and
/// embedded CA data `ca_data` (base64, as found in another kubeconfig or from
/// [`encode_data`]), user and context `user` / `user@cluster`), whose client certificate and
/// key both reference `file` (`client-certificate` / `client-key`) — the shape kubeadm's
/// `kubelet-finalize` phase leaves kubelet.conf in.
pub fn client_file_kubeconfig(
    server: &str,
    cluster: &str,
    user: &str,
    ca_data: &str,
    file: &Path,
) -> String {
    let f = file.display();
    format!(
        "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: {ca_data}\n    server: {server}\n  name: {cluster}\ncontexts:\n- context:\n    cluster: {cluster}\n    user: {user}\n  name: {user}@{cluster}\ncurrent-context: {user}@{cluster}\nkind: Config\npreferences: {{}}\nusers:\n- name: {user}\n  user:\n    client-certificate: {f}\n    client-key: {f}\n"
    )
}

/// Sets the embedded `certificate-authority-data` of every cluster of a kubeconfig that
/// need not have a context or user (kubeadm's `cluster-info` kubeconfig in kube-public:
/// one cluster, no users) to `ca_pem`, changing nothing else of the text: only the value on
/// that line is replaced, and the result is parsed back and compared with the original with
/// only those values swapped. `None` when every cluster already holds exactly `ca_pem`.
/// `label` names the document in errors (never a byte of it).
pub fn set_cluster_ca_data(label: &Path, text: &str, ca_pem: &[u8]) -> Result<Option<String>> {
    let doc = parse_doc(label, text)?;
    let clusters = doc
        .get("clusters")
        .and_then(Value::as_array)
        .filter(|c| !c.is_empty())
        .ok_or_else(|| invalid(label, "no clusters"))?;
    let new = encode_data(ca_pem);
    let mut olds = Vec::new();
    for (i, c) in clusters.iter().enumerate() {
        let old = c
            .get("cluster")
            .and_then(|c| c.get("certificate-authority-data"))
            .and_then(Value::as_str)
            .ok_or_else(|| {
                invalid(
                    label,
                    format!("clusters entry {i} has no certificate-authority-data"),
                )
            })?;
        olds.push(old.to_string());
    }
    if olds.iter().all(|o| *o == new) {
        return Ok(None);
    }
    let mut out = text.to_string();
    for old in olds.iter().filter(|o| **o != new) {
        // Each replacement removes one hit of `old`; the next one is again the first.
        if out.contains(old.as_str()) {
            out = replace_value(label, &out, "certificate-authority-data", old, &new, 0)?;
        }
    }
    let mut want = doc.clone();
    if let Some(cs) = want.get_mut("clusters").and_then(Value::as_array_mut) {
        for c in cs {
            if let Some(cl) = c.get_mut("cluster").and_then(Value::as_object_mut) {
                cl.insert(
                    "certificate-authority-data".into(),
                    Value::String(new.clone()),
                );
            }
        }
    }
    let got = parse_doc(label, &out)?;
    if got != want {
        return Err(invalid(
            label,
            "rewriting certificate-authority-data did not produce the expected document",
        ));
    }
    Ok(Some(out))
}

/// Encodes PEM bytes as a `*-data` value.
pub fn encode_data(pem: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(pem)
}

impl Kubeconfig {
    /// Parses kubeconfig text.
    pub fn parse(path: &Path, text: String) -> Result<Self> {
        // Errors say what is wrong and where, never a byte of the file (nor a name from it).
        let doc = parse_doc(path, &text)?;
        if !doc.is_object() {
            return Err(invalid(
                path,
                "not a kubeconfig (top level is not a mapping)",
            ));
        }
        for list in ["clusters", "contexts", "users"] {
            if let Some((i, j)) = duplicate_names(&doc, list) {
                return Err(invalid(
                    path,
                    format!(
                        "{list} entries {i} and {j} have the same name (kubectl refuses such a file)"
                    ),
                ));
            }
        }
        let current_context = doc
            .get("current-context")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| invalid(path, "no current-context"))?
            .to_string();
        let ctx = find_named(&doc, "contexts", &current_context, "context")
            .ok_or_else(|| invalid(path, "current-context names no entry of contexts"))?;
        let cluster = ctx
            .get("cluster")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid(path, "the current context has no cluster"))?
            .to_string();
        let user = ctx
            .get("user")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid(path, "the current context has no user"))?
            .to_string();
        let cl = find_named(&doc, "clusters", &cluster, "cluster")
            .ok_or_else(|| invalid(path, "the current context's cluster is not in clusters"))?;
        let us = find_named(&doc, "users", &user, "user")
            .ok_or_else(|| invalid(path, "the current context's user is not in users"))?;
        let dir = path.parent().unwrap_or(Path::new("."));
        Ok(Kubeconfig {
            path: path.to_path_buf(),
            server: cl.get("server").and_then(Value::as_str).map(str::to_string),
            client_cert: source(dir, us, "client-certificate-data", "client-certificate"),
            client_key: source(dir, us, "client-key-data", "client-key"),
            ca: source(
                dir,
                cl,
                "certificate-authority-data",
                "certificate-authority",
            ),
            text,
            doc,
            current_context,
            user,
            cluster,
        })
    }

    /// Reads (through [`crate::pki::fsread::read`]: no symlink, a regular file, bounded) and
    /// parses a kubeconfig file.
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = crate::pki::fsread::read(path)?;
        let text = String::from_utf8(bytes).map_err(|_| invalid(path, "not UTF-8"))?;
        Self::parse(path, text)
    }

    /// The client certificate PEM bytes (embedded, or read from the referenced file).
    pub fn client_cert_pem(&self) -> Result<Vec<u8>> {
        match &self.client_cert {
            Source::Embedded(b) => decode_data(&self.path, b),
            Source::File(p) => crate::pki::fsread::read_link_in_dir(p),
            Source::Absent => Err(invalid(
                &self.path,
                "the current context's user has no client certificate",
            )),
        }
    }

    /// The client key PEM bytes (embedded, or read from the referenced file).
    pub fn client_key_pem(&self) -> Result<Vec<u8>> {
        match &self.client_key {
            Source::Embedded(b) => decode_data(&self.path, b),
            Source::File(p) => crate::pki::fsread::read_link_in_dir(p),
            Source::Absent => Err(invalid(
                &self.path,
                "the current context's user has no client key",
            )),
        }
    }

    /// How many entries of `list` before the one named `name` carry `key` with value `val`:
    /// the index of the current entry's line among identical `key: val` lines.
    fn occurrence(&self, list: &str, inner: &str, name: &str, key: &str, val: &str) -> usize {
        let Some(items) = self.doc.get(list).and_then(Value::as_array) else {
            return 0;
        };
        items
            .iter()
            .take_while(|e| e.get("name").and_then(Value::as_str) != Some(name))
            .filter(|e| {
                e.get(inner)
                    .and_then(|i| i.get(key))
                    .and_then(Value::as_str)
                    == Some(val)
            })
            .count()
    }

    /// Returns the text with the current user's embedded client cert and key replaced by
    /// `client-certificate`/`client-key` references to `file` (kubeadm#1753 repair).
    pub fn rewrite_user_to_file(&self, file: &Path) -> Result<String> {
        let (Source::Embedded(c), Source::Embedded(k)) = (&self.client_cert, &self.client_key)
        else {
            return Err(invalid(
                &self.path,
                "the current user does not embed both a client certificate and key",
            ));
        };
        let f = file.display().to_string();
        let nth = self.occurrence("users", "user", &self.user, "client-certificate-data", c);
        let text = replace_entry(
            &self.path,
            &self.text,
            "client-certificate-data",
            c,
            "client-certificate",
            &f,
            nth,
        )?;
        let nth = self.occurrence("users", "user", &self.user, "client-key-data", k);
        let text = replace_entry(
            &self.path,
            &text,
            "client-key-data",
            k,
            "client-key",
            &f,
            nth,
        )?;
        let after = Kubeconfig::parse(&self.path, text.clone())?;
        if after.client_cert != Source::File(file.to_path_buf())
            || after.client_key != Source::File(file.to_path_buf())
        {
            return Err(invalid(
                &self.path,
                "rewriting the user did not produce the expected document",
            ));
        }
        Ok(text)
    }

    /// Returns the text with the current user's embedded client cert/key replaced and the
    /// cluster's embedded CA replaced (when `ca_pem` is given and the CA is embedded).
    /// Only embedded sources are rewritten; file references are the caller's business.
    pub fn rewrite_embedded(
        &self,
        cert_pem: Option<&[u8]>,
        key_pem: Option<&[u8]>,
        ca_pem: Option<&[u8]>,
    ) -> Result<String> {
        let mut text = self.text.clone();
        let mut expect: Vec<(&'static str, String)> = Vec::new();
        if let (Some(new), Source::Embedded(old)) = (cert_pem, &self.client_cert) {
            let new = encode_data(new);
            let nth = self.occurrence("users", "user", &self.user, "client-certificate-data", old);
            text = replace_value(&self.path, &text, "client-certificate-data", old, &new, nth)?;
            expect.push(("client-certificate-data", new));
        }
        if let (Some(new), Source::Embedded(old)) = (key_pem, &self.client_key) {
            let new = encode_data(new);
            let nth = self.occurrence("users", "user", &self.user, "client-key-data", old);
            text = replace_value(&self.path, &text, "client-key-data", old, &new, nth)?;
            expect.push(("client-key-data", new));
        }
        if let (Some(new), Source::Embedded(old)) = (ca_pem, &self.ca) {
            let new = encode_data(new);
            if *old != new {
                let nth = self.occurrence(
                    "clusters",
                    "cluster",
                    &self.cluster,
                    "certificate-authority-data",
                    old,
                );
                text = replace_value(
                    &self.path,
                    &text,
                    "certificate-authority-data",
                    old,
                    &new,
                    nth,
                )?;
            }
            expect.push(("certificate-authority-data", new));
        }
        // Parse the result and check each rewritten value landed where intended.
        let after = Kubeconfig::parse(&self.path, text.clone())?;
        for (key, val) in expect {
            let got = match key {
                "client-certificate-data" => &after.client_cert,
                "client-key-data" => &after.client_key,
                _ => &after.ca,
            };
            if *got != Source::Embedded(val) {
                return Err(invalid(
                    &self.path,
                    format!("rewriting {key} did not produce the expected document"),
                ));
            }
        }
        Ok(text)
    }
}

/// Replaces the value of the `nth` (0-based) line `key: old`. The old value must appear as
/// one plain or quoted scalar after `key:` (what client-go and kubeadm write).
fn replace_value(
    path: &Path,
    text: &str,
    key: &str,
    old: &str,
    new: &str,
    nth: usize,
) -> Result<String> {
    replace_entry(path, text, key, old, key, new, nth)
}

/// Like [`replace_value`] but may also rename the key (`client-certificate-data: X` →
/// `client-certificate: /path`).
fn replace_entry(
    path: &Path,
    text: &str,
    key: &str,
    old: &str,
    new_key: &str,
    new: &str,
    nth: usize,
) -> Result<String> {
    let mut out = String::with_capacity(text.len() + new.len());
    let mut hits = 0;
    let mut replaced = false;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_start();
        if let Some(rest) = trimmed.strip_prefix(key) {
            if let Some(val) = rest.strip_prefix(':') {
                let v = val.trim().trim_matches(|c| c == '"' || c == '\'');
                if v == old {
                    hits += 1;
                    if hits - 1 != nth {
                        out.push_str(line);
                        continue;
                    }
                    if let Some(pos) = line.rfind(old) {
                        let indent = &line[..line.len() - trimmed.len()];
                        out.push_str(indent);
                        out.push_str(new_key);
                        out.push_str(&line[indent.len() + key.len()..pos]);
                        out.push_str(new);
                        out.push_str(&line[pos + old.len()..]);
                        replaced = true;
                        continue;
                    }
                }
            }
        }
        out.push_str(line);
    }
    if !replaced {
        return Err(invalid(
            path,
            format!("cannot rewrite {key}: its value is not a single-line scalar"),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KC: &str = "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: Q0E=\n    server: https://1.2.3.4:6443\n  name: kubernetes\ncontexts:\n- context:\n    cluster: kubernetes\n    user: kubernetes-admin\n  name: kubernetes-admin@kubernetes\ncurrent-context: kubernetes-admin@kubernetes\nkind: Config\npreferences: {}\nusers:\n- name: other\n  user:\n    client-certificate-data: Q0VSVA==\n- name: kubernetes-admin\n  user:\n    client-certificate-data: Q0VSVA==\n    client-key-data: S0VZ\n";

    #[test]
    fn parses_current_context() {
        let k = Kubeconfig::parse(Path::new("/x/admin.conf"), KC.into()).unwrap();
        assert_eq!(k.user, "kubernetes-admin");
        assert_eq!(k.client_cert, Source::Embedded("Q0VSVA==".into()));
        assert_eq!(k.client_cert_pem().unwrap(), b"CERT");
        assert_eq!(k.server.as_deref(), Some("https://1.2.3.4:6443"));
    }

    /// [`decode_data`] (in place when the value has no whitespace) decodes what the filter
    /// of every whitespace `char` then base64 decodes, with the same error messages: on
    /// values with each kind of whitespace in each position, non-ASCII ones, and bad base64.
    #[test]
    fn decode_data_equals_filter_then_decode() {
        use base64::Engine;
        let reference = |b64: &str| {
            let cleaned: String = b64.chars().filter(|c| !c.is_whitespace()).collect();
            base64::engine::general_purpose::STANDARD
                .decode(cleaned)
                .map_err(|_| ())
        };
        let p = Path::new("/x/admin.conf");
        let base = "Q0VSVElGSUNBVEU=";
        let mut values = vec![base.to_string(), String::new(), "Q0VS VA==".into()];
        for ws in [
            " ", "\t", "\n", "\r", "\u{b}", "\u{c}", "\u{85}", "\u{a0}", "\u{2028}",
        ] {
            for at in [0, 1, 4, base.len() - 1, base.len()] {
                let mut v = base.to_string();
                v.insert_str(at, ws);
                values.push(v);
            }
        }
        for bad in [
            "Q0VSV",
            "Q0VS*A==",
            "Q0VSVA=",
            "é",
            "Q0VSVA==\u{1c}",
            "=Q0VSVA=",
        ] {
            values.push(bad.to_string());
        }
        let (mut ok, mut err) = (0, 0);
        for v in &values {
            let got = decode_data(p, v);
            assert_eq!(got.as_ref().ok(), reference(v).as_ref().ok(), "{v:?}");
            match got {
                Ok(_) => ok += 1,
                Err(e) => {
                    let msg = e.to_string();
                    assert!(msg.contains("invalid base64 data ("), "{v:?}: {msg}");
                    assert!(msg.contains("/x/admin.conf"), "{v:?}: {msg}");
                    err += 1;
                }
            }
        }
        assert!(ok >= 40 && err >= 6, "{ok} decoded, {err} refused");
    }

    #[test]
    fn truncated_is_an_error() {
        let cut = &KC[..KC.len() / 2];
        assert!(Kubeconfig::parse(Path::new("a.conf"), cut.into()).is_err());
        assert!(Kubeconfig::parse(Path::new("a.conf"), "{{{".into()).is_err());
        assert!(Kubeconfig::parse(Path::new("a.conf"), "".into()).is_err());
    }

    #[test]
    fn duplicate_names_are_refused_and_errors_name_nothing_from_the_file() {
        let dup = KC.replace("- name: other\n", "- name: kubernetes-admin\n");
        let e = Kubeconfig::parse(Path::new("/k/admin.conf"), dup).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid kubeconfig /k/admin.conf: users entries 1 and 2 have the same name (kubectl refuses such a file)"
        );
        let dup = KC.replace(
            "contexts:\n",
            "contexts:\n- context: {}\n  name: kubernetes-admin@kubernetes\n",
        );
        let e = Kubeconfig::parse(Path::new("/k/admin.conf"), dup).unwrap_err();
        assert!(
            e.to_string().ends_with(
                "contexts entries 1 and 2 have the same name (kubectl refuses such a file)"
            ),
            "{e}"
        );
        // A current-context that names nothing: the name is not echoed.
        let other = KC.replace(
            "current-context: kubernetes-admin@kubernetes",
            "current-context: MIIEsecretName",
        );
        let e = Kubeconfig::parse(Path::new("/k/admin.conf"), other).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid kubeconfig /k/admin.conf: current-context names no entry of contexts"
        );
        // Bad base64: what is wrong, not which bytes.
        let bad = KC.replace("client-key-data: S0VZ", "client-key-data: S0V@");
        let k = Kubeconfig::parse(Path::new("/k/admin.conf"), bad).unwrap();
        assert_eq!(
            k.client_key_pem().unwrap_err().to_string(),
            "invalid kubeconfig /k/admin.conf: invalid base64 data (an invalid byte at offset 3)"
        );
    }

    #[test]
    fn relative_file_references_resolve_against_dir() {
        let text = KC.replace(
            "    client-certificate-data: Q0VSVA==\n    client-key-data: S0VZ\n",
            "    client-certificate: pki/admin.crt\n    client-key: /abs/admin.key\n",
        );
        let k = Kubeconfig::parse(Path::new("/etc/k/admin.conf"), text).unwrap();
        assert_eq!(k.client_cert, Source::File("/etc/k/pki/admin.crt".into()));
        assert_eq!(k.client_key, Source::File("/abs/admin.key".into()));
    }

    #[test]
    fn rewrite_touches_only_current_user() {
        let k = Kubeconfig::parse(Path::new("admin.conf"), KC.into()).unwrap();
        let out = k
            .rewrite_embedded(Some(b"NEWCERT"), Some(b"NEWKEY"), Some(b"NEWCA"))
            .unwrap();
        let k2 = Kubeconfig::parse(Path::new("admin.conf"), out.clone()).unwrap();
        assert_eq!(k2.client_cert_pem().unwrap(), b"NEWCERT");
        assert_eq!(k2.client_key_pem().unwrap(), b"NEWKEY");
        // The other user with the same old value keeps it.
        assert!(out.contains("- name: other\n  user:\n    client-certificate-data: Q0VSVA==\n"));
        assert!(out.contains("server: https://1.2.3.4:6443"));
        assert!(out.contains("preferences: {}"));
    }
}

#[cfg(test)]
mod cluster_ca_tests {
    use super::*;

    const CI: &str = "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: QUFB\n    server: https://10.0.0.1:6443\n  name: \"\"\ncontexts: null\ncurrent-context: \"\"\nkind: Config\npreferences: {}\nusers: null\n";

    #[test]
    fn only_the_ca_value_changes() {
        let l = Path::new("cluster-info");
        let out = set_cluster_ca_data(l, CI, b"BBB").unwrap().unwrap();
        assert_eq!(out, CI.replace("QUFB", "QkJC"));
        // already current: nothing to do
        assert_eq!(set_cluster_ca_data(l, &out, b"BBB").unwrap(), None);
        // no cluster, or a CA by file: refused, naming the document, not its bytes
        let e = set_cluster_ca_data(l, "kind: Config\nclusters: []\n", b"B").unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid kubeconfig cluster-info: no clusters"
        );
        let e = set_cluster_ca_data(
            l,
            "clusters:\n- cluster:\n    certificate-authority: /x\n  name: a\n",
            b"B",
        )
        .unwrap_err();
        assert!(e
            .to_string()
            .contains("entry 0 has no certificate-authority-data"));
    }
}
