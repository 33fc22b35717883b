//! kubeconfig files: `Kubeconfig::parse`, the embedded client cert (`client_cert_pem`, then
//! the PEM bundle parser as `check` does), and the textual rewrites renew and
//! `kubelet-conf repair` make on the parsed input. Whenever the block-YAML reader
//! (`kubeconfig::block`) takes a text, its value must be serde-saphyr's.
#![no_main]

use std::path::Path;

use kubecert::pki::cert::parse_pem_bundle;
use kubecert::pki::kubeconfig::{Kubeconfig, Source};
use libfuzzer_sys::fuzz_target;

const NEW_CERT: &[u8] = b"-----BEGIN CERTIFICATE-----\nTkVXQ0VSVA==\n-----END CERTIFICATE-----\n";
const NEW_KEY: &[u8] =
    b"-----BEGIN RSA PRIVATE KEY-----\nTkVXS0VZ\n-----END RSA PRIVATE KEY-----\n";
const NEW_CA: &[u8] = b"-----BEGIN CERTIFICATE-----\nTkVXQ0E=\n-----END CERTIFICATE-----\n";

fuzz_target!(|data: &[u8]| {
    // Kubeconfig::load refuses non-UTF-8 before parsing.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(fast) = kubecert::pki::kubeconfig::block::parse(text) {
        let full: Option<serde_json::Value> = serde_saphyr::from_str(text).ok();
        assert_eq!(Some(fast), full, "the block reader and serde-saphyr differ");
    }
    let Ok(kc) = Kubeconfig::parse(Path::new("/nonexistent/admin.conf"), text.to_string()) else {
        return;
    };
    // File references would read arbitrary paths of this machine (/dev/zero ...): only the
    // embedded and absent cases are parser work.
    if !matches!(kc.client_cert, Source::File(_)) {
        if let Ok(pem) = kc.client_cert_pem() {
            let _ = parse_pem_bundle(&pem);
        }
    }
    if !matches!(kc.client_key, Source::File(_)) {
        let _ = kc.client_key_pem();
    }
    if let Ok(out) = kc.rewrite_embedded(Some(NEW_CERT), Some(NEW_KEY), Some(NEW_CA)) {
        // rewrite_embedded re-parses and checks its own result; it must also be stable.
        let again = Kubeconfig::parse(&kc.path, out).expect("rewritten kubeconfig parses");
        if matches!(kc.client_cert, Source::Embedded(_)) {
            assert_eq!(again.client_cert_pem().ok().as_deref(), Some(NEW_CERT));
        }
        if matches!(kc.client_key, Source::Embedded(_)) {
            assert_eq!(again.client_key_pem().ok().as_deref(), Some(NEW_KEY));
        }
        assert_eq!(again.current_context, kc.current_context);
        assert_eq!(again.user, kc.user);
    }
    let _ = kc.rewrite_embedded(Some(NEW_CERT), None, None);
    let _ = kc.rewrite_user_to_file(Path::new("/var/lib/kubelet/pki/kubelet-client-current.pem"));
});
