//! Clock, identity and session facts: get-time, osinfo, host name,
//! timezone, users and load.

use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use qga_types::runtime::CommandError;
use qga_types::{GuestHostName, GuestLoadAverage, GuestOsInfo, GuestTimezone, GuestUser};

use super::util::{command_failed, errno_error};

/// Nanoseconds since the epoch.
pub fn get_time() -> Result<i64, CommandError> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|_| command_failed("the system clock is before 1970"))?;
    i64::try_from(now.as_nanos()).map_err(|_| command_failed("the system clock is out of range"))
}

pub fn osinfo() -> Result<GuestOsInfo, CommandError> {
    let uts = nix::sys::utsname::uname().map_err(|e| errno_error("uname", &io::Error::from(e)))?;
    let text = ["/etc/os-release", "/usr/lib/os-release"]
        .iter()
        .find_map(|path| std::fs::read_to_string(path).ok())
        .unwrap_or_default();
    let mut release = parse_os_release(&text);
    let mut take = |key: &str| release.remove(key);
    Ok(GuestOsInfo {
        kernel_release: Some(uts.release().to_string_lossy().into_owned()),
        kernel_version: Some(uts.version().to_string_lossy().into_owned()),
        machine: Some(uts.machine().to_string_lossy().into_owned()),
        id: take("ID"),
        name: take("NAME"),
        pretty_name: take("PRETTY_NAME"),
        version: take("VERSION"),
        version_id: take("VERSION_ID"),
        variant: take("VARIANT"),
        variant_id: take("VARIANT_ID"),
    })
}

/// os-release(5): `KEY=value` lines whose values use shell quoting.
pub fn parse_os_release(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|line| {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                return None;
            }
            let (key, value) = line.split_once('=')?;
            Some((key.trim().to_string(), shell_unquote(value.trim())))
        })
        .collect()
}

/// Undoes POSIX shell quoting: '...' literally, "..." with backslash
/// escapes of `$`, `` ` ``, `"`, `\` and newline, and bare backslashes.
fn shell_unquote(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                for c in chars.by_ref() {
                    if c == '\'' {
                        break;
                    }
                    out.push(c);
                }
            }
            '"' => {
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => match chars.next() {
                            Some(next @ ('$' | '`' | '"' | '\\')) => out.push(next),
                            Some('\n') => {}
                            Some(other) => {
                                out.push('\\');
                                out.push(other);
                            }
                            None => out.push('\\'),
                        },
                        other => out.push(other),
                    }
                }
            }
            '\\' => {
                if let Some(next) = chars.next() {
                    out.push(next);
                }
            }
            other => out.push(other),
        }
    }
    out
}

pub fn host_name() -> Result<GuestHostName, CommandError> {
    let name = nix::unistd::gethostname().map_err(|e| errno_error("gethostname", &io::Error::from(e)))?;
    Ok(GuestHostName {
        host_name: name.to_string_lossy().into_owned(),
    })
}

/// The local zone's abbreviation and UTC offset in seconds, now.
pub fn timezone() -> Result<GuestTimezone, CommandError> {
    // localtime_r reads TZ and the zone file; tzset makes it notice a
    // changed /etc/localtime.
    extern "C" {
        fn tzset();
    }
    let now = unsafe { libc::time(std::ptr::null_mut()) };
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let ok = unsafe {
        tzset();
        !libc::localtime_r(&now, &mut tm).is_null()
    };
    if !ok {
        return Err(command_failed("Couldn't retrieve local timezone"));
    }
    let zone = (!tm.tm_zone.is_null())
        .then(|| unsafe { CStr::from_ptr(tm.tm_zone) }.to_string_lossy().into_owned())
        .filter(|z| !z.is_empty());
    Ok(GuestTimezone {
        zone,
        offset: tm.tm_gmtoff,
    })
}

/// The utmp API keeps one cursor per process.
static UTMP_LOCK: Mutex<()> = Mutex::new(());

/// The C library's default login-records file.
const UTMP_PATH: &str = "/var/run/utmp";

/// Users with a login session, each once, with the earliest login time.
pub fn users() -> Result<Vec<GuestUser>, CommandError> {
    users_from(Path::new(UTMP_PATH))
}

fn users_from(utmp: &Path) -> Result<Vec<GuestUser>, CommandError> {
    let _guard = UTMP_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let path = CString::new(utmp.as_os_str().as_bytes())
        .map_err(|_| CommandError::generic(format!("invalid utmp path '{}'", utmp.display())))?;
    let mut users: Vec<GuestUser> = Vec::new();
    // The file name stays the process's choice until changed again; every
    // caller sets it under the lock.
    unsafe {
        libc::utmpxname(path.as_ptr());
        libc::setutxent();
    }
    loop {
        let entry = unsafe { libc::getutxent() };
        let Some(entry) = (unsafe { entry.as_ref() }) else {
            break;
        };
        if entry.ut_type != libc::USER_PROCESS {
            continue;
        }
        let name_bytes: Vec<u8> = entry
            .ut_user
            .iter()
            .take_while(|&&c| c != 0)
            .map(|&c| c as u8)
            .collect();
        let name = String::from_utf8_lossy(&name_bytes).into_owned();
        let login_time = entry.ut_tv.tv_sec as f64 + entry.ut_tv.tv_usec as f64 / 1e6;
        match users.iter_mut().find(|u| u.user == name) {
            Some(user) => user.login_time = user.login_time.min(login_time),
            None => users.push(GuestUser {
                user: name,
                login_time,
                domain: None,
            }),
        }
    }
    unsafe { libc::endutxent() };
    Ok(users)
}

