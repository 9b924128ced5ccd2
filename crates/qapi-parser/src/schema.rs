//! The checked schema model: every entity QEMU's generator knows, the
//! implicit ones included, with types resolved and members flattened.

use std::collections::HashMap;
use std::path::Path;

use crate::diag::{DefnContext, Diagnostic};
use crate::doc::{Doc, SectionKind};
use crate::expr::{
    c_name, c_name_char, BranchDef, Checked, CommandFlags, DefKind, Definition, FeatureDef, IfCond, MemberDef,
    ObjectRef, TypeExpr,
};
use crate::parser::Pragma;
use crate::source::{lexical_abs_path, relative_name, Location, SourceMap, Span};
use crate::LINEAR_LOOKUP;

/// Index of an entity in [`Schema::entities`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntityId(pub usize);

/// How a value of a type looks in JSON.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum JsonType {
    String,
    Number,
    Int,
    Boolean,
    Null,
    /// Any JSON value (`any`, alternates).
    Value,
    Array,
    Object,
}

/// The built-in types, in QEMU's order, with their JSON types.
pub const BUILTINS: [(&str, JsonType); 15] = [
    ("str", JsonType::String),
    ("number", JsonType::Number),
    ("int", JsonType::Int),
    ("int8", JsonType::Int),
    ("int16", JsonType::Int),
    ("int32", JsonType::Int),
    ("int64", JsonType::Int),
    ("uint8", JsonType::Int),
    ("uint16", JsonType::Int),
    ("uint32", JsonType::Int),
    ("uint64", JsonType::Int),
    ("size", JsonType::Int),
    ("bool", JsonType::Boolean),
    ("any", JsonType::Value),
    ("null", JsonType::Null),
];

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Feature {
    pub name: String,
    pub ifcond: Option<IfCond>,
}

