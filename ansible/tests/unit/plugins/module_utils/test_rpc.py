# Copyright (c) kubecert contributors
# SPDX-License-Identifier: Apache-2.0
"""The JSON-RPC client against the fake agent, over both transports."""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest

from ansible_collections.kubecert.pki.plugins.module_utils.rpc import (
    KubecertClient,
    RpcError,
    TransportError,
)

FAKE_AGENT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'fake_agent.py')


def make_fake_binary(directory):
    """An executable that runs the fake agent, standing in for the kubecert binary."""
    path = os.path.join(directory, 'kubecert')
    with open(path, 'w') as handle:
        handle.write('#!/bin/sh\nexec "{0}" "{1}" "$@"\n'.format(sys.executable, FAKE_AGENT))
    os.chmod(path, 0o755)
    return path


class FakeAgentCase(unittest.TestCase):
    """Gives each test a temp dir, a fake binary, a request log and a clean environment."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix='kubecert-rpc-')
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.binary = make_fake_binary(self.tmp)
        self.log = os.path.join(self.tmp, 'requests.jsonl')
        self.env = {}
        self.set_env(FAKE_AGENT_LOG=self.log, FAKE_AGENT_MODE='', FAKE_AGENT_ERROR='')
        # Short path: AF_UNIX paths are limited to about 100 bytes.
        self.sock = os.path.join(self.tmp, 's.sock')

    def set_env(self, **values):
        for key, value in values.items():
            if key not in self.env:
                self.env[key] = os.environ.get(key)
            os.environ[key] = value
        self.addCleanup(self._restore_env)

    def _restore_env(self):
        for key, value in self.env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self.env = {}

    def requests(self):
        if not os.path.exists(self.log):
            return []
        with open(self.log) as handle:
            return [json.loads(line) for line in handle]

    def start_socket_agent(self):
        proc = subprocess.Popen([sys.executable, FAKE_AGENT, 'serve', '--socket', self.sock],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def stop():
            proc.terminate()
            proc.wait(10)
        self.addCleanup(stop)
        # The socket file appears at bind(), before listen(): wait until it accepts.
        deadline = time.monotonic() + 20
        while True:
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                probe.connect(self.sock)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    self.fail('fake agent did not start listening on its socket')
                time.sleep(0.02)
            finally:
                probe.close()
        return proc

    def client(self, **kwargs):
        kwargs.setdefault('socket_path', self.sock)
        kwargs.setdefault('kubecert_bin', self.binary)
        kwargs.setdefault('timeout', 20)
        client = KubecertClient(**kwargs)
        self.addCleanup(client.close)
        return client


class StdioTest(FakeAgentCase):

    def test_check_result_and_named_params(self):
        client = self.client(transport='stdio')
        result = client.call('check', {'cert_dir': '/srv/pki', 'now': None, 'fail_within': '30d'})
        self.assertEqual(client.used_transport, 'stdio')
        self.assertEqual(result['kind'], 'CertificateExpirationInfo')
        self.assertEqual(result['status']['level'], 'fail')
        request = self.requests()[0]
        self.assertEqual(request['jsonrpc'], '2.0')
        self.assertEqual(request['method'], 'check')
        # None means "agent default": it is left out, not sent as null.
        self.assertEqual(request['params'], {'cert_dir': '/srv/pki', 'fail_within': '30d'})

    def test_one_process_many_calls_with_increasing_ids(self):
        client = self.client(transport='stdio')
        client.call('version')
        client.call('renew', {'within': '30d', 'dry_run': True})
        proc = client._transport.proc
        ids = [request['id'] for request in self.requests()]
        self.assertEqual(ids, [1, 2])
        client.close()
        # Closing stdin ends the agent cleanly (exit 0 at EOF).
        self.assertEqual(proc.returncode, 0)

    def test_rpc_error_keeps_code_message_and_data(self):
        client = self.client(transport='stdio')
        with self.assertRaises(RpcError) as ctx:
            client.call('renew', {'names': ['nope']})
        error = ctx.exception
        self.assertEqual(error.code, -31005)
        self.assertEqual(error.to_dict(), {'code': -31005, 'message': 'unknown certificate name',
                                           'data': {'cert': 'nope', 'path': None, 'cause': 'not in the inventory'}})
        self.assertIn('unknown certificate name', str(error))
        self.assertIn('cert: nope', str(error))

    def test_method_not_found(self):
        with self.assertRaises(RpcError) as ctx:
            self.client(transport='stdio').call('no-such-method')
        self.assertEqual(ctx.exception.code, -32601)

    def test_forced_server_error_names_the_code(self):
        self.set_env(FAKE_AGENT_ERROR='renew=-31002')
        with self.assertRaises(RpcError) as ctx:
            self.client(transport='stdio').call('renew')
        self.assertEqual(ctx.exception.code, -31002)
        self.assertIn('PKI locked by another kubecert run', str(ctx.exception))

    def test_garbage_answer(self):
        self.set_env(FAKE_AGENT_MODE='garbage')
        with self.assertRaisesRegex(TransportError, 'not JSON'):
            self.client(transport='stdio').call('version')

    def test_wrong_id(self):
        self.set_env(FAKE_AGENT_MODE='wrong-id')
        with self.assertRaisesRegex(TransportError, 'expected 1'):
            self.client(transport='stdio').call('version')

    def test_agent_exits_without_answer_reports_stderr(self):
        self.set_env(FAKE_AGENT_MODE='exit')
        with self.assertRaises(TransportError) as ctx:
            self.client(transport='stdio').call('version')
        self.assertIn('exited with status 3', str(ctx.exception))
        self.assertIn('exiting on purpose', str(ctx.exception))

    def test_timeout(self):
        self.set_env(FAKE_AGENT_MODE='hang')
        client = self.client(transport='stdio', timeout=1)
        started = time.monotonic()
        with self.assertRaisesRegex(TransportError, 'no response within 1s'):
            client.call('version')
        self.assertLess(time.monotonic() - started, 10)
        proc = client._transport.proc
        client.close()
        self.assertIsNotNone(proc.returncode)

    def test_missing_binary(self):
        client = self.client(transport='stdio', kubecert_bin=os.path.join(self.tmp, 'absent'))
        with self.assertRaisesRegex(TransportError, 'cannot run'):
            client.call('version')

    def test_context_manager_closes(self):
        with KubecertClient(kubecert_bin=self.binary, transport='stdio', timeout=20) as client:
            client.call('version')
            proc = client._transport.proc
        self.assertEqual(proc.returncode, 0)

    def test_bad_transport(self):
        with self.assertRaises(ValueError):
            KubecertClient(transport='carrier-pigeon')


class SocketTest(FakeAgentCase):

    def test_auto_uses_the_socket(self):
        self.start_socket_agent()
        client = self.client()
        result = client.call('renew', {'within': '30d', 'dry_run': True})
        self.assertEqual(client.used_transport, 'socket')
        self.assertTrue(result['dryRun'])
        self.assertEqual(result['componentsToRestart'], ['etcd', 'kube-apiserver'])
        # Keep-alive: a second call on the same client works too.
        self.assertEqual(client.call('version')['version'], '0.0.0-fake')
        self.assertEqual([r['id'] for r in self.requests()], [1, 2])
        self.assertEqual(self.requests()[0]['params'], {'within': '30d', 'dry_run': True})

    def test_rpc_error_over_socket(self):
        self.start_socket_agent()
        with self.assertRaises(RpcError) as ctx:
            self.client(transport='socket').call('renew', {'names': ['nope']})
        self.assertEqual(ctx.exception.code, -31005)
        self.assertEqual(ctx.exception.data['cert'], 'nope')

    def test_http_error_without_json_body(self):
        self.set_env(FAKE_AGENT_MODE='http500')
        self.start_socket_agent()
        with self.assertRaisesRegex(TransportError, 'HTTP 500'):
            self.client(transport='socket').call('version')

    def test_socket_only_fails_when_absent(self):
        with self.assertRaisesRegex(TransportError, 'cannot connect'):
            self.client(transport='socket').call('version')
        self.assertEqual(self.requests(), [])

    def test_auto_without_socket_spawns_binary(self):
        client = self.client()
        client.call('version')
        self.assertEqual(client.used_transport, 'stdio')
        self.assertEqual(client.notes, [])

    def test_auto_with_stale_socket_falls_back(self):
        stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        stale.bind(self.sock)  # bound, never listening: connect() is refused
        self.addCleanup(stale.close)
        client = self.client()
        client.call('version')
        self.assertEqual(client.used_transport, 'stdio')
        self.assertEqual(len(client.notes), 1)
        self.assertIn('spawned', client.notes[0])


if __name__ == '__main__':
    unittest.main()
