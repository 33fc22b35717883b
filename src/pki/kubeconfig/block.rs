//! A reader for the narrow block-YAML shape that kubeadm, kubectl and client-go write
//! kubeconfigs in, with a sure answer or none: [`parse`] returns the same
//! [`serde_json::Value`] that `serde_saphyr::from_str` returns for the text, or `None` when the
//! text uses anything outside the shape (then the caller runs the full parser).
//!
//! Why it exists: reading the five kubeconfigs of a control plane through serde-saphyr was
//! 2.5 M of the 10.4 M instructions of a whole `kubecert check` process (callgrind, demo PKI;
//! the scanner walks every base64 character of the `*-data` values one at a time), the largest
//! cost after signature verification. This reader splits lines and copies values.
//!
//! The shape, line by line (anything else is `None`):
//! - ASCII only; lines end in `\n`; no tab, carriage return, comment, quote, anchor, alias,
//!   tag, block scalar indicator, empty line (except at the very end), or trailing space;
//! - `KEY: VALUE`, `KEY:` (a nested block follows, or null) or `- ` before either (a sequence
//!   item); `KEY: {}` and `KEY: []` (empty flow collections);
//! - a sequence item may also be a lone `- VALUE`;
//! - KEY is a letter followed by letters, digits, `-` and `_`, at most [`MAX_KEY_BYTES`] (YAML
//!   allows 1024 characters in an implicit key); VALUE starts with a letter or
//!   `/` and continues with letters, digits and `+/=:._-@`, never ending in `:`;
//! - neither may spell a YAML 1.1 or 1.2 boolean or null (`yes`, `Off`, `NULL`, ...), or the
//!   alphabetic float spellings (`inf`, `nan`); with the first character a letter or `/`,
//!   nothing else in the shape can resolve to a number;
//! - no key twice in one mapping (what the full parser makes of that is its business);
//! - at most [`MAX_DEPTH`] levels and [`MAX_NODES`] values, well inside the full parser's
//!   own limits (its default budget refuses a document over 64 levels or 250,000 nodes, and
//!   this reader must not accept what it refuses); a kubeconfig has about 5 levels and 30
//!   values.
//!
//! The `equals_the_full_parser` tests compare this with serde-saphyr on every kubeconfig of
//! the fixtures and on thousands of mutations of them.

use serde_json::{Map, Value};

/// One line of the text: its indentation and the rest.
#[derive(Clone, Copy)]
struct Line<'a> {
    indent: usize,
    body: &'a str,
}

/// The value of `text` as the full YAML parser reads it, when the text is inside the shape
/// (module docs); `None` otherwise.
pub fn parse(text: &str) -> Option<Value> {
    let body = text.strip_suffix('\n').unwrap_or(text);
    let mut lines = Vec::with_capacity(32);
    for raw in body.split('\n') {
        // Only the indentation is checked here: what follows it must split into a key, a
        // separator and a value whose every byte [`plain_string`] accepts, so a byte outside
        // the shape (a tab, `#`, a quote, a control or non-ASCII byte, a trailing space)
        // fails there.
        let indent = raw.bytes().take_while(|c| *c == b' ').count();
        if indent == raw.len() {
            return None;
        }
        lines.push(Line {
            indent,
            body: &raw[indent..],
        });
    }
    let mut p = Parser {
        lines,
        at: 0,
        depth: 0,
        nodes: 0,
    };
    if p.lines.first()?.indent != 0 {
        return None;
    }
    let doc = p.mapping(0, None)?;
    (p.at == p.lines.len()).then_some(Value::Object(doc))
}

/// The longest key this reader takes: YAML limits an implicit key to 1024 characters (the
/// fuzzer found the full parser refusing a longer one); every kubeconfig key is short.
pub const MAX_KEY_BYTES: usize = 256;
/// The deepest nesting this reader takes (mappings and sequences).
pub const MAX_DEPTH: usize = 32;
/// The most values (scalars and collections) this reader takes.
pub const MAX_NODES: usize = 10_000;

struct Parser<'a> {
    lines: Vec<Line<'a>>,
    at: usize,
    depth: usize,
    nodes: usize,
}

/// Bytes a key may hold after its first letter.
const KEY: u8 = 1;
/// Bytes a scalar value may hold after its first letter or `/`.
const VALUE: u8 = 2;

/// [`KEY`] and [`VALUE`] per byte: one table lookup per byte of the long `*-data` values (a
/// chain of comparisons per byte was a third of this reader's instructions).
static CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
            t[c] = KEY | VALUE;
        } else if matches!(b, b'+' | b'/' | b'=' | b':' | b'.' | b'@') {
            t[c] = VALUE;
        }
        c += 1;
    }
    t
};

