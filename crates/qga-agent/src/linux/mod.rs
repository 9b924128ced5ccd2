//! Everything that reads or changes the Linux system.
//!
//! [`Linux`] serves the commands that only read the system, plus the
//! stateful file and exec commands, by implementing the generated server
//! trait (methods it does not override answer "not supported").
//! [`LinuxSystem`] is the real implementation of the [`System`] seam for
//! commands that change the machine.

use std::path::{Path, PathBuf};

use qga_types::runtime::CommandError;
use qga_types::server::Server;
use qga_types::{
    GuestFilesystemTrimResponse, GuestFstrimArgs, GuestMemoryBlock, GuestMemoryBlockResponse, GuestSetTimeArgs,
    GuestSetUserPasswordArgs, GuestSetVcpusArgs, GuestShutdownArgs,
};

use crate::system::{SuspendMode, System};

/// The read-only and stateful commands, served from the live system.
pub struct Linux {
    statedir: PathBuf,
}

impl Linux {
    /// `statedir` holds state that must survive an agent restart (open
    /// file handles).
    pub fn new(statedir: &Path) -> Linux {
        Linux {
            statedir: statedir.to_path_buf(),
        }
    }

    pub fn statedir(&self) -> &Path {
        &self.statedir
    }
}

impl Server for Linux {}

/// The real machine. Never used by tests.
pub struct LinuxSystem;

impl System for LinuxSystem {
    fn shutdown(&self, _: GuestShutdownArgs) -> Result<(), CommandError> {
        Err(CommandError::unsupported())
    }
    fn suspend(&self, _: SuspendMode) -> Result<(), CommandError> {
        Err(CommandError::unsupported())
    }
    fn set_time(&self, _: GuestSetTimeArgs) -> Result<(), CommandError> {
        Err(CommandError::unsupported())
    }
    fn fsfreeze_freeze(&self, _: Option<Vec<String>>) -> Result<i64, CommandError> {
        Err(CommandError::unsupported())
    }
    fn fsfreeze_thaw(&self) -> Result<i64, CommandError> {
        Err(CommandError::unsupported())
    }
    fn fstrim(&self, _: GuestFstrimArgs) -> Result<GuestFilesystemTrimResponse, CommandError> {
        Err(CommandError::unsupported())
    }
    fn set_vcpus(&self, _: GuestSetVcpusArgs) -> Result<i64, CommandError> {
        Err(CommandError::unsupported())
    }
    fn set_user_password(&self, _: GuestSetUserPasswordArgs) -> Result<(), CommandError> {
        Err(CommandError::unsupported())
    }
    fn set_memory_blocks(&self, _: Vec<GuestMemoryBlock>) -> Result<Vec<GuestMemoryBlockResponse>, CommandError> {
        Err(CommandError::unsupported())
    }
}
