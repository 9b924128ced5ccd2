//! Rust types for the schema's enums, structs, unions and alternates.

use proc_macro2::TokenStream;
use qapi_parser::schema::{EntityKind, ObjectMember, ObjectType, Variant};
use qapi_parser::{EntityId, JsonType};
use quote::{format_ident, quote};

use crate::context::Context;
use crate::docs;
use crate::emit::deprecated;
use crate::names::{camel, ident, snake, Scope};

/// Docs for a type: the schema's, plus when guests offer it.
fn type_docs(ctx: &Context<'_>, id: EntityId) -> TokenStream {
    let e = ctx.entity(id);
    let doc = member_doc_owner(ctx, id);
    let mut lines = if e.name.starts_with("q_obj_") {
        vec![format!(
            "Arguments of `{}`.",
            e.name.trim_start_matches("q_obj_").trim_end_matches("-arg")
        )]
    } else {
        docs::item(doc)
    };
    if let Some(c) = &e.ifcond {
        docs::push_paragraph(
            &mut lines,
            vec![format!("Defined for guests where `{}` holds.", c.python_repr(true))],
        );
    }
    ctx.doc_attrs(lines)
}

pub fn emit(ctx: &Context<'_>) -> TokenStream {
    let mut out = TokenStream::new();
    for &id in &ctx.types {
        let e = ctx.entity(id);
        out.extend(match &e.kind {
            EntityKind::Enum { values, .. } => emit_enum(ctx, id, values),
            EntityKind::Object(o) if o.branches.is_none() => emit_struct(ctx, id, o),
            EntityKind::Object(o) => emit_union(ctx, id, o),
            EntityKind::Alternate { variants } => emit_alternate(ctx, id, variants),
            _ => TokenStream::new(),
        });
    }
    out
}

fn emit_enum(ctx: &Context<'_>, id: EntityId, values: &[qapi_parser::schema::EnumValue]) -> TokenStream {
    let e = ctx.entity(id);
    let name = ctx.type_name(id);
    let doc = ctx.schema.doc_of(e);
    let mut scope = Scope::default();
    let variants: Vec<_> = values.iter().map(|v| ident(&scope.claim(camel(&v.name)))).collect();
    let other = ident(&scope.claim("Unrecognized".into()));
    let wire: Vec<&str> = values.iter().map(|v| v.name.as_str()).collect();
    let variant_docs = values.iter().map(|v| ctx.doc_attrs(docs::member(doc, &v.name)));
    let variant_deprecated = values.iter().map(|v| deprecated(&v.features));
    let type_docs = type_docs(ctx, id);
    let dep = deprecated(&e.features);
    let string = ctx.prelude("String");
    quote! {
        #type_docs
        #dep
        #[derive(Clone, Debug, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum #name {
            #( #variant_docs #variant_deprecated #variants, )*
            /// A value this schema does not know, as sent by a newer peer.
            #other(#string),
        }

        ::qapi_runtime::impl_enum!(#name, #other, [#(#variants = #wire),*]);
    }
}

struct Field<'a> {
    member: &'a ObjectMember,
    ident: proc_macro2::Ident,
}

fn fields<'a>(members: impl Iterator<Item = &'a ObjectMember>) -> Vec<Field<'a>> {
    let mut scope = Scope::default();
    members
        .map(|m| Field {
            member: m,
            ident: ident(&scope.claim(snake(&m.name))),
        })
        .collect()
}

