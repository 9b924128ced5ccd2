//! Snapshots of the full diagnostic output (QEMU-style lines plus the
//! caret snippet) for a set of bad schemas in `tests/diagnostics/`, so a
//! change in message quality shows up in review. Add a `.json` file to
//! add a case; `cargo insta review` accepts new output.

use qapi_parser::{parse_file, Options};

#[test]
fn strict_diagnostics() {
    insta::glob!("diagnostics/*.json", |path| {
        // A path relative to the crate keeps snapshots machine-independent.
        let rel = path.strip_prefix(env!("CARGO_MANIFEST_DIR")).unwrap();
        let rel = rel.to_str().unwrap().trim_start_matches('/');
        let rendered = match parse_file(rel, &Options { strict: true }) {
            Ok(_) => panic!("{rel} should be rejected"),
            Err(failure) => failure.render(),
        };
        insta::assert_snapshot!(rendered);
    });
}

/// The forms of old guest-agent schemas: errors in strict mode (above),
/// warnings by default.
#[test]
fn legacy_forms_warn_in_default_mode() {
    let schema = parse_file("tests/diagnostics/legacy-forms-strict.json", &Options::default()).unwrap();
    let rendered: String = schema.warnings.iter().map(|w| w.render(&schema.sources)).collect();
    insta::assert_snapshot!(rendered);
}
