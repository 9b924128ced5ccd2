//! The agent: the generated server trait, implemented by serving the
//! protocol commands here, the commands that change the machine through a
//! [`System`], and everything else through [`Linux`].

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use qga_types::runtime::{CommandError, CommandInfo, ErrorBody, ErrorClass, Reply};
use qga_types::server::{dispatch, Server};
use qga_types::*;
use serde_json::Value;
use tracing::{debug, info, warn};

use crate::executor::{Executor, RunError, Task};
use crate::freeze::FreezeState;
use crate::linux::Linux;
use crate::policy::{offered_on_linux, RpcPolicy, ENABLED_WHILE_FROZEN};
use crate::system::{SuspendMode, System};

/// How long a command may run before its client gets an error.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// Freezing syncs every filesystem first, which can take long on a busy
/// guest.
pub const DEFAULT_FREEZE_TIMEOUT: Duration = Duration::from_secs(60);

/// Commands answered on the connection's own thread: they only read the
/// agent's memory, so they cannot hang and need no worker.
const INLINE: [&str; 5] = [
    "guest-sync",
    "guest-sync-delimited",
    "guest-ping",
    "guest-info",
    "guest-fsfreeze-status",
];

/// What an [`Agent`] is built from.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    /// Holds the freeze marker and the state of [`Linux`] (file handles).
    pub statedir: PathBuf,
    pub policy: RpcPolicy,
    pub command_timeout: Duration,
    /// For `guest-fsfreeze-freeze` and `guest-fsfreeze-freeze-list`.
    pub freeze_timeout: Duration,
}

impl AgentConfig {
    pub fn new(statedir: impl Into<PathBuf>) -> AgentConfig {
        AgentConfig {
            statedir: statedir.into(),
            policy: RpcPolicy::default(),
            command_timeout: DEFAULT_COMMAND_TIMEOUT,
            freeze_timeout: DEFAULT_FREEZE_TIMEOUT,
        }
    }
}

/// A guest agent. Share it (`Arc`) between the sessions it serves, one at
/// a time; see [`crate::Session`].
pub struct Agent {
    linux: Linux,
    system: Box<dyn System>,
    policy: RpcPolicy,
    freeze: FreezeState,
    executor: Executor,
    command_timeout: Duration,
    freeze_timeout: Duration,
}

impl Agent {
    /// The state directory must exist; a freeze marker in it (left by an
    /// earlier agent, ours or qemu-ga) starts the agent in the frozen
    /// state.
    pub fn new(config: AgentConfig, system: Box<dyn System>) -> Arc<Agent> {
        Arc::new(Agent {
            linux: Linux::new(&config.statedir),
            system,
            policy: config.policy,
            freeze: FreezeState::load(&config.statedir),
            executor: Executor::default(),
            command_timeout: config.command_timeout,
            freeze_timeout: config.freeze_timeout,
        })
    }

    /// Whether `command` is served right now (known commands only).
    pub fn is_enabled(&self, command: &str) -> bool {
        COMMANDS
            .iter()
            .find(|c| c.name == command)
            .is_some_and(|info| self.serves(info))
    }

    fn serves(&self, info: &CommandInfo) -> bool {
        offered_on_linux(info)
            && self.policy.admits(info.name)
            && (!self.freeze.is_frozen() || ENABLED_WHILE_FROZEN.contains(&info.name))
    }

    /// True between a successful freeze and a successful thaw.
    pub fn is_frozen(&self) -> bool {
        self.freeze.is_frozen()
    }

    /// Set while frozen; the log writer drops messages while it is set.
    pub fn frozen_flag(&self) -> Arc<AtomicBool> {
        self.freeze.flag()
    }

    /// Where the freeze state is persisted.
    pub fn freeze_marker(&self) -> &Path {
        self.freeze.marker()
    }

    pub fn linux(&self) -> &Linux {
        &self.linux
    }

    /// How many timed-out handlers are still running.
    pub fn abandoned_handlers(&self) -> usize {
        self.executor.abandoned()
    }

