//! Reads schema files: expressions in order, `include` and `pragma`
//! directives, and documentation blocks.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::diag::Diagnostic;
use crate::doc::{Doc, SectionKind};
use crate::source::{join_include_name, lexical_abs_path, FileId, IncludeSite, Location, SourceFile, SourceMap, Span};
use crate::syntax::{self, LeniencyKind, SyntaxError, Token, TokenKind, Value};
use crate::Options;

/// Settings made by `pragma` directives. QEMU keeps one set for the whole
/// schema, so a pragma anywhere applies everywhere.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pragma {
    pub doc_required: bool,
    pub command_name_exceptions: Vec<String>,
    pub command_returns_exceptions: Vec<String>,
    pub documentation_exceptions: Vec<String>,
    pub member_name_exceptions: Vec<String>,
}

/// A top-level expression other than a pragma.
#[derive(Clone, Debug)]
pub struct Expr {
    pub value: Value,
    /// The line of the opening `{`, where semantic errors are reported.
    pub location: Location,
    pub doc: Option<usize>,
    pub include: Option<Include>,
}

#[derive(Clone, Debug)]
pub struct Include {
    /// The file name as QEMU forms it: the including file's directory
    /// joined with the path written in the directive.
    pub name: String,
    pub abs_path: PathBuf,
}

/// Everything read from a schema and the files it includes.
#[derive(Debug, Default)]
pub struct ParsedSchema {
    pub sources: SourceMap,
    pub exprs: Vec<Expr>,
    pub docs: Vec<Doc>,
    pub pragma: Pragma,
    pub warnings: Vec<Diagnostic>,
}

/// How reading the root file failed.
#[derive(Debug)]
pub enum ReadError {
    /// The root file could not be read (missing, unreadable).
    Io(Diagnostic),
    /// The schema is malformed.
    Invalid(Diagnostic),
}

pub(crate) struct Reader<'o> {
    opts: &'o Options,
    pub out: ParsedSchema,
}

impl<'o> Reader<'o> {
    pub fn new(opts: &'o Options) -> Self {
        Reader {
            opts,
            out: ParsedSchema::default(),
        }
    }

    /// Reads the root file given by name, or text already in memory.
    pub fn read_root(&mut self, name: &str, text: Option<String>) -> Result<(), ReadError> {
        let text = match text {
            Some(t) => t,
            None => read_text(Path::new(name)).map_err(|e| match e {
                TextError::Io(e) => ReadError::Io(Diagnostic::error(format!("can't read schema file '{name}': {e}"))),
                TextError::Utf8(e) => ReadError::Invalid(Diagnostic::error(format!("schema file '{name}': {e}"))),
            })?,
        };
        let abs = lexical_abs_path(Path::new(name));
        let file = self.add_file(name.to_string(), abs, text, None);
        self.parse_file(file).map_err(ReadError::Invalid)
    }

    fn add_file(&mut self, name: String, abs: PathBuf, text: String, site: Option<IncludeSite>) -> FileId {
        self.out.sources.add(SourceFile::new(name, abs, text, site))
    }

    fn syntax_error(&self, file: FileId, e: SyntaxError) -> Diagnostic {
        let src = &self.out.sources.get(file).text;
        let offset = e.offset.min(src.len());
        let len = src[offset..].chars().next().map_or(0, char::len_utf8);
        Diagnostic::error(e.message)
            .at(self.out.sources.col_loc(file, offset))
            .highlight(Span::new(file, offset..offset + len))
    }

    fn sem_error(&self, file: FileId, offset: usize, message: impl Into<String>) -> Diagnostic {
        Diagnostic::error(message).at(self.out.sources.line_loc(file, offset))
    }

