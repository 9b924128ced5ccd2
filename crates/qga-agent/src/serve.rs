//! The transports: a listening unix or vsock socket (one client at a
//! time), a virtio-serial port, or a serial tty. Every one feeds a
//! [`Session`] and never blocks forever on a peer that does not read.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use tracing::{debug, info, warn};

use crate::agent::Agent;
use crate::config::Method;
use crate::session::Session;

/// How long to wait before looking at a virtio-serial port again while
/// the host side is not connected (the port reports a hang-up at once,
/// so polling it would spin).
const HOST_ABSENT_PAUSE: Duration = Duration::from_millis(100);
/// How long to wait before retrying to open a missing device (`-r`).
const REOPEN_PAUSE: Duration = Duration::from_secs(1);
const READ_CHUNK: usize = 64 * 1024;
/// Output buffers larger than this are given back after use.
const KEEP_OUTPUT_CAPACITY: usize = 1024 * 1024;

/// How a conversation ended.
#[derive(Debug)]
enum Ended {
    /// The peer closed its end (or the host disconnected from the port).
    Closed,
    /// The peer did not read a reply within the write timeout.
    WriteTimedOut,
    Failed(io::Error),
}

/// Where and how to serve.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    pub method: Method,
    pub path: std::path::PathBuf,
    pub retry_path: bool,
    pub write_timeout: Duration,
}

/// Serves until a fatal error.
pub fn serve(agent: Arc<Agent>, options: &ServeOptions) -> io::Result<()> {
    match options.method {
        Method::UnixListen => serve_unix(agent, &options.path, options.write_timeout),
        Method::VsockListen => serve_vsock(agent, &options.path, options.write_timeout),
        Method::VirtioSerial | Method::IsaSerial => serve_port(agent, options),
    }
}

