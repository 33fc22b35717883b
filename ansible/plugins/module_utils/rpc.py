# Copyright (c) kubecert contributors
# SPDX-License-Identifier: Apache-2.0
"""JSON-RPC 2.0 client for the kubecert agent (Python standard library only).

The contract lives in ``docs/rpc.md`` of the kubecert repository. Two transports:

1. The agent's unix socket (``kubecert serve --socket``, default
   ``/run/kubecert/kubecert.sock``): JSON-RPC over HTTP/1.1, one ``POST /`` with
   ``Content-Type: application/json`` per call, spoken through ``http.client``
   over an ``AF_UNIX`` socket.
2. A child process ``kubecert serve --stdio``: newline-delimited JSON, one
   request per line on its stdin, one response line read back from its stdout,
   logs on its stderr. Closing its stdin ends it (the agent exits 0 at EOF).

With ``transport='auto'`` the socket is used when it exists and accepts the
connection; otherwise the binary is spawned. The fallback happens only before a
request was sent, so a mutating call is never sent twice.

This file imports nothing from Ansible so it can be unit-tested (and reused)
on its own; the Ansible glue lives in ``kubecert.py`` next to it.
"""

import errno
import http.client
import json
import os
import select
import socket
import stat
import subprocess
import tempfile
import time

DEFAULT_SOCKET = '/run/kubecert/kubecert.sock'
DEFAULT_BIN = 'kubecert'
DEFAULT_TIMEOUT = 120
TRANSPORTS = ('auto', 'socket', 'stdio')

# Standard JSON-RPC codes and kubecert's own (docs/rpc.md "Errors"): those are in
# -31001..-31099, outside the -32768..-32000 band JSON-RPC reserves (jsonrpsee, the
# agent's JSON-RPC library, emits codes of its own in -32000..-32011).
ERROR_NAMES = {
    -32700: 'parse error',
    -32600: 'invalid request',
    -32601: 'method not found',
    -32602: 'invalid params',
    -32603: 'internal error',
    -31001: 'CA key missing (externally managed)',
    -31002: 'PKI locked by another kubecert run',
    -31003: 'validation failed',
    -31004: 'not authorized',
    -31005: 'unknown certificate name',
    -31006: 'PKI or file error',
    -31007: 'CA expired',
    -31008: 'request too large',
    -31009: 'Kubernetes API error',
    -31010: 'path not allowed for this caller',
    -31011: 'backup refused',
    -31012: 'kubecert store corrupt',
    -31013: 'runtime failure',
}

# Connection errors after which 'auto' may still fall back to stdio: nothing
# was sent, the socket is just stale or unreachable.
_FALLBACK_ERRNOS = (errno.ENOENT, errno.ECONNREFUSED, errno.ENOTSOCK, errno.EACCES, errno.EPERM)

# How much of the agent's stderr is kept for error messages.
_STDERR_TAIL = 4000


class RpcError(Exception):
    """The agent answered with a JSON-RPC error object."""

    def __init__(self, method, code, message, data=None):
        self.method = method
        self.code = code
        self.message = message
        self.data = data
        super(RpcError, self).__init__(self.describe())

    def describe(self):
        name = ERROR_NAMES.get(self.code)
        text = 'kubecert {0} failed: {1} (JSON-RPC error {2}{3})'.format(
            self.method, self.message, self.code, ', ' + name if name else '')
        if isinstance(self.data, dict):
            details = []
            for key in ('cert', 'path', 'pid', 'cause'):
                if self.data.get(key) not in (None, ''):
                    details.append('{0}: {1}'.format(key, self.data[key]))
            if details:
                text += ' [' + '; '.join(details) + ']'
        return text

    def to_dict(self):
        return {'code': self.code, 'message': self.message, 'data': self.data}


class TransportError(Exception):
    """The agent could not be reached, or its answer was not JSON-RPC."""


class _UnixHTTPConnection(http.client.HTTPConnection):
    """``http.client`` over an AF_UNIX stream socket."""

    def __init__(self, path, timeout):
        # The host only fills the Host header; the socket path is what counts.
        super(_UnixHTTPConnection, self).__init__('localhost', timeout=timeout)
        self.unix_path = path

    def connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            sock.connect(self.unix_path)
        except Exception:
            sock.close()
            raise
        self.sock = sock


