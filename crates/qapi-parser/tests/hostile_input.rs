//! Hostile inputs: the parser must reject them with a clear message and a
//! correct location, and must never panic, overflow the stack or take
//! more than linear time.
//!
//! Nothing here asserts on time, but every input is large enough that a
//! quadratic algorithm would make the test run noticeably long, and the
//! nesting tests run on the default 2 MiB test thread stack (also in debug
//! builds, whose frames are much larger).
//!
//! The big inputs are 50 MB in release builds and 8 MB in debug builds,
//! where 50 MB takes minutes; set `QAPI_HOSTILE_BIG_MB` to choose. Run
//! them all with `cargo test -p qapi-parser --test hostile_input --release`.
//!
//! The `*_at_full_size` tests are ignored: with 100,000 to 200,000 members
//! in one definition they take minutes, because duplicate and clash checks
//! scan lists (quadratic). Run them with `-- --ignored`.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use qapi_parser::{parse_file, parse_str, Failure, Options, Schema};

const STRICT: Options = Options { strict: true };
const DEFAULT: Options = Options { strict: false };

/// Parses `text` expecting an error; the error is also rendered, both
/// ways, which must not panic either.
fn fail(name: &str, text: &str, opts: &Options) -> Failure {
    match parse_str(name, text, opts) {
        Ok(_) => panic!("{name}: expected an error, got a schema"),
        Err(f) => {
            let shown = f.to_string();
            assert!(shown.contains(&f.error.message), "{name}: {shown}");
            let _ = f.render();
            f
        }
    }
}

fn ok(name: &str, text: &str, opts: &Options) -> Schema {
    parse_str(name, text, opts).unwrap_or_else(|f| panic!("{name}: unexpected error:\n{}", f.render()))
}

/// `(line, column)` of the error; column is `None` for semantic errors.
fn line_col(f: &Failure) -> (u32, Option<u32>) {
    let loc = f
        .error
        .location
        .unwrap_or_else(|| panic!("error without location: {f}"));
    (loc.line, loc.col)
}

/// Asserts that the error message contains every one of `words`.
#[track_caller]
fn assert_message(f: &Failure, words: &[&str]) {
    for w in words {
        assert!(
            f.error.message.contains(w),
            "expected {w:?} in message: {}",
            f.error.message
        );
    }
}

/// A fresh directory under the system temp dir for one test.
fn temp_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("qapi-hostile-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn path_str(p: &Path) -> String {
    p.to_str().expect("temp dir path is UTF-8").to_string()
}

/// The nesting limit.
const M: usize = qapi_parser::syntax::MAX_NESTING;

fn too_deep() -> String {
    format!("nesting deeper than {M} levels")
}

// ------------------------------------------------------------------ nesting

#[test]
fn hundred_thousand_open_brackets() {
    let text = "[".repeat(100_000);
    for opts in [&STRICT, &DEFAULT] {
        let f = fail("brackets.json", &text, opts);
        assert_message(&f, &[&too_deep()]);
        // The first '[' past the limit is reported.
        assert_eq!(line_col(&f), (1, Some(M as u32 + 1)));
        assert_eq!(f.to_string(), format!("brackets.json:1:{}: {}", M + 1, too_deep()));
    }
}

#[test]
fn hundred_thousand_nested_objects() {
    let text = "{'a':".repeat(100_000);
    for opts in [&STRICT, &DEFAULT] {
        let f = fail("objects.json", &text, opts);
        assert_message(&f, &[&too_deep()]);
        assert_eq!(line_col(&f), (1, Some(M as u32 * 5 + 1)));
    }
}

#[test]
fn hundred_thousand_nested_objects_closed() {
    // Well-formed, just too deep: the closing braces must not confuse the
    // depth check.
    let text = format!("{}'x'{}", "{'a':".repeat(100_000), "}".repeat(100_000));
    let f = fail("closed.json", &text, &DEFAULT);
    assert_message(&f, &[&too_deep()]);
    assert_eq!(line_col(&f), (1, Some(M as u32 * 5 + 1)));
}

