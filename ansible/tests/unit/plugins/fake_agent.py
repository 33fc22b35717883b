# Copyright (c) kubecert contributors
# SPDX-License-Identifier: Apache-2.0
"""A tiny stand-in for the kubecert agent, for unit tests of the JSON-RPC client.

Run as ``python fake_agent.py serve --stdio`` (the same argv the client gives
the real binary) it speaks newline-delimited JSON-RPC 2.0 on stdin/stdout;
``python fake_agent.py serve --socket PATH`` serves JSON-RPC over HTTP/1.1 on a
unix socket. Only the standard library is used.

It answers with canned results shaped like docs/rpc.md and can be steered
through the environment:

- ``FAKE_AGENT_LOG``: append every request (one JSON object a line) to this file.
- ``FAKE_AGENT_ERROR``: ``method=code`` makes ``method`` answer with that
  JSON-RPC error (data ``{"cert", "path", "cause"}``).
- ``FAKE_AGENT_PKI``: the PKI the node has (see ``pki_mode()``).
- ``FAKE_AGENT_MODE``: ``garbage`` answers a non-JSON line, ``wrong-id`` a
  response with another id, ``exit`` exits without answering, ``hang`` never
  answers, ``leak`` puts a PEM private key into results (the client must scrub
  it), ``http500`` answers the socket with an HTML 500 page.
"""

import json
import os
import socketserver
import subprocess
import sys
import time
from http.server import BaseHTTPRequestHandler

NOW = 1795000000  # 2026-11-18T11:06:40Z, a fixed clock
DAY = 86400

# name -> (days left, components that read it); a small slice of kubeadm's table.
CERTS = [
    ('admin.conf', 300, []),
    ('apiserver', 20, ['kube-apiserver']),
    ('apiserver-etcd-client', 300, ['kube-apiserver']),
    ('etcd-server', 25, ['etcd']),
    ('super-admin.conf', None, []),
]

PEM_KEY = '-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIFake\n-----END PRIVATE KEY-----\n'


def rfc3339(ts):
    return time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(ts))


def parse_duration(text):
    """'30d', '720h', '90m' -> seconds (enough of the contract for tests)."""
    units = {'d': DAY, 'h': 3600, 'm': 60, 's': 1}
    if not text or text[-1] not in units:
        raise ValueError('bad duration {0!r}'.format(text))
    return int(text[:-1]) * units[text[-1]]


class RpcFailure(Exception):
    def __init__(self, code, message, data=None):
        super(RpcFailure, self).__init__(message)
        self.code = code
        self.message = message
        self.data = data


def m_version(params):
    return {'version': '0.0.0-fake', 'gitCommit': 'unknown', 'buildDate': '2026-01-01T00:00:00Z',
            'kubernetesApi': True, 'methods': sorted(METHODS),
            'mutatingMethods': ['approve', 'ca-install', 'ca-renew', 'ca-rotate', 'csr-export', 'csr-import', 'kubelet-conf',
                                'kubelet-conf-rebuild', 'renew', 'restart', 'restore'],
            'openrpc': '1.3.2'}


def pki_mode():
    """FAKE_AGENT_PKI: ``good`` (default), ``key-missing`` (apiserver.key deleted),
    ``empty`` (no kubeadm PKI at the path), ``external-ca`` (ca.key absent),
    ``kubelet-embedded`` (kubelet.conf embeds a client certificate that expires in 5 days),
    ``kubelet-expired`` (with ``kubelet: true``: the kubelet client certificate expired a day ago)."""
    return os.environ.get('FAKE_AGENT_PKI', 'good')


def _detail(cert_dir, name, days, problems):
    return {'path': '{0}/{1}.crt'.format(cert_dir, name), 'subject': 'CN=' + name,
            'issuer': 'CN=kubernetes', 'signedBy': 'ca', 'serial': '0a', 'notBefore': rfc3339(NOW - 300 * DAY),
            'dnsNames': [], 'ipAddresses': [], 'otherSans': [], 'extKeyUsage': ['clientAuth'],
            'keyAlgorithm': 'RSA-2048', 'chainLength': 0, 'problems': problems}


