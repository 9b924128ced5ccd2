//! Shared by the differential test, the soak test and the benchmark
//! (agentverify's files): start an agent (ours or qemu-ga) on a unix
//! socket in a temporary directory, talk raw bytes to it, and split what
//! comes back into 0xFF delimiters and JSON replies.
#![allow(dead_code)] // each user takes a different part

use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const QEMU_GA: &str = "/usr/sbin/qemu-ga";

/// Id of the `guest-sync` appended to every transcript: its reply marks
/// the end of the replies to the transcript and proves recovery.
pub const SENTINEL_ID: i64 = 7_770_777;

/// How long one transcript may take before the test gives up.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(20);

/// Whether qemu-ga is installed. Without it the caller skips with a
/// printed message, unless `QGA_REAL_AGENT_REQUIRED` is set (CI), in
/// which case this panics.
pub fn qemu_ga_available(test: &str) -> bool {
    if Path::new(QEMU_GA).exists() {
        return true;
    }
    let message =
        format!("\n*** {test}: {QEMU_GA} not found (apt-get install qemu-guest-agent); test did NOT run ***\n");
    assert!(std::env::var_os("QGA_REAL_AGENT_REQUIRED").is_none(), "{message}");
    eprintln!("{message}");
    false
}

/// Which agent a process is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Which {
    QemuGa,
    Ours,
}

impl Which {
    pub fn name(self) -> &'static str {
        match self {
            Which::QemuGa => "qemu-ga",
            Which::Ours => "qga-agent",
        }
    }
}

/// An agent listening on `<tempdir>/sock`, killed on drop.
pub struct AgentProcess {
    pub which: Which,
    child: Child,
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    pub started: Instant,
}

impl AgentProcess {
    /// Starts `which` with `-m unix-listen -p SOCK -t STATEDIR -l LOG` and
    /// `extra` arguments, and waits until the socket accepts connections.
    pub fn start(which: Which, our_binary: &Path, extra: &[&str]) -> AgentProcess {
        let agent = Self::spawn(which, our_binary, extra);
        agent.wait_until_listening();
        agent
    }

    /// Starts without waiting for the socket.
    pub fn spawn(which: Which, our_binary: &Path, extra: &[&str]) -> AgentProcess {
        // AGENTVERIFY_OURS=/usr/sbin/qemu-ga checks the harness itself.
        let override_path = std::env::var_os("AGENTVERIFY_OURS");
        let program = match which {
            Which::QemuGa => Path::new(QEMU_GA),
            Which::Ours => override_path.as_deref().map_or(our_binary, Path::new),
        };
        let dir = tempfile::Builder::new()
            .prefix(&format!("agentverify-{}-", which.name()))
            .tempdir()
            .expect("temp dir");
        let socket = dir.path().join("sock");
        let state = dir.path().join("state");
        std::fs::create_dir_all(&state).expect("state dir");
        let stderr = std::fs::File::create(dir.path().join("stderr")).expect("stderr file");
        let started = Instant::now();
        let child = Command::new(program)
            .args(["-m", "unix-listen", "-p"])
            .arg(&socket)
            .arg("-t")
            .arg(&state)
            .arg("-l")
            .arg(dir.path().join("log"))
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
        AgentProcess {
            which,
            child,
            dir,
            socket,
            started,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The agent's stderr and log so far, for failure messages.
    pub fn diagnostics(&self) -> String {
        let read = |name: &str| std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
        format!(
            "{} stderr:\n{}\n{} log:\n{}",
            self.which.name(),
            read("stderr"),
            self.which.name(),
            read("log")
        )
    }

    /// Panics (with the agent's stderr and log) if the process has exited.
    pub fn assert_alive(&mut self) {
        if let Some(status) = self.child.try_wait().expect("try_wait") {
            panic!("{} exited: {status}\n{}", self.which.name(), self.diagnostics());
        }
    }

    fn wait_until_listening(&self) {
        drop(self.connect());
    }

    /// A new client connection. Retries for a while: the agent may not
    /// have bound its socket yet, or still be closing the last client.
    pub fn connect(&self) -> Conn {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match UnixStream::connect(&self.socket) {
                Ok(stream) => return Conn::new(stream, self.which),
                Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
                Err(e) => panic!(
                    "{} connect to {}: {e}\n{}",
                    self.which.name(),
                    self.socket.display(),
                    self.diagnostics()
                ),
            }
        }
    }

    /// VmRSS and VmHWM in KiB from /proc/PID/status.
    pub fn memory_kib(&self) -> (u64, u64) {
        proc_memory_kib(self.pid())
    }

    /// utime + stime in clock ticks from /proc/PID/stat.
    pub fn cpu_ticks(&self) -> u64 {
        proc_cpu_ticks(self.pid())
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn proc_memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc/PID/status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap_or_else(|| panic!("{name} missing in /proc/{pid}/status"))
    };
    (field("VmRSS:"), field("VmHWM:"))
}

pub fn proc_cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc/PID/stat");
    // The command name may contain spaces; fields restart after its ')'.
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    // utime and stime are fields 14 and 15 overall, 12 and 13 after ')'.
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// One thing the agent sent.
#[derive(Clone, Debug, PartialEq)]
pub enum Item {
    /// A 0xFF byte (before a `guest-sync-delimited` reply).
    Delimiter,
    Json(Value),
    /// A line that is not JSON.
    Garbage(String),
}

impl std::fmt::Display for Item {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Item::Delimiter => write!(f, "<0xFF>"),
            Item::Json(v) => {
                let text = v.to_string();
                match text.char_indices().nth(400) {
                    Some((cut, _)) => write!(f, "{}... ({} bytes)", &text[..cut], text.len()),
                    None => f.write_str(&text),
                }
            }
            Item::Garbage(s) => write!(f, "<not JSON: {s:?}>"),
        }
    }
}

