//! The client side: a transport carries one command at a time, and the
//! typed call path encodes arguments and decodes replies.

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;

use serde_json::Value;

use crate::command::{Command, CommandInfo, NoReplyCommand, ReplyCommand};
use crate::wire::{ErrorBody, Reply};

/// A blocking channel to an agent. Implementations own framing, ids,
/// resynchronisation and timeouts.
pub trait Transport {
    type Error: StdError + Send + Sync + 'static;

    /// Sends a command and waits for its reply.
    fn call(&mut self, command: &'static CommandInfo, arguments: Option<Value>) -> Result<Reply, Self::Error>;

    /// Sends a command that does not reply on success. Returns an error
    /// reply if one arrives while the transport is prepared to wait.
    fn send(&mut self, command: &'static CommandInfo, arguments: Option<Value>) -> Result<Option<Reply>, Self::Error>;
}

/// An asynchronous channel to an agent; see [`Transport`].
pub trait AsyncTransport {
    type Error: StdError + Send + Sync + 'static;

    fn call(
        &mut self,
        command: &'static CommandInfo,
        arguments: Option<Value>,
    ) -> impl Future<Output = Result<Reply, Self::Error>> + Send;

    fn send(
        &mut self,
        command: &'static CommandInfo,
        arguments: Option<Value>,
    ) -> impl Future<Output = Result<Option<Reply>, Self::Error>> + Send;
}

/// Why a typed call failed.
#[derive(Debug)]
pub enum CallError<E> {
    /// The transport failed (connection, timeout, framing).
    Transport(E),
    /// The agent answered with an error; `reply` is the whole reply
    /// (boxed to keep results small).
    Agent { error: ErrorBody, reply: Box<Value> },
    /// The reply did not decode as the command's return type.
    Decode { error: serde_json::Error, reply: Value },
    /// The arguments did not encode (a bug in the caller's types).
    Encode(serde_json::Error),
}

impl<E: fmt::Display> fmt::Display for CallError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::Transport(e) => write!(f, "{e}"),
            CallError::Agent { error, .. } => write!(f, "agent error {}: {}", error.class, error.desc),
            CallError::Decode { error, .. } => write!(f, "undecodable reply: {error}"),
            CallError::Encode(e) => write!(f, "arguments do not encode: {e}"),
        }
    }
}

impl<E: StdError + 'static> StdError for CallError<E> {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            CallError::Transport(e) => Some(e),
            CallError::Decode { error, .. } | CallError::Encode(error) => Some(error),
            CallError::Agent { .. } => None,
        }
    }
}

/// The `arguments` member for a command, or `None` when it takes none.
pub fn encode_arguments<C: Command>(args: &C::Args) -> Result<Option<Value>, serde_json::Error> {
    if !C::INFO.has_arguments {
        return Ok(None);
    }
    serde_json::to_value(args).map(Some)
}

/// Turns a reply into the command's return value.
pub fn decode_reply<C: ReplyCommand, E>(reply: Reply) -> Result<C::Returns, CallError<E>> {
    match reply.result {
        Ok(value) => serde_json::from_value(value.clone()).map_err(|error| CallError::Decode { error, reply: value }),
        Err(error) => {
            let reply = Reply {
                result: Err(error.clone()),
                id: reply.id,
            }
            .to_value();
            Err(CallError::Agent {
                error,
                reply: Box::new(reply),
            })
        }
    }
}

fn decode_no_reply<E>(reply: Option<Reply>) -> Result<(), CallError<E>> {
    match reply {
        Some(r) if r.result.is_err() => {
            let reply = Box::new(r.to_value());
            let Err(error) = r.result else {
                unreachable!("checked above")
            };
            Err(CallError::Agent { error, reply })
        }
        _ => Ok(()),
    }
}

/// Calls a command that replies and decodes its return value.
pub fn call<C: ReplyCommand, T: Transport + ?Sized>(
    t: &mut T,
    args: &C::Args,
) -> Result<C::Returns, CallError<T::Error>> {
    let arguments = encode_arguments::<C>(args).map_err(CallError::Encode)?;
    let reply = t.call(C::INFO, arguments).map_err(CallError::Transport)?;
    decode_reply::<C, T::Error>(reply)
}

/// Sends a command that does not reply on success.
pub fn send<C: NoReplyCommand, T: Transport + ?Sized>(t: &mut T, args: &C::Args) -> Result<(), CallError<T::Error>> {
    let arguments = encode_arguments::<C>(args).map_err(CallError::Encode)?;
    let reply = t.send(C::INFO, arguments).map_err(CallError::Transport)?;
    decode_no_reply(reply)
}

/// [`call`] over an [`AsyncTransport`].
pub async fn call_async<C: ReplyCommand, T: AsyncTransport + ?Sized>(
    t: &mut T,
    args: &C::Args,
) -> Result<C::Returns, CallError<T::Error>> {
    let arguments = encode_arguments::<C>(args).map_err(CallError::Encode)?;
    let reply = t.call(C::INFO, arguments).await.map_err(CallError::Transport)?;
    decode_reply::<C, T::Error>(reply)
}

/// [`send`] over an [`AsyncTransport`].
pub async fn send_async<C: NoReplyCommand, T: AsyncTransport + ?Sized>(
    t: &mut T,
    args: &C::Args,
) -> Result<(), CallError<T::Error>> {
    let arguments = encode_arguments::<C>(args).map_err(CallError::Encode)?;
    let reply = t.send(C::INFO, arguments).await.map_err(CallError::Transport)?;
    decode_no_reply(reply)
}
