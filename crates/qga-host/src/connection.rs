//! A blocking connection to one agent.

use std::io;
use std::time::{Duration, Instant};

use qga_types::runtime::client::{call, send};
use qga_types::runtime::serde_json::Value;
use qga_types::runtime::{CommandInfo, NoReplyCommand, Reply, ReplyCommand, Transport};

use crate::core::{replies_on_success, Core, SyncProgress};
use crate::stream::{Endpoint, Stream};
use crate::{Error, Options, ResponseTimeout};

type Connector = Box<dyn FnMut() -> io::Result<Box<dyn Stream>> + Send>;

/// A blocking connection: one request in flight at a time, replies matched
/// by id, resynchronised on connect and after any timeout or error.
///
/// It is the [`Transport`] of the generated
/// [`Client`](qga_types::client::Client), whose stubs return
/// `CallError<Error>`; `?` turns that into [`Error`].
pub struct Connection {
    /// `None` once the stream broke (EOF or an I/O error).
    stream: Option<Box<dyn Stream>>,
    /// Opens a new stream after the old one broke.
    connector: Option<Connector>,
    options: Options,
    core: Core,
    /// A one-shot timeout for the next call.
    next_timeout: Option<ResponseTimeout>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("connected", &self.stream.is_some())
            .field("reconnects", &self.connector.is_some())
            .field("options", &self.options)
            .field("dirty", &self.core.dirty)
            .finish()
    }
}

/// Maps the ways a peer going away shows up to [`Error::Closed`].
pub(crate) fn io_error(e: io::Error) -> Error {
    match e.kind() {
        io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionAborted => Error::Closed,
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => Error::Timeout,
        _ => Error::Io(e),
    }
}

impl Connection {
    /// Connects and resynchronises. After the agent goes away the next call
    /// connects again.
    pub fn connect(endpoint: &Endpoint, options: Options) -> Result<Connection, Error> {
        let endpoint = endpoint.clone();
        Connection::with_connector(move || endpoint.connect(), options)
    }

    /// Connects with `connect`, which is called again to reconnect after
    /// the stream broke; then resynchronises.
    pub fn with_connector<F>(mut connect: F, options: Options) -> Result<Connection, Error>
    where
        F: FnMut() -> io::Result<Box<dyn Stream>> + Send + 'static,
    {
        let stream = connect().map_err(Error::Io)?;
        let mut conn = Connection::new(Some(stream), Some(Box::new(connect)), options);
        conn.resync()?;
        Ok(conn)
    }

    /// Runs over a stream you opened; resynchronises first. Without a way
    /// to reconnect, calls after the stream broke give [`Error::Closed`].
    pub fn from_stream(stream: impl Stream + 'static, options: Options) -> Result<Connection, Error> {
        let mut conn = Connection::new(Some(Box::new(stream)), None, options);
        conn.resync()?;
        Ok(conn)
    }

    fn new(stream: Option<Box<dyn Stream>>, connector: Option<Connector>, options: Options) -> Connection {
        Connection {
            stream,
            connector,
            core: Core::new(options.max_reply_size),
            options,
            next_timeout: None,
        }
    }

    pub fn options(&self) -> &Options {
        &self.options
    }

    /// Changes take effect with the next call (a new `max_reply_size` with
    /// the next reconnect).
    pub fn options_mut(&mut self) -> &mut Options {
        &mut self.options
    }

    /// Uses `timeout` for the next call only, for commands that may take
    /// long (a freeze may need minutes).
    pub fn set_next_timeout(&mut self, timeout: ResponseTimeout) {
        self.next_timeout = Some(timeout);
    }

    /// Whether the next call resynchronises first.
    pub fn is_dirty(&self) -> bool {
        self.core.dirty || self.stream.is_none()
    }

    /// Opens a new stream (when the connection knows how) and resyncs.
    pub fn reconnect(&mut self) -> Result<(), Error> {
        let connect = self.connector.as_mut().ok_or(Error::Closed)?;
        self.stream = None;
        self.stream = Some(connect().map_err(Error::Io)?);
        self.core = Core::new(self.options.max_reply_size);
        self.resync()
    }

