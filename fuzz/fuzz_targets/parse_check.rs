//! Arbitrary bytes as schema text through the whole pipeline (syntax,
//! directives, documentation, expression checks, schema model), in strict
//! and lenient mode. Nothing may panic, hang or blow up, including
//! rendering the diagnostics and dumping an accepted schema.
#![no_main]

use std::sync::Once;

use libfuzzer_sys::fuzz_target;
use qapi_parser::{dump, parse_str, Options};

static HERMETIC: Once = Once::new();

/// `include` directives are resolved against the current directory (the
/// root is named `fuzz.json`). Run from a fresh empty directory so that a
/// relative include just fails with "can't read include file".
fn enter_empty_dir() {
    HERMETIC.call_once(|| {
        // One directory for all fuzzer processes (fork mode starts many);
        // it stays empty, so sharing it is harmless.
        let dir = std::env::temp_dir().join("qapi-parser-fuzz-empty");
        std::fs::create_dir_all(&dir).expect("create empty directory for the fuzzer");
        assert!(
            std::fs::read_dir(&dir).expect("read empty directory").next().is_none(),
            "{} is not empty",
            dir.display()
        );
        std::env::set_current_dir(&dir).expect("enter empty directory");
    });
}

/// An include that could leave the empty directory: an absolute path or
/// one with `..`. Such inputs are skipped rather than risk reading
/// `/dev/zero`, `/dev/stdin` or the corpus. (Strings have no escapes but
/// `\\`, so the key `include` and a leading `/` always appear literally.)
fn may_escape(text: &str) -> bool {
    text.contains("include") && (text.contains("'/") || text.contains(".."))
}

fn check(text: &str, opts: &Options) {
    match parse_str("fuzz.json", text, opts) {
        Ok(schema) => {
            let _ = dump::dump(&schema);
            for w in &schema.warnings {
                let _ = w.render(&schema.sources);
            }
        }
        Err(failure) => {
            let _ = failure.render();
            let _ = failure.to_string();
        }
    }
}

fuzz_target!(|data: &[u8]| {
    enter_empty_dir();
    let text = String::from_utf8_lossy(data);
    if may_escape(&text) {
        return;
    }
    check(&text, &Options { strict: true });
    check(&text, &Options::default());
});