    /// Answers one parsed request. `None`: nothing to send (a command
    /// without a success response that succeeded).
    pub fn handle(self: &Arc<Self>, request: Value) -> Option<Value> {
        let Some(name) = request.get("execute").and_then(Value::as_str) else {
            // The dispatcher answers malformed envelopes.
            return dispatch(&**self, request, &|c: &str| self.is_enabled(c));
        };
        debug!(command = %name, "request");
        if INLINE.contains(&name) || !self.is_enabled(name) {
            return dispatch(&**self, request, &|c: &str| self.is_enabled(c));
        }
        // Owned only for commands that go to a worker.
        let name = name.to_owned();
        let id = request.get("id").cloned();
        let (limit, always_run) = match name.as_str() {
            "guest-fsfreeze-freeze" | "guest-fsfreeze-freeze-list" => (self.freeze_timeout, false),
            "guest-fsfreeze-thaw" => (self.command_timeout, true),
            _ => (self.command_timeout, false),
        };
        let agent = self.clone();
        let task = Task {
            run: Box::new(move || dispatch(&*agent, request, &|c: &str| agent.is_enabled(c))),
            late: self.late_cleanup(&name),
            always_run,
        };
        let desc = match self.executor.run(task, limit) {
            Ok(reply) => return reply,
            Err(RunError::TimedOut) => {
                warn!(command = %name, "timed out after {} s; its handler is abandoned", limit.as_secs_f64());
                format!("Command {name} timed out after {} seconds", limit.as_secs_f64())
            }
            Err(RunError::TooManyAbandoned) => format!(
                "Command {name} refused: {} earlier commands are still running after their timeout",
                self.executor.abandoned()
            ),
            Err(RunError::Panicked) => format!("Command {name} failed: internal error"),
            Err(RunError::NoThread(e)) => format!("Command {name} could not start: {e}"),
        };
        Some(
            Reply {
                result: Err(ErrorBody::new(ErrorClass::GenericError, desc)),
                id,
            }
            .into_value(),
        )
    }

    /// What to do with the result of a handler that finished after its
    /// client was told it timed out: undo what the client believes did
    /// not happen, where that can be undone.
    fn late_cleanup(self: &Arc<Self>, command: &str) -> Box<dyn FnOnce(Option<Value>) + Send> {
        let agent = self.clone();
        let succeeded = |reply: &Option<Value>| reply.as_ref().and_then(|r| r.get("return")).cloned();
        match command {
            "guest-fsfreeze-freeze" | "guest-fsfreeze-freeze-list" => Box::new(move |reply| {
                if succeeded(&reply).is_some() {
                    let thawed = agent.system.fsfreeze_thaw();
                    let _ = agent.freeze.leave();
                    warn!("a freeze finished after its timeout and was undone: {thawed:?}");
                }
            }),
            "guest-file-open" => Box::new(move |reply| {
                if let Some(handle) = succeeded(&reply).and_then(|r| r.as_i64()) {
                    let _ = agent.linux.guest_file_close(GuestFileCloseArgs { handle });
                }
            }),
            // The client never got the pid, so nobody could ever ask for
            // the process's status: stop it rather than leak it.
            "guest-exec" => Box::new(move |reply| {
                if let Some(pid) = succeeded(&reply).and_then(|r| r.get("pid").and_then(Value::as_i64)) {
                    agent.linux.abandon_exec(pid);
                    warn!(pid, "a guest-exec finished after its timeout; its process was killed");
                }
            }),
            _ => Box::new(|_| {}),
        }
    }

    fn freeze(&self, mountpoints: Option<Vec<String>>) -> Result<i64, CommandError> {
        info!("guest-fsfreeze called");
        if let Err(e) = self.freeze.write_marker() {
            warn!(
                "cannot write {}: {e}; the freeze will not survive an agent restart",
                self.freeze.marker().display()
            );
        }
        // From here on nothing is logged: the filesystems are about to
        // freeze, and a write to one would hang the agent.
        self.freeze.set_frozen();
        match self.system.fsfreeze_freeze(mountpoints) {
            Ok(count) => Ok(count),
            Err(e) => {
                // System thawed whatever it had frozen.
                let left = self.freeze.leave();
                warn!("freeze failed: {e}");
                if let Err(left) = left {
                    warn!("cannot remove {}: {left}", self.freeze.marker().display());
                }
                Err(e)
            }
        }
    }
}

