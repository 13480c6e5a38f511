//! The few operating-system calls the standard library does not offer, wrapped safely. This
//! is the only module allowed to use `unsafe`.

#![allow(unsafe_code)]

use std::ffi::{CStr, CString};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;

/// The signals this project sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGTERM: stop gracefully.
    Terminate,
    /// SIGINT: Ctrl-C (PostgreSQL's "fast shutdown").
    Interrupt,
    /// SIGKILL: `kill -9`, no chance to finish anything.
    Kill,
    /// SIGSTOP: freeze the process (it cannot catch this).
    Stop,
    /// SIGCONT: resume a frozen process.
    Continue,
}

impl Signal {
    fn number(self) -> libc::c_int {
        match self {
            Signal::Terminate => libc::SIGTERM,
            Signal::Interrupt => libc::SIGINT,
            Signal::Kill => libc::SIGKILL,
            Signal::Stop => libc::SIGSTOP,
            Signal::Continue => libc::SIGCONT,
        }
    }
}

/// Sends `signal` to the process `pid`. The caller makes sure the PID is still the process it
/// means (a child not yet reaped), so the signal cannot reach a process that reused the PID.
pub fn kill(pid: u32, signal: Signal) -> io::Result<()> {
    let pid = libc::pid_t::try_from(pid)
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a process id"))?;
    // SAFETY: kill(2) takes plain integers and touches no memory of ours.
    if unsafe { libc::kill(pid, signal.number()) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// True when this process runs as root (effective user id 0).
pub fn is_root() -> bool {
    // SAFETY: geteuid(2) cannot fail and touches no memory.
    unsafe { libc::geteuid() == 0 }
}

/// This process's effective user and group ids, e.g. for an error about file permissions.
pub fn effective_ids() -> (u32, u32) {
    // SAFETY: geteuid(2) and getegid(2) cannot fail and touch no memory.
    unsafe { (libc::geteuid(), libc::getegid()) }
}

/// A system user, as `/etc/passwd` (or NSS) knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub uid: u32,
    pub gid: u32,
    pub home: PathBuf,
}

/// Looks a user up by name; `Ok(None)` when there is no such user. Thread-safe
/// (`getpwnam_r`, with a buffer of our own).
pub fn user_by_name(name: &str) -> io::Result<Option<User>> {
    let name = CString::new(name)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "user name contains NUL"))?;
    let mut size = 1024;
    loop {
        let mut buffer = vec![0 as libc::c_char; size];
        // SAFETY: an all-zero passwd is a valid value (null pointers, zero ids); it is only
        // read after getpwnam_r filled it in.
        let mut record: libc::passwd = unsafe { std::mem::zeroed() };
        let mut found: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: every pointer is valid for the call: the name is NUL-terminated, the record
        // and result live on this stack frame, and the buffer's length is passed with it.
        let code = unsafe {
            libc::getpwnam_r(
                name.as_ptr(),
                &mut record,
                buffer.as_mut_ptr(),
                buffer.len(),
                &mut found,
            )
        };
        if code == libc::ERANGE && size < 1 << 20 {
            size *= 4;
            continue;
        }
        if code != 0 {
            return Err(io::Error::from_raw_os_error(code));
        }
        if found.is_null() {
            return Ok(None);
        }
        let home = if record.pw_dir.is_null() {
            PathBuf::new()
        } else {
            // SAFETY: pw_dir points into `buffer`, NUL-terminated, and `buffer` is alive.
            let bytes = unsafe { CStr::from_ptr(record.pw_dir) }.to_bytes();
            PathBuf::from(std::ffi::OsStr::from_bytes(bytes))
        };
        return Ok(Some(User {
            uid: record.pw_uid,
            gid: record.pw_gid,
            home,
        }));
    }
}

/// Asks the kernel to SIGKILL the child when the thread that spawns it exits
/// (`PR_SET_PDEATHSIG`), so a parent killed with SIGKILL takes its children with it.
pub fn die_with_parent(command: &mut std::process::Command) {
    // SAFETY: prctl(2) is async-signal-safe and only changes the new process.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// The open-file limit (`RLIMIT_NOFILE`) of this process: (soft, hard). `u64::MAX` means
/// unlimited.
pub fn open_file_limit() -> io::Result<(u64, u64)> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit(2) writes one rlimit, which lives on this stack frame.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((from_rlim(limit.rlim_cur), from_rlim(limit.rlim_max)))
}

/// Raises this process's soft open-file limit to its hard limit (containers often start with a
/// soft limit of 1024 under a much higher hard one) and returns the soft limit now in force.
/// Raising up to the hard limit needs no privilege.
pub fn raise_open_file_limit() -> io::Result<u64> {
    let (soft, hard) = open_file_limit()?;
    if soft >= hard {
        return Ok(soft);
    }
    let limit = libc::rlimit {
        rlim_cur: to_rlim(hard),
        rlim_max: to_rlim(hard),
    };
    // SAFETY: setrlimit(2) only reads the rlimit, which lives on this stack frame.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
        // An unlimited hard limit is refused above the kernel's nr_open: keep the soft one.
        return Ok(soft);
    }
    Ok(hard)
}

/// Starts the child with `limit` as both its soft and hard open-file limit, as a container with
/// that limit would (lowering needs no privilege).
pub fn limit_open_files(command: &mut std::process::Command, limit: u64) {
    let limit = libc::rlimit {
        rlim_cur: to_rlim(limit),
        rlim_max: to_rlim(limit),
    };
    // SAFETY: setrlimit(2) is async-signal-safe, reads a copy of `limit` moved into the
    // closure, and only changes the new process.
    unsafe {
        command.pre_exec(move || {
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

fn from_rlim(value: libc::rlim_t) -> u64 {
    if value == libc::RLIM_INFINITY {
        u64::MAX
    } else {
        // rlim_t is u64 on every Linux target; the conversion only matters elsewhere.
        #[allow(clippy::useless_conversion)]
        u64::from(value)
    }
}

fn to_rlim(value: u64) -> libc::rlim_t {
    if value == u64::MAX {
        libc::RLIM_INFINITY
    } else {
        libc::rlim_t::try_from(value).unwrap_or(libc::RLIM_INFINITY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_root_and_not_a_missing_user() {
        let root = user_by_name("root").unwrap().expect("root exists");
        assert_eq!((root.uid, root.gid), (0, 0));
        assert!(user_by_name("no-such-user-statelab").unwrap().is_none());
    }

    #[test]
    fn the_soft_open_file_limit_can_be_raised_to_the_hard_one() {
        let (soft, hard) = open_file_limit().unwrap();
        assert!(soft <= hard);
        let raised = raise_open_file_limit().unwrap();
        assert!(raised >= soft);
        assert_eq!(open_file_limit().unwrap().0, raised);
    }

    #[test]
    fn a_child_starts_with_the_open_file_limit_it_was_given() {
        let mut command = std::process::Command::new("sh");
        command.args(["-c", "ulimit -Sn; ulimit -Hn"]);
        limit_open_files(&mut command, 300);
        let output = command.output().unwrap();
        assert_eq!(String::from_utf8_lossy(&output.stdout), "300\n300\n");
    }

    #[test]
    fn signal_zero_pid_is_refused() {
        assert!(kill(0, Signal::Continue).is_err());
    }
}