/// A key or a scalar value that the full parser reads as this very string.
fn plain_string(s: &str, key: bool) -> bool {
    let b = s.as_bytes();
    let Some(first) = b.first() else {
        return false;
    };
    let first_ok = first.is_ascii_alphabetic() || (!key && *first == b'/');
    let class = if key { KEY } else { VALUE };
    let rest_ok = b[1..].iter().all(|c| CLASS[usize::from(*c)] & class != 0);
    const SPECIAL: [&str; 12] = [
        "y", "n", "yes", "no", "on", "off", "true", "false", "null", "inf", "infinity", "nan",
    ];
    first_ok
        && rest_ok
        && (!key || b.len() <= MAX_KEY_BYTES)
        && b.last() != Some(&b':')
        && (b.len() > 8 || !SPECIAL.iter().any(|w| s.eq_ignore_ascii_case(w)))
}

/// `KEY: VALUE`, `KEY:` or `KEY: {}`/`KEY: []` split into the key and what follows the colon
/// (`None` for nothing). A key holds no colon, so the first one is the separator.
fn split_entry(body: &str) -> Option<(&str, Option<&str>)> {
    let colon = body.find(':')?;
    let (key, rest) = (&body[..colon], &body[colon + 1..]);
    if rest.is_empty() {
        return Some((key, None));
    }
    Some((key, Some(rest.strip_prefix(' ')?)))
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<Line<'a>> {
        self.lines.get(self.at).copied()
    }

    /// Counts one more value; `None` past [`MAX_NODES`].
    fn node(&mut self) -> Option<()> {
        self.nodes += 1;
        (self.nodes <= MAX_NODES).then_some(())
    }

    /// Runs `f` one level deeper; `None` past [`MAX_DEPTH`].
    fn nest<T>(&mut self, f: impl FnOnce(&mut Self) -> Option<T>) -> Option<T> {
        if self.depth == MAX_DEPTH {
            return None;
        }
        self.depth += 1;
        let out = f(self);
        self.depth -= 1;
        out
    }

    /// A block mapping whose keys sit at column `indent`. `first` is the part of a sequence
    /// item's line after its `- ` (that line's first entry), if the mapping starts there.
    fn mapping(&mut self, indent: usize, first: Option<&'a str>) -> Option<Map<String, Value>> {
        let mut map = Map::new();
        let mut pending = first;
        loop {
            let body = match pending.take() {
                Some(b) => b,
                None => match self.peek() {
                    Some(l) if l.indent == indent && !l.body.starts_with('-') => {
                        self.at += 1;
                        l.body
                    }
                    Some(l) if l.indent > indent => return None,
                    _ => return Some(map),
                },
            };
            let (key, value) = split_entry(body)?;
            if !plain_string(key, true) || map.contains_key(key) {
                return None;
            }
            let value = match value {
                Some("{}") => Value::Object(Map::new()),
                Some("[]") => Value::Array(Vec::new()),
                Some(v) if plain_string(v, false) => Value::String(v.to_string()),
                Some(_) => return None,
                None => self.nested(indent)?,
            };
            self.node()?;
            map.insert(key.to_string(), value);
        }
    }

    /// What follows `KEY:` at column `indent`: a deeper mapping, a sequence at the same or a
    /// deeper column, or nothing (null).
    fn nested(&mut self, indent: usize) -> Option<Value> {
        match self.peek() {
            Some(l) if l.body.starts_with('-') && l.indent >= indent => {
                Some(Value::Array(self.nest(|p| p.sequence(l.indent))?))
            }
            Some(l) if l.indent > indent => {
                Some(Value::Object(self.nest(|p| p.mapping(l.indent, None))?))
            }
            _ => Some(Value::Null),
        }
    }

    /// A block sequence whose `- ` sits at column `indent`.
    fn sequence(&mut self, indent: usize) -> Option<Vec<Value>> {
        let mut items = Vec::new();
        while let Some(l) = self.peek() {
            if l.indent != indent || !l.body.starts_with('-') {
                if l.indent > indent {
                    return None;
                }
                break;
            }
            let rest = l.body.strip_prefix("- ")?;
            self.at += 1;
            self.node()?;
            if plain_string(rest, false) && !rest.contains(':') {
                items.push(Value::String(rest.to_string()));
            } else {
                items.push(Value::Object(
                    self.nest(|p| p.mapping(indent + 2, Some(rest)))?,
                ));
            }
        }
        Some(items)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full(text: &str) -> Option<Value> {
        serde_saphyr::from_str::<Value>(text).ok()
    }

    /// Every kubeconfig under tests/fixtures, and the ones `demo-pki` writes.
    fn corpus() -> Vec<String> {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        let mut out = Vec::new();
        for fx in std::fs::read_dir(&root).expect("tests/fixtures") {
            let dir = fx.expect("entry").path().join("kubeconfig");
            let Ok(rd) = std::fs::read_dir(&dir) else {
                continue;
            };
            for f in rd {
                out.push(std::fs::read_to_string(f.expect("entry").path()).expect("read"));
            }
        }
        // What `demo-pki` (and so renew) writes.
        for user in [
            "kubernetes-admin",
            "system:kube-scheduler",
            "system:node:cp-1",
        ] {
            out.push(crate::demo::kubeconfig_text(
                "https://10.0.0.1:6443",
                user,
                "-----BEGIN CERTIFICATE-----\nQ0E=\n-----END CERTIFICATE-----\n",
                "-----BEGIN CERTIFICATE-----\nQ0VSVA==\n-----END CERTIFICATE-----\n",
                "-----BEGIN PRIVATE KEY-----\nS0VZ\n-----END PRIVATE KEY-----\n",
            ));
        }
        assert!(out.len() >= 20, "only {} kubeconfigs found", out.len());
        out
    }

    #[test]
    fn every_fixture_kubeconfig_is_in_the_shape_and_equals_the_full_parser() {
        for text in corpus() {
            let fast = parse(&text).expect("a kubeadm kubeconfig is in the shape");
            assert_eq!(Some(fast), full(&text));
        }
    }

    /// A small deterministic generator (xorshift), so that a failure names a seed that
    /// reproduces it.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    /// Replacements that change what a scalar or a line means to YAML.
    const TOKENS: [&str; 44] = [
        " ", "  ", "#", ":", ": ", "-", "- ", "\t", "'", "\"", "{", "}", "[", "]", "{}", "[]",
        "&a", "*a", "!!str ", "|", ">", "\n", "\n\n", "\r\n", "y", "Yes", "NO", "on", "OFF",
        "true", "Null", "~", "1", "0x1F", "1e3", ".inf", "-.5", "1:20", "+1", "nan", "@x", "%",
        "?", "---",
    ];

    fn mutate(rng: &mut Rng, text: &str) -> String {
        let mut s = text.to_string();
        for _ in 0..1 + rng.below(3) {
            if s.is_empty() {
                break;
            }
            let lines: Vec<&str> = s.split('\n').collect();
            let li = rng.below(lines.len());
            let mut out: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
            match rng.below(7) {
                // A token at a random place (ASCII text: every index is a char boundary).
                0 | 1 => {
                    let at = rng.below(s.len() + 1);
                    let tok = TOKENS[rng.below(TOKENS.len())];
                    s.insert_str(at, tok);
                    continue;
                }
                // A value replaced by a token.
                2 => {
                    if let Some((k, _)) = out[li].split_once(": ") {
                        out[li] = format!("{k}: {}", TOKENS[rng.below(TOKENS.len())]);
                    }
                }
                // A key replaced by a token.
                3 => {
                    if let Some((k, v)) = out[li].split_once(':') {
                        let indent = k.len() - k.trim_start_matches([' ', '-']).len();
                        out[li] =
                            format!("{}{}:{v}", &k[..indent], TOKENS[rng.below(TOKENS.len())]);
                    }
                }
                // Indentation changed by one or two columns either way.
                4 => {
                    let d = 1 + rng.below(2);
                    if rng.below(2) == 0 {
                        out[li] = format!("{}{}", " ".repeat(d), out[li]);
                    } else {
                        let n = out[li].len() - out[li].trim_start_matches(' ').len();
                        out[li] = out[li][n.min(d)..].to_string();
                    }
                }
                // A line duplicated, removed or moved.
                5 => {
                    let l = out[li].clone();
                    match rng.below(3) {
                        0 => out.insert(li, l),
                        1 => {
                            out.remove(li);
                        }
                        _ => {
                            out.remove(li);
                            let to = rng.below(out.len() + 1);
                            out.insert(to, l);
                        }
                    }
                }
                // A byte removed.
                _ => {
                    if !out[li].is_empty() {
                        let at = rng.below(out[li].len());
                        out[li].remove(at);
                    }
                }
            }
            s = out.join("\n");
        }
        s
    }

    /// Whenever this reader answers, the full parser answers the same; over thousands of
    /// mutations of real kubeconfigs, both sides of the shape occur many times.
    #[test]
    fn equals_the_full_parser_on_mutated_kubeconfigs() {
        // The long base64 values only slow the full parser down here; a short one keeps every
        // structural case.
        let corpus: Vec<String> = corpus()
            .iter()
            .map(|t| {
                t.lines()
                    .map(|l| match l.split_once("-data: ") {
                        Some((k, _)) => format!("{k}-data: LS0tLS1CRUdJTiBDRVJU\n"),
                        None => format!("{l}\n"),
                    })
                    .collect()
            })
            .collect();
        let (mut inside, mut outside, mut differ_in_full) = (0, 0, 0);
        for seed in 1..=6000u64 {
            let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let base = &corpus[rng.below(corpus.len())];
            let text = mutate(&mut rng, base);
            match parse(&text) {
                Some(v) => {
                    inside += 1;
                    assert_eq!(
                        Some(&v),
                        full(&text).as_ref(),
                        "seed {seed}: this reader and serde-saphyr differ on:\n{text}"
                    );
                }
                None => {
                    outside += 1;
                    if full(&text).is_some() {
                        differ_in_full += 1;
                    }
                }
            }
        }
        // Both sides exercised: texts the reader takes, and texts it leaves to the full
        // parser that the full parser still accepts (the fallback is not only for errors).
        assert!(inside > 1000, "only {inside} mutations inside the shape");
        assert!(outside > 1000, "only {outside} mutations outside the shape");
        assert!(
            differ_in_full > 300,
            "only {differ_in_full} valid YAML texts left to the full parser"
        );
    }

    #[test]
    fn the_shape_refuses_what_it_cannot_be_sure_of() {
        let base = "apiVersion: v1\nkind: Config\n";
        for extra in [
            "name: yes\n",
            "name: 'quoted'\n",
            "name: 1\n",
            "name: .inf\n",
            "name: a # comment\n",
            "name: &a x\n",
            "name:  two-spaces\n",
            "name: x \n",
            "name: |\n  block\n",
            "Null: x\n",
            "kind: Config\n",
            "name: x\n\n",
            "name: x\r\n",
            "name: é\n",
            "users:\n- name: a\n   user: b\n",
            "name: a:\n",
        ] {
            let text = format!("{base}{extra}");
            assert_eq!(parse(&text), None, "{text:?}");
        }
        // A key over YAML's 1024-character limit for implicit keys (found by the fuzzer:
        // serde-saphyr refuses the document) and one over this reader's own limit.
        for n in [1100, MAX_KEY_BYTES + 1] {
            let text = format!("{base}{}: x\n", "k".repeat(n));
            assert_eq!(parse(&text), None, "{text:?}");
            assert_eq!(
                full(&text).is_some(),
                n < 1024,
                "the full parser on a {n}-byte key"
            );
        }
        // Past this reader's limits, which lie inside the full parser's: the full parser
        // decides (here it refuses the 100 levels, over its 64, and takes the 10,001 values).
        // `n` mappings, each the value of the one before, the last holding one scalar.
        let nested = |n: usize| -> String {
            let keys: String = (0..n)
                .map(|d| format!("{}k{d}:\n", " ".repeat(d)))
                .collect();
            format!("{keys}{}v: x\n", " ".repeat(n))
        };
        assert_eq!(parse(&nested(100)), None);
        assert_eq!(
            full(&nested(100)),
            None,
            "the full parser's own depth limit"
        );
        assert_eq!(parse(&nested(MAX_DEPTH + 1)), None);
        assert!(parse(&nested(MAX_DEPTH)).is_some());
        assert_eq!(parse(&nested(MAX_DEPTH)), full(&nested(MAX_DEPTH)));
        let wide: String = (0..=MAX_NODES).map(|i| format!("k{i}: v\n")).collect();
        assert_eq!(parse(&wide), None);
        assert!(full(&wide).is_some());
        let wide: String = (0..MAX_NODES).map(|i| format!("k{i}: v\n")).collect();
        assert!(parse(&wide).is_some());
        // And takes the plain ones, nested as kubeconfigs nest.
        let text = "apiVersion: v1\nusers:\n- name: system:node:cp-1@k8s\n  user:\n    exec:\n      args:\n      - get-token\n      command: /usr/bin/aws\n    token:\npreferences: {}\nextensions: []\n";
        assert_eq!(parse(text), full(text));
        assert!(parse(text).is_some());
    }
}
