#!/usr/bin/python
# Copyright (c) kubecert contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: Apache-2.0 OR GPL-3.0-or-later

DOCUMENTATION = r'''
module: expiration_report
short_description: One certificate expiration report across nodes, on the controller
version_added: 0.2.0
description:
  - Reads every node's registered M(kubecert.pki.cert_info) result and builds one report on the
    controller, in the controller's process (an action plugin; nothing runs on the nodes).
  - Prints a table (one row per certificate, CA and C(kubelet.conf)) and one summary line per node,
    and writes the table and a JSON report (rows, findings, summaries and every node's full result)
    to O(report_dir).
  - Fails when anything is not healthy, whatever the dates say - a certificate that expires within
    O(threshold_days) or has expired; the agent's C(status.level) V(fail); a certificate with an error
    problem (key missing or mismatched, not signed by its CA, ...); a node where every certificate
    and CA is missing (no kubeadm PKI at the path); a missing file not in O(allow_missing); a node
    that could not be read.
  - C(kubelet.conf) findings say what to do with the M(kubecert.pki.kubelet_conf) module.
  - Never reports C(changed) - the report files describe the nodes, they change nothing on them.
    In check mode the report is shown but not written.
  - Used by the C(kubecert.pki.check_expiration) playbook.
author:
  - kubecert maintainers (@kubecert)
extends_documentation_fragment:
  - kubecert.pki.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
options:
  hosts:
    description: The nodes to report on (usually C(ansible_play_hosts_all)).
    type: list
    elements: str
    required: true
  register_name:
    description: The variable each node registered its M(kubecert.pki.cert_info) result in.
    type: str
    default: kubecert_info
  threshold_days:
    description: A certificate that expires within this many days fails the report.
    type: float
    default: 30
  allow_missing:
    description:
      - Files a node may lack without failing the report.
      - C(super-admin.conf) exists only on the first control-plane node of a kubeadm >= 1.29 cluster.
    type: list
    elements: str
    default: []
  report_dir:
    description: Directory on the controller for C(kubecert-expiration.txt) and C(kubecert-expiration.json); none when unset.
    type: path
'''

EXAMPLES = r'''
- name: Read certificate expiration
  kubecert.pki.cert_info:
    fail_within: 30d
  register: kubecert_info
  failed_when: false

- name: One report across all nodes
  kubecert.pki.expiration_report:
    hosts: "{{ ansible_play_hosts_all }}"
    threshold_days: 30
    allow_missing: [super-admin.conf]
    report_dir: /tmp
  run_once: true
  delegate_to: localhost
'''

RETURN = r'''
summary:
  description: One line per node - its verdict, what was read, the soonest expiration, what is wrong.
  returned: always
  type: list
  elements: str
  sample: ['cp1: level ok, 10 certificates and 3 CA(s) read, soonest apiserver in 364.9 days']
findings:
  description: Everything that fails the report besides due certificates, one sentence each.
  returned: always
  type: list
  elements: str
  sample: ['cp1 apiserver: key-missing (/etc/kubernetes/pki/apiserver.key does not exist)']
due:
  description: C(<host> <name>) of each certificate that expires within the threshold or has expired.
  returned: always
  type: list
  elements: str
  sample: [cp1 apiserver]
failed_hosts:
  description: Nodes that could not be read.
  returned: always
  type: list
  elements: str
report_files:
  description: The report files written (none in check mode or without O(report_dir)).
  returned: always
  type: list
  elements: str
'''
