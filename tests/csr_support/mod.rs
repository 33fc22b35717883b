//! Helpers for the external-CA tests (tests/csr_*.rs): a demo PKI whose `ca.key` and
//! `front-proxy-ca.key` live outside the PKI dir, real `openssl ca` and `cfssl` signers,
//! on top of the shared helpers of tests/common (re-exported; `run` is `common::kubecert`).
#![allow(dead_code)]

#[path = "../common/mod.rs"]
mod common;
pub use common::kubecert as run;
pub use common::*;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use kubecert::pki::inventory::{self, CaId, Role};

/// A demo cluster in a tempdir: `<root>/k8s` (kubeconfigs) with `<root>/k8s/pki`, CA keys
/// moved out of the PKI into `<root>/offline`, and a CSR dir `<root>/csr`.
pub struct Cluster {
    pub tmp: tempfile::TempDir,
    pub kube: PathBuf,
    pub pki: PathBuf,
    pub offline: PathBuf,
    pub csr: PathBuf,
}

impl Cluster {
    /// `kubecert demo-pki` with every key of `alg`.
    pub fn demo(alg: &str) -> Cluster {
        let tmp = tempfile::tempdir().unwrap();
        let kube = tmp.path().join("k8s");
        ok(&["demo-pki", kube.to_str().unwrap(), "--key-algorithm", alg]);
        let offline = tmp.path().join("offline");
        std::fs::create_dir_all(&offline).unwrap();
        Cluster {
            pki: kube.join("pki"),
            csr: tmp.path().join("csr"),
            kube,
            offline,
            tmp,
        }
    }

    /// Moves ca.key and front-proxy-ca.key out of the PKI: external CA mode for both.
    pub fn externalize(&self) {
        for k in ["ca.key", "front-proxy-ca.key"] {
            std::fs::rename(self.pki.join(k), self.offline.join(k)).unwrap();
        }
    }

    pub fn dirs(&self) -> Vec<String> {
        vec![
            "--cert-dir".into(),
            self.pki.display().to_string(),
            "--kubeconfig-dir".into(),
            self.kube.display().to_string(),
        ]
    }

    /// Runs `kubecert <args> --cert-dir .. --kubeconfig-dir ..`.
    pub fn run(&self, args: &[&str]) -> Output {
        let mut v: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        v.extend(self.dirs());
        let r: Vec<&str> = v.iter().map(String::as_str).collect();
        run(&r)
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "kubecert {args:?} failed:\n{}",
            text(&o)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let o = self.run(args);
        serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|e| panic!("kubecert {args:?}: not JSON ({e}):\n{}", text(&o)))
    }

    pub fn csr_dir(&self) -> &str {
        self.csr.to_str().unwrap()
    }

    /// The cert and key that sign for `ca` (keys of external CAs come from `offline`).
    pub fn ca_files(&self, ca: CaId) -> (PathBuf, PathBuf) {
        let crt = self.pki.join(format!("{}.crt", ca.base_name()));
        let key_name = format!("{}.key", ca.base_name());
        let key = if self.offline.join(&key_name).exists() {
            self.offline.join(&key_name)
        } else {
            self.pki.join(&key_name)
        };
        (crt, key)
    }

    /// Every renewable row's name (stacked etcd).
    pub fn names(&self) -> Vec<&'static str> {
        inventory::renewable(false).map(|e| e.name).collect()
    }

    /// The installed certificate of a row as PEM (kubeconfig certs decoded from base64).
    pub fn installed_cert_pem(&self, name: &str) -> String {
        let e = inventory::find(name).unwrap();
        match e.location {
            inventory::Location::Pki { base } => {
                std::fs::read_to_string(self.pki.join(format!("{base}.crt"))).unwrap()
            }
            inventory::Location::Kubeconfig { file } => {
                kubeconfig_data(&self.kube.join(file), "client-certificate-data")
            }
        }
    }

    /// The installed key of a row as PEM.
    pub fn installed_key_pem(&self, name: &str) -> String {
        let e = inventory::find(name).unwrap();
        match e.location {
            inventory::Location::Pki { base } => {
                std::fs::read_to_string(self.pki.join(format!("{base}.key"))).unwrap()
            }
            inventory::Location::Kubeconfig { file } => {
                kubeconfig_data(&self.kube.join(file), "client-key-data")
            }
        }
    }
}

