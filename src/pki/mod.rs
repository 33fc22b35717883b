//! The kubeadm PKI model: the inventory table, certificate/key/kubeconfig reading, issuing,
//! the on-disk layout and the crash-safe store.

pub mod cert;
pub mod filestate;
pub mod finding;
pub mod fsread;
pub mod install;
pub mod inventory;
pub mod issue;
pub mod kubeconfig;
pub mod restore;
pub mod snapshot;
pub mod store;

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use cert::{Cert, PrivateKey};
use inventory::{CaId, Entry, Location};
use kubeconfig::{Kubeconfig, Source};

/// Default PKI dir (`/etc/kubernetes/pki`).
pub const DEFAULT_CERT_DIR: &str = "/etc/kubernetes/pki";
/// Default kubeconfig dir (`/etc/kubernetes`).
pub const DEFAULT_KUBECONFIG_DIR: &str = "/etc/kubernetes";
/// Default kubelet PKI dir.
pub const DEFAULT_KUBELET_PKI: &str = "/var/lib/kubelet/pki";
/// The kubelet's rotated client pair, a symlink to the dated file.
pub const KUBELET_CLIENT_CURRENT: &str = "kubelet-client-current.pem";

/// The dated file name the kubelet gives a rotated client pair:
/// `kubelet-client-YYYY-MM-DD-HH-MM-SS.pem` in the local time zone, as the kubelet names it
/// (client-go `util/certificate/certificate_store.go`: `time.Now().Format("2006-01-02-15-04-05")`,
/// Go's local zone: `TZ`, else /etc/localtime, else UTC — jiff's system zone reads the same).
pub fn dated_client_name(unix: i64) -> String {
    dated_client_name_in(unix, &jiff::tz::TimeZone::system())
}

/// [`dated_client_name`] in the zone `tz`.
pub fn dated_client_name_in(unix: i64, tz: &jiff::tz::TimeZone) -> String {
    let t = jiff::Timestamp::from_second(unix).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    format!(
        "kubelet-client-{}.pem",
        t.to_zoned_datetime(tz.clone())
            .strftime("%Y-%m-%d-%H-%M-%S")
    )
}

/// Where a cluster's PKI is, as CLI flags and JSON-RPC params name it. Every `…Params` type
/// that reads a whole PKI flattens it (`#[serde(flatten)]`), so the three fields stay
/// top-level params on the wire; [`PkiLocation::layout`] is the one place they become a
/// [`Layout`].
#[derive(
    Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub struct PkiLocation {
    /// PKI dir (default `/etc/kubernetes/pki`).
    #[serde(default)]
    pub cert_dir: Option<String>,
    /// Dir holding admin.conf & co (default `/etc/kubernetes`).
    #[serde(default)]
    pub kubeconfig_dir: Option<String>,
    /// External etcd: drop the etcd rows. Default: auto (no `<cert_dir>/etcd`).
    #[serde(default)]
    pub external_etcd: Option<bool>,
}

impl PkiLocation {
    /// The layout, defaults resolved.
    pub fn layout(&self) -> Layout {
        Layout::new(
            self.cert_dir.as_deref().unwrap_or(DEFAULT_CERT_DIR),
            self.kubeconfig_dir
                .as_deref()
                .unwrap_or(DEFAULT_KUBECONFIG_DIR),
            self.external_etcd,
        )
    }
}

/// Where a cluster's files are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// The PKI dir.
    pub cert_dir: PathBuf,
    /// The dir with admin.conf & co.
    pub kubeconfig_dir: PathBuf,
    /// External etcd: the etcd rows are not part of this cluster's inventory.
    pub external_etcd: bool,
}

impl Layout {
    /// Builds a layout; `external_etcd: None` auto-detects (no `<cert_dir>/etcd` dir).
    pub fn new(
        cert_dir: impl Into<PathBuf>,
        kubeconfig_dir: impl Into<PathBuf>,
        external_etcd: Option<bool>,
    ) -> Self {
        let cert_dir = cert_dir.into();
        let external_etcd = external_etcd.unwrap_or_else(|| !cert_dir.join("etcd").is_dir());
        Layout {
            cert_dir,
            kubeconfig_dir: kubeconfig_dir.into(),
            external_etcd,
        }
    }

