//! The run-time half of QAPI code generation, small on purpose: generated
//! crates (such as `qga-types`) depend on this and on nothing heavier than
//! serde.
//!
//! - [`command`]: the traits a generated command implements, its static
//!   description, and conditions as data.
//! - [`wire`]: request and reply envelopes and QAPI error classes.
//! - [`desc`]: type descriptors and the argument check that answers like
//!   QEMU's input visitor.
//! - [`client`]: transports and the typed call path.
//! - [`server`]: the dispatch path of an agent.
//! - `impls`: macros and helpers that generated enums, unions and
//!   alternates implement serde with.
//! - [`framing`]: the 0xFF resynchronisation byte and a streaming reader
//!   that splits a byte stream into JSON messages within limits.

pub mod client;
pub mod command;
pub mod desc;
pub mod framing;
#[doc(hidden)]
pub mod impls;
pub mod server;
pub mod wire;

pub use client::{AsyncTransport, CallError, Transport};
pub use command::{Command, CommandInfo, Cond, Empty, NoReplyCommand, Null, ReplyCommand, UnknownVariant};
pub use server::{CommandError, Policy};
pub use wire::{ErrorBody, ErrorClass, Reply, Request};

/// Re-exported for generated code, so users need not depend on them.
pub use serde;
pub use serde_json;
