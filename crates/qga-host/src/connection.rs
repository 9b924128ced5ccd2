//! A blocking connection to one agent.

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use qga_types::runtime::framing::{after_delimiter, Frame, MessageReader, DELIMITER};
use qga_types::runtime::serde_json::{self, json, Value};
use qga_types::runtime::{CommandInfo, Reply, Request, Transport};

/// Where an agent listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// The host end of a `-chardev socket` (or `qemu-ga -m unix-listen`).
    Unix(PathBuf),
    /// `host:port`.
    Tcp(String),
}

/// How long to wait for replies, as libvirt offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ResponseTimeout {
    /// Wait as long as it takes.
    Block,
    /// Five seconds.
    #[default]
    Default,
    /// Send, and do not wait for the reply.
    NoWait,
    Seconds(u64),
}

impl ResponseTimeout {
    fn duration(self) -> Option<Duration> {
        match self {
            ResponseTimeout::Block => None,
            ResponseTimeout::Default => Some(Duration::from_secs(5)),
            ResponseTimeout::NoWait => Some(Duration::ZERO),
            ResponseTimeout::Seconds(s) => Some(Duration::from_secs(s)),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Options {
    pub timeout: ResponseTimeout,
    /// Replies larger than this are refused (and the channel resynced).
    pub max_reply_size: usize,
    /// How long to watch for an error after sending a command that does
    /// not reply on success.
    pub no_reply_window: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            timeout: ResponseTimeout::Default,
            max_reply_size: 16 * 1024 * 1024,
            no_reply_window: Duration::from_millis(500),
        }
    }
}

/// Why an exchange with the agent failed.
#[derive(Debug)]
pub enum Error {
    /// Connecting, reading or writing failed.
    Io(io::Error),
    /// No reply within the timeout; the next call resynchronises.
    Timeout,
    /// The agent closed the connection.
    Closed,
    /// A reply larger than the configured limit.
    ReplyTooLarge { limit: usize },
    /// The agent sent something that is not a reply.
    Protocol(String),
    /// The call was made with [`ResponseTimeout::NoWait`]: sent, not awaited.
    NotAwaited,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io(e) => write!(f, "connection error: {e}"),
            Error::Timeout => f.write_str("timed out waiting for the agent"),
            Error::Closed => f.write_str("the agent closed the connection"),
            Error::ReplyTooLarge { limit } => write!(f, "reply larger than {limit} bytes"),
            Error::Protocol(m) => write!(f, "protocol error: {m}"),
            Error::NotAwaited => f.write_str("request sent without waiting for the reply"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(e) => Some(e),
            _ => None,
        }
    }
}

/// The byte streams a connection runs over.
enum Stream {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl Stream {
    fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        // A zero timeout means "none" to the OS; poll briefly instead.
        let t = t.map(|t| t.max(Duration::from_millis(1)));
        match self {
            Stream::Unix(s) => s.set_read_timeout(t),
            Stream::Tcp(s) => s.set_read_timeout(t),
        }
    }

    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Unix(s) => s.read(buf),
            Stream::Tcp(s) => s.read(buf),
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Stream::Unix(s) => s.write_all(buf),
            Stream::Tcp(s) => s.write_all(buf),
        }
    }
}

const SYNC_TIMEOUT: Duration = Duration::from_secs(5);

/// A blocking connection: one request in flight at a time.
pub struct Connection {
    stream: Stream,
    options: Options,
    reader: MessageReader,
    /// Complete frames read but not yet consumed.
    pending: std::collections::VecDeque<Frame>,
    /// Set after a timeout, error or unanswered request: the stream may
    /// hold stale output, so the next call resynchronises first.
    dirty: bool,
    next_id: u64,
}

/// A random 64-bit value: each `RandomState` is freshly keyed.
fn random_u64() -> u64 {
    RandomState::new().build_hasher().finish()
}

impl Connection {
    /// Connects and resynchronises.
    pub fn connect(endpoint: &Endpoint, options: Options) -> Result<Connection, Error> {
        let stream = match endpoint {
            Endpoint::Unix(p) => Stream::Unix(UnixStream::connect(p).map_err(Error::Io)?),
            Endpoint::Tcp(a) => Stream::Tcp(TcpStream::connect(a).map_err(Error::Io)?),
        };
        let reader = MessageReader::new(qga_types::runtime::framing::MAX_NESTING, options.max_reply_size);
        let mut conn = Connection {
            stream,
            options,
            reader,
            pending: Default::default(),
            dirty: true,
            next_id: random_u64() >> 1,
        };
        conn.resync()?;
        Ok(conn)
    }

    pub fn options_mut(&mut self) -> &mut Options {
        &mut self.options
    }

