//! Byte streams to an agent: unix sockets, TCP, vsock, or your own.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// A blocking byte stream a [`Connection`](crate::Connection) can run over.
/// Implement it to bring your own (a serial device, a pipe pair, a test
/// double).
pub trait Stream: Read + Write + Send {
    /// Bounds how long the next reads wait; `None` waits forever. Never
    /// called with a zero duration.
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()>;

    /// Bounds how long the next writes wait (a guest that stops reading
    /// fills the socket buffer). Streams that cannot may keep the default,
    /// which does nothing.
    fn set_write_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        let _ = timeout;
        Ok(())
    }
}

impl Stream for UnixStream {
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        UnixStream::set_read_timeout(self, timeout)
    }

    fn set_write_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        UnixStream::set_write_timeout(self, timeout)
    }
}

impl Stream for TcpStream {
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        TcpStream::set_read_timeout(self, timeout)
    }

    fn set_write_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        TcpStream::set_write_timeout(self, timeout)
    }
}

impl<S: Stream + ?Sized> Stream for Box<S> {
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        (**self).set_read_timeout(timeout)
    }

    fn set_write_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        (**self).set_write_timeout(timeout)
    }
}

/// Where an agent listens.
///
/// Parses from `unix:PATH`, `tcp:HOST:PORT`, `vsock:CID:PORT`, or a bare
/// path (unix).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// The host end of a `-chardev socket` (or `qemu-ga -m unix-listen`).
    Unix(PathBuf),
    /// `host:port`.
    Tcp(String),
    /// An agent in `vsock-listen` mode: the guest's context id and a port.
    Vsock { cid: u32, port: u32 },
}

/// How long a TCP connect may take.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

impl Endpoint {
    /// Opens a blocking stream to the endpoint.
    pub fn connect(&self) -> io::Result<Box<dyn Stream>> {
        Ok(match self {
            Endpoint::Unix(path) => Box::new(UnixStream::connect(path)?),
            Endpoint::Tcp(addr) => Box::new(connect_tcp(addr)?),
            Endpoint::Vsock { cid, port } => Box::new(VsockStream::connect(*cid, *port)?),
        })
    }
}

fn connect_tcp(addr: &str) -> io::Result<TcpStream> {
    let mut last = io::Error::new(io::ErrorKind::NotFound, format!("{addr} resolves to no address"));
    for resolved in addr.to_socket_addrs()? {
        match TcpStream::connect_timeout(&resolved, CONNECT_TIMEOUT) {
            Ok(s) => {
                s.set_nodelay(true)?;
                return Ok(s);
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Unix(p) => write!(f, "unix:{}", p.display()),
            Endpoint::Tcp(a) => write!(f, "tcp:{a}"),
            Endpoint::Vsock { cid, port } => write!(f, "vsock:{cid}:{port}"),
        }
    }
}

/// A malformed endpoint string.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad endpoint '{input}': {reason}")]
pub struct EndpointParseError {
    pub input: String,
    pub reason: String,
}

impl Endpoint {
    /// Parses `CID:PORT` (both unsigned 32-bit decimal numbers).
    pub fn parse_vsock(s: &str) -> Result<Endpoint, EndpointParseError> {
        let bad = |reason: &str| EndpointParseError {
            input: s.to_string(),
            reason: reason.to_string(),
        };
        let (cid, port) = s.split_once(':').ok_or_else(|| bad("expected CID:PORT"))?;
        let cid = cid
            .parse::<u32>()
            .map_err(|_| bad("the context id (CID) is not an unsigned 32-bit number"))?;
        let port = port
            .parse::<u32>()
            .map_err(|_| bad("the port is not an unsigned 32-bit number"))?;
        Ok(Endpoint::Vsock { cid, port })
    }

    /// Parses `HOST:PORT`.
    pub fn parse_tcp(s: &str) -> Result<Endpoint, EndpointParseError> {
        let bad = |reason: &str| EndpointParseError {
            input: s.to_string(),
            reason: reason.to_string(),
        };
        let (host, port) = s.rsplit_once(':').ok_or_else(|| bad("expected HOST:PORT"))?;
        if host.is_empty() {
            return Err(bad("the host is empty"));
        }
        port.parse::<u16>()
            .map_err(|_| bad("the port is not a number from 0 to 65535"))?;
        Ok(Endpoint::Tcp(s.to_string()))
    }
}

impl FromStr for Endpoint {
    type Err = EndpointParseError;

    fn from_str(s: &str) -> Result<Endpoint, EndpointParseError> {
        let whole = |mut e: EndpointParseError| {
            e.input = s.to_string();
            e
        };
        if let Some(rest) = s.strip_prefix("vsock:") {
            Endpoint::parse_vsock(rest).map_err(whole)
        } else if let Some(rest) = s.strip_prefix("tcp:") {
            Endpoint::parse_tcp(rest).map_err(whole)
        } else {
            let path = s.strip_prefix("unix:").unwrap_or(s);
            if path.is_empty() {
                return Err(EndpointParseError {
                    input: s.to_string(),
                    reason: "the socket path is empty".to_string(),
                });
            }
            Ok(Endpoint::Unix(path.into()))
        }
    }
}

/// A connected AF_VSOCK stream socket.
#[derive(Debug)]
pub struct VsockStream {
    fd: OwnedFd,
}

impl VsockStream {
    /// Connects to `port` on the guest with context id `cid`.
    pub fn connect(cid: u32, port: u32) -> io::Result<VsockStream> {
        // SAFETY: plain socket(2); the result is checked before use.
        let raw = unsafe { libc::socket(libc::AF_VSOCK, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: sockaddr_vm is plain data; all-zero is a valid value.
        let mut addr: libc::sockaddr_vm = unsafe { std::mem::zeroed() };
        addr.svm_family = libc::AF_VSOCK as libc::sa_family_t;
        addr.svm_cid = cid;
        addr.svm_port = port;
        loop {
            // SAFETY: `addr` lives across the call and its size is passed.
            let rc = unsafe {
                libc::connect(
                    fd.as_raw_fd(),
                    (&addr as *const libc::sockaddr_vm).cast(),
                    std::mem::size_of::<libc::sockaddr_vm>() as libc::socklen_t,
                )
            };
            if rc == 0 {
                return Ok(VsockStream { fd });
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }

    /// The socket, for use with an event loop.
    pub fn into_fd(self) -> OwnedFd {
        self.fd
    }
}

/// A read(2)/write(2) result, or the OS error it stands for.
pub(crate) fn check(rc: isize) -> io::Result<usize> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc as usize)
    }
}

impl Read for VsockStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // SAFETY: the buffer is valid for `buf.len()` bytes.
        check(unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) })
    }
}

