#!/usr/bin/python
# Copyright (c) kubecert contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: Apache-2.0 OR GPL-3.0-or-later

DOCUMENTATION = r'''
module: kubelet_conf
short_description: Check, and optionally repair, the kubelet client credentials in kubelet.conf
version_added: 0.1.0
description:
  - Calls the kubecert agent's C(kubelet-conf) method. kubeadm leaves C(kubelet.conf) out of
    C(kubeadm certs renew) because the kubelet rotates its client certificate itself; a C(kubelet.conf)
    that still embeds an expired client certificate instead of pointing at
    C(kubelet-client-current.pem) keeps the kubelet from starting.
  - With O(repair=true) the agent rewrites C(kubelet.conf) to reference the rotated certificate
    (backing up the old file in RV(backupDir)); otherwise it only reports.
  - In check mode the agent is asked for a dry run (C(dry_run=true)) and reports whether it would repair.
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
  kubelet_pki:
    description:
      - The kubelet's PKI directory (for C(kubelet-client-current.pem)).
    type: path
    default: /var/lib/kubelet/pki
  repair:
    description:
      - Rewrite C(kubelet.conf) to reference C(kubelet-client-current.pem) when that is needed and possible.
    type: bool
    default: false
  now:
    description:
      - Evaluate expiration as of this RFC 3339 UTC time instead of the clock (for tests).
    type: str
seealso:
  - module: kubecert.pki.cert_info
'''

EXAMPLES = r'''
- name: Report on kubelet.conf
  kubecert.pki.kubelet_conf:
  register: kubecert_kubelet

- name: Point kubelet.conf at the rotated client certificate
  kubecert.pki.kubelet_conf:
    repair: true
  register: kubecert_kubelet_repair

- name: Restart the kubelet after a repair
  ansible.builtin.systemd_service:
    name: kubelet
    state: restarted
  when: kubecert_kubelet_repair is changed
'''

RETURN = r'''
kubeletConfPath:
  description:
    - Path of C(kubelet.conf) (the agent's C(path)).
    - Renamed because Ansible treats a top-level C(path) as a file and would overwrite RV(mode)
      with its permissions and add owner, size and similar keys.
  returned: success
  type: str
  sample: /etc/kubernetes/kubelet.conf
present:
  description: Whether C(kubelet.conf) exists.
  returned: success
  type: bool
  sample: true
mode:
  description:
    - V(embedded) client certificate, V(file-reference) to C(kubelet-client-current.pem), or V(unknown).
    - After a repair, the state after it.
  returned: when present
  type: str
  sample: file-reference
expirationDate:
  description: NotAfter of the kubelet client certificate in RFC 3339 UTC.
  returned: when present
  type: str
  sample: '2027-01-02T03:04:05Z'
residualTime:
  description: Seconds until it expires.
  returned: when present
  type: int
  sample: 31536000
clientCurrentPem:
  description: Path of the kubelet's rotated client certificate.
  returned: success
  type: str
  sample: /var/lib/kubelet/pki/kubelet-client-current.pem
clientCurrentPemExists:
  description: Whether that file exists.
  returned: success
  type: bool
  sample: true
advice:
  description: What to do about it, if anything.
  returned: success
  type: str
  sample: kubelet.conf references kubelet-client-current.pem; nothing to do
action:
  description: V(repaired), V(would-repair) (check mode), V(none) or V(refused).
  returned: success
  type: str
  sample: none
reason:
  description: Why that action was taken.
  returned: success
  type: str
  sample: already references kubelet-client-current.pem
backupDir:
  description: The directory holding the replaced C(kubelet.conf); V(null) when nothing was written.
  returned: success
  type: str
  sample: /etc/kubernetes/kubecert-backup/20261129T041500Z
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
            kubelet_pki=dict(type='path', default=DEFAULT_KUBELET_PKI),
            repair=dict(type='bool', default=False),
            now=dict(type='str'),
        ),
        supports_check_mode=True,
    )
    params = dict((name, module.params[name]) for name in (
        'kubeconfig_dir', 'cert_dir', 'kubelet_pki', 'repair', 'now'))
    params['dry_run'] = module.check_mode
    result = run(module, 'kubelet-conf', params)
    # A top-level 'path' makes AnsibleModule.exit_json() add the file's attributes
    # (uid, owner, size, ...) and overwrite 'mode' with its permissions.
    if 'path' in result:
        result['kubeletConfPath'] = result.pop('path')
    if 'changed' not in result:
        result['changed'] = result.get('action') in ('repaired', 'would-repair')
    exit_with_result(module, result)


if __name__ == '__main__':
    main()
