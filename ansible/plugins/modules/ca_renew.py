#!/usr/bin/python
# Copyright (c) kubecert contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: Apache-2.0 OR GPL-3.0-or-later

DOCUMENTATION = r'''
module: ca_renew
short_description: Renew kubeadm CA certificates with the same key (the ten-year cliff)
version_added: 0.2.0
description:
  - Calls the kubecert agent's C(ca-renew) method, which re-issues each named CA certificate with its own key,
    subject, subject key identifier and extensions, a new serial and a new validity, and rewrites the
    C(certificate-authority-data) of the node's kubeconfigs that hold it, in one transaction with a backup.
  - Every existing leaf still verifies against the renewed CA and kubeadm's join hash does not change,
    so nothing else has to be re-issued.
  - Each run renews again (a new serial). In an HA control plane renew on one node only, then give the
    other nodes the same bytes with M(kubecert.pki.ca_export) and M(kubecert.pki.ca_install)
    (the C(kubecert.pki.renew_ca) playbook does that).
  - The agent refuses a CA whose key is absent (an external CA, JSON-RPC error -31001) or does not match (-31003).
  - The module restarts nothing; the components that read the CA must be restarted (M(kubecert.pki.restart)).
  - In check mode the agent is asked for a dry run (C(dry_run=true)) and reports what it would write.
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
      - One diff per CA, with serial and NotAfter before and after, the join hash and the kubeconfigs rewritten.
options:
  cas:
    description:
      - The CAs to renew; empty (the default) renews every CA of the layout (no V(etcd-ca) with external etcd).
    type: list
    elements: str
    choices: [ca, front-proxy-ca, etcd-ca]
    default: []
  validity:
    description:
      - How long the renewed CA is valid from now, for example V(87600h).
      - When not set, the agent's default (V(87600h), kubeadm's ten years) applies.
    type: str
seealso:
  - module: kubecert.pki.ca_export
  - module: kubecert.pki.ca_install
  - module: kubecert.pki.cert_restore
'''

EXAMPLES = r'''
- name: Renew the etcd CA with the same key for ten more years
  kubecert.pki.ca_renew:
    cas: [etcd-ca]
    validity: 87600h
  register: kubecert_ca

- name: Preview the renewal of every CA
  kubecert.pki.ca_renew:
  check_mode: true
  diff: true
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
    run,
)


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(
            PATHS_ARGUMENT_SPEC,
            cas=dict(type='list', elements='str', choices=CA_NAMES, default=[]),
            external_etcd=dict(type='bool'),
            validity=dict(type='str'),
            backup_dir=dict(type='path'),
            now=dict(type='str'),
        ),
        supports_check_mode=True,
    )
    params = dict((name, module.params[name]) for name in (
        'cas', 'cert_dir', 'kubeconfig_dir', 'external_etcd', 'validity', 'backup_dir', 'now'))
    params['dry_run'] = module.check_mode
    result = run(module, 'ca-renew', params)
    # The agent's changed says what it wrote: nothing in a dry run. Check mode predicts.
    if module.check_mode:
        result['changed'] = bool(result.get('certificates'))
    exit_with_result(module, result, diff=ca_diff(result.get('certificates')))


if __name__ == '__main__':
    main()
