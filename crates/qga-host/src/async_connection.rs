//! The async (tokio) connection: the same protocol as [`Connection`](crate::Connection),
//! safe to cancel.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use qga_types::runtime::client::{call_async, send_async};
use qga_types::runtime::serde_json::Value;
use qga_types::runtime::{AsyncTransport, CommandInfo, NoReplyCommand, Reply, ReplyCommand};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::time::Instant;

use crate::connection::io_error;
use crate::core::{replies_on_success, Core, SyncProgress};
use crate::stream::{check, Endpoint, VsockStream, CONNECT_TIMEOUT};
use crate::support::Capabilities;
use crate::{Error, Options, ResponseTimeout};

/// A byte stream an [`AsyncConnection`] can run over: any tokio stream.
pub trait AsyncStream: AsyncRead + AsyncWrite + Unpin + Send {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send> AsyncStream for T {}

impl Endpoint {
    /// Opens an async stream to the endpoint.
    pub async fn connect_async(&self) -> io::Result<Box<dyn AsyncStream>> {
        Ok(match self {
            Endpoint::Unix(path) => Box::new(tokio::net::UnixStream::connect(path).await?),
            Endpoint::Tcp(addr) => {
                let stream = tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(addr.as_str()))
                    .await
                    .map_err(|_| {
                        io::Error::new(io::ErrorKind::TimedOut, format!("connecting to {addr} timed out"))
                    })??;
                stream.set_nodelay(true)?;
                Box::new(stream)
            }
            Endpoint::Vsock { cid, port } => Box::new(AsyncVsockStream::connect(*cid, *port).await?),
        })
    }
}

/// An AF_VSOCK stream for tokio.
#[derive(Debug)]
pub struct AsyncVsockStream {
    fd: AsyncFd<OwnedFd>,
}

impl AsyncVsockStream {
    /// Connects (on a blocking thread: the kernel may take its connect
    /// timeout) and registers the socket with tokio.
    pub async fn connect(cid: u32, port: u32) -> io::Result<AsyncVsockStream> {
        let stream = tokio::task::spawn_blocking(move || VsockStream::connect(cid, port))
            .await
            .map_err(io::Error::other)??;
        let fd = stream.into_fd();
        set_nonblocking(&fd)?;
        // SAFETY: the OwnedFd moves into the AsyncFd, which owns it (and
        // its one descriptor) until dropped.
        let fd = unsafe { AsyncFd::register(fd) }.map_err(io::Error::from)?;
        Ok(AsyncVsockStream { fd })
    }
}

fn set_nonblocking(fd: &OwnedFd) -> io::Result<()> {
    // SAFETY: fcntl on a descriptor we own.
    let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) };
    // SAFETY: as above.
    if flags < 0 || unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

impl AsyncRead for AsyncVsockStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        loop {
            let mut guard = ready!(self.fd.poll_read_ready(cx))?;
            let unfilled = buf.initialize_unfilled();
            // SAFETY: `unfilled` is valid for its length.
            let result = guard.try_io(|fd| {
                check(unsafe { libc::read(fd.as_raw_fd(), unfilled.as_mut_ptr().cast(), unfilled.len()) })
            });
            match result {
                Ok(Ok(n)) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                Err(_would_block) => continue,
            }
        }
    }
}

impl AsyncWrite for AsyncVsockStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        loop {
            let mut guard = ready!(self.fd.poll_write_ready(cx))?;
            // SAFETY: `data` is valid for its length.
            let result =
                guard.try_io(|fd| check(unsafe { libc::write(fd.as_raw_fd(), data.as_ptr().cast(), data.len()) }));
            match result {
                Ok(r) => return Poll::Ready(r),
                Err(_would_block) => continue,
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        // SAFETY: shutdown(2) on a descriptor we own.
        let rc = unsafe { libc::shutdown(self.fd.get_ref().as_raw_fd(), libc::SHUT_WR) };
        Poll::Ready(if rc < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        })
    }
}

/// An async connection: one request in flight (every call takes `&mut
/// self`), replies matched by id, resynchronised on connect and after any
/// timeout, error or cancelled call.
///
/// Cancel safety: dropping a call's future at any `.await` leaves the
/// channel marked dirty (it is marked before the request is written and
/// cleared only when the matching reply is taken), so the next call sends
/// 0xFF (the agent drops any half-written request) and resyncs, and the
/// cancelled call's late reply is dropped with the rest of the stale
/// output.
pub struct AsyncConnection {
    stream: Option<Box<dyn AsyncStream>>,
    /// Where to reconnect after the stream broke.
    endpoint: Option<Endpoint>,
    options: Options,
    core: Core,
    next_timeout: Option<ResponseTimeout>,
}

