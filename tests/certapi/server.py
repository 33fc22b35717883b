#!/usr/bin/env python3
"""certapi: a small certificates.k8s.io/v1 API server for tests.

It serves CertificateSigningRequests the way kube-apiserver does (discovery,
create/get/list/watch/update/patch/delete, the /approval and /status
subresources, meta.k8s.io Table output, Status errors, validation copied from
kubernetes pkg/apis/certificates/validation) plus the csrsigning controller of
kube-controller-manager for the built-in kubernetes.io signers.

Standard library only; X.509 signing and signature checks shell out to the
`openssl` command.  See README.md next to this file.
"""

import argparse
import base64
import collections
import copy
import csv
import datetime
import hashlib
import http.server
import ipaddress
import json
import os
import queue
import re
import secrets
import select
import shutil
import signal
import socket
import socketserver
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.parse
import uuid

SERVER_GIT_VERSION = "v1.32.4"
GROUP = "certificates.k8s.io"
VERSION = "v1"
GROUP_VERSION = GROUP + "/" + VERSION
RESOURCE = "certificatesigningrequests"
KIND = "CertificateSigningRequest"
LIST_KIND = "CertificateSigningRequestList"
QUALIFIED_RESOURCE = RESOURCE + "." + GROUP  # certificatesigningrequests.certificates.k8s.io
QUALIFIED_KIND = KIND + "." + GROUP          # CertificateSigningRequest.certificates.k8s.io

KUBE_APISERVER_CLIENT = "kubernetes.io/kube-apiserver-client"
KUBE_APISERVER_CLIENT_KUBELET = "kubernetes.io/kube-apiserver-client-kubelet"
KUBELET_SERVING = "kubernetes.io/kubelet-serving"
LEGACY_UNKNOWN = "kubernetes.io/legacy-unknown"
BUILTIN_SIGNERS = (KUBE_APISERVER_CLIENT, KUBE_APISERVER_CLIENT_KUBELET, KUBELET_SERVING)

ALL_USAGES = sorted([
    "signing", "digital signature", "content commitment", "key encipherment",
    "key agreement", "data encipherment", "cert sign", "crl sign",
    "encipher only", "decipher only", "any", "server auth", "client auth",
    "code signing", "email protection", "s/mime", "ipsec end system",
    "ipsec tunnel", "ipsec user", "timestamping", "ocsp signing",
    "microsoft sgc", "netscape sgc",
])

LOG_LOCK = threading.Lock()


def log(msg, *args):
    if args:
        msg = msg % args
    now = datetime.datetime.now(datetime.timezone.utc)
    line = "certapi %s %s\n" % (now.strftime("%H:%M:%S.%f")[:-3], msg)
    with LOG_LOCK:
        try:
            sys.stderr.write(line)
            sys.stderr.flush()
        except (OSError, ValueError):
            pass


# --------------------------------------------------------------------------
# time helpers

