//! One client's conversation with the agent, independent of any socket:
//! bytes in, reply bytes out. The transports feed it what they read and
//! write what it produces; tests and fuzzers use it directly.

use std::sync::Arc;

use qga_types::runtime::framing::{Frame, MessageReader, DELIMITER};
use qga_types::runtime::{ErrorBody, ErrorClass, Reply};
use serde_json::Value;

use crate::agent::Agent;

/// The replies to input that is not a request, worded as qemu-ga words
/// them.
mod messages {
    pub const NESTING_LIMIT: &str = "JSON nesting depth limit exceeded";
    pub const SIZE_LIMIT: &str = "JSON token size limit exceeded";
    pub const TOKEN_LIMIT: &str = "JSON token count limit exceeded";
    /// Prefix of every reply to input that does not parse.
    pub const PARSE_ERROR: &str = "JSON parse error, ";
}

/// Requests nested deeper than this are handled on a thread with
/// [`DEEP_STACK`]: parsing, answering and serializing 1024 levels takes
/// about 4 MiB of stack in a debug build, more than a test or fuzzing
/// thread may have.
const SHALLOW_NESTING: usize = 64;
/// See [`Session::feed_with`].
pub const FLUSH_THRESHOLD: usize = 1024 * 1024;
const DEEP_STACK: usize = 32 * 1024 * 1024;

/// A client session: a streaming reader of requests and the agent that
/// answers them.
///
/// - Requests may arrive split across any number of [`Session::feed`]
///   calls, and many may arrive in one.
/// - A 0xFF byte drops any partial request and is answered with one error
///   (qemu-ga does the same; clients send it before `guest-sync-delimited`
///   and skip everything up to that command's reply).
/// - A request nested deeper than 1024, larger than 64 MiB or of more
///   than 2 Mi tokens gets one error, its remainder is skipped, and the
///   next request is served.
/// - A byte that cannot start a JSON token between requests, or a 0xFF,
///   gets one error, and input is skipped up to a bracket, brace, colon,
///   comma, control character or 0xFF (qemu-ga's recovery).
/// - Each reply is one line of JSON; the reply to `guest-sync-delimited`
///   is preceded by a 0xFF byte.
///
/// A new connection needs a new session (or [`Session::reset`]), so that
/// half a request left by one client never swallows the next one's.
pub struct Session {
    agent: Arc<Agent>,
    reader: MessageReader,
    frames: Vec<Frame>,
    /// After a stray byte: skipping to a byte where a token can start.
    recovering: bool,
}

impl Session {
    pub fn new(agent: Arc<Agent>) -> Session {
        Session {
            agent,
            reader: MessageReader::default(),
            frames: Vec::new(),
            recovering: false,
        }
    }

    pub fn agent(&self) -> &Arc<Agent> {
        &self.agent
    }

    /// Forgets any partial request, as for a new client.
    pub fn reset(&mut self) {
        self.reader.reset();
        self.recovering = false;
    }

    /// True when no partial request is buffered.
    pub fn is_idle(&self) -> bool {
        self.reader.is_idle()
    }

    /// Reads `input` and appends the bytes to send back to `out`. Each
    /// complete request is answered before this returns, which takes as
    /// long as its command runs (at most the agent's command timeout).
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) {
        self.feed_with(input, out, |_| true);
    }

    /// As [`Session::feed`], but hands `out` to `flush` whenever it holds
    /// [`FLUSH_THRESHOLD`] bytes or more, so that pipelined requests with
    /// large replies (48 MiB file reads) cannot pile up in memory. `flush`
    /// empties `out`, or returns false to stop reading `input` (the peer
    /// is gone).
    pub fn feed_with(&mut self, input: &[u8], out: &mut Vec<u8>, mut flush: impl FnMut(&mut Vec<u8>) -> bool) {
        let mut frames = std::mem::take(&mut self.frames);
        let mut rest = input;
        while let Some((&b, after)) = rest.split_first() {
            if out.len() >= FLUSH_THRESHOLD && !flush(out) {
                break;
            }
            if self.recovering {
                if !ends_recovery(b) {
                    rest = after;
                    continue;
                }
                self.recovering = false;
            }
            let taken = if !self.reader.is_idle() {
                // Inside a message, hand the reader everything up to the
                // next byte that could end it: the reader is then idle at
                // most after the last byte given, where the check below
                // resumes.
                rest.iter()
                    .position(|&b| may_end_message(b))
                    .map_or(rest.len(), |i| i + 1)
            } else if can_start_token(b) || matches!(b, b' ' | b'\t' | b'\r' | b'\n' | DELIMITER) {
                1
            } else {
                // Answered at once, as qemu-ga does, rather than when some
                // later byte ends the token.
                parse_error(out, format!("stray '{}'", shown(b)));
                self.recovering = true;
                rest = after;
                continue;
            };
            self.reader.push(&rest[..taken], &mut frames);
            rest = &rest[taken..];
            for frame in frames.drain(..) {
                match frame {
                    Frame::Message(bytes) => self.message(&bytes, out),
                    // The byte that cannot be text, as qemu-ga's lexer
                    // reports it; like any stray byte it starts a skip to
                    // where a token can start, so the rest of a broken
                    // request is never read as new input.
                    Frame::Delimiter => {
                        parse_error(out, "stray '\u{FFFD}'".into());
                        self.recovering = true;
                    }
                    Frame::TooDeep => error(out, messages::NESTING_LIMIT.into()),
                    Frame::TooLarge => error(out, messages::SIZE_LIMIT.into()),
                    Frame::TooManyTokens => error(out, messages::TOKEN_LIMIT.into()),
                }
            }
        }
        self.frames = frames;
    }

    fn message(&mut self, bytes: &[u8], out: &mut Vec<u8>) {
        if crate::json::nesting_depth(bytes) <= SHALLOW_NESTING {
            return self.answer(bytes, out);
        }
        // Parsing, answering and dropping a deep request recurse once per
        // level: give them a stack that fits the 1024 levels the reader
        // lets through, whatever thread feeds the session.
        let handled = std::thread::scope(|scope| {
            std::thread::Builder::new()
                .stack_size(DEEP_STACK)
                .spawn_scoped(scope, || {
                    let mut deep_out = Vec::new();
                    self.answer(bytes, &mut deep_out);
                    deep_out
                })
                .map(|handle| handle.join())
        });
        match handled {
            Ok(Ok(deep_out)) => out.extend_from_slice(&deep_out),
            Ok(Err(_)) => error(out, "internal error while handling a deeply nested request".into()),
            Err(e) => error(out, format!("cannot handle a deeply nested request: {e}")),
        }
    }

    fn answer(&mut self, bytes: &[u8], out: &mut Vec<u8>) {
        // The reader never frames an empty message.
        let Some(&first) = bytes.first() else {
            return;
        };
        let requoted;
        let text = if bytes.contains(&b'\'') {
            requoted = double_quoted(bytes);
            &requoted[..]
        } else {
            bytes
        };
        let request = match crate::json::parse(text) {
            Ok(request) => request,
            Err(_) if first.is_ascii_lowercase() => {
                return parse_error(out, format!("invalid keyword '{}'", String::from_utf8_lossy(bytes)))
            }
            Err(e) => return parse_error(out, e),
        };
        let delimited = request.get("execute").and_then(Value::as_str) == Some("guest-sync-delimited");
        let Some(reply) = self.agent.handle(request) else {
            return;
        };
        if delimited && reply.get("return").is_some() {
            out.push(DELIMITER);
        }
        write_line(out, &reply);
    }
}

