//! What generated code uses to implement its enums, unions and
//! alternates: macros that write the same impls for every type (so the
//! generator emits one line instead of dozens), and the functions they
//! call.

use serde::de::{DeserializeOwned, Error as DeError};
use serde::ser::Error as SerError;
use serde::Serialize;
use serde_json::{Map, Value};

/// The JSON object a union is read from and written to.
pub type Members = Map<String, Value>;

/// Removes the discriminator `tag` from a union's members.
pub fn take_tag<E: DeError>(members: &mut Members, tag: &'static str) -> Result<String, E> {
    match members.remove(tag) {
        Some(Value::String(value)) => Ok(value),
        Some(_) => Err(E::custom(format_args!("member '{tag}' is not a string"))),
        None => Err(E::missing_field(tag)),
    }
}

/// Decodes a union branch from the members left after the base ones.
pub fn branch_from<T: DeserializeOwned, E: DeError>(members: Members) -> Result<T, E> {
    serde_json::from_value(Value::Object(members)).map_err(E::custom)
}

/// Encodes a union branch; its members go after the base ones.
pub fn branch_to<T: Serialize, E: SerError>(branch: &T) -> Result<Option<Value>, E> {
    serde_json::to_value(branch).map(Some).map_err(E::custom)
}

/// Adds a branch's members after the base members.
pub fn extend_with_branch(members: &mut Members, branch: Option<Value>) {
    if let Some(Value::Object(branch)) = branch {
        members.extend(branch);
    }
}

/// A base member that must be present.
pub mod required {
    use super::*;

    pub fn put<T: Serialize, E: SerError>(members: &mut Members, name: &str, value: &T) -> Result<(), E> {
        members.insert(name.into(), serde_json::to_value(value).map_err(E::custom)?);
        Ok(())
    }

    pub fn take<T: DeserializeOwned, E: DeError>(members: &mut Members, name: &'static str) -> Result<T, E> {
        match members.remove(name) {
            Some(v) => serde_json::from_value(v).map_err(E::custom),
            None => Err(E::missing_field(name)),
        }
    }
}

/// A base member that may be left out.
pub mod optional {
    use super::*;

    pub fn put<T: Serialize, E: SerError>(members: &mut Members, name: &str, value: &Option<T>) -> Result<(), E> {
        if let Some(v) = value {
            members.insert(name.into(), serde_json::to_value(v).map_err(E::custom)?);
        }
        Ok(())
    }

    pub fn take<T: DeserializeOwned, E: DeError>(members: &mut Members, name: &'static str) -> Result<Option<T>, E> {
        match members.remove(name) {
            Some(v) => serde_json::from_value(v).map(Some).map_err(E::custom),
            None => Ok(None),
        }
    }
}

/// The JSON type of a value, as alternates choose their branch by it.
pub fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Implements an enum's wire names (`VALUES`, `as_str`, `from_wire`),
/// `Display` and serde for a generated enum with a catch-all variant
/// `$other(String)` for values this schema does not know.
#[macro_export]
macro_rules! impl_enum {
    ($name:ident, $other:ident, [$($variant:ident = $wire:literal),* $(,)?]) => {
        #[allow(deprecated)]
        impl $name {
            /// The values this schema defines, as on the wire.
            pub const VALUES: &'static [&'static str] = &[$($wire),*];

            /// The value as on the wire.
            pub fn as_str(&self) -> &str {
                match self {
                    $(Self::$variant => $wire,)*
                    Self::$other(value) => value,
                }
            }

            /// Reads a wire value; one this schema does not know is kept.
            pub fn from_wire(value: &str) -> Self {
                match value {
                    $($wire => Self::$variant,)*
                    other => Self::$other(other.to_owned()),
                }
            }
        }

        impl ::core::fmt::Display for $name {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl $crate::serde::Serialize for $name {
            fn serialize<S: $crate::serde::Serializer>(&self, serializer: S) -> ::core::result::Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> $crate::serde::Deserialize<'de> for $name {
            fn deserialize<D: $crate::serde::Deserializer<'de>>(deserializer: D) -> ::core::result::Result<Self, D::Error> {
                let value = <::std::string::String as $crate::serde::Deserialize>::deserialize(deserializer)?;
                ::core::result::Result::Ok(Self::from_wire(&value))
            }
        }
    };
}

