# Copyright (c) kubecert contributors
# SPDX-License-Identifier: Apache-2.0
"""One contract: the modules' RETURN blocks and the fake agent against schema/.

The agent's wire contract is the JSON Schema per method in the repository's
schema/ directory (generated from the Rust types). These tests fail on drift:

- every key a module's RETURN documents is a property of the method's result
  schema, and every property is documented, recursively (``contains`` against
  nested objects and array items);
- every response of tests/unit/plugins/fake_agent.py validates against the
  result schema, with unknown properties refused (the schemas leave
  ``additionalProperties`` open; a fake that answers more than the agent does
  would hide a documentation error).

- module_utils/rpc.py's ERROR_NAMES names every error code of src/rpc/errors.rs.

schema/ (and src/rpc/errors.rs) are found beside the collection in the repository
(ansible/../schema), or in tests/unit/contract/ (where run-units.sh copies them),
or at KUBECERT_SCHEMA_DIR.
"""

import ast
import copy
import json
import os
import sys

import pytest
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
COLLECTION = os.path.abspath(os.path.join(HERE, '..', '..', '..'))
sys.path.insert(0, HERE)

import fake_agent  # noqa: E402  pylint: disable=wrong-import-position

jsonschema = pytest.importorskip('jsonschema')


def _schema_dir():
    candidates = [os.environ.get('KUBECERT_SCHEMA_DIR', ''),
                  os.path.join(COLLECTION, '..', 'schema'),
                  os.path.join(COLLECTION, 'tests', 'unit', 'contract', 'schema')]
    for candidate in candidates:
        if candidate and os.path.exists(os.path.join(candidate, 'check.result.json')):
            return candidate
    pytest.fail('schema/ not found (looked in {0}); set KUBECERT_SCHEMA_DIR'.format(candidates))
    return None


# module -> agent method
MODULES = {
    'ca_export': 'ca-export',
    'ca_install': 'ca-install',
    'ca_renew': 'ca-renew',
    'ca_rotate': 'ca-rotate',
    'cert_info': 'check',
    'cert_renew': 'renew',
    'cert_restore': 'restore',
    'csr_export': 'csr-export',
    'csr_import': 'csr-import',
    'csr_approve': 'approve',
    'kubelet_conf': 'kubelet-conf',
    'kubelet_rebuild': 'kubelet-conf-rebuild',
    'restart': 'restart',
    'health': 'health',
    'served': 'served',
}
# Keys a module adds to (or renames in) the agent's result, documented in its RETURN.
MODULE_KEYS = {
    'kubelet_conf': {'kubeletConfPath': 'path'},
}
# Ansible's own return values, which a RETURN block may document besides the result.
ANSIBLE_KEYS = {'changed', 'diff', 'msg', 'rpc_error', 'agent_stderr'}


def load_schema(method):
    with open(os.path.join(_schema_dir(), method + '.result.json')) as handle:
        return json.load(handle)


def module_return(module):
    path = os.path.join(COLLECTION, 'plugins', 'modules', module + '.py')
    with open(path) as handle:
        tree = ast.parse(handle.read())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, 'id', None) == 'RETURN' for t in node.targets):
            return yaml.safe_load(node.value.value) or {}
    raise AssertionError('{0} has no RETURN'.format(path))


def resolve(schema, root):
    """Follow $ref and drop the null branch of anyOf; return (schema, is_array)."""
    while True:
        if '$ref' in schema:
            name = schema['$ref'].rsplit('/', 1)[-1]
            schema = root['$defs'][name]
            continue
        if 'anyOf' in schema:
            branches = [s for s in schema['anyOf'] if s.get('type') != 'null']
            if len(branches) == 1:
                schema = branches[0]
                continue
        if schema.get('type') == 'array' or (isinstance(schema.get('type'), list) and 'array' in schema['type']):
            item, dummy = resolve(schema.get('items', {}), root)
            return item, True
        return schema, False