#[test]
fn deep_nesting_inside_valid_definition() {
    let prefix =
        "##\n# @Deep:\n#\n# Deep.\n#\n# @a: member\n#\n# Since: 1.0\n##\n{ 'struct': 'Deep',\n  'data': { 'a': ";
    let n = 100_000;
    let text = format!("{prefix}{}'str'{} }} }}\n", "[".repeat(n), "]".repeat(n));
    for opts in [&STRICT, &DEFAULT] {
        let f = fail("deep.json", &text, opts);
        assert_message(&f, &[&too_deep()]);
        // The definition's '{' and the 'data' object take two levels, so
        // the (limit - 1)th '[' is the first too deep.
        let last_line = prefix.lines().last().unwrap();
        assert_eq!(line_col(&f), (11, Some(last_line.len() as u32 + M as u32 - 1)));
    }
}

#[test]
fn nesting_at_the_limit_is_parsed_then_rejected() {
    // 2 + (limit - 2) levels: the deepest nesting the grammar accepts. This
    // drives the recursive grammar and value builder to their deepest,
    // which must fit a 2 MiB stack in debug builds too.
    let deepest = |n: usize| {
        format!(
            "{{ 'struct': 'Deep',\n  'data': {{ 'a': {}'str'{} }} }}\n",
            "[".repeat(n),
            "]".repeat(n)
        )
    };
    for opts in [&STRICT, &DEFAULT] {
        let f = fail("limit.json", &deepest(M - 2), opts);
        assert!(!f.error.message.contains("nesting"), "{f}");
        // A semantic error: the line of the definition, no column.
        assert_eq!(line_col(&f), (1, None));
        let f = fail("limit.json", &deepest(M - 1), opts);
        assert_message(&f, &[&too_deep()]);
        assert_eq!(line_col(&f), (2, Some("  'data': { 'a': ".len() as u32 + M as u32 - 1)));
    }
}

#[test]
fn deep_but_valid_if_condition() {
    // 'not' nested (limit - 1) times inside the definition's object: the
    // limit exactly, a valid schema that the checker walks recursively.
    let n = M - 1;
    let cond = format!("{}'CONFIG_X'{}", "{ 'not': ".repeat(n), " }".repeat(n));
    let text = format!("{{ 'struct': 'Cond', 'data': {{ 'a': 'str' }},\n  'if': {cond} }}\n");
    let schema = ok("if.json", &text, &DEFAULT);
    assert!(schema.lookup("Cond").is_some());
    let _ = qapi_parser::dump::dump(&schema);
    // One level deeper is too deep.
    let text = format!("{{ 'struct': 'Cond', 'data': {{ 'a': 'str' }},\n  'if': {{ 'not': {cond} }} }}\n");
    let f = fail("if.json", &text, &DEFAULT);
    assert_message(&f, &[&too_deep()]);
    assert_eq!(f.error.location.unwrap().line, 2);
}

#[test]
fn deep_nesting_after_a_non_object_expression() {
    // A string expression followed by deep nesting: either error is
    // acceptable, but it must be an error, promptly.
    let text = format!("'x'\n{}", "[".repeat(100_000));
    let f = fail("after.json", &text, &DEFAULT);
    assert!(
        f.error.message.contains("must be an object") || f.error.message.contains("nesting"),
        "{f}"
    );
}

// ------------------------------------------------------------- big inputs

/// Size of the big inputs, in bytes.
fn big_size() -> usize {
    let default_mb = if cfg!(debug_assertions) { 8 } else { 50 };
    let mb = std::env::var("QAPI_HOSTILE_BIG_MB")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(default_mb);
    mb << 20
}

