//! The text dump of QEMU's `tests/qapi-schema/*.out` files, which shows
//! the checked schema exactly as QEMU's test harness prints it.

use std::fmt::Write as _;

use crate::expr::IfCond;
use crate::schema::{EntityKind, Feature, Schema, Variant};

fn cond(out: &mut String, ifcond: &Option<IfCond>, indent: usize) {
    if let Some(c) = ifcond {
        let _ = writeln!(out, "{:indent$}if {}", "", c.python_repr(true));
    }
}

fn features(out: &mut String, features: &[Feature], indent: usize) {
    for f in features {
        let _ = writeln!(out, "{:indent$}feature {}", "", f.name);
        cond(out, &f.ifcond, indent + 4);
    }
}

fn py_bool(b: bool) -> &'static str {
    if b {
        "True"
    } else {
        "False"
    }
}

fn variants(out: &mut String, schema: &Schema, tag: &str, variants: &[Variant]) {
    let _ = writeln!(out, "    tag {tag}");
    for v in variants {
        let _ = writeln!(out, "    case {}: {}", v.name, schema.entity(v.typ).name);
        cond(out, &v.ifcond, 8);
    }
}

/// Renders the schema like QEMU's `test-qapi.py`.
pub fn dump(schema: &Schema) -> String {
    let mut out = String::new();
    for module in &schema.modules {
        let _ = writeln!(out, "module {}", module.name);
        for &id in &module.entities {
            let e = schema.entity(id);
            match &e.kind {
                EntityKind::Include { module } => {
                    let name = schema.modules.iter().map(|m| m.name.as_str());
                    let shown = crate::source::relative_name(
                        &crate::source::lexical_abs_path(std::path::Path::new(module)),
                        &root_dir(schema),
                    );
                    debug_assert!(name.clone().any(|n| n == shown));
                    let _ = writeln!(out, "include {shown}");
                }
                EntityKind::Builtin { .. } => {}
                EntityKind::Enum { values, prefix } => {
                    let _ = writeln!(out, "enum {}", e.name);
                    if let Some(p) = prefix {
                        let _ = writeln!(out, "    prefix {p}");
                    }
                    for v in values {
                        let _ = writeln!(out, "    member {}", v.name);
                        cond(&mut out, &v.ifcond, 8);
                        features(&mut out, &v.features, 8);
                    }
                    cond(&mut out, &e.ifcond, 4);
                    features(&mut out, &e.features, 4);
                }
                EntityKind::Array { element } => {
                    if e.location.is_none() {
                        continue;
                    }
                    let element = schema.entity(*element);
                    let _ = writeln!(out, "array {} {}", e.name, element.name);
                    cond(&mut out, &element.ifcond, 4);
                }
                EntityKind::Object(obj) => {
                    let _ = writeln!(out, "object {}", e.name);
                    if let Some(b) = obj.base {
                        let _ = writeln!(out, "    base {}", schema.entity(b).name);
                    }
                    for m in &obj.local_members {
                        let _ = writeln!(
                            out,
                            "    member {}: {} optional={}",
                            m.name,
                            schema.entity(m.typ).name,
                            py_bool(m.optional)
                        );
                        cond(&mut out, &m.ifcond, 8);
                        features(&mut out, &m.features, 8);
                    }
                    if let Some(b) = &obj.branches {
                        variants(&mut out, schema, &b.tag, &b.variants);
                    }
                    cond(&mut out, &e.ifcond, 4);
                    features(&mut out, &e.features, 4);
                }
                EntityKind::Alternate { variants: v } => {
                    let _ = writeln!(out, "alternate {}", e.name);
                    variants(&mut out, schema, "type", v);
                    cond(&mut out, &e.ifcond, 4);
                    features(&mut out, &e.features, 4);
                }
                EntityKind::Command(c) => {
                    let name_of = |t: Option<crate::schema::EntityId>| {
                        t.map_or("None".to_string(), |t| schema.entity(t).name.clone())
                    };
                    let _ = writeln!(
                        out,
                        "command {} {} -> {}",
                        e.name,
                        name_of(c.arg_type),
                        name_of(c.ret_type)
                    );
                    let f = &c.flags;
                    let _ = writeln!(
                        out,
                        "    gen={} success_response={} boxed={} oob={} preconfig={}{}",
                        py_bool(f.gen),
                        py_bool(f.success_response),
                        py_bool(f.boxed),
                        py_bool(f.allow_oob),
                        py_bool(f.allow_preconfig),
                        if f.coroutine { " coroutine=True" } else { "" }
                    );
                    cond(&mut out, &e.ifcond, 4);
                    features(&mut out, &e.features, 4);
                }
                EntityKind::Event { arg_type, boxed } => {
                    let arg = arg_type.map_or("None".to_string(), |t| schema.entity(t).name.clone());
                    let _ = writeln!(out, "event {} {}", e.name, arg);
                    let _ = writeln!(out, "    boxed={}", py_bool(*boxed));
                    cond(&mut out, &e.ifcond, 4);
                    features(&mut out, &e.features, 4);
                }
            }
        }
    }
    for doc in &schema.docs {
        match &doc.symbol {
            Some(s) => {
                let _ = writeln!(out, "doc symbol={s}");
            }
            None => out.push_str("doc freeform\n"),
        }
        let _ = writeln!(out, "    body=\n{}", doc.body().text);
        for s in doc.args() {
            let _ = writeln!(out, "    arg={}\n{}", s.name.as_deref().unwrap_or(""), s.text);
        }
        for s in doc.features() {
            let _ = writeln!(out, "    feature={}\n{}", s.name.as_deref().unwrap_or(""), s.text);
        }
        for s in doc.other_sections() {
            let _ = writeln!(out, "    section={}\n{}", s.kind, s.text);
        }
    }
    out
}

fn root_dir(schema: &Schema) -> std::path::PathBuf {
    schema
        .sources
        .files()
        .next()
        .and_then(|(_, f)| f.abs_path.parent().map(|p| p.to_path_buf()))
        .unwrap_or_default()
}