    /// Rows that apply to this layout.
    pub fn rows(&self) -> impl Iterator<Item = &'static Entry> {
        inventory::rows(self.external_etcd)
    }

    /// The CAs that apply to this layout.
    pub fn cas(&self) -> impl Iterator<Item = CaId> + '_ {
        CaId::ALL
            .into_iter()
            .filter(|c| !(self.external_etcd && c.local_etcd()))
    }

    /// `<cert_dir>/<base>.crt`.
    pub fn pki_crt(&self, base: &str) -> PathBuf {
        self.cert_dir.join(format!("{base}.crt"))
    }

    /// `<cert_dir>/<base>.key`.
    pub fn pki_key(&self, base: &str) -> PathBuf {
        self.cert_dir.join(format!("{base}.key"))
    }

    /// The file that decides whether a row is present: the `.crt` for PKI rows, the
    /// kubeconfig for kubeconfig rows (as kubeadm judges existence).
    pub fn primary_path(&self, e: &Entry) -> PathBuf {
        match e.location {
            Location::Pki { base } => self.pki_crt(base),
            Location::Kubeconfig { file } => self.kubeconfig_dir.join(file),
        }
    }

    /// The CA cert path.
    pub fn ca_crt(&self, ca: CaId) -> PathBuf {
        self.pki_crt(ca.base_name())
    }

    /// The CA key path.
    pub fn ca_key(&self, ca: CaId) -> PathBuf {
        self.pki_key(ca.base_name())
    }

    /// The files of a CA rotation (`ca rotate`): `<ca-path>.<which>.crt` and `.key`, where
    /// `which` is `next` (the staged new CA) or `prev` (the old CA after promote).
    pub fn ca_rotation_pair(&self, ca: CaId, which: &str) -> (PathBuf, PathBuf) {
        let base = format!("{}.{which}", ca.base_name());
        (self.pki_crt(&base), self.pki_key(&base))
    }

    /// Every CA rotation file of the layout's CAs (what a restore of a rotation backup may
    /// write back or remove).
    pub fn ca_rotation_files(&self) -> Vec<PathBuf> {
        let mut v = Vec::new();
        for id in self.cas() {
            for which in ["next", "prev"] {
                let (c, k) = self.ca_rotation_pair(id, which);
                v.push(c);
                v.push(k);
            }
        }
        v
    }
}

/// Whether a path is an existing regular file (following symlinks, like os.Stat).
pub fn file_exists(p: &Path) -> bool {
    if filestate::recording() {
        let seen = filestate::observe(p, filestate::How::Follow);
        let exists =
            matches!(&seen, filestate::Observed::File(i) if i.mode & libc::S_IFMT == libc::S_IFREG);
        filestate::record(p, filestate::How::Follow, || seen);
        return exists;
    }
    std::fs::metadata(p).map(|m| m.is_file()).unwrap_or(false)
}

/// A certificate as found on disk, with where its key is.
#[derive(Debug)]
pub struct Found {
    /// The certificate.
    pub cert: Cert,
    /// The file the certificate came from (the kubeconfig for embedded certs).
    pub cert_path: PathBuf,
    /// The key material's origin.
    pub key: KeyOrigin,
    /// The kubeconfig, for kubeconfig rows.
    pub kubeconfig: Option<Kubeconfig>,
}

/// Where a certificate's private key comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyOrigin {
    /// A PEM file.
    File(PathBuf),
    /// Embedded `client-key-data` of a kubeconfig.
    Embedded(PathBuf),
    /// The kubeconfig has no key.
    Absent,
}

/// The state of one row on disk.
#[derive(Debug)]
pub enum Material {
    /// The file kubeadm judges existence by is absent.
    Missing,
    /// Present but unusable.
    Broken(Error),
    /// Present and parsed.
    Present(Box<Found>),
}

/// Loads a row's certificate. A row is missing when nothing is at its path; anything else
/// there is read through [`fsread`] (a symlink, a device, a FIFO, a directory or an oversized
/// file is a typed error naming the file, never followed or read into memory).
///
/// The file is read first and its existence tested (`lstat`) only when that fails: the
/// verdict is the same as testing first (absent → missing, present but refused or unusable
/// → broken), with one system call less per row in the common case.
pub fn load(layout: &Layout, e: &Entry) -> Material {
    let primary = layout.primary_path(e);
    let refused = |err: Error| {
        if fsread::exists_nofollow(&primary) {
            Material::Broken(err)
        } else {
            Material::Missing
        }
    };
    match e.location {
        Location::Pki { base } => {
            let bytes = match cert::read_file(&primary) {
                Ok(b) => b,
                Err(err) => return refused(err),
            };
            match cert::parse_pem_bundle(&bytes) {
                Ok(c) => Material::Present(Box::new(Found {
                    cert: c,
                    cert_path: primary,
                    key: KeyOrigin::File(layout.pki_key(base)),
                    kubeconfig: None,
                })),
                Err(source) => Material::Broken(Error::Pem {
                    path: primary,
                    source,
                }),
            }
        }
        Location::Kubeconfig { .. } => {
            let kc = match Kubeconfig::load(&primary) {
                Ok(k) => k,
                Err(err) => return refused(err),
            };
            let (pem, cert_path) = match &kc.client_cert {
                Source::File(p) => match fsread::read_link_in_dir(p) {
                    Ok(b) => (b, p.clone()),
                    Err(err) => return Material::Broken(err),
                },
                _ => match kc.client_cert_pem() {
                    Ok(b) => (b, primary.clone()),
                    Err(err) => return Material::Broken(err),
                },
            };
            let key = match &kc.client_key {
                Source::File(p) => KeyOrigin::File(p.clone()),
                Source::Embedded(_) => KeyOrigin::Embedded(primary.clone()),
                Source::Absent => KeyOrigin::Absent,
            };
            match cert::parse_pem_bundle(&pem) {
                Ok(c) => Material::Present(Box::new(Found {
                    cert: c,
                    cert_path,
                    key,
                    kubeconfig: Some(kc),
                })),
                Err(source) => Material::Broken(Error::Pem {
                    path: primary,
                    source,
                }),
            }
        }
    }
}