    /// Sends 0xFF and `guest-sync-delimited` with a fresh random id, drops
    /// everything up to the agent's 0xFF, then drops replies until the one
    /// carrying that id. Waits 5 s, or the response timeout if shorter.
    /// Agents without `guest-sync-delimited` (0.15, 1.0) get `guest-sync`.
    pub fn resync(&mut self) -> Result<(), Error> {
        let timeout = self.next_timeout.unwrap_or(self.options.timeout);
        let result = self.resync_within(timeout.sync_duration());
        self.note(result)
    }

    fn resync_within(&mut self, timeout: Duration) -> Result<(), Error> {
        let deadline = Some(Instant::now() + timeout);
        let (mut id, bytes) = self.core.begin_sync();
        self.write(&bytes, deadline)?;
        loop {
            match self.core.sync_progress(id) {
                SyncProgress::Done => return Ok(()),
                SyncProgress::Fallback => {
                    let (fresh, bytes) = self.core.begin_sync();
                    id = fresh;
                    self.write(&bytes, deadline)?;
                }
                SyncProgress::Pending => self.fill(deadline)?,
            }
        }
    }

    /// Drops a broken stream so the next call reconnects.
    fn note<T>(&mut self, result: Result<T, Error>) -> Result<T, Error> {
        if let Err(e) = &result {
            if e.is_broken_stream() {
                self.stream = None;
            }
        }
        result
    }

