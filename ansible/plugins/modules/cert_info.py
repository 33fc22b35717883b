#!/usr/bin/python
# Copyright (c) kubecert contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: Apache-2.0 OR GPL-3.0-or-later

DOCUMENTATION = r'''
module: cert_info
short_description: Report the expiration of kubeadm certificates
version_added: 0.1.0
description:
  - Calls the kubecert agent's C(check) method and returns its result, a superset of
    C(kubeadm certs check-expiration -o json) (C(CertificateExpirationInfo)).
  - Never changes anything; RV(status) tells whether a certificate expires within O(warn_within) or O(fail_within).
  - With O(served=true), the agent also connects over TLS to each endpoint (etcd client and peer, kube-apiserver,
    controller-manager, scheduler, kubelet) and returns RV(served) - the leaf each one presents next to the file on
    disk, with a verdict. A stale or expired served certificate makes RV(status.level) V(fail); an unreachable
    endpoint makes it at least V(warn).
author:
  - kubecert maintainers (@kubecert)
extends_documentation_fragment:
  - kubecert.pki.agent
  - kubecert.pki.agent.paths
  - kubecert.pki.agent.external_etcd
  - kubecert.pki.attributes
  - kubecert.pki.attributes.info_module
options:
  kubelet_pki:
    description:
      - The kubelet's PKI directory (for C(kubelet-client-current.pem)).
    type: path
    default: /var/lib/kubelet/pki
  kubelet:
    description:
      - Also report the kubelet's own certificates (client and serving) as RV(kubelet); they count
        in O(warn_within), O(fail_within) and RV(status).
    type: bool
    default: false
  ca:
    description:
      - Also report each CA as C(kubecert ca check) does (join hash, the certificates it signed, the
        trust bundles that hold it) as RV(ca).
    type: bool
    default: false
  drift:
    description:
      - Also compare each certificate with the kubeadm configuration O(config) (SANs missing from the
        certificate or beyond the configuration, validity, key algorithm) as RV(drift). A drifted row makes
        RV(status.level) at least V(warn), never V(fail) by itself.
    type: bool
    default: false
  config:
    description:
      - The kubeadm config file (InitConfiguration or JoinConfiguration plus ClusterConfiguration,
        C(kubeadm.k8s.io/v1beta3) or C(v1beta4)) on the node. O(drift=true) needs it or O(kubeconfig).
      - On the agent's socket a caller that is not root may name only the file the agent was started with
        (C(kubecert serve --kubeadm-config)).
    type: path
  kubeconfig:
    description:
      - Instead of O(config), read the ClusterConfiguration from the ConfigMap C(kube-system/kubeadm-config)
        through the API server of this kubeconfig (on the node). The node's name and advertise address then
        come from its static pod manifests in O(manifests_dir) (etcd's C(--name), kube-apiserver's
        C(--advertise-address)), or from O(node_name) and O(advertise_address).
      - On the agent's socket a caller that is not root may name only the agent's C(--api-kubeconfig).
    type: path
  node_name:
    description:
      - With O(drift=true), the node's name (over the configuration's, etcd's C(--name) and the hostname).
    type: str
  advertise_address:
    description:
      - With O(drift=true), the node's advertise address (over the configuration's and kube-apiserver's).
    type: str
  now:
    description:
      - Evaluate expiration as of this RFC 3339 UTC time (for example V(2027-01-02T03:04:05Z)) instead of the clock.
    type: str
  warn_within:
    description:
      - A certificate expiring within this duration sets RV(status.level) to V(warn).
      - Go style (V(720h), V(1h30m)) or days (V(30d)); the agent's default applies when not set.
    type: str
  fail_within:
    description:
      - A certificate expiring within this duration sets RV(status.level) to V(fail).
      - Go style (V(168h)) or days (V(7d)); the agent's default applies when not set.
    type: str
  served:
    description:
      - Also prove what each component serves (the agent's C(served) check parameter); the result then has RV(served).
      - The options below apply only with V(true).
    type: bool
    default: false
  manifests_dir:
    description: With O(served) - the static pod manifests directory the endpoints are read from.
    type: path
    default: /etc/kubernetes/manifests
  kubelet_config:
    description: With O(served) - the kubelet's config file its address, port and serving certificate are read from.
    type: path
    default: /var/lib/kubelet/config.yaml
  endpoints:
    description: With O(served) - per-endpoint address and certificate file overrides.
    type: list
    elements: dict
    default: []
    suboptions:
      endpoint:
        description: The endpoint.
        type: str
        required: true
        choices: [etcd-client, etcd-peer, kube-apiserver, kube-controller-manager, kube-scheduler, kubelet]
      address:
        description: C(host:port) to connect to.
        type: str
      cert:
        description: The certificate file it should serve.
        type: path
  handshake_timeout:
    description: With O(served) - bound on connect and TLS handshake of each endpoint, in seconds (agent default 3); the endpoints are probed concurrently.
    type: float
seealso:
  - module: kubecert.pki.cert_renew
'''