def m_check(params):
    cert_dir = params.get('cert_dir', '/etc/kubernetes/pki')
    mode = pki_mode()
    external = mode == 'external-ca'
    certificates = []
    for name, days, dummy in CERTS:
        if days is None or mode == 'empty':
            certificates.append({'name': name, 'expirationDate': None, 'residualTime': 0,
                                 'externallyManaged': False, 'caName': 'ca', 'missing': True})
            continue
        problems = []
        if mode == 'key-missing' and name == 'apiserver':
            days = 200
            problems = [{'code': 'key-missing', 'message': '{0}/apiserver.key does not exist'.format(cert_dir)}]
        certificates.append({
            'name': name, 'expirationDate': rfc3339(NOW + days * DAY), 'residualTime': days * DAY,
            'externallyManaged': external, 'caName': 'ca', 'missing': False,
            'detail': _detail(cert_dir, name, days, problems)})
    if mode == 'empty':
        authorities = [{'name': 'ca', 'expirationDate': None, 'residualTime': 0,
                        'externallyManaged': False, 'missing': True}]
    else:
        authorities = [{'name': 'ca', 'expirationDate': rfc3339(NOW + 3000 * DAY), 'residualTime': 3000 * DAY,
                        'externallyManaged': external, 'missing': False}]
    fail_within = parse_duration(params['fail_within']) if params.get('fail_within') else None
    warn_within = parse_duration(params['warn_within']) if params.get('warn_within') else None
    present = [(name, days) for name, days, dummy in CERTS if days is not None and mode != 'empty']
    if mode == 'key-missing':
        present = [(name, 200 if name == 'apiserver' else days) for name, days in present]
    soonest = min(present, key=lambda item: item[1]) if present else None
    unhealthy = [c['name'] for c in certificates if c.get('detail') and c['detail']['problems']]

    def due(limit):
        return limit is not None and soonest is not None and soonest[1] * DAY <= limit
    if due(fail_within) or (fail_within is not None and unhealthy):
        level = 'fail'
    elif due(warn_within) or (warn_within is not None and unhealthy):
        level = 'warn'
    else:
        level = 'ok'
    kubelet_conf = {'path': params.get('kubeconfig_dir', '/etc/kubernetes') + '/kubelet.conf', 'present': True,
                    'mode': 'file-reference', 'expirationDate': rfc3339(NOW + 200 * DAY),
                    'residualTime': 200 * DAY,
                    'clientCurrentPem': params.get('kubelet_pki', '/var/lib/kubelet/pki') + '/kubelet-client-current.pem',
                    'clientCurrentPemExists': True, 'advice': ''}
    if mode == 'kubelet-embedded':
        kubelet_conf.update(mode='embedded', expirationDate=rfc3339(NOW + 5 * DAY), residualTime=5 * DAY,
                            advice='kubelet.conf embeds a client certificate; run `kubecert kubelet-conf repair` '
                                   'to point it at kubelet-client-current.pem')
    result = {
        'kind': 'CertificateExpirationInfo',
        'apiVersion': 'output.kubeadm.k8s.io/v1alpha3',
        'certificates': certificates,
        'certificateAuthorities': authorities,
        'kubeletConf': kubelet_conf,
        'status': {'now': rfc3339(NOW), 'level': level, 'warnWithin': warn_within, 'failWithin': fail_within,
                   'soonest': soonest[0] if soonest else None,
                   'exitCode': {'ok': 0, 'warn': 1, 'fail': 2}[level], 'unhealthy': unhealthy},
    }
    if params.get('served'):
        # FAKE_AGENT_SERVED=stale:<component> as for the served method; the kubelet too.
        served = m_served({'components': SERVED_COMPONENTS, 'cert_dir': cert_dir})
        result['served'] = served
        if served['level'] == 'fail':
            result['status'].update(level='fail', exitCode=2)
    if params.get('drift'):
        result['drift'] = _drift_section(params, certificates)
        if result['drift']['drifted'] and level == 'ok':
            result['status'].update(level='warn', exitCode=1)
    if params.get('kubelet'):
        result['kubelet'] = _kubelet_section(params, kubelet_conf, mode)
        if any(c['problems'] for c in (result['kubelet']['client'], result['kubelet']['serving'])):
            result['status'].update(level='fail', exitCode=2)
            unhealthy.append('kubelet-client')
    return result


def _drift_section(params, certificates):
    """check's drift section: the node named by FAKE_AGENT_DRIFT_NODE (the node_name param)
    has an apiserver certificate without the certSANs entry kubecert.example.com."""
    node = params.get('node_name') or 'fake-host'
    drifted = node == os.environ.get('FAKE_AGENT_DRIFT_NODE')
    rows = []
    for cert in certificates:
        if cert.get('missing'):
            rows.append({'name': cert['name'], 'status': 'unknown', 'reason': 'the certificate is missing',
                         'sansCompared': False, 'missingSans': [], 'extraSans': []})
            continue
        bad = drifted and cert['name'] == 'apiserver'
        rows.append({'name': cert['name'], 'status': 'drift' if bad else 'match',
                     'sansCompared': cert['name'] in ('apiserver', 'etcd-server', 'etcd-peer'),
                     'missingSans': ['DNS:kubecert.example.com'] if bad else [], 'extraSans': []})
    section = {'config': params.get('config') or 'configmap kube-system/kubeadm-config',
               'apiVersion': 'kubeadm.k8s.io/v1beta4', 'nodeName': node,
               'nodeNameSource': 'param' if params.get('node_name') else 'hostname',
               'drifted': [r['name'] for r in rows if r['status'] == 'drift'],
               'unknown': [r['name'] for r in rows if r['status'] == 'unknown'], 'certificates': rows}
    if params.get('advertise_address'):
        section.update(advertiseAddress=params['advertise_address'], advertiseAddressSource='param')
    return section


def _kubelet_section(params, kubelet_conf, mode):
    pki = params.get('kubelet_pki') or '/var/lib/kubelet/pki'
    days = -1 if mode == 'kubelet-expired' else 200
    client = {'name': 'kubelet-client', 'role': 'client', 'path': pki + '/kubelet-client-current.pem',
              'linkTarget': pki + '/kubelet-client-2026-01-01-00-00-00.pem', 'rotation': 'rotated',
              'missing': False, 'expirationDate': rfc3339(NOW + days * DAY), 'residualTime': days * DAY,
              'notBefore': rfc3339(NOW - 100 * DAY), 'subject': 'O=system:nodes, CN=system:node:cp1',
              'issuer': 'CN=kubernetes', 'serial': '0b', 'chainsToCa': True, 'selfSigned': False, 'problems': []}
    if days < 0:
        client['problems'] = [{'code': 'expired', 'message': 'expired at ' + client['expirationDate']}]
    serving = {'name': 'kubelet-serving', 'role': 'serving', 'path': pki + '/kubelet.crt', 'rotation': 'static-file',
               'missing': False, 'expirationDate': rfc3339(NOW + 300 * DAY), 'residualTime': 300 * DAY,
               'notBefore': rfc3339(NOW - 65 * DAY), 'subject': 'CN=cp1@1700000000',
               'issuer': 'CN=cp1-ca@1700000000', 'serial': '0c', 'chainsToCa': False, 'selfSigned': True,
               'problems': []}
    return {'pkiDir': pki, 'client': client, 'serving': serving, 'kubeletConf': kubelet_conf,
            'kubeletConfClient': {'mode': kubelet_conf.get('mode'), 'file': pki + '/kubelet-client-current.pem',
                                  'sameAsClient': True}}


def _snapshot(name, not_after, serial):
    return {'notAfter': rfc3339(not_after), 'notBefore': rfc3339(NOW - 300 * DAY), 'serial': serial,
            'subject': 'CN=' + name, 'dnsNames': [name], 'ipAddresses': ['10.0.0.1'],
            'extKeyUsage': ['serverAuth'], 'keyAlgorithm': 'RSA-2048'}