pub fn load() -> Result<GuestLoadAverage, CommandError> {
    let mut avg = [0f64; 3];
    if unsafe { libc::getloadavg(avg.as_mut_ptr(), 3) } < 0 {
        return Err(errno_error("cannot query load average", &io::Error::last_os_error()));
    }
    Ok(GuestLoadAverage {
        load1m: avg[0],
        load5m: avg[1],
        load15m: avg[2],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linux_get_time_is_now() {
        let t = get_time().unwrap();
        let wall = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as i64;
        assert!((wall - t).abs() < 5_000_000_000, "{t} vs {wall}");
    }

    #[test]
    fn linux_os_release_unquoting() {
        let text = "# comment\nNAME=\"Debian GNU/Linux\"\nID=debian\nVERSION='12 (x)'\n\nX=\"a\\\"b\\\\c\"\nY=a\\ b\n";
        let map = parse_os_release(text);
        assert_eq!(map["NAME"], "Debian GNU/Linux");
        assert_eq!(map["ID"], "debian");
        assert_eq!(map["VERSION"], "12 (x)");
        assert_eq!(map["X"], "a\"b\\c");
        assert_eq!(map["Y"], "a b");
        assert!(!map.contains_key("# comment"));
    }

    #[test]
    fn linux_osinfo_has_kernel_and_distribution() {
        let info = osinfo().unwrap();
        let uname = std::process::Command::new("uname").arg("-r").output().unwrap();
        assert_eq!(
            info.kernel_release.as_deref(),
            Some(String::from_utf8_lossy(&uname.stdout).trim())
        );
        assert!(!info.machine.unwrap().is_empty());
        if std::path::Path::new("/etc/os-release").exists() {
            assert!(info.id.is_some_and(|id| !id.is_empty()));
        }
    }

    #[test]
    fn linux_host_name_matches_kernel() {
        let name = host_name().unwrap().host_name;
        let kernel = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
        assert_eq!(name, kernel.trim());
    }

    #[test]
    fn linux_timezone_offset_is_sane() {
        let tz = timezone().unwrap();
        assert!(tz.offset.abs() <= 14 * 3600, "{tz:?}");
        assert!(tz.zone.is_some());
    }

    #[test]
    fn linux_users_are_unique() {
        let users = users().unwrap();
        let mut names: Vec<_> = users.iter().map(|u| u.user.clone()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), users.len());
        assert!(users.iter().all(|u| u.login_time >= 0.0 && u.domain.is_none()));
    }

    /// Writes login records the way the C library stores them.
    fn write_utmp(path: &Path, records: &[(libc::c_short, &str, i64, i64)]) {
        let mut bytes = Vec::new();
        for &(kind, user, sec, usec) in records {
            let mut entry: libc::utmpx = unsafe { std::mem::zeroed() };
            entry.ut_type = kind;
            for (dst, src) in entry.ut_user.iter_mut().zip(user.bytes()) {
                *dst = src as libc::c_char;
            }
            entry.ut_tv.tv_sec = sec as _;
            entry.ut_tv.tv_usec = usec as _;
            let raw = unsafe {
                std::slice::from_raw_parts(
                    (&entry as *const libc::utmpx).cast::<u8>(),
                    std::mem::size_of::<libc::utmpx>(),
                )
            };
            bytes.extend_from_slice(raw);
        }
        std::fs::write(path, bytes).unwrap();
    }

    #[test]
    fn linux_users_from_login_records() {
        let dir = tempfile::tempdir().unwrap();
        let utmp = dir.path().join("utmp");
        write_utmp(
            &utmp,
            &[
                (libc::BOOT_TIME, "reboot", 100, 0),
                (libc::USER_PROCESS, "alice", 2000, 500_000),
                (libc::USER_PROCESS, "bob", 1500, 0),
                (libc::USER_PROCESS, "alice", 1000, 250_000),
                (libc::DEAD_PROCESS, "carol", 50, 0),
            ],
        );
        let users = users_from(&utmp).unwrap();
        let summary: Vec<_> = users.iter().map(|u| (u.user.as_str(), u.login_time)).collect();
        assert_eq!(summary, vec![("alice", 1000.25), ("bob", 1500.0)]);
        assert!(users_from(&dir.path().join("missing")).unwrap().is_empty());
    }

    #[test]
    fn linux_load_matches_proc() {
        let load = load().unwrap();
        let text = std::fs::read_to_string("/proc/loadavg").unwrap();
        let proc15: f64 = text.split_whitespace().nth(2).unwrap().parse().unwrap();
        assert!(load.load1m >= 0.0 && load.load5m >= 0.0);
        assert!((load.load15m - proc15).abs() < 1.0, "{load:?} vs {text}");
    }
}
