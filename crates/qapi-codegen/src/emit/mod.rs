//! The emitters: each reads the shared [`Context`](crate::context::Context)
//! and writes one part of the generated module.

pub mod client;
pub mod commands;
pub mod desc;
pub mod server;
pub mod types;

use proc_macro2::{Delimiter, Group, TokenStream};

/// `{ body }` as one token. Interpolating a group into `quote!` shares
/// its tokens; interpolating a stream would copy every one of them.
pub fn braced(body: TokenStream) -> Group {
    Group::new(Delimiter::Brace, body)
}