def m_renew(params):
    names = params.get('names') or ['all']
    known = [name for name, dummy, dummy2 in CERTS]
    for name in names:
        if name != 'all' and name not in known:
            raise RpcFailure(-31005, 'unknown certificate name', {'cert': name, 'path': None,
                                                                  'cause': 'not in the inventory'})
    within = parse_duration(params['within']) if params.get('within') else None
    dry_run = bool(params.get('dry_run'))
    cert_dir = params.get('cert_dir', '/etc/kubernetes/pki')
    mode = pki_mode()
    out, components = [], set()
    for name, days, reads in CERTS:
        if 'all' not in names and name not in names:
            continue
        item = {'name': name, 'longName': 'certificate ' + name, 'caName': 'ca', 'cappedAtCa': False,
                'reason': '', 'files': []}
        if days is None or mode == 'empty':
            item.update(action='missing', reason='{0}/{1}.crt does not exist'.format(cert_dir, name))
        elif mode == 'external-ca':
            item.update(action='externally-managed', reason='{0}/ca.key is absent'.format(cert_dir),
                        old=_snapshot(name, NOW + days * DAY, '0a'))
        elif within is not None and days * DAY > within:
            item.update(action='skipped', reason='expires in {0}d'.format(days), old=_snapshot(name, NOW + days * DAY, '0a'))
        else:
            old = _snapshot(name, NOW + days * DAY, '0a')
            new = _snapshot(name, NOW + 365 * DAY, None if dry_run else '0b')
            new['notBefore'] = rfc3339(NOW - 300)
            item.update(action='would-renew' if dry_run else 'renewed', reason='due', old=old, new=new,
                        files=['{0}/{1}.crt'.format(cert_dir, name), '{0}/{1}.key'.format(cert_dir, name)])
            components.update(reads)
        out.append(item)
    changed = any(item['action'] in ('renewed', 'would-renew') for item in out)
    allowed = params.get('allow_unrenewable') or []
    if 'all' in allowed and len(allowed) > 1:
        raise RpcFailure(-32602, 'invalid params', {'cert': None, 'path': None,
                                                    'cause': '`all` cannot be combined with other names'})
    for name in allowed:
        if name != 'all' and name not in known:
            raise RpcFailure(-31005, 'unknown certificate name', {'cert': name, 'path': None,
                                                                  'cause': 'not in the inventory'})
    # As the agent: a missing file (but super-admin.conf) is always due; an externally
    # managed certificate only when it expires within `within` (or no `within`).
    due = dict((name, days is None or within is None or days * DAY <= within) for name, days, dummy in CERTS)
    unrenewable = [item['name'] for item in out
                   if ((item['action'] == 'missing' and item['name'] != 'super-admin.conf')
                       or (item['action'] == 'externally-managed' and due[item['name']]))
                   and 'all' not in allowed and item['name'] not in allowed]
    return {'dryRun': dry_run,
            'backupDir': '/var/backups/kubecert/fake' if changed and not dry_run else None,
            'certificates': out, 'componentsToRestart': sorted(components), 'changed': changed,
            'unrenewable': unrenewable}


def m_restore(params):
    if not params.get('backup_dir'):
        raise RpcFailure(-32602, 'invalid params', {'cert': None, 'path': None, 'cause': 'backup_dir is required'})
    return {'restored': ['/etc/kubernetes/pki/apiserver.crt', '/etc/kubernetes/pki/apiserver.key'],
            'changed': not params.get('dry_run'), 'dryRun': bool(params.get('dry_run'))}


def m_csr_export(params):
    csr_dir = params.get('csr_dir', '/tmp/csr')
    return {'csrDir': csr_dir,
            'certificates': [{'name': 'apiserver', 'action': 'exported', 'reason': 'new key and CSR',
                              'caName': 'ca', 'externallyManaged': True, 'requiredUsages': ['serverAuth'],
                              'csrPath': csr_dir + '/apiserver.csr', 'keyPath': csr_dir + '/apiserver.key',
                              'subject': 'CN=kube-apiserver', 'dnsNames': ['kubernetes'],
                              'ipAddresses': ['10.96.0.1'], 'requestedUsages': [], 'keyAlgorithm': 'RSA-2048',
                              'keyReused': False}],
            'changed': True}


def m_csr_import(params):
    dry_run = bool(params.get('dry_run'))
    csr_dir = params.get('csr_dir', '/tmp/csr')
    old = _snapshot('kubernetes', NOW + 20 * DAY, '0a')
    new = _snapshot('kubernetes', NOW + 365 * DAY, '0c')

    def item(name, action, findings, **extra):
        entry = {'name': name, 'longName': 'certificate ' + name, 'action': action, 'reason': '',
                 'caName': 'ca', 'crtPath': '{0}/{1}.crt'.format(csr_dir, name),
                 'keyPath': '{0}/{1}.key'.format(csr_dir, name), 'findings': findings, 'files': []}
        entry.update(extra)
        return entry
    certs = [item('apiserver', 'would-install' if dry_run else 'installed', [], old=old, new=new)]
    if 'front-proxy-client' in (params.get('names') or []):
        certs.append(item('front-proxy-client', 'refused',
                          [{'code': 'wrong-ca', 'message': 'not signed by front-proxy-ca'}]))
    return {'dryRun': dry_run, 'csrDir': csr_dir, 'certificates': certs,
            'backupDir': None if dry_run else '/var/backups/kubecert/import',
            'componentsToRestart': ['kube-apiserver'], 'changed': True}


def m_kubelet_conf(params):
    status = m_check(params)['kubeletConf']
    dry_run = bool(params.get('dry_run'))
    if params.get('repair'):
        action = 'would-repair' if dry_run else 'repaired'
    else:
        action = 'none'
    return dict(status, action=action, reason='fake', backupDir=None, changed=action != 'none')


