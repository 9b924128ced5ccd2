//! Filesystem freeze, thaw and trim. The choices (which mounts, in which
//! order, which errors to skip, undoing a partial freeze, counting thaws)
//! live here over [`FsOps`]; the ioctls are a thin layer underneath so
//! tests run the logic on a fake and never freeze the test machine.

use std::collections::HashSet;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

use qga_types::runtime::CommandError;
use qga_types::{GuestFilesystemTrimResponse, GuestFilesystemTrimResult};

use super::fs::Mount;
use super::util::strerror;

/// A failed operation: opening the mount point, or the operation on it.
#[derive(Debug)]
pub struct FsError {
    pub opening: bool,
    pub err: io::Error,
}

impl FsError {
    #[cfg(test)]
    fn op(code: i32) -> FsError {
        FsError {
            opening: false,
            err: io::Error::from_raw_os_error(code),
        }
    }

    fn code(&self) -> Option<i32> {
        self.err.raw_os_error()
    }
}

/// The per-mount operations, each on a mount point.
pub trait FsOps {
    fn freeze(&self, dir: &str) -> Result<(), FsError>;
    fn thaw(&self, dir: &str) -> Result<(), FsError>;
    /// Returns (bytes trimmed, minimum extent the filesystem used).
    fn trim(&self, dir: &str, minimum: u64) -> Result<(u64, u64), FsError>;
}

/// The kernel's FIFREEZE, FITHAW and FITRIM on an open mount point.
pub struct Ioctls;

#[repr(C)]
struct FstrimRange {
    start: u64,
    len: u64,
    minlen: u64,
}

const FIFREEZE: u64 = nix::request_code_readwrite!(b'X', 119, std::mem::size_of::<libc::c_int>()) as u64;
const FITHAW: u64 = nix::request_code_readwrite!(b'X', 120, std::mem::size_of::<libc::c_int>()) as u64;
const FITRIM: u64 = nix::request_code_readwrite!(b'X', 121, std::mem::size_of::<FstrimRange>()) as u64;

fn ioctl_on(dir: &str, request: u64, arg: *mut libc::c_void) -> Result<(), FsError> {
    let file = File::open(dir).map_err(|err| FsError { opening: true, err })?;
    // SAFETY: `arg` points at what `request` expects for the lifetime of
    // the call (nothing for freeze and thaw, an FstrimRange for trim).
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), request as _, arg) };
    if rc == -1 {
        Err(FsError {
            opening: false,
            err: io::Error::last_os_error(),
        })
    } else {
        Ok(())
    }
}

impl FsOps for Ioctls {
    fn freeze(&self, dir: &str) -> Result<(), FsError> {
        ioctl_on(dir, FIFREEZE, std::ptr::null_mut())
    }

    fn thaw(&self, dir: &str) -> Result<(), FsError> {
        ioctl_on(dir, FITHAW, std::ptr::null_mut())
    }

    fn trim(&self, dir: &str, minimum: u64) -> Result<(u64, u64), FsError> {
        let mut range = FstrimRange {
            start: 0,
            len: u64::MAX,
            minlen: minimum,
        };
        ioctl_on(dir, FITRIM, (&mut range as *mut FstrimRange).cast())?;
        Ok((range.len, range.minlen))
    }
}

/// Each FIFREEZE needs its own FITHAW; a bound keeps a filesystem that
/// always accepts FITHAW from looping forever.
const MAX_THAWS_PER_MOUNT: usize = 1024;

/// Whether a freeze error only means "this one can't or needn't be
/// frozen": no freeze support, or already frozen through another mount.
fn skippable(e: &FsError) -> bool {
    !e.opening && matches!(e.code(), Some(libc::EOPNOTSUPP) | Some(libc::EBUSY))
}

/// The mount points to freeze, in freeze order: the most recent mount
/// first (a filesystem mounted on another freezes before it), limited to
/// `only` when given.
pub fn freeze_order(mounts: &[Mount], only: Option<&[String]>) -> Vec<String> {
    mounts
        .iter()
        .rev()
        .filter(|m| only.is_none_or(|only| only.contains(&m.dir)))
        .map(|m| m.dir.clone())
        .collect()
}

