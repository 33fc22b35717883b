"""Fixtures of the agent tests: the kubecert binary, demo PKIs, agents on sockets, and the
key-material scanner every response and log goes through."""

import base64
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SCHEMA_DIR = os.path.join(ROOT, "schema")
sys.path.insert(0, HERE)

import rpcclient  # noqa: E402


def kubecert_bin():
    env = os.environ.get("KUBECERT_BIN")
    if env:
        return env
    b = os.path.join(ROOT, "target", "debug", "kubecert")
    if not os.path.exists(b):
        subprocess.run(["cargo", "build", "--quiet"], cwd=ROOT, check=True)
    return b


class KeyScanner:
    """Knows every private key under some roots; asserts a text carries none of them."""

    PEM = re.compile(rb"-----BEGIN ([A-Z ]*PRIVATE KEY)-----(.*?)-----END", re.S)
    KC = re.compile(rb"client-key-data:\s*(\S+)")

    def __init__(self, roots):
        self.roots = roots
        self.cache = {}

    @staticmethod
    def _frags(b64, step=61, size=24):
        b64 = b64.strip()
        out = {b64[i:i + size] for i in range(0, max(len(b64) - size, 1), step)}
        return {f for f in out if len(f) == size}

    def _file_frags(self, path):
        try:
            st = os.stat(path)
            if st.st_size > 4 * 1024 * 1024:
                return set()
            key = (path, st.st_mtime_ns, st.st_size)
            if key in self.cache:
                return self.cache[key]
            with open(path, "rb") as f:
                data = f.read()
        except OSError:
            return set()
        frags = set()
        for m in self.PEM.finditer(data):
            body = b"".join(m.group(2).split()).decode("ascii", "replace")
            frags |= self._frags(body)
        for m in self.KC.finditer(data):
            enc = m.group(1).decode("ascii", "replace")
            frags |= self._frags(enc)
            try:
                frags |= self._file_frags_from_bytes(base64.b64decode(enc))
            except ValueError:
                pass
        self.cache[key] = frags
        return frags

    def _file_frags_from_bytes(self, data):
        frags = set()
        for m in self.PEM.finditer(data):
            frags |= self._frags(b"".join(m.group(2).split()).decode("ascii", "replace"))
        return frags

    def fragments(self):
        frags = set()
        for root in self.roots:
            for d, _dirs, files in os.walk(root):
                for f in files:
                    frags |= self._file_frags(os.path.join(d, f))
        return frags

    def check(self, text, what="output"):
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        assert "PRIVATE KEY" not in text, f"{what} mentions PRIVATE KEY"
        for frag in self.fragments():
            assert frag not in text, f"{what} contains base64 of private key bytes ({frag})"


@pytest.fixture(scope="session")
def binary():
    return kubecert_bin()


@pytest.fixture(scope="session")
def workroot():
    # World-traversable, so that a client running as nobody reaches the sockets.
    d = tempfile.mkdtemp(prefix="kubecert-agent-", dir="/tmp")
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def keyscan(workroot):
    return KeyScanner([workroot])


@pytest.fixture(scope="session")
def demo_template(binary, workroot):
    d = os.path.join(workroot, "template")
    # Issued at the tests' fixed clock (NOW in the test files), so that calls with "now" see
    # CAs that are already valid (renew refuses a CA whose NotBefore is in the future).
    subprocess.run([binary, "demo-pki", d, "--now", "2026-12-01T00:00:00Z"], check=True,
                   stdout=subprocess.DEVNULL)
    return d


@pytest.fixture
def pki(demo_template, workroot):
    """A fresh copy of the demo PKI (kubeconfigs in it, certs in it/pki)."""
    d = tempfile.mkdtemp(prefix="pki-", dir=workroot)
    os.chmod(d, 0o755)
    shutil.copytree(demo_template, d, dirs_exist_ok=True, symlinks=True)
    return d


class Agent:
    def __init__(self, binary, sock, args, keyscan, logdir, env=None):
        self.sock = sock
        self.keyscan = keyscan
        self.log_path = tempfile.mkstemp(prefix="agent-", suffix=".log", dir=logdir)[1]
        self.log_file = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [binary, "-vv", "serve", "--socket", sock] + list(args),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self.log_file,
            env=env,
        )
        self.stopped = False

    def wait_ready(self, timeout=20):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"agent exited {self.proc.returncode}: {self.log()}")
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(self.sock)
                return self
            except OSError:
                time.sleep(0.05)
            finally:
                s.close()
        raise RuntimeError("agent did not come up: " + self.log())

    def call(self, method, params=None, rid=1):
        r = rpcclient.call_socket(self.sock, method, params, rid)
        self.keyscan.check(json.dumps(r), f"response of {method}")
        return r

    def post(self, body, content_type="application/json"):
        status, data = rpcclient.post_raw(self.sock, body, content_type)
        self.keyscan.check(data, "response")
        return status, data

    def log(self):
        """The agent's stderr, without terminal colour codes."""
        with open(self.log_path, "rb") as f:
            return re.sub(r"\x1b\[[0-9;]*m", "", f.read().decode("utf-8", "replace"))

    def stop(self, sig=signal.SIGTERM, timeout=60):
        if self.stopped:
            return self.proc.returncode
        self.stopped = True
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log_file.close()
        self.keyscan.check(self.log(), "agent log")
        out = self.proc.stdout.read().decode()
        assert out == "", f"socket agent wrote to stdout: {out!r}"
        return self.proc.returncode


@pytest.fixture
def agent_factory(binary, workroot, keyscan):
    agents = []

    def start(*args, sock=None, ready=True, env=None):
        if sock is None:
            d = tempfile.mkdtemp(prefix="run-", dir=workroot)
            os.chmod(d, 0o755)
            sock = os.path.join(d, "kubecert.sock")
        a = Agent(binary, sock, args, keyscan, workroot, env=env)
        agents.append(a)
        return a.wait_ready() if ready else a

    yield start
    for a in agents:
        a.stop()


@pytest.fixture
def agent(agent_factory):
    return agent_factory()


@pytest.fixture
def stdio_factory(binary, keyscan):
    clients = []

    def start(*args):
        c = rpcclient.StdioClient([binary, "-vv", "serve", "--stdio"] + list(args))
        clients.append(c)
        return c

    yield start
    for c in clients:
        if c.proc.poll() is None:
            code, out, err = c.close()
            keyscan.check(out, "stdio output")
            keyscan.check(err, "stdio log")