def m_kubelet_rebuild(params):
    node = params.get('node_name') or ''
    if not node or '/' in node or node != node.lower():
        cause = 'invalid node name {0!r}'.format(node)
        raise RpcFailure(-32602, 'Invalid params', {'cert': None, 'path': None, 'cause': cause})
    pki = params.get('kubelet_pki') or '/var/lib/kubelet/pki'
    conf = (params.get('kubeconfig_dir') or '/etc/kubernetes') + '/kubelet.conf'
    dry_run = bool(params.get('dry_run'))
    dated = pki + '/kubelet-client-2026-11-29-04-15-00.pem'
    return {'nodeName': node, 'action': 'would-rebuild' if dry_run else 'rebuilt',
            'certificate': {'path': dated, 'subject': 'O=system:nodes, CN=system:node:' + node,
                            'issuer': 'CN=kubernetes', 'serial': '0d', 'notBefore': rfc3339(NOW - 300),
                            'notAfter': rfc3339(NOW + 365 * DAY), 'cappedAtCa': False, 'keyAlgorithm': 'RSA-2048',
                            'extKeyUsage': ['clientAuth'], 'keyUsage': ['digitalSignature', 'keyEncipherment']},
            'link': pki + '/kubelet-client-current.pem', 'linkTarget': dated, 'kubeletConf': conf,
            'server': 'https://10.0.0.1:6443', 'clusterFrom': conf,
            'written': [dated, conf, pki + '/kubelet-client-current.pem'], 'plan': ['issue system:node:' + node],
            'backupDir': None if dry_run else '/etc/kubernetes/kubecert-backup/fake', 'changed': not dry_run}


def m_approve(params):
    dry_run = bool(params.get('dry_run'))
    if params.get('kubelet_serving'):
        return m_approve_kubelet_serving(params, dry_run)
    return {'dryRun': dry_run,
            'requests': [{'name': 'csr-1', 'decision': 'would-approve' if dry_run else 'approved', 'reasons': ['ok'],
                          'signerName': 'kubernetes.io/kubelet-serving', 'username': 'system:node:cp1',
                          'groups': ['system:nodes'], 'usages': ['server auth'], 'expirationSeconds': None,
                          'subject': 'CN=system:node:cp1', 'certificates': [], 'caName': None}],
            'policy': {'signerNames': ['kubernetes.io/kubelet-serving'], 'users': ['system:node:*'],
                       'groups': ['system:nodes'], 'maxExpirationSeconds': 31536000, 'unmatched': 'leave',
                       'issuedWithinSeconds': 300},
            'changed': not dry_run}


def _kubelet_item(name, decision, reasons, findings):
    return {'name': name, 'decision': decision, 'reasons': reasons,
            'signerName': 'kubernetes.io/kubelet-serving', 'username': 'system:node:cp1',
            'groups': ['system:nodes', 'system:authenticated'],
            'usages': ['digital signature', 'server auth'], 'subject': 'O=system:nodes, CN=system:node:cp1',
            'certificates': [], 'node': 'cp1',
            'findings': [{'code': c, 'message': m} for c, m in findings]}


def m_approve_kubelet_serving(params, dry_run):
    bound = {'10m': 600}.get(params.get('issued_within'), 300)
    policy = {'signerNames': ['kubernetes.io/kube-apiserver-client', 'kubecert.io/*'], 'users': [],
              'groups': ['kubeadm:cluster-admins', 'system:masters'], 'maxExpirationSeconds': 31536000,
              'unmatched': 'leave', 'issuedWithinSeconds': bound}
    if params.get('names') == ['csr-stuck']:
        msg = ('CSR "csr-stuck" (node "cp1"): approved 7m ago (2026-12-01T18:00:00Z), no certificate issued '
               'within 5m')
        return {'dryRun': dry_run, 'changed': False, 'kubeletServing': True, 'policy': policy,
                'requests': [_kubelet_item('csr-stuck', 'skipped', [msg], [('approved-not-issued', msg)])]}
    deny = 'CSR "csr-2": subjectAltName DNS:evil.example.com is not an address of node "cp1" (status.addresses: InternalIP=10.0.0.11)'
    return {'dryRun': dry_run, 'changed': not dry_run, 'kubeletServing': True, 'policy': policy,
            'requests': [_kubelet_item('csr-1', 'would-approve' if dry_run else 'approved',
                                       ['kubelet serving certificate of node "cp1": ...'], []),
                         _kubelet_item('csr-2', 'would-deny' if dry_run else 'denied', [deny],
                                       [('san-not-of-node', deny)])]}


# The CAs of a demo PKI (docs/ca-rotation.md's transcript): serial, NotAfter, join hash, and
# the serial and NotAfter of the same-key renewal.
CA_FIXTURES = {
    'ca': {'path': 'ca.crt', 'serial': '7b75f6e636f8edc2', 'notAfter': '2036-11-28T00:00:00Z',
           'spki': 'sha256:ccee246abc81c4399a36ca87a16138f193d9eecb7988ac1fec2040d87fa6085a',
           'renewedSerial': '2edef832750dd1fb', 'renewedNotAfter': '2046-11-26T00:00:00Z',
           'reads': ['kube-apiserver', 'kube-controller-manager', 'kube-scheduler']},
    'front-proxy-ca': {'path': 'front-proxy-ca.crt', 'serial': '11aa', 'notAfter': '2036-11-28T00:00:00Z',
                       'spki': 'sha256:7397881e4bbfc9ec5756bbac8050a3e7f6bc8c1e6369cb9e03f7f11b6d876a98',
                       'renewedSerial': '22bb', 'renewedNotAfter': '2046-11-26T00:00:00Z',
                       'reads': ['kube-apiserver']},
    'etcd-ca': {'path': 'etcd/ca.crt', 'serial': '33cc', 'notAfter': '2036-11-28T00:00:00Z',
                'spki': 'sha256:352430662fc9d26716752b6ed9306a0a059012d5bd0538e79922410b26ac7df8',
                'renewedSerial': '44dd', 'renewedNotAfter': '2046-11-26T00:00:00Z',
                'reads': ['etcd', 'kube-apiserver']},
}
NEW_CA_SPKI = 'sha256:' + 'ab' * 32


