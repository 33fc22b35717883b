#!/usr/bin/python
# Copyright (c) kubecert contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: Apache-2.0 OR GPL-3.0-or-later

DOCUMENTATION = r'''
module: kubelet_rebuild
short_description: Break-glass recovery of a node whose kubelet client certificate has expired
version_added: 0.2.0
description:
  - Calls the kubecert agent's C(kubelet-conf-rebuild) method (C(kubecert kubelet-conf rebuild)).
  - First a clock check; a certificate whose NotBefore lies ahead of the node's clock is reported as
    clock skew (the module fails with the agent's error code V(-31003)), not as expiry.
  - Then, with the node's own C(ca.key), the agent issues the client certificate
    C(kubeadm kubeconfig user --org system:nodes --client-name system:node:NAME) would
    (CN C(system:node:NAME), O C(system:nodes), client auth only), writes it as the kubelet rotates it
    (a dated C(kubelet-client-<time>.pem) and the C(kubelet-client-current.pem) symlink) and writes
    C(kubelet.conf) referencing C(kubelet-client-current.pem), with the cluster's server and CA data
    kept; one transaction with a backup (RV(backupDir)).
  - Refused (V(-31001)) when C(ca.key) is absent (external CA).
  - In check mode the agent is asked for a dry run and returns the plan.
  - Restarting the kubelet afterwards is the caller's step (see the C(kubecert.pki.kubelet_recover) playbook).
author:
  - kubecert maintainers (@kubecert)
extends_documentation_fragment:
  - kubecert.pki.agent
  - kubecert.pki.agent.paths
  - kubecert.pki.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
options:
  node_name:
    description:
      - The node's name; the certificate is for C(system:node:<node_name>). A DNS-1123 subdomain.
    type: str
    required: true
  kubelet_pki:
    description:
      - The kubelet's PKI directory.
    type: path
    default: /var/lib/kubelet/pki
  clock_skew:
    description:
      - How far a NotBefore may lie ahead of the node's clock before it is clock skew (default 5m).
    type: str
  now:
    description:
      - Use this RFC 3339 UTC time instead of the clock (for tests).
    type: str
seealso:
  - module: kubecert.pki.kubelet_conf
  - module: kubecert.pki.cert_info
'''

EXAMPLES = r'''
- name: Rebuild the kubelet client certificate and kubelet.conf
  kubecert.pki.kubelet_rebuild:
    node_name: "{{ inventory_hostname }}"
  register: kubecert_rebuild

- name: Restart the kubelet
  ansible.builtin.systemd_service:
    name: kubelet
    state: restarted
  when: kubecert_rebuild is changed and not ansible_check_mode
'''

RETURN = r'''
nodeName:
  description: The node.
  returned: success
  type: str
  sample: cp1
action:
  description: V(rebuilt), or V(would-rebuild) in check mode.
  returned: success
  type: str
  sample: rebuilt
certificate:
  description: The new client certificate.
  returned: success
  type: dict
  contains:
    path:
      description: The dated file holding the certificate and its key.
      returned: always
      type: str
      sample: /var/lib/kubelet/pki/kubelet-client-2027-02-01-00-00-00.pem
    subject:
      description: Subject.
      returned: always
      type: str
      sample: O=system:nodes, CN=system:node:cp1
    issuer:
      description: Issuer.
      returned: always
      type: str
      sample: CN=kubernetes
    serial:
      description: Serial number, hex.
      returned: always
      type: str
      sample: 5f3a0c2d9e1b7a44
    notBefore:
      description: NotBefore (the clock less 5 minutes).
      returned: always
      type: str
      sample: '2027-01-31T23:55:00Z'
    notAfter:
      description: NotAfter (one year, capped at the CA's NotAfter).
      returned: always
      type: str
      sample: '2028-02-01T00:00:00Z'
    cappedAtCa:
      description: Whether NotAfter was capped at the CA's.
      returned: always
      type: bool
      sample: false
    keyAlgorithm:
      description: The new key's algorithm (the CA's).
      returned: always
      type: str
      sample: RSA-2048
    extKeyUsage:
      description: Extended key usages.
      returned: always
      type: list
      elements: str
      sample: [clientAuth]
    keyUsage:
      description: Key usages.
      returned: always
      type: list
      elements: str
      sample: [digitalSignature, keyEncipherment]
link:
  description: C(kubelet-client-current.pem).
  returned: success
  type: str
  sample: /var/lib/kubelet/pki/kubelet-client-current.pem
linkTarget:
  description: What the link points to now (or would).
  returned: success
  type: str
  sample: /var/lib/kubelet/pki/kubelet-client-2027-02-01-00-00-00.pem
kubeletConf:
  description: The C(kubelet.conf) written.
  returned: success
  type: str
  sample: /etc/kubernetes/kubelet.conf
server:
  description: The API server URL kept in C(kubelet.conf).
  returned: success
  type: str
  sample: https://10.0.0.1:6443
clusterFrom:
  description: The kubeconfig the server and CA data were taken from.
  returned: success
  type: str
  sample: /etc/kubernetes/kubelet.conf
written:
  description: The files written (or that would be), in commit order.
  returned: success
  type: list
  elements: str
  sample: [/var/lib/kubelet/pki/kubelet-client-2027-02-01-00-00-00.pem, /etc/kubernetes/kubelet.conf]
plan:
  description: The steps, in words.
  returned: success
  type: list
  elements: str
  sample: [issue system:node:cp1 (O system:nodes, clientAuth, RSA-2048) with /etc/kubernetes/pki/ca.crt until 2028-02-01T00:00:00Z]
backupDir:
  description: The backup of what was replaced; V(null) in check mode.
  returned: success
  type: str
  sample: /etc/kubernetes/kubecert-backup/20270201T000000Z
warnings:
  description: Warnings that do not stop the rebuild (a clock far ahead of the newest certificate of the PKI). Absent
    when none.
  returned: when there is one
  type: list
  elements: str
  sample: ["possible clock skew: the clock is 400 days past the newest NotBefore"]
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.kubecert.pki.plugins.module_utils.kubecert import (
    DEFAULT_KUBELET_PKI,
    PATHS_ARGUMENT_SPEC,
    argument_spec,
    exit_with_result,
    run,
)


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(
            PATHS_ARGUMENT_SPEC,
            node_name=dict(type='str', required=True),
            kubelet_pki=dict(type='path', default=DEFAULT_KUBELET_PKI),
            clock_skew=dict(type='str'),
            now=dict(type='str'),
        ),
        supports_check_mode=True,
    )
    params = dict((name, module.params[name]) for name in (
        'node_name', 'kubeconfig_dir', 'cert_dir', 'kubelet_pki', 'clock_skew', 'now'))
    params['dry_run'] = module.check_mode
    result = run(module, 'kubelet-conf-rebuild', params)
    # Ansible's changed: written, or (check mode) would be; the agent's own "changed" says
    # whether the disk changed, which a dry run never does.
    result['changed'] = result.get('action') in ('rebuilt', 'would-rebuild')
    exit_with_result(module, result)


if __name__ == '__main__':
    main()
