//! Rust names for schema names: one place decides them all.

use std::collections::HashSet;

use heck::{ToSnakeCase, ToUpperCamelCase};
use proc_macro2::{Ident, Span};

/// Words that cannot be raw identifiers.
const NOT_RAW: [&str; 5] = ["self", "Self", "super", "crate", "_"];

const KEYWORDS: [&str; 51] = [
    "as", "break", "const", "continue", "crate", "else", "enum", "extern", "false", "fn", "for", "if", "impl", "in",
    "let", "loop", "match", "mod", "move", "mut", "pub", "ref", "return", "self", "Self", "static", "struct", "super",
    "trait", "true", "type", "unsafe", "use", "where", "while", "async", "await", "dyn", "abstract", "become", "box",
    "do", "final", "macro", "override", "priv", "typeof", "unsized", "virtual", "yield", "try",
];

/// An identifier for `name`: raw for keywords, `_` appended where raw is
/// impossible, `_` prepended before a leading digit.
pub fn ident(name: &str) -> Ident {
    let mut name = name.to_string();
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        name.insert(0, '_');
    }
    if NOT_RAW.contains(&name.as_str()) {
        name.push('_');
        return Ident::new(&name, Span::call_site());
    }
    if KEYWORDS.contains(&name.as_str()) {
        return Ident::new_raw(&name, Span::call_site());
    }
    Ident::new(&name, Span::call_site())
}

/// `guest-get-fsinfo` → `guest_get_fsinfo`.
pub fn snake(name: &str) -> String {
    let s = name.replace(['-', '.'], "_").to_snake_case();
    if s.is_empty() {
        "_".to_string()
    } else {
        s
    }
}

/// `GuestPCIAddress` → `GuestPciAddress`, `file-backed-virtual` →
/// `FileBackedVirtual`. A leading digit gets a `V` in front.
pub fn camel(name: &str) -> String {
    let s = name.replace(['.'], "_").to_upper_camel_case();
    if s.is_empty() || s.starts_with(|c: char| c.is_ascii_digit()) {
        format!("V{s}")
    } else {
        s
    }
}

/// `GuestPciAddress` → `GUEST_PCI_ADDRESS`.
pub fn screaming(name: &str) -> String {
    snake(name).to_uppercase()
}

/// Hands out names that are unique within one scope.
#[derive(Default)]
pub struct Scope {
    used: HashSet<String>,
}

impl Scope {
    pub fn with_reserved(reserved: &[&str]) -> Scope {
        Scope {
            used: reserved.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// `wanted`, or `wanted` with a number appended if already taken.
    pub fn claim(&mut self, wanted: String) -> String {
        if self.used.insert(wanted.clone()) {
            return wanted;
        }
        (2..)
            .map(|n| format!("{wanted}{n}"))
            .find(|c| self.used.insert(c.clone()))
            .expect("some suffix is free")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(snake("guest-get-fsinfo"), "guest_get_fsinfo");
        assert_eq!(snake("supported_commands"), "supported_commands");
        assert_eq!(camel("GuestPCIAddress"), "GuestPciAddress");
        assert_eq!(camel("file-backed-virtual"), "FileBackedVirtual");
        assert_eq!(camel("1"), "V1");
        assert_eq!(ident("type").to_string(), "r#type");
        assert_eq!(ident("self").to_string(), "self_");
        assert_eq!(ident("9lives").to_string(), "_9lives");
        let mut s = Scope::with_reserved(&["new"]);
        assert_eq!(s.claim("new".into()), "new2");
        assert_eq!(s.claim("a".into()), "a");
        assert_eq!(s.claim("a".into()), "a2");
    }
}
