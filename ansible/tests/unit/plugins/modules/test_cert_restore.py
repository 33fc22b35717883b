# Copyright (c) kubecert contributors
# SPDX-License-Identifier: Apache-2.0

from ansible_collections.kubecert.pki.plugins.modules import cert_restore
from ansible_collections.kubecert.pki.tests.unit.plugins.modules.utils import ModuleCase


class CertRestoreTest(ModuleCase):

    def test_restore(self):
        failed, result = self.run_module(cert_restore, {'backup_dir': '/var/backups/kubecert/fake'}, diff=True)
        self.assertFalse(failed)
        self.assertTrue(result['changed'])
        self.assertEqual(result['restored'], ['/etc/kubernetes/pki/apiserver.crt', '/etc/kubernetes/pki/apiserver.key'])
        self.assertIn('restored from /var/backups/kubecert/fake', result['diff']['prepared'])
        self.assertEqual(self.requests()[-1]['method'], 'restore')
        self.assertEqual(self.last_params(), {'backup_dir': '/var/backups/kubecert/fake', 'cert_dir': '/etc/kubernetes/pki',
                                              'kubeconfig_dir': '/etc/kubernetes', 'dry_run': False})

    def test_check_mode(self):
        failed, result = self.run_module(cert_restore, {'backup_dir': '/bk'}, check_mode=True, diff=True)
        self.assertFalse(failed)
        self.assertFalse(result['changed'])  # the fake agent reports changed only when it wrote
        self.assertTrue(result['dryRun'])
        self.assertIs(self.last_params()['dry_run'], True)
        self.assertIn('would restore', result['diff']['prepared'])

    def test_backup_dir_is_required(self):
        failed, result = self.run_module(cert_restore, {})
        self.assertTrue(failed)
        self.assertIn('backup_dir', result['msg'])
        self.assertEqual(self.requests(), [])
