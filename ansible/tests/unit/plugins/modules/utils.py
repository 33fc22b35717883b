# Copyright (c) kubecert contributors
# SPDX-License-Identifier: Apache-2.0
"""Run a kubecert.pki module's main() in-process against the fake agent."""

import contextlib
import json
import os
import shutil
import sys
import tempfile
import unittest
from unittest import mock

from ansible.module_utils import basic

FAKE_AGENT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'fake_agent.py')


class ModuleExit(Exception):
    """exit_json or fail_json was called; ``result`` holds its keyword arguments."""

    def __init__(self, failed, result):
        super(ModuleExit, self).__init__(result)
        self.failed = failed
        self.result = result


def _exit_json(self, **kwargs):
    raise ModuleExit(False, kwargs)


def _fail_json(self, msg, **kwargs):
    kwargs['msg'] = msg
    raise ModuleExit(True, kwargs)


@contextlib.contextmanager
def _module_args(args):
    try:
        from ansible.module_utils.testing import patch_module_args
    except ImportError:  # ansible-core < 2.19
        with mock.patch.object(basic, '_ANSIBLE_ARGS', json.dumps({'ANSIBLE_MODULE_ARGS': args}).encode('utf-8')):
            yield
        return
    with patch_module_args(args):
        yield


class ModuleCase(unittest.TestCase):
    """Each test gets a fake kubecert binary and a request log."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix='kubecert-mod-')
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.binary = os.path.join(self.tmp, 'kubecert')
        with open(self.binary, 'w') as handle:
            handle.write('#!/bin/sh\nexec "{0}" "{1}" "$@"\n'.format(sys.executable, FAKE_AGENT))
        os.chmod(self.binary, 0o755)
        self.log = os.path.join(self.tmp, 'requests.jsonl')
        patcher = mock.patch.dict(os.environ, {'FAKE_AGENT_LOG': self.log, 'FAKE_AGENT_MODE': '', 'FAKE_AGENT_ERROR': '',
                                               'FAKE_AGENT_SERVED': '', 'FAKE_AGENT_HEALTH': ''})
        patcher.start()
        self.addCleanup(patcher.stop)

    def set_mode(self, mode='', error=''):
        os.environ['FAKE_AGENT_MODE'] = mode
        os.environ['FAKE_AGENT_ERROR'] = error

    def run_module(self, module, args, check_mode=False, diff=False):
        """Run ``module.main()``; return (failed, result)."""
        args = dict(args)
        args.setdefault('kubecert_bin', self.binary)
        args.setdefault('socket', os.path.join(self.tmp, 'absent.sock'))
        args['_ansible_check_mode'] = check_mode
        args['_ansible_diff'] = diff
        self.warnings = []

        def warn(module_self, msg):
            self.warnings.append(msg)
        with _module_args(args):
            with mock.patch.multiple(basic.AnsibleModule, exit_json=_exit_json, fail_json=_fail_json, warn=warn):
                with self.assertRaises(ModuleExit) as ctx:
                    module.main()
        return ctx.exception.failed, ctx.exception.result

    def requests(self):
        if not os.path.exists(self.log):
            return []
        with open(self.log) as handle:
            return [json.loads(line) for line in handle]

    def last_params(self):
        return self.requests()[-1]['params']
