#!/usr/bin/python
# Copyright (c) kubecert contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: Apache-2.0 OR GPL-3.0-or-later

DOCUMENTATION = r'''
module: csr_import
short_description: Install externally signed kubeadm certificates
version_added: 0.1.0
description:
  - Calls the kubecert agent's C(csr-import) method, which validates each signed C(<name>.crt) found in
    O(csr_dir) (signed by the right CA, matching key, subject and SANs, usages, validity) and installs
    the acceptable ones with their keys, backing up what they replace in RV(backupDir).
  - The module fails when the agent refuses a certificate; RV(certificates[].findings) says why.
  - In check mode the agent is asked for a dry run (C(dry_run=true)) and reports what it would install.
author:
  - kubecert maintainers (@kubecert)
extends_documentation_fragment:
  - kubecert.pki.agent
  - kubecert.pki.agent.paths
  - kubecert.pki.agent.external_etcd
  - kubecert.pki.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details:
      - One diff per installed certificate, with NotAfter, serial and SANs before and after.
options:
  names:
    description:
      - The kubeadm names of the certificates to install, or V(all).
      - When not set, the agent selects all of them.
    type: list
    elements: str
  csr_dir:
    description:
      - Where M(kubecert.pki.csr_export) wrote the CSRs and keys and where the signed certificates
        (C(<name>.crt)) were put.
    type: path
    required: true
  backup_dir:
    description:
      - Where the agent keeps backups; each run gets its own subdirectory, returned as RV(backupDir).
      - When not set, the agent uses C(<cert_dir>/../kubecert-backup).
    type: path
  now:
    description:
      - Validate as of this RFC 3339 UTC time instead of the clock (for tests).
    type: str
seealso:
  - module: kubecert.pki.csr_export
  - module: kubecert.pki.cert_restore
'''

EXAMPLES = r'''
- name: Put the signed certificates next to the CSRs
  ansible.builtin.copy:
    src: "signed/{{ inventory_hostname }}/"
    dest: /root/kubecert-csr/
    mode: '0644'

- name: Install them
  kubecert.pki.csr_import:
    csr_dir: /root/kubecert-csr
  register: kubecert_import

- name: Install only the API server certificate, as of a given date
  kubecert.pki.csr_import:
    names: [apiserver]
    csr_dir: /root/kubecert-csr
    now: '2027-01-02T03:04:05Z'
'''

