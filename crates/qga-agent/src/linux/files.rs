//! guest-file-*: open files behind numeric handles that survive an agent
//! restart. The state file in the statedir records each handle's path,
//! mode and position; a handle whose file is not open in this process is
//! reopened on first use, without creating or truncating it.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use base64::Engine;
use qga_types::runtime::CommandError;
use qga_types::{
    GuestFileRead, GuestFileReadArgs, GuestFileSeek, GuestFileSeekArgs, GuestFileWhence, GuestFileWrite,
    GuestFileWriteArgs, QgaSeek,
};
use serde_json::{json, Value};

use super::util::strerror;

/// qemu-ga's cap on one read (QGA_READ_COUNT_MAX).
pub const READ_COUNT_MAX: i64 = 48 * 1024 * 1024;
/// What a read without `count` asks for.
pub const READ_COUNT_DEFAULT: i64 = 4096;
/// qemu-ga's first handle number.
const FIRST_HANDLE: i64 = 1000;
/// Our own file in the statedir, beside qemu-ga's `qga.state`.
const STATE_FILE: &str = "qga-agent-files.json";

/// The fopen(3) modes qemu-ga accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Mode {
    read: bool,
    write: bool,
    append: bool,
    create: bool,
    truncate: bool,
}

fn parse_mode(mode: &str) -> Option<Mode> {
    let m = |read, write, append, create, truncate| Mode {
        read,
        write,
        append,
        create,
        truncate,
    };
    Some(match mode {
        "r" | "rb" => m(true, false, false, false, false),
        "w" | "wb" => m(false, true, false, true, true),
        "a" | "ab" => m(false, true, true, true, false),
        "r+" | "rb+" | "r+b" => m(true, true, false, false, false),
        "w+" | "wb+" | "w+b" => m(true, true, false, true, true),
        "a+" | "ab+" | "a+b" => m(true, true, true, true, false),
        _ => return None,
    })
}

impl Mode {
    /// `reopen`: after a restart, never create or truncate.
    /// Non-blocking, as qemu-ga makes its handles, so a FIFO can't hang
    /// a read; set from the open on, so it can't hang the open either.
    fn options(self, reopen: bool) -> OpenOptions {
        let mut options = OpenOptions::new();
        options
            .custom_flags(libc::O_NONBLOCK)
            .read(self.read)
            .write(self.write && !self.append)
            .append(self.append)
            .create(self.create && !reopen)
            .truncate(self.truncate && !reopen);
        options
    }
}

struct Handle {
    path: PathBuf,
    mode_text: String,
    mode: Mode,
    /// Where the next read or write starts; kept for reopening.
    position: u64,
    file: Option<File>,
}

impl Handle {
    fn file(&mut self) -> Result<&mut File, CommandError> {
        let file = match self.file.take() {
            Some(file) => file,
            None => self.reopen()?,
        };
        Ok(self.file.insert(file))
    }

    fn reopen(&self) -> Result<File, CommandError> {
        let mut file = self.mode.options(true).open(&self.path).map_err(|e| {
            CommandError::generic(format!(
                "failed to reopen file '{}' (mode: '{}'): {}",
                self.path.display(),
                self.mode_text,
                strerror(&e)
            ))
        })?;
        if !self.mode.append {
            file.seek(SeekFrom::Start(self.position))
                .map_err(|e| CommandError::generic(format!("failed to seek file: {}", strerror(&e))))?;
        }
        Ok(file)
    }
}

#[derive(Default)]
struct Table {
    next: i64,
    handles: BTreeMap<i64, Handle>,
}

pub struct FileTable {
    state_path: PathBuf,
    table: Mutex<Table>,
}

fn not_found(handle: i64) -> CommandError {
    CommandError::generic(format!("handle '{handle}' has not been found"))
}

fn invalid_count(count: i64) -> CommandError {
    CommandError::generic(format!("value '{count}' is invalid for argument count"))
}

