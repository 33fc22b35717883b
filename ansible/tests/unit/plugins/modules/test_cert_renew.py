# Copyright (c) kubecert contributors
# SPDX-License-Identifier: Apache-2.0

from ansible_collections.kubecert.pki.plugins.modules import cert_renew
from ansible_collections.kubecert.pki.tests.unit.plugins.modules.utils import ModuleCase


class CertRenewTest(ModuleCase):

    def test_renews_what_is_due(self):
        failed, result = self.run_module(cert_renew, {'within': '30d'})
        self.assertFalse(failed)
        self.assertTrue(result['changed'])
        self.assertFalse(result['dryRun'])
        self.assertEqual(result['backupDir'], '/var/backups/kubecert/fake')
        self.assertEqual(result['componentsToRestart'], ['etcd', 'kube-apiserver'])
        actions = dict((c['name'], c['action']) for c in result['certificates'])
        self.assertEqual(actions['apiserver'], 'renewed')
        self.assertEqual(actions['admin.conf'], 'skipped')
        self.assertNotIn('diff', result)
        self.assertEqual(self.last_params(), {
            'names': ['all'],
            'cert_dir': '/etc/kubernetes/pki', 'kubeconfig_dir': '/etc/kubernetes', 'within': '30d',
            'allow_expired_ca': False, 'dry_run': False})

    def test_nothing_due_is_not_changed(self):
        failed, result = self.run_module(cert_renew, {'within': '10d'})
        self.assertFalse(failed)
        self.assertFalse(result['changed'])
        self.assertEqual(result['componentsToRestart'], [])

    def test_check_mode_is_a_dry_run_with_diff(self):
        failed, result = self.run_module(cert_renew, {'within': '30d', 'names': ['apiserver']},
                                         check_mode=True, diff=True)
        self.assertFalse(failed)
        self.assertTrue(result['changed'])
        self.assertTrue(result['dryRun'])
        self.assertIs(self.last_params()['dry_run'], True)
        self.assertEqual(self.last_params()['names'], ['apiserver'])
        self.assertEqual(len(result['diff']), 1)
        diff = result['diff'][0]
        self.assertEqual(diff['before_header'], 'apiserver (before)')
        self.assertEqual(diff['after_header'], 'apiserver (would-renew)')
        self.assertIn('serial: 0a', diff['before'])
        self.assertIn('serial: (assigned when issued)', diff['after'])
        self.assertIn('sans: apiserver, 10.0.0.1', diff['after'])
        self.assertIn('notAfter: ', diff['after'])

    def test_all_options_are_passed(self):
        self.run_module(cert_renew, {
            'names': ['all'], 'cert_dir': '/srv/pki', 'kubeconfig_dir': '/srv', 'external_etcd': False,
            'within': '720h', 'key_algorithm': 'ecdsa-p256', 'validity': '4380h', 'backup_dir': '/srv/bk',
            'now': '2026-11-18T06:13:20Z', 'allow_expired_ca': True, 'allow_unrenewable': ['apiserver']})
        self.assertEqual(self.last_params(), {
            'names': ['all'], 'cert_dir': '/srv/pki', 'kubeconfig_dir': '/srv', 'external_etcd': False,
            'within': '720h', 'key_algorithm': 'ecdsa-p256', 'validity': '4380h', 'backup_dir': '/srv/bk',
            'now': '2026-11-18T06:13:20Z', 'allow_expired_ca': True, 'allow_unrenewable': ['apiserver'],
            'dry_run': False})

    def test_reconcile_sans_options_are_passed_and_need_config(self):
        self.run_module(cert_renew, {
            'names': ['apiserver'], 'config': '/etc/kubernetes/kubeadm.yaml', 'reconcile_sans': True,
            'exact': True})
        self.assertEqual(self.last_params(), {
            'names': ['apiserver'],
            'cert_dir': '/etc/kubernetes/pki', 'kubeconfig_dir': '/etc/kubernetes',
            'allow_expired_ca': False, 'config': '/etc/kubernetes/kubeadm.yaml',
            'reconcile_sans': True, 'exact': True, 'dry_run': False})
        failed, result = self.run_module(cert_renew, {'names': ['apiserver'], 'reconcile_sans': True})
        self.assertTrue(failed)
        self.assertIn('reconcile_sans is True but any of the following are missing: config, kubeconfig', result['msg'])
        # The ConfigMap source and the node's own facts (an HA host's variables).
        self.run_module(cert_renew, {
            'names': ['apiserver'], 'kubeconfig': '/etc/kubernetes/admin.conf', 'reconcile_sans': True,
            'node_name': 'cp-2', 'advertise_address': '10.0.0.2'})
        self.assertEqual(self.last_params(), {
            'names': ['apiserver'],
            'cert_dir': '/etc/kubernetes/pki', 'kubeconfig_dir': '/etc/kubernetes',
            'allow_expired_ca': False, 'kubeconfig': '/etc/kubernetes/admin.conf', 'node_name': 'cp-2',
            'advertise_address': '10.0.0.2', 'reconcile_sans': True, 'dry_run': False})
        failed, result = self.run_module(cert_renew, {
            'names': ['apiserver'], 'config': '/etc/kubernetes/kubeadm.yaml',
            'kubeconfig': '/etc/kubernetes/admin.conf'})
        self.assertTrue(failed)
        self.assertIn('mutually exclusive: config|kubeconfig', result['msg'])
        failed, result = self.run_module(cert_renew, {
            'names': ['apiserver'], 'config': '/etc/kubernetes/kubeadm.yaml', 'validity': '100h'})
        self.assertTrue(failed)
        self.assertIn('mutually exclusive: config|validity', result['msg'])

    def test_unknown_name_fails_with_rpc_error(self):
        failed, result = self.run_module(cert_renew, {'names': ['nope']})
        self.assertTrue(failed)
        self.assertEqual(result['rpc_error'], {'code': -31005, 'message': 'unknown certificate name',
                                               'data': {'cert': 'nope', 'path': None, 'cause': 'not in the inventory'}})

    def test_key_material_is_scrubbed(self):
        self.set_mode(mode='leak')
        failed, result = self.run_module(cert_renew, {'within': '30d'})
        self.assertFalse(failed)
        self.assertNotIn('PRIVATE KEY', repr(result))
        self.assertEqual(result['keyPem'], '<private key material removed by kubecert.pki>')

    def test_key_material_is_scrubbed_from_errors(self):
        self.set_mode(mode='leak', error='renew=-31003')
        failed, result = self.run_module(cert_renew, {})
        self.assertTrue(failed)
        self.assertNotIn('PRIVATE KEY', repr(result))