def _pem(payload):
    import base64
    body = base64.b64encode(payload.encode('ascii') * 8).decode('ascii')
    lines = [body[i:i + 64] for i in range(0, len(body), 64)]
    return '-----BEGIN CERTIFICATE-----\n' + '\n'.join(lines) + '\n-----END CERTIFICATE-----\n'


def renewed_pem(ca):
    """The PEM of CA ``ca`` after a same-key renewal (what ca-export answers after ca-renew)."""
    return _pem('fake {0} serial {1};'.format(ca, CA_FIXTURES[ca]['renewedSerial']))


def _ca_name(params, key='ca'):
    name = params.get(key)
    if name not in CA_FIXTURES:
        raise RpcFailure(-32602, 'invalid params', {'cert': None, 'path': None,
                                                    'cause': 'unknown CA {0!r} (ca|front-proxy-ca|etcd-ca)'.format(name)})
    return name


def _stamp(params):
    now = params.get('now') or rfc3339(NOW)
    return now.replace('-', '').replace(':', '')


def _backup(params, cert_dir):
    root = params.get('backup_dir') or os.path.join(os.path.dirname(cert_dir.rstrip('/')), 'kubecert-backup')
    return os.path.join(root, _stamp(params))


def _ca_change(name, action, cert_dir, kubeconfig_dir):
    fx = CA_FIXTURES[name]
    kubeconfigs = ([kubeconfig_dir + '/' + k for k in ('admin.conf', 'super-admin.conf', 'controller-manager.conf',
                                                       'scheduler.conf', 'kubelet.conf')] if name == 'ca' else [])
    return {'name': name, 'action': action, 'path': cert_dir + '/' + fx['path'], 'oldSerial': fx['serial'],
            'newSerial': fx['renewedSerial'], 'oldNotAfter': fx['notAfter'], 'newNotAfter': fx['renewedNotAfter'],
            'spkiSha256': fx['spki'], 'kubeconfigs': kubeconfigs}


def _ca_result(changes, params, cert_dir):
    dry_run = bool(params.get('dry_run'))
    written = []
    for change in changes:
        written.append(change['path'])
        written.extend(change['kubeconfigs'])
    return {'certificates': changes, 'written': written,
            'backupDir': None if dry_run else _backup(params, cert_dir), 'changed': not dry_run}


def _renewed_marker(cert_dir, name):
    """A real cert dir (the playbook tests): a renewal or install is remembered there."""
    return os.path.join(cert_dir, '.fake-{0}-renewed'.format(name)) if os.path.isdir(cert_dir) else None


def _remember(params, cert_dir, names):
    for name in names:
        marker = _renewed_marker(cert_dir, name)
        if marker and not params.get('dry_run'):
            open(marker, 'w').close()


def m_ca_renew(params):
    cert_dir = params.get('cert_dir') or '/etc/kubernetes/pki'
    kubeconfig_dir = params.get('kubeconfig_dir') or '/etc/kubernetes'
    names = [_ca_name({'ca': n}) for n in params.get('cas') or []] or ['ca', 'front-proxy-ca', 'etcd-ca']
    action = 'would-renew' if params.get('dry_run') else 'renewed'
    _remember(params, cert_dir, names)
    return _ca_result([_ca_change(n, action, cert_dir, kubeconfig_dir) for n in names], params, cert_dir)


def m_ca_export(params):
    name = _ca_name(params)
    fx = CA_FIXTURES[name]
    marker = _renewed_marker(params.get('cert_dir') or '/etc/kubernetes/pki', name)
    renewed = os.environ.get('FAKE_AGENT_CA_SERIAL') == 'renewed' or bool(marker and os.path.exists(marker))
    serial = fx['renewedSerial'] if renewed else fx['serial']
    return {'name': name, 'pem': _pem('fake {0} serial {1};'.format(name, serial)), 'serial': serial,
            'notAfter': fx['renewedNotAfter'] if renewed else fx['notAfter'], 'spkiSha256': fx['spki']}


def m_ca_install(params):
    name = _ca_name(params)
    pem = params.get('pem') or ''
    if 'BEGIN CERTIFICATE' not in pem or 'PRIVATE KEY' in pem:
        raise RpcFailure(-31003, 'validation failed', {'cert': name, 'path': None,
                                                       'cause': 'the input is not one PEM certificate'})
    cert_dir = params.get('cert_dir') or '/etc/kubernetes/pki'
    action = 'would-install' if params.get('dry_run') else 'installed'
    _remember(params, cert_dir, [name])
    return _ca_result([_ca_change(name, action, cert_dir, params.get('kubeconfig_dir') or '/etc/kubernetes')],
                      params, cert_dir)


def _stage_next(cert_dir, base):
    """A real cert dir: the first node creates <ca>.next.crt/.key, the others must find them (copied)."""
    crt, key = os.path.join(cert_dir, base + '.next.crt'), os.path.join(cert_dir, base + '.next.key')
    if os.path.exists(crt) and os.path.exists(key):
        return {'path': crt, 'action': 'written', 'what': 'used the staged new CA'}
    with open(crt, 'w') as handle:
        handle.write(_pem('fake new CA {0};'.format(os.urandom(8).hex())))
    with open(key, 'w') as handle:
        handle.write('fake key ' + os.urandom(8).hex() + '\n')
    os.chmod(key, 0o600)
    return {'path': crt, 'action': 'written', 'what': 'created the new CA'}


# ca-rotate: phase -> (the phases it starts from, the phase after), and the phase a rollback returns to.
ROTATION = {'stage': (('none', 'distrusted'), 'staged'), 'promote': (('staged',), 'promoted'),
            'distrust': (('promoted',), 'distrusted')}
