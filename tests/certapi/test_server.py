"""Tests for the certapi test server, driven by the real kubectl.

Run:  python3 -m unittest tests/certapi/test_server.py -v
Needs: python3 (stdlib), openssl, kubectl (skipped when kubectl is missing).
"""

import base64
import http.client
import json
import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SERVER = os.path.join(HERE, "server.py")
MKENV = os.path.join(HERE, "mkenv.sh")
KUBECTL = shutil.which("kubectl")
CLIENT_SIGNER = "kubernetes.io/kube-apiserver-client"
SEED_NODE = {
    "apiVersion": "v1", "kind": "Node",
    "metadata": {"name": "seed-node-1", "labels": {"node-role.kubernetes.io/control-plane": ""}},
    "status": {
        "addresses": [{"type": "InternalIP", "address": "10.0.0.11"},
                      {"type": "ExternalIP", "address": "203.0.113.11"},
                      {"type": "Hostname", "address": "seed-node-1"},
                      {"type": "InternalDNS", "address": "seed-node-1.cluster.internal"},
                      {"type": "ExternalDNS", "address": "seed-node-1.example.com"}],
        "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
        "nodeInfo": {"kubeletVersion": "v1.32.4", "osImage": "Debian GNU/Linux 12 (bookworm)",
                     "kernelVersion": "6.1.0-28-amd64", "containerRuntimeVersion": "containerd://1.7.24"},
    },
}

CLUSTER_INFO = {
    "apiVersion": "v1", "kind": "ConfigMap",
    "metadata": {"name": "cluster-info", "namespace": "kube-public"},
    "data": {"kubeconfig": "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: QUFB\n"
                           "    server: https://10.0.0.1:6443\n  name: \"\"\ncontexts: null\n"
                           "current-context: \"\"\nkind: Config\nusers: null\n",
             "jws-kubeconfig-abcdef": "eyJhbGciOiJIUzI1NiIsImtpZCI6ImFiY2RlZiJ9..sig"},
}


def read_file(path):
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        return ""


