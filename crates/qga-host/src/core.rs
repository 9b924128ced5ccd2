//! The protocol state of one channel, without I/O, shared by the blocking
//! and the async connection: framing, ids, the dirty flag and the sync
//! handshake.

use std::collections::hash_map::RandomState;
use std::collections::VecDeque;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use qga_types::runtime::framing::{Frame, MessageReader, DELIMITER, MAX_NESTING, MAX_TOKENS};
use qga_types::runtime::serde_json::{self, json, Value};
use qga_types::runtime::{Reply, Request};

use crate::Error;

/// libvirt's sync timeout; a shorter response timeout wins.
pub(crate) const SYNC_TIMEOUT: Duration = Duration::from_secs(5);

/// How long to wait for replies, as libvirt offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ResponseTimeout {
    /// Wait as long as it takes.
    Block,
    /// Five seconds.
    #[default]
    Default,
    /// Send, and do not wait for the reply (the call gives
    /// [`Error::NotAwaited`]).
    NoWait,
    /// This many seconds.
    Seconds(u64),
}

impl ResponseTimeout {
    /// `None` for no limit; zero for no-wait.
    pub fn duration(self) -> Option<Duration> {
        match self {
            ResponseTimeout::Block => None,
            ResponseTimeout::Default => Some(Duration::from_secs(5)),
            ResponseTimeout::NoWait => Some(Duration::ZERO),
            ResponseTimeout::Seconds(s) => Some(Duration::from_secs(s)),
        }
    }

    /// How long writing a request may take: the response timeout, and
    /// for no-wait 5 s (sending still has to finish).
    pub(crate) fn write_duration(self) -> Option<Duration> {
        match self.duration() {
            Some(t) if t.is_zero() => Some(SYNC_TIMEOUT),
            other => other,
        }
    }

    /// The sync timeout that goes with this response timeout: 5 s, or
    /// the response timeout if shorter (as libvirt does).
    pub fn sync_duration(self) -> Duration {
        match self.duration() {
            Some(t) if !t.is_zero() => t.min(SYNC_TIMEOUT),
            _ => SYNC_TIMEOUT,
        }
    }
}

impl std::str::FromStr for ResponseTimeout {
    type Err = String;

    /// `block`, `default`, `nowait`, or whole seconds.
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "block" => Ok(ResponseTimeout::Block),
            "default" => Ok(ResponseTimeout::Default),
            "nowait" => Ok(ResponseTimeout::NoWait),
            _ => s
                .parse::<u64>()
                .map(ResponseTimeout::Seconds)
                .map_err(|_| format!("'{s}' is not a timeout: use whole seconds, 'block', 'default' or 'nowait'")),
        }
    }
}

/// Connection settings.
#[derive(Clone, Debug)]
pub struct Options {
    pub timeout: ResponseTimeout,
    /// Replies larger than this are refused (and the channel resynced).
    pub max_reply_size: usize,
    /// How long to watch for an error after sending a command that does
    /// not reply on success (`guest-shutdown`, `guest-suspend-*`).
    pub no_reply_window: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            timeout: ResponseTimeout::Default,
            max_reply_size: 16 * 1024 * 1024,
            no_reply_window: Duration::from_millis(500),
        }
    }
}

/// Whether `name` answers on success, as far as our schema knows; commands
/// it does not list are taken to answer.
pub(crate) fn replies_on_success(name: &str) -> bool {
    qga_types::COMMANDS
        .iter()
        .find(|c| c.name == name)
        .is_none_or(|c| c.success_response)
}

/// A random 64-bit value: each `RandomState` is freshly keyed.
fn random_u64() -> u64 {
    RandomState::new().build_hasher().finish()
}

/// Where a resync stands.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum SyncProgress {
    /// Read more.
    Pending,
    /// The agent echoed the id: in sync.
    Done,
    /// The agent has no `guest-sync-delimited`: start again (with
    /// [`Core::begin_sync`], which now sends `guest-sync`).
    Fallback,
}

#[derive(Debug)]
pub(crate) struct Core {
    reader: MessageReader,
    /// Complete frames read but not yet consumed.
    pending: VecDeque<Frame>,
    /// Set while anything may still be in flight (a request sent and its
    /// reply not consumed, a timeout, an error, a cancelled call): the next
    /// call resynchronises first.
    pub(crate) dirty: bool,
    /// In a resync, before the agent's 0xFF: everything read is stale.
    awaiting_delimiter: bool,
    /// False once the agent said it has no `guest-sync-delimited` (0.15
    /// and 1.0): resyncs then use `guest-sync`.
    delimited_sync: bool,
    /// Set when that answer arrives in the middle of a resync.
    fallback_needed: bool,
    next_id: u64,
    max_reply_size: usize,
}

