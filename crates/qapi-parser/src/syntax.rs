//! The syntax layer. The pest grammar in `grammar.pest` defines it. A
//! hand-written fast path ([`parse_expression_fast`],
//! [`doc_block_lines_fast`]) parses well-formed input the same way, for
//! speed: pest's per-rule bookkeeping cost more than half of a whole
//! parse and check. Whatever the fast path declines goes to the grammar,
//! and a small token scanner that mirrors QEMU's lexer finds the exact
//! place and wording of an error when the grammar rejects input. Tests
//! and the `syntax_agree` fuzz target hold the fast path to the grammar.

use pest::iterators::Pair;
use pest::Parser as _;

use crate::source::{FileId, Span};
use crate::LINEAR_LOOKUP;

#[derive(pest_derive::Parser)]
#[grammar = "grammar.pest"]
struct Grammar;

/// Nesting deeper than this is rejected before parsing, so that neither
/// the grammar nor the checker can run out of stack, even on a thread
/// with a small stack (about 256 KiB suffice in a debug build). Real
/// schemas nest fewer than ten levels.
pub const MAX_NESTING: usize = 64;

/// A JSON-like value with the span it was parsed from.
#[derive(Clone, Debug, PartialEq)]
pub struct Value {
    pub kind: ValueKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ValueKind {
    Object(Vec<Member>),
    Array(Vec<Value>),
    Str(String),
    Bool(bool),
}

/// One `'key': value` pair of an object, in source order.
#[derive(Clone, Debug, PartialEq)]
pub struct Member {
    pub key: String,
    pub key_span: Span,
    pub value: Value,
}

impl Value {
    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            ValueKind::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_object(&self) -> Option<&[Member]> {
        match &self.kind {
            ValueKind::Object(m) => Some(m),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[Value]> {
        match &self.kind {
            ValueKind::Array(a) => Some(a),
            _ => None,
        }
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.as_object()?.iter().find(|m| m.key == key).map(|m| &m.value)
    }

    pub fn member(&self, key: &str) -> Option<&Member> {
        self.as_object()?.iter().find(|m| m.key == key)
    }
}

/// The comment lines of the documentation block starting at `start`, as
/// byte ranges (`#` to end of line), when the grammar's `doc_block` rule
/// accepts the block. `None` means it does not; the caller's token
/// scanner then finds and words the problem.
///
/// The hand-written [`doc_block_lines_fast`] answers first; the grammar
/// decides whenever it declines (see [`parse_expression`]).
pub fn doc_block_lines(src: &str, start: usize) -> Option<Vec<(usize, usize)>> {
    doc_block_lines_fast(src, start).or_else(|| doc_block_lines_grammar(src, start))
}

/// [`doc_block_lines`] by the grammar alone: the reference.
pub fn doc_block_lines_grammar(src: &str, start: usize) -> Option<Vec<(usize, usize)>> {
    let pairs = Grammar::parse(Rule::doc_block, &src[start..]).ok()?;
    let block = pairs.into_iter().next()?.as_span();
    // The grammar guarantees the shape: each line holds whitespace and
    // at most one comment, which runs to the end of the line.
    let mut lines = Vec::new();
    let mut at = start;
    for line in src[start..start + block.end()].split_inclusive('\n') {
        if let Some(hash) = line.find('#') {
            lines.push((at + hash, at + line.trim_end_matches('\n').len()));
        }
        at += line.len();
    }
    Some(lines)
}

/// A syntax or lexical error at a byte offset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyntaxError {
    pub offset: usize,
    pub message: String,
}

impl SyntaxError {
    fn new(offset: usize, message: impl Into<String>) -> Self {
        SyntaxError {
            offset,
            message: message.into(),
        }
    }
}

/// Python's `str.isspace()`, which QEMU's lexer uses to skip blanks.
pub fn is_py_space(c: char) -> bool {
    matches!(
        c,
        ' ' | '\t'
            | '\n'
            | '\r'
            | '\u{0B}'
            | '\u{0C}'
            | '\u{1C}'..='\u{1F}'
            | '\u{85}'
            | '\u{A0}'
            | '\u{1680}'
            | '\u{2000}'..='\u{200A}'
            | '\u{2028}'
            | '\u{2029}'
            | '\u{202F}'
            | '\u{205F}'
            | '\u{3000}'
    )
}

#[derive(Clone, Debug, PartialEq)]
pub enum TokenKind<'s> {
    Punct(u8),
    Str(String),
    Bool(bool),
    /// A comment line, `#` included; only returned for `##` lines or when
    /// comments are not skipped.
    Comment(&'s str),
    Eof,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Token<'s> {
    pub kind: TokenKind<'s>,
    pub start: usize,
    pub end: usize,
}

/// Lexes the token at or after `cursor`, exactly as QEMU's lexer does.
/// `src` must end with a newline, which doubles as the end-of-file mark.
pub fn next_token(src: &str, mut cursor: usize, mut skip_comment: bool) -> Result<Token<'_>, SyntaxError> {
    let bytes = src.as_bytes();
    loop {
        let pos = cursor;
        let Some(ch) = src[pos..].chars().next() else {
            return Ok(Token {
                kind: TokenKind::Eof,
                start: src.len(),
                end: src.len(),
            });
        };
        cursor += ch.len_utf8();
        let token = |kind, end| Ok(Token { kind, start: pos, end });
        match ch {
            '#' => {
                if bytes.get(cursor) == Some(&b'#') {
                    skip_comment = false;
                }
                cursor = src[cursor..].find('\n').map_or(src.len(), |i| cursor + i);
                if !skip_comment {
                    return token(TokenKind::Comment(&src[pos..cursor]), cursor);
                }
            }
            '{' | '}' | ':' | ',' | '[' | ']' => return token(TokenKind::Punct(ch as u8), cursor),
            '\'' => {
                let mut value = String::new();
                let mut escaped = false;
                for c in src[cursor..].chars() {
                    cursor += c.len_utf8();
                    if c == '\n' {
                        return Err(SyntaxError::new(pos, "missing terminating \"'\""));
                    }
                    if escaped {
                        if c != '\\' {
                            return Err(SyntaxError::new(pos, format!("unknown escape \\{c}")));
                        }
                        escaped = false;
                    } else if c == '\\' {
                        escaped = true;
                        continue;
                    } else if c == '\'' {
                        return token(TokenKind::Str(value), cursor);
                    }
                    if (c as u32) < 32 || (c as u32) >= 127 {
                        return Err(SyntaxError::new(pos, "funny character in string"));
                    }
                    value.push(c);
                }
                return Err(SyntaxError::new(pos, "missing terminating \"'\""));
            }
            _ if src[pos..].starts_with("true") => return token(TokenKind::Bool(true), pos + 4),
            _ if src[pos..].starts_with("false") => return token(TokenKind::Bool(false), pos + 5),
            '\n' if cursor == src.len() => {
                return Ok(Token {
                    kind: TokenKind::Eof,
                    start: pos,
                    end: pos,
                })
            }
            c if is_py_space(c) => {}
            _ => {
                // Control characters are shown escaped so the message stays
                // readable; printable text is shown as is, like QEMU.
                let run: String = src[pos..]
                    .chars()
                    .take_while(|&c| !"[]{}:,'".contains(c) && !is_py_space(c))
                    .flat_map(|c| {
                        let escaped: Vec<char> = if c.is_control() {
                            c.escape_default().collect()
                        } else {
                            vec![c]
                        };
                        escaped
                    })
                    .collect();
                return Err(SyntaxError::new(pos, format!("stray '{run}'")));
            }
        }
    }
}

/// Offset of the first token at or after `pos`, skipping blanks and plain
/// comments but stopping at `##`. Never fails: lexical errors are left to
/// [`next_token`].
pub fn skip_trivia(src: &str, mut pos: usize) -> usize {
    let bytes = src.as_bytes();
    while pos + 1 < src.len() {
        let Some(ch) = src[pos..].chars().next() else { break };
        if ch == '#' {
            if bytes.get(pos + 1) == Some(&b'#') {
                break;
            }
            pos = src[pos..].find('\n').map_or(src.len(), |i| pos + i);
        } else if is_py_space(ch) {
            pos += ch.len_utf8();
        } else {
            break;
        }
    }
    pos
}

/// Where nesting first goes deeper than `limit`, scanning one expression
/// from `start`. Strings and comments are skipped; the scan gives up at
/// the first malformed string, where parsing fails anyway.
fn nesting_overflow(src: &str, start: usize, limit: usize) -> Option<usize> {
    let bytes = src.as_bytes();
    let mut depth = 0usize;
    let mut i = start;
    while i < bytes.len() {
        match bytes[i] {
            b'[' | b'{' => {
                depth += 1;
                if depth > limit {
                    return Some(i);
                }
            }
            b']' | b'}' => {
                if depth <= 1 {
                    return None;
                }
                depth -= 1;
            }
            b'\'' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'\'' {
                    match bytes[i] {
                        b'\n' => return None,
                        b'\\' => i += 2,
                        _ => i += 1,
                    }
                }
                // A top-level string is a whole expression.
                if depth == 0 {
                    return None;
                }
            }
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b if b.is_ascii_whitespace() => {}
            _ if depth == 0 => return None,
            _ => {}
        }
        i += 1;
    }
    None
}

