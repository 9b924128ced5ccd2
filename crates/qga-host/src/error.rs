//! One error type for everything a call can run into.

use std::io;

use qga_types::runtime::serde_json::{self, Value};
use qga_types::runtime::{CallError, ErrorBody, ErrorClass, Reply};

/// An error reply from the agent, kept whole.
#[derive(Clone, Debug, PartialEq)]
pub struct AgentError {
    pub class: ErrorClass,
    pub desc: String,
    /// The reply as received: `{"error": {"class", "desc", ...}, "id"}`,
    /// with any other members of the error (old agents' `data`).
    pub reply: Value,
}

impl AgentError {
    /// The command named in a not-found or disabled message, if any
    /// (`The command X has not been found`, `Command X has been disabled`).
    pub fn command(&self) -> Option<&str> {
        let lower = self.desc.to_ascii_lowercase();
        let at = lower.find("command ")? + "command ".len();
        self.desc[at..].split_whitespace().next()
    }
}

/// Why a call failed.
///
/// The generated stubs return `CallError<Error>`; `?` (or `Error::from`)
/// flattens that into this type and sorts agent errors into not found,
/// disabled and the rest.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The agent does not have the command (class `CommandNotFound`).
    #[error("agent error CommandNotFound: {}", .0.desc)]
    CommandNotFound(AgentError),
    /// The agent has the command but it is disabled (by the guest's
    /// administrator, or while filesystems are frozen). qemu-ga answers
    /// class `CommandNotFound` with `Command X has been disabled`; agents
    /// from 1.2 to 2.x used `GenericError` with `The command X has been
    /// disabled for this instance`.
    #[error("agent error {}: {}", .0.class, .0.desc)]
    CommandDisabled(AgentError),
    /// Any other error reply.
    #[error("agent error {}: {}", .0.class, .0.desc)]
    Agent(AgentError),
    /// No reply within the response timeout; the next call resynchronises.
    #[error("timed out waiting for the agent")]
    Timeout,
    /// Connecting, reading or writing failed.
    #[error("connection error: {0}")]
    Io(#[source] io::Error),
    /// The agent closed the connection. The next call reconnects when the
    /// connection knows how to.
    #[error("the agent closed the connection")]
    Closed,
    /// A reply larger (or deeper) than the configured limit.
    #[error("reply larger than the limit of {limit} bytes (Options::max_reply_size)")]
    ReplyTooLarge { limit: usize },
    /// The agent sent something that is not a reply.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// Sent in no-wait mode ([`ResponseTimeout::NoWait`](crate::ResponseTimeout::NoWait)): the reply is not awaited.
    #[error("request sent without waiting for the reply (no-wait mode)")]
    NotAwaited,
    /// The reply did not decode as the command's return type.
    #[error("reply does not decode: {error}")]
    Decode {
        #[source]
        error: serde_json::Error,
        reply: Value,
    },
    /// The arguments did not encode.
    #[error("arguments do not encode: {0}")]
    Encode(#[source] serde_json::Error),
}

impl Error {
    /// The agent's error reply, for the three agent variants.
    pub fn agent_error(&self) -> Option<&AgentError> {
        match self {
            Error::CommandNotFound(e) | Error::CommandDisabled(e) | Error::Agent(e) => Some(e),
            _ => None,
        }
    }

    /// Sorts an error reply into its variant.
    pub fn from_agent(body: ErrorBody, reply: Value) -> Error {
        let error = AgentError {
            class: body.class,
            desc: body.desc,
            reply,
        };
        let disabled = error.desc.contains("has been disabled")
            && matches!(error.class, ErrorClass::CommandNotFound | ErrorClass::GenericError);
        if disabled {
            Error::CommandDisabled(error)
        } else if error.class == ErrorClass::CommandNotFound {
            Error::CommandNotFound(error)
        } else {
            Error::Agent(error)
        }
    }

    /// The return value of a reply, or its error sorted into a variant.
    pub fn check_reply(reply: Reply) -> Result<Value, Error> {
        match reply.result {
            Ok(value) => Ok(value),
            Err(ref body) => Err(Error::from_agent(body.clone(), reply.to_value())),
        }
    }

    /// True for errors after which the stream cannot be used any more.
    pub(crate) fn is_broken_stream(&self) -> bool {
        matches!(self, Error::Closed | Error::Io(_))
    }
}

impl From<CallError<Error>> for Error {
    fn from(e: CallError<Error>) -> Error {
        match e {
            CallError::Transport(e) => e,
            CallError::Agent { error, reply } => Error::from_agent(error, *reply),
            CallError::Decode { error, reply } => Error::Decode { error, reply },
            CallError::Encode(e) => Error::Encode(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use qga_types::runtime::serde_json::json;

    fn sort(class: &str, desc: &str) -> Error {
        let reply = json!({"error": {"class": class, "desc": desc}});
        let body = serde_json::from_value(reply["error"].clone()).unwrap();
        Error::from_agent(body, reply)
    }

    #[test]
    fn agent_errors_are_sorted_like_each_release_words_them() {
        let e = sort("CommandNotFound", "The command guest-foo has not been found");
        assert!(matches!(e, Error::CommandNotFound(_)), "{e:?}");
        assert_eq!(e.agent_error().unwrap().command(), Some("guest-foo"));
        let e = sort("CommandNotFound", "Command guest-get-devices has been disabled");
        assert!(matches!(e, Error::CommandDisabled(_)), "{e:?}");
        assert_eq!(e.agent_error().unwrap().command(), Some("guest-get-devices"));
        let e = sort(
            "CommandNotFound",
            "Command guest-file-open has been disabled: the agent is in frozen state",
        );
        assert!(matches!(e, Error::CommandDisabled(_)), "{e:?}");
        let e = sort(
            "GenericError",
            "The command guest-exec has been disabled for this instance",
        );
        assert!(matches!(e, Error::CommandDisabled(_)), "{e:?}");
        let e = sort("GenericError", "Parameter 'id' is missing");
        assert!(matches!(e, Error::Agent(_)), "{e:?}");
        assert_eq!(e.to_string(), "agent error GenericError: Parameter 'id' is missing");
        assert_eq!(e.agent_error().unwrap().reply["error"]["class"], "GenericError");
    }

    #[test]
    fn an_error_reply_is_kept_as_received_with_members_beyond_class_and_desc() {
        // Agents before QEMU 1.2 sent `data` in their errors.
        let reply = json!({"error": {"class": "GenericError", "desc": "no", "data": {"errno": 5}}, "id": 3});
        match Error::check_reply(Reply::from_value(reply.clone()).unwrap()) {
            Err(Error::Agent(e)) => assert_eq!(e.reply, reply),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_checked_error_reply_keeps_its_id_and_a_return_value_passes() {
        let reply = json!({"error": {"class": "GenericError", "desc": "no"}, "id": 9});
        match Error::check_reply(Reply::from_value(reply.clone()).unwrap()) {
            Err(Error::Agent(e)) => assert_eq!(e.reply, reply),
            other => panic!("{other:?}"),
        }
        let reply = Reply::from_value(json!({"return": [1], "id": 9})).unwrap();
        assert_eq!(Error::check_reply(reply).unwrap(), json!([1]));
    }
}
