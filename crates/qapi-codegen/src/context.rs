//! What every emitter shares: the checked schema and the Rust names and
//! types chosen for its entities.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};

use proc_macro2::{Ident, TokenStream};
use qapi_parser::schema::{EntityKind, ObjectMember};
use qapi_parser::{Entity, EntityId, Schema};
use quote::quote;

use crate::docs;
use crate::names::{camel, ident, screaming, snake, Scope};

/// The Rust side of one command.
pub struct CommandNames {
    pub entity: EntityId,
    /// Its marker type in the `commands` module.
    pub marker: Ident,
    /// Its method in the client and server.
    pub method: Ident,
    /// Index in the `COMMANDS` table.
    pub index: usize,
}

pub struct Context<'s> {
    pub schema: &'s Schema,
    type_names: HashMap<EntityId, Ident>,
    desc_names: HashMap<EntityId, Ident>,
    members_names: HashMap<EntityId, Ident>,
    pub commands: Vec<CommandNames>,
    /// Entities that get a Rust type, in schema order.
    pub types: Vec<EntityId>,
    /// When set, doc comments are collected here and the tokens carry
    /// only a placeholder per block (see [`docs::fill`]).
    doc_blocks: Option<RefCell<Vec<Vec<String>>>>,
    /// Whether a generated type hides a prelude type of that name, which
    /// must then be written out in full: `Option`, `String`, `Vec`, `Box`.
    shadowed: [bool; 4],
    prelude_paths: [TokenStream; 4],
}

const PRELUDE_TYPES: [(&str, &str); 4] = [
    ("Option", "::std::option::Option"),
    ("String", "::std::string::String"),
    ("Vec", "::std::vec::Vec"),
    ("Box", "::std::boxed::Box"),
];

/// The runtime's static descriptor (`qapi_runtime::desc`) of each
/// builtin type.
const BUILTIN_DESCS: [(&str, &str); 15] = [
    ("str", "STR"),
    ("number", "NUMBER"),
    ("int", "INT64"),
    ("int64", "INT64"),
    ("int8", "INT8"),
    ("int16", "INT16"),
    ("int32", "INT32"),
    ("uint8", "UINT8"),
    ("uint16", "UINT16"),
    ("uint32", "UINT32"),
    ("uint64", "UINT64"),
    ("size", "SIZE"),
    ("bool", "BOOL"),
    ("null", "NULL"),
    ("any", "ANY"),
];

/// Object types the generator writes as Rust structs or unions: named
/// ones, and command arguments.
fn is_generated_object(e: &Entity) -> bool {
    matches!(e.kind, EntityKind::Object(_)) && (!e.is_implicit() || e.name.ends_with("-arg"))
}

