//! `auto-renew`: the scheduled, conditional renewal run by `kubecert-renew.timer`.
//!
//! One run: take the run lock → put back any manifest an interrupted run left parked →
//! [`crate::renew::renew`] what expires within the window → restart, one at a time, only the
//! static pods whose certificates changed (plus any a failed earlier run left pending) →
//! wait, bounded, for each to be healthy → record success or failure in the state file
//! (read by [`crate::metrics`]) → optionally refresh the node_exporter textfile.
//!
//! Restarts, health waits and the served-certificate proof are [`crate::ops`]'s (shared with
//! the `restart`, `health` and `served` methods): after each restart the component must be
//! healthy and, unless disabled, serve the certificate files on disk; "restarted but still
//! serving the old certificate" fails the run at stage `served:<component>`.
//!
//! Missing files (e.g. super-admin.conf on a node that joined) are reported `missing` by
//! renew and never trigger a renewal or a restart. A due certificate that cannot be renewed
//! (CA key absent, file missing; super-admin.conf excepted) fails the run at stage
//! `unrenewable` after the rest was renewed and restarted, unless `--allow-unrenewable`
//! accepts it.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use crate::ops::restart::{
    default_park_dir, recover_parked, RestartMethod, RestartOptions, RestartOutcome, StopWait,
};
pub use crate::ops::served::COMPONENTS;
use crate::pki::inventory::Component;
use crate::renew::{RenewAction, RenewOptions, RenewResult};
use crate::renew_state::{read_state, write_state, RunRecord, StateError};
use crate::timefmt;

mod lock;
mod render;
mod run;

pub use lock::recover_manifests;
pub use render::render_text;
pub use run::auto_renew;

/// Errors of `auto-renew` that stop it before it can record an outcome, or that it records.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AutoRenewError {
    /// A library error (renew, file I/O).
    #[error(transparent)]
    Library(#[from] crate::Error),
    /// Another `auto-renew` holds the run lock.
    #[error("another kubecert auto-renew is running (lock {path} held for {waited_secs}s)")]
    Busy {
        /// The lock file.
        path: PathBuf,
        /// How long this run waited.
        waited_secs: u64,
    },
    /// The state file could not be read or written.
    #[error(transparent)]
    State(#[from] StateError),
}

impl AutoRenewError {
    fn io(path: &Path, e: std::io::Error) -> Self {
        AutoRenewError::Library(crate::Error::io(path, e))
    }
}

/// Resolved options of a run.
#[derive(Debug, Clone)]
pub struct AutoRenewOptions {
    /// The renewal (names, window, validity, ...). `dry_run` plans only.
    pub renew: RenewOptions,
    /// The state file.
    pub state_file: PathBuf,
    /// How to restart, wait for health and prove what is served.
    pub restart: RestartOptions,
    /// Refresh `<dir>/kubecert.prom` after the run.
    pub textfile_dir: Option<PathBuf>,
    /// How long to wait for another run's lock.
    pub lock_timeout: Duration,
}

/// The failure of a run.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RunFailure {
    /// The step: `renew`, `restart:<component>`, `health:<component>`, `state`.
    pub stage: String,
    /// Why.
    pub message: String,
}

/// Result of `auto-renew`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AutoRenewResult {
    /// Whether this was a dry run (nothing written, nothing restarted, nothing recorded).
    pub dry_run: bool,
    /// The renewal, when it ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub renew: Option<RenewResult>,
    /// Components that needed a restart (renewed now, or pending from an earlier run).
    pub components_to_restart: Vec<Component>,
    /// Per component, in order.
    pub restarts: Vec<RestartOutcome>,
    /// Manifests an interrupted run had left parked, moved back first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recovered_manifests: Vec<String>,
    /// The failure, if the run failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<RunFailure>,
    /// The state file the outcome was recorded in.
    pub state_file: String,
    /// The textfile refreshed after the run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub textfile: Option<String>,
}

impl AutoRenewResult {
    /// Whether the run succeeded.
    pub fn succeeded(&self) -> bool {
        self.failure.is_none()
    }
}

/// The names the state file records for `components`.
fn component_names(components: &[Component]) -> Vec<String> {
    components.iter().map(|c| c.name().to_string()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_park_dir_is_beside_the_manifests() {
        assert_eq!(
            default_park_dir(Path::new("/etc/kubernetes/manifests")),
            Path::new("/etc/kubernetes/kubecert-parked-manifests")
        );
    }
}