impl FileTable {
    /// Loads the handles an earlier agent left in `statedir`. A missing
    /// or unreadable state file starts an empty table.
    pub fn new(statedir: &Path) -> FileTable {
        let state_path = statedir.join(STATE_FILE);
        let table = std::fs::read_to_string(&state_path)
            .ok()
            .and_then(|text| serde_json::from_str::<Value>(&text).ok())
            .map(|v| table_from_json(&v))
            .unwrap_or_default();
        FileTable {
            state_path,
            table: Mutex::new(Table {
                next: table.next.max(FIRST_HANDLE),
                handles: table.handles,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes the table atomically (temporary file, then rename).
    fn save(&self, table: &Table) -> io::Result<()> {
        let handles: Vec<Value> = table
            .handles
            .iter()
            .map(|(id, h)| json!({"handle": id, "path": h.path, "mode": h.mode_text, "position": h.position}))
            .collect();
        let text = json!({"next": table.next, "handles": handles}).to_string();
        let tmp = self.state_path.with_extension("json.tmp");
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, &self.state_path)
    }

    pub fn open(&self, path: &str, mode: Option<&str>) -> Result<i64, CommandError> {
        let mode_text = mode.unwrap_or("r");
        let parsed = parse_mode(mode_text)
            .ok_or_else(|| CommandError::generic(format!("invalid file open mode '{mode_text}'")))?;
        let file = parsed.options(false).open(path).map_err(|e| {
            CommandError::generic(format!(
                "failed to open file '{path}' (mode: '{mode_text}'): {}",
                strerror(&e)
            ))
        })?;
        // Reopening after a restart must find the same file whatever the
        // agent's working directory is then.
        let absolute = std::path::absolute(path).unwrap_or_else(|_| PathBuf::from(path));
        let mut table = self.lock();
        let id = table.next;
        // Only a hand-edited state file gets this far.
        table.next = id
            .checked_add(1)
            .ok_or_else(|| CommandError::generic("no more file handles"))?;
        table.handles.insert(
            id,
            Handle {
                path: absolute,
                mode_text: mode_text.to_string(),
                mode: parsed,
                position: 0,
                file: Some(file),
            },
        );
        if let Err(e) = self.save(&table) {
            table.handles.remove(&id);
            return Err(CommandError::generic(format!(
                "failed to commit persistent state to disk ('{}'): {}",
                self.state_path.display(),
                strerror(&e)
            )));
        }
        Ok(id)
    }

    pub fn close(&self, handle: i64) -> Result<(), CommandError> {
        let mut table = self.lock();
        table.handles.remove(&handle).ok_or_else(|| not_found(handle))?;
        // The handle is gone in this process either way; a stale entry
        // in the state file would only name a handle nobody holds.
        let _ = self.save(&table);
        Ok(())
    }

    /// Records a handle's new position; failures cost only the position
    /// after a restart, never the operation that succeeded. The state
    /// file is rewritten only when the position moved.
    fn after_io(&self, table: &mut Table, handle: i64) {
        let Some(h) = table.handles.get_mut(&handle) else {
            return;
        };
        match h.file.as_mut().and_then(|f| f.stream_position().ok()) {
            Some(pos) if pos != h.position => h.position = pos,
            _ => return,
        }
        let _ = self.save(table);
    }

    pub fn read(&self, args: &GuestFileReadArgs) -> Result<GuestFileRead, CommandError> {
        let count = args.count.unwrap_or(READ_COUNT_DEFAULT);
        let mut table = self.lock();
        let h = table
            .handles
            .get_mut(&args.handle)
            .ok_or_else(|| not_found(args.handle))?;
        if !(0..=READ_COUNT_MAX).contains(&count) {
            return Err(invalid_count(count));
        }
        let file = h.file()?;
        let mut buf = Vec::new();
        let mut limited = file.take(count as u64);
        let mut would_block = false;
        loop {
            match limited.read_to_end(&mut buf) {
                Ok(_) => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // An empty pipe after some bytes: those bytes are already
                // consumed, so they are returned rather than lost.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && !buf.is_empty() => {
                    would_block = true;
                    break;
                }
                Err(e) => return Err(CommandError::generic(format!("failed to read file: {}", strerror(&e)))),
            }
        }
        // End of file means the read came up short, as qemu-ga reports
        // it: a zero-byte read never says eof.
        let reply = GuestFileRead {
            count: buf.len() as i64,
            buf_b64: base64::engine::general_purpose::STANDARD.encode(&buf),
            eof: !would_block && (buf.len() as i64) < count,
        };
        self.after_io(&mut table, args.handle);
        Ok(reply)
    }

    pub fn write(&self, args: &GuestFileWriteArgs) -> Result<GuestFileWrite, CommandError> {
        let mut table = self.lock();
        let h = table
            .handles
            .get_mut(&args.handle)
            .ok_or_else(|| not_found(args.handle))?;
        let data = decode_base64(&args.buf_b64)?;
        let count = args.count.unwrap_or(data.len() as i64);
        if count < 0 || count > data.len() as i64 {
            return Err(invalid_count(count));
        }
        let file = h.file()?;
        file.write_all(&data[..count as usize])
            .map_err(|e| CommandError::generic(format!("failed to write to file: {}", strerror(&e))))?;
        let reply = GuestFileWrite { count, eof: false };
        self.after_io(&mut table, args.handle);
        Ok(reply)
    }

    pub fn seek(&self, args: &GuestFileSeekArgs) -> Result<GuestFileSeek, CommandError> {
        let mut table = self.lock();
        let h = table
            .handles
            .get_mut(&args.handle)
            .ok_or_else(|| not_found(args.handle))?;
        let whence = match &args.whence {
            GuestFileWhence::Value(code @ 0..=2) => *code,
            GuestFileWhence::Value(code) => return Err(CommandError::generic(format!("invalid whence code {code}"))),
            GuestFileWhence::Name(QgaSeek::Set) => 0,
            GuestFileWhence::Name(QgaSeek::Cur) => 1,
            GuestFileWhence::Name(QgaSeek::End) => 2,
            GuestFileWhence::Name(other) => {
                return Err(CommandError::generic(format!("invalid whence '{other:?}'")));
            }
        };
        let target = match whence {
            0 => u64::try_from(args.offset).map(SeekFrom::Start).ok(),
            1 => Some(SeekFrom::Current(args.offset)),
            _ => Some(SeekFrom::End(args.offset)),
        };
        let file = h.file()?;
        let position = target
            .ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))
            .and_then(|t| file.seek(t))
            .map_err(|e| CommandError::generic(format!("failed to seek file: {}", strerror(&e))))?;
        let reply = GuestFileSeek {
            position: position as i64,
            eof: false,
        };
        self.after_io(&mut table, args.handle);
        Ok(reply)
    }

