#!/usr/bin/python
# Copyright (c) kubecert contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: Apache-2.0 OR GPL-3.0-or-later

DOCUMENTATION = r'''
module: csr_approve
short_description: Approve or deny pending Kubernetes CertificateSigningRequests by policy
version_added: 0.1.0
description:
  - Calls the kubecert agent's C(approve) method, which reads C(certificates.k8s.io/v1)
    CertificateSigningRequests from the API server and approves or denies them according to a policy
    (for example kubelet serving certificates whose SANs match the node).
  - Requests the policy has no opinion on stay pending.
  - In check mode the agent is asked for a dry run (C(dry_run=true)) and reports what it would decide.
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
  names:
    description:
      - The names of the CertificateSigningRequests to decide on.
      - Mutually exclusive with O(all_pending).
    type: list
    elements: str
  all_pending:
    description:
      - Decide on every pending CertificateSigningRequest.
      - Mutually exclusive with O(names).
    type: bool
    default: false
  kubeconfig:
    description:
      - The kubeconfig used to reach the API server.
      - When not set, the agent's default applies.
    type: path
  policy:
    description:
      - Path of the approval policy file on the node.
      - When not set, the agent's built-in policy applies.
    type: path
seealso:
  - module: kubecert.pki.kubelet_conf
'''

EXAMPLES = r'''
- name: Approve pending kubelet serving CSRs that satisfy the policy
  kubecert.pki.csr_approve:
    all_pending: true
    kubeconfig: /etc/kubernetes/admin.conf
  register: kubecert_approve

- name: Decide on two named requests with a custom policy
  kubecert.pki.csr_approve:
    names:
      - csr-8x7lp
      - csr-q2n9d
    policy: /etc/kubecert/approve-policy.yaml
    kubeconfig: /etc/kubernetes/admin.conf
'''

RETURN = r'''
requests:
  description: One entry per CertificateSigningRequest considered.
  returned: success
  type: list
  elements: dict
  contains:
    name:
      description: The CertificateSigningRequest's name.
      returned: always
      type: str
      sample: csr-8x7lp
    decision:
      description:
        - V(approved), V(denied), V(pending), V(would-approve) or V(would-deny) (check mode),
        - V(skipped) (not pending - already approved, denied, failed or issued) or V(not-found) (a named request that does not exist).
      returned: always
      type: str
      sample: approved
    reasons:
      description: Why the policy decided so.
      returned: always
      type: list
      elements: str
      sample: [kubelet-serving request of node cp-1 with SANs matching its addresses]
    signerName:
      description: The request's C(spec.signerName).
      returned: always
      type: str
      sample: kubernetes.io/kubelet-serving
    username:
      description: The request's C(spec.username), who asked.
      returned: always
      type: str
      sample: system:node:cp-1
    groups:
      description: The request's C(spec.groups).
      returned: always
      type: list
      elements: str
      sample: [system:nodes, system:authenticated]
    usages:
      description: The request's C(spec.usages).
      returned: always
      type: list
      elements: str
      sample: [digital signature, server auth]
    expirationSeconds:
      description: The request's C(spec.expirationSeconds), V(null) when it asks for none.
      returned: always
      type: int
      sample: 31536000
    subject:
      description: The subject of the certificate request, V(null) when it cannot be parsed.
      returned: when the request could be read
      type: str
      sample: O=system:nodes, CN=system:node:cp-1
    certificates:
      description: The kubeadm certificates (inventory names) whose current certificate the request matches (subject or SANs).
      returned: always
      type: list
      elements: str
      sample: []
    caName:
      description: The CA those certificates belong to.
      returned: when RV(requests[].certificates) is not empty
      type: str
      sample: ca
dryRun:
  description: Whether the agent only reported what it would decide (check mode).
  returned: success
  type: bool
  sample: false
policy:
  description: The policy that was applied, after defaults.
  returned: success
  type: dict
  contains:
    signerNames:
      description: Signer names a request may use; an entry ending in C(*) matches by prefix.
      returned: always
      type: list
      elements: str
      sample: [kubernetes.io/kube-apiserver-client, kubecert.io/*]
    users:
      description: Requesters (C(spec.username)) allowed.
      returned: always
      type: list
      elements: str
      sample: []
    groups:
      description: Requester groups (C(spec.groups)) allowed.
      returned: always
      type: list
      elements: str
      sample: ['kubeadm:cluster-admins', 'system:masters']
    maxExpirationSeconds:
      description: The longest C(spec.expirationSeconds) approved.
      returned: always
      type: int
      sample: 31536000
    unmatched:
      description: V(leave) or V(deny) requests that share the subject or the SANs with a certificate of this node, but not both.
      returned: always
      type: str
      sample: leave
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.kubecert.pki.plugins.module_utils.kubecert import (
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
            all_pending=dict(type='bool', default=False),
            kubeconfig=dict(type='path'),
            policy=dict(type='path'),
        ),
        mutually_exclusive=[('names', 'all_pending')],
        supports_check_mode=True,
    )
    params = dict((name, module.params[name]) for name in (
        'names', 'all_pending', 'kubeconfig', 'policy', 'cert_dir', 'kubeconfig_dir'))
    params['dry_run'] = module.check_mode
    result = run(module, 'approve', params)
    exit_with_result(module, result, entries='requests', field='decision',
                     changed_actions=('approved', 'denied', 'would-approve', 'would-deny'))


if __name__ == '__main__':
    main()
