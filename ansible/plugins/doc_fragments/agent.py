# Copyright (c) kubecert contributors
# SPDX-License-Identifier: Apache-2.0
"""Options shared by every kubecert.pki module (see module_utils/kubecert.py)."""


class ModuleDocFragment(object):

    # How to reach the agent: AGENT_ARGUMENT_SPEC.
    DOCUMENTATION = r'''
options:
  socket:
    description:
      - Path of the kubecert agent's unix socket (C(kubecert serve --socket)).
      - JSON-RPC 2.0 over HTTP/1.1 is spoken on it.
      - With O(transport=auto) the socket is used when it exists and accepts the connection,
        otherwise O(kubecert_bin) is spawned as C(kubecert serve --stdio).
    type: path
    default: /run/kubecert/kubecert.sock
  kubecert_bin:
    description:
      - The kubecert binary to spawn as C(kubecert serve --stdio) when the socket is not used.
      - A bare name is looked up in E(PATH) and C(/usr/local/bin).
    type: str
    default: kubecert
  transport:
    description:
      - V(auto) uses O(socket) when it is usable, else spawns O(kubecert_bin).
      - V(socket) only uses O(socket); V(stdio) always spawns O(kubecert_bin).
    type: str
    choices: [auto, socket, stdio]
    default: auto
  timeout:
    description:
      - Seconds to wait for the agent's answer to one call.
    type: int
    default: 120
notes:
  - The module talks JSON-RPC 2.0 to the kubecert agent; the contract is C(docs/rpc.md) in the kubecert repository.
  - A JSON-RPC error fails the module with C(rpc_error) holding the error's C(code), C(message) and C(data).
  - Neither the agent nor the module ever returns private key material.
requirements:
  - The kubecert agent on the managed node, either running on O(socket) or installed as O(kubecert_bin).
'''

    # Where kubeadm keeps its files: PATHS_ARGUMENT_SPEC.
    PATHS = r'''
options:
  cert_dir:
    description:
      - The kubeadm certificate directory.
    type: path
    default: /etc/kubernetes/pki
  kubeconfig_dir:
    description:
      - The directory holding the kubeadm kubeconfig files (C(admin.conf), C(kubelet.conf), ...).
    type: path
    default: /etc/kubernetes
'''

    # Whether etcd is external: the `external_etcd` param of the methods that take a PkiLocation.
    EXTERNAL_ETCD = r'''
options:
  external_etcd:
    description:
      - Whether etcd is external, so that its certificates are not expected under O(cert_dir).
      - When not set, the agent decides (external when C(<cert_dir>/etcd) is absent).
    type: bool
'''

    # A fixed clock and the backup directory of the methods that write through the store
    # (ca-install, ca-renew, ca-rotate, renew).
    WRITE = r'''
options:
  now:
    description:
      - Act as of this RFC 3339 UTC time instead of the clock (for tests).
    type: str
  backup_dir:
    description:
      - Where the agent keeps backups; each run gets its own timestamped subdirectory, returned as RV(backupDir).
      - When not set, the agent uses C(<cert_dir>/../kubecert-backup).
    type: path
'''
