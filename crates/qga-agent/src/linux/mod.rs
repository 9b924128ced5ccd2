//! Everything that reads or changes the Linux system.
//!
//! [`Linux`] serves the commands that only read the system, plus the
//! stateful file and exec commands, by implementing the generated server
//! trait (methods it does not override answer "not supported").
//! [`LinuxSystem`] is the real implementation of the [`System`] seam for
//! commands that change the machine.

mod exec;
mod files;
mod freeze;
mod fs;
mod hw;
mod machine;
mod net;
mod osinfo;
mod ssh;
mod stats;
mod util;

use std::path::Path;

use qga_types::runtime::CommandError;
use qga_types::server::Server;
use qga_types::{
    GuestAuthorizedKeys, GuestCpuStats, GuestDiskInfo, GuestDiskStatsInfo, GuestExec, GuestExecArgs, GuestExecStatus,
    GuestExecStatusArgs, GuestFileCloseArgs, GuestFileFlushArgs, GuestFileOpenArgs, GuestFileRead, GuestFileReadArgs,
    GuestFileSeek, GuestFileSeekArgs, GuestFileWrite, GuestFileWriteArgs, GuestFilesystemInfo,
    GuestFilesystemTrimResponse, GuestFstrimArgs, GuestHostName, GuestLoadAverage, GuestLogicalProcessor,
    GuestMemoryBlock, GuestMemoryBlockInfo, GuestMemoryBlockResponse, GuestNetworkInterface, GuestNetworkRoute,
    GuestOsInfo, GuestSetTimeArgs, GuestSetUserPasswordArgs, GuestSetVcpusArgs, GuestShutdownArgs,
    GuestSshAddAuthorizedKeysArgs, GuestSshGetAuthorizedKeysArgs, GuestSshRemoveAuthorizedKeysArgs, GuestTimezone,
    GuestUser,
};

use crate::system::{SuspendMode, System};

pub use ssh::{system_user_lookup, UserEntry, UserLookup};

/// The read-only and stateful commands, served from the live system.
pub struct Linux {
    sys: hw::SysDevices,
    files: files::FileTable,
    processes: exec::ProcessTable,
    ssh: ssh::SshKeys,
}

impl Linux {
    /// `statedir` holds state that must survive an agent restart (open
    /// file handles).
    pub fn new(statedir: &Path) -> Linux {
        Linux {
            sys: hw::SysDevices::default(),
            files: files::FileTable::new(statedir),
            processes: exec::ProcessTable::default(),
            ssh: ssh::SshKeys::new(system_user_lookup()),
        }
    }

    /// Replaces the password-database lookup behind the SSH key commands
    /// (tests point users at temporary homes).
    pub fn with_user_lookup(mut self, lookup: UserLookup) -> Linux {
        self.ssh = ssh::SshKeys::new(lookup);
        self
    }

    /// Kills and forgets a process started by a `guest-exec` whose answer
    /// never reached its client (see [`exec::ProcessTable::abandon`]).
    pub fn abandon_exec(&self, pid: i64) {
        self.processes.abandon(pid);
    }
}

impl Server for Linux {
    fn guest_get_time(&self) -> Result<i64, CommandError> {
        osinfo::get_time()
    }

    fn guest_get_osinfo(&self) -> Result<GuestOsInfo, CommandError> {
        osinfo::osinfo()
    }

    fn guest_get_host_name(&self) -> Result<GuestHostName, CommandError> {
        osinfo::host_name()
    }

    fn guest_get_timezone(&self) -> Result<GuestTimezone, CommandError> {
        osinfo::timezone()
    }

    fn guest_get_users(&self) -> Result<Vec<GuestUser>, CommandError> {
        osinfo::users()
    }

    fn guest_get_load(&self) -> Result<GuestLoadAverage, CommandError> {
        osinfo::load()
    }

    fn guest_network_get_interfaces(&self) -> Result<Vec<GuestNetworkInterface>, CommandError> {
        net::interfaces()
    }

