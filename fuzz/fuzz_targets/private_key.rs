//! PEM private keys (PKCS#1, SEC1, PKCS#8): `parse_private_key`, then what `check` does
//! with a parsed key (its SubjectPublicKeyInfo, for the key ↔ cert match).
#![no_main]

use kubecert::pki::cert::parse_private_key;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match parse_private_key(data) {
        Ok(key) => {
            assert!(!key.spki_der().is_empty());
            let _ = format!("{key:?}");
        }
        Err(e) => {
            // Errors never carry key bytes; rendering them must not panic either.
            let _ = e.to_string();
        }
    }
});