def fmt_time(ts):
    """metav1.Time JSON form: RFC3339, seconds precision, UTC."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(ts)))


def now_time():
    return fmt_time(time.time())


def parse_time(s):
    """RFC3339 string -> epoch seconds (float). Raises ValueError."""
    if not isinstance(s, str) or not re.match(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$", s):
        raise ValueError('parsing time %s as "2006-01-02T15:04:05Z07:00": cannot parse %s as "2006"' % (go_quote(str(s)), go_quote(str(s))))
    return datetime.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


def human_duration(seconds):
    """k8s.io/apimachinery/pkg/util/duration.HumanDuration."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 60 * 2:
        return "%ds" % s
    minutes = s // 60
    if minutes < 10:
        sec = s % 60
        return "%dm" % minutes if sec == 0 else "%dm%ds" % (minutes, sec)
    if minutes < 60 * 3:
        return "%dm" % minutes
    hours = s // 3600
    if hours < 8:
        m = minutes % 60
        return "%dh" % hours if m == 0 else "%dh%dm" % (hours, m)
    if hours < 48:
        return "%dh" % hours
    if hours < 24 * 8:
        h = hours % 24
        return "%dd" % (hours // 24) if h == 0 else "%dd%dh" % (hours // 24, h)
    if hours < 24 * 365 * 2:
        return "%dd" % (hours // 24)
    if hours < 24 * 365 * 8:
        dy = (hours // 24) % 365
        return "%dy" % (hours // 24 // 365) if dy == 0 else "%dy%dd" % (hours // 24 // 365, dy)
    return "%dy" % (hours // 24 // 365)


# --------------------------------------------------------------------------
# Go-style formatting used in error messages

def go_quote(s):
    out = ['"']
    for ch in s:
        o = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch in "\a\b\f\n\r\t\v":
            out.append({"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}[ch])
        elif o < 0x20 or o == 0x7F:
            out.append("\\x%02x" % o)
        elif not ch.isprintable():
            out.append("\\u%04x" % o if o < 0x10000 else "\\U%08x" % o)
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


class GoBytes:
    """A []byte bad value; rendered the way fmt's %#v does."""

    def __init__(self, b):
        self.b = b

    def __str__(self):
        if self.b is None:
            return "[]byte(nil)"
        return "[]byte{" + ", ".join("0x%x" % c for c in self.b) + "}"


OMIT = object()


def go_value(v):
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, str):
        return go_quote(v)
    return str(v)


# --------------------------------------------------------------------------
# API errors (metav1.Status)

class APIError(Exception):
    def __init__(self, code, reason, message, details=None, headers=None):
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details
        self.headers = headers or {}

    def status(self):
        st = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
              "message": self.message}
        if self.reason:
            st["reason"] = self.reason
        if self.details is not None:
            st["details"] = self.details
        st["code"] = self.code
        return st


def _details(name, kind=RESOURCE, group=GROUP):
    d = {}
    if name:
        d["name"] = name
    if group:
        d["group"] = group
    if kind:
        d["kind"] = kind
    return d


def err_not_found(name):
    return APIError(404, "NotFound", '%s "%s" not found' % (QUALIFIED_RESOURCE, name), _details(name))


def err_already_exists(name):
    return APIError(409, "AlreadyExists", '%s "%s" already exists' % (QUALIFIED_RESOURCE, name), _details(name))


def err_conflict(name, why):
    return APIError(409, "Conflict", 'Operation cannot be fulfilled on %s "%s": %s' % (QUALIFIED_RESOURCE, name, why),
                    _details(name))


CONFLICT_MODIFIED = "the object has been modified; please apply your changes to the latest version and try again"


def err_precondition(name, what, pre, actual):
    """storage.Preconditions.Check failure, as the generic registry reports it."""
    return err_conflict(name, "StorageError: invalid object, Code: 4, Key: /registry/%s/%s/%s, ResourceVersion: 0, "
                              "AdditionalErrorMsg: Precondition failed: %s in precondition: %s, %s in object meta: %s" % (
                                  GROUP, RESOURCE, name, what, pre, what, actual))


def err_bad_request(msg):
    return APIError(400, "BadRequest", msg)


def err_forbidden(name, why, qualified=QUALIFIED_RESOURCE, kind=RESOURCE, group=GROUP):
    if name:
        msg = '%s "%s" is forbidden: %s' % (qualified, name, why)
    else:
        msg = "%s is forbidden: %s" % (qualified, why)
    return APIError(403, "Forbidden", msg, _details(name, kind, group))


def err_internal(msg):
    return APIError(500, "InternalError", "Internal error occurred: " + msg,
                    {"causes": [{"message": msg}]})


def err_unauthorized():
    return APIError(401, "Unauthorized", "Unauthorized")


def err_path_not_found():
    return APIError(404, "NotFound", "the server could not find the requested resource", {})


def err_method_not_allowed():
    return APIError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource", {})


def err_invalid(name, field_errors):
    msgs = []
    seen = set()
    for fe in field_errors:
        m = fe.error()
        if m not in seen:
            seen.add(m)
            msgs.append(m)
    agg = msgs[0] if len(msgs) == 1 else "[" + ", ".join(msgs) + "]"
    details = _details(name, kind=KIND)
    details["causes"] = [{"reason": fe.type, "message": fe.body(), "field": fe.field} for fe in field_errors]
    return APIError(422, "Invalid", '%s "%s" is invalid: %s' % (QUALIFIED_KIND, name, agg), details)


def err_unprocessable(msg):
    return APIError(422, "", msg, None)


# --------------------------------------------------------------------------
# field.Error

FIELD_TYPE_TEXT = {
    "FieldValueNotFound": "Not found",
    "FieldValueRequired": "Required value",
    "FieldValueDuplicate": "Duplicate value",
    "FieldValueInvalid": "Invalid value",
    "FieldValueNotSupported": "Unsupported value",
    "FieldValueForbidden": "Forbidden",
    "FieldValueTooLong": "Too long",
    "InternalError": "Internal error",
}


class FieldError:
    def __init__(self, typ, field, value=OMIT, detail=""):
        self.type = typ
        self.field = field
        self.value = value
        self.detail = detail

    def body(self):
        text = FIELD_TYPE_TEXT[self.type]
        if self.type in ("FieldValueRequired", "FieldValueForbidden", "FieldValueTooLong", "InternalError") \
                or self.value is OMIT:
            s = text
        else:
            s = "%s: %s" % (text, go_value(self.value))
        if self.detail:
            s += ": " + self.detail
        return s

    def error(self):
        return "%s: %s" % (self.field, self.body())


def fe_required(field, detail=""):
    return FieldError("FieldValueRequired", field, "", detail)


def fe_invalid(field, value, detail):
    return FieldError("FieldValueInvalid", field, value, detail)


def fe_not_supported(field, value, valid):
    detail = "supported values: " + ", ".join(go_quote(v) for v in valid) if valid else ""
    return FieldError("FieldValueNotSupported", field, value, detail)


def fe_duplicate(field, value):
    return FieldError("FieldValueDuplicate", field, value)


def fe_forbidden(field, detail):
    return FieldError("FieldValueForbidden", field, "", detail)


def fe_too_long(field, maxlen):
    return FieldError("FieldValueTooLong", field, "", "must have at most %d bytes" % maxlen)


# --------------------------------------------------------------------------
# minimal DER reader (enough for PKCS#10 requests and X.509 certificates)

class DERError(Exception):
    pass


class Node:
    __slots__ = ("cls", "cons", "tag", "data", "start", "cstart", "end")

    def __init__(self, data, cls, cons, tag, start, cstart, end):
        self.data, self.cls, self.cons, self.tag = data, cls, cons, tag
        self.start, self.cstart, self.end = start, cstart, end

    @property
    def content(self):
        return self.data[self.cstart:self.end]

    @property
    def raw(self):
        return self.data[self.start:self.end]

    def children(self):
        out, pos = [], self.cstart
        while pos < self.end:
            n = der_read(self.data, pos, self.end)
            out.append(n)
            pos = n.end
        return out

    def is_univ(self, tag):
        return self.cls == 0 and self.tag == tag


def der_read(data, pos, limit=None):
    limit = len(data) if limit is None else limit
    start = pos
    if pos >= limit:
        raise DERError("asn1: syntax error: data truncated")
    b = data[pos]
    pos += 1
    cls, cons, tag = b >> 6, bool(b & 0x20), b & 0x1F
    if tag == 0x1F:
        tag = 0
        while True:
            if pos >= limit:
                raise DERError("asn1: syntax error: data truncated")
            c = data[pos]
            pos += 1
            tag = (tag << 7) | (c & 0x7F)
            if not c & 0x80:
                break
    if pos >= limit:
        raise DERError("asn1: syntax error: data truncated")
    ln = data[pos]
    pos += 1
    if ln & 0x80:
        n = ln & 0x7F
        if n == 0:
            raise DERError("asn1: syntax error: indefinite length found (not DER)")
        if n > 4 or pos + n > limit:
            raise DERError("asn1: syntax error: data truncated")
        ln = int.from_bytes(data[pos:pos + n], "big")
        pos += n
    if pos + ln > limit:
        raise DERError("asn1: syntax error: data truncated")
    return Node(data, cls, cons, tag, start, pos, pos + ln)


def der_parse_one(data):
    n = der_read(data, 0)
    if n.end != len(data):
        raise DERError("asn1: syntax error: trailing data")
    return n


def der_oid(node):
    b = node.content
    if not b:
        raise DERError("asn1: syntax error: zero length OBJECT IDENTIFIER")
    vals, v = [], 0
    for c in b:
        v = (v << 7) | (c & 0x7F)
        if not c & 0x80:
            vals.append(v)
            v = 0
    first = vals[0]
    head = [0, first] if first < 40 else ([1, first - 40] if first < 80 else [2, first - 80])
    return ".".join(str(x) for x in head + vals[1:])


def der_string(node):
    b = node.content
    if node.tag == 30:
        return b.decode("utf-16-be", "replace")
    if node.tag == 28:
        return b.decode("utf-32-be", "replace")
    if node.tag == 20:
        return b.decode("latin-1")
    return b.decode("utf-8", "replace")


def der_time(node):
    s = node.content.decode("ascii", "replace")
    if node.tag == 23:  # UTCTime YYMMDDHHMMSSZ
        m = re.match(r"^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$", s)
        if not m:
            raise DERError("x509: malformed UTCTime")
        yy = int(m.group(1))
        year = 1900 + yy if yy >= 50 else 2000 + yy
        parts = [year] + [int(x) for x in m.groups()[1:]]
    elif node.tag == 24:
        m = re.match(r"^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$", s)
        if not m:
            raise DERError("x509: malformed GeneralizedTime")
        parts = [int(x) for x in m.groups()]
    else:
        raise DERError("x509: malformed validity")
    return datetime.datetime(*parts, tzinfo=datetime.timezone.utc).timestamp()


OID_CN, OID_O = "2.5.4.3", "2.5.4.10"
OID_SAN, OID_SKI, OID_EXTREQ = "2.5.29.17", "2.5.29.14", "1.2.840.113549.1.9.14"
PUBKEY_ALGS = {"1.2.840.113549.1.1.1": "RSA", "1.2.840.10045.2.1": "ECDSA", "1.3.101.112": "Ed25519",
               "1.2.840.10040.4.1": "DSA"}
EC_CURVES = {"1.2.840.10045.3.1.7": "P-256", "1.3.132.0.34": "P-384", "1.3.132.0.35": "P-521",
             "1.3.132.0.33": "P-224"}


def parse_name(node):
    rdns = []
    for rdnset in node.children():
        for atv in rdnset.children():
            kids = atv.children()
            rdns.append((der_oid(kids[0]), der_string(kids[1])))
    cn = ""
    orgs = []
    for oid, val in rdns:
        if oid == OID_CN:
            cn = val
        elif oid == OID_O:
            orgs.append(val)
    return {"raw": node.raw, "rdns": rdns, "cn": cn, "o": orgs}


def parse_spki(node):
    alg = node.children()[0].children()
    name = PUBKEY_ALGS.get(der_oid(alg[0]), der_oid(alg[0]))
    curve = ""
    if name == "ECDSA" and len(alg) > 1 and alg[1].is_univ(6):
        curve = EC_CURVES.get(der_oid(alg[1]), der_oid(alg[1]))
    return name, curve


def parse_general_names(octets):
    sans = {"dns": [], "ip": [], "email": [], "uri": []}
    seq = der_parse_one(octets)
    for gn in seq.children():
        if gn.cls != 2:
            continue
        if gn.tag == 1:
            sans["email"].append(gn.content.decode("ascii", "replace"))
        elif gn.tag == 2:
            sans["dns"].append(gn.content.decode("ascii", "replace"))
        elif gn.tag == 6:
            sans["uri"].append(gn.content.decode("ascii", "replace"))
        elif gn.tag == 7:
            if len(gn.content) not in (4, 16):
                raise DERError("x509: cannot parse IP address of length %d" % len(gn.content))
            sans["ip"].append(str(ipaddress.ip_address(gn.content)))
    return sans


def parse_extensions(node):
    exts = []
    for ext in node.children():
        kids = ext.children()
        oid = der_oid(kids[0])
        critical = False
        val = kids[-1]
        if len(kids) == 3 and kids[1].is_univ(1):
            critical = kids[1].content != b"\x00"
        exts.append((oid, critical, val.content))
    return exts


def parse_csr_der(der):
    """Parse a PKCS#10 request: subject, SANs, public key type."""
    root = der_parse_one(der)
    top = root.children()
    if len(top) != 3:
        raise DERError("asn1: structure error: sequence truncated")
    info = top[0].children()
    if len(info) < 3 or not info[0].is_univ(2):
        raise DERError("asn1: structure error: tags don't match")
    subject = parse_name(info[1])
    keyalg, curve = parse_spki(info[2])
    sans = {"dns": [], "ip": [], "email": [], "uri": []}
    exts = []
    for extra in info[3:]:
        if extra.cls == 2 and extra.tag == 0:
            for attr in extra.children():
                kids = attr.children()
                if der_oid(kids[0]) == OID_EXTREQ:
                    for v in kids[1].children():
                        exts.extend(parse_extensions(v))
    for oid, _crit, val in exts:
        if oid == OID_SAN:
            sans = parse_general_names(val)
    return {"subject": subject, "sans": sans, "keyalg": keyalg, "curve": curve, "extensions": exts}


def parse_cert_der(der):
    root = der_parse_one(der)
    tbs = root.children()[0].children()
    i = 0
    if tbs[0].cls == 2 and tbs[0].tag == 0:
        i = 1
    issuer = parse_name(tbs[i + 2])
    validity = tbs[i + 3].children()
    subject = parse_name(tbs[i + 4])
    keyalg, curve = parse_spki(tbs[i + 5])
    ski = b""
    for extra in tbs[i + 6:]:
        if extra.cls == 2 and extra.tag == 3:
            for oid, _crit, val in parse_extensions(extra.children()[0]):
                if oid == OID_SKI:
                    ski = der_parse_one(val).content
    return {"issuer": issuer, "subject": subject, "not_before": der_time(validity[0]),
            "not_after": der_time(validity[1]), "keyalg": keyalg, "curve": curve, "ski": ski}


# --------------------------------------------------------------------------
# PEM (encoding/pem.Decode semantics, simplified)

PEM_BEGIN = re.compile(rb"(?:^|\n)-----BEGIN ([^\n]*?)-----[ \t\r]*\n")


def pem_blocks(data):
    """Yield (type, headers, der) for each well-formed PEM block, like repeated pem.Decode."""
    pos = 0
    while True:
        m = PEM_BEGIN.search(data, pos)
        if not m:
            return
        typ = m.group(1).decode("latin-1")
        body_start = m.end()
        end_marker = b"\n-----END " + m.group(1) + b"-----"
        idx = data.find(end_marker, body_start - 1)
        if idx < 0:
            pos = m.end()
            continue
        body = data[body_start:idx + 1]
        headers = {}
        lines = body.split(b"\n")
        k = 0
        while k < len(lines) and b":" in lines[k]:
            key, _, val = lines[k].partition(b":")
            headers[key.strip().decode("latin-1")] = val.strip().decode("latin-1")
            k += 1
        if headers and k < len(lines) and lines[k].strip() == b"":
            k += 1
        b64 = b"".join(x.strip() for x in lines[k:])
        try:
            der = base64.b64decode(b64, validate=True)
        except ValueError:
            pos = m.end()
            continue
        yield typ, headers, der
        pos = idx + len(end_marker)


def pem_decode_first(data):
    for blk in pem_blocks(data):
        return blk
    return None


def pem_encode(typ, der):
    b64 = base64.b64encode(der).decode()
    lines = [b64[i:i + 64] for i in range(0, len(b64), 64)]
    return ("-----BEGIN %s-----\n%s\n-----END %s-----\n" % (typ, "\n".join(lines), typ)).encode()


# --------------------------------------------------------------------------
# openssl helpers

def openssl(args, data=None, timeout=30):
    return subprocess.run(["openssl"] + args, input=data, capture_output=True, timeout=timeout)


_CSR_CACHE = {}
_CSR_CACHE_LOCK = threading.Lock()


def parse_csr(request_bytes):
    """certificates.ParseCSR + CheckSignature.  Returns (parsed, error_string)."""
    key = hashlib.sha256(request_bytes or b"").digest() + (b"n" if request_bytes is None else b"b")
    with _CSR_CACHE_LOCK:
        if key in _CSR_CACHE:
            return _CSR_CACHE[key]
    result = _parse_csr_uncached(request_bytes)
    with _CSR_CACHE_LOCK:
        if len(_CSR_CACHE) > 1000:
            _CSR_CACHE.clear()
        _CSR_CACHE[key] = result
    return result


def _parse_csr_uncached(request_bytes):
    blk = pem_decode_first(request_bytes or b"")
    if blk is None or blk[0] != "CERTIFICATE REQUEST":
        return None, "PEM block type must be CERTIFICATE REQUEST"
    der = blk[2]
    try:
        parsed = parse_csr_der(der)
    except (DERError, IndexError, ValueError) as e:
        msg = str(e) if isinstance(e, DERError) else "asn1: structure error: " + str(e)
        return None, msg
    r = openssl(["req", "-inform", "DER", "-noout", "-verify"], der)
    out = (r.stdout + r.stderr).decode("utf-8", "replace")
    if r.returncode != 0 or "verify OK" not in out:
        if "unable to load" in out or "Could not read" in out or "error" in out.lower() and "verify" not in out.lower():
            return None, "asn1: structure error: malformed certificate request"
        return None, {"RSA": "crypto/rsa: verification error",
                      "ECDSA": "x509: ECDSA verification failure",
                      "Ed25519": "x509: Ed25519 verification failure"}.get(
                          parsed["keyalg"], "x509: signature verification failure")
    parsed["der"] = der
    return parsed, None


def validate_certificate_pem(pem_data):
    """validation.validateCertificate: PEM CERTIFICATE blocks only, each parses."""
    if not pem_data:
        return None
    blocks = 0
    for typ, headers, der in pem_blocks(pem_data):
        if typ != "CERTIFICATE":
            return "only CERTIFICATE PEM blocks are allowed, found %s" % go_quote(typ)
        if headers:
            return "no PEM block headers are permitted"
        blocks += 1
        r = openssl(["x509", "-inform", "DER", "-noout"], der)
        if r.returncode != 0:
            return "x509: malformed certificate"
    if blocks == 0:
        return "must contain at least one CERTIFICATE PEM block"
    return None


def read_cert_file(path):
    """Parse every CERTIFICATE block of a PEM file."""
    with open(path, "rb") as f:
        data = f.read()
    out = []
    for typ, _h, der in pem_blocks(data):
        if typ == "CERTIFICATE":
            info = parse_cert_der(der)
            info["der"] = der
            out.append(info)
    if not out:
        raise ValueError("%s: no CERTIFICATE PEM block" % path)
    return out


# --------------------------------------------------------------------------
# object schema: JSON decoding with Go semantics (unknown fields, types,
# omitempty encoding)

class DecodeError(Exception):
    pass


class S:
    """Schema node."""

    def __init__(self, kind, go, elem=None, fields=None, omitempty=True):
        self.kind = kind          # str int32 int64 bool bytes time any list map struct
        self.go = go              # Go type name for error messages
        self.elem = elem
        self.fields = fields or []  # [(jsonname, S, omitempty)]


def struct(go, fields):
    return S("struct", go, fields=fields)


STR = S("str", "string")
INT32 = S("int32", "int32")
INT64 = S("int64", "int64")
BOOL = S("bool", "bool")
BYTES = S("bytes", "[]uint8")
TIME = S("time", "v1.Time")
ANY = S("any", "v1.FieldsV1")


def list_of(e, go=None):
    return S("list", go or "[]" + e.go, elem=e)


def map_of(e, go=None):
    return S("map", go or "map[string]" + e.go, elem=e)


OWNER_REF = struct("OwnerReference", [
    ("apiVersion", STR, False), ("kind", STR, False), ("name", STR, False), ("uid", STR, False),
    ("controller", BOOL, True), ("blockOwnerDeletion", BOOL, True)])
MANAGED_FIELDS = struct("ManagedFieldsEntry", [
    ("manager", STR, True), ("operation", STR, True), ("apiVersion", STR, True), ("time", TIME, True),
    ("fieldsType", STR, True), ("fieldsV1", ANY, True), ("subresource", STR, True)])
OBJECT_META = struct("ObjectMeta", [
    ("name", STR, True), ("generateName", STR, True), ("namespace", STR, True), ("selfLink", STR, True),
    ("uid", STR, True), ("resourceVersion", STR, True), ("generation", INT64, True),
    ("creationTimestamp", TIME, "null"), ("deletionTimestamp", TIME, True),
    ("deletionGracePeriodSeconds", INT64, True), ("labels", map_of(STR), True),
    ("annotations", map_of(STR), True), ("ownerReferences", list_of(OWNER_REF), True),
    ("finalizers", list_of(STR), True), ("managedFields", list_of(MANAGED_FIELDS), True)])
CSR_SPEC = struct("CertificateSigningRequestSpec", [
    ("request", BYTES, False), ("signerName", STR, False), ("expirationSeconds", INT32, True),
    ("usages", list_of(STR, "[]v1.KeyUsage"), True), ("username", STR, True), ("uid", STR, True),
    ("groups", list_of(STR), True), ("extra", map_of(list_of(STR), "map[string]v1.ExtraValue"), True)])
CSR_CONDITION = struct("CertificateSigningRequestCondition", [
    ("type", STR, False), ("status", STR, False), ("reason", STR, True), ("message", STR, True),
    ("lastUpdateTime", TIME, True), ("lastTransitionTime", TIME, True)])
CSR_STATUS = struct("CertificateSigningRequestStatus", [
    ("conditions", list_of(CSR_CONDITION), True), ("certificate", BYTES, True)])
CSR = struct("CertificateSigningRequest", [
    ("kind", STR, True), ("apiVersion", STR, True), ("metadata", OBJECT_META, "struct"),
    ("spec", CSR_SPEC, "struct"), ("status", CSR_STATUS, "struct")])
DELETE_OPTIONS = struct("DeleteOptions", [
    ("kind", STR, True), ("apiVersion", STR, True), ("gracePeriodSeconds", INT64, True),
    ("preconditions", struct("Preconditions", [("uid", STR, True), ("resourceVersion", STR, True)]), True),
    ("orphanDependents", BOOL, True), ("propagationPolicy", STR, True), ("dryRun", list_of(STR), True)])


def _jtype(v):
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    return "object"


class Decoder:
    def __init__(self, root_go):
        self.unknown = []
        self.root_go = root_go

    def fail(self, v, schema, path, parent_go):
        what = _jtype(v)
        if what == "number" and schema.kind in ("int32", "int64"):
            what = "number " + json.dumps(v)  # out of range or not an integer
        if path:
            raise DecodeError("json: cannot unmarshal %s into Go struct field %s.%s of type %s" % (
                what, parent_go, path, schema.go))
        raise DecodeError("json: cannot unmarshal %s into Go value of type %s" % (what, schema.go))

    def decode(self, v, schema, path="", parent_go=None, ipath=""):
        """Returns decoded value, or None for null/zero (caller drops the key)."""
        parent_go = parent_go or self.root_go
        k = schema.kind
        if v is None:
            return None
        if k == "str":
            if not isinstance(v, str):
                self.fail(v, schema, path, parent_go)
            return v
        if k in ("int32", "int64"):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or (isinstance(v, float) and not v.is_integer()):
                self.fail(v, schema, path, parent_go)
            v = int(v)
            lim = 2 ** 31 if k == "int32" else 2 ** 63
            if not -lim <= v < lim:
                self.fail(v, schema, path, parent_go)
            return v
        if k == "bool":
            if not isinstance(v, bool):
                self.fail(v, schema, path, parent_go)
            return v
        if k == "bytes":
            if not isinstance(v, str):
                self.fail(v, schema, path, parent_go)
            s = v.replace("\r", "").replace("\n", "")
            try:
                return base64.b64decode(s, validate=True)
            except Exception:
                bad = 0
                for i, ch in enumerate(s):
                    if not (ch.isalnum() or ch in "+/="):
                        bad = i
                        break
                else:
                    bad = len(s) - (len(s) % 4 or 4)
                raise DecodeError("illegal base64 data at input byte %d" % bad)
        if k == "time":
            if not isinstance(v, str):
                self.fail(v, schema, path, parent_go)
            try:
                return fmt_time(parse_time(v))
            except ValueError as e:
                raise DecodeError(str(e))
        if k == "any":
            return v
        if k == "list":
            if not isinstance(v, list):
                self.fail(v, schema, path, parent_go)
            out = []
            for i, item in enumerate(v):
                d = self.decode(item, schema.elem, path, parent_go, "%s[%d]" % (ipath, i))
                out.append(d if d is not None else zero_value(schema.elem))
            return out
        if k == "map":
            if not isinstance(v, dict):
                self.fail(v, schema, path, parent_go)
            out = {}
            for key, item in v.items():
                d = self.decode(item, schema.elem, path, parent_go, "%s.%s" % (ipath, key) if ipath else key)
                out[key] = d if d is not None else zero_value(schema.elem)
            return out
        if k == "struct":
            if not isinstance(v, dict):
                self.fail(v, schema, path, parent_go)
            out = {}
            names = {f[0]: f for f in schema.fields}
            for key, item in v.items():
                f = names.get(key)
                sub_i = "%s.%s" % (ipath, key) if ipath else key
                if f is None:
                    self.unknown.append(sub_i)
                    continue
                sub_path = "%s.%s" % (path, key) if path else key
                d = self.decode(item, f[1], sub_path, schema.go if schema.go != self.root_go else parent_go, sub_i)
                if d is not None:
                    out[key] = d
            return out
        raise AssertionError(k)


def zero_value(schema):
    return {"str": "", "int32": 0, "int64": 0, "bool": False, "bytes": b"", "time": None, "any": None,
            "list": [], "map": {}, "struct": {}}[schema.kind]


def encode(v, schema):
    k = schema.kind
    if k == "bytes":
        return None if v is None else base64.b64encode(v).decode()
    if k == "list":
        return [encode(x, schema.elem) for x in v]
    if k == "map":
        return {key: encode(x, schema.elem) for key, x in v.items()}
    if k == "struct":
        out = {}
        for name, sub, omit in schema.fields:
            val = v.get(name)
            if omit == "struct":
                out[name] = encode(val or {}, sub)
                continue
            if omit is True and _is_empty(val, sub):
                continue
            if omit == "null" and _is_empty(val, sub):
                out[name] = None
                continue
            out[name] = encode(val, sub) if val is not None else (None if sub.kind in ("bytes", "time", "list", "map", "any") else encode(zero_value(sub), sub))
        return out
    return v


def _is_empty(v, schema):
    if v is None:
        return True
    if schema.kind in ("str", "bytes", "list", "map"):
        return len(v) == 0
    if schema.kind in ("int32", "int64"):
        return v == 0
    if schema.kind == "bool":
        return v is False
    if schema.kind == "struct":
        return False
    return False


def parse_json_body(body):
    """json.loads keeping track of duplicate keys (returned as paths)."""
    dups = []

    def hook(pairs):
        d = {}
        for k, v in pairs:
            if k in d:
                dups.append(k)
            d[k] = v
        return d

    try:
        v = json.loads(body.decode("utf-8"), object_pairs_hook=hook)
    except (ValueError, UnicodeDecodeError) as e:
        raise DecodeError(str(e))
    return v, dups


def find_dup_paths(body):
    """Full paths of duplicate fields (best effort)."""
    out = []
    try:
        raw = json.loads(body.decode("utf-8"), object_pairs_hook=lambda pairs: ("__pairs__", pairs))
    except Exception:
        return out

    def walk(node, path):
        if isinstance(node, tuple) and len(node) == 2 and node[0] == "__pairs__":
            seen = set()
            for k, v in node[1]:
                p = "%s.%s" % (path, k) if path else k
                if k in seen:
                    out.append(p)
                seen.add(k)
                walk(v, p)
        elif isinstance(node, list):
            for i, x in enumerate(node):
                walk(x, "%s[%d]" % (path, i))

    walk(raw, "")
    return out


def decode_csr_json(body):
    """Decode a JSON request body to the internal CSR dict.

    Returns (obj, unknown_fields, duplicate_fields).  Raises APIError(400)."""
    try:
        raw, dups = parse_json_body(body)
    except DecodeError as e:
        raise err_bad_request("couldn't get version/kind; json parse error: %s" % e)
    dup_paths = find_dup_paths(body) if dups else []
    return decode_csr_value(raw, dup_paths)


def decode_csr_value(raw, dup_paths=()):
    if not isinstance(raw, dict):
        raise err_bad_request("couldn't get version/kind; json parse error: json: cannot unmarshal %s into Go value of type struct { APIVersion string \"json:\\\"apiVersion,omitempty\\\"\"; Kind string \"json:\\\"kind,omitempty\\\"\" }" % _jtype(raw))
    kind = raw.get("kind") or ""
    api_version = raw.get("apiVersion") or ""
    if kind and kind != KIND:
        raise err_bad_request("%s in version \"%s\" cannot be handled as a %s: no kind \"%s\" is registered for version \"%s\" in scheme \"k8s.io/kubernetes/pkg/api/legacyscheme/scheme.go:30\"" % (
            kind, api_version.split("/")[-1] or VERSION, KIND, kind, api_version or GROUP_VERSION))
    if api_version and api_version != GROUP_VERSION:
        raise err_bad_request("the API version in the data (%s) does not match the expected API version (%s)" % (
            api_version, GROUP_VERSION))
    dec = Decoder(KIND)
    try:
        obj = dec.decode(raw, CSR)
    except DecodeError as e:
        raise err_bad_request('%s in version "%s" cannot be handled as a %s: %s' % (KIND, VERSION, KIND, e))
    obj["kind"], obj["apiVersion"] = KIND, GROUP_VERSION
    obj.setdefault("metadata", {})
    obj.setdefault("spec", {})
    obj.setdefault("status", {})
    return obj, dec.unknown, list(dup_paths)


def csr_to_json(obj, with_type=True):
    out = encode(obj, CSR)
    if with_type:
        out["kind"], out["apiVersion"] = KIND, GROUP_VERSION
    else:
        out.pop("kind", None)
        out.pop("apiVersion", None)
    return out


def canonical(obj):
    o = csr_to_json(obj)
    o["metadata"].pop("resourceVersion", None)
    o["metadata"].pop("managedFields", None)
    return json.dumps(o, sort_keys=True)


# --------------------------------------------------------------------------
# protobuf (application/vnd.kubernetes.protobuf) decoding of a CSR

PB_MAGIC = b"k8s\x00"


class PBError(Exception):
    pass


def pb_varint(buf, pos):
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise PBError("unexpected EOF")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise PBError("varint overflow")


def pb_fields(buf):
    pos = 0
    out = []
    while pos < len(buf):
        key, pos = pb_varint(buf, pos)
        fn, wt = key >> 3, key & 7
        if wt == 0:
            v, pos = pb_varint(buf, pos)
        elif wt == 1:
            v, pos = buf[pos:pos + 8], pos + 8
        elif wt == 2:
            ln, pos = pb_varint(buf, pos)
            if pos + ln > len(buf):
                raise PBError("unexpected EOF")
            v, pos = buf[pos:pos + ln], pos + ln
        elif wt == 5:
            v, pos = buf[pos:pos + 4], pos + 4
        else:
            raise PBError("illegal wireType %d" % wt)
        if pos > len(buf):
            raise PBError("unexpected EOF")
        out.append((fn, wt, v))
    return out


def pb_signed(v, bits=64):
    if v >= 1 << 63:
        v -= 1 << 64
    if bits == 32:
        v = ((v + 2 ** 31) % 2 ** 32) - 2 ** 31
    return v


def pb_str(v):
    return v.decode("utf-8")


def pb_time(buf):
    """metav1.Time: an empty message is the zero time (None)."""
    if not buf:
        return None
    secs = 0
    for fn, wt, v in pb_fields(buf):
        if fn == 1 and wt == 0:
            secs = pb_signed(v)
    return fmt_time(secs)


def pb_map_entry(buf):
    k, v = "", b""
    for fn, wt, val in pb_fields(buf):
        if fn == 1:
            k = pb_str(val)
        elif fn == 2:
            v = val
    return k, v


def pb_object_meta(buf):
    m = {}
    strs = {1: "name", 2: "generateName", 3: "namespace", 4: "selfLink", 5: "uid", 6: "resourceVersion"}
    for fn, wt, v in pb_fields(buf):
        if fn in strs and wt == 2:
            s = pb_str(v)
            if s:
                m[strs[fn]] = s
        elif fn == 7 and wt == 0:
            m["generation"] = pb_signed(v)
        elif fn in (8, 9) and wt == 2:
            t = pb_time(v)
            if t:
                m["creationTimestamp" if fn == 8 else "deletionTimestamp"] = t
        elif fn == 10 and wt == 0:
            m["deletionGracePeriodSeconds"] = pb_signed(v)
        elif fn in (11, 12) and wt == 2:
            k, val = pb_map_entry(v)
            m.setdefault("labels" if fn == 11 else "annotations", {})[k] = pb_str(val)
        elif fn == 13 and wt == 2:
            ref = {}
            for f2, w2, v2 in pb_fields(v):
                name = {1: "kind", 3: "name", 4: "uid", 5: "apiVersion"}.get(f2)
                if name:
                    ref[name] = pb_str(v2)
                elif f2 == 6:
                    ref["controller"] = bool(v2)
                elif f2 == 7:
                    ref["blockOwnerDeletion"] = bool(v2)
            m.setdefault("ownerReferences", []).append(ref)
        elif fn == 14 and wt == 2:
            m.setdefault("finalizers", []).append(pb_str(v))
    return m


def pb_csr(buf):
    obj = {"kind": KIND, "apiVersion": GROUP_VERSION, "metadata": {}, "spec": {}, "status": {}}
    for fn, wt, v in pb_fields(buf):
        if fn == 1 and wt == 2:
            obj["metadata"] = pb_object_meta(v)
        elif fn == 2 and wt == 2:
            spec = obj["spec"]
            for f2, w2, v2 in pb_fields(v):
                if f2 == 1:
                    spec["request"] = bytes(v2)
                elif f2 in (2, 3, 7):
                    spec[{2: "username", 3: "uid", 7: "signerName"}[f2]] = pb_str(v2)
                elif f2 == 4:
                    spec.setdefault("groups", []).append(pb_str(v2))
                elif f2 == 5:
                    spec.setdefault("usages", []).append(pb_str(v2))
                elif f2 == 6:
                    k, val = pb_map_entry(v2)
                    spec.setdefault("extra", {})[k] = [pb_str(x) for f3, _w, x in pb_fields(val) if f3 == 1]
                elif f2 == 8 and w2 == 0:
                    spec["expirationSeconds"] = pb_signed(v2, 32)
        elif fn == 3 and wt == 2:
            status = obj["status"]
            for f2, w2, v2 in pb_fields(v):
                if f2 == 1:
                    cond = {}
                    for f3, w3, v3 in pb_fields(v2):
                        if f3 in (1, 2, 3, 6):
                            s = pb_str(v3)
                            if s or f3 in (1, 6):
                                cond[{1: "type", 2: "reason", 3: "message", 6: "status"}[f3]] = s
                        elif f3 in (4, 5):
                            t = pb_time(v3)
                            if t:
                                cond["lastUpdateTime" if f3 == 4 else "lastTransitionTime"] = t
                    status.setdefault("conditions", []).append(cond)
                elif f2 == 2:
                    status["certificate"] = bytes(v2)
    return obj


def decode_csr_protobuf(body):
    if not body.startswith(PB_MAGIC):
        raise err_bad_request("provided data does not appear to be a protobuf message, expected prefix [107 56 115 0]")
    try:
        type_meta, raw = {}, None
        for fn, wt, v in pb_fields(body[4:]):
            if fn == 1 and wt == 2:
                for f2, _w, v2 in pb_fields(v):
                    if f2 in (1, 2):
                        type_meta["apiVersion" if f2 == 1 else "kind"] = pb_str(v2)
            elif fn == 2 and wt == 2:
                raw = v
        if type_meta.get("kind") not in (None, "", KIND) or type_meta.get("apiVersion") not in (None, "", GROUP_VERSION):
            raise err_bad_request("the API version in the data (%s) does not match the expected API version (%s)" % (
                type_meta.get("apiVersion"), GROUP_VERSION) if type_meta.get("kind") in (None, "", KIND)
                else "%s in version \"%s\" cannot be handled as a %s" % (type_meta.get("kind"), VERSION, KIND))
        obj = pb_csr(raw or b"")
    except (PBError, UnicodeDecodeError, IndexError) as e:
        raise err_bad_request('%s in version "%s" cannot be handled as a %s: %s' % (KIND, VERSION, KIND, e))
    return obj, [], []


# --------------------------------------------------------------------------
# validation (pkg/apis/certificates/validation, pkg/apis/core/validation)

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def is_dns1123_label(v):
    errs = []
    if len(v) > 63:
        errs.append("must be no more than 63 characters")
    if not DNS1123_LABEL.match(v):
        errs.append("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')")
    return errs


def is_dns1123_subdomain(v):
    errs = []
    if len(v) > 253:
        errs.append("must be no more than 253 characters")
    if not DNS1123_SUBDOMAIN.match(v):
        errs.append("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")
    return errs


def is_qualified_name(v):
    errs = []
    parts = v.split("/")
    if len(parts) == 1:
        name = parts[0]
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            errs.append("prefix part must be non-empty")
        else:
            errs.extend("prefix part " + m for m in is_dns1123_subdomain(prefix))
    else:
        return ["a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"]
    if not name:
        errs.append("name part must be non-empty")
    elif len(name) > 63:
        errs.append("name part must be no more than 63 characters")
    if name and not QUALIFIED_NAME.match(name):
        errs.append("name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')")
    return errs


def validate_signer_name(path, signer):
    """apivalidation.ValidateSignerName."""
    if not signer:
        return [fe_required(path)]
    el = []
    segments = signer.split("/")
    if len(segments) != 2:
        return [fe_invalid(path, signer, "must be a fully qualified domain and path of the form 'example.com/signer-name'")]
    if len(segments[0]) > 253:
        el.append(fe_too_long(path, 253))
    labels = segments[0].split(".")
    for lbl in labels:
        errs = is_dns1123_label(lbl)
        if errs:
            for e in errs:
                el.append(fe_invalid(path, segments[0], "validating label %s: %s" % (go_quote(lbl), e)))
            break
    if len(labels) < 2:
        el.append(fe_invalid(path, segments[0], "should be a domain with at least two segments separated by dots"))
    for lbl in segments[1].split("."):
        errs = is_dns1123_subdomain(lbl)
        if errs:
            for e in errs:
                el.append(fe_invalid(path, segments[1], "validating label %s: %s" % (go_quote(lbl), e)))
            break
    if len(signer) > 253 + 253 + 63 + 1 + 1:
        el.append(fe_too_long(path, 253 + 253 + 63 + 1 + 1))
    return el


def path_segment_errors(name):
    """path.IsValidPathSegmentName."""
    if name in (".", ".."):
        return ["may not be '%s'" % name]
    return ["may not contain '%s'" % c for c in ("/", "%") if c in name]


def validate_object_meta(meta, is_create):
    errs = []
    if not meta.get("name"):
        errs.append(fe_required("metadata.name", "name or generateName is required"))
    if meta.get("namespace"):
        errs.append(fe_forbidden("metadata.namespace", "not allowed on this type"))
    for k, v in (meta.get("labels") or {}).items():
        for m in is_qualified_name(k):
            errs.append(fe_invalid("metadata.labels", k, m))
        if len(v) > 63:
            errs.append(fe_invalid("metadata.labels", v, "must be no more than 63 characters"))
        elif not LABEL_VALUE.match(v):
            errs.append(fe_invalid("metadata.labels", v, "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"))
    total = 0
    for k, v in (meta.get("annotations") or {}).items():
        for m in is_qualified_name(k.lower()):
            errs.append(fe_invalid("metadata.annotations", k, m))
        total += len(k) + len(v)
    if total > 256 * 1024:
        errs.append(fe_too_long("metadata.annotations", 256 * 1024))
    for i, f in enumerate(meta.get("finalizers") or []):
        for m in is_qualified_name(f):
            errs.append(fe_invalid("metadata.finalizers[%d]" % i, f, m))
    return errs


def conditions_of(obj, typ):
    return [c for c in (obj.get("status", {}).get("conditions") or []) if c.get("type") == typ]


class ValidationOptions:
    def __init__(self):
        self.allow_setting_approval_conditions = False
        self.allow_setting_certificate = False
        self.allow_both_approved_and_denied = False
        self.allow_resetting_certificate = False
        self.allow_legacy_signer_name = False
        self.allow_duplicate_condition_types = False
        self.allow_empty_condition_type = False
        self.allow_arbitrary_certificate = False
        self.allow_unknown_usages = False
        self.allow_duplicate_usages = False


def validation_options(new, old):
    o = ValidationOptions()
    if old is not None:
        types = [c.get("type", "") for c in (old["status"].get("conditions") or [])]
        o.allow_both_approved_and_denied = "Approved" in types and "Denied" in types
        o.allow_legacy_signer_name = old["spec"].get("signerName") == LEGACY_UNKNOWN
        o.allow_duplicate_condition_types = len(types) != len(set(types))
        o.allow_empty_condition_type = "" in types
        old_cert = old["status"].get("certificate") or b""
        new_cert = new["status"].get("certificate") or b""
        o.allow_arbitrary_certificate = old_cert == new_cert or validate_certificate_pem(old_cert) is not None
        usages = old["spec"].get("usages") or []
        o.allow_unknown_usages = any(u not in ALL_USAGES for u in usages)
        o.allow_duplicate_usages = len(usages) != len(set(usages))
    return o


def validate_csr(obj, opts, is_create):
    errs = validate_object_meta(obj["metadata"], is_create)
    spec = obj["spec"]
    _parsed, perr = parse_csr(spec.get("request"))
    if perr:
        errs.append(fe_invalid("spec.request", GoBytes(spec.get("request")), perr))
    usages = spec.get("usages") or []
    if not usages:
        errs.append(fe_required("spec.usages"))
    if not opts.allow_unknown_usages:
        for i, u in enumerate(usages):
            if u not in ALL_USAGES:
                errs.append(fe_not_supported("spec.usages[%d]" % i, u, ALL_USAGES))
    if not opts.allow_duplicate_usages:
        seen = set()
        for i, u in enumerate(usages):
            if u in seen:
                errs.append(fe_duplicate("spec.usages[%d]" % i, u))
            seen.add(u)
    signer = spec.get("signerName", "")
    if not opts.allow_legacy_signer_name and signer == LEGACY_UNKNOWN:
        errs.append(fe_invalid("spec.signerName", signer, "the legacy signerName is not allowed via this API version"))
    else:
        errs.extend(validate_signer_name("spec.signerName", signer))
    exp = spec.get("expirationSeconds")
    if exp is not None and exp < 600:
        errs.append(fe_invalid("spec.expirationSeconds", exp, "may not specify a duration less than 600 seconds (10 minutes)"))
    errs.extend(validate_conditions(obj, opts))
    if not opts.allow_arbitrary_certificate:
        cerr = validate_certificate_pem(obj["status"].get("certificate") or b"")
        if cerr:
            errs.append(fe_invalid("status.certificate", "<certificate data>", cerr))
    return errs


def validate_conditions(obj, opts):
    errs = []
    seen = set()
    has_approved = has_denied = False
    for i, c in enumerate(obj["status"].get("conditions") or []):
        p = "status.conditions[%d]" % i
        typ = c.get("type", "")
        st = c.get("status", "")
        if not opts.allow_empty_condition_type and not typ:
            errs.append(fe_required(p + ".type"))
        allowed = ["True"] if typ in ("Approved", "Denied", "Failed") else ["False", "True", "Unknown"]
        if st == "":
            errs.append(fe_required(p + ".status"))
        elif st not in allowed:
            errs.append(fe_not_supported(p + ".status", st, allowed))
        if not opts.allow_both_approved_and_denied:
            if typ == "Approved":
                has_approved = True
                if has_denied:
                    errs.append(fe_invalid(p + ".type", typ, "Approved and Denied conditions are mutually exclusive"))
            elif typ == "Denied":
                has_denied = True
                if has_approved:
                    errs.append(fe_invalid(p + ".type", typ, "Approved and Denied conditions are mutually exclusive"))
        if not opts.allow_duplicate_condition_types:
            if typ in seen:
                errs.append(fe_duplicate(p + ".type", typ))
            seen.add(typ)
    return errs


def validate_csr_update(new, old, opts):
    errs = validate_csr(new, opts, False)
    for t in ("Approved", "Denied", "Failed"):
        if len(conditions_of(new, t)) < len(conditions_of(old, t)):
            errs.append(fe_forbidden("status.conditions", "updates may not remove a condition of type %s" % go_quote(t)))
    if not opts.allow_setting_approval_conditions:
        for t in ("Approved", "Denied"):
            oc, nc = conditions_of(old, t), conditions_of(new, t)
            if len(nc) > len(oc):
                errs.append(fe_forbidden("status.conditions", "updates may not add a condition of type %s" % go_quote(t)))
            elif len(nc) == len(oc) and nc != oc:
                errs.append(fe_forbidden("status.conditions", "updates may not modify a condition of type %s\n%s" % (
                    go_quote(t), _cond_diff(oc, nc))))
    old_cert = old["status"].get("certificate") or b""
    new_cert = new["status"].get("certificate") or b""
    if old_cert != new_cert:
        if not opts.allow_setting_certificate:
            errs.append(fe_forbidden("status.certificate", "updates may not set certificate content"))
        elif not opts.allow_resetting_certificate and old_cert:
            errs.append(fe_forbidden("status.certificate", "updates may not modify existing certificate content"))
    # ValidateObjectMetaUpdate
    om, nm = old["metadata"], new["metadata"]
    if nm.get("deletionTimestamp") and len(nm.get("finalizers") or []) > 0:
        added = [f for f in nm.get("finalizers") or [] if f not in (om.get("finalizers") or [])]
        if added and om.get("deletionTimestamp"):
            errs.append(fe_forbidden("metadata.finalizers", "no new finalizers can be added if the object is being deleted, found new finalizers %s" % json.dumps(added)))
    return errs


def _cond_diff(old, new):
    return "  []certificates.CertificateSigningRequestCondition{\n-\t%s,\n+\t%s,\n  }\n" % (json.dumps(old), json.dumps(new))


# --------------------------------------------------------------------------
# strategies (pkg/registry/certificates/certificates/strategy.go)

def populate_condition_timestamps(new, old):
    now = now_time()
    for c in new["status"].get("conditions") or []:
        if not c.get("lastUpdateTime"):
            c["lastUpdateTime"] = now
        if not c.get("lastTransitionTime"):
            lt = now
            for oc in old["status"].get("conditions") or []:
                if oc.get("type") == c.get("type") and oc.get("status") == c.get("status") and oc.get("lastTransitionTime"):
                    lt = oc["lastTransitionTime"]
                    break
            c["lastTransitionTime"] = lt


def preserve_condition_instances(new, old, typ):
    old_idx = [i for i, c in enumerate(old["status"].get("conditions") or []) if c.get("type") == typ]
    new_idx = [i for i, c in enumerate(new["status"].get("conditions") or []) if c.get("type") == typ]
    if len(old_idx) != len(new_idx):
        return False
    for oi, ni in zip(old_idx, new_idx):
        new["status"]["conditions"][ni] = copy.deepcopy(old["status"]["conditions"][oi])
    return True


def prepare_for_update(sub, new, old):
    if sub == "":
        new["spec"] = copy.deepcopy(old["spec"])
        new["status"] = copy.deepcopy(old["status"])
    elif sub == "status":
        new["spec"] = copy.deepcopy(old["spec"])
        preserve_condition_instances(new, old, "Approved")
        preserve_condition_instances(new, old, "Denied")
        populate_condition_timestamps(new, old)
    elif sub == "approval":
        populate_condition_timestamps(new, old)
        conds = new["status"].get("conditions")
        new["spec"] = copy.deepcopy(old["spec"])
        new["status"] = copy.deepcopy(old["status"])
        if conds:
            new["status"]["conditions"] = conds
        else:
            new["status"].pop("conditions", None)


def validate_update(sub, new, old):
    opts = validation_options(new, old)
    if sub == "status":
        opts.allow_setting_certificate = True
    elif sub == "approval":
        opts.allow_setting_approval_conditions = True
    return validate_csr_update(new, old, opts)


# --------------------------------------------------------------------------
# selectors

class SelectorError(Exception):
    pass


def parse_label_selector(s):
    """labels.Parse: returns a list of (key, op, values)."""
    reqs = []
    s = s or ""
    pos = 0
    n = len(s)

    def skip_ws():
        nonlocal pos
        while pos < n and s[pos] in " \t":
            pos += 1

    def read_ident():
        nonlocal pos
        skip_ws()
        start = pos
        while pos < n and s[pos] not in " \t,=!()<>":
            pos += 1
        return s[start:pos]

    while True:
        skip_ws()
        if pos >= n:
            break
        neg = False
        if s[pos] == "!":
            neg = True
            pos += 1
        key = read_ident()
        if not key:
            raise SelectorError("found '%s', expected: identifier" % (s[pos] if pos < n else "EOS"))
        errs = is_qualified_name(key)
        if errs:
            raise SelectorError("unable to parse requirement: <nil>: Invalid value: %s: %s" % (go_quote(key), errs[0]))
        skip_ws()
        if neg:
            reqs.append((key, "!", []))
        elif pos >= n or s[pos] == ",":
            reqs.append((key, "exists", []))
        elif s.startswith("==", pos) or s.startswith("!=", pos):
            op = s[pos:pos + 2]
            pos += 2
            reqs.append((key, "=" if op == "==" else "!=", [read_ident()]))
        elif s[pos] == "=":
            pos += 1
            reqs.append((key, "=", [read_ident()]))
        elif s[pos] in "<>":
            op = s[pos]
            pos += 1
            v = read_ident()
            try:
                int(v)
            except ValueError:
                raise SelectorError("unable to parse requirement: for 'Gt', 'Lt' operators, the value must be an integer")
            reqs.append((key, op, [v]))
        else:
            word = read_ident()
            if word not in ("in", "notin"):
                raise SelectorError("found '%s', expected: '=', '!=', '==', 'in', notin'" % word)
            skip_ws()
            if pos >= n or s[pos] != "(":
                raise SelectorError("found '%s', expected: '('" % (s[pos] if pos < n else "EOS"))
            pos += 1
            end = s.find(")", pos)
            if end < 0:
                raise SelectorError("found 'EOS', expected: ')'")
            vals = [v.strip() for v in s[pos:end].split(",")]
            pos = end + 1
            reqs.append((key, word, vals))
        skip_ws()
        if pos < n:
            if s[pos] != ",":
                raise SelectorError("found '%s', expected: ',' or 'end of string'" % s[pos])
            pos += 1
    return reqs


def label_match(reqs, labels):
    labels = labels or {}
    for key, op, vals in reqs:
        has = key in labels
        v = labels.get(key)
        if op == "exists" and not has:
            return False
        if op == "!" and has:
            return False
        if op == "=" and (not has or v != vals[0]):
            return False
        if op == "!=" and has and v == vals[0]:
            return False
        if op == "in" and (not has or v not in vals):
            return False
        if op == "notin" and has and v in vals:
            return False
        if op in "<>":
            try:
                iv = int(v)
            except (TypeError, ValueError):
                return False
            if (op == ">" and not iv > int(vals[0])) or (op == "<" and not iv < int(vals[0])):
                return False
    return True


FIELD_LABELS = ("metadata.name", "spec.signerName")


def parse_field_selector(s):
    reqs = []
    if not s:
        return reqs
    parts, cur, esc = [], [], False
    for ch in s:
        if esc:
            cur.append("\\" + ch)
            esc = False
        elif ch == "\\":
            esc = True
        elif ch == ",":
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    for p in parts:
        m = re.match(r"^([^=!]+)(==|=|!=)(.*)$", p)
        if not m:
            raise SelectorError("invalid selector: '%s'; can't understand '%s'" % (s, p))
        key, op, val = m.group(1).strip(), m.group(2), m.group(3)
        val = re.sub(r"\\(.)", r"\1", val)
        if key not in FIELD_LABELS:
            raise SelectorError('field label not supported: %s' % key)
        reqs.append((key, "!=" if op == "!=" else "=", val))
    return reqs


def field_match(reqs, obj):
    fields = {"metadata.name": obj["metadata"].get("name", ""), "spec.signerName": obj["spec"].get("signerName", "")}
    for key, op, val in reqs:
        if (op == "=") != (fields[key] == val):
            return False
    return True


# --------------------------------------------------------------------------
# Table output

def _col(name, desc, fmt=""):
    return {"name": name, "type": "string", "format": fmt, "description": desc, "priority": 0}


CSR_COLUMNS = [
    _col("Name", "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names", "name"),
    _col("Age", "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"),
    _col("SignerName", "signerName indicates the requested signer, and is a qualified name."),
    _col("Requestor", "request contains an x509 certificate signing request encoded in a \"CERTIFICATE REQUEST\" PEM block. When serialized as JSON or YAML, the data is additionally base64-encoded."),
    _col("RequestedDuration", "expirationSeconds is the requested duration of validity of the issued certificate. The certificate signer may issue a certificate with a different validity duration so a client must check the delta between the notBefore and and notAfter fields in the issued certificate to determine the actual duration."),
    _col("Condition", "conditions applied to the request. Known conditions are \"Approved\", \"Denied\", and \"Failed\"."),
]


def csr_condition_text(obj):
    """printers.extractCSRStatus."""
    types = {c.get("type") for c in obj["status"].get("conditions") or []}
    if "Denied" in types:
        s = "Denied"
    elif "Approved" in types:
        s = "Approved"
    else:
        s = "Pending"
    if "Failed" in types:
        s += ",Failed"
    if obj["status"].get("certificate"):
        s += ",Issued"
    return s


def csr_cells(obj):
    ts = obj["metadata"].get("creationTimestamp")
    age = human_duration(time.time() - parse_time(ts)) if ts else "<unknown>"
    exp = obj["spec"].get("expirationSeconds")
    return [obj["metadata"].get("name", ""), age, obj["spec"].get("signerName") or "<none>",
            obj["spec"].get("username", ""), human_duration(exp) if exp is not None else "<none>",
            csr_condition_text(obj)]


def partial_metadata(obj, meta_version="v1"):
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/" + meta_version,
            "metadata": encode(obj["metadata"], OBJECT_META)}


def make_table(objs, rv, fmt, headers=True, cont=None):
    include = fmt.get("includeObject") or "Metadata"
    rows = []
    for o in objs:
        row = {"cells": csr_cells(o)}
        if include == "Object":
            row["object"] = csr_to_json(o)
        elif include == "Metadata":
            row["object"] = partial_metadata(o, fmt.get("v", "v1"))
        else:
            row["object"] = None
        rows.append(row)
    meta = {"resourceVersion": str(rv)}
    if cont:
        meta["continue"] = cont
    t = {"kind": "Table", "apiVersion": "meta.k8s.io/" + fmt.get("v", "v1"), "metadata": meta}
    t["columnDefinitions"] = CSR_COLUMNS if headers else None
    t["rows"] = rows
    return t


# --------------------------------------------------------------------------
# storage with a watch event log

class Event:
    __slots__ = ("rv", "type", "obj", "prev")

    def __init__(self, rv, typ, obj, prev):
        self.rv, self.type, self.obj, self.prev = rv, typ, obj, prev


class Expired(Exception):
    pass


class Store:
    def __init__(self, history=2000):
        self.lock = threading.RLock()
        self.cond = threading.Condition(self.lock)
        self.objs = {}
        self.rv = 1
        self.events = collections.deque()
        self.history = history
        self.compacted = 0
        self.listeners = []
        self.closed = False

    def current_rv(self):
        with self.lock:
            return self.rv

    def get(self, name):
        with self.lock:
            o = self.objs.get(name)
            return copy.deepcopy(o) if o is not None else None

    def list(self):
        with self.lock:
            return [copy.deepcopy(self.objs[k]) for k in sorted(self.objs)], self.rv

    def commit(self, typ, obj, prev):
        """Write obj (None for delete of prev); bumps the resourceVersion."""
        with self.lock:
            self.rv += 1
            name = (obj or prev)["metadata"]["name"]
            if typ == "DELETED":
                stored = copy.deepcopy(prev)
                stored["metadata"]["resourceVersion"] = str(self.rv)
                del self.objs[name]
            else:
                obj["metadata"]["resourceVersion"] = str(self.rv)
                stored = copy.deepcopy(obj)
                self.objs[name] = stored
            ev = Event(self.rv, typ, stored, copy.deepcopy(prev) if prev is not None else None)
            self.events.append(ev)
            while len(self.events) > self.history:
                self.compacted = self.events.popleft().rv
            self.cond.notify_all()
            listeners = list(self.listeners)
        for fn in listeners:
            try:
                fn(ev)
            except Exception:
                log("listener failed: %s", traceback.format_exc())
        return copy.deepcopy(stored)

    def events_after(self, rv):
        with self.lock:
            if rv < self.compacted:
                raise Expired("too old resource version: %d (%d)" % (rv, self.compacted + 1))
            return [e for e in self.events if e.rv > rv]

    def close(self):
        with self.lock:
            self.closed = True
            self.cond.notify_all()


# --------------------------------------------------------------------------
# the csrsigning controller (pkg/controller/certificates/signer)

KEY_USAGE_BITS = {
    "signing": "digitalSignature", "digital signature": "digitalSignature",
    "content commitment": "nonRepudiation", "key encipherment": "keyEncipherment",
    "key agreement": "keyAgreement", "data encipherment": "dataEncipherment",
    "cert sign": "keyCertSign", "crl sign": "cRLSign", "encipher only": "encipherOnly",
    "decipher only": "decipherOnly",
}
# ordered as Go's x509.ExtKeyUsage constants (the signer sorts by them)
EXT_KEY_USAGES = [
    ("any", "anyExtendedKeyUsage"), ("server auth", "serverAuth"), ("client auth", "clientAuth"),
    ("code signing", "codeSigning"), ("email protection", "emailProtection"), ("s/mime", "emailProtection"),
    ("ipsec end system", "1.3.6.1.5.5.7.3.5"), ("ipsec tunnel", "1.3.6.1.5.5.7.3.6"),
    ("ipsec user", "1.3.6.1.5.5.7.3.7"), ("timestamping", "timeStamping"), ("ocsp signing", "OCSPSigning"),
    ("microsoft sgc", "1.3.6.1.4.1.311.10.3.3"), ("netscape sgc", "2.16.840.1.113730.4.1"),
]
KU_ORDER = ["digitalSignature", "nonRepudiation", "keyEncipherment", "dataEncipherment", "keyAgreement",
            "keyCertSign", "cRLSign", "encipherOnly", "decipherOnly"]


class SignError(Exception):
    pass


def _go_list(vals):
    return "[" + " ".join(vals) + "]"


def validate_for_signer(signer, parsed, usages):
    """Signer-specific request checks; returns an error string or None."""
    us = set(usages)
    sans = parsed["sans"]
    subj = parsed["subject"]
    if signer == KUBE_APISERVER_CLIENT:
        has_client = False
        for u in usages:
            if u in ("digital signature", "key encipherment"):
                continue
            if u == "client auth":
                has_client = True
                continue
            return "invalid usage for client certificate: %s" % u
        if not has_client:
            return "missing required usage for client certificate: client auth"
        return None
    if signer == KUBE_APISERVER_CLIENT_KUBELET:
        if subj["o"] != ["system:nodes"]:
            return "subject organization is not system:nodes"
        if sans["dns"]:
            return "DNS subjectAltNames are not allowed"
        if sans["email"]:
            return "Email subjectAltNames are not allowed"
        if sans["ip"]:
            return "IP subjectAltNames are not allowed"
        if sans["uri"]:
            return "URI subjectAltNames are not allowed"
        if not subj["cn"].startswith("system:node:"):
            return "subject common name does not begin with system:node:"
        if us not in ({"digital signature", "key encipherment", "client auth"}, {"digital signature", "client auth"}):
            return "usages did not match " + _go_list(["client auth", "digital signature", "key encipherment"])
        return None
    if signer == KUBELET_SERVING:
        if subj["o"] != ["system:nodes"]:
            return "subject organization is not system:nodes"
        if not sans["dns"] and not sans["ip"]:
            return "DNS or IP subjectAltName is required"
        if sans["email"]:
            return "Email subjectAltNames are not allowed"
        if sans["uri"]:
            return "URI subjectAltNames are not allowed"
        if us not in ({"digital signature", "key encipherment", "server auth"}, {"digital signature", "server auth"}):
            return "usages did not match " + _go_list(["digital signature", "key encipherment", "server auth"])
        if not subj["cn"].startswith("system:node:"):
            return "subject common name does not begin with system:node:"
        return None
    return None


def _cnf_escape(v):
    return re.sub(r'([\\#$"])', r"\\\1", v)


class LocalSigner:
    """kube-controller-manager --cluster-signing-cert-file/--cluster-signing-key-file."""

    def __init__(self, cert_file, key_file, duration):
        self.cert_file = cert_file
        self.key_file = key_file
        self.duration = duration
        read_cert_file(cert_file)  # fail early on a bad file
        if not os.path.exists(key_file):
            raise ValueError("%s: no such file" % key_file)

    def ttl(self, expiration_seconds):
        if expiration_seconds is None:
            return self.duration
        d = expiration_seconds
        if d > self.duration:
            return self.duration
        if d < 600:
            return 600
        return d

    def sign(self, parsed, usages, expiration_seconds):
        ca = read_cert_file(self.cert_file)[0]
        now = time.time()
        ttl = self.ttl(expiration_seconds)
        backdate, short = 5 * 60, 8 * 3600
        not_before = now - backdate
        not_after = now + ttl if ttl < short else now + ttl - backdate
        if not_after >= ca["not_after"]:
            not_after = ca["not_after"]
        ca_end = fmt_time(ca["not_after"])
        if not not_before < ca["not_after"]:
            raise SignError("the signer has expired: NotAfter=%s" % ca_end)
        if not now < ca["not_after"]:
            raise SignError("refusing to sign a certificate that expired in the past: NotAfter=%s" % ca_end)
        ku = [KEY_USAGE_BITS[u] for u in usages if u in KEY_USAGE_BITS]
        unknown = [u for u in usages if u not in KEY_USAGE_BITS and u not in dict(EXT_KEY_USAGES)]
        if unknown:
            raise SignError("unrecognized usage values: %s" % _go_list(go_quote(u) for u in unknown))
        eku = []
        for name, val in EXT_KEY_USAGES:
            if name in usages and val not in eku:
                eku.append(val)
        lines = ["[ext]"]
        if ku:
            lines.append("keyUsage = critical," + ",".join(k for k in KU_ORDER if k in ku))
        if eku:
            lines.append("extendedKeyUsage = " + ",".join(eku))
        lines.append("basicConstraints = critical,CA:FALSE")
        lines.append("subjectKeyIdentifier = none")
        if ca["ski"]:
            lines.append("authorityKeyIdentifier = keyid")
        else:
            lines.append("authorityKeyIdentifier = none")
        sans = parsed["sans"]
        alt = []
        for key, prefix in (("dns", "DNS"), ("email", "email"), ("ip", "IP"), ("uri", "URI")):
            for i, v in enumerate(sans[key]):
                alt.append("%s.%d = %s" % (prefix, i + 1, _cnf_escape(v)))
        if alt:
            crit = "critical," if not parsed["subject"]["rdns"] else ""
            lines.append("subjectAltName = %s@alt" % crit)
        md = {"P-384": "sha384", "P-521": "sha512"}.get(ca["curve"], "sha256")
        if ca["keyalg"] == "Ed25519":
            md = "default"
        work = tempfile.mkdtemp(prefix="certapi-sign-")
        try:
            serial = secrets.randbits(128) | 1
            hexs = "%X" % serial
            if len(hexs) % 2:
                hexs = "0" + hexs
            with open(os.path.join(work, "serial"), "w") as f:
                f.write(hexs + "\n")
            open(os.path.join(work, "index.txt"), "w").close()
            cnf = "\n".join([
                "[ca]", "default_ca = d", "[d]",
                "database = %s/index.txt" % work, "new_certs_dir = %s" % work,
                "serial = %s/serial" % work, "default_md = %s" % md, "policy = p",
                "unique_subject = no", "email_in_dn = yes", "[p]", ""] + lines + (["[alt]"] + alt if alt else []) + [""])
            with open(os.path.join(work, "ca.cnf"), "w") as f:
                f.write(cnf)
            with open(os.path.join(work, "req.pem"), "wb") as f:
                f.write(pem_encode("CERTIFICATE REQUEST", parsed["der"]))
            r = subprocess.run(
                ["openssl", "ca", "-batch", "-config", os.path.join(work, "ca.cnf"), "-notext", "-preserveDN",
                 "-startdate", time.strftime("%Y%m%d%H%M%SZ", time.gmtime(int(not_before))),
                 "-enddate", time.strftime("%Y%m%d%H%M%SZ", time.gmtime(int(not_after))),
                 "-extensions", "ext", "-cert", self.cert_file, "-keyfile", self.key_file,
                 "-in", os.path.join(work, "req.pem"), "-out", os.path.join(work, "out.pem")],
                capture_output=True, timeout=60, env=dict(os.environ, OPENSSL_CONF=os.path.join(work, "ca.cnf")))
            if r.returncode != 0:
                raise SignError("failed to sign certificate: %s" % r.stderr.decode("utf-8", "replace").strip())
            with open(os.path.join(work, "out.pem"), "rb") as f:
                out = f.read()
            blk = pem_decode_first(out)
            if not blk:
                raise SignError("failed to sign certificate: no output")
            return pem_encode("CERTIFICATE", blk[2])
        finally:
            shutil.rmtree(work, ignore_errors=True)


class SigningController:
    """Reacts to approved CSRs of the built-in signers, like csrsigning."""

    def __init__(self, api, signer, signer_names):
        self.api = api
        self.signer = signer
        self.signer_names = set(signer_names)
        self.q = queue.Queue()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, name="csrsigning", daemon=True)

    def start(self):
        self.api.store.listeners.append(self.on_event)
        for obj in self.api.store.list()[0]:
            self.q.put(obj["metadata"]["name"])
        self.thread.start()

    def on_event(self, ev):
        if ev.type != "DELETED" and ev.obj["spec"].get("signerName") in self.signer_names:
            self.q.put(ev.obj["metadata"]["name"])

    def run(self):
        while not self.stop.is_set():
            try:
                name = self.q.get(timeout=0.2)
            except queue.Empty:
                continue
            for attempt in range(5):
                try:
                    self.sync(name)
                    break
                except APIError as e:
                    if e.code == 409:
                        continue
                    log("csrsigning: %s: %s", name, e.message)
                    break
                except Exception as e:  # keep the controller alive
                    log("csrsigning: error syncing %s: %s", name, e)
                    break

    def sync(self, name):
        csr = self.api.store.get(name)
        if csr is None:
            return
        types = {c.get("type") for c in csr["status"].get("conditions") or []}
        if "Approved" not in types or "Denied" in types or "Failed" in types:
            return
        if csr["status"].get("certificate"):
            return
        signer_name = csr["spec"].get("signerName")
        if signer_name not in self.signer_names:
            return
        parsed, perr = parse_csr(csr["spec"].get("request"))
        if perr:
            log("csrsigning: unable to parse csr %s: %s", name, perr)
            return
        usages = csr["spec"].get("usages") or []
        verr = validate_for_signer(signer_name, parsed, usages)
        if verr:
            csr["status"].setdefault("conditions", []).append({
                "type": "Failed", "status": "True", "reason": "SignerValidationFailure", "message": verr,
                "lastUpdateTime": now_time()})
            self.api.update(name, csr, "status", None, {})
            log("csrsigning: %s: Failed: %s", name, verr)
            return
        try:
            pem = self.signer.sign(parsed, usages, csr["spec"].get("expirationSeconds"))
        except SignError as e:
            log("csrsigning: error auto signing csr %s: %s", name, e)
            return
        csr["status"]["certificate"] = pem
        self.api.update(name, csr, "status", None, {})
        log("csrsigning: %s: issued by %s", name, signer_name)


# --------------------------------------------------------------------------
# authentication / authorization

class User:
    def __init__(self, name, uid="", groups=(), extra=None):
        self.name, self.uid, self.groups, self.extra = name, uid, list(groups), extra or {}


SYSTEM_SIGNER = User("system:serviceaccount:kube-system:certificate-controller", "",
                     ["system:serviceaccounts", "system:serviceaccounts:kube-system", "system:authenticated"])


class Authenticator:
    def __init__(self, client_ca_file, token_file):
        self.cas = read_cert_file(client_ca_file) if client_ca_file else []
        self.tokens = {}
        if token_file:
            with open(token_file, newline="") as f:
                for row in csv.reader(f):
                    if len(row) < 3 or row[0].startswith("#"):
                        continue
                    groups = [g.strip() for g in row[3].split(",") if g.strip()] if len(row) > 3 else []
                    self.tokens[row[0].strip()] = User(row[1].strip(), row[2].strip(), groups)

    def from_cert(self, der):
        try:
            leaf = parse_cert_der(der)
        except (DERError, IndexError, ValueError) as e:
            return None, "x509: %s" % e
        now = time.time()
        chain = [leaf] + [ca for ca in self.cas if ca["subject"]["raw"] == leaf["issuer"]["raw"]][:1]
        for c in chain:
            if now < c["not_before"] or now > c["not_after"]:
                return None, "x509: certificate has expired or is not yet valid: current time %s is %s %s" % (
                    fmt_time(now), "after" if now > c["not_after"] else "before",
                    fmt_time(c["not_after"] if now > c["not_after"] else c["not_before"]))
        cn = leaf["subject"]["cn"]
        if not cn:
            return None, "x509: certificate has no common name"
        groups = list(leaf["subject"]["o"])
        extra = {"authentication.kubernetes.io/credential-id": ["X509SHA256=" + hashlib.sha256(der).hexdigest()]}
        return User(cn, "", groups, extra), None

    def authenticate(self, handler):
        errs = []
        der = None
        try:
            der = handler.connection.getpeercert(binary_form=True)
        except (ValueError, AttributeError):
            der = None
        if der:
            user, err = self.from_cert(der)
            if user:
                return self._finish(user)
            errs.append(err)
        auth = handler.headers.get("Authorization", "")
        if auth[:7].lower() == "bearer ":
            tok = auth[7:].strip()
            user = self.tokens.get(tok)
            if user:
                return self._finish(User(user.name, user.uid, user.groups))
            errs.append("invalid bearer token")
        if errs:
            log('Unable to authenticate the request err="%s"', "; ".join(errs))
        return None

    @staticmethod
    def _finish(user):
        if "system:authenticated" not in user.groups:
            user.groups.append("system:authenticated")
        return user


class Authorizer:
    def __init__(self, admin_groups, admin_users, user_verbs):
        self.admin_groups = set(admin_groups)
        self.admin_users = set(admin_users)
        self.user_verbs = set(user_verbs)

    def is_admin(self, user):
        return user.name in self.admin_users or bool(self.admin_groups & set(user.groups))

    def check(self, user, verb, resource, subresource="", name=""):
        if user is SYSTEM_SIGNER or self.is_admin(user):
            return
        if resource == RESOURCE and not subresource and verb in self.user_verbs:
            return
        if resource == "selfsubjectreviews":
            return
        res = resource + ("/" + subresource if subresource else "")
        if resource == NODE_RESOURCE:
            # core/v1: group "", and the message names the plain resource
            raise err_forbidden(name, 'User "%s" cannot %s resource "%s" in API group "" at the cluster scope' % (
                user.name, verb, res), qualified=NODE_RESOURCE, kind=NODE_RESOURCE, group="")
        group = GROUP if resource == RESOURCE else "authentication.k8s.io"
        raise err_forbidden(name, 'User "%s" cannot %s resource "%s" in API group "%s" at the cluster scope' % (
            user.name, verb, res, group))


# --------------------------------------------------------------------------
# discovery documents

def api_resource_list():
    return {
        "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": GROUP_VERSION,
        "resources": [
            {"name": RESOURCE, "singularName": "certificatesigningrequest", "namespaced": False, "kind": KIND,
             "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
             "shortNames": ["csr"], "storageVersionHash": "95fRKMXA+00="},
            {"name": RESOURCE + "/approval", "singularName": "", "namespaced": False, "kind": KIND,
             "verbs": ["get", "patch", "update"]},
            {"name": RESOURCE + "/status", "singularName": "", "namespaced": False, "kind": KIND,
             "verbs": ["get", "patch", "update"]},
        ],
    }


def api_group(name, version):
    gv = {"groupVersion": name + "/" + version, "version": version}
    return {"name": name, "versions": [gv], "preferredVersion": gv}


def api_group_list():
    return {"kind": "APIGroupList", "apiVersion": "v1",
            "groups": [api_group("authentication.k8s.io", "v1"), api_group(GROUP, VERSION)]}


def version_info():
    return {"major": "1", "minor": "32", "gitVersion": SERVER_GIT_VERSION,
            "gitCommit": "0" * 40, "gitTreeState": "clean", "buildDate": "2025-04-22T16:00:00Z",
            "goVersion": "go1.23.6", "compiler": "gc", "platform": "linux/amd64"}


def openapi_v3_gv_doc():
    """Just enough OpenAPI v3 for kubectl to see that server-side field validation
    is supported (so `kubectl create -f` works without --validate=false)."""
    params = [{"name": n, "in": "query", "schema": {"type": "string", "uniqueItems": True}}
              for n in ("dryRun", "fieldManager", "fieldValidation", "pretty")]
    gvk = {"group": GROUP, "kind": KIND, "version": VERSION}
    ref = {"$ref": "#/components/schemas/io.k8s.api.certificates.v1.CertificateSigningRequest"}
    body = {"content": {"application/json": {"schema": ref}}}
    ops = {}
    base = "/apis/%s/certificatesigningrequests" % GROUP_VERSION
    ops[base] = {
        "post": {"operationId": "createCertificatesV1CertificateSigningRequest", "parameters": params,
                 "requestBody": body, "responses": {"201": body},
                 "x-kubernetes-action": "post", "x-kubernetes-group-version-kind": gvk},
        "get": {"operationId": "listCertificatesV1CertificateSigningRequest", "responses": {"200": {}},
                "x-kubernetes-action": "list", "x-kubernetes-group-version-kind": gvk}}
    for suffix, what in (("", ""), ("/approval", "Approval"), ("/status", "Status")):
        p = base + "/{name}" + suffix
        ops[p] = {
            "get": {"operationId": "readCertificatesV1CertificateSigningRequest" + what, "responses": {"200": body},
                    "x-kubernetes-action": "get", "x-kubernetes-group-version-kind": gvk},
            "put": {"operationId": "replaceCertificatesV1CertificateSigningRequest" + what, "parameters": params,
                    "requestBody": body, "responses": {"200": body},
                    "x-kubernetes-action": "put", "x-kubernetes-group-version-kind": gvk},
            "patch": {"operationId": "patchCertificatesV1CertificateSigningRequest" + what,
                      "parameters": params + [{"name": "force", "in": "query", "schema": {"type": "boolean"}}],
                      "requestBody": {"content": {"application/merge-patch+json": {"schema": {"type": "object"}}}},
                      "responses": {"200": body},
                      "x-kubernetes-action": "patch", "x-kubernetes-group-version-kind": gvk},
            "parameters": [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}],
        }
    s = "string"
    schemas = {
        "io.k8s.api.certificates.v1.CertificateSigningRequest": {
            "type": "object", "required": ["spec"],
            "description": "CertificateSigningRequest objects provide a mechanism to obtain x509 certificates by submitting a certificate signing request, and having it asynchronously approved and issued.",
            "properties": {
                "apiVersion": {"type": s}, "kind": {"type": s},
                "metadata": {"type": "object", "description": "Standard object's metadata."},
                "spec": {"$ref": "#/components/schemas/io.k8s.api.certificates.v1.CertificateSigningRequestSpec"},
                "status": {"$ref": "#/components/schemas/io.k8s.api.certificates.v1.CertificateSigningRequestStatus"}},
            "x-kubernetes-group-version-kind": [gvk]},
        "io.k8s.api.certificates.v1.CertificateSigningRequestSpec": {
            "type": "object", "required": ["request", "signerName"],
            "properties": {
                "request": {"type": s, "format": "byte"}, "signerName": {"type": s},
                "expirationSeconds": {"type": "integer", "format": "int32"},
                "usages": {"type": "array", "items": {"type": s}, "x-kubernetes-list-type": "atomic"},
                "username": {"type": s}, "uid": {"type": s},
                "groups": {"type": "array", "items": {"type": s}, "x-kubernetes-list-type": "atomic"},
                "extra": {"type": "object", "additionalProperties": {"type": "array", "items": {"type": s}}}}},
        "io.k8s.api.certificates.v1.CertificateSigningRequestStatus": {
            "type": "object",
            "properties": {
                "certificate": {"type": s, "format": "byte", "x-kubernetes-list-type": "atomic"},
                "conditions": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"],
                               "items": {"type": "object", "required": ["type", "status"],
                                         "properties": {k: {"type": s} for k in (
                                             "type", "status", "reason", "message", "lastUpdateTime",
                                             "lastTransitionTime")}}}}},
    }
    return {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": SERVER_GIT_VERSION},
            "paths": ops, "components": {"schemas": schemas}}


OPENAPI_GV_DOC = json.dumps(openapi_v3_gv_doc(), separators=(",", ":")).encode()
OPENAPI_GV_HASH = hashlib.sha512(OPENAPI_GV_DOC).hexdigest()[:128].upper()


def openapi_v3_core_doc():
    """api/v1 for nodes: create (with fieldValidation, so kubectl validates on the server),
    get, list, delete (and a PATCH entry kubectl reads; not served). The Node schema is
    loose: the server does not check unknown fields."""
    params = [{"name": n, "in": "query", "schema": {"type": "string", "uniqueItems": True}}
              for n in ("dryRun", "fieldManager", "fieldValidation", "pretty")]
    gvk = {"group": "", "kind": "Node", "version": "v1"}
    ref = {"$ref": "#/components/schemas/io.k8s.api.core.v1.Node"}
    body = {"content": {"application/json": {"schema": ref}}}
    ops = {
        "/api/v1/nodes": {
            "post": {"operationId": "createCoreV1Node", "parameters": params, "requestBody": body,
                     "responses": {"201": body}, "x-kubernetes-action": "post",
                     "x-kubernetes-group-version-kind": gvk},
            "get": {"operationId": "listCoreV1Node", "responses": {"200": {}}, "x-kubernetes-action": "list",
                    "x-kubernetes-group-version-kind": gvk}},
        "/api/v1/nodes/{name}": {
            "get": {"operationId": "readCoreV1Node", "responses": {"200": body}, "x-kubernetes-action": "get",
                    "x-kubernetes-group-version-kind": gvk},
            "delete": {"operationId": "deleteCoreV1Node", "responses": {"200": {}},
                       "x-kubernetes-action": "delete", "x-kubernetes-group-version-kind": gvk},
            # kubectl learns that fieldValidation is supported from a PATCH operation's
            # parameters (resource.supportsQueryParamV3); this server answers PATCH with 405.
            "patch": {"operationId": "patchCoreV1Node", "parameters": params,
                      "requestBody": {"content": {"application/merge-patch+json": {"schema": {"type": "object"}}}},
                      "responses": {"200": body}, "x-kubernetes-action": "patch",
                      "x-kubernetes-group-version-kind": gvk},
            "parameters": [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}]},
    }
    s = "string"
    schemas = {"io.k8s.api.core.v1.Node": {
        "type": "object",
        "description": "Node is a worker node in Kubernetes. Each node will have a unique identifier in the cache (i.e. in etcd).",
        "properties": {
            "apiVersion": {"type": s}, "kind": {"type": s},
            "metadata": {"type": "object", "description": "Standard object's metadata."},
            "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True, "properties": {
                "addresses": {"type": "array", "items": {"type": "object", "required": ["type", "address"],
                                                         "properties": {"type": {"type": s}, "address": {"type": s}}}}}}},
        "x-kubernetes-group-version-kind": [gvk]}}
    return {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": SERVER_GIT_VERSION},
            "paths": ops, "components": {"schemas": schemas}}