    fn guest_network_get_route(&self) -> Result<Vec<GuestNetworkRoute>, CommandError> {
        net::routes()
    }

    fn guest_get_vcpus(&self) -> Result<Vec<GuestLogicalProcessor>, CommandError> {
        self.sys.vcpus()
    }

    fn guest_get_memory_blocks(&self) -> Result<Vec<GuestMemoryBlock>, CommandError> {
        self.sys.memory_blocks()
    }

    fn guest_get_memory_block_info(&self) -> Result<GuestMemoryBlockInfo, CommandError> {
        self.sys.memory_block_info()
    }

    fn guest_get_fsinfo(&self) -> Result<Vec<GuestFilesystemInfo>, CommandError> {
        fs::fsinfo()
    }

    fn guest_get_disks(&self) -> Result<Vec<GuestDiskInfo>, CommandError> {
        fs::disks()
    }

    fn guest_get_cpustats(&self) -> Result<Vec<GuestCpuStats>, CommandError> {
        stats::cpustats()
    }

    fn guest_file_open(&self, args: GuestFileOpenArgs) -> Result<i64, CommandError> {
        self.files.open(&args.path, args.mode.as_deref())
    }

    fn guest_file_close(&self, args: GuestFileCloseArgs) -> Result<(), CommandError> {
        self.files.close(args.handle)
    }

    fn guest_file_read(&self, args: GuestFileReadArgs) -> Result<GuestFileRead, CommandError> {
        self.files.read(&args)
    }

    fn guest_file_write(&self, args: GuestFileWriteArgs) -> Result<GuestFileWrite, CommandError> {
        self.files.write(&args)
    }

    fn guest_file_seek(&self, args: GuestFileSeekArgs) -> Result<GuestFileSeek, CommandError> {
        self.files.seek(&args)
    }

    fn guest_file_flush(&self, args: GuestFileFlushArgs) -> Result<(), CommandError> {
        self.files.flush(args.handle)
    }

    fn guest_exec(&self, args: GuestExecArgs) -> Result<GuestExec, CommandError> {
        self.processes.exec(&args)
    }

    fn guest_exec_status(&self, args: GuestExecStatusArgs) -> Result<GuestExecStatus, CommandError> {
        self.processes.status(args.pid)
    }

    fn guest_ssh_get_authorized_keys(
        &self,
        args: GuestSshGetAuthorizedKeysArgs,
    ) -> Result<GuestAuthorizedKeys, CommandError> {
        self.ssh.get(&args.username)
    }

    fn guest_ssh_add_authorized_keys(&self, args: GuestSshAddAuthorizedKeysArgs) -> Result<(), CommandError> {
        self.ssh.add(&args.username, &args.keys, args.reset.unwrap_or(false))
    }

    fn guest_ssh_remove_authorized_keys(&self, args: GuestSshRemoveAuthorizedKeysArgs) -> Result<(), CommandError> {
        self.ssh.remove(&args.username, &args.keys)
    }

    fn guest_get_diskstats(&self) -> Result<Vec<GuestDiskStatsInfo>, CommandError> {
        stats::diskstats()
    }
}

/// The real machine. Never used by tests: its choices are unit-tested
/// in `freeze` and `machine`, over fakes and pure functions.
pub struct LinuxSystem;

impl System for LinuxSystem {
    fn shutdown(&self, args: GuestShutdownArgs) -> Result<(), CommandError> {
        machine::shutdown(args.mode.as_deref())
    }

    fn suspend(&self, mode: SuspendMode) -> Result<(), CommandError> {
        machine::suspend(mode)
    }

    fn set_time(&self, args: GuestSetTimeArgs) -> Result<(), CommandError> {
        machine::set_time(args.time)
    }

    fn fsfreeze_freeze(&self, mountpoints: Option<Vec<String>>) -> Result<i64, CommandError> {
        let mounts = fs::block_mounts()?;
        let order = freeze::freeze_order(&mounts, mountpoints.as_deref());
        freeze::freeze_all(&freeze::Ioctls, &order)
    }

