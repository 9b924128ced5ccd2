//! Insta snapshots of the generated code for our schema and for the
//! fixtures in `tests/fixtures/`, plus a freshness check of the copies in
//! `crates/codegen-fixtures` (which the workspace compiles). After a
//! generator change, `cargo xtask regen` updates all of them.

use std::path::{Path, PathBuf};

use qapi_parser::{parse_file, Options};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn fixtures() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root().join("crates/qapi-codegen/tests/fixtures"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    v.sort();
    v
}

fn generate(path: &Path) -> String {
    let schema =
        parse_file(path.to_str().unwrap(), &Options { strict: true }).unwrap_or_else(|f| panic!("{}", f.render()));
    qapi_codegen::generate(&schema, &path.file_name().unwrap().to_string_lossy())
}

#[test]
fn generated_code_for_our_schema() {
    insta::assert_snapshot!("qga", generate(&root().join("schema/qga.json")));
}

#[test]
fn generated_code_for_fixtures() {
    for fixture in fixtures() {
        let name = fixture.file_stem().unwrap().to_string_lossy().into_owned();
        insta::assert_snapshot!(name, generate(&fixture));
    }
}

/// Whether the file at `path` holds `fresh` (line endings aside).
fn is_fresh(path: &Path, fresh: &str) -> bool {
    std::fs::read_to_string(path)
        .map(|t| t.replace("\r\n", "\n"))
        .ok()
        .as_deref()
        == Some(fresh)
}

#[test]
fn checked_in_copies_are_fresh() {
    let dir = root().join("crates/codegen-fixtures/src/generated");
    let mut stale = Vec::new();
    for fixture in fixtures() {
        let copy = dir.join(format!(
            "{}.rs",
            fixture.file_stem().unwrap().to_string_lossy().replace('-', "_")
        ));
        if !is_fresh(&copy, &generate(&fixture)) {
            stale.push(copy.display().to_string());
        }
    }
    // qga-types builds from this copy unless its `codegen` feature is on.
    let qga = root().join("crates/qga-types/src/generated.rs");
    if !is_fresh(&qga, &generate(&root().join("schema/qga.json"))) {
        stale.push(qga.display().to_string());
    }
    assert!(
        stale.is_empty(),
        "stale generated files (run `cargo xtask regen`):\n{}",
        stale.join("\n")
    );
}