/// Freezes `dirs` in order. All or nothing: on the first real failure,
/// everything this call froze is thawed again and the error returned.
pub fn freeze_all(ops: &dyn FsOps, dirs: &[String]) -> Result<i64, CommandError> {
    let mut frozen: Vec<&str> = Vec::new();
    for dir in dirs {
        match ops.freeze(dir) {
            Ok(()) => frozen.push(dir),
            Err(e) if skippable(&e) => {}
            Err(e) => {
                for done in frozen.iter().rev() {
                    let _ = ops.thaw(done);
                }
                let what = if e.opening {
                    "failed to open"
                } else {
                    "failed to freeze"
                };
                return Err(CommandError::generic(format!("{what} {dir}: {}", strerror(&e.err))));
            }
        }
    }
    Ok(frozen.len() as i64)
}

/// Thaws every mount until the kernel says it is not frozen (EINVAL), so
/// freezes by other processes are undone too. Counts the mounts that
/// were frozen.
pub fn thaw_all(ops: &dyn FsOps, dirs: &[String]) -> i64 {
    let mut thawed = 0;
    for dir in dirs {
        let mut any = false;
        for _ in 0..MAX_THAWS_PER_MOUNT {
            if ops.thaw(dir).is_err() {
                break;
            }
            any = true;
        }
        thawed += i64::from(any);
    }
    thawed
}

/// FITRIM on each mount, one result per path (newest first, as qemu-ga
/// lists them), errors reported per path rather than failing the call.
pub fn trim_all(ops: &dyn FsOps, dirs: &[String], minimum: Option<i64>) -> GuestFilesystemTrimResponse {
    let minimum = minimum.unwrap_or(0).max(0) as u64;
    let mut paths: Vec<GuestFilesystemTrimResult> = dirs
        .iter()
        .map(|dir| {
            let mut result = GuestFilesystemTrimResult {
                path: dir.clone(),
                trimmed: None,
                minimum: None,
                error: None,
            };
            match ops.trim(dir, minimum) {
                Ok((trimmed, minlen)) => {
                    result.trimmed = Some(trimmed as i64);
                    result.minimum = Some(minlen as i64);
                }
                Err(e) if e.opening => result.error = Some(format!("failed to open: {}", strerror(&e.err))),
                Err(e) => {
                    result.error = Some(match e.code() {
                        Some(libc::ENOTTY) | Some(libc::EOPNOTSUPP) => "trim not supported".to_string(),
                        _ => format!("failed to trim: {}", strerror(&e.err)),
                    })
                }
            }
            result
        })
        .collect();
    paths.reverse();
    GuestFilesystemTrimResponse { paths }
}