    /// Writes everything by `deadline` (`None`: no limit).
    fn write(&mut self, bytes: &[u8], deadline: Option<Instant>) -> Result<(), Error> {
        let stream = self.stream.as_mut().ok_or(Error::Closed)?;
        let mut rest = bytes;
        while !rest.is_empty() {
            if let Some(d) = deadline {
                let left = d.checked_duration_since(Instant::now()).ok_or(Error::Timeout)?;
                stream
                    .set_write_timeout(Some(left.max(Duration::from_millis(1))))
                    .map_err(Error::Io)?;
            } else {
                stream.set_write_timeout(None).map_err(Error::Io)?;
            }
            match stream.write(rest) {
                Ok(0) => return Err(Error::Closed),
                Ok(n) => rest = &rest[n..],
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io_error(e)),
            }
        }
        stream.flush().map_err(io_error)
    }

    /// Reads once, waiting until `deadline` (`None`: forever).
    fn fill(&mut self, deadline: Option<Instant>) -> Result<(), Error> {
        let stream = self.stream.as_mut().ok_or(Error::Closed)?;
        let left = match deadline {
            Some(d) => Some(d.checked_duration_since(Instant::now()).ok_or(Error::Timeout)?),
            None => None,
        };
        // A zero timeout means "none" to the OS; wait a moment instead.
        stream
            .set_read_timeout(left.map(|t| t.max(Duration::from_millis(1))))
            .map_err(Error::Io)?;
        let mut buf = [0u8; 8192];
        match stream.read(&mut buf) {
            Ok(0) => Err(Error::Closed),
            Ok(n) => {
                self.core.feed(&buf[..n]);
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(()),
            Err(e) => Err(io_error(e)),
        }
    }

    /// The next complete reply, reading as needed until `deadline`.
    fn next_reply(&mut self, deadline: Option<Instant>) -> Result<Reply, Error> {
        loop {
            if let Some(reply) = self.core.next_reply() {
                return reply;
            }
            self.fill(deadline)?;
        }
    }

    /// Reconnects if the stream broke, resyncs if the channel is dirty,
    /// then sends the request. Returns its id, the call's timeout and
    /// when the request started to go out.
    fn send_request(&mut self, name: &str, arguments: Option<Value>) -> Result<(u64, ResponseTimeout, Instant), Error> {
        let timeout = self.next_timeout.unwrap_or(self.options.timeout);
        let result = self.prepare_and_send(name, arguments, timeout);
        self.next_timeout = None;
        result.map(|(id, sent)| (id, timeout, sent))
    }

    fn prepare_and_send(
        &mut self,
        name: &str,
        arguments: Option<Value>,
        timeout: ResponseTimeout,
    ) -> Result<(u64, Instant), Error> {
        if self.stream.is_none() {
            self.reconnect()?;
        } else if self.core.dirty {
            self.resync()?;
        }
        let (id, bytes) = self.core.request(name, arguments);
        let sent = Instant::now();
        let result = self.write(&bytes, timeout.write_duration().and_then(|t| sent.checked_add(t)));
        self.note(result)?;
        Ok((id, sent))
    }

    /// Sends a command by wire name and waits for its reply.
    pub fn call_raw(&mut self, name: &str, arguments: Option<Value>) -> Result<Reply, Error> {
        let (id, timeout, sent) = self.send_request(name, arguments)?;
        let deadline = match timeout.duration() {
            Some(t) if t.is_zero() => return Err(Error::NotAwaited),
            // A timeout past the end of time waits forever.
            Some(t) => sent.checked_add(t),
            None => None,
        };
        let result = self.await_reply(id, deadline);
        self.note(result)
    }

    fn await_reply(&mut self, id: u64, deadline: Option<Instant>) -> Result<Reply, Error> {
        loop {
            let reply = self.next_reply(deadline)?;
            // A reply to an earlier request, or with a wrong id, is stale.
            if self.core.settles(&reply, id) {
                return Ok(reply);
            }
        }
    }

    /// Sends a command that does not reply on success and watches for an
    /// error reply during `no_reply_window`. Silence and EOF (the guest
    /// went down) are success. The channel stays dirty, so a late error
    /// can never reach a later call.
    pub fn send_raw(&mut self, name: &str, arguments: Option<Value>) -> Result<Option<Reply>, Error> {
        let (id, _, _) = self.send_request(name, arguments)?;
        let deadline = Instant::now().checked_add(self.options.no_reply_window);
        loop {
            match self.next_reply(deadline) {
                Ok(reply) if self.core.settles(&reply, id) => {
                    return Ok(Some(reply));
                }
                Ok(_) => {}
                Err(Error::Timeout) => return Ok(None),
                Err(Error::Closed) => {
                    self.stream = None;
                    return Ok(None);
                }
                Err(e) => return self.note(Err(e)),
            }
        }
    }

    /// Runs a command by wire name: its return value, or the error sorted
    /// into not found, disabled and the rest. Commands that `COMMANDS`
    /// lists without a success response go through [`send_raw`](Self::send_raw)
    /// and return `null`.
    pub fn execute(&mut self, name: &str, arguments: Option<Value>) -> Result<Value, Error> {
        if !replies_on_success(name) {
            return match self.send_raw(name, arguments)? {
                Some(reply) => Error::check_reply(reply),
                None => Ok(Value::Null),
            };
        }
        Error::check_reply(self.call_raw(name, arguments)?)
    }

    /// A typed call returning [`Error`]: `conn.run::<GuestGetTime>(&Empty {})`.
    pub fn run<C: ReplyCommand>(&mut self, args: &C::Args) -> Result<C::Returns, Error> {
        Ok(call::<C, _>(self, args)?)
    }

    /// A typed command without a success response, returning [`Error`].
    pub fn run_no_reply<C: NoReplyCommand>(&mut self, args: &C::Args) -> Result<(), Error> {
        Ok(send::<C, _>(self, args)?)
    }
}

impl Transport for Connection {
    type Error = Error;

    fn call(&mut self, command: &'static CommandInfo, arguments: Option<Value>) -> Result<Reply, Error> {
        self.call_raw(command.name, arguments)
    }

    fn send(&mut self, command: &'static CommandInfo, arguments: Option<Value>) -> Result<Option<Reply>, Error> {
        self.send_raw(command.name, arguments)
    }
}
