#!/usr/bin/python
# Copyright (c) kubecert contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: Apache-2.0 OR GPL-3.0-or-later

DOCUMENTATION = r'''
module: restart
short_description: Restart control-plane components, wait for their health and prove they serve their new certificates
version_added: 0.2.0
description:
  - Calls the kubecert agent's C(restart) method. The agent restarts the components one at a
    time, in kubeadm's order, by moving the static pod manifest out and back (C(manifest-move)),
    by stopping the containers with crictl, or by a command; waits (bounded) for each to be healthy;
    then proves that each TLS endpoint of the component serves the certificate file on disk
    (the served proof, by serial).
  - Manifests left parked by an interrupted run are moved back first (C(recoveredManifests)).
  - etcd - before the member is stopped, when it leads a cluster of several members, the agent moves
    the leadership to another healthy voting member (etcd's transfer-leadership) and waits until it
    leads, so that the stop forces no election (C(restarts[].leadership)). When the leadership cannot
    be moved, nothing is stopped and the restart fails at stage C(leadership:etcd). A member that does
    not answer its status is restarted anyway, with C(leadership.action=unknown) and the reason.
  - A failure (stage C(leadership:etcd), C(restart:<component>), C(health:<component>) or
    C(served:<component>)) stops the sequence; the module then fails with the agent's result, unless
    O(fail_on_error=false).
  - In check mode the agent is asked for a dry run (C(dry_run=true)) and says what it would restart.
  - All durations are in seconds (the agent takes milliseconds). The transport waits as long as the
    bounds given allow.
author:
  - kubecert maintainers (@kubecert)
extends_documentation_fragment:
  - kubecert.pki.agent
  - kubecert.pki.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
options:
  components:
    description:
      - The components to restart (typically C(componentsToRestart) of M(kubecert.pki.cert_renew)).
      - An empty list restarts nothing and succeeds.
    type: list
    elements: str
    required: true
    choices: [etcd, kube-apiserver, kube-controller-manager, kube-scheduler]
  method:
    description:
      - How to restart. C(none) restarts nothing but still waits for health and runs the served proof.
    type: str
    default: manifest-move
    choices: [manifest-move, crictl, command, none]
  cert_dir:
    description: The PKI directory (for the health check and the served proof).
    type: path
    default: /etc/kubernetes/pki
  manifests_dir:
    description: The static pod manifests directory.
    type: path
    default: /etc/kubernetes/manifests
  park_dir:
    description: Where manifests wait while their pod stops (the agent's default is C(<manifests_dir>/../kubecert-parked-manifests)).
    type: path
  restart_command:
    description: Method C(command) - the shell command template; C({component}) and C({manifest}) are replaced.
    type: str
  crictl:
    description: Method C(crictl) - the crictl binary.
    type: str
  stop_command:
    description: Method C(manifest-move) - a command template that succeeds once the old pod has stopped.
    type: str
  stop_delay:
    description: Method C(manifest-move) - wait this many seconds for the pod to stop instead of polling.
    type: float
  stop_timeout:
    description: Bound on the stop wait and on the restart command, in seconds (agent default 120).
    type: float
  health_command:
    description: A health command template for every component (default - the agent's native check).
    type: str
  health_timeout:
    description: Bound on the wait for health after each restart, in seconds (agent default 300).
    type: float
  poll_interval:
    description: Pause between polls, in seconds (agent default 2).
    type: float
  command_timeout:
    description: Bound on one stop or health command or request, in seconds (agent default 30).
    type: float
  endpoints:
    description: Endpoint overrides for the health check and the served proof.
    type: list
    elements: dict
    default: []
    suboptions:
      endpoint:
        description: The endpoint.
        type: str
        required: true
        choices: [etcd-client, etcd-peer, kube-apiserver, kube-controller-manager, kube-scheduler]
      address:
        description: C(host:port) to connect to.
        type: str
      cert:
        description: The certificate file it should serve.
        type: path
  served:
    description: Prove after each restart that every endpoint of the component serves its certificate file.
    type: bool
    default: true
  served_require_reachable:
    description: With the proof, an unreachable endpoint fails the restart too.
    type: bool
    default: true
  served_not_required:
    description:
      - Components that do not run on this host. The agent reports their unreachable endpoints
        and does not fail on them; one of their endpoints serving an old certificate still fails.
    type: list
    elements: str
    choices: [etcd, kube-apiserver, kube-controller-manager, kube-scheduler]
    default: []
  served_timeout:
    description: Bound on connect and handshake of each endpoint of the proof, in seconds (agent default 3).
    type: float
  fail_on_error:
    description:
      - Fail when the agent reports C(ok=false) (a component did not restart, was not healthy in time,
        or serves another certificate than its file). The result is returned either way.
    type: bool
    default: true
seealso:
  - module: kubecert.pki.cert_renew
  - module: kubecert.pki.health
  - module: kubecert.pki.served
'''