impl Core {
    pub(crate) fn new(max_reply_size: usize) -> Core {
        Core {
            reader: MessageReader::new(MAX_NESTING, max_reply_size),
            pending: VecDeque::new(),
            dirty: true,
            awaiting_delimiter: false,
            delimited_sync: true,
            fallback_needed: false,
            next_id: random_u64() >> 1,
            max_reply_size,
        }
    }

    /// Starts a resync: forgets all input and returns the sync id and the
    /// bytes to send (0xFF, then `guest-sync-delimited`, or `guest-sync`
    /// for agents without it).
    pub(crate) fn begin_sync(&mut self) -> (u64, Vec<u8>) {
        self.dirty = true;
        self.awaiting_delimiter = self.delimited_sync;
        self.fallback_needed = false;
        self.reader.reset();
        self.pending.clear();
        self.pending.shrink_to(4);
        // Non-negative, so it fits the schema's `int`.
        let id = random_u64() >> 1;
        let command = if self.delimited_sync {
            "guest-sync-delimited"
        } else {
            "guest-sync"
        };
        let request = json!({"execute": command, "arguments": {"id": id}});
        let mut bytes = vec![DELIMITER];
        bytes.extend(serde_json::to_vec(&request).expect("requests encode"));
        bytes.push(b'\n');
        (id, bytes)
    }

    /// Whether `reply` completes the sync started with `id`.
    fn is_sync_reply(reply: &Reply, id: u64) -> bool {
        reply.result.as_ref().ok().and_then(Value::as_u64) == Some(id)
    }

    /// Consumes what was read during the resync with `id`.
    pub(crate) fn sync_progress(&mut self, id: u64) -> SyncProgress {
        if std::mem::take(&mut self.fallback_needed) {
            return SyncProgress::Fallback;
        }
        // Stale replies, garbage and oversized leftovers are all dropped.
        while let Some(reply) = self.next_reply() {
            if reply.is_ok_and(|r| Core::is_sync_reply(&r, id)) {
                self.dirty = false;
                return SyncProgress::Done;
            }
        }
        SyncProgress::Pending
    }

    /// The agent's answer to `guest-sync-delimited` when it does not have
    /// it (qemu-ga 0.15 and 1.0).
    fn lacks_delimited_sync(message: &[u8]) -> bool {
        let Ok(value) = serde_json::from_slice::<Value>(message) else {
            return false;
        };
        let error = &value["error"];
        error["class"] == "CommandNotFound"
            && error["desc"]
                .as_str()
                .is_some_and(|d| d.contains("guest-sync-delimited"))
    }

    /// Encodes a request with a fresh id and marks the channel dirty until
    /// its reply is consumed.
    pub(crate) fn request(&mut self, name: &str, arguments: Option<Value>) -> (u64, Vec<u8>) {
        self.next_id = self.next_id.wrapping_add(1) & (u64::MAX >> 1);
        let id = self.next_id;
        let request = Request {
            execute: name.to_string(),
            arguments,
            id: Some(id.into()),
        };
        let mut bytes = serde_json::to_vec(&request).expect("requests encode");
        bytes.push(b'\n');
        self.dirty = true;
        (id, bytes)
    }

    /// Takes bytes read from the stream.
    pub(crate) fn feed(&mut self, data: &[u8]) {
        let mut frames = Vec::new();
        self.reader.push(data, &mut frames);
        for frame in frames {
            if self.awaiting_delimiter {
                if let Frame::Message(m) = &frame {
                    if Core::lacks_delimited_sync(m) {
                        self.delimited_sync = false;
                        self.fallback_needed = true;
                        self.awaiting_delimiter = false;
                    }
                }
                self.awaiting_delimiter &= frame != Frame::Delimiter;
            } else {
                self.pending.push_back(frame);
            }
        }
    }

    /// The next complete reply read, if any. Stray delimiters are skipped.
    pub(crate) fn next_reply(&mut self) -> Option<Result<Reply, Error>> {
        while let Some(frame) = self.pending.pop_front() {
            return Some(match frame {
                Frame::Message(bytes) => match serde_json::from_slice::<Value>(&bytes) {
                    Ok(value) => Reply::from_value(value).map_err(Error::Protocol),
                    Err(e) => Err(Error::Protocol(format!("reply is not JSON: {e}"))),
                },
                Frame::TooLarge => Err(Error::ReplyTooLarge {
                    limit: self.max_reply_size,
                }),
                Frame::TooDeep => Err(Error::Protocol(format!(
                    "reply nested deeper than {MAX_NESTING} levels"
                ))),
                Frame::TooManyTokens => Err(Error::Protocol(format!("reply of more than {MAX_TOKENS} JSON tokens"))),
                Frame::Delimiter => continue,
            });
        }
        None
    }