OPENAPI_CORE_DOC = json.dumps(openapi_v3_core_doc(), separators=(",", ":")).encode()
OPENAPI_CORE_HASH = hashlib.sha512(OPENAPI_CORE_DOC).hexdigest()[:128].upper()


# --------------------------------------------------------------------------
# JSON patch / merge patch

def merge_patch(target, patch):
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if not isinstance(target, dict):
        target = {}
    out = dict(target)
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


def strategic_merge_patch(target, patch):
    """Strategic merge patch for CSRs: every CSR list is atomic, so this is a
    merge patch plus removal of the SMP directive keys."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        p = {k: v for k, v in patch.items() if k != "$patch"}
        return strategic_merge_patch({}, p)
    if patch.get("$patch") == "delete":
        return None
    if not isinstance(target, dict):
        target = {}
    out = dict(target)
    for k, v in patch.items():
        if k.startswith("$setElementOrder/") or k in ("$retainKeys", "$patch"):
            continue
        if k.startswith("$deleteFromPrimitiveList/"):
            key = k.split("/", 1)[1]
            if isinstance(out.get(key), list) and isinstance(v, list):
                out[key] = [x for x in out[key] if x not in v]
            continue
        if v is None:
            out.pop(k, None)
        else:
            r = strategic_merge_patch(out.get(k), v)
            if r is None:
                out.pop(k, None)
            else:
                out[k] = r
    return out


def apply_merge(cur, applied, path=""):
    """Server-side apply, approximated: maps merge, lists are atomic except
    status.conditions (a map list keyed by type), nulls are ignored, and no
    field ownership is tracked."""
    if not isinstance(applied, dict):
        return copy.deepcopy(applied)
    out = dict(cur) if isinstance(cur, dict) else {}
    for k, v in applied.items():
        if v is None:
            continue
        p = path + "." + k
        if p == ".status.conditions" and isinstance(v, list) and isinstance(out.get(k), list):
            merged = copy.deepcopy(out[k])
            for item in v:
                idx = None
                for i, c in enumerate(merged):
                    if isinstance(c, dict) and isinstance(item, dict) and c.get("type") == item.get("type"):
                        idx = i
                        break
                if idx is None:
                    merged.append(copy.deepcopy(item))
                else:
                    merged[idx] = apply_merge(merged[idx], item, p + "[]")
            out[k] = merged
        else:
            out[k] = apply_merge(out.get(k), v, p)
    return out


class PatchError(Exception):
    pass


def _ptr_tokens(ptr):
    if ptr == "":
        return []
    if not ptr.startswith("/"):
        raise PatchError("JSON pointer %s must start with /" % go_quote(ptr))
    return [t.replace("~1", "/").replace("~0", "~") for t in ptr[1:].split("/")]


def _ptr_parent(doc, ptr, op):
    toks = _ptr_tokens(ptr)
    if not toks:
        raise PatchError("jsonpatch %s operation does not apply: doc is missing path: %s" % (op, ptr))
    cur = doc
    for t in toks[:-1]:
        if isinstance(cur, dict) and t in cur:
            cur = cur[t]
        elif isinstance(cur, list) and t.isdigit() and int(t) < len(cur):
            cur = cur[int(t)]
        else:
            raise PatchError("jsonpatch %s operation does not apply: doc is missing path: %s" % (op, ptr))
    return cur, toks[-1]


def _ptr_get(doc, ptr, op):
    if ptr == "":
        return doc
    parent, key = _ptr_parent(doc, ptr, op)
    if isinstance(parent, dict) and key in parent:
        return parent[key]
    if isinstance(parent, list) and key.isdigit() and int(key) < len(parent):
        return parent[int(key)]
    raise PatchError("jsonpatch %s operation does not apply: doc is missing path: %s" % (op, ptr))


def _ptr_remove(doc, ptr, op):
    parent, key = _ptr_parent(doc, ptr, op)
    if isinstance(parent, dict) and key in parent:
        return parent.pop(key)
    if isinstance(parent, list) and key.isdigit() and int(key) < len(parent):
        return parent.pop(int(key))
    raise PatchError("jsonpatch %s operation does not apply: doc is missing path: %s" % (op, ptr))


def _ptr_add(doc, ptr, value, op, replace=False):
    if ptr == "":
        return value
    parent, key = _ptr_parent(doc, ptr, op)
    if isinstance(parent, dict):
        if replace and key not in parent:
            raise PatchError("jsonpatch replace operation does not apply: doc is missing key: %s" % ptr)
        parent[key] = value
    elif isinstance(parent, list):
        if key == "-" and not replace:
            parent.append(value)
        elif key.isdigit() and (int(key) < len(parent) if replace else int(key) <= len(parent)):
            if replace:
                parent[int(key)] = value
            else:
                parent.insert(int(key), value)
        else:
            raise PatchError("jsonpatch %s operation does not apply: doc is missing path: %s" % (op, ptr))
    else:
        raise PatchError("jsonpatch %s operation does not apply: doc is missing path: %s" % (op, ptr))
    return doc


def json_patch(doc, ops):
    if not isinstance(ops, list):
        raise ValueError("json: cannot unmarshal object into Go value of type jsonpatch.Patch")
    doc = copy.deepcopy(doc)
    for o in ops:
        if not isinstance(o, dict):
            raise ValueError("json: cannot unmarshal into Go value of type jsonpatch.Operation")
        op = o.get("op")
        path = o.get("path", "")
        if op == "add":
            doc = _ptr_add(doc, path, copy.deepcopy(o.get("value")), "add")
        elif op == "remove":
            _ptr_remove(doc, path, "remove")
        elif op == "replace":
            doc = _ptr_add(doc, path, copy.deepcopy(o.get("value")), "replace", replace=True)
        elif op == "move":
            v = _ptr_remove(doc, o.get("from", ""), "move")
            doc = _ptr_add(doc, path, v, "move")
        elif op == "copy":
            v = copy.deepcopy(_ptr_get(doc, o.get("from", ""), "copy"))
            doc = _ptr_add(doc, path, v, "copy")
        elif op == "test":
            if _ptr_get(doc, path, "test") != o.get("value"):
                raise PatchError("testing value %s failed: test failed" % path)
        else:
            raise PatchError("Unexpected kind: %s" % op)
    return doc


# --------------------------------------------------------------------------
# the API (storage + strategies + admission); HTTP-independent

def random_suffix(n=5):
    alphabet = "bcdfghjklmnpqrstvwxz2456789"  # k8s.io/apimachinery/pkg/util/rand
    return "".join(secrets.choice(alphabet) for _ in range(n))


class API:
    def __init__(self, store, authorizer, admission_plugins):
        self.store = store
        self.authz = authorizer
        self.admission = set(admission_plugins)

    def create(self, obj, user, params):
        meta = obj["metadata"]
        had_rv = meta.get("resourceVersion")
        # rest.BeforeCreate
        meta.pop("namespace", None)
        meta.pop("deletionTimestamp", None)
        meta.pop("deletionGracePeriodSeconds", None)
        meta.pop("generation", None)
        meta.pop("selfLink", None)
        spec = obj["spec"]
        for k in ("username", "uid", "groups", "extra"):
            spec.pop(k, None)
        if user is not None:
            spec["username"] = user.name
            if user.uid:
                spec["uid"] = user.uid
            if user.groups:
                spec["groups"] = list(user.groups)
            if user.extra:
                spec["extra"] = copy.deepcopy(user.extra)
        obj["status"] = {}
        meta["creationTimestamp"] = now_time()
        meta["uid"] = str(uuid.uuid4())
        if meta.get("generateName") and not meta.get("name"):
            base = meta["generateName"]
            if len(base) > 58:
                base = base[:58]
            for _ in range(20):
                meta["name"] = base + random_suffix()
                if self.store.get(meta["name"]) is None:
                    break
        errs = validate_csr(obj, validation_options(obj, None), True)
        if errs:
            raise err_invalid(meta.get("name", ""), errs)
        # validating admission: CertificateSubjectRestriction
        if "CertificateSubjectRestriction" in self.admission and spec.get("signerName") == KUBE_APISERVER_CLIENT:
            parsed, perr = parse_csr(spec.get("request"))
            if parsed and "system:masters" in parsed["subject"]["o"]:
                raise err_forbidden(meta["name"], "use of kubernetes.io/kube-apiserver-client signer with system:masters group is not allowed")
        if had_rv:
            raise err_internal("resourceVersion should not be set on objects to be created")
        msgs = path_segment_errors(meta["name"])
        if msgs:  # registry.NoNamespaceKeyFunc
            raise err_bad_request("Name parameter invalid: %s: %s" % (go_quote(meta["name"]), ";".join(msgs)))
        with self.store.lock:
            if meta["name"] in self.store.objs:
                raise err_already_exists(meta["name"])
            if params.get("dryRun"):
                meta.pop("resourceVersion", None)
                return obj
            return self.store.commit("ADDED", obj, None)

    def update(self, name, new, sub, user, params):
        with self.store.lock:
            old = self.store.get(name)
            if old is None:
                raise err_not_found(name)
            nm = new["metadata"]
            if not nm.get("name"):
                nm["name"] = name
            if nm["name"] != name:
                raise err_bad_request("the name of the object (%s) does not match the name on the URL (%s)" % (nm["name"], name))
            om = old["metadata"]
            if nm.get("resourceVersion") and nm["resourceVersion"] != om.get("resourceVersion"):
                raise err_conflict(name, CONFLICT_MODIFIED)
            if nm.get("uid") and nm["uid"] != om.get("uid"):
                raise err_precondition(name, "UID", nm["uid"], om.get("uid"))
            obj = copy.deepcopy(new)
            m = obj["metadata"]
            for k in ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generation",
                      "managedFields"):
                if om.get(k) is not None:
                    m[k] = copy.deepcopy(om[k])
                else:
                    m.pop(k, None)
            m.pop("namespace", None)
            m.pop("selfLink", None)
            m["resourceVersion"] = om.get("resourceVersion")
            prepare_for_update(sub, obj, old)
            errs = validate_update(sub, obj, old)
            if errs:
                raise err_invalid(name, errs)
            if params.get("dryRun"):
                return obj
            if om.get("deletionTimestamp") and not m.get("finalizers"):
                self.store.commit("DELETED", None, obj)
                return obj
            if canonical(obj) == canonical(old):
                return old
            return self.store.commit("MODIFIED", obj, old)

    def patch(self, name, patch_body, ctype, sub, user, params, decode_opts):
        with self.store.lock:
            try:
                p = json.loads(patch_body.decode("utf-8"))
            except (ValueError, UnicodeDecodeError) as e:
                if ctype == "application/apply-patch+yaml":
                    raise APIError(415, "UnsupportedMediaType",
                                   "this test server only accepts JSON-encoded apply patches: %s" % e, {})
                raise err_bad_request("error decoding patch: %s" % e)
            old = self.store.get(name)
            if ctype == "application/apply-patch+yaml":
                if not isinstance(p, dict) or not p.get("kind") or not p.get("apiVersion"):
                    raise err_bad_request("Object 'Kind' is missing in '%s'" % patch_body.decode("utf-8", "replace")[:200])
                meta_name = (p.get("metadata") or {}).get("name")
                if meta_name and meta_name != name:
                    raise err_bad_request("the name of the object (%s) does not match the name on the URL (%s)" % (meta_name, name))
                if old is None and sub == "":
                    obj, unknown, dups = decode_csr_value(apply_merge({}, p))
                    decode_opts(unknown, dups)
                    obj["metadata"]["name"] = name
                    return self.create(obj, user, params), True
            if old is None:
                raise err_not_found(name)
            current = csr_to_json(old)
            try:
                if ctype == "application/apply-patch+yaml":
                    patched = apply_merge(current, p)
                elif ctype == "application/json-patch+json":
                    try:
                        patched = json_patch(current, p)
                    except ValueError as e:
                        raise err_bad_request(str(e))
                elif ctype == "application/merge-patch+json":
                    patched = merge_patch(current, p)
                else:
                    patched = strategic_merge_patch(current, p)
            except PatchError as e:
                raise err_unprocessable(str(e))
            obj, unknown, dups = decode_csr_value(patched)
            decode_opts(unknown, dups)
            if not obj["metadata"].get("resourceVersion"):
                obj["metadata"]["resourceVersion"] = old["metadata"].get("resourceVersion")
            return self.update(name, obj, sub, user, params), False

    def delete(self, name, opts, params):
        with self.store.lock:
            old = self.store.get(name)
            if old is None:
                raise err_not_found(name)
            pre = opts.get("preconditions") or {}
            om = old["metadata"]
            if pre.get("uid") and pre["uid"] != om.get("uid"):
                raise err_precondition(name, "UID", pre["uid"], om.get("uid"))
            if pre.get("resourceVersion") and pre["resourceVersion"] != om.get("resourceVersion"):
                raise err_precondition(name, "ResourceVersion", pre["resourceVersion"], om.get("resourceVersion"))
            if params.get("dryRun"):
                return old, True
            if om.get("finalizers"):
                if not om.get("deletionTimestamp"):
                    obj = copy.deepcopy(old)
                    obj["metadata"]["deletionTimestamp"] = now_time()
                    obj["metadata"]["deletionGracePeriodSeconds"] = 0
                    return self.store.commit("MODIFIED", obj, old), False
                return old, False
            return self.store.commit("DELETED", None, old), True


# --------------------------------------------------------------------------
# HTTP layer

def parse_accept(header):
    """Accept header -> list of (mediatype, params) ordered by preference."""
    out = []
    for i, part in enumerate((header or "").split(",")):
        part = part.strip()
        if not part:
            continue
        bits = [b.strip() for b in part.split(";")]
        params = {}
        for b in bits[1:]:
            if "=" in b:
                k, v = b.split("=", 1)
                params[k.strip().lower()] = v.strip().strip('"')
        try:
            q = float(params.pop("q", "1"))
        except ValueError:
            q = 1.0
        out.append((-q, i, bits[0].lower(), params))
    out.sort()
    return [(mt, p) for _q, _i, mt, p in out]


def negotiate(header, allow_table):
    """Returns a format dict: {"as": None|"Table"|"PartialObjectMetadata"..., "v": ...}."""
    if not header:
        return {"as": None}
    for mt, p in parse_accept(header):
        if mt not in ("application/json", "application/*", "*/*", "application/json;stream=watch"):
            continue
        as_ = p.get("as")
        if not as_:
            return {"as": None}
        if p.get("g") == "meta.k8s.io" and p.get("v") in ("v1", "v1beta1") and allow_table and \
                as_ in ("Table", "PartialObjectMetadata", "PartialObjectMetadataList"):
            return {"as": as_, "v": p["v"]}
    raise APIError(406, "NotAcceptable",
                   "only the following media types are accepted: application/json, application/json;as=Table;v=v1;g=meta.k8s.io",
                   {})


class ThreadedHTTPSServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr, handler, ssl_ctx, app):
        self.ssl_ctx = ssl_ctx
        self.app = app
        family = socket.AF_INET6 if ":" in addr[0] else socket.AF_INET
        self.address_family = family
        super().__init__(addr, handler)

    def finish_request(self, request, client_address):
        request.settimeout(30)
        try:
            tls = self.ssl_ctx.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as e:
            log("TLS handshake error from %s:%s: %s", client_address[0], client_address[1], e)
            try:
                request.close()
            except OSError:
                pass
            return
        tls.settimeout(300)
        try:
            self.RequestHandlerClass(tls, client_address, self)
        finally:
            try:
                tls.close()
            except OSError:
                pass

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, ssl.SSLError, socket.timeout, BrokenPipeError)):
            return
        log("error handling request from %s: %s", client_address, traceback.format_exc())


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "certapi"
    sys_version = ""

    def log_message(self, fmt, *args):
        pass

    # -- plumbing --------------------------------------------------------
    def do_GET(self):
        self.dispatch("GET")

    def do_POST(self):
        self.dispatch("POST")

    def do_PUT(self):
        self.dispatch("PUT")

    def do_PATCH(self):
        self.dispatch("PATCH")

    def do_DELETE(self):
        self.dispatch("DELETE")

    def do_HEAD(self):
        self.dispatch("HEAD")

    def read_body(self):
        if self.body_read:
            return b""
        self.body_read = True
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                line = self.rfile.readline()
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline().strip():
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        n = int(self.headers.get("Content-Length") or 0)
        if n > 3 * 1024 * 1024:
            raise APIError(413, "RequestEntityTooLarge", "Request entity too large: limit is 3145728")
        return self.rfile.read(n) if n else b""

    def send_json(self, code, obj, headers=None):
        body = json.dumps(obj, separators=(",", ":")).encode() + b"\n"
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Cache-Control", "no-cache, private")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            if isinstance(v, list):
                for x in v:
                    self.send_header(k, x)
            else:
                self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.code = code

    def send_text(self, code, text, ctype="text/plain; charset=utf-8"):
        body = text.encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.code = code

    def send_bytes(self, code, body, ctype):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.code = code

    def dispatch(self, method):
        self.app = self.server.app
        self.body_read = False
        self.code = 0
        self.warnings = []
        self.user = None
        start = time.time()
        u = urllib.parse.urlsplit(self.path)
        self.query = {k: v[-1] for k, v in urllib.parse.parse_qs(u.query, keep_blank_values=True).items()}
        path = urllib.parse.unquote(u.path)
        try:
            self.user = self.app.authn.authenticate(self)
            if self.user is None:
                self.read_body()
                raise err_unauthorized()
            self.route(method, path)
        except APIError as e:
            try:
                if not self.body_read:
                    self.read_body()  # keep the connection usable for the next request
            except (APIError, OSError, ValueError):
                self.close_connection = True
            try:
                headers = dict(self.warning_headers())
                headers.update(e.headers)
                self.send_json(e.code, e.status(), headers)
            except (OSError, ValueError):
                self.close_connection = True
        except (ConnectionError, ssl.SSLError, socket.timeout, BrokenPipeError):
            self.close_connection = True
        except Exception:
            log("panic serving %s %s: %s", method, self.path, traceback.format_exc())
            try:
                self.send_json(500, err_internal("unexpected server error").status())
            except (OSError, ValueError):
                pass
            self.close_connection = True
        finally:
            if self.app.verbose or self.code >= 400 or method != "GET":
                log('%s %s %d user="%s" %.1fms', method, self.path, self.code,
                    self.user.name if self.user else "", (time.time() - start) * 1000)

    # -- routing ---------------------------------------------------------
    def route(self, method, path):
        path = path.rstrip("/") or "/"
        parts = [p for p in path.split("/") if p]
        if method == "HEAD":
            method = "GET"
        if path in ("/healthz", "/livez", "/readyz"):
            return self.send_text(200, "ok")
        if path == "/version":
            return self.send_json(200, version_info())
        if path == "/api":
            # core/v1 serves one resource: nodes (what the kubelet-serving approver reads).
            return self.send_json(200, {"kind": "APIVersions", "versions": ["v1"],
                                        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0",
                                                                        "serverAddress": self.app.advertise}]})
        if path == "/api/v1":
            return self.send_json(200, core_v1_resource_list())
        if parts[:3] == ["api", "v1", NODE_RESOURCE]:
            return self.handle_nodes(method, parts[3:])
        if parts[:3] == ["api", "v1", "namespaces"] and len(parts) == 6 and parts[4] == "configmaps":
            return self.handle_configmap(method, parts[3], parts[5])
        if path == "/api/v1/events" and method == "GET":
            return self.send_json(200, {"kind": "EventList", "apiVersion": "v1",
                                        "metadata": {"resourceVersion": str(self.app.store.current_rv())}, "items": []})
        if path == "/apis":
            return self.send_json(200, api_group_list())
        if path == "/apis/" + GROUP:
            return self.send_json(200, dict(kind="APIGroup", apiVersion="v1", **api_group(GROUP, VERSION)))
        if path == "/apis/" + GROUP_VERSION:
            return self.send_json(200, api_resource_list())
        if path == "/apis/authentication.k8s.io":
            return self.send_json(200, dict(kind="APIGroup", apiVersion="v1", **api_group("authentication.k8s.io", "v1")))
        if path == "/apis/authentication.k8s.io/v1":
            return self.send_json(200, {"kind": "APIResourceList", "apiVersion": "v1",
                                        "groupVersion": "authentication.k8s.io/v1",
                                        "resources": [{"name": "selfsubjectreviews", "singularName": "selfsubjectreview",
                                                       "namespaced": False, "kind": "SelfSubjectReview",
                                                       "verbs": ["create"]}]})
        if path == "/apis/authentication.k8s.io/v1/selfsubjectreviews":
            if method != "POST":
                raise err_method_not_allowed()
            self.read_body()
            u = self.user
            info = {"username": u.name}
            if u.uid:
                info["uid"] = u.uid
            info["groups"] = u.groups
            if u.extra:
                info["extra"] = u.extra
            return self.send_json(201, {"kind": "SelfSubjectReview", "apiVersion": "authentication.k8s.io/v1",
                                        "metadata": {"creationTimestamp": now_time()},
                                        "status": {"userInfo": info}})
        if path == "/openapi/v3":
            if not self.app.serve_openapi:
                raise err_path_not_found()
            return self.send_json(200, {"paths": {
                "apis/" + GROUP_VERSION: {
                    "serverRelativeURL": "/openapi/v3/apis/%s?hash=%s" % (GROUP_VERSION, OPENAPI_GV_HASH)},
                "api/v1": {"serverRelativeURL": "/openapi/v3/api/v1?hash=%s" % OPENAPI_CORE_HASH}}})
        if path == "/openapi/v3/api/v1":
            if not self.app.serve_openapi:
                raise err_path_not_found()
            return self.send_bytes(200, OPENAPI_CORE_DOC, "application/json")
        if path == "/openapi/v3/apis/" + GROUP_VERSION:
            if not self.app.serve_openapi:
                raise err_path_not_found()
            return self.send_bytes(200, OPENAPI_GV_DOC, "application/json")
        prefix = ["apis", GROUP, VERSION]
        if parts[:3] == prefix and len(parts) >= 4:
            rest = parts[3:]
            if rest[0] == "watch":
                if method != "GET":
                    raise err_method_not_allowed()
                rest = rest[1:]
                if not rest or rest[0] != RESOURCE or len(rest) > 2:
                    raise err_path_not_found()
                self.query["watch"] = "true"
                if len(rest) == 2:
                    self.query["fieldSelector"] = "metadata.name=" + rest[1] + (
                        "," + self.query["fieldSelector"] if self.query.get("fieldSelector") else "")
                return self.handle_list(single=len(rest) == 2 and rest[1])
            if rest[0] != RESOURCE:
                raise err_path_not_found()
            if len(rest) == 1:
                if method == "GET":
                    return self.handle_list()
                if method == "POST":
                    return self.handle_create()
                if method == "DELETE":
                    return self.handle_delete_collection()
                raise err_method_not_allowed()
            name = rest[1]
            sub = rest[2] if len(rest) == 3 else ""
            if len(rest) > 3 or sub not in ("", "approval", "status"):
                raise err_path_not_found()
            if method == "GET":
                return self.handle_get(name, sub)
            if method == "PUT":
                return self.handle_update(name, sub)
            if method == "PATCH":
                return self.handle_patch(name, sub)
            if method == "DELETE" and not sub:
                return self.handle_delete(name)
            raise err_method_not_allowed()
        raise err_path_not_found()

    # -- request helpers -------------------------------------------------
    def check_params(self, write=False):
        q = self.query
        params = {}
        if write:
            dr = q.get("dryRun")
            if dr is not None and dr != "":
                if dr != "All":
                    raise err_invalid("", [fe_not_supported("dryRun", dr, ["All"])])
                params["dryRun"] = True
            fm = q.get("fieldManager", "")
            if len(fm) > 128:
                raise err_invalid("", [fe_too_long("fieldManager", 128)])
            fv = q.get("fieldValidation", "")
            if fv not in ("", "Ignore", "Warn", "Strict"):
                raise err_bad_request("fieldValidation must be one of Ignore, Warn, Strict")
            params["fieldValidation"] = fv or "Warn"
        return params

    def apply_field_validation(self, params, unknown, dups):
        mode = params.get("fieldValidation", "Warn")
        msgs = ['unknown field "%s"' % p for p in unknown] + ['duplicate field "%s"' % p for p in dups]
        if not msgs or mode == "Ignore":
            return
        if mode == "Strict":
            raise err_bad_request("strict decoding error: " + ", ".join(msgs))
        self.warnings.extend(msgs)

    def warning_headers(self):
        if not self.warnings:
            return {}
        return {"Warning": ['299 - %s' % json.dumps(w) for w in self.warnings]}

    def decode_body(self, params):
        ctype = (self.headers.get("Content-Type") or "application/json").split(";")[0].strip().lower()
        body = self.read_body()
        if ctype == "application/json":
            obj, unknown, dups = decode_csr_json(body)
        elif ctype == "application/vnd.kubernetes.protobuf":
            obj, unknown, dups = decode_csr_protobuf(body)
        else:
            raise APIError(415, "UnsupportedMediaType",
                           "the body of the request was in an unknown format - accepted media types include: application/json, application/vnd.kubernetes.protobuf",
                           {})
        self.apply_field_validation(params, unknown, dups)
        return obj

    def respond_object(self, code, obj, fmt=None):
        fmt = fmt or {"as": None}
        if fmt["as"] == "Table":
            return self.send_json(code, make_table([obj], obj["metadata"].get("resourceVersion", ""), self._table_fmt(fmt)),
                                  self.warning_headers())
        if fmt["as"] == "PartialObjectMetadata":
            return self.send_json(code, partial_metadata(obj, fmt["v"]), self.warning_headers())
        return self.send_json(code, csr_to_json(obj), self.warning_headers())

    def _table_fmt(self, fmt):
        f = dict(fmt)
        f["includeObject"] = self.query.get("includeObject") or "Metadata"
        if f["includeObject"] not in ("None", "Metadata", "Object"):
            raise err_bad_request("includeObject must be one of None, Metadata, Object")
        return f

    # -- handlers --------------------------------------------------------
    def handle_get(self, name, sub):
        self.app.authz.check(self.user, "get", RESOURCE, sub, name)
        fmt = negotiate(self.headers.get("Accept"), allow_table=True)
        if fmt["as"] == "PartialObjectMetadataList":
            raise negotiate_fail()
        obj = self.app.store.get(name)
        if obj is None:
            raise err_not_found(name)
        self.respond_object(200, obj, fmt)

    def selectors(self):
        try:
            lreqs = parse_label_selector(self.query.get("labelSelector", ""))
            freqs = parse_field_selector(self.query.get("fieldSelector", ""))
        except SelectorError as e:
            raise err_bad_request(str(e))
        return lreqs, freqs

    def handle_list(self, single=False):
        watch = self.query.get("watch", "").lower() in ("true", "1")
        self.app.authz.check(self.user, "watch" if watch else "list", RESOURCE, "", single or "")
        fmt = negotiate(self.headers.get("Accept"), allow_table=True)
        if fmt["as"] == "PartialObjectMetadata" and not watch:
            raise negotiate_fail()
        lreqs, freqs = self.selectors()
        if watch:
            return self.serve_watch(lreqs, freqs, fmt)
        objs, rv = self.app.store.list()
        objs = [o for o in objs if label_match(lreqs, o["metadata"].get("labels")) and field_match(freqs, o)]
        limit = self.query.get("limit", "")
        cont_in = self.query.get("continue", "")
        start_after = ""
        if cont_in:
            try:
                tok = json.loads(base64.b64decode(cont_in + "=" * (-len(cont_in) % 4)))
                start_after = tok["start"].rstrip("\x00")
                rv = int(tok.get("rv", rv))
            except Exception:
                raise err_bad_request("continue key is not valid: illegal base64 data at input byte 0")
            objs = [o for o in objs if o["metadata"]["name"] > start_after]
        cont = None
        remaining = None
        if limit:
            try:
                n = int(limit)
            except ValueError:
                raise err_bad_request("invalid limit")
            if n > 0 and len(objs) > n:
                remaining = len(objs) - n
                objs = objs[:n]
                cont = base64.b64encode(json.dumps({"v": "meta.k8s.io/v1", "rv": rv,
                                                    "start": objs[-1]["metadata"]["name"] + "\x00"},
                                                   separators=(",", ":")).encode()).decode().rstrip("=")
        if fmt["as"] == "Table":
            return self.send_json(200, make_table(objs, rv, self._table_fmt(fmt), cont=cont))
        meta = {"resourceVersion": str(rv)}
        if cont:
            meta["continue"] = cont
            if not self.query.get("labelSelector") and not self.query.get("fieldSelector"):
                meta["remainingItemCount"] = remaining
        if fmt["as"] == "PartialObjectMetadataList":
            return self.send_json(200, {"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/" + fmt["v"],
                                        "metadata": meta, "items": [partial_metadata(o, fmt["v"]) for o in objs]})
        self.send_json(200, {"kind": LIST_KIND, "apiVersion": GROUP_VERSION, "metadata": meta,
                             "items": [csr_to_json(o, with_type=False) for o in objs]})

    def handle_create(self):
        self.app.authz.check(self.user, "create", RESOURCE)
        params = self.check_params(write=True)
        obj = self.decode_body(params)
        created = self.app.api.create(obj, self.user, params)
        self.respond_object(201, created)

    def handle_update(self, name, sub):
        self.app.authz.check(self.user, "update", RESOURCE, sub, name)
        params = self.check_params(write=True)
        obj = self.decode_body(params)
        out = self.app.api.update(name, obj, sub, self.user, params)
        self.respond_object(200, out)

    def handle_patch(self, name, sub):
        self.app.authz.check(self.user, "patch", RESOURCE, sub, name)
        params = self.check_params(write=True)
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if ctype not in ("application/json-patch+json", "application/merge-patch+json",
                         "application/strategic-merge-patch+json", "application/apply-patch+yaml"):
            self.read_body()
            raise APIError(415, "UnsupportedMediaType",
                           "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json",
                           {})
        body = self.read_body()
        if ctype == "application/apply-patch+yaml":
            if not self.query.get("fieldManager"):
                raise APIError(422, "Invalid", 'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch',
                               {"group": "meta.k8s.io", "kind": "PatchOptions",
                                "causes": [{"reason": "FieldValueRequired", "message": "Required value: is required for apply patch",
                                            "field": "fieldManager"}]})
            force = self.query.get("force", "")
            if force not in ("", "true", "false"):
                raise err_bad_request("invalid force: %s" % force)
        out, created = self.app.api.patch(name, body, ctype, sub, self.user, params,
                                          lambda unknown, dups: self.apply_field_validation(params, unknown, dups))
        self.respond_object(201 if created else 200, out)

    def delete_options(self):
        body = self.read_body()
        opts = {}
        if body.strip():
            try:
                raw = json.loads(body.decode("utf-8"))
                opts = Decoder("DeleteOptions").decode(raw, DELETE_OPTIONS) or {}
            except (ValueError, DecodeError) as e:
                raise err_bad_request("error decoding DeleteOptions: %s" % e)
        dry = opts.get("dryRun") or ([self.query["dryRun"]] if self.query.get("dryRun") else [])
        for d in dry:
            if d != "All":
                raise err_invalid("", [fe_not_supported("dryRun", d, ["All"])])
        return opts, {"dryRun": bool(dry)}

    def handle_delete(self, name):
        self.app.authz.check(self.user, "delete", RESOURCE, "", name)
        opts, params = self.delete_options()
        obj, deleted = self.app.api.delete(name, opts, params)
        if not deleted:
            return self.respond_object(202 if not params.get("dryRun") else 200, obj)
        self.send_json(200, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                             "details": {"name": name, "group": GROUP, "kind": RESOURCE,
                                         "uid": obj["metadata"].get("uid", "")}})

    def handle_delete_collection(self):
        self.app.authz.check(self.user, "deletecollection", RESOURCE)
        opts, params = self.delete_options()
        lreqs, freqs = self.selectors()
        objs, _rv = self.app.store.list()
        deleted = []
        for o in objs:
            if label_match(lreqs, o["metadata"].get("labels")) and field_match(freqs, o):
                try:
                    d, _gone = self.app.api.delete(o["metadata"]["name"], {}, params)
                    deleted.append(d)
                except APIError as e:
                    if e.code != 404:
                        raise
        self.send_json(200, {"kind": LIST_KIND, "apiVersion": GROUP_VERSION,
                             "metadata": {"resourceVersion": str(self.app.store.current_rv())},
                             "items": [csr_to_json(o, with_type=False) for o in deleted]})

    # -- core/v1 nodes ---------------------------------------------------
    def handle_nodes(self, method, rest):
        nodes = self.app.nodes
        if len(rest) > 1:
            raise err_path_not_found()
        name = rest[0] if rest else ""
        if method == "GET" and self.query.get("watch", "").lower() in ("true", "1"):
            raise err_method_not_allowed()  # no watch on nodes in this server
        if method == "GET":
            self.app.authz.check(self.user, "get" if name else "list", NODE_RESOURCE, "", name)
            fmt = negotiate(self.headers.get("Accept"), allow_table=True)
            if name:
                obj = nodes.get(name)
                if obj is None:
                    raise err_node_not_found(name)
                if fmt["as"] == "Table":
                    return self.send_json(200, node_table([obj], obj["metadata"]["resourceVersion"],
                                                          self._table_fmt(fmt)))
                if fmt["as"] == "PartialObjectMetadata":
                    return self.send_json(200, partial_metadata(obj, fmt["v"]))
                if fmt["as"] == "PartialObjectMetadataList":
                    raise negotiate_fail()
                return self.send_json(200, obj)
            lreqs, freqs = self.selectors()
            if any(k != "metadata.name" for k, _op, _v in freqs):
                raise err_bad_request('field label not supported: %s' % [k for k, _o, _v in freqs
                                                                        if k != "metadata.name"][0])
            objs, rv = nodes.list()
            objs = [o for o in objs if label_match(lreqs, o["metadata"].get("labels"))
                    and all((op == "=") == (o["metadata"]["name"] == v) for _k, op, v in freqs)]
            if fmt["as"] == "Table":
                return self.send_json(200, node_table(objs, rv, self._table_fmt(fmt)))
            if fmt["as"] == "PartialObjectMetadataList":
                return self.send_json(200, {"kind": "PartialObjectMetadataList",
                                            "apiVersion": "meta.k8s.io/" + fmt["v"],
                                            "metadata": {"resourceVersion": str(rv)},
                                            "items": [partial_metadata(o, fmt["v"]) for o in objs]})
            if fmt["as"] == "PartialObjectMetadata":
                raise negotiate_fail()
            items = []
            for o in objs:
                o = dict(o)
                o.pop("kind", None)
                o.pop("apiVersion", None)
                items.append(o)
            return self.send_json(200, {"kind": "NodeList", "apiVersion": "v1",
                                        "metadata": {"resourceVersion": str(rv)}, "items": items})
        if method == "POST" and not name:
            self.app.authz.check(self.user, "create", NODE_RESOURCE)
            params = self.check_params(write=True)
            ctype = (self.headers.get("Content-Type") or "application/json").split(";")[0].strip().lower()
            body = self.read_body()
            if ctype != "application/json":
                raise APIError(415, "UnsupportedMediaType",
                               "the body of the request was in an unknown format - accepted media types include: application/json",
                               {})
            try:
                raw, _dups = parse_json_body(body)
            except DecodeError as e:
                raise err_bad_request("couldn't get version/kind; json parse error: %s" % e)
            created = nodes.create(raw, dry_run=bool(params.get("dryRun")))
            return self.send_json(201, created)
        if method == "DELETE" and name:
            self.app.authz.check(self.user, "delete", NODE_RESOURCE, "", name)
            self.read_body()
            old = nodes.delete(name)
            return self.send_json(200, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                                        "details": {"name": name, "kind": NODE_RESOURCE,
                                                    "uid": old["metadata"].get("uid", "")}})
        raise err_method_not_allowed()

    def handle_configmap(self, method, ns, name):
        """GET / PUT / PATCH (merge) of a seeded ConfigMap (kube-public/cluster-info), with
        kube-apiserver's optimistic concurrency: a PUT or PATCH whose metadata.resourceVersion
        is not the current one is 409 Conflict; none is an unconditional update (ConfigMaps
        allow it). --configmap-conflicts N answers the next N writes with 409 whatever they say."""
        cms = self.app.configmaps
        verb = {"GET": "get", "PUT": "update", "PATCH": "patch"}.get(method)
        if verb is None:
            raise err_method_not_allowed()
        if not self.app.authz.is_admin(self.user):
            raise err_forbidden(name, 'User "%s" cannot %s resource "configmaps" in API group "" in the namespace "%s"'
                                % (self.user.name, verb, ns), qualified="configmaps", kind="configmaps", group="")
        not_found = APIError(404, "NotFound", 'configmaps "%s" not found' % name, _details(name, "configmaps", ""))

        def conflict():
            return APIError(409, "Conflict", 'Operation cannot be fulfilled on configmaps "%s": %s'
                            % (name, CONFLICT_MODIFIED), _details(name, "configmaps", ""))
        with self.app.store.lock:
            cur = cms.get((ns, name))
            if method == "GET":
                if cur is None:
                    raise not_found
                return self.send_json(200, cur)
            params = self.check_params(write=True)
            body = self.read_body()
            try:
                raw, _dups = parse_json_body(body)
            except DecodeError as e:
                raise err_bad_request("json parse error: %s" % e)
            if cur is None:
                raise not_found
            if not isinstance(raw, dict):
                raise err_bad_request("the body must be a JSON object")
            if self.app.configmap_conflicts > 0:
                self.app.configmap_conflicts -= 1
                raise conflict()
            if method == "PUT":
                new = copy.deepcopy(raw)
            else:
                ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
                if ctype != "application/merge-patch+json":
                    raise APIError(415, "UnsupportedMediaType", "the body of the request was in an unknown format - "
                                   "accepted media types include: application/merge-patch+json", {})
                new = merge_patch(copy.deepcopy(cur), raw)
            meta = new.get("metadata") if isinstance(new.get("metadata"), dict) else {}
            want = (raw.get("metadata") or {}).get("resourceVersion") if isinstance(raw.get("metadata"), dict) else None
            if want and want != cur["metadata"]["resourceVersion"]:
                raise conflict()
            if meta.get("name", name) != name or meta.get("namespace", ns) != ns:
                raise err_bad_request("the name or namespace of the object does not match the request")
            data = new.get("data", {})
            if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
                raise err_bad_request("data must be a map of strings")
            new["kind"], new["apiVersion"] = "ConfigMap", "v1"
            new["metadata"] = dict(cur["metadata"], **{k: v for k, v in meta.items()
                                                       if k in ("labels", "annotations")})
            if params.get("dryRun"):
                return self.send_json(200, new)
            self.app.store.rv += 1
            new["metadata"]["resourceVersion"] = str(self.app.store.rv)
            cms[(ns, name)] = copy.deepcopy(new)
            self.app.configmap_writes += 1
            return self.send_json(200, new)

    # -- watch -----------------------------------------------------------
    def serve_watch(self, lreqs, freqs, fmt):
        store = self.app.store
        q = self.query
        try:
            timeout = int(q.get("timeoutSeconds") or 0)
        except ValueError:
            raise err_bad_request("invalid timeoutSeconds")
        if timeout <= 0:
            timeout = self.app.min_request_timeout * (1 + secrets.randbelow(1000) / 1000.0)
        bookmarks = q.get("allowWatchBookmarks", "").lower() == "true"
        send_initial = q.get("sendInitialEvents", "").lower() == "true"
        rv_param = q.get("resourceVersion", "")
        if send_initial and (q.get("resourceVersionMatch") != "NotOlderThan" or not bookmarks):
            raise err_invalid("", [fe_forbidden("sendInitialEvents",
                                                "sendInitialEvents is forbidden for watch unless resourceVersionMatch is set to NotOlderThan and allowWatchBookmarks is set to true")])
        if rv_param not in ("", "0"):
            try:
                start_rv = int(rv_param)
            except ValueError:
                raise err_bad_request('invalid resource version: %s' % rv_param)
        else:
            start_rv = None

        def matches(o):
            return o is not None and label_match(lreqs, o["metadata"].get("labels")) and field_match(freqs, o)

        initial = []
        with store.lock:
            if start_rv is None or send_initial:
                objs, cur = store.list()
                initial = [o for o in objs if matches(o)]
                last_rv = cur if start_rv is None else max(start_rv, 0)
                if start_rv is not None and send_initial:
                    last_rv = cur
            else:
                last_rv = start_rv
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Cache-Control", "no-cache, private")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.code = 200
        self.first_table = True
        self.close_connection = False
        deadline = time.time() + timeout
        next_bookmark = time.time() + self.app.bookmark_interval
        try:
            for o in initial:
                self.write_event("ADDED", o, fmt)
            if send_initial:
                self.write_bookmark(last_rv, initial_end=True)
            while True:
                now = time.time()
                if now >= deadline or self.app.stopping.is_set() or self.peer_closed():
                    break
                err = None
                with store.lock:
                    if store.closed:
                        break
                    try:
                        evs = store.events_after(last_rv)
                        if not evs:
                            store.cond.wait(min(1.0, max(0.01, deadline - now)))
                            evs = store.events_after(last_rv)
                    except Expired as e:
                        err = e
                if err is not None:
                    self.write_raw({"type": "ERROR", "object": {
                        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                        "message": str(err), "reason": "Expired", "code": 410}})
                    break
                for ev in evs:
                    last_rv = ev.rv
                    new_m = matches(ev.obj)
                    old_m = matches(ev.prev)
                    if ev.type == "ADDED" and new_m:
                        self.write_event("ADDED", ev.obj, fmt)
                    elif ev.type == "MODIFIED":
                        if new_m and old_m:
                            self.write_event("MODIFIED", ev.obj, fmt)
                        elif new_m:
                            self.write_event("ADDED", ev.obj, fmt)
                        elif old_m:
                            self.write_event("DELETED", ev.obj, fmt)
                    elif ev.type == "DELETED" and (old_m or new_m):
                        self.write_event("DELETED", ev.obj, fmt)
                if bookmarks and time.time() >= next_bookmark:
                    self.write_bookmark(last_rv)
                    next_bookmark = time.time() + self.app.bookmark_interval
            self.wfile.write(b"0\r\n\r\n")
        except (OSError, ValueError):
            self.close_connection = True

    def peer_closed(self):
        """During a watch the client sends nothing; readable means EOF."""
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            if not readable:
                return False
            return not self.connection.recv(1)
        except (ssl.SSLWantReadError, BlockingIOError):
            return False
        except (OSError, ValueError):
            return True

    def write_raw(self, ev):
        data = json.dumps(ev, separators=(",", ":")).encode() + b"\n"
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def write_event(self, typ, obj, fmt):
        if fmt["as"] == "Table":
            o = make_table([obj], obj["metadata"].get("resourceVersion", ""), self._table_fmt(fmt),
                           headers=self.first_table)
            if not self.first_table:
                del o["columnDefinitions"]
            self.first_table = False
        elif fmt["as"] in ("PartialObjectMetadata", "PartialObjectMetadataList"):
            o = partial_metadata(obj, fmt["v"])
        else:
            o = csr_to_json(obj)
        self.write_raw({"type": typ, "object": o})

    def write_bookmark(self, rv, initial_end=False):
        meta = {"resourceVersion": str(rv), "creationTimestamp": None}
        if initial_end:
            meta["annotations"] = {"k8s.io/initial-events-end": "true"}
        self.write_raw({"type": "BOOKMARK", "object": {"kind": KIND, "apiVersion": GROUP_VERSION, "metadata": meta,
                                                       "spec": {"request": None, "signerName": ""}, "status": {}}})


def negotiate_fail():
    return APIError(406, "NotAcceptable",
                    "only the following media types are accepted: application/json, application/json;as=Table;v=v1;g=meta.k8s.io",
                    {})


# --------------------------------------------------------------------------
# core/v1 Node objects
#
# Just what kubectl (get/create/delete nodes, the Table of printNode) and a
# kubelet-serving CSR approver (GET /api/v1/nodes/NAME, status.addresses) need.
# Nodes come from --seed files at startup or from POST (admins only); they are
# stored as given (status included: the real apiserver accepts status on node
# create), with uid, creationTimestamp and a resourceVersion from the same
# counter as the CSRs. No update, patch or watch.

NODE_RESOURCE = "nodes"
NODE_KIND = "Node"
NODE_ADDRESS_TYPES = ("Hostname", "InternalIP", "ExternalIP", "InternalDNS", "ExternalDNS")


def core_v1_resource_list():
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "v1",
            "resources": [{"name": NODE_RESOURCE, "singularName": "node", "namespaced": False, "kind": NODE_KIND,
                           "verbs": ["create", "delete", "get", "list"], "shortNames": ["no"],
                           "storageVersionHash": "XwShjMxG9Fs="},
                          {"name": "configmaps", "singularName": "configmap", "namespaced": True,
                           "kind": "ConfigMap", "verbs": ["get", "update", "patch"], "shortNames": ["cm"],
                           "storageVersionHash": "qFsyl6wFWjQ="}]}


def err_node_not_found(name):
    return APIError(404, "NotFound", '%s "%s" not found' % (NODE_RESOURCE, name), _details(name, NODE_RESOURCE, ""))


def err_node_invalid(name, field_errors):
    msgs = []
    for fe in field_errors:
        m = fe.error()
        if m not in msgs:
            msgs.append(m)
    agg = msgs[0] if len(msgs) == 1 else "[" + ", ".join(msgs) + "]"
    details = _details(name, NODE_KIND, "")
    details["causes"] = [{"reason": fe.type, "message": fe.body(), "field": fe.field} for fe in field_errors]
    return APIError(422, "Invalid", '%s "%s" is invalid: %s' % (NODE_KIND, name, agg), details)


class GoNodeAddress:
    """A core.NodeAddress as fmt's %#v prints it in a field error."""

    def __init__(self, a):
        self.a = a

    def __str__(self):
        return "core.NodeAddress{Type:%s, Address:%s}" % (go_quote(str(self.a.get("type", ""))),
                                                          go_quote(str(self.a.get("address", ""))))