class _SocketTransport(object):
    name = 'socket'

    def __init__(self, path, timeout):
        self.path = path
        self.timeout = timeout
        self.conn = None

    def open(self):
        """Connect now, so that 'auto' can still fall back if this fails."""
        self.conn = _UnixHTTPConnection(self.path, self.timeout)
        self.conn.connect()

    def exchange(self, payload):
        try:
            if self.conn is None:
                # A later call after the agent closed the connection.
                self.open()
            self.conn.request('POST', '/', body=payload, headers={
                'Content-Type': 'application/json',
                'Accept': 'application/json',
            })
            response = self.conn.getresponse()
            body = response.read()
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            raise TransportError('kubecert agent at {0}: {1}'.format(self.path, exc))
        if response.getheader('Connection', '').lower() == 'close':
            self.close()
        # Some JSON-RPC servers answer errors with a non-2xx status and a
        # JSON-RPC body: the body decides; the status only explains a non-JSON one.
        if not body.strip():
            raise TransportError('kubecert agent at {0}: HTTP {1} {2} with an empty body'.format(
                self.path, response.status, response.reason))
        if response.status >= 300:
            try:
                json.loads(body.decode('utf-8'))
            except ValueError:
                raise TransportError('kubecert agent at {0}: HTTP {1} {2}: {3}'.format(
                    self.path, response.status, response.reason, body[:500].decode('utf-8', 'replace')))
        return body.decode('utf-8')

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def describe(self):
        return 'socket {0}'.format(self.path)


class _StdioTransport(object):
    name = 'stdio'

    def __init__(self, binary, timeout):
        self.binary = binary
        self.timeout = timeout
        self.proc = None
        self.stderr = None
        self.buffer = b''

    def open(self):
        # stderr goes to a file: a chatty agent must never block on a full pipe.
        self.stderr = tempfile.TemporaryFile()
        try:
            self.proc = subprocess.Popen(
                [self.binary, 'serve', '--stdio'],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr,
                close_fds=True)
        except OSError as exc:
            self.stderr.close()
            self.stderr = None
            raise TransportError('cannot run {0} serve --stdio: {1}'.format(self.binary, exc))

    def exchange(self, payload):
        if self.proc is None:
            self.open()
        try:
            self.proc.stdin.write(payload.encode('utf-8') + b'\n')
            self.proc.stdin.flush()
        except OSError as exc:
            raise TransportError('{0} serve --stdio stopped reading ({1}){2}'.format(
                self.binary, exc, self._stderr_suffix()))
        # One request, one response line; blank lines carry nothing.
        line = b''
        while not line.strip():
            line = self._read_line()
        return line.decode('utf-8')

    def _read_line(self):
        deadline = time.monotonic() + self.timeout
        fd = self.proc.stdout.fileno()
        while b'\n' not in self.buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TransportError('{0} serve --stdio sent no response within {1}s{2}'.format(
                    self.binary, self.timeout, self._stderr_suffix()))
            ready, dummy, dummy = select.select([fd], [], [], remaining)
            if not ready:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                # stdout closed: the agent is exiting; give it a moment so its status can be told.
                try:
                    code = self.proc.wait(timeout=2)
                except subprocess.TimeoutExpired:
                    code = None
                raise TransportError('{0} serve --stdio exited{1} before answering{2}'.format(
                    self.binary, '' if code is None else ' with status {0}'.format(code),
                    self._stderr_suffix()))
            self.buffer += chunk
        line, dummy, self.buffer = self.buffer.partition(b'\n')
        return line

    def stderr_text(self):
        if self.stderr is None:
            return ''
        try:
            self.stderr.flush()
            self.stderr.seek(0, os.SEEK_END)
            size = self.stderr.tell()
            self.stderr.seek(max(0, size - _STDERR_TAIL))
            return self.stderr.read().decode('utf-8', 'replace').strip()
        except (OSError, ValueError):
            return ''

    def _stderr_suffix(self):
        text = self.stderr_text()
        return '; stderr: ' + text if text else ''

    def close(self):
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        try:
            proc.stdin.close()
        except OSError:
            pass
        try:
            proc.wait(timeout=min(self.timeout, 30))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        if self.stderr is not None:
            self.stderr.close()
            self.stderr = None

    def describe(self):
        return '{0} serve --stdio'.format(self.binary)


