//! Schema documentation turned into rustdoc: markdown-safe, with literal
//! blocks fenced as `text` so no schema example ever runs as a doctest.

use proc_macro2::{Delimiter, Group, Ident, Literal, Punct, Spacing, Span, TokenStream, TokenTree};
use qapi_parser::{Doc, SectionKind};

/// One `#[doc]` attribute per line, which prettyplease prints as `///`.
/// Built token by token: this runs for every doc line of the schema.
pub fn attrs(lines: &[String]) -> TokenStream {
    lines
        .iter()
        .flat_map(|line| doc_attr_tokens(Literal::string(&doc_text(line))))
        .collect()
}

/// `#[doc = index]`: stands for a block of doc lines until [`fill`]
/// puts them in. Parsing one small attribute per block instead of a
/// string attribute per line is a large part of the generator's time.
pub fn placeholder(index: usize) -> TokenStream {
    doc_attr_tokens(Literal::usize_unsuffixed(index)).into_iter().collect()
}

/// `#[doc = value]`.
fn doc_attr_tokens(value: Literal) -> [TokenTree; 2] {
    let inner: TokenStream = [
        TokenTree::Ident(Ident::new("doc", Span::call_site())),
        TokenTree::Punct(Punct::new('=', Spacing::Alone)),
        TokenTree::Literal(value),
    ]
    .into_iter()
    .collect();
    [
        TokenTree::Punct(Punct::new('#', Spacing::Alone)),
        TokenTree::Group(Group::new(Delimiter::Bracket, inner)),
    ]
}

/// The text of a doc attribute: a space after `///` unless blank.
fn doc_text(line: &str) -> String {
    if line.is_empty() {
        String::new()
    } else {
        format!(" {line}")
    }
}

/// Replaces every placeholder in `file` with its block's doc attributes,
/// built directly rather than parsed. Returns how many blocks were put
/// in (each block once). Placeholders sit only where the emitters put
/// docs: on items, fields, variants, and trait and impl members.
pub fn fill(file: &mut syn::File, blocks: &[Vec<String>]) -> usize {
    let mut filler = Filler {
        blocks,
        used: vec![false; blocks.len()],
        filled: 0,
    };
    filler.items(&mut file.items);
    filler.filled
}

struct Filler<'a> {
    blocks: &'a [Vec<String>],
    used: Vec<bool>,
    filled: usize,
}

impl Filler<'_> {
    fn items(&mut self, items: &mut [syn::Item]) {
        use syn::{ImplItem, Item, TraitItem};
        for item in items {
            match item {
                Item::Struct(s) => {
                    self.attrs(&mut s.attrs);
                    self.fields(&mut s.fields);
                }
                Item::Enum(e) => {
                    self.attrs(&mut e.attrs);
                    for v in &mut e.variants {
                        self.attrs(&mut v.attrs);
                        self.fields(&mut v.fields);
                    }
                }
                Item::Mod(m) => {
                    self.attrs(&mut m.attrs);
                    if let Some((_, items)) = &mut m.content {
                        self.items(items);
                    }
                }
                Item::Trait(t) => {
                    self.attrs(&mut t.attrs);
                    for member in &mut t.items {
                        match member {
                            TraitItem::Fn(f) => self.attrs(&mut f.attrs),
                            TraitItem::Const(c) => self.attrs(&mut c.attrs),
                            TraitItem::Type(t) => self.attrs(&mut t.attrs),
                            _ => {}
                        }
                    }
                }
                Item::Impl(i) => {
                    self.attrs(&mut i.attrs);
                    for member in &mut i.items {
                        match member {
                            ImplItem::Fn(f) => self.attrs(&mut f.attrs),
                            ImplItem::Const(c) => self.attrs(&mut c.attrs),
                            ImplItem::Type(t) => self.attrs(&mut t.attrs),
                            _ => {}
                        }
                    }
                }
                Item::Static(s) => self.attrs(&mut s.attrs),
                Item::Const(c) => self.attrs(&mut c.attrs),
                Item::Fn(f) => self.attrs(&mut f.attrs),
                Item::Type(t) => self.attrs(&mut t.attrs),
                _ => {}
            }
        }
    }

    fn fields(&mut self, fields: &mut syn::Fields) {
        for f in fields.iter_mut() {
            self.attrs(&mut f.attrs);
        }
    }

    fn attrs(&mut self, attrs: &mut Vec<syn::Attribute>) {
        if !attrs.iter().any(|a| placeholder_index(a).is_some()) {
            return;
        }
        let old = std::mem::take(attrs);
        for attr in old {
            let Some(index) = placeholder_index(&attr) else {
                attrs.push(attr);
                continue;
            };
            // One block can stand on several items (blocking and async
            // client methods).
            attrs.extend(self.blocks[index].iter().map(|line| doc_attr(line)));
            if !self.used[index] {
                self.used[index] = true;
                self.filled += 1;
            }
        }
    }
}

