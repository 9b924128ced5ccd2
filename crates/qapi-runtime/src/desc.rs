//! Type descriptors: the schema's types as static data, so a server can
//! check a command's arguments and answer exactly as QEMU's input visitor
//! does ("Parameter 'id' is missing", "Invalid parameter type for 'id',
//! expected: integer", ...), before the arguments are decoded.

use serde_json::{Map, Value};

/// Integer types, with the name QEMU uses in range errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IntKind {
    Int8,
    Int16,
    Int32,
    Int64,
    Uint8,
    Uint16,
    Uint32,
    Uint64,
    Size,
}

impl IntKind {
    fn range(self) -> (i128, i128) {
        match self {
            IntKind::Int8 => (i8::MIN.into(), i8::MAX.into()),
            IntKind::Int16 => (i16::MIN.into(), i16::MAX.into()),
            IntKind::Int32 => (i32::MIN.into(), i32::MAX.into()),
            IntKind::Int64 => (i64::MIN.into(), i64::MAX.into()),
            IntKind::Uint8 => (0, u8::MAX.into()),
            IntKind::Uint16 => (0, u16::MAX.into()),
            IntKind::Uint32 => (0, u32::MAX.into()),
            IntKind::Uint64 | IntKind::Size => (0, u64::MAX.into()),
        }
    }

    fn c_type(self) -> &'static str {
        match self {
            IntKind::Int8 => "int8_t",
            IntKind::Int16 => "int16_t",
            IntKind::Int32 => "int32_t",
            IntKind::Int64 => "int64_t",
            IntKind::Uint8 => "uint8_t",
            IntKind::Uint16 => "uint16_t",
            IntKind::Uint32 => "uint32_t",
            IntKind::Uint64 | IntKind::Size => "uint64_t",
        }
    }
}

