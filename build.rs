//! Build information for `kubecert --version` and the `version` RPC method, as compile-time
//! strings (no work at start-up): the git commit, the build date and the cargo features.
//!
//! Incremental builds stay incremental: this script reruns only when HEAD (or the branch it
//! points to) moves, or when SOURCE_DATE_EPOCH / KUBECERT_GIT_COMMIT change, not on every
//! source edit. A source tree without git metadata (a tarball, a vendored copy) builds with
//! commit "unknown".
//!
//! - commit: KUBECERT_GIT_COMMIT when set, else `git rev-parse --short=12 HEAD` of this
//!   package's own repository (not of one it happens to be unpacked inside), else "unknown".
//! - build date (UTC, RFC 3339): SOURCE_DATE_EPOCH when set (reproducible builds; `make dist`
//!   sets it to the commit's time), else the time this script last ran.
//!
//! It also hands the linker `link/hot-text.ld` (release builds on Linux with the default
//! linker; `KUBECERT_HOT_TEXT=0` turns it off): the code the agent and the common CLI paths
//! run, placed together (bench/hot_text.py says why and regenerates it). A build with another
//! linker (cargo-zigbuild sets one: RUSTC_LINKER) keeps the default layout. The same builds
//! pack their relative relocations when the toolchain can (`relr`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!s.is_empty()).then_some(s)
}

/// The commit of HEAD, with the files whose change moves HEAD (to rerun on).
fn git_commit(manifest_dir: &Path) -> (Option<String>, Vec<PathBuf>) {
    // Only this package's repository: a tarball unpacked inside another checkout has none.
    let top = git(manifest_dir, &["rev-parse", "--show-toplevel"]).map(PathBuf::from);
    let same = match (&top, manifest_dir.canonicalize()) {
        (Some(t), Ok(m)) => t.canonicalize().map(|t| t == m).unwrap_or(false),
        _ => false,
    };
    if !same {
        return (None, Vec::new());
    }
    let mut watch = Vec::new();
    // Whether the file was there (and is watched).
    let mut git_path = |p: &str| -> bool {
        if let Some(path) = git(manifest_dir, &["rev-parse", "--git-path", p]) {
            let path = manifest_dir.join(path);
            // A missing file would make cargo rerun this script on every build.
            if path.exists() {
                watch.push(path);
                return true;
            }
        }
        false
    };
    git_path("HEAD");
    git_path("packed-refs");
    if let Some(head_ref) = git(manifest_dir, &["symbolic-ref", "-q", "HEAD"]) {
        // A packed branch gets a loose ref file on its next commit: then watch its directory.
        // Only then: cargo scans a directory recursively, and refs/heads is shared by every
        // worktree, so another branch's commit would rebuild this one.
        if !git_path(&head_ref) {
            if let Some((dir, _)) = head_ref.rsplit_once('/') {
                git_path(dir);
            }
        }
    }
    (
        git(manifest_dir, &["rev-parse", "--short=12", "HEAD"]),
        watch,
    )
}

/// Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn rfc3339(epoch: i64) -> String {
    let (y, m, d) = civil(epoch.div_euclid(86_400));
    let s = epoch.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

/// The hot-code layout: a linker script that only INSERTs one output section before .text (GNU
/// ld and LLD both take it; the rest of the default layout is kept).
fn hot_text(manifest_dir: &Path) {
    let var = |k: &str| std::env::var(k).unwrap_or_default();
    if var("PROFILE") != "release" {
        return; // debug and test builds: no rerun on an edit of the script
    }
    println!("cargo:rerun-if-env-changed=KUBECERT_HOT_TEXT");
    // bench/hot_text.py --map: the linker's map of this very (stripped) build.
    println!("cargo:rerun-if-env-changed=KUBECERT_LINK_MAP");
    if let Some(map) = std::env::var_os("KUBECERT_LINK_MAP").filter(|m| !m.is_empty()) {
        let map = PathBuf::from(map);
        println!(
            "cargo:rustc-link-arg-bin=kubecert=-Wl,-Map,{}",
            map.display()
        );
    }
    let script = manifest_dir.join("link").join("hot-text.ld");
    println!("cargo:rerun-if-changed={}", script.display());
    if var("CARGO_CFG_TARGET_OS") != "linux"
        || std::env::var_os("RUSTC_LINKER").is_some()
        || var("KUBECERT_HOT_TEXT") == "0"
        || !script.is_file()
    {
        return;
    }
    println!(
        "cargo:rustc-link-arg-bin=kubecert=-Wl,-T,{}",
        script.display()
    );
    relr();
}