/// A valid schema of about 50 MB made of many small definitions, and the
/// number of lines it has; built once for all tests.
fn big_schema() -> &'static (String, usize) {
    static BIG: OnceLock<(String, usize)> = OnceLock::new();
    BIG.get_or_init(|| {
        let size = big_size();
        let mut s = String::with_capacity(size + 4096);
        s.push_str("# A big generated schema\n\n");
        let mut lines = 2;
        let mut i = 0usize;
        while s.len() < size {
            use std::fmt::Write as _;
            let _ = write!(
                s,
                "{{ 'enum': 'Kind{i}', 'data': [ 'one', 'two', 'three' ] }}\n\
                 {{ 'struct': 'Thing{i}',\n  'data': {{ 'name': 'str', '*size': 'int', 'kind': 'Kind{i}' }} }}\n\
                 {{ 'command': 'get-thing-{i}', 'data': {{ 'name': 'str' }}, 'returns': 'Thing{i}' }}\n\n"
            );
            lines += 5;
            i += 1;
        }
        (s, lines)
    })
}

#[test]
fn big_valid_schema_of_many_small_definitions() {
    let (text, _) = big_schema();
    assert!(text.len() >= big_size());
    // Old guest-agent schemas have free-form comments only; default mode.
    let schema = ok("big.json", text, &DEFAULT);
    assert!(schema.lookup("Thing0").is_some());
    assert!(schema.lookup("get-thing-0").is_some());
}

#[test]
fn big_schema_with_syntax_error_at_the_very_end() {
    let (text, lines) = big_schema();
    let tail = "{ 'struct': 'Oops',\n  'data': { 'name': 'str' ] }\n";
    let text = format!("{text}{tail}");
    for opts in [&STRICT, &DEFAULT] {
        let f = fail("big-syntax.json", &text, opts);
        assert_message(&f, &["expected ',' or '}'"]);
        let col = "  'data': { 'name': 'str' ".len() as u32 + 1;
        assert_eq!(line_col(&f), (*lines as u32 + 2, Some(col)));
    }
}

#[test]
fn big_schema_with_semantic_error_at_the_very_end() {
    let (text, lines) = big_schema();
    let text = format!("{text}{{ 'struct': 'Oops', 'data': {{ 'name': 'NoSuchType' }} }}\n");
    let f = fail("big-semantic.json", &text, &DEFAULT);
    assert_message(&f, &["uses unknown type 'NoSuchType'"]);
    assert_eq!(line_col(&f), (*lines as u32 + 1, None));
    assert!(f.to_string().contains("In struct 'Oops'"), "{f}");
}

/// One string of 50 MB (release builds).
fn huge_word() -> &'static str {
    static WORD: OnceLock<String> = OnceLock::new();
    WORD.get_or_init(|| "x".repeat(big_size()))
}

#[test]
fn fifty_megabyte_string_as_type_name() {
    let text = format!("{{ 'struct': 'Big', 'data': {{ 'a': '{}' }} }}\n", huge_word());
    let f = fail("huge-string.json", &text, &DEFAULT);
    assert_message(&f, &["uses unknown type"]);
    assert_eq!(line_col(&f), (1, None));
}

#[test]
fn fifty_megabyte_string_unterminated() {
    let text = format!("{{ 'struct': 'Big', 'data': {{ 'a': '{}", huge_word());
    for opts in [&STRICT, &DEFAULT] {
        let f = fail("unterminated.json", &text, opts);
        assert_message(&f, &["missing terminating \"'\""]);
        // QEMU reports the opening quote.
        let col = "{ 'struct': 'Big', 'data': { 'a': ".len() as u32 + 1;
        assert_eq!(line_col(&f), (1, Some(col)));
    }
}

#[test]
fn syntax_error_after_fifty_megabyte_string() {
    // The column of an error at the end of a 50 MB line.
    let prefix = format!("{{ 'struct': 'Big', 'data': {{ 'a': '{}', ", huge_word());
    let text = format!("{prefix}'b' 'str' }} }}\n");
    let f = fail("long-line.json", &text, &DEFAULT);
    assert_message(&f, &["expected ':'"]);
    assert_eq!(line_col(&f), (1, Some(prefix.len() as u32 + 5)));
}

