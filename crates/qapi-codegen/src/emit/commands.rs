//! One marker type per command, implementing the runtime's command
//! traits, and the static command table.

use proc_macro2::TokenStream;
use qapi_parser::schema::{Command, EntityKind};
use qapi_parser::IfCond;
use quote::quote;

use crate::context::{CommandNames, Context};
use crate::docs;

pub fn cond(c: &IfCond) -> TokenStream {
    match c {
        IfCond::Name(n) => quote!(::qapi_runtime::Cond::Name(#n)),
        IfCond::All(v) => {
            let items = v.iter().map(cond);
            quote!(::qapi_runtime::Cond::All(&[#(#items),*]))
        }
        IfCond::Any(v) => {
            let items = v.iter().map(cond);
            quote!(::qapi_runtime::Cond::Any(&[#(#items),*]))
        }
        IfCond::Not(c) => {
            let inner = cond(c);
            quote!(::qapi_runtime::Cond::Not(&#inner))
        }
    }
}

pub fn command<'s>(ctx: &Context<'s>, names: &CommandNames) -> &'s Command {
    match &ctx.entity(names.entity).kind {
        EntityKind::Command(c) => c,
        _ => unreachable!("command names refer to commands"),
    }
}

/// The argument type of a command, seen from `prefix`.
pub fn args_type(ctx: &Context<'_>, c: &Command, prefix: &TokenStream) -> TokenStream {
    match c.arg_type {
        Some(a) => ctx.rust_type(a, prefix),
        None => quote!(::qapi_runtime::Empty),
    }
}

pub fn returns_type(ctx: &Context<'_>, c: &Command, prefix: &TokenStream) -> TokenStream {
    match c.ret_type {
        Some(r) => ctx.rust_type(r, prefix),
        None => quote!(::qapi_runtime::Empty),
    }
}

/// A command's documentation, on its marker type; client methods link
/// to it.
fn command_docs(ctx: &Context<'_>, names: &CommandNames) -> TokenStream {
    let e = ctx.entity(names.entity);
    let c = command(ctx, names);
    let mut lines = vec![format!("The `{}` command.", e.name)];
    docs::push_paragraph(&mut lines, docs::item(ctx.schema.doc_of(e)));
    if !c.flags.success_response {
        docs::push_paragraph(
            &mut lines,
            vec![
                "The agent sends no reply on success: a client call returns once the request is sent, or with \
                  the error the agent answers instead."
                    .to_string(),
            ],
        );
    }
    if let Some(ic) = &e.ifcond {
        docs::push_paragraph(
            &mut lines,
            vec![format!("Offered by guests where `{}` holds.", ic.python_repr(true))],
        );
    }
    ctx.doc_attrs(lines)
}

/// The runtime's command traits as the `commands` module names them:
/// imported, unless a marker type has the same name.
struct Traits {
    clash: [bool; 4],
    paths: [TokenStream; 4],
}

impl Traits {
    fn new(ctx: &Context<'_>) -> Traits {
        let names = ["Command", "CommandInfo", "ReplyCommand", "NoReplyCommand"];
        let clash = names.map(|n| ctx.commands.iter().any(|c| c.marker == n));
        let mut paths: [TokenStream; 4] = Default::default();
        for (i, name) in names.iter().enumerate() {
            let name = proc_macro2::Ident::new(name, proc_macro2::Span::call_site());
            paths[i] = if clash[i] {
                quote!(::qapi_runtime::#name)
            } else {
                quote!(#name)
            };
        }
        Traits { clash, paths }
    }
}

pub fn emit(ctx: &Context<'_>) -> TokenStream {
    let sup = quote!(super::);
    let traits = Traits::new(ctx);
    let [command_trait, command_info, _, _] = &traits.paths;
    let mut markers = TokenStream::new();
    let mut table = Vec::new();
    for names in &ctx.commands {
        let e = ctx.entity(names.entity);
        let c = command(ctx, names);
        let marker = &names.marker;
        let index = proc_macro2::Literal::usize_unsuffixed(names.index);
        let args = args_type(ctx, c, &sup);
        let doc = command_docs(ctx, names);
        let kind = if c.flags.success_response {
            let ret = returns_type(ctx, c, &sup);
            {
                let reply_command = &traits.paths[2];
                quote!(impl #reply_command for #marker { type Returns = #ret; })
            }
        } else {
            {
                let no_reply_command = &traits.paths[3];
                quote!(impl #no_reply_command for #marker {})
            }
        };
        markers.extend(quote! {
            #doc
            #[derive(Clone, Copy, Debug)]
            pub struct #marker;

            impl #command_trait for #marker {
                const INFO: &'static #command_info = &super::COMMANDS[#index];
                type Args = #args;
            }

            #kind
        });

        let name = &e.name;
        let mut info = quote!(::qapi_runtime::CommandInfo::new(#name));
        if let Some(a) = c.arg_type {
            let arguments = match ctx.members_name(a) {
                Some(members) => quote!(desc::#members),
                None => quote!(::qapi_runtime::desc::NO_MEMBERS),
            };
            info.extend(quote!(.with_arguments(&#arguments)));
        }
        if !c.flags.success_response {
            info.extend(quote!(.without_success_response()));
        }
        if c.flags.allow_oob {
            info.extend(quote!(.with_allow_oob()));
        }
        if let Some(ic) = &e.ifcond {
            let c = cond(ic);
            info.extend(quote!(.with_condition(&#c)));
        }
        if !e.features.is_empty() {
            let features = e.features.iter().map(|f| &f.name);
            info.extend(quote!(.with_features(&[#(#features),*])));
        }
        table.push(info);
    }
    let count = proc_macro2::Literal::usize_unsuffixed(table.len());
    let needs = super::Needs::of(ctx);
    let mut body = super::use_names(
        quote!(::qapi_runtime),
        &[
            ("Command", needs.any && !traits.clash[0]),
            ("CommandInfo", needs.any && !traits.clash[1]),
            ("ReplyCommand", needs.reply && !traits.clash[2]),
            ("NoReplyCommand", needs.no_reply && !traits.clash[3]),
        ],
    );
    body.extend(markers);
    let markers = super::braced(body);
    quote! {
        /// Every command of the schema with its flags, condition and
        /// features, in schema order: what `guest-info` reports.
        pub static COMMANDS: [::qapi_runtime::CommandInfo; #count] = [#(#table),*];

        /// One type per command, for the runtime's typed call and dispatch
        /// paths.
        pub mod commands #markers
    }
}
