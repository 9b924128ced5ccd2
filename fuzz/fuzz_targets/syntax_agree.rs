//! Differential check of the syntax layer: the pest grammar
//! (`syntax::parse_expression`) and the hand-written scanner that mirrors
//! QEMU's parser (`syntax::diagnose`) must accept and reject the same
//! expressions, and report the same first error (offset and message).
#![no_main]

use libfuzzer_sys::fuzz_target;
use qapi_parser::source::FileId;
use qapi_parser::syntax::{diagnose, next_token, parse_expression, skip_trivia};

fuzz_target!(|data: &[u8]| {
    let mut text = String::from_utf8_lossy(data).into_owned();
    if !text.ends_with('\n') {
        text.push('\n');
    }
    let start = skip_trivia(&text, 0);
    if text[start..].starts_with("##") || start + 1 >= text.len() {
        return;
    }
    for lenient in [false, true] {
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
