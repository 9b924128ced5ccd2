//! Diagnostics: QEMU-compatible text first, then a caret snippet.

use std::fmt::Write as _;

use annotate_snippets::{Level, Renderer, Snippet};

use crate::source::{Location, SourceMap, Span};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

/// The definition an error belongs to, printed by QEMU as
/// `FILE: In struct 'Foo':`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DefnContext {
    pub meta: String,
    pub name: String,
}

/// One problem found in a schema.
#[derive(Clone, Debug)]
pub struct Diagnostic {
    pub severity: Severity,
    /// The message; a second line (such as "Valid keys are ...") follows a
    /// newline, as in QEMU.
    pub message: String,
    /// QEMU's location: line of the token for syntax errors (with column),
    /// line of the definition's opening `{` for semantic errors.
    pub location: Option<Location>,
    pub defn: Option<Box<DefnContext>>,
    /// The exact text at fault, when known; used for the caret snippet.
    pub highlight: Option<Span>,
    /// Follow-up diagnostics printed after this one, such as a previous
    /// definition.
    pub notes: Vec<Diagnostic>,
}

impl Diagnostic {
    pub fn error(message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Error,
            message: message.into(),
            location: None,
            defn: None,
            highlight: None,
            notes: Vec::new(),
        }
    }

    pub fn warning(message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(message)
        }
    }

    /// The same diagnostic as a warning (an error accepted outside
    /// strict mode).
    pub fn into_warning(mut self) -> Diagnostic {
        self.severity = Severity::Warning;
        self
    }

    pub fn at(mut self, location: Location) -> Diagnostic {
        self.location = Some(location);
        self
    }

    pub fn in_defn(mut self, defn: Option<DefnContext>) -> Diagnostic {
        self.defn = defn.map(Box::new);
        self
    }

    pub fn highlight(mut self, span: Span) -> Diagnostic {
        self.highlight = Some(span);
        self
    }

    pub fn note(mut self, note: Diagnostic) -> Diagnostic {
        self.notes.push(note);
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// The diagnostic as QEMU's generator words it: include chain, the
    /// definition context, then `FILE:LINE[:COL]: message`. Warnings carry
    /// a `warning: ` prefix on the message.
    pub fn qemu_text(&self, sources: &SourceMap) -> String {
        let mut out = String::new();
        self.write_qemu_text(sources, &mut out);
        out
    }

    fn write_qemu_text(&self, sources: &SourceMap, out: &mut String) {
        let prefix = match self.severity {
            Severity::Error => "",
            Severity::Warning => "warning: ",
        };
        match self.location {
            None => {
                let _ = write!(out, "{prefix}{}", self.message);
            }
            Some(loc) => {
                let file = sources.get(loc.file);
                let mut chain = Vec::new();
                let mut site = file.included_from;
                while let Some(s) = site {
                    chain.push(s);
                    site = sources.get(s.file).included_from;
                }
                for s in chain.iter().rev() {
                    let _ = writeln!(out, "In file included from {}:{}:", sources.get(s.file).name, s.line);
                }
                if let Some(defn) = &self.defn {
                    let _ = writeln!(out, "{}: In {} '{}':", file.name, defn.meta, defn.name);
                }
                let _ = write!(out, "{}:{}", file.name, loc.line);
                if let Some(col) = loc.col {
                    let _ = write!(out, ":{col}");
                }
                let _ = write!(out, ": {prefix}{}", self.message);
            }
        }
        for note in &self.notes {
            out.push('\n');
            note.write_qemu_text(sources, out);
        }
    }

    /// The QEMU text followed by a rustc-style snippet of the source.
    pub fn render(&self, sources: &SourceMap) -> String {
        let mut out = self.qemu_text(sources);
        out.push('\n');
        if let Some(snippet) = self.render_snippet(sources) {
            out.push_str(&snippet);
            out.push('\n');
        }
        out
    }

    fn snippet_span(&self, sources: &SourceMap) -> Option<Span> {
        if let Some(span) = self.highlight {
            return Some(span);
        }
        // No exact span: point at the location's column, or its line.
        let loc = self.location?;
        let file = sources.get(loc.file);
        let start = file.line_start(loc.line);
        let line = file.line_text(loc.line);
        let (from, to) = match loc.col {
            Some(col) => {
                let offset = offset_of_col(line, col);
                let len = line[offset..].chars().next().map_or(0, char::len_utf8);
                (start + offset, start + offset + len)
            }
            None => {
                let indent = line.len() - line.trim_start().len();
                (start + indent, start + line.trim_end().len())
            }
        };
        Some(Span::new(loc.file, from..to))
    }

    fn render_snippet(&self, sources: &SourceMap) -> Option<String> {
        let span = self.snippet_span(sources)?;
        let file = sources.get(span.file);
        // Show the lines the span touches, at most a few of them.
        let first_line = file.line_of(span.start as usize);
        let mut last_line = file.line_of((span.end as usize).max(span.start as usize + 1) - 1);
        last_line = last_line.clamp(first_line, first_line + 5);
        let window_start = file.line_start(first_line);
        let window_end = file.line_start(last_line) + file.line_text(last_line).len();
        // The snippet renderer mishandles control characters (a carriage
        // return can make it panic), so show each byte of one as `?`, and
        // a tab as a space; spans stay valid.
        let mut text = String::with_capacity(window_end - window_start);
        for c in file.text[window_start..window_end].chars() {
            if c == '\t' {
                // Its margin arithmetic mixes tab widths (found by fuzzing).
                text.push(' ');
            } else if c.is_control() && c != '\n' {
                text.extend(std::iter::repeat_n('?', c.len_utf8()));
            } else {
                text.push(c);
            }
        }
        // Its margin arithmetic also underflows when the caret sits inside
        // long leading whitespace (only possible at end of file); the
        // QEMU-style line says enough there.
        let first = text.lines().next().unwrap_or("");
        let indent = first.len() - first.trim_start().len();
        if span.start as usize - window_start < indent && indent > 16 {
            return None;
        }
        let text = text.as_str();
        let from = span.start as usize - window_start;
        let to = (span.end as usize).clamp(span.start as usize, window_end) - window_start;
        let level = match self.severity {
            Severity::Error => Level::Error,
            Severity::Warning => Level::Warning,
        };
        // The message is already on the QEMU-style line above; the
        // snippet repeats only its first line, under the caret.
        let first_message_line = self.message.lines().next().unwrap_or("");
        let title = match (self.severity, &self.defn, self.location.and_then(|l| l.col)) {
            (Severity::Warning, ..) => "accepted outside strict mode".to_string(),
            (_, Some(d), _) => format!("in {} '{}'", d.meta, d.name),
            (_, None, Some(_)) => "syntax error".to_string(),
            (_, None, None) => "invalid schema".to_string(),
        };
        let message = level.title(&title).snippet(
            Snippet::source(text)
                .line_start(first_line as usize)
                .origin(&file.name)
                .fold(true)
                .annotation(Level::Error.span(from..to.max(from)).label(first_message_line)),
        );
        let rendered = Renderer::plain().render(message).to_string();
        Some(rendered)
    }
}