def drift(documented, schema, root, where):
    """Differences between RETURN entries and a schema's properties, recursively."""
    errors = []
    properties = schema.get('properties', {})
    for key, doc in sorted(documented.items()):
        if key not in properties:
            errors.append('{0}{1}: documented in RETURN, not in the schema'.format(where, key))
            continue
        target, dummy = resolve(properties[key], root)
        contains = (doc or {}).get('contains')
        if contains and target.get('properties'):
            errors.extend(drift(contains, target, root, '{0}{1}.'.format(where, key)))
        elif target.get('properties') and not contains:
            errors.append('{0}{1}: RETURN documents no "contains" for its fields {2}'.format(
                where, key, sorted(target['properties'])))
        elif contains and not target.get('properties'):
            errors.append('{0}{1}: RETURN documents "contains" {2}, the schema has no fields'.format(
                where, key, sorted(contains)))
    for key in sorted(set(properties) - set(documented)):
        errors.append('{0}{1}: returned by the agent, not documented in RETURN'.format(where, key))
    return errors


@pytest.mark.parametrize('module', sorted(MODULES))
def test_return_block_matches_result_schema(module):
    root = load_schema(MODULES[module])
    documented = dict(module_return(module))
    for key in ANSIBLE_KEYS:
        documented.pop(key, None)
    for added, original in MODULE_KEYS.get(module, {}).items():
        assert added in documented, '{0}: RETURN must document {1}'.format(module, added)
        documented[original] = documented.pop(added)
    top = dict(root, properties=dict((k, v) for k, v in root['properties'].items() if k not in ANSIBLE_KEYS))
    errors = drift(documented, top, root, '')
    assert not errors, '{0} RETURN vs schema/{1}.result.json:\n  {2}'.format(
        module, MODULES[module], '\n  '.join(errors))


def strict(schema):
    """A copy of ``schema`` where objects with properties refuse any other key."""
    schema = copy.deepcopy(schema)

    def walk(node):
        if isinstance(node, dict):
            if 'properties' in node and 'additionalProperties' not in node:
                node['additionalProperties'] = False
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)
    walk(schema)
    return schema


CALLS = [
    ('version', {}),
    ('check', {}),
    ('check', {'fail_within': '30d', 'warn_within': '60d'}),
    ('renew', {'within': '30d'}),
    ('renew', {'names': ['apiserver'], 'dry_run': True}),
    ('restore', {'backup_dir': '/var/backups/kubecert/fake'}),
    ('csr-export', {'csr_dir': '/tmp/csr'}),
    ('csr-import', {'csr_dir': '/tmp/csr', 'names': ['apiserver', 'front-proxy-client']}),
    ('csr-import', {'dry_run': True}),
    ('kubelet-conf', {}),
    ('kubelet-conf', {'repair': True, 'dry_run': True}),
    ('check', {'kubelet': True}),
    ('kubelet-conf-rebuild', {'node_name': 'cp1'}),
    ('kubelet-conf-rebuild', {'node_name': 'cp1', 'dry_run': True}),
    ('approve', {}),
    ('approve', {'dry_run': True}),
    ('restart', {'components': ['etcd', 'kube-apiserver']}),
    ('restart', {'components': ['etcd'], 'dry_run': True}),
    ('health', {}),
    ('served', {'components': ['etcd']}),
    ('ca-renew', {}),
    ('ca-renew', {'cas': ['etcd-ca'], 'dry_run': True}),
    ('ca-export', {'ca': 'ca'}),
    ('ca-install', {'ca': 'ca', 'pem': fake_agent.renewed_pem('ca')}),
    ('ca-install', {'ca': 'etcd-ca', 'pem': fake_agent.renewed_pem('etcd-ca'), 'dry_run': True}),
    ('ca-rotate', {'ca': 'etcd-ca', 'phase': 'stage'}),
    ('ca-rotate', {'ca': 'ca', 'phase': 'stage', 'dry_run': True}),
]


