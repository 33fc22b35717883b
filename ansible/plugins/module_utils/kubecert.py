# Copyright (c) kubecert contributors
# SPDX-License-Identifier: Apache-2.0
"""Ansible glue shared by the kubecert.pki modules.

Modules stay thin: they declare their argument spec with the helpers below,
map their options to the agent's params, call ``run()`` once and exit with the
agent's result. This file owns the shared argument specs (documented in
``plugins/doc_fragments/``), the error mapping to ``fail_json``, the scrubbing
of anything that looks like key material, and the per-certificate diff.
"""

from ansible_collections.kubecert.pki.plugins.module_utils.rpc import (
    DEFAULT_BIN,
    DEFAULT_SOCKET,
    DEFAULT_TIMEOUT,
    TRANSPORTS,
    KubecertClient,
    RpcError,
    TransportError,
)

DEFAULT_CERT_DIR = '/etc/kubernetes/pki'
DEFAULT_KUBECONFIG_DIR = '/etc/kubernetes'
DEFAULT_KUBELET_PKI = '/var/lib/kubelet/pki'

KEY_ALGORITHMS = ['same', 'rsa-2048', 'rsa-3072', 'rsa-4096', 'ecdsa-p256', 'ecdsa-p384']

# Documented in plugins/doc_fragments/agent.py (DOCUMENTATION).
AGENT_ARGUMENT_SPEC = dict(
    socket=dict(type='path', default=DEFAULT_SOCKET),
    kubecert_bin=dict(type='str', default=DEFAULT_BIN),
    transport=dict(type='str', default='auto', choices=list(TRANSPORTS)),
    timeout=dict(type='int', default=DEFAULT_TIMEOUT),
)

# Documented in plugins/doc_fragments/agent.py (PATHS).
PATHS_ARGUMENT_SPEC = dict(
    cert_dir=dict(type='path', default=DEFAULT_CERT_DIR),
    kubeconfig_dir=dict(type='path', default=DEFAULT_KUBECONFIG_DIR),
)

# The agent never sends key material (docs/rpc.md); this is the belt to that
# promise's braces, so that nothing PEM-private ends up in a result or a log.
_KEY_MARKERS = ('PRIVATE KEY-----',)
SCRUBBED = '<private key material removed by kubecert.pki>'


def argument_spec(*parts, **options):
    """Merge the shared specs with a module's own options."""
    spec = dict(AGENT_ARGUMENT_SPEC)
    for part in parts:
        spec.update(part)
    spec.update(options)
    return spec


def scrub(value):
    """Return ``value`` with every string holding a PEM private key replaced."""
    if isinstance(value, dict):
        return dict((k, scrub(v)) for k, v in value.items())
    if isinstance(value, list):
        return [scrub(v) for v in value]
    if isinstance(value, str) and any(marker in value for marker in _KEY_MARKERS):
        return SCRUBBED
    return value


def _binary(module):
    """Resolve a bare ``kubecert_bin`` through PATH (plus /usr/local/bin)."""
    name = module.params['kubecert_bin']
    if '/' in name:
        return name
    found = module.get_bin_path(name, opt_dirs=['/usr/local/bin'])
    return found or name


def run(module, method, params):
    """Call ``method`` on the agent; return its (scrubbed) result or fail the module.

    A JSON-RPC error becomes ``fail_json(msg=..., rpc_error={code, message, data})``;
    an unreachable or garbled agent becomes ``fail_json(msg=...)``.
    """
    client = KubecertClient(
        socket_path=module.params['socket'],
        kubecert_bin=_binary(module),
        transport=module.params['transport'],
        timeout=module.params['timeout'],
    )
    result = None
    try:
        result = client.call(method, params)
    except RpcError as exc:
        stderr = client.stderr_text()
        client.close()
        extra = {}
        if stderr:
            extra['agent_stderr'] = scrub(stderr)
        module.fail_json(msg=scrub(exc.describe()), rpc_error=scrub(exc.to_dict()), **extra)
    except TransportError as exc:
        client.close()
        module.fail_json(msg=scrub(str(exc)))
    for note in client.notes:
        module.warn(note)
    client.close()
    if not isinstance(result, dict):
        module.fail_json(msg='kubecert {0} returned a {1}, expected an object'.format(method, type(result).__name__))
    return scrub(result)