class CertRenewUnrenewableTest(ModuleCase):

    def test_named_certificate_not_renewed_is_a_warning(self):
        """names: [apiserver] with an external CA is not a silent success."""
        import os
        os.environ['FAKE_AGENT_PKI'] = 'external-ca'
        self.addCleanup(os.environ.pop, 'FAKE_AGENT_PKI', None)
        failed, result = self.run_module(cert_renew, {'names': ['apiserver']})
        self.assertFalse(failed)
        self.assertFalse(result['changed'])
        self.assertEqual(result['unrenewable'], ['apiserver'])
        self.assertEqual(self.warnings, [
            'apiserver is due and was not renewed: externally-managed (/etc/kubernetes/pki/ca.key is absent)'])

    def test_due_unrenewable_within_and_allowed(self):
        """The agent's unrenewable lists the due ones only; allow_unrenewable is passed on."""
        import os
        os.environ['FAKE_AGENT_PKI'] = 'external-ca'
        self.addCleanup(os.environ.pop, 'FAKE_AGENT_PKI', None)
        failed, result = self.run_module(cert_renew, {'within': '30d'})
        self.assertFalse(failed)
        self.assertEqual(result['unrenewable'], ['apiserver', 'etcd-server'])
        self.assertEqual(self.warnings, [
            'apiserver is due and was not renewed: externally-managed (/etc/kubernetes/pki/ca.key is absent)',
            'etcd-server is due and was not renewed: externally-managed (/etc/kubernetes/pki/ca.key is absent)'])
        failed, result = self.run_module(cert_renew, {'within': '30d', 'allow_unrenewable': ['apiserver']})
        self.assertFalse(failed)
        self.assertEqual(result['unrenewable'], ['etcd-server'])
        self.assertEqual(self.last_params()['allow_unrenewable'], ['apiserver'])
