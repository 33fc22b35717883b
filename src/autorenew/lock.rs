//! The run lock serializing `auto-renew` runs on a node, and `--recover-manifests` under it.

use super::*;

/// An exclusive lock serializing `auto-renew` runs on this node (the PKI lock only covers
/// the renewal itself; this one also covers the restarts).
pub(super) struct RunLock {
    _file: File,
}

impl RunLock {
    pub(super) fn acquire(path: &Path, timeout: Duration) -> Result<Self, AutoRenewError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir).map_err(|e| AutoRenewError::io(dir, e))?;
        }
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(|e| AutoRenewError::io(path, e))?;
        let start = Instant::now();
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(RunLock { _file: file }),
                Err(fs::TryLockError::WouldBlock) => {
                    if start.elapsed() >= timeout {
                        return Err(AutoRenewError::Busy {
                            path: path.to_path_buf(),
                            waited_secs: start.elapsed().as_secs(),
                        });
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(fs::TryLockError::Error(e)) => return Err(AutoRenewError::io(path, e)),
            }
        }
    }
}

/// Only moves back manifests a killed run left parked (the unit's `ExecStopPost=`), under
/// the run lock so that a run in progress is not disturbed.
pub fn recover_manifests(o: &AutoRenewOptions) -> Result<Vec<String>, AutoRenewError> {
    let _lock = RunLock::acquire(&lock_path(&o.state_file), o.lock_timeout)?;
    let _restart_lock =
        crate::ops::restart::RestartLock::acquire(&o.restart.park_dir, o.lock_timeout)?;
    Ok(recover_parked(
        &o.restart.manifests_dir,
        &o.restart.park_dir,
    )?)
}

pub(super) fn lock_path(state_file: &Path) -> PathBuf {
    let mut s = state_file.to_path_buf().into_os_string();
    s.push(".lock");
    PathBuf::from(s)
}