#[derive(Debug)]
pub enum TypeDesc {
    Str,
    Bool,
    Number,
    Int(IntKind),
    Any,
    Null,
    Enum(&'static [&'static str]),
    Array(&'static TypeDesc),
    Object(&'static ObjectDesc),
    Alternate(&'static AlternateDesc),
}

/// A struct, a union (members plus branches) or a command's arguments.
#[derive(Debug)]
pub struct ObjectDesc {
    /// All members, base members first.
    pub members: &'static [MemberDesc],
    pub branches: Option<&'static BranchesDesc>,
}

#[derive(Debug)]
pub struct MemberDesc {
    pub name: &'static str,
    pub optional: bool,
    pub ty: &'static TypeDesc,
}

#[derive(Debug)]
pub struct BranchesDesc {
    /// The discriminator member.
    pub tag: &'static str,
    /// Branch members by discriminator value.
    pub cases: &'static [(&'static str, &'static ObjectDesc)],
}

#[derive(Debug)]
pub struct AlternateDesc {
    /// The alternate's schema name, used in type errors.
    pub name: &'static str,
    pub cases: &'static [&'static TypeDesc],
}

pub static STR: TypeDesc = TypeDesc::Str;
pub static BOOL: TypeDesc = TypeDesc::Bool;
pub static NUMBER: TypeDesc = TypeDesc::Number;
pub static ANY: TypeDesc = TypeDesc::Any;
pub static NULL: TypeDesc = TypeDesc::Null;
pub static INT8: TypeDesc = TypeDesc::Int(IntKind::Int8);
pub static INT16: TypeDesc = TypeDesc::Int(IntKind::Int16);
pub static INT32: TypeDesc = TypeDesc::Int(IntKind::Int32);
pub static INT64: TypeDesc = TypeDesc::Int(IntKind::Int64);
pub static UINT8: TypeDesc = TypeDesc::Int(IntKind::Uint8);
pub static UINT16: TypeDesc = TypeDesc::Int(IntKind::Uint16);
pub static UINT32: TypeDesc = TypeDesc::Int(IntKind::Uint32);
pub static UINT64: TypeDesc = TypeDesc::Int(IntKind::Uint64);
pub static SIZE: TypeDesc = TypeDesc::Int(IntKind::Size);

impl ObjectDesc {
    /// A struct (or command arguments) with these members.
    pub const fn new(members: &'static [MemberDesc]) -> ObjectDesc {
        ObjectDesc {
            members,
            branches: None,
        }
    }

    /// A union: its members (the tag among them) and its branches.
    pub const fn union(members: &'static [MemberDesc], branches: &'static BranchesDesc) -> ObjectDesc {
        ObjectDesc {
            members,
            branches: Some(branches),
        }
    }
}

/// A member that must be present.
pub const fn required(name: &'static str, ty: &'static TypeDesc) -> MemberDesc {
    MemberDesc {
        name,
        optional: false,
        ty,
    }
}

/// A member that may be left out.
pub const fn optional(name: &'static str, ty: &'static TypeDesc) -> MemberDesc {
    MemberDesc {
        name,
        optional: true,
        ty,
    }
}

/// The arguments of a command without arguments.
pub static NO_MEMBERS: ObjectDesc = ObjectDesc {
    members: &[],
    branches: None,
};

/// Checks a command's `arguments` (absent means `{}`).
pub fn check_arguments(args: Option<&Map<String, Value>>, desc: &ObjectDesc) -> Result<(), String> {
    let empty = Map::new();
    check_object(args.unwrap_or(&empty), desc, "")
}

fn child(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

fn check_object(map: &Map<String, Value>, desc: &ObjectDesc, prefix: &str) -> Result<(), String> {
    let mut known: Vec<&str> = Vec::with_capacity(map.len());
    check_members(map, desc.members, prefix, &mut known)?;
    if let Some(branches) = desc.branches {
        let tag = map.get(branches.tag).and_then(Value::as_str);
        if let Some((_, case)) = branches.cases.iter().find(|(name, _)| Some(*name) == tag) {
            check_members(map, case.members, prefix, &mut known)?;
        }
    }
    // Like QEMU, members are checked first, leftovers after.
    if let Some(extra) = map.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(format!("Parameter '{}' is unexpected", child(prefix, extra)));
    }
    Ok(())
}

fn check_members<'m>(
    map: &Map<String, Value>,
    members: &'m [MemberDesc],
    prefix: &str,
    known: &mut Vec<&'m str>,
) -> Result<(), String> {
    for m in members {
        known.push(m.name);
        let full = child(prefix, m.name);
        match map.get(m.name) {
            None if m.optional => {}
            None => return Err(format!("Parameter '{full}' is missing")),
            Some(v) => check_value(v, m.ty, &full, Some(m.name))?,
        }
    }
    Ok(())
}

fn json_kind_matches(v: &Value, ty: &TypeDesc) -> bool {
    match ty {
        TypeDesc::Str | TypeDesc::Enum(_) => v.is_string(),
        TypeDesc::Bool => v.is_boolean(),
        TypeDesc::Number | TypeDesc::Int(_) => v.is_number(),
        TypeDesc::Null => v.is_null(),
        TypeDesc::Array(_) => v.is_array(),
        TypeDesc::Object(_) => v.is_object(),
        TypeDesc::Any | TypeDesc::Alternate(_) => true,
    }
}

