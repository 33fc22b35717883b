#!/usr/bin/python
# Copyright (c) kubecert contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: Apache-2.0 OR GPL-3.0-or-later

DOCUMENTATION = r'''
module: ca_rotate
short_description: Run one phase of a staged kubeadm CA rotation to a new key on a node
version_added: 0.2.0
description:
  - Calls the kubecert agent's C(ca-rotate) method, one phase of the rotation of a CA to a new key
    (C(kubecert ca rotate <ca> --phase ...), see C(docs/ca-rotation.md) in the kubecert repository).
  - "V(stage) creates the new CA as C(<cert_dir>/<ca>.next.crt) and C(.next.key) (C(etcd/ca.next.*) for
    V(etcd-ca)), or, when those files already exist (copied from the first node), validates and uses them,
    so that every node gets the same new CA; every trust location gets the bundle old+new."
  - V(promote) re-issues every leaf of that CA with the new CA, which becomes the signing CA; the bundle stays.
  - V(distrust) removes the old CA from every bundle.
  - The phase a node is in is derived from its files; a phase already done changes nothing. O(rollback)
    undoes a phase (back to the previous one).
  - In an HA control plane each phase must be done on every node before the next starts (the
    C(kubecert.pki.rotate_ca) playbook does that). The module restarts nothing; the components in
    RV(componentsToRestart) must be restarted (M(kubecert.pki.restart)).
  - In check mode the agent is asked for a dry run (C(dry_run=true)).
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
      - The phase before and after, and the files the phase changes.
options:
  ca:
    description:
      - The CA to rotate.
    type: str
    required: true
    choices: [ca, front-proxy-ca, etcd-ca]
  phase:
    description:
      - The phase to run.
    type: str
    required: true
    choices: [stage, promote, distrust]
  rollback:
    description:
      - Undo O(phase) instead of running it (back to the phase before it).
    type: bool
    default: false
  validity:
    description:
      - Validity of a new CA created by V(stage), for example V(87600h); the agent's default when not set.
    type: str
  kubeconfig:
    description:
      - An admin kubeconfig, for the agent to update the C(cluster-info) ConfigMap in kube-public with (only for
        O(ca=ca)), after the node's files are committed; see RV(clusterInfo). Without it, that update stays in RV(checklist).
    type: path
seealso:
  - module: kubecert.pki.ca_renew
  - module: kubecert.pki.restart
'''

EXAMPLES = r'''
- name: Stage a new etcd CA (every node trusts old and new)
  kubecert.pki.ca_rotate:
    ca: etcd-ca
    phase: stage
  register: kubecert_rotate

- name: What kubecert cannot do from the node
  ansible.builtin.debug:
    var: kubecert_rotate.checklist

- name: Undo the promotion
  kubecert.pki.ca_rotate:
    ca: etcd-ca
    phase: promote
    rollback: true
'''