impl std::fmt::Debug for AsyncConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncConnection")
            .field("connected", &self.stream.is_some())
            .field("endpoint", &self.endpoint)
            .field("options", &self.options)
            .field("dirty", &self.core.dirty)
            .finish()
    }
}

impl AsyncConnection {
    /// Connects and resynchronises. After the agent goes away the next call
    /// connects again.
    pub async fn connect(endpoint: &Endpoint, options: Options) -> Result<AsyncConnection, Error> {
        let stream = endpoint.connect_async().await.map_err(Error::Io)?;
        let mut conn = AsyncConnection::new(Some(stream), Some(endpoint.clone()), options);
        conn.resync().await?;
        Ok(conn)
    }

    /// Runs over a stream you opened; resynchronises first. Without an
    /// endpoint to reconnect to, calls after the stream broke give
    /// [`Error::Closed`].
    pub async fn from_stream(stream: impl AsyncStream + 'static, options: Options) -> Result<AsyncConnection, Error> {
        let mut conn = AsyncConnection::new(Some(Box::new(stream)), None, options);
        conn.resync().await?;
        Ok(conn)
    }

    fn new(stream: Option<Box<dyn AsyncStream>>, endpoint: Option<Endpoint>, options: Options) -> AsyncConnection {
        AsyncConnection {
            stream,
            endpoint,
            core: Core::new(options.max_reply_size),
            options,
            next_timeout: None,
        }
    }

    pub fn options(&self) -> &Options {
        &self.options
    }

    pub fn options_mut(&mut self) -> &mut Options {
        &mut self.options
    }

    /// Uses `timeout` for the next call only.
    pub fn set_next_timeout(&mut self, timeout: ResponseTimeout) {
        self.next_timeout = Some(timeout);
    }

    /// Whether the next call resynchronises first.
    pub fn is_dirty(&self) -> bool {
        self.core.dirty || self.stream.is_none()
    }

    /// Opens a new stream to the endpoint and resyncs.
    pub async fn reconnect(&mut self) -> Result<(), Error> {
        let endpoint = self.endpoint.clone().ok_or(Error::Closed)?;
        self.stream = None;
        self.stream = Some(endpoint.connect_async().await.map_err(Error::Io)?);
        self.core = Core::new(self.options.max_reply_size);
        self.resync().await
    }

    /// 0xFF, `guest-sync-delimited` with a fresh random id, then drop
    /// everything up to the agent's 0xFF and every reply until the one
    /// carrying that id. Waits 5 s, or the response timeout if shorter.
    /// Agents without `guest-sync-delimited` (0.15, 1.0) get `guest-sync`.
    pub async fn resync(&mut self) -> Result<(), Error> {
        let timeout = self.next_timeout.unwrap_or(self.options.timeout).sync_duration();
        let deadline = Some(Instant::now() + timeout);
        let result = async {
            let (mut id, bytes) = self.core.begin_sync();
            self.write(&bytes, deadline).await?;
            loop {
                match self.core.sync_progress(id) {
                    SyncProgress::Done => return Ok(()),
                    SyncProgress::Fallback => {
                        let (fresh, bytes) = self.core.begin_sync();
                        id = fresh;
                        self.write(&bytes, deadline).await?;
                    }
                    SyncProgress::Pending => self.fill(deadline).await?,
                }
            }
        }
        .await;
        self.note(result)
    }

    fn note<T>(&mut self, result: Result<T, Error>) -> Result<T, Error> {
        if let Err(e) = &result {
            if e.is_broken_stream() {
                self.stream = None;
            }
        }
        result
    }

    /// Writes everything, until `deadline` (`None`: no limit).
    async fn write(&mut self, bytes: &[u8], deadline: Option<Instant>) -> Result<(), Error> {
        let stream = self.stream.as_mut().ok_or(Error::Closed)?;
        let write = async {
            stream.write_all(bytes).await?;
            stream.flush().await
        };
        match deadline {
            Some(d) => tokio::time::timeout_at(d, write).await.map_err(|_| Error::Timeout)?,
            None => write.await,
        }
        .map_err(io_error)
    }