    fn fsfreeze_thaw(&self) -> Result<i64, CommandError> {
        let mounts = fs::block_mounts()?;
        Ok(freeze::thaw_all(&freeze::Ioctls, &freeze::unique_dirs(&mounts)))
    }

    fn fstrim(&self, args: GuestFstrimArgs) -> Result<GuestFilesystemTrimResponse, CommandError> {
        let mounts = fs::block_mounts()?;
        let dirs: Vec<String> = mounts.into_iter().map(|m| m.dir).collect();
        Ok(freeze::trim_all(&freeze::Ioctls, &dirs, args.minimum))
    }

    fn set_vcpus(&self, args: GuestSetVcpusArgs) -> Result<i64, CommandError> {
        hw::SysDevices::default().set_vcpus(&args)
    }

    fn set_user_password(&self, args: GuestSetUserPasswordArgs) -> Result<(), CommandError> {
        machine::set_user_password(&args.username, &args.password, args.crypted)
    }

    fn set_memory_blocks(&self, blocks: Vec<GuestMemoryBlock>) -> Result<Vec<GuestMemoryBlockResponse>, CommandError> {
        Ok(hw::SysDevices::default().set_memory_blocks(&blocks))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn linux_is_send_and_sync() {
        assert_send_sync::<Linux>();
        assert_send_sync::<LinuxSystem>();
    }

    /// Runs one request through the generated dispatcher, as the agent does.
    fn call(linux: &Linux, request: serde_json::Value) -> serde_json::Value {
        qga_types::server::dispatch(linux, request, &qga_types::runtime::server::AllEnabled).expect("a reply")
    }

    fn keys(v: &serde_json::Value) -> Vec<&str> {
        let mut keys: Vec<&str> = v.as_object().expect("an object").keys().map(String::as_str).collect();
        keys.sort_unstable();
        keys
    }

    /// The members qemu-ga 7.2 sends on this kind of guest, checked
    /// through the dispatcher so each command is wired to its handler.
    #[test]
    fn linux_read_only_replies_have_qemu_ga_members() {
        let state = tempfile::tempdir().unwrap();
        let linux = Linux::new(state.path());
        let ret = |name: &str| {
            let reply = call(&linux, serde_json::json!({"execute": name, "id": name}));
            assert_eq!(reply["id"], name);
            reply
                .get("return")
                .cloned()
                .unwrap_or_else(|| panic!("{name}: {reply}"))
        };
        assert!(ret("guest-get-time").as_i64().unwrap() > 1_600_000_000_000_000_000);
        assert_eq!(keys(&ret("guest-get-host-name")), ["host-name"]);
        assert_eq!(keys(&ret("guest-get-timezone")), ["offset", "zone"]);
        let os = ret("guest-get-osinfo");
        for member in ["kernel-release", "kernel-version", "machine"] {
            assert!(os[member].is_string(), "{member}: {os}");
        }
        assert_eq!(keys(&ret("guest-get-load")), ["load15m", "load1m", "load5m"]);
        let vcpus = ret("guest-get-vcpus");
        assert!(!vcpus.as_array().unwrap().is_empty(), "every machine has a CPU");
        for cpu in vcpus.as_array().unwrap() {
            assert_eq!(keys(cpu), ["can-offline", "logical-id", "online"]);
        }
        for user in ret("guest-get-users").as_array().unwrap() {
            assert_eq!(keys(user), ["login-time", "user"]);
        }
        let interfaces = ret("guest-network-get-interfaces");
        assert!(
            interfaces.as_array().unwrap().iter().any(|i| i["name"] == "lo"),
            "{interfaces}"
        );
        for iface in interfaces.as_array().unwrap() {
            assert!(iface["name"].is_string());
            if let Some(addresses) = iface.get("ip-addresses") {
                for a in addresses.as_array().unwrap() {
                    assert_eq!(keys(a), ["ip-address", "ip-address-type", "prefix"]);
                }
                assert_eq!(iface["statistics"].as_object().unwrap().len(), 8);
            }
        }
        for route in ret("guest-network-get-route").as_array().unwrap() {
            assert!(route["iface"].is_string() && route["version"].is_i64());
        }
        for fs in ret("guest-get-fsinfo").as_array().unwrap() {
            assert_eq!(
                keys(fs),
                ["disk", "mountpoint", "name", "total-bytes", "type", "used-bytes"]
            );
        }
        for disk in ret("guest-get-disks").as_array().unwrap() {
            assert!(disk["name"].is_string() && disk["partition"].is_boolean() && disk["dependencies"].is_array());
        }
        let cpustats = ret("guest-get-cpustats");
        // /proc/stat lists the online CPUs.
        let online = vcpus.as_array().unwrap().iter().filter(|c| c["online"] == true).count();
        assert_eq!(cpustats.as_array().unwrap().len(), online, "{cpustats}");
        for cpu in cpustats.as_array().unwrap() {
            assert_eq!(cpu["type"], "linux");
        }
        for disk in ret("guest-get-diskstats").as_array().unwrap() {
            assert_eq!(keys(disk), ["major", "minor", "name", "stats"]);
        }
        if std::path::Path::new("/sys/devices/system/memory").is_dir() {
            assert_eq!(keys(&ret("guest-get-memory-block-info")), ["size"]);
            for block in ret("guest-get-memory-blocks").as_array().unwrap() {
                assert_eq!(keys(block), ["can-offline", "online", "phys-index"]);
            }
        }
    }

    #[test]
    fn linux_file_and_exec_through_the_dispatcher() {
        let state = tempfile::tempdir().unwrap();
        let linux = Linux::new(state.path());
        let path = state.path().join("f");
        let open = call(
            &linux,
            serde_json::json!({"execute": "guest-file-open", "arguments": {"path": path, "mode": "w+"}}),
        );
        let handle = open["return"].as_i64().unwrap();
        let write = call(
            &linux,
            serde_json::json!({"execute": "guest-file-write", "arguments": {"handle": handle, "buf-b64": "aGk="}}),
        );
        assert_eq!(write["return"], serde_json::json!({"count": 2, "eof": false}));
        let closed = call(
            &linux,
            serde_json::json!({"execute": "guest-file-close", "arguments": {"handle": handle}}),
        );
        assert_eq!(closed["return"], serde_json::json!({}));
        assert_eq!(std::fs::read(&path).unwrap(), b"hi");
        let unknown = call(
            &linux,
            serde_json::json!({"execute": "guest-exec-status", "arguments": {"pid": 0}}),
        );
        assert_eq!(
            unknown["error"],
            serde_json::json!({"class": "GenericError", "desc": "Invalid parameter 'pid'"})
        );
    }

    #[test]
    fn linux_server_routes_ssh_to_the_injected_lookup() {
        let state = tempfile::tempdir().unwrap();
        let home = tempfile::tempdir().unwrap();
        let home_path = home.path().to_path_buf();
        let uid = nix::unistd::getuid().as_raw();
        let gid = nix::unistd::getgid().as_raw();
        let linux = Linux::new(state.path()).with_user_lookup(std::sync::Arc::new(move |_: &str| {
            Ok(Some(UserEntry {
                home: home_path.clone(),
                uid,
                gid,
            }))
        }));
        linux
            .guest_ssh_add_authorized_keys(GuestSshAddAuthorizedKeysArgs {
                username: "anyone".into(),
                keys: vec!["ssh-ed25519 AAAA k".into()],
                reset: None,
            })
            .unwrap();
        let keys = linux
            .guest_ssh_get_authorized_keys(GuestSshGetAuthorizedKeysArgs {
                username: "anyone".into(),
            })
            .unwrap();
        assert_eq!(keys.keys, vec!["ssh-ed25519 AAAA k".to_string()]);
        assert!(home.path().join(".ssh/authorized_keys").exists());
    }
}