    fn parse_file(&mut self, file: FileId) -> Result<(), Diagnostic> {
        let text: Arc<str> = self.out.sources.get(file).text.clone();
        let src: &str = &text;
        let strict = self.opts.strict;
        let mut cur_doc: Option<usize> = None;
        let mut pos = syntax::skip_trivia(src, 0);
        // QEMU lexes the token after each expression before acting on
        // the expression, so lexical errors there come first.
        next_token_checked(self, file, src, pos)?;
        loop {
            if pos + 1 >= src.len() {
                break;
            }
            if src[pos..].starts_with("##") {
                self.reject_expr_doc(cur_doc)?;
                let (doc, next) = self.parse_doc(file, src, pos)?;
                self.out.docs.push(doc);
                cur_doc = Some(self.out.docs.len() - 1);
                pos = next;
                continue;
            }
            let parsed = syntax::parse_expression(src, file, pos, !strict).map_err(|e| self.syntax_error(file, e))?;
            for l in &parsed.lenient {
                match l.kind {
                    LeniencyKind::MissingComma => self.out.warnings.push(
                        Diagnostic::warning("missing ',' between members (accepted for schemas before QEMU 1.4)")
                            .at(self.out.sources.col_loc(file, l.offset))
                            .highlight(Span::new(file, l.offset..l.offset + 1)),
                    ),
                }
            }
            let next = syntax::skip_trivia(src, parsed.end);
            next_token_checked(self, file, src, next)?;
            let value = parsed.value;
            let location = self.out.sources.line_loc(file, pos);
            let Some(members) = value.as_object() else {
                return Err(self.sem_error(file, pos, "top-level expression must be an object"));
            };
            if let Some(include) = value.get("include") {
                self.reject_expr_doc(cur_doc)?;
                if members.len() != 1 {
                    return Err(self.sem_error(file, pos, "invalid 'include' directive"));
                }
                let Some(rel) = include.as_str() else {
                    return Err(self.sem_error(file, pos, "value of 'include' must be a string"));
                };
                self.include(file, pos, rel, value.clone(), location)?;
            } else if let Some(pragma) = value.get("pragma") {
                self.reject_expr_doc(cur_doc)?;
                if members.len() != 1 {
                    return Err(self.sem_error(file, pos, "invalid 'pragma' directive"));
                }
                let Some(settings) = pragma.as_object() else {
                    return Err(self.sem_error(file, pos, "value of 'pragma' must be an object"));
                };
                for m in settings {
                    self.pragma(file, pos, &m.key, &m.value, m.key_span)?;
                }
            } else {
                if let Some(d) = cur_doc {
                    if self.out.docs[d].symbol.is_none() {
                        let loc = self.out.docs[d].location;
                        let e = Diagnostic::error("definition documentation required").at(loc);
                        if strict {
                            return Err(e);
                        }
                        // Schemas before QEMU 2.9 had no definition
                        // documentation; their comments stay free-form.
                        self.warn_from(e);
                        cur_doc = None;
                    }
                }
                self.out.exprs.push(Expr {
                    value,
                    location,
                    doc: cur_doc,
                    include: None,
                });
            }
            cur_doc = None;
            pos = next;
        }
        self.reject_expr_doc(cur_doc)
    }

    fn reject_expr_doc(&self, doc: Option<usize>) -> Result<(), Diagnostic> {
        if let Some(d) = doc {
            let doc = &self.out.docs[d];
            if let Some(symbol) = &doc.symbol {
                return Err(Diagnostic::error(format!(
                    "documentation for '{symbol}' is not followed by the definition"
                ))
                .at(doc.location));
            }
        }
        Ok(())
    }

    fn include(
        &mut self,
        file: FileId,
        pos: usize,
        rel: &str,
        value: Value,
        location: Location,
    ) -> Result<(), Diagnostic> {
        let parent_name = self.out.sources.get(file).name.clone();
        let name = join_include_name(&parent_name, rel);
        let abs = lexical_abs_path(Path::new(&name));
        self.out.exprs.push(Expr {
            value,
            location,
            doc: None,
            include: Some(Include {
                name: name.clone(),
                abs_path: abs.clone(),
            }),
        });
        // A file that includes itself, directly or through others.
        let mut chain = Some(file);
        while let Some(f) = chain {
            let source = self.out.sources.get(f);
            if source.abs_path == abs {
                return Err(self.sem_error(file, pos, format!("inclusion loop for {rel}")));
            }
            chain = source.included_from.map(|s| s.file);
        }
        if self.out.sources.find_by_abs_path(&abs).is_some() {
            return Ok(());
        }
        let text = read_text(Path::new(&name)).map_err(|e| {
            let reason = match e {
                TextError::Io(e) | TextError::Utf8(e) => e,
            };
            self.sem_error(file, pos, format!("can't read include file '{name}': {reason}"))
        })?;
        let site = IncludeSite {
            file,
            line: location.line,
        };
        let included = self.add_file(name, abs, text, Some(site));
        self.parse_file(included)
    }