EXAMPLES = r'''
- name: Read certificate expiration
  kubecert.pki.cert_info:
    fail_within: 30d
  register: kubecert_info

- name: Fail when a certificate expires within 30 days
  ansible.builtin.assert:
    that: kubecert_info.status.level != 'fail'
    fail_msg: "A certificate expires within 30 days (level {{ kubecert_info.status.level }})"

- name: Check an external-etcd control plane with non-default paths, as of a given date
  kubecert.pki.cert_info:
    cert_dir: /srv/kubernetes/pki
    kubeconfig_dir: /srv/kubernetes
    external_etcd: true
    now: '2027-01-02T03:04:05Z'
    warn_within: 60d
    fail_within: 30d
    kubecert_bin: /usr/local/bin/kubecert
    transport: stdio

- name: Also prove that every component serves the certificate on disk
  kubecert.pki.cert_info:
    served: true
  register: kubecert_info

- name: Name the components to restart
  ansible.builtin.debug:
    msg: "{{ kubecert_info.served.endpoints | rejectattr('verdict', 'eq', 'current') | map(attribute='summary') | list }}"
'''

RETURN = r'''
kind:
  description: Always C(CertificateExpirationInfo), as kubeadm prints it.
  returned: success
  type: str
  sample: CertificateExpirationInfo
apiVersion:
  description: kubeadm's output API version.
  returned: success
  type: str
  sample: output.kubeadm.k8s.io/v1alpha3
certificates:
  description: One entry per leaf certificate and kubeconfig, in kubeadm's order.
  returned: success
  type: list
  elements: dict
  contains:
    name:
      description: The kubeadm name (C(apiserver), C(etcd-peer), C(admin.conf), ...).
      returned: always
      type: str
      sample: apiserver
    expirationDate:
      description: NotAfter in RFC 3339 UTC, V(null) when missing.
      returned: always
      type: str
      sample: '2027-01-02T03:04:05Z'
    residualTime:
      description: Seconds until expiration (V(0) when missing; V(0) or negative when expired).
      returned: always
      type: int
      sample: 31536000
    externallyManaged:
      description: Whether its CA key is absent, so kubeadm and kubecert cannot renew it.
      returned: always
      type: bool
      sample: false
    caName:
      description: The CA that signs it (absent for CAs).
      returned: for leaf certificates
      type: str
      sample: ca
    missing: &missing_file
      description: Whether the file is absent.
      returned: always
      type: bool
      sample: false
    detail:
      description: What the certificate says.
      returned: when the certificate is present
      type: dict
      contains: &cert_detail
        path:
          description: The file it was read from.
          returned: always
          type: str
          sample: /etc/kubernetes/pki/apiserver.crt
        subject:
          description: The subject distinguished name.
          returned: when the certificate could be parsed
          type: str
          sample: CN=kube-apiserver
        issuer:
          description: The issuer distinguished name.
          returned: when the certificate could be parsed
          type: str
          sample: CN=kubernetes
        serial:
          description: The serial number in hex.
          returned: when the certificate could be parsed
          type: str
          sample: 5f3a0c
        signedBy:
          description: Which kubeadm CA's key signed it, found by signature.
          returned: when a kubeadm CA's key signed it
          type: str
          sample: ca
        notBefore:
          description: NotBefore in RFC 3339 UTC.
          returned: when the certificate could be parsed
          type: str
          sample: '2026-01-02T03:04:05Z'
        dnsNames:
          description: DNS subject alternative names.
          returned: when not empty
          type: list
          elements: str
          sample: [kubernetes, kubernetes.default]
        ipAddresses:
          description: IP address subject alternative names.
          returned: when not empty
          type: list
          elements: str
          sample: [10.96.0.1]
        otherSans:
          description: Other subject alternative names, rendered as text.
          returned: when not empty
          type: list
          elements: str
          sample: []
        extKeyUsage:
          description: Extended key usages.
          returned: when not empty
          type: list
          elements: str
          sample: [serverAuth]
        keyAlgorithm:
          description: The public key algorithm and size.
          returned: when the certificate could be parsed
          type: str
          sample: RSA-2048
        chainLength:
          description: How many certificates follow the first one in the file.
          returned: when not zero
          type: int
          sample: 1
        problems:
          description: What is wrong with it (expired, mismatched key, ...).
          returned: always
          type: list
          elements: dict
          contains:
            code: &problem_code
              description: A stable code.
              returned: always
              type: str
              sample: expired
            message:
              description: A readable explanation.
              returned: always
              type: str
              sample: expired on 2025-01-01T00:00:00Z
certificateAuthorities:
  description: One entry per CA, the same shape as RV(certificates) without C(caName).
  returned: success
  type: list
  elements: dict
  contains:
    name:
      description: The kubeadm name of the CA (C(ca), C(etcd-ca), C(front-proxy-ca)).
      returned: always
      type: str
      sample: ca
    expirationDate:
      description: NotAfter in RFC 3339 UTC, V(null) when missing.
      returned: always
      type: str
      sample: '2035-01-01T00:00:00Z'
    residualTime:
      description: Seconds until expiration.
      returned: always
      type: int
      sample: 283996800
    externallyManaged:
      description: Whether the CA key is absent (an external CA).
      returned: always
      type: bool
      sample: false
    caName:
      description: Not returned for CAs (always absent); listed because rows share one shape.
      returned: never
      type: str
    missing: *missing_file
    detail:
      description: What the CA certificate says, the same fields as RV(certificates[].detail).
      returned: when the certificate is present
      type: dict
      contains: *cert_detail
kubeletConf:
  description: The state of C(kubelet.conf) and its client certificate.
  returned: success
  type: dict
  contains: &kubelet_conf
    path:
      description: Path of C(kubelet.conf).
      returned: always
      type: str
      sample: /etc/kubernetes/kubelet.conf
    present:
      description: Whether C(kubelet.conf) exists.
      returned: always
      type: bool
      sample: true
    mode:
      description: V(embedded) client certificate or V(file-reference) to C(kubelet-client-current.pem).
      returned: when present
      type: str
      sample: file-reference
    expirationDate:
      description: NotAfter of the kubelet client certificate in RFC 3339 UTC.
      returned: when present
      type: str
      sample: '2027-01-02T03:04:05Z'
    residualTime:
      description: Seconds until it expires.
      returned: when present
      type: int
      sample: 31536000
    clientCurrentPem:
      description: Path of the kubelet's rotated client certificate.
      returned: always
      type: str
      sample: /var/lib/kubelet/pki/kubelet-client-current.pem
    clientCurrentPemExists:
      description: Whether that file exists.
      returned: always
      type: bool
      sample: true
    advice:
      description: What to do about it, if anything.
      returned: always
      type: str
      sample: kubelet rotates its client certificate itself
served:
  description:
    - What each component serves, with O(served=true) only. Its level is folded into RV(status.level).
  returned: when O(served=true)
  type: dict
  contains:
    level:
      description: "fail when an endpoint serves a stale or expired certificate, warn when one is unreachable, else ok."
      returned: always
      type: str
      sample: ok
    endpoints:
      description: "Per endpoint, in order."
      returned: always
      type: list
      elements: dict
      contains:
        endpoint:
          description: "The endpoint (etcd-client, etcd-peer, kube-apiserver, kube-controller-manager, kube-scheduler, kubelet)."
          returned: always
          type: str
        component:
          description: "The component serving it (a static pod, or kubelet)."
          returned: always
          type: str
        address:
          description: "host:port probed."
          returned: always
          type: str
        addressSource:
          description: "Where the address came from (manifest, kubelet-config, default, override)."
          returned: always
          type: str
        certPath:
          description: "The certificate file it should serve."
          returned: always
          type: str
        onDisk:
          description: "That file's certificate."
          returned: always
          type: dict
          contains: &served_leaf
            serial:
              description: "Serial, lowercase hex."
              returned: always
              type: str
            notAfter:
              description: "NotAfter, RFC 3339."
              returned: always
              type: str
            subject:
              description: "Subject."
              returned: always
              type: str
        served:
          description: "The leaf the server presented."
          returned: always
          type: dict
          contains: *served_leaf
        servedExpired:
          description: "The served leaf has expired."
          returned: always
          type: bool
        verdict:
          description: "current, stale, unreachable or not-checked."
          returned: always
          type: str
        summary:
          description: "The verdict in words; for a stale one it names the component to restart."
          returned: always
          type: str
        message:
          description: "Why, in words."
          returned: always
          type: str
    staleComponents:
      description: "Components serving a stale certificate (restart these; the kubelet with systemctl)."
      returned: always
      type: list
      elements: str
kubelet:
  description:
    - The kubelet's own certificates, outside kubeadm's table; only with O(kubelet=true).
  returned: when O(kubelet=true)
  type: dict
  contains:
    pkiDir:
      description: The kubelet PKI directory read.
      returned: always
      type: str
      sample: /var/lib/kubelet/pki
    client:
      description: The client certificate the kubelet authenticates with (C(kubelet-client-current.pem), else kubelet.conf's).
      returned: always
      type: dict
      contains: &kubelet_cert
        name:
          description: V(kubelet-client) or V(kubelet-serving).
          returned: always
          type: str
          sample: kubelet-client
        role:
          description: V(client) or V(serving).
          returned: always
          type: str
          sample: client
        path:
          description: The file read (C(kubelet.conf) for an embedded certificate; the C(-current.pem) link itself).
          returned: always
          type: str
          sample: /var/lib/kubelet/pki/kubelet-client-current.pem
        linkTarget:
          description: Where the C(*-current.pem) symlink points (the dated file).
          returned: when the file is a symlink
          type: str
          sample: /var/lib/kubelet/pki/kubelet-client-2026-01-01-00-00-00.pem
        rotation:
          description: V(rotated) (symlink to a dated file), V(static-file), V(embedded), V(file-reference) or V(missing).
          returned: always
          type: str
          sample: rotated
        missing:
          description: Whether nothing was found.
          returned: always
          type: bool
          sample: false
        expirationDate:
          description: NotAfter in RFC 3339 UTC.
          returned: when readable
          type: str
          sample: '2027-01-01T00:00:00Z'
        residualTime:
          description: Seconds until NotAfter (negative when expired).
          returned: when readable
          type: int
          sample: 18403200
        notBefore:
          description: NotBefore in RFC 3339 UTC.
          returned: when readable
          type: str
          sample: '2025-12-31T23:55:00Z'
        subject:
          description: Subject.
          returned: when readable
          type: str
          sample: O=system:nodes, CN=system:node:cp1
        issuer:
          description: Issuer.
          returned: when readable
          type: str
          sample: CN=kubernetes
        serial:
          description: Serial number, hex.
          returned: when readable
          type: str
          sample: 5f3a0c2d9e1b7a44
        chainsToCa:
          description: Whether it is signed by the cluster CA (C(ca.crt)), by signature.
          returned: when readable and ca.crt is
          type: bool
          sample: true
        selfSigned:
          description: Self-signed, or issued by the kubelet's own CA carried in the same file (C(kubelet.crt)).
          returned: when readable
          type: bool
          sample: false
        problems:
          description: Findings (V(not-found), V(expired), V(not-signed-by-ca), V(key-mismatch), ...).
          returned: always
          type: list
          elements: dict
          contains:
            code: *problem_code
            message:
              description: What is wrong, naming the file.
              returned: always
              type: str
              sample: expired at 2027-01-01T00:00:00Z
    serving:
      description: The certificate the kubelet serves on port 10250 (C(kubelet-server-current.pem), else C(kubelet.crt)).
      returned: always
      type: dict
      contains: *kubelet_cert
    kubeletConf:
      description: The same diagnosis as RV(kubeletConf).
      returned: always
      type: dict
      contains: *kubelet_conf
    kubeletConfClient:
      description: Where kubelet.conf takes its client certificate from.
      returned: always
      type: dict
      contains:
        mode:
          description: V(embedded), V(file-reference) or V(unknown).
          returned: when kubelet.conf exists
          type: str
          sample: file-reference
        file:
          description: The referenced file.
          returned: for a file reference
          type: str
          sample: /var/lib/kubelet/pki/kubelet-client-current.pem
        sameAsClient:
          description: Whether kubelet.conf's certificate is the one reported as RV(kubelet.client).
          returned: when both are readable
          type: bool
          sample: true
        note:
          description: What differs, when it does.
          returned: when they differ
          type: str
          sample: kubelet.conf's client certificate (embedded) is not the one in /var/lib/kubelet/pki/kubelet-client-current.pem
status:
  description: The overall verdict.
  returned: success (absent only from agents older than the verdict)
  type: dict
  contains:
    now:
      description: The time expiration was evaluated at.
      returned: always
      type: str
      sample: '2026-11-29T04:15:00Z'
    level:
      description: V(ok), V(warn) or V(fail). V(fail) also when a certificate is unhealthy and a fail threshold was given.
      returned: always
      type: str
      sample: ok
    warnWithin:
      description: The warn threshold in seconds.
      returned: when a threshold applies
      type: int
      sample: 2592000
    failWithin:
      description: The fail threshold in seconds.
      returned: when a threshold applies
      type: int
      sample: 604800
    soonest:
      description: The name of the present certificate that expires first.
      returned: when some certificate is present
      type: str
      sample: apiserver
    unhealthy:
      description:
        - The names of certificates with problems that make them unusable (expired, key missing or
          mismatched, not signed by its CA, ...).
        - A node with any is not healthy, whatever the thresholds say.
      returned: always
      type: list
      elements: str
      sample: []
    problems:
      description:
        - Findings about the PKI as a whole, for example C(recovery-failed) (an interrupted run's journal
          could not be replayed, so the files may be half-installed; the level is then V(fail)).
      returned: when there are any
      type: list
      elements: dict
      contains:
        code:
          description: A stable code.
          returned: always
          type: str
          sample: recovery-failed
        message:
          description: A readable explanation.
          returned: always
          type: str
    exitCode:
      description:
        - The verdict as a number, V(0) ok, V(1) warn, V(2) fail.
        - The CLI C(kubecert check) exits with V(0), V(3) and V(4) for these (V(1) and V(2) are its
          errors and usage errors), so compare RV(status.level), not this, with an exit status.
      returned: always
      type: int
      sample: 0
drift:
  description:
    - Each certificate against the kubeadm configuration; only with O(drift=true).
  returned: when O(drift=true)
  type: dict
  contains:
    config:
      description: The kubeadm config file read, or V(configmap kube-system/kubeadm-config).
      returned: always
      type: str
      sample: /etc/kubernetes/kubeadm.yaml
    apiVersion:
      description: Its version.
      returned: always
      type: str
      sample: kubeadm.k8s.io/v1beta4
    nodeName:
      description: The node name kubeadm's SAN rules used.
      returned: always
      type: str
      sample: cp1
    nodeNameSource:
      description: V(config) (C(nodeRegistration.name)), V(manifest) (etcd's C(--name)), V(param) (O(node_name)) or V(hostname).
      returned: always
      type: str
      sample: config
    advertiseAddress:
      description: The advertise address the rules used.
      returned: when known
      type: str
      sample: 10.0.0.11
    advertiseAddressSource:
      description: V(config), V(param) (O(advertise_address)) or V(manifest) (the kube-apiserver's C(--advertise-address)).
      returned: when known
      type: str
      sample: config
    ignoredSans:
      description: certSANs entries kubeadm leaves out (not an IP nor an RFC 1123 name).
      returned: when any
      type: list
      elements: str
    drifted:
      description: Certificates that differ from the configuration.
      returned: always
      type: list
      elements: str
      sample: [apiserver]
    unknown:
      description: Certificates that could not be compared (missing, unreadable, advertise address unknown).
      returned: always
      type: list
      elements: str
      sample: []
    certificates:
      description: One entry per certificate of the layout.
      returned: always
      type: list
      elements: dict
      contains:
        name:
          description: Inventory name.
          returned: always
          type: str
          sample: apiserver
        status:
          description: V(match), V(drift) or V(unknown).
          returned: always
          type: str
          sample: drift
        reason:
          description: Why it is V(unknown).
          returned: when unknown
          type: str
        sansCompared:
          description: Whether SANs are compared (not for CAs).
          returned: always
          type: bool
        missingSans:
          description: SANs the configuration gives that the certificate lacks (C(DNS:x), C(IP:y)).
          returned: always
          type: list
          elements: str
          sample: [DNS:api.example.com]
        extraSans:
          description: SANs the certificate has beyond the configuration.
          returned: always
          type: list
          elements: str
          sample: []
        validity:
          description: NotAfter - NotBefore against C(certificateValidityPeriod) (CAs C(caCertificateValidityPeriod)).
          returned: when readable
          type: dict
          contains:
            expectedSeconds:
              description: The configured validity.
              returned: always
              type: int
              sample: 31536000
            actualSeconds:
              description: NotAfter - NotBefore.
              returned: always
              type: int
              sample: 31536300
            status:
              description: V(match), V(differs), V(capped) (at the CA's NotAfter) or V(undetermined) (NotBefore is the CA's, as kubeadm issues).
              returned: always
              type: str
              sample: match
        keyAlgorithm:
          description: The key algorithm against C(encryptionAlgorithm).
          returned: when readable
          type: dict
          contains:
            expected:
              description: C(encryptionAlgorithm) as kubeadm applies it.
              returned: always
              type: str
              sample: RSA-2048
            actual:
              description: The certificate's key.
              returned: always
              type: str
              sample: RSA-2048
            differs:
              description: Whether they differ.
              returned: always
              type: bool
ca:
  description:
    - The CAs as C(kubecert ca check) sees them; only with O(ca=true).
  returned: when O(ca=true)
  type: dict
  contains:
    cas:
      description: One entry per CA of the layout.
      returned: always
      type: list
      elements: dict
      contains:
        name:
          description: V(ca), V(etcd-ca) or V(front-proxy-ca).
          returned: always
          type: str
          sample: ca
        path:
          description: The CA certificate file.
          returned: always
          type: str
          sample: /etc/kubernetes/pki/ca.crt
        present:
          description: Whether the certificate was found and parsed.
          returned: always
          type: bool
          sample: true
        problem:
          description: Why not, when it was not.
          returned: when not present
          type: str
          sample: /etc/kubernetes/pki/ca.crt does not exist
        keyPresent:
          description: Whether the CA key exists (false - externally managed).
          returned: always
          type: bool
          sample: true
        subject:
          description: Subject.
          returned: when present
          type: str
          sample: CN=kubernetes
        serial:
          description: Serial, hex.
          returned: when present
          type: str
          sample: 556239e7fdee5b38
        notBefore:
          description: NotBefore, RFC 3339.
          returned: when present
          type: str
          sample: '2024-02-04T07:49:33Z'
        notAfter:
          description: NotAfter, RFC 3339.
          returned: when present
          type: str
          sample: '2034-02-01T07:54:33Z'
        residualSeconds:
          description: Seconds until NotAfter (negative - expired).
          returned: when present
          type: int
          sample: 228009600
        keyAlgorithm:
          description: Key algorithm.
          returned: when present
          type: str
          sample: RSA-2048
        spkiSha256:
          description: kubeadm's join hash (C(--discovery-token-ca-cert-hash)).
          returned: when present
          type: str
          sample: sha256:6e41de7a00c20668116b3808d6b411e022e07e6cb6de0130067ac1a8c321d34a
        subjectKeyId:
          description: Subject key identifier, hex.
          returned: when present
          type: str
          sample: a100905845e5ad4be12ba8ad92d26e600caa3f7f
        chained:
          description: Inventory certificates it signed (verified by signature).
          returned: always
          type: list
          elements: dict
          contains: &ca_signed
            name:
              description: Inventory name.
              returned: always
              type: str
              sample: apiserver
            path:
              description: The file.
              returned: always
              type: str
              sample: /etc/kubernetes/pki/apiserver.crt
        notChained:
          description: Inventory certificates of this CA it did not sign.
          returned: always
          type: list
          elements: dict
          contains: *ca_signed
        bundles:
          description: Trust locations (CA files, kubeconfigs) holding it.
          returned: always
          type: list
          elements: dict
          contains:
            path:
              description: The file.
              returned: always
              type: str
              sample: /etc/kubernetes/admin.conf
            kind:
              description: V(ca-file) or V(kubeconfig).
              returned: always
              type: str
              sample: kubeconfig
            match:
              description: V(exact) (the same certificate) or V(same-key) (same key and subject, other bytes).
              returned: always
              type: str
              sample: exact
        rotation:
          description: Where a rotation of this CA to a new key stands (M(kubecert.pki.ca_rotate)), derived from the files.
          returned: while a rotation is in progress
          type: dict
          contains:
            phase:
              description: V(staged), V(promoted), V(distrusted) or V(inconsistent) (a mix no phase leaves).
              returned: always
              type: str
              sample: staged
            detail:
              description: Where it stands exactly.
              returned: always
              type: str
              sample: ca.crt holds old+new, every leaf signed by the old CA
            leaves:
              description: The leaves counted.
              returned: always
              type: int
              sample: 4
            leavesSignedByNew:
              description: How many of them the new CA signed.
              returned: always
              type: int
              sample: 0
            newSpkiSha256:
              description: The join hash of the new CA, when there is one.
              returned: when there is one
              type: str
              sample: sha256:abababababababababababababababababababababababababababababababab
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.kubecert.pki.plugins.module_utils.control_plane import (
    SERVED_ENDPOINTS_OPTION,
    endpoint_params,
    millis,
    transport_timeout,
)
from ansible_collections.kubecert.pki.plugins.module_utils.kubecert import (
    DEFAULT_KUBELET_PKI,
    PATHS_ARGUMENT_SPEC,
    argument_spec,
    run,
)


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(
            PATHS_ARGUMENT_SPEC,
            external_etcd=dict(type='bool'),
            kubelet_pki=dict(type='path', default=DEFAULT_KUBELET_PKI),
            kubelet=dict(type='bool', default=False),
            ca=dict(type='bool', default=False),
            drift=dict(type='bool', default=False),
            config=dict(type='path'),
            kubeconfig=dict(type='path'),
            node_name=dict(type='str'),
            advertise_address=dict(type='str'),
            now=dict(type='str'),
            warn_within=dict(type='str'),
            fail_within=dict(type='str'),
            served=dict(type='bool', default=False),
            manifests_dir=dict(type='path', default='/etc/kubernetes/manifests'),
            kubelet_config=dict(type='path', default='/var/lib/kubelet/config.yaml'),
            endpoints=SERVED_ENDPOINTS_OPTION,
            handshake_timeout=dict(type='float'),
        ),
        required_if=[('drift', True, ('config', 'kubeconfig'), True)],
        mutually_exclusive=[('config', 'kubeconfig')],
        supports_check_mode=True,
    )
    p = module.params
    params = dict((name, p[name]) for name in (
        'cert_dir', 'kubeconfig_dir', 'external_etcd', 'kubelet_pki', 'now', 'warn_within', 'fail_within'))
    if p['served']:
        # The probe's options go to the agent only when it is asked to probe.
        params.update(served=True, manifests_dir=p['manifests_dir'], kubelet_config=p['kubelet_config'],
                      endpoints=endpoint_params(p['endpoints']))
        if p['handshake_timeout'] is not None:
            params['timeout_ms'] = millis(p['handshake_timeout'])
        module.params['timeout'] = transport_timeout(module, (p['handshake_timeout'] or 3) * 2)
    # Only when asked: older agents refuse an unknown param.
    if module.params['kubelet']:
        params['kubelet'] = True
    if module.params['ca']:
        params['ca'] = True
    if p['drift']:
        params['drift'] = True
        # The node facts of the kubeadm configuration come from the manifests too.
        params.setdefault('manifests_dir', p['manifests_dir'])
        for name in ('config', 'kubeconfig', 'node_name', 'advertise_address'):
            if p[name]:
                params[name] = p[name]
    result = run(module, 'check', params)
    # An info module: reading never changes anything.
    result.pop('changed', None)
    module.exit_json(changed=False, **result)


if __name__ == '__main__':
    main()
