//! The host side of the guest-agent protocol.
//!
//! [`Connection`] is a blocking [`Transport`](qga_types::runtime::Transport)
//! for the typed [`Client`](qga_types::client::Client): it keeps one
//! request in flight, matches replies by `id`, and resynchronises with the
//! agent (a 0xFF byte, then `guest-sync-delimited`) on connect and after
//! any timeout or error, so a late or partial reply can never be taken for
//! the answer to a later call.
//!
//! ```no_run
//! use qga_host::{Connection, Endpoint, Error, ResponseTimeout};
//! use qga_types::client::Client;
//!
//! fn main() -> Result<(), Error> {
//!     let endpoint: Endpoint = "unix:/run/qga.sock".parse().unwrap();
//!     let mut agent = Client::new(Connection::connect(&endpoint, Default::default())?);
//!     agent.guest_ping()?;
//!     println!("{}", agent.guest_info()?.version);
//!     // A freeze may take minutes: a longer timeout for the next call only.
//!     agent.transport_mut().set_next_timeout(ResponseTimeout::Seconds(300));
//!     Ok(())
//! }
//! ```
//!
//! Errors: the generated stubs return `CallError<Error>`, and `?` (or
//! `Error::from`) flattens it into [`Error`], which sorts agent errors
//! into command-not-found, command-disabled and the rest, each keeping
//! class, desc and reply:
//!
//! ```no_run
//! # use qga_host::{Connection, Error};
//! # use qga_types::client::Client;
//! # fn f(agent: &mut Client<Connection>) {
//! match agent.guest_get_devices().map_err(Error::from) {
//!     Ok(devices) => println!("{} devices", devices.len()),
//!     Err(Error::CommandDisabled(e) | Error::CommandNotFound(e)) => eprintln!("not offered: {}", e.desc),
//!     Err(Error::Timeout) => eprintln!("no answer; the next call resyncs"),
//!     Err(e) => eprintln!("{e}"),
//! }
//! # }
//! ```
//!
//! [`Capabilities`] answers "does this agent offer X" from `guest-info`
//! for agents of every release. [`AsyncConnection`] (feature `tokio`, on
//! by default) is the same over tokio and safe to cancel: dropping a
//! call's future leaves the channel dirty, and the next call resyncs.
//! Transports: [`Endpoint`] (`unix:PATH`, `tcp:HOST:PORT`,
//! `vsock:CID:PORT`) or any [`Stream`] / `AsyncStream` you bring.

#[cfg(feature = "tokio")]
mod async_connection;
mod connection;
mod core;
mod error;
mod stream;
mod support;

#[cfg(feature = "tokio")]
pub use async_connection::{AsyncConnection, AsyncStream, AsyncVsockStream};
pub use connection::Connection;
pub use core::{Options, ResponseTimeout};
pub use error::{AgentError, Error};
pub use stream::{Endpoint, EndpointParseError, Stream, VsockStream};
pub use support::{AgentCommand, Capabilities, Support};