def validate_node(obj):
    """The parts of ValidateNode the approver depends on: the name (a DNS-1123 subdomain),
    metadata, and unique status.addresses entries of string type and address. Like
    kube-apiserver, any address type string is accepted; the kubelet writes Hostname,
    InternalIP, ExternalIP, InternalDNS and ExternalDNS."""
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        return [fe_required("metadata.name", "name or generateName is required")]
    errs = validate_object_meta(meta, True)
    name = meta.get("name")
    if isinstance(name, str) and name:
        for m in is_dns1123_subdomain(name):
            errs.append(fe_invalid("metadata.name", name, m))
    status = obj.get("status") or {}
    addrs = status.get("addresses") if isinstance(status, dict) else None
    seen = set()
    for i, a in enumerate(addrs or []):
        path = "status.addresses[%d]" % i
        if not isinstance(a, dict) or not isinstance(a.get("type", ""), str) \
                or not isinstance(a.get("address", ""), str):
            errs.append(fe_invalid(path, json.dumps(a), "must be an object with string type and address"))
            continue
        key = (a.get("type", ""), a.get("address", ""))
        if key in seen:
            errs.append(fe_duplicate(path, GoNodeAddress(a)))
        seen.add(key)
    return errs


class NodeStore:
    def __init__(self, store):
        self.store = store  # shares its lock and resourceVersion counter (one etcd revision)
        self.objs = {}

    def get(self, name):
        with self.store.lock:
            o = self.objs.get(name)
            return copy.deepcopy(o) if o is not None else None

    def list(self):
        with self.store.lock:
            return [copy.deepcopy(self.objs[k]) for k in sorted(self.objs)], self.store.rv

    def create(self, raw, dry_run=False):
        if not isinstance(raw, dict):
            raise err_bad_request("Node in version \"v1\" cannot be handled as a Node: json: cannot unmarshal %s "
                                  "into Go value of type core.Node" % _jtype(raw))
        kind, api_version = raw.get("kind") or NODE_KIND, raw.get("apiVersion") or "v1"
        if kind != NODE_KIND or api_version != "v1":
            raise err_bad_request("the API version in the data (%s) does not match the expected API version (v1)"
                                  % api_version if api_version != "v1" else
                                  "%s in version \"v1\" cannot be handled as a Node: no kind \"%s\" is registered"
                                  % (kind, kind))
        obj = copy.deepcopy(raw)
        obj["kind"], obj["apiVersion"] = NODE_KIND, "v1"
        meta = obj.setdefault("metadata", {})
        if isinstance(meta, dict):
            for k in ("namespace", "deletionTimestamp", "deletionGracePeriodSeconds", "generation", "selfLink"):
                meta.pop(k, None)
            if meta.get("resourceVersion"):
                raise err_internal("resourceVersion should not be set on objects to be created")
        errs = validate_node(obj)
        name = meta.get("name", "") if isinstance(meta, dict) else ""
        if errs:
            raise err_node_invalid(name, errs)
        obj.setdefault("spec", {})
        obj.setdefault("status", {})
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now_time()
        with self.store.lock:
            if name in self.objs:
                raise APIError(409, "AlreadyExists", '%s "%s" already exists' % (NODE_RESOURCE, name),
                               _details(name, NODE_RESOURCE, ""))
            if dry_run:
                return obj
            self.store.rv += 1
            meta["resourceVersion"] = str(self.store.rv)
            self.objs[name] = copy.deepcopy(obj)
        return obj

    def delete(self, name):
        with self.store.lock:
            old = self.objs.pop(name, None)
            if old is None:
                raise err_node_not_found(name)
            self.store.rv += 1
            return old