RETURN = r'''
certificates:
  description: One entry per selected certificate.
  returned: success
  type: list
  elements: dict
  contains:
    name:
      description: The kubeadm name.
      returned: always
      type: str
      sample: apiserver
    action:
      description:
        - V(installed), V(would-install) (check mode, or valid but another certificate of the run was refused),
          V(unchanged) (already in use), V(refused) or V(absent) (no signed certificate found).
      returned: always
      type: str
      sample: installed
    longName:
      description: kubeadm's description of the certificate.
      returned: when the agent reports it
      type: str
      sample: certificate for serving the Kubernetes API
    reason:
      description: Why that action was taken.
      returned: when the agent reports it
      type: str
      sample: valid
    caName:
      description: The CA it must chain to.
      returned: when the agent reports it
      type: str
      sample: ca
    crtPath:
      description: The signed certificate that was read.
      returned: when the agent reports it
      type: str
      sample: /root/kubecert-csr/apiserver.crt
    keyPath:
      description: Path of its private key (the key itself is never returned).
      returned: when the agent reports it
      type: str
      sample: /root/kubecert-csr/apiserver.key
    files:
      description: The files written (or that would be written).
      returned: when the agent reports it
      type: list
      elements: str
      sample: [/etc/kubernetes/pki/apiserver.crt, /etc/kubernetes/pki/apiserver.key]
    findings:
      description: What validation found.
      returned: always
      type: list
      elements: dict
      contains:
        code:
          description: A stable code.
          returned: always
          type: str
          sample: san-mismatch
        message:
          description: A readable explanation.
          returned: always
          type: str
          sample: DNS name kubernetes.default is missing
    old:
      description: The installed certificate before (NotAfter, serial, SANs, subject).
      returned: when a certificate was installed before
      type: dict
      contains: &cert_state
        notAfter:
          description: NotAfter in RFC 3339 UTC.
          returned: always
          type: str
          sample: '2026-12-01T00:00:00Z'
        notBefore:
          description: NotBefore in RFC 3339 UTC.
          returned: when the agent reports it
          type: str
          sample: '2025-12-01T00:00:00Z'
        serial:
          description: Serial number in hex.
          returned: always
          type: str
          sample: 5f3a0c
        dnsNames:
          description: DNS subject alternative names.
          returned: always
          type: list
          elements: str
          sample: [kubernetes, kubernetes.default]
        ipAddresses:
          description: IP address subject alternative names.
          returned: always
          type: list
          elements: str
          sample: [10.96.0.1]
        subject:
          description: The subject distinguished name.
          returned: always
          type: str
          sample: CN=kube-apiserver
        extKeyUsage:
          description: Extended key usages.
          returned: when the agent reports it
          type: list
          elements: str
          sample: [serverAuth]
        keyAlgorithm:
          description: The key algorithm and size.
          returned: when the agent reports it
          type: str
          sample: RSA-2048
    new:
      description: The imported certificate (NotAfter, serial, SANs, subject).
      returned: when one was found
      type: dict
      contains: *cert_state
dryRun:
  description: Whether the agent only validated (check mode).
  returned: when the agent reports it
  type: bool
  sample: false
csrDir:
  description: The directory the signed certificates were read from.
  returned: when the agent reports it
  type: str
  sample: /root/kubecert-csr
componentsToRestart:
  description: The static pods that read an installed certificate and must restart to use it.
  returned: when the agent reports it
  type: list
  elements: str
  sample: [kube-apiserver]
recovered:
  description: What the agent did to recover an interrupted earlier run before this one, if anything.
  returned: when an earlier run was recovered
  type: str
  sample: rolled back an interrupted transaction
backupDir:
  description:
    - The directory holding the files this run replaced; pass it to M(kubecert.pki.cert_restore) to roll back.
    - V(null) when nothing was written.
  returned: success
  type: str
  sample: /etc/kubernetes/kubecert-backup/20261129T041500Z
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.kubecert.pki.plugins.module_utils.kubecert import (
    PATHS_ARGUMENT_SPEC,
    argument_spec,
    certificate_diff,
    exit_with_result,
    run,
)


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(
            PATHS_ARGUMENT_SPEC,
            names=dict(type='list', elements='str'),
            csr_dir=dict(type='path', required=True),
            external_etcd=dict(type='bool'),
            backup_dir=dict(type='path'),
            now=dict(type='str'),
        ),
        supports_check_mode=True,
    )
    params = dict((name, module.params[name]) for name in (
        'names', 'csr_dir', 'cert_dir', 'kubeconfig_dir', 'external_etcd', 'backup_dir', 'now'))
    params['dry_run'] = module.check_mode
    result = run(module, 'csr-import', params)
    refused = [cert for cert in result.get('certificates') or []
               if isinstance(cert, dict) and cert.get('action') == 'refused']
    if refused:
        reasons = []
        for cert in refused:
            messages = [finding.get('message') or finding.get('code') or '?'
                        for finding in cert.get('findings') or [] if isinstance(finding, dict)]
            reasons.append('{0}: {1}'.format(cert.get('name'), '; '.join(messages) or 'no reason given'))
        failed = dict(result)
        changed = bool(failed.pop('changed', False))
        module.fail_json(msg='kubecert refused to install {0}'.format(' | '.join(reasons)), changed=changed, **failed)
    exit_with_result(module, result, diff=certificate_diff(result.get('certificates')),
                     changed_actions=('installed', 'would-install'))


if __name__ == '__main__':
    main()