/// Field definitions; `serde_attrs` for structs that derive serde.
fn field_defs(
    ctx: &Context<'_>,
    id: EntityId,
    fields: &[Field<'_>],
    doc_owner: Option<&qapi_parser::Doc>,
    serde_attrs: bool,
) -> Vec<TokenStream> {
    fields
        .iter()
        .map(|f| {
            let m = f.member;
            let ty = ctx.field_type(m, id, &quote!());
            let wire = &m.name;
            let field = &f.ident;
            let doc = ctx.doc_attrs(docs::member(doc_owner, &m.name));
            let dep = deprecated(&m.features);
            let rename = if field.to_string().trim_start_matches("r#") != *wire {
                quote!(rename = #wire,)
            } else {
                quote!()
            };
            let serde = if !serde_attrs {
                quote!()
            } else if m.optional {
                quote!(#[serde(#rename default, skip_serializing_if = "::std::option::Option::is_none")])
            } else if rename.is_empty() {
                quote!()
            } else {
                quote!(#[serde(#rename)])
            };
            quote!(#doc #dep #serde pub #field: #ty,)
        })
        .collect()
}

/// The documentation block that describes an object's members: its own,
/// or for command arguments, the command's.
fn member_doc_owner<'s>(ctx: &Context<'s>, id: EntityId) -> Option<&'s qapi_parser::Doc> {
    let e = ctx.entity(id);
    ctx.schema.doc_of(e).or_else(|| {
        let owner = e.name.strip_prefix("q_obj_")?.strip_suffix("-arg")?;
        ctx.schema.doc_of(ctx.entity(ctx.schema.lookup(owner)?))
    })
}

fn emit_struct(ctx: &Context<'_>, id: EntityId, o: &ObjectType) -> TokenStream {
    let e = ctx.entity(id);
    let name = ctx.type_name(id);
    let fields = fields(o.members.iter());
    let defs = field_defs(ctx, id, &fields, member_doc_owner(ctx, id), true);
    let all_optional = o.members.iter().all(|m| m.optional);
    let default = if all_optional { quote!(Default,) } else { quote!() };
    let docs = type_docs(ctx, id);
    let dep = deprecated(&e.features);
    let allow = if o
        .members
        .iter()
        .any(|m| m.features.iter().any(|f| f.name == "deprecated"))
    {
        quote!(#[allow(deprecated)])
    } else {
        quote!()
    };
    quote! {
        #docs
        #dep
        #allow
        #[derive(Clone, Debug, PartialEq, #default ::qapi_runtime::serde::Serialize, ::qapi_runtime::serde::Deserialize)]
        #[serde(crate = "::qapi_runtime::serde")]
        pub struct #name {
            #(#defs)*
        }
    }
}

/// Branch variants of a union: their names and payload types.
fn branch_variants(
    ctx: &Context<'_>,
    id: EntityId,
    variants: &[Variant],
) -> (Vec<TokenStream>, Vec<proc_macro2::Ident>, proc_macro2::Ident) {
    let mut scope = Scope::default();
    let names: Vec<_> = variants.iter().map(|v| ident(&scope.claim(camel(&v.name)))).collect();
    let other = ident(&scope.claim("Unrecognized".into()));
    let defs = variants
        .iter()
        .zip(&names)
        .map(|(v, n)| {
            let doc = ctx.doc_attrs(vec![format!("The `{}` branch.", v.name)]);
            if ctx.entity(v.typ).name == "q_empty" {
                quote!(#doc #n,)
            } else {
                let ty = ctx.member_type(v.typ, id, &quote!());
                quote!(#doc #n(#ty),)
            }
        })
        .collect();
    (defs, names, other)
}

fn emit_union(ctx: &Context<'_>, id: EntityId, o: &ObjectType) -> TokenStream {
    let e = ctx.entity(id);
    let name = ctx.type_name(id);
    let branches = o.branches.as_ref().expect("a union");
    let tag = branches.tag.as_str();
    let base: Vec<&ObjectMember> = o.members.iter().filter(|m| m.name != tag).collect();
    let (variant_defs, variant_names, other) = branch_variants(ctx, id, &branches.variants);
    let docs = type_docs(ctx, id);
    let dep = deprecated(&e.features);
    let branch_list: Vec<TokenStream> = branches
        .variants
        .iter()
        .zip(&variant_names)
        .map(|(v, n)| {
            let w = v.name.as_str();
            if ctx.entity(v.typ).name == "q_empty" {
                quote!(#n = #w)
            } else {
                quote!(#n = #w(v))
            }
        })
        .collect();
    // Large branches next to empty ones are what the schema defines.
    let allow_large = quote!(#[allow(clippy::large_enum_variant)]);

    if base.is_empty() {
        return quote! {
            #docs
            #dep
            #allow_large
            #[derive(Clone, Debug, PartialEq)]
            #[non_exhaustive]
            pub enum #name {
                #(#variant_defs)*
                /// A branch this schema does not know, as sent by a newer peer.
                #other(::qapi_runtime::UnknownVariant),
            }

            ::qapi_runtime::impl_union!(enum #name, tag = #tag, other = #other, [#(#branch_list),*]);
        };
    }

    // Members beside the discriminator: a struct holding them and the
    // branch.
    let kind_name = format_ident!("{}Branch", name);
    let fields = fields(base.iter().copied());
    let defs = field_defs(ctx, id, &fields, member_doc_owner(ctx, id), false);
    let tag_pos = o.members.iter().position(|m| m.name == tag).unwrap_or(0);
    let base_entry = |f: &Field<'_>| {
        let field = &f.ident;
        let wire = &f.member.name;
        let kind = if f.member.optional {
            quote!(optional)
        } else {
            quote!(required)
        };
        quote!(#field = #wire #kind)
    };
    let before = fields.iter().take(tag_pos).map(base_entry);
    let after = fields.iter().skip(tag_pos).map(base_entry);
    let kind_doc = ctx.doc_attrs(vec![format!("The branches of [`{name}`], chosen by `{tag}`.")]);
    quote! {
        #docs
        #dep
        #[derive(Clone, Debug, PartialEq)]
        pub struct #name {
            #(#defs)*
            /// The branch, chosen by the discriminator.
            pub branch: #kind_name,
        }

        #kind_doc
        #allow_large
        #[derive(Clone, Debug, PartialEq)]
        #[non_exhaustive]
        pub enum #kind_name {
            #(#variant_defs)*
            /// A branch this schema does not know, as sent by a newer peer.
            #other(::qapi_runtime::UnknownVariant),
        }

        ::qapi_runtime::impl_union!(
            struct #name, branch = #kind_name, tag = #tag, other = #other,
            before [#(#before),*],
            after [#(#after),*],
            [#(#branch_list),*]
        );
    }
}

fn json_kind(json: Option<JsonType>) -> &'static str {
    match json {
        Some(JsonType::String) => "string",
        Some(JsonType::Number | JsonType::Int) => "number",
        Some(JsonType::Boolean) => "boolean",
        Some(JsonType::Null) => "null",
        Some(JsonType::Array) => "array",
        _ => "object",
    }
}

fn emit_alternate(ctx: &Context<'_>, id: EntityId, variants: &[Variant]) -> TokenStream {
    let e = ctx.entity(id);
    let name = ctx.type_name(id);
    let doc = ctx.schema.doc_of(e);
    let mut scope = Scope::default();
    let names: Vec<_> = variants.iter().map(|v| ident(&scope.claim(camel(&v.name)))).collect();
    let types = variants.iter().map(|v| ctx.member_type(v.typ, id, &quote!()));
    let vdocs = variants.iter().map(|v| ctx.doc_attrs(docs::member(doc, &v.name)));
    let kinds = variants.iter().map(|v| json_kind(ctx.entity(v.typ).json_type()));
    let expected = format!(
        "one of: {}",
        variants
            .iter()
            .map(|v| format!("{:?}", ctx.entity(v.typ).json_type().unwrap_or(JsonType::Value)).to_lowercase())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let docs = type_docs(ctx, id);
    let dep = deprecated(&e.features);
    quote! {
        #docs
        #dep
        #[derive(Clone, Debug, PartialEq)]
        pub enum #name {
            #( #vdocs #names(#types), )*
        }

        ::qapi_runtime::impl_alternate!(#name, #expected, [#(#names = #kinds),*]);
    }
}
