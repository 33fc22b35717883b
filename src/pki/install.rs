//! The files a new certificate and key become: shared by renew, csr import and the
//! certificates API, so each writes a row the same way.

use crate::error::{Error, Result};
use crate::pki::inventory::{Entry, Location};
use crate::pki::kubeconfig::Source;
use crate::pki::store::Write_;
use crate::pki::{Found, Layout};

/// The files a new certificate + key become, for renew, csr import and the certificates API:
/// the PKI `.key`/`.crt`, or a kubeconfig's referenced files and/or its embedded data (with the
/// cluster CA re-embedded from `ca_pem`). `cert_pem` is written as given (renew appends the
/// old file's chain for PKI rows). A kubeconfig user without a client key is refused: the new
/// key would have nowhere to go.
pub fn install_writes(
    e: &Entry,
    found: &Found,
    layout: &Layout,
    cert_pem: &str,
    key_pem: &str,
    ca_pem: Option<&[u8]>,
) -> Result<Vec<Write_>> {
    let mut out = Vec::new();
    match e.location {
        Location::Pki { base } => {
            out.push(Write_ {
                target: layout.pki_key(base),
                contents: key_pem.as_bytes().to_vec(),
                mode: 0o600,
                force_mode: true,
            });
            out.push(Write_ {
                target: layout.pki_crt(base),
                contents: cert_pem.as_bytes().to_vec(),
                mode: 0o644,
                force_mode: false,
            });
        }
        Location::Kubeconfig { .. } => {
            let kc = found.kubeconfig.as_ref().ok_or_else(|| Error::Kubeconfig {
                path: layout.primary_path(e),
                reason: "not loaded".into(),
            })?;
            if matches!(kc.client_key, Source::Absent) {
                return Err(Error::Kubeconfig {
                    path: kc.path.clone(),
                    reason: format!(
                        "user {} has no client key to replace, so the new key has nowhere to go",
                        kc.user
                    ),
                });
            }
            match (&kc.client_cert, &kc.client_key) {
                (Source::File(c), Source::File(k)) if c == k => out.push(Write_ {
                    target: c.clone(),
                    contents: format!("{cert_pem}{key_pem}").into_bytes(),
                    mode: 0o600,
                    force_mode: true,
                }),
                (cs, ks) => {
                    if let Source::File(k) = ks {
                        out.push(Write_ {
                            target: k.clone(),
                            contents: key_pem.as_bytes().to_vec(),
                            mode: 0o600,
                            force_mode: true,
                        });
                    }
                    if let Source::File(c) = cs {
                        out.push(Write_ {
                            target: c.clone(),
                            contents: cert_pem.as_bytes().to_vec(),
                            mode: 0o644,
                            force_mode: false,
                        });
                    }
                }
            }
            let embedded_cert = matches!(kc.client_cert, Source::Embedded(_));
            let embedded_key = matches!(kc.client_key, Source::Embedded(_));
            if embedded_cert || embedded_key || matches!(kc.ca, Source::Embedded(_)) {
                let text = kc.rewrite_embedded(
                    embedded_cert.then_some(cert_pem.as_bytes()),
                    embedded_key.then_some(key_pem.as_bytes()),
                    ca_pem,
                )?;
                if text != kc.text {
                    out.push(Write_ {
                        target: kc.path.clone(),
                        contents: text.into_bytes(),
                        mode: 0o600,
                        force_mode: false,
                    });
                }
            }
        }
    }
    Ok(out)
}