/// Checks one value. `full` is its path for type errors (`a.b`, `a[0]`);
/// `name` is the bare member name QEMU uses in value errors (`null` for
/// array elements).
pub fn check_value(v: &Value, ty: &TypeDesc, full: &str, name: Option<&str>) -> Result<(), String> {
    let invalid = |expected: &str| Err(format!("Invalid parameter type for '{full}', expected: {expected}"));
    let name = name.unwrap_or("null");
    match ty {
        TypeDesc::Str if !v.is_string() => invalid("string"),
        TypeDesc::Bool if !v.is_boolean() => invalid("boolean"),
        TypeDesc::Number if !v.is_number() => invalid("number"),
        TypeDesc::Null if !v.is_null() => invalid("null"),
        TypeDesc::Str | TypeDesc::Bool | TypeDesc::Number | TypeDesc::Null | TypeDesc::Any => Ok(()),
        TypeDesc::Int(kind) => {
            let (min, max) = kind.range();
            // QEMU reads signed types as int64 first: a number past
            // int64's range is the wrong type, not a bad value.
            let n = match (v.as_i64(), v.as_u64()) {
                (Some(i), _) => i128::from(i),
                (None, Some(u)) if min == 0 => i128::from(u),
                _ => return invalid("integer"),
            };
            if n < min || n > max {
                return Err(format!("Parameter '{name}' expects {}", kind.c_type()));
            }
            Ok(())
        }
        TypeDesc::Enum(values) => {
            let Some(s) = v.as_str() else { return invalid("string") };
            if !values.contains(&s) {
                return Err(format!("Parameter '{name}' does not accept value '{s}'"));
            }
            Ok(())
        }
        TypeDesc::Array(element) => {
            let Some(items) = v.as_array() else {
                return invalid("array");
            };
            for (i, item) in items.iter().enumerate() {
                check_value(item, element, &format!("{full}[{i}]"), None)?;
            }
            Ok(())
        }
        TypeDesc::Object(desc) => {
            let Some(map) = v.as_object() else {
                return invalid("object");
            };
            check_object(map, desc, full)
        }
        TypeDesc::Alternate(alt) => match alt.cases.iter().find(|c| json_kind_matches(v, c)) {
            Some(case) => check_value(v, case, full, Some(name)),
            None => invalid(alt.name),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    static COLOUR: TypeDesc = TypeDesc::Enum(&["red", "green"]);
    static POINT: ObjectDesc = ObjectDesc {
        members: &[
            MemberDesc {
                name: "x",
                optional: false,
                ty: &INT64,
            },
            MemberDesc {
                name: "tag",
                optional: true,
                ty: &UINT8,
            },
        ],
        branches: None,
    };
    static POINT_TYPE: TypeDesc = TypeDesc::Object(&POINT);
    static ARGS: ObjectDesc = ObjectDesc {
        members: &[
            MemberDesc {
                name: "id",
                optional: false,
                ty: &INT64,
            },
            MemberDesc {
                name: "colour",
                optional: true,
                ty: &COLOUR,
            },
            MemberDesc {
                name: "points",
                optional: true,
                ty: &POINTS,
            },
        ],
        branches: None,
    };
    static POINTS: TypeDesc = TypeDesc::Array(&POINT_TYPE);

    fn check(v: Value) -> Result<(), String> {
        check_arguments(v.as_object(), &ARGS)
    }

    #[test]
    fn qemu_messages() {
        assert_eq!(check(json!({"id": 1})), Ok(()));
        assert_eq!(check(json!({})), Err("Parameter 'id' is missing".into()));
        assert_eq!(
            check(json!({"id": "x"})),
            Err("Invalid parameter type for 'id', expected: integer".into())
        );
        assert_eq!(
            check(json!({"id": 1.5})),
            Err("Invalid parameter type for 'id', expected: integer".into())
        );
        assert_eq!(
            check(json!({"id": 1u64 << 63})),
            Err("Invalid parameter type for 'id', expected: integer".into())
        );
        assert_eq!(
            check(json!({"id": 1, "x": 2})),
            Err("Parameter 'x' is unexpected".into())
        );
        // A missing member is reported before a stray one.
        assert_eq!(check(json!({"x": 2})), Err("Parameter 'id' is missing".into()));
        assert_eq!(
            check(json!({"id": 1, "colour": "blue"})),
            Err("Parameter 'colour' does not accept value 'blue'".into())
        );
        assert_eq!(
            check(json!({"id": 1, "points": [{"x": 1}, {"y": 2}]})),
            Err("Parameter 'points[1].x' is missing".into())
        );
        assert_eq!(
            check(json!({"id": 1, "points": [{"x": 1, "tag": 300}]})),
            Err("Parameter 'tag' expects uint8_t".into())
        );
        assert_eq!(
            check(json!({"id": 1, "points": {}})),
            Err("Invalid parameter type for 'points', expected: array".into())
        );
    }
}
