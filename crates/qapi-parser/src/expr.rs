//! Structural checks of each definition, context-free (QEMU's `expr.py`
//! layer), turning raw values into normalized definitions.

use crate::diag::{DefnContext, Diagnostic};
use crate::doc::{Doc, SectionKind};
use crate::parser::{Expr, Pragma};
use crate::source::{Location, Span};
use crate::syntax::{Member, Value, ValueKind};
use crate::Options;
use std::fmt;

/// An `if` condition.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum IfCond {
    Name(String),
    All(Vec<IfCond>),
    Any(Vec<IfCond>),
    Not(Box<IfCond>),
}

impl IfCond {
    /// Python's repr of the condition, as QEMU's test dump prints it.
    pub fn python_repr(&self, top: bool) -> String {
        match self {
            IfCond::Name(n) if top => n.clone(),
            IfCond::Name(n) => format!("'{n}'"),
            IfCond::All(v) | IfCond::Any(v) => {
                let op = if matches!(self, IfCond::All(_)) { "all" } else { "any" };
                let items: Vec<String> = v.iter().map(|c| c.python_repr(false)).collect();
                format!("{{'{op}': [{}]}}", items.join(", "))
            }
            IfCond::Not(c) => format!("{{'not': {}}}", c.python_repr(false)),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FeatureDef {
    pub name: String,
    pub ifcond: Option<IfCond>,
}

/// A type as written: a name or a one-element array of a name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TypeExpr {
    Named(String),
    Array(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberDef {
    /// The name without the `*` optional marker.
    pub name: String,
    pub optional: bool,
    pub typ: TypeExpr,
    pub ifcond: Option<IfCond>,
    pub features: Vec<FeatureDef>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnumValueDef {
    pub name: String,
    pub ifcond: Option<IfCond>,
    pub features: Vec<FeatureDef>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BranchDef {
    pub name: String,
    pub typ: TypeExpr,
    pub ifcond: Option<IfCond>,
    pub span: Span,
}

/// A type given by name, or members written inline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ObjectRef {
    Named(String),
    Inline(Vec<MemberDef>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DefKind {
    Enum {
        values: Vec<EnumValueDef>,
        prefix: Option<String>,
    },
    Struct {
        base: Option<String>,
        members: Vec<MemberDef>,
    },
    Union {
        base: ObjectRef,
        discriminator: String,
        branches: Vec<BranchDef>,
    },
    Alternate {
        branches: Vec<BranchDef>,
    },
    Command {
        data: Option<ObjectRef>,
        returns: Option<TypeExpr>,
        flags: CommandFlags,
    },
    Event {
        data: Option<ObjectRef>,
        boxed: bool,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CommandFlags {
    pub gen: bool,
    pub success_response: bool,
    pub boxed: bool,
    pub allow_oob: bool,
    pub allow_preconfig: bool,
    pub coroutine: bool,
}

/// A definition that passed the structural checks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Definition {
    pub meta: &'static str,
    pub name: String,
    pub kind: DefKind,
    pub ifcond: Option<IfCond>,
    pub features: Vec<FeatureDef>,
    pub location: Location,
    pub doc: Option<usize>,
    /// The whole expression.
    pub span: Span,
    /// The definition's name.
    pub name_span: Span,
}

/// A definition or an include, in schema order.
#[derive(Clone, Debug)]
pub enum Checked {
    Definition(Definition),
    Include { name: String, location: Location },
}

const METAS: [&str; 6] = ["enum", "struct", "union", "alternate", "command", "event"];

pub(crate) struct ExprChecker<'a> {
    pub opts: &'a Options,
    pub pragma: &'a Pragma,
    pub docs: &'a [Doc],
    pub warnings: &'a mut Vec<Diagnostic>,
    location: Location,
    defn: Option<DefnContext>,
}

type Res<T> = Result<T, Diagnostic>;

/// QEMU's rules for names: an optional `__RFQDN_` downstream prefix, an
/// optional `x-` experimental prefix, then a letter and letters, digits,
/// `-` or `_`. Returns the stem after the prefixes.
fn name_stem(name: &str) -> Option<&str> {
    let mut rest = name;
    if let Some(after) = rest.strip_prefix("__") {
        let end = after.find('_')?;
        let prefix = &after[..end];
        if prefix.is_empty()
            || !prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        {
            return None;
        }
        rest = &after[end + 1..];
    }
    let valid_stem = |s: &str| {
        let mut b = s.bytes();
        matches!(b.next(), Some(c) if c.is_ascii_alphabetic())
            && b.all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-')
    };
    if let Some(after) = rest.strip_prefix("x-").or_else(|| rest.strip_prefix("X-")) {
        if valid_stem(after) {
            return Some(after);
        }
    }
    valid_stem(rest).then_some(rest)
}

/// QEMU's `c_name(name, protect=False)`: every character other than a
/// letter, digit or `_` becomes `_`.
pub fn c_name(name: &str) -> String {
    name.chars().map(c_name_char).collect()
}

pub(crate) fn c_name_char(c: char) -> char {
    if c.is_ascii_alphanumeric() || c == '_' {
        c
    } else {
        '_'
    }
}

/// `c_name(name).starts_with(prefix)`, without building the name.
fn c_name_starts_with(name: &str, prefix: &str) -> bool {
    let mut chars = name.chars().map(c_name_char);
    prefix.chars().all(|p| chars.next() == Some(p))
}

/// How a member is named in messages: "SOURCE member 'KEY'", written
/// only when a message needs it.
struct MemberOf<'a> {
    source: &'a dyn fmt::Display,
    key: &'a str,
}

impl fmt::Display for MemberOf<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} member '{}'", self.source, self.key)
    }
}

fn truthy(v: &Value) -> bool {
    match &v.kind {
        ValueKind::Bool(b) => *b,
        ValueKind::Str(s) => !s.is_empty(),
        ValueKind::Array(a) => !a.is_empty(),
        ValueKind::Object(m) => !m.is_empty(),
    }
}

fn quoted_sorted(items: &[&str]) -> String {
    let mut v: Vec<&str> = items.to_vec();
    v.sort_unstable();
    v.dedup();
    v.iter().map(|e| format!("'{e}'")).collect::<Vec<_>>().join(", ")
}

impl<'a> ExprChecker<'a> {
    pub fn new(opts: &'a Options, pragma: &'a Pragma, docs: &'a [Doc], warnings: &'a mut Vec<Diagnostic>) -> Self {
        ExprChecker {
            opts,
            pragma,
            docs,
            warnings,
            location: Location {
                file: crate::source::FileId(0),
                line: 0,
                col: None,
            },
            defn: None,
        }
    }

    fn err(&self, message: impl Into<String>, span: Span) -> Diagnostic {
        Diagnostic::error(message)
            .at(self.location)
            .in_defn(self.defn.clone())
            .highlight(span)
    }

    fn warn(&mut self, message: impl Into<String>, span: Span) {
        let w = Diagnostic::warning(message)
            .at(self.location)
            .in_defn(self.defn.clone())
            .highlight(span);
        self.warnings.push(w);
    }

    pub fn check_all(&mut self, exprs: &[Expr]) -> Res<Vec<Checked>> {
        let mut out = Vec::with_capacity(exprs.len());
        for expr in exprs {
            if let Some(include) = &expr.include {
                out.push(Checked::Include {
                    name: include.name.clone(),
                    location: expr.location,
                });
                continue;
            }
            out.push(Checked::Definition(self.check_expr(expr)?));
        }
        Ok(out)
    }

    fn check_expr(&mut self, expr: &Expr) -> Res<Definition> {
        self.location = expr.location;
        self.defn = None;
        let value = &expr.value;
        let members = value.as_object().expect("top-level expressions are objects");
        let metas: Vec<&Member> = members.iter().filter(|m| METAS.contains(&m.key.as_str())).collect();
        let (meta, meta_member) =
            match metas.as_slice() {
                [m] => (METAS.iter().copied().find(|x| *x == m.key).unwrap(), *m),
                [] if !self.opts.strict && value.get("type").is_some() => {
                    let m = value.member("type").unwrap();
                    self.warn("'type' is the old spelling of 'struct'", m.key_span);
                    ("struct", m)
                }
                _ => return Err(self.err(
                    "expression must have exactly one key 'enum', 'struct', 'union', 'alternate', 'command', 'event'",
                    value.span,
                )),
            };
        let meta_key = meta_member.key.as_str();
        let Some(name) = meta_member.value.as_str() else {
            return Err(self.err(format!("'{meta}' requires a string name"), meta_member.value.span));
        };
        let name = name.to_string();
        self.defn = Some(DefnContext {
            meta: meta.to_string(),
            name: name.clone(),
        });
        let name_span = meta_member.value.span;
        self.check_defn_name(&name, meta, name_span)?;

        let mut doc_index = expr.doc;
        if let Some(d) = expr.doc {
            let doc = &self.docs[d];
            if doc.symbol.as_deref() != Some(name.as_str()) {
                let message = format!("documentation comment is for '{}'", doc.symbol.as_deref().unwrap_or(""));
                if self.opts.strict {
                    return Err(self.err(message, name_span));
                }
                // Early schemas put a command's comment above the type it
                // returns; the comment documents neither.
                self.warn(message, name_span);
                doc_index = None;
            } else {
                self.check_doc_sections(doc, meta, value.get("returns").is_some())?;
            }
        } else if self.pragma.doc_required {
            return Err(self.err("documentation comment required", name_span));
        }

        let (required, optional): (&[&str], &[&str]) = match meta {
            "enum" => (&["enum", "data"], &["if", "features", "prefix"]),
            "union" => (&["union", "base", "discriminator", "data"], &["if", "features"]),
            "alternate" => (&["alternate", "data"], &["if", "features"]),
            "struct" => (&["struct", "data"], &["base", "if", "features"]),
            "command" => (
                &["command"],
                &[
                    "data",
                    "returns",
                    "boxed",
                    "if",
                    "features",
                    "gen",
                    "success-response",
                    "allow-oob",
                    "allow-preconfig",
                    "coroutine",
                ],
            ),
            _ => (&["event"], &["data", "boxed", "if", "features"]),
        };
        // The legacy 'type' spelling stands in for 'struct'.
        let keys: Vec<&str> = members
            .iter()
            .map(|m| if m.key == meta_key { meta } else { m.key.as_str() })
            .collect();
        self.check_keys(value, &keys, &meta, required, optional)?;

        let kind = match meta {
            "enum" => self.check_enum(value, &name)?,
            "struct" => self.check_struct(value, &name)?,
            "union" => self.check_union(value, &name)?,
            "alternate" => self.check_alternate(value)?,
            "command" => {
                let (data, returns) = self.check_command_data(value, true)?;
                DefKind::Command {
                    data,
                    returns,
                    flags: CommandFlags {
                        gen: true,
                        success_response: true,
                        boxed: false,
                        allow_oob: false,
                        allow_preconfig: false,
                        coroutine: false,
                    },
                }
            }
            _ => {
                let (data, _) = self.check_command_data(value, false)?;
                DefKind::Event { data, boxed: false }
            }
        };
        let ifcond = self.check_if(value.get("if"), &meta)?;
        let features = self.check_features(value.get("features"))?;
        let flags = self.check_flags(value)?;
        let kind = match kind {
            DefKind::Command { data, returns, .. } => DefKind::Command { data, returns, flags },
            DefKind::Event { data, .. } => DefKind::Event {
                data,
                boxed: flags.boxed,
            },
            other => other,
        };
        Ok(Definition {
            meta,
            name,
            kind,
            ifcond,
            features,
            location: expr.location,
            doc: doc_index,
            span: value.span,
            name_span,
        })
    }

    /// `Returns` and `Errors` sections belong to commands; `Returns` only to
    /// commands that return something.
    fn check_doc_sections(&mut self, doc: &Doc, meta: &str, has_returns: bool) -> Res<()> {
        let mut problems = Vec::new();
        if meta == "command" {
            if let Some(s) = doc.section(SectionKind::Returns) {
                if !has_returns {
                    problems.push((s.location, "'Returns' section, but command doesn't return anything"));
                }
            }
        } else {
            if let Some(s) = doc.section(SectionKind::Returns) {
                problems.push((s.location, "'Returns' section is only valid for commands"));
            }
            if let Some(s) = doc.section(SectionKind::Errors) {
                problems.push((s.location, "'Errors' section is only valid for commands"));
            }
        }
        for (location, message) in problems {
            if self.opts.strict {
                return Err(Diagnostic::error(message).at(location));
            }
            self.warnings.push(Diagnostic::warning(message).at(location));
        }
        Ok(())
    }

    fn check_name_str<'n>(&self, name: &'n str, source: &dyn fmt::Display, span: Span) -> Res<&'n str> {
        match name_stem(name) {
            Some(stem) if !c_name_starts_with(name, "q_") => Ok(stem),
            _ => Err(self.err(format!("{source} has an invalid name"), span)),
        }
    }

    fn check_name_lower(
        &mut self,
        name: &str,
        source: &dyn fmt::Display,
        permit_upper: bool,
        permit_underscore: bool,
        span: Span,
    ) -> Res<()> {
        let stem = self.check_name_str(name, source, span)?;
        let upper = !permit_upper && stem.bytes().any(|b| b.is_ascii_uppercase());
        let underscore = !permit_underscore && stem.contains('_');
        if upper || underscore {
            let message = format!("name of {source} must not use uppercase or '_'");
            // Schemas before QEMU 6.0 used '_' freely, before the
            // member-name-exceptions pragma existed.
            if underscore && !upper && !self.opts.strict {
                self.warn(format!("{message} (accepted for older schemas)"), span);
                return Ok(());
            }
            return Err(self.err(message, span));
        }
        Ok(())
    }

    fn check_defn_name(&mut self, name: &str, meta: &str, span: Span) -> Res<()> {
        match meta {
            "event" => {
                let stem = self.check_name_str(name, &meta, span)?;
                if stem.bytes().any(|b| b.is_ascii_lowercase() || b == b'-') {
                    return Err(self.err(format!("name of {meta} must not use lowercase or '-'"), span));
                }
            }
            "command" => {
                let permit = self.pragma.command_name_exceptions.iter().any(|n| n == name);
                self.check_name_lower(name, &meta, false, permit, span)?;
            }
            _ => {
                let stem = self.check_name_str(name, &meta, span)?;
                if !is_camel(stem) {
                    return Err(self.err(format!("name of {meta} must use CamelCase"), span));
                }
                if name.ends_with("List") {
                    return Err(self.err(format!("{meta} name should not end in 'List'"), span));
                }
            }
        }
        Ok(())
    }

    fn check_keys(
        &self,
        value: &Value,
        keys: &[&str],
        source: &dyn fmt::Display,
        required: &[&str],
        optional: &[&str],
    ) -> Res<()> {
        let missing: Vec<&str> = required.iter().copied().filter(|r| !keys.contains(r)).collect();
        if !missing.is_empty() {
            let s = if missing.len() > 1 { "s" } else { "" };
            return Err(self.err(
                format!("{source} misses key{s} {}", quoted_sorted(&missing)),
                value.span,
            ));
        }
        let unknown: Vec<&str> = keys
            .iter()
            .copied()
            .filter(|k| !required.contains(k) && !optional.contains(k))
            .collect();
        if !unknown.is_empty() {
            let allowed: Vec<&str> = required.iter().chain(optional).copied().collect();
            let s = if unknown.len() > 1 { "s" } else { "" };
            let span = value
                .as_object()
                .and_then(|m| m.iter().find(|m| unknown.contains(&m.key.as_str())))
                .map_or(value.span, |m| m.key_span);
            return Err(self.err(
                format!(
                    "{source} has unknown key{s} {}\nValid keys are {}.",
                    quoted_sorted(&unknown),
                    quoted_sorted(&allowed)
                ),
                span,
            ));
        }
        Ok(())
    }

    fn object_keys(value: &Value) -> Vec<&str> {
        value
            .as_object()
            .map(|m| m.iter().map(|m| m.key.as_str()).collect())
            .unwrap_or_default()
    }

    fn check_if(&mut self, cond: Option<&Value>, source: &dyn fmt::Display) -> Res<Option<IfCond>> {
        let Some(cond) = cond else { return Ok(None) };
        if let (ValueKind::Array(items), false) = (&cond.kind, self.opts.strict) {
            // Before QEMU 6.2 a list of names meant "all of them".
            if !items.is_empty() && items.iter().all(|i| i.as_str().is_some()) {
                self.warn("a list of 'if' conditions is the old form of {'all': [...]}", cond.span);
                let all = items
                    .iter()
                    .map(|i| self.check_if_node(i, source))
                    .collect::<Res<Vec<_>>>()?;
                return Ok(Some(IfCond::All(all)));
            }
        }
        self.check_if_node(cond, source).map(Some)
    }

    fn check_if_node(&mut self, cond: &Value, source: &dyn fmt::Display) -> Res<IfCond> {
        match &cond.kind {
            ValueKind::Str(s) if !self.opts.strict && legacy_c_condition(s).is_some() => {
                // QEMU 5.2 to 6.1 wrote conditions as C preprocessor text.
                self.warn(
                    format!("'if' condition '{s}' is the old C preprocessor form"),
                    cond.span,
                );
                Ok(legacy_c_condition(s).unwrap())
            }
            ValueKind::Str(s) => {
                let mut b = s.bytes();
                let valid = matches!(b.next(), Some(c) if c.is_ascii_uppercase())
                    && b.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == b'_');
                if !valid {
                    return Err(self.err(
                        format!("'if' condition '{s}' of {source} is not a valid identifier"),
                        cond.span,
                    ));
                }
                Ok(IfCond::Name(s.clone()))
            }
            ValueKind::Object(members) => {
                let what = format!("'if' condition of {source}");
                self.check_keys(cond, &Self::object_keys(cond), &what, &[], &["all", "any", "not"])?;
                if members.len() != 1 {
                    return Err(self.err(format!("'if' condition of {source} has conflicting keys"), cond.span));
                }
                let m = &members[0];
                if m.key == "not" {
                    return Ok(IfCond::Not(Box::new(self.check_if_node(&m.value, source)?)));
                }
                let Some(operands) = m.value.as_array() else {
                    return Err(self.err(
                        format!("'{}' condition of {source} must be an array", m.key),
                        m.value.span,
                    ));
                };
                if operands.is_empty() {
                    return Err(self.err(format!("'if' condition [] of {source} is useless"), m.value.span));
                }
                let items = operands
                    .iter()
                    .map(|o| self.check_if_node(o, source))
                    .collect::<Res<Vec<_>>>()?;
                Ok(if m.key == "all" {
                    IfCond::All(items)
                } else {
                    IfCond::Any(items)
                })
            }
            _ => Err(self.err(
                format!("'if' condition of {source} must be a string or an object"),
                cond.span,
            )),
        }
    }

