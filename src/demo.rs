//! `demo-pki`: a kubeadm-like PKI made with the same issuing code renew uses — three CAs,
//! every leaf and kubeconfig with kubeadm's subjects, SANs and usages; with `nodes > 1`, N
//! control-plane nodes share the CAs, each with its own leaves, as `kubeadm join
//! --control-plane` leaves them. Node K is `node-K` at 127.0.1.K.

use std::fs;
use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use rcgen::KeyPair;

use crate::error::{Error, Result};
use crate::pki::cert::{parse_der, Cert, KeyFormat, PrivateKey};
use crate::pki::issue::{self, CaSigner, KeyAlgorithm, LeafSpec};
use crate::pki::kubeconfig::encode_data;

/// Options of `demo-pki`.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Output dir.
    pub dir: PathBuf,
    /// Number of control-plane nodes (1 = flat layout).
    pub nodes: u32,
    /// Leaf validity in seconds from `now`.
    pub leaf_validity: i64,
    /// Key algorithm for every key (`Same` means RSA-2048).
    pub key_algorithm: KeyAlgorithm,
    /// Clock.
    pub now: i64,
    /// Overwrite an existing PKI.
    pub force: bool,
    /// Also write a kubelet PKI dir `<root>/kubelet-pki` as a kubelet with client rotation
    /// leaves it (a dated `kubelet-client-<time>.pem` holding cert and key, the
    /// `kubelet-client-current.pem` symlink to it, a self-generated `kubelet.crt`/`kubelet.key`
    /// issued by a `<node>-ca@<time>` CA of its own) and a kubelet.conf that references
    /// `kubelet-client-current.pem` instead of embedding its credential.
    pub kubelet: bool,
}

struct Ca {
    cert: Cert,
    key: PrivateKey,
    pem: String,
    key_pem: String,
}

fn io<T>(p: &Path, r: std::io::Result<T>) -> Result<T> {
    r.map_err(|e| Error::io(p, e))
}

fn write(path: &Path, data: &[u8], mode: u32) -> Result<()> {
    if let Some(d) = path.parent() {
        io(
            d,
            fs::DirBuilder::new().recursive(true).mode(0o755).create(d),
        )?;
    }
    let mut f = io(
        path,
        fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .mode(mode)
            .open(path),
    )?;
    io(path, f.write_all(data))?;
    use std::os::unix::fs::PermissionsExt;
    io(path, f.set_permissions(fs::Permissions::from_mode(mode)))
}

fn err(name: &str, e: impl Into<crate::error::BoxError>) -> Error {
    Error::Issue {
        cert: name.to_string(),
        reason: crate::error::Reason::of(e),
    }
}

fn alg(a: KeyAlgorithm) -> KeyAlgorithm {
    a.resolve(&crate::pki::cert::PublicKeyAlgorithm::Rsa(2048))
}

fn make_ca(name: &str, cn: &str, o: &DemoOptions) -> Result<Ca> {
    let (key, key_pem) = issue::new_key(alg(o.key_algorithm)).map_err(|e| err(name, e))?;
    let der = issue::self_signed_ca(
        cn,
        &key.pair,
        o.now - issue::BACKDATE_SECONDS,
        o.now + issue::CA_VALIDITY_SECONDS,
    )
    .map_err(|e| err(name, e))?;
    let info = parse_der(&der).map_err(|e| err(name, e))?;
    Ok(Ca {
        pem: issue::cert_pem(&der),
        cert: Cert {
            der,
            chain: vec![],
            info,
        },
        key,
        key_pem,
    })
}

/// (file stem, CA, CN, O values, DNS SANs, IP SANs, EKUs) of one demo leaf.
type LeafRow<'a> = (
    &'a str,
    &'a Ca,
    &'a str,
    Vec<&'a str>,
    Vec<String>,
    Vec<IpAddr>,
    Vec<&'a str>,
);

struct Leaf {
    cert_pem: String,
    key_pem: String,
}

#[allow(clippy::too_many_arguments)]
fn make_leaf(
    name: &str,
    ca: &Ca,
    cn: &str,
    orgs: &[&str],
    dns: &[String],
    ips: &[IpAddr],
    eku: &[&str],
    o: &DemoOptions,
) -> Result<Leaf> {
    let kp: KeyPair = issue::generate_key(alg(o.key_algorithm)).map_err(|e| err(name, e))?;
    let mut spec = LeafSpec {
        subject_der: issue::name_der(cn, orgs),
        dns_names: dns.to_vec(),
        ip_addresses: ips.to_vec(),
        uris: vec![],
        emails: vec![],
        ext_key_usage: eku.iter().map(|s| s.to_string()).collect(),
        not_before: o.now - issue::BACKDATE_SECONDS,
        not_after: o.now + o.leaf_validity,
    };
    spec.normalize();
    let der = issue::sign_leaf(
        &spec,
        &kp,
        &CaSigner {
            cert: &ca.cert,
            key: &ca.key,
        },
    )
    .map_err(|e| err(name, e))?;
    Ok(Leaf {
        cert_pem: issue::cert_pem(&der),
        key_pem: issue::key_pem(&kp, KeyFormat::Pkcs8).map_err(|e| err(name, e))?,
    })
}