fn struct_with_many_members(n: usize) {
    // One definition of `n` members, then the same with a duplicate member
    // at the very end.
    let mut text = String::from("{ 'struct': 'Wide', 'data': {\n");
    for i in 0..n {
        text.push_str(&format!("  'member-{i}': 'int',\n"));
    }
    let good = format!("{text}  'last': 'str' }} }}\n");
    let schema = ok("wide.json", &good, &DEFAULT);
    assert!(schema.lookup("Wide").is_some());
    let bad = format!("{text}  'member-0': 'str' }} }}\n");
    let f = fail("wide.json", &bad, &DEFAULT);
    assert_message(&f, &["duplicate key 'member-0'"]);
    assert_eq!(line_col(&f), (n as u32 + 2, Some(15)));
    // A syntax error at the end makes the token scanner walk it all.
    let broken = format!("{text}  'last' 'str' }} }}\n");
    let f = fail("wide.json", &broken, &DEFAULT);
    assert_message(&f, &["expected ':'"]);
    assert_eq!(line_col(&f), (n as u32 + 2, Some(10)));
}

fn enum_with_many_values(n: usize) {
    let values: Vec<String> = (0..n).map(|i| format!("'value-{i}'")).collect();
    let text = format!("{{ 'enum': 'Many',\n  'data': [ {} ] }}\n", values.join(",\n  "));
    let schema = ok("many.json", &text, &DEFAULT);
    assert!(schema.lookup("Many").is_some());
    let text = format!(
        "{{ 'enum': 'Many',\n  'data': [ {}, 'value-7' ] }}\n",
        values.join(",\n  ")
    );
    let f = fail("many.json", &text, &DEFAULT);
    assert_message(&f, &["value-7", "collides"]);
    assert_eq!(line_col(&f), (1, None));
}

fn doc_block_with_many_member_descriptions(n: usize) {
    // `n` documented members, checked in strict mode.
    let mut doc = String::from("##\n# @Wide:\n#\n# Wide.\n#\n");
    let mut data = Vec::new();
    for i in 0..n {
        doc.push_str(&format!("# @m{i}: member {i}\n#\n"));
        data.push(format!("'m{i}': 'int'"));
    }
    doc.push_str("# Since: 1.0\n##\n");
    let text = format!(
        "{doc}{{ 'struct': 'Wide',\n  'data': {{ {} }} }}\n",
        data.join(",\n    ")
    );
    let schema = ok("wide-doc.json", &text, &STRICT);
    assert!(schema.lookup("Wide").is_some());
}

#[test]
fn wide_struct() {
    struct_with_many_members(20_000);
}

#[test]
fn wide_enum() {
    enum_with_many_values(20_000);
}

#[test]
fn wide_doc_block() {
    doc_block_with_many_member_descriptions(10_000);
}

#[test]
#[ignore = "slow in debug builds; run with --release -- --ignored (about 1 s each)"]
fn wide_struct_at_full_size() {
    struct_with_many_members(200_000);
}

#[test]
#[ignore = "slow in debug builds; run with --release -- --ignored (about 1 s each)"]
fn wide_enum_at_full_size() {
    enum_with_many_values(200_000);
}

#[test]
#[ignore = "slow in debug builds; run with --release -- --ignored (about 1 s each)"]
fn wide_doc_block_at_full_size() {
    doc_block_with_many_member_descriptions(100_000);
}

// ---------------------------------------------------------- binary garbage