/// Something the grammar accepts but strict QAPI does not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Leniency {
    pub offset: usize,
    pub kind: LeniencyKind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LeniencyKind {
    MissingComma,
}

/// A parsed top-level expression.
#[derive(Clone, Debug, PartialEq)]
pub struct Parsed {
    pub value: Value,
    /// Offset just past the expression.
    pub end: usize,
    pub lenient: Vec<Leniency>,
}

/// Parses the expression starting at token offset `start` of `src`.
/// `lenient` accepts a missing comma between object members.
///
/// The hand-written [`parse_expression_fast`] handles well-formed input;
/// whenever it declines, [`parse_expression_grammar`] (the pest grammar,
/// which defines the syntax) parses the expression and words the error.
/// The fast path accepts exactly what the grammar accepts, with the same
/// tree, spans and end: `tests/syntax_agree.rs` and the `syntax_agree`
/// fuzz target compare them.
pub fn parse_expression(src: &str, file: FileId, start: usize, lenient: bool) -> Result<Parsed, SyntaxError> {
    match parse_expression_fast(src, file, start, lenient) {
        Some(parsed) => Ok(parsed),
        None => parse_expression_grammar(src, file, start, lenient),
    }
}

/// [`parse_expression`] by the pest grammar alone: the reference.
pub fn parse_expression_grammar(src: &str, file: FileId, start: usize, lenient: bool) -> Result<Parsed, SyntaxError> {
    if let Some(at) = nesting_overflow(src, start, MAX_NESTING) {
        // The grammar would recurse too deep; the scanner finds any earlier
        // error, or reports the overflow itself.
        return Err(diagnose(src, start, lenient)
            .err()
            .unwrap_or_else(|| SyntaxError::new(at, format!("nesting deeper than {MAX_NESTING} levels"))));
    }
    let pairs = match Grammar::parse(Rule::expression, &src[start..]) {
        Ok(pairs) => pairs,
        Err(e) => {
            return Err(diagnose(src, start, lenient).err().unwrap_or_else(|| {
                let offset = match e.location {
                    pest::error::InputLocation::Pos(p) => start + p,
                    pest::error::InputLocation::Span((p, _)) => start + p,
                };
                // The scanner accepts what the grammar rejected: only the
                // grammar's own recursion guard does that.
                SyntaxError::new(offset, "expression nested too deeply for the parser's stack")
            }));
        }
    };
    let pair = pairs.into_iter().next().expect("expression yields one value");
    let mut builder = Builder {
        file,
        base: start,
        problems: Vec::new(),
        lenient: Vec::new(),
    };
    let value = builder.build(pair);
    // Report the earliest problem, as a sequential parser would.
    if !lenient {
        builder.problems.extend(
            builder
                .lenient
                .iter()
                .map(|l| SyntaxError::new(l.offset, "expected ',' or '}'")),
        );
    }
    if let Some(first) = builder.problems.into_iter().min_by_key(|p| p.offset) {
        return Err(first);
    }
    let end = value.span.end as usize;
    Ok(Parsed {
        value,
        end,
        lenient: if lenient { builder.lenient } else { Vec::new() },
    })
}