def run(cmd, check=True, input=None, env=None, timeout=60):
    r = subprocess.run(cmd, capture_output=True, text=True, input=input, env=env, timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError("%s failed (%d):\nstdout: %s\nstderr: %s" % (cmd, r.returncode, r.stdout, r.stderr))
    return r


@unittest.skipUnless(KUBECTL, "kubectl not installed")
class CertAPIServerTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="certapi-test-")
        cls.env_dir = os.path.join(cls.tmp, "pki")
        run([MKENV, cls.env_dir])
        cls.port_file = os.path.join(cls.tmp, "port")
        cls.log_path = os.path.join(cls.tmp, "server.log")
        cls.log = open(cls.log_path, "w")
        d = cls.env_dir
        cls.token_file = os.path.join(cls.tmp, "tokens.csv")
        with open(cls.token_file, "w") as f:
            f.write('s3cr3t-token,token-user,uid-42,"grp1,grp2"\n')
        cls.seed_file = os.path.join(cls.tmp, "seed.json")
        with open(cls.seed_file, "w") as f:
            json.dump({"apiVersion": "v1", "kind": "List", "items": [SEED_NODE]}, f)
        cls.cm_file = os.path.join(cls.tmp, "cluster-info.json")
        with open(cls.cm_file, "w") as f:
            json.dump(CLUSTER_INFO, f)
        cls.proc = subprocess.Popen(
            [sys.executable, SERVER, "--listen", "127.0.0.1:0",
             "--tls-cert", os.path.join(d, "server.crt"), "--tls-key", os.path.join(d, "server.key"),
             "--client-ca", os.path.join(d, "ca.crt"),
             "--cluster-signing-cert", os.path.join(d, "ca.crt"), "--cluster-signing-key", os.path.join(d, "ca.key"),
             "--token-file", cls.token_file, "--seed", cls.seed_file, "--configmap", cls.cm_file,
             "--port-file", cls.port_file, "--bookmark-interval", "1"],
            stdout=cls.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 20
        while not read_file(cls.port_file).strip():
            if cls.proc.poll() is not None or time.time() > deadline:
                raise RuntimeError("server did not start:\n" + read_file(cls.log_path))
            time.sleep(0.05)
        cls.port = int(read_file(cls.port_file))
        run([MKENV, "--server", "https://127.0.0.1:%d" % cls.port, cls.env_dir])
        cls.kenv = dict(os.environ, HOME=cls.tmp, KUBECACHEDIR=os.path.join(cls.tmp, "kubecache"))
        cls.kenv.pop("KUBECONFIG", None)
        cls.admin = os.path.join(d, "admin.conf")
        cls.user = os.path.join(d, "user.conf")
        cls.counter = 0

    @classmethod
    def tearDownClass(cls):
        try:
            if cls.proc.poll() is None:
                cls.proc.send_signal(signal.SIGTERM)
                try:
                    rc = cls.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    cls.proc.kill()
                    cls.proc.wait()
                    raise AssertionError("server did not exit on SIGTERM")
                assert rc == 0, "server exited with %d on SIGTERM" % rc
        finally:
            cls.log.close()
            if os.environ.get("CERTAPI_KEEP"):
                print("kept", cls.tmp, file=sys.stderr)
            else:
                shutil.rmtree(cls.tmp, ignore_errors=True)

    # -- ConfigMap cluster-info ---------------------------------------------
    def test_configmap_get_replace_conflict(self):
        cm = json.loads(self.kubectl("get", "cm", "cluster-info", "-n", "kube-public", "-o", "json").stdout)
        self.assertEqual(cm["data"], CLUSTER_INFO["data"])
        rv = cm["metadata"]["resourceVersion"]
        self.assertTrue(rv)
        ca = self.kubectl("get", "cm", "cluster-info", "-n", "kube-public", "-o",
                          "jsonpath={.data.kubeconfig}").stdout
        self.assertIn("certificate-authority-data: QUFB", ca)
        # replace (PUT) with the current resourceVersion: accepted, a new resourceVersion
        cm["data"]["kubeconfig"] = cm["data"]["kubeconfig"].replace("QUFB", "QkJC")
        r = self.kubectl("replace", "--validate=false", "-o", "json", "-f", "-", input=json.dumps(cm))
        new = json.loads(r.stdout)
        self.assertNotEqual(new["metadata"]["resourceVersion"], rv)
        self.assertIn("QkJC", new["data"]["kubeconfig"])
        self.assertEqual(new["data"]["jws-kubeconfig-abcdef"], CLUSTER_INFO["data"]["jws-kubeconfig-abcdef"])
        # the stale one: 409 Conflict, nothing changed
        cm["data"]["kubeconfig"] = "stale"
        r = self.kubectl("replace", "--validate=false", "-f", "-", input=json.dumps(cm), check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn('Operation cannot be fulfilled on configmaps "cluster-info": the object has been modified',
                      r.stderr)
        now = json.loads(self.kubectl("get", "cm", "cluster-info", "-n", "kube-public", "-o", "json").stdout)
        self.assertEqual(now["metadata"]["resourceVersion"], new["metadata"]["resourceVersion"])
        self.assertIn("QkJC", now["data"]["kubeconfig"])
        # merge patch keeps the other keys
        self.kubectl("patch", "cm", "cluster-info", "-n", "kube-public", "--type", "merge",
                     "-p", json.dumps({"data": {"kubeconfig": "patched"}}))
        now = json.loads(self.kubectl("get", "cm", "cluster-info", "-n", "kube-public", "-o", "json").stdout)
        self.assertEqual(now["data"]["kubeconfig"], "patched")
        self.assertIn("jws-kubeconfig-abcdef", now["data"])
        # unknown ConfigMap: 404; a non-admin user: 403
        r = self.kubectl("get", "cm", "nope", "-n", "kube-public", check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn('NotFound', r.stderr)
        r = self.kubectl("get", "cm", "cluster-info", "-n", "kube-public", kubeconfig=self.user, check=False)
        self.assertIn('cannot get resource "configmaps"', r.stderr)

    # -- helpers -------------------------------------------------------------
    def kubectl(self, *args, kubeconfig=None, check=True, input=None, timeout=60):
        return run([KUBECTL, "--kubeconfig", kubeconfig or self.admin] + list(args), check=check, input=input,
                   env=self.kenv, timeout=timeout)

    def unique(self, prefix):
        type(self).counter += 1
        return "%s-%d" % (prefix, type(self).counter)

    def make_csr(self, subj="/O=devs/CN=bob", key_type="rsa"):
        """Returns (csr_pem_bytes, key_path)."""
        key = os.path.join(self.tmp, self.unique("key") + ".pem")
        if key_type == "rsa":
            newkey = ["-newkey", "rsa:2048"]
        else:
            newkey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]
        r = subprocess.run(["openssl", "req", "-new"] + newkey + ["-nodes", "-keyout", key, "-subj", subj],
                           capture_output=True, check=True)
        return r.stdout, key

    def csr_manifest(self, name=None, request=None, signer=CLIENT_SIGNER, usages=("client auth",),
                     expiration=None, generate_name=None, extra_spec=None, subj="/O=devs/CN=bob"):
        if request is None:
            request, _ = self.make_csr(subj)
        meta = {"generateName": generate_name} if generate_name else {"name": name}
        spec = {"request": base64.b64encode(request).decode(), "usages": list(usages)}
        if signer is not None:
            spec["signerName"] = signer
        if expiration is not None:
            spec["expirationSeconds"] = expiration
        spec.update(extra_spec or {})
        return {"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
                "metadata": meta, "spec": spec}

    def create(self, manifest, *extra, kubeconfig=None, check=True):
        path = os.path.join(self.tmp, self.unique("csr") + ".yaml")
        with open(path, "w") as f:
            json.dump(manifest, f)  # JSON is valid YAML
        return self.kubectl("create", "-f", path, *extra, kubeconfig=kubeconfig, check=check)

    def get_json(self, name):
        return json.loads(self.kubectl("get", "csr", name, "-o", "json").stdout)

    def wait_condition(self, name, text, timeout=15):
        deadline = time.time() + timeout
        last = ""
        while time.time() < deadline:
            last = self.kubectl("get", "csr", name, "--no-headers").stdout
            if last.split()[-1] == text:
                return last
            time.sleep(0.2)
        self.fail("CSR %s never reached %s; last: %s" % (name, text, last))

    def https(self, method, path, body=None, headers=None, cert="admin", timeout=30):
        ctx = ssl.create_default_context(cafile=os.path.join(self.env_dir, "ca.crt"))
        if cert:
            ctx.load_cert_chain(os.path.join(self.env_dir, cert + ".crt"), os.path.join(self.env_dir, cert + ".key"))
        conn = http.client.HTTPSConnection("127.0.0.1", self.port, context=ctx, timeout=timeout)
        h = {"Accept": "application/json"}
        h.update(headers or {})
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        conn.request(method, path, body=body, headers=h)
        resp = conn.getresponse()
        data = resp.read()
        conn.close()
        try:
            doc = json.loads(data)
        except ValueError:
            doc = data
        return resp.status, doc, resp

    def sign_externally(self, csr_pem, days=1):
        d = self.env_dir
        r = subprocess.run(["openssl", "x509", "-req", "-CA", os.path.join(d, "ca.crt"),
                            "-CAkey", os.path.join(d, "ca.key"), "-set_serial", "4660", "-days", str(days)],
                           input=csr_pem, capture_output=True, check=True)
        return r.stdout

    # -- discovery / authn ---------------------------------------------------
    def test_discovery(self):
        out = self.kubectl("api-resources", "--api-group=certificates.k8s.io").stdout
        self.assertRegex(out, r"certificatesigningrequests\s+csr\s+certificates.k8s.io/v1\s+false\s+CertificateSigningRequest")
        code, doc, _ = self.https("GET", "/apis/certificates.k8s.io/v1")
        self.assertEqual(code, 200)
        names = {r["name"]: r for r in doc["resources"]}
        self.assertEqual(set(names), {"certificatesigningrequests", "certificatesigningrequests/approval",
                                      "certificatesigningrequests/status"})
        self.assertEqual(names["certificatesigningrequests"]["shortNames"], ["csr"])
        self.assertFalse(names["certificatesigningrequests"]["namespaced"])
        # aggregated-discovery Accept falls back to the legacy documents
        code, doc, resp = self.https("GET", "/apis", headers={
            "Accept": "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"})
        self.assertEqual((code, doc["kind"], resp.getheader("Content-Type")), (200, "APIGroupList", "application/json"))
        out = self.kubectl("version", "-o", "json").stdout
        self.assertEqual(json.loads(out)["serverVersion"]["gitVersion"], "v1.32.4")

    # -- Node objects (core/v1) ---------------------------------------------
    def test_nodes_discovery_and_seed(self):
        out = self.kubectl("api-resources", "--api-group=").stdout
        self.assertRegex(out, r"nodes\s+no\s+v1\s+false\s+Node")
        # kubectl get nodes: the Table of the real apiserver (printNode)
        out = self.kubectl("get", "nodes").stdout
        lines = out.splitlines()
        self.assertRegex(lines[0], r"^NAME\s+STATUS\s+ROLES\s+AGE\s+VERSION$")
        self.assertRegex(out, r"(?m)^seed-node-1\s+Ready\s+control-plane\s+\S+\s+v1.32.4$")
        wide = self.kubectl("get", "nodes", "-o", "wide").stdout
        self.assertRegex(wide.splitlines()[0], r"INTERNAL-IP\s+EXTERNAL-IP\s+OS-IMAGE\s+KERNEL-VERSION\s+CONTAINER-RUNTIME")
        self.assertRegex(wide, r"seed-node-1\s+Ready.*10\.0\.0\.11\s+203\.0\.113\.11\s+Debian GNU/Linux 12 \(bookworm\)")
        node = json.loads(self.kubectl("get", "node", "seed-node-1", "-o", "json").stdout)
        self.assertEqual((node["kind"], node["apiVersion"], node["metadata"]["name"]), ("Node", "v1", "seed-node-1"))
        self.assertEqual(node["status"]["addresses"], SEED_NODE["status"]["addresses"])
        self.assertTrue(node["metadata"]["uid"] and node["metadata"]["resourceVersion"])
        addrs = self.kubectl("get", "node", "seed-node-1", "-o",
                             "jsonpath={.status.addresses[?(@.type==\"InternalIP\")].address}").stdout
        self.assertEqual(addrs, "10.0.0.11")
        r = self.kubectl("get", "node", "no-such-node", check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn('nodes "no-such-node" not found', r.stderr)

    def test_nodes_create_delete_validate(self):
        name = self.unique("node")
        node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
                "status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.12"},
                                         {"type": "Hostname", "address": name}]}}
        path = os.path.join(self.tmp, name + ".json")
        with open(path, "w") as f:
            json.dump(node, f)
        out = self.kubectl("create", "-f", path).stdout
        self.assertEqual(out.strip(), "node/%s created" % name)
        r = self.kubectl("create", "-f", path, check=False)
        self.assertIn('nodes "%s" already exists' % name, r.stderr)
        # no Ready condition: STATUS Unknown, no role, no version (printNode)
        out = self.kubectl("get", "nodes", name, "--no-headers").stdout
        self.assertRegex(out, r"^%s\s+Unknown\s+<none>\s+\S+\s*$" % name)
        got = json.loads(self.kubectl("get", "node", name, "-o", "json").stdout)
        self.assertEqual(got["status"]["addresses"], node["status"]["addresses"])
        # list as JSON
        lst = json.loads(self.kubectl("get", "nodes", "-o", "json").stdout)
        self.assertIn(name, [n["metadata"]["name"] for n in lst["items"]])
        # validation: address type and duplicates (ValidateNode)
        bad = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name + "-BAD"},
               "status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.1"},
                                        {"type": "InternalIP", "address": "10.0.0.1"}]}}
        code, doc, _ = self.https("POST", "/api/v1/nodes", body=bad)
        self.assertEqual(code, 422, doc)
        self.assertEqual(doc["reason"], "Invalid")
        self.assertIn('Node "%s-BAD" is invalid: [' % name, doc["message"])
        self.assertIn("metadata.name: Invalid value: \"%s-BAD\": a lowercase RFC 1123 subdomain" % name, doc["message"])
        self.assertIn('status.addresses[1]: Duplicate value: core.NodeAddress{Type:"InternalIP", Address:"10.0.0.1"}',
                      doc["message"])
        code, doc, _ = self.https("GET", "/api/v1/nodes/" + name + "-BAD")
        self.assertEqual((code, doc["reason"]), (404, "NotFound"))
        # an unprivileged user may not create or read nodes (RBAC wording, core group "")
        r = self.kubectl("get", "nodes", kubeconfig=self.user, check=False)
        self.assertIn('nodes is forbidden: User "developer" cannot list resource "nodes" in API group "" at the cluster scope',
                      r.stderr)
        out = self.kubectl("delete", "node", name).stdout
        self.assertEqual(out.strip(), 'node "%s" deleted' % name)
        code, _, _ = self.https("GET", "/api/v1/nodes/" + name)
        self.assertEqual(code, 404)

    def test_unauthenticated_is_401(self):
        code, doc, _ = self.https("GET", "/apis/certificates.k8s.io/v1/certificatesigningrequests", cert=None)
        self.assertEqual(code, 401)
        self.assertEqual((doc["kind"], doc["reason"], doc["code"], doc["message"]),
                         ("Status", "Unauthorized", 401, "Unauthorized"))
        code, doc, _ = self.https("GET", "/version", cert=None, headers={"Authorization": "Bearer nope"})
        self.assertEqual(code, 401)

    def test_expired_client_cert_is_401(self):
        r = self.kubectl("get", "csr", kubeconfig=os.path.join(self.env_dir, "expired-admin.conf"), check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("You must be logged in to the server (Unauthorized)", r.stderr)

    def test_bearer_token(self):
        code, doc, _ = self.https("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews", cert=None,
                                  body={"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
                                  headers={"Authorization": "Bearer s3cr3t-token"})
        self.assertEqual(code, 201, doc)
        self.assertEqual(doc["status"]["userInfo"], {"username": "token-user", "uid": "uid-42",
                                                     "groups": ["grp1", "grp2", "system:authenticated"]})
        name = self.unique("bytoken")
        code, doc, _ = self.https("POST", "/apis/certificates.k8s.io/v1/certificatesigningrequests", cert=None,
                                  body=self.csr_manifest(name), headers={"Authorization": "Bearer s3cr3t-token"})
        self.assertEqual(code, 201, doc)
        self.assertEqual((doc["spec"]["username"], doc["spec"]["uid"], doc["spec"]["groups"]),
                         ("token-user", "uid-42", ["grp1", "grp2", "system:authenticated"]))
        self.assertNotIn("extra", doc["spec"])

    def test_whoami(self):
        out = self.kubectl("auth", "whoami", "-o", "json", kubeconfig=self.user).stdout
        info = json.loads(out)["status"]["userInfo"]
        self.assertEqual(info["username"], "developer")
        self.assertEqual(info["groups"], ["developers", "system:authenticated"])

    # -- the main flow ---------------------------------------------------------
    def test_create_list_approve_issue(self):
        name = self.unique("bob")
        csr_pem, key = self.make_csr("/O=devs/O=ops/CN=bob")
        r = self.create(self.csr_manifest(name, csr_pem, expiration=3600), "--validate=false")
        self.assertEqual(r.stdout.strip(), "certificatesigningrequest.certificates.k8s.io/%s created" % name)

        out = self.kubectl("get", "csr").stdout
        header = out.splitlines()[0].split()
        self.assertEqual(header, ["NAME", "AGE", "SIGNERNAME", "REQUESTOR", "REQUESTEDDURATION", "CONDITION"])
        row = [l for l in out.splitlines() if l.startswith(name + " ")][0].split()
        self.assertEqual(row[2:], [CLIENT_SIGNER, "kubernetes-admin", "60m", "Pending"])

        obj = self.get_json(name)
        self.assertEqual(obj["spec"]["username"], "kubernetes-admin")
        self.assertEqual(obj["spec"]["groups"], ["kubeadm:cluster-admins", "system:authenticated"])
        self.assertRegex(obj["spec"]["extra"]["authentication.kubernetes.io/credential-id"][0], r"^X509SHA256=[0-9a-f]{64}$")
        self.assertRegex(obj["metadata"]["uid"], r"^[0-9a-f-]{36}$")
        self.assertTrue(obj["metadata"]["resourceVersion"].isdigit())
        self.assertEqual(obj["status"], {})

        r = self.kubectl("certificate", "approve", name)
        self.assertEqual(r.stdout.strip(), "certificatesigningrequest.certificates.k8s.io/%s approved" % name)
        self.wait_condition(name, "Approved,Issued")

        obj = self.get_json(name)
        cond = obj["status"]["conditions"][0]
        self.assertEqual((cond["type"], cond["status"], cond["reason"], cond["message"]),
                         ("Approved", "True", "KubectlApprove", "This CSR was approved by kubectl certificate approve."))
        self.assertRegex(cond["lastTransitionTime"], r"^20\d\d-")  # not the zero time from protobuf
        cert = base64.b64decode(obj["status"]["certificate"])
        cert_path = os.path.join(self.tmp, name + ".crt")
        with open(cert_path, "wb") as f:
            f.write(cert)
        v = run(["openssl", "verify", "-CAfile", os.path.join(self.env_dir, "ca.crt"), cert_path])
        self.assertIn(": OK", v.stdout)
        text = run(["openssl", "x509", "-in", cert_path, "-noout", "-text", "-nameopt", "RFC2253"]).stdout
        self.assertIn("Subject: CN=bob,O=ops,O=devs", text)
        self.assertIn("TLS Web Client Authentication", text)
        self.assertNotIn("Key Usage: critical", text)  # only "client auth" requested -> no keyUsage bits
        self.assertRegex(text, r"Basic Constraints: critical\s+CA:FALSE")
        # validity: expirationSeconds=3600 (< 8h, so not back-dated at the end)
        dates = run(["openssl", "x509", "-in", cert_path, "-noout", "-startdate", "-enddate"]).stdout
        nb, na = [ssl.cert_time_to_seconds(l.split("=", 1)[1].strip()) for l in dates.splitlines()]
        self.assertEqual(na - nb, 3600 + 300)
        # the key pairs with the cert
        pub1 = run(["openssl", "x509", "-in", cert_path, "-noout", "-pubkey"]).stdout
        pub2 = run(["openssl", "pkey", "-in", key, "-pubout"]).stdout
        self.assertEqual(pub1, pub2)

        out = json.loads(self.kubectl("get", "csr", "-o", "json").stdout)
        self.assertIn(name, [i["metadata"]["name"] for i in out["items"]])

    def test_deny(self):
        name = self.unique("denied")
        self.create(self.csr_manifest(name))
        r = self.kubectl("certificate", "deny", name)
        self.assertEqual(r.stdout.strip(), "certificatesigningrequest.certificates.k8s.io/%s denied" % name)
        self.wait_condition(name, "Denied")
        obj = self.get_json(name)
        self.assertEqual([c["type"] for c in obj["status"]["conditions"]], ["Denied"])
        self.assertEqual(obj["status"]["conditions"][0]["reason"], "KubectlDeny")
        self.assertNotIn("certificate", obj["status"])
        r = self.kubectl("certificate", "approve", name, check=False)
        self.assertIn('certificate signing request "%s" is already Denied' % name, r.stderr)

    def test_disallowed_usage_fails(self):
        name = self.unique("serverauth")
        self.create(self.csr_manifest(name, usages=["client auth", "server auth"]))
        self.kubectl("certificate", "approve", name)
        self.wait_condition(name, "Approved,Failed")
        conds = {c["type"]: c for c in self.get_json(name)["status"]["conditions"]}
        self.assertEqual(conds["Failed"]["reason"], "SignerValidationFailure")
        self.assertEqual(conds["Failed"]["message"], "invalid usage for client certificate: server auth")
        name = self.unique("noclientauth")
        self.create(self.csr_manifest(name, usages=["digital signature"]))
        self.kubectl("certificate", "approve", name)
        self.wait_condition(name, "Approved,Failed")
        conds = {c["type"]: c for c in self.get_json(name)["status"]["conditions"]}
        self.assertEqual(conds["Failed"]["message"], "missing required usage for client certificate: client auth")

    def test_key_usages_and_sans_copied(self):
        name = self.unique("sans")
        key = os.path.join(self.tmp, name + ".key")
        pem = subprocess.run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                              "-nodes", "-keyout", key, "-subj", "/CN=svc",
                              "-addext", "subjectAltName=DNS:svc.example,IP:10.1.2.3",
                              "-addext", "basicConstraints=critical,CA:TRUE"],
                             capture_output=True, check=True).stdout
        self.create(self.csr_manifest(name, pem, usages=["digital signature", "key encipherment", "client auth"]))
        self.kubectl("certificate", "approve", name)
        self.wait_condition(name, "Approved,Issued")
        cert = base64.b64decode(self.get_json(name)["status"]["certificate"])
        text = run(["openssl", "x509", "-noout", "-text"], input=cert.decode()).stdout
        self.assertRegex(text, r"Key Usage: critical\s+Digital Signature, Key Encipherment")
        self.assertIn("DNS:svc.example, IP Address:10.1.2.3", text)
        self.assertIn("CA:FALSE", text)  # requested extensions other than SANs are dropped
        self.assertNotIn("Subject Key Identifier", text)
        # no expirationSeconds -> the signer's default duration (1y), back-dated 5 minutes
        dates = run(["openssl", "x509", "-noout", "-startdate", "-enddate"], input=cert.decode()).stdout
        nb, na = [ssl.cert_time_to_seconds(l.split("=", 1)[1].strip()) for l in dates.splitlines()]
        self.assertEqual(na - nb, 365 * 86400)

    # -- validation ----------------------------------------------------------
    def assert_invalid(self, manifest, *fragments):
        r = self.create(manifest, check=False)
        self.assertNotEqual(r.returncode, 0, r.stdout)
        self.assertIn('The CertificateSigningRequest "%s" is invalid' % manifest["metadata"]["name"], r.stderr)
        for frag in fragments:
            self.assertIn(frag, r.stderr)
        return r.stderr

    def test_validation_errors(self):
        self.assert_invalid(self.csr_manifest(self.unique("nosigner"), signer=None), "spec.signerName: Required value")
        self.assert_invalid(self.csr_manifest(self.unique("garbage"), request=b"garbage"),
                            "spec.request: Invalid value: []byte{0x67, 0x61, 0x72, 0x62, 0x61, 0x67, 0x65}: "
                            "PEM block type must be CERTIFICATE REQUEST")
        self.assert_invalid(self.csr_manifest(self.unique("badusage"), usages=["client auth", "bogus"]),
                            'spec.usages[1]: Unsupported value: "bogus": supported values: "any", "cert sign"')
        self.assert_invalid(self.csr_manifest(self.unique("dupusage"), usages=["client auth", "client auth"]),
                            'spec.usages[1]: Duplicate value: "client auth"')
        self.assert_invalid(self.csr_manifest(self.unique("nousage"), usages=[]), "spec.usages: Required value")
        self.assert_invalid(self.csr_manifest(self.unique("short"), expiration=599),
                            "spec.expirationSeconds: Invalid value: 599: may not specify a duration less than 600 seconds (10 minutes)")
        self.assert_invalid(self.csr_manifest(self.unique("signerform"), signer="foo"),
                            "spec.signerName: Invalid value: \"foo\": must be a fully qualified domain and path of the form 'example.com/signer-name'")
        self.assert_invalid(self.csr_manifest(self.unique("legacy"), signer="kubernetes.io/legacy-unknown"),
                            "the legacy signerName is not allowed via this API version")
        # several errors at once, and the raw Status
        m = self.csr_manifest(self.unique("multi"), signer=None, usages=["bogus"])
        code, doc, _ = self.https("POST", "/apis/certificates.k8s.io/v1/certificatesigningrequests", body=m)
        self.assertEqual((code, doc["reason"], doc["code"]), (422, "Invalid", 422))
        self.assertEqual(doc["details"]["kind"], "CertificateSigningRequest")
        self.assertEqual(doc["details"]["group"], "certificates.k8s.io")
        self.assertEqual([c["field"] for c in doc["details"]["causes"]], ["spec.usages[0]", "spec.signerName"])
        self.assertTrue(doc["message"].startswith('CertificateSigningRequest.certificates.k8s.io "%s" is invalid: [' % m["metadata"]["name"]))

    def test_bad_signature_rejected(self):
        pem, _ = self.make_csr("/CN=tamper", key_type="ec")
        der = bytearray(base64.b64decode(b"".join(l for l in pem.splitlines() if not l.startswith(b"-----"))))
        der[-3] ^= 0x01  # flip a bit in the signature
        b64 = base64.encodebytes(bytes(der)).replace(b"\n", b"")
        lines = [b64[i:i + 64] for i in range(0, len(b64), 64)]
        bad = b"-----BEGIN CERTIFICATE REQUEST-----\n" + b"\n".join(lines) + b"\n-----END CERTIFICATE REQUEST-----\n"
        name = self.unique("tampered")
        err = self.assert_invalid(self.csr_manifest(name, request=bad), "spec.request: Invalid value: []byte{")
        self.assertRegex(err, r"(x509: ECDSA verification failure|asn1: )")

    def test_strict_field_validation(self):
        name = self.unique("unknownfield")
        m = self.csr_manifest(name, extra_spec={"bogus": 1})
        r = self.create(m, check=False)
        self.assertIn('strict decoding error: unknown field "spec.bogus"', r.stderr)
        r = self.create(m, "--validate=warn")
        self.assertIn('Warning: unknown field "spec.bogus"', r.stderr)
        self.assertNotIn("bogus", json.dumps(self.get_json(name)))

    def test_system_masters_restriction(self):
        name = self.unique("masters")
        r = self.create(self.csr_manifest(name, subj="/O=system:masters/CN=root"), check=False)
        self.assertIn('Error from server (Forbidden): error when creating', r.stderr)
        self.assertIn('certificatesigningrequests.certificates.k8s.io "%s" is forbidden: use of '
                      'kubernetes.io/kube-apiserver-client signer with system:masters group is not allowed' % name,
                      r.stderr)
        # other signers are not restricted
        self.create(self.csr_manifest(self.unique("masters-ext"), signer="example.com/x",
                                      subj="/O=system:masters/CN=root"))

    def test_generate_name(self):
        m = self.csr_manifest(generate_name="kubeadm-cert-kube-apiserver-")
        code, doc, _ = self.https("POST", "/apis/certificates.k8s.io/v1/certificatesigningrequests", body=m)
        self.assertEqual(code, 201, doc)
        self.assertRegex(doc["metadata"]["name"], r"^kubeadm-cert-kube-apiserver-[bcdfghjklmnpqrstvwxz2456789]{5}$")
        self.assertEqual(doc["metadata"]["generateName"], "kubeadm-cert-kube-apiserver-")

    def test_already_exists_and_not_found(self):
        name = self.unique("dup")
        m = self.csr_manifest(name)
        self.create(m)
        r = self.create(m, check=False)
        self.assertIn('Error from server (AlreadyExists): error when creating', r.stderr)
        self.assertIn('certificatesigningrequests.certificates.k8s.io "%s" already exists' % name, r.stderr)
        r = self.kubectl("get", "csr", "does-not-exist", check=False)
        self.assertIn('Error from server (NotFound): certificatesigningrequests.certificates.k8s.io "does-not-exist" not found',
                      r.stderr)

    # -- approval / status subresources ----------------------------------------
    def test_approved_and_denied_together_rejected(self):
        name = self.unique("both")
        self.create(self.csr_manifest(name, signer="example.com/none"))
        obj = self.get_json(name)
        obj["status"]["conditions"] = [{"type": "Approved", "status": "True", "reason": "A"},
                                       {"type": "Denied", "status": "True", "reason": "D"}]
        code, doc, _ = self.https("PUT", "/apis/certificates.k8s.io/v1/certificatesigningrequests/%s/approval" % name,
                                  body=obj)
        self.assertEqual(code, 422, doc)
        self.assertIn('status.conditions[1].type: Invalid value: "Denied": Approved and Denied conditions are mutually exclusive',
                      doc["message"])
        # approval conditions can't be set through the main resource or /status
        obj["status"]["conditions"] = obj["status"]["conditions"][:1]
        code, doc, _ = self.https("PUT", "/apis/certificates.k8s.io/v1/certificatesigningrequests/%s" % name, body=obj)
        self.assertEqual(code, 200)
        self.assertEqual(doc["status"], {}, "update of the main resource must ignore status")

    def test_conflict_on_stale_resource_version(self):
        name = self.unique("stale")
        self.create(self.csr_manifest(name))
        old = self.get_json(name)
        self.kubectl("label", "csr", name, "step=one")
        old["metadata"]["labels"] = {"step": "two"}
        path = "/apis/certificates.k8s.io/v1/certificatesigningrequests/" + name
        code, doc, _ = self.https("PUT", path, body=old)
        self.assertEqual((code, doc["reason"]), (409, "Conflict"))
        self.assertEqual(doc["message"], 'Operation cannot be fulfilled on certificatesigningrequests.certificates.k8s.io '
                                         '"%s": the object has been modified; please apply your changes to the latest '
                                         'version and try again' % name)
        # an update without resourceVersion is unconditional
        del old["metadata"]["resourceVersion"]
        code, doc, _ = self.https("PUT", path, body=old)
        self.assertEqual((code, doc["metadata"]["labels"]), (200, {"step": "two"}))

    def test_external_signer_sets_status_certificate(self):
        name = self.unique("external")
        csr_pem, _ = self.make_csr("/CN=ext")
        self.create(self.csr_manifest(name, csr_pem, signer="example.com/my-signer"))
        self.kubectl("certificate", "approve", name)
        time.sleep(0.5)
        self.wait_condition(name, "Approved")  # the built-in signer leaves it alone
        cert = self.sign_externally(csr_pem)
        path = "/apis/certificates.k8s.io/v1/certificatesigningrequests/%s/status" % name
        code, doc, _ = self.https("PATCH", path, body=json.dumps({"status": {"certificate": base64.b64encode(cert).decode()}}).encode(),
                                  headers={"Content-Type": "application/merge-patch+json"})
        self.assertEqual(code, 200, doc)
        self.wait_condition(name, "Approved,Issued")
        self.assertEqual(base64.b64decode(self.get_json(name)["status"]["certificate"]), cert)
        # once issued, the certificate is immutable
        code, doc, _ = self.https("PATCH", path, body=json.dumps({"status": {"certificate": base64.b64encode(b"junk").decode()}}).encode(),
                                  headers={"Content-Type": "application/merge-patch+json"})
        self.assertEqual(code, 422)
        self.assertIn("status.certificate: Forbidden: updates may not modify existing certificate content", doc["message"])
        # status may not carry garbage in the first place
        name2 = self.unique("external-bad")
        self.create(self.csr_manifest(name2, signer="example.com/my-signer"))
        code, doc, _ = self.https("PATCH", "/apis/certificates.k8s.io/v1/certificatesigningrequests/%s/status" % name2,
                                  body=b'[{"op":"add","path":"/status/certificate","value":"anVuaw=="}]',
                                  headers={"Content-Type": "application/json-patch+json"})
        self.assertEqual(code, 422)
        self.assertIn('status.certificate: Invalid value: "<certificate data>": must contain at least one CERTIFICATE PEM block',
                      doc["message"])

    def test_non_admin_cannot_approve(self):
        name = self.unique("byuser")
        self.create(self.csr_manifest(name), kubeconfig=self.user)
        obj = self.get_json(name)
        self.assertEqual(obj["spec"]["username"], "developer")
        r = self.kubectl("certificate", "approve", name, kubeconfig=self.user, check=False)
        self.assertIn('Error from server (Forbidden): certificatesigningrequests.certificates.k8s.io "%s" is forbidden: '
                      'User "developer" cannot update resource "certificatesigningrequests/approval" in API group '
                      '"certificates.k8s.io" at the cluster scope' % name, r.stderr)

    # -- watch ---------------------------------------------------------------
    def test_raw_watch(self):
        name = self.unique("watched")
        code, created, _ = self.https("POST", "/apis/certificates.k8s.io/v1/certificatesigningrequests",
                                      body=self.csr_manifest(name))
        self.assertEqual(code, 201)
        rv = created["metadata"]["resourceVersion"]
        ctx = ssl.create_default_context(cafile=os.path.join(self.env_dir, "ca.crt"))
        ctx.load_cert_chain(os.path.join(self.env_dir, "admin.crt"), os.path.join(self.env_dir, "admin.key"))
        conn = http.client.HTTPSConnection("127.0.0.1", self.port, context=ctx, timeout=30)
        conn.request("GET", "/apis/certificates.k8s.io/v1/certificatesigningrequests?watch=true&resourceVersion=%s"
                            "&fieldSelector=metadata.name%%3D%s&timeoutSeconds=5&allowWatchBookmarks=true" % (rv, name))
        resp = conn.getresponse()
        self.assertEqual(resp.status, 200)
        self.assertEqual(resp.getheader("Transfer-Encoding"), "chunked")
        threading.Timer(0.3, lambda: self.kubectl("certificate", "approve", name)).start()
        events = []
        start = time.time()
        while True:
            line = resp.readline()
            if not line:
                break
            ev = json.loads(line)
            events.append(ev)
            if ev["type"] == "MODIFIED" and ev["object"]["status"].get("certificate"):
                break
        types = [e["type"] for e in events if e["type"] != "BOOKMARK"]
        self.assertEqual(types, ["MODIFIED", "MODIFIED"])
        self.assertEqual(events[-1]["object"]["kind"], "CertificateSigningRequest")
        self.assertEqual([c["type"] for c in events[-1]["object"]["status"]["conditions"]], ["Approved"])
        rvs = [int(e["object"]["metadata"]["resourceVersion"]) for e in events if e["type"] == "MODIFIED"]
        self.assertTrue(int(rv) < rvs[0] < rvs[1])
        # the stream ends by itself at timeoutSeconds (bookmarks every second meanwhile)
        rest = resp.read().decode().splitlines()
        conn.close()
        self.assertLess(time.time() - start, 10)
        self.assertTrue(any(json.loads(l)["type"] == "BOOKMARK" for l in rest if l))

        # without resourceVersion: synthetic ADDED for existing objects, then DELETED
        conn = http.client.HTTPSConnection("127.0.0.1", self.port, context=ctx, timeout=30)
        conn.request("GET", "/apis/certificates.k8s.io/v1/watch/certificatesigningrequests/%s?timeoutSeconds=3" % name)
        resp = conn.getresponse()
        first = json.loads(resp.readline())
        self.assertEqual((first["type"], first["object"]["metadata"]["name"]), ("ADDED", name))
        self.kubectl("delete", "csr", name)
        second = json.loads(resp.readline())
        self.assertEqual(second["type"], "DELETED")
        conn.close()

    def test_kubectl_get_watch(self):
        name = self.unique("kwatch")
        self.create(self.csr_manifest(name))
        p = subprocess.Popen([KUBECTL, "--kubeconfig", self.admin, "get", "csr", name, "--watch"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=self.kenv)
        try:
            lines = [p.stdout.readline(), p.stdout.readline()]
            self.assertTrue(lines[0].startswith("NAME"), lines)
            self.assertIn("Pending", lines[1])
            self.kubectl("certificate", "approve", name)
            seen = []
            deadline = time.time() + 15
            while time.time() < deadline:
                line = p.stdout.readline()
                seen.append(line)
                if "Approved,Issued" in line:
                    break
            self.assertIn("Approved,Issued", seen[-1], seen)
        finally:
            p.terminate()
            p.wait(timeout=10)
            p.stdout.close()
            p.stderr.close()

    # -- misc API behaviour ----------------------------------------------------
    def test_table_for_single_object(self):
        name = self.unique("table")
        self.create(self.csr_manifest(name, expiration=86400))
        code, doc, _ = self.https("GET", "/apis/certificates.k8s.io/v1/certificatesigningrequests/" + name,
                                  headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"})
        self.assertEqual((code, doc["kind"], doc["apiVersion"]), (200, "Table", "meta.k8s.io/v1"))
        self.assertEqual([c["name"] for c in doc["columnDefinitions"]],
                         ["Name", "Age", "SignerName", "Requestor", "RequestedDuration", "Condition"])
        self.assertEqual(doc["rows"][0]["cells"][2:], [CLIENT_SIGNER, "kubernetes-admin", "24h", "Pending"])
        self.assertEqual(doc["rows"][0]["object"]["kind"], "PartialObjectMetadata")
        out = self.kubectl("get", "csr", name).stdout
        self.assertRegex(out.splitlines()[1], r"^%s\s+\d+s\s+%s\s+kubernetes-admin\s+24h\s+Pending$" % (name, CLIENT_SIGNER))

    def test_selectors_patch_delete(self):
        name = self.unique("sel")
        self.create(self.csr_manifest(name, signer="example.com/sel"))
        self.kubectl("label", "csr", name, "team=blue")
        out = self.kubectl("get", "csr", "-l", "team=blue", "-o", "name").stdout.split()
        self.assertEqual(out, ["certificatesigningrequest.certificates.k8s.io/" + name])
        out = self.kubectl("get", "csr", "--field-selector", "spec.signerName=example.com/sel", "-o", "name").stdout.split()
        self.assertEqual(out, ["certificatesigningrequest.certificates.k8s.io/" + name])
        r = self.kubectl("get", "csr", "--field-selector", "status.phase=x", check=False)
        self.assertIn("field label not supported: status.phase", r.stderr)
        self.kubectl("patch", "csr", name, "--type=json", "-p", '[{"op":"add","path":"/metadata/annotations","value":{"a":"b"}}]')
        self.kubectl("patch", "csr", name, "--type=merge", "-p", '{"metadata":{"labels":{"team":null}}}')
        obj = self.get_json(name)
        self.assertEqual(obj["metadata"].get("annotations"), {"a": "b"})
        self.assertNotIn("labels", obj["metadata"])
        # spec is immutable through the main resource
        self.kubectl("patch", "csr", name, "--type=merge", "-p", '{"spec":{"signerName":"example.com/other"}}')
        self.assertEqual(self.get_json(name)["spec"]["signerName"], "example.com/sel")
        r = self.kubectl("delete", "csr", name)
        self.assertIn('certificatesigningrequest.certificates.k8s.io "%s" deleted' % name, r.stdout)
        self.assertNotEqual(self.kubectl("get", "csr", name, check=False).returncode, 0)

    def test_json_approval_put_and_patch(self):
        path = "/apis/certificates.k8s.io/v1/certificatesigningrequests/%s/approval"
        name = self.unique("jsonput")
        self.create(self.csr_manifest(name))
        obj = self.get_json(name)
        obj["status"]["conditions"] = [{"type": "Approved", "status": "True", "reason": "ByJSON"}]
        obj["spec"]["signerName"] = "example.com/ignored"
        code, doc, _ = self.https("PUT", path % name, body=obj)
        self.assertEqual(code, 200, doc)
        self.assertEqual(doc["spec"]["signerName"], CLIENT_SIGNER)
        self.wait_condition(name, "Approved,Issued")
        # approval conditions cannot be removed
        obj = self.get_json(name)
        obj["status"]["conditions"] = []
        code, doc, _ = self.https("PUT", path % name, body=obj)
        self.assertEqual(code, 422)
        self.assertIn('status.conditions: Forbidden: updates may not remove a condition of type "Approved"', doc["message"])

        name = self.unique("jsonpatch")
        self.create(self.csr_manifest(name, signer="example.com/x"))
        patch = {"status": {"conditions": [{"type": "Denied", "status": "True", "reason": "ByPatch",
                                            "message": "no"}]}}
        code, doc, _ = self.https("PATCH", path % name, body=json.dumps(patch).encode(),
                                  headers={"Content-Type": "application/merge-patch+json"})
        self.assertEqual(code, 200, doc)
        self.wait_condition(name, "Denied")
        # Approved/Denied may not be added through /status
        patch["status"]["conditions"][0]["type"] = "Approved"
        code, doc, _ = self.https("PATCH", "/apis/certificates.k8s.io/v1/certificatesigningrequests/%s/status" % name,
                                  body=json.dumps(patch).encode(),
                                  headers={"Content-Type": "application/merge-patch+json"})
        self.assertEqual(code, 422, doc)

    def test_server_side_apply(self):
        name = self.unique("ssa")
        m = self.csr_manifest(name, signer="example.com/ssa")
        base = "/apis/certificates.k8s.io/v1/certificatesigningrequests/" + name
        hdr = {"Content-Type": "application/apply-patch+yaml"}
        code, doc, _ = self.https("PATCH", base, body=json.dumps(m).encode(), headers=hdr)
        self.assertEqual(code, 422, "fieldManager is required for apply")
        code, doc, _ = self.https("PATCH", base + "?fieldManager=kubecert", body=json.dumps(m).encode(), headers=hdr)
        self.assertEqual(code, 201, doc)  # apply creates
        self.assertEqual(doc["spec"]["username"], "kubernetes-admin")
        cfg = {"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
               "metadata": {"name": name},
               "status": {"conditions": [{"type": "Approved", "status": "True", "reason": "KubecertApprove",
                                          "message": "approved by policy"}]}}
        code, doc, _ = self.https("PATCH", base + "/approval?fieldManager=kubecert&force=true",
                                  body=json.dumps(cfg).encode(), headers=hdr)
        self.assertEqual(code, 200, doc)
        self.assertEqual([c["reason"] for c in doc["status"]["conditions"]], ["KubecertApprove"])
        out = self.kubectl("apply", "--server-side", "-f", "-", input=json.dumps(m)).stdout
        self.assertIn("serverside-applied", out)

    def test_decode_errors(self):
        m = self.csr_manifest(self.unique("types"), extra_spec={"expirationSeconds": "abc"})
        r = self.create(m, check=False)
        self.assertIn('Error from server (BadRequest): error when creating', r.stderr)
        self.assertIn('CertificateSigningRequest in version "v1" cannot be handled as a CertificateSigningRequest: '
                      'json: cannot unmarshal string into Go struct field CertificateSigningRequestSpec.spec.expirationSeconds of type int32',
                      r.stderr)
        m = self.csr_manifest(self.unique("b64"))
        m["spec"]["request"] = "!!!!"
        code, doc, _ = self.https("POST", "/apis/certificates.k8s.io/v1/certificatesigningrequests", body=m)
        self.assertEqual((code, doc["reason"]), (400, "BadRequest"))
        self.assertIn("illegal base64 data at input byte 0", doc["message"])
        code, doc, _ = self.https("POST", "/apis/certificates.k8s.io/v1/certificatesigningrequests", body=b"{",
                                  headers={"Content-Type": "application/json"})
        self.assertEqual(code, 400)
        code, doc, _ = self.https("POST", "/apis/certificates.k8s.io/v1/certificatesigningrequests", body=b"a: b",
                                  headers={"Content-Type": "application/x-yaml"})
        self.assertEqual((code, doc["reason"]), (415, "UnsupportedMediaType"))
        code, doc, _ = self.https("GET", "/apis/certificates.k8s.io/v1/nothing")
        self.assertEqual((code, doc["reason"]), (404, "NotFound"))
        code, doc, _ = self.https("POST", "/apis/certificates.k8s.io/v1/certificatesigningrequests/x/status", body={})
        self.assertEqual((code, doc["reason"]), (405, "MethodNotAllowed"))

    def test_pagination_finalizers_deletecollection_initial_events(self):
        base = "/apis/certificates.k8s.io/v1/certificatesigningrequests"
        prefix = self.unique("page")
        names = ["%s-%d" % (prefix, i) for i in range(4)]
        for i, n in enumerate(names):
            m = self.csr_manifest(n, signer="example.com/page")
            m["metadata"]["labels"] = {"page": prefix}
            if i == 0:
                m["metadata"]["finalizers"] = ["example.com/keep"]
            self.assertEqual(self.https("POST", base, body=m)[0], 201)
        sel = "?labelSelector=page%3D" + prefix
        code, doc, _ = self.https("GET", base + sel + "&limit=3")
        self.assertEqual([i["metadata"]["name"] for i in doc["items"]], names[:3])
        code, doc, _ = self.https("GET", base + sel + "&limit=3&continue=" + doc["metadata"]["continue"])
        self.assertEqual([i["metadata"]["name"] for i in doc["items"]], names[3:])
        self.assertNotIn("continue", doc["metadata"])
        # streaming list: ADDED for each object, then the initial-events-end bookmark
        ctx = ssl.create_default_context(cafile=os.path.join(self.env_dir, "ca.crt"))
        ctx.load_cert_chain(os.path.join(self.env_dir, "admin.crt"), os.path.join(self.env_dir, "admin.key"))
        conn = http.client.HTTPSConnection("127.0.0.1", self.port, context=ctx, timeout=30)
        conn.request("GET", base + sel + "&watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan"
                                         "&allowWatchBookmarks=true&timeoutSeconds=1")
        events = [json.loads(l) for l in conn.getresponse().read().decode().splitlines() if l]
        conn.close()
        self.assertEqual([e["type"] for e in events[:5]], ["ADDED"] * 4 + ["BOOKMARK"])
        self.assertEqual(events[4]["object"]["metadata"]["annotations"], {"k8s.io/initial-events-end": "true"})
        # a finalizer keeps the object after DELETE (202 + deletionTimestamp) until it is removed
        code, doc, _ = self.https("DELETE", base + "/" + names[0])
        self.assertEqual(code, 202)
        self.assertIn("deletionTimestamp", doc["metadata"])
        code, doc, _ = self.https("PATCH", base + "/" + names[0], body=b'{"metadata":{"finalizers":null}}',
                                  headers={"Content-Type": "application/merge-patch+json"})
        self.assertEqual(code, 200)
        self.assertEqual(self.https("GET", base + "/" + names[0])[0], 404)
        code, doc, _ = self.https("DELETE", base + sel)
        self.assertEqual((code, doc["kind"]), (200, "CertificateSigningRequestList"))
        self.assertEqual(sorted(i["metadata"]["name"] for i in doc["items"]), names[1:])
        self.assertEqual(self.https("GET", base + sel)[1]["items"], [])

    def test_protobuf_approval_body(self):
        """The exact wire format kubectl certificate approve sends, built by hand."""
        name = self.unique("pb")
        self.create(self.csr_manifest(name, signer="example.com/pb"))
        obj = self.get_json(name)

        def field(num, payload):
            out, key = bytearray(), (num << 3) | 2
            for v in (key, len(payload)):
                while v >= 0x80:
                    out.append((v & 0x7F) | 0x80)
                    v >>= 7
                out.append(v)
            return bytes(out) + payload

        meta = field(1, name.encode()) + field(6, obj["metadata"]["resourceVersion"].encode())
        cond = field(1, b"Approved") + field(2, b"ByHand") + field(3, b"built by a test") + field(5, b"") + field(6, b"True")
        csr = field(1, meta) + field(2, b"") + field(3, field(1, cond))
        body = b"k8s\x00" + field(1, field(1, b"certificates.k8s.io/v1") + field(2, b"CertificateSigningRequest")) + field(2, csr)
        code, doc, _ = self.https("PUT", "/apis/certificates.k8s.io/v1/certificatesigningrequests/%s/approval" % name,
                                  body=body, headers={"Content-Type": "application/vnd.kubernetes.protobuf",
                                                      "Accept": "application/vnd.kubernetes.protobuf,application/json"})
        self.assertEqual(code, 200, doc)
        c = doc["status"]["conditions"][0]
        self.assertEqual((c["type"], c["reason"], c["message"], c["status"]), ("Approved", "ByHand", "built by a test", "True"))
        self.assertIn("lastTransitionTime", c)
        self.assertEqual(doc["spec"]["signerName"], "example.com/pb")  # spec comes from storage
        # stale resourceVersion in the protobuf body -> 409
        code, doc, _ = self.https("PUT", "/apis/certificates.k8s.io/v1/certificatesigningrequests/%s/approval" % name,
                                  body=body, headers={"Content-Type": "application/vnd.kubernetes.protobuf"})
        self.assertEqual((code, doc.get("reason")), (409, "Conflict"))


def load_server_module():
    import importlib.util
    spec = importlib.util.spec_from_file_location("certapi_server", SERVER)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


class UnitTest(unittest.TestCase):
    """Pieces of server.py that kubectl does not reach easily."""

    @classmethod
    def setUpClass(cls):
        cls.srv = load_server_module()

    def test_human_duration(self):
        hd = self.srv.human_duration
        cases = {0: "0s", 119: "119s", 120: "2m", 150: "2m30s", 600: "10m", 3600: "60m", 3 * 3600: "3h",
                 3 * 3600 + 60: "3h1m", 86400: "24h", 2 * 86400: "2d", 3 * 86400 + 3600: "3d1h",
                 365 * 86400: "365d", 3 * 365 * 86400: "3y", 3 * 365 * 86400 + 86400: "3y1d", 10 * 365 * 86400: "10y"}
        for sec, want in cases.items():
            self.assertEqual(hd(sec), want, sec)

    def test_field_error_format(self):
        fe = self.srv.fe_invalid("spec.request", self.srv.GoBytes(b"ab"), "bad")
        self.assertEqual(fe.error(), "spec.request: Invalid value: []byte{0x61, 0x62}: bad")
        self.assertEqual(self.srv.fe_invalid("x", self.srv.GoBytes(None), "d").body(), "Invalid value: []byte(nil): d")
        self.assertEqual(self.srv.fe_required("spec.usages").error(), "spec.usages: Required value")
        self.assertEqual(self.srv.go_quote('a"b\n\x01'), '"a\\"b\\n\\x01"')

    def test_signer_caps_at_ca_not_after_and_kubelet_rules(self):
        tmp = tempfile.mkdtemp(prefix="certapi-unit-")
        try:
            key, crt = os.path.join(tmp, "ca.key"), os.path.join(tmp, "ca.crt")
            run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                 "-keyout", key, "-out", crt, "-subj", "/CN=short-ca", "-days", "2",
                 "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "subjectKeyIdentifier=hash"])
            signer = self.srv.LocalSigner(crt, key, 365 * 86400)
            csr = subprocess.run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                                  "-nodes", "-keyout", os.devnull, "-subj", "/O=system:nodes/CN=system:node:n1"],
                                 capture_output=True, check=True).stdout
            parsed, err = self.srv.parse_csr(csr)
            self.assertIsNone(err)
            pem = signer.sign(parsed, ["client auth"], None)
            end = run(["openssl", "x509", "-noout", "-enddate"], input=pem.decode()).stdout
            ca_end = run(["openssl", "x509", "-noout", "-enddate", "-in", crt]).stdout
            self.assertEqual(end, ca_end)
            self.assertEqual(signer.ttl(300), 600)
            self.assertEqual(signer.ttl(10 ** 9), 365 * 86400)
            v = self.srv.validate_for_signer
            kc = self.srv.KUBE_APISERVER_CLIENT_KUBELET
            self.assertIsNone(v(kc, parsed, ["digital signature", "client auth"]))
            self.assertEqual(v(kc, parsed, ["client auth"]),
                             "usages did not match [client auth digital signature key encipherment]")
            self.assertEqual(v(self.srv.KUBELET_SERVING, parsed, ["digital signature", "server auth"]),
                             "DNS or IP subjectAltName is required")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


