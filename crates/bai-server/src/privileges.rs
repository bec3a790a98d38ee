//! Dropping root privileges to `[manager] user` / `group` after the listeners are bound (so that
//! ports below 1024 work) and the TLS key is read, before any worker starts.

use std::ffi::CString;

use bai_config::UnixAccount;
use nix::errno::Errno;
use nix::unistd::{Gid, Group, Uid, User, geteuid, getgrouplist, setgid, setgroups, setuid};

/// Why the process could not switch to the configured user and group.
#[derive(Debug, thiserror::Error)]
pub enum PrivilegeError {
    #[error("[manager] user: there is no user named {0:?}")]
    NoSuchUser(String),
    #[error("[manager] group: there is no group named {0:?}")]
    NoSuchGroup(String),
    #[error("[manager] {key}: cannot look up {name:?}: {source}")]
    Lookup {
        key: &'static str,
        name: String,
        #[source]
        source: Errno,
    },
    #[error("cannot change the process to uid {uid} and gid {gid} ({step}): {source}")]
    Switch {
        uid: u32,
        gid: u32,
        step: &'static str,
        #[source]
        source: Errno,
    },
}

/// Switches to `user` and `group` when running as root and at least one of them is set: the
/// user's supplementary groups, then the group, then the user. Returns the new uid and gid, or
/// `None` when nothing was changed (not root, or neither is set, which keeps the current user).
///
/// An unset `group` means the user's primary group. Names are resolved in the user and group
/// databases respectively.
pub fn drop_privileges(
    user: Option<&UnixAccount>,
    group: Option<&UnixAccount>,
) -> Result<Option<(u32, u32)>, PrivilegeError> {
    if user.is_none() && group.is_none() {
        return Ok(None);
    }
    if !geteuid().is_root() {
        tracing::debug!("not running as root: [manager] user and group are left as they are");
        return Ok(None);
    }
    let user = user.map(resolve_user).transpose()?;
    let gid = match group {
        Some(group) => resolve_group(group)?,
        None => match &user {
            Some(ResolvedUser {
                entry: Some(entry), ..
            }) => entry.gid,
            _ => nix::unistd::getgid(),
        },
    };
    let uid = user
        .as_ref()
        .map_or_else(nix::unistd::getuid, |user| user.uid);
    let switch = |step: &'static str| {
        move |source| PrivilegeError::Switch {
            uid: uid.as_raw(),
            gid: gid.as_raw(),
            step,
            source,
        }
    };
    let groups = match user.as_ref().and_then(|user| user.entry.as_ref()) {
        Some(entry) => {
            let name = CString::new(entry.name.as_str())
                .map_err(|_| PrivilegeError::NoSuchUser(entry.name.clone()))?;
            getgrouplist(&name, gid).map_err(switch("listing the user's groups"))?
        }
        None => vec![gid],
    };
    setgroups(&groups).map_err(switch("setgroups"))?;
    setgid(gid).map_err(switch("setgid"))?;
    setuid(uid).map_err(switch("setuid"))?;
    Ok(Some((uid.as_raw(), gid.as_raw())))
}

struct ResolvedUser {
    uid: Uid,
    /// The password-database entry, when the user has one (a bare uid may not).
    entry: Option<User>,
}

fn resolve_user(account: &UnixAccount) -> Result<ResolvedUser, PrivilegeError> {
    match account {
        UnixAccount::Id(id) => {
            let uid = Uid::from_raw(*id);
            let entry = User::from_uid(uid).map_err(|source| PrivilegeError::Lookup {
                key: "user",
                name: id.to_string(),
                source,
            })?;
            Ok(ResolvedUser { uid, entry })
        }
        UnixAccount::Name(name) => {
            let entry = User::from_name(name)
                .map_err(|source| PrivilegeError::Lookup {
                    key: "user",
                    name: name.clone(),
                    source,
                })?
                .ok_or_else(|| PrivilegeError::NoSuchUser(name.clone()))?;
            Ok(ResolvedUser {
                uid: entry.uid,
                entry: Some(entry),
            })
        }
    }
}

fn resolve_group(account: &UnixAccount) -> Result<Gid, PrivilegeError> {
    match account {
        UnixAccount::Id(id) => Ok(Gid::from_raw(*id)),
        UnixAccount::Name(name) => Group::from_name(name)
            .map_err(|source| PrivilegeError::Lookup {
                key: "group",
                name: name.clone(),
                source,
            })?
            .map(|group| group.gid)
            .ok_or_else(|| PrivilegeError::NoSuchGroup(name.clone())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_to_do_without_user_or_group() {
        assert_eq!(drop_privileges(None, None).expect("no-op"), None);
    }

    #[test]
    fn unknown_names_are_errors_naming_the_key() {
        // Only root resolves names (others keep their user), so only root can see the error.
        if !geteuid().is_root() {
            let kept = drop_privileges(Some(&UnixAccount::Name("no-such-user-x".into())), None);
            assert_eq!(kept.expect("not root: no-op"), None);
            return;
        }
        let error = resolve_user(&UnixAccount::Name("no-such-user-x".into()))
            .err()
            .expect("unknown user");
        assert_eq!(
            error.to_string(),
            "[manager] user: there is no user named \"no-such-user-x\""
        );
        let error =
            resolve_group(&UnixAccount::Name("no-such-group-x".into())).expect_err("unknown group");
        assert!(error.to_string().starts_with("[manager] group:"), "{error}");
    }
}
