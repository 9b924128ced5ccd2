//! Power, clock and password changes, through the same tools qemu-ga
//! uses (shutdown, systemctl, pm-utils, /sys/power/state, hwclock,
//! chpasswd). The argument building and checks are separate pure
//! functions; running the tools is a thin layer over `Command`.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};

use qga_types::runtime::CommandError;

use super::files::decode_base64;
use super::util::errno_error;
use crate::system::SuspendMode;

const SHUTDOWN: &str = "/sbin/shutdown";
const HWCLOCK: &str = "/sbin/hwclock";

/// The `shutdown` flag for a guest-shutdown mode (default powerdown).
pub fn shutdown_flag(mode: Option<&str>) -> Result<&'static str, CommandError> {
    match mode.unwrap_or("powerdown") {
        "powerdown" => Ok("-P"),
        "halt" => Ok("-H"),
        "reboot" => Ok("-r"),
        // qemu-ga's text, unbalanced parenthesis included.
        _ => Err(CommandError::generic(
            "mode is invalid (valid values are: halt|powerdown|reboot",
        )),
    }
}

pub fn shutdown_args(flag: &str) -> Vec<String> {
    vec![flag.into(), "+0".into(), "hypervisor initiated shutdown".into()]
}

/// Runs a helper detached from the agent's terminal and session, with
/// no standard streams, and waits for it.
fn run_helper(program: &str, args: &[String], stdin_data: Option<&[u8]>) -> Result<ExitStatus, CommandError> {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(if stdin_data.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0);
    let mut child = cmd
        .spawn()
        .map_err(|e| errno_error("failed to create child process", &e))?;
    if let (Some(mut stdin), Some(data)) = (child.stdin.take(), stdin_data) {
        let written = stdin.write_all(data);
        drop(stdin);
        if let Err(e) = written {
            let _ = child.wait();
            return Err(errno_error("cannot write new account password", &e));
        }
    }
    child
        .wait()
        .map_err(|e| errno_error("failed to wait for child process", &e))
}

/// qemu-ga's checks of a helper's exit.
fn helper_result(status: ExitStatus, failure: &str) -> Result<(), CommandError> {
    if status.code().is_none() {
        return Err(CommandError::generic("child process has terminated abnormally"));
    }
    if !status.success() {
        return Err(CommandError::generic(failure));
    }
    Ok(())
}

pub fn shutdown(mode: Option<&str>) -> Result<(), CommandError> {
    let flag = shutdown_flag(mode)?;
    let status = run_helper(SHUTDOWN, &shutdown_args(flag), None)?;
    helper_result(status, "child process has failed to shutdown")
}

/// systemd units, pm-utils names and /sys/power/state words per mode.
fn systemd_unit(mode: SuspendMode) -> &'static str {
    match mode {
        SuspendMode::Disk => "hibernate",
        SuspendMode::Ram => "suspend",
        SuspendMode::Hybrid => "hybrid-sleep",
    }
}

fn pmutils_names(mode: SuspendMode) -> (&'static str, &'static str) {
    match mode {
        SuspendMode::Disk => ("--hibernate", "pm-hibernate"),
        SuspendMode::Ram => ("--suspend", "pm-suspend"),
        SuspendMode::Hybrid => ("--suspend-hybrid", "pm-suspend-hybrid"),
    }
}

/// The word to write to /sys/power/state, when the kernel offers it
/// (`state` is that file's content). Hybrid has no such word.
pub fn sysfs_state_word(mode: SuspendMode, state: &str) -> Option<&'static str> {
    let word = match mode {
        SuspendMode::Disk => "disk",
        SuspendMode::Ram => "mem",
        SuspendMode::Hybrid => return None,
    };
    state.split_whitespace().any(|w| w == word).then_some(word)
}

fn program_exists(name: &str) -> bool {
    std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).any(|dir| dir.join(name).is_file()))
        .unwrap_or(false)
}

