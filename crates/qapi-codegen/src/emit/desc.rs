//! Static type descriptors, which let a server check arguments the way
//! QEMU does before decoding them.

use proc_macro2::TokenStream;
use qapi_parser::schema::{EntityKind, ObjectMember};
use qapi_parser::EntityId;
use quote::quote;

use crate::context::Context;

fn members(ctx: &Context<'_>, members: &[ObjectMember]) -> TokenStream {
    let items = members.iter().map(|m| {
        let name = &m.name;
        let optional = m.optional;
        let ty = ctx.desc_ref(m.typ, &quote!());
        if optional {
            quote!(optional(#name, &#ty))
        } else {
            quote!(required(#name, &#ty))
        }
    });
    quote!(&[#(#items),*])
}

pub fn emit(ctx: &Context<'_>) -> TokenStream {
    let mut out = TokenStream::new();
    for &id in &ctx.types {
        out.extend(emit_type(ctx, id));
    }
    for id in ctx.arrays() {
        let name = ctx.desc_name(id).unwrap();
        let EntityKind::Array { element } = ctx.entity(id).kind else {
            unreachable!()
        };
        let element = ctx.desc_ref(element, &quote!());
        out.extend(quote!(pub static #name: TypeDesc = TypeDesc::Array(&#element);));
    }
    // The names of these statics never clash with the runtime's.
    let mut body = if out.is_empty() {
        TokenStream::new()
    } else {
        quote!(
            use ::qapi_runtime::desc::*;
        )
    };
    body.extend(out);
    let body = super::braced(body);
    quote! {
        /// Type descriptors for checking arguments; used by the dispatcher.
        #[doc(hidden)]
        pub mod desc #body
    }
}
fn emit_type(ctx: &Context<'_>, id: EntityId) -> TokenStream {
    let e = ctx.entity(id);
    let name = ctx.desc_name(id).unwrap();
    match &e.kind {
        EntityKind::Enum { values, .. } => {
            let wire = values.iter().map(|v| &v.name);
            quote!(pub static #name: TypeDesc = TypeDesc::Enum(&[#(#wire),*]);)
        }
        EntityKind::Object(o) => {
            let members_name = ctx.members_name(id).unwrap();
            let list = members(ctx, &o.members);
            let object = match &o.branches {
                None => quote!(ObjectDesc::new(#list)),
                Some(b) => {
                    let tag = &b.tag;
                    let cases = b.variants.iter().map(|v| {
                        let case = &v.name;
                        let target = ctx.members_ref(v.typ, &quote!());
                        quote!((#case, &#target))
                    });
                    quote!(ObjectDesc::union(#list, &BranchesDesc { tag: #tag, cases: &[#(#cases),*] }))
                }
            };
            quote! {
                pub static #members_name: ObjectDesc = #object;
                pub static #name: TypeDesc = TypeDesc::Object(&#members_name);
            }
        }
        EntityKind::Alternate { variants } => {
            let wire = &e.name;
            let cases = variants.iter().map(|v| {
                let d = ctx.desc_ref(v.typ, &quote!());
                quote!(&#d)
            });
            quote! {
                pub static #name: TypeDesc = TypeDesc::Alternate(&AlternateDesc { name: #wire, cases: &[#(#cases),*] });
            }
        }
        _ => TokenStream::new(),
    }
}
