//! The `qga` binary against the scripted fake agent: exit statuses, the
//! one-line errors, exec, shutdown and completions.

#![cfg(feature = "cli")]

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use common::{answer, answer_sync, fake_agent, not_found};
use qga_types::runtime::serde_json::{json, Value};

fn qga(socket: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_qga"))
        .arg("--socket")
        .arg(socket)
        .args(args)
        .output()
        .unwrap()
}

/// The single line on stderr.
fn one_line(out: &Output) -> String {
    let text = String::from_utf8(out.stderr.clone()).unwrap();
    assert_eq!(text.lines().count(), 1, "expected one line on stderr, got {text:?}");
    text.trim_end().to_string()
}

#[test]
fn exec_prints_the_output_and_exits_with_the_guest_status() {
    let seen = Arc::new(Mutex::new(Vec::<Value>::new()));
    let log = seen.clone();
    let polls = Arc::new(Mutex::new(0));
    let path = fake_agent(move |call, s| {
        if answer_sync(call, s) {
            return;
        }
        log.lock().unwrap().push(call.request.clone());
        match call.execute() {
            "guest-exec" => answer(call, s, json!({"pid": 42})),
            "guest-exec-status" => {
                let mut n = polls.lock().unwrap();
                *n += 1;
                if *n < 3 {
                    answer(call, s, json!({"exited": false}));
                } else {
                    // "hello\n" and "warn\n".
                    answer(
                        call,
                        s,
                        json!({"exited": true, "exitcode": 3, "out-data": "aGVsbG8K", "err-data": "d2Fybgo="}),
                    );
                }
            }
            _ => not_found(call, s),
        }
    });
    let out = qga(&path, &["exec", "--env", "A=1", "--", "/bin/echo", "-n", "b"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "warn\n");
    assert_eq!(out.status.code(), Some(3));
    let requests = seen.lock().unwrap();
    assert_eq!(
        requests[0]["arguments"],
        json!({"path": "/bin/echo", "arg": ["-n", "b"], "env": ["A=1"], "capture-output": true})
    );
    assert_eq!(requests[1]["arguments"], json!({"pid": 42}));
    assert_eq!(requests.len(), 4);
}

#[test]
fn failures_are_one_line_with_their_own_exit_status() {
    let path = fake_agent(|call, s| {
        if answer_sync(call, s) {
            return;
        }
        match call.execute() {
            "guest-get-time" => {} // hangs
            "guest-ping" => answer(call, s, json!({})),
            "guest-get-osinfo" => common::reply(
                s,
                json!({"error": {"class": "GenericError", "desc": "two\nlines\u{1b}[2J"}, "id": call.id()}),
            ),
            _ => not_found(call, s),
        }
    });
    // A hostile guest cannot break the line or send escape sequences.
    let out = qga(&path, &["call", "guest-get-osinfo"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        one_line(&out),
        "qga: guest-get-osinfo: agent error GenericError: two?lines?[2J"
    );
    let out = qga(&path, &["--timeout", "nowait", "ping"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(one_line(&out).starts_with("qga: --timeout nowait does not wait for answers"));
    let out = qga(&path, &["--timeout", "nowait", "call", "guest-ping"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stdout.is_empty() && out.stderr.is_empty());
    let out = qga(&path, &["--timeout", "1", "time", "get"]);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(
        one_line(&out),
        "qga: guest-get-time: no reply from the agent within 1 s (is it running? try --timeout)"
    );
    let out = qga(&path, &["call", "guest-frobnicate"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        one_line(&out),
        "qga: guest-frobnicate: agent error CommandNotFound: The command guest-frobnicate has not been found"
    );
    assert!(out.stdout.is_empty());
    let out = qga(&path, &["call", "guest-ping", "{not json"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(one_line(&out).starts_with("qga: ARGS-JSON is not valid JSON:"));
    let out = qga(&path.with_extension("missing"), &["ping"]);
    assert_eq!(out.status.code(), Some(4));
    assert!(one_line(&out).starts_with("qga: cannot connect to unix:"));
    let out = qga(&path, &["call", "guest-ping"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "{}");
}

#[test]
fn an_agent_that_never_answers_the_sync_is_a_timeout() {
    let path = fake_agent(|_, _| {});
    let out = qga(&path, &["--timeout", "1", "ping"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(one_line(&out).contains("did not answer the sync within 1 s"));
}

#[test]
fn shutdown_and_reboot_return_although_the_agent_never_answers() {
    let seen = Arc::new(Mutex::new(Vec::<Value>::new()));
    let log = seen.clone();
    let path = fake_agent(move |call, s| {
        if answer_sync(call, s) {
            return;
        }
        log.lock().unwrap().push(call.request["arguments"].clone());
    });
    let out = qga(&path, &["shutdown"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "powerdown requested\n");
    let out = qga(&path, &["reboot", "--json"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "null");
    assert_eq!(
        *seen.lock().unwrap(),
        vec![json!({"mode": "powerdown"}), json!({"mode": "reboot"})]
    );
}

#[test]
fn completions_need_no_agent() {
    let out = Command::new(env!("CARGO_BIN_EXE_qga"))
        .args(["completions", "bash"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let script = String::from_utf8(out.stdout).unwrap();
    assert!(script.contains("fsfreeze") && script.contains("--vsock"));
    let out = Command::new(env!("CARGO_BIN_EXE_qga")).arg("ping").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        one_line(&out),
        "qga: no agent given: use --socket PATH, --tcp HOST:PORT or --vsock CID:PORT"
    );
}

#[test]
fn exec_maps_any_signal_number_from_the_guest_to_an_exit_status() {
    let path = fake_agent(|call, s| {
        if answer_sync(call, s) {
            return;
        }
        match call.execute() {
            "guest-exec" => answer(call, s, json!({"pid": 7})),
            _ => answer(call, s, json!({"exited": true, "signal": i64::MAX})),
        }
    });
    let out = qga(&path, &["exec", "--", "/bin/true"]);
    assert_eq!(out.status.code(), Some(255), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!("qga: the program was killed by signal {}\n", i64::MAX)
    );
}
