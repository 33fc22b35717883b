#!/usr/bin/python
# Copyright (c) kubecert contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: Apache-2.0 OR GPL-3.0-or-later

DOCUMENTATION = r'''
module: cert_renew
short_description: Renew kubeadm certificates with the kubecert agent
version_added: 0.1.0
description:
  - Calls the kubecert agent's C(renew) method, which re-issues kubeadm leaf certificates and
    kubeconfig client certificates from their CAs, keeping subjects and SANs.
  - The agent backs up every file it replaces in RV(backupDir); pass it to M(kubecert.pki.cert_restore) to roll back.
  - With O(within), only what expires within that duration is renewed, so running the task
    again changes nothing. Without it every selected certificate is renewed, as C(kubeadm certs renew) does.
  - CAs are never renewed.
  - The components that read a renewed certificate are listed in RV(componentsToRestart);
    the module restarts nothing (see the C(kubecert.pki.rolling_renew) role).
  - In check mode the agent is asked for a dry run (C(dry_run=true)) and reports what it would renew.
author:
  - kubecert maintainers (@kubecert)
extends_documentation_fragment:
  - kubecert.pki.agent
  - kubecert.pki.agent.paths
  - kubecert.pki.agent.external_etcd
  - kubecert.pki.agent.write
  - kubecert.pki.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details:
      - One diff per renewed certificate, with NotAfter, serial and SANs before and after.
options:
  names:
    description:
      - The kubeadm names of the certificates to renew (C(apiserver), C(etcd-peer), C(admin.conf), ...), or V(all).
      - The agent refuses an empty list; the default is V([all]).
    type: list
    elements: str
    default: [all]
  within:
    description:
      - Renew only certificates that expire within this duration, for example V(30d) or V(720h).
      - When not set, every selected certificate is renewed, whatever its expiration.
    type: str
  key_algorithm:
    description:
      - The key algorithm of the new keys; V(same) keeps each certificate's current algorithm.
      - When not set, the agent's default applies.
    type: str
    choices: [same, rsa-2048, rsa-3072, rsa-4096, ecdsa-p256, ecdsa-p384]
  validity:
    description:
      - How long the new certificates are valid (capped at their CA's NotAfter), for example V(8760h).
      - When not set, the agent's default (V(8760h)) applies.
    type: str
  allow_expired_ca:
    description:
      - Renew even when the issuing CA has expired (the agent refuses by default, JSON-RPC error -31007).
    type: bool
    default: false
  allow_unrenewable:
    description:
      - Inventory names (or V([all])) of certificates that may stay unrenewed although due. Any other due
        certificate the agent could not renew (V(externally-managed), its CA key is absent, or V(missing))
        is listed in RV(unrenewable), with a warning, in check mode too (the rolling_renew role fails the node
        on it).
    type: list
    elements: str
    default: []
  config:
    description:
      - The kubeadm config file (InitConfiguration or JoinConfiguration plus ClusterConfiguration,
        C(kubeadm.k8s.io/v1beta3) or C(v1beta4)) on the node. Renewed certificates then get its
        C(certificateValidityPeriod) and keys of its C(encryptionAlgorithm) (a key of another algorithm
        is replaced by a new key of the configured one). Not with O(validity) or O(key_algorithm).
        O(reconcile_sans=true) needs it or O(kubeconfig).
      - On the agent's socket a caller that is not root may name only the file the agent was started with
        (C(kubecert serve --kubeadm-config)).
    type: path
  kubeconfig:
    description:
      - Instead of O(config), read the ClusterConfiguration from the ConfigMap C(kube-system/kubeadm-config)
        through the API server of this kubeconfig (on the node). The node's name and advertise address then
        come from its static pod manifests (etcd's C(--name), kube-apiserver's C(--advertise-address) in
        O(kubeconfig_dir)/manifests), or from O(node_name) and O(advertise_address).
      - On the agent's socket a caller that is not root may name only the agent's C(--api-kubeconfig).
    type: path
  node_name:
    description:
      - With O(config) or O(kubeconfig), the node's name kubeadm's SAN rules use (over the configuration's,
        etcd's C(--name) and the hostname); in an HA inventory, each host's own.
    type: str
  advertise_address:
    description:
      - With O(config) or O(kubeconfig), the node's advertise address (over the configuration's and
        kube-apiserver's C(--advertise-address)); in an HA inventory, each host's own.
    type: str
  reconcile_sans:
    description:
      - Issue the apiserver, etcd server and etcd peer certificates with the SANs kubeadm's rules give for
        O(config) (or O(kubeconfig)), adding the missing ones to the existing SANs (see RV(certificates[].sansReconciled)).
    type: bool
    default: false
  exact:
    description:
      - With O(reconcile_sans=true), the SANs become exactly the expected ones (extras are dropped).
    type: bool
    default: false
seealso:
  - module: kubecert.pki.cert_info
  - module: kubecert.pki.cert_restore
'''

