//! A parser and checker for QEMU's QAPI schema language.
//!
//! The pipeline mirrors QEMU's own generator, so that a schema is
//! accepted or rejected exactly as QEMU would, with the same messages:
//!
//! 1. [`syntax`]: the pest grammar (`grammar.pest`) defines the syntax;
//!    a hand-written fast path that agrees with it parses well-formed
//!    expressions, the grammar takes the rest, and a token scanner
//!    pinpoints syntax errors the way QEMU words them.
//! 2. [`parser`]: files, `include` and `pragma` directives, documentation
//!    blocks ([`doc`]).
//! 3. [`expr`]: structural checks of each definition, which yield
//!    normalized definitions.
//! 4. [`schema`]: the checked model, with implicit types, resolved type
//!    references, clash checks and documentation cross-checks.
//!
//! ```
//! let schema = qapi_parser::parse_str(
//!     "example.json",
//!     "{ 'command': 'guest-ping' }",
//!     &qapi_parser::Options::default(),
//! ).unwrap();
//! assert!(schema.lookup("guest-ping").is_some());
//! ```

pub mod diag;
pub mod doc;
pub mod dump;
pub mod expr;
pub mod parser;
pub mod schema;
pub mod source;
pub mod syntax;

pub use diag::{Diagnostic, Severity};
pub use doc::{Doc, Section, SectionKind};
pub use expr::{CommandFlags, IfCond};
pub use schema::{Entity, EntityId, EntityKind, JsonType, Module, Schema};
pub use source::SourceMap;

/// Name lists up to this long are searched, longer ones hashed: most
/// objects and documentation blocks have a few members, and comparing a
/// few names costs less than hashing them.
const LINEAR_LOOKUP: usize = 16;

/// How strictly to check.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Follow QEMU 10.2's rules exactly, documentation style included.
    /// Otherwise forms of older guest-agent schemas are accepted with a
    /// warning, and documentation style is not checked.
    pub strict: bool,
}

/// Why a schema was not produced.
#[derive(Debug)]
pub struct Failure {
    /// The file could not be read, as opposed to being invalid.
    pub io: bool,
    pub error: Box<Diagnostic>,
    pub warnings: Vec<Diagnostic>,
    pub sources: SourceMap,
}

impl Failure {
    /// Warnings, then the error, each with its source snippet.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for w in &self.warnings {
            out.push_str(&w.render(&self.sources));
        }
        out.push_str(&self.error.render(&self.sources));
        out
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.error.qemu_text(&self.sources))
    }
}

impl std::error::Error for Failure {}

/// Parses and checks the schema in file `path`, following its includes.
/// `path` is used in messages as given.
pub fn parse_file(path: &str, opts: &Options) -> Result<Schema, Failure> {
    run(path, None, opts)
}

/// Parses and checks schema text held in memory; `name` stands for its
/// file name in messages, and includes are resolved relative to it.
pub fn parse_str(name: &str, text: &str, opts: &Options) -> Result<Schema, Failure> {
    run(name, Some(text.to_string()), opts)
}

fn run(name: &str, text: Option<String>, opts: &Options) -> Result<Schema, Failure> {
    let mut reader = parser::Reader::new(opts);
    let read = reader.read_root(name, text);
    let parser::ParsedSchema {
        sources,
        exprs,
        docs,
        pragma,
        mut warnings,
    } = reader.out;
    let fail = |io, error, warnings, sources| {
        Err(Failure {
            io,
            error: Box::new(error),
            warnings,
            sources,
        })
    };
    match read {
        Ok(()) => {}
        Err(parser::ReadError::Io(e)) => return fail(true, e, warnings, sources),
        Err(parser::ReadError::Invalid(e)) => return fail(false, e, warnings, sources),
    }
    let checked = {
        let mut checker = expr::ExprChecker::new(opts, &pragma, &docs, &mut warnings);
        checker.check_all(&exprs)
    };
    let checked = match checked {
        Ok(c) => c,
        Err(e) => return fail(false, e, warnings, sources),
    };
    let mut builder = schema::Builder::new(opts.strict, pragma, docs, warnings);
    let built = builder
        .define_predefined()
        .and_then(|()| builder.define(&checked))
        .and_then(|()| builder.check());
    match built {
        Ok(()) => Ok(builder.finish(sources)),
        Err(e) => fail(false, e, builder.into_warnings(), sources),
    }
}