impl<'s> Context<'s> {
    pub fn new(schema: &'s Schema) -> Context<'s> {
        let mut type_scope = Scope::default();
        // `COMMANDS`, and the runtime's descriptors, which the `desc`
        // module imports: a generated static of the same name would hide one.
        let mut reserved_statics = vec!["COMMANDS", "NO_MEMBERS"];
        reserved_statics.extend(BUILTIN_DESCS.iter().map(|&(_, desc)| desc));
        let mut static_scope = Scope::with_reserved(&reserved_statics);
        let mut method_scope = Scope::with_reserved(&["new", "transport", "transport_mut", "into_inner"]);
        let mut marker_scope = Scope::default();
        let mut ctx = Context {
            schema,
            type_names: HashMap::new(),
            desc_names: HashMap::new(),
            members_names: HashMap::new(),
            commands: Vec::new(),
            types: Vec::new(),
            doc_blocks: None,
            shadowed: [false; 4],
            prelude_paths: Default::default(),
        };
        let used = ctx.referenced_types();
        for (i, e) in schema.entities.iter().enumerate() {
            let id = EntityId(i);
            let wanted = match &e.kind {
                EntityKind::Enum { .. } if e.name != "QType" || used.contains(&id) => Some(camel(&e.name)),
                EntityKind::Alternate { .. } => Some(camel(&e.name)),
                EntityKind::Object(_) if is_generated_object(e) => Some(match e.name.strip_prefix("q_obj_") {
                    Some(rest) => format!("{}Args", camel(rest.trim_end_matches("-arg"))),
                    None => camel(&e.name),
                }),
                _ => None,
            };
            if let Some(wanted) = wanted {
                let name = type_scope.claim(wanted);
                let desc = static_scope.claim(screaming(&name));
                if matches!(e.kind, EntityKind::Object(_)) {
                    let members = static_scope.claim(format!("{desc}_MEMBERS"));
                    ctx.members_names.insert(id, ident(&members));
                }
                ctx.desc_names.insert(id, ident(&desc));
                if let Some(i) = PRELUDE_TYPES.iter().position(|(short, _)| *short == name) {
                    ctx.shadowed[i] = true;
                }
                ctx.type_names.insert(id, ident(&name));
                ctx.types.push(id);
            }
            if let EntityKind::Array { element } = &e.kind {
                if e.location.is_some() || used.contains(&id) {
                    let element_name = screaming(&schema.entity(*element).name);
                    let desc = static_scope.claim(format!("{element_name}_LIST"));
                    ctx.desc_names.insert(id, ident(&desc));
                }
            }
            if let EntityKind::Command(_) = &e.kind {
                let index = ctx.commands.len();
                ctx.commands.push(CommandNames {
                    entity: id,
                    marker: ident(&marker_scope.claim(camel(&e.name))),
                    method: ident(&method_scope.claim(snake(&e.name))),
                    index,
                });
            }
        }
        for (i, (short, full)) in PRELUDE_TYPES.iter().enumerate() {
            let path = if ctx.shadowed[i] { full } else { short };
            ctx.prelude_paths[i] = path.parse().expect("a valid path");
        }
        ctx
    }

    /// Collect doc comments instead of writing them into the tokens.
    pub fn collect_docs(mut self) -> Self {
        self.doc_blocks = Some(RefCell::new(Vec::new()));
        self
    }

    /// The collected doc comment blocks, by placeholder index.
    pub fn take_doc_blocks(&mut self) -> Vec<Vec<String>> {
        self.doc_blocks.take().map(RefCell::into_inner).unwrap_or_default()
    }

    /// Doc attributes for `lines`: the attributes themselves, or one
    /// placeholder when collecting.
    pub fn doc_attrs(&self, lines: Vec<String>) -> TokenStream {
        match &self.doc_blocks {
            None => docs::attrs(&lines),
            Some(_) if lines.is_empty() => TokenStream::new(),
            Some(blocks) => {
                let mut blocks = blocks.borrow_mut();
                blocks.push(lines);
                docs::placeholder(blocks.len() - 1)
            }
        }
    }

    /// Types that members, branches, returns or arrays refer to.
    fn referenced_types(&self) -> HashSet<EntityId> {
        let mut used = HashSet::new();
        for e in &self.schema.entities {
            match &e.kind {
                EntityKind::Object(o) => {
                    used.extend(o.members.iter().map(|m| m.typ));
                    if let Some(b) = &o.branches {
                        used.extend(b.variants.iter().map(|v| v.typ));
                    }
                }
                EntityKind::Alternate { variants } => used.extend(variants.iter().map(|v| v.typ)),
                EntityKind::Array { element } => {
                    used.insert(*element);
                }
                EntityKind::Command(c) => used.extend(c.ret_type.iter().chain(c.arg_type.iter()).copied()),
                _ => {}
            }
        }
        used
    }

    pub fn entity(&self, id: EntityId) -> &'s Entity {
        self.schema.entity(id)
    }

    pub fn type_name(&self, id: EntityId) -> &Ident {
        &self.type_names[&id]
    }

    /// A prelude type (`Option`, `String`, `Vec`, `Box`): its short name,
    /// or its full path where a generated type hides it.
    pub fn prelude(&self, name: &str) -> TokenStream {
        let i = PRELUDE_TYPES
            .iter()
            .position(|(short, _)| *short == name)
            .expect("a prelude type");
        self.prelude_paths[i].clone()
    }

