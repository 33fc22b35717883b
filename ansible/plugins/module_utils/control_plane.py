# Copyright (c) kubecert contributors
# SPDX-License-Identifier: Apache-2.0
"""Options shared by the restart, health and served modules.

They map one to one to the agent's params (schema/restart.params.json,
health.params.json, served.params.json); durations are given to the modules in
seconds and sent to the agent in milliseconds.
"""

COMPONENTS = ['etcd', 'kube-apiserver', 'kube-controller-manager', 'kube-scheduler']
ENDPOINTS = ['etcd-client', 'etcd-peer', 'kube-apiserver', 'kube-controller-manager', 'kube-scheduler']


def _endpoints_option(choices):
    """The spec of an ``endpoints`` option: per-endpoint address and certificate overrides."""
    return dict(
        type='list', elements='dict', default=[],
        options=dict(
            endpoint=dict(type='str', required=True, choices=choices),
            address=dict(type='str'),
            cert=dict(type='path'),
        ),
    )


# Documented in each module (they differ in whether cert is used).
ENDPOINTS_OPTION = _endpoints_option(ENDPOINTS)

# The served proof also covers the kubelet (:10250, read from its config file): the
# served and cert_info (served=true) modules accept it; restart and health do not.
SERVED_COMPONENTS = COMPONENTS + ['kubelet']
SERVED_ENDPOINTS = ENDPOINTS + ['kubelet']
SERVED_ENDPOINTS_OPTION = _endpoints_option(SERVED_ENDPOINTS)

CONTROL_PLANE_ARGUMENT_SPEC = dict(
    cert_dir=dict(type='path', default='/etc/kubernetes/pki'),
    manifests_dir=dict(type='path', default='/etc/kubernetes/manifests'),
    endpoints=ENDPOINTS_OPTION,
)


def millis(seconds):
    """Seconds (int or float, or None) to the agent's whole milliseconds (or None)."""
    if seconds is None:
        return None
    return int(round(float(seconds) * 1000))


def endpoint_params(endpoints):
    """The endpoints option as the agent's list of overrides (unset keys left out)."""
    out = []
    for entry in endpoints or []:
        out.append(dict((k, v) for k, v in entry.items() if v is not None))
    return out


def transport_timeout(module, seconds):
    """The transport must wait at least as long as the agent is allowed to take."""
    return max(int(module.params['timeout']), int(seconds) + 30)