def _is_socket(path):
    try:
        return stat.S_ISSOCK(os.stat(path).st_mode)
    except OSError:
        return False


class KubecertClient(object):
    """A JSON-RPC 2.0 client for the kubecert agent.

    Use it as a context manager, or call ``close()``: a spawned
    ``kubecert serve --stdio`` is ended by closing its stdin.
    """

    def __init__(self, socket_path=DEFAULT_SOCKET, kubecert_bin=DEFAULT_BIN,
                 transport='auto', timeout=DEFAULT_TIMEOUT):
        if transport not in TRANSPORTS:
            raise ValueError('transport must be one of {0}'.format(', '.join(TRANSPORTS)))
        self.socket_path = socket_path or DEFAULT_SOCKET
        self.kubecert_bin = kubecert_bin or DEFAULT_BIN
        self.transport = transport
        self.timeout = timeout
        self._transport = None
        self._next_id = 1
        self.notes = []

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def _open(self):
        if self._transport is not None:
            return self._transport
        if self.transport == 'socket' or (self.transport == 'auto' and _is_socket(self.socket_path)):
            transport = _SocketTransport(self.socket_path, self.timeout)
            try:
                transport.open()
            except OSError as exc:
                transport.close()
                if self.transport == 'socket' or exc.errno not in _FALLBACK_ERRNOS:
                    raise TransportError('cannot connect to the kubecert agent at {0}: {1}'.format(
                        self.socket_path, exc))
                self.notes.append('socket {0} unusable ({1}); spawned {2} serve --stdio instead'.format(
                    self.socket_path, exc, self.kubecert_bin))
                transport = _StdioTransport(self.kubecert_bin, self.timeout)
        else:
            transport = _StdioTransport(self.kubecert_bin, self.timeout)
        self._transport = transport
        return transport

    @property
    def used_transport(self):
        """'socket' or 'stdio' once a call was made, else None."""
        return self._transport.name if self._transport is not None else None

    def describe(self):
        return self._transport.describe() if self._transport is not None else 'not connected'

    def stderr_text(self):
        """The tail of a spawned agent's stderr (its logs), '' for the socket."""
        if isinstance(self._transport, _StdioTransport):
            return self._transport.stderr_text()
        return ''

    def call(self, method, params=None):
        """Call ``method`` with named ``params``; return its result.

        ``None`` values are left out of ``params`` so the agent applies its own
        defaults. Raises ``RpcError`` for a JSON-RPC error and
        ``TransportError`` when there is no valid answer.
        """
        params = dict((k, v) for k, v in (params or {}).items() if v is not None)
        request_id = self._next_id
        self._next_id += 1
        payload = json.dumps({'jsonrpc': '2.0', 'id': request_id, 'method': method, 'params': params},
                             separators=(',', ':'))
        transport = self._open()
        raw = transport.exchange(payload)
        try:
            response = json.loads(raw)
        except ValueError:
            raise TransportError('{0} answered {1} with something that is not JSON: {2!r}'.format(
                transport.describe(), method, raw[:500]))
        if not isinstance(response, dict) or response.get('jsonrpc') != '2.0':
            raise TransportError('{0} answered {1} with something that is not a JSON-RPC 2.0 response: {2!r}'.format(
                transport.describe(), method, raw[:500]))
        if response.get('id') != request_id and not ('error' in response and response.get('id') is None):
            raise TransportError('{0} answered {1} with id {2!r}, expected {3}'.format(
                transport.describe(), method, response.get('id'), request_id))
        if 'error' in response:
            error = response['error'] if isinstance(response['error'], dict) else {}
            raise RpcError(method, error.get('code'), error.get('message', 'unknown error'), error.get('data'))
        if 'result' not in response:
            raise TransportError('{0} answered {1} with neither result nor error'.format(
                transport.describe(), method))
        return response['result']

    def close(self):
        if self._transport is not None:
            self._transport.close()
            self._transport = None
