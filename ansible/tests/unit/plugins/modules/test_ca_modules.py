# Copyright (c) kubecert contributors
# SPDX-License-Identifier: Apache-2.0
"""ca_renew, ca_export, ca_install and ca_rotate against the fake agent."""

import os

from ansible_collections.kubecert.pki.plugins.modules import ca_export, ca_install, ca_renew, ca_rotate
from ansible_collections.kubecert.pki.tests.unit.plugins import fake_agent
from ansible_collections.kubecert.pki.tests.unit.plugins.modules.utils import ModuleCase


class CaRenewTest(ModuleCase):

    def test_renews_and_passes_every_option(self):
        failed, result = self.run_module(ca_renew, {
            'cas': ['etcd-ca'], 'validity': '175200h', 'cert_dir': '/srv/pki', 'kubeconfig_dir': '/srv',
            'external_etcd': False, 'now': '2026-12-01T00:00:00Z', 'backup_dir': '/srv/bk'})
        self.assertFalse(failed)
        self.assertTrue(result['changed'])
        self.assertEqual(self.requests()[-1]['method'], 'ca-renew')
        self.assertEqual(self.last_params(), {
            'cas': ['etcd-ca'], 'validity': '175200h', 'cert_dir': '/srv/pki', 'kubeconfig_dir': '/srv',
            'external_etcd': False, 'now': '2026-12-01T00:00:00Z', 'backup_dir': '/srv/bk', 'dry_run': False})
        self.assertEqual([c['name'] for c in result['certificates']], ['etcd-ca'])
        self.assertEqual(result['certificates'][0]['action'], 'renewed')
        self.assertEqual(result['backupDir'], '/srv/bk/20261201T000000Z')
        self.assertNotIn('diff', result)

    def test_default_is_every_ca(self):
        failed, result = self.run_module(ca_renew, {})
        self.assertFalse(failed)
        self.assertEqual(self.last_params(), {'cas': [], 'cert_dir': '/etc/kubernetes/pki',
                                              'kubeconfig_dir': '/etc/kubernetes', 'dry_run': False})
        self.assertEqual([c['name'] for c in result['certificates']], ['ca', 'front-proxy-ca', 'etcd-ca'])

    def test_check_mode_is_a_dry_run_that_predicts_a_change_with_diff(self):
        # The agent's dry run reports changed=false (nothing written); the module predicts the change.
        failed, result = self.run_module(ca_renew, {'cas': ['ca']}, check_mode=True, diff=True)
        self.assertFalse(failed)
        self.assertIs(self.last_params()['dry_run'], True)
        self.assertTrue(result['changed'])
        self.assertEqual(result['certificates'][0]['action'], 'would-renew')
        self.assertIsNone(result['backupDir'])
        self.assertEqual(len(result['diff']), 1)
        diff = result['diff'][0]
        self.assertEqual(diff['before_header'], 'ca (before)')
        self.assertEqual(diff['after_header'], 'ca (would-renew)')
        self.assertIn('serial: 7b75f6e636f8edc2', diff['before'])
        self.assertIn('notAfter: 2036-11-28T00:00:00Z', diff['before'])
        self.assertIn('notAfter: 2046-11-26T00:00:00Z', diff['after'])
        self.assertIn('join hash: sha256:ccee', diff['after'])
        self.assertIn('kubeconfigs: /etc/kubernetes/admin.conf', diff['after'])

    def test_external_ca_fails_with_the_agents_error(self):
        self.set_mode(error='ca-renew=-31001')
        failed, result = self.run_module(ca_renew, {'cas': ['ca']})
        self.assertTrue(failed)
        self.assertEqual(result['rpc_error']['code'], -31001)
        self.assertIn('kubecert ca-renew failed: forced error (JSON-RPC error -31001, CA key missing', result['msg'])