fn doc_attr(line: &str) -> syn::Attribute {
    syn::Attribute {
        pound_token: Default::default(),
        style: syn::AttrStyle::Outer,
        bracket_token: Default::default(),
        meta: syn::Meta::NameValue(syn::MetaNameValue {
            path: syn::Path::from(Ident::new("doc", Span::call_site())),
            eq_token: Default::default(),
            value: syn::Expr::Lit(syn::ExprLit {
                attrs: Vec::new(),
                lit: syn::Lit::Str(syn::LitStr::new(&doc_text(line), Span::call_site())),
            }),
        }),
    }
}

/// The block index of a placeholder attribute.
fn placeholder_index(attr: &syn::Attribute) -> Option<usize> {
    match &attr.meta {
        syn::Meta::NameValue(syn::MetaNameValue {
            path,
            value:
                syn::Expr::Lit(syn::ExprLit {
                    lit: syn::Lit::Int(index),
                    ..
                }),
            ..
        }) if path.is_ident("doc") => index.base10_parse().ok(),
        _ => None,
    }
}

fn leading_spaces(s: &str) -> usize {
    s.len() - s.trim_start().len()
}

/// Escapes markdown and rustdoc syntax in prose; `@name` becomes code.
fn escape(line: &str) -> String {
    let mut out = String::with_capacity(line.len() + 8);
    let mut words = line.split(' ').peekable();
    while let Some(word) = words.next() {
        if word.starts_with("http://") || word.starts_with("https://") {
            let end = word.trim_end_matches(['.', ',', ';', ')']);
            out.push('<');
            out.push_str(end);
            out.push('>');
            out.push_str(&word[end.len()..]);
        } else {
            let mut chars = word.char_indices().peekable();
            while let Some((i, c)) = chars.next() {
                match c {
                    '@' if word[i + 1..].starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') => {
                        let rest = &word[i + 1..];
                        let len = rest
                            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
                            .unwrap_or(rest.len());
                        out.push('`');
                        out.push_str(&rest[..len]);
                        out.push('`');
                        while chars.peek().is_some_and(|&(j, _)| j <= i + len) {
                            chars.next();
                        }
                    }
                    '[' => out.push_str("\\["),
                    ']' => out.push_str("\\]"),
                    '<' => out.push_str("&lt;"),
                    '>' => out.push_str("&gt;"),
                    '#' if i == 0 && out.is_empty() => out.push_str("\\#"),
                    _ => out.push(c),
                }
            }
        }
        if words.peek().is_some() {
            out.push(' ');
        }
    }
    out
}

/// The width of a list marker (`- `, `* `, `12. `) starting `line`.
fn list_marker(line: &str) -> Option<usize> {
    if line.starts_with("- ") || line.starts_with("* ") || line.starts_with("+ ") {
        return Some(2);
    }
    let digits = line.bytes().take_while(u8::is_ascii_digit).count();
    if digits > 0 && (line[digits..].starts_with(". ") || line[digits..].starts_with(") ")) {
        return Some(digits + 2);
    }
    None
}