/// A mount may appear twice (bind mounts); act once per directory.
pub fn unique_dirs(mounts: &[Mount]) -> Vec<String> {
    let mut seen = HashSet::new();
    mounts
        .iter()
        .filter(|m| seen.insert(m.dir.as_str()))
        .map(|m| m.dir.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::sync::Mutex;

    /// Records calls; freeze counts nest like the kernel's.
    #[derive(Default)]
    struct FakeFs {
        calls: Mutex<Vec<String>>,
        depth: Mutex<HashMap<String, u32>>,
        errors: HashMap<String, i32>,
    }

    impl FsOps for FakeFs {
        fn freeze(&self, dir: &str) -> Result<(), FsError> {
            self.calls.lock().unwrap().push(format!("freeze {dir}"));
            if let Some(&code) = self.errors.get(dir) {
                return Err(FsError {
                    opening: code == libc::ENOENT,
                    err: io::Error::from_raw_os_error(code),
                });
            }
            *self.depth.lock().unwrap().entry(dir.into()).or_default() += 1;
            Ok(())
        }
        fn thaw(&self, dir: &str) -> Result<(), FsError> {
            self.calls.lock().unwrap().push(format!("thaw {dir}"));
            let mut depth = self.depth.lock().unwrap();
            match depth.get_mut(dir) {
                Some(d) if *d > 0 => {
                    *d -= 1;
                    Ok(())
                }
                _ => Err(FsError::op(libc::EINVAL)),
            }
        }
        fn trim(&self, dir: &str, minimum: u64) -> Result<(u64, u64), FsError> {
            match self.errors.get(dir) {
                Some(&code) => Err(FsError::op(code)),
                None => Ok((4096, minimum.max(512))),
            }
        }
    }

    fn mount(dir: &str) -> Mount {
        Mount {
            dir: dir.into(),
            fstype: "ext4".into(),
            source: "/dev/x".into(),
            major: 8,
            minor: 1,
        }
    }

    fn dirs(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn linux_freeze_order_is_reverse_mount_order() {
        let mounts = [mount("/"), mount("/boot"), mount("/data")];
        assert_eq!(freeze_order(&mounts, None), dirs(&["/data", "/boot", "/"]));
        assert_eq!(
            freeze_order(&mounts, Some(&dirs(&["/", "/data", "/nope"]))),
            dirs(&["/data", "/"])
        );
        assert_eq!(unique_dirs(&[mount("/"), mount("/a"), mount("/")]), dirs(&["/", "/a"]));
    }

    #[test]
    fn linux_freeze_skips_unsupported_and_busy() {
        let fs = FakeFs {
            errors: HashMap::from([("/proc-like".into(), libc::EOPNOTSUPP), ("/bind".into(), libc::EBUSY)]),
            ..FakeFs::default()
        };
        assert_eq!(
            freeze_all(&fs, &dirs(&["/data", "/proc-like", "/bind", "/"])).unwrap(),
            2
        );
        assert_eq!(thaw_all(&fs, &dirs(&["/", "/data", "/proc-like"])), 2);
    }

    #[test]
    fn linux_freeze_is_all_or_nothing() {
        let fs = FakeFs {
            errors: HashMap::from([("/broken".into(), libc::EIO)]),
            ..FakeFs::default()
        };
        let err = freeze_all(&fs, &dirs(&["/data", "/home", "/broken", "/"])).unwrap_err();
        assert_eq!(err.desc, "failed to freeze /broken: Input/output error");
        let calls = fs.calls.lock().unwrap().clone();
        assert_eq!(
            calls,
            vec![
                "freeze /data",
                "freeze /home",
                "freeze /broken",
                "thaw /home",
                "thaw /data"
            ],
            "what was frozen is thawed, newest first, and '/' is never frozen"
        );
        assert!(fs.depth.lock().unwrap().values().all(|&d| d == 0));
    }

    #[test]
    fn linux_thaw_undoes_nested_and_foreign_freezes() {
        let fs = FakeFs::default();
        // Frozen twice (say, by another tool and by us): both undone, counted once.
        fs.depth.lock().unwrap().insert("/data".into(), 2);
        assert_eq!(thaw_all(&fs, &dirs(&["/", "/data"])), 1);
        assert_eq!(fs.depth.lock().unwrap()["/data"], 0);
        assert_eq!(thaw_all(&fs, &dirs(&["/", "/data"])), 0, "thaw of thawed is a no-op");
    }

    #[test]
    fn linux_freeze_of_a_vanished_mount_point_fails_cleanly() {
        let fs = FakeFs {
            errors: HashMap::from([("/gone".into(), libc::ENOENT)]),
            ..FakeFs::default()
        };
        let err = freeze_all(&fs, &dirs(&["/data", "/gone"])).unwrap_err();
        assert_eq!(err.desc, "failed to open /gone: No such file or directory");
        assert_eq!(fs.depth.lock().unwrap()["/data"], 0);
    }

    #[test]
    fn linux_trim_reports_per_path() {
        let fs = FakeFs {
            errors: HashMap::from([("/cdrom".into(), libc::ENOTTY), ("/bad".into(), libc::EIO)]),
            ..FakeFs::default()
        };
        let resp = trim_all(&fs, &dirs(&["/", "/cdrom", "/bad"]), Some(1024));
        let summary: Vec<_> = resp
            .paths
            .iter()
            .map(|r| (r.path.as_str(), r.trimmed, r.minimum, r.error.as_deref()))
            .collect();
        assert_eq!(
            summary,
            vec![
                ("/bad", None, None, Some("failed to trim: Input/output error")),
                ("/cdrom", None, None, Some("trim not supported")),
                ("/", Some(4096), Some(1024), None),
            ]
        );
    }

    #[test]
    fn linux_ioctl_numbers_match_the_kernel() {
        assert_eq!(FIFREEZE, 0xC004_5877);
        assert_eq!(FITHAW, 0xC004_5878);
        assert_eq!(FITRIM, 0xC018_5879);
    }
}
