//! The QEMU Guest Agent protocol, generated from our schema (`schema/`),
//! for both ends of the wire.
//!
//! - Types: one Rust type per schema type. Enums and unions keep values
//!   they do not know (`Unrecognized`), and unknown members are ignored,
//!   so replies from newer agents decode.
//! - [`commands`]: one marker type per command, carrying its wire name,
//!   argument and return types, and flags; [`COMMANDS`] lists them all.
//! - [`client`]: typed stubs over any transport, blocking or async.
//! - [`server`]: the trait an agent implements, and its dispatcher.
//!
//! `if` conditions in the schema describe which *guests* offer a command,
//! not how this crate is built: every command is here, so a Linux host can
//! call a Windows-only command on a Windows guest. The condition is in
//! [`CommandInfo::condition`](qapi_runtime::CommandInfo::condition) for an
//! agent to decide what it offers.

pub use qapi_runtime as runtime;

// The module generated from schema/qga.json: at build time with the
// `codegen` feature, else the checked-in copy that `cargo xtask regen`
// writes (a test fails when it is stale).
#[cfg(feature = "codegen")]
include!(concat!(env!("OUT_DIR"), "/qga.rs"));
#[cfg(not(feature = "codegen"))]
include!("generated.rs");

// The README's code blocks compile and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeDoctests;