impl Server for Agent {
    fn guest_sync_delimited(&self, args: GuestSyncDelimitedArgs) -> Result<i64, CommandError> {
        Ok(args.id)
    }
    fn guest_sync(&self, args: GuestSyncArgs) -> Result<i64, CommandError> {
        Ok(args.id)
    }
    fn guest_ping(&self) -> Result<(), CommandError> {
        Ok(())
    }
    fn guest_info(&self) -> Result<GuestAgentInfo, CommandError> {
        // Newest first, the order qemu-ga lists them in.
        let supported_commands = COMMANDS
            .iter()
            .rev()
            .map(|c| GuestAgentCommandInfo {
                name: c.name.to_string(),
                enabled: self.serves(c),
                success_response: c.success_response,
            })
            .collect();
        Ok(GuestAgentInfo {
            version: env!("CARGO_PKG_VERSION").to_string(),
            supported_commands,
        })
    }
    fn guest_fsfreeze_status(&self) -> Result<GuestFsfreezeStatus, CommandError> {
        Ok(if self.freeze.is_frozen() {
            GuestFsfreezeStatus::Frozen
        } else {
            GuestFsfreezeStatus::Thawed
        })
    }
    fn guest_fsfreeze_freeze(&self) -> Result<i64, CommandError> {
        self.freeze(None)
    }
    fn guest_fsfreeze_freeze_list(&self, args: GuestFsfreezeFreezeListArgs) -> Result<i64, CommandError> {
        self.freeze(args.mountpoints)
    }
    /// Always asks the system, whatever this agent believes: the freeze
    /// may come from another process or an earlier agent.
    fn guest_fsfreeze_thaw(&self) -> Result<i64, CommandError> {
        let count = self.system.fsfreeze_thaw()?;
        let left = self.freeze.leave();
        info!("guest-fsfreeze-thaw: {count} filesystems thawed");
        if let Err(e) = left {
            warn!("cannot remove {}: {e}", self.freeze.marker().display());
        }
        Ok(count)
    }
    fn guest_shutdown(&self, args: GuestShutdownArgs) -> Result<(), CommandError> {
        if let Some(mode) = args.mode.as_deref() {
            if !matches!(mode, "halt" | "powerdown" | "reboot") {
                // qemu-ga's text, unbalanced parenthesis included.
                return Err(CommandError::generic(
                    "mode is invalid (valid values are: halt|powerdown|reboot",
                ));
            }
        }
        info!(
            "guest-shutdown called, mode: {}",
            args.mode.as_deref().unwrap_or("powerdown")
        );
        self.system.shutdown(args)
    }
    fn guest_suspend_disk(&self) -> Result<(), CommandError> {
        info!("guest-suspend-disk called");
        self.system.suspend(SuspendMode::Disk)
    }
    fn guest_suspend_ram(&self) -> Result<(), CommandError> {
        info!("guest-suspend-ram called");
        self.system.suspend(SuspendMode::Ram)
    }
    fn guest_suspend_hybrid(&self) -> Result<(), CommandError> {
        info!("guest-suspend-hybrid called");
        self.system.suspend(SuspendMode::Hybrid)
    }
    fn guest_set_time(&self, args: GuestSetTimeArgs) -> Result<(), CommandError> {
        info!("guest-set-time called");
        self.system.set_time(args)
    }
    fn guest_fstrim(&self, args: GuestFstrimArgs) -> Result<GuestFilesystemTrimResponse, CommandError> {
        info!("guest-fstrim called");
        self.system.fstrim(args)
    }
    fn guest_set_vcpus(&self, args: GuestSetVcpusArgs) -> Result<i64, CommandError> {
        info!("guest-set-vcpus called");
        self.system.set_vcpus(args)
    }
    fn guest_set_user_password(&self, args: GuestSetUserPasswordArgs) -> Result<(), CommandError> {
        info!("guest-set-user-password called for user {}", args.username);
        self.system.set_user_password(args)
    }
    fn guest_set_memory_blocks(
        &self,
        args: GuestSetMemoryBlocksArgs,
    ) -> Result<Vec<GuestMemoryBlockResponse>, CommandError> {
        info!("guest-set-memory-blocks called");
        self.system.set_memory_blocks(args.mem_blks)
    }