/// kubeconfig text as kubeadm writes it.
pub fn kubeconfig_text(
    server: &str,
    user: &str,
    ca_pem: &str,
    cert_pem: &str,
    key_pem: &str,
) -> String {
    format!(
        "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: {}\n    server: {server}\n  name: kubernetes\ncontexts:\n- context:\n    cluster: kubernetes\n    user: {user}\n  name: {user}@kubernetes\ncurrent-context: {user}@kubernetes\nkind: Config\npreferences: {{}}\nusers:\n- name: {user}\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\n",
        encode_data(ca_pem.as_bytes()),
        encode_data(cert_pem.as_bytes()),
        encode_data(key_pem.as_bytes()),
    )
}

/// Writes `<root>/kubelet-pki` (see [`DemoOptions::kubelet`]) with `client` as the rotated
/// client pair; returns the absolute path of `kubelet-client-current.pem`.
fn demo_kubelet_pki(
    root: &Path,
    node: &str,
    ip: IpAddr,
    client: &Leaf,
    o: &DemoOptions,
) -> Result<PathBuf> {
    use crate::check::kubelet::{dated_client_name, CLIENT_CURRENT, SERVING_CRT, SERVING_KEY};
    let dir = std::path::absolute(root.join("kubelet-pki")).map_err(|e| Error::io(root, e))?;
    let dated = dir.join(dated_client_name(o.now));
    write(
        &dated,
        format!("{}{}", client.cert_pem, client.key_pem).as_bytes(),
        0o600,
    )?;
    let current = dir.join(CLIENT_CURRENT);
    if std::fs::symlink_metadata(&current).is_ok() {
        io(&current, fs::remove_file(&current))?;
    }
    io(&current, std::os::unix::fs::symlink(&dated, &current))?;
    // The kubelet's own serving pair: a leaf `<node>@<time>` issued by `<node>-ca@<time>`,
    // both certificates in kubelet.crt (client-go's GenerateSelfSignedCertKey).
    let own = make_ca("kubelet-ca", &format!("{node}-ca@{}", o.now), o)?;
    let serving = make_leaf(
        "kubelet.crt",
        &own,
        &format!("{node}@{}", o.now),
        &[],
        &[node.to_string()],
        &[ip],
        &["serverAuth"],
        o,
    )?;
    write(
        &dir.join(SERVING_CRT),
        format!("{}{}", serving.cert_pem, own.pem).as_bytes(),
        0o644,
    )?;
    write(&dir.join(SERVING_KEY), serving.key_pem.as_bytes(), 0o600)?;
    Ok(current)
}