    /// Reads once, waiting until `deadline` (`None`: forever).
    async fn fill(&mut self, deadline: Option<Instant>) -> Result<(), Error> {
        let mut buf = [0u8; 4096];
        let stream = self.stream.as_mut().ok_or(Error::Closed)?;
        let read = stream.read(&mut buf);
        let n = match deadline {
            Some(d) => tokio::time::timeout_at(d, read).await.map_err(|_| Error::Timeout)?,
            None => read.await,
        }
        .map_err(io_error)?;
        if n == 0 {
            return Err(Error::Closed);
        }
        self.core.feed(&buf[..n]);
        Ok(())
    }

    async fn next_reply(&mut self, deadline: Option<Instant>) -> Result<Reply, Error> {
        loop {
            if let Some(reply) = self.core.next_reply() {
                return reply;
            }
            self.fill(deadline).await?;
        }
    }

    /// Returns the request's id, the call's timeout and when the request
    /// started to go out.
    async fn send_request(
        &mut self,
        name: &str,
        arguments: Option<Value>,
    ) -> Result<(u64, ResponseTimeout, Instant), Error> {
        let timeout = self.next_timeout.unwrap_or(self.options.timeout);
        let result = async {
            if self.stream.is_none() {
                self.reconnect().await?;
            } else if self.core.dirty {
                self.resync().await?;
            }
            // Marks the channel dirty before the first byte goes out.
            let (id, bytes) = self.core.request(name, arguments);
            let sent = Instant::now();
            let written = self
                .write(&bytes, timeout.write_duration().and_then(|t| sent.checked_add(t)))
                .await;
            self.note(written)?;
            Ok((id, sent))
        }
        .await;
        self.next_timeout = None;
        result.map(|(id, sent)| (id, timeout, sent))
    }

    /// Sends a command by wire name and waits for its reply.
    pub async fn call_raw(&mut self, name: &str, arguments: Option<Value>) -> Result<Reply, Error> {
        let (id, timeout, sent) = self.send_request(name, arguments).await?;
        let deadline = match timeout.duration() {
            Some(t) if t.is_zero() => return Err(Error::NotAwaited),
            // A timeout past the end of time waits forever.
            Some(t) => sent.checked_add(t),
            None => None,
        };
        let result = async {
            loop {
                let reply = self.next_reply(deadline).await?;
                if self.core.settles(&reply, id) {
                    return Ok(reply);
                }
            }
        }
        .await;
        self.note(result)
    }

    /// Sends a command that does not reply on success and watches for an
    /// error reply during `no_reply_window`; silence and EOF are success.
    pub async fn send_raw(&mut self, name: &str, arguments: Option<Value>) -> Result<Option<Reply>, Error> {
        let (id, _, _) = self.send_request(name, arguments).await?;
        let deadline = Instant::now().checked_add(self.options.no_reply_window);
        loop {
            match self.next_reply(deadline).await {
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

    /// Runs a command by wire name; see [`Connection::execute`](crate::Connection::execute).
    pub async fn execute(&mut self, name: &str, arguments: Option<Value>) -> Result<Value, Error> {
        if !replies_on_success(name) {
            return match self.send_raw(name, arguments).await? {
                Some(reply) => Error::check_reply(reply),
                None => Ok(Value::Null),
            };
        }
        Error::check_reply(self.call_raw(name, arguments).await?)
    }

    /// A typed call returning [`Error`].
    pub async fn run<C: ReplyCommand>(&mut self, args: &C::Args) -> Result<C::Returns, Error> {
        Ok(call_async::<C, _>(self, args).await?)
    }

    /// A typed command without a success response, returning [`Error`].
    pub async fn run_no_reply<C: NoReplyCommand>(&mut self, args: &C::Args) -> Result<(), Error> {
        Ok(send_async::<C, _>(self, args).await?)
    }

    /// Asks the agent what it offers (`guest-info`, read leniently).
    pub async fn capabilities(&mut self) -> Result<Capabilities, Error> {
        Capabilities::from_guest_info(&self.execute("guest-info", None).await?)
    }
}

impl AsyncTransport for AsyncConnection {
    type Error = Error;

    async fn call(&mut self, command: &'static CommandInfo, arguments: Option<Value>) -> Result<Reply, Error> {
        self.call_raw(command.name, arguments).await
    }

    async fn send(&mut self, command: &'static CommandInfo, arguments: Option<Value>) -> Result<Option<Reply>, Error> {
        self.send_raw(command.name, arguments).await
    }
}
