//! guest-ssh-*-authorized-keys: a user's ~/.ssh/authorized_keys, written
//! atomically, owned by the user, mode 0600 in a 0700 ~/.ssh.

use std::fs;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::Arc;

use nix::fcntl::{openat, renameat, OFlag};
use nix::sys::stat::{fchmod, mkdirat, Mode};
use nix::unistd::{unlinkat, UnlinkatFlags};
use qga_types::runtime::CommandError;
use qga_types::GuestAuthorizedKeys;

use super::util::strerror;

/// What the agent needs to know about a user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserEntry {
    pub home: PathBuf,
    pub uid: u32,
    pub gid: u32,
}

/// Finds a user by name: the password database in the agent, a temporary
/// home in tests. `Ok(None)` when there is no such user.
pub type UserLookup = Arc<dyn Fn(&str) -> io::Result<Option<UserEntry>> + Send + Sync>;

/// The system's password database (getpwnam_r).
pub fn system_user_lookup() -> UserLookup {
    Arc::new(|name: &str| match nix::unistd::User::from_name(name) {
        Ok(Some(user)) => Ok(Some(UserEntry {
            home: user.dir,
            uid: user.uid.as_raw(),
            gid: user.gid.as_raw(),
        })),
        Ok(None) => Ok(None),
        Err(e) => Err(io::Error::from(e)),
    })
}

const SSH_DIR: &str = ".ssh";
const KEYS_FILE: &str = "authorized_keys";
const TMP_FILE: &str = ".authorized_keys.qga-tmp";
/// Far beyond any real key list: the user owns the file, and a sparse
/// terabyte there must not exhaust the agent's memory.
const MAX_KEYS_FILE: u64 = 16 * 1024 * 1024;

pub struct SshKeys {
    lookup: UserLookup,
}

struct KeyFile {
    user: UserEntry,
    dir: PathBuf,
    path: PathBuf,
}

fn check_keys(keys: &[String]) -> Result<(), CommandError> {
    match keys
        .iter()
        .find(|k| k.is_empty() || k.starts_with('#') || k.contains('\n'))
    {
        Some(bad) => Err(CommandError::generic(format!("invalid OpenSSH public key: '{bad}'"))),
        None => Ok(()),
    }
}

/// The lines of an authorized_keys file, without the empty remainder
/// after the final newline.
fn lines(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = text.split('\n').map(str::to_string).collect();
    if lines.last().is_some_and(String::is_empty) {
        lines.pop();
    }
    lines
}

impl SshKeys {
    pub fn new(lookup: UserLookup) -> SshKeys {
        SshKeys { lookup }
    }

    fn key_file(&self, username: &str) -> Result<KeyFile, CommandError> {
        let user = match (self.lookup)(username) {
            Ok(Some(user)) => user,
            // getpwnam leaves errno 0 for an unknown user; qemu-ga prints it.
            Ok(None) => {
                return Err(CommandError::generic(format!(
                    "failed to lookup user '{username}': {}",
                    strerror(&io::Error::from_raw_os_error(0))
                )))
            }
            Err(e) => {
                return Err(CommandError::generic(format!(
                    "failed to lookup user '{username}': {}",
                    strerror(&e)
                )))
            }
        };
        let dir = user.home.join(SSH_DIR);
        let path = dir.join(KEYS_FILE);
        Ok(KeyFile { user, dir, path })
    }

    pub fn get(&self, username: &str) -> Result<GuestAuthorizedKeys, CommandError> {
        let file = self.key_file(username)?;
        let keys = read_keys(&file).map_err(|e| read_error(&file, &e))?;
        Ok(GuestAuthorizedKeys {
            keys: keys
                .iter()
                .map(|k| k.trim())
                .filter(|k| !k.is_empty() && !k.starts_with('#'))
                .map(str::to_string)
                .collect(),
        })
    }

    pub fn add(&self, username: &str, keys: &[String], reset: bool) -> Result<(), CommandError> {
        check_keys(keys)?;
        let file = self.key_file(username)?;
        // Without reset, a file that can't be read is an error: replacing
        // it would drop the keys it holds.
        let mut lines = if reset {
            Vec::new()
        } else {
            existing_keys(&file)?.unwrap_or_default()
        };
        let dir = open_ssh_dir(&file)?;
        for key in keys {
            if !lines.contains(key) {
                lines.push(key.clone());
            }
        }
        write_keys(&file, &dir, &lines)
    }