    fn pragma(
        &mut self,
        file: FileId,
        pos: usize,
        name: &str,
        value: &Value,
        key_span: Span,
    ) -> Result<(), Diagnostic> {
        let list = |this: &Self, shown: &str| -> Result<Vec<String>, Diagnostic> {
            let items = value
                .as_array()
                .and_then(|a| a.iter().map(|v| v.as_str().map(str::to_string)).collect());
            items.ok_or_else(|| {
                this.sem_error(file, pos, format!("pragma {shown} must be a list of strings"))
                    .highlight(value.span)
            })
        };
        let legacy = match name {
            "returns-whitelist" => Some("command-returns-exceptions"),
            "name-case-whitelist" => Some("member-name-exceptions"),
            _ => None,
        };
        if let Some(modern) = legacy {
            if self.opts.strict {
                return Err(self
                    .sem_error(file, pos, format!("unknown pragma '{name}'"))
                    .highlight(key_span));
            }
            self.out.warnings.push(
                Diagnostic::warning(format!("pragma '{name}' is the old name of '{modern}'"))
                    .at(self.out.sources.line_loc(file, pos))
                    .highlight(key_span),
            );
        }
        match name {
            "doc-required" => match value.kind {
                syntax::ValueKind::Bool(b) => self.out.pragma.doc_required = b,
                _ => {
                    return Err(self
                        .sem_error(file, pos, "pragma 'doc-required' must be boolean")
                        .highlight(value.span))
                }
            },
            "command-name-exceptions" => self.out.pragma.command_name_exceptions = list(self, name)?,
            "command-returns-exceptions" | "returns-whitelist" => {
                self.out.pragma.command_returns_exceptions = list(self, name)?
            }
            "documentation-exceptions" => self.out.pragma.documentation_exceptions = list(self, name)?,
            "member-name-exceptions" | "name-case-whitelist" => {
                self.out.pragma.member_name_exceptions = list(self, name)?
            }
            _ => {
                return Err(self
                    .sem_error(file, pos, format!("unknown pragma '{name}'"))
                    .highlight(key_span))
            }
        }
        Ok(())
    }

    fn parse_doc(&mut self, file: FileId, src: &str, pos: usize) -> Result<(Doc, usize), Diagnostic> {
        // The grammar splits a well-formed block into lines; for a block
        // it rejects, the scanner reads token by token to find the error.
        let lines = syntax::doc_block_lines(src, pos).map(|l| l.into_iter());
        let mut reader = DocReader {
            reader: self,
            file,
            src,
            tok: Token {
                kind: TokenKind::Eof,
                start: pos,
                end: pos,
            },
            literal: LiteralBlock::default(),
            lines,
        };
        reader.accept()?;
        let (mut doc, end) = match reader.read() {
            Ok(doc) => (doc, reader.tok.end),
            Err(e) if !self.opts.strict => {
                // Older schemas predate today's documentation rules: keep
                // what can be had and go on.
                self.warn_from(e);
                self.lenient_doc(file, src, pos)
            }
            Err(e) => return Err(e),
        };
        // The token after the block is lexed before the block is finished.
        let next = syntax::skip_trivia(src, end);
        next_token_checked(self, file, src, next)?;
        if let Err((loc, msg)) = doc.end() {
            let d = Diagnostic::error(msg).at(loc);
            if self.opts.strict {
                return Err(d);
            }
            self.warn_from(d);
        }
        Ok((doc, next))
    }

