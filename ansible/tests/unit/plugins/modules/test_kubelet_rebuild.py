# Copyright (c) kubecert contributors
# SPDX-License-Identifier: Apache-2.0

from ansible_collections.kubecert.pki.plugins.modules import kubelet_rebuild
from ansible_collections.kubecert.pki.tests.unit.plugins.modules.utils import ModuleCase


class KubeletRebuildTest(ModuleCase):

    def test_rebuild_calls_the_method_with_the_node_name(self):
        failed, result = self.run_module(kubelet_rebuild, {'node_name': 'cp1'})
        self.assertFalse(failed)
        self.assertTrue(result['changed'])
        self.assertEqual(result['action'], 'rebuilt')
        self.assertEqual(result['certificate']['subject'], 'O=system:nodes, CN=system:node:cp1')
        params = self.last_params()
        self.assertEqual(params['node_name'], 'cp1')
        self.assertIs(params['dry_run'], False)
        self.assertEqual(params['kubelet_pki'], '/var/lib/kubelet/pki')

    def test_check_mode_is_a_dry_run(self):
        failed, result = self.run_module(kubelet_rebuild, {'node_name': 'cp1'}, check_mode=True)
        self.assertFalse(failed)
        self.assertEqual(result['action'], 'would-rebuild')
        self.assertTrue(result['changed'])
        self.assertIs(self.last_params()['dry_run'], True)

    def test_a_refusal_fails_with_the_agents_error(self):
        failed, result = self.run_module(kubelet_rebuild, {'node_name': 'a/b'})
        self.assertTrue(failed)
        self.assertEqual(result['rpc_error']['code'], -32602)
        self.assertIn('invalid node name', result['msg'])
