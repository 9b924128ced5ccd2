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
//! use qga_host::{Connection, Endpoint};
//! use qga_types::client::Client;
//!
//! let conn = Connection::connect(&Endpoint::Unix("/run/qga.sock".into()), Default::default()).unwrap();
//! let mut agent = Client::new(conn);
//! agent.guest_ping().unwrap();
//! println!("{}", agent.guest_info().unwrap().version);
//! ```
//!
//! Still to come (see the project's issues): vsock, the async client, the
//! typed error with command-not-found/disabled variants, and the `qga` CLI.

mod connection;

pub use connection::{Connection, Endpoint, Error, Options, ResponseTimeout};
