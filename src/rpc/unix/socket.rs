//! The socket file: its lock, its parent dir, binding under a temporary name and renaming
//! into place, a stale socket replaced only when nobody listens, the path length bound.

use std::fs::{File, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::super::ServeError;
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

pub(super) fn take_lock(path: &Path) -> Result<File, ServeError> {
    let lp = lock_path(path);
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&lp)
        .map_err(|source| ServeError::Io {
            what: "cannot open lock file",
            path: lp.clone(),
            source,
        })?;
    match f.try_lock() {
        Ok(()) => Ok(f),
        Err(std::fs::TryLockError::WouldBlock) => Err(ServeError::Locked {
            lock: lp,
            socket: path.to_path_buf(),
        }),
        Err(std::fs::TryLockError::Error(source)) => Err(ServeError::Io {
            what: "cannot lock",
            path: lp,
            source,
        }),
    }
}

/// The socket's parent dir, created 0755 when absent.
pub(super) fn ensure_parent(path: &Path) -> Result<PathBuf, ServeError> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if path.file_name().is_none() {
        return Err(ServeError::NotAFilePath(path.to_path_buf()));
    }
    if !parent.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(&parent)
            .map_err(|source| ServeError::Io {
                what: "cannot create",
                path: parent.clone(),
                source,
            })?;
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
) -> Result<(std::os::unix::net::UnixListener, Owned), ServeError> {
    ensure_parent(path)?;
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => return Err(ServeError::Symlink(path.to_path_buf())),
        Ok(m) if m.file_type().is_socket() => match std::os::unix::net::UnixStream::connect(path) {
            Ok(_) => return Err(ServeError::InUse(path.to_path_buf())),
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => {
                tracing::info!(path = %path.display(), "removing stale socket");
                std::fs::remove_file(path).map_err(|source| ServeError::Io {
                    what: "cannot remove stale socket",
                    path: path.to_path_buf(),
                    source,
                })?;
            }
            Err(source) => {
                return Err(ServeError::Io {
                    what: "cannot probe",
                    path: path.to_path_buf(),
                    source,
                })
            }
        },
        Ok(_) => return Err(ServeError::NotASocket(path.to_path_buf())),
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(source) => {
            return Err(ServeError::Io {
                what: "cannot stat",
                path: path.to_path_buf(),
                source,
            })
        }
    }
    let tmp = temp_name(path);
    let _ = std::fs::remove_file(&tmp);
    let listener =
        std::os::unix::net::UnixListener::bind(&tmp).map_err(|source| ServeError::Io {
            what: "cannot bind",
            path: tmp.clone(),
            source,
        })?;
    let setup = || -> Result<(), ServeError> {
        let mode = if group.is_some() { 0o660 } else { 0o600 };
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode)).map_err(
            |source| ServeError::Io {
                what: "cannot set the mode of",
                path: tmp.clone(),
                source,
            },
        )?;
        if let Some(g) = group {
            std::os::unix::fs::chown(&tmp, None, Some(g.gid)).map_err(|source| {
                ServeError::Chown {
                    path: tmp.clone(),
                    group: g.name.clone(),
                    source,
                }
            })?;
        }
        std::fs::rename(&tmp, path).map_err(|source| ServeError::Rename {
            from: tmp.clone(),
            to: path.to_path_buf(),
            source,
        })?;
        Ok(())
    };
    if let Err(e) = setup() {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    let m = std::fs::symlink_metadata(path).map_err(|source| ServeError::Io {
        what: "cannot stat",
        path: path.to_path_buf(),
        source,
    })?;
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
pub fn check_path_len(path: &Path) -> Result<(), ServeError> {
    use std::os::unix::ffi::OsStrExt;
    let n = path.as_os_str().as_bytes().len();
    if n > MAX_SOCKET_PATH {
        return Err(ServeError::PathTooLong {
            path: path.to_path_buf(),
            temp: None,
            len: n,
            max: MAX_SOCKET_PATH,
        });
    }
    let tmp = temp_name(path);
    let t = tmp.as_os_str().as_bytes().len();
    if t > MAX_SOCKET_PATH {
        return Err(ServeError::PathTooLong {
            path: path.to_path_buf(),
            temp: Some(tmp),
            len: t,
            max: MAX_SOCKET_PATH,
        });
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
    fn second_lock_is_refused_with_a_typed_error() {
        let d = tempfile::tempdir().expect("tempdir");
        let sock = d.path().join("k.sock");
        let _held = take_lock(&sock).expect("first lock");
        let e = take_lock(&sock).map(|_| ()).unwrap_err();
        assert!(matches!(e, ServeError::Locked { .. }), "{e:?}");
        assert_eq!(
            e.to_string(),
            format!(
                "another kubecert serve holds {}.lock (serving {})",
                sock.display(),
                sock.display()
            )
        );
        let e = bind(Path::new("/"), None).map(|_| ()).unwrap_err();
        assert_eq!(e.to_string(), "/ is not a socket file path");
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
