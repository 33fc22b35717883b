//! kubeadm's SAN rules: which Subject Alternative Names kubeadm puts in the apiserver, etcd
//! server and etcd peer certificates for a configuration.
//!
//! Transcribed from kubernetes/kubernetes `cmd/kubeadm/app/util/pkiutil/pki_helpers.go`
//! (read at commit 025f2834a128798cef30018a5e6a6ae82b5ad885): `GetAPIServerAltNames`,
//! `GetEtcdAltNames`/`GetEtcdPeerAltNames` (both `getAltNames`), `appendSANsToAltNames`
//! and `RemoveDuplicateAltNames`; the service VIP from `constants.GetAPIServerVirtualIP`
//! (the first subnet of `serviceSubnet`, its index-1 address). Which certificate takes which
//! rule is [`SanRule`] on the inventory table (kubeadm's `certs.go`). docs/drift.md cites
//! them with the behaviour reproduced, case by case, in the tests below.

use std::collections::BTreeSet;
use std::net::IpAddr;

use crate::pki::inventory::SanRule;

/// The configuration facts the SAN rules read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SanInputs {
    /// `nodeRegistration.name` (else the hostname).
    pub node_name: String,
    /// `localAPIEndpoint.advertiseAddress` (else the apiserver's `--advertise-address`).
    pub advertise_address: Option<IpAddr>,
    /// `networking.serviceSubnet` (default `10.96.0.0/12`).
    pub service_subnet: String,
    /// `networking.dnsDomain` (default `cluster.local`).
    pub dns_domain: String,
    /// `controlPlaneEndpoint` (host with an optional port).
    pub control_plane_endpoint: Option<String>,
    /// `apiServer.certSANs`.
    pub cert_sans: Vec<String>,
    /// `etcd.local.serverCertSANs` (empty with external etcd).
    pub etcd_server_sans: Vec<String>,
    /// `etcd.local.peerCertSANs`.
    pub etcd_peer_sans: Vec<String>,
    /// Whether etcd is local (`etcd.external` absent).
    pub etcd_local: bool,
}

pub use crate::error::SanRuleError;

/// The SANs kubeadm issues for `rule`, as `DNS:name` / `IP:address` strings (the form of
/// [`crate::pki::cert::CertInfo::san_set`]). `Ok(None)` for [`SanRule::NotCompared`].
pub fn expected(rule: SanRule, c: &SanInputs) -> Result<Option<BTreeSet<String>>, SanRuleError> {
    let mut out = BTreeSet::new();
    match rule {
        SanRule::NotCompared => return Ok(None),
        SanRule::NoSans => {}
        SanRule::ApiServer => {
            // GetAPIServerAltNames: the advertise address must parse, then the VIP.
            let adv = c
                .advertise_address
                .ok_or(SanRuleError::NoAdvertiseAddress)?;
            let vip = service_vip(&c.service_subnet).ok_or(SanRuleError::ServiceSubnet)?;
            for d in [
                c.node_name.clone(),
                "kubernetes".into(),
                "kubernetes.default".into(),
                "kubernetes.default.svc".into(),
                format!("kubernetes.default.svc.{}", c.dns_domain),
            ] {
                out.insert(format!("DNS:{d}"));
            }
            out.insert(format!("IP:{vip}"));
            out.insert(format!("IP:{adv}"));
            if let Some(ep) = c
                .control_plane_endpoint
                .as_deref()
                .filter(|e| !e.is_empty())
            {
                let host = endpoint_host(ep).ok_or(SanRuleError::ControlPlaneEndpoint)?;
                match host.parse::<IpAddr>() {
                    Ok(ip) => out.insert(format!("IP:{ip}")),
                    Err(_) => out.insert(format!("DNS:{host}")),
                };
            }
            append(&mut out, &c.cert_sans);
        }
        SanRule::EtcdServer | SanRule::EtcdPeer => {
            // getAltNames: node name, localhost, advertise address, 127.0.0.1, ::1.
            let adv = c
                .advertise_address
                .ok_or(SanRuleError::NoAdvertiseAddress)?;
            out.insert(format!("DNS:{}", c.node_name));
            out.insert("DNS:localhost".into());
            out.insert(format!("IP:{adv}"));
            out.insert("IP:127.0.0.1".into());
            out.insert("IP:::1".into());
            if c.etcd_local {
                let extra = if rule == SanRule::EtcdServer {
                    &c.etcd_server_sans
                } else {
                    &c.etcd_peer_sans
                };
                append(&mut out, extra);
            }
        }
    }
    Ok(Some(out))
}