/// Tries systemd, then pm-utils, then the kernel's /sys/power/state, as
/// qemu-ga does; the first that supports the mode does the suspend.
pub fn suspend(mode: SuspendMode) -> Result<(), CommandError> {
    let mut last_error = None;
    if program_exists("systemctl") {
        let unit = format!("systemd-{}", systemd_unit(mode));
        let status = run_helper("systemctl", &["status".into(), unit], None)?;
        // LSB status codes: 1-3 mean the unit exists (4 is "unknown").
        if matches!(status.code(), Some(1..=3)) {
            let status = run_helper("systemctl", &[systemd_unit(mode).into()], None)?;
            match helper_result(
                status,
                &format!(
                    "the helper program 'systemctl {}' returned an error",
                    systemd_unit(mode)
                ),
            ) {
                Ok(()) => return Ok(()),
                Err(e) => last_error = Some(e),
            }
        }
    }
    let (probe, tool) = pmutils_names(mode);
    if program_exists("pm-is-supported") {
        let status = run_helper("pm-is-supported", &[probe.into()], None)?;
        if status.success() {
            let status = run_helper(tool, &[], None)?;
            match helper_result(status, &format!("the helper program '{tool}' returned an error")) {
                Ok(()) => return Ok(()),
                Err(e) => last_error = Some(e),
            }
        }
    }
    let state_path = Path::new("/sys/power/state");
    let state = std::fs::read_to_string(state_path).unwrap_or_default();
    if let Some(word) = sysfs_state_word(mode, &state) {
        return std::fs::write(state_path, word)
            .map_err(|e| errno_error(format_args!("failed to write '{word}' to '/sys/power/state'"), &e));
    }
    Err(last_error.unwrap_or_else(|| CommandError::generic("the requested suspend mode is not supported by the guest")))
}

/// Checks a guest-set-time value: whole seconds and nanoseconds, in the
/// years qemu-ga accepts (1970 up to, not including, 2070).
pub fn checked_time(time_ns: i64) -> Result<(i64, i64), CommandError> {
    const YEAR_2070: i64 = 3_155_760_000; // 2070-01-01T00:00:00Z
    let secs = time_ns.div_euclid(1_000_000_000);
    let nanos = time_ns.rem_euclid(1_000_000_000);
    if !(0..YEAR_2070).contains(&secs) {
        return Err(CommandError::generic("Invalid time"));
    }
    Ok((secs, nanos))
}

/// hwclock's argument: write the RTC from the new system time, or, with
/// no time given, set the system time from the RTC.
pub fn hwclock_arg(time_given: bool) -> &'static str {
    if time_given {
        "-w"
    } else {
        "-s"
    }
}

pub fn set_time(time_ns: Option<i64>) -> Result<(), CommandError> {
    if !Path::new(HWCLOCK).exists() {
        return Err(CommandError::unsupported());
    }
    if let Some(ns) = time_ns {
        let (secs, nanos) = checked_time(ns)?;
        let spec = nix::sys::time::TimeSpec::new(secs, nanos);
        nix::time::clock_settime(nix::time::ClockId::CLOCK_REALTIME, spec)
            .map_err(|e| errno_error("Failed to set time to guest", &std::io::Error::from(e)))?;
    }
    let status = run_helper(HWCLOCK, &[hwclock_arg(time_ns.is_some()).into()], None)?;
    helper_result(status, "hwclock failed to set hardware clock to system time")
}

/// The line chpasswd reads, after qemu-ga's checks of the base64
/// password and the user name.
pub fn chpasswd_input(username: &str, password_b64: &str) -> Result<Vec<u8>, CommandError> {
    let password = decode_base64(password_b64)?;
    if password.contains(&b'\n') {
        return Err(CommandError::generic("forbidden characters in raw password"));
    }
    if username.contains('\n') || username.contains(':') {
        return Err(CommandError::generic("forbidden characters in username"));
    }
    let mut line = Vec::with_capacity(username.len() + password.len() + 2);
    line.extend_from_slice(username.as_bytes());
    line.push(b':');
    line.extend_from_slice(&password);
    line.push(b'\n');
    Ok(line)
}

