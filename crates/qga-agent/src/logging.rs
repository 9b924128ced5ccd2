//! Logging that stops while filesystems are frozen: a write to a frozen
//! filesystem would block the agent until a thaw that the agent itself
//! could then never serve. Messages logged while frozen are dropped (not
//! buffered, so memory stays bounded however long the freeze lasts); the
//! first message after the thaw says how many were dropped.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tracing_subscriber::fmt::MakeWriter;

enum Target {
    Stderr,
    File(File),
}

/// A log destination gated by the agent's frozen flag.
#[derive(Clone)]
pub struct GatedWriter {
    target: Arc<Mutex<Target>>,
    frozen: Arc<AtomicBool>,
    dropped: Arc<AtomicU64>,
}

impl GatedWriter {
    /// Appends to `logfile`, or writes to stderr when `None`.
    pub fn new(logfile: Option<&Path>, frozen: Arc<AtomicBool>) -> io::Result<GatedWriter> {
        let target = match logfile {
            Some(path) => Target::File(OpenOptions::new().create(true).append(true).open(path)?),
            None => Target::Stderr,
        };
        Ok(GatedWriter {
            target: Arc::new(Mutex::new(target)),
            frozen,
            dropped: Arc::default(),
        })
    }

    /// Messages dropped during the current freeze.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::SeqCst)
    }
}

impl Write for GatedWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.frozen.load(Ordering::SeqCst) {
            self.dropped.fetch_add(1, Ordering::SeqCst);
            return Ok(buf.len());
        }
        let mut target = self.target.lock().unwrap_or_else(|e| e.into_inner());
        let dropped = self.dropped.swap(0, Ordering::SeqCst);
        let note = (dropped > 0).then(|| format!("({dropped} log messages dropped while filesystems were frozen)\n"));
        let mut write = |bytes: &[u8]| match &mut *target {
            Target::Stderr => io::stderr().write_all(bytes),
            Target::File(f) => f.write_all(bytes),
        };
        if let Some(note) = note {
            write(note.as_bytes())?;
        }
        write(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for GatedWriter {
    type Writer = GatedWriter;

    fn make_writer(&'a self) -> GatedWriter {
        self.clone()
    }
}

/// Installs the global logger. `verbose` adds debug messages (one per
/// request).
pub fn init(logfile: Option<&Path>, verbose: bool, frozen: Arc<AtomicBool>) -> io::Result<GatedWriter> {
    let writer = GatedWriter::new(logfile, frozen)?;
    let level = if verbose {
        tracing::Level::DEBUG
    } else {
        tracing::Level::INFO
    };
    let _ = tracing_subscriber::fmt()
        .with_writer(writer.clone())
        .with_max_level(level)
        .with_target(false)
        .try_init();
    Ok(writer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_reaches_the_file_while_frozen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let frozen = Arc::new(AtomicBool::new(false));
        let mut writer = GatedWriter::new(Some(&path), frozen.clone()).unwrap();
        writer.write_all(b"before\n").unwrap();
        frozen.store(true, Ordering::SeqCst);
        writer.write_all(b"during\n").unwrap();
        writer.write_all(b"during\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "before\n");
        assert_eq!(writer.dropped(), 2);
        frozen.store(false, Ordering::SeqCst);
        writer.write_all(b"after\n").unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "before\n(2 log messages dropped while filesystems were frozen)\nafter\n"
        );
    }
}
