//! Commands as types, and their static descriptions.

use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::desc::ObjectDesc;

/// A condition from the schema's `if`: which guest builds offer a
/// definition. It describes the guest, not the build of this crate, so it
/// is data to evaluate, never a `cfg`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cond {
    /// A configuration symbol such as `CONFIG_LINUX`.
    Name(&'static str),
    All(&'static [Cond]),
    Any(&'static [Cond]),
    Not(&'static Cond),
}

impl Cond {
    /// Evaluates the condition given which symbols hold.
    pub fn eval(&self, holds: &dyn Fn(&str) -> bool) -> bool {
        match self {
            Cond::Name(n) => holds(n),
            Cond::All(c) => c.iter().all(|c| c.eval(holds)),
            Cond::Any(c) => c.iter().any(|c| c.eval(holds)),
            Cond::Not(c) => !c.eval(holds),
        }
    }
}

impl fmt::Display for Cond {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |f: &mut fmt::Formatter<'_>, op: &str, c: &[Cond]| {
            write!(f, "{op}(")?;
            for (i, c) in c.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{c}")?;
            }
            f.write_str(")")
        };
        match self {
            Cond::Name(n) => f.write_str(n),
            Cond::All(c) => list(f, "all", c),
            Cond::Any(c) => list(f, "any", c),
            Cond::Not(c) => write!(f, "not({c})"),
        }
    }
}

/// A command as the schema defines it: what an agent's `guest-info` lists
/// and what a dispatcher needs to know.
#[derive(Clone, Copy, Debug)]
pub struct CommandInfo {
    /// The wire name, such as `guest-sync`.
    pub name: &'static str,
    /// False for commands that send no reply on success.
    pub success_response: bool,
    pub allow_oob: bool,
    /// Guest builds that offer the command; `None` means all.
    pub condition: Option<&'static Cond>,
    pub features: &'static [&'static str],
    /// Whether the command takes arguments at all.
    pub has_arguments: bool,
    /// Its arguments, for checking a request the way QEMU does.
    pub arguments: &'static ObjectDesc,
}

impl CommandInfo {
    /// A command that replies on success, takes no arguments, has no
    /// condition and no features; the `with_*` methods change that.
    pub const fn new(name: &'static str) -> CommandInfo {
        CommandInfo {
            name,
            success_response: true,
            allow_oob: false,
            condition: None,
            features: &[],
            has_arguments: false,
            arguments: &crate::desc::NO_MEMBERS,
        }
    }

    pub const fn with_arguments(mut self, arguments: &'static ObjectDesc) -> CommandInfo {
        self.has_arguments = true;
        self.arguments = arguments;
        self
    }

    /// For commands that send nothing back on success.
    pub const fn without_success_response(mut self) -> CommandInfo {
        self.success_response = false;
        self
    }

    pub const fn with_allow_oob(mut self) -> CommandInfo {
        self.allow_oob = true;
        self
    }

    pub const fn with_condition(mut self, condition: &'static Cond) -> CommandInfo {
        self.condition = Some(condition);
        self
    }

    pub const fn with_features(mut self, features: &'static [&'static str]) -> CommandInfo {
        self.features = features;
        self
    }

    pub fn is_deprecated(&self) -> bool {
        self.features.contains(&"deprecated")
    }
}

/// A command of the schema, implemented by a generated marker type.
pub trait Command {
    const INFO: &'static CommandInfo;
    /// The `arguments` object.
    type Args: Serialize + DeserializeOwned;
}

/// A command that replies on success with a `return` value.
pub trait ReplyCommand: Command {
    type Returns: Serialize + DeserializeOwned;
}

/// A command that sends nothing back on success (such as
/// `guest-shutdown`), so there is no reply to wait for.
pub trait NoReplyCommand: Command {}

/// The `{}` a command without a return type answers with, and the
/// arguments of a command without arguments.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Empty;

impl Serialize for Empty {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        s.serialize_map(Some(0))?.end()
    }
}

impl<'de> Deserialize<'de> for Empty {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Members from a newer agent are ignored, as for any struct.
        serde::de::IgnoredAny::deserialize(d).map(|_| Empty)
    }
}

/// QAPI's `null` type: JSON `null`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Null;

impl Serialize for Null {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_unit()
    }
}

impl<'de> Deserialize<'de> for Null {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        <()>::deserialize(d).map(|()| Null)
    }
}

/// A union branch this schema does not know, from a newer agent: the
/// discriminator value and the other members, kept as they came.
#[derive(Clone, Debug, PartialEq)]
pub struct UnknownVariant {
    pub tag: String,
    pub members: serde_json::Map<String, serde_json::Value>,
}
