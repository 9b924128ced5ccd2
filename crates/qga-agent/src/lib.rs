//! A Linux guest agent serving the generated `qga_types::server::Server`
//! trait.
//!
//! - [`Agent`]: the commands, the policies (block and allow lists, the
//!   frozen state) and the per-command timeout.
//! - [`Session`]: one client's byte stream in, reply bytes out; no socket
//!   needed, so tests and fuzzers drive it directly.
//! - [`system::System`]: the seam for every command that changes the
//!   machine; [`system::testing::FakeSystem`] stands in for it in tests.
//! - [`linux`]: the real system.
//! - [`config`] and [`serve`]: the binary's options and transports.

pub mod agent;
pub mod config;
mod executor;
mod freeze;
mod json;
pub mod linux;
pub mod logging;
pub mod policy;
pub mod serve;
pub mod session;
pub mod system;

pub use agent::{Agent, AgentConfig};
pub use policy::RpcPolicy;
pub use session::Session;
