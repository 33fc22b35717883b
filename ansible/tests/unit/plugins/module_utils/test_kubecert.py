# Copyright (c) kubecert contributors
# SPDX-License-Identifier: Apache-2.0
"""The Ansible glue: scrubbing, diffs and changed."""

import unittest

from ansible_collections.kubecert.pki.plugins.module_utils.kubecert import (
    SCRUBBED,
    certificate_diff,
    scrub,
)

PEM = '-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n'


class ScrubTest(unittest.TestCase):

    def test_nested_values(self):
        value = {'a': [PEM, {'b': 'x' + PEM}], 'c': 'fine', 'd': 3, 'e': None}
        self.assertEqual(scrub(value), {'a': [SCRUBBED, {'b': SCRUBBED}], 'c': 'fine', 'd': 3, 'e': None})

    def test_certificates_are_kept(self):
        cert = '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n'
        self.assertEqual(scrub(cert), cert)


class DiffTest(unittest.TestCase):

    def test_only_entries_with_new_state(self):
        certs = [
            {'name': 'admin.conf', 'action': 'skipped', 'old': {'notAfter': 'x'}},
            {'name': 'apiserver', 'action': 'renewed',
             'old': {'notAfter': '2026-01-01T00:00:00Z', 'serial': '0a', 'dnsNames': ['k8s'], 'ipAddresses': []},
             'new': {'notAfter': '2027-01-01T00:00:00Z', 'serial': '0b', 'dnsNames': ['k8s'], 'ipAddresses': ['10.0.0.1'],
                     'subject': 'CN=kube-apiserver'}},
        ]
        diffs = certificate_diff(certs)
        self.assertEqual(len(diffs), 1)
        self.assertEqual(diffs[0]['before'], 'notAfter: 2026-01-01T00:00:00Z\nserial: 0a\nsans: k8s\n')
        self.assertEqual(diffs[0]['after'], 'notAfter: 2027-01-01T00:00:00Z\nserial: 0b\nsans: k8s, 10.0.0.1\n'
                                            'subject: CN=kube-apiserver\n')

    def test_absent_old_state(self):
        diffs = certificate_diff([{'name': 'x', 'action': 'installed', 'new': {'notAfter': 'n', 'serial': None}}])
        self.assertEqual(diffs[0]['before'], '(absent)\n')
        self.assertIn('(none)', diffs[0]['after'])

    def test_garbage_is_ignored(self):
        self.assertEqual(certificate_diff(None), [])
        self.assertEqual(certificate_diff(['x', {'name': 'y'}]), [])


if __name__ == '__main__':
    unittest.main()
