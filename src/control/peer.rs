//! Who is at the other end of a control-socket connection (`SO_PEERCRED`), and whether the
//! socket lets them in: root, the daemon's own user, or a member of the daemon's group, as
//! HAProxy's stats socket does with its file's owner and group.
//!
//! The rule is decided once per connection, when it is accepted, and kept in the
//! connection's extensions for [`crate::api::socket_caller`].

use std::any::Any;
use std::ffi::{CStr, CString};

use actix_web::dev::Extensions;

use crate::api::socket_caller::SocketPeer;

/// Groups looked up at first for a user; the list grows to what the system says if more.
const GROUPS_FIRST_GUESS: usize = 64;
/// Past this, a user's group list is not read (no system has a user in so many groups).
const GROUPS_MOST: usize = 65_536;
/// Bytes for a password-database entry at first; grown on `ERANGE` up to `PASSWD_BUFFER_MOST`.
const PASSWD_BUFFER_FIRST: usize = 1024;
/// The largest buffer offered to `getpwuid_r`.
const PASSWD_BUFFER_MOST: usize = 1 << 20;

/// Who may use the socket: root, `daemon_uid`, and members of `group`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AdmissionRule {
    pub daemon_uid: u32,
    pub group: u32,
}

impl AdmissionRule {
    /// The rule of this process: its effective user and its primary group (the socket
    /// file's group).
    pub fn of_this_process() -> Self {
        // SAFETY: geteuid and getegid cannot fail and touch no memory.
        let (daemon_uid, group) = unsafe { (libc::geteuid(), libc::getegid()) };
        AdmissionRule { daemon_uid, group }
    }

    /// Whether the peer `uid` with primary group `gid` may use the socket; `groups_of`
    /// gives a user's groups, asked only when uid and gid do not settle it.
    pub fn admits(&self, uid: u32, gid: u32, groups_of: impl FnOnce(u32, u32) -> Vec<u32>) -> bool {
        uid == 0
            || uid == self.daemon_uid
            || gid == self.group
            || groups_of(uid, gid).contains(&self.group)
    }

    /// Reads the peer of a new connection (`connection` is the accepted Unix stream) and
    /// records it in the connection's `data`. A connection whose peer cannot be read is
    /// recorded as refused.
    pub fn on_connect(&self, connection: &dyn Any, data: &mut Extensions) {
        let Some(stream) = connection.downcast_ref::<actix_rt::net::UnixStream>() else {
            return;
        };
        let peer = match stream.peer_cred() {
            Ok(cred) => SocketPeer {
                uid: cred.uid(),
                gid: cred.gid(),
                admitted: self.admits(cred.uid(), cred.gid(), groups_of),
            },
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the peer of a control-socket connection; it is refused");
                SocketPeer {
                    uid: u32::MAX,
                    gid: u32::MAX,
                    admitted: false,
                }
            }
        };
        data.insert(peer);
    }
}

/// The groups of user `uid` (whose primary group is `gid`) in the system's databases;
/// empty when the user has no entry (a uid without a name is in no supplementary group).
pub(crate) fn groups_of(uid: u32, gid: u32) -> Vec<u32> {
    let Some(name) = user_name(uid) else {
        return Vec::new();
    };
    let mut room = GROUPS_FIRST_GUESS;
    while room <= GROUPS_MOST {
        let mut groups: Vec<libc::gid_t> = vec![0; room];
        let mut count = libc::c_int::try_from(room).unwrap_or(libc::c_int::MAX);
        // SAFETY: `name` is a NUL-terminated string, `groups` holds `count` entries, and
        // getgrouplist writes at most `count` of them, setting `count` to how many it has.
        let found =
            unsafe { libc::getgrouplist(name.as_ptr(), gid, groups.as_mut_ptr(), &mut count) };
        let count = usize::try_from(count).unwrap_or(0);
        if found >= 0 {
            groups.truncate(count);
            return groups;
        }
        // Too small: `count` says how many there are (glibc), else try twice the room.
        room = count.max(room * 2);
    }
    Vec::new()
}

/// The login name of `uid`, when the password database knows it.
fn user_name(uid: u32) -> Option<CString> {
    let mut buffer: Vec<libc::c_char> = vec![0; PASSWD_BUFFER_FIRST];
    loop {
        // SAFETY: an all-zero passwd is a valid value (null pointers, zero ids); it is only
        // read after getpwuid_r filled it in.
        let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: every pointer is to memory owned here, `buffer.len()` is its size, and
        // the strings of `entry` point into `buffer`, which outlives their use below.
        let code = unsafe {
            libc::getpwuid_r(
                uid,
                &mut entry,
                buffer.as_mut_ptr(),
                buffer.len(),
                &mut result,
            )
        };
        if code == libc::ERANGE && buffer.len() < PASSWD_BUFFER_MOST {
            buffer.resize(buffer.len() * 2, 0);
            continue;
        }
        if code != 0 || result.is_null() || entry.pw_name.is_null() {
            return None;
        }
        // SAFETY: getpwuid_r succeeded, so `pw_name` is a NUL-terminated string in `buffer`.
        return Some(unsafe { CStr::from_ptr(entry.pw_name) }.to_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULE: AdmissionRule = AdmissionRule {
        daemon_uid: 990,
        group: 990,
    };

    fn no_groups(_: u32, _: u32) -> Vec<u32> {
        Vec::new()
    }

    #[test]
    fn root_the_daemon_and_its_group_are_admitted() {
        assert!(RULE.admits(0, 0, no_groups), "root");
        assert!(RULE.admits(990, 100, no_groups), "the daemon's user");
        assert!(RULE.admits(1000, 990, no_groups), "primary group");
        assert!(
            RULE.admits(1000, 1000, |_, _| vec![1000, 27, 990]),
            "supplementary group"
        );
    }

    #[test]
    fn anyone_else_is_refused() {
        assert!(!RULE.admits(1000, 1000, |_, _| vec![1000, 27]));
        assert!(!RULE.admits(65534, 65534, no_groups));
    }

    #[test]
    fn groups_are_asked_only_when_needed() {
        let asked = |_: u32, _: u32| -> Vec<u32> { panic!("not needed") };
        assert!(RULE.admits(0, 5, asked));
    }

    #[test]
    fn roots_groups_are_read_from_the_system() {
        assert!(groups_of(0, 0).contains(&0));
        assert!(groups_of(u32::MAX - 7, 0).is_empty(), "no such user");
    }
}
