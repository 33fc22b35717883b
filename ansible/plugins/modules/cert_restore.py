#!/usr/bin/python
# Copyright (c) kubecert contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: Apache-2.0 OR GPL-3.0-or-later

DOCUMENTATION = r'''
module: cert_restore
short_description: Roll kubeadm certificates back to a kubecert backup
version_added: 0.1.0
description:
  - Calls the kubecert agent's C(restore) method, which puts every file of a backup made by
    M(kubecert.pki.cert_renew) or M(kubecert.pki.csr_import) (their C(backupDir)) back in place,
    through the same locked transaction as a renewal.
  - The components that read those files must be restarted afterwards (the C(kubecert.pki.rolling_renew)
    role does so when it rolls a node back).
  - In check mode the agent is asked for a dry run (C(dry_run=true)) and reports what it would restore.
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
    support: full
    details:
      - Lists the files restored (or that would be restored).
options:
  backup_dir:
    description:
      - The backup to restore, as returned in C(backupDir) by M(kubecert.pki.cert_renew) or M(kubecert.pki.csr_import).
    type: path
    required: true
  backup_root:
    description:
      - The directory the backup was made in (the O(kubecert.pki.cert_renew#module:backup_dir) given to the renewal).
        The agent restores only a backup that is a direct child of its backup root; without this option that is
        the agent's own (its C(--backup-root), by default C(<cert_dir>/../kubecert-backup)).
      - A non-root caller of the socket agent may pass only the agent's configured backup root.
    type: path
  kubelet_pki:
    description:
      - The kubelet PKI dir, for a backup made by M(kubecert.pki.kubelet_rebuild) (C(kubelet-conf rebuild)).
        Its restore re-points C(kubelet-client-current.pem) there and removes the dated pair the rebuild created.
      - Without it the agent uses its own (by default C(/var/lib/kubelet/pki)).
    type: path
seealso:
  - module: kubecert.pki.cert_renew
  - module: kubecert.pki.csr_import
'''

EXAMPLES = r'''
- name: Renew
  kubecert.pki.cert_renew:
    within: 30d
  register: kubecert_renew

- name: Roll back that renewal
  kubecert.pki.cert_restore:
    backup_dir: "{{ kubecert_renew.backupDir }}"
  # backupDir is null when nothing was written; ansible-core 2.19 wants a boolean here.
  when: kubecert_renew.backupDir is not none

- name: Restore a backup of a non-default layout
  kubecert.pki.cert_restore:
    backup_dir: /srv/kubernetes/kubecert-backup/20261129T041500Z
    cert_dir: /srv/kubernetes/pki
    kubeconfig_dir: /srv/kubernetes
'''

RETURN = r'''
restored:
  description: The files put back in place (or that would be, in check mode).
  returned: success
  type: list
  elements: str
  sample: [/etc/kubernetes/pki/apiserver.crt, /etc/kubernetes/pki/apiserver.key]
dryRun:
  description: Whether the agent only planned (check mode).
  returned: success
  type: bool
  sample: false
removed:
  description: Files the backed-up run had created, removed (or that would be, in check mode) - the dated pair of a
    C(kubelet-conf rebuild). Absent when none.
  returned: when a file was removed
  type: list
  elements: str
  sample: [/var/lib/kubelet/pki/kubelet-client-2027-02-01-00-00-00.pem]
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
            backup_dir=dict(type='path', required=True),
            backup_root=dict(type='path'),
            kubelet_pki=dict(type='path'),
        ),
        supports_check_mode=True,
    )
    params = dict((name, module.params[name]) for name in ('backup_dir', 'cert_dir', 'kubeconfig_dir'))
    for name in ('backup_root', 'kubelet_pki'):
        if module.params[name]:
            params[name] = module.params[name]
    params['dry_run'] = module.check_mode
    result = run(module, 'restore', params)
    restored = result.get('restored') or []
    removed = result.get('removed') or []
    if 'changed' not in result:
        result['changed'] = bool(restored or removed)
    diff = None
    if restored or removed:
        diff = {'prepared': '{0} from {1}:\n{2}\n'.format(
            'would restore' if module.check_mode else 'restored',
            module.params['backup_dir'],
            '\n'.join(['  ' + str(path) for path in restored]
                      + ['  removed ' + str(path) for path in removed]))}
    exit_with_result(module, result, diff=diff)


if __name__ == '__main__':
    main()
