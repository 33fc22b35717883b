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
  - With O(kubelet_serving=true) it judges kubelet serving certificate requests (signer
    C(kubernetes.io/kubelet-serving)) instead, by the rule kube-controller-manager does not implement
    (only DNS names and IPs of the requesting node's Node object); see O(kubelet_serving).
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
  kubelet_serving:
    description:
      - Judge kubelet serving certificate requests (signer C(kubernetes.io/kubelet-serving)) instead of
        requests that renew this node's kubeadm certificates.
      - Approved only when the requester is C(system:node:<name>) in C(system:nodes), the subject is
        CN C(system:node:<name>) O C(system:nodes), the usages are C(server auth) plus optionally
        C(digital signature) and C(key encipherment), and every DNS name and IP is an address of
        that Node (C(status.addresses)); no URI or email SANs, no CA, expirationSeconds within the policy.
      - Denied when a rule about the request itself is broken; left pending when the Node does not
        exist yet or reports no address yet. Every reason is a typed finding in RV(requests[].findings).
      - The module fails when a request was approved but not issued within O(issued_within)
        (finding V(approved-not-issued)), as C(kubecert approve --kubelet-serving) exits 3.
    type: bool
    default: false
  issued_within:
    description:
      - With O(kubelet_serving=true), report a request approved but still without a certificate after
        this long (a duration such as V(5m) or V(1h)).
      - When not set, the policy's C(issuedWithinSeconds) applies (default 5 minutes).
    type: str
seealso:
  - module: kubecert.pki.kubelet_conf
'''

EXAMPLES = r'''
- name: Approve pending kubelet serving CSRs that satisfy the policy
  kubecert.pki.csr_approve:
    all_pending: true
    kubeconfig: /etc/kubernetes/admin.conf
  register: kubecert_approve

- name: Approve kubelet serving CSRs whose SANs are addresses of the requesting node
  kubecert.pki.csr_approve:
    all_pending: true
    kubelet_serving: true
    issued_within: 10m
    kubeconfig: /etc/kubernetes/admin.conf

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
    node:
      description: With O(kubelet_serving=true), the node the request is for (from C(spec.username)).
      returned: with O(kubelet_serving=true), when the requester is a node
      type: str
      sample: cp-1
    findings:
      description:
        - With O(kubelet_serving=true), every reason to deny, leave pending or report, typed.
        - The messages are also in RV(requests[].reasons).
      returned: with O(kubelet_serving=true), when there is a finding
      type: list
      elements: dict
      contains:
        code:
          description:
            - V(san-not-of-node), V(foreign-node), V(requester-not-a-node), V(requester-not-in-nodes-group),
              V(subject-invalid), V(usage-not-allowed), V(usage-missing), V(no-dns-or-ip), V(forbidden-san),
              V(ca-requested), V(expiration-too-long) (denied);
            - V(node-not-found), V(node-without-addresses), V(request-unreadable), V(not-kubelet-serving) (left pending);
            - V(approved-not-issued) (reported).
          returned: always
          type: str
          sample: san-not-of-node
        message:
          description: What is wrong, naming the request, the node and the offending SAN or usage.
          returned: always
          type: str
          sample: 'CSR "csr-8x7lp": subjectAltName DNS:evil.example.com is not an address of node "cp-1" (status.addresses: InternalIP=10.0.0.11)'
kubeletServing:
  description: Whether the requests were judged as kubelet serving requests (O(kubelet_serving=true)).
  returned: with O(kubelet_serving=true)
  type: bool
  sample: true
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
    issuedWithinSeconds:
      description: With O(kubelet_serving=true), how long an approved request may stay without a certificate before it is reported.
      returned: always
      type: int
      sample: 300
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
            kubelet_serving=dict(type='bool', default=False),
            issued_within=dict(type='str'),
        ),
        mutually_exclusive=[('names', 'all_pending')],
        supports_check_mode=True,
    )
    params = dict((name, module.params[name]) for name in (
        'names', 'all_pending', 'kubeconfig', 'policy', 'cert_dir', 'kubeconfig_dir', 'kubelet_serving',
        'issued_within'))
    if params['issued_within'] is not None and not params['kubelet_serving']:
        module.fail_json(msg='issued_within applies to kubelet_serving=true only')
    params['dry_run'] = module.check_mode
    result = run(module, 'approve', params)
    stuck = []
    for request in result.get('requests') or []:
        for finding in request.get('findings') or []:
            if finding.get('code') == 'approved-not-issued':
                stuck.append('{0}: {1}'.format(request.get('name'), finding.get('message')))
    if stuck:
        result = dict(result)
        changed = bool(result.pop('changed', False))
        module.fail_json(msg='approved but not issued: {0}'.format(' | '.join(stuck)), changed=changed, **result)
    exit_with_result(module, result, entries='requests', field='decision',
                     changed_actions=('approved', 'denied', 'would-approve', 'would-deny'))


if __name__ == '__main__':
    main()
