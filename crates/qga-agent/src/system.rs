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

/// A [`System`] for tests: it records every call, changes nothing, and
/// can be told to fail or to hang per operation.
pub mod testing {
    use std::collections::HashMap;
    use std::sync::{Arc, Condvar, Mutex, MutexGuard};

    use super::*;

    /// One operation of [`System`], to configure how the fake behaves.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub enum Op {
        Shutdown,
        Suspend,
        SetTime,
        Freeze,
        Thaw,
        Fstrim,
        SetVcpus,
        SetUserPassword,
        SetMemoryBlocks,
    }

    /// A call the fake received, with its arguments.
    #[derive(Clone, Debug, PartialEq)]
    pub enum Call {
        Shutdown(GuestShutdownArgs),
        Suspend(SuspendMode),
        SetTime(GuestSetTimeArgs),
        Freeze(Option<Vec<String>>),
        Thaw,
        Fstrim(GuestFstrimArgs),
        SetVcpus(GuestSetVcpusArgs),
        SetUserPassword(GuestSetUserPasswordArgs),
        SetMemoryBlocks(Vec<GuestMemoryBlock>),
    }

    impl Call {
        pub fn op(&self) -> Op {
            match self {
                Call::Shutdown(_) => Op::Shutdown,
                Call::Suspend(_) => Op::Suspend,
                Call::SetTime(_) => Op::SetTime,
                Call::Freeze(_) => Op::Freeze,
                Call::Thaw => Op::Thaw,
                Call::Fstrim(_) => Op::Fstrim,
                Call::SetVcpus(_) => Op::SetVcpus,
                Call::SetUserPassword(_) => Op::SetUserPassword,
                Call::SetMemoryBlocks(_) => Op::SetMemoryBlocks,
            }
        }
    }

    #[derive(Clone, Debug)]
    enum Behaviour {
        Fail(CommandError),
        Hang,
    }

    #[derive(Default)]
    struct State {
        calls: Vec<Call>,
        behaviour: HashMap<Op, Behaviour>,
        /// Filesystems the fake pretends to have frozen.
        frozen: i64,
        hanging: usize,
        released: bool,
    }

    #[derive(Default)]
    struct Shared {
        state: Mutex<State>,
        wake: Condvar,
    }

    /// Clones share their state, so a test keeps one clone and gives the
    /// agent another (boxed).
    #[derive(Clone, Default)]
    pub struct FakeSystem {
        shared: Arc<Shared>,
        filesystems: i64,
    }

    impl FakeSystem {
        /// A fake machine with three freezable filesystems.
        pub fn new() -> FakeSystem {
            FakeSystem::with_filesystems(3)
        }

        pub fn with_filesystems(filesystems: i64) -> FakeSystem {
            FakeSystem {
                shared: Arc::default(),
                filesystems,
            }
        }

        fn state(&self) -> MutexGuard<'_, State> {
            // A panicking test thread must not hide the calls from the others.
            self.shared.state.lock().unwrap_or_else(|e| e.into_inner())
        }

        /// Every call so far, oldest first.
        pub fn calls(&self) -> Vec<Call> {
            self.state().calls.clone()
        }

        /// From now on `op` records its call and then fails with `error`.
        pub fn fail(&self, op: Op, error: CommandError) {
            self.state().behaviour.insert(op, Behaviour::Fail(error));
        }

        /// From now on `op` records its call and then blocks until
        /// [`FakeSystem::release`].
        pub fn hang(&self, op: Op) {
            let mut state = self.state();
            state.behaviour.insert(op, Behaviour::Hang);
            state.released = false;
        }

        /// `op` behaves normally again.
        pub fn succeed(&self, op: Op) {
            self.state().behaviour.remove(&op);
        }

        /// Lets every hanging call finish (successfully) and stops hanging.
        pub fn release(&self) {
            let mut state = self.state();
            state.behaviour.retain(|_, b| !matches!(b, Behaviour::Hang));
            state.released = true;
            self.shared.wake.notify_all();
        }

        /// How many calls are blocked right now.
        pub fn hanging(&self) -> usize {
            self.state().hanging
        }

        /// Pretends another process froze the filesystems.
        pub fn freeze_externally(&self) {
            self.state().frozen = self.filesystems;
        }

        /// How many filesystems are frozen on the fake machine.
        pub fn frozen(&self) -> i64 {
            self.state().frozen
        }

        /// Records the call, then applies the configured behaviour.
        fn enter(&self, call: Call) -> Result<MutexGuard<'_, State>, CommandError> {
            let op = call.op();
            let mut state = self.state();
            state.calls.push(call);
            match state.behaviour.get(&op).cloned() {
                None => Ok(state),
                Some(Behaviour::Fail(e)) => Err(e),
                Some(Behaviour::Hang) => {
                    state.hanging += 1;
                    while !state.released {
                        state = self.shared.wake.wait(state).unwrap_or_else(|e| e.into_inner());
                    }
                    state.hanging -= 1;
                    Ok(state)
                }
            }
        }
    }

    impl System for FakeSystem {
        fn shutdown(&self, args: GuestShutdownArgs) -> Result<(), CommandError> {
            self.enter(Call::Shutdown(args)).map(drop)
        }
        fn suspend(&self, mode: SuspendMode) -> Result<(), CommandError> {
            self.enter(Call::Suspend(mode)).map(drop)
        }
        fn set_time(&self, args: GuestSetTimeArgs) -> Result<(), CommandError> {
            self.enter(Call::SetTime(args)).map(drop)
        }
        fn fsfreeze_freeze(&self, mountpoints: Option<Vec<String>>) -> Result<i64, CommandError> {
            let count = mountpoints.as_ref().map_or(self.filesystems, |m| m.len() as i64);
            let mut state = self.enter(Call::Freeze(mountpoints))?;
            state.frozen = count;
            Ok(count)
        }
        fn fsfreeze_thaw(&self) -> Result<i64, CommandError> {
            let mut state = self.enter(Call::Thaw)?;
            Ok(std::mem::take(&mut state.frozen))
        }
        fn fstrim(&self, args: GuestFstrimArgs) -> Result<GuestFilesystemTrimResponse, CommandError> {
            drop(self.enter(Call::Fstrim(args))?);
            Ok(GuestFilesystemTrimResponse { paths: Vec::new() })
        }
        fn set_vcpus(&self, args: GuestSetVcpusArgs) -> Result<i64, CommandError> {
            let count = args.vcpus.len() as i64;
            drop(self.enter(Call::SetVcpus(args))?);
            Ok(count)
        }
        fn set_user_password(&self, args: GuestSetUserPasswordArgs) -> Result<(), CommandError> {
            self.enter(Call::SetUserPassword(args)).map(drop)
        }
        fn set_memory_blocks(
            &self,
            blocks: Vec<GuestMemoryBlock>,
        ) -> Result<Vec<GuestMemoryBlockResponse>, CommandError> {
            let responses = blocks
                .iter()
                .map(|b| GuestMemoryBlockResponse {
                    phys_index: b.phys_index,
                    response: qga_types::GuestMemoryBlockResponseType::Success,
                    error_code: None,
                })
                .collect();
            drop(self.enter(Call::SetMemoryBlocks(blocks))?);
            Ok(responses)
        }
    }
}