struct Builder {
    file: FileId,
    base: usize,
    problems: Vec<SyntaxError>,
    lenient: Vec<Leniency>,
}

impl Builder {
    fn span(&self, pair: &Pair<'_, Rule>) -> Span {
        let s = pair.as_span();
        Span::new(self.file, self.base + s.start()..self.base + s.end())
    }

    /// The value of a string token. One that is not printable ASCII or
    /// holds an escape other than `\\` becomes a problem, worded by the
    /// scanner as QEMU words it.
    fn string_value(&mut self, pair: &Pair<'_, Rule>) -> String {
        if let Some(s) = unescape(pair) {
            return s;
        }
        let problem = next_token(pair.get_input(), pair.as_span().start(), true)
            .err()
            .map(|mut e| {
                e.offset += self.base;
                e
            })
            .unwrap_or_else(|| SyntaxError::new(self.span(pair).start as usize, "invalid string"));
        self.problems.push(problem);
        String::new()
    }

    fn build(&mut self, pair: Pair<'_, Rule>) -> Value {
        let span = self.span(&pair);
        let kind = match pair.as_rule() {
            Rule::object => {
                let mut members: Vec<Member> = Vec::new();
                for inner in pair.into_inner() {
                    match inner.as_rule() {
                        Rule::member => {
                            let mut parts = inner.into_inner();
                            let key_pair = parts.next().expect("member has a key");
                            let key_span = self.span(&key_pair);
                            let key = self.string_value(&key_pair);
                            let value = self.build(parts.next().expect("member has a value"));
                            members.push(Member { key, key_span, value });
                        }
                        Rule::missing_comma => {
                            let offset = self.span(&inner).start as usize;
                            self.lenient.push(Leniency {
                                offset,
                                kind: LeniencyKind::MissingComma,
                            });
                        }
                        _ => unreachable!("object holds members"),
                    }
                }
                if let Some(dup) = first_duplicate_key(&members) {
                    self.problems.push(SyntaxError::new(
                        dup.value.span.start as usize,
                        format!("duplicate key '{}'", dup.key),
                    ));
                }
                ValueKind::Object(members)
            }
            Rule::array => ValueKind::Array(pair.into_inner().map(|p| self.build(p)).collect()),
            Rule::string => ValueKind::Str(self.string_value(&pair)),
            Rule::boolean => ValueKind::Bool(pair.as_str() == "true"),
            other => unreachable!("unexpected rule {other:?}"),
        };
        Value { kind, span }
    }
}

