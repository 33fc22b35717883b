//! The one way kubecert reads an input file (certificates, keys, kubeconfigs, the journal,
//! backup manifests and copies, the renewal state, the approve policy).
//!
//! - The file is opened with `O_NOFOLLOW`: a symlink in place of a file the inventory expects
//!   to be regular is refused ([`Error::Symlink`]), never followed to wherever it points. The
//!   one exception is [`read_link_in_dir`]: the kubelet's rotated
//!   `kubelet-client-current.pem` is a symlink by design, into its own directory.
//! - It is opened with `O_NONBLOCK` (opening a FIFO never waits for a writer) and `fstat`ed:
//!   anything but a regular file (FIFO, device, directory, socket) is refused before a byte
//!   is read ([`Error::NotRegularFile`]).
//! - Every read is bounded by [`MAX_FILE_BYTES`] (1 MiB): a kubeadm certificate, key or
//!   kubeconfig is a few KiB, so anything larger is refused ([`Error::FileTooLarge`]) instead
//!   of read into memory, even when the file grows while it is read.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Component, Path};

use super::filestate::{self, How, Ident, Observed};
use crate::error::{Error, Result};

/// The largest input file kubecert reads: 1 MiB. A kubeadm PKI file is a few KiB (a
/// kubeconfig with embedded RSA-4096 credentials is under 16 KiB).
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;

fn kind_of(ft: &std::fs::FileType) -> &'static str {
    if ft.is_dir() {
        "a directory"
    } else if ft.is_fifo() {
        "a FIFO"
    } else if ft.is_char_device() {
        "a character device"
    } else if ft.is_block_device() {
        "a block device"
    } else if ft.is_socket() {
        "a socket"
    } else if ft.is_symlink() {
        "a symlink"
    } else {
        "not a file"
    }
}

/// The opened file and its size when opened (from the same `fstat`).
fn open_regular(path: &Path) -> Result<(File, u64)> {
    let r = open_regular_inner(path);
    // What was opened (its fstat) or, when refused, what is there: the dependency of a
    // recorded read (see `filestate`).
    filestate::record(path, How::NoFollow, || match &r {
        Ok((_, m)) => Observed::File(Ident::of(m)),
        Err(_) => filestate::observe(path, How::NoFollow),
    });
    r.map(|(f, m)| (f, m.len()))
}

fn open_regular_inner(path: &Path) -> Result<(File, std::fs::Metadata)> {
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::ELOOP) {
                Error::Symlink(path.to_path_buf())
            } else {
                Error::io(path, e)
            }
        })?;
    let meta = f.metadata().map_err(|e| Error::io(path, e))?;
    if !meta.is_file() {
        return Err(Error::NotRegularFile {
            path: path.to_path_buf(),
            kind: kind_of(&meta.file_type()),
        });
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(too_large(path));
    }
    Ok((f, meta))
}

fn too_large(path: &Path) -> Error {
    Error::FileTooLarge {
        path: path.to_path_buf(),
        limit: MAX_FILE_BYTES,
    }
}

/// Reads a regular file that is not a symlink, at most [`MAX_FILE_BYTES`].
pub fn read(path: &Path) -> Result<Vec<u8>> {
    let (f, len) = open_regular(path)?;
    read_sized(f, len, path)
}

/// The bytes of `r`, whose size an fstat just gave as `len`: sized by it (at most the
/// limit, checked there), plus one byte so that the read that sees the end needs no growth.
/// A reader that now holds more or fewer bytes is still read to its end, bounded by the
/// limit.
fn read_sized(r: impl Read, len: u64, path: &Path) -> Result<Vec<u8>> {
    let mut buf = vec![0u8; usize::try_from(len).unwrap_or(0).saturating_add(1)];
    let mut r = r.take(MAX_FILE_BYTES + 1);
    // One read(2) for a file as the fstat saw it: asked for one byte more than its size, a
    // regular file returns fewer only at its end, so a read that returns exactly the size
    // has reached it (the second, empty read of `read_to_end` was a sixth of check's
    // system calls). Any other count (the file changed) continues to the end.
    let n = loop {
        match r.read(&mut buf) {
            Ok(n) => break n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io(path, e)),
        }
    };
    buf.truncate(n);
    if n as u64 != len {
        r.read_to_end(&mut buf).map_err(|e| Error::io(path, e))?;
    }
    if buf.len() as u64 > MAX_FILE_BYTES {
        return Err(too_large(path));
    }
    Ok(buf)
}

