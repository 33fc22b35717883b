//! What this binary is: version, git commit, build date and compiled-in features, as
//! compile-time strings set by build.rs (nothing is computed at start-up). `kubecert
//! --version` prints [`LONG_VERSION`]; the `version` RPC method returns the same fields.

/// kubecert's version (Cargo.toml).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The git commit built (12 hex digits), or "unknown" for a tree without git metadata.
pub const GIT_COMMIT: &str = env!("KUBECERT_GIT_COMMIT");
/// The build date, UTC RFC 3339: SOURCE_DATE_EPOCH when set (reproducible packages).
pub const BUILD_DATE: &str = env!("KUBECERT_BUILD_DATE");
/// Whether the Kubernetes-API features (cargo feature `k8s`: `renew --use-api`, `sign`,
/// `approve`) are compiled in.
pub const KUBERNETES_API: bool = cfg!(feature = "k8s");
/// `<version> (commit <commit>, built <date>, kubernetes-api: yes|no)`.
pub const LONG_VERSION: &str = env!("KUBECERT_LONG_VERSION");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_version_says_the_same_as_the_fields() {
        assert_eq!(
            LONG_VERSION,
            format!(
                "{VERSION} (commit {GIT_COMMIT}, built {BUILD_DATE}, kubernetes-api: {})",
                if KUBERNETES_API { "yes" } else { "no" }
            )
        );
        assert!(
            GIT_COMMIT == "unknown"
                || (GIT_COMMIT.len() >= 7 && GIT_COMMIT.chars().all(|c| c.is_ascii_hexdigit())),
            "{GIT_COMMIT}"
        );
        // 2026-12-02T00:21:08Z
        assert_eq!(BUILD_DATE.len(), 20, "{BUILD_DATE}");
        assert!(
            BUILD_DATE.parse::<jiff::Timestamp>().is_ok(),
            "{BUILD_DATE}"
        );
    }
}
