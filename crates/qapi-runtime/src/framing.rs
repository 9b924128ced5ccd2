//! Framing of the byte stream: JSON messages one after another, and the
//! 0xFF byte that resynchronises both ends.
//!
//! 0xFF never occurs in UTF-8 text, so it can never be part of a JSON
//! message. A host sends it to make the agent drop any half-read input;
//! the agent sends it (in answer to `guest-sync-delimited`) so the host
//! can drop any stale output before the reply it waits for.

/// The resynchronisation byte.
pub const DELIMITER: u8 = 0xFF;

/// qemu-ga's limits on one incoming message.
pub const MAX_NESTING: usize = 1024;
pub const MAX_MESSAGE_SIZE: usize = 64 * 1024 * 1024;
/// Tokens in one message: bounds the memory a parsed message takes
/// (a 64 MiB `[1,1,1,...]` would be gigabytes as values).
pub const MAX_TOKENS: usize = 2 * 1024 * 1024;

/// Offset just past the first 0xFF in `buf`, if any.
pub fn after_delimiter(buf: &[u8]) -> Option<usize> {
    buf.iter().position(|&b| b == DELIMITER).map(|i| i + 1)
}

/// What the reader found in the stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// One complete top-level JSON text, not yet parsed.
    Message(Vec<u8>),
    /// A 0xFF byte: any partial message before it was dropped.
    Delimiter,
    /// A message nested deeper than the limit; the rest of it is skipped.
    TooDeep,
    /// A message larger than the limit; the rest of it is skipped.
    TooLarge,
    /// A message of more tokens than the limit; the rest of it is skipped.
    TooManyTokens,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Between messages.
    Idle,
    /// Inside an object or array.
    Nested,
    /// Inside a top-level string.
    TopString,
    /// Inside a top-level bare token such as `true` or `12`.
    TopScalar,
}

/// Splits a byte stream into JSON messages without parsing them, so
/// input can arrive in any pieces: a message split over many reads, or
/// many messages in one read.
#[derive(Debug)]
pub struct MessageReader {
    max_nesting: usize,
    max_size: usize,
    max_tokens: usize,
    buf: Vec<u8>,
    state: State,
    depth: usize,
    /// The quote that opened the string being read, if any: QEMU's JSON
    /// also takes 'single-quoted' strings, in which `"` is plain text.
    string_quote: Option<u8>,
    escaped: bool,
    /// Tokens of the message so far, counted inside brackets and braces.
    tokens: usize,
    /// Inside a bare token (number or keyword) within brackets or braces.
    in_scalar: bool,
    /// Past a limit: track structure to find the end, keep nothing.
    skipping: bool,
}

impl Default for MessageReader {
    fn default() -> Self {
        MessageReader::new(MAX_NESTING, MAX_MESSAGE_SIZE)
    }
}

impl MessageReader {
    pub fn new(max_nesting: usize, max_size: usize) -> Self {
        MessageReader {
            max_nesting,
            max_size,
            max_tokens: MAX_TOKENS,
            buf: Vec::new(),
            state: State::Idle,
            depth: 0,
            string_quote: None,
            escaped: false,
            tokens: 0,
            in_scalar: false,
            skipping: false,
        }
    }

    /// The same reader with another limit on the tokens of one message.
    pub fn with_max_tokens(mut self, max_tokens: usize) -> Self {
        self.max_tokens = max_tokens;
        self
    }

    /// Forgets any partial message, as for a new connection.
    pub fn reset(&mut self) {
        self.buf.shrink_to(64 * 1024);
        self.become_idle();
    }

    /// Between messages: nothing buffered, no structure open.
    fn become_idle(&mut self) {
        self.buf.clear();
        self.state = State::Idle;
        self.depth = 0;
        self.string_quote = None;
        self.escaped = false;
        self.tokens = 0;
        self.in_scalar = false;
        self.skipping = false;
    }

    /// True when no partial message is buffered.
    pub fn is_idle(&self) -> bool {
        self.state == State::Idle
    }

    fn finish(&mut self, out: &mut Vec<Frame>) {
        if !self.skipping {
            // The next message likely has about this size: start its
            // buffer there rather than regrowing it byte by byte.
            let next = Vec::with_capacity(self.buf.len().clamp(64, 4096));
            out.push(Frame::Message(std::mem::replace(&mut self.buf, next)));
        }
        self.become_idle();
    }

    fn keep(&mut self, b: u8, out: &mut Vec<Frame>) {
        if self.skipping {
            return;
        }
        if self.buf.len() >= self.max_size {
            out.push(Frame::TooLarge);
            self.buf = Vec::new();
            self.skipping = true;
            return;
        }
        self.buf.push(b);
    }