def load_seed(path):
    """A --seed file: JSON, one Node or a List/NodeList of them."""
    with open(path) as f:
        doc = json.load(f)
    items = doc.get("items") if isinstance(doc, dict) and doc.get("kind") in ("List", "NodeList") else [doc]
    if not isinstance(items, list):
        raise ValueError("%s: items must be a list" % path)
    return items


def _ncol(name, desc, fmt="", priority=0):
    c = _col(name, desc, fmt)
    c["priority"] = priority
    return c


NODE_COLUMNS = [
    CSR_COLUMNS[0],
    _ncol("Status", "The status of the node"),
    _ncol("Roles", "The roles of the node"),
    CSR_COLUMNS[1],
    _ncol("Version", "Kubelet Version reported by the node."),
    _ncol("Internal-IP", "List of addresses reachable to the node. Queried from cloud provider, if available. More info: https://kubernetes.io/docs/reference/node/node-status/#addresses", priority=1),
    _ncol("External-IP", "List of addresses reachable to the node. Queried from cloud provider, if available. More info: https://kubernetes.io/docs/reference/node/node-status/#addresses", priority=1),
    _ncol("OS-Image", "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy)).", priority=1),
    _ncol("Kernel-Version", "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64).", priority=1),
    _ncol("Container-Runtime", "Container runtime version reported by the node through runtime remote API (e.g. containerd://1.4.2).", priority=1),
]