RETURN = r'''
ca:
  description: The CA.
  returned: success
  type: str
  sample: etcd-ca
phase:
  description: The phase asked.
  returned: success
  type: str
  sample: stage
rollback:
  description: Whether the phase was undone (O(rollback)).
  returned: success
  type: bool
  sample: false
phaseBefore:
  description:
    - The rotation phase the node's files were in before this call, derived from the files
      (V(none), V(staged), V(promoted), V(distrusted), V(inconsistent)).
  returned: success
  type: str
  sample: none
phaseAfter:
  description: The rotation phase after this call (in check mode, the one it would reach).
  returned: success
  type: str
  sample: staged
message:
  description: One line, what was done or why nothing was.
  returned: success
  type: str
  sample: 'etcd-ca: none -> staged'
changes:
  description: Per file, what the phase changed (or would change, in check mode); empty when it was already done.
  returned: success
  type: list
  elements: dict
  contains:
    path:
      description: The file.
      returned: always
      type: str
      sample: /etc/kubernetes/pki/etcd/ca.crt
    action:
      description: V(written), V(removed), V(would-write) or V(would-remove).
      returned: always
      type: str
      sample: written
    what:
      description: Why.
      returned: always
      type: str
      sample: trust bundle old+new
written:
  description: Every file written or removed (or that would be).
  returned: success
  type: list
  elements: str
  sample: [/etc/kubernetes/pki/etcd/ca.crt]
oldCa:
  description: The CA being replaced (never its key).
  returned: when there is one
  type: dict
  contains: &identity
    serial:
      description: Serial, hex.
      returned: always
      type: str
      sample: 33cc
    subject:
      description: Subject.
      returned: always
      type: str
      sample: CN=etcd-ca
    notAfter:
      description: NotAfter, RFC 3339 UTC.
      returned: always
      type: str
      sample: '2036-11-28T00:00:00Z'
    spkiSha256:
      description: kubeadm's join hash of this CA.
      returned: always
      type: str
      sample: sha256:352430662fc9d26716752b6ed9306a0a059012d5bd0538e79922410b26ac7df8
newCa:
  description: The new CA (never its key).
  returned: when there is one
  type: dict
  contains: *identity
joinHash:
  description: The join hash C(kubeadm join --discovery-token-ca-cert-hash) must be given after this phase.
  returned: success
  type: str
  sample: sha256:352430662fc9d26716752b6ed9306a0a059012d5bd0538e79922410b26ac7df8
clusterInfo:
  description:
    - What the agent did to the C(cluster-info) ConfigMap in kube-public. Only for O(ca=ca) with O(kubeconfig).
    - The node's files are committed first; a failed update (conflict, unreachable API server) fails the task with
      the files kept and an error naming the API server; run the phase again to retry the update.
  returned: when O(ca=ca) and O(kubeconfig) is given
  type: dict
  contains:
    updated:
      description: Whether the ConfigMap was written (its kubeconfig's CA data is now the node's C(ca.crt) bundle).
      type: bool
    unchanged:
      description: It already held exactly that bundle; nothing was written.
      type: bool
    wouldUpdate:
      description: Check mode, whether it would be written.
      type: bool
    server:
      description: The API server (the kubeconfig's current context).
      type: str
    resourceVersion:
      description: The ConfigMap's resourceVersion after the call.
      type: str
    error:
      description: Why it was not updated.
      type: str
checklist:
  description: What kubecert cannot do from the node and that must be done by hand for this phase.
  returned: success
  type: list
  elements: str
  sample: [update the cluster-info ConfigMap in kube-public]
componentsToRestart:
  description:
    - The components that read a changed file and must restart, in restart order - V(etcd),
      V(kube-apiserver), V(kube-controller-manager), V(kube-scheduler) (for M(kubecert.pki.restart)) and
      V(kubelet) (a systemd service, for C(ca)).
  returned: success
  type: list
  elements: str
  sample: [etcd, kube-apiserver]
backupDir:
  description:
    - The backup of what was replaced (V(null) when nothing was written).
  returned: success
  type: str
  sample: /etc/kubernetes/kubecert-backup/20261201T000000Z
dryRun:
  description: Whether the agent only planned (check mode).
  returned: success
  type: bool
  sample: false
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.kubecert.pki.plugins.module_utils.kubecert import (
    CA_NAMES,
    PATHS_ARGUMENT_SPEC,
    argument_spec,
    exit_with_result,
    run,
)

PHASES = ['stage', 'promote', 'distrust']


def _change_text(change):
    if isinstance(change, dict):
        return '{0}: {1} ({2})'.format(change.get('path', '?'), change.get('action', '?'), change.get('what', ''))
    return str(change)


def rotation_diff(module, result):
    """One diff: the phase before, the phase after and the files changed."""
    changes = result.get('changes') or []
    verb = module.params['phase'] + (' rollback' if module.params['rollback'] else '')
    return {
        'before_header': '{0} rotation (before)'.format(module.params['ca']),
        'after_header': '{0} rotation ({1}{2})'.format(module.params['ca'], 'would ' if module.check_mode else '', verb),
        'before': 'phase: {0}\n'.format(result.get('phaseBefore')),
        'after': 'phase: {0}\n'.format(result.get('phaseAfter')) + ''.join(
            '{0}\n'.format(_change_text(c)) for c in changes),
    }


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(
            PATHS_ARGUMENT_SPEC,
            ca=dict(type='str', required=True, choices=CA_NAMES),
            phase=dict(type='str', required=True, choices=PHASES),
            rollback=dict(type='bool', default=False),
            external_etcd=dict(type='bool'),
            validity=dict(type='str'),
            kubeconfig=dict(type='path'),
            backup_dir=dict(type='path'),
            now=dict(type='str'),
        ),
        supports_check_mode=True,
    )
    params = dict((name, module.params[name]) for name in (
        'ca', 'phase', 'rollback', 'cert_dir', 'kubeconfig_dir', 'external_etcd', 'validity', 'kubeconfig',
        'backup_dir', 'now'))
    params['dry_run'] = module.check_mode
    result = run(module, 'ca-rotate', params)
    # The agent's changed: something changed on disk (in a dry run: would change).
    changed = bool(result.get('changed', bool(result.get('changes'))))
    result['changed'] = changed
    for item in result.get('checklist') or []:
        module.warn('{0} {1} on this node, to do by hand: {2}'.format(module.params['ca'], module.params['phase'], item))
    exit_with_result(module, result, diff=rotation_diff(module, result) if changed else None)


if __name__ == '__main__':
    main()