fn write_line(out: &mut Vec<u8>, reply: &Value) {
    // Writing a Value to memory cannot fail.
    let _ = serde_json::to_writer(&mut *out, reply);
    out.push(b'\n');
}

fn error(out: &mut Vec<u8>, desc: String) {
    let reply = Reply {
        result: Err(ErrorBody::new(ErrorClass::GenericError, desc)),
        id: None,
    };
    write_line(out, &reply.into_value());
}

fn parse_error(out: &mut Vec<u8>, what: String) {
    error(out, format!("{}{what}", messages::PARSE_ERROR));
}

/// Bytes QEMU's JSON lexer accepts at the start of a token.
fn can_start_token(b: u8) -> bool {
    matches!(b, b'{' | b'}' | b'[' | b']' | b':' | b',' | b'"' | b'\'' | b'-' | b'0'..=b'9' | b'a'..=b'z')
}

/// Bytes after which the message reader may be between messages.
fn may_end_message(b: u8) -> bool {
    matches!(
        b,
        b'}' | b']' | b'{' | b'[' | b':' | b',' | b'"' | b'\'' | b' ' | b'\t' | b'\r' | b'\n' | DELIMITER
    )
}

/// After a stray byte, qemu-ga skips input up to a byte where it can
/// resynchronize: a structural character (bracket, brace, colon, comma),
/// a control character other than tab, or a byte that is never UTF-8
/// (0xFE, 0xFF).
fn ends_recovery(b: u8) -> bool {
    matches!(b, b'[' | b']' | b'{' | b'}' | b':' | b',' | 0xFE | 0xFF) || (b < 0x20 && b != b'\t')
}

/// A stray byte as qemu-ga shows it: itself, or U+FFFD outside ASCII.
fn shown(b: u8) -> char {
    if b.is_ascii() {
        char::from(b)
    } else {
        '\u{FFFD}'
    }
}

/// QEMU's JSON parser also takes 'single-quoted' strings (its own
/// documentation's examples use them); rewrite them as standard JSON.
fn double_quoted(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + 8);
    let mut quote = None;
    let mut escaped = false;
    for &b in bytes {
        match quote {
            None => {
                if b == b'"' || b == b'\'' {
                    quote = Some(b);
                    out.push(b'"');
                } else {
                    out.push(b);
                }
            }
            Some(q) => {
                if escaped {
                    escaped = false;
                    // `\'` is only an escape in QEMU's dialect.
                    if b == b'\'' {
                        out.pop();
                    }
                    out.push(b);
                } else if b == b'\\' {
                    escaped = true;
                    out.push(b);
                } else if b == q {
                    quote = None;
                    out.push(b'"');
                } else if b == b'"' {
                    out.extend_from_slice(b"\\\"");
                } else {
                    out.push(b);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_quotes_become_double_quotes() {
        assert_eq!(
            double_quoted(br#"{'execute':'guest-ping','id':'a"b\'c'}"#),
            br#"{"execute":"guest-ping","id":"a\"b'c"}"#.to_vec()
        );
        assert_eq!(double_quoted(br#"{"a":"it's"}"#), br#"{"a":"it's"}"#.to_vec());
    }
}