fn offset_of_col(line: &str, col: u32) -> usize {
    let mut c = 1u32;
    for (i, ch) in line.char_indices() {
        if c >= col {
            return i;
        }
        c = crate::source::next_col(c, ch);
    }
    line.len()
}

#[cfg(test)]
mod tests {
    use crate::{parse_str, Options};

    /// Found by fuzzing: carriage returns and NULs on an error line made the
    /// snippet renderer panic.
    #[test]
    fn render_survives_control_characters() {
        let line = format!("{}\u{1}\0\0f{}\u{85}x", "\r".repeat(70), "\0".repeat(90));
        let failure = parse_str(
            "c.json",
            &format!("{{ 'struct': 'A', 'data': {{}} }}\n{line}\n"),
            &Options::default(),
        )
        .unwrap_err();
        let text = failure.render();
        assert!(text.starts_with("c.json:2:"), "{text}");
        assert!(text.contains("stray '\\u{1}\\u{0}\\u{0}f"), "{text}");
    }

    /// Found by fuzzing: a long error line indented with tabs.
    #[test]
    fn render_survives_tab_indented_long_lines() {
        let line = format!("{}1 {}", "\t".repeat(6), "x".repeat(130));
        let failure = parse_str("t.json", &format!("{line}\n"), &Options::default()).unwrap_err();
        assert!(failure.render().starts_with("t.json:1:"));
    }
}