/// Decodes `<key>: <base64>` from a kubeconfig (the first occurrence: kubeadm writes one user).
pub fn kubeconfig_data(path: &Path, key: &str) -> String {
    use base64::Engine;
    let text = std::fs::read_to_string(path).unwrap();
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("{key}:")))
        .unwrap_or_else(|| panic!("{key} not in {}", path.display()));
    let b64 = line.split_once(':').unwrap().1.trim();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    String::from_utf8(bytes).unwrap()
}

/// The signing profile of a role: `server`, `client` or `peer` (server+client, etcd).
pub fn profile(role: Role) -> &'static str {
    match role {
        Role::Server => "server",
        Role::Client => "client",
        Role::ServerAndClient => "peer",
        Role::Authority => panic!("CAs are not signed here"),
    }
}

/// Options for one `openssl ca` signature.
#[derive(Default, Clone)]
pub struct SignOpts {
    /// Extension section to use instead of the role's profile.
    pub section: Option<String>,
    /// `-startdate` (YYYYMMDDHHMMSSZ).
    pub startdate: Option<String>,
    /// `-enddate` (YYYYMMDDHHMMSSZ).
    pub enddate: Option<String>,
    /// Leave out `-preserveDN` (openssl then orders the subject by its policy).
    pub no_preserve_dn: bool,
    /// `-subj` (replaces the requested subject).
    pub subj: Option<String>,
    /// `-policy` (a section of the config).
    pub policy: Option<String>,
}

/// An `openssl ca` setup for one CA: database, serial and a config with per-role extension
/// sections (server: serverAuth; client: clientAuth; peer: both), SANs copied from the CSR.
pub struct OpensslCa {
    pub dir: PathBuf,
    pub conf: PathBuf,
}

impl OpensslCa {
    pub fn new(dir: &Path, crt: &Path, key: &Path, extra: &str) -> OpensslCa {
        std::fs::create_dir_all(dir.join("newcerts")).unwrap();
        std::fs::write(dir.join("index.txt"), "").unwrap();
        std::fs::write(dir.join("serial"), "1000\n").unwrap();
        let conf = dir.join("openssl.cnf");
        let text = format!(
            r#"[ ca ]
default_ca = CA_default

[ CA_default ]
dir = {dir}
database = $dir/index.txt
new_certs_dir = $dir/newcerts
serial = $dir/serial
certificate = {crt}
private_key = {key}
default_md = sha256
policy = policy_any
copy_extensions = copy
unique_subject = no
email_in_dn = no
default_days = 200

[ policy_any ]
organizationName = optional
commonName = optional

[ server ]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid

[ client ]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid

[ peer ]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth,clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid

[ v3_intermediate ]
basicConstraints = critical,CA:TRUE
keyUsage = critical,digitalSignature,keyCertSign,cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
{extra}
"#,
            dir = dir.display(),
            crt = crt.display(),
            key = key.display(),
        );
        std::fs::write(&conf, text).unwrap();
        OpensslCa {
            dir: dir.to_path_buf(),
            conf,
        }
    }

    /// Signs `csr` into `out` with the given extension section.
    pub fn sign(&self, csr: &Path, section: &str, out: &Path, o: &SignOpts) {
        let conf = self.conf.display().to_string();
        let (csr_s, out_s) = (csr.display().to_string(), out.display().to_string());
        let mut args: Vec<&str> = vec![
            "ca",
            "-batch",
            "-notext",
            "-config",
            &conf,
            "-extensions",
            section,
            "-in",
            &csr_s,
            "-out",
            &out_s,
        ];
        if !o.no_preserve_dn {
            args.push("-preserveDN");
        }
        if let Some(s) = &o.startdate {
            args.extend(["-startdate", s]);
        }
        if let Some(e) = &o.enddate {
            args.extend(["-enddate", e]);
        }
        if let Some(s) = &o.subj {
            args.extend(["-subj", s]);
        }
        if let Some(p) = &o.policy {
            args.extend(["-policy", p]);
        }
        openssl(&args);
    }
}

