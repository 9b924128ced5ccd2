//! Runs QEMU's own QAPI test suite (`tests/qapi-schema` of QEMU 10.2)
//! against the parser in strict mode, and the guest-agent schema of every
//! QEMU release in default mode.
//!
//! The data is GPL and lives outside the repository, in
//! `../shared/qapi-conformance` beside the workspace; set
//! `QAPI_CONFORMANCE_DIR` to use another copy. Without the data the tests
//! say so and pass, unless `QAPI_CONFORMANCE_REQUIRED` is set (CI sets it).

use std::path::{Path, PathBuf};

use qapi_parser::{dump::dump, parse_file, Options};

fn data_dir() -> Option<PathBuf> {
    let dir = match std::env::var_os("QAPI_CONFORMANCE_DIR") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/qapi-conformance"),
    };
    if dir.join("cases.tsv").is_file() {
        return Some(dir);
    }
    let message = format!(
        "\n\n*** QAPI conformance data not found at {} ***\n*** set QAPI_CONFORMANCE_DIR; these tests did NOT run ***\n",
        dir.display()
    );
    if std::env::var_os("QAPI_CONFORMANCE_REQUIRED").is_some() {
        panic!("{message}");
    }
    eprintln!("{message}");
    None
}

struct Case {
    name: String,
    role: String,
    expected_ok: bool,
}

fn cases(dir: &Path) -> Vec<Case> {
    let text = std::fs::read_to_string(dir.join("cases.tsv")).unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let mut f = l.split('\t');
            let name = f.next()?.to_string();
            let role = f.next()?.to_string();
            let expected = f.next()?;
            Some(Case {
                name,
                role,
                expected_ok: expected == "ok",
            })
        })
        .collect()
}

/// The first line of a message that carries a location.
fn first_located_line(text: &str) -> Option<&str> {
    text.lines().find(|l| {
        let mut parts = l.splitn(3, ':');
        let (_, line) = (parts.next(), parts.next());
        line.is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    })
}

#[test]
fn qemu_qapi_schema_suite() {
    let Some(dir) = data_dir() else { return };
    let tests = dir.join("qemu-tests-qapi-schema");
    let prefix = format!("{}/", tests.display());
    let opts = Options { strict: true };

    let mut total = 0;
    let mut verdict_ok = 0;
    let mut error_cases = 0;
    let mut located_ok = 0;
    let mut exact = 0;
    let mut dumps_ok = 0;
    let mut report = Vec::new();
    for case in cases(&dir) {
        if case.role != "test" {
            continue;
        }
        total += 1;
        let path = format!("{prefix}{}.json", case.name);
        let expected_err = std::fs::read_to_string(tests.join(format!("{}.err", case.name))).unwrap_or_default();
        match parse_file(&path, &opts) {
            Ok(schema) => {
                if case.expected_ok {
                    verdict_ok += 1;
                    let expected_out = std::fs::read_to_string(tests.join(format!("{}.out", case.name))).unwrap();
                    if dump(&schema) == expected_out {
                        dumps_ok += 1;
                    } else {
                        report.push(format!("{}: dump differs", case.name));
                    }
                } else {
                    error_cases += 1;
                    report.push(format!(
                        "{}: accepted, QEMU says: {}",
                        case.name,
                        expected_err.trim_end()
                    ));
                }
            }
            Err(failure) => {
                let actual = failure.to_string().replace(&prefix, "") + "\n";
                if case.expected_ok {
                    report.push(format!("{}: rejected valid schema: {}", case.name, actual.trim_end()));
                    continue;
                }
                error_cases += 1;
                verdict_ok += 1;
                if actual == expected_err {
                    exact += 1;
                }
                let (a, e) = (first_located_line(&actual), first_located_line(&expected_err));
                // Location: everything before the message.
                let same_loc = match (a, e) {
                    (Some(a), Some(e)) => {
                        let al: Vec<&str> = a.split(':').collect();
                        let el: Vec<&str> = e.split(':').collect();
                        let n = if el.len() > 2 && el[2].bytes().all(|b| b.is_ascii_digit()) && !el[2].is_empty() {
                            3
                        } else {
                            2
                        };
                        al.len() >= n && al[..n] == el[..n]
                    }
                    (None, None) => actual.trim_end() == expected_err.trim_end(),
                    _ => false,
                };
                if same_loc {
                    located_ok += 1;
                }
                if actual != expected_err {
                    report.push(format!(
                        "{}:{}\n    ours: {}\n    qemu: {}",
                        case.name,
                        if same_loc {
                            " (same location)"
                        } else {
                            " LOCATION DIFFERS"
                        },
                        actual.trim_end().replace('\n', " | "),
                        expected_err.trim_end().replace('\n', " | ")
                    ));
                }
            }
        }
    }
    eprintln!("{}", report.join("\n"));
    eprintln!(
        "QEMU suite: {total} cases, verdict agrees {verdict_ok}, \
         error cases {error_cases}, same first location {located_ok}, \
         byte-identical message {exact}, dumps identical {dumps_ok}/8"
    );
    assert_eq!(verdict_ok, total, "every case must agree with QEMU on accept/reject");
    assert_eq!(dumps_ok, 8, "every valid case must dump like QEMU");
    assert!(
        located_ok * 100 >= error_cases * 98,
        "first located line must match QEMU in 98% of error cases ({located_ok}/{error_cases})"
    );
}

