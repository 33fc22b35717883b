# Copyright (c) kubecert contributors
# SPDX-License-Identifier: Apache-2.0

import os

from ansible.module_utils import basic
from ansible_collections.kubecert.pki.plugins.modules import kubelet_conf
from ansible_collections.kubecert.pki.tests.unit.plugins.modules.utils import ModuleCase


class KubeletConfTest(ModuleCase):

    def test_result_has_no_top_level_path(self):
        """A top-level ``path`` makes Ansible add file attributes and overwrite ``mode``."""
        with open(os.path.join(self.tmp, 'kubelet.conf'), 'w') as handle:
            handle.write('apiVersion: v1\n')
        os.chmod(os.path.join(self.tmp, 'kubelet.conf'), 0o600)
        failed, result = self.run_module(kubelet_conf, {'kubeconfig_dir': self.tmp})
        self.assertFalse(failed)
        self.assertNotIn('path', result)
        self.assertEqual(result['kubeletConfPath'], os.path.join(self.tmp, 'kubelet.conf'))
        # What AnsibleModule.exit_json does with the result before printing it.
        module = basic.AnsibleModule.__new__(basic.AnsibleModule)
        module.check_mode = False
        shown = module.add_path_info(dict(result))
        self.assertEqual(shown['mode'], 'file-reference')
        self.assertNotIn('uid', shown)
        self.assertNotIn('owner', shown)

    def test_repair_in_check_mode_is_a_dry_run(self):
        failed, result = self.run_module(kubelet_conf, {'repair': True}, check_mode=True)
        self.assertFalse(failed)
        self.assertTrue(result['changed'])
        self.assertEqual(result['action'], 'would-repair')
        self.assertIs(self.last_params()['dry_run'], True)
