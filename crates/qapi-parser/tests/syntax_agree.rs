//! The hand-written fast path of the syntax layer and the pest grammar
//! that defines the syntax must agree on every input: same accept or
//! reject, same tree, spans, end and leniencies. Checked here on real
//! schemas (QEMU's test suite and every released guest-agent schema, when
//! the conformance data is present; our schema; the fuzz seeds), and by
//! the `syntax_agree` fuzz target on arbitrary input.

use std::path::{Path, PathBuf};

use qapi_parser::source::FileId;
use qapi_parser::syntax::{
    doc_block_lines_fast, doc_block_lines_grammar, parse_expression_fast, parse_expression_grammar, skip_trivia,
};

fn conformance_dir() -> Option<PathBuf> {
    let dir = match std::env::var_os("QAPI_CONFORMANCE_DIR") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/qapi-conformance"),
    };
    if dir.join("cases.tsv").is_file() {
        return Some(dir);
    }
    let message = format!(
        "*** QAPI conformance data not found at {}; only our own files compared ***",
        dir.display()
    );
    if std::env::var_os("QAPI_CONFORMANCE_REQUIRED").is_some() {
        panic!("{message}");
    }
    eprintln!("{message}");
    None
}

fn json_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            json_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "json") {
            out.push(path);
        }
    }
}

fn read(path: &Path) -> String {
    let mut text = String::from_utf8_lossy(&std::fs::read(path).unwrap()).into_owned();
    if !text.ends_with('\n') {
        text.push('\n');
    }
    text
}

/// Compares both implementations at `start`; the end of the expression
/// or documentation block they accepted, if they did.
fn agree_at(name: &str, text: &str, start: usize) -> Option<usize> {
    if text[start..].starts_with("##") {
        let fast = doc_block_lines_fast(text, start);
        let grammar = doc_block_lines_grammar(text, start);
        assert_eq!(
            fast, grammar,
            "{name} at byte {start}: documentation block lines differ"
        );
        return fast.map(|lines| lines.last().unwrap().1);
    }
    let mut end = None;
    for lenient in [false, true] {
        let fast = parse_expression_fast(text, FileId(0), start, lenient);
        let grammar = parse_expression_grammar(text, FileId(0), start, lenient);
        match (&fast, &grammar) {
            (Some(f), Ok(g)) => {
                assert_eq!(f, g, "{name} at byte {start} (lenient={lenient}): trees differ");
                end = Some(f.end);
            }
            (None, Err(_)) => {}
            _ => panic!(
                "{name} at byte {start} (lenient={lenient}): fast path {} but grammar {:?}",
                if fast.is_some() { "accepts" } else { "declines" },
                grammar.as_ref().map(|p| p.end)
            ),
        }
    }
    end
}

/// Walks the top level of a file as the reader does, comparing each
/// expression and documentation block, until the first rejection.
fn agree_top_level(name: &str, text: &str) -> usize {
    let mut compared = 0;
    let mut pos = skip_trivia(text, 0);
    while pos + 1 < text.len() {
        compared += 1;
        let Some(end) = agree_at(name, text, pos) else { break };
        pos = skip_trivia(text, end);
    }
    compared
}

/// Every token start of a file, not just the top level: this reaches
/// malformed and partial expressions too.
fn agree_everywhere(name: &str, text: &str) -> usize {
    let mut compared = 0;
    for start in (0..text.len()).filter(|&i| text.is_char_boundary(i)) {
        if skip_trivia(text, start) == start && start + 1 < text.len() {
            agree_at(name, text, start);
            compared += 1;
        }
    }
    compared
}

fn own_files() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut files = Vec::new();
    json_files(&root.join("schema"), &mut files);
    json_files(&root.join("fuzz/seeds"), &mut files);
    if let Ok(entries) = std::fs::read_dir(root.join("fuzz/regressions")) {
        files.extend(entries.map(|e| e.unwrap().path()));
    }
    files.sort();
    files
}

#[test]
fn fast_path_agrees_with_grammar_on_our_files() {
    let files = own_files();
    assert!(
        files.len() >= 10,
        "expected our schema and the fuzz seeds, found {files:?}"
    );
    let mut compared = 0;
    for path in &files {
        let text = read(path);
        let name = path.display().to_string();
        compared += agree_top_level(&name, &text);
        if text.len() < 20_000 {
            compared += agree_everywhere(&name, &text);
        }
    }
    assert!(compared > 1000, "only {compared} comparisons");
}

#[test]
fn fast_path_agrees_with_grammar_on_qemu_schemas() {
    let Some(dir) = conformance_dir() else { return };
    let mut cases = Vec::new();
    json_files(&dir.join("qemu-tests-qapi-schema"), &mut cases);
    let mut history = Vec::new();
    json_files(&dir.join("qga-history"), &mut history);
    assert!(cases.len() >= 200 && history.len() >= 45, "conformance data incomplete");
    let mut compared = 0;
    for path in &cases {
        let text = read(path);
        compared += agree_everywhere(&path.display().to_string(), &text);
    }
    for path in &history {
        let text = read(path);
        compared += agree_top_level(&path.display().to_string(), &text);
    }
    assert!(compared > 10_000, "only {compared} comparisons");
}