fn history(dir: &Path) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir.join("qga-history")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let tag = path.file_stem().unwrap().to_string_lossy().into_owned();
            out.push((tag, path));
        }
    }
    out.sort();
    out
}

#[test]
fn every_released_guest_schema_passes_default_mode() {
    let Some(dir) = data_dir() else { return };
    let releases = history(&dir);
    assert_eq!(releases.len(), 45, "expected 45 guest-agent releases");
    let mut failed = Vec::new();
    for (tag, path) in &releases {
        if let Err(f) = parse_file(path.to_str().unwrap(), &Options::default()) {
            failed.push(format!("{tag}: {}", f.render()));
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

#[test]
fn strict_mode_accepts_only_the_current_guest_schema() {
    let Some(dir) = data_dir() else { return };
    for (tag, path) in history(&dir) {
        let result = parse_file(path.to_str().unwrap(), &Options { strict: true });
        assert_eq!(
            result.is_ok(),
            tag == "v10.2.0",
            "{tag} under strict mode: {:?}",
            result.err().map(|f| f.to_string())
        );
    }
}

fn required() -> bool {
    std::env::var_os("QAPI_CONFORMANCE_REQUIRED").is_some()
}

/// The schema Debian's qemu-guest-agent package ships (gzipped).
#[test]
fn debian_package_schema_passes_default_mode() {
    let path = std::env::var("QGA_DEBIAN_SCHEMA")
        .unwrap_or_else(|_| "/usr/share/doc/qemu-guest-agent/qapi-schema.json.gz".to_string());
    let Ok(file) = std::fs::File::open(&path) else {
        let message = format!("\n*** {path} not found (apt-get install qemu-guest-agent); test did NOT run ***\n");
        assert!(!required(), "{message}");
        eprintln!("{message}");
        return;
    };
    let mut text = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(file), &mut text).unwrap();
    let schema = qapi_parser::parse_str("qapi-schema.json", &text, &Options::default())
        .unwrap_or_else(|f| panic!("{}", f.render()));
    assert!(schema.lookup("guest-sync-delimited").is_some());
}

/// Everything but the dump's doc part: the protocol facts.
fn entity_dump(schema: &qapi_parser::Schema) -> String {
    dump(schema)
        .lines()
        .take_while(|l| !l.starts_with("doc "))
        .filter(|l| !l.starts_with("module ") && !l.starts_with("include "))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// `schema/` states the same protocol as QEMU 10.2's guest agent, in
/// our own words, and passes strict mode.
#[test]
fn our_schema_has_qemu_10_2_definitions() {
    let ours = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schema/qga.json");
    let ours =
        parse_file(ours.to_str().unwrap(), &Options { strict: true }).unwrap_or_else(|f| panic!("{}", f.render()));
    assert!(ours.warnings.is_empty());
    let Some(dir) = data_dir() else { return };
    let qemu = dir.join("qga-history/v10.2.0.json");
    let qemu = parse_file(qemu.to_str().unwrap(), &Options { strict: true }).unwrap();
    assert_eq!(entity_dump(&ours), entity_dump(&qemu));
}
