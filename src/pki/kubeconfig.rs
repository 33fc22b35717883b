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
use doc::List;

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
    /// What was read of the document (for [`Kubeconfig::occurrence`]).
    doc: doc::Doc,
}

fn invalid(path: &Path, reason: impl Into<String>) -> Error {
    Error::Kubeconfig {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

fn find_named<'a>(doc: &'a doc::Doc, list: List, name: &str) -> Option<&'a doc::Fields> {
    doc.list(list)?
        .iter()
        .find(|e| e.name.as_deref() == Some(name))?
        .body
        .as_ref()
}

fn source(dir: &Path, obj: &doc::Fields, data_key: &str, file_key: &str) -> Source {
    if let Some(s) = obj.get(data_key) {
        if !s.is_empty() {
            return Source::Embedded(s.to_string());
        }
    }
    if let Some(p) = obj.get(file_key) {
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
    // collection into a String was 0.5 M instructions of a `check` (callgrind).
    let cleaned: Vec<u8> = if b64.is_ascii() {
        b64.bytes()
            .filter(|b| !char::from(*b).is_whitespace())
            .collect()
    } else {
        b64.chars()
            .filter(|c| !c.is_whitespace())
            .collect::<String>()
            .into_bytes()
    };
    base64::engine::general_purpose::STANDARD
        .decode(&cleaned)
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
fn duplicate_names(doc: &doc::Doc, list: List) -> Option<(usize, usize)> {
    let items = doc.list(list)?;
    items.iter().enumerate().find_map(|(j, e)| {
        let n = e.name.as_deref()?;
        items[..j]
            .iter()
            .position(|m| m.name.as_deref() == Some(n))
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
    let doc: Value = serde_saphyr::from_str(text)
        .map_err(|e| invalid(label, crate::error::describe_yaml(&e)))?;
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
    let got: Value = serde_saphyr::from_str(&out)
        .map_err(|e| invalid(label, crate::error::describe_yaml(&e)))?;
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
        let doc = doc::parse(&text).map_err(|e| invalid(path, crate::error::describe_yaml(&e)))?;
        if !doc.mapping {
            return Err(invalid(
                path,
                "not a kubeconfig (top level is not a mapping)",
            ));
        }
        for list in List::ALL {
            if let Some((i, j)) = duplicate_names(&doc, list) {
                return Err(invalid(
                    path,
                    format!(
                        "{} entries {i} and {j} have the same name (kubectl refuses such a file)",
                        list.name()
                    ),
                ));
            }
        }
        let current_context = doc
            .current_context
            .as_deref()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| invalid(path, "no current-context"))?
            .to_string();
        let ctx = find_named(&doc, List::Contexts, &current_context)
            .ok_or_else(|| invalid(path, "current-context names no entry of contexts"))?;
        let cluster = ctx
            .get("cluster")
            .ok_or_else(|| invalid(path, "the current context has no cluster"))?
            .to_string();
        let user = ctx
            .get("user")
            .ok_or_else(|| invalid(path, "the current context has no user"))?
            .to_string();
        let cl = find_named(&doc, List::Clusters, &cluster)
            .ok_or_else(|| invalid(path, "the current context's cluster is not in clusters"))?;
        let us = find_named(&doc, List::Users, &user)
            .ok_or_else(|| invalid(path, "the current context's user is not in users"))?;
        let dir = path.parent().unwrap_or(Path::new("."));
        Ok(Kubeconfig {
            path: path.to_path_buf(),
            server: cl.get("server").map(str::to_string),
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
    fn occurrence(&self, list: List, name: &str, key: &str, val: &str) -> usize {
        let Some(items) = self.doc.list(list) else {
            return 0;
        };
        items
            .iter()
            .take_while(|e| e.name.as_deref() != Some(name))
            .filter(|e| e.body.as_ref().and_then(|b| b.get(key)) == Some(val))
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
        let nth = self.occurrence(List::Users, &self.user, "client-certificate-data", c);
        let text = replace_entry(
            &self.path,
            &self.text,
            "client-certificate-data",
            c,
            "client-certificate",
            &f,
            nth,
        )?;
        let nth = self.occurrence(List::Users, &self.user, "client-key-data", k);
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
            let nth = self.occurrence(List::Users, &self.user, "client-certificate-data", old);
            text = replace_value(&self.path, &text, "client-certificate-data", old, &new, nth)?;
            expect.push(("client-certificate-data", new));
        }
        if let (Some(new), Source::Embedded(old)) = (key_pem, &self.client_key) {
            let new = encode_data(new);
            let nth = self.occurrence(List::Users, &self.user, "client-key-data", old);
            text = replace_value(&self.path, &text, "client-key-data", old, &new, nth)?;
            expect.push(("client-key-data", new));
        }
        if let (Some(new), Source::Embedded(old)) = (ca_pem, &self.ca) {
            let new = encode_data(new);
            if *old != new {
                let nth = self.occurrence(
                    List::Clusters,
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

/// The parts of a kubeconfig document kubecert reads, deserialized straight from the YAML
/// events (serde-saphyr, the same scanner and parser) instead of into a generic
/// `serde_json::Value` tree: building that tree (every key and value of five kubeconfigs
/// allocated, hashed and dropped) was most of the 2.6 M instructions YAML cost a `check`
/// (callgrind, bench/RESULTS.md "Issue 18 item 3, continued").
///
/// The semantics are the tree's, to the error: the visitors accept exactly what
/// `serde_json::Value`'s visitor accepts (so every document that parsed before parses now,
/// every one refused before is refused with the same message), keys are read the way it
/// reads them, a later duplicate key wins (moot today: serde-saphyr refuses duplicate keys
/// before a visitor sees them), and a field is "a string" only where the tree held
/// a `Value::String` (`Value::as_str`): a number, a boolean, null, a list or a mapping where
/// a name is expected reads as absent, as before. Rewrites stay textual (see the module
/// documentation): nothing is serialized from this type, so no field of the file is lost.
mod doc {
    use std::fmt;

    use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

    /// The top-level lists kubecert reads.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(super) enum List {
        Clusters = 0,
        Contexts = 1,
        Users = 2,
    }

    impl List {
        pub(super) const ALL: [List; 3] = [List::Clusters, List::Contexts, List::Users];

        pub(super) fn name(self) -> &'static str {
            match self {
                List::Clusters => "clusters",
                List::Contexts => "contexts",
                List::Users => "users",
            }
        }

        /// The key of an entry's body (`- name: x` / `  cluster: {...}`).
        fn inner(self) -> &'static str {
            match self {
                List::Clusters => "cluster",
                List::Contexts => "context",
                List::Users => "user",
            }
        }
    }

    /// The keys read inside an entry's body.
    pub(super) const FIELDS: [&str; 9] = [
        "cluster",
        "user",
        "server",
        "certificate-authority-data",
        "certificate-authority",
        "client-certificate-data",
        "client-certificate",
        "client-key-data",
        "client-key",
    ];

    /// A document: whether its top level is a mapping, `current-context` and the lists
    /// (`None` where the tree held no array).
    #[derive(Debug, Clone, Default)]
    pub(super) struct Doc {
        pub(super) mapping: bool,
        pub(super) current_context: Option<String>,
        lists: [Option<Vec<Entry>>; 3],
    }

    impl Doc {
        /// The entries of `list`, when it is a sequence.
        pub(super) fn list(&self, list: List) -> Option<&[Entry]> {
            self.lists[list as usize].as_deref()
        }
    }

    /// One entry of a list: its `name` and its body (`None` when the entry has no body key;
    /// `Some` with no fields when the body is present but not a mapping, e.g. `user: null`).
    #[derive(Debug, Clone, Default)]
    pub(super) struct Entry {
        pub(super) name: Option<String>,
        pub(super) body: Option<Fields>,
    }

    /// The string values of [`FIELDS`] in a body.
    #[derive(Debug, Clone, Default)]
    pub(super) struct Fields([Option<String>; FIELDS.len()]);

    impl Fields {
        /// The string value of `key` (one of [`FIELDS`]).
        pub(super) fn get(&self, key: &str) -> Option<&str> {
            let i = FIELDS.iter().position(|k| *k == key)?;
            self.0[i].as_deref()
        }
    }

    /// Parses a document the way `serde_saphyr::from_str::<serde_json::Value>` did.
    pub(super) fn parse(text: &str) -> Result<Doc, serde_saphyr::Error> {
        serde_saphyr::from_str(text)
    }

    const EXPECTING: &str = "any valid JSON value";

    /// A map key, read as `serde_json::Value` reads one (`deserialize_str` for the first
    /// key, `deserialize_string` for the others), matched against `names`.
    struct Key<'n> {
        names: &'n [&'static str],
        first: bool,
    }

    impl<'de> DeserializeSeed<'de> for Key<'_> {
        /// The index in `names`, or `None` for any other key.
        type Value = Option<usize>;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            if self.first {
                d.deserialize_str(self)
            } else {
                d.deserialize_string(self)
            }
        }
    }

    impl<'de> Visitor<'de> for Key<'_> {
        type Value = Option<usize>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            // The messages of the tree: serde_json's key classifier for the first key,
            // `String` for the others.
            f.write_str(if self.first {
                "a string key"
            } else {
                "a string"
            })
        }
        fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
            Ok(self.names.iter().position(|n| *n == s))
        }
    }

    /// What to keep of a value.
    ///
    /// One seed and visitor type for every position (not one type per shape): serde-saphyr's
    /// deserializer is instantiated once for it (one type per shape cost +220 KB of code).
    #[derive(Clone, Copy)]
    enum Want {
        /// Nothing (the value is still read, as `serde_json::Value` would read it).
        Ignore,
        /// A string (`Value::as_str`).
        Str,
        /// An entry's body: present whatever its shape, its fields read when a mapping.
        Body,
        /// An entry of a list: name and body, when a mapping.
        Entry(List),
        /// A list: its entries, when a sequence.
        List(List),
        /// The top level.
        Top,
    }

    /// What was kept ([`Out::Nothing`] for any value not of the wanted shape).
    enum Out {
        Nothing,
        Str(String),
        Body(Fields),
        Entry(Entry),
        List(Vec<Entry>),
        Doc(Doc),
    }

    impl Out {
        fn str(self) -> Option<String> {
            match self {
                Out::Str(s) => Some(s),
                _ => None,
            }
        }
        fn list(self) -> Option<Vec<Entry>> {
            match self {
                Out::List(v) => Some(v),
                _ => None,
            }
        }
    }

    /// Reads any value as `serde_json::Value` would (the same visitor methods, hence the same
    /// errors) and keeps what [`Want`] says.
    #[derive(Clone, Copy)]
    struct As(Want);

    impl<'de> DeserializeSeed<'de> for As {
        type Value = Out;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Out, D::Error> {
            d.deserialize_any(self)
        }
    }

    impl<'de> Visitor<'de> for As {
        type Value = Out;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str(EXPECTING)
        }
        fn visit_bool<E>(self, _: bool) -> Result<Out, E> {
            Ok(Out::Nothing)
        }
        fn visit_i64<E>(self, _: i64) -> Result<Out, E> {
            Ok(Out::Nothing)
        }
        fn visit_i128<E: de::Error>(self, v: i128) -> Result<Out, E> {
            // What the tree does with it (a range error when it fits no JSON number).
            use serde::Deserialize;
            serde_json::Number::deserialize(de::value::I128Deserializer::<E>::new(v))
                .map(|_| Out::Nothing)
        }
        fn visit_u64<E>(self, _: u64) -> Result<Out, E> {
            Ok(Out::Nothing)
        }
        fn visit_u128<E: de::Error>(self, v: u128) -> Result<Out, E> {
            use serde::Deserialize;
            serde_json::Number::deserialize(de::value::U128Deserializer::<E>::new(v))
                .map(|_| Out::Nothing)
        }
        fn visit_f64<E>(self, _: f64) -> Result<Out, E> {
            Ok(Out::Nothing)
        }
        fn visit_str<E>(self, s: &str) -> Result<Out, E> {
            Ok(match self.0 {
                Want::Str => Out::Str(s.to_owned()),
                _ => Out::Nothing,
            })
        }
        fn visit_none<E>(self) -> Result<Out, E> {
            Ok(Out::Nothing)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Out, D::Error> {
            d.deserialize_any(self)
        }
        fn visit_unit<E>(self) -> Result<Out, E> {
            Ok(Out::Nothing)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Out, A::Error> {
            let Want::List(list) = self.0 else {
                while a.next_element_seed(As(Want::Ignore))?.is_some() {}
                return Ok(Out::Nothing);
            };
            // An entry that is not a mapping is kept as an entry without name or body, so
            // that positions stay those of the file.
            let mut v = Vec::new();
            while let Some(e) = a.next_element_seed(As(Want::Entry(list)))? {
                v.push(match e {
                    Out::Entry(e) => e,
                    _ => Entry::default(),
                });
            }
            Ok(Out::List(v))
        }
        fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Out, A::Error> {
            const TOP: [&str; 4] = ["current-context", "clusters", "contexts", "users"];
            let entry_keys;
            let names: &[&'static str] = match self.0 {
                Want::Body => &FIELDS,
                Want::Entry(list) => {
                    entry_keys = ["name", list.inner()];
                    &entry_keys
                }
                Want::Top => &TOP,
                _ => &[],
            };
            let mut fields = Fields::default();
            let mut entry = Entry::default();
            let mut doc = Doc {
                mapping: true,
                ..Doc::default()
            };
            let mut first = true;
            while let Some(k) = a.next_key_seed(Key { names, first })? {
                first = false;
                // A later duplicate key replaces the earlier value, as in the tree.
                match (self.0, k) {
                    (Want::Body, Some(i)) => fields.0[i] = a.next_value_seed(As(Want::Str))?.str(),
                    (Want::Entry(_), Some(0)) => {
                        entry.name = a.next_value_seed(As(Want::Str))?.str();
                    }
                    (Want::Entry(_), Some(_)) => {
                        // Present, whatever its shape.
                        entry.body = Some(match a.next_value_seed(As(Want::Body))? {
                            Out::Body(f) => f,
                            _ => Fields::default(),
                        });
                    }
                    (Want::Top, Some(0)) => {
                        doc.current_context = a.next_value_seed(As(Want::Str))?.str();
                    }
                    (Want::Top, Some(i)) => {
                        let list = List::ALL[i - 1];
                        doc.lists[list as usize] = a.next_value_seed(As(Want::List(list)))?.list();
                    }
                    _ => {
                        a.next_value_seed(As(Want::Ignore))?;
                    }
                }
            }
            Ok(match self.0 {
                Want::Body => Out::Body(fields),
                Want::Entry(_) => Out::Entry(entry),
                Want::Top => Out::Doc(doc),
                _ => Out::Nothing,
            })
        }
    }

    impl<'de> serde::Deserialize<'de> for Doc {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Doc, D::Error> {
            // Not a mapping at the top: `mapping` stays false (the caller's error).
            Ok(match As(Want::Top).deserialize(d)? {
                Out::Doc(doc) => doc,
                _ => Doc::default(),
            })
        }
    }
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

/// The typed read ([`doc`]) against the generic `serde_json::Value` read it replaced, kept
/// here as the reference: the same fields, the same `occurrence` counts, the same error
/// message, on every kubeconfig of tests/fixtures and on many malformed variants.
#[cfg(test)]
mod typed_equals_value_tests {
    use super::*;

    /// What the reference computes (the previous `Kubeconfig::parse`, verbatim in logic).
    #[derive(Debug, PartialEq)]
    struct Read {
        current_context: String,
        user: String,
        cluster: String,
        server: Option<String>,
        client_cert: Source,
        client_key: Source,
        ca: Source,
        occurrences: Vec<usize>,
    }

    fn v_find<'a>(doc: &'a Value, list: &str, name: &str, inner: &str) -> Option<&'a Value> {
        doc.get(list)?
            .as_array()?
            .iter()
            .find(|e| e.get("name").and_then(Value::as_str) == Some(name))?
            .get(inner)
    }

    fn v_source(dir: &Path, obj: &Value, data_key: &str, file_key: &str) -> Source {
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

    fn v_dups(doc: &Value, list: &str) -> Option<(usize, usize)> {
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

    fn v_occ(doc: &Value, list: &str, inner: &str, name: &str, key: &str, val: &str) -> usize {
        let Some(items) = doc.get(list).and_then(Value::as_array) else {
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

    fn probes(s: &Source) -> &str {
        match s {
            Source::Embedded(v) => v,
            _ => "x",
        }
    }

    fn reference(path: &Path, text: &str) -> std::result::Result<Read, String> {
        let doc: Value = serde_saphyr::from_str(text)
            .map_err(|e| invalid(path, crate::error::describe_yaml(&e)).to_string())?;
        let bad = |r: &str| invalid(path, r).to_string();
        if !doc.is_object() {
            return Err(bad("not a kubeconfig (top level is not a mapping)"));
        }
        for list in ["clusters", "contexts", "users"] {
            if let Some((i, j)) = v_dups(&doc, list) {
                return Err(bad(&format!(
                    "{list} entries {i} and {j} have the same name (kubectl refuses such a file)"
                )));
            }
        }
        let current_context = doc
            .get("current-context")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| bad("no current-context"))?
            .to_string();
        let ctx = v_find(&doc, "contexts", &current_context, "context")
            .ok_or_else(|| bad("current-context names no entry of contexts"))?;
        let cluster = ctx
            .get("cluster")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("the current context has no cluster"))?
            .to_string();
        let user = ctx
            .get("user")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("the current context has no user"))?
            .to_string();
        let cl = v_find(&doc, "clusters", &cluster, "cluster")
            .ok_or_else(|| bad("the current context's cluster is not in clusters"))?;
        let us = v_find(&doc, "users", &user, "user")
            .ok_or_else(|| bad("the current context's user is not in users"))?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let client_cert = v_source(dir, us, "client-certificate-data", "client-certificate");
        let client_key = v_source(dir, us, "client-key-data", "client-key");
        let ca = v_source(
            dir,
            cl,
            "certificate-authority-data",
            "certificate-authority",
        );
        let occurrences = vec![
            v_occ(
                &doc,
                "users",
                "user",
                &user,
                "client-certificate-data",
                probes(&client_cert),
            ),
            v_occ(
                &doc,
                "users",
                "user",
                &user,
                "client-key-data",
                probes(&client_key),
            ),
            v_occ(
                &doc,
                "clusters",
                "cluster",
                &cluster,
                "certificate-authority-data",
                probes(&ca),
            ),
        ];
        Ok(Read {
            server: cl.get("server").and_then(Value::as_str).map(str::to_string),
            current_context,
            user,
            cluster,
            client_cert,
            client_key,
            ca,
            occurrences,
        })
    }

    fn typed(path: &Path, text: &str) -> std::result::Result<Read, String> {
        let k = Kubeconfig::parse(path, text.to_string()).map_err(|e| e.to_string())?;
        let occurrences = vec![
            k.occurrence(
                List::Users,
                &k.user,
                "client-certificate-data",
                probes(&k.client_cert),
            ),
            k.occurrence(
                List::Users,
                &k.user,
                "client-key-data",
                probes(&k.client_key),
            ),
            k.occurrence(
                List::Clusters,
                &k.cluster,
                "certificate-authority-data",
                probes(&k.ca),
            ),
        ];
        Ok(Read {
            current_context: k.current_context,
            user: k.user,
            cluster: k.cluster,
            server: k.server,
            client_cert: k.client_cert,
            client_key: k.client_key,
            ca: k.ca,
            occurrences,
        })
    }

    const BASE: &str = "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: Q0E=\n    server: https://1.2.3.4:6443\n  name: kubernetes\ncontexts:\n- context:\n    cluster: kubernetes\n    user: kubernetes-admin\n  name: kubernetes-admin@kubernetes\ncurrent-context: kubernetes-admin@kubernetes\nkind: Config\npreferences: {}\nusers:\n- name: other\n  user:\n    client-certificate-data: Q0VSVA==\n- name: kubernetes-admin\n  user:\n    client-certificate-data: Q0VSVA==\n    client-key-data: S0VZ\n";

    /// Whole-document variants: shapes, types, duplicates, YAML features, syntax errors.
    fn variants() -> Vec<String> {
        let r = |a: &str, b: &str| BASE.replacen(a, b, 1);
        let mut v = vec![
            String::new(),
            "{{{".into(),
            "[]".into(),
            "- a\n- b\n".into(),
            "just a string\n".into(),
            "42\n".into(),
            "null\n".into(),
            "~\n".into(),
            "{}\n".into(),
            "a: 1\n---\nb: 2\n".into(),
            format!("{BASE}---\n{BASE}"),
            BASE.replace('\n', "\r\n"),
            format!("# comment\n%YAML 1.2\n---\n{BASE}"),
            format!("{BASE}current-context: other@kubernetes\n"),
            format!("{BASE}current-context: 7\n"),
            format!("{BASE}users: null\n"),
            format!("{BASE}clusters: {{}}\n"),
            format!("{BASE}x: 340282366920938463463374607431768211455\n"),
            format!("{BASE}x: -170141183460469231731687303715884105728\n"),
            format!("{BASE}x: 18446744073709551616\n"),
            format!("{BASE}x: 1.5e400\n"),
            format!("{BASE}x: .nan\n"),
            format!("{BASE}x: !!binary aGVsbG8=\n"),
            format!("{BASE}x: !custom tagged\n"),
            format!("{BASE}? [complex, key]\n: v\n"),
            format!("{BASE}? {{a: 1}}\n: v\n"),
            format!("{BASE}1: numeric key\n"),
            format!("{BASE}true: bool key\n"),
            format!("{BASE}null: null key\n"),
            format!("anchors:\n  a: &A kubernetes\n{}", BASE.replacen("  name: kubernetes\n", "  name: *A\n", 1)),
            format!("{BASE}x: *undefined\n"),
            format!("base: &B\n  client-key-data: S0VZ\n{}", BASE.replacen("    client-key-data: S0VZ\n", "    <<: *B\n", 1)),
            r("current-context: kubernetes-admin@kubernetes", "current-context: \"\""),
            r("current-context: kubernetes-admin@kubernetes", "current-context: ['a']"),
            r("current-context: kubernetes-admin@kubernetes", "current-context: {a: b}"),
            r("current-context: kubernetes-admin@kubernetes", "current-context:"),
            r("current-context: kubernetes-admin@kubernetes", "current-context: 'kubernetes-admin@kubernetes'"),
            r("current-context: kubernetes-admin@kubernetes", "current-context: nobody"),
            r("    cluster: kubernetes\n", "    cluster: 5\n"),
            r("    cluster: kubernetes\n", "    cluster: [kubernetes]\n"),
            r("    cluster: kubernetes\n", ""),
            r("    user: kubernetes-admin\n", "    user: null\n"),
            r("    user: kubernetes-admin\n", "    user: kubernetes-admin\n    user: other\n"),
            r("- context:\n    cluster: kubernetes\n    user: kubernetes-admin\n", "- context: null\n"),
            r("- context:\n    cluster: kubernetes\n    user: kubernetes-admin\n", "- context: [a]\n"),
            r("- context:\n", "- 5\n- context:\n"),
            r("contexts:\n", "contexts:\n- null\n- [x]\n- name: 3\n"),
            r("contexts:\n", "contexts:\n- context: {}\n  name: kubernetes-admin@kubernetes\n"),
            r("  name: kubernetes\n", "  name: kubernetes\n  name: renamed\n"),
            r("  name: kubernetes\n", "  name: true\n"),
            r("  name: kubernetes\n", ""),
            r("- cluster:\n    certificate-authority-data: Q0E=\n    server: https://1.2.3.4:6443\n", "- cluster: null\n"),
            r("- cluster:\n    certificate-authority-data: Q0E=\n    server: https://1.2.3.4:6443\n", "- cluster: text\n"),
            r("    server: https://1.2.3.4:6443\n", "    server: 6443\n"),
            r("    server: https://1.2.3.4:6443\n", "    server: {a: 1}\n"),
            r("    certificate-authority-data: Q0E=\n", "    certificate-authority: ca.crt\n"),
            r("    certificate-authority-data: Q0E=\n", "    certificate-authority-data: \"\"\n    certificate-authority: /etc/ca.crt\n"),
            r("    certificate-authority-data: Q0E=\n", "    certificate-authority-data: 12\n"),
            r("    certificate-authority-data: Q0E=\n", "    certificate-authority-data: Q0E=\n    certificate-authority-data: QkI=\n"),
            r("- name: other\n  user:\n    client-certificate-data: Q0VSVA==\n", "- name: other\n  user:\n    client-certificate-data: Q0VSVA==\n- name: third\n  user:\n    client-certificate-data: Q0VSVA==\n"),
            r("- name: other\n", "- name: kubernetes-admin\n"),
            r("- name: other\n", "- name: 1\n"),
            r("    client-key-data: S0VZ\n", "    client-key-data: [S0VZ]\n"),
            r("    client-key-data: S0VZ\n", "    client-key: key.pem\n    client-certificate: /abs/c.pem\n"),
            r("  user:\n    client-certificate-data: Q0VSVA==\n    client-key-data: S0VZ\n", "  user: {}\n"),
            r("  user:\n    client-certificate-data: Q0VSVA==\n    client-key-data: S0VZ\n", "  user:\n"),
            r("  user:\n    client-certificate-data: Q0VSVA==\n    client-key-data: S0VZ\n", ""),
            r("users:\n", "users: x\nusers:\n"),
            r("users:\n", "users:\n- 1\n- [a, b]\n- {name: [x]}\n"),
            r("preferences: {}", "preferences: {a: [1, {b: null}], c: !!str 3}"),
            r("preferences: {}", "preferences: [1, 2"),
            r("preferences: {}", "preferences: \"unterminated"),
            r("preferences: {}", "preferences:\t{}"),
            r("kind: Config\n", "kind: Config\n  bad: indent\n"),
            r("kind: Config\n", "kind: Config\nkind: Again\n"),
            r("apiVersion: v1\n", "apiVersion: v1\napiVersion: v2\n"),
        ];
        // Every truncation and every line deleted or duplicated.
        for cut in 0..=BASE.len() {
            v.push(BASE[..cut].to_string());
        }
        let lines: Vec<&str> = BASE.split_inclusive('\n').collect();
        for i in 0..lines.len() {
            let mut del = lines.clone();
            del.remove(i);
            v.push(del.concat());
            let mut dup = lines.clone();
            dup.insert(i, lines[i]);
            v.push(dup.concat());
        }
        v
    }

    #[test]
    fn typed_read_equals_the_value_read() {
        let path = Path::new("/etc/kubernetes/admin.conf");
        let mut texts = variants();
        let mut fixtures = 0;
        for d in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures")).unwrap()
        {
            let dir = d.unwrap().path().join("kubeconfig");
            let Ok(rd) = std::fs::read_dir(&dir) else {
                continue;
            };
            for f in rd {
                let f = f.unwrap().path();
                if f.extension().is_some_and(|e| e == "conf") {
                    texts.push(std::fs::read_to_string(&f).unwrap());
                    fixtures += 1;
                }
            }
        }
        assert!(fixtures >= 18, "{fixtures} fixture kubeconfigs");
        let (mut ok, mut err) = (0, 0);
        for (i, t) in texts.iter().enumerate() {
            let want = reference(path, t);
            let got = typed(path, t);
            assert_eq!(got, want, "variant {i}: {t:?}");
            if want.is_ok() {
                ok += 1;
            } else {
                err += 1;
            }
        }
        // Both outcomes are well represented (the comparison is not vacuous).
        assert!(ok >= 40 && err >= 100, "{ok} parsed, {err} refused");
    }
}