/// The value of a string token, or `None` when it holds a character that
/// is not printable ASCII or an escape other than `\\`.
fn unescape(string_pair: &Pair<'_, Rule>) -> Option<String> {
    let raw = string_pair.as_str();
    let body = &raw[1..raw.len() - 1];
    if !body.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return None;
    }
    if !body.contains('\\') {
        return Some(body.to_string());
    }
    let mut out = String::with_capacity(body.len());
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        if c == '\\' && chars.next() != Some('\\') {
            return None;
        }
        out.push(c);
    }
    Some(out)
}

// ------------------------------------------------------------ fast path

/// Parses an expression the way the grammar does, by hand: the `value`,
/// `object`, `member`, `array`, `string` and `boolean` rules, with
/// `WHITESPACE` and `COMMENT` skipped between tokens (pest's implicit
/// skipping). `None` for anything the grammar would reject or report a
/// problem with (a string that is not printable ASCII or holds an escape
/// other than `\\`, a duplicate key, a missing comma when not `lenient`,
/// nesting deeper than [`MAX_NESTING`]); the grammar then takes over.
pub fn parse_expression_fast(src: &str, file: FileId, start: usize, lenient: bool) -> Option<Parsed> {
    let mut parser = FastParser {
        src,
        bytes: src.as_bytes(),
        pos: start,
        file,
        lenient,
        leniencies: Vec::new(),
    };
    parser.skip_trivia();
    let value = parser.value(0)?;
    Some(Parsed {
        end: value.span.end as usize,
        value,
        lenient: parser.leniencies,
    })
}

struct FastParser<'s> {
    src: &'s str,
    bytes: &'s [u8],
    pos: usize,
    file: FileId,
    lenient: bool,
    leniencies: Vec<Leniency>,
}