fn wait_for(fd: &impl AsFd, events: PollFlags, timeout: Option<Duration>) -> io::Result<PollFlags> {
    let timeout = match timeout {
        None => PollTimeout::NONE,
        // Round up so a short remainder does not become a busy loop.
        Some(t) => PollTimeout::try_from(t + Duration::from_micros(999)).unwrap_or(PollTimeout::MAX),
    };
    let mut fds = [PollFd::new(fd.as_fd(), events)];
    loop {
        match poll(&mut fds, timeout) {
            Ok(_) => return Ok(fds[0].revents().unwrap_or(PollFlags::empty())),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Writes all of `data` to a non-blocking `io`, giving up after `timeout`.
fn write_all<F: Write + AsFd>(io: &mut F, mut data: &[u8], timeout: Duration) -> Result<(), Ended> {
    let deadline = Instant::now() + timeout;
    while !data.is_empty() {
        match io.write(data) {
            Ok(0) => return Err(Ended::Closed),
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(Ended::WriteTimedOut);
                }
                let revents = wait_for(io, PollFlags::POLLOUT, Some(left)).map_err(Ended::Failed)?;
                if revents.intersects(PollFlags::POLLERR | PollFlags::POLLNVAL) {
                    return Err(Ended::Closed);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Err(Ended::Closed),
            Err(e) => return Err(Ended::Failed(e)),
        }
    }
    Ok(())
}

/// Reads requests from a non-blocking `io` and writes the replies until
/// the peer goes away or fails to read.
fn converse<F: Read + Write + AsFd>(io: &mut F, session: &mut Session, write_timeout: Duration) -> Ended {
    let mut buf = vec![0u8; READ_CHUNK];
    let mut out = Vec::new();
    loop {
        match io.read(&mut buf) {
            Ok(0) => return Ended::Closed,
            Ok(n) => {
                let mut failed = None;
                let mut send = |out: &mut Vec<u8>| {
                    if failed.is_some() {
                        return false;
                    }
                    match write_all(io, out, write_timeout) {
                        Ok(()) => {
                            out.clear();
                            true
                        }
                        Err(ended) => {
                            failed = Some(ended);
                            false
                        }
                    }
                };
                session.feed_with(&buf[..n], &mut out, &mut send);
                if !out.is_empty() {
                    send(&mut out);
                }
                if let Some(ended) = failed {
                    return ended;
                }
                if out.capacity() > KEEP_OUTPUT_CAPACITY {
                    out = Vec::new();
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => match wait_for(io, PollFlags::POLLIN, None) {
                Ok(revents) if revents.contains(PollFlags::POLLHUP) && !revents.contains(PollFlags::POLLIN) => {
                    return Ended::Closed
                }
                Ok(_) => {}
                Err(e) => return Ended::Failed(e),
            },
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return Ended::Closed,
            Err(e) => return Ended::Failed(e),
        }
    }
}

fn log_end(ended: &Ended) {
    match ended {
        Ended::Closed => debug!("client disconnected"),
        Ended::WriteTimedOut => warn!("client did not read its replies in time; dropped"),
        Ended::Failed(e) => warn!("client connection failed: {e}"),
    }
}

fn serve_unix(agent: Arc<Agent>, path: &Path, write_timeout: Duration) -> io::Result<()> {
    // A socket left by an earlier run would make bind fail.
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket()) {
        std::fs::remove_file(path)?;
    }
    let listener = UnixListener::bind(path)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {}: {e}", path.display())))?;
    info!("listening on unix socket {}", path.display());
    loop {
        let mut stream = match listener.accept() {
            Ok((stream, _)) => stream,
            Err(e) => {
                accept_failed(e);
                continue;
            }
        };
        debug!("client connected");
        // One client's socket failing must not stop the agent.
        if let Err(e) = stream.set_nonblocking(true) {
            warn!("cannot serve a client: {e}");
            continue;
        }
        // A new session for each client: nothing a previous client left
        // half-sent can swallow this one's requests.
        let mut session = Session::new(agent.clone());
        log_end(&converse(&mut stream, &mut session, write_timeout));
    }
}

fn accept_failed(e: io::Error) {
    if e.kind() != io::ErrorKind::Interrupted {
        warn!("accept failed: {e}");
        // Such as EMFILE: give the system a moment instead of spinning.
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Parses vsock-listen's `<cid>:<port>`; a cid of -1 means any.
fn parse_vsock_address(text: &str) -> Result<(u32, u32), String> {
    let bad = || format!("vsock address must be <cid>:<port>, not '{text}'");
    let (cid, port) = text.split_once(':').ok_or_else(bad)?;
    let cid = if cid == "-1" {
        libc::VMADDR_CID_ANY
    } else {
        cid.parse().map_err(|_| bad())?
    };
    Ok((cid, port.parse().map_err(|_| bad())?))
}

fn serve_vsock(agent: Arc<Agent>, path: &Path, write_timeout: Duration) -> io::Result<()> {
    use nix::sys::socket::{accept4, bind, listen, socket, AddressFamily, Backlog, SockFlag, SockType, VsockAddr};
    use std::os::fd::AsRawFd;

    let text = path.to_string_lossy();
    let (cid, port) = parse_vsock_address(&text).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let listener = socket(AddressFamily::Vsock, SockType::Stream, SockFlag::SOCK_CLOEXEC, None)?;
    bind(listener.as_raw_fd(), &VsockAddr::new(cid, port))
        .map_err(|e| io::Error::new(io::Error::from(e).kind(), format!("cannot listen on vsock {text}: {e}")))?;
    listen(&listener, Backlog::new(1).unwrap_or(Backlog::MAXCONN))?;
    info!("listening on vsock {text}");
    loop {
        let raw = match accept4(listener.as_raw_fd(), SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK) {
            Ok(raw) => raw,
            Err(e) => {
                accept_failed(e.into());
                continue;
            }
        };
        // SAFETY: accept4 just returned this descriptor, owned by nobody else.
        let mut stream = File::from(unsafe { OwnedFd::from_raw_fd(raw) });
        debug!("client connected");
        let mut session = Session::new(agent.clone());
        log_end(&converse(&mut stream, &mut session, write_timeout));
    }
}

fn open_port(options: &ServeOptions) -> io::Result<File> {
    loop {
        let opened = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC)
            .open(&options.path)
            .and_then(|file| {
                if options.method == Method::IsaSerial {
                    make_raw(&file)?;
                }
                Ok(file)
            });
        match opened {
            Ok(file) => {
                info!("serving on {} {}", options.method.name(), options.path.display());
                return Ok(file);
            }
            Err(e) if options.retry_path => {
                debug!("cannot open {}: {e}; retrying", options.path.display());
                std::thread::sleep(REOPEN_PAUSE);
            }
            Err(e) => {
                return Err(io::Error::new(
                    e.kind(),
                    format!("cannot open {}: {e}", options.path.display()),
                ))
            }
        }
    }
}

/// Raw mode: no echo, no line editing, no translation of bytes.
fn make_raw(file: &File) -> io::Result<()> {
    use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, ControlFlags, SetArg};
    let mut termios = tcgetattr(file)?;
    cfmakeraw(&mut termios);
    termios.control_flags |= ControlFlags::CLOCAL | ControlFlags::CREAD;
    tcsetattr(file, SetArg::TCSANOW, &termios)?;
    Ok(())
}

/// A character device that stays open: the host connects and disconnects
/// on its side, and each disconnect starts a fresh session.
fn serve_port(agent: Arc<Agent>, options: &ServeOptions) -> io::Result<()> {
    let mut port = open_port(options)?;
    let mut session = Session::new(agent);
    loop {
        match converse(&mut port, &mut session, options.write_timeout) {
            Ended::Closed => {
                // No host (or it just left): whatever it half-sent is void.
                session.reset();
                std::thread::sleep(HOST_ABSENT_PAUSE);
            }
            Ended::WriteTimedOut => {
                warn!("host did not read its replies in time; output dropped");
                session.reset();
            }
            Ended::Failed(e) if options.retry_path => {
                warn!("{}: {e}; reopening", options.path.display());
                drop(port);
                port = open_port(options)?;
                session.reset();
            }
            Ended::Failed(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vsock_addresses() {
        assert_eq!(parse_vsock_address("3:1024"), Ok((3, 1024)));
        assert_eq!(parse_vsock_address("-1:99"), Ok((libc::VMADDR_CID_ANY, 99)));
        assert_eq!(
            parse_vsock_address("1024"),
            Err("vsock address must be <cid>:<port>, not '1024'".to_string())
        );
    }
}