    fn warn_from(&mut self, mut d: Diagnostic) {
        d.severity = crate::diag::Severity::Warning;
        self.out.warnings.push(d);
    }

    /// A documentation block read without today's rules: the symbol from
    /// an `@name:` first line, the rest as body text. The block ends at a
    /// `##` line or at the first token that is not a comment.
    fn lenient_doc(&mut self, file: FileId, src: &str, pos: usize) -> (Doc, usize) {
        let location = self.out.sources.line_loc(file, pos);
        let mut lines = Vec::new();
        let mut cursor = pos;
        let mut first = true;
        let mut end = pos;
        while let Ok(tok) = syntax::next_token(src, cursor, false) {
            let TokenKind::Comment(val) = tok.kind else { break };
            end = tok.end;
            cursor = tok.end;
            if first {
                first = false;
                continue;
            }
            if val.starts_with("##") {
                break;
            }
            // Comment tokens start with `#`; drop it and one space.
            let text = &val[1..];
            lines.push(text.strip_prefix(' ').unwrap_or(text).trim_end());
        }
        let symbol = lines
            .first()
            .and_then(|l| l.strip_prefix('@'))
            .map(|l| l.trim_end_matches(':').to_string())
            .filter(|s| !s.is_empty() && !s.contains(' '));
        let skip = usize::from(symbol.is_some());
        let mut doc = Doc::new(location, symbol);
        doc.ensure_untagged_section(location);
        for l in &lines[skip..] {
            doc.append_line(l);
        }
        (doc, end)
    }
}

fn next_token_checked(reader: &Reader<'_>, file: FileId, src: &str, pos: usize) -> Result<(), Diagnostic> {
    syntax::next_token(src, pos, true)
        .map(|_| ())
        .map_err(|e| reader.syntax_error(file, e))
}

enum TextError {
    Io(String),
    Utf8(String),
}

/// Larger schema files are refused, so that an include of a device such
/// as /dev/zero ends with an error instead of exhausting memory.
pub const MAX_FILE_SIZE: u64 = 256 * 1024 * 1024;

fn read_text(path: &Path) -> Result<String, TextError> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| TextError::Io(io_reason(&e)))?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_SIZE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| TextError::Io(io_reason(&e)))?;
    if bytes.len() as u64 > MAX_FILE_SIZE {
        return Err(TextError::Io(format!(
            "file is larger than {} MiB",
            MAX_FILE_SIZE >> 20
        )));
    }
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let valid = &e.as_bytes()[..at];
        let line = valid.iter().filter(|&&b| b == b'\n').count() + 1;
        TextError::Utf8(format!("invalid UTF-8 at line {line}, byte offset {at}"))
    })
}

/// The OS error text without Rust's " (os error N)" suffix, as QEMU
/// prints `strerror`.
fn io_reason(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// Tracks reST literal blocks (after a line ending in `::`), which the
/// doc-format checks leave alone.
#[derive(Default)]
struct LiteralBlock {
    active: bool,
    indent: Option<usize>,
}

struct DocReader<'r, 'o, 's> {
    reader: &'r mut Reader<'o>,
    file: FileId,
    src: &'s str,
    tok: Token<'s>,
    literal: LiteralBlock,
    /// The block's lines from the grammar, when it accepted the block.
    lines: Option<std::vec::IntoIter<(usize, usize)>>,
}

/// `@name:` at the start of a line: the name and where the text begins.
fn match_at_name_colon(line: &str) -> Option<(&str, usize)> {
    let rest = line.strip_prefix('@')?;
    let colon = rest.find(':')?;
    let name = &rest[..colon];
    let after = 1 + colon + 1;
    let spaces = line[after..].len() - line[after..].trim_start_matches(' ').len();
    Some((name, after + spaces))
}