/// appendSANsToAltNames: an IP goes in as an IP, an RFC 1123 subdomain or a wildcard of one
/// as a DNS name; anything else is left out (kubeadm only warns).
fn append(out: &mut BTreeSet<String>, sans: &[String]) {
    for s in sans {
        if let Ok(ip) = s.parse::<IpAddr>() {
            out.insert(format!("IP:{ip}"));
        } else if is_dns1123_subdomain(s) || s.strip_prefix("*.").is_some_and(is_dns1123_subdomain)
        {
            out.insert(format!("DNS:{s}"));
        } else {
            tracing::warn!(
                san = %s,
                "not a valid IP or RFC-1123 compliant DNS entry: kubeadm leaves it out of the certificate"
            );
        }
    }
}

/// The SANs kubeadm leaves out of a certificate (appendSANsToAltNames' warning), for the
/// report.
pub fn ignored(sans: &[String]) -> Vec<String> {
    sans.iter()
        .filter(|s| {
            s.parse::<IpAddr>().is_err()
                && !is_dns1123_subdomain(s)
                && !s.strip_prefix("*.").is_some_and(is_dns1123_subdomain)
        })
        .cloned()
        .collect()
}

/// apimachinery's `IsDNS1123Subdomain`: at most 253 characters of lower-case labels
/// (`[a-z0-9]([-a-z0-9]*[a-z0-9])?`) joined by dots.
pub fn is_dns1123_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            let b = l.as_bytes();
            !b.is_empty()
                && b.iter()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
                && b[0] != b'-'
                && b[b.len() - 1] != b'-'
        })
}

/// `GetAPIServerVirtualIP`: the first CIDR of the comma-separated list, its address at
/// index 1 (the network address plus one).
pub fn service_vip(subnets: &str) -> Option<IpAddr> {
    let first = subnets.split(',').next()?.trim();
    let (addr, bits) = first.split_once('/')?;
    let bits: u32 = bits.parse().ok()?;
    match addr.parse::<IpAddr>().ok()? {
        IpAddr::V4(a) if bits <= 32 => {
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits)
            };
            let net = u32::from(a) & mask;
            // kubeadm refuses a subnet without room for index 1 (a /32).
            (bits < 32).then(|| IpAddr::from((net + 1).to_be_bytes()))
        }
        IpAddr::V6(a) if bits <= 128 => {
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - bits)
            };
            let net = u128::from(a) & mask;
            (bits < 128).then(|| IpAddr::from((net + 1).to_be_bytes()))
        }
        _ => None,
    }
}

