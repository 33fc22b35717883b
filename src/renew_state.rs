//! The state file of the scheduled renewal (`kubecert-state.json`): written by
//! [`crate::autorenew`] after each run, read by [`crate::metrics`]. Its own module so that
//! neither of those depends on the other for it.

use std::fs;
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Errors reading or writing the state file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// File I/O.
    #[error(transparent)]
    Library(#[from] crate::Error),
    /// The state file is not kubecert's JSON.
    #[error("{path}: invalid state file: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The parse error.
        reason: String,
    },
}

/// `<cert_dir>/../kubecert-state.json` (e.g. /etc/kubernetes/kubecert-state.json).
pub fn default_state_file(cert_dir: &Path) -> PathBuf {
    let abs = std::path::absolute(cert_dir).unwrap_or_else(|_| cert_dir.to_path_buf());
    abs.parent()
        .map(|p| p.join("kubecert-state.json"))
        .unwrap_or_else(|| PathBuf::from("kubecert-state.json"))
}

/// One recorded run.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RunRecord {
    /// When, RFC 3339.
    pub time: String,
    /// When, Unix seconds.
    pub timestamp: i64,
    /// Certificates renewed by the run.
    #[serde(default)]
    pub renewed: Vec<String>,
    /// Components restarted (and healthy).
    #[serde(default)]
    pub restarted: Vec<String>,
    /// The backup of the replaced files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_dir: Option<String>,
    /// The failed step (`renew`, `restart:<component>`, `health:<component>`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The state file: the last success and the last failure of the scheduled renewal.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RenewState {
    /// The last successful run.
    #[serde(default)]
    pub last_success: Option<RunRecord>,
    /// The last failed run.
    #[serde(default)]
    pub last_failure: Option<RunRecord>,
    /// Components renewed by an earlier run but not restarted successfully: the next run
    /// restarts them even when it renews nothing.
    #[serde(default)]
    pub pending_restart: Vec<String>,
}

/// Reads the state file; `Ok(None)` when it does not exist.
pub fn read_state(path: &Path) -> Result<Option<RenewState>, StateError> {
    match crate::pki::fsread::read(path) {
        Ok(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| StateError::Invalid {
                path: path.to_path_buf(),
                reason: crate::error::describe_json(&e),
            }),
        Err(crate::Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

/// Writes the state file atomically (mode 0644: it holds no secret).
pub fn write_state(path: &Path, state: &RenewState) -> Result<(), StateError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).map_err(|e| crate::Error::io(dir, e))?;
    }
    let mut text = serde_json::to_string_pretty(state).map_err(|e| StateError::Invalid {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    text.push('\n');
    crate::pki::store::write_atomic(path, text.as_bytes(), 0o644)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_roundtrip_and_default_paths() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("sub/state.json");
        assert_eq!(read_state(&p).unwrap(), None);
        let s = RenewState {
            last_success: Some(RunRecord {
                time: "2025-01-01T00:00:00Z".into(),
                timestamp: 1735689600,
                renewed: vec!["apiserver".into()],
                ..Default::default()
            }),
            last_failure: None,
            pending_restart: vec!["etcd".into()],
        };
        write_state(&p, &s).unwrap();
        assert_eq!(read_state(&p).unwrap(), Some(s));
        std::fs::write(&p, "not json").unwrap();
        assert!(matches!(read_state(&p), Err(StateError::Invalid { .. })));
        assert_eq!(
            default_state_file(Path::new("/etc/kubernetes/pki")),
            Path::new("/etc/kubernetes/kubecert-state.json")
        );
    }
}
