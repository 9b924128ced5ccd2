//! Fault injection with a scripted fake agent on a unix socket.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;

use qga_host::{Connection, Endpoint, Error, Options, ResponseTimeout};
use qga_types::client::Client;
use qga_types::runtime::serde_json::{self, json, Value};
use qga_types::runtime::CallError;

static NEXT: AtomicUsize = AtomicUsize::new(0);

fn socket_path() -> PathBuf {
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let p = std::env::temp_dir().join(format!("qga-host-fake-{}-{n}.sock", std::process::id()));
    let _ = std::fs::remove_file(&p);
    p
}

/// Reads requests (skipping 0xFF bytes) and answers with `script`, which
/// gets each request and writes raw bytes back.
fn fake_agent(script: impl Fn(&Value, &mut UnixStream) + Send + 'static) -> PathBuf {
    let path = socket_path();
    let listener = UnixListener::bind(&path).unwrap();
    thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        loop {
            let mut line = Vec::new();
            if reader.read_until(b'\n', &mut line).unwrap_or(0) == 0 {
                return;
            }
            line.retain(|&b| b != 0xFF);
            let Ok(request) = serde_json::from_slice::<Value>(&line) else {
                continue;
            };
            script(&request, &mut stream);
        }
    });
    path
}

fn sync_id(request: &Value) -> Option<u64> {
    (request["execute"] == "guest-sync-delimited").then(|| request["arguments"]["id"].as_u64().unwrap())
}

fn reply(stream: &mut UnixStream, value: Value) {
    let mut bytes = serde_json::to_vec(&value).unwrap();
    bytes.push(b'\n');
    stream.write_all(&bytes).unwrap();
}

#[test]
fn stale_output_and_garbage_before_the_sync_reply_are_dropped() {
    let path = fake_agent(|req, s| {
        if let Some(id) = sync_id(req) {
            // Stale replies, garbage, the error for our 0xFF, then the
            // delimiter, a sync reply with the wrong id, and the right one,
            // one byte at a time.
            s.write_all(b"{\"return\": 1, \"id\": 5}\n#garbage{[\n").unwrap();
            reply(
                s,
                json!({"error": {"class": "GenericError", "desc": "Invalid JSON syntax"}}),
            );
            let mut tail = vec![0xFF];
            tail.extend(serde_json::to_vec(&json!({"return": id ^ 1})).unwrap());
            tail.extend(serde_json::to_vec(&json!({"return": id})).unwrap());
            for b in tail {
                s.write_all(&[b]).unwrap();
            }
        } else {
            reply(s, json!({"return": {}, "id": req["id"].clone()}));
        }
    });
    let conn = Connection::connect(&Endpoint::Unix(path), Options::default()).unwrap();
    let mut client = Client::new(conn);
    client.guest_ping().unwrap();
}

#[test]
fn a_hung_command_times_out_and_the_next_call_resyncs() {
    let pings = std::sync::Arc::new(AtomicUsize::new(0));
    let seen = pings.clone();
    let path = fake_agent(move |req, s| {
        if let Some(id) = sync_id(req) {
            s.write_all(&[0xFF]).unwrap();
            reply(s, json!({"return": id}));
        } else if seen.fetch_add(1, Ordering::SeqCst) == 0 {
            // Hang on the first ping, and answer it late, after the timeout.
            let id = req["id"].clone();
            let mut late = s.try_clone().unwrap();
            thread::spawn(move || {
                thread::sleep(Duration::from_millis(1500));
                let _ = late.write_all(format!("{{\"return\": {{}}, \"id\": {id}}}\n").as_bytes());
            });
        } else {
            reply(s, json!({"return": {}, "id": req["id"].clone()}));
        }
    });
    let options = Options {
        timeout: ResponseTimeout::Seconds(1),
        ..Options::default()
    };
    let mut client = Client::new(Connection::connect(&Endpoint::Unix(path), options).unwrap());
    match client.guest_ping() {
        Err(CallError::Transport(Error::Timeout)) => {}
        other => panic!("expected a timeout, got {other:?}"),
    }
    // The late reply to the first ping arrives during the resync and is
    // dropped; the second ping gets its own reply.
    thread::sleep(Duration::from_millis(700));
    client.guest_ping().unwrap();
    assert_eq!(pings.load(Ordering::SeqCst), 2);
}

#[test]
fn a_reply_over_the_size_limit_is_refused_clearly() {
    let path = fake_agent(|req, s| {
        if let Some(id) = sync_id(req) {
            s.write_all(&[0xFF]).unwrap();
            reply(s, json!({"return": id}));
        } else {
            reply(
                s,
                json!({"return": {"version": "x".repeat(10_000), "supported_commands": []}, "id": req["id"].clone()}),
            );
        }
    });
    let options = Options {
        max_reply_size: 1000,
        ..Options::default()
    };
    let mut client = Client::new(Connection::connect(&Endpoint::Unix(path), options).unwrap());
    match client.guest_info() {
        Err(CallError::Transport(Error::ReplyTooLarge { limit: 1000 })) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn shutdown_without_reply_returns_and_does_not_confuse_the_next_call() {
    let path = fake_agent(|req, s| {
        if let Some(id) = sync_id(req) {
            s.write_all(&[0xFF]).unwrap();
            reply(s, json!({"return": id}));
        } else if req["execute"] == "guest-shutdown" {
            // Never answers, like a guest going down.
        } else {
            reply(s, json!({"return": {}, "id": req["id"].clone()}));
        }
    });
    let options = Options {
        no_reply_window: Duration::from_millis(200),
        ..Options::default()
    };
    let mut client = Client::new(Connection::connect(&Endpoint::Unix(path), options).unwrap());
    client.guest_shutdown(&qga_types::GuestShutdownArgs::default()).unwrap();
    client.guest_ping().unwrap();
}

#[test]
fn a_per_call_timeout_outlasts_a_slow_command_then_the_default_applies_again() {
    let path = fake_agent(|req, s| {
        if let Some(id) = sync_id(req) {
            s.write_all(&[0xFF]).unwrap();
            reply(s, json!({"return": id}));
        } else if req["execute"] == "guest-fsfreeze-status" {
            // Slow, like a freeze: longer than the connection's timeout.
            thread::sleep(Duration::from_millis(1300));
            reply(s, json!({"return": "thawed", "id": req["id"].clone()}));
        } else {
            reply(s, json!({"return": {}, "id": req["id"].clone()}));
        }
    });
    let options = Options {
        timeout: ResponseTimeout::Seconds(1),
        ..Options::default()
    };
    // A stream we opened ourselves.
    let stream = UnixStream::connect(&path).unwrap();
    let mut client = Client::new(Connection::from_stream(stream, options).unwrap());
    client.transport_mut().set_next_timeout(ResponseTimeout::Seconds(5));
    assert_eq!(
        client.guest_fsfreeze_status().unwrap(),
        qga_types::GuestFsfreezeStatus::Thawed
    );
    // The override was for one call only.
    match client.guest_fsfreeze_status().map_err(Error::from) {
        Err(Error::Timeout) => {}
        other => panic!("expected a timeout, got {other:?}"),
    }
}