EXAMPLES = r'''
- name: Renew what expires within 30 days
  kubecert.pki.cert_renew:
    within: 30d
  register: kubecert_renew

- name: Show which static pods must restart
  ansible.builtin.debug:
    var: kubecert_renew.componentsToRestart

- name: Renew the API server serving and etcd client certificates unconditionally, with ECDSA keys
  kubecert.pki.cert_renew:
    names:
      - apiserver
      - apiserver-etcd-client
    key_algorithm: ecdsa-p256
    validity: 4380h

- name: Add the certSANs of the kubeadm configuration to the apiserver certificate
  kubecert.pki.cert_renew:
    names: [apiserver]
    config: /etc/kubernetes/kubeadm.yaml
    reconcile_sans: true

- name: Preview a renewal (same as running the task with --check --diff)
  kubecert.pki.cert_renew:
    within: 60d
  check_mode: true
  diff: true
  register: kubecert_plan
'''

RETURN = r'''
dryRun:
  description: Whether the agent only planned (check mode).
  returned: success
  type: bool
  sample: false
backupDir:
  description:
    - The directory holding the files this run replaced; pass it to M(kubecert.pki.cert_restore) to roll back.
    - V(null) when nothing was written.
  returned: success
  type: str
  sample: /etc/kubernetes/kubecert-backup/20261129T041500Z
certificates:
  description: One entry per selected certificate.
  returned: success
  type: list
  elements: dict
  contains:
    name:
      description: The kubeadm name.
      returned: always
      type: str
      sample: apiserver
    longName:
      description: kubeadm's description of the certificate.
      returned: always
      type: str
      sample: certificate for serving the Kubernetes API
    action:
      description: V(renewed), V(would-renew) (check mode), V(skipped), V(missing) or V(externally-managed).
      returned: always
      type: str
      sample: renewed
    reason:
      description: Why that action was taken.
      returned: always
      type: str
      sample: expires within 720h
    caName:
      description: The CA that signed it.
      returned: always
      type: str
      sample: ca
    old:
      description: The certificate before renewal.
      returned: when the certificate existed
      type: dict
      contains: &state
        notAfter:
          description: NotAfter in RFC 3339 UTC.
          returned: always
          type: str
          sample: '2026-12-01T00:00:00Z'
        notBefore:
          description: NotBefore in RFC 3339 UTC.
          returned: when the agent reports it
          type: str
          sample: '2025-12-01T00:00:00Z'
        serial:
          description: Serial number in hex; V(null) for a V(would-renew) C(new) state.
          returned: always
          type: str
          sample: 5f3a0c
        dnsNames:
          description: DNS subject alternative names.
          returned: always
          type: list
          elements: str
          sample: [kubernetes, kubernetes.default]
        ipAddresses:
          description: IP address subject alternative names.
          returned: always
          type: list
          elements: str
          sample: [10.96.0.1]
        subject:
          description: The subject distinguished name.
          returned: always
          type: str
          sample: CN=kube-apiserver
        extKeyUsage:
          description: Extended key usages.
          returned: when the agent reports it
          type: list
          elements: str
          sample: [serverAuth]
        keyAlgorithm:
          description: The key algorithm and size.
          returned: when the agent reports it
          type: str
          sample: RSA-2048
    new:
      description: The certificate after renewal (planned, in check mode).
      returned: when action is renewed or would-renew
      type: dict
      contains: *state
    sansReconciled:
      description: What O(reconcile_sans) changed in the certificate's SANs (V(DNS:name), V(IP:address)).
      returned: with O(reconcile_sans=true), for the apiserver and etcd server/peer certificates
      type: dict
      contains:
        added:
          description: SANs kubeadm's rules expect that were missing, added.
          returned: always
          type: list
          elements: str
          sample: [DNS:kubecert.example.com]
        dropped:
          description: SANs beyond the expected ones, dropped (only with O(exact=true)).
          returned: always
          type: list
          elements: str
          sample: []
    cappedAtCa:
      description: Whether the requested validity was cut at the CA's NotAfter.
      returned: always
      type: bool
      sample: false
    files:
      description: The files written (or that would be written); private keys are named, never returned.
      returned: always
      type: list
      elements: str
      sample: [/etc/kubernetes/pki/apiserver.crt, /etc/kubernetes/pki/apiserver.key]
componentsToRestart:
  description:
    - The static pods (V(etcd), V(kube-apiserver), V(kube-controller-manager), V(kube-scheduler))
      that read a renewed certificate and must restart to use it.
  returned: success
  type: list
  elements: str
  sample: [kube-apiserver]
unrenewable:
  description:
    - Due certificates that could not be renewed (V(externally-managed), their CA key is absent, or
      V(missing), the file is absent) and that were not accepted through the agent's
      C(allow_unrenewable). Non-empty means the node's renewal is incomplete. A missing
      C(super-admin.conf) is never listed.
  returned: success
  type: list
  elements: str
  sample: []
recovered:
  description: What the agent did to recover an interrupted earlier run before this one, if anything.
  returned: when an earlier run was recovered
  type: str
  sample: rolled back an interrupted transaction
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.kubecert.pki.plugins.module_utils.kubecert import (
    KEY_ALGORITHMS,
    PATHS_ARGUMENT_SPEC,
    argument_spec,
    certificate_diff,
    exit_with_result,
    run,
)


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(
            PATHS_ARGUMENT_SPEC,
            names=dict(type='list', elements='str', default=['all']),
            external_etcd=dict(type='bool'),
            within=dict(type='str'),
            key_algorithm=dict(type='str', choices=KEY_ALGORITHMS, no_log=False),
            validity=dict(type='str'),
            backup_dir=dict(type='path'),
            now=dict(type='str'),
            allow_expired_ca=dict(type='bool', default=False),
            allow_unrenewable=dict(type='list', elements='str', default=[]),
            config=dict(type='path'),
            kubeconfig=dict(type='path'),
            node_name=dict(type='str'),
            advertise_address=dict(type='str'),
            reconcile_sans=dict(type='bool', default=False),
            exact=dict(type='bool', default=False),
        ),
        required_if=[('reconcile_sans', True, ('config', 'kubeconfig'), True),
                     ('exact', True, ('config', 'kubeconfig'), True)],
        mutually_exclusive=[('config', 'kubeconfig'), ('config', 'validity'), ('config', 'key_algorithm'),
                            ('kubeconfig', 'validity'), ('kubeconfig', 'key_algorithm')],
        supports_check_mode=True,
    )
    params = dict((name, module.params[name]) for name in (
        'names', 'cert_dir', 'kubeconfig_dir', 'external_etcd', 'within', 'key_algorithm',
        'validity', 'backup_dir', 'now', 'allow_expired_ca', 'allow_unrenewable'))
    if not params['allow_unrenewable']:
        del params['allow_unrenewable']  # the agent's default: none
    for name in ('config', 'kubeconfig', 'node_name', 'advertise_address'):
        if module.params[name]:
            params[name] = module.params[name]
    if module.params['reconcile_sans']:
        params['reconcile_sans'] = True
    if module.params['exact']:
        params['exact'] = True
    params['dry_run'] = module.check_mode
    result = run(module, 'renew', params)
    # Certificates asked for by name that the agent could not renew: say so, not a silent ok.
    unrenewable = result.get('unrenewable') or []
    for cert in result.get('certificates') or []:
        if isinstance(cert, dict) and cert.get('name') in unrenewable:
            module.warn('{0} is due and was not renewed: {1} ({2})'.format(cert.get('name'), cert.get('action'), cert.get('reason')))
    exit_with_result(module, result, diff=certificate_diff(result.get('certificates')),
                     changed_actions=('renewed', 'would-renew'))


if __name__ == '__main__':
    main()