ROLLBACK = {'stage': ('staged', 'none'), 'promote': ('promoted', 'staged'), 'distrust': ('distrusted', 'promoted')}
ROTATION_READERS = {'ca': ['kube-apiserver', 'kube-controller-manager', 'kube-scheduler', 'kubelet'],
                    'front-proxy-ca': ['kube-apiserver'], 'etcd-ca': ['etcd', 'kube-apiserver']}


def _phase_path(cert_dir):
    """FAKE_AGENT_CA_PHASE_FILE, else (the playbook tests, one cert dir per host) a file in the cert dir."""
    path = os.environ.get('FAKE_AGENT_CA_PHASE_FILE', '')
    if not path and os.path.isdir(cert_dir):
        path = os.path.join(cert_dir, '.fake-rotation-phase')
    return path


def _rotation_phase(cert_dir):
    path = _phase_path(cert_dir)
    if path and os.path.exists(path):
        with open(path) as handle:
            return handle.read().strip() or 'none'
    return os.environ.get('FAKE_AGENT_CA_PHASE') or 'none'


def _identity(serial, spki):
    return {'serial': serial, 'subject': 'CN=fake-ca', 'notAfter': '2036-11-28T00:00:00Z', 'spkiSha256': spki}


def m_ca_rotate(params):
    """The phase the node's files are in: FAKE_AGENT_CA_PHASE_FILE, or .fake-rotation-phase in a real cert dir."""
    name = _ca_name(params)
    phase = params.get('phase')
    if phase not in ROTATION:
        raise RpcFailure(-32602, 'invalid params', {'cert': None, 'path': None,
                                                    'cause': 'unknown phase {0!r}'.format(phase)})
    dry_run = bool(params.get('dry_run'))
    rollback = bool(params.get('rollback'))
    cert_dir = params.get('cert_dir') or '/etc/kubernetes/pki'
    fx = CA_FIXTURES[name]
    before = _rotation_phase(cert_dir)
    if rollback:
        needs, after = ROLLBACK[phase]
        needs = (needs,)
    else:
        needs, after = ROTATION[phase]
    changes = []
    if before == after:
        message = '{0}: already {1}, nothing to do'.format(name, after)
    elif before not in needs:
        raise RpcFailure(-31003, 'validation failed', {
            'cert': name, 'path': None,
            'cause': '{0}{1} needs phase {2}, the files say {3}'.format(
                phase, ' --rollback' if rollback else '', ' or '.join(needs), before)})
    else:
        message = '{0}: {1} -> {2}'.format(name, before, after)
        changes = [{'path': cert_dir + '/' + fx['path'], 'action': 'would-write' if dry_run else 'written', 'what': {
            'staged': 'trust bundle old+new', 'promoted': 'trust bundle new+old, signed by the new CA',
            'distrusted': 'the new CA alone', 'none': 'the old CA alone'}[after]}]
    path = _phase_path(cert_dir)
    if changes and not dry_run and path:
        with open(path, 'w') as handle:
            handle.write(after + '\n')
        if phase == 'stage' and not rollback and os.path.isdir(cert_dir):
            changes.append(_stage_next(cert_dir, fx['path'][:-len('.crt')]))
    checklist = ['update the cluster-info ConfigMap in kube-public (no kubeconfig given)'] if name == 'ca' else []
    checklist.append('restart workloads that hold the old {0}'.format(name))
    return {'ca': name, 'phase': phase, 'rollback': rollback, 'phaseBefore': before,
            'phaseAfter': after if changes else before, 'message': message, 'changes': changes,
            'written': [c['path'] for c in changes], 'oldCa': _identity(fx['serial'], fx['spki']),
            'newCa': _identity('5e', NEW_CA_SPKI), 'joinHash': NEW_CA_SPKI if after in ('promoted', 'distrusted') else fx['spki'],
            'checklist': checklist, 'componentsToRestart': list(ROTATION_READERS[name]) if changes else [],
            'backupDir': None if dry_run or not changes else _backup(params, cert_dir), 'dryRun': dry_run,
            'changed': bool(changes)}


COMPONENT_ENDPOINTS = {'etcd': [('etcd-client', '127.0.0.1:2379', 'etcd/server'), ('etcd-peer', '10.0.0.1:2380', 'etcd/peer')],
                       'kube-apiserver': [('kube-apiserver', '10.0.0.1:6443', 'apiserver')],
                       'kube-controller-manager': [('kube-controller-manager', '127.0.0.1:10257', None)],
                       'kube-scheduler': [('kube-scheduler', '127.0.0.1:10259', None)],
                       'kubelet': [('kubelet', '127.0.0.1:10250', 'kubelet')]}
ALL_COMPONENTS = ['etcd', 'kube-apiserver', 'kube-controller-manager', 'kube-scheduler']
SERVED_COMPONENTS = ALL_COMPONENTS + ['kubelet']


def _components(params, required=False, allowed=None):
    allowed = allowed or ALL_COMPONENTS
    names = params.get('components') or []
    if required and not names:
        raise RpcFailure(-32602, 'invalid params', {'cert': None, 'path': None,
                                                    'cause': 'components: name at least one component to restart'})
    for name in names:
        if name not in allowed:
            raise RpcFailure(-32602, 'invalid params', {'cert': None, 'path': None, 'cause': 'unknown component ' + name})
    return [c for c in allowed if c in names] if names else list(allowed)


