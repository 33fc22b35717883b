# Copyright (c) kubecert contributors
# SPDX-License-Identifier: Apache-2.0
"""Action plugin: one expiration report across nodes, built on the controller.

Documented in plugins/modules/expiration_report.py. Runs in the controller's
process (no module is sent anywhere), reads every node's registered
kubecert.pki.cert_info result from hostvars, prints a table and one summary line
per node, writes the text and JSON reports, and fails on anything that is not
healthy: a certificate due within the threshold, the agent's level fail, a
certificate with an error problem, a node without a kubeadm PKI, a missing file
that is not allowed to be missing, an unreadable node.
"""

import json
import os

from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

display = Display()

ROW_FORMAT = '%-24s %-28s %-8s %-21s %10s %-9s %s'
# Problem codes that do not make a certificate unusable (src/check.rs Problem::is_error).
INFO_PROBLEMS = ('outlives-ca',)
# Keys of a registered result that are Ansible's, not the agent's.
ANSIBLE_KEYS = ('changed', 'failed', 'failed_when_result', 'invocation', 'warnings', 'deprecations')
KUBELET_CONF_HINT = {
    'embedded': ('kubelet.conf embeds its client certificate, which kubecert does not renew: repair it with the '
                 'kubecert.pki.kubelet_conf module (repair: true) so that it uses the kubelet-rotated '
                 'kubelet-client-current.pem, then restart the kubelet'),
    'file-reference': ('the kubelet rotates this certificate itself: check that the kubelet runs and rotates its '
                       'client certificate (kubecert.pki.kubelet_conf shows the state)'),
}


def _days(seconds):
    return round(seconds / 86400.0, 1)


def _error_problems(cert):
    detail = cert.get('detail') or {}
    return [p for p in detail.get('problems') or [] if isinstance(p, dict) and p.get('code') not in INFO_PROBLEMS]