@pytest.mark.parametrize('pki', ['good', 'key-missing', 'empty', 'external-ca', 'kubelet-embedded'])
@pytest.mark.parametrize('method,params', CALLS, ids=['{0}-{1}'.format(m, i) for i, (m, p) in enumerate(CALLS)])
def test_fake_agent_answers_as_the_schema_says(method, params, pki, monkeypatch):
    monkeypatch.setenv('FAKE_AGENT_PKI', pki)
    monkeypatch.delenv('FAKE_AGENT_MODE', raising=False)
    monkeypatch.delenv('FAKE_AGENT_ERROR', raising=False)
    monkeypatch.delenv('FAKE_AGENT_LOG', raising=False)
    monkeypatch.setenv('FAKE_AGENT_SERVED', 'stale:kube-apiserver' if pki == 'key-missing' else '')
    monkeypatch.setenv('FAKE_AGENT_HEALTH', 'unhealthy' if pki == 'key-missing' else '')
    response = fake_agent.handle(json.dumps({'jsonrpc': '2.0', 'id': 1, 'method': method, 'params': params}))
    assert 'result' in response, response
    schema = strict(load_schema(method))
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(response['result']), key=str)
    assert not errors, '{0} {1}: {2}'.format(method, params, '; '.join(
        '{0}: {1}'.format('/'.join(str(p) for p in e.absolute_path), e.message) for e in errors))


def test_strict_validation_catches_an_unknown_key():
    """The check above can fail: a result with one key too many does not validate."""
    schema = strict(load_schema('check'))
    result = fake_agent.m_check({})
    result['status'] = dict(result['status'], worst='apiserver')
    assert not jsonschema.Draft202012Validator(schema).is_valid(result)


def test_drift_catches_an_undocumented_key():
    root = load_schema('restore')
    errors = drift({'restored': {}}, root, root, '')
    assert errors == ['changed: returned by the agent, not documented in RETURN',
                      'dryRun: returned by the agent, not documented in RETURN',
                      'removed: returned by the agent, not documented in RETURN']


def _errors_rs():
    for candidate in (os.path.join(COLLECTION, '..', 'src', 'rpc', 'errors.rs'),
                      os.path.join(COLLECTION, 'tests', 'unit', 'contract', 'errors.rs')):
        if os.path.exists(candidate):
            return candidate
    pytest.fail('src/rpc/errors.rs not found')
    return None


def test_error_names_cover_every_agent_code():
    import re
    with open(_errors_rs()) as handle:
        codes = set(int(c) for c in re.findall(r'pub const [A-Z_]+: i32 = (-\d+);', handle.read()))
    assert -31001 in codes and -32700 in codes, codes
    with open(os.path.join(COLLECTION, 'plugins', 'module_utils', 'rpc.py')) as handle:
        tree = ast.parse(handle.read())
    names = None
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, 'id', None) == 'ERROR_NAMES' for t in node.targets):
            names = ast.literal_eval(node.value)
    assert names is not None
    assert sorted(codes - set(names)) == [], 'codes of src/rpc/errors.rs without a name in rpc.py'
    assert sorted(set(names) - codes) == [], 'names in rpc.py for codes the agent does not have'


def _systemd_dir():
    for candidate in (os.path.join(COLLECTION, '..', 'systemd'),
                      os.path.join(COLLECTION, 'tests', 'unit', 'contract', 'systemd')):
        if os.path.isdir(candidate):
            return candidate
    pytest.fail('the repository systemd/ directory was not found')
    return None


def test_shipped_units_are_the_repository_units():
    """roles/install/files is a copy of systemd/ (the collection is installed without the repository)."""
    files = os.path.join(COLLECTION, 'roles', 'install', 'files')
    shipped = sorted(os.listdir(files))
    assert shipped == ['kubecert-renew.service', 'kubecert-renew.timer', 'kubecert.service', 'kubecert.socket']
    for name in shipped:
        with open(os.path.join(files, name)) as a, open(os.path.join(_systemd_dir(), name)) as b:
            assert a.read() == b.read(), 'roles/install/files/{0} differs from systemd/{0}: copy it again'.format(name)