class MkenvTest(unittest.TestCase):
    def test_external_ca(self):
        """mkenv.sh can issue everything from an existing CA (e.g. a kubecert demo PKI)."""
        tmp = tempfile.mkdtemp(prefix="certapi-mkenv-")
        try:
            ca_dir = os.path.join(tmp, "pki")
            os.makedirs(ca_dir)
            ca_key, ca_crt = os.path.join(ca_dir, "ca.key"), os.path.join(ca_dir, "ca.crt")
            run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                 "-keyout", ca_key, "-out", ca_crt, "-subj", "/CN=demo-ca", "-days", "30",
                 "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign"])
            out = os.path.join(tmp, "env")
            run([MKENV, "--ca-cert", ca_crt, "--ca-key", ca_key, "--server", "https://127.0.0.1:1234", out])
            self.assertFalse(os.path.exists(os.path.join(out, "ca.key")))
            for leaf in ("server", "admin", "user"):
                v = run(["openssl", "verify", "-CAfile", ca_crt, os.path.join(out, leaf + ".crt")])
                self.assertIn(": OK", v.stdout)
            subj = run(["openssl", "x509", "-in", os.path.join(out, "admin.crt"), "-noout", "-subject",
                        "-nameopt", "RFC2253"]).stdout
            self.assertEqual(subj.strip(), "subject=CN=kubernetes-admin,O=kubeadm:cluster-admins")
            san = run(["openssl", "x509", "-in", os.path.join(out, "server.crt"), "-noout", "-ext",
                       "subjectAltName"]).stdout
            self.assertIn("IP Address:127.0.0.1", san)
            self.assertIn("DNS:localhost", san)
            conf = read_file(os.path.join(out, "admin.conf"))
            self.assertIn("server: https://127.0.0.1:1234", conf)
            with open(ca_crt, "rb") as f:
                self.assertIn(base64.b64encode(f.read()).decode(), conf)
            env = dict(l.split("=", 1) for l in read_file(os.path.join(out, "env")).splitlines())
            self.assertEqual((env["CA_CERT"], env["CA_KEY"]), (ca_crt, ca_key))
            # second run keeps the certificates, only rewrites kubeconfigs
            before = read_file(os.path.join(out, "admin.crt"))
            run([MKENV, "--ca-cert", ca_crt, "--ca-key", ca_key, "--server", "https://127.0.0.1:999", out])
            self.assertEqual(before, read_file(os.path.join(out, "admin.crt")))
            self.assertIn("server: https://127.0.0.1:999", read_file(os.path.join(out, "admin.conf")))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()
