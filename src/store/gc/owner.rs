//! Which process wrote a claim, so that a claim whose process is known to be dead ends at once
//! instead of after its lease.
//!
//! A claim file's header names its writer: the machine's boot id, the pid namespace, the pid
//! and the process's start time (clock ticks after boot, from `/proc/<pid>/stat`). A reader on
//! the same boot and in the same pid namespace can tell for sure that the writer is gone: no
//! such process (`kill(pid, 0)` says `ESRCH`), a zombie, or another process under the same
//! pid (a different start time). A gone writer deletes nothing more, so its claims protect
//! nothing. Anywhere else (another machine, another container, a `/proc` it cannot read) the
//! reader cannot tell, says "not known dead", and the lease decides as before.
//!
//! This matters after a crash: a server restarted after a SIGKILL mid-collection would
//! otherwise wait out the dead run's lease (30 s) on every push that relies on a claimed
//! blob, and skip its own collections meanwhile.

use std::sync::OnceLock;

/// The process that wrote a claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Owner {
    boot: String,
    pid_namespace: u64,
    pid: u32,
    start: u64,
}

/// The prefix of the owner field in a claim's header.
const FIELD: &str = "owner=";

impl Owner {
    /// This process, if the machine says who it is (Linux with `/proc`); cached.
    pub(crate) fn this_process() -> Option<&'static Owner> {
        static THIS: OnceLock<Option<Owner>> = OnceLock::new();
        THIS.get_or_init(probe::this_process).as_ref()
    }

    /// The header field: `owner=<boot>:<pid namespace>:<pid>:<start>`.
    pub(crate) fn field(&self) -> String {
        let Owner {
            boot,
            pid_namespace,
            pid,
            start,
        } = self;
        format!("{FIELD}{boot}:{pid_namespace}:{pid}:{start}")
    }

    /// Parses a header field written by [`Owner::field`]; anything else is no owner.
    pub(crate) fn parse_field(field: &str) -> Option<Owner> {
        let mut parts = field.strip_prefix(FIELD)?.split(':');
        let owner = Owner {
            boot: parts.next().filter(|b| !b.is_empty())?.to_owned(),
            pid_namespace: parts.next()?.parse().ok()?,
            pid: parts.next()?.parse().ok()?,
            start: parts.next()?.parse().ok()?,
        };
        parts.next().is_none().then_some(owner)
    }

    /// An owner on this machine that no process can be: for tests of claims left by the dead.
    #[cfg(test)]
    pub(crate) fn gone() -> Option<Owner> {
        Some(Owner {
            // Above Linux's largest pid_max (2^22).
            pid: 4_194_305,
            ..Owner::this_process()?.clone()
        })
    }

    /// True only when this process can be sure the owner no longer runs.
    pub(crate) fn is_known_dead(&self) -> bool {
        let Some(me) = Owner::this_process() else {
            return false;
        };
        if self.boot != me.boot || self.pid_namespace != me.pid_namespace {
            return false;
        }
        if self == me {
            return false;
        }
        probe::is_gone(self.pid, self.start)
    }
}

#[cfg(target_os = "linux")]
mod probe {
    use super::Owner;

    pub(super) fn this_process() -> Option<Owner> {
        let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
        let namespace = std::fs::read_link("/proc/self/ns/pid").ok()?;
        let pid = std::process::id();
        let (_, start) = state_and_start(&std::fs::read_to_string("/proc/self/stat").ok()?)?;
        Some(Owner {
            boot: boot.trim().to_owned(),
            pid_namespace: namespace_number(namespace.to_str()?)?,
            pid,
            start,
        })
    }

    /// `pid:[4026531836]` → 4026531836.
    fn namespace_number(link: &str) -> Option<u64> {
        link.strip_prefix("pid:[")?.strip_suffix(']')?.parse().ok()
    }

