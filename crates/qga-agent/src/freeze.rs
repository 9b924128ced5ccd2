//! The agent's record of a freeze. It lives in memory (for the policy and
//! the log gate) and as a marker file in the state directory, so an agent
//! restarted while filesystems are frozen still knows it, still refuses
//! the commands that could hang, and still thaws on request.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// The marker's name, the one qemu-ga uses, so a freeze left by qemu-ga is
/// seen too.
pub const MARKER_NAME: &str = "qga.state.isfrozen";

#[derive(Debug)]
pub struct FreezeState {
    frozen: Arc<AtomicBool>,
    marker: PathBuf,
}

impl FreezeState {
    /// Reads the marker in `statedir`.
    pub fn load(statedir: &Path) -> FreezeState {
        let marker = statedir.join(MARKER_NAME);
        FreezeState {
            frozen: Arc::new(AtomicBool::new(marker.exists())),
            marker,
        }
    }

    pub fn is_frozen(&self) -> bool {
        self.frozen.load(Ordering::SeqCst)
    }

    /// Shared with the log writer, which drops messages while it is set.
    pub fn flag(&self) -> Arc<AtomicBool> {
        self.frozen.clone()
    }

    pub fn marker(&self) -> &Path {
        &self.marker
    }

    /// Called before freezing, while the disk is still writable.
    pub fn write_marker(&self) -> io::Result<()> {
        std::fs::write(&self.marker, b"")
    }

    /// Called right before freezing, after [`FreezeState::write_marker`]
    /// (whose failure is reported but does not stop the freeze, as in
    /// qemu-ga; the state then does not survive a restart).
    pub fn set_frozen(&self) {
        self.frozen.store(true, Ordering::SeqCst);
    }

    /// Called after a thaw (or a failed freeze): clears the flag, then
    /// removes the marker.
    pub fn leave(&self) -> io::Result<()> {
        self.frozen.store(false, Ordering::SeqCst);
        match std::fs::remove_file(&self.marker) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}