    fn check_features(&mut self, features: Option<&Value>) -> Res<Vec<FeatureDef>> {
        let Some(features) = features else {
            return Ok(Vec::new());
        };
        let Some(items) = features.as_array() else {
            return Err(self.err("'features' must be an array", features.span));
        };
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            let source = "'features' member";
            let (name_value, ifcond_value) = match &item.kind {
                ValueKind::Object(_) => {
                    self.check_keys(item, &Self::object_keys(item), &source, &["name"], &["if"])?;
                    (item.get("name").unwrap(), item.get("if"))
                }
                _ => (item, None),
            };
            let Some(name) = name_value.as_str() else {
                return Err(self.err(format!("{source} requires a string name"), name_value.span));
            };
            let source = format!("{source} '{name}'");
            self.check_name_lower(name, &source, false, false, name_value.span)?;
            let ifcond = self.check_if(ifcond_value, &source)?;
            out.push(FeatureDef {
                name: name.to_string(),
                ifcond,
            });
        }
        Ok(out)
    }

    fn check_flags(&mut self, value: &Value) -> Res<CommandFlags> {
        let mut flags = CommandFlags {
            gen: true,
            success_response: true,
            boxed: false,
            allow_oob: false,
            allow_preconfig: false,
            coroutine: false,
        };
        for key in ["gen", "success-response"] {
            let Some(v) = value.get(key) else { continue };
            match &v.kind {
                ValueKind::Bool(false) => {}
                ValueKind::Str(s) if s == "no" && key == "success-response" && !self.opts.strict => {
                    self.warn("'success-response': 'no' is the old spelling of false", v.span);
                }
                _ => return Err(self.err(format!("flag '{key}' may only use false value"), v.span)),
            }
            match key {
                "gen" => flags.gen = false,
                _ => flags.success_response = false,
            }
        }
        for key in ["boxed", "allow-oob", "allow-preconfig", "coroutine"] {
            let Some(v) = value.get(key) else { continue };
            if v.kind != ValueKind::Bool(true) {
                return Err(self.err(format!("flag '{key}' may only use true value"), v.span));
            }
            match key {
                "boxed" => flags.boxed = true,
                "allow-oob" => flags.allow_oob = true,
                "allow-preconfig" => flags.allow_preconfig = true,
                _ => flags.coroutine = true,
            }
        }
        if flags.allow_oob && flags.coroutine {
            return Err(self.err("flags 'allow-oob' and 'coroutine' are incompatible", value.span));
        }
        Ok(flags)
    }

    fn check_enum(&mut self, value: &Value, name: &str) -> Res<DefKind> {
        let data = value.get("data").unwrap();
        let Some(items) = data.as_array() else {
            return Err(self.err("'data' must be an array", data.span));
        };
        let prefix = match value.get("prefix") {
            None => None,
            Some(p) => match p.as_str() {
                Some(s) => Some(s.to_string()),
                None => return Err(self.err("'prefix' must be a string", p.span)),
            },
        };
        let permissive = self.pragma.member_name_exceptions.iter().any(|n| n == name);
        let mut values = Vec::with_capacity(items.len());
        for item in items {
            let source = "'data' member";
            let (name_value, ifcond_value, features_value) = match &item.kind {
                ValueKind::Object(_) => {
                    self.check_keys(item, &Self::object_keys(item), &source, &["name"], &["if", "features"])?;
                    (item.get("name").unwrap(), item.get("if"), item.get("features"))
                }
                _ => (item, None, None),
            };
            let Some(member) = name_value.as_str() else {
                return Err(self.err(format!("{source} requires a string name"), name_value.span));
            };
            let source = format!("{source} '{member}'");
            // Enum values may start with a digit.
            let checked = if member.starts_with(|c: char| c.is_ascii_digit()) {
                format!("d{member}")
            } else {
                member.to_string()
            };
            self.check_name_lower(&checked, &source, permissive, permissive, name_value.span)?;
            let ifcond = self.check_if(ifcond_value, &source)?;
            let features = self.check_features(features_value)?;
            values.push(EnumValueDef {
                name: member.to_string(),
                ifcond,
                features,
                span: name_value.span,
            });
        }
        Ok(DefKind::Enum { values, prefix })
    }

    /// Members written inline, as in a struct's `data`.
    fn check_inline_members(
        &mut self,
        value: &Value,
        source: &dyn fmt::Display,
        parent: Option<&str>,
    ) -> Res<Vec<MemberDef>> {
        let Some(members) = value.as_object() else {
            return Err(self.err(format!("{source} should be an object or type name"), value.span));
        };
        let permissive = parent.is_some_and(|p| self.pragma.member_name_exceptions.iter().any(|n| n == p));
        let mut out = Vec::with_capacity(members.len());
        for m in members {
            let key_source = MemberOf { source, key: &m.key };
            let (name, optional) = match m.key.strip_prefix('*') {
                Some(n) => (n, true),
                None => (m.key.as_str(), false),
            };
            self.check_name_lower(name, &key_source, permissive, permissive, m.key_span)?;
            if name == "u" || c_name_starts_with(name, "has_") {
                return Err(self.err(format!("{key_source} uses reserved name"), m.key_span));
            }
            let (type_value, ifcond_value, features_value) = match &m.value.kind {
                ValueKind::Object(_) => {
                    self.check_keys(
                        &m.value,
                        &Self::object_keys(&m.value),
                        &key_source,
                        &["type"],
                        &["if", "features"],
                    )?;
                    (m.value.get("type").unwrap(), m.value.get("if"), m.value.get("features"))
                }
                _ => (&m.value, None, None),
            };
            let ifcond = self.check_if(ifcond_value, &key_source)?;
            let features = self.check_features(features_value)?;
            let typ = self.check_type_name_or_array(type_value, &key_source)?;
            out.push(MemberDef {
                name: name.to_string(),
                optional,
                typ,
                ifcond,
                features,
                span: m.key_span,
            });
        }
        Ok(out)
    }

    fn check_type_name(&self, value: &Value, source: &dyn fmt::Display) -> Res<String> {
        match value.as_str() {
            Some(s) => Ok(s.to_string()),
            None => Err(self.err(format!("{source} should be a type name"), value.span)),
        }
    }

    fn check_type_name_or_array(&self, value: &Value, source: &dyn fmt::Display) -> Res<TypeExpr> {
        match &value.kind {
            ValueKind::Str(s) => Ok(TypeExpr::Named(s.clone())),
            ValueKind::Array(items) => match items.as_slice() {
                [Value {
                    kind: ValueKind::Str(s),
                    ..
                }] => Ok(TypeExpr::Array(s.clone())),
                _ => Err(self.err(
                    format!("{source}: array type must contain single type name"),
                    value.span,
                )),
            },
            _ => Err(self.err(format!("{source} should be a type name or array"), value.span)),
        }
    }

    fn check_object_ref(&mut self, value: &Value, source: &dyn fmt::Display, parent: Option<&str>) -> Res<ObjectRef> {
        match value.as_str() {
            Some(s) => Ok(ObjectRef::Named(s.to_string())),
            None => Ok(ObjectRef::Inline(self.check_inline_members(value, source, parent)?)),
        }
    }

    fn check_struct(&mut self, value: &Value, name: &str) -> Res<DefKind> {
        let data = value.get("data").unwrap();
        let members = match data.as_str() {
            Some(_) => return Err(self.err("'data' should be an object or type name", data.span)),
            None => self.check_inline_members(data, &"'data'", Some(name))?,
        };
        let base = value
            .get("base")
            .map(|b| self.check_type_name(b, &"'base'"))
            .transpose()?;
        Ok(DefKind::Struct { base, members })
    }

    fn check_branches(&mut self, value: &Value, alternate: bool) -> Res<Vec<BranchDef>> {
        let data = value.get("data").unwrap();
        if alternate && !truthy(data) {
            return Err(self.err("'data' must not be empty", data.span));
        }
        let Some(members) = data.as_object() else {
            return Err(self.err("'data' must be an object", data.span));
        };
        let mut out = Vec::with_capacity(members.len());
        for m in members {
            let source = format!("'data' member '{}'", m.key);
            if alternate {
                self.check_name_lower(&m.key, &source, false, false, m.key_span)?;
            }
            let (type_value, ifcond_value) = match &m.value.kind {
                ValueKind::Object(_) => {
                    self.check_keys(&m.value, &Self::object_keys(&m.value), &source, &["type"], &["if"])?;
                    (m.value.get("type").unwrap(), m.value.get("if"))
                }
                _ => (&m.value, None),
            };
            let ifcond = self.check_if(ifcond_value, &source)?;
            let typ = if alternate {
                self.check_type_name_or_array(type_value, &source)?
            } else {
                TypeExpr::Named(self.check_type_name(type_value, &source)?)
            };
            out.push(BranchDef {
                name: m.key.clone(),
                typ,
                ifcond,
                span: m.key_span,
            });
        }
        Ok(out)
    }

    fn check_union(&mut self, value: &Value, name: &str) -> Res<DefKind> {
        let base = self.check_object_ref(value.get("base").unwrap(), &"'base'", Some(name))?;
        let discriminator = value.get("discriminator").unwrap();
        let Some(discriminator) = discriminator.as_str() else {
            return Err(self.err("'discriminator' requires a string name", discriminator.span));
        };
        let branches = self.check_branches(value, false)?;
        Ok(DefKind::Union {
            base,
            discriminator: discriminator.to_string(),
            branches,
        })
    }

    fn check_alternate(&mut self, value: &Value) -> Res<DefKind> {
        Ok(DefKind::Alternate {
            branches: self.check_branches(value, true)?,
        })
    }

    fn check_command_data(&mut self, value: &Value, is_command: bool) -> Res<(Option<ObjectRef>, Option<TypeExpr>)> {
        let args = value.get("data");
        let boxed = value.get("boxed").is_some_and(truthy);
        let data = if boxed {
            let Some(args) = args else {
                return Err(self.err("'boxed': true requires 'data'", value.span));
            };
            Some(ObjectRef::Named(self.check_type_name(args, &"'data'")?))
        } else {
            args.map(|a| self.check_object_ref(a, &"'data'", None)).transpose()?
        };
        let returns = match value.get("returns") {
            Some(r) if is_command => Some(self.check_type_name_or_array(r, &"'returns'")?),
            _ => None,
        };
        Ok((data, returns))
    }
}

