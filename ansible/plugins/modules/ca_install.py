#!/usr/bin/python
# Copyright (c) kubecert contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: Apache-2.0 OR GPL-3.0-or-later

DOCUMENTATION = r'''
module: ca_install
short_description: Install a kubeadm CA certificate renewed on another control-plane node
version_added: 0.2.0
description:
  - Calls the kubecert agent's C(ca-install) method with the PEM of a CA certificate that
    M(kubecert.pki.ca_renew) renewed on another node (M(kubecert.pki.ca_export) reads it there).
  - The agent refuses it (JSON-RPC error -31003, nothing written) unless it is one self-signed CA certificate,
    valid now, with this node's CA key, subject and subject key identifier; then it writes the CA file and the
    C(certificate-authority-data) of the node's kubeconfigs in one transaction with a backup.
  - When the node's CA file already holds this very certificate (compared through C(ca-export)), nothing is
    written and the task is not changed.
  - In check mode the agent is asked for a dry run (C(dry_run=true)) and validates the certificate all the same.
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
      - Serial and NotAfter before and after, the join hash and the kubeconfigs rewritten.
options:
  ca:
    description:
      - Which CA the certificate is.
    type: str
    required: true
    choices: [ca, front-proxy-ca, etcd-ca]
  pem:
    description:
      - The CA certificate, PEM (one certificate, no key), as RV(kubecert.pki.ca_export#module:pem) returns it.
    type: str
    required: true
seealso:
  - module: kubecert.pki.ca_renew
  - module: kubecert.pki.ca_export
'''

EXAMPLES = r'''
- name: Read the renewed CA on the first node
  kubecert.pki.ca_export:
    ca: ca
  register: kubecert_ca_pem
  delegate_to: "{{ groups['control_plane'][0] }}"

- name: Install it here
  kubecert.pki.ca_install:
    ca: ca
    pem: "{{ kubecert_ca_pem.pem }}"
'''

RETURN = r'''
certificates:
  description: One entry per CA renewed or installed (or that would be, in check mode).
  returned: success
  type: list
  elements: dict
  contains:
    name:
      description: The CA (V(ca), V(front-proxy-ca), V(etcd-ca)).
      returned: always
      type: str
      sample: ca
    action:
      description: V(renewed), V(would-renew) (check mode), V(installed) or V(would-install) (check mode).
      returned: always
      type: str
      sample: renewed
    path:
      description: The CA certificate file.
      returned: always
      type: str
      sample: /etc/kubernetes/pki/ca.crt
    oldSerial:
      description: The serial before, hex.
      returned: always
      type: str
      sample: 7b75f6e636f8edc2
    newSerial:
      description: The serial after, hex.
      returned: always
      type: str
      sample: 2edef832750dd1fb
    oldNotAfter:
      description: NotAfter before, RFC 3339 UTC.
      returned: always
      type: str
      sample: '2036-11-28T00:00:00Z'
    newNotAfter:
      description: NotAfter after, RFC 3339 UTC.
      returned: always
      type: str
      sample: '2046-11-26T00:00:00Z'
    spkiSha256:
      description:
        - kubeadm's join hash (C(--discovery-token-ca-cert-hash)), unchanged since the key is the same.
      returned: always
      type: str
      sample: sha256:ccee246abc81c4399a36ca87a16138f193d9eecb7988ac1fec2040d87fa6085a
    kubeconfigs:
      description: The kubeconfigs whose C(certificate-authority-data) is rewritten.
      returned: always
      type: list
      elements: str
      sample: [/etc/kubernetes/admin.conf, /etc/kubernetes/kubelet.conf]
written:
  description: Every file written (or that would be, in check mode), in commit order.
  returned: success
  type: list
  elements: str
  sample: [/etc/kubernetes/pki/ca.crt, /etc/kubernetes/admin.conf]
backupDir:
  description:
    - The backup of what was replaced (pass it to M(kubecert.pki.cert_restore) to roll back).
    - V(null) when nothing was written.
  returned: success
  type: str
  sample: /etc/kubernetes/kubecert-backup/20261201T000000Z
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.kubecert.pki.plugins.module_utils.kubecert import (
    CA_NAMES,
    PATHS_ARGUMENT_SPEC,
    argument_spec,
    ca_diff,
    exit_with_result,
    pem_body,
    run,
)


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(
            PATHS_ARGUMENT_SPEC,
            ca=dict(type='str', required=True, choices=CA_NAMES),
            pem=dict(type='str', required=True),
            external_etcd=dict(type='bool'),
            backup_dir=dict(type='path'),
            now=dict(type='str'),
        ),
        supports_check_mode=True,
    )
    if 'PRIVATE KEY' in module.params['pem']:
        module.fail_json(msg='pem holds a private key; ca_install takes the CA certificate only')
    location = dict((name, module.params[name]) for name in ('cert_dir', 'kubeconfig_dir', 'external_etcd'))
    current = run(module, 'ca-export', dict(location, ca=module.params['ca']))
    wanted = pem_body(module.params['pem'])
    if wanted and pem_body(current.get('pem')) == wanted:
        module.exit_json(changed=False, certificates=[], written=[], backupDir=None)
    params = dict(location, ca=module.params['ca'], pem=module.params['pem'])
    for name in ('backup_dir', 'now'):
        params[name] = module.params[name]
    params['dry_run'] = module.check_mode
    result = run(module, 'ca-install', params)
    if module.check_mode:
        result['changed'] = bool(result.get('certificates'))
    exit_with_result(module, result, diff=ca_diff(result.get('certificates')))


if __name__ == '__main__':
    main()