    pub fn remove(&self, username: &str, keys: &[String]) -> Result<(), CommandError> {
        check_keys(keys)?;
        let file = self.key_file(username)?;
        // Nothing to remove from a file that does not exist.
        let Some(lines) = existing_keys(&file)? else {
            return Ok(());
        };
        let kept: Vec<String> = lines.into_iter().filter(|l| !keys.contains(l)).collect();
        write_keys(&file, &open_ssh_dir(&file)?, &kept)
    }
}

/// The user owns their home, so `.ssh` and everything in it may be a
/// symlink planted to make the agent (root) read or replace another
/// file: every step below home is opened without following symlinks.
fn open_nofollow(dir: impl AsFd, name: &str, flags: OFlag, mode: Mode) -> io::Result<OwnedFd> {
    Ok(openat(dir, name, flags | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC, mode)?)
}

fn open_dir(dir: impl AsFd, name: &str) -> io::Result<OwnedFd> {
    open_nofollow(dir, name, OFlag::O_DIRECTORY | OFlag::O_RDONLY, Mode::empty())
}

fn open_home(file: &KeyFile) -> io::Result<OwnedFd> {
    Ok(nix::fcntl::open(
        &file.user.home,
        OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?)
}

fn read_keys(file: &KeyFile) -> io::Result<Vec<String>> {
    let dir = open_dir(open_home(file)?, SSH_DIR)?;
    let fd = open_nofollow(dir, KEYS_FILE, OFlag::O_RDONLY, Mode::empty())?;
    let mut text = String::new();
    fs::File::from(fd).take(MAX_KEYS_FILE + 1).read_to_string(&mut text)?;
    if text.len() as u64 > MAX_KEYS_FILE {
        return Err(io::Error::from_raw_os_error(libc::EFBIG));
    }
    Ok(lines(&text))
}

fn read_error(file: &KeyFile, e: &io::Error) -> CommandError {
    let path = file.path.display();
    CommandError::generic(format!(
        "failed to read '{path}': Failed to open file “{path}”: {}",
        strerror(e)
    ))
}

/// The file's lines, `None` when it does not exist.
fn existing_keys(file: &KeyFile) -> Result<Option<Vec<String>>, CommandError> {
    match read_keys(file) {
        Ok(lines) => Ok(Some(lines)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(read_error(file, &e)),
    }
}

/// Opens `~/.ssh`, creating it owned by the user, mode 0700, when missing.
fn open_ssh_dir(file: &KeyFile) -> Result<OwnedFd, CommandError> {
    let dir = &file.dir;
    let fail = |what: &str, e: io::Error| {
        CommandError::generic(format!(
            "failed to {what} of directory '{}': {}",
            dir.display(),
            strerror(&e)
        ))
    };
    let create_failed = |e: io::Error| {
        CommandError::generic(format!(
            "failed to create directory '{}': {}",
            dir.display(),
            strerror(&e)
        ))
    };
    let home = open_home(file).map_err(create_failed)?;
    match open_dir(&home, SSH_DIR) {
        Ok(fd) => return Ok(fd),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(create_failed(e)),
    }
    mkdirat(&home, SSH_DIR, Mode::S_IRWXU).map_err(|e| create_failed(e.into()))?;
    let fd = open_dir(&home, SSH_DIR).map_err(create_failed)?;
    std::os::unix::fs::fchown(&fd, Some(file.user.uid), Some(file.user.gid)).map_err(|e| fail("set ownership", e))?;
    fchmod(&fd, Mode::S_IRWXU).map_err(|e| fail("set permissions", e.into()))?;
    Ok(fd)
}

/// Replaces the file in one rename so sshd never sees half of it.
fn write_keys(file: &KeyFile, dir: &OwnedFd, lines: &[String]) -> Result<(), CommandError> {
    let path = &file.path;
    let mut text = lines.join("\n");
    if !text.is_empty() {
        text.push('\n');
    }
    // A leftover (or planted) temporary is removed, never written through.
    let _ = unlinkat(dir, TMP_FILE, UnlinkatFlags::NoRemoveDir);
    let create = || -> io::Result<fs::File> {
        let flags = OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL;
        let mut out = fs::File::from(open_nofollow(dir, TMP_FILE, flags, Mode::S_IRUSR | Mode::S_IWUSR)?);
        out.write_all(text.as_bytes())?;
        out.sync_all()?;
        Ok(out)
    };
    let out = create().map_err(|e| {
        let _ = unlinkat(dir, TMP_FILE, UnlinkatFlags::NoRemoveDir);
        CommandError::generic(format!("failed to write to '{}': {}", path.display(), strerror(&e)))
    })?;
    let finish = || -> Result<(), CommandError> {
        std::os::unix::fs::fchown(&out, Some(file.user.uid), Some(file.user.gid)).map_err(|e| {
            CommandError::generic(format!(
                "failed to set ownership of file '{}': {}",
                path.display(),
                strerror(&e)
            ))
        })?;
        out.set_permissions(fs::Permissions::from_mode(0o600)).map_err(|e| {
            CommandError::generic(format!(
                "failed to set permissions of '{}': {}",
                path.display(),
                strerror(&e)
            ))
        })?;
        renameat(dir, TMP_FILE, dir, KEYS_FILE).map_err(|e| {
            CommandError::generic(format!(
                "failed to write to '{}': {}",
                path.display(),
                strerror(&e.into())
            ))
        })
    };
    finish().inspect_err(|_| {
        let _ = unlinkat(dir, TMP_FILE, UnlinkatFlags::NoRemoveDir);
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;
    use std::path::Path;

    fn temp_users(home: &Path) -> SshKeys {
        let home = home.to_path_buf();
        let uid = nix::unistd::getuid().as_raw();
        let gid = nix::unistd::getgid().as_raw();
        SshKeys::new(Arc::new(move |name: &str| {
            Ok((name == "alice").then(|| UserEntry {
                home: home.clone(),
                uid,
                gid,
            }))
        }))
    }

    fn keys(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn linux_ssh_keys_on_a_temp_home() {
        let home = tempfile::tempdir().unwrap();
        let ssh = temp_users(home.path());
        let path = home.path().join(".ssh/authorized_keys");
        let err = ssh.get("alice").unwrap_err().desc;
        assert_eq!(
            err,
            format!(
                "failed to read '{0}': Failed to open file “{0}”: No such file or directory",
                path.display()
            )
        );
        ssh.remove("alice", &keys(&["ssh-ed25519 AAAA a@b"])).unwrap();
        assert!(!path.exists(), "removing from nothing creates nothing");

        ssh.add("alice", &keys(&["ssh-rsa AAAA1 one", "ssh-ed25519 AAAA2 two"]), false)
            .unwrap();
        let dir_mode = fs::metadata(home.path().join(".ssh")).unwrap().mode() & 0o777;
        let file_meta = fs::metadata(&path).unwrap();
        assert_eq!((dir_mode, file_meta.mode() & 0o777), (0o700, 0o600));
        assert_eq!(file_meta.uid(), nix::unistd::getuid().as_raw());
        // Existing keys are kept once; comments survive edits but are not listed.
        fs::write(&path, "# managed\nssh-rsa AAAA1 one\n\nssh-ed25519 AAAA2 two\n").unwrap();
        ssh.add("alice", &keys(&["ssh-rsa AAAA1 one", "ssh-ed25519 AAAA3 three"]), false)
            .unwrap();
        assert_eq!(
            ssh.get("alice").unwrap().keys,
            keys(&["ssh-rsa AAAA1 one", "ssh-ed25519 AAAA2 two", "ssh-ed25519 AAAA3 three"])
        );
        ssh.remove("alice", &keys(&["ssh-ed25519 AAAA2 two", "ssh-rsa NOT-THERE"]))
            .unwrap();
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            "# managed\nssh-rsa AAAA1 one\n\nssh-ed25519 AAAA3 three\n"
        );
        ssh.add("alice", &keys(&["ssh-ed25519 AAAA4 four"]), true).unwrap();
        assert_eq!(ssh.get("alice").unwrap().keys, keys(&["ssh-ed25519 AAAA4 four"]));
        assert!(!home.path().join(".ssh/.authorized_keys.qga-tmp").exists());
    }

    #[test]
    fn linux_ssh_rejects_bad_keys_and_users() {
        let home = tempfile::tempdir().unwrap();
        let ssh = temp_users(home.path());
        assert_eq!(
            ssh.add("alice", &keys(&["# comment"]), false).unwrap_err().desc,
            "invalid OpenSSH public key: '# comment'"
        );
        assert!(ssh.add("alice", &keys(&["a\nb"]), false).is_err());
        assert!(ssh.remove("alice", &keys(&[""])).is_err());
        assert_eq!(ssh.get("bob").unwrap_err().desc, "failed to lookup user 'bob': Success");
        assert!(!home.path().join(".ssh").exists(), "nothing written on errors");
    }

    #[test]
    fn linux_ssh_never_follows_symlinks_below_home() {
        use std::os::unix::fs::symlink;
        let home = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        let victim = elsewhere.path().join("victim");
        fs::write(&victim, "secret\n").unwrap();
        let ssh = temp_users(home.path());
        let key = keys(&["ssh-ed25519 AAAA k"]);

        // ~/.ssh pointing elsewhere: refused, nothing written there.
        symlink(elsewhere.path(), home.path().join(".ssh")).unwrap();
        let err = ssh.add("alice", &key, false).unwrap_err().desc;
        let path = home.path().join(".ssh/authorized_keys");
        assert_eq!(
            err,
            format!(
                "failed to read '{0}': Failed to open file “{0}”: Not a directory",
                path.display()
            )
        );
        let err = ssh.add("alice", &key, true).unwrap_err().desc;
        let dir = home.path().join(".ssh");
        assert_eq!(
            err,
            format!("failed to create directory '{}': Not a directory", dir.display())
        );
        assert!(ssh.get("alice").is_err());
        assert!(!elsewhere.path().join("authorized_keys").exists());
        fs::remove_file(home.path().join(".ssh")).unwrap();

        // authorized_keys and the temporary planted as symlinks: neither
        // is read through nor written through. Adding to an unreadable
        // file fails (its keys would be lost); reset replaces the link.
        fs::create_dir(home.path().join(".ssh")).unwrap();
        symlink(&victim, &path).unwrap();
        symlink(&victim, home.path().join(".ssh/.authorized_keys.qga-tmp")).unwrap();
        let loop_error = format!(
            "failed to read '{0}': Failed to open file “{0}”: Too many levels of symbolic links",
            path.display()
        );
        assert_eq!(ssh.get("alice").unwrap_err().desc, loop_error);
        assert_eq!(ssh.add("alice", &key, false).unwrap_err().desc, loop_error);
        assert_eq!(ssh.remove("alice", &key).unwrap_err().desc, loop_error);
        assert!(fs::symlink_metadata(&path).unwrap().file_type().is_symlink());
        ssh.add("alice", &key, true).unwrap();
        assert_eq!(fs::read_to_string(&victim).unwrap(), "secret\n");
        assert!(!fs::symlink_metadata(&path).unwrap().file_type().is_symlink());
        assert_eq!(fs::read_to_string(&path).unwrap(), "ssh-ed25519 AAAA k\n");
    }

    #[test]
    fn linux_ssh_refuses_a_huge_key_file() {
        let home = tempfile::tempdir().unwrap();
        let ssh = temp_users(home.path());
        fs::create_dir(home.path().join(".ssh")).unwrap();
        let path = home.path().join(".ssh/authorized_keys");
        let file = fs::File::create(&path).unwrap();
        file.set_len(MAX_KEYS_FILE + 1).unwrap();
        let too_large = format!(
            "failed to read '{0}': Failed to open file “{0}”: File too large",
            path.display()
        );
        assert_eq!(ssh.get("alice").unwrap_err().desc, too_large);
        assert_eq!(
            ssh.add("alice", &keys(&["ssh-ed25519 AAAA k"]), false)
                .unwrap_err()
                .desc,
            too_large
        );
        assert_eq!(fs::metadata(&path).unwrap().len(), MAX_KEYS_FILE + 1, "left as it was");
        file.set_len(MAX_KEYS_FILE).unwrap();
        assert!(ssh.get("alice").is_ok(), "a file of exactly the limit is read");
    }

    #[test]
    fn linux_ssh_system_lookup_finds_root() {
        let root = system_user_lookup()("root").unwrap().expect("root exists");
        assert_eq!(root.uid, 0);
        assert!(system_user_lookup()("no-such-user-for-qga-tests").unwrap().is_none());
    }
}
