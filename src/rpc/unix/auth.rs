//! Who may call what: the caller's tiers from its SO_PEERCRED uid/gid and the server's
//! policy (`--allow-uid`, `--allow-write-uid`, `--group`).

use std::os::unix::fs::MetadataExt;

use super::super::{Caller, ServeError};

/// A group from /etc/group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// Name.
    pub name: String,
    /// Gid.
    pub gid: u32,
    /// Supplementary members (user names).
    pub members: Vec<String>,
}

/// Looks a group up in `/etc/group` by name or number.
pub fn lookup_group(name_or_gid: &str) -> Result<Group, ServeError> {
    let text = std::fs::read_to_string("/etc/group").unwrap_or_default();
    let numeric: Option<u32> = name_or_gid.parse().ok();
    for line in text.lines() {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() < 4 {
            continue;
        }
        let Ok(gid) = f[2].parse::<u32>() else {
            continue;
        };
        if f[0] == name_or_gid || numeric == Some(gid) {
            return Ok(Group {
                name: f[0].to_string(),
                gid,
                members: f[3]
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect(),
            });
        }
    }
    match numeric {
        Some(gid) => Ok(Group {
            name: name_or_gid.to_string(),
            gid,
            members: Vec::new(),
        }),
        None => Err(ServeError::UnknownGroup(name_or_gid.to_string())),
    }
}

fn user_name(uid: u32) -> Option<String> {
    let text = std::fs::read_to_string("/etc/passwd").ok()?;
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() > 2 && f[2].parse::<u32>().ok() == Some(uid)).then(|| f[0].to_string())
    })
}

/// The effective uid of this process (from /proc, without unsafe code).
pub fn effective_uid() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2))
                .and_then(|u| u.parse().ok())
        })
        .or_else(|| std::fs::metadata("/proc/self").ok().map(|m| m.uid()))
        .unwrap_or(u32::MAX)
}

/// Who may call what.
#[derive(Debug, Clone)]
pub struct Policy {
    /// The server's uid (always allowed).
    pub server_uid: u32,
    /// Read-tier uids.
    pub read_uids: Vec<u32>,
    /// Write-tier uids.
    pub write_uids: Vec<u32>,
    /// Read-tier group.
    pub group: Option<Group>,
}

impl Policy {
    /// The tiers of a peer.
    pub fn caller(&self, uid: u32, gid: u32, pid: Option<i32>) -> Caller {
        let may_write = uid == 0 || uid == self.server_uid || self.write_uids.contains(&uid);
        let in_group = self.group.as_ref().is_some_and(|g| {
            g.gid == gid
                || (!g.members.is_empty() && user_name(uid).is_some_and(|n| g.members.contains(&n)))
        });
        let may_read = may_write || self.read_uids.contains(&uid) || in_group;
        Caller {
            uid,
            gid,
            pid,
            may_read,
            may_write,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiers() {
        let p = Policy {
            server_uid: 1000,
            read_uids: vec![2000],
            write_uids: vec![3000],
            group: Some(Group {
                name: "kc".into(),
                gid: 500,
                members: vec![],
            }),
        };
        let t = |uid, gid| {
            let c = p.caller(uid, gid, Some(1));
            (c.may_read, c.may_write)
        };
        assert_eq!(t(0, 0), (true, true));
        assert_eq!(t(1000, 1000), (true, true));
        assert_eq!(t(3000, 3000), (true, true));
        assert_eq!(t(2000, 2000), (true, false));
        assert_eq!(t(4000, 500), (true, false));
        assert_eq!(t(4000, 4000), (false, false));
    }
}