impl Found {
    /// Loads the private key that belongs to this certificate.
    pub fn load_key(&self) -> Result<PrivateKey> {
        match &self.key {
            KeyOrigin::File(p) => {
                let bytes = self.read_key_file(p)?;
                cert::parse_private_key(&bytes).map_err(|source| Error::Pem {
                    path: p.clone(),
                    source,
                })
            }
            KeyOrigin::Embedded(p) => {
                let kc = self.kubeconfig.as_ref().ok_or_else(|| Error::Kubeconfig {
                    path: p.clone(),
                    reason: "no kubeconfig".into(),
                })?;
                let bytes = kc.client_key_pem()?;
                cert::parse_private_key(&bytes).map_err(|source| Error::Pem {
                    path: p.clone(),
                    source,
                })
            }
            KeyOrigin::Absent => Err(Error::Kubeconfig {
                path: self.cert_path.clone(),
                reason: "no client key".into(),
            }),
        }
    }

    /// Reads a key file: a PKI key must be a regular file; a kubeconfig's `client-key` may be
    /// the kubelet's rotation symlink within its own directory.
    pub fn read_key_file(&self, p: &Path) -> Result<Vec<u8>> {
        if self.kubeconfig.is_some() {
            fsread::read_link_in_dir(p)
        } else {
            fsread::read(p)
        }
    }

    /// Whether the key file exists (kubeconfig-embedded keys always "exist").
    pub fn key_exists(&self) -> bool {
        match &self.key {
            KeyOrigin::File(p) => file_exists(p),
            KeyOrigin::Embedded(_) => true,
            KeyOrigin::Absent => false,
        }
    }
}

/// A CA as found on disk.
#[derive(Debug)]
pub struct CaMaterial {
    /// Which CA.
    pub id: CaId,
    /// Its certificate.
    pub cert: Material,
    /// Whether `<ca>.key` exists (stat only, as kubeadm's UsingExternalCA does).
    pub key_present: bool,
}

impl CaMaterial {
    /// Loads a CA's certificate and checks whether its key exists.
    pub fn load(layout: &Layout, id: CaId) -> Self {
        CaMaterial {
            id,
            cert: load(layout, id.entry()),
            key_present: file_exists(&layout.ca_key(id)),
        }
    }

    /// kubeadm's "externally managed": CA cert present, key absent.
    pub fn externally_managed(&self) -> bool {
        matches!(self.cert, Material::Present(_)) && !self.key_present
    }

    /// The CA certificate, if present and parsed.
    pub fn cert(&self) -> Option<&Cert> {
        match &self.cert {
            Material::Present(f) => Some(&f.cert),
            _ => None,
        }
    }
}

/// All three CAs of a layout (absent ones for external etcd are `Missing`).
pub struct Cas(pub Vec<CaMaterial>);

impl Cas {
    /// Loads the CAs of a layout.
    pub fn load(layout: &Layout) -> Self {
        Cas(layout.cas().map(|c| CaMaterial::load(layout, c)).collect())
    }

    /// One CA.
    pub fn get(&self, id: CaId) -> Option<&CaMaterial> {
        self.0.iter().find(|c| c.id == id)
    }

    /// Which of the loaded CAs signed `der` (by signature, not by subject).
    pub fn signer_of(&self, der: &[u8]) -> Option<CaId> {
        let signed = cert::Signed::of(der)?;
        self.0.iter().find_map(|c| {
            c.cert()
                .filter(|ca| signed.verified_by(&ca.info))
                .map(|_| c.id)
        })
    }

    /// [`Cas::signer_of`] for a parsed certificate: the same verifications, from the parts
    /// its one parse kept and the CAs' keys parsed once ([`cert::CertInfo::signed_by`]).
    pub fn signer_of_cert(&self, leaf: &Cert) -> Option<CaId> {
        self.0.iter().find_map(|c| {
            c.cert()
                .filter(|ca| leaf.info.signed_by(&leaf.der, &ca.info))
                .map(|_| c.id)
        })
    }
}