def analyse(host, info, threshold, allow_missing, cert_dir=None):
    """Rows, findings and a summary line for one node's cert_info result."""
    rows, findings = [], []
    certs = list(info.get('certificates') or [])
    cas = list(info.get('certificateAuthorities') or [])
    entries = [('cert', c) for c in certs] + [('ca', c) for c in cas]
    kubelet = info.get('kubeletConf') or {}
    if kubelet.get('present') and kubelet.get('expirationDate') is not None:
        entries.append(('kubelet', {'name': 'kubelet.conf', 'expirationDate': kubelet['expirationDate'],
                                    'residualTime': kubelet.get('residualTime') or 0,
                                    'externallyManaged': False, 'missing': False}))
    # The kubelet section (cert_info kubelet: true): its certificates are rows too; a missing
    # one is a not-found problem (UNHEALTHY), never a silent row.
    for kcert in [(info.get('kubelet') or {}).get(k) for k in ('client', 'serving')]:
        if isinstance(kcert, dict):
            entries.append(('kubelet-cert', {'name': kcert.get('name'), 'expirationDate': kcert.get('expirationDate'),
                                             'residualTime': kcert.get('residualTime') or 0,
                                             'externallyManaged': False, 'missing': False,
                                             'detail': {'problems': kcert.get('problems') or []}}))
    due, missing = [], []
    for kind, cert in entries:
        residual = int(cert.get('residualTime') or 0)
        problems = _error_problems(cert)
        if cert.get('missing'):
            state = 'missing'
            missing.append(cert.get('name'))
        elif problems:
            state = 'UNHEALTHY'
        elif residual <= 0:
            state = 'EXPIRED'
        elif residual < threshold:
            state = 'EXPIRING'
        else:
            state = 'ok'
        if state in ('EXPIRED', 'EXPIRING') or (state == 'UNHEALTHY' and residual < threshold):
            due.append(cert.get('name'))
        for problem in problems:
            findings.append('{0} {1}: {2} ({3})'.format(host, cert.get('name'), problem.get('code'),
                                                        problem.get('message')))
        if kind == 'kubelet' and state in ('EXPIRED', 'EXPIRING'):
            hint = KUBELET_CONF_HINT.get(kubelet.get('mode') or '', 'inspect it with the kubecert.pki.kubelet_conf module')
            findings.append('{0} kubelet.conf: its client certificate {1} ({2}); {3}'.format(
                host, 'expired' if residual <= 0 else 'expires in {0} days'.format(_days(residual)),
                cert.get('expirationDate'), hint))
        rows.append({'host': host, 'name': cert.get('name'), 'kind': kind,
                     'expirationDate': cert.get('expirationDate'),
                     'residualDays': None if cert.get('missing') else _days(residual),
                     'externallyManaged': bool(cert.get('externallyManaged')), 'state': state,
                     'problems': [p.get('code') for p in problems]})
    present = [c for c in certs + cas if not c.get('missing')]
    args = (info.get('invocation') or {}).get('module_args') or {}
    if entries and not present:
        findings.append('{0}: no kubeadm PKI found (cert_dir {1}): every certificate and CA is missing'.format(
            host, args.get('cert_dir') or cert_dir or '/etc/kubernetes/pki'))
    elif [name for name in missing if name not in allow_missing]:
        findings.append('{0}: missing: {1} (kubecert_allow_missing lists the files a node may lack)'.format(
            host, ', '.join(name for name in missing if name not in allow_missing)))
    # The served section (cert_info served=true): a stale or expired served certificate is a
    # finding naming the component to restart; an unreachable endpoint is said in the summary.
    served = info.get('served') or {}
    unreachable = []
    for endpoint in served.get('endpoints') or []:
        if endpoint.get('verdict') == 'stale' or endpoint.get('servedExpired'):
            findings.append('{0} served {1} ({2}): {3}'.format(
                host, endpoint.get('endpoint'), endpoint.get('address'), endpoint.get('summary')))
        elif endpoint.get('verdict') == 'unreachable':
            unreachable.append(endpoint.get('endpoint'))
    status = info.get('status') or {}
    agent_level = status.get('level') or 'unknown'
    if agent_level in ('fail', 'error') and not findings and not due:
        findings.append('{0}: the agent says level {1}'.format(host, agent_level))
    level = 'fail' if findings or due or agent_level in ('fail', 'error') else agent_level
    soonest = min((c for c in certs if not c.get('missing')), key=lambda c: int(c.get('residualTime') or 0),
                  default=None)
    summary = '{0}: level {1}, {2} certificates and {3} CA(s) read'.format(
        host, level, len([c for c in certs if not c.get('missing')]), len([c for c in cas if not c.get('missing')]))
    if missing:
        summary += ' ({0} missing: {1})'.format(len(missing), ', '.join(missing))
    if soonest is not None:
        summary += ', soonest {0} in {1} days'.format(soonest.get('name'), _days(int(soonest.get('residualTime') or 0)))
    if due:
        summary += ', {0} due within the threshold'.format(len(due))
    unhealthy = [r['name'] for r in rows if r['state'] == 'UNHEALTHY']
    if unhealthy:
        summary += ', unhealthy: {0}'.format(', '.join(unhealthy))
    if served:
        summary += ', served {0}'.format(served.get('level'))
        if unreachable:
            summary += ' (unreachable: {0})'.format(', '.join(unreachable))
    summary += _drift_summary(info.get('drift'), missing)
    return rows, findings, due, summary


