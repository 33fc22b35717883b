# Copyright (c) kubecert contributors
# SPDX-License-Identifier: Apache-2.0
"""csr_export, csr_import, csr_approve and kubelet_conf against the fake agent."""

from ansible_collections.kubecert.pki.plugins.modules import csr_approve, csr_export, csr_import, kubelet_conf
from ansible_collections.kubecert.pki.tests.unit.plugins.modules.utils import ModuleCase


class CsrExportTest(ModuleCase):

    def test_export(self):
        failed, result = self.run_module(csr_export, {'csr_dir': '/root/csr', 'names': ['apiserver'],
                                                      'request_usages': True})
        self.assertFalse(failed)
        self.assertTrue(result['changed'])
        self.assertEqual(result['certificates'][0]['keyPath'], '/root/csr/apiserver.key')
        self.assertEqual(self.requests()[-1]['method'], 'csr-export')
        # csr-export has no dry_run in the contract: none is sent.
        self.assertEqual(self.last_params(), {
            'names': ['apiserver'], 'csr_dir': '/root/csr', 'cert_dir': '/etc/kubernetes/pki',
            'kubeconfig_dir': '/etc/kubernetes', 'reuse_key': False, 'force': False, 'request_usages': True})


class CsrImportTest(ModuleCase):

    def test_import_with_diff(self):
        failed, result = self.run_module(csr_import, {'csr_dir': '/root/csr'}, diff=True)
        self.assertFalse(failed)
        self.assertTrue(result['changed'])
        self.assertEqual(result['backupDir'], '/var/backups/kubecert/import')
        self.assertEqual(result['diff'][0]['after_header'], 'apiserver (installed)')
        self.assertIn('serial: 0c', result['diff'][0]['after'])
        self.assertIs(self.last_params()['dry_run'], False)

    def test_check_mode(self):
        failed, result = self.run_module(csr_import, {'csr_dir': '/root/csr'}, check_mode=True)
        self.assertFalse(failed)
        self.assertTrue(result['changed'])  # would change (the agent's dryRun semantics)
        self.assertIs(self.last_params()['dry_run'], True)

    def test_refused_certificate_fails(self):
        failed, result = self.run_module(csr_import, {'csr_dir': '/root/csr', 'names': ['apiserver', 'front-proxy-client']})
        self.assertTrue(failed)
        self.assertIn('front-proxy-client: not signed by front-proxy-ca', result['msg'])
        self.assertTrue(result['changed'])
        self.assertEqual(result['backupDir'], '/var/backups/kubecert/import')


class CsrApproveTest(ModuleCase):

    def test_approve(self):
        failed, result = self.run_module(csr_approve, {'all_pending': True, 'kubeconfig': '/etc/kubernetes/admin.conf'})
        self.assertFalse(failed)
        self.assertTrue(result['changed'])
        self.assertEqual(result['requests'][0]['decision'], 'approved')
        self.assertEqual(self.requests()[-1]['method'], 'approve')
        self.assertEqual(self.last_params()['all_pending'], True)
        self.assertEqual(self.last_params()['dry_run'], False)

    def test_check_mode(self):
        failed, result = self.run_module(csr_approve, {'names': ['csr-1']}, check_mode=True)
        self.assertFalse(failed)
        self.assertEqual(result['requests'][0]['decision'], 'would-approve')
        self.assertEqual(self.last_params()['names'], ['csr-1'])
        self.assertIs(self.last_params()['dry_run'], True)

    def test_kubelet_serving(self):
        failed, result = self.run_module(csr_approve, {'all_pending': True, 'kubelet_serving': True,
                                                       'issued_within': '10m'})
        self.assertFalse(failed, result)
        self.assertTrue(result['changed'])
        self.assertIs(self.last_params()['kubelet_serving'], True)
        self.assertEqual(self.last_params()['issued_within'], '10m')
        self.assertTrue(result['kubeletServing'])
        self.assertEqual(result['requests'][0]['node'], 'cp1')
        self.assertEqual(result['requests'][1]['decision'], 'denied')
        self.assertEqual(result['requests'][1]['findings'][0]['code'], 'san-not-of-node')

    def test_kubelet_serving_not_sent_unless_asked(self):
        failed, result = self.run_module(csr_approve, {'all_pending': True})
        self.assertFalse(failed, result)
        self.assertIs(self.last_params()['kubelet_serving'], False)
        self.assertNotIn('issued_within', self.last_params())
        self.assertNotIn('kubeletServing', result)

    def test_approved_not_issued_fails(self):
        failed, result = self.run_module(csr_approve, {'names': ['csr-stuck'], 'kubelet_serving': True})
        self.assertTrue(failed)
        self.assertEqual(result['msg'], 'approved but not issued: csr-stuck: CSR "csr-stuck" (node "cp1"): approved 7m ago '
                                        '(2026-12-01T18:00:00Z), no certificate issued within 5m')
        self.assertEqual(result['requests'][0]['findings'][0]['code'], 'approved-not-issued')
        self.assertFalse(result['changed'])

    def test_issued_within_needs_kubelet_serving(self):
        count = len(self.requests())
        failed, result = self.run_module(csr_approve, {'all_pending': True, 'issued_within': '10m'})
        self.assertTrue(failed)
        self.assertEqual(result['msg'], 'issued_within applies to kubelet_serving=true only')
        self.assertEqual(len(self.requests()), count)  # the agent was not called

    def test_names_and_all_pending_are_exclusive(self):
        failed, result = self.run_module(csr_approve, {'names': ['csr-1'], 'all_pending': True})
        self.assertTrue(failed)
        self.assertIn('mutually exclusive', result['msg'])


class KubeletConfTest(ModuleCase):

    def test_report_only(self):
        failed, result = self.run_module(kubelet_conf, {})
        self.assertFalse(failed)
        self.assertFalse(result['changed'])
        self.assertEqual(result['action'], 'none')
        self.assertEqual(result['mode'], 'file-reference')
        self.assertEqual(self.requests()[-1]['method'], 'kubelet-conf')

    def test_repair_in_check_mode(self):
        failed, result = self.run_module(kubelet_conf, {'repair': True}, check_mode=True)
        self.assertFalse(failed)
        self.assertTrue(result['changed'])
        self.assertEqual(result['action'], 'would-repair')
        self.assertEqual(self.last_params(), {'kubeconfig_dir': '/etc/kubernetes', 'cert_dir': '/etc/kubernetes/pki',
                                              'kubelet_pki': '/var/lib/kubelet/pki', 'repair': True, 'dry_run': True})
