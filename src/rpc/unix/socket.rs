//! The socket file: its lock, its parent dir, binding under a temporary name and renaming
//! into place, a stale socket replaced only when nobody listens, the path length bound.

use std::fs::{File, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

use super::auth::Group;

/// The socket file this process created (removed at exit only if still the same file).
pub(super) struct Owned {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

impl Owned {
    pub(super) fn remove(&self) {
        match std::fs::symlink_metadata(&self.path) {
            Ok(m) if m.dev() == self.dev && m.ino() == self.ino => {
                if let Err(e) = std::fs::remove_file(&self.path) {
                    tracing::warn!(path = %self.path.display(), error = %e, "cannot remove socket");
                }
            }
            _ => {
                tracing::warn!(path = %self.path.display(), "socket path replaced by someone else; left alone")
            }
        }
    }
}

fn lock_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".lock");
    PathBuf::from(s)
}

pub(super) fn take_lock(path: &Path) -> anyhow::Result<File> {
    let lp = lock_path(path);
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&lp)
        .with_context(|| format!("cannot open lock file {}", lp.display()))?;
    match f.try_lock() {
        Ok(()) => Ok(f),
        Err(std::fs::TryLockError::WouldBlock) => bail!(
            "another kubecert serve holds {} (serving {})",
            lp.display(),
            path.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("cannot lock {}", lp.display()))
        }
    }
}

/// The socket's parent dir, created 0755 when absent.
pub(super) fn ensure_parent(path: &Path) -> anyhow::Result<PathBuf> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if path.file_name().is_none() {
        bail!("{} is not a socket file path", path.display());
    }
    if !parent.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(&parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    Ok(parent)
}

/// The temporary name the socket is bound under, beside `path`.
fn temp_name(path: &Path) -> PathBuf {
    let name = format!(".kubecert-{}.sock", std::process::id());
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.join(name),
        _ => PathBuf::from(name),
    }
}

/// Creates the socket: refuses a symlink, replaces a stale socket only if nobody listens,
/// binds under a temporary name, sets mode/group, renames into place.
pub(super) fn bind(
    path: &Path,
    group: Option<&Group>,
) -> anyhow::Result<(std::os::unix::net::UnixListener, Owned)> {
    ensure_parent(path)?;
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => {
            bail!("refusing symlink at {}", path.display())
        }
        Ok(m) if m.file_type().is_socket() => match std::os::unix::net::UnixStream::connect(path) {
            Ok(_) => bail!("{} is in use: a server is listening on it", path.display()),
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => {
                tracing::info!(path = %path.display(), "removing stale socket");
                std::fs::remove_file(path)
                    .with_context(|| format!("cannot remove stale socket {}", path.display()))?;
            }
            Err(e) => return Err(e).with_context(|| format!("cannot probe {}", path.display())),
        },
        Ok(_) => bail!(
            "{} exists and is not a socket; refusing to replace it",
            path.display()
        ),
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot stat {}", path.display())),
    }
    let tmp = temp_name(path);
    let _ = std::fs::remove_file(&tmp);
    let listener = std::os::unix::net::UnixListener::bind(&tmp)
        .with_context(|| format!("cannot bind {}", tmp.display()))?;
    let setup = || -> anyhow::Result<()> {
        let mode = if group.is_some() { 0o660 } else { 0o600 };
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))?;
        if let Some(g) = group {
            std::os::unix::fs::chown(&tmp, None, Some(g.gid))
                .with_context(|| format!("cannot chown {} to group {}", tmp.display(), g.name))?;
        }
        std::fs::rename(&tmp, path)
            .with_context(|| format!("cannot rename {} to {}", tmp.display(), path.display()))?;
        Ok(())
    };
    if let Err(e) = setup() {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    let m = std::fs::symlink_metadata(path)?;
    Ok((
        listener,
        Owned {
            path: path.to_path_buf(),
            dev: m.dev(),
            ino: m.ino(),
        },
    ))
}

/// Longest path a unix socket address holds (`sun_path` is 108 bytes with its NUL).
pub const MAX_SOCKET_PATH: usize = 107;

/// Refuses a socket path (or the temporary name it is bound under) that does not fit in a
/// unix socket address: bound, it would be unreachable.
pub fn check_path_len(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let n = path.as_os_str().as_bytes().len();
    if n > MAX_SOCKET_PATH {
        bail!(
            "socket path {} is {n} bytes; a unix socket path is at most {MAX_SOCKET_PATH} bytes",
            path.display()
        );
    }
    let tmp = temp_name(path);
    let t = tmp.as_os_str().as_bytes().len();
    if t > MAX_SOCKET_PATH {
        bail!(
            "socket path {}: its temporary name {} is {t} bytes; a unix socket path is at most {MAX_SOCKET_PATH} bytes",
            path.display(),
            tmp.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_path_length() {
        let ok = PathBuf::from(format!("/{}/k.sock", "d".repeat(95)));
        assert!(check_path_len(&PathBuf::from("/run/kubecert/kubecert.sock")).is_ok());
        let long = PathBuf::from(format!("/{}", "a".repeat(MAX_SOCKET_PATH)));
        let e = check_path_len(&long).map(|_| ()).unwrap_err().to_string();
        assert!(
            e.contains("is 108 bytes") && e.contains("at most 107 bytes"),
            "{e}"
        );
        // Fits, but its temporary name beside it would not.
        let e = check_path_len(&ok).map(|_| ()).unwrap_err().to_string();
        assert!(e.contains("temporary name"), "{e}");
    }

    #[test]
    fn lock_path_appends() {
        assert_eq!(
            lock_path(Path::new("/run/kubecert/kubecert.sock")),
            PathBuf::from("/run/kubecert/kubecert.sock.lock")
        );
    }

    #[test]
    fn bind_refuses_symlink_and_non_socket_and_replaces_stale() {
        let d = tempfile::tempdir().expect("tempdir");
        let target = d.path().join("t");
        std::fs::write(&target, b"x").expect("write");
        let link = d.path().join("l.sock");
        std::os::unix::fs::symlink(&target, &link).expect("symlink");
        assert!(bind(&link, None).is_err());
        assert!(bind(&target, None).is_err());
        // A stale socket (bound, then the listener dropped) is replaced.
        let stale = d.path().join("sub/s.sock");
        std::fs::create_dir_all(d.path().join("sub")).expect("mkdir");
        drop(std::os::unix::net::UnixListener::bind(&stale).expect("bind"));
        let (l, owned) = bind(&stale, None).expect("replace stale");
        let m = std::fs::metadata(&stale).expect("stat");
        assert_eq!(m.permissions().mode() & 0o777, 0o600);
        // A live one is not.
        assert!(bind(&stale, None).is_err());
        drop(l);
        owned.remove();
        assert!(!stale.exists());
        // Parent dir created 0755.
        let deep = d.path().join("new/dir/k.sock");
        let (_l, _o) = bind(&deep, None).expect("bind deep");
        let pm = std::fs::metadata(d.path().join("new/dir")).expect("stat");
        assert_eq!(pm.permissions().mode() & 0o777, 0o755);
    }
}