    pub fn flush(&self, handle: i64) -> Result<(), CommandError> {
        let mut table = self.lock();
        let h = table.handles.get_mut(&handle).ok_or_else(|| not_found(handle))?;
        h.file()?
            .flush()
            .map_err(|e| CommandError::generic(format!("failed to flush file: {}", strerror(&e))))
    }
}

/// Standard base64, strict about the alphabet, tolerant about padding.
pub fn decode_base64(text: &str) -> Result<Vec<u8>, CommandError> {
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    const ENGINE: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    ENGINE
        .decode(text)
        .map_err(|_| CommandError::generic("Base64 data contains invalid characters"))
}

fn table_from_json(v: &Value) -> Table {
    let mut table = Table {
        next: v.get("next").and_then(Value::as_i64).unwrap_or(FIRST_HANDLE),
        handles: BTreeMap::new(),
    };
    for entry in v.get("handles").and_then(Value::as_array).into_iter().flatten() {
        let (Some(id), Some(path), Some(mode_text), Some(position)) = (
            entry.get("handle").and_then(Value::as_i64),
            entry.get("path").and_then(Value::as_str),
            entry.get("mode").and_then(Value::as_str),
            entry.get("position").and_then(Value::as_u64),
        ) else {
            continue;
        };
        let Some(mode) = parse_mode(mode_text) else { continue };
        table.next = table.next.max(id.saturating_add(1));
        table.handles.insert(
            id,
            Handle {
                path: PathBuf::from(path),
                mode_text: mode_text.to_string(),
                mode,
                position,
                file: None,
            },
        );
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD;

    fn read(t: &FileTable, handle: i64, count: Option<i64>) -> Result<GuestFileRead, CommandError> {
        t.read(&GuestFileReadArgs { handle, count })
    }

    fn write(t: &FileTable, handle: i64, data: &[u8]) -> GuestFileWrite {
        t.write(&GuestFileWriteArgs {
            handle,
            buf_b64: STANDARD.encode(data),
            count: None,
        })
        .unwrap()
    }

    fn seek(t: &FileTable, handle: i64, offset: i64, whence: GuestFileWhence) -> Result<GuestFileSeek, CommandError> {
        t.seek(&GuestFileSeekArgs { handle, offset, whence })
    }

    #[test]
    fn linux_file_round_trip_and_errors() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        std::fs::create_dir(&state).unwrap();
        let path = dir.path().join("f.txt");
        let path_str = path.to_str().unwrap();
        let t = FileTable::new(&state);

        let h = t.open(path_str, Some("w+")).unwrap();
        assert_eq!(h, 1000);
        assert_eq!(write(&t, h, b"hello\n").count, 6);
        let r = read(&t, h, None).unwrap();
        assert_eq!((r.count, r.eof, r.buf_b64.as_str()), (0, true, ""));
        assert_eq!(seek(&t, h, 1, GuestFileWhence::Name(QgaSeek::Set)).unwrap().position, 1);
        let r = read(&t, h, Some(3)).unwrap();
        assert_eq!((r.count, r.eof), (3, false));
        assert_eq!(STANDARD.decode(r.buf_b64).unwrap(), b"ell");
        let r = read(&t, h, Some(0)).unwrap();
        assert_eq!((r.count, r.eof), (0, false));
        let r = read(&t, h, None).unwrap();
        assert_eq!((r.count, r.eof), (2, true));
        let r = read(&t, h, None).unwrap();
        assert_eq!((r.count, r.eof), (0, true));
        // qemu-ga 7.2 answers eof false to a zero-byte read, even at the end.
        assert!(!read(&t, h, Some(0)).unwrap().eof);
        assert_eq!(
            seek(&t, h, -2, GuestFileWhence::Value(2)).unwrap(),
            GuestFileSeek {
                position: 4,
                eof: false
            }
        );
        assert_eq!(
            seek(&t, h, -100, GuestFileWhence::Value(0)).unwrap_err().desc,
            "failed to seek file: Invalid argument"
        );
        assert_eq!(
            seek(&t, h, 0, GuestFileWhence::Value(7)).unwrap_err().desc,
            "invalid whence code 7"
        );
        assert_eq!(
            read(&t, h, Some(READ_COUNT_MAX + 1)).unwrap_err().desc,
            "value '50331649' is invalid for argument count"
        );
        assert!(read(&t, h, Some(READ_COUNT_MAX)).is_ok());
        assert_eq!(
            read(&t, h, Some(-1)).unwrap_err().desc,
            "value '-1' is invalid for argument count"
        );
        let bad = t.write(&GuestFileWriteArgs {
            handle: h,
            buf_b64: "!!!".into(),
            count: None,
        });
        assert_eq!(bad.unwrap_err().desc, "Base64 data contains invalid characters");
        let too_many = t.write(&GuestFileWriteArgs {
            handle: h,
            buf_b64: STANDARD.encode(b"hi"),
            count: Some(3),
        });
        assert_eq!(too_many.unwrap_err().desc, "value '3' is invalid for argument count");
        t.flush(h).unwrap();
        t.close(h).unwrap();
        assert_eq!(t.close(h).unwrap_err().desc, "handle '1000' has not been found");
        assert_eq!(read(&t, 5, None).unwrap_err().desc, "handle '5' has not been found");
        assert_eq!(std::fs::read(&path).unwrap(), b"hello\n");

        let ro = t.open(path_str, None).unwrap();
        assert_eq!(ro, 1001, "handles are not reused");
        let denied = t.write(&GuestFileWriteArgs {
            handle: ro,
            buf_b64: STANDARD.encode(b"x"),
            count: None,
        });
        assert_eq!(denied.unwrap_err().desc, "failed to write to file: Bad file descriptor");
        assert_eq!(
            t.open(path_str, Some("zz")).unwrap_err().desc,
            "invalid file open mode 'zz'"
        );
        let missing = dir.path().join("missing");
        assert_eq!(
            t.open(missing.to_str().unwrap(), None).unwrap_err().desc,
            format!(
                "failed to open file '{}' (mode: 'r'): No such file or directory",
                missing.display()
            )
        );
    }

    #[test]
    fn linux_file_handles_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data");
        let path_str = path.to_str().unwrap();
        let (rw, appender, reader) = {
            let t = FileTable::new(dir.path());
            let rw = t.open(path_str, Some("w+")).unwrap();
            write(&t, rw, b"0123456789");
            seek(&t, rw, 4, GuestFileWhence::Name(QgaSeek::Set)).unwrap();
            let appender = t.open(path_str, Some("a")).unwrap();
            let reader = t.open(path_str, Some("r")).unwrap();
            assert_eq!(read(&t, reader, Some(2)).unwrap().count, 2);
            (rw, appender, reader)
        };
        // A new agent on the same statedir: same handles, same positions,
        // and "w+"/"a" neither truncate nor recreate the file.
        let t = FileTable::new(dir.path());
        let r = read(&t, rw, Some(3)).unwrap();
        assert_eq!(STANDARD.decode(r.buf_b64).unwrap(), b"456");
        write(&t, appender, b"AB");
        let r = read(&t, reader, None).unwrap();
        assert_eq!(STANDARD.decode(r.buf_b64).unwrap(), b"23456789AB");
        assert!(r.eof);
        assert_eq!(std::fs::read(&path).unwrap(), b"0123456789AB");
        let next = t.open(path_str, None).unwrap();
        assert!(next > reader, "new handles continue after the old ones");
        t.close(rw).unwrap();
        drop(t);
        let t = FileTable::new(dir.path());
        assert_eq!(
            read(&t, rw, None).unwrap_err().desc,
            format!("handle '{rw}' has not been found")
        );
        assert!(read(&t, appender, None).is_err(), "append-only handle can't read");
        // A file removed meanwhile is reported when the handle is used.
        std::fs::remove_file(&path).unwrap();
        let err = read(&t, reader, None).unwrap_err().desc;
        assert!(err.starts_with("failed to reopen file"), "{err}");
    }

    #[test]
    fn linux_file_corrupt_state_starts_empty() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(STATE_FILE), "{not json").unwrap();
        let t = FileTable::new(dir.path());
        let path = dir.path().join("x");
        std::fs::write(&path, "x").unwrap();
        assert_eq!(t.open(path.to_str().unwrap(), None).unwrap(), FIRST_HANDLE);
    }

    #[test]
    fn linux_file_read_of_a_pipe_keeps_what_it_got() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        // Read-write, so neither this open nor the agent's blocks.
        let mut writer = OpenOptions::new().read(true).write(true).open(&fifo).unwrap();
        let t = FileTable::new(dir.path());
        let h = t.open(fifo.to_str().unwrap(), None).unwrap();
        writer.write_all(b"abc").unwrap();
        let r = read(&t, h, Some(10)).unwrap();
        assert_eq!((r.count, r.eof), (3, false));
        assert_eq!(STANDARD.decode(r.buf_b64).unwrap(), b"abc");
        // Nothing there at all: qemu-ga's error, never a hang.
        assert_eq!(
            read(&t, h, Some(10)).unwrap_err().desc,
            "failed to read file: Resource temporarily unavailable"
        );
    }

    #[test]
    fn linux_file_state_is_saved_when_the_position_moves() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, "abc").unwrap();
        let t = FileTable::new(dir.path());
        let h = t.open(path.to_str().unwrap(), None).unwrap();
        let state = dir.path().join(STATE_FILE);
        std::fs::remove_file(&state).unwrap();
        assert_eq!(read(&t, h, Some(0)).unwrap().count, 0);
        t.flush(h).unwrap();
        assert!(!state.exists(), "nothing moved, nothing written");
        assert_eq!(read(&t, h, Some(2)).unwrap().count, 2);
        let saved: Value = serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
        assert_eq!(saved["handles"][0]["position"], 2);
    }

    #[test]
    fn linux_file_open_of_a_pipe_never_waits_for_the_other_end() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        let (done, finished) = std::sync::mpsc::channel();
        let state = dir.path().to_path_buf();
        let fifo_path = fifo.to_str().unwrap().to_string();
        std::thread::spawn(move || {
            let t = FileTable::new(&state);
            let writer = t.open(&fifo_path, Some("a")).map_err(|e| e.desc);
            let reader = t.open(&fifo_path, Some("r")).map(|_| ());
            let _ = done.send((reader, writer));
        });
        let (reader, writer) = finished
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("open of a FIFO without a writer hung");
        reader.unwrap();
        // A write end with no reader is refused at once (ENXIO).
        assert_eq!(
            writer.unwrap_err(),
            format!(
                "failed to open file '{}' (mode: 'a'): No such device or address",
                fifo.display()
            )
        );
    }

    #[test]
    fn linux_file_state_at_the_handle_limit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x");
        std::fs::write(&path, "x").unwrap();
        let state = json!({"next": 0, "handles": [{"handle": i64::MAX, "path": path, "mode": "r", "position": 0}]});
        std::fs::write(dir.path().join(STATE_FILE), state.to_string()).unwrap();
        let t = FileTable::new(dir.path());
        assert_eq!(read(&t, i64::MAX, None).unwrap().count, 1);
        assert_eq!(
            t.open(path.to_str().unwrap(), None).unwrap_err().desc,
            "no more file handles"
        );
    }

    #[test]
    fn linux_file_modes() {
        for valid in [
            "r", "rb", "w", "wb", "a", "ab", "r+", "rb+", "r+b", "w+", "wb+", "w+b", "a+", "ab+", "a+b",
        ] {
            assert!(parse_mode(valid).is_some(), "{valid}");
        }
        for invalid in ["", "x", "rw", "r++", "wx"] {
            assert!(parse_mode(invalid).is_none(), "{invalid}");
        }
        assert_eq!(decode_base64("aGk").unwrap(), b"hi");
        assert_eq!(decode_base64("aGk=").unwrap(), b"hi");
    }
}
