//! Who may call what: the caller's tiers from its SO_PEERCRED uid/gid and the server's
//! policy (`--allow-uid`, `--allow-write-uid`, `--group`).

use std::ffi::OsStr;

use super::super::{Caller, ServeError};

/// A group of the system's group database (NSS: /etc/group, LDAP, SSSD, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// Name.
    pub name: String,
    /// Gid.
    pub gid: u32,
}

/// Looks a group up by name or number through NSS (`getgrnam_r` / `getgrgid_r`), so a group
/// from a directory service works as well as one from /etc/group. A number that names no
/// group is taken as a gid as it is.
pub fn lookup_group(name_or_gid: &str) -> Result<Group, ServeError> {
    let found = |g: uzers::Group| Group {
        name: g.name().to_string_lossy().into_owned(),
        gid: g.gid(),
    };
    if let Some(g) = uzers::get_group_by_name(OsStr::new(name_or_gid)) {
        return Ok(found(g));
    }
    match name_or_gid.parse::<u32>() {
        Ok(gid) => Ok(uzers::get_group_by_gid(gid).map_or_else(
            || Group {
                name: name_or_gid.to_string(),
                gid,
            },
            found,
        )),
        Err(_) => Err(ServeError::UnknownGroup(name_or_gid.to_string())),
    }
}

/// Whether the user `uid` is a member of `gid` by the group database: its primary group or
/// a supplementary one (`getgrouplist`, through NSS). False for a uid without a user.
fn user_in_group(uid: u32, gid: u32) -> bool {
    let Some(user) = uzers::get_user_by_uid(uid) else {
        return false;
    };
    user.primary_group_id() == gid
        || uzers::get_user_groups(user.name(), user.primary_group_id())
            .is_some_and(|gs| gs.iter().any(|g| g.gid() == gid))
}

/// The effective uid of this process.
pub fn effective_uid() -> u32 {
    rustix::process::geteuid().as_raw()
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
        let in_group = self
            .group
            .as_ref()
            .is_some_and(|g| g.gid == gid || user_in_group(uid, g.gid));
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

    #[test]
    fn effective_uid_is_the_process_uid() {
        use std::os::unix::fs::MetadataExt;
        // A file this process creates is owned by its effective uid.
        let d = tempfile::tempdir().expect("tempdir");
        let f = d.path().join("f");
        std::fs::write(&f, b"").expect("write");
        let owner = std::fs::metadata(&f).expect("stat").uid();
        assert_eq!(effective_uid(), owner);
    }

    /// (name, gid, members) of the lines of /etc/group (the files database NSS reads too).
    fn etc_group() -> Vec<(String, u32, Vec<String>)> {
        std::fs::read_to_string("/etc/group")
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                let gid = f.get(2)?.parse().ok()?;
                let members = f.get(3)?.split(',').filter(|m| !m.is_empty());
                Some((f[0].to_string(), gid, members.map(String::from).collect()))
            })
            .collect()
    }

    #[test]
    fn groups_are_looked_up_through_nss() {
        let root = Group {
            name: "root".into(),
            gid: 0,
        };
        assert_eq!(lookup_group("root").expect("root"), root);
        assert_eq!(lookup_group("0").expect("gid 0"), root);
        // A gid nobody named is taken as it is.
        assert_eq!(
            lookup_group("4199999999").expect("numeric"),
            Group {
                name: "4199999999".into(),
                gid: 4_199_999_999,
            }
        );
        // Every group of /etc/group, by name.
        let groups = etc_group();
        assert!(groups.len() > 1, "{groups:?}");
        for (name, gid, _) in &groups {
            let g = lookup_group(name).expect("a group of /etc/group");
            assert_eq!((&g.name, g.gid), (name, *gid));
        }
        // A name no database knows: a typed error naming it.
        let e = lookup_group("kubecert-no-such-group").unwrap_err();
        assert!(
            matches!(&e, ServeError::UnknownGroup(n) if n == "kubecert-no-such-group"),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            "unknown group \"kubecert-no-such-group\" (not in the group database)"
        );
    }

    #[test]
    fn supplementary_members_get_the_read_tier() {
        // Root's primary group is root's, whatever gid its process runs with.
        assert!(user_in_group(0, 0));
        assert!(!user_in_group(4_199_999_998, 0), "a uid without a user");
        // A supplementary member (listed in /etc/group, not its primary group) reads even
        // when its process runs with another gid.
        let member = etc_group().into_iter().find_map(|(_, gid, members)| {
            members.iter().find_map(|m| {
                let u = uzers::get_user_by_name(OsStr::new(m))?;
                (u.primary_group_id() != gid).then(|| (u.uid(), gid))
            })
        });
        let Some((uid, gid)) = member else {
            eprintln!("no supplementary group member in /etc/group: membership not exercised");
            return;
        };
        let p = Policy {
            server_uid: 4_199_999_997,
            read_uids: vec![],
            write_uids: vec![],
            group: Some(Group {
                name: "g".into(),
                gid,
            }),
        };
        let c = p.caller(uid, 4_199_999_996, None);
        assert!(c.may_read && !c.may_write, "{c:?}");
        let outsider = Policy {
            group: Some(Group {
                name: "g".into(),
                gid: 4_199_999_995,
            }),
            ..p
        };
        assert!(!outsider.caller(uid, 4_199_999_996, None).may_read);
    }
}