    // Everything else is read from the live system by `Linux`.
    fn guest_get_time(&self) -> Result<i64, CommandError> {
        self.linux.guest_get_time()
    }
    fn guest_file_open(&self, args: GuestFileOpenArgs) -> Result<i64, CommandError> {
        self.linux.guest_file_open(args)
    }
    fn guest_file_close(&self, args: GuestFileCloseArgs) -> Result<(), CommandError> {
        self.linux.guest_file_close(args)
    }
    fn guest_file_read(&self, args: GuestFileReadArgs) -> Result<GuestFileRead, CommandError> {
        self.linux.guest_file_read(args)
    }
    fn guest_file_write(&self, args: GuestFileWriteArgs) -> Result<GuestFileWrite, CommandError> {
        self.linux.guest_file_write(args)
    }
    fn guest_file_seek(&self, args: GuestFileSeekArgs) -> Result<GuestFileSeek, CommandError> {
        self.linux.guest_file_seek(args)
    }
    fn guest_file_flush(&self, args: GuestFileFlushArgs) -> Result<(), CommandError> {
        self.linux.guest_file_flush(args)
    }
    fn guest_network_get_interfaces(&self) -> Result<Vec<GuestNetworkInterface>, CommandError> {
        self.linux.guest_network_get_interfaces()
    }
    fn guest_get_vcpus(&self) -> Result<Vec<GuestLogicalProcessor>, CommandError> {
        self.linux.guest_get_vcpus()
    }
    fn guest_get_disks(&self) -> Result<Vec<GuestDiskInfo>, CommandError> {
        self.linux.guest_get_disks()
    }
    fn guest_get_fsinfo(&self) -> Result<Vec<GuestFilesystemInfo>, CommandError> {
        self.linux.guest_get_fsinfo()
    }
    fn guest_get_memory_blocks(&self) -> Result<Vec<GuestMemoryBlock>, CommandError> {
        self.linux.guest_get_memory_blocks()
    }
    fn guest_get_memory_block_info(&self) -> Result<GuestMemoryBlockInfo, CommandError> {
        self.linux.guest_get_memory_block_info()
    }
    fn guest_exec_status(&self, args: GuestExecStatusArgs) -> Result<GuestExecStatus, CommandError> {
        self.linux.guest_exec_status(args)
    }
    fn guest_exec(&self, args: GuestExecArgs) -> Result<GuestExec, CommandError> {
        self.linux.guest_exec(args)
    }
    fn guest_get_host_name(&self) -> Result<GuestHostName, CommandError> {
        self.linux.guest_get_host_name()
    }
    fn guest_get_users(&self) -> Result<Vec<GuestUser>, CommandError> {
        self.linux.guest_get_users()
    }
    fn guest_get_timezone(&self) -> Result<GuestTimezone, CommandError> {
        self.linux.guest_get_timezone()
    }
    fn guest_get_osinfo(&self) -> Result<GuestOsInfo, CommandError> {
        self.linux.guest_get_osinfo()
    }
    fn guest_get_devices(&self) -> Result<Vec<GuestDeviceInfo>, CommandError> {
        self.linux.guest_get_devices()
    }
    fn guest_ssh_get_authorized_keys(
        &self,
        args: GuestSshGetAuthorizedKeysArgs,
    ) -> Result<GuestAuthorizedKeys, CommandError> {
        self.linux.guest_ssh_get_authorized_keys(args)
    }
    fn guest_ssh_add_authorized_keys(&self, args: GuestSshAddAuthorizedKeysArgs) -> Result<(), CommandError> {
        self.linux.guest_ssh_add_authorized_keys(args)
    }
    fn guest_ssh_remove_authorized_keys(&self, args: GuestSshRemoveAuthorizedKeysArgs) -> Result<(), CommandError> {
        self.linux.guest_ssh_remove_authorized_keys(args)
    }
    fn guest_get_diskstats(&self) -> Result<Vec<GuestDiskStatsInfo>, CommandError> {
        self.linux.guest_get_diskstats()
    }
    fn guest_get_cpustats(&self) -> Result<Vec<GuestCpuStats>, CommandError> {
        self.linux.guest_get_cpustats()
    }
    fn guest_get_load(&self) -> Result<GuestLoadAverage, CommandError> {
        self.linux.guest_get_load()
    }
    fn guest_network_get_route(&self) -> Result<Vec<GuestNetworkRoute>, CommandError> {
        self.linux.guest_network_get_route()
    }
}