/// Like [`read`], but the file may be a symlink whose target is a file in the same directory
/// (one hop, the target itself not a symlink): how the kubelet rotates
/// `kubelet-client-current.pem` (`-> kubelet-client-<date>.pem`). Any other symlink is
/// refused.
pub fn read_link_in_dir(path: &Path) -> Result<Vec<u8>> {
    let is_link = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
    if !is_link {
        return read(path);
    }
    // The link itself (identity and target) is a dependency, besides the file it points to.
    filestate::record(path, How::NoFollow, || {
        filestate::observe(path, How::NoFollow)
    });
    let target = std::fs::read_link(path).map_err(|e| Error::io(path, e))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let refuse = || Error::Symlink(path.to_path_buf());
    let name = target.file_name().ok_or_else(refuse)?;
    if target
        .components()
        .any(|c| matches!(c, Component::ParentDir))
    {
        return Err(refuse());
    }
    let same_dir = match target.parent().filter(|p| !p.as_os_str().is_empty()) {
        None => true,
        Some(p) if target.is_absolute() => {
            match (std::fs::canonicalize(p), std::fs::canonicalize(dir)) {
                (Ok(a), Ok(b)) => a == b,
                _ => false,
            }
        }
        Some(_) => false,
    };
    if !same_dir {
        return Err(refuse());
    }
    read(&dir.join(name))
}

