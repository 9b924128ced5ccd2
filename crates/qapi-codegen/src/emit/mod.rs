//! The emitters: each reads the shared [`Context`](crate::context::Context)
//! and writes one part of the generated module.

pub mod client;
pub mod commands;
pub mod desc;
pub mod server;
pub mod types;

use proc_macro2::{Delimiter, Group, Ident, Span, TokenStream};
use quote::quote;

use crate::context::Context;
use crate::emit::commands::command;

/// `#[deprecated]` for something with the schema's `deprecated` feature.
pub fn deprecated(features: &[qapi_parser::schema::Feature]) -> TokenStream {
    if features.iter().any(|f| f.name == "deprecated") {
        quote!(#[deprecated])
    } else {
        TokenStream::new()
    }
}

/// `{ body }` as one token. Interpolating a group into `quote!` shares
/// its tokens; interpolating a stream would copy every one of them.
pub fn braced(body: TokenStream) -> Group {
    Group::new(Delimiter::Brace, body)
}

/// `use root::{...};` for the names that are `used`; nothing if none is.
pub fn use_names(root: TokenStream, names: &[(&str, bool)]) -> TokenStream {
    let names: Vec<Ident> = names
        .iter()
        .filter(|(_, used)| *used)
        .map(|(name, _)| Ident::new(name, Span::call_site()))
        .collect();
    match names.as_slice() {
        [] => TokenStream::new(),
        [one] => quote!(use #root::#one;),
        _ => quote!(use #root::{#(#names),*};),
    }
}

/// What the commands of a schema need, for choosing imports.
pub struct Needs {
    pub any: bool,
    pub reply: bool,
    pub no_reply: bool,
    /// A command without arguments, or one replying with nothing.
    pub empty: bool,
}

impl Needs {
    pub fn of(ctx: &Context<'_>) -> Needs {
        let mut needs = Needs {
            any: !ctx.commands.is_empty(),
            reply: false,
            no_reply: false,
            empty: false,
        };
        for names in &ctx.commands {
            let c = command(ctx, names);
            needs.reply |= c.flags.success_response;
            needs.no_reply |= !c.flags.success_response;
            needs.empty |= c.arg_type.is_none() || (c.flags.success_response && c.ret_type.is_none());
        }
        needs
    }
}