def _served_endpoints(component, cert_dir, stale):
    """FAKE_AGENT_SERVED=stale:<component>: that component serves the old serial."""
    out = []
    for endpoint, address, cert in COMPONENT_ENDPOINTS[component]:
        entry = {'endpoint': endpoint, 'component': component, 'address': address, 'addressSource': 'default',
                 'certPath': '{0}/{1}.crt'.format(cert_dir, cert) if cert else None, 'servedExpired': False}
        if cert is None:
            entry.update(onDisk=None, served={'serial': '1f', 'notAfter': rfc3339(NOW + 365 * DAY), 'subject': 'CN=' + component},
                         verdict='not-checked', summary='not-checked',
                         message='{0} {1}: self-signed, nothing to compare'.format(endpoint, address))
        else:
            disk = {'serial': '0b', 'notAfter': rfc3339(NOW + 365 * DAY), 'subject': 'CN=' + component}
            served = dict(disk, serial='0a', notAfter=rfc3339(NOW + 20 * DAY)) if component in stale else disk
            verdict = 'stale' if component in stale else 'current'
            summary = (u'stale: serving a certificate other than the one on disk \u2014 restart ' + component
                       if component in stale else 'current')
            entry.update(onDisk=disk, served=served, verdict=verdict, summary=summary,
                         message='{0} {1} serves serial {2} ({3})'.format(endpoint, address, served['serial'], verdict))
        out.append(entry)
    return out


def _state(name):
    """FAKE_AGENT_<name>, else the contents of the file FAKE_AGENT_<name>_FILE (the playbook tests)."""
    value = os.environ.get('FAKE_AGENT_' + name, '')
    path = os.environ.get('FAKE_AGENT_{0}_FILE'.format(name), '')
    if not value and path and os.path.exists(path):
        with open(path) as handle:
            value = handle.read().strip()
    return value


def _unhealthy():
    return _state('HEALTH') == 'unhealthy'


def _stale():
    spec = _state('SERVED')
    return set(spec.split(':', 1)[1].split(',')) if spec.startswith('stale:') else set()


def m_restart(params):
    components = _components(params, required=True)
    method = params.get('method') or 'manifest-move'
    if method == 'command' and not params.get('restart_command'):
        raise RpcFailure(-32602, 'invalid params', {'cert': None, 'path': None, 'cause': 'method command needs restart_command'})
    result = {'dryRun': bool(params.get('dry_run')), 'ok': True, 'method': method, 'components': components,
              'recoveredManifests': [], 'restarts': []}
    if result['dryRun']:
        return result
    cert_dir = params.get('cert_dir') or '/etc/kubernetes/pki'
    manifests = params.get('manifests_dir') or '/etc/kubernetes/manifests'
    park = params.get('park_dir') or os.path.join(os.path.dirname(manifests.rstrip('/')), 'kubecert-parked-manifests')
    if method == 'manifest-move' and os.path.isdir(park):
        for name in sorted(os.listdir(park)):
            os.rename(os.path.join(park, name), os.path.join(manifests, name))
            result['recoveredManifests'].append(os.path.join(manifests, name))
    for component in components:
        outcome = {'component': component, 'method': method, 'ok': True, 'seconds': 1.5,
                   'message': 'restarted, healthy, serving its files', 'served': []}
        result['restarts'].append(outcome)
        failure = _fake_restart(method, params, component, manifests, park)
        if failure is None and _unhealthy():
            if os.environ.get('FAKE_AGENT_HEALTH_FILE'):
                # The playbook tests: the agent waits its bound, once.
                time.sleep(min(params.get('health_timeout_ms') or 300000, 30000) / 1000.0)
            failure = 'health:' + component, '{0} not healthy within {1} ms'.format(
                component, params.get('health_timeout_ms') or 300000)
        if failure is not None:
            outcome.update(ok=False, stage=failure[0], message=failure[1])
            result.update(ok=False, failedStage=failure[0], error=failure[1])
            break
        stale = _stale()
        if params.get('served', True) is not False:
            outcome['served'] = _served_endpoints(component, cert_dir, stale)
        if component in stale:
            outcome.update(ok=False, stage='served:' + component,
                           message='{0} still serves serial 0a after its restart'.format(component))
            result.update(ok=False, failedStage='served:' + component, error=outcome['message'])
            break
    return result


def _fake_restart(method, params, component, manifests, park):
    """Method command runs the command (the playbook tests log and inject with it);
    manifest-move moves the manifest out and back. Returns (stage, message) on failure."""
    if method == 'command':
        command = params['restart_command'].replace('{component}', component).replace(
            '{manifest}', os.path.join(manifests, component + '.yaml'))
        proc = subprocess.run(['/bin/sh', '-c', command], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False)
        if proc.returncode != 0:
            lines = proc.stdout.decode('utf-8', 'replace').strip().splitlines()
            return 'restart:' + component, 'restart command exited {0}: {1}'.format(
                proc.returncode, lines[-1] if lines else '')
    elif method == 'manifest-move':
        source = os.path.join(manifests, component + '.yaml')
        if os.path.exists(source):
            if not os.path.isdir(park):
                os.makedirs(park, 0o700)
            os.rename(source, os.path.join(park, component + '.yaml'))
            if os.environ.get('FAKE_AGENT_MANIFESTS_LOG'):
                with open(os.environ['FAKE_AGENT_MANIFESTS_LOG'], 'a') as handle:
                    handle.write('parked {0}\n'.format(component))
            os.rename(os.path.join(park, component + '.yaml'), source)
    return None


def m_health(params):
    components = _components(params)
    unhealthy = _unhealthy()
    if unhealthy and os.environ.get('FAKE_AGENT_HEALTH_FILE'):
        # The playbook tests: the agent waits its bound, once.
        time.sleep(min(params.get('timeout_ms') or 30000, 30000) / 1000.0)
    out = []
    for component in components:
        entry = {'component': component, 'healthy': not unhealthy,
                 'url': 'https://127.0.0.1:2379/health' if component == 'etcd' else 'https://127.0.0.1/readyz',
                 'detail': 'connection refused' if unhealthy else 'ok'}
        if component == 'etcd':
            members = [{'id': str(i), 'name': 'cp{0}'.format(i), 'clientUrls': ['https://10.0.0.{0}:2379'.format(i)],
                        'peerUrls': ['https://10.0.0.{0}:2380'.format(i)], 'healthy': not (unhealthy and i > 1),
                        'detail': 'ok'} for i in (1, 2, 3)]
            healthy = sum(1 for m in members if m['healthy'])
            entry['etcd'] = {'endpoint': 'https://127.0.0.1:2379', 'members': members, 'healthyMembers': healthy,
                             'quorum': healthy * 2 > len(members)}
        out.append(entry)
    timeout = params.get('timeout_ms') or 30000
    return {'healthy': not unhealthy, 'components': out, 'elapsedMs': timeout if unhealthy else 12,
            'polls': 3 if unhealthy else 1}