    /// Whether `reply` answers the request with `id`; if so, nothing is in
    /// flight any more and the channel is clean.
    pub(crate) fn settles(&mut self, reply: &Reply, id: u64) -> bool {
        let answers = reply.id.as_ref().and_then(Value::as_u64) == Some(id);
        self.dirty &= !answers;
        answers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_parse_and_pick_the_sync_timeout_like_libvirt() {
        assert_eq!("block".parse(), Ok(ResponseTimeout::Block));
        assert_eq!("nowait".parse(), Ok(ResponseTimeout::NoWait));
        assert_eq!("120".parse(), Ok(ResponseTimeout::Seconds(120)));
        assert!("-1"
            .parse::<ResponseTimeout>()
            .unwrap_err()
            .contains("'-1' is not a timeout"));
        assert_eq!(ResponseTimeout::Seconds(1).sync_duration(), Duration::from_secs(1));
        assert_eq!(ResponseTimeout::Seconds(300).sync_duration(), SYNC_TIMEOUT);
        assert_eq!(ResponseTimeout::Block.sync_duration(), SYNC_TIMEOUT);
        assert_eq!(ResponseTimeout::NoWait.sync_duration(), SYNC_TIMEOUT);
    }

    #[test]
    fn everything_before_the_agents_delimiter_is_dropped() {
        let mut core = Core::new(1024);
        let (id, bytes) = core.begin_sync();
        assert_eq!(bytes[0], DELIMITER);
        core.feed(b"{\"return\": 1, \"id\": 5}\n{\"ret");
        assert!(core.next_reply().is_none());
        core.feed(b"garbage\n");
        let mut tail = vec![DELIMITER];
        tail.extend(format!("{{\"return\": {id}}}").as_bytes());
        core.feed(&tail);
        assert_eq!(core.sync_progress(id), SyncProgress::Done);
        assert!(!core.dirty);
    }

    #[test]
    fn oversized_and_overdeep_replies_are_clear_errors_and_the_stream_goes_on() {
        let mut core = Core::new(4096);
        let (id, _) = core.begin_sync();
        core.feed(&[DELIMITER]);
        core.feed(format!("{{\"return\": {id}}}").as_bytes());
        assert_eq!(core.sync_progress(id), SyncProgress::Done);
        core.feed(format!("{{\"return\": \"{}\"}} ", "x".repeat(5000)).as_bytes());
        core.feed(&"[".repeat(MAX_NESTING + 1).into_bytes());
        core.feed(&"]".repeat(MAX_NESTING + 1).into_bytes());
        core.feed(b" {\"return\": {}, \"id\": 1}");
        assert!(matches!(
            core.next_reply(),
            Some(Err(Error::ReplyTooLarge { limit: 4096 }))
        ));
        match core.next_reply() {
            Some(Err(e)) => assert_eq!(e.to_string(), "protocol error: reply nested deeper than 1024 levels"),
            other => panic!("{other:?}"),
        }
        let reply = core.next_reply().unwrap().unwrap();
        assert!(core.settles(&reply, 1));
    }

    #[test]
    fn agents_without_the_delimited_sync_get_guest_sync() {
        let mut core = Core::new(1024);
        let (_, bytes) = core.begin_sync();
        assert!(String::from_utf8_lossy(&bytes).contains("guest-sync-delimited"));
        core.feed(b"{\"return\": 3, \"id\": 1}\n");
        core.feed(br#"{"error": {"class": "CommandNotFound", "desc": "The command guest-sync-delimited has not been found"}}"#);
        let (id, bytes) = match core.sync_progress(0) {
            SyncProgress::Fallback => core.begin_sync(),
            other => panic!("{other:?}"),
        };
        assert!(String::from_utf8_lossy(&bytes).contains("\"guest-sync\""));
        // No 0xFF comes now: replies are matched by the echoed id alone.
        core.feed(format!("{{\"return\": 7, \"id\": 1}} {{\"return\": {id}}}").as_bytes());
        assert_eq!(core.sync_progress(id), SyncProgress::Done);
    }
}
