//! PEM certificate bundles (`*.crt`, embedded kubeconfig certs): `parse_pem_bundle`.
#![no_main]

use kubecert::pki::cert::{parse_der, parse_pem_bundle};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(cert) = parse_pem_bundle(data) {
        // The leaf's facts do not depend on how it was found.
        assert_eq!(parse_der(&cert.der).as_ref(), Ok(&cert.info));
        let _ = cert.info.san_strings();
        for c in &cert.chain {
            let _ = parse_der(c);
        }
    }
});