/// `defined(NAME)` or `!defined(NAME)`, the C form of a condition.
fn legacy_c_condition(s: &str) -> Option<IfCond> {
    let (negated, rest) = match s.trim().strip_prefix('!') {
        Some(r) => (true, r.trim_start()),
        None => (false, s.trim()),
    };
    let name = rest.strip_prefix("defined(")?.strip_suffix(')')?.trim();
    let valid = name.starts_with(|c: char| c.is_ascii_uppercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
    if !valid {
        return None;
    }
    let cond = IfCond::Name(name.to_string());
    Some(if negated { IfCond::Not(Box::new(cond)) } else { cond })
}

fn is_camel(stem: &str) -> bool {
    let b = stem.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_uppercase()
        && b.iter().all(|c| c.is_ascii_alphanumeric())
        && b[1..].iter().any(|c| c.is_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(name_stem("foo-bar"), Some("foo-bar"));
        assert_eq!(name_stem("x-foo"), Some("foo"));
        assert_eq!(name_stem("__org.qemu_x-foo"), Some("foo"));
        assert_eq!(name_stem("__org.qemu_foo"), Some("foo"));
        assert_eq!(name_stem("_foo"), None);
        assert_eq!(name_stem("*foo"), None);
        assert_eq!(name_stem("x-1"), Some("x-1"));
        assert!(is_camel("FooBar"));
        assert!(!is_camel("FOO"));
        assert!(!is_camel("foo"));
    }

    #[test]
    fn if_repr() {
        let c = IfCond::Not(Box::new(IfCond::Any(vec![
            IfCond::Name("A".into()),
            IfCond::Name("B".into()),
        ])));
        assert_eq!(c.python_repr(true), "{'not': {'any': ['A', 'B']}}");
        assert_eq!(IfCond::Name("A".into()).python_repr(true), "A");
    }
}