/// One openssl CA per PKI CA (keys from wherever they are), in `<root>/openssl-<ca>`.
pub fn openssl_cas(c: &Cluster, extra: &str) -> BTreeMap<CaId, OpensslCa> {
    CaId::ALL
        .into_iter()
        .map(|ca| {
            let (crt, key) = c.ca_files(ca);
            let dir = c.tmp.path().join(format!("openssl-{}", ca.name()));
            (ca, OpensslCa::new(&dir, &crt, &key, extra))
        })
        .collect()
}

/// Signs every exported CSR with `openssl ca` into `<csr>/<name>.crt`.
pub fn sign_all_openssl(c: &Cluster, cas: &BTreeMap<CaId, OpensslCa>) {
    for name in c.names() {
        let e = inventory::find(name).unwrap();
        let ca = &cas[&e.ca.unwrap()];
        ca.sign(
            &c.csr.join(format!("{name}.csr")),
            profile(e.role),
            &c.csr.join(format!("{name}.crt")),
            &SignOpts::default(),
        );
    }
}

/// Signs every exported CSR with openssl (the usual setup of the refusal tests).
pub fn exported_and_signed(alg: &str) -> (Cluster, BTreeMap<CaId, OpensslCa>) {
    let c = Cluster::demo(alg);
    c.externalize();
    c.ok(&["csr", "export", "all", "--csr-dir", c.csr_dir()]);
    let cas = openssl_cas(&c, "");
    sign_all_openssl(&c, &cas);
    (c, cas)
}

/// The cfssl signing config: profiles server/client/peer (kubeadm's usages per role).
pub fn cfssl_config(dir: &Path) -> PathBuf {
    let p = dir.join("cfssl.json");
    let cfg = serde_json::json!({
        "signing": {
            "default": {"expiry": "2400h"},
            "profiles": {
                "server": {"expiry": "2400h", "usages": ["signing", "key encipherment", "server auth"]},
                "client": {"expiry": "2400h", "usages": ["signing", "key encipherment", "client auth"]},
                "peer": {"expiry": "2400h", "usages": ["signing", "key encipherment", "server auth", "client auth"]}
            }
        }
    });
    std::fs::write(&p, serde_json::to_vec_pretty(&cfg).unwrap()).unwrap();
    p
}

/// `cfssl sign -ca .. -ca-key .. -config .. -profile P req.csr`, its JSON parsed with
/// serde_json (no cfssljson needed); returns the certificate PEM.
pub fn cfssl_sign(
    ca_crt: &Path,
    ca_key: &Path,
    config: &Path,
    profile: &str,
    csr: &Path,
) -> String {
    let o = Command::new("cfssl")
        .args([
            "sign",
            "-ca",
            ca_crt.to_str().unwrap(),
            "-ca-key",
            ca_key.to_str().unwrap(),
            "-config",
            config.to_str().unwrap(),
            "-profile",
            profile,
            csr.to_str().unwrap(),
        ])
        .output()
        .expect("run cfssl");
    assert!(o.status.success(), "cfssl sign failed:\n{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("cfssl output is not JSON ({e}):\n{}", text(&o)));
    v["cert"]
        .as_str()
        .unwrap_or_else(|| panic!("no cert in cfssl output: {v}"))
        .to_string()
}

/// `YYYYMMDDHHMMSSZ` for `openssl ca -startdate/-enddate`, `days` from now.
pub fn openssl_date(days: i64) -> String {
    let t = time::OffsetDateTime::now_utc() + time::Duration::days(days);
    format!(
        "{:04}{:02}{:02}{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// The `certificates[]` entry of `name` in a kubecert JSON result.
pub fn item<'a>(v: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    v["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("{name} not in {v}"))
}
