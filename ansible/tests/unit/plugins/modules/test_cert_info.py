# Copyright (c) kubecert contributors
# SPDX-License-Identifier: Apache-2.0

import os

from ansible_collections.kubecert.pki.plugins.modules import cert_info
from ansible_collections.kubecert.pki.tests.unit.plugins.modules.utils import ModuleCase


class CertInfoTest(ModuleCase):

    def test_returns_check_result_unchanged(self):
        failed, result = self.run_module(cert_info, {'fail_within': '30d', 'now': '2026-11-18T06:13:20Z'})
        self.assertFalse(failed)
        self.assertFalse(result['changed'])
        self.assertEqual(result['kind'], 'CertificateExpirationInfo')
        self.assertEqual(result['apiVersion'], 'output.kubeadm.k8s.io/v1alpha3')
        self.assertEqual(result['status']['level'], 'fail')
        self.assertIn('certificateAuthorities', result)
        self.assertIn('kubeletConf', result)
        self.assertEqual(self.requests()[0]['method'], 'check')
        self.assertEqual(self.last_params(), {
            'cert_dir': '/etc/kubernetes/pki', 'kubeconfig_dir': '/etc/kubernetes',
            'kubelet_pki': '/var/lib/kubelet/pki', 'now': '2026-11-18T06:13:20Z', 'fail_within': '30d'})

    def test_check_mode_still_reads(self):
        failed, result = self.run_module(cert_info, {'external_etcd': True}, check_mode=True)
        self.assertFalse(failed)
        self.assertFalse(result['changed'])
        self.assertIs(self.last_params()['external_etcd'], True)

    def test_rpc_error_maps_to_fail_json(self):
        self.set_mode(error='check=-31006')
        failed, result = self.run_module(cert_info, {})
        self.assertTrue(failed)
        self.assertIn('kubecert check failed', result['msg'])
        self.assertIn('-31006', result['msg'])
        self.assertEqual(result['rpc_error']['code'], -31006)
        self.assertEqual(result['rpc_error']['message'], 'forced error')
        self.assertEqual(result['rpc_error']['data']['cert'], 'apiserver')

    def test_unreachable_agent(self):
        failed, result = self.run_module(cert_info, {'transport': 'socket'})
        self.assertTrue(failed)
        self.assertIn('cannot connect', result['msg'])
        self.assertNotIn('rpc_error', result)


class CertInfoDriftTest(ModuleCase):

    def test_drift_passes_the_config_only_when_asked(self):
        failed, result = self.run_module(cert_info, {'drift': True, 'config': '/etc/kubernetes/kubeadm.yaml'})
        self.assertFalse(failed)
        params = self.last_params()
        self.assertIs(params['drift'], True)
        self.assertEqual(params['config'], '/etc/kubernetes/kubeadm.yaml')
        failed, result = self.run_module(cert_info, {})
        self.assertFalse(failed)
        self.assertNotIn('drift', self.last_params())
        self.assertNotIn('config', self.last_params())

    def test_drift_through_the_configmap_with_the_nodes_own_facts(self):
        failed, result = self.run_module(cert_info, {
            'drift': True, 'kubeconfig': '/etc/kubernetes/admin.conf', 'node_name': 'cp-2',
            'advertise_address': '10.0.0.2'})
        self.assertFalse(failed)
        params = self.last_params()
        self.assertEqual((params['drift'], params['kubeconfig'], params['node_name'], params['advertise_address'],
                          params['manifests_dir']),
                         (True, '/etc/kubernetes/admin.conf', 'cp-2', '10.0.0.2', '/etc/kubernetes/manifests'))
        self.assertNotIn('config', params)
        self.assertEqual(result['drift']['nodeName'], 'cp-2')
        failed, result = self.run_module(cert_info, {
            'drift': True, 'kubeconfig': '/etc/kubernetes/admin.conf', 'config': '/etc/kubernetes/kubeadm.yaml'})
        self.assertTrue(failed)
        self.assertIn('mutually exclusive: config|kubeconfig', result['msg'])

    def test_drift_without_config_fails_before_calling_the_agent(self):
        failed, result = self.run_module(cert_info, {'drift': True})
        self.assertTrue(failed)
        self.assertIn('config', result['msg'])
        self.assertEqual(self.requests(), [])


class CertInfoServedTest(ModuleCase):

    def test_served_passes_the_probe_options_and_returns_the_section(self):
        failed, result = self.run_module(cert_info, {
            'served': True, 'handshake_timeout': 0.5,
            'endpoints': [{'endpoint': 'kubelet', 'address': '127.0.0.1:10250'}]})
        self.assertFalse(failed)
        self.assertFalse(result['changed'])
        params = self.last_params()
        self.assertIs(params['served'], True)
        self.assertEqual(params['timeout_ms'], 500)
        self.assertEqual(params['manifests_dir'], '/etc/kubernetes/manifests')
        self.assertEqual(params['kubelet_config'], '/var/lib/kubelet/config.yaml')
        self.assertEqual(params['endpoints'], [{'endpoint': 'kubelet', 'address': '127.0.0.1:10250'}])
        self.assertEqual(result['served']['level'], 'ok')
        self.assertEqual([e['endpoint'] for e in result['served']['endpoints']][-1], 'kubelet')
        self.assertEqual(result['status']['level'], 'ok')

    def test_without_served_nothing_is_probed(self):
        failed, result = self.run_module(cert_info, {})
        self.assertFalse(failed)
        self.assertNotIn('served', result)
        for key in ('served', 'manifests_dir', 'kubelet_config', 'endpoints', 'timeout_ms'):
            self.assertNotIn(key, self.last_params())

    def test_a_stale_component_is_named_and_the_level_fails(self):
        os.environ['FAKE_AGENT_SERVED'] = 'stale:kubelet'
        failed, result = self.run_module(cert_info, {'served': True})
        self.assertFalse(failed, 'an info module reports; the playbook decides')
        self.assertEqual(result['status']['level'], 'fail')
        self.assertEqual(result['served']['staleComponents'], ['kubelet'])
        kubelet = [e for e in result['served']['endpoints'] if e['endpoint'] == 'kubelet'][0]
        self.assertEqual(kubelet['summary'],
                         u'stale: serving a certificate other than the one on disk \u2014 restart kubelet')