def node_cells(obj):
    """printers.printNode."""
    st = obj.get("status") or {}
    conds = {c.get("type"): c for c in st.get("conditions") or [] if isinstance(c, dict)}
    status = []
    if "Ready" in conds:
        status.append("Ready" if conds["Ready"].get("status") == "True" else "NotReady")
    if not status:
        status.append("Unknown")
    if (obj.get("spec") or {}).get("unschedulable"):
        status.append("SchedulingDisabled")
    roles = set()
    for k, v in ((obj["metadata"].get("labels")) or {}).items():
        if k.startswith("node-role.kubernetes.io/") and k[len("node-role.kubernetes.io/"):]:
            roles.add(k[len("node-role.kubernetes.io/"):])
        elif k == "kubernetes.io/role" and v:
            roles.add(v)
    ts = obj["metadata"].get("creationTimestamp")
    age = human_duration(time.time() - parse_time(ts)) if ts else "<unknown>"
    info = st.get("nodeInfo") or {}

    def addr(t):
        for a in st.get("addresses") or []:
            if isinstance(a, dict) and a.get("type") == t:
                return a.get("address", "")
        return "<none>"

    return [obj["metadata"].get("name", ""), ",".join(status), ",".join(sorted(roles)) or "<none>", age,
            info.get("kubeletVersion", ""), addr("InternalIP"), addr("ExternalIP"),
            info.get("osImage") or "<unknown>", info.get("kernelVersion") or "<unknown>",
            info.get("containerRuntimeVersion") or "<unknown>"]