impl FastParser<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    /// The grammar's implicit `(WHITESPACE | COMMENT)*`; stops at `##`.
    fn skip_trivia(&mut self) {
        while let Some(b) = self.peek() {
            match b {
                b' ' | b'\n' | b'\t' | b'\r' | 0x0b | 0x0c | 0x1c..=0x1f => self.pos += 1,
                b'#' => {
                    if self.bytes.get(self.pos + 1) == Some(&b'#') {
                        return;
                    }
                    self.pos = line_end(self.bytes, self.pos);
                }
                0x80.. => match self.src[self.pos..].chars().next() {
                    Some(c) if is_py_space(c) => self.pos += c.len_utf8(),
                    _ => return,
                },
                _ => return,
            }
        }
    }

    fn span(&self, start: usize) -> Span {
        Span::new(self.file, start..self.pos)
    }

    /// `value`, with `depth` containers already open around it.
    fn value(&mut self, depth: usize) -> Option<Value> {
        let start = self.pos;
        let kind = match self.peek()? {
            b'\'' => ValueKind::Str(self.string()?),
            b'{' => self.object(depth + 1)?,
            b'[' => self.array(depth + 1)?,
            b't' if self.bytes[start..].starts_with(b"true") => {
                self.pos += 4;
                ValueKind::Bool(true)
            }
            b'f' if self.bytes[start..].starts_with(b"false") => {
                self.pos += 5;
                ValueKind::Bool(false)
            }
            _ => return None,
        };
        Some(Value {
            kind,
            span: self.span(start),
        })
    }

    /// `string` at its opening quote, unescaped.
    fn string(&mut self) -> Option<String> {
        let body_start = self.pos + 1;
        let mut i = body_start;
        let mut escapes = false;
        loop {
            match *self.bytes.get(i)? {
                b'\'' => break,
                b'\\' => {
                    if self.bytes.get(i + 1) != Some(&b'\\') {
                        return None;
                    }
                    escapes = true;
                    i += 2;
                }
                0x20..=0x7e => i += 1,
                _ => return None,
            }
        }
        self.pos = i + 1;
        let body = &self.src[body_start..i];
        Some(if escapes {
            body.replace("\\\\", "\\")
        } else {
            body.to_string()
        })
    }

    fn expect(&mut self, byte: u8) -> Option<()> {
        if self.peek()? != byte {
            return None;
        }
        self.pos += 1;
        self.skip_trivia();
        Some(())
    }

    fn object(&mut self, depth: usize) -> Option<ValueKind> {
        if depth > MAX_NESTING {
            return None;
        }
        self.expect(b'{')?;
        let mut members: Vec<Member> = Vec::new();
        if self.peek()? == b'}' {
            self.pos += 1;
            return Some(ValueKind::Object(members));
        }
        loop {
            if self.peek()? != b'\'' {
                return None;
            }
            let key_start = self.pos;
            let key = self.string()?;
            let key_span = self.span(key_start);
            self.skip_trivia();
            self.expect(b':')?;
            let value = self.value(depth)?;
            members.push(Member { key, key_span, value });
            self.skip_trivia();
            match self.peek()? {
                b',' => {
                    self.pos += 1;
                    self.skip_trivia();
                }
                b'}' => {
                    self.pos += 1;
                    break;
                }
                b'\'' if self.lenient => self.leniencies.push(Leniency {
                    offset: self.pos,
                    kind: LeniencyKind::MissingComma,
                }),
                _ => return None,
            }
        }
        if first_duplicate_key(&members).is_some() {
            return None;
        }
        Some(ValueKind::Object(members))
    }

    fn array(&mut self, depth: usize) -> Option<ValueKind> {
        if depth > MAX_NESTING {
            return None;
        }
        self.expect(b'[')?;
        let mut items = Vec::new();
        if self.peek()? == b']' {
            self.pos += 1;
            return Some(ValueKind::Array(items));
        }
        loop {
            items.push(self.value(depth)?);
            self.skip_trivia();
            match self.peek()? {
                b',' => {
                    self.pos += 1;
                    self.skip_trivia();
                }
                b']' => {
                    self.pos += 1;
                    return Some(ValueKind::Array(items));
                }
                _ => return None,
            }
        }
    }
}

