//! One DER certificate: `parse_der`, plus the self-signature check `check` runs on CAs.
#![no_main]

use kubecert::pki::cert::{parse_der, signed_by};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(info) = parse_der(data) {
        let _ = info.san_strings();
        let _ = info.valid_at(0);
        let _ = signed_by(data, data);
    }
});
