//! PEM private keys (PKCS#1, SEC1, PKCS#8): `parse_private_key`, then what `check` does
//! with a key: the quick public-half match (`key_matches_quickly`) and the real key ↔ cert
//! match, against real kubeadm certificates. The quick match must never say "match" where
//! the loaded key does not.
#![no_main]

use std::sync::OnceLock;

use kubecert::pki::cert::{key_matches_quickly, parse_pem_bundle, parse_private_key, CertInfo};
use libfuzzer_sys::fuzz_target;

macro_rules! fixture {
    ($p:literal) => {
        include_bytes!(concat!("../../tests/fixtures/", $p)).as_slice()
    };
}

fn certs() -> &'static [CertInfo] {
    static CERTS: OnceLock<Vec<CertInfo>> = OnceLock::new();
    CERTS.get_or_init(|| {
        [
            fixture!("pki-zetaoss-2024/ca.crt"),
            fixture!("pki-zetaoss-2024/apiserver.crt"),
            fixture!("pki-zetaoss-2024/apiserver-kubelet-client.crt"),
            fixture!("pki-zetaoss-2024/front-proxy-client.crt"),
            fixture!("pki-zetaoss-2024/etcd/peer.crt"),
            fixture!("pki-devopsyuva-2018/apiserver.crt"),
            fixture!("pki-edgecenter-ecdsa-2025/ca.crt"),
        ]
        .iter()
        .map(|pem| parse_pem_bundle(pem).expect("fixture cert").info)
        .collect()
    })
}

fuzz_target!(|data: &[u8]| {
    let parsed = parse_private_key(data);
    match &parsed {
        Ok(key) => {
            assert!(!key.spki_der().is_empty());
            let _ = format!("{key:?}");
        }
        Err(e) => {
            // Errors never carry key bytes; rendering them must not panic either.
            let _ = e.to_string();
        }
    }
    for info in certs() {
        if key_matches_quickly(data, info) {
            if let Ok(key) = &parsed {
                assert!(
                    key.matches(info),
                    "quick match where the loaded key differs"
                );
            }
        }
    }
});