class CaExportTest(ModuleCase):

    def test_exports_the_certificate_never_a_key(self):
        failed, result = self.run_module(ca_export, {'ca': 'etcd-ca', 'cert_dir': '/srv/pki'})
        self.assertFalse(failed)
        self.assertFalse(result['changed'])
        self.assertEqual(self.requests()[-1]['method'], 'ca-export')
        self.assertEqual(self.last_params(), {'ca': 'etcd-ca', 'cert_dir': '/srv/pki', 'kubeconfig_dir': '/etc/kubernetes'})
        self.assertTrue(result['pem'].startswith('-----BEGIN CERTIFICATE-----\n'))
        self.assertNotIn('PRIVATE KEY', repr(result))
        self.assertEqual(result['spkiSha256'], fake_agent.CA_FIXTURES['etcd-ca']['spki'])

    def test_a_key_in_the_answer_is_scrubbed(self):
        self.set_mode(mode='leak')
        failed, result = self.run_module(ca_export, {'ca': 'ca'})
        self.assertFalse(failed)
        self.assertNotIn('PRIVATE KEY', repr(result))

    def test_ca_is_required_and_checked(self):
        failed, result = self.run_module(ca_export, {})
        self.assertTrue(failed)
        self.assertIn('ca', result['msg'])
        failed, result = self.run_module(ca_export, {'ca': 'sa'})
        self.assertTrue(failed)
        self.assertIn('value of ca must be one of: ca, front-proxy-ca, etcd-ca', result['msg'])
        self.assertEqual(self.requests(), [])


class CaInstallTest(ModuleCase):

    PEM = fake_agent.renewed_pem('ca')

    def test_installs(self):
        failed, result = self.run_module(ca_install, {'ca': 'ca', 'pem': self.PEM, 'now': '2026-12-01T00:00:00Z'})
        self.assertFalse(failed)
        self.assertTrue(result['changed'])
        self.assertEqual([r['method'] for r in self.requests()], ['ca-export', 'ca-install'])
        self.assertEqual(self.last_params(), {'ca': 'ca', 'pem': self.PEM, 'cert_dir': '/etc/kubernetes/pki',
                                              'kubeconfig_dir': '/etc/kubernetes', 'now': '2026-12-01T00:00:00Z',
                                              'dry_run': False})
        self.assertEqual(result['certificates'][0]['action'], 'installed')
        self.assertTrue(result['backupDir'])

    def test_same_bytes_already_installed_is_not_changed(self):
        os.environ['FAKE_AGENT_CA_SERIAL'] = 'renewed'
        self.addCleanup(os.environ.pop, 'FAKE_AGENT_CA_SERIAL', None)
        # Another PEM encoding of the same certificate (no trailing newline, CRLF) is the same certificate.
        failed, result = self.run_module(ca_install, {'ca': 'ca', 'pem': self.PEM.replace('\n', '\r\n').strip()})
        self.assertFalse(failed)
        self.assertFalse(result['changed'])
        self.assertEqual([r['method'] for r in self.requests()], ['ca-export'])
        self.assertEqual(result['certificates'], [])
        self.assertEqual(result['written'], [])
        self.assertIsNone(result['backupDir'])

    def test_check_mode_with_diff(self):
        failed, result = self.run_module(ca_install, {'ca': 'ca', 'pem': self.PEM}, check_mode=True, diff=True)
        self.assertFalse(failed)
        self.assertTrue(result['changed'])
        self.assertIs(self.last_params()['dry_run'], True)
        self.assertEqual(result['certificates'][0]['action'], 'would-install')
        self.assertEqual(result['diff'][0]['after_header'], 'ca (would-install)')

    def test_refused_certificate_fails(self):
        self.set_mode(error='ca-install=-31003')
        failed, result = self.run_module(ca_install, {'ca': 'ca', 'pem': self.PEM})
        self.assertTrue(failed)
        self.assertEqual(result['rpc_error']['code'], -31003)

    def test_a_private_key_is_refused_before_any_call(self):
        failed, result = self.run_module(ca_install, {'ca': 'ca', 'pem': self.PEM + fake_agent.PEM_KEY})
        self.assertTrue(failed)
        self.assertEqual(result['msg'], 'pem holds a private key; ca_install takes the CA certificate only')
        self.assertEqual(self.requests(), [])