def node_table(objs, rv, fmt):
    include = fmt.get("includeObject") or "Metadata"
    rows = []
    for o in objs:
        row = {"cells": node_cells(o)}
        if include == "Object":
            row["object"] = o
        elif include == "Metadata":
            row["object"] = partial_metadata(o, fmt.get("v", "v1"))
        else:
            row["object"] = None
        rows.append(row)
    return {"kind": "Table", "apiVersion": "meta.k8s.io/" + fmt.get("v", "v1"),
            "metadata": {"resourceVersion": str(rv)}, "columnDefinitions": NODE_COLUMNS, "rows": rows}


# --------------------------------------------------------------------------
# main

class App:
    pass


def build_ssl_context(args):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(args.tls_cert, args.tls_key)
    if args.client_ca:
        ctx.load_verify_locations(cafile=args.client_ca)
        ctx.verify_mode = ssl.CERT_OPTIONAL
        # Like kube-apiserver, expired client certs reach the authenticator
        # (and get 401) instead of failing the handshake.
        ctx.verify_flags |= 0x200000  # X509_V_FLAG_NO_CHECK_TIME
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def parse_duration(s):
    m = re.fullmatch(r"((\d+)h)?((\d+)m)?((\d+)s)?", s.strip())
    if not m or not s.strip():
        try:
            return int(s)
        except ValueError:
            raise argparse.ArgumentTypeError("invalid duration %r (use e.g. 8760h, 30m, 600s)" % s)
    h, mi, se = (int(m.group(i) or 0) for i in (2, 4, 6))
    return h * 3600 + mi * 60 + se