def m_served(params):
    components = _components(params, allowed=SERVED_COMPONENTS)
    cert_dir = params.get('cert_dir') or '/etc/kubernetes/pki'
    stale = _stale()
    endpoints = [e for c in components for e in _served_endpoints(c, cert_dir, stale)]
    staleComponents = [c for c in components if c in stale]
    return {'level': 'fail' if staleComponents else 'ok', 'endpoints': endpoints, 'staleComponents': staleComponents}


METHODS = {
    'version': m_version, 'check': m_check, 'renew': m_renew, 'restore': m_restore,
    'csr-export': m_csr_export, 'csr-import': m_csr_import, 'kubelet-conf': m_kubelet_conf,
    'kubelet-conf-rebuild': m_kubelet_rebuild,
    'approve': m_approve, 'restart': m_restart, 'health': m_health, 'served': m_served,
    'ca-renew': m_ca_renew, 'ca-export': m_ca_export, 'ca-install': m_ca_install, 'ca-rotate': m_ca_rotate,
}


def log_request(request):
    path = os.environ.get('FAKE_AGENT_LOG')
    if path:
        with open(path, 'a') as handle:
            handle.write(json.dumps(request) + '\n')


def forced_error(method):
    spec = os.environ.get('FAKE_AGENT_ERROR', '')
    for item in spec.split(','):
        name, dummy, code = item.partition('=')
        if name == method and code:
            return int(code)
    return None


def leak(value):
    if isinstance(value, dict):
        value = dict(value)
        value['keyPem'] = PEM_KEY
    return value


def handle(line):
    """One request line in, one response object out (None: answer nothing)."""
    try:
        request = json.loads(line)
    except ValueError:
        return {'jsonrpc': '2.0', 'id': None, 'error': {'code': -32700, 'message': 'parse error'}}
    log_request(request)
    request_id = request.get('id')
    method = request.get('method')
    mode = os.environ.get('FAKE_AGENT_MODE', '')
    if mode == 'wrong-id':
        return {'jsonrpc': '2.0', 'id': 'not-' + str(request_id), 'result': {}}
    code = forced_error(method)
    try:
        if code is not None:
            raise RpcFailure(code, 'forced error', {'cert': 'apiserver', 'path': '/etc/kubernetes/pki/apiserver.crt',
                                                    'cause': 'FAKE_AGENT_ERROR' + (' ' + PEM_KEY if mode == 'leak' else '')})
        if method not in METHODS:
            raise RpcFailure(-32601, 'method not found')
        params = request.get('params') or {}
        if not isinstance(params, dict):
            raise RpcFailure(-32602, 'params must be an object')
        result = METHODS[method](params)
    except RpcFailure as exc:
        error = {'code': exc.code, 'message': exc.message}
        if exc.data is not None:
            error['data'] = exc.data
        return {'jsonrpc': '2.0', 'id': request_id, 'error': error}
    except ValueError as exc:
        return {'jsonrpc': '2.0', 'id': request_id, 'error': {'code': -32602, 'message': str(exc)}}
    if mode == 'leak':
        result = leak(result)
    return {'jsonrpc': '2.0', 'id': request_id, 'result': result}


def serve_stdio():
    sys.stderr.write('fake-agent: serving stdio\n')
    sys.stderr.flush()
    mode = os.environ.get('FAKE_AGENT_MODE', '')
    for line in sys.stdin:
        if not line.strip():
            continue
        if mode == 'exit':
            sys.stderr.write('fake-agent: exiting on purpose\n')
            return 3
        if mode == 'hang':
            time.sleep(3600)
        if mode == 'garbage':
            sys.stdout.write('this is not json\n')
        else:
            sys.stdout.write(json.dumps(handle(line)) + '\n')
        sys.stdout.flush()
    return 0


class _Handler(BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'

    def do_POST(self):  # noqa: N802 (http.server's naming)
        body = self.rfile.read(int(self.headers.get('Content-Length', '0')))
        if os.environ.get('FAKE_AGENT_MODE') == 'http500':
            payload = b'<html>internal error</html>'
            self.send_response(500)
            self.send_header('Content-Type', 'text/html')
        elif self.headers.get('Content-Type', '').split(';')[0].strip() != 'application/json':
            payload = b'unsupported media type'
            self.send_response(415)
            self.send_header('Content-Type', 'text/plain')
        else:
            payload = json.dumps(handle(body.decode('utf-8'))).encode('utf-8')
            self.send_response(200)
            self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format, *args):  # pylint: disable=redefined-builtin
        sys.stderr.write('fake-agent: ' + (format % args) + '\n')


class _UnixHTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def get_request(self):
        conn, dummy = super(_UnixHTTPServer, self).get_request()
        # BaseHTTPRequestHandler wants a (host, port) client address.
        return conn, ('unix', 0)


def serve_socket(path):
    if os.path.exists(path):
        os.unlink(path)
    server = _UnixHTTPServer(path, _Handler)
    sys.stderr.write('fake-agent: serving {0}\n'.format(path))
    sys.stderr.flush()
    try:
        server.serve_forever()
    finally:
        server.server_close()
        if os.path.exists(path):
            os.unlink(path)
    return 0


def main(argv):
    if argv[:2] == ['serve', '--stdio']:
        return serve_stdio()
    if argv[:2] == ['serve', '--socket'] and len(argv) == 3:
        return serve_socket(argv[2])
    sys.stderr.write('usage: fake_agent.py serve --stdio | serve --socket PATH\n')
    return 2


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
