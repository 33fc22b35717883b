"""Issue 12: the root agent serves the PKI it was started with. Each rule is tested from
another uid (setpriv) against a socket agent running as root: path params of non-root callers,
restore's backup rules, the audit line."""

import hashlib
import json
import os
import re
import shutil
import subprocess

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
NOBODY = 65534
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else "python3"

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root and setpriv")


def as_uid(workroot, sock, method, params=None, uid=NOBODY):
    """Calls the agent from `uid` (no groups); returns the JSON-RPC response."""
    client = os.path.join(workroot, "rpcclient.py")
    if not os.path.exists(client):
        shutil.copy(os.path.join(HERE, "rpcclient.py"), client)
        os.chmod(client, 0o644)
    argv = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
            PYTHON, client, sock, method]
    if params is not None:
        argv.append(json.dumps(params))
    r = subprocess.run(argv, capture_output=True, timeout=120)
    assert r.stdout, r.stderr
    return json.loads(r.stdout.decode())


def tree(d):
    """sha256 of every file under d (symlinks by target name, not followed)."""
    out = {}
    for base, dirs, files in os.walk(d):
        for f in files:
            p = os.path.join(base, f)
            if os.path.islink(p):
                out[os.path.relpath(p, d)] = "->" + os.readlink(p)
            else:
                with open(p, "rb") as fh:
                    out[os.path.relpath(p, d)] = hashlib.sha256(fh.read()).hexdigest()
    return out


def roots(pki):
    return ("--cert-dir", os.path.join(pki, "pki"), "--kubeconfig-dir", pki)


def error(resp, code):
    assert "error" in resp, resp
    assert resp["error"]["code"] == code, resp
    return resp["error"]


def own_dir(workroot, name):
    """A directory owned by nobody (what a write-tier caller can prepare)."""
    d = os.path.join(workroot, name)
    os.makedirs(d, exist_ok=True)
    os.chown(d, NOBODY, NOBODY)
    return d


def audit_lines(agent):
    return [l for l in agent.log().splitlines() if "kubecert::audit" in l]


def test_write_uid_may_not_choose_the_cert_dir(agent_factory, workroot, pki, demo_template):
    other = os.path.join(workroot, "other-pki")
    shutil.copytree(demo_template, other, dirs_exist_ok=True)
    a = agent_factory("--allow-write-uid", str(NOBODY), *roots(pki))
    os.chmod(a.sock, 0o666)
    before = (tree(pki), tree(other))
    e = error(as_uid(workroot, a.sock, "renew",
                     {"names": ["apiserver"], "cert_dir": os.path.join(other, "pki")}), -31010)
    assert e["data"]["param"] == "cert_dir"
    assert e["data"]["configured"] == os.path.join(pki, "pki")
    assert e["data"]["cause"] == (
        f"cert_dir: {other}/pki is not allowed for this caller: the agent serves {pki}/pki; "
        "omit cert_dir or pass that")
    assert (tree(pki), tree(other)) == before
    # The configured dir, spelled differently, is fine; absent paths mean the configured PKI.
    r = as_uid(workroot, a.sock, "renew",
               {"names": ["apiserver"], "cert_dir": f"{pki}/x/../pki/", "dry_run": True})
    assert r["result"]["certificates"][0]["action"] == "would-renew", r
    r = as_uid(workroot, a.sock, "renew", {"names": ["apiserver"]})
    backup = r["result"]["backupDir"]
    assert os.path.dirname(backup) == os.path.join(pki, "kubecert-backup"), r
    lines = audit_lines(a)
    assert any(re.search(rf"uid={NOBODY} pid=\d+ method=renew outcome=refused code=-31010 ", l)
               for l in lines), lines
    assert any(f"uid={NOBODY}" in l and "method=renew outcome=ok code=- dry_run=false "
               f"changed=apiserver backup_dir={backup}" in l for l in lines), lines


def test_issue_item_2a_own_kubeconfig_dir_gets_nothing_signed(agent_factory, workroot, pki,
                                                              demo_template):
    """A write-tier caller points kubeconfig_dir at its own dir holding an admin.conf it made,
    cert_dir at the real PKI: refused before anything is read or signed."""
    a = agent_factory("--allow-write-uid", str(NOBODY), *roots(pki))
    os.chmod(a.sock, 0o666)
    mine = own_dir(workroot, "nobody-kubeconfigs")
    shutil.copy(os.path.join(demo_template, "admin.conf"), os.path.join(mine, "admin.conf"))
    os.chown(os.path.join(mine, "admin.conf"), NOBODY, NOBODY)
    before = (tree(pki), tree(mine))
    e = error(as_uid(workroot, a.sock, "renew",
                     {"names": ["admin.conf"], "cert_dir": os.path.join(pki, "pki"),
                      "kubeconfig_dir": mine}), -31010)
    assert e["data"]["param"] == "kubeconfig_dir" and e["data"]["configured"] == pki
    assert (tree(pki), tree(mine)) == before