EXAMPLES = r'''
- name: Renew what is due
  kubecert.pki.cert_renew:
    within: 30d
  register: kubecert_renew

- name: Restart what reads the renewed files and prove they serve them
  kubecert.pki.restart:
    components: "{{ kubecert_renew.componentsToRestart }}"
    health_timeout: 120
  when: kubecert_renew is changed

- name: Restart with a command (not static pods)
  kubecert.pki.restart:
    components: [etcd]
    method: command
    restart_command: systemctl restart {component}
'''

RETURN = r'''
dryRun:
  description: "Whether this was a dry run (nothing moved, run or restarted)."
  returned: always
  type: bool
ok:
  description: "Every component restarted, healthy and (when proven) serving its files."
  returned: always
  type: bool
method:
  description: "The method."
  returned: always
  type: str
components:
  description: "The components, in the order they are (or would be) restarted."
  returned: always
  type: list
  elements: str
recoveredManifests:
  description: "Manifests an interrupted run had left parked, moved back first (manifest-move)."
  returned: always
  type: list
  elements: str
restarts:
  description: "Per component, in order, up to the first failure."
  returned: always
  type: list
  elements: dict
  contains:
    component:
      description: "The component."
      returned: always
      type: str
    method:
      description: "The method used."
      returned: always
      type: str
    ok:
      description: "Restarted, healthy and (when proven) serving its certificate files."
      returned: always
      type: bool
    seconds:
      description: "Seconds from the start of the restart until done (or the failure)."
      returned: always
      type: float
    message:
      description: "What happened."
      returned: always
      type: str
    stage:
      description: "The failed step: leadership:etcd, restart:<c>, health:<c>, served:<c>."
      returned: when known
      type: str
    leadership:
      description: "etcd - the leadership step before the stop (moved to another member when this one led a multi-member cluster)."
      returned: when known
      type: dict
      contains:
        member:
          description: "The local member (its name; its ID when it has none; its address when unknown)."
          returned: always
          type: str
        action:
          description: "What was done - not-leader, single-member, transferred or unknown (the member did not answer its status)."
          returned: always
          type: str
        transferredTo:
          description: "The member that leads after the transfer (action transferred)."
          returned: when known
          type: str
        message:
          description: "What happened, naming the members."
          returned: always
          type: str
    served:
      description: "The served proof of its endpoints, when run."
      returned: when known
      type: list
      elements: dict
      contains:
        endpoint:
          description: "The endpoint."
          returned: always
          type: str
        component:
          description: "The component serving it."
          returned: always
          type: str
        address:
          description: "host:port probed."
          returned: always
          type: str
        addressSource:
          description: "Where the address came from."
          returned: always
          type: str
        certPath:
          description: "The certificate file it should serve."
          returned: always
          type: str
        onDisk:
          description: "That file's certificate."
          returned: always
          type: dict
          contains: &served_leaf
            serial:
              description: "Serial, lowercase hex."
              returned: always
              type: str
            notAfter:
              description: "NotAfter, RFC 3339."
              returned: always
              type: str
            subject:
              description: "Subject."
              returned: always
              type: str
        served:
          description: "The leaf the server presented."
          returned: always
          type: dict
          contains: *served_leaf
        servedExpired:
          description: "The served leaf has expired."
          returned: always
          type: bool
        verdict:
          description: "The verdict."
          returned: always
          type: str
        summary:
          description: "The verdict in words; for a stale one it names the component to restart."
          returned: always
          type: str
        message:
          description: "Why, in words."
          returned: always
          type: str
failedStage:
  description: "The failed step (leadership:etcd, restart:<c>, health:<c>, served:<c>), if any."
  returned: when known
  type: str
error:
  description: "Why it failed."
  returned: when known
  type: str
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.kubecert.pki.plugins.module_utils.control_plane import (
    COMPONENTS,
    CONTROL_PLANE_ARGUMENT_SPEC,
    endpoint_params,
    millis,
    transport_timeout,
)
from ansible_collections.kubecert.pki.plugins.module_utils.kubecert import (
    argument_spec,
    exit_with_result,
    run,
)

# Agent defaults, in seconds, for the transport's bound.
_DEFAULTS = {'stop_timeout': 120, 'health_timeout': 300, 'served_timeout': 3, 'command_timeout': 30}


def _budget(params):
    """Seconds the agent may take: per component, the stop and health bounds plus the proof."""
    per = sum(params[name] if params[name] is not None else default for name, default in _DEFAULTS.items())
    return len(params['components'] or []) * (per + 5)


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(
            CONTROL_PLANE_ARGUMENT_SPEC,
            components=dict(type='list', elements='str', required=True, choices=COMPONENTS),
            method=dict(type='str', default='manifest-move', choices=['manifest-move', 'crictl', 'command', 'none']),
            park_dir=dict(type='path'),
            restart_command=dict(type='str'),
            crictl=dict(type='str'),
            stop_command=dict(type='str'),
            stop_delay=dict(type='float'),
            stop_timeout=dict(type='float'),
            health_command=dict(type='str'),
            health_timeout=dict(type='float'),
            poll_interval=dict(type='float'),
            command_timeout=dict(type='float'),
            served=dict(type='bool', default=True),
            served_require_reachable=dict(type='bool', default=True),
            served_not_required=dict(type='list', elements='str', default=[],
                                     choices=['etcd', 'kube-apiserver', 'kube-controller-manager', 'kube-scheduler']),
            served_timeout=dict(type='float'),
            fail_on_error=dict(type='bool', default=True),
        ),
        required_if=[('method', 'command', ('restart_command',))],
        mutually_exclusive=[('stop_command', 'stop_delay')],
        supports_check_mode=True,
    )
    p = module.params
    if not p['components']:
        # Nothing was renewed that a component reads: nothing to ask the agent.
        module.exit_json(changed=False, dryRun=module.check_mode, ok=True, method=p['method'], components=[],
                         recoveredManifests=[], restarts=[])
    params = {
        'components': p['components'],
        'method': p['method'],
        'cert_dir': p['cert_dir'],
        'manifests_dir': p['manifests_dir'],
        'endpoints': endpoint_params(p['endpoints']),
        'served': p['served'],
        'served_require_reachable': p['served_require_reachable'],
        'served_not_required': p['served_not_required'],
        'dry_run': module.check_mode,
    }
    for name in ('park_dir', 'restart_command', 'crictl', 'stop_command', 'health_command'):
        if p[name] is not None:
            params[name] = p[name]
    for name in ('stop_delay', 'stop_timeout', 'health_timeout', 'poll_interval', 'command_timeout', 'served_timeout'):
        if p[name] is not None:
            params[name + '_ms'] = millis(p[name])
    module.params['timeout'] = transport_timeout(module, _budget(p))
    result = run(module, 'restart', params)
    if result.get('dryRun'):
        changed = bool(result.get('components')) and p['method'] != 'none'
    else:
        changed = bool(result.get('restarts')) and p['method'] != 'none' or bool(result.get('recoveredManifests'))
    result['changed'] = changed
    if p['fail_on_error'] and not result.get('ok', False):
        module.fail_json(msg='kubecert restart failed at {0}: {1}'.format(
            result.get('failedStage') or '?', result.get('error') or 'not ok'), **result)
    exit_with_result(module, result)


if __name__ == '__main__':
    main()
