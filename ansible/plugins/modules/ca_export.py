#!/usr/bin/python
# Copyright (c) kubecert contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: Apache-2.0 OR GPL-3.0-or-later

DOCUMENTATION = r'''
module: ca_export
short_description: Read a kubeadm CA certificate (never its key) for the other control-plane nodes
version_added: 0.2.0
description:
  - Calls the kubecert agent's C(ca-export) method, which returns the PEM of a CA certificate of the node,
    for M(kubecert.pki.ca_install) on the other control-plane nodes. The key is never returned.
author:
  - kubecert maintainers (@kubecert)
extends_documentation_fragment:
  - kubecert.pki.agent
  - kubecert.pki.agent.paths
  - kubecert.pki.agent.external_etcd
  - kubecert.pki.attributes
  - kubecert.pki.attributes.info_module
options:
  ca:
    description:
      - Which CA.
    type: str
    required: true
    choices: [ca, front-proxy-ca, etcd-ca]
seealso:
  - module: kubecert.pki.ca_install
  - module: kubecert.pki.ca_renew
'''

EXAMPLES = r'''
- name: Read the etcd CA certificate
  kubecert.pki.ca_export:
    ca: etcd-ca
  register: kubecert_etcd_ca
'''

RETURN = r'''
name:
  description: The CA.
  returned: success
  type: str
  sample: etcd-ca
pem:
  description: The CA certificate, PEM (never a key).
  returned: success
  type: str
  sample: "-----BEGIN CERTIFICATE-----\nMIIC...\n-----END CERTIFICATE-----\n"
serial:
  description: Its serial, hex.
  returned: success
  type: str
  sample: 2edef832750dd1fb
notAfter:
  description: Its NotAfter, RFC 3339 UTC.
  returned: success
  type: str
  sample: '2046-11-26T00:00:00Z'
spkiSha256:
  description: kubeadm's join hash of the CA (C(--discovery-token-ca-cert-hash)).
  returned: success
  type: str
  sample: sha256:ccee246abc81c4399a36ca87a16138f193d9eecb7988ac1fec2040d87fa6085a
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.kubecert.pki.plugins.module_utils.kubecert import (
    CA_NAMES,
    PATHS_ARGUMENT_SPEC,
    argument_spec,
    run,
)


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(
            PATHS_ARGUMENT_SPEC,
            ca=dict(type='str', required=True, choices=CA_NAMES),
            external_etcd=dict(type='bool'),
        ),
        supports_check_mode=True,
    )
    params = dict((name, module.params[name]) for name in ('ca', 'cert_dir', 'kubeconfig_dir', 'external_etcd'))
    result = run(module, 'ca-export', params)
    module.exit_json(changed=False, **result)


if __name__ == '__main__':
    main()