/// Implements serde for a generated union: the discriminator `$tag` and
/// the base members in schema order (`before` and `after` the tag), then
/// the members of the branch. A branch written `Name = "wire"(v)` carries
/// a struct; `Name = "wire"` carries nothing. `$other` keeps a branch this
/// schema does not know.
///
/// `enum` form: a union without base members, the enum itself.
/// `struct` form: a struct with the base members and a `branch` field of
/// the branch enum `$branch`.
#[macro_export]
macro_rules! impl_union {
    (
        enum $name:ident, tag = $tag:literal, other = $other:ident,
        [$($variant:ident = $wire:literal $(($v:ident))?),* $(,)?]
    ) => {
        #[allow(deprecated)]
        impl $crate::serde::Serialize for $name {
            fn serialize<S: $crate::serde::Serializer>(&self, serializer: S) -> ::core::result::Result<S::Ok, S::Error> {
                let (tag, branch) = $crate::impl_union!(@serialize_branch self, $name, $other, [$($variant = $wire $(($v))?),*]);
                let mut map = $crate::impls::Members::new();
                map.insert($tag.into(), tag.into());
                $crate::impls::extend_with_branch(&mut map, branch);
                $crate::serde::Serialize::serialize(&map, serializer)
            }
        }

        #[allow(deprecated)]
        impl<'de> $crate::serde::Deserialize<'de> for $name {
            fn deserialize<D: $crate::serde::Deserializer<'de>>(deserializer: D) -> ::core::result::Result<Self, D::Error> {
                let mut map = <$crate::impls::Members as $crate::serde::Deserialize>::deserialize(deserializer)?;
                let tag = $crate::impls::take_tag::<D::Error>(&mut map, $tag)?;
                ::core::result::Result::Ok($crate::impl_union!(@deserialize_branch map, tag, $name, $other, D, [$($variant = $wire $(($v))?),*]))
            }
        }
    };
    (
        struct $name:ident, branch = $branch:ident, tag = $tag:literal, other = $other:ident,
        before [$($before:ident = $before_wire:literal $before_kind:ident),* $(,)?],
        after [$($after:ident = $after_wire:literal $after_kind:ident),* $(,)?],
        [$($variant:ident = $wire:literal $(($v:ident))?),* $(,)?]
    ) => {
        #[allow(deprecated)]
        impl $crate::serde::Serialize for $name {
            fn serialize<S: $crate::serde::Serializer>(&self, serializer: S) -> ::core::result::Result<S::Ok, S::Error> {
                let (tag, branch) = $crate::impl_union!(@serialize_branch &self.branch, $branch, $other, [$($variant = $wire $(($v))?),*]);
                let mut map = $crate::impls::Members::new();
                $($crate::impls::$before_kind::put::<_, S::Error>(&mut map, $before_wire, &self.$before)?;)*
                map.insert($tag.into(), tag.into());
                $($crate::impls::$after_kind::put::<_, S::Error>(&mut map, $after_wire, &self.$after)?;)*
                $crate::impls::extend_with_branch(&mut map, branch);
                $crate::serde::Serialize::serialize(&map, serializer)
            }
        }

        #[allow(deprecated)]
        impl<'de> $crate::serde::Deserialize<'de> for $name {
            fn deserialize<D: $crate::serde::Deserializer<'de>>(deserializer: D) -> ::core::result::Result<Self, D::Error> {
                let mut map = <$crate::impls::Members as $crate::serde::Deserialize>::deserialize(deserializer)?;
                let tag = $crate::impls::take_tag::<D::Error>(&mut map, $tag)?;
                $(let $before = $crate::impls::$before_kind::take::<_, D::Error>(&mut map, $before_wire)?;)*
                $(let $after = $crate::impls::$after_kind::take::<_, D::Error>(&mut map, $after_wire)?;)*
                let branch = $crate::impl_union!(@deserialize_branch map, tag, $branch, $other, D, [$($variant = $wire $(($v))?),*]);
                ::core::result::Result::Ok(Self { $($before,)* $($after,)* branch })
            }
        }
    };
    // The wire tag of the branch and its members, to add after the base
    // members.
    (@serialize_branch $value:expr, $kind:ident, $other:ident,
        [$($variant:ident = $wire:literal $(($v:ident))?),*]) => {
        match $value {
            $($kind::$variant $(($v))? => ($wire, {
                let branch: ::core::option::Option<$crate::serde_json::Value> = ::core::option::Option::None;
                $(let branch = $crate::impls::branch_to::<_, S::Error>($v)?;)?
                branch
            }),)*
            $kind::$other(u) => (u.tag.as_str(), ::core::option::Option::Some($crate::serde_json::Value::Object(u.members.clone()))),
        }
    };
    (@deserialize_branch $map:ident, $tag:ident, $kind:ident, $other:ident, $d:ident,
        [$($variant:ident = $wire:literal $(($v:ident))?),*]) => {
        match $tag.as_str() {
            $($wire => $kind::$variant $(({
                let $v = $crate::impls::branch_from::<_, $d::Error>($map)?;
                $v
            }))?,)*
            _ => $kind::$other($crate::UnknownVariant { tag: $tag, members: $map }),
        }
    };
}

/// Implements serde for a generated alternate: each variant is chosen by
/// the JSON type of the value (`"string"`, `"number"`, `"boolean"`,
/// `"null"`, `"array"`, `"object"`), first match wins; `$expected` is the
/// error for any other value.
#[macro_export]
macro_rules! impl_alternate {
    ($name:ident, $expected:literal, [$($variant:ident = $kind:literal),* $(,)?]) => {
        impl $crate::serde::Serialize for $name {
            fn serialize<S: $crate::serde::Serializer>(&self, serializer: S) -> ::core::result::Result<S::Ok, S::Error> {
                match self {
                    $(Self::$variant(v) => $crate::serde::Serialize::serialize(v, serializer),)*
                }
            }
        }

        impl<'de> $crate::serde::Deserialize<'de> for $name {
            fn deserialize<D: $crate::serde::Deserializer<'de>>(deserializer: D) -> ::core::result::Result<Self, D::Error> {
                use $crate::serde::de::Error as _;
                let value = <$crate::serde_json::Value as $crate::serde::Deserialize>::deserialize(deserializer)?;
                let kind = $crate::impls::json_kind(&value);
                $(if kind == $kind {
                    return $crate::serde_json::from_value(value).map(Self::$variant).map_err(D::Error::custom);
                })*
                ::core::result::Result::Err(D::Error::custom($expected))
            }
        }
    };
}