class CaRotateTest(ModuleCase):

    def setUp(self):
        super(CaRotateTest, self).setUp()
        self.phase_file = os.path.join(self.tmp, 'phase')
        os.environ['FAKE_AGENT_CA_PHASE_FILE'] = self.phase_file
        self.addCleanup(os.environ.pop, 'FAKE_AGENT_CA_PHASE_FILE', None)

    def test_stage_passes_every_option(self):
        failed, result = self.run_module(ca_rotate, {
            'ca': 'etcd-ca', 'phase': 'stage', 'validity': '87600h', 'kubeconfig': '/etc/kubernetes/admin.conf',
            'now': '2026-12-01T00:00:00Z', 'backup_dir': '/srv/bk', 'cert_dir': '/srv/pki', 'kubeconfig_dir': '/srv',
            'external_etcd': False})
        self.assertFalse(failed, result)
        self.assertTrue(result['changed'])
        self.assertEqual(self.requests()[-1]['method'], 'ca-rotate')
        self.assertEqual(self.last_params(), {
            'ca': 'etcd-ca', 'phase': 'stage', 'rollback': False, 'validity': '87600h',
            'kubeconfig': '/etc/kubernetes/admin.conf', 'now': '2026-12-01T00:00:00Z', 'backup_dir': '/srv/bk',
            'cert_dir': '/srv/pki', 'kubeconfig_dir': '/srv', 'external_etcd': False, 'dry_run': False})
        self.assertEqual(result['phaseBefore'], 'none')
        self.assertEqual(result['phaseAfter'], 'staged')
        self.assertEqual(result['componentsToRestart'], ['etcd', 'kube-apiserver'])
        self.assertEqual(result['checklist'], ['restart workloads that hold the old etcd-ca'])
        self.assertEqual(self.warnings, ['etcd-ca stage on this node, to do by hand: restart workloads that hold the old etcd-ca'])

    def test_phases_in_order_then_nothing_to_do(self):
        for phase, after in (('stage', 'staged'), ('promote', 'promoted'), ('distrust', 'distrusted')):
            failed, result = self.run_module(ca_rotate, {'ca': 'etcd-ca', 'phase': phase})
            self.assertFalse(failed, result)
            self.assertTrue(result['changed'])
            self.assertEqual(result['phaseAfter'], after)
        # distrust again: the rotation is complete, nothing changes.
        failed, result = self.run_module(ca_rotate, {'ca': 'etcd-ca', 'phase': 'distrust'})
        self.assertFalse(failed, result)
        self.assertFalse(result['changed'])
        self.assertEqual(result['changes'], [])

    def test_phase_out_of_order_fails_with_the_agents_error(self):
        failed, result = self.run_module(ca_rotate, {'ca': 'etcd-ca', 'phase': 'promote'})
        self.assertTrue(failed)
        self.assertEqual(result['rpc_error']['code'], -31003)
        self.assertIn('promote needs phase staged, the files say none', result['msg'])

    def test_check_mode_is_a_dry_run_with_diff(self):
        failed, result = self.run_module(ca_rotate, {'ca': 'ca', 'phase': 'stage'}, check_mode=True, diff=True)
        self.assertFalse(failed, result)
        self.assertTrue(result['changed'])
        self.assertTrue(result['dryRun'])
        self.assertIs(self.last_params()['dry_run'], True)
        self.assertFalse(os.path.exists(self.phase_file))
        diff = result['diff']
        self.assertEqual(diff['before_header'], 'ca rotation (before)')
        self.assertEqual(diff['after_header'], 'ca rotation (would stage)')
        self.assertEqual(diff['before'], 'phase: none\n')
        self.assertIn('phase: staged\n', diff['after'])
        self.assertIn('/etc/kubernetes/pki/ca.crt: would-write (trust bundle old+new)', diff['after'])

    def test_rollback(self):
        self.run_module(ca_rotate, {'ca': 'etcd-ca', 'phase': 'stage'})
        failed, result = self.run_module(ca_rotate, {'ca': 'etcd-ca', 'phase': 'stage', 'rollback': True})
        self.assertFalse(failed, result)
        self.assertIs(self.last_params()['rollback'], True)
        self.assertEqual((result['phaseBefore'], result['phaseAfter']), ('staged', 'none'))

    def test_bad_phase_is_refused_before_any_call(self):
        failed, result = self.run_module(ca_rotate, {'ca': 'etcd-ca', 'phase': 'swap'})
        self.assertTrue(failed)
        self.assertIn('value of phase must be one of: stage, promote, distrust', result['msg'])
        self.assertEqual(self.requests(), [])