/// Deterministic pseudo-random bytes (xorshift64).
fn garbage(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.max(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

#[test]
fn binary_garbage_is_rejected() {
    for seed in 1..=64u64 {
        let len = if seed == 1 {
            4 << 20
        } else {
            1 + (seed as usize * 997) % 4096
        };
        let text = String::from_utf8_lossy(&garbage(seed, len)).into_owned();
        for opts in [&STRICT, &DEFAULT] {
            let r = std::panic::catch_unwind(|| parse_str("garbage.json", &text, opts).map(|_| ()));
            let f = match r {
                Err(_) => panic!("panic on garbage seed {seed}, length {len}"),
                Ok(Ok(())) => panic!("garbage seed {seed} accepted"),
                Ok(Err(f)) => f,
            };
            assert!(!f.error.message.is_empty());
            let (line, _) = line_col(&f);
            assert!(line >= 1);
            assert!(f.to_string().starts_with("garbage.json:"), "{f}");
            let _ = f.render();
        }
    }
}

#[test]
fn nul_bytes_are_rejected() {
    let f = fail("nul.json", "\0\0\0\n", &DEFAULT);
    assert_message(&f, &["stray"]);
    assert_eq!(line_col(&f), (1, Some(1)));

    let text = "{ 'enum': 'E',\n  'data': [ 'a\0b' ] }\n";
    for opts in [&STRICT, &DEFAULT] {
        let f = fail("nul-string.json", text, opts);
        assert_message(&f, &["funny character in string"]);
        assert_eq!(line_col(&f), (2, Some(13)));
    }
    // A NUL between tokens.
    let f = fail("nul-between.json", "{ 'enum': 'E',\0 'data': [] }\n", &DEFAULT);
    assert_message(&f, &["stray"]);
    assert_eq!(line_col(&f), (1, Some(15)));
}

/// Random sequences of schema tokens, some broken: everything must end in
/// a schema or an error, never a panic.
#[test]
fn token_soup_never_panics() {
    const TOKENS: [&str; 32] = [
        "{",
        "}",
        "[",
        "]",
        ":",
        ",",
        "'",
        "#",
        "##",
        "\n",
        " ",
        "\t",
        "true",
        "false",
        "'a'",
        "'struct'",
        "'enum'",
        "'data'",
        "'base'",
        "'union'",
        "'command'",
        "'discriminator'",
        "'if'",
        "'not'",
        "\\",
        "\0",
        "é",
        "\u{2028}",
        "'*x'",
        "'str'",
        "# @a:",
        "'include'",
    ];
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    for case in 0..3000 {
        let mut text = String::new();
        let len = 1 + case % 200;
        for _ in 0..len {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            text.push_str(TOKENS[(state >> 32) as usize % TOKENS.len()]);
        }
        for opts in [&STRICT, &DEFAULT] {
            let r = std::panic::catch_unwind(|| match parse_str("/nonexistent/soup.json", &text, opts) {
                Ok(_) => {}
                Err(f) => {
                    let _ = f.render();
                }
            });
            assert!(
                r.is_ok(),
                "panic on token soup case {case} (strict: {}): {text:?}",
                opts.strict
            );
        }
    }
}

// --------------------------------------------------------------- files

#[test]
fn invalid_utf8_file() {
    let dir = temp_dir("utf8");
    let path = dir.join("bad-utf8.json");
    std::fs::write(&path, b"{ 'enum': 'E',\n  'data': [ '\xff\xfe' ] }\n").unwrap();
    let name = path_str(&path);
    for opts in [&STRICT, &DEFAULT] {
        let f = parse_file(&name, opts).expect_err("invalid UTF-8 accepted");
        let shown = f.to_string();
        assert!(shown.contains(&name), "{shown}");
        assert!(shown.contains("UTF-8"), "{shown}");
        assert!(shown.contains("line 2"), "{shown}");
        let _ = f.render();
    }

    // The same in an included file: reported at the include directive.
    let main = dir.join("main.json");
    std::fs::write(&main, "# main\n{ 'include': 'bad-utf8.json' }\n").unwrap();
    let f = parse_file(&path_str(&main), &DEFAULT).expect_err("invalid UTF-8 include accepted");
    let shown = f.to_string();
    assert!(shown.contains("bad-utf8.json"), "{shown}");
    assert!(shown.contains("UTF-8"), "{shown}");
    assert_eq!(line_col(&f), (2, None));
    let _ = f.render();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn include_cycle() {
    let dir = temp_dir("cycle");
    std::fs::write(dir.join("a.json"), "{ 'include': 'b.json' }\n").unwrap();
    std::fs::write(dir.join("b.json"), "# b\n{ 'include': 'a.json' }\n").unwrap();
    std::fs::write(dir.join("self.json"), "\n\n{ 'include': 'self.json' }\n").unwrap();
    let a = path_str(&dir.join("a.json"));
    for opts in [&STRICT, &DEFAULT] {
        let f = parse_file(&a, opts).expect_err("include cycle accepted");
        assert_message(&f, &["inclusion loop for a.json"]);
        assert_eq!(line_col(&f), (2, None));
        let shown = f.to_string();
        assert!(shown.contains(&format!("In file included from {a}:1:")), "{shown}");
        assert!(shown.contains("b.json:2: inclusion loop"), "{shown}");
        let _ = f.render();

        let f = parse_file(&path_str(&dir.join("self.json")), opts).expect_err("self include accepted");
        assert_message(&f, &["inclusion loop for self.json"]);
        assert_eq!(line_col(&f), (3, None));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn missing_include_file() {
    let dir = temp_dir("missing");
    let main = dir.join("main.json");
    std::fs::write(&main, "# main\n\n{ 'include': 'no-such-file.json' }\n").unwrap();
    let f = parse_file(&path_str(&main), &DEFAULT).expect_err("missing include accepted");
    let expected = path_str(&dir.join("no-such-file.json"));
    assert_eq!(
        f.to_string(),
        format!(
            "{}:3: can't read include file '{expected}': No such file or directory",
            path_str(&main)
        )
    );
    assert_eq!(line_col(&f), (3, None));

    // A directory is not a schema file.
    std::fs::write(&main, "{ 'include': '.' }\n").unwrap();
    let f = parse_file(&path_str(&main), &DEFAULT).expect_err("directory include accepted");
    assert_message(&f, &["can't read include file"]);
    let _ = f.render();

    // Nor is a missing root file.
    let f = parse_file(&path_str(&dir.join("absent.json")), &DEFAULT).expect_err("missing file accepted");
    assert!(f.io);
    assert_message(
        &f,
        &["can't read schema file", "absent.json", "No such file or directory"],
    );
    let _ = std::fs::remove_dir_all(&dir);
}

// ------------------------------------------------------- degenerate files

#[test]
fn empty_file_is_an_empty_schema() {
    // QEMU accepts an empty schema (its test `empty.json`).
    for opts in [&STRICT, &DEFAULT] {
        ok("empty.json", "", opts);
        ok("blank.json", "\n\n  \t\n", opts);
    }
}

#[test]
fn comments_only_file_is_an_empty_schema() {
    // Like QEMU's test `comments.json` minus its definition.
    let text = "# a comment\n#\n   # indented comment\n# -*- Mode: Python -*-\n";
    for opts in [&STRICT, &DEFAULT] {
        ok("comments.json", text, opts);
        // Without a final newline.
        ok("comments.json", "# no newline at end", opts);
    }
}

#[test]
fn doc_block_that_never_ends() {
    let text = "##\n# @Foo:\n#\n# Text\n";
    let f = fail("doc-eof.json", text, &STRICT);
    assert_message(&f, &["documentation comment must end with '##'"]);
    // At end of file: after the last line, as QEMU reports it.
    assert_eq!(line_col(&f), (4, Some(7)));
    // Outside strict mode the block is read leniently, but it documents
    // nothing that follows.
    let f = fail("doc-eof.json", text, &DEFAULT);
    assert_message(&f, &["Foo"]);
    assert_eq!(f.error.location.unwrap().line, 1);

    // A free-form block cut short, and one that is only its opening line.
    let f = fail("doc-eof.json", "##\n# Some text\n", &STRICT);
    assert_message(&f, &["documentation comment must end with '##'"]);
    assert_eq!(line_col(&f), (2, Some(12)));
    let f = fail("doc-eof.json", "##", &STRICT);
    assert_message(&f, &["documentation comment must end with '##'"]);
    assert_eq!(line_col(&f), (1, Some(3)));

    // A huge block that never ends.
    let mut text = String::from("##\n# @Foo:\n#\n");
    for i in 0..200_000 {
        text.push_str(&format!("# line {i}\n"));
    }
    let f = fail("doc-eof-big.json", &text, &STRICT);
    assert_message(&f, &["documentation comment must end with '##'"]);
    assert_eq!(line_col(&f).0, 200_003);
}