def exit_with_result(module, result, diff=None, changed_actions=(), entries='certificates', field='action'):
    """Exit with the agent's result as the module's return values.

    ``changed`` comes from the agent (false when nothing was due). Should a
    result lack it, it is true when an entry of ``result[entries]`` has its
    ``field`` in ``changed_actions`` (for a dry run: what would change).
    """
    result = dict(result)
    if 'changed' in result:
        changed = bool(result.pop('changed'))
    else:
        changed = any(isinstance(entry, dict) and entry.get(field) in changed_actions
                      for entry in result.get(entries) or [])
    if diff and module._diff:
        module.exit_json(changed=changed, diff=diff, **result)
    module.exit_json(changed=changed, **result)


def _state_text(state):
    """Render one ``old``/``new`` certificate state for a diff."""
    if not state:
        return '(absent)\n'
    serial = state.get('serial')
    sans = list(state.get('dnsNames') or []) + list(state.get('ipAddresses') or [])
    lines = [
        'notAfter: {0}'.format(state.get('notAfter')),
        'serial: {0}'.format(serial if serial is not None else '(assigned when issued)'),
        'sans: {0}'.format(', '.join(sans) if sans else '(none)'),
    ]
    if state.get('subject') is not None:
        lines.append('subject: {0}'.format(state['subject']))
    return '\n'.join(lines) + '\n'


def certificate_diff(certificates):
    """Build Ansible diffs (one per certificate with a ``new`` state).

    ``certificates`` are the entries of a ``renew`` or ``csr-import`` result;
    before/after show NotAfter, serial and SANs of ``old``/``new``.
    """
    diffs = []
    for cert in certificates or []:
        if not isinstance(cert, dict) or not cert.get('new'):
            continue
        name = cert.get('name', '?')
        diffs.append({
            'before_header': '{0} (before)'.format(name),
            'after_header': '{0} ({1})'.format(name, cert.get('action', 'after')),
            'before': _state_text(cert.get('old')),
            'after': _state_text(cert.get('new')),
        })
    return diffs


CA_NAMES = ['ca', 'front-proxy-ca', 'etcd-ca']


def ca_diff(certificates):
    """Build Ansible diffs (one per CA) from a ``ca-renew`` or ``ca-install`` result.

    before/after show serial and NotAfter; after also the join hash (unchanged: same key)
    and the kubeconfigs whose ``certificate-authority-data`` is rewritten.
    """
    diffs = []
    for cert in certificates or []:
        if not isinstance(cert, dict):
            continue
        name = cert.get('name', '?')
        diffs.append({
            'before_header': '{0} (before)'.format(name),
            'after_header': '{0} ({1})'.format(name, cert.get('action', 'after')),
            'before': 'serial: {0}\nnotAfter: {1}\n'.format(cert.get('oldSerial'), cert.get('oldNotAfter')),
            'after': 'serial: {0}\nnotAfter: {1}\njoin hash: {2}\nkubeconfigs: {3}\n'.format(
                cert.get('newSerial'), cert.get('newNotAfter'), cert.get('spkiSha256'),
                ', '.join(cert.get('kubeconfigs') or []) or '(none)'),
        })
    return diffs


def pem_body(pem):
    """The base64 bodies of the PEM blocks of ``pem``, whitespace removed (to compare encodings)."""
    bodies, current = [], None
    for line in (pem or '').splitlines():
        line = line.strip()
        if line.startswith('-----BEGIN '):
            current = []
        elif line.startswith('-----END '):
            if current is not None:
                bodies.append(''.join(current))
            current = None
        elif current is not None:
            current.append(line)
    return bodies
