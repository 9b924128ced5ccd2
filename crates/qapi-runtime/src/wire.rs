//! The JSON envelopes of the protocol and QAPI's error classes.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

/// QAPI's error classes. Classes this crate does not know are kept.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    GenericError,
    CommandNotFound,
    DeviceNotActive,
    DeviceNotFound,
    KVMMissingCap,
    Other(String),
}

impl ErrorClass {
    pub fn as_str(&self) -> &str {
        match self {
            ErrorClass::GenericError => "GenericError",
            ErrorClass::CommandNotFound => "CommandNotFound",
            ErrorClass::DeviceNotActive => "DeviceNotActive",
            ErrorClass::DeviceNotFound => "DeviceNotFound",
            ErrorClass::KVMMissingCap => "KVMMissingCap",
            ErrorClass::Other(s) => s,
        }
    }

    pub fn from_wire(s: &str) -> ErrorClass {
        match s {
            "GenericError" => ErrorClass::GenericError,
            "CommandNotFound" => ErrorClass::CommandNotFound,
            "DeviceNotActive" => ErrorClass::DeviceNotActive,
            "DeviceNotFound" => ErrorClass::DeviceNotFound,
            "KVMMissingCap" => ErrorClass::KVMMissingCap,
            other => ErrorClass::Other(other.to_string()),
        }
    }
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ErrorClass {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ErrorClass {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(ErrorClass::from_wire(&s))
    }
}

/// The `error` member of a failed reply.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub class: ErrorClass,
    pub desc: String,
    /// Any other members, kept as received (agents before QEMU 1.2 also
    /// sent `data`), so a reply can be shown the way it arrived.
    /// (Boxed: errors travel inside `Result`s, which should stay small.)
    #[serde(flatten)]
    pub other: Box<Map<String, Value>>,
}

impl ErrorBody {
    pub fn new(class: ErrorClass, desc: impl Into<String>) -> ErrorBody {
        ErrorBody {
            class,
            desc: desc.into(),
            other: Box::default(),
        }
    }
}

impl fmt::Display for ErrorBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.class, self.desc)
    }
}

/// A request as sent by a client: `{"execute": ..., "arguments": ...,
/// "id": ...}`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Request {
    pub execute: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arguments: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<Value>,
}

/// A reply from an agent: a return value or an error, with the request's
/// `id` if it had one.
#[derive(Clone, Debug, PartialEq)]
pub struct Reply {
    pub result: Result<Value, ErrorBody>,
    pub id: Option<Value>,
}

impl Reply {
    /// Reads a reply object. Unknown members are ignored.
    pub fn from_value(value: Value) -> Result<Reply, String> {
        let Value::Object(mut map) = value else {
            return Err("reply is not a JSON object".to_string());
        };
        let id = map.remove("id");
        if let Some(ret) = map.remove("return") {
            return Ok(Reply { result: Ok(ret), id });
        }
        if let Some(err) = map.remove("error") {
            let body: ErrorBody =
                serde_json::from_value(err).map_err(|e| format!("malformed 'error' member in reply: {e}"))?;
            return Ok(Reply { result: Err(body), id });
        }
        Err("reply has neither 'return' nor 'error'".to_string())
    }

    /// The reply object, `return` or `error` first, then `id`.
    pub fn into_value(self) -> Value {
        let mut map = Map::new();
        match self.result {
            Ok(v) => map.insert("return".to_string(), v),
            Err(e) => map.insert(
                "error".to_string(),
                serde_json::to_value(e).expect("error bodies serialize"),
            ),
        };
        if let Some(id) = self.id {
            map.insert("id".to_string(), id);
        }
        Value::Object(map)
    }

    /// Like [`Reply::into_value`], for a borrowed reply.
    pub fn to_value(&self) -> Value {
        let mut map = Map::new();
        match &self.result {
            Ok(v) => map.insert("return".to_string(), v.clone()),
            Err(e) => map.insert(
                "error".to_string(),
                serde_json::to_value(e).expect("error bodies serialize"),
            ),
        };
        if let Some(id) = &self.id {
            map.insert("id".to_string(), id.clone());
        }
        Value::Object(map)
    }
}
