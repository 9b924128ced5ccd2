//! Differential check of the syntax layer, three ways:
//! - the hand-written fast path (`parse_expression_fast`,
//!   `doc_block_lines_fast`) and the pest grammar that defines the syntax
//!   (`parse_expression_grammar`, `doc_block_lines_grammar`) accept the
//!   same input with the same tree, spans, end and leniencies;
//! - the parser as used (`parse_expression`: fast path, grammar when it
//!   declines) and the scanner that mirrors QEMU's parser (`diagnose`)
//!   accept and reject the same expressions, and report the same first
//!   error (offset and message).
#![no_main]

use libfuzzer_sys::fuzz_target;
use qapi_parser::source::FileId;
use qapi_parser::syntax::{
    diagnose, doc_block_lines_fast, doc_block_lines_grammar, next_token, parse_expression, parse_expression_fast,
    parse_expression_grammar, skip_trivia,
};

fuzz_target!(|data: &[u8]| {
    let mut text = String::from_utf8_lossy(data).into_owned();
    if !text.ends_with('\n') {
        text.push('\n');
    }
    let start = skip_trivia(&text, 0);
    if start + 1 >= text.len() {
        return;
    }
    if text[start..].starts_with("##") {
        assert_eq!(
            doc_block_lines_fast(&text, start),
            doc_block_lines_grammar(&text, start),
            "documentation block lines differ"
        );
        return;
    }
    for lenient in [false, true] {
        let fast = parse_expression_fast(&text, FileId(0), start, lenient);
        let reference = parse_expression_grammar(&text, FileId(0), start, lenient);
        match (&fast, &reference) {
            (Some(f), Ok(g)) => assert_eq!(f, g, "fast path and grammar trees differ (lenient={lenient})"),
            (None, Err(_)) => {}
            _ => panic!(
                "fast path {fast:?} vs grammar {reference:?} (lenient={lenient})",
                fast = fast.as_ref().map(|p| p.end),
                reference = reference.as_ref().map(|p| p.end)
            ),
        }
        let grammar = parse_expression(&text, FileId(0), start, lenient);
        let scanner = diagnose(&text, start, lenient);
        match (&grammar, &scanner) {
            (Ok(parsed), Ok(next)) => {
                // Both stop at the same place: the scanner returns the start
                // of the token after the expression, which is where the
                // reader continues (`skip_trivia` from the expression's end).
                assert_eq!(
                    skip_trivia(&text, parsed.end),
                    *next,
                    "end of expression differs (lenient={lenient}): grammar end {}, scanner next {next}",
                    parsed.end
                );
            }
            (Err(g), Err(s)) => assert_eq!(
                (g.offset, &g.message),
                (s.offset, &s.message),
                "errors differ (lenient={lenient})"
            ),
            (Ok(parsed), Err(s)) => {
                // By contract the scanner also lexes the token after the
                // expression (as QEMU does); the reader checks that token
                // separately with `next_token`. An error there is not a
                // disagreement, as long as it is that token's error.
                let next = skip_trivia(&text, parsed.end);
                let after = next_token(&text, next, true);
                assert!(
                    s.offset >= parsed.end && after.as_ref().err() == Some(s),
                    "grammar accepts (end {}), scanner rejects: {s:?} (lenient={lenient}); next token: {after:?}",
                    parsed.end
                );
            }
            (Err(g), Ok(next)) => {
                panic!("grammar rejects: {g:?}, scanner accepts (next token at {next}) (lenient={lenient})")
            }
        }
    }
});
