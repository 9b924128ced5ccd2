//! The macros generated enums, unions and alternates are implemented
//! with: exact wire text (member order included), tolerant decoding and
//! the error messages.

use qapi_runtime::serde::{Deserialize, Serialize};
use qapi_runtime::UnknownVariant;
use serde_json::json;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Color {
    Red,
    DarkBlue,
    Unrecognized(String),
}

qapi_runtime::impl_enum!(Color, Unrecognized, [Red = "red", DarkBlue = "dark-blue"]);

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(crate = "qapi_runtime::serde")]
pub struct Circle {
    pub radius: u32,
}

/// A union with base members on both sides of its tag.
#[derive(Clone, Debug, PartialEq)]
pub struct Shape {
    pub id: i64,
    pub name: Option<String>,
    pub branch: ShapeBranch,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ShapeBranch {
    Circle(Circle),
    Dot,
    Unrecognized(UnknownVariant),
}

qapi_runtime::impl_union!(
    struct Shape, branch = ShapeBranch, tag = "kind", other = Unrecognized,
    before [id = "id" required],
    after [name = "name" optional],
    [Circle = "circle"(v), Dot = "dot"]
);

#[derive(Clone, Debug, PartialEq)]
pub enum PlainShape {
    Circle(Circle),
    Dot,
    Unrecognized(UnknownVariant),
}

qapi_runtime::impl_union!(enum PlainShape, tag = "kind", other = Unrecognized, [Circle = "circle"(v), Dot = "dot"]);

#[derive(Clone, Debug, PartialEq)]
pub enum Size {
    Bytes(i64),
    Name(String),
    Null(qapi_runtime::Null),
}

qapi_runtime::impl_alternate!(
    Size,
    "one of: int, string, null",
    [Bytes = "number", Name = "string", Null = "null"]
);

fn text<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap()
}

#[test]
fn enums_use_wire_names_and_keep_unknown_values() {
    assert_eq!(Color::VALUES, ["red", "dark-blue"]);
    assert_eq!(text(&Color::DarkBlue), r#""dark-blue""#);
    assert_eq!(Color::DarkBlue.to_string(), "dark-blue");
    assert_eq!(serde_json::from_str::<Color>(r#""red""#).unwrap(), Color::Red);
    let newer: Color = serde_json::from_str(r#""ultraviolet""#).unwrap();
    assert_eq!(newer, Color::Unrecognized("ultraviolet".into()));
    assert_eq!(text(&newer), r#""ultraviolet""#);
    assert!(serde_json::from_str::<Color>("1").is_err());
}

#[test]
fn unions_write_members_in_schema_order() {
    let shape = Shape {
        id: 7,
        name: Some("c".into()),
        branch: ShapeBranch::Circle(Circle { radius: 2 }),
    };
    assert_eq!(text(&shape), r#"{"id":7,"kind":"circle","name":"c","radius":2}"#);
    let dot = Shape {
        id: 1,
        name: None,
        branch: ShapeBranch::Dot,
    };
    assert_eq!(text(&dot), r#"{"id":1,"kind":"dot"}"#);
    assert_eq!(
        serde_json::from_str::<Shape>(r#"{"radius":2,"name":"c","kind":"circle","id":7}"#).unwrap(),
        shape
    );
    assert_eq!(serde_json::from_str::<Shape>(r#"{"kind":"dot","id":1}"#).unwrap(), dot);
    assert_eq!(
        text(&PlainShape::Circle(Circle { radius: 3 })),
        r#"{"kind":"circle","radius":3}"#
    );
    assert_eq!(text(&PlainShape::Dot), r#"{"kind":"dot"}"#);
}

#[test]
fn unions_keep_unknown_branches() {
    let newer: Shape = serde_json::from_str(r#"{"id":2,"kind":"hexagon","sides":6}"#).unwrap();
    assert_eq!(
        newer.branch,
        ShapeBranch::Unrecognized(UnknownVariant {
            tag: "hexagon".into(),
            members: json!({"sides": 6}).as_object().unwrap().clone(),
        })
    );
    assert_eq!(text(&newer), r#"{"id":2,"kind":"hexagon","sides":6}"#);
    let plain: PlainShape = serde_json::from_str(r#"{"kind":"hexagon","sides":6}"#).unwrap();
    assert_eq!(text(&plain), r#"{"kind":"hexagon","sides":6}"#);
}

#[test]
fn union_errors_name_the_member() {
    let err = |s: &str| serde_json::from_str::<Shape>(s).unwrap_err().to_string();
    assert!(
        err(r#"{"id":1}"#).contains("missing field `kind`"),
        "{}",
        err(r#"{"id":1}"#)
    );
    assert!(err(r#"{"id":1,"kind":3}"#).contains("member 'kind' is not a string"));
    assert!(err(r#"{"kind":"dot"}"#).contains("missing field `id`"));
    assert!(err(r#"{"id":"x","kind":"dot"}"#).contains("invalid type"));
    assert!(err(r#"{"id":1,"kind":"circle"}"#).contains("missing field `radius`"));
    let plain = serde_json::from_str::<PlainShape>("[]").unwrap_err().to_string();
    assert!(plain.contains("invalid type"), "{plain}");
}

#[test]
fn alternates_choose_by_json_type() {
    assert_eq!(serde_json::from_str::<Size>("5").unwrap(), Size::Bytes(5));
    assert_eq!(
        serde_json::from_str::<Size>(r#""big""#).unwrap(),
        Size::Name("big".into())
    );
    assert_eq!(
        serde_json::from_str::<Size>("null").unwrap(),
        Size::Null(qapi_runtime::Null)
    );
    assert_eq!(text(&Size::Bytes(5)), "5");
    assert_eq!(text(&Size::Name("big".into())), r#""big""#);
    let err = serde_json::from_str::<Size>("true").unwrap_err().to_string();
    assert!(err.contains("one of: int, string, null"), "{err}");
    assert!(serde_json::from_str::<Size>("1.5").is_err());
}
