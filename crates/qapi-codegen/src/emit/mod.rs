//! The emitters: each reads the shared [`Context`](crate::context::Context)
//! and writes one part of the generated module.

pub mod client;
pub mod commands;
pub mod desc;
pub mod server;
pub mod types;