    /// Feeds bytes; complete frames are appended to `out`.
    pub fn push(&mut self, data: &[u8], out: &mut Vec<Frame>) {
        for &b in data {
            if b == DELIMITER {
                self.reset();
                out.push(Frame::Delimiter);
                continue;
            }
            match self.state {
                State::Idle => match b {
                    b' ' | b'\t' | b'\r' | b'\n' => {}
                    b'{' | b'[' => {
                        self.state = State::Nested;
                        self.depth = 1;
                        self.tokens = 1;
                        self.keep(b, out);
                    }
                    b'"' | b'\'' => {
                        self.state = State::TopString;
                        self.string_quote = Some(b);
                        self.keep(b, out);
                    }
                    b'}' | b']' | b':' | b',' => {
                        // A stray structural byte is a message of its own,
                        // which the JSON parser then rejects.
                        self.keep(b, out);
                        self.finish(out);
                    }
                    _ => {
                        self.state = State::TopScalar;
                        self.keep(b, out);
                    }
                },
                State::TopScalar => match b {
                    b' ' | b'\t' | b'\r' | b'\n' => self.finish(out),
                    b'{' | b'[' | b'}' | b']' | b':' | b',' | b'"' | b'\'' => {
                        self.finish(out);
                        self.push(&[b], out);
                    }
                    _ => self.keep(b, out),
                },
                State::TopString => {
                    self.keep(b, out);
                    if self.escaped {
                        self.escaped = false;
                    } else if b == b'\\' {
                        self.escaped = true;
                    } else if Some(b) == self.string_quote {
                        self.finish(out);
                    }
                }
                State::Nested => {
                    self.keep(b, out);
                    if self.string_quote.is_some() {
                        if self.escaped {
                            self.escaped = false;
                        } else if b == b'\\' {
                            self.escaped = true;
                        } else if Some(b) == self.string_quote {
                            self.string_quote = None;
                        }
                        continue;
                    }
                    let starts_scalar = !matches!(
                        b,
                        b'"' | b'\'' | b'{' | b'[' | b'}' | b']' | b':' | b',' | b' ' | b'\t' | b'\r' | b'\n'
                    );
                    if !(self.in_scalar && starts_scalar || matches!(b, b' ' | b'\t' | b'\r' | b'\n')) {
                        self.tokens += 1;
                        if self.tokens > self.max_tokens && !self.skipping {
                            out.push(Frame::TooManyTokens);
                            self.buf = Vec::new();
                            self.skipping = true;
                        }
                    }
                    self.in_scalar = starts_scalar;
                    match b {
                        b'"' | b'\'' => self.string_quote = Some(b),
                        b'{' | b'[' => {
                            self.depth += 1;
                            if self.depth > self.max_nesting && !self.skipping {
                                out.push(Frame::TooDeep);
                                self.buf = Vec::new();
                                self.skipping = true;
                            }
                        }
                        b'}' | b']' => {
                            self.depth -= 1;
                            if self.depth == 0 {
                                self.finish(out);
                            }
                        }
                        _ => {}
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(reader: &mut MessageReader, input: &[u8]) -> Vec<Frame> {
        let mut out = Vec::new();
        reader.push(input, &mut out);
        out
    }

    fn msg(s: &str) -> Frame {
        Frame::Message(s.as_bytes().to_vec())
    }

    #[test]
    fn splits_pipelined_and_fragmented_input() {
        let mut r = MessageReader::default();
        let input = br#"{"execute":"a"}{"execute":"b","arguments":{"s":"}\"{"}}"#;
        assert_eq!(
            frames(&mut r, input),
            vec![
                msg(r#"{"execute":"a"}"#),
                msg(r#"{"execute":"b","arguments":{"s":"}\"{"}}"#)
            ]
        );
        let mut out = Vec::new();
        for b in br#" {"execute":"c"} "# {
            r.push(&[*b], &mut out);
        }
        assert_eq!(out, vec![msg(r#"{"execute":"c"}"#)]);
    }

    #[test]
    fn delimiter_drops_partial_input() {
        let mut r = MessageReader::default();
        assert_eq!(frames(&mut r, b"{\"exec"), vec![]);
        assert_eq!(frames(&mut r, b"\xff{}"), vec![Frame::Delimiter, msg("{}")]);
    }

    #[test]
    fn limits_give_one_frame_then_recover() {
        let mut r = MessageReader::new(4, 1 << 20);
        assert_eq!(frames(&mut r, b"[[[[[[]]]]]] {}"), vec![Frame::TooDeep, msg("{}")]);
        let mut r = MessageReader::new(1024, 8);
        assert_eq!(
            frames(&mut r, b"{\"a\":\"0123456789\"} {}"),
            vec![Frame::TooLarge, msg("{}")]
        );
    }

    #[test]
    fn single_quoted_strings_frame_like_double_quoted_ones() {
        let mut r = MessageReader::default();
        let input = br#"{'execute':'guest-ping','id':'a"}b'} 'x"y' {"s":"it's"}"#;
        assert_eq!(
            frames(&mut r, input),
            vec![
                msg(r#"{'execute':'guest-ping','id':'a"}b'}"#),
                msg(r#"'x"y'"#),
                msg(r#"{"s":"it's"}"#)
            ]
        );
    }

    #[test]
    fn token_limit_gives_one_frame_then_recovers() {
        // `[`, `1`, `,`, `22`, `,`, `"a b"`, `]`: seven tokens.
        let message = br#"[1, 22 ,"a b"]"#;
        let mut r = MessageReader::default().with_max_tokens(7);
        assert_eq!(frames(&mut r, message), vec![Frame::Message(message.to_vec())]);
        let mut r = MessageReader::default().with_max_tokens(6);
        let mut input = message.to_vec();
        input.extend_from_slice(b" {}");
        assert_eq!(frames(&mut r, &input), vec![Frame::TooManyTokens, msg("{}")]);
    }

    #[test]
    fn top_level_scalars_are_messages() {
        let mut r = MessageReader::default();
        assert_eq!(
            frames(&mut r, b"12 true \"x\" }"),
            vec![msg("12"), msg("true"), msg("\"x\""), msg("}")]
        );
    }
}
