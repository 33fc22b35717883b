#!/usr/bin/python
# Copyright (c) kubecert contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: Apache-2.0 OR GPL-3.0-or-later

DOCUMENTATION = r'''
module: csr_export
short_description: Write certificate signing requests for kubeadm certificates signed by an external CA
version_added: 0.1.0
description:
  - Calls the kubecert agent's C(csr-export) method, which writes a CSR and its private key to
    O(csr_dir) for each selected certificate, with the subject and SANs of the current one,
    like C(kubeadm certs generate-csr).
  - Sign the CSRs with the external CA, put the signed C(<name>.crt) files next to them and install them
    with M(kubecert.pki.csr_import).
  - The private keys stay on the node; only their paths are returned.
author:
  - kubecert maintainers (@kubecert)
extends_documentation_fragment:
  - kubecert.pki.agent
  - kubecert.pki.agent.paths
  - kubecert.pki.agent.external_etcd
  - kubecert.pki.attributes
attributes:
  check_mode:
    support: none
    details:
      - The agent's C(csr-export) method has no dry run, so the task is skipped in check mode.
  diff_mode:
    support: none
options:
  names:
    description:
      - The kubeadm names of the certificates to write CSRs for, or V(all).
      - When not set, the agent selects all of them.
    type: list
    elements: str
  csr_dir:
    description:
      - Where the CSRs and keys are written (C(<name>.csr), C(<name>.key); created with mode 0700).
    type: path
    required: true
  reuse_key:
    description:
      - Build the CSR from the certificate's current key instead of a new one.
    type: bool
    default: false
  key_algorithm:
    description:
      - The algorithm of new keys; V(same) keeps each certificate's current algorithm.
      - When not set, the agent's default applies.
    type: str
    choices: [same, rsa-2048, rsa-3072, rsa-4096, ecdsa-p256, ecdsa-p384]
  force:
    description:
      - Overwrite CSRs and keys already in O(csr_dir); otherwise they are kept.
    type: bool
    default: false
  request_usages:
    description:
      - Request the key usages and extended key usages in the CSR (kubeadm requests none).
    type: bool
    default: false
seealso:
  - module: kubecert.pki.csr_import
'''

EXAMPLES = r'''
- name: Write CSRs for all certificates
  kubecert.pki.csr_export:
    csr_dir: /root/kubecert-csr
  register: kubecert_csrs

- name: Fetch the CSRs (not the keys) for signing
  ansible.builtin.fetch:
    src: "{{ item.csrPath }}"
    dest: "csr/{{ inventory_hostname }}/"
    flat: true
  loop: "{{ kubecert_csrs.certificates | selectattr('action', 'equalto', 'exported') }}"
  loop_control:
    label: "{{ item.name }}"

- name: Rewrite the API server CSR with usages, keeping its key
  kubecert.pki.csr_export:
    names: [apiserver]
    csr_dir: /root/kubecert-csr
    reuse_key: true
    request_usages: true
    force: true
'''

RETURN = r'''
csrDir:
  description: The directory the CSRs and keys are in.
  returned: when the agent reports it
  type: str
  sample: /root/kubecert-csr
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
    action:
      description: V(exported), V(kept) (already there and O(force=false)) or V(missing) (no current certificate).
      returned: always
      type: str
      sample: exported
    reason:
      description: Why that action was taken.
      returned: when the agent reports it
      type: str
      sample: wrote a new CSR and key
    caName:
      description: The CA that must sign the CSR.
      returned: when the agent reports it
      type: str
      sample: ca
    externallyManaged:
      description: Whether that CA's key is absent from the PKI (an external CA).
      returned: when the agent reports it
      type: bool
      sample: true
    requiredUsages:
      description: Extended key usages the signed certificate must carry for M(kubecert.pki.csr_import) to accept it.
      returned: when the agent reports it
      type: list
      elements: str
      sample: [serverAuth]
    keyAlgorithm:
      description: Algorithm of the key in RV(certificates[].keyPath).
      returned: when the agent reports it
      type: str
      sample: RSA-2048
    keyReused:
      description: Whether the certificate's current key was reused.
      returned: when the agent reports it
      type: bool
      sample: false
    csrPath:
      description: Path of the CSR.
      returned: unless missing
      type: str
      sample: /root/kubecert-csr/apiserver.csr
    keyPath:
      description: Path of the private key on the node (the key itself is never returned).
      returned: unless missing
      type: str
      sample: /root/kubecert-csr/apiserver.key
    subject:
      description: The requested subject.
      returned: unless missing
      type: str
      sample: CN=kube-apiserver
    dnsNames:
      description: The requested DNS SANs.
      returned: unless missing
      type: list
      elements: str
      sample: [kubernetes, kubernetes.default]
    ipAddresses:
      description: The requested IP SANs.
      returned: unless missing
      type: list
      elements: str
      sample: [10.96.0.1]
    requestedUsages:
      description: The usages requested in the CSR (empty unless O(request_usages=true)).
      returned: unless missing
      type: list
      elements: str
      sample: []
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.kubecert.pki.plugins.module_utils.kubecert import (
    KEY_ALGORITHMS,
    PATHS_ARGUMENT_SPEC,
    argument_spec,
    exit_with_result,
    run,
)


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(
            PATHS_ARGUMENT_SPEC,
            names=dict(type='list', elements='str'),
            csr_dir=dict(type='path', required=True),
            external_etcd=dict(type='bool'),
            reuse_key=dict(type='bool', default=False, no_log=False),
            key_algorithm=dict(type='str', choices=KEY_ALGORITHMS, no_log=False),
            force=dict(type='bool', default=False),
            request_usages=dict(type='bool', default=False),
        ),
        supports_check_mode=False,
    )
    params = dict((name, module.params[name]) for name in (
        'names', 'csr_dir', 'cert_dir', 'kubeconfig_dir', 'external_etcd', 'reuse_key', 'key_algorithm', 'force',
        'request_usages'))
    result = run(module, 'csr-export', params)
    exit_with_result(module, result, changed_actions=('exported',))


if __name__ == '__main__':
    main()