/// A section tag such as `Returns:`; `Returns::` is reST, not a tag.
fn match_tag(line: &str) -> Option<(&str, usize)> {
    const TAGS: [&str; 8] = [
        "Returns", "Errors", "Since", "Notes", "Note", "Examples", "Example", "TODO",
    ];
    for tag in TAGS {
        if let Some(rest) = line.strip_prefix(tag) {
            if rest.starts_with(':') && !rest.starts_with("::") {
                let after = tag.len() + 1;
                let spaces = line[after..].len() - line[after..].trim_start_matches(' ').len();
                return Some((tag, after + spaces));
            }
        }
    }
    None
}

fn leading_space(line: &str) -> usize {
    line.len() - line.trim_start_matches(|c: char| syntax::is_py_space(c)).len()
}

impl<'s> DocReader<'_, '_, 's> {
    fn here(&self) -> Location {
        self.reader.out.sources.line_loc(self.file, self.tok.start)
    }

    fn parse_error(&self, message: impl Into<String>) -> Diagnostic {
        self.reader.syntax_error(
            self.file,
            SyntaxError {
                offset: self.tok.start,
                message: message.into(),
            },
        )
    }

    fn sem_here(&self, message: String) -> Diagnostic {
        Diagnostic::error(message).at(self.here())
    }

    fn accept(&mut self) -> Result<(), Diagnostic> {
        if let Some(lines) = &mut self.lines {
            if let Some((start, end)) = lines.next() {
                self.tok = Token {
                    kind: TokenKind::Comment(&self.src[start..end]),
                    start,
                    end,
                };
                return Ok(());
            }
        }
        self.tok =
            syntax::next_token(self.src, self.tok.end, false).map_err(|e| self.reader.syntax_error(self.file, e))?;
        Ok(())
    }

