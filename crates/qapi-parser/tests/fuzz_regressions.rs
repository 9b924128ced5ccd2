//! Inputs the fuzzers once broke on (`fuzz/regressions/`), replayed on
//! every test run: no panic in parsing, checking or rendering, and the
//! fast path, the grammar and the QEMU-mirroring scanner agree.

use std::path::Path;

use qapi_parser::source::FileId;
use qapi_parser::syntax::{diagnose, parse_expression, parse_expression_fast, parse_expression_grammar, skip_trivia};
use qapi_parser::{parse_str, Options};

fn regressions(prefix: &str) -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/regressions");
    let mut out: Vec<(String, String)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
        .map(|p| {
            let text = String::from_utf8_lossy(&std::fs::read(&p).unwrap()).into_owned();
            (p.display().to_string(), text)
        })
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no {prefix}* reproducers found");
    out
}

#[test]
fn parse_check_reproducers() {
    for (name, text) in regressions("parse_check-") {
        for strict in [false, true] {
            match parse_str("fuzz.json", &text, &Options { strict }) {
                Ok(schema) => {
                    let _ = qapi_parser::dump::dump(&schema);
                }
                Err(failure) => {
                    let rendered = failure.render();
                    assert!(rendered.starts_with("fuzz.json"), "{name}: {rendered}");
                }
            }
        }
    }
}

#[test]
fn syntax_agree_reproducers() {
    for (name, mut text) in regressions("syntax_agree-") {
        if !text.ends_with('\n') {
            text.push('\n');
        }
        let start = skip_trivia(&text, 0);
        for lenient in [false, true] {
            let fast = parse_expression_fast(&text, FileId(0), start, lenient);
            let reference = parse_expression_grammar(&text, FileId(0), start, lenient);
            assert_eq!(fast.as_ref(), reference.as_ref().ok(), "{name}: fast path vs grammar");
            let grammar = parse_expression(&text, FileId(0), start, lenient);
            let scanner = diagnose(&text, start, lenient);
            match (&grammar, &scanner) {
                (Ok(_), Ok(_)) => {}
                (Err(g), Err(s)) => assert_eq!(g, s, "{name}"),
                _ => panic!(
                    "{name}: grammar {grammar:?} vs scanner {scanner:?}",
                    grammar = grammar.as_ref().map(|p| p.end)
                ),
            }
        }
    }
}
