//! The seam between the agent and the machine for every command that
//! changes the machine. The binary uses `linux::LinuxSystem`; tests use a
//! fake, so they never freeze, shut down or reconfigure the test host.
//!
//! Method names and argument types follow the generated server trait, so
//! the agent's dispatch is a direct call.

use qga_types::runtime::CommandError;
use qga_types::{
    GuestFilesystemTrimResponse, GuestFstrimArgs, GuestMemoryBlock, GuestMemoryBlockResponse, GuestSetTimeArgs,
    GuestSetUserPasswordArgs, GuestSetVcpusArgs, GuestShutdownArgs,
};

/// Which sleep state `suspend` enters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SuspendMode {
    Disk,
    Ram,
    Hybrid,
}

pub trait System: Send + Sync {
    fn shutdown(&self, args: GuestShutdownArgs) -> Result<(), CommandError>;
    fn suspend(&self, mode: SuspendMode) -> Result<(), CommandError>;
    fn set_time(&self, args: GuestSetTimeArgs) -> Result<(), CommandError>;
    /// Freezes the given mount points, or every freezable filesystem when
    /// `None`. All or nothing: on any failure, whatever was frozen is
    /// thawed again before the error is returned. Returns how many were
    /// frozen.
    fn fsfreeze_freeze(&self, mountpoints: Option<Vec<String>>) -> Result<i64, CommandError>;
    /// Thaws every frozen filesystem, including ones frozen by another
    /// process. Returns how many were thawed.
    fn fsfreeze_thaw(&self) -> Result<i64, CommandError>;
    fn fstrim(&self, args: GuestFstrimArgs) -> Result<GuestFilesystemTrimResponse, CommandError>;
    fn set_vcpus(&self, args: GuestSetVcpusArgs) -> Result<i64, CommandError>;
    fn set_user_password(&self, args: GuestSetUserPasswordArgs) -> Result<(), CommandError>;
    fn set_memory_blocks(&self, blocks: Vec<GuestMemoryBlock>) -> Result<Vec<GuestMemoryBlockResponse>, CommandError>;
}