impl Feature {
    /// `deprecated` and `unstable` have meaning to the generator.
    pub fn is_special(&self) -> bool {
        self.name == "deprecated" || self.name == "unstable"
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnumValue {
    pub name: String,
    pub ifcond: Option<IfCond>,
    pub features: Vec<Feature>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectMember {
    pub name: String,
    pub typ: EntityId,
    pub optional: bool,
    pub ifcond: Option<IfCond>,
    pub features: Vec<Feature>,
    /// The type whose definition lists this member.
    pub defined_in: String,
}

/// A union branch or an alternate's alternative.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Variant {
    pub name: String,
    pub typ: EntityId,
    pub ifcond: Option<IfCond>,
    /// False for branches QEMU adds (as `q_empty`) for enum values the
    /// union does not list.
    pub explicit: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Branches {
    /// The discriminator member's name.
    pub tag: String,
    /// The discriminator's enum type.
    pub tag_type: EntityId,
    pub variants: Vec<Variant>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectType {
    pub base: Option<EntityId>,
    /// Members the definition itself lists.
    pub local_members: Vec<ObjectMember>,
    /// All members: the base's, then the local ones.
    pub members: Vec<ObjectMember>,
    /// Present for unions.
    pub branches: Option<Branches>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Command {
    pub arg_type: Option<EntityId>,
    pub ret_type: Option<EntityId>,
    pub flags: CommandFlags,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntityKind {
    /// An `include` directive, naming the included module.
    Include {
        module: String,
    },
    Builtin {
        json_type: JsonType,
    },
    Enum {
        values: Vec<EnumValue>,
        prefix: Option<String>,
    },
    Array {
        element: EntityId,
    },
    Object(ObjectType),
    Alternate {
        variants: Vec<Variant>,
    },
    Command(Command),
    Event {
        arg_type: Option<EntityId>,
        boxed: bool,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entity {
    pub name: String,
    pub kind: EntityKind,
    /// Where it is defined; for implicit types, the definition that made
    /// them. `None` for built-ins and their arrays.
    pub location: Option<Location>,
    pub ifcond: Option<IfCond>,
    pub features: Vec<Feature>,
    /// Index into [`Schema::docs`].
    pub doc: Option<usize>,
    /// Index into [`Schema::modules`].
    pub module: usize,
    defn: Option<DefnContext>,
    /// The name in the defining expression, for error snippets.
    name_span: Option<Span>,
}

impl Entity {
    /// QEMU's meta-type word: `struct`, `union`, `enum`, `array`, ...
    pub fn meta(&self) -> &'static str {
        match &self.kind {
            EntityKind::Include { .. } => "include",
            EntityKind::Builtin { .. } => "built-in",
            EntityKind::Enum { .. } => "enum",
            EntityKind::Array { .. } => "array",
            EntityKind::Object(o) if o.branches.is_some() => "union",
            EntityKind::Object(_) => "struct",
            EntityKind::Alternate { .. } => "alternate",
            EntityKind::Command(_) => "command",
            EntityKind::Event { .. } => "event",
        }
    }

    /// Types made by the generator rather than written in the schema:
    /// built-ins, arrays, `q_obj_*`, `q_empty` and `QType`.
    pub fn is_implicit(&self) -> bool {
        match &self.kind {
            EntityKind::Builtin { .. } | EntityKind::Array { .. } => true,
            EntityKind::Enum { .. } => self.name == "QType",
            EntityKind::Object(_) => self.name.starts_with("q_"),
            _ => self.location.is_none(),
        }
    }

    pub fn is_type(&self) -> bool {
        !matches!(
            self.kind,
            EntityKind::Include { .. } | EntityKind::Command(_) | EntityKind::Event { .. }
        )
    }

    pub fn json_type(&self) -> Option<JsonType> {
        Some(match &self.kind {
            EntityKind::Builtin { json_type } => *json_type,
            EntityKind::Enum { .. } => JsonType::String,
            EntityKind::Array { .. } => JsonType::Array,
            EntityKind::Object(_) => JsonType::Object,
            EntityKind::Alternate { .. } => JsonType::Value,
            _ => return None,
        })
    }

    pub fn as_object(&self) -> Option<&ObjectType> {
        match &self.kind {
            EntityKind::Object(o) => Some(o),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Module {
    /// `./builtin`, or the file's path relative to the root file's
    /// directory.
    pub name: String,
    pub entities: Vec<EntityId>,
}

/// A schema that passed every check.
#[derive(Debug)]
pub struct Schema {
    pub sources: SourceMap,
    pub entities: Vec<Entity>,
    pub modules: Vec<Module>,
    pub docs: Vec<Doc>,
    pub pragma: Pragma,
    pub warnings: Vec<Diagnostic>,
    by_name: HashMap<String, EntityId>,
}

impl Schema {
    pub fn entity(&self, id: EntityId) -> &Entity {
        &self.entities[id.0]
    }

    pub fn lookup(&self, name: &str) -> Option<EntityId> {
        self.by_name.get(name).copied()
    }

    /// Commands in definition order.
    pub fn commands(&self) -> impl Iterator<Item = (&Entity, &Command)> {
        self.entities.iter().filter_map(|e| match &e.kind {
            EntityKind::Command(c) => Some((e, c)),
            _ => None,
        })
    }

    pub fn doc_of(&self, entity: &Entity) -> Option<&Doc> {
        entity.doc.map(|d| &self.docs[d])
    }
}

const FEATURE_LIMIT: usize = 64;

#[derive(Clone, Copy, Default)]
struct CheckState {
    started: bool,
    complete: bool,
}

pub(crate) struct Builder {
    strict: bool,
    pragma: Pragma,
    docs: Vec<Doc>,
    warnings: Vec<Diagnostic>,
    entities: Vec<Entity>,
    by_name: HashMap<String, EntityId>,
    state: Vec<CheckState>,
    feature_names: Vec<String>,
    /// Member-level type names still to resolve, per entity: object
    /// members, variants, array elements, command and event types.
    unresolved: Vec<Unresolved>,
}

/// Names written in a definition, resolved during `check`.
#[derive(Clone, Debug, Default)]
struct Unresolved {
    base: Option<String>,
    members: Vec<String>,
    variants: Vec<String>,
    element: Option<String>,
    arg: Option<String>,
    ret: Option<String>,
    tag: Option<String>,
}

type Res<T> = Result<T, Diagnostic>;

/// Names seen so far in a clash check, by C name: role, name, and the
/// type that defines it.
#[derive(Clone, Default)]
struct Seen {
    entries: Vec<SeenName>,
    /// Built once `entries` outgrows [`LINEAR_LOOKUP`].
    by_c_name: HashMap<String, usize>,
}

#[derive(Clone)]
struct SeenName {
    role: &'static str,
    name: String,
    defined_in: String,
}

impl Seen {
    fn new() -> Seen {
        Seen::default()
    }

    /// The name seen with the same C name as `name`.
    fn get(&self, name: &str) -> Option<&SeenName> {
        if self.entries.len() <= LINEAR_LOOKUP {
            let same = |e: &&SeenName| e.name.chars().map(c_name_char).eq(name.chars().map(c_name_char));
            return self.entries.iter().find(same);
        }
        self.by_c_name.get(&c_name(name)).map(|&i| &self.entries[i])
    }

    fn insert(&mut self, role: &'static str, name: &str, defined_in: &str) {
        self.entries.push(SeenName {
            role,
            name: name.to_string(),
            defined_in: defined_in.to_string(),
        });
        if self.entries.len() > LINEAR_LOOKUP {
            if self.by_c_name.is_empty() {
                self.by_c_name
                    .extend(self.entries.iter().enumerate().map(|(i, e)| (c_name(&e.name), i)));
            } else {
                self.by_c_name.insert(c_name(name), self.entries.len() - 1);
            }
        }
    }
}

const UNRESOLVED: EntityId = EntityId(usize::MAX);

impl Builder {
    pub fn new(strict: bool, pragma: Pragma, docs: Vec<Doc>, warnings: Vec<Diagnostic>) -> Self {
        Builder {
            strict,
            pragma,
            docs,
            warnings,
            entities: Vec::new(),
            by_name: HashMap::new(),
            state: Vec::new(),
            feature_names: vec!["deprecated".into(), "unstable".into()],
            unresolved: Vec::new(),
        }
    }

    fn err_at(&self, location: Option<Location>, defn: Option<&DefnContext>, message: impl Into<String>) -> Diagnostic {
        let mut d = Diagnostic::error(message).in_defn(defn.cloned());
        d.location = location;
        d
    }

    fn warn(&mut self, mut d: Diagnostic) {
        d.severity = crate::diag::Severity::Warning;
        self.warnings.push(d);
    }

    fn entity_err(&self, id: EntityId, message: impl Into<String>) -> Diagnostic {
        let e = &self.entities[id.0];
        // Implicit types report through the definition that made them.
        let span = e.name_span.or_else(|| {
            e.defn
                .as_ref()
                .and_then(|d| self.by_name.get(&d.name))
                .and_then(|o| self.entities[o.0].name_span)
        });
        let d = self.err_at(e.location, e.defn.as_ref(), message);
        match span {
            Some(s) => d.highlight(s),
            None => d,
        }
    }

    fn describe(&self, id: EntityId) -> String {
        let e = &self.entities[id.0];
        match &e.kind {
            EntityKind::Array { .. } => {
                let element = self.unresolved[id.0].element.clone().unwrap_or_default();
                format!("array type ['{element}']")
            }
            EntityKind::Command(_) | EntityKind::Event { .. } | EntityKind::Include { .. } => {
                format!("{} '{}'", e.meta(), e.name)
            }
            _ => format!("{} type '{}'", e.meta(), e.name),
        }
    }

    fn add_entity(&mut self, entity: Entity, unresolved: Unresolved) -> Res<EntityId> {
        let id = EntityId(self.entities.len());
        let named = !matches!(entity.kind, EntityKind::Include { .. });
        if named {
            if let Some(&other) = self.by_name.get(&entity.name) {
                let o = &self.entities[other.0];
                let err = match o.location {
                    Some(_) => self
                        .err_at(
                            entity.location,
                            entity.defn.as_ref(),
                            format!("'{}' is already defined", entity.name),
                        )
                        .note(self.err_at(o.location, o.defn.as_ref(), "previous definition")),
                    None => self.err_at(
                        entity.location,
                        entity.defn.as_ref(),
                        format!("{} is already defined", self.describe(other)),
                    ),
                };
                return Err(match entity.name_span {
                    Some(span) => err.highlight(span),
                    None => err,
                });
            }
            self.by_name.insert(entity.name.clone(), id);
        }
        self.entities.push(entity);
        self.unresolved.push(unresolved);
        self.state.push(CheckState::default());
        Ok(id)
    }

    fn features(
        &mut self,
        defs: &[FeatureDef],
        location: Option<Location>,
        defn: Option<&DefnContext>,
    ) -> Res<Vec<Feature>> {
        for f in defs {
            if !self.feature_names.contains(&f.name) {
                self.feature_names.push(f.name.clone());
                if self.feature_names.len() > FEATURE_LIMIT {
                    return Err(self.err_at(
                        location,
                        defn,
                        format!("Maximum of {FEATURE_LIMIT} schema features is permitted"),
                    ));
                }
            }
        }
        Ok(defs
            .iter()
            .map(|f| Feature {
                name: f.name.clone(),
                ifcond: f.ifcond.clone(),
            })
            .collect())
    }

    fn builtin_entity(name: &str, kind: EntityKind) -> Entity {
        Entity {
            name: name.to_string(),
            kind,
            location: None,
            ifcond: None,
            features: Vec::new(),
            doc: None,
            module: 0,
            defn: None,
            name_span: None,
        }
    }

    pub fn define_predefined(&mut self) -> Res<()> {
        for (name, json_type) in BUILTINS {
            self.add_entity(
                Self::builtin_entity(name, EntityKind::Builtin { json_type }),
                Unresolved::default(),
            )?;
            self.make_array(name, None, None)?;
        }
        let empty = EntityKind::Object(ObjectType {
            base: None,
            local_members: Vec::new(),
            members: Vec::new(),
            branches: None,
        });
        self.add_entity(Self::builtin_entity("q_empty", empty), Unresolved::default())?;
        let values = ["none", "qnull", "qnum", "qstring", "qdict", "qlist", "qbool"]
            .iter()
            .map(|n| EnumValue {
                name: n.to_string(),
                ifcond: None,
                features: Vec::new(),
            })
            .collect();
        self.add_entity(
            Self::builtin_entity("QType", EntityKind::Enum { values, prefix: None }),
            Unresolved::default(),
        )?;
        Ok(())
    }

    fn make_array(&mut self, element: &str, location: Option<Location>, defn: Option<&DefnContext>) -> Res<String> {
        let name = format!("{element}List");
        let exists = self.by_name.get(&name).is_some_and(|&id| self.entities[id.0].is_type());
        if !exists {
            let entity = Entity {
                name: name.clone(),
                kind: EntityKind::Array { element: UNRESOLVED },
                location,
                ifcond: None,
                features: Vec::new(),
                doc: None,
                module: 0,
                defn: defn.cloned(),
                name_span: None,
            };
            let unresolved = Unresolved {
                element: Some(element.to_string()),
                ..Default::default()
            };
            self.add_entity(entity, unresolved)?;
        }
        Ok(name)
    }

    fn type_name(&mut self, t: &TypeExpr, location: Location, defn: &DefnContext) -> Res<String> {
        match t {
            TypeExpr::Named(n) => Ok(n.clone()),
            TypeExpr::Array(n) => self.make_array(n, Some(location), Some(defn)),
        }
    }

    fn members(
        &mut self,
        defs: &[MemberDef],
        owner: &str,
        location: Location,
        defn: &DefnContext,
    ) -> Res<(Vec<ObjectMember>, Vec<String>)> {
        let mut members = Vec::with_capacity(defs.len());
        let mut names = Vec::with_capacity(defs.len());
        for m in defs {
            let typ = self.type_name(&m.typ, location, defn)?;
            let features = self.features(&m.features, Some(location), Some(defn))?;
            members.push(ObjectMember {
                name: m.name.clone(),
                typ: UNRESOLVED,
                optional: m.optional,
                ifcond: m.ifcond.clone(),
                features,
                defined_in: owner.to_string(),
            });
            names.push(typ);
        }
        Ok((members, names))
    }

    fn implicit_object(
        &mut self,
        owner: &str,
        role: &str,
        defs: &[MemberDef],
        ifcond: &Option<IfCond>,
        location: Location,
        defn: &DefnContext,
    ) -> Res<Option<String>> {
        if defs.is_empty() {
            return Ok(None);
        }
        let name = format!("q_obj_{owner}-{role}");
        let (members, names) = self.members(defs, &name, location, defn)?;
        if !self.by_name.contains_key(&name) {
            let entity = Entity {
                name: name.clone(),
                kind: EntityKind::Object(ObjectType {
                    base: None,
                    local_members: members,
                    members: Vec::new(),
                    branches: None,
                }),
                location: Some(location),
                ifcond: ifcond.clone(),
                features: Vec::new(),
                doc: None,
                module: 0,
                defn: Some(defn.clone()),
                name_span: None,
            };
            self.add_entity(
                entity,
                Unresolved {
                    members: names,
                    ..Default::default()
                },
            )?;
        }
        Ok(Some(name))
    }

    fn variants(
        &mut self,
        defs: &[BranchDef],
        location: Location,
        defn: &DefnContext,
    ) -> Res<(Vec<Variant>, Vec<String>)> {
        let mut variants = Vec::with_capacity(defs.len());
        let mut names = Vec::with_capacity(defs.len());
        for b in defs {
            names.push(self.type_name(&b.typ, location, defn)?);
            variants.push(Variant {
                name: b.name.clone(),
                typ: UNRESOLVED,
                ifcond: b.ifcond.clone(),
                explicit: true,
            });
        }
        Ok((variants, names))
    }

    pub fn define(&mut self, checked: &[Checked]) -> Res<()> {
        for c in checked {
            match c {
                Checked::Include { name, location } => {
                    let entity = Entity {
                        name: name.clone(),
                        kind: EntityKind::Include { module: name.clone() },
                        location: Some(*location),
                        ifcond: None,
                        features: Vec::new(),
                        doc: None,
                        module: 0,
                        defn: None,
                        name_span: None,
                    };
                    self.add_entity(entity, Unresolved::default())?;
                }
                Checked::Definition(d) => self.define_one(d)?,
            }
        }
        Ok(())
    }

    fn define_one(&mut self, d: &Definition) -> Res<()> {
        let defn = DefnContext {
            meta: d.meta.to_string(),
            name: d.name.clone(),
        };
        let loc = d.location;
        let features = self.features(&d.features, Some(loc), Some(&defn))?;
        let mut unresolved = Unresolved::default();
        let kind = match &d.kind {
            DefKind::Enum { values, prefix } => {
                let mut out = Vec::with_capacity(values.len());
                for v in values {
                    out.push(EnumValue {
                        name: v.name.clone(),
                        ifcond: v.ifcond.clone(),
                        features: self.features(&v.features, Some(loc), Some(&defn))?,
                    });
                }
                EntityKind::Enum {
                    values: out,
                    prefix: prefix.clone(),
                }
            }
            DefKind::Struct { base, members } => {
                let (local_members, names) = self.members(members, &d.name, loc, &defn)?;
                unresolved.base = base.clone();
                unresolved.members = names;
                EntityKind::Object(ObjectType {
                    base: None,
                    local_members,
                    members: Vec::new(),
                    branches: None,
                })
            }
            DefKind::Union {
                base,
                discriminator,
                branches,
            } => {
                unresolved.base = match base {
                    ObjectRef::Named(n) => Some(n.clone()),
                    ObjectRef::Inline(m) => self.implicit_object(&d.name, "base", m, &d.ifcond, loc, &defn)?,
                };
                let (variants, names) = self.variants(branches, loc, &defn)?;
                unresolved.variants = names;
                unresolved.tag = Some(discriminator.clone());
                EntityKind::Object(ObjectType {
                    base: None,
                    local_members: Vec::new(),
                    members: Vec::new(),
                    branches: Some(Branches {
                        tag: discriminator.clone(),
                        tag_type: UNRESOLVED,
                        variants,
                    }),
                })
            }
            DefKind::Alternate { branches } => {
                let (variants, names) = self.variants(branches, loc, &defn)?;
                unresolved.variants = names;
                EntityKind::Alternate { variants }
            }
            DefKind::Command { data, returns, flags } => {
                unresolved.arg = self.arg_type(data, &d.name, &d.ifcond, loc, &defn)?;
                unresolved.ret = match returns {
                    None => None,
                    Some(t) => Some(self.type_name(t, loc, &defn)?),
                };
                EntityKind::Command(Command {
                    arg_type: None,
                    ret_type: None,
                    flags: *flags,
                })
            }
            DefKind::Event { data, boxed } => {
                unresolved.arg = self.arg_type(data, &d.name, &d.ifcond, loc, &defn)?;
                EntityKind::Event {
                    arg_type: None,
                    boxed: *boxed,
                }
            }
        };
        let entity = Entity {
            name: d.name.clone(),
            kind,
            location: Some(loc),
            ifcond: d.ifcond.clone(),
            features,
            doc: d.doc,
            module: 0,
            defn: Some(defn),
            name_span: Some(d.name_span),
        };
        self.add_entity(entity, unresolved)?;
        Ok(())
    }

    fn arg_type(
        &mut self,
        data: &Option<ObjectRef>,
        owner: &str,
        ifcond: &Option<IfCond>,
        loc: Location,
        defn: &DefnContext,
    ) -> Res<Option<String>> {
        match data {
            None => Ok(None),
            Some(ObjectRef::Named(n)) => Ok(Some(n.clone())),
            Some(ObjectRef::Inline(m)) => self.implicit_object(owner, "arg", m, ifcond, loc, defn),
        }
    }

    // ------------------------------------------------------------ check

    fn lookup_type(&self, name: &str) -> Option<EntityId> {
        self.by_name
            .get(name)
            .copied()
            .filter(|id| self.entities[id.0].is_type())
    }

    fn resolve(&self, name: &str, reporter: EntityId, what: &str) -> Res<EntityId> {
        self.resolve_with(name, reporter, |_| what.to_string())
    }

    /// [`Self::resolve`] that words what uses the type only on error.
    fn resolve_with(&self, name: &str, reporter: EntityId, what: impl FnOnce(&Self) -> String) -> Res<EntityId> {
        self.lookup_type(name).ok_or_else(|| {
            let what = what(self);
            self.entity_err(reporter, format!("{what} uses unknown type '{name}'"))
        })
    }

    /// How QEMU names a member in messages, relative to the definition
    /// being reported on.
    fn describe_member(&self, role: &str, name: &str, defined_in: &str, reporter: EntityId) -> String {
        let mut role = role.to_string();
        let mut meta = "type";
        let mut owner = defined_in;
        if let Some(rest) = owner.strip_prefix("q_obj_") {
            if let Some(cmd) = rest.strip_suffix("-arg") {
                role = "parameter".to_string();
                meta = "command";
                owner = cmd;
            } else if let Some(base) = rest.strip_suffix("-base") {
                role = format!("base {role}");
                owner = base;
            }
        }
        let reporter_name = self.entities[reporter.0].defn.as_ref().map(|d| d.name.as_str());
        if reporter_name != Some(owner) {
            format!("{role} '{name}' of {meta} '{owner}'")
        } else {
            format!("{role} '{name}'")
        }
    }

    fn check_clash(
        &self,
        seen: &mut Seen,
        role: &'static str,
        name: &str,
        defined_in: &str,
        reporter: EntityId,
    ) -> Res<()> {
        if let Some(other) = seen.get(name) {
            return Err(self.entity_err(
                reporter,
                format!(
                    "{} collides with {}",
                    self.describe_member(role, name, defined_in, reporter),
                    self.describe_member(other.role, &other.name, &other.defined_in, reporter)
                ),
            ));
        }
        seen.insert(role, name, defined_in);
        Ok(())
    }

    fn check_features(&self, id: EntityId, features: &[Feature], owner: &str) -> Res<()> {
        let mut seen = Seen::new();
        for f in features {
            self.check_clash(&mut seen, "feature", &f.name, owner, id)?;
        }
        Ok(())
    }

    pub fn check(&mut self) -> Res<()> {
        for i in 0..self.entities.len() {
            let id = EntityId(i);
            self.check_entity(id)?;
            self.connect_doc(id)?;
        }
        for doc in &self.docs {
            for (kind, what) in [(SectionKind::Member, "member"), (SectionKind::Feature, "feature")] {
                if let Some((location, bogus)) = doc.unconnected(kind) {
                    let (s, verb) = if bogus.len() > 1 { ("s", "do") } else { ("", "does") };
                    let d = Diagnostic::error(format!(
                        "documented {what}{s} '{}' {verb} not exist",
                        bogus.join("', '")
                    ))
                    .at(location);
                    if self.strict {
                        return Err(d);
                    }
                    let mut w = d;
                    w.severity = crate::diag::Severity::Warning;
                    self.warnings.push(w);
                }
            }
        }
        Ok(())
    }

    fn check_entity(&mut self, id: EntityId) -> Res<()> {
        match &self.entities[id.0].kind {
            EntityKind::Object(_) => self.check_object(id),
            EntityKind::Include { .. } | EntityKind::Builtin { .. } => Ok(()),
            EntityKind::Enum { .. } => self.check_enum(id),
            EntityKind::Array { .. } => self.check_array(id),
            EntityKind::Alternate { variants } => self.check_alternate(id, variants.clone()),
            EntityKind::Command(command) => self.check_command(id, command.clone()),
            &EntityKind::Event { boxed, .. } => self.check_event(id, boxed),
        }
    }

    fn check_enum(&self, id: EntityId) -> Res<()> {
        self.check_type_features(id)?;
        let entity = &self.entities[id.0];
        let EntityKind::Enum { values, .. } = &entity.kind else {
            unreachable!("checked enum")
        };
        let mut seen = Seen::new();
        for v in values {
            self.check_clash(&mut seen, "value", &v.name, &entity.name, id)?;
        }
        Ok(())
    }

    fn check_array(&mut self, id: EntityId) -> Res<()> {
        self.check_type_features(id)?;
        let element = self.unresolved[id.0].element.clone().unwrap();
        let what = self.entities[id.0]
            .defn
            .as_ref()
            .map_or(String::new(), |d| d.meta.clone());
        let element_id = self.resolve(&element, id, &what)?;
        if matches!(self.entities[element_id.0].kind, EntityKind::Array { .. }) {
            return Err(self.entity_err(id, format!("array type ['{element}'] cannot contain an array")));
        }
        self.entities[id.0].kind = EntityKind::Array { element: element_id };
        Ok(())
    }

    fn check_command(&mut self, id: EntityId, mut command: Command) -> Res<()> {
        let e = &self.entities[id.0];
        self.check_features(id, &e.features, &e.name)?;
        let name = self.entities[id.0].name.clone();
        let unresolved = self.unresolved[id.0].clone();
        if let Some(arg) = &unresolved.arg {
            command.arg_type = Some(self.check_args(id, arg, "command", command.flags.boxed)?);
        }
        if let Some(ret) = &unresolved.ret {
            let ret_id = self.resolve(ret, id, "command's 'returns'")?;
            command.ret_type = Some(ret_id);
            if !self.pragma.command_returns_exceptions.contains(&name) {
                let mut t = ret_id;
                if let EntityKind::Array { element } = self.entities[t.0].kind {
                    t = element;
                }
                if !matches!(self.entities[t.0].kind, EntityKind::Object(_)) {
                    let e = self.entity_err(id, format!("command's 'returns' cannot take {}", self.describe(ret_id)));
                    if self.strict {
                        return Err(e);
                    }
                    // Before QEMU 2.9 no pragma listed the exceptions.
                    self.warn(e);
                }
            }
        }
        self.entities[id.0].kind = EntityKind::Command(command);
        Ok(())
    }

    fn check_event(&mut self, id: EntityId, boxed: bool) -> Res<()> {
        let e = &self.entities[id.0];
        self.check_features(id, &e.features, &e.name)?;
        let arg = self.unresolved[id.0].arg.clone();
        let arg_type = match arg {
            Some(a) => Some(self.check_args(id, &a, "event", boxed)?),
            None => None,
        };
        self.entities[id.0].kind = EntityKind::Event { arg_type, boxed };
        Ok(())
    }

    fn check_args(&mut self, id: EntityId, arg: &str, meta: &str, boxed: bool) -> Res<EntityId> {
        let what = format!("{meta}'s 'data'");
        let arg_id = self.resolve(arg, id, &what)?;
        let Some(obj) = self.entities[arg_id.0].as_object() else {
            return Err(self.entity_err(id, format!("{what} cannot take {}", self.describe(arg_id))));
        };
        if obj.branches.is_some() && !boxed {
            return Err(self.entity_err(
                id,
                format!("{what} can take {} only with 'boxed': true", self.describe(arg_id)),
            ));
        }
        self.check_object(arg_id)?;
        let conditional = self.entities[arg_id.0]
            .as_object()
            .is_some_and(|o| o.members.iter().any(|m| m.ifcond.is_some()));
        if conditional && !boxed {
            return Err(self.entity_err(id, format!("conditional {meta} arguments require 'boxed': true")));
        }
        Ok(arg_id)
    }

    fn check_type_features(&self, id: EntityId) -> Res<()> {
        let e = &self.entities[id.0];
        self.check_features(id, &e.features, &e.name)?;
        if let Some(f) = e.features.iter().find(|f| f.is_special()) {
            return Err(self.entity_err(id, format!("feature '{}' is not supported for types", f.name)));
        }
        Ok(())
    }

    fn object_members(&self, id: EntityId) -> &ObjectType {
        self.entities[id.0].as_object().expect("checked object")
    }

    /// Adds `id`'s members (and for unions each branch's) to `seen`,
    /// reporting clashes against `reporter`.
    fn object_clash(&self, id: EntityId, reporter: EntityId, seen: &mut Seen) -> Res<()> {
        let obj = self.object_members(id);
        for m in &obj.members {
            self.check_clash(seen, "member", &m.name, &m.defined_in, reporter)?;
        }
        if let Some(b) = &obj.branches {
            for v in &b.variants {
                let mut branch_seen = seen.clone();
                self.object_clash(v.typ, reporter, &mut branch_seen)?;
            }
        }
        Ok(())
    }

    fn check_object(&mut self, id: EntityId) -> Res<()> {
        let state = self.state[id.0];
        if state.complete {
            return Ok(());
        }
        if state.started {
            let name = self.entities[id.0].name.clone();
            return Err(self.entity_err(id, format!("object {name} contains itself")));
        }
        self.state[id.0].started = true;
        self.check_type_features(id)?;

        let mut seen = Seen::new();
        // Read once: a checked object is never checked again.
        let unresolved = std::mem::take(&mut self.unresolved[id.0]);
        // Taken out while it is checked. Meanwhile only its name, location
        // and whether it is a union are read (a base cycle back to it stops
        // at `started`), so the stand-in keeps the branches.
        let branches = self.object_members(id).branches.clone();
        let EntityKind::Object(mut obj) = std::mem::replace(
            &mut self.entities[id.0].kind,
            EntityKind::Object(ObjectType {
                base: None,
                local_members: Vec::new(),
                members: Vec::new(),
                branches,
            }),
        ) else {
            unreachable!("checked object")
        };
        let mut members = Vec::new();
        if let Some(base_name) = &unresolved.base {
            let base = self.resolve(base_name, id, "'base'")?;
            let is_struct = self.entities[base.0].as_object().is_some_and(|o| o.branches.is_none());
            if !is_struct {
                return Err(self.entity_err(
                    id,
                    format!("'base' requires a struct type, {} isn't", self.describe(base)),
                ));
            }
            self.check_object(base)?;
            self.object_clash(base, id, &mut seen)?;
            obj.base = Some(base);
            members.extend(self.object_members(base).members.iter().cloned());
        }
        for (i, m) in obj.local_members.iter_mut().enumerate() {
            m.typ = self.resolve_with(&unresolved.members[i], id, |this| {
                this.describe_member("member", &m.name, &m.defined_in, id)
            })?;
            self.check_features(id, &m.features, &m.name)?;
            self.check_clash(&mut seen, "member", &m.name, &m.defined_in, id)?;
        }
        members.extend(obj.local_members.iter().cloned());
        obj.members = members;

        if obj.branches.is_some() {
            // Branch checks read the union's members.
            self.entities[id.0].kind = EntityKind::Object(obj.clone());
            self.check_branches(id, &mut obj, &unresolved, &seen)?;
            let branch_types: Vec<EntityId> = obj.branches.as_ref().unwrap().variants.iter().map(|v| v.typ).collect();
            self.entities[id.0].kind = EntityKind::Object(obj);
            for typ in branch_types {
                let mut branch_seen = seen.clone();
                self.object_clash(typ, id, &mut branch_seen)?;
            }
        } else {
            self.entities[id.0].kind = EntityKind::Object(obj);
        }
        self.state[id.0].complete = true;
        Ok(())
    }

    fn check_branches(&mut self, id: EntityId, obj: &mut ObjectType, unresolved: &Unresolved, seen: &Seen) -> Res<()> {
        let tag = unresolved.tag.clone().unwrap();
        let found = seen.get(&tag);
        let tag_member = match found {
            Some(seen) if seen.name == tag => obj.members.iter().find(|m| m.name == tag).cloned(),
            _ => None,
        };
        let Some(tag_member) = tag_member else {
            return Err(self.entity_err(id, format!("discriminator '{tag}' is not a member of 'base'")));
        };
        let base_desc = match self.by_name.get(&tag_member.defined_in) {
            Some(&b) if !self.entities[b.0].is_implicit() => format!("base type '{}'", tag_member.defined_in),
            _ => "'base'".to_string(),
        };
        let EntityKind::Enum { values, .. } = &self.entities[tag_member.typ.0].kind else {
            return Err(self.entity_err(
                id,
                format!("discriminator member '{tag}' of {base_desc} must be of enum type"),
            ));
        };
        let values = values.clone();
        if tag_member.optional {
            return Err(self.entity_err(
                id,
                format!("discriminator member '{tag}' of {base_desc} must not be optional"),
            ));
        }
        if tag_member.ifcond.is_some() {
            return Err(self.entity_err(
                id,
                format!("discriminator member '{tag}' of {base_desc} must not be conditional"),
            ));
        }
        let branches = obj.branches.as_mut().unwrap();
        branches.tag_type = tag_member.typ;
        let mut type_names = unresolved.variants.clone();
        for v in &values {
            if !branches.variants.iter().any(|b| b.name == v.name) {
                branches.variants.push(Variant {
                    name: v.name.clone(),
                    typ: UNRESOLVED,
                    ifcond: v.ifcond.clone(),
                    explicit: false,
                });
                type_names.push("q_empty".to_string());
            }
        }
        if branches.variants.is_empty() {
            return Err(self.entity_err(id, "union has no branches"));
        }
        let union_name = self.entities[id.0].name.clone();
        for (i, v) in branches.variants.iter_mut().enumerate() {
            let what = self.describe_member("branch", &v.name, &union_name, id);
            v.typ = self.resolve(&type_names[i], id, &what)?;
            if !values.iter().any(|e| e.name == v.name) {
                return Err(self.entity_err(
                    id,
                    format!(
                        "branch '{}' is not a value of {}",
                        v.name,
                        self.describe(tag_member.typ)
                    ),
                ));
            }
            if self.entities[v.typ.0].as_object().is_none() {
                return Err(self.entity_err(id, format!("{what} cannot use {}", self.describe(v.typ))));
            }
            self.check_object(v.typ)?;
        }
        Ok(())
    }

    fn check_alternate(&mut self, id: EntityId, mut variants: Vec<Variant>) -> Res<()> {
        self.check_type_features(id)?;
        let name = self.entities[id.0].name.clone();
        let names = self.unresolved[id.0].variants.clone();
        for (i, v) in variants.iter_mut().enumerate() {
            let what = self.describe_member("branch", &v.name, &name, id);
            v.typ = self.resolve(&names[i], id, &what)?;
        }
        let mut seen = Seen::new();
        let mut types_seen: Vec<(JsonType, String)> = Vec::new();
        for v in &variants {
            self.check_clash(&mut seen, "branch", &v.name, &name, id)?;
            let what = self.describe_member("branch", &v.name, &name, id);
            let t = &self.entities[v.typ.0];
            let qtype = match t.json_type() {
                Some(JsonType::Value) | None => {
                    return Err(self.entity_err(id, format!("{what} cannot use {}", self.describe(v.typ))));
                }
                Some(JsonType::Int) => JsonType::Number,
                Some(j) => j,
            };
            let mut conflicting = vec![qtype];
            if qtype == JsonType::String {
                match &t.kind {
                    EntityKind::Enum { values, .. } => {
                        for m in values {
                            if (m.name == "on" || m.name == "off") && !conflicting.contains(&JsonType::Boolean) {
                                conflicting.push(JsonType::Boolean);
                            }
                            if m.name.starts_with(|c: char| "-+0123456789.".contains(c))
                                && !conflicting.contains(&JsonType::Number)
                            {
                                conflicting.push(JsonType::Number);
                            }
                        }
                    }
                    _ => {
                        conflicting.push(JsonType::Number);
                        conflicting.push(JsonType::Boolean);
                    }
                }
            }
            conflicting.dedup();
            for qt in conflicting {
                if let Some((_, other)) = types_seen.iter().find(|(t, _)| *t == qt) {
                    return Err(self.entity_err(id, format!("{what} can't be distinguished from '{other}'")));
                }
                types_seen.push((qt, v.name.clone()));
            }
        }
        self.entities[id.0].kind = EntityKind::Alternate { variants };
        Ok(())
    }

    // ------------------------------------------------------- documentation

    fn connect_doc(&mut self, id: EntityId) -> Res<()> {
        let Some(d) = self.entities[id.0].doc else {
            return Ok(());
        };
        // The block is taken out so that the entity can be read in place.
        let mut docs = std::mem::take(&mut self.docs);
        let mut warnings = Vec::new();
        let result = self.connect_doc_to(&mut docs[d], id, &mut warnings);
        self.docs = docs;
        self.warnings.extend(warnings);
        result
    }

    fn connect_doc_to(&self, doc: &mut Doc, id: EntityId, warnings: &mut Vec<Diagnostic>) -> Res<()> {
        let e = &self.entities[id.0];
        for f in &e.features {
            self.connect_feature(doc, f, id, warnings)?;
        }
        match &e.kind {
            EntityKind::Enum { values, .. } => {
                for v in values {
                    self.connect_member(doc, "value", &v.name, id, warnings)?;
                    for f in &v.features {
                        self.connect_feature(doc, f, id, warnings)?;
                    }
                }
            }
            EntityKind::Object(obj) => {
                if let Some(base) = obj.base {
                    if self.entities[base.0].is_implicit() {
                        self.connect_doc_to(doc, base, warnings)?;
                    }
                }
                for m in &obj.local_members {
                    self.connect_member(doc, "member", &m.name, id, warnings)?;
                    for f in &m.features {
                        self.connect_feature(doc, f, id, warnings)?;
                    }
                }
            }
            EntityKind::Alternate { variants } => {
                for v in variants {
                    self.connect_member(doc, "branch", &v.name, id, warnings)?;
                }
            }
            EntityKind::Command(Command { arg_type: Some(a), .. }) | EntityKind::Event { arg_type: Some(a), .. }
                if self.entities[a.0].is_implicit() =>
            {
                self.connect_doc_to(doc, *a, warnings)?;
            }
            _ => {}
        }
        Ok(())
    }

    fn connect_member(
        &self,
        doc: &mut Doc,
        role: &str,
        name: &str,
        reporter: EntityId,
        warnings: &mut Vec<Diagnostic>,
    ) -> Res<()> {
        if doc.connect_arg(name) {
            return Ok(());
        }
        let symbol = doc.symbol.as_deref().unwrap_or_default();
        if !self.pragma.documentation_exceptions.iter().any(|e| e == symbol) {
            let message = format!("{role} '{name}' lacks documentation");
            if self.strict {
                return Err(self.entity_err(reporter, message));
            }
            warnings.push(self.entity_err(reporter, message).into_warning());
        }
        doc.add_stub_arg(name);
        Ok(())
    }

    fn connect_feature(
        &self,
        doc: &mut Doc,
        f: &Feature,
        reporter: EntityId,
        warnings: &mut Vec<Diagnostic>,
    ) -> Res<()> {
        if doc.connect_feature(&f.name) {
            return Ok(());
        }
        let message = format!("feature '{}' lacks documentation", f.name);
        if self.strict {
            return Err(self.entity_err(reporter, message));
        }
        warnings.push(self.entity_err(reporter, message).into_warning());
        Ok(())
    }

    /// Warnings so far, for a failed build.
    pub fn into_warnings(self) -> Vec<Diagnostic> {
        self.warnings
    }

    /// Assigns entities to modules and hands over the finished schema.
    pub fn finish(mut self, sources: SourceMap) -> Schema {
        let root = sources
            .files()
            .next()
            .map(|(_, f)| f.abs_path.clone())
            .unwrap_or_default();
        let root_dir = root.parent().map(Path::to_path_buf).unwrap_or_default();
        let module_name = |file_abs: &Path| relative_name(file_abs, &root_dir);
        let mut modules = vec![Module {
            name: "./builtin".to_string(),
            entities: Vec::new(),
        }];
        if let Some((_, f)) = sources.files().next() {
            modules.push(Module {
                name: module_name(&f.abs_path),
                entities: Vec::new(),
            });
        }
        // Included modules appear in the order of their first include.
        for e in &self.entities {
            if let EntityKind::Include { module } = &e.kind {
                let name = module_name(&lexical_abs_path(Path::new(module)));
                if !modules.iter().any(|m| m.name == name) {
                    modules.push(Module {
                        name,
                        entities: Vec::new(),
                    });
                }
            }
        }
        // The module of each file, computed once.
        let mut file_modules: Vec<Option<usize>> = vec![None; sources.files().count()];
        for i in 0..self.entities.len() {
            let location = match &self.entities[i].kind {
                EntityKind::Array { element } => self.entities[element.0].location,
                _ => self.entities[i].location,
            };
            let m = match location {
                None => 0,
                Some(l) => *file_modules[l.file.0 as usize].get_or_insert_with(|| {
                    let name = module_name(&sources.get(l.file).abs_path);
                    modules.iter().position(|m| m.name == name).unwrap_or(0)
                }),
            };
            modules[m].entities.push(EntityId(i));
            self.entities[i].module = m;
        }
        Schema {
            sources,
            entities: self.entities,
            modules,
            docs: self.docs,
            pragma: self.pragma,
            warnings: self.warnings,
            by_name: self.by_name,
        }
    }
}