impl Write for VsockStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // SAFETY: the buffer is valid for `buf.len()` bytes.
        check(unsafe { libc::write(self.fd.as_raw_fd(), buf.as_ptr().cast(), buf.len()) })
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl VsockStream {
    fn set_timeout(&self, option: libc::c_int, timeout: Option<Duration>) -> io::Result<()> {
        let tv = match timeout {
            None => libc::timeval { tv_sec: 0, tv_usec: 0 },
            Some(t) => libc::timeval {
                tv_sec: t.as_secs().min(libc::time_t::MAX as u64) as libc::time_t,
                // All zero would mean "forever".
                tv_usec: t.subsec_micros().max(u32::from(t.as_secs() == 0)) as libc::suseconds_t,
            },
        };
        // SAFETY: `tv` lives across the call and its size is passed.
        let rc = unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_SOCKET,
                option,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

impl Stream for VsockStream {
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.set_timeout(libc::SO_RCVTIMEO, timeout)
    }

    fn set_write_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.set_timeout(libc::SO_SNDTIMEO, timeout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse() {
        assert_eq!("vsock:3:1234".parse(), Ok(Endpoint::Vsock { cid: 3, port: 1234 }));
        assert_eq!(
            "vsock:4294967295:4294967295".parse(),
            Ok(Endpoint::Vsock {
                cid: u32::MAX,
                port: u32::MAX
            })
        );
        assert_eq!("tcp:localhost:4444".parse(), Ok(Endpoint::Tcp("localhost:4444".into())));
        assert_eq!("tcp:[::1]:4444".parse(), Ok(Endpoint::Tcp("[::1]:4444".into())));
        assert_eq!("unix:/run/a.sock".parse(), Ok(Endpoint::Unix("/run/a.sock".into())));
        assert_eq!("/run/b.sock".parse(), Ok(Endpoint::Unix("/run/b.sock".into())));
        let shown = Endpoint::Vsock { cid: 3, port: 9 }.to_string();
        assert_eq!(shown.parse(), Ok(Endpoint::Vsock { cid: 3, port: 9 }));
    }

    #[test]
    fn bad_endpoints_name_the_problem() {
        let reason = |s: &str| s.parse::<Endpoint>().unwrap_err().reason;
        assert_eq!(reason("vsock:3"), "expected CID:PORT");
        assert_eq!(
            reason("vsock:x:1"),
            "the context id (CID) is not an unsigned 32-bit number"
        );
        assert_eq!(reason("vsock:3:-1"), "the port is not an unsigned 32-bit number");
        assert_eq!(
            reason("vsock:4294967296:1"),
            "the context id (CID) is not an unsigned 32-bit number"
        );
        assert_eq!(reason("tcp:host"), "expected HOST:PORT");
        assert_eq!(reason("tcp::80"), "the host is empty");
        assert_eq!(reason("tcp:h:99999"), "the port is not a number from 0 to 65535");
        assert_eq!(reason("unix:"), "the socket path is empty");
        let e = "vsock:3".parse::<Endpoint>().unwrap_err();
        assert_eq!(e.to_string(), "bad endpoint 'vsock:3': expected CID:PORT");
    }

    #[test]
    fn vsock_connect_fails_cleanly_without_a_listener() {
        // No VM here: either the kernel has no vsock transport or nobody
        // listens at CID 1 (local loopback) port 1. Either way an error,
        // not a hang or a panic.
        assert!(VsockStream::connect(1, 1).is_err());
    }
}