    /// The Rust type for values of `id`; `prefix` reaches the module the
    /// generated types live in (empty, or `super::`).
    pub fn rust_type(&self, id: EntityId, prefix: &TokenStream) -> TokenStream {
        let e = self.entity(id);
        match &e.kind {
            EntityKind::Builtin { .. } if e.name == "str" => self.prelude("String"),
            EntityKind::Builtin { .. } => builtin_type(&e.name),
            EntityKind::Array { element } => {
                let inner = self.rust_type(*element, prefix);
                let vec = self.prelude("Vec");
                quote!(#vec<#inner>)
            }
            _ => match self.type_names.get(&id) {
                Some(name) => quote!(#prefix #name),
                // Only q_empty is left: no members at all.
                None => quote!(::qapi_runtime::Empty),
            },
        }
    }

    /// The static `TypeDesc` for values of `id`.
    pub fn desc_ref(&self, id: EntityId, prefix: &TokenStream) -> TokenStream {
        let e = self.entity(id);
        if let EntityKind::Builtin { .. } = e.kind {
            let desc = BUILTIN_DESCS
                .iter()
                .find(|&&(builtin, _)| builtin == e.name)
                .map_or("ANY", |&(_, desc)| desc);
            let name = ident(desc);
            return quote!(#name);
        }
        let name = &self.desc_names[&id];
        quote!(#prefix #name)
    }

    /// The static `ObjectDesc` for an object type, or none for `q_empty`
    /// and inlined bases.
    pub fn members_ref(&self, id: EntityId, prefix: &TokenStream) -> TokenStream {
        match self.members_names.get(&id) {
            Some(name) => quote!(#prefix #name),
            None => quote!(NO_MEMBERS),
        }
    }

    pub fn members_name(&self, id: EntityId) -> Option<&Ident> {
        self.members_names.get(&id)
    }

    pub fn desc_name(&self, id: EntityId) -> Option<&Ident> {
        self.desc_names.get(&id)
    }

    /// Array entities that need a descriptor, in schema order.
    pub fn arrays(&self) -> impl Iterator<Item = EntityId> + '_ {
        (0..self.schema.entities.len())
            .map(EntityId)
            .filter(|id| matches!(self.entity(*id).kind, EntityKind::Array { .. }) && self.desc_names.contains_key(id))
    }

    /// Whether a member of type `member` inside `container` needs a `Box`
    /// because the container can reach itself through it by value.
    fn needs_box(&self, member: EntityId, container: EntityId) -> bool {
        let mut seen = HashSet::new();
        let mut stack = vec![member];
        while let Some(id) = stack.pop() {
            if id == container {
                return true;
            }
            if !seen.insert(id) {
                continue;
            }
            match &self.entity(id).kind {
                EntityKind::Object(o) => {
                    stack.extend(o.members.iter().map(|m| m.typ));
                    if let Some(b) = &o.branches {
                        stack.extend(b.variants.iter().map(|v| v.typ));
                    }
                }
                EntityKind::Alternate { variants } => stack.extend(variants.iter().map(|v| v.typ)),
                _ => {}
            }
        }
        false
    }

    /// The Rust type of a member, branch or alternate case of type `typ`
    /// inside `container`: boxed against recursion.
    pub fn member_type(&self, typ: EntityId, container: EntityId, prefix: &TokenStream) -> TokenStream {
        let ty = self.rust_type(typ, prefix);
        if self.needs_box(typ, container) {
            let boxed = self.prelude("Box");
            quote!(#boxed<#ty>)
        } else {
            ty
        }
    }

    /// A member's field type: [`Self::member_type`], in an `Option` when
    /// the member is optional.
    pub fn field_type(&self, m: &ObjectMember, container: EntityId, prefix: &TokenStream) -> TokenStream {
        let mut ty = self.member_type(m.typ, container, prefix);
        if m.optional {
            let option = self.prelude("Option");
            ty = quote!(#option<#ty>);
        }
        ty
    }
}

fn builtin_type(name: &str) -> TokenStream {
    match name {
        "number" => quote!(f64),
        "int" | "int64" => quote!(i64),
        "int8" => quote!(i8),
        "int16" => quote!(i16),
        "int32" => quote!(i32),
        "uint8" => quote!(u8),
        "uint16" => quote!(u16),
        "uint32" => quote!(u32),
        "uint64" | "size" => quote!(u64),
        "bool" => quote!(bool),
        "null" => quote!(::qapi_runtime::Null),
        _ => quote!(::qapi_runtime::serde_json::Value),
    }
}