pub fn chpasswd_args(crypted: bool) -> Vec<String> {
    if crypted {
        vec!["-e".into()]
    } else {
        Vec::new()
    }
}

pub fn set_user_password(username: &str, password_b64: &str, crypted: bool) -> Result<(), CommandError> {
    let input = chpasswd_input(username, password_b64)?;
    if !program_exists("chpasswd") {
        return Err(CommandError::generic("cannot find 'passwd' program in PATH"));
    }
    let status = run_helper("chpasswd", &chpasswd_args(crypted), Some(&input))?;
    helper_result(status, "child process has failed to set user password")
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;

    #[test]
    fn linux_shutdown_modes() {
        assert_eq!(shutdown_flag(None).unwrap(), "-P");
        assert_eq!(shutdown_flag(Some("halt")).unwrap(), "-H");
        assert_eq!(shutdown_flag(Some("reboot")).unwrap(), "-r");
        assert_eq!(
            shutdown_flag(Some("sleep")).unwrap_err().desc,
            "mode is invalid (valid values are: halt|powerdown|reboot"
        );
        assert_eq!(shutdown_args("-r"), vec!["-r", "+0", "hypervisor initiated shutdown"]);
    }

    #[test]
    fn linux_suspend_choices() {
        assert_eq!(sysfs_state_word(SuspendMode::Ram, "freeze mem disk\n"), Some("mem"));
        assert_eq!(sysfs_state_word(SuspendMode::Disk, "freeze mem\n"), None);
        assert_eq!(sysfs_state_word(SuspendMode::Hybrid, "freeze mem disk\n"), None);
        assert_eq!(systemd_unit(SuspendMode::Hybrid), "hybrid-sleep");
        assert_eq!(pmutils_names(SuspendMode::Disk), ("--hibernate", "pm-hibernate"));
    }

    #[test]
    fn linux_set_time_checks() {
        assert_eq!(
            checked_time(1_700_000_000_123_456_789).unwrap(),
            (1_700_000_000, 123_456_789)
        );
        assert_eq!(checked_time(0).unwrap(), (0, 0));
        assert_eq!(checked_time(-1).unwrap_err().desc, "Invalid time");
        assert!(checked_time(3_155_760_000 * 1_000_000_000).is_err(), "2070 is out");
        assert!(checked_time(3_155_759_999 * 1_000_000_000).is_ok());
        assert_eq!((hwclock_arg(true), hwclock_arg(false)), ("-w", "-s"));
    }

    #[test]
    fn linux_chpasswd_input_and_args() {
        let line = chpasswd_input("alice", &STANDARD.encode("s3cret")).unwrap();
        assert_eq!(line, b"alice:s3cret\n");
        assert_eq!(
            chpasswd_input("alice", &STANDARD.encode("a\nb")).unwrap_err().desc,
            "forbidden characters in raw password"
        );
        assert_eq!(
            chpasswd_input("al:ice", &STANDARD.encode("x")).unwrap_err().desc,
            "forbidden characters in username"
        );
        assert_eq!(
            chpasswd_input("alice", "!!").unwrap_err().desc,
            "Base64 data contains invalid characters"
        );
        assert_eq!(chpasswd_args(true), vec!["-e"]);
        assert!(chpasswd_args(false).is_empty());
    }

    #[test]
    fn linux_helper_exit_checks() {
        use std::os::unix::process::ExitStatusExt;
        assert!(helper_result(ExitStatus::from_raw(0), "x").is_ok());
        assert_eq!(
            helper_result(ExitStatus::from_raw(1 << 8), "it failed")
                .unwrap_err()
                .desc,
            "it failed"
        );
        assert_eq!(
            helper_result(ExitStatus::from_raw(9), "x").unwrap_err().desc,
            "child process has terminated abnormally"
        );
        // The helper runner itself, on a harmless program.
        let status = run_helper("cat", &[], Some(b"data")).unwrap();
        assert!(status.success());
    }
}