/// Whether something (of any type, a symlink included) is at `path`, without following it.
pub fn exists_nofollow(path: &Path) -> bool {
    if filestate::recording() {
        let seen = filestate::observe(path, How::NoFollow);
        let exists = !matches!(seen, Observed::Absent | Observed::Error(_));
        filestate::record(path, How::NoFollow, || seen);
        return exists;
    }
    std::fs::symlink_metadata(path).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mkfifo(p: &Path) -> bool {
        std::process::Command::new("mkfifo")
            .arg(p)
            .status()
            .is_ok_and(|s| s.success())
    }

    /// The buffer sized from the `fstat` reads every byte, whatever the size (empty, one
    /// byte, around a page, exactly the limit); one byte over the limit is refused.
    #[test]
    fn sized_read_reads_every_byte() {
        let t = tempfile::tempdir().unwrap();
        for n in [0usize, 1, 4095, 4096, 4097, MAX_FILE_BYTES as usize] {
            let p = t.path().join(format!("f{n}"));
            let data: Vec<u8> = (0..n).map(|i| (i % 251) as u8).collect();
            std::fs::write(&p, &data).unwrap();
            assert_eq!(read(&p).unwrap(), data, "size {n}");
        }
        let p = t.path().join("over");
        std::fs::write(&p, vec![b'x'; MAX_FILE_BYTES as usize + 1]).unwrap();
        assert_eq!(
            read(&p).unwrap_err().to_string(),
            format!(
                "{}: larger than 1048576 bytes, the limit for a kubeadm file",
                p.display()
            )
        );
    }

    /// A reader that hands out its bytes a few at a time, as a file that changed after its
    /// fstat, or a filesystem that returns short reads, would.
    struct Trickle(Vec<u8>, usize);
    impl Read for Trickle {
        fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            let n = out.len().min(self.1).min(self.0.len());
            out[..n].copy_from_slice(&self.0[..n]);
            self.0.drain(..n);
            Ok(n)
        }
    }

    /// The size from the fstat is a hint: a file that grew or shrank since is read to its
    /// end (bounded by the limit), and a short read before the end is not taken for it.
    #[test]
    fn a_file_that_changed_after_its_fstat_is_read_to_its_end() {
        let p = Path::new("/x/ca.crt");
        let data: Vec<u8> = (0..5000).map(|i| (i % 251) as u8).collect();
        for (len, step) in [
            (5000, 10_000),
            (5000, 7),
            (4000, 10_000),
            (6000, 10_000),
            (0, 3),
        ] {
            let got = read_sized(Trickle(data.clone(), step), len, p).unwrap();
            assert_eq!(got, data, "fstat size {len}, reads of {step}");
        }
        let big = vec![b'x'; MAX_FILE_BYTES as usize + 10];
        let e = read_sized(Trickle(big, 4096), 100, p).unwrap_err();
        assert!(e.to_string().contains("larger than 1048576 bytes"), "{e}");
    }

    #[test]
    fn refuses_what_is_not_a_small_regular_file() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        let ok = d.join("ok.pem");
        std::fs::write(&ok, b"hello").unwrap();
        assert_eq!(read(&ok).unwrap(), b"hello");
        // A symlink to /dev/zero: refused as a symlink, nothing read.
        let zero = d.join("zero.crt");
        std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
        let e = read(&zero).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("refusing symlink at {}", zero.display())
        );
        // /dev/zero itself: a device.
        let e = read(Path::new("/dev/zero")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "/dev/zero: not a regular file (a character device)"
        );
        // A FIFO with no writer: refused at once, not waited on.
        let fifo = d.join("fifo.crt");
        if mkfifo(&fifo) {
            let start = std::time::Instant::now();
            let e = read(&fifo).unwrap_err();
            assert_eq!(
                e.to_string(),
                format!("{}: not a regular file (a FIFO)", fifo.display())
            );
            assert!(start.elapsed() < std::time::Duration::from_secs(5));
        }
        // A directory.
        let dir = d.join("dir.crt");
        std::fs::create_dir(&dir).unwrap();
        assert_eq!(
            read(&dir).unwrap_err().to_string(),
            format!("{}: not a regular file (a directory)", dir.display())
        );
        // 2 MiB: over the limit; exactly the limit is fine.
        let big = d.join("big.crt");
        std::fs::write(&big, vec![b'x'; 2 * 1024 * 1024]).unwrap();
        let e = read(&big).unwrap_err();
        assert!(matches!(
            e,
            Error::FileTooLarge {
                limit: MAX_FILE_BYTES,
                ..
            }
        ));
        assert_eq!(
            e.to_string(),
            format!(
                "{}: larger than 1048576 bytes, the limit for a kubeadm file",
                big.display()
            )
        );
        std::fs::write(&big, vec![b'x'; MAX_FILE_BYTES as usize]).unwrap();
        assert_eq!(read(&big).unwrap().len() as u64, MAX_FILE_BYTES);
        // Absent: an I/O error naming the file, the cause once.
        let e = read(&d.join("absent")).unwrap_err();
        assert_eq!(e.to_string(), d.join("absent").display().to_string());
        assert_eq!(
            crate::error::report(&e),
            format!(
                "{}: No such file or directory (os error 2)",
                d.join("absent").display()
            )
        );
    }

    #[test]
    fn the_kubelet_rotation_link_is_followed_within_its_dir_only() {
        let t = tempfile::tempdir().unwrap();
        let pki = t.path().join("pki");
        std::fs::create_dir(&pki).unwrap();
        let dated = pki.join("kubelet-client-2025-01-01-00-00-00.pem");
        std::fs::write(&dated, b"pem").unwrap();
        let current = pki.join("kubelet-client-current.pem");
        // Absolute target in the same dir (what the kubelet writes), and relative.
        std::os::unix::fs::symlink(&dated, &current).unwrap();
        assert_eq!(read_link_in_dir(&current).unwrap(), b"pem");
        assert!(matches!(read(&current), Err(Error::Symlink(_))));
        std::fs::remove_file(&current).unwrap();
        std::os::unix::fs::symlink("kubelet-client-2025-01-01-00-00-00.pem", &current).unwrap();
        assert_eq!(read_link_in_dir(&current).unwrap(), b"pem");
        // Out of the dir: refused.
        let outside = t.path().join("secret");
        std::fs::write(&outside, b"secret").unwrap();
        for target in [
            outside.clone(),
            Path::new("../secret").to_path_buf(),
            Path::new("/dev/zero").to_path_buf(),
        ] {
            std::fs::remove_file(&current).unwrap();
            std::os::unix::fs::symlink(&target, &current).unwrap();
            assert!(
                matches!(read_link_in_dir(&current), Err(Error::Symlink(_))),
                "{}",
                target.display()
            );
        }
        // Two hops (link -> link in the same dir): the second is refused.
        let hop = pki.join("hop.pem");
        std::os::unix::fs::symlink(&outside, &hop).unwrap();
        std::fs::remove_file(&current).unwrap();
        std::os::unix::fs::symlink("hop.pem", &current).unwrap();
        assert!(matches!(read_link_in_dir(&current), Err(Error::Symlink(_))));
    }
}
