//! The server side: a trait with one method per command (each answering
//! "not supported" unless implemented) and a dispatcher that behaves
//! like qemu-ga's.

use proc_macro2::TokenStream;
use quote::quote;

use crate::context::Context;
use crate::docs;
use crate::emit::commands::{args_type, command};

pub fn emit(ctx: &Context<'_>) -> TokenStream {
    let sup = quote!(super::);
    let mut methods = TokenStream::new();
    let mut arms = TokenStream::new();
    for names in &ctx.commands {
        let e = ctx.entity(names.entity);
        let c = command(ctx, names);
        let method = &names.method;
        let marker = &names.marker;
        let wire = &e.name;
        let mut lines = vec![format!("Handles `{wire}`.")];
        docs::push_paragraph(&mut lines, docs::item(ctx.schema.doc_of(e)));
        let doc = ctx.doc_attrs(lines);
        let ret = match (c.flags.success_response, c.ret_type) {
            (true, Some(r)) => ctx.rust_type(r, &sup),
            _ => quote!(()),
        };
        let args_ty = args_type(ctx, c, &sup);
        // The method's parameter, its default body's use of it, the call,
        // and the dispatch closure's parameter.
        let (param, ignore, call, handler_param) = if c.arg_type.is_some() {
            (
                quote!(, args: #args_ty),
                quote!(let _ = args;),
                quote!(server.#method(args)),
                quote!(args),
            )
        } else {
            (quote!(), quote!(), quote!(server.#method()), quote!(Empty))
        };
        methods.extend(quote! {
            #doc
            fn #method(&self #param) -> Result<#ret, CommandError> {
                #ignore
                Err(CommandError::unsupported())
            }
        });
        let (route, result) = match (c.flags.success_response, c.ret_type) {
            (false, _) => (quote!(no_reply), call),
            (true, Some(_)) => (quote!(reply), call),
            // Replies with `{}`.
            (true, None) => (quote!(reply), quote!(#call.map(|()| Empty))),
        };
        arms.extend(quote!(#wire => #route::<commands::#marker>(args, |#handler_param| #result),));
    }
    let needs = super::Needs::of(ctx);
    let mut imports = super::use_names(quote!(super), &[("commands", needs.any)]);
    imports.extend(super::use_names(
        quote!(::qapi_runtime::server),
        &[("no_reply", needs.no_reply), ("reply", needs.reply)],
    ));
    imports.extend(super::use_names(
        quote!(::qapi_runtime),
        &[("CommandError", true), ("Empty", needs.empty)],
    ));
    let methods = super::braced(methods);
    let fallback = quote!(Err(CommandError::unsupported()));
    let (unused, body) = if ctx.commands.is_empty() {
        // A schema without commands leaves the parameters unused.
        (
            quote!(let _ = server;),
            quote!({
                let _ = (info, args);
                #fallback
            }),
        )
    } else {
        // The table lists only these commands; the last arm is never taken.
        arms.extend(quote!(_ => #fallback,));
        let arms = super::braced(arms);
        (TokenStream::new(), quote!(match info.name #arms))
    };
    quote! {
        /// The agent side: implement [`Server`](server::Server) and hand requests
        /// to [`dispatch`](server::dispatch).
        pub mod server {
            #imports

            /// One method per command. Each answers "not supported" until
            /// implemented, so an agent can offer any subset.
            pub trait Server #methods

            /// Handles one request as qemu-ga does: checks the envelope and
            /// the arguments (errors name the parameter), applies `policy`,
            /// calls the method, and echoes `id`. Returns the reply to send,
            /// or `None` after a command without a success response
            /// succeeded.
            pub fn dispatch<S: Server + ?Sized>(
                server: &S,
                request: ::qapi_runtime::serde_json::Value,
                policy: &dyn ::qapi_runtime::Policy,
            ) -> ::std::option::Option<::qapi_runtime::serde_json::Value> {
                #unused
                ::qapi_runtime::server::dispatch(request, &super::COMMANDS, policy, &mut |info, args| #body)
            }
        }
    }
}