/// `kubeadmutil.ParseHostPort`: `host`, `host:port` or `[ipv6]:port`; the host must be an
/// IP or an RFC 1123 subdomain, the port 0..65535.
pub fn endpoint_host(ep: &str) -> Option<String> {
    let (host, port) = if let Some(rest) = ep.strip_prefix('[') {
        let (h, after) = rest.split_once(']')?;
        (h, after.strip_prefix(':'))
    } else if ep.parse::<IpAddr>().is_ok() {
        (ep, None)
    } else if let Some((h, p)) = ep.rsplit_once(':') {
        (h, Some(p))
    } else {
        (ep, None)
    };
    if let Some(p) = port {
        p.parse::<u16>().ok()?;
    }
    if host.parse::<IpAddr>().is_ok() || is_dns1123_subdomain(host) {
        Some(host.to_string())
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    //! Each case restates kubeadm's behaviour as pki_helpers.go (commit 025f2834…) codes it;
    //! docs/drift.md gives the function and line of each rule.
    use super::*;

    fn inputs() -> SanInputs {
        SanInputs {
            node_name: "valid-hostname".into(),
            advertise_address: Some("1.2.3.4".parse().unwrap()),
            service_subnet: "10.96.0.0/12".into(),
            dns_domain: "cluster.local".into(),
            control_plane_endpoint: Some("api.k8s.io:6443".into()),
            cert_sans: vec![
                "10.1.245.94".into(),
                "10.1.245.95".into(),
                "1.2.3.L".into(),
                "invalid,commas,in,DNS".into(),
                "*.wildcard.example.com".into(),
            ],
            etcd_server_sans: vec!["10.1.245.94".into(), "mymachine".into()],
            etcd_peer_sans: vec!["10.1.245.95".into()],
            etcd_local: true,
        }
    }

    fn set(v: &[&str]) -> BTreeSet<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    /// GetAPIServerAltNames: node name, the four kubernetes names (the last with dnsDomain),
    /// the VIP (index 1 of 10.96.0.0/12), the advertise address, the controlPlaneEndpoint
    /// host (a DNS name here), certSANs: IPs and (wildcard) DNS names, invalid ones dropped.
    #[test]
    fn apiserver_follows_get_apiserver_alt_names() {
        let got = expected(SanRule::ApiServer, &inputs()).unwrap().unwrap();
        assert_eq!(
            got,
            set(&[
                "DNS:*.wildcard.example.com",
                "DNS:api.k8s.io",
                "DNS:kubernetes",
                "DNS:kubernetes.default",
                "DNS:kubernetes.default.svc",
                "DNS:kubernetes.default.svc.cluster.local",
                "DNS:valid-hostname",
                "IP:1.2.3.4",
                "IP:10.1.245.94",
                "IP:10.1.245.95",
                "IP:10.96.0.1",
            ])
        );
        // An IP controlPlaneEndpoint goes in as an IP; no port is fine.
        let mut c = inputs();
        c.control_plane_endpoint = Some("4.5.6.7".into());
        c.cert_sans.clear();
        let got = expected(SanRule::ApiServer, &c).unwrap().unwrap();
        assert!(got.contains("IP:4.5.6.7") && !got.contains("DNS:api.k8s.io"));
        // IPv6 service subnet and endpoint.
        c.service_subnet = "fd00:1234::/108,10.96.0.0/12".into();
        c.control_plane_endpoint = Some("[fd00::10]:6443".into());
        let got = expected(SanRule::ApiServer, &c).unwrap().unwrap();
        assert!(got.contains("IP:fd00:1234::1"), "{got:?}");
        assert!(got.contains("IP:fd00::10"), "{got:?}");
    }

    /// getAltNames: node name, localhost, the advertise address, 127.0.0.1, ::1, plus
    /// serverCertSANs for etcd/server and peerCertSANs for etcd/peer (local etcd only).
    #[test]
    fn etcd_follow_get_alt_names() {
        let c = inputs();
        assert_eq!(
            expected(SanRule::EtcdServer, &c).unwrap().unwrap(),
            set(&[
                "DNS:localhost",
                "DNS:mymachine",
                "DNS:valid-hostname",
                "IP:1.2.3.4",
                "IP:10.1.245.94",
                "IP:127.0.0.1",
                "IP:::1"
            ])
        );
        assert_eq!(
            expected(SanRule::EtcdPeer, &c).unwrap().unwrap(),
            set(&[
                "DNS:localhost",
                "DNS:valid-hostname",
                "IP:1.2.3.4",
                "IP:10.1.245.95",
                "IP:127.0.0.1",
                "IP:::1"
            ])
        );
        let mut ext = c.clone();
        ext.etcd_local = false;
        assert!(!expected(SanRule::EtcdServer, &ext)
            .unwrap()
            .unwrap()
            .contains("DNS:mymachine"));
    }

    #[test]
    fn clients_have_none_cas_are_not_compared_and_errors_are_typed() {
        let c = inputs();
        assert_eq!(
            expected(SanRule::NoSans, &c).unwrap(),
            Some(BTreeSet::new())
        );
        assert_eq!(expected(SanRule::NotCompared, &c).unwrap(), None);
        let mut bad = c.clone();
        bad.advertise_address = None;
        assert_eq!(
            expected(SanRule::EtcdPeer, &bad),
            Err(SanRuleError::NoAdvertiseAddress)
        );
        let mut bad = c.clone();
        bad.service_subnet = "10.96.0.0".into();
        assert_eq!(
            expected(SanRule::ApiServer, &bad),
            Err(SanRuleError::ServiceSubnet)
        );
        let mut bad = c;
        bad.control_plane_endpoint = Some("api.k8s.io:http".into());
        assert_eq!(
            expected(SanRule::ApiServer, &bad),
            Err(SanRuleError::ControlPlaneEndpoint)
        );
        assert_eq!(
            ignored(&inputs().cert_sans),
            ["1.2.3.L", "invalid,commas,in,DNS"]
        );
    }

    #[test]
    fn vip_and_dns_helpers() {
        assert_eq!(
            service_vip("10.96.0.0/12").unwrap().to_string(),
            "10.96.0.1"
        );
        assert_eq!(
            service_vip("10.96.5.7/16").unwrap().to_string(),
            "10.96.0.1"
        );
        assert_eq!(service_vip("10.96.0.0/32"), None);
        assert!(is_dns1123_subdomain(
            "ec2-10-100-0-1.compute-1.amazonaws.com"
        ));
        assert!(!is_dns1123_subdomain("Upper.example.com"));
        assert!(!is_dns1123_subdomain("-lead.example.com"));
        assert_eq!(endpoint_host("api.k8s.io").as_deref(), Some("api.k8s.io"));
        assert_eq!(endpoint_host("::1").as_deref(), Some("::1"));
    }
}