    /// The current comment line without `# `; `None` at the closing `##`.
    fn line(&mut self) -> Result<Option<&'s str>, Diagnostic> {
        let TokenKind::Comment(val) = self.tok.kind else {
            return Err(self.parse_error("documentation comment must end with '##'"));
        };
        if val.starts_with("##") {
            if val != "##" {
                return Err(self.parse_error("junk after '##' at end of documentation comment"));
            }
            return Ok(None);
        }
        if val == "#" {
            self.literal_line("");
            return Ok(Some(""));
        }
        if !val[1..].starts_with(' ') {
            return Err(self.parse_error("missing space after #"));
        }
        let line = val[2..].trim_end_matches(|c: char| syntax::is_py_space(c));
        let in_literal = self.literal_line(line);
        if self.reader.opts.strict && !in_literal {
            self.check_format(line)?;
        }
        Ok(Some(line))
    }

    fn next_line(&mut self) -> Result<Option<&'s str>, Diagnostic> {
        self.accept()?;
        self.line()
    }

    /// Updates literal-block state; true when `line` is literal text.
    fn literal_line(&mut self, line: &str) -> bool {
        let lit = &mut self.literal;
        if lit.active && !line.is_empty() {
            let indent = leading_space(line);
            match lit.indent {
                None if indent > 0 => lit.indent = Some(indent),
                Some(i) if indent >= i => {}
                _ => {
                    lit.active = false;
                    lit.indent = None;
                }
            }
        }
        let literal = lit.active && !line.is_empty();
        if line.trim_end().ends_with("::") {
            lit.active = true;
            lit.indent = None;
        }
        literal
    }

    /// QEMU 10.2's documentation style rules, enforced in strict mode.
    fn check_format(&self, line: &str) -> Result<(), Diagnostic> {
        // Bytes bound characters, so most lines need no count.
        if line.len() + 2 > 70 && line.chars().count() + 2 > 70 && !is_unbreakable(line) {
            return Err(self.parse_error("documentation line longer than 70 characters"));
        }
        if let Some(at) = single_space_sentence_break(line) {
            let offset = self.tok.start + 2 + at;
            return Err(self.reader.syntax_error(
                self.file,
                SyntaxError {
                    offset,
                    message:
                        "Use two spaces between sentences\nIf this not the end of a sentence, please report a bug."
                            .to_string(),
                },
            ));
        }
        Ok(())
    }

    fn read(&mut self) -> Result<Doc, Diagnostic> {
        let TokenKind::Comment(first) = self.tok.kind else {
            unreachable!("a doc block starts at ##")
        };
        if first != "##" {
            return Err(self.parse_error("junk after '##' at start of documentation comment"));
        }
        let location = self.here();
        let mut line = self.next_line()?;
        let doc = match line {
            Some(l) if l.starts_with('@') => {
                if !l.ends_with(':') {
                    return Err(self.parse_error("line should end with ':'"));
                }
                let symbol = &l[1..l.len() - 1];
                if symbol.is_empty() {
                    return Err(self.parse_error("name required after '@'"));
                }
                let mut doc = Doc::new(location, Some(symbol.to_string()));
                line = self.next_line()?;
                self.read_definition_doc(&mut doc, line)?;
                doc
            }
            _ => {
                let mut doc = Doc::new(location, None);
                doc.ensure_untagged_section(self.here());
                while let Some(l) = line {
                    if let Some((name, _)) = match_at_name_colon(l) {
                        let message = format!("'@{name}:' not allowed in free-form documentation");
                        if self.reader.opts.strict {
                            return Err(self.parse_error(message));
                        }
                        let warning = self.parse_error(message);
                        self.reader.warn_from(warning);
                    }
                    doc.append_line(l);
                    line = self.next_line()?;
                }
                doc
            }
        };
        Ok(doc)
    }

    fn read_definition_doc(&mut self, doc: &mut Doc, mut line: Option<&'s str>) -> Result<(), Diagnostic> {
        let mut have_tagged = false;
        loop {
            while line == Some("") {
                line = self.next_line()?;
            }
            let Some(l) = line.take() else { break };
            if l == "Features:" {
                if doc.has_features() {
                    return Err(self.parse_error("duplicated 'Features:' line"));
                }
                line = self.next_line()?;
                while line == Some("") {
                    line = self.next_line()?;
                }
                while let Some((name, text_at)) = line.and_then(match_at_name_colon) {
                    let l = line.unwrap();
                    doc.new_description(self.here(), name, SectionKind::Feature)
                        .map_err(|m| self.sem_here(m))?;
                    if text_at < l.len() {
                        doc.append_line(&l[text_at..]);
                    }
                    line = self.read_indented(doc)?;
                }
                if !doc.has_features() {
                    return Err(self.parse_error("feature descriptions expected"));
                }
                have_tagged = true;
            } else if let Some((name, _)) = match_at_name_colon(l) {
                if have_tagged {
                    let message = format!("description of '@{name}:' follows a section");
                    return Err(self.parse_error(message));
                }
                line = Some(l);
                while let Some((name, text_at)) = line.and_then(match_at_name_colon) {
                    let l = line.unwrap();
                    doc.new_description(self.here(), name, SectionKind::Member)
                        .map_err(|m| self.sem_here(m))?;
                    if text_at < l.len() {
                        doc.append_line(&l[text_at..]);
                    }
                    line = self.read_indented(doc)?;
                }
                have_tagged = true;
            } else if let Some((tag, text_at)) = match_tag(l) {
                let kind = match tag {
                    "Returns" => SectionKind::Returns,
                    "Errors" => SectionKind::Errors,
                    "Since" => SectionKind::Since,
                    "TODO" => SectionKind::Todo,
                    "Note" | "Notes" => SectionKind::LegacyNote,
                    _ => SectionKind::LegacyExample,
                };
                if matches!(kind, SectionKind::LegacyNote | SectionKind::LegacyExample) {
                    let message = if kind == SectionKind::LegacyNote {
                        format!("'{tag}:' sections are no longer supported; use an rST '.. note::' or '.. admonition::' directive")
                    } else {
                        format!("'{tag}:' sections are no longer supported; use a '.. qmp-example::' directive or a literal block")
                    };
                    if self.reader.opts.strict {
                        return Err(self.parse_error(message));
                    }
                    let warning = self.parse_error(message);
                    self.reader.warn_from(warning);
                }
                doc.new_tagged_section(self.here(), kind)
                    .map_err(|m| self.sem_here(m))?;
                if text_at < l.len() {
                    doc.append_line(&l[text_at..]);
                }
                line = self.read_indented(doc)?;
                have_tagged = true;
            } else if l.starts_with('=') {
                return Err(self.parse_error("unexpected '=' markup in definition documentation"));
            } else {
                doc.ensure_untagged_section(self.here());
                doc.append_line(l);
                line = self.read_paragraph(doc)?;
            }
        }
        Ok(())
    }

    /// The rest of a tagged section or description: blank lines, then
    /// lines indented at least as much as its first line.
    fn read_indented(&mut self, doc: &mut Doc) -> Result<Option<&'s str>, Diagnostic> {
        let mut line = self.next_line()?;
        while line == Some("") {
            doc.append_line("");
            line = self.next_line()?;
        }
        let Some(l) = line else { return Ok(None) };
        let indent = leading_space(l);
        if indent == 0 {
            return Ok(Some(l));
        }
        doc.append_line(l);
        // After the first continuation line, a de-indented line ends the
        // section instead of being an error (QEMU behaves the same).
        let mut past_first = false;
        loop {
            let Some(l) = self.next_line()? else { return Ok(None) };
            if match_at_name_colon(l).is_some() {
                return Ok(Some(l));
            }
            if !l.is_empty() && leading_space(l) < indent {
                if past_first {
                    return Ok(Some(l));
                }
                return Err(self.parse_error(format!("unexpected de-indent (expected at least {indent} spaces)")));
            }
            doc.append_line(l);
            past_first = true;
        }
    }

    fn read_paragraph(&mut self, doc: &mut Doc) -> Result<Option<&'s str>, Diagnostic> {
        loop {
            let line = self.next_line()?;
            match line {
                None | Some("") => return Ok(line),
                Some(l) => doc.append_line(l),
            }
        }
    }
}

