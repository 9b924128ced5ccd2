//! Typed client stubs, blocking and async, over the runtime's transports.

use proc_macro2::TokenStream;
use quote::quote;

use crate::context::Context;
use crate::docs;
use crate::emit::commands::{args_type, command};

fn method_docs(ctx: &Context<'_>, names: &crate::context::CommandNames) -> TokenStream {
    let e = ctx.entity(names.entity);
    let c = command(ctx, names);
    let mut lines = docs::item(ctx.schema.doc_of(e));
    if !c.flags.success_response {
        if !lines.is_empty() {
            lines.push(String::new());
        }
        lines.push(
            "The agent sends no reply on success: this returns once the request is sent, or with the error the \
             agent answers instead."
                .to_string(),
        );
    }
    if let Some(ic) = &e.ifcond {
        if !lines.is_empty() {
            lines.push(String::new());
        }
        lines.push(format!("Offered by guests where `{}` holds.", ic.python_repr(true)));
    }
    docs::attrs(&lines)
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
        let dep = if e.features.iter().any(|f| f.name == "deprecated") {
            quote!(#[deprecated])
        } else {
            quote!()
        };
        let args_ty = args_type(ctx, c, &sup);
        let (param, arg) = if c.arg_type.is_some() {
            (quote!(, args: &#args_ty), quote!(args))
        } else {
            (quote!(), quote!(&::qapi_runtime::Empty))
        };
        let (ret, call, call_async, map) = if c.flags.success_response {
            match c.ret_type {
                Some(r) => (
                    ctx.rust_type(r, &sup),
                    quote!(::qapi_runtime::client::call),
                    quote!(::qapi_runtime::client::call_async),
                    quote!(),
                ),
                None => (
                    quote!(()),
                    quote!(::qapi_runtime::client::call),
                    quote!(::qapi_runtime::client::call_async),
                    quote!(.map(|::qapi_runtime::Empty| ())),
                ),
            }
        } else {
            (
                quote!(()),
                quote!(::qapi_runtime::client::send),
                quote!(::qapi_runtime::client::send_async),
                quote!(),
            )
        };
        sync_methods.extend(quote! {
            #doc
            #dep
            pub fn #method(&mut self #param) -> ::std::result::Result<#ret, ::qapi_runtime::CallError<T::Error>> {
                #call::<super::commands::#marker, T>(&mut self.transport, #arg) #map
            }
        });
        async_methods.extend(quote! {
            #doc
            #dep
            pub async fn #method(&mut self #param) -> ::std::result::Result<#ret, ::qapi_runtime::CallError<T::Error>> {
                #call_async::<super::commands::#marker, T>(&mut self.transport, #arg).await #map
            }
        });
    }
    quote! {
        /// Typed clients: one method per command.
        pub mod client {
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

            impl<T: ::qapi_runtime::Transport> Client<T> {
                #sync_methods
            }

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

            impl<T: ::qapi_runtime::AsyncTransport> AsyncClient<T> {
                #async_methods
            }
        }
    }
}
