//! Typed client stubs, blocking and async, over the runtime's transports.

use proc_macro2::TokenStream;
use quote::quote;

use crate::context::Context;
use crate::emit::commands::{args_type, command};

/// A one-line doc linking to the command's marker type, which carries
/// the schema's text.
fn method_docs(ctx: &Context<'_>, names: &crate::context::CommandNames) -> TokenStream {
    let wire = &ctx.entity(names.entity).name;
    let marker = &names.marker;
    let line = if command(ctx, names).flags.success_response {
        format!("Calls `{wire}`: see [`{marker}`](super::commands::{marker}).")
    } else {
        format!("Sends `{wire}`, which gets no reply on success: see [`{marker}`](super::commands::{marker}).")
    };
    ctx.doc_attrs(vec![line])
}

pub fn emit(ctx: &Context<'_>) -> TokenStream {
    let sup = quote!(super::);
    let mut sync_methods = TokenStream::new();
    let mut async_methods = TokenStream::new();
    for names in &ctx.commands {
        let e = ctx.entity(names.entity);
        let c = command(ctx, names);
        let method = &names.method;
        let marker = &names.marker;
        let doc = method_docs(ctx, names);
        let dep = super::deprecated(&e.features);
        let args_ty = args_type(ctx, c, &sup);
        let (param, arg) = if c.arg_type.is_some() {
            (quote!(, args: &#args_ty), quote!(args))
        } else {
            (quote!(), quote!(&Empty))
        };
        let (ret, call, call_async, map) = if c.flags.success_response {
            match c.ret_type {
                Some(r) => (ctx.rust_type(r, &sup), quote!(call), quote!(call_async), quote!()),
                None => (quote!(()), quote!(call), quote!(call_async), quote!(.map(|Empty| ()))),
            }
        } else {
            (quote!(()), quote!(send), quote!(send_async), quote!())
        };
        sync_methods.extend(quote! {
            #doc
            #dep
            pub fn #method(&mut self #param) -> Result<#ret, CallError<T::Error>> {
                #call::<commands::#marker, T>(&mut self.transport, #arg) #map
            }
        });
        async_methods.extend(quote! {
            #doc
            #dep
            pub async fn #method(&mut self #param) -> Result<#ret, CallError<T::Error>> {
                #call_async::<commands::#marker, T>(&mut self.transport, #arg).await #map
            }
        });
    }
    let needs = super::Needs::of(ctx);
    let mut imports = super::use_names(quote!(super), &[("commands", needs.any)]);
    imports.extend(super::use_names(
        quote!(::qapi_runtime::client),
        &[
            ("call", needs.reply),
            ("call_async", needs.reply),
            ("send", needs.no_reply),
            ("send_async", needs.no_reply),
        ],
    ));
    imports.extend(super::use_names(
        quote!(::qapi_runtime),
        &[("CallError", needs.any), ("Empty", needs.empty)],
    ));
    let sync_methods = super::braced(sync_methods);
    let async_methods = super::braced(async_methods);
    quote! {
        /// Typed clients: one method per command.
        pub mod client {
            #imports

            /// A blocking client over any [`::qapi_runtime::Transport`].
            #[derive(Debug)]
            pub struct Client<T> {
                transport: T,
            }

            impl<T> Client<T> {
                pub fn new(transport: T) -> Self {
                    Client { transport }
                }

                pub fn transport(&self) -> &T {
                    &self.transport
                }

                pub fn transport_mut(&mut self) -> &mut T {
                    &mut self.transport
                }

                pub fn into_inner(self) -> T {
                    self.transport
                }
            }

            impl<T: ::qapi_runtime::Transport> Client<T> #sync_methods

            /// An async client over any [`::qapi_runtime::AsyncTransport`].
            #[derive(Debug)]
            pub struct AsyncClient<T> {
                transport: T,
            }

            impl<T> AsyncClient<T> {
                pub fn new(transport: T) -> Self {
                    AsyncClient { transport }
                }

                pub fn transport(&self) -> &T {
                    &self.transport
                }

                pub fn transport_mut(&mut self) -> &mut T {
                    &mut self.transport
                }

                pub fn into_inner(self) -> T {
                    self.transport
                }
            }

            impl<T: ::qapi_runtime::AsyncTransport> AsyncClient<T> #async_methods
        }
    }
}