    /// Sends 0xFF and `guest-sync-delimited` with a fresh random id, drops
    /// everything up to the agent's 0xFF, then drops replies until the one
    /// carrying that id.
    pub fn resync(&mut self) -> Result<(), Error> {
        self.dirty = true;
        let id = random_u64() >> 1;
        let timeout = match self.options.timeout.duration() {
            Some(t) if !t.is_zero() => t.min(SYNC_TIMEOUT),
            _ => SYNC_TIMEOUT,
        };
        let deadline = Some(Instant::now() + timeout);
        self.reader.reset();
        self.pending.clear();
        let request = json!({"execute": "guest-sync-delimited", "arguments": {"id": id}});
        let mut bytes = vec![DELIMITER];
        bytes.extend(serde_json::to_vec(&request).expect("requests encode"));
        bytes.push(b'\n');
        self.stream.write_all(&bytes).map_err(Error::Io)?;
        // Everything before the agent's 0xFF is stale, including its error
        // reply to our own 0xFF.
        let mut buf = [0u8; 4096];
        loop {
            let n = self.read_some(&mut buf, deadline)?;
            if let Some(at) = after_delimiter(&buf[..n]) {
                let mut frames = Vec::new();
                self.reader.push(&buf[at..n], &mut frames);
                self.pending.extend(frames);
                break;
            }
        }
        loop {
            let reply = self.next_reply(deadline)?;
            if reply.result.as_ref().ok().and_then(Value::as_u64) == Some(id) {
                self.dirty = false;
                return Ok(());
            }
        }
    }

    /// Reads what is there, waiting until `deadline` (`None`: forever).
    fn read_some(&mut self, buf: &mut [u8], deadline: Option<Instant>) -> Result<usize, Error> {
        let left = match deadline {
            Some(d) => Some(d.checked_duration_since(Instant::now()).ok_or(Error::Timeout)?),
            None => None,
        };
        self.stream.set_read_timeout(left).map_err(Error::Io)?;
        match self.stream.read(buf) {
            Ok(0) => Err(Error::Closed),
            Ok(n) => Ok(n),
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => Err(Error::Timeout),
            Err(e) => Err(Error::Io(e)),
        }
    }

    /// The next complete reply, reading as needed until `deadline`.
    fn next_reply(&mut self, deadline: Option<Instant>) -> Result<Reply, Error> {
        loop {
            while let Some(frame) = self.pending.pop_front() {
                match frame {
                    Frame::Message(bytes) => {
                        let value: Value = serde_json::from_slice(&bytes)
                            .map_err(|e| Error::Protocol(format!("reply is not JSON: {e}")))?;
                        return Reply::from_value(value).map_err(Error::Protocol);
                    }
                    Frame::TooLarge | Frame::TooDeep => {
                        return Err(Error::ReplyTooLarge {
                            limit: self.options.max_reply_size,
                        })
                    }
                    // A delimiter outside a sync is stale output; skip it.
                    Frame::Delimiter => {}
                }
            }
            let mut buf = [0u8; 8192];
            let n = self.read_some(&mut buf, deadline)?;
            let mut frames = Vec::new();
            self.reader.push(&buf[..n], &mut frames);
            self.pending.extend(frames);
        }
    }

    fn send_request(&mut self, command: &CommandInfo, arguments: Option<Value>) -> Result<u64, Error> {
        if self.dirty {
            self.resync()?;
        }
        self.next_id = self.next_id.wrapping_add(1);
        let id = self.next_id;
        let request = Request {
            execute: command.name.to_string(),
            arguments,
            id: Some(id.into()),
        };
        let mut bytes = serde_json::to_vec(&request).expect("requests encode");
        bytes.push(b'\n');
        // Until the reply is consumed, anything may still be in flight.
        self.dirty = true;
        self.stream.write_all(&bytes).map_err(Error::Io)?;
        Ok(id)
    }

    fn exchange(&mut self, command: &CommandInfo, arguments: Option<Value>) -> Result<Reply, Error> {
        let id = self.send_request(command, arguments)?;
        let deadline = match self.options.timeout.duration() {
            Some(t) if t.is_zero() => return Err(Error::NotAwaited),
            Some(t) => Some(Instant::now() + t),
            None => None,
        };
        loop {
            let reply = self.next_reply(deadline)?;
            // A reply to an earlier request is stale: drop it.
            if reply.id.as_ref().and_then(Value::as_u64) == Some(id) {
                self.dirty = false;
                return Ok(reply);
            }
        }
    }
}

impl Transport for Connection {
    type Error = Error;

    fn call(&mut self, command: &'static CommandInfo, arguments: Option<Value>) -> Result<Reply, Error> {
        self.exchange(command, arguments)
    }

    fn send(&mut self, command: &'static CommandInfo, arguments: Option<Value>) -> Result<Option<Reply>, Error> {
        let id = self.send_request(command, arguments)?;
        let deadline = Some(Instant::now() + self.options.no_reply_window);
        loop {
            match self.next_reply(deadline) {
                Ok(reply) if reply.id.as_ref().and_then(Value::as_u64) == Some(id) => {
                    self.dirty = false;
                    return Ok(Some(reply));
                }
                Ok(_) => {}
                // Silence or the guest going away: the command was taken.
                // The channel stays dirty, so a late error never reaches a
                // later call.
                Err(Error::Timeout) | Err(Error::Closed) => return Ok(None),
                Err(e) => return Err(e),
            }
        }
    }
}