def main(argv=None):
    ap = argparse.ArgumentParser(description="certificates.k8s.io/v1 API server for tests")
    ap.add_argument("--listen", default="127.0.0.1:0", help="HOST:PORT (port 0 picks a free port)")
    ap.add_argument("--tls-cert", required=True)
    ap.add_argument("--tls-key", required=True)
    ap.add_argument("--client-ca", help="CA bundle for client certificate authentication")
    ap.add_argument("--token-file", help='CSV: token,user,uid,"group1,group2"')
    ap.add_argument("--cluster-signing-cert", help="enables the csrsigning controller (like kube-controller-manager --cluster-signing-cert-file)")
    ap.add_argument("--cluster-signing-key")
    ap.add_argument("--signing-duration", type=parse_duration, default=8760 * 3600,
                    help="max duration of signed certificates (default 8760h, like --cluster-signing-duration)")
    ap.add_argument("--signer", action="append", dest="signers",
                    help="signerName handled by the csrsigning controller (repeatable; default: the three kubernetes.io signers)")
    ap.add_argument("--admin-group", action="append", dest="admin_groups",
                    help="groups allowed everything (default: system:masters, kubeadm:cluster-admins)")
    ap.add_argument("--admin-user", action="append", dest="admin_users", default=[])
    ap.add_argument("--user-verbs", default="create,get,list,watch",
                    help="verbs on certificatesigningrequests for other authenticated users")
    ap.add_argument("--disable-admission-plugins", default="",
                    help="comma-separated; known: CertificateSubjectRestriction")
    ap.add_argument("--no-openapi", action="store_true", help="answer 404 on /openapi/v3 (forces kubectl --validate=false)")
    ap.add_argument("--min-request-timeout", type=int, default=1800)
    ap.add_argument("--bookmark-interval", type=float, default=60.0)
    ap.add_argument("--seed", action="append", default=[],
                    help="JSON file with a Node or a List/NodeList of Nodes created at startup (repeatable)")
    ap.add_argument("--configmap", action="append", default=[],
                    help="JSON file with a ConfigMap (namespace and name in metadata) served at "
                         "/api/v1/namespaces/NS/configmaps/NAME for GET, PUT and merge PATCH (repeatable)")
    ap.add_argument("--configmap-conflicts", type=int, default=0,
                    help="answer the next N ConfigMap writes with 409 Conflict")
    ap.add_argument("--port-file", help="write the chosen port here once listening")
    ap.add_argument("-v", "--verbose", action="store_true", help="log every request")
    args = ap.parse_args(argv)
    if bool(args.cluster_signing_cert) != bool(args.cluster_signing_key):
        ap.error("--cluster-signing-cert and --cluster-signing-key go together")

    host, _, port = args.listen.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    app = App()
    app.verbose = args.verbose
    app.stopping = threading.Event()
    app.serve_openapi = not args.no_openapi
    app.min_request_timeout = args.min_request_timeout
    app.bookmark_interval = args.bookmark_interval
    app.store = Store()
    app.nodes = NodeStore(app.store)
    for f in args.seed:
        try:
            for item in load_seed(f):
                app.nodes.create(item)
        except (OSError, ValueError) as e:
            ap.error("--seed %s: %s" % (f, e))
        except APIError as e:
            ap.error("--seed %s: %s" % (f, e.message))
    app.configmaps = {}
    app.configmap_conflicts = args.configmap_conflicts
    app.configmap_writes = 0
    for f in args.configmap:
        try:
            with open(f) as fh:
                cm = json.load(fh)
            meta = cm["metadata"]
            key = (meta["namespace"], meta["name"])
        except (OSError, ValueError, KeyError, TypeError) as e:
            ap.error("--configmap %s: %s" % (f, e))
        app.store.rv += 1
        cm["kind"], cm["apiVersion"] = "ConfigMap", "v1"
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("creationTimestamp", now_time())
        meta["resourceVersion"] = str(app.store.rv)
        app.configmaps[key] = cm
    app.authn = Authenticator(args.client_ca, args.token_file)
    app.authz = Authorizer(args.admin_groups or ["system:masters", "kubeadm:cluster-admins"], args.admin_users,
                           [v.strip() for v in args.user_verbs.split(",") if v.strip()])
    disabled = {p.strip() for p in args.disable_admission_plugins.split(",") if p.strip()}
    app.api = API(app.store, app.authz, {"CertificateSubjectRestriction"} - disabled)

    ctx = build_ssl_context(args)
    server = ThreadedHTTPSServer((host, int(port)), Handler, ctx, app)
    bound_port = server.server_address[1]
    app.advertise = "%s:%d" % (host if ":" not in host else "[%s]" % host, bound_port)

    controller = None
    if args.cluster_signing_cert:
        signer = LocalSigner(args.cluster_signing_cert, args.cluster_signing_key, args.signing_duration)
        controller = SigningController(app.api, signer, args.signers or BUILTIN_SIGNERS)
        controller.start()

    def shutdown(signum, _frame):
        if app.stopping.is_set():
            return
        log("received signal %d, shutting down", signum)
        app.stopping.set()
        app.store.close()
        if controller:
            controller.stop.set()
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)

    log("serving certificates.k8s.io/v1 on https://%s (client CA %s, signer %s)", app.advertise,
        args.client_ca or "none", args.cluster_signing_cert or "disabled")
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % bound_port)
        os.replace(tmp, args.port_file)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
    log("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
