# Copyright (c) kubecert contributors
# SPDX-License-Identifier: Apache-2.0
"""kubecert.pki.restart, health and served against the fake agent."""

import os

from ansible_collections.kubecert.pki.plugins.modules import health, restart, served
from ansible_collections.kubecert.pki.tests.unit.plugins.modules.utils import ModuleCase


class RestartTest(ModuleCase):

    def test_restart_maps_options_to_params(self):
        failed, result = self.run_module(restart, {
            'components': ['kube-apiserver', 'etcd'], 'method': 'crictl', 'crictl': '/usr/bin/crictl',
            'health_timeout': 20, 'stop_timeout': 1.5, 'poll_interval': 0.5, 'served_timeout': 2,
            'endpoints': [{'endpoint': 'etcd-client', 'address': '10.0.0.1:2379'}]})
        self.assertFalse(failed, result)
        self.assertTrue(result['changed'])
        self.assertTrue(result['ok'])
        self.assertEqual(self.requests()[-1]['method'], 'restart')
        self.assertEqual(self.last_params(), {
            'components': ['kube-apiserver', 'etcd'], 'method': 'crictl', 'crictl': '/usr/bin/crictl',
            'cert_dir': '/etc/kubernetes/pki', 'manifests_dir': '/etc/kubernetes/manifests',
            'endpoints': [{'endpoint': 'etcd-client', 'address': '10.0.0.1:2379'}],
            'served': True, 'served_require_reachable': True, 'served_not_required': [], 'dry_run': False,
            'health_timeout_ms': 20000, 'stop_timeout_ms': 1500, 'poll_interval_ms': 500, 'served_timeout_ms': 2000})
        self.assertEqual([r['component'] for r in result['restarts']], ['etcd', 'kube-apiserver'])
        self.assertEqual(result['restarts'][0]['served'][0]['verdict'], 'current')

    def test_check_mode_is_a_dry_run(self):
        failed, result = self.run_module(restart, {'components': ['etcd']}, check_mode=True)
        self.assertFalse(failed, result)
        self.assertTrue(result['changed'])
        self.assertTrue(result['dryRun'])
        self.assertEqual(result['restarts'], [])
        self.assertIs(self.last_params()['dry_run'], True)

    def test_stale_served_certificate_fails_with_the_result(self):
        os.environ['FAKE_AGENT_SERVED'] = 'stale:etcd'
        failed, result = self.run_module(restart, {'components': ['etcd', 'kube-apiserver']})
        self.assertTrue(failed)
        self.assertEqual(result['msg'], 'kubecert restart failed at served:etcd: etcd still serves serial 0a after its restart')
        self.assertFalse(result['ok'])
        self.assertEqual(result['failedStage'], 'served:etcd')
        self.assertEqual(len(result['restarts']), 1)  # the sequence stopped at etcd

    def test_fail_on_error_false_returns_the_failure(self):
        os.environ['FAKE_AGENT_SERVED'] = 'stale:etcd'
        failed, result = self.run_module(restart, {'components': ['etcd'], 'fail_on_error': False})
        self.assertFalse(failed)
        self.assertFalse(result['ok'])
        self.assertEqual(result['failedStage'], 'served:etcd')

    def test_no_components_asks_nothing(self):
        failed, result = self.run_module(restart, {'components': []})
        self.assertFalse(failed)
        self.assertFalse(result['changed'])
        self.assertTrue(result['ok'])
        self.assertEqual(self.requests(), [])

    def test_command_needs_restart_command(self):
        failed, result = self.run_module(restart, {'components': ['etcd'], 'method': 'command'})
        self.assertTrue(failed)
        self.assertIn('restart_command', result['msg'])
        self.assertEqual(self.requests(), [])

    def test_unknown_component_is_refused(self):
        failed, result = self.run_module(restart, {'components': ['kubelet']})
        self.assertTrue(failed)
        self.assertIn('kubelet', result['msg'])
        self.assertEqual(self.requests(), [])

    def test_agent_error_fails(self):
        self.set_mode(error='restart=-32602')
        failed, result = self.run_module(restart, {'components': ['etcd']})
        self.assertTrue(failed)
        self.assertEqual(result['rpc_error']['code'], -32602)


class HealthTest(ModuleCase):

    def test_healthy(self):
        failed, result = self.run_module(health, {'health_timeout': 20, 'interval': 2})
        self.assertFalse(failed, result)
        self.assertFalse(result['changed'])
        self.assertTrue(result['healthy'])
        self.assertEqual(self.last_params(), {'components': [], 'cert_dir': '/etc/kubernetes/pki',
                                              'manifests_dir': '/etc/kubernetes/manifests', 'endpoints': [],
                                              'timeout_ms': 20000, 'interval_ms': 2000})
        self.assertIn('etcd healthy (3/3 members healthy, quorum ok)', result['msg'])

    def test_unhealthy_fails_once_within_the_bound(self):
        os.environ['FAKE_AGENT_HEALTH'] = 'unhealthy'
        failed, result = self.run_module(health, {'health_timeout': 20, 'components': ['etcd']})
        self.assertTrue(failed)
        self.assertEqual(result['msg'], 'not healthy after 20000 ms (3 polls): etcd UNHEALTHY (1/3 members healthy, quorum LOST)')
        self.assertEqual(len(self.requests()), 1)  # one call, no retries around it

    def test_unhealthy_without_failing(self):
        os.environ['FAKE_AGENT_HEALTH'] = 'unhealthy'
        failed, result = self.run_module(health, {'fail_on_unhealthy': False}, check_mode=True)
        self.assertFalse(failed)
        self.assertFalse(result['healthy'])
        self.assertTrue(result['msg'].startswith('not healthy after 30000 ms (3 polls): etcd UNHEALTHY'), result['msg'])


class ServedTest(ModuleCase):

    def test_current(self):
        failed, result = self.run_module(served, {'components': ['etcd'], 'handshake_timeout': 2,
                                                  'now': '2026-12-01T00:00:00Z'})
        self.assertFalse(failed, result)
        self.assertFalse(result['changed'])
        self.assertEqual(result['level'], 'ok')
        self.assertEqual(self.last_params()['timeout_ms'], 2000)
        self.assertEqual(self.last_params()['now'], '2026-12-01T00:00:00Z')
        self.assertEqual([e['verdict'] for e in result['endpoints']], ['current', 'current'])

    def test_stale_fails(self):
        os.environ['FAKE_AGENT_SERVED'] = 'stale:kube-apiserver'
        failed, result = self.run_module(served, {})
        self.assertTrue(failed)
        self.assertEqual(result['staleComponents'], ['kube-apiserver'])
        self.assertIn('kube-apiserver 10.0.0.1:6443 serves serial 0a (stale)', result['msg'])

    def test_fail_on_never_reports(self):
        os.environ['FAKE_AGENT_SERVED'] = 'stale:etcd'
        failed, result = self.run_module(served, {'fail_on': 'never'})
        self.assertFalse(failed)
        self.assertEqual(result['level'], 'fail')
