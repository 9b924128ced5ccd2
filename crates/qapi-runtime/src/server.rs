//! The server side: take one request, answer like qemu-ga.

use std::fmt;

use serde_json::{Map, Value};

use crate::command::{CommandInfo, NoReplyCommand, ReplyCommand};
use crate::desc::check_arguments;
use crate::wire::{ErrorBody, ErrorClass, Reply};

/// An error a command handler returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandError {
    pub class: ErrorClass,
    pub desc: String,
}

impl CommandError {
    pub fn generic(desc: impl Into<String>) -> CommandError {
        CommandError {
            class: ErrorClass::GenericError,
            desc: desc.into(),
        }
    }

    /// What qemu-ga answers for a command it does not implement here.
    pub fn unsupported() -> CommandError {
        CommandError::generic("this feature or command is not currently supported")
    }
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.class, self.desc)
    }
}

impl std::error::Error for CommandError {}

impl From<CommandError> for ErrorBody {
    fn from(e: CommandError) -> ErrorBody {
        ErrorBody::new(e.class, e.desc)
    }
}

/// Which commands an agent serves right now.
pub trait Policy {
    fn is_enabled(&self, command: &str) -> bool;
}

/// Every command enabled.
pub struct AllEnabled;

impl Policy for AllEnabled {
    fn is_enabled(&self, _: &str) -> bool {
        true
    }
}

impl<F: Fn(&str) -> bool> Policy for F {
    fn is_enabled(&self, command: &str) -> bool {
        self(command)
    }
}

/// What a handler produced: a value to return, or nothing for a command
/// without a success response.
pub type Outcome = Result<Option<Value>, CommandError>;

fn error_reply(desc: String, class: ErrorClass, id: Option<Value>) -> Option<Value> {
    Some(
        Reply {
            result: Err(ErrorBody::new(class, desc)),
            id,
        }
        .into_value(),
    )
}

/// Handles one request the way qemu-ga's dispatcher does: checks the
/// envelope, finds the command, applies the policy, checks the
/// arguments, runs `invoke`, and builds the reply with the request's
/// `id`. Returns `None` when nothing is to be sent (a command without a
/// success response that succeeded).
pub fn dispatch(
    request: Value,
    commands: &'static [CommandInfo],
    policy: &dyn Policy,
    invoke: &mut dyn FnMut(&'static CommandInfo, Map<String, Value>) -> Outcome,
) -> Option<Value> {
    let generic = ErrorClass::GenericError;
    let Value::Object(mut map) = request else {
        return error_reply("QMP input must be a JSON object".into(), generic, None);
    };
    let id = map.get("id").cloned();
    for (key, value) in &map {
        match key.as_str() {
            "execute" if !value.is_string() => {
                return error_reply(format!("QMP input member '{key}' must be a string"), generic, id);
            }
            "arguments" if !value.is_object() => {
                return error_reply("QMP input member 'arguments' must be an object".into(), generic, id);
            }
            "execute" | "arguments" | "id" => {}
            _ => return error_reply(format!("QMP input member '{key}' is unexpected"), generic, id),
        }
    }
    let Some(Value::String(name)) = map.remove("execute") else {
        return error_reply("QMP input lacks member 'execute'".into(), generic, id);
    };
    let Some(info) = commands.iter().find(|c| c.name == name) else {
        return error_reply(
            format!("The command {name} has not been found"),
            ErrorClass::CommandNotFound,
            id,
        );
    };
    if !policy.is_enabled(info.name) {
        return error_reply(
            format!("Command {name} has been disabled"),
            ErrorClass::CommandNotFound,
            id,
        );
    }
    let args = match map.remove("arguments") {
        Some(Value::Object(args)) => args,
        _ => Map::new(),
    };
    if let Err(desc) = check_arguments(Some(&args), info.arguments) {
        return error_reply(desc, generic, id);
    }
    match invoke(info, args) {
        Ok(Some(ret)) => Some(Reply { result: Ok(ret), id }.into_value()),
        Ok(None) => None,
        Err(e) => error_reply(e.desc, e.class, id),
    }
}

fn decode_args<T: serde::de::DeserializeOwned>(args: Map<String, Value>) -> Result<T, CommandError> {
    // The arguments were checked against the schema already; a failure
    // here is a value serde rejects beyond that (such as an out-of-range
    // number in an `any` member decoded into a narrower type).
    serde_json::from_value(Value::Object(args)).map_err(|e| CommandError::generic(e.to_string()))
}

/// Runs a handler for a command that replies.
pub fn reply<C: ReplyCommand>(
    args: Map<String, Value>,
    handler: impl FnOnce(C::Args) -> Result<C::Returns, CommandError>,
) -> Outcome {
    let ret = handler(decode_args(args)?)?;
    serde_json::to_value(ret)
        .map(Some)
        .map_err(|e| CommandError::generic(format!("return value does not encode: {e}")))
}

/// Runs a handler for a command without a success response.
pub fn no_reply<C: NoReplyCommand>(
    args: Map<String, Value>,
    handler: impl FnOnce(C::Args) -> Result<(), CommandError>,
) -> Outcome {
    handler(decode_args(args)?)?;
    Ok(None)
}
