"""Minimal kubecert agent client, Python standard library only.

Socket transport: JSON-RPC over HTTP/1.1 through ``http.client`` on an AF_UNIX socket.
Stdio transport: ``kubecert serve --stdio`` as a child process, one JSON line each way.

Also a tiny CLI (used by the tests to call the agent as another uid through setpriv):

    python3 rpcclient.py SOCKET METHOD [PARAMS_JSON]     -> prints the raw HTTP body
"""

import http.client
import json
import socket
import subprocess
import sys


class UnixHTTPConnection(http.client.HTTPConnection):
    """http.client over an AF_UNIX stream socket."""

    def __init__(self, path, timeout=120):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self.unix_path)
        self.sock = s


def post_raw(path, body, content_type="application/json", timeout=120):
    """POSTs raw bytes; returns (status, body bytes)."""
    conn = UnixHTTPConnection(path, timeout=timeout)
    try:
        if isinstance(body, str):
            body = body.encode()
        try:
            conn.request("POST", "/", body=body, headers={"Content-Type": content_type})
        except (BrokenPipeError, ConnectionResetError):
            # The server answered early (e.g. 413 for an oversized body) and closed its end:
            # its response is still there to read.
            pass
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def request(method, params=None, rid=1):
    msg = {"jsonrpc": "2.0", "id": rid, "method": method}
    if params is not None:
        msg["params"] = params
    return msg


def call_socket(path, method, params=None, rid=1, timeout=120):
    """One call over the socket; returns the decoded JSON-RPC response object."""
    status, body = post_raw(path, json.dumps(request(method, params, rid)), timeout=timeout)
    return json.loads(body.decode())


class StdioClient:
    """A ``kubecert serve --stdio`` child; one line in, one line out."""

    def __init__(self, argv, env=None):
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )

    def send_line(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.proc.stdin.write(data + b"\n")
        self.proc.stdin.flush()

    def recv_line(self):
        line = self.proc.stdout.readline()
        if not line:
            raise EOFError("agent closed stdout")
        return line.decode()

    def call(self, method, params=None, rid=1):
        self.send_line(json.dumps(request(method, params, rid)))
        return json.loads(self.recv_line())

    def close(self, timeout=60):
        """Closes stdin; returns (exit code, rest of stdout, stderr)."""
        out, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, out.decode(), err.decode()


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    params = json.loads(argv[3]) if len(argv) > 3 else None
    try:
        status, body = post_raw(argv[1], json.dumps(request(argv[2], params)))
    except OSError as e:
        print(json.dumps({"transport_error": e.__class__.__name__, "errno": e.errno}))
        return 1
    sys.stdout.write(body.decode())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