/// Long lines are fine when they cannot be broken: a lone URL.
fn is_unbreakable(line: &str) -> bool {
    let t = line.trim();
    !t.contains(' ') && t.contains("://")
}

/// Offset (in bytes of `line`) of a single space between two sentences:
/// `.`, `!` or `?` after a word, one space, then a capital or digit.
/// Abbreviations such as `e.g.` and list numbers such as `1.` are not
/// sentence ends.
fn single_space_sentence_break(line: &str) -> Option<usize> {
    let b = line.as_bytes();
    let candidates = memchr::memchr3_iter(b'.', b'!', b'?', b);
    for i in candidates.filter(|&i| i >= 1 && i + 2 < b.len()) {
        if b[i + 1] != b' ' {
            continue;
        }
        let next = b[i + 2];
        if !(next.is_ascii_uppercase() || next.is_ascii_digit() || next == b'(') {
            continue;
        }
        let word_start = line[..i].rfind(' ').map_or(0, |s| s + 1);
        let word = &line[word_start..=i];
        let is_list_number =
            line[..word_start].trim().is_empty() && word[..word.len() - 1].bytes().all(|c| c.is_ascii_digit());
        let is_abbreviation = matches!(word, "e.g." | "i.e." | "etc." | "vs." | "cf.") || word.len() <= 2;
        if is_list_number || is_abbreviation {
            continue;
        }
        return Some(i + 1);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentence_breaks() {
        assert_eq!(
            single_space_sentence_break("Sentences should be separated by two spaces. But here"),
            Some(44)
        );
        assert_eq!(single_space_sentence_break("Two spaces.  Fine"), None);
        assert_eq!(single_space_sentence_break("1. First item"), None);
        assert_eq!(single_space_sentence_break("for example e.g. Linux"), None);
    }

    #[test]
    fn tags_and_names() {
        assert_eq!(match_tag("Returns: x"), Some(("Returns", 9)));
        assert_eq!(match_tag("Returns:: x"), None);
        assert_eq!(match_tag("Notes: x"), Some(("Notes", 7)));
        assert_eq!(match_at_name_colon("@a: text"), Some(("a", 4)));
        assert_eq!(match_at_name_colon("@a text"), None);
    }
}