/// Schema doc text (reStructuredText-ish) as markdown lines.
pub fn markdown(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut fence_indent: Option<usize> = None;
    let mut literal_pending = false;
    // Inside a list item: continuation lines are indented to its text.
    let mut list_indent: Option<usize> = None;
    for raw in text.lines() {
        let blank = raw.trim().is_empty();
        if let Some(indent) = fence_indent {
            if blank {
                out.push(String::new());
                continue;
            }
            if leading_spaces(raw) >= indent {
                out.push(raw[indent..].to_string());
                continue;
            }
            while out.last().is_some_and(|l| l.is_empty()) {
                out.pop();
            }
            out.push("```".to_string());
            out.push(String::new());
            fence_indent = None;
        }
        if literal_pending && !blank && leading_spaces(raw) > 0 {
            out.push("```text".to_string());
            out.push(raw[leading_spaces(raw)..].to_string());
            fence_indent = Some(leading_spaces(raw));
            literal_pending = false;
            continue;
        }
        if blank {
            out.push(String::new());
            list_indent = None;
            continue;
        }
        literal_pending = false;
        let line = raw.trim();
        let continuation = match list_marker(line) {
            Some(width) => {
                list_indent = Some(width);
                0
            }
            None => list_indent.unwrap_or(0),
        };
        if let Some(head) = line.strip_suffix("::") {
            literal_pending = true;
            if head.starts_with(".. ") {
                if head.contains("example") {
                    out.push("Example:".to_string());
                }
                continue;
            }
            if !head.trim().is_empty() {
                out.push(format!("{}:", escape(head.trim_end())));
            }
            continue;
        }
        if let Some(directive) = line.strip_prefix(".. ") {
            // `.. note:: text` and friends: keep the text.
            if let Some((_, rest)) = directive.split_once("::") {
                if !rest.trim().is_empty() {
                    out.push(escape(rest.trim()));
                }
                continue;
            }
        }
        out.push(format!("{:continuation$}{}", "", escape(line)));
    }
    if fence_indent.is_some() {
        while out.last().is_some_and(|l| l.is_empty()) {
            out.pop();
        }
        out.push("```".to_string());
    }
    while out.last().is_some_and(|l| l.is_empty()) {
        out.pop();
    }
    while out.first().is_some_and(|l| l.is_empty()) {
        out.remove(0);
    }
    out
}

/// Appends `lines` as a paragraph: after a blank line unless first.
pub fn push_paragraph(out: &mut Vec<String>, lines: Vec<String>) {
    if lines.is_empty() {
        return;
    }
    if !out.is_empty() {
        out.push(String::new());
    }
    out.extend(lines);
}

/// The documentation of a definition: its body, then its other sections.
pub fn item(doc: Option<&Doc>) -> Vec<String> {
    let Some(doc) = doc else { return Vec::new() };
    let mut out = markdown(&doc.body().text);
    for s in doc.other_sections() {
        let text = markdown(&s.text);
        match s.kind {
            SectionKind::Plain | SectionKind::LegacyNote | SectionKind::LegacyExample => push_paragraph(&mut out, text),
            SectionKind::Returns | SectionKind::Errors | SectionKind::Since => {
                let mut lines = text;
                if let Some(first) = lines.first_mut() {
                    *first = format!("{}: {first}", s.kind);
                }
                push_paragraph(&mut out, lines);
            }
            SectionKind::Todo | SectionKind::Member | SectionKind::Feature => {}
        }
    }
    out
}

/// The documentation of one member (or enum value, or branch).
pub fn member(doc: Option<&Doc>, name: &str) -> Vec<String> {
    doc.and_then(|d| d.arg(name))
        .map(|s| markdown(&s.text))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prose_is_escaped() {
        assert_eq!(
            markdown("See @guest-sync and [x] <y> https://qemu.org."),
            vec!["See `guest-sync` and \\[x\\] &lt;y&gt; <https://qemu.org>."]
        );
    }

    #[test]
    fn literal_blocks_are_fenced() {
        let text = "Example::\n\n    -> { \"execute\": \"guest-ping\" }\n    <- { \"return\": {} }\n\nAfter.";
        assert_eq!(
            markdown(text),
            vec![
                "Example:",
                "",
                "```text",
                "-> { \"execute\": \"guest-ping\" }",
                "<- { \"return\": {} }",
                "```",
                "",
                "After."
            ]
        );
    }

    #[test]
    fn list_items_keep_their_continuations() {
        assert_eq!(
            markdown("- first item\ncontinued\n- second\n\nAfter."),
            vec!["- first item", "  continued", "- second", "", "After."]
        );
    }

    #[test]
    fn indentation_never_makes_code_blocks() {
        assert_eq!(
            markdown("Text\n\n    indented prose"),
            vec!["Text", "", "indented prose"]
        );
    }
}