/// A client connection with a reply splitter.
pub struct Conn {
    pub stream: UnixStream,
    which: Which,
    pending: Vec<u8>,
    pub items: Vec<Item>,
}

impl Conn {
    fn new(stream: UnixStream, which: Which) -> Conn {
        stream.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        Conn {
            stream,
            which,
            pending: Vec::new(),
            items: Vec::new(),
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream
            .write_all(bytes)
            .unwrap_or_else(|e| panic!("{} write: {e}", self.which.name()));
    }

    /// One write per byte, each flushed before the next.
    pub fn send_bytewise(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.send(std::slice::from_ref(b));
        }
    }

    fn split_pending(&mut self) {
        loop {
            if self.pending.first() == Some(&0xFF) {
                self.pending.remove(0);
                self.items.push(Item::Delimiter);
                continue;
            }
            let Some(end) = self.pending.iter().position(|&b| b == b'\n' || b == 0xFF) else {
                return;
            };
            let line: Vec<u8> = self.pending.drain(..end).collect();
            if self.pending.first() == Some(&b'\n') {
                self.pending.remove(0);
            }
            let text = String::from_utf8_lossy(&line).into_owned();
            if text.trim().is_empty() {
                continue;
            }
            self.items.push(match serde_json::from_str::<Value>(&text) {
                Ok(v) => Item::Json(v),
                Err(_) => Item::Garbage(text),
            });
        }
    }

    /// Reads until `done` holds for the items received so far (returns
    /// them all and clears them), or panics after `timeout`.
    pub fn read_until(&mut self, timeout: Duration, done: impl Fn(&[Item]) -> bool) -> Vec<Item> {
        match self.try_read_until(timeout, done) {
            Ok(items) => items,
            Err(failure) => panic!("{failure}"),
        }
    }

    /// Like [`Conn::read_until`], but a timeout or a closed connection is
    /// an `Err` with a description and the items received so far.
    pub fn try_read_until(&mut self, timeout: Duration, done: impl Fn(&[Item]) -> bool) -> Result<Vec<Item>, String> {
        let deadline = Instant::now() + timeout;
        let mut buf = vec![0u8; 256 * 1024];
        while !done(&self.items) {
            let failure = if Instant::now() >= deadline {
                format!("no complete reply within {timeout:?}")
            } else {
                match self.stream.read(&mut buf) {
                    Ok(0) => "connection closed".to_owned(),
                    Ok(n) => {
                        self.pending.extend_from_slice(&buf[..n]);
                        self.split_pending();
                        continue;
                    }
                    Err(e)
                        if matches!(
                            e.kind(),
                            ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                        ) =>
                    {
                        continue
                    }
                    Err(e) => format!("read: {e}"),
                }
            };
            return Err(format!(
                "{}: {failure}; got so far:\n{}partial line: {:?}",
                self.which.name(),
                render_items(&self.items, 40),
                String::from_utf8_lossy(&self.pending[..self.pending.len().min(400)])
            ));
        }
        Ok(std::mem::take(&mut self.items))
    }

    /// Reads until the reply to the sentinel `guest-sync`.
    pub fn read_to_sentinel(&mut self) -> Vec<Item> {
        self.read_until(REPLY_TIMEOUT, |items| items.iter().any(is_sentinel_reply))
    }

    /// Sends one request and returns its single JSON reply.
    pub fn call(&mut self, request: &str) -> Value {
        self.send(request.as_bytes());
        let items = self.read_until(REPLY_TIMEOUT, |items| items.iter().any(|i| matches!(i, Item::Json(_))));
        match items.as_slice() {
            [Item::Json(v)] => v.clone(),
            other => panic!(
                "{}: expected one reply to {request}, got:\n{}",
                self.which.name(),
                render_items(other, 40)
            ),
        }
    }
}

pub fn sentinel_request() -> String {
    format!(r#"{{"execute":"guest-sync","arguments":{{"id":{SENTINEL_ID}}}}}"#)
}

pub fn is_sentinel_reply(item: &Item) -> bool {
    matches!(item, Item::Json(v) if v.get("return").and_then(Value::as_i64) == Some(SENTINEL_ID))
}

pub fn render_items(items: &[Item], limit: usize) -> String {
    let mut out = String::new();
    for (i, item) in items.iter().enumerate().take(limit) {
        out.push_str(&format!("  [{i}] {item}\n"));
    }
    if items.len() > limit {
        out.push_str(&format!("  ... {} more\n", items.len() - limit));
    }
    out
}

/// Bytes shown readably: printable ASCII as is, the rest escaped.
pub fn show_bytes(bytes: &[u8]) -> String {
    let mut out = String::new();
    for &b in bytes.iter().take(300) {
        match b {
            b' '..=b'~' => out.push(b as char),
            b'\n' => out.push_str("\\n"),
            _ => out.push_str(&format!("\\x{b:02X}")),
        }
    }
    if bytes.len() > 300 {
        out.push_str(&format!("... ({} bytes in all)", bytes.len()));
    }
    out
}