/// Creates the demo PKI; returns the node roots (`DIR` or `DIR/node-K`).
pub fn demo_pki(o: &DemoOptions) -> Result<Vec<PathBuf>> {
    if o.nodes == 0 || o.nodes > 200 {
        return Err(Error::InvalidArgument(
            "--nodes must be between 1 and 200".into(),
        ));
    }
    let roots: Vec<PathBuf> = if o.nodes == 1 {
        vec![o.dir.clone()]
    } else {
        (1..=o.nodes)
            .map(|k| o.dir.join(format!("node-{k}")))
            .collect()
    };
    for r in &roots {
        if r.join("pki").exists() && !o.force {
            return Err(Error::InvalidArgument(format!(
                "{} already exists (pass --force to overwrite)",
                r.join("pki").display()
            )));
        }
    }
    let ca = make_ca("ca", "kubernetes", o)?;
    let fp = make_ca("front-proxy-ca", "front-proxy-ca", o)?;
    let etcd = make_ca("etcd-ca", "etcd-ca", o)?;
    let sa = issue::generate_key(KeyAlgorithm::Rsa2048).map_err(|e| err("sa", e))?;
    let sa_key = issue::key_pem(&sa, KeyFormat::Pkcs8).map_err(|e| err("sa", e))?;
    let sa_pub = sa.public_key_pem();
    for (i, root) in roots.iter().enumerate() {
        let k = i + 1;
        let node = format!("node-{k}");
        let ip: IpAddr = format!("127.0.1.{k}")
            .parse()
            .map_err(|e| Error::InvalidArgument(format!("{e}")))?;
        let pki = root.join("pki");
        io(
            &pki,
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(pki.join("etcd")),
        )?;
        for (c, base) in [(&ca, "ca"), (&fp, "front-proxy-ca"), (&etcd, "etcd/ca")] {
            write(&pki.join(format!("{base}.crt")), c.pem.as_bytes(), 0o644)?;
            write(
                &pki.join(format!("{base}.key")),
                c.key_pem.as_bytes(),
                0o600,
            )?;
        }
        write(&pki.join("sa.key"), sa_key.as_bytes(), 0o600)?;
        write(&pki.join("sa.pub"), sa_pub.as_bytes(), 0o644)?;
        let api_dns: Vec<String> = [
            node.as_str(),
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let svc_ip: IpAddr = "10.96.0.1"
            .parse()
            .map_err(|e| Error::InvalidArgument(format!("{e}")))?;
        let lo4: IpAddr = "127.0.0.1"
            .parse()
            .map_err(|e| Error::InvalidArgument(format!("{e}")))?;
        let lo6: IpAddr = "::1"
            .parse()
            .map_err(|e| Error::InvalidArgument(format!("{e}")))?;
        let etcd_dns = vec![node.clone(), "localhost".to_string()];
        let etcd_ips = [ip, lo4, lo6];
        let leaves: Vec<LeafRow<'_>> = vec![
            (
                "apiserver",
                &ca,
                "kube-apiserver",
                vec![],
                api_dns,
                vec![svc_ip, ip],
                vec!["serverAuth"],
            ),
            (
                "apiserver-kubelet-client",
                &ca,
                "kube-apiserver-kubelet-client",
                vec!["kubeadm:cluster-admins"],
                vec![],
                vec![],
                vec!["clientAuth"],
            ),
            (
                "apiserver-etcd-client",
                &etcd,
                "kube-apiserver-etcd-client",
                vec![],
                vec![],
                vec![],
                vec!["clientAuth"],
            ),
            (
                "front-proxy-client",
                &fp,
                "front-proxy-client",
                vec![],
                vec![],
                vec![],
                vec!["clientAuth"],
            ),
            (
                "etcd/server",
                &etcd,
                node.as_str(),
                vec![],
                etcd_dns.clone(),
                etcd_ips.to_vec(),
                vec!["serverAuth", "clientAuth"],
            ),
            (
                "etcd/peer",
                &etcd,
                node.as_str(),
                vec![],
                etcd_dns.clone(),
                etcd_ips.to_vec(),
                vec!["serverAuth", "clientAuth"],
            ),
            (
                "etcd/healthcheck-client",
                &etcd,
                "kube-etcd-healthcheck-client",
                vec![],
                vec![],
                vec![],
                vec!["clientAuth"],
            ),
        ];
        for (base, c, cn, orgs, dns, ips, eku) in leaves {
            let l = make_leaf(base, c, cn, &orgs, &dns, &ips, &eku, o)?;
            write(
                &pki.join(format!("{base}.key")),
                l.key_pem.as_bytes(),
                0o600,
            )?;
            write(
                &pki.join(format!("{base}.crt")),
                l.cert_pem.as_bytes(),
                0o644,
            )?;
        }
        let server = format!("https://{ip}:6443");
        let node_user = format!("system:node:{node}");
        let kcs: Vec<(&str, &str, Vec<&str>)> = vec![
            (
                "admin.conf",
                "kubernetes-admin",
                vec!["kubeadm:cluster-admins"],
            ),
            (
                "super-admin.conf",
                "kubernetes-super-admin",
                vec!["system:masters"],
            ),
            (
                "controller-manager.conf",
                "system:kube-controller-manager",
                vec![],
            ),
            ("scheduler.conf", "system:kube-scheduler", vec![]),
            ("kubelet.conf", node_user.as_str(), vec!["system:nodes"]),
        ];
        for (file, user, orgs) in kcs {
            let l = make_leaf(file, &ca, user, &orgs, &[], &[], &["clientAuth"], o)?;
            let text = if o.kubelet && file == "kubelet.conf" {
                let current = demo_kubelet_pki(root, &node, ip, &l, o)?;
                crate::pki::kubeconfig::client_file_kubeconfig(
                    &server,
                    "kubernetes",
                    user,
                    &encode_data(ca.pem.as_bytes()),
                    &current,
                )
            } else {
                kubeconfig_text(&server, user, &ca.pem, &l.cert_pem, &l.key_pem)
            };
            write(&root.join(file), text.as_bytes(), 0o600)?;
        }
    }
    Ok(roots)
}