/// Offset of the newline ending the line at `pos`, or the end of input.
fn line_end(bytes: &[u8], pos: usize) -> usize {
    memchr::memchr(b'\n', &bytes[pos..]).map_or(bytes.len(), |i| pos + i)
}

/// The first member whose key an earlier member already has. Wide
/// objects are hashed so they stay linear.
fn first_duplicate_key(members: &[Member]) -> Option<&Member> {
    if members.len() <= LINEAR_LOOKUP {
        members
            .iter()
            .enumerate()
            .find(|(i, m)| members[..*i].iter().any(|o| o.key == m.key))
            .map(|(_, m)| m)
    } else {
        let mut keys = std::collections::HashSet::with_capacity(members.len());
        members.iter().find(|m| !keys.insert(m.key.as_str()))
    }
}

/// [`doc_block_lines`] by hand: the `doc_block` rule is a `##` line, then
/// lines whose first non-blank is a single `#`, up to one whose first
/// non-blank is `##`; blank lines may come between.
pub fn doc_block_lines_fast(src: &str, start: usize) -> Option<Vec<(usize, usize)>> {
    let bytes = src.as_bytes();
    if !bytes[start..].starts_with(b"##") {
        return None;
    }
    let mut end = line_end(bytes, start);
    let mut lines = Vec::with_capacity(16);
    lines.push((start, end));
    loop {
        let mut pos = end;
        // `doc_space`: any Python whitespace, newlines included.
        while let Some(&b) = bytes.get(pos) {
            match b {
                b' ' | b'\n' | b'\t' | b'\r' | 0x0b | 0x0c | 0x1c..=0x1f => pos += 1,
                0x80.. => match src[pos..].chars().next() {
                    Some(c) if is_py_space(c) => pos += c.len_utf8(),
                    _ => break,
                },
                _ => break,
            }
        }
        if bytes.get(pos) != Some(&b'#') {
            return None;
        }
        end = line_end(bytes, pos);
        lines.push((pos, end));
        if bytes.get(pos + 1) == Some(&b'#') {
            return Some(lines);
        }
    }
}

enum Frame {
    Object(std::collections::HashSet<String>),
    Array,
}

