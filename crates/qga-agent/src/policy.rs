//! Which commands the agent serves: the schema's conditions evaluated for
//! Linux, the administrator's block and allow lists, and the short list of
//! commands that stay enabled while filesystems are frozen.

use std::collections::BTreeSet;

use qga_types::runtime::CommandInfo;
use qga_types::COMMANDS;

/// Commands that stay enabled while filesystems are frozen: none of them
/// touches a disk, so none can hang on a frozen filesystem.
pub const ENABLED_WHILE_FROZEN: [&str; 6] = [
    "guest-ping",
    "guest-info",
    "guest-sync",
    "guest-sync-delimited",
    "guest-fsfreeze-status",
    "guest-fsfreeze-thaw",
];

/// Configuration symbols of the schema's `if` conditions that hold for a
/// Linux guest.
const LINUX_SYMBOLS: [&str; 8] = [
    "CONFIG_LINUX",
    "CONFIG_POSIX",
    "CONFIG_FSFREEZE",
    "CONFIG_FSTRIM",
    "HAVE_GETIFADDRS",
    "CONFIG_LIBUDEV",
    "HAVE_UTMPX",
    "CONFIG_GETLOADAVG",
];

/// True when the schema offers `info` on a Linux guest. Commands for other
/// guests stay known (listed as disabled by `guest-info`, answered with
/// "has been disabled"), as qemu-ga 7.2 does for `guest-get-devices`.
pub fn offered_on_linux(info: &CommandInfo) -> bool {
    info.condition
        .is_none_or(|c| c.eval(&|symbol| LINUX_SYMBOLS.contains(&symbol)))
}

/// The administrator's choice: `-b/--block-rpcs` and `-a/--allow-rpcs`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RpcPolicy {
    blocked: BTreeSet<String>,
    /// `None`: every command not blocked is allowed.
    allowed: Option<BTreeSet<String>>,
}

impl RpcPolicy {
    /// An empty `allowed` list allows everything; the block list wins over
    /// the allow list.
    pub fn new<S: AsRef<str>>(blocked: &[S], allowed: &[S]) -> RpcPolicy {
        let set = |names: &[S]| names.iter().map(|n| n.as_ref().to_string()).collect::<BTreeSet<_>>();
        RpcPolicy {
            blocked: set(blocked),
            allowed: (!allowed.is_empty()).then(|| set(allowed)),
        }
    }

    pub fn admits(&self, command: &str) -> bool {
        !self.blocked.contains(command) && self.allowed.as_ref().is_none_or(|a| a.contains(command))
    }

    pub fn blocked(&self) -> impl Iterator<Item = &str> {
        self.blocked.iter().map(String::as_str)
    }

    pub fn allowed(&self) -> impl Iterator<Item = &str> {
        self.allowed.iter().flatten().map(String::as_str)
    }

    /// Names in either list that are not commands of the schema (most
    /// likely typing mistakes).
    pub fn unknown_names(&self) -> Vec<&str> {
        self.blocked()
            .chain(self.allowed())
            .filter(|name| !COMMANDS.iter().any(|c| c.name == *name))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_list_wins_over_allow_list() {
        let policy = RpcPolicy::new(&["guest-ping"], &["guest-ping", "guest-info"]);
        assert!(!policy.admits("guest-ping"));
        assert!(policy.admits("guest-info"));
        assert!(!policy.admits("guest-sync"));
        let open = RpcPolicy::new::<&str>(&[], &[]);
        assert!(open.admits("guest-sync"));
    }

    #[test]
    fn unknown_names_are_reported() {
        let policy = RpcPolicy::new(&["guest-pnig"], &["guest-info"]);
        assert_eq!(policy.unknown_names(), vec!["guest-pnig"]);
    }

    #[test]
    fn only_windows_commands_are_not_offered_on_linux() {
        let missing: Vec<_> = COMMANDS
            .iter()
            .filter(|c| !offered_on_linux(c))
            .map(|c| c.name)
            .collect();
        assert_eq!(missing, vec!["guest-get-devices"]);
    }
}
