//! Fault injection with a scripted fake agent on a unix socket.

mod common;

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use common::{answer, answer_sync, fake_agent, reply};
use qga_host::{Connection, Endpoint, Error, Options, ResponseTimeout};
use qga_types::client::Client;
use qga_types::runtime::serde_json::{self, json};
use qga_types::runtime::CallError;

#[test]
fn stale_output_and_garbage_before_the_sync_reply_are_dropped() {
    let path = fake_agent(|call, s| {
        if let Some(id) = call.sync_id() {
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
            answer(call, s, json!({}));
        }
    });
    let conn = Connection::connect(&Endpoint::Unix(path), Options::default()).unwrap();
    let mut client = Client::new(conn);
    client.guest_ping().unwrap();
}

#[test]
fn a_hung_command_times_out_and_the_next_call_resyncs() {
    let pings = Arc::new(AtomicUsize::new(0));
    let seen = pings.clone();
    let path = fake_agent(move |call, s| {
        if answer_sync(call, s) {
            return;
        }
        if seen.fetch_add(1, Ordering::SeqCst) == 0 {
            // Hang on the first ping, and answer it late, after the timeout.
            let id = call.id();
            let mut late = s.try_clone().unwrap();
            thread::spawn(move || {
                thread::sleep(Duration::from_millis(1500));
                let _ = late.write_all(format!("{{\"return\": {{}}, \"id\": {id}}}\n").as_bytes());
            });
        } else {
            answer(call, s, json!({}));
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
    let path = fake_agent(|call, s| {
        if answer_sync(call, s) {
            return;
        }
        let huge = json!({"version": "x".repeat(10_000), "supported_commands": []});
        answer(call, s, huge);
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
    let path = fake_agent(|call, s| {
        if answer_sync(call, s) {
            return;
        }
        if call.execute() == "guest-shutdown" {
            // Never answers, like a guest going down.
        } else {
            answer(call, s, json!({}));
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
    let path = fake_agent(|call, s| {
        if answer_sync(call, s) {
            return;
        }
        if call.execute() == "guest-fsfreeze-status" {
            // Slow, like a freeze: longer than the connection's timeout.
            thread::sleep(Duration::from_millis(1300));
            reply(s, json!({"return": "thawed", "id": call.id()}));
        } else {
            answer(call, s, json!({}));
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