    pub(super) fn is_gone(pid: u32, start: u64) -> bool {
        let Ok(pid_t) = libc::pid_t::try_from(pid) else {
            return false;
        };
        // SAFETY: signal 0 only asks whether the process exists; nothing is sent.
        #[allow(unsafe_code)]
        let result = unsafe { libc::kill(pid_t, 0) };
        if result != 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH) {
            return true;
        }
        // It exists (or may: EPERM). Only its stat tells a zombie or a reused pid; a stat this
        // process may not read (`hidepid`) tells nothing.
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Ok(stat) => match state_and_start(&stat) {
                Some((state, started)) => started != start || matches!(state, 'Z' | 'X'),
                None => false,
            },
            Err(_) => false,
        }
    }

    /// The state (field 3) and start time (field 22) of a `/proc/<pid>/stat` line. The command
    /// name (field 2) may hold spaces and parentheses, so fields are counted after its last `)`.
    pub(super) fn state_and_start(stat: &str) -> Option<(char, u64)> {
        let rest = &stat[stat.rfind(')')? + 1..];
        let mut fields = rest.split_whitespace();
        let state = fields.next()?.chars().next()?;
        let start = fields.nth(18)?.parse().ok()?;
        Some((state, start))
    }
}

#[cfg(not(target_os = "linux"))]
mod probe {
    use super::Owner;

    pub(super) fn this_process() -> Option<Owner> {
        None
    }

    pub(super) fn is_gone(_pid: u32, _start: u64) -> bool {
        false
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// The owner of a child process, read while it runs.
    fn owner_of(child: &std::process::Child) -> Owner {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", child.id())).unwrap();
        let (_, start) = probe::state_and_start(&stat).unwrap();
        Owner {
            pid: child.id(),
            start,
            ..Owner::this_process().unwrap().clone()
        }
    }

    #[test]
    fn the_field_round_trips_and_junk_is_no_owner() {
        let me = Owner::this_process().expect("Linux with /proc");
        assert_eq!(Owner::parse_field(&me.field()).as_ref(), Some(me));
        for junk in [
            "",
            "owner=",
            "owner=a:1:2",
            "owner=a:1:2:3:4",
            "owner=a:x:2:3",
            "b:1:2:3",
        ] {
            assert_eq!(Owner::parse_field(junk), None, "{junk:?}");
        }
    }

    #[test]
    fn a_command_name_with_parentheses_and_spaces_is_skipped() {
        let mut fields = vec!["0"; 44];
        fields[0] = "S";
        fields[19] = "123456";
        let stat = format!("42 (a) b (c) {}", fields.join(" "));
        assert_eq!(probe::state_and_start(&stat), Some(('S', 123456)));
    }

    #[test]
    fn this_process_and_a_running_child_are_alive_a_reaped_or_zombie_one_is_not() {
        assert!(!Owner::this_process().unwrap().is_known_dead());
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let owner = owner_of(&child);
        assert!(!owner.is_known_dead(), "a running child");
        let reused = Owner {
            start: owner.start + 1,
            ..owner.clone()
        };
        assert!(reused.is_known_dead(), "another process under the same pid");
        child.kill().unwrap();
        // Killed but not reaped: a zombie, which runs nothing.
        std::thread::sleep(std::time::Duration::from_millis(100));
        assert!(owner.is_known_dead(), "a zombie");
        child.wait().unwrap();
        assert!(owner.is_known_dead(), "a reaped child");
    }

    #[test]
    fn an_owner_on_another_boot_or_namespace_is_never_known_dead() {
        let gone = Owner::gone().unwrap();
        assert!(gone.is_known_dead());
        let other_boot = Owner {
            boot: "another-machine".into(),
            ..gone.clone()
        };
        assert!(!other_boot.is_known_dead());
        let other_namespace = Owner {
            pid_namespace: gone.pid_namespace + 1,
            ..gone
        };
        assert!(!other_namespace.is_known_dead());
    }
}