/// Packed relative relocations (`-z pack-relative-relocs`, DT_RELR): the position-independent
/// binary's 38,579 relative relocations were 930 KB of `.rela.dyn` that the dynamic loader
/// read and applied one 24-byte entry at a time at every start (750 K instructions of
/// `--version`'s 1.96 M, callgrind); packed, the table is 11 KB. Measured side by side:
/// `--version` 3 % faster, `check` 5 % (bench/RESULTS.md). The binary then needs glibc 2.36
/// (GLIBC_ABI_DT_RELR), so only when the toolchain that links it can make one: a test link
/// with the flag decides (binutils 2.38 and glibc 2.36 or later). Called only for the default
/// linker's release builds: the portable `make dist` binary (cargo-zigbuild, glibc 2.28)
/// keeps plain relocations. `KUBECERT_RELR=0` turns it off.
fn relr() {
    println!("cargo:rerun-if-env-changed=KUBECERT_RELR");
    if std::env::var("KUBECERT_RELR").is_ok_and(|v| v == "0") {
        return;
    }
    let Ok(out) = std::env::var("OUT_DIR") else {
        return;
    };
    let dir = PathBuf::from(out);
    let src = dir.join("relr-probe.c");
    if std::fs::write(&src, "int main(void) { return 0; }\n").is_err() {
        return;
    }
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_string());
    let linked = Command::new(cc)
        .arg("-pie")
        .arg("-fPIE")
        .arg("-Wl,-z,pack-relative-relocs")
        .arg("-o")
        .arg(dir.join("relr-probe"))
        .arg(&src)
        .output()
        .is_ok_and(|o| o.status.success() && o.stderr.is_empty());
    if linked {
        println!("cargo:rustc-link-arg-bin=kubecert=-Wl,-z,pack-relative-relocs");
    }
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
    println!("cargo:rerun-if-env-changed=KUBECERT_GIT_COMMIT");

    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default());
    let commit = match std::env::var("KUBECERT_GIT_COMMIT") {
        Ok(c) if !c.trim().is_empty() => c.trim().to_string(),
        _ => {
            let (commit, watch) = git_commit(&manifest_dir);
            for p in watch {
                println!("cargo:rerun-if-changed={}", p.display());
            }
            commit.unwrap_or_else(|| "unknown".to_string())
        }
    };

    let epoch = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(s) => match s.trim().parse::<i64>() {
            Ok(e) => e,
            Err(_) => panic!("SOURCE_DATE_EPOCH={s:?} is not a number of seconds"),
        },
        Err(_) => SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0),
    };
    let date = rfc3339(epoch);

    hot_text(&manifest_dir);

    let k8s = std::env::var_os("CARGO_FEATURE_K8S").is_some();
    let version = std::env::var("CARGO_PKG_VERSION").unwrap_or_default();
    println!("cargo:rustc-env=KUBECERT_GIT_COMMIT={commit}");
    println!("cargo:rustc-env=KUBECERT_BUILD_DATE={date}");
    println!(
        "cargo:rustc-env=KUBECERT_LONG_VERSION={version} (commit {commit}, built {date}, kubernetes-api: {})",
        if k8s { "yes" } else { "no" }
    );
}
