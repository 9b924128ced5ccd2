//! `qapi-gen check` and `dump` as a user runs them.

use std::process::{Command, Output};

fn qapi_gen(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_qapi-gen"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap()
}

fn write_temp(name: &str, text: &str) -> String {
    let dir = std::env::temp_dir().join(format!("qapi-gen-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn valid_schema_exits_zero_silently() {
    let out = qapi_gen(&["check", "--strict", "../../schema/qga.json"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stderr.is_empty());
}

#[test]
fn invalid_schema_exits_one_with_located_message_first() {
    let path = write_temp("bad.json", "{ 'struct': 'Point',\n  'data': { 'x' 'int' } }\n");
    let out = qapi_gen(&["check", &path]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().next().unwrap(), format!("{path}:2:17: expected ':'"));
    assert!(stderr.contains("^ expected ':'"), "caret snippet missing:\n{stderr}");
}

#[test]
fn semantic_error_names_definition_and_line() {
    let path = write_temp("sem.json", "\n{ 'struct': 'Point', 'data': { 'x': 'Nope' } }\n");
    let out = qapi_gen(&["check", &path]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    let mut lines = stderr.lines();
    assert_eq!(lines.next().unwrap(), format!("{path}: In struct 'Point':"));
    assert_eq!(
        lines.next().unwrap(),
        format!("{path}:2: member 'x' uses unknown type 'Nope'")
    );
}

#[test]
fn missing_file_exits_two_and_names_it() {
    let out = qapi_gen(&["check", "no/such/schema.json"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("no/such/schema.json"), "{stderr}");
    assert!(stderr.contains("No such file"), "{stderr}");
}

#[test]
fn usage_error_exits_two() {
    assert_eq!(qapi_gen(&["check"]).status.code(), Some(2));
    assert_eq!(qapi_gen(&["frobnicate", "x.json"]).status.code(), Some(2));
}

#[test]
fn dump_prints_qemu_format() {
    let path = write_temp(
        "dump.json",
        "{ 'enum': 'Colour', 'data': [ 'red', { 'name': 'blue', 'if': 'HAVE_BLUE' } ] }\n",
    );
    let out = qapi_gen(&["dump", "--strict", &path]);
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.starts_with("module ./builtin\nobject q_empty\nenum QType\n"));
    assert!(
        stdout.ends_with("module dump.json\nenum Colour\n    member red\n    member blue\n        if HAVE_BLUE\n"),
        "{stdout}"
    );
}

#[test]
fn old_forms_warn_by_default_and_fail_strict() {
    let path = write_temp(
        "old.json",
        "{ 'command': 'guest-shutdown', 'success-response': 'no' }\n",
    );
    let lenient = qapi_gen(&["check", &path]);
    assert_eq!(lenient.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&lenient.stderr).contains("warning: 'success-response': 'no'"));
    assert_eq!(qapi_gen(&["check", "--strict", &path]).status.code(), Some(1));
}