def test_issue_item_3_read_tier_symlinked_admin_conf_is_not_echoed(agent_factory, workroot, pki):
    """A read-tier caller points kubeconfig_dir at a dir where admin.conf is a symlink to a
    root-only file: refused, no byte of the file in the answer or the log."""
    a = agent_factory("--allow-uid", str(NOBODY), *roots(pki))
    os.chmod(a.sock, 0o666)
    secret = os.path.join(workroot, "root-only-secret")
    with open(secret, "w") as f:
        f.write("apiVersion: [\n-----BEGIN RSA PRIVATE KEY-----\nTOPSECRETLINE\n")
    os.chmod(secret, 0o600)
    mine = own_dir(workroot, "nobody-symlink")
    link = os.path.join(mine, "admin.conf")
    if not os.path.lexists(link):
        os.symlink(secret, link)
    r = as_uid(workroot, a.sock, "check", {"kubeconfig_dir": mine})
    e = error(r, -31010)
    assert e["data"]["param"] == "kubeconfig_dir"
    text = json.dumps(r) + a.log()
    assert "TOPSECRETLINE" not in text and "BEGIN RSA" not in text
    # Read calls are not audited; the refusal is still logged.
    assert not [l for l in audit_lines(a) if "method=check" in l]


def test_issue_item_1_caller_written_manifest_is_refused(agent_factory, workroot, pki):
    """A write-tier caller's own backup dir naming a passwd-like target and a root-only copy
    source: refused (outside the backup root), bytes unchanged; it cannot move the backup root
    to its dir either."""
    a = agent_factory("--allow-write-uid", str(NOBODY), *roots(pki))
    os.chmod(a.sock, 0o666)
    victim = os.path.join(workroot, "passwd-like")
    with open(victim, "w") as f:
        f.write("root:x:0:0:root:/root:/bin/bash\n")
    shadow = os.path.join(workroot, "shadow-like")
    with open(shadow, "w") as f:
        f.write("root:$6$secret:19000::::::\n")
    os.chmod(shadow, 0o600)
    mine = own_dir(workroot, "nobody-backup")
    payload = os.path.join(mine, "payload")
    with open(payload, "w") as f:
        f.write("evil::0:0::/:/bin/sh\n")
    stolen = os.path.join(mine, "stolen")
    with open(os.path.join(mine, "manifest.json"), "w") as f:
        json.dump({"created": "x", "entries": [{"target": victim, "copy": payload},
                                                {"target": stolen, "copy": shadow}]}, f)
    before = (tree(pki), tree(mine))
    with open(victim, "rb") as f:
        victim_before = f.read()
    e = error(as_uid(workroot, a.sock, "restore", {"backup_dir": mine}), -31011)
    assert e["data"]["cause"] == (
        f"backup {mine} refused: not a backup of this PKI: backups are read only from "
        f"directories directly under the backup root {pki}/kubecert-backup")
    e = error(as_uid(workroot, a.sock, "restore",
                     {"backup_dir": mine, "backup_root": workroot}), -31010)
    assert e["data"]["param"] == "backup_root"
    with open(victim, "rb") as f:
        assert f.read() == victim_before
    assert not os.path.exists(stolen)
    assert (tree(pki), tree(mine)) == before
    lines = audit_lines(a)
    assert any(f"uid={NOBODY}" in l and "method=restore outcome=refused code=-31011" in l
               for l in lines), lines


def test_write_uid_restores_a_real_backup(agent_factory, workroot, pki):
    a = agent_factory("--allow-write-uid", str(NOBODY), *roots(pki))
    os.chmod(a.sock, 0o666)
    before = tree(os.path.join(pki, "pki"))
    r = as_uid(workroot, a.sock, "renew", {"names": ["apiserver", "front-proxy-client"]})
    backup = r["result"]["backupDir"]
    assert tree(os.path.join(pki, "pki")) != before
    r = as_uid(workroot, a.sock, "restore", {"backup_dir": backup})
    assert r["result"]["changed"] is True, r
    assert tree(os.path.join(pki, "pki")) == before
    lines = audit_lines(a)
    assert any(f"uid={NOBODY}" in l and "method=restore outcome=ok" in l
               and f"/pki/apiserver.crt" in l for l in lines), lines


def test_root_caller_may_choose_paths(agent_factory, pki, demo_template, workroot):
    """Root (and the agent's own uid) keep choosing paths: the agent's roots are defaults."""
    a = agent_factory()  # roots: the kubeadm paths
    r = a.call("check", {"cert_dir": os.path.join(pki, "pki"), "kubeconfig_dir": pki})
    assert r["result"]["certificates"][0]["missing"] is False, r
