#!/usr/bin/python
# Copyright (c) kubecert contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: Apache-2.0 OR GPL-3.0-or-later

DOCUMENTATION = r'''
module: served
short_description: Prove which certificate each control-plane endpoint serves
version_added: 0.2.0
description:
  - Calls the kubecert agent's C(served) method - connects over TLS to each endpoint of the
    components (etcd client and peer ports, kube-apiserver, controller-manager, scheduler, kubelet) and compares
    the leaf it presents (serial) with the certificate file on disk - C(current), C(stale) (restart the
    component), C(unreachable) or C(not-checked).
  - C(level) is C(fail) on a stale or expired served certificate, C(warn) on an unreachable endpoint.
    The module fails at the level O(fail_on) or worse.
  - Never changes anything; runs in check mode too.
author:
  - kubecert maintainers (@kubecert)
extends_documentation_fragment:
  - kubecert.pki.agent
  - kubecert.pki.attributes
  - kubecert.pki.attributes.info_module
options:
  components:
    description: The components to probe (default - all five, the kubelet included).
    type: list
    elements: str
    default: []
    choices: [etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubelet]
  cert_dir:
    description: The PKI directory.
    type: path
    default: /etc/kubernetes/pki
  manifests_dir:
    description: The static pod manifests directory the endpoints are read from.
    type: path
    default: /etc/kubernetes/manifests
  endpoints:
    description: Per-endpoint address and certificate file overrides.
    type: list
    elements: dict
    default: []
    suboptions:
      endpoint:
        description: The endpoint.
        type: str
        required: true
        choices: [etcd-client, etcd-peer, kube-apiserver, kube-controller-manager, kube-scheduler, kubelet]
      address:
        description: C(host:port) to connect to.
        type: str
      cert:
        description: The certificate file it should serve.
        type: path
  handshake_timeout:
    description: Bound on connect and TLS handshake of each endpoint, in seconds (agent default 3).
    type: float
  kubelet_config:
    description: The kubelet's config file its address, port and serving certificate are read from.
    type: path
    default: /var/lib/kubelet/config.yaml
  kubelet_pki:
    description: The kubelet's certificate directory (C(kubelet.crt), C(kubelet-server-current.pem)).
    type: path
    default: /var/lib/kubelet/pki
  now:
    description: A fixed clock (RFC 3339) for the expiry of the served certificates.
    type: str
  fail_on:
    description: Fail at this level or worse (C(never) - only report).
    type: str
    default: fail
    choices: [fail, warn, never]
seealso:
  - module: kubecert.pki.restart
  - module: kubecert.pki.health
'''

EXAMPLES = r'''
- name: Every endpoint serves the certificate on disk
  kubecert.pki.served:
    fail_on: warn

- name: etcd only, on a non-default address
  kubecert.pki.served:
    components: [etcd]
    endpoints:
      - endpoint: etcd-client
        address: 10.0.0.11:2379
'''

RETURN = r'''
level:
  description: "fail when an endpoint serves a stale or expired certificate, warn when one is unreachable, else ok."
  returned: always
  type: str
endpoints:
  description: "Per endpoint, in order."
  returned: always
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
staleComponents:
  description: "Components serving a stale certificate (restart these; the kubelet with systemctl)."
  returned: always
  type: list
  elements: str
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.kubecert.pki.plugins.module_utils.control_plane import (
    CONTROL_PLANE_ARGUMENT_SPEC,
    SERVED_COMPONENTS,
    SERVED_ENDPOINTS_OPTION,
    endpoint_params,
    millis,
    transport_timeout,
)
from ansible_collections.kubecert.pki.plugins.module_utils.kubecert import (
    argument_spec,
    run,
)

_RANK = {'ok': 0, 'warn': 1, 'fail': 2}


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(
            dict(CONTROL_PLANE_ARGUMENT_SPEC, endpoints=SERVED_ENDPOINTS_OPTION),
            components=dict(type='list', elements='str', default=[], choices=SERVED_COMPONENTS),
            kubelet_config=dict(type='path', default='/var/lib/kubelet/config.yaml'),
            kubelet_pki=dict(type='path', default='/var/lib/kubelet/pki'),
            handshake_timeout=dict(type='float'),
            now=dict(type='str'),
            fail_on=dict(type='str', default='fail', choices=['fail', 'warn', 'never']),
        ),
        supports_check_mode=True,
    )
    p = module.params
    params = {
        'components': p['components'],
        'cert_dir': p['cert_dir'],
        'manifests_dir': p['manifests_dir'],
        'endpoints': endpoint_params(p['endpoints']),
        'kubelet_config': p['kubelet_config'],
        'kubelet_pki': p['kubelet_pki'],
    }
    if p['handshake_timeout'] is not None:
        params['timeout_ms'] = millis(p['handshake_timeout'])
    if p['now'] is not None:
        params['now'] = p['now']
    module.params['timeout'] = transport_timeout(module, 5 * (p['handshake_timeout'] or 3) * 2)
    result = run(module, 'served', params)
    result.pop('changed', None)
    level = result.get('level', 'fail')
    text = '; '.join(str(e.get('message')) for e in result.get('endpoints') or [] if e.get('verdict') != 'current')
    if p['fail_on'] != 'never' and _RANK.get(level, 2) >= _RANK[p['fail_on']]:
        module.fail_json(msg='served certificates: {0} ({1})'.format(level, text or 'see endpoints'), changed=False, **result)
    module.exit_json(changed=False, **result)


if __name__ == '__main__':
    main()