def _drift_summary(drift, missing):
    """The drift part of a node's summary line (cert_info drift: true): every drifted
    certificate and what differs, the undetermined ones and why (but the missing ones, said
    already); '' without drift."""
    if not isinstance(drift, dict):
        return ''
    parts, unknown = [], []
    for cert in drift.get('certificates') or []:
        if cert.get('status') == 'drift':
            what = []
            if cert.get('missingSans'):
                what.append('SANs missing: {0}'.format(', '.join(cert['missingSans'])))
            if cert.get('extraSans'):
                what.append('SANs beyond the configuration: {0}'.format(', '.join(cert['extraSans'])))
            validity = cert.get('validity') or {}
            if validity.get('status') == 'differs':
                what.append('validity {0} days, configured {1}'.format(
                    _days(int(validity.get('actualSeconds') or 0)), _days(int(validity.get('expectedSeconds') or 0))))
            algorithm = cert.get('keyAlgorithm') or {}
            if algorithm.get('differs'):
                what.append('key {0}, configured {1}'.format(algorithm.get('actual'), algorithm.get('expected')))
            parts.append('{0} ({1})'.format(cert.get('name'), '; '.join(what) or 'differs'))
        elif cert.get('status') == 'unknown' and cert.get('name') not in missing:
            unknown.append('{0} ({1})'.format(cert.get('name'), cert.get('reason')))
    where = '{0}, node {1}'.format(drift.get('config'), drift.get('nodeName'))
    if not parts:
        text = ', no drift from the kubeadm configuration ({0})'.format(where)
    else:
        text = ', drift from the kubeadm configuration ({0}): {1}'.format(where, ', '.join(parts))
    if unknown:
        text += ', drift undetermined: {0}'.format(', '.join(unknown))
    return text


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        args = self._task.args
        hosts = list(args.get('hosts') or [])
        register = args.get('register_name', 'kubecert_info')
        try:
            threshold_days = float(args.get('threshold_days', 30))
        except (TypeError, ValueError):
            raise AnsibleActionFail('threshold_days must be a number, not {0!r}'.format(args.get('threshold_days')))
        threshold = int(threshold_days * 86400)
        allow_missing = list(args.get('allow_missing') or [])
        report_dir = args.get('report_dir')
        hostvars = (task_vars or {}).get('hostvars', {})

        rows, findings, due, summaries, failed_hosts, full = [], [], [], [], [], {}
        failures = {}
        for host in hosts:
            info = hostvars[host].get(register) if host in hostvars else None
            if not isinstance(info, dict) or 'certificates' not in info:
                failed_hosts.append(host)
                msg = (info or {}).get('msg') if isinstance(info, dict) else None
                failures[host] = to_text(msg or 'unreachable or not run')[:200]
                summaries.append('{0}: NO DATA ({1})'.format(host, failures[host]))
                continue
            info = dict(info)
            cert_dir = hostvars[host].get('kubecert_cert_dir')
            host_rows, host_findings, host_due, summary = analyse(host, info, threshold, allow_missing,
                                                                  to_text(cert_dir) if cert_dir else None)
            rows.extend(host_rows)
            findings.extend(host_findings)
            due.extend('{0} {1}'.format(host, name) for name in host_due)
            summaries.append(summary)
            full[host] = dict((k, v) for k, v in info.items() if k not in ANSIBLE_KEYS)

        lines = [ROW_FORMAT % ('HOST', 'NAME', 'KIND', 'EXPIRES', 'DAYS LEFT', 'STATE', 'EXTERNALLY MANAGED')]
        for row in rows:
            lines.append(ROW_FORMAT % (row['host'], row['name'], row['kind'], row['expirationDate'] or '-',
                                       row['residualDays'] if row['residualDays'] is not None else '-',
                                       row['state'], 'yes' if row['externallyManaged'] else 'no'))
        for host in failed_hosts:
            lines.append('{0}: NO DATA ({1})'.format(host, failures[host]))

        msg = []
        if due:
            msg.append('{0} certificate(s) expire within {1:g} days or have expired: {2}.'.format(
                len(due), threshold_days, ', '.join(due)))
        if findings:
            msg.append('{0} finding(s): {1}.'.format(len(findings), '; '.join(findings)))
        if failed_hosts:
            msg.append('No data from {0}.'.format(', '.join(failed_hosts)))
        failed = bool(msg)
        if not failed:
            msg.append('Nothing expires within {0:g} days and no problem was found on {1} node(s).'.format(
                threshold_days, len(hosts)))

        report = {'thresholdDays': threshold_days, 'rows': rows, 'failedHosts': failed_hosts,
                  'summary': summaries, 'findings': findings, 'hosts': full}
        written = []
        if report_dir and not self._task.check_mode:
            for name, content in (('kubecert-expiration.txt', '\n'.join(lines) + '\n'),
                                  ('kubecert-expiration.json', json.dumps(report, indent=4, sort_keys=True) + '\n')):
                path = os.path.join(report_dir, name)
                try:
                    with open(path + '.tmp', 'w') as handle:
                        handle.write(content)
                    os.chmod(path + '.tmp', 0o644)
                    os.rename(path + '.tmp', path)
                except (IOError, OSError) as exc:
                    raise AnsibleActionFail('cannot write the report {0}: {1}'.format(path, exc))
                written.append(path)

        for line in lines + [''] + summaries + [''] + msg:
            display.display(line)
        # The rows are in the JSON report; the result stays short, as Ansible prints it on failure.
        result.update(changed=False, failed=failed, msg=' '.join(msg), summary=summaries,
                      failed_hosts=failed_hosts, findings=findings, due=due, report_files=written)
        return result
