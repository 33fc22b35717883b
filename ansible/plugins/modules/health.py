#!/usr/bin/python
# Copyright (c) kubecert contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: Apache-2.0 OR GPL-3.0-or-later

DOCUMENTATION = r'''
module: health
short_description: Wait, bounded, until the control plane is healthy
version_added: 0.2.0
description:
  - Calls the kubecert agent's C(health) method, which polls until every component asked for is
    healthy or O(health_timeout) has passed (the call returns within it, once - there are no retries
    around it). etcd - the member list and C(/health) of every member over TLS with the etcd
    healthcheck-client certificate (quorum, healthy members); kube-apiserver C(/readyz), verified against
    C(ca.crt); kube-controller-manager and kube-scheduler C(/healthz).
  - Fails when not healthy in time, unless O(fail_on_unhealthy=false); the result is returned either way.
  - Never changes anything; runs in check mode too.
author:
  - kubecert maintainers (@kubecert)
extends_documentation_fragment:
  - kubecert.pki.agent
  - kubecert.pki.attributes
  - kubecert.pki.attributes.info_module
options:
  components:
    description: The components to check (default - all four).
    type: list
    elements: str
    default: []
    choices: [etcd, kube-apiserver, kube-controller-manager, kube-scheduler]
  cert_dir:
    description: The PKI directory (CAs and the etcd healthcheck client).
    type: path
    default: /etc/kubernetes/pki
  manifests_dir:
    description: The static pod manifests directory the endpoints are read from.
    type: path
    default: /etc/kubernetes/manifests
  endpoints:
    description: Per-endpoint address overrides.
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
        description: Not used by this module (see M(kubecert.pki.served)).
        type: path
  health_timeout:
    description: Bound on the whole wait, in seconds (agent default 30).
    type: float
  request_timeout:
    description: Bound on one request, in seconds (agent default 5).
    type: float
  interval:
    description: Pause between polls, in seconds (agent default 1).
    type: float
  fail_on_unhealthy:
    description: Fail when the control plane is not healthy within O(health_timeout).
    type: bool
    default: true
seealso:
  - module: kubecert.pki.restart
  - module: kubecert.pki.served
'''

EXAMPLES = r'''
- name: The control plane is healthy within 20 seconds
  kubecert.pki.health:
    health_timeout: 20

- name: Only etcd, without failing
  kubecert.pki.health:
    components: [etcd]
    fail_on_unhealthy: false
  register: etcd_health
'''

RETURN = r'''
healthy:
  description: "Every checked component is healthy."
  returned: always
  type: bool
components:
  description: "Per component, in order (the last poll's answer)."
  returned: always
  type: list
  elements: dict
  contains:
    component:
      description: "The component."
      returned: always
      type: str
    healthy:
      description: "Healthy (etcd: every member)."
      returned: always
      type: bool
    url:
      description: "What was asked (URL)."
      returned: always
      type: str
    detail:
      description: "What it answered, or why not."
      returned: always
      type: str
    etcd:
      description: "etcd's members."
      returned: when known
      type: dict
      contains:
        endpoint:
          description: "The endpoint the member list came from."
          returned: always
          type: str
        members:
          description: "The members."
          returned: always
          type: list
          elements: dict
          contains:
            id:
              description: "Member ID (decimal, as the gateway renders it)."
              returned: always
              type: str
            name:
              description: "Member name (empty for a member that has not started)."
              returned: always
              type: str
            clientUrls:
              description: "Client URLs."
              returned: always
              type: list
              elements: str
            peerUrls:
              description: "Peer URLs."
              returned: always
              type: list
              elements: str
            healthy:
              description: "/health answered \"health\":\"true\" on its first client URL."
              returned: always
              type: bool
            detail:
              description: "What it answered, or why not."
              returned: always
              type: str
        healthyMembers:
          description: "Healthy members."
          returned: always
          type: int
        quorum:
          description: "More than half of the members are healthy."
          returned: always
          type: bool
elapsedMs:
  description: "How long the wait took, in milliseconds."
  returned: always
  type: int
polls:
  description: "Polls made."
  returned: always
  type: int
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
    run,
)


def summary(result):
    """One line: each component healthy or not, and why."""
    parts = []
    for comp in result.get('components') or []:
        etcd = comp.get('etcd')
        text = '{0} {1}'.format(comp.get('component'), 'healthy' if comp.get('healthy') else 'UNHEALTHY')
        if etcd:
            text += ' ({0}/{1} members healthy, quorum {2})'.format(
                etcd.get('healthyMembers'), len(etcd.get('members') or []), 'ok' if etcd.get('quorum') else 'LOST')
        elif not comp.get('healthy'):
            text += ' ({0})'.format(comp.get('detail'))
        parts.append(text)
    return '; '.join(parts)


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(
            CONTROL_PLANE_ARGUMENT_SPEC,
            components=dict(type='list', elements='str', default=[], choices=COMPONENTS),
            health_timeout=dict(type='float'),
            request_timeout=dict(type='float'),
            interval=dict(type='float'),
            fail_on_unhealthy=dict(type='bool', default=True),
        ),
        supports_check_mode=True,
    )
    p = module.params
    params = {
        'components': p['components'],
        'cert_dir': p['cert_dir'],
        'manifests_dir': p['manifests_dir'],
        'endpoints': endpoint_params(p['endpoints']),
    }
    for option, name in (('health_timeout', 'timeout_ms'), ('request_timeout', 'request_timeout_ms'),
                         ('interval', 'interval_ms')):
        if p[option] is not None:
            params[name] = millis(p[option])
    module.params['timeout'] = transport_timeout(module, p['health_timeout'] if p['health_timeout'] is not None else 30)
    result = run(module, 'health', params)
    result.pop('changed', None)
    if not result.get('healthy', False):
        msg = 'not healthy after {0} ms ({1} polls): {2}'.format(result.get('elapsedMs'), result.get('polls'), summary(result))
        if p['fail_on_unhealthy']:
            module.fail_json(msg=msg, changed=False, **result)
    else:
        msg = 'healthy after {0} ms: {1}'.format(result.get('elapsedMs'), summary(result))
    module.exit_json(changed=False, msg=msg, **result)


if __name__ == '__main__':
    main()