/// Walks one expression token by token the way QEMU's parser does and
/// returns the first error, or the offset of the token after it.
pub fn diagnose(src: &str, start: usize, lenient: bool) -> Result<usize, SyntaxError> {
    use TokenKind::*;
    let mut stack: Vec<Frame> = Vec::new();
    let mut tok = next_token(src, start, true)?;
    // A member key has been read; expect ':' and a value.
    macro_rules! member_key {
        ($key:expr) => {{
            let key: String = $key;
            tok = next_token(src, tok.end, true)?;
            if tok.kind != Punct(b':') {
                return Err(SyntaxError::new(tok.start, "expected ':'"));
            }
            tok = next_token(src, tok.end, true)?;
            let Some(Frame::Object(keys)) = stack.last_mut() else {
                unreachable!()
            };
            if !keys.insert(key.clone()) {
                return Err(SyntaxError::new(tok.start, format!("duplicate key '{key}'")));
            }
        }};
    }
    'value: loop {
        // `tok` starts a value.
        match &tok.kind {
            Punct(b'{') => {
                if stack.len() >= MAX_NESTING {
                    return Err(SyntaxError::new(
                        tok.start,
                        format!("nesting deeper than {MAX_NESTING} levels"),
                    ));
                }
                tok = next_token(src, tok.end, true)?;
                match &tok.kind {
                    Punct(b'}') => tok = next_token(src, tok.end, true)?,
                    Str(key) => {
                        stack.push(Frame::Object(Default::default()));
                        member_key!(key.clone());
                        continue 'value;
                    }
                    _ => return Err(SyntaxError::new(tok.start, "expected string or '}'")),
                }
            }
            Punct(b'[') => {
                if stack.len() >= MAX_NESTING {
                    return Err(SyntaxError::new(
                        tok.start,
                        format!("nesting deeper than {MAX_NESTING} levels"),
                    ));
                }
                tok = next_token(src, tok.end, true)?;
                match &tok.kind {
                    Punct(b']') => tok = next_token(src, tok.end, true)?,
                    Punct(b'{') | Punct(b'[') | Str(_) | Bool(_) => {
                        stack.push(Frame::Array);
                        continue 'value;
                    }
                    _ => {
                        return Err(SyntaxError::new(
                            tok.start,
                            "expected '{', '[', ']', string, or boolean",
                        ))
                    }
                }
            }
            Str(_) | Bool(_) => tok = next_token(src, tok.end, true)?,
            _ => return Err(SyntaxError::new(tok.start, "expected '{', '[', string, or boolean")),
        }
        // A value is complete; `tok` follows it.
        loop {
            match stack.last() {
                None => return Ok(tok.start),
                Some(Frame::Object(_)) => match &tok.kind {
                    Punct(b'}') => {
                        stack.pop();
                        tok = next_token(src, tok.end, true)?;
                    }
                    Punct(b',') => {
                        tok = next_token(src, tok.end, true)?;
                        let Str(key) = &tok.kind else {
                            return Err(SyntaxError::new(tok.start, "expected string"));
                        };
                        member_key!(key.clone());
                        continue 'value;
                    }
                    Str(key) if lenient => {
                        member_key!(key.clone());
                        continue 'value;
                    }
                    _ => return Err(SyntaxError::new(tok.start, "expected ',' or '}'")),
                },
                Some(Frame::Array) => match &tok.kind {
                    Punct(b']') => {
                        stack.pop();
                        tok = next_token(src, tok.end, true)?;
                    }
                    Punct(b',') => {
                        tok = next_token(src, tok.end, true)?;
                        continue 'value;
                    }
                    _ => return Err(SyntaxError::new(tok.start, "expected ',' or ']'")),
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(src: &str) -> Result<Value, SyntaxError> {
        let mut s = src.to_string();
        s.push('\n');
        let start = skip_trivia(&s, 0);
        parse_expression(&s, FileId(0), start, false).map(|p| p.value)
    }

    #[test]
    fn parses_nested_values() {
        let v = parse("{ 'a': [ 'x', true ], 'b': { 'c': false } }").unwrap();
        let a = v.get("a").unwrap().as_array().unwrap();
        assert_eq!(a[0].as_str(), Some("x"));
        assert_eq!(a[1].kind, ValueKind::Bool(true));
        assert_eq!(v.get("b").unwrap().get("c").unwrap().kind, ValueKind::Bool(false));
    }

    #[test]
    fn errors_match_qemu_wording() {
        let cases = [
            ("{ 'a' 'b' }", 6, "expected ':'"),
            ("{ 'a': 'b' 'c': 'd' }", 11, "expected ',' or '}'"),
            ("[ 'a' 'b' ]", 6, "expected ',' or ']'"),
            ("{ , }", 2, "expected string or '}'"),
            ("{ 'a': 'b', }", 12, "expected string"),
            ("[ , ]", 2, "expected '{', '[', ']', string, or boolean"),
            ("[ 'a', ]", 7, "expected '{', '[', string, or boolean"),
            ("{ 'a': 1 }", 7, "stray '1'"),
            ("{ 'a\\x': 1 }", 2, "unknown escape \\x"),
            ("{ 'a': 'b", 7, "missing terminating \"'\""),
            ("{ 'a': 'b', 'a': 'c' }", 17, "duplicate key 'a'"),
        ];
        for (src, offset, message) in cases {
            let err = parse(src).unwrap_err();
            assert_eq!((err.offset, err.message.as_str()), (offset, message), "{src}");
        }
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let src = "[".repeat(100_000);
        let err = parse(&src).unwrap_err();
        assert_eq!(err.offset, MAX_NESTING);
        assert!(err.message.contains("nesting"));
    }

    #[test]
    fn lenient_mode_accepts_missing_comma() {
        let s = "{ 'a': 'b' 'c': 'd' }\n";
        let p = parse_expression(s, FileId(0), 0, true).unwrap();
        assert_eq!(p.lenient.len(), 1);
        assert_eq!(p.value.as_object().unwrap().len(), 2);
    }
}
