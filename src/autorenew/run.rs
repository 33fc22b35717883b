//! One scheduled run: lock, recover parked manifests, renew, restart, record.

use super::*;
use lock::{lock_path, RunLock};

/// Runs the scheduled renewal. `Ok` carries the outcome (check [`AutoRenewResult::failure`]);
/// `Err` means the run could not start or could not record its outcome.
pub fn auto_renew(o: &AutoRenewOptions) -> Result<AutoRenewResult, AutoRenewError> {
    let lock_path = lock_path(&o.state_file);
    let dry_run = o.renew.dry_run;
    let _lock = if dry_run {
        None
    } else {
        Some(RunLock::acquire(&lock_path, o.lock_timeout)?)
    };
    let now = o.renew.now;
    let mut state = read_state(&o.state_file)?.unwrap_or_default();
    let mut result = AutoRenewResult {
        dry_run,
        renew: None,
        components_to_restart: vec![],
        restarts: vec![],
        recovered_manifests: vec![],
        failure: None,
        state_file: o.state_file.display().to_string(),
        textfile: None,
    };
    let mut failure: Option<RunFailure> = None;
    // Serializes with `restart` calls of the agent (the run lock only excludes other runs).
    let _restart_lock = if dry_run || o.restart.method == RestartMethod::None {
        None
    } else {
        Some(crate::ops::restart::RestartLock::acquire(
            &o.restart.park_dir,
            o.lock_timeout,
        )?)
    };
    if !dry_run && o.restart.method == RestartMethod::ManifestMove {
        match recover_parked(&o.restart.manifests_dir, &o.restart.park_dir) {
            Ok(m) => result.recovered_manifests = m,
            Err(e) => {
                failure = Some(RunFailure {
                    stage: "recover-manifests".into(),
                    message: crate::error::report(&e),
                })
            }
        }
    }
    let mut renewed: Vec<String> = vec![];
    let mut backup_dir = None;
    // Due certificates that could not be renewed: the run fails, after what could be renewed
    // was installed and restarted.
    let mut unrenewable: Option<String> = None;
    if failure.is_none() {
        match crate::renew::renew(&o.renew) {
            Ok(r) => {
                renewed = r
                    .certificates
                    .iter()
                    .filter(|i| i.action == RenewAction::Renewed)
                    .map(|i| i.name.clone())
                    .collect();
                backup_dir = r.backup_dir.clone();
                unrenewable = crate::renew::unrenewable_message(&r);
                let mut wanted: BTreeSet<Component> =
                    r.components_to_restart.iter().copied().collect();
                if o.restart.method != RestartMethod::None {
                    // Names the state file holds that are no component are ignored.
                    wanted.extend(
                        COMPONENTS
                            .into_iter()
                            .filter(|c| state.pending_restart.iter().any(|n| n == c.name())),
                    );
                }
                result.components_to_restart = wanted.into_iter().collect();
                result.renew = Some(r);
            }
            Err(e) => {
                failure = Some(RunFailure {
                    stage: "renew".into(),
                    message: crate::error::report(&e),
                })
            }
        }
    }
    let unrenewable_failure = |failure: &mut Option<RunFailure>| {
        if failure.is_none() {
            if let Some(m) = &unrenewable {
                *failure = Some(RunFailure {
                    stage: "unrenewable".into(),
                    message: m.clone(),
                });
            }
        }
    };
    if dry_run {
        unrenewable_failure(&mut failure);
        result.failure = failure;
        return Ok(result);
    }
    // Remember what must restart before restarting anything: a run killed from here on
    // leaves the next run (or `--recover-manifests` + the next run) a list to finish.
    if failure.is_none()
        && o.restart.method != RestartMethod::None
        && state.pending_restart != component_names(&result.components_to_restart)
    {
        state.pending_restart = component_names(&result.components_to_restart);
        write_state(&o.state_file, &state)?;
    }
    let mut restarted: Vec<String> = vec![];
    if failure.is_none() && o.restart.method != RestartMethod::None {
        let (outcomes, fail) =
            crate::ops::restart::restart_all(&o.restart, &result.components_to_restart);
        restarted = outcomes
            .iter()
            .filter(|x| x.ok)
            .map(|x| x.component.name().to_string())
            .collect();
        result.restarts = outcomes;
        if let Some(f) = fail {
            failure = Some(RunFailure {
                stage: f.stage,
                message: f.message,
            });
        }
    }
    unrenewable_failure(&mut failure);
    // Record.
    let record = RunRecord {
        time: timefmt::rfc3339(now),
        timestamp: now,
        renewed,
        restarted: restarted.clone(),
        backup_dir,
        stage: failure.as_ref().map(|f| f.stage.clone()),
        error: failure.as_ref().map(|f| f.message.clone()),
    };
    if o.restart.method != RestartMethod::None {
        state.pending_restart = result
            .components_to_restart
            .iter()
            .filter(|c| !restarted.iter().any(|n| n == c.name()))
            .map(|c| c.name().to_string())
            .collect();
    }
    if failure.is_some() {
        state.last_failure = Some(record);
    } else {
        state.last_success = Some(record);
    }
    write_state(&o.state_file, &state)?;
    result.failure = failure;
    if let Some(dir) = &o.textfile_dir {
        let p = crate::metrics::MetricsParams {
            location: crate::pki::PkiLocation {
                cert_dir: Some(o.renew.layout.cert_dir.display().to_string()),
                kubeconfig_dir: Some(o.renew.layout.kubeconfig_dir.display().to_string()),
                external_etcd: Some(o.renew.layout.external_etcd),
            },
            now: Some(timefmt::rfc3339(now)),
            kubelet_pki: None,
            state_file: Some(o.state_file.display().to_string()),
            textfile_dir: Some(dir.display().to_string()),
            served: Default::default(),
            ca: false,
            drift: false,
            kubeadm: Default::default(),
        };
        match crate::metrics::metrics(&p) {
            Ok(m) => result.textfile = m.textfile,
            Err(e) => {
                tracing::warn!(error = %crate::error::report(&e), "could not refresh the metrics textfile")
            }
        }
    }
    Ok(result)
}
