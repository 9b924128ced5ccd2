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
            answer(call, s, json!(222));
        }
    });
    let conn = Connection::connect(&Endpoint::Unix(path), Options::default()).unwrap();
    let mut client = Client::new(conn);
    // Not the stale 1 with id 5: the reply to this call.
    assert_eq!(client.guest_get_time().unwrap(), 222);
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
            // Hang on the first call, and answer it late, after the timeout.
            let id = call.id();
            let mut late = s.try_clone().unwrap();
            thread::spawn(move || {
                thread::sleep(Duration::from_millis(1500));
                let _ = late.write_all(format!("{{\"return\": 111, \"id\": {id}}}\n").as_bytes());
            });
        } else {
            answer(call, s, json!(222));
        }
    });
    let options = Options {
        timeout: ResponseTimeout::Seconds(1),
        ..Options::default()
    };
    let mut client = Client::new(Connection::connect(&Endpoint::Unix(path), options).unwrap());
    match client.guest_get_time() {
        Err(CallError::Transport(Error::Timeout)) => {}
        other => panic!("expected a timeout, got {other:?}"),
    }
    // The late reply to the first call arrives before the resync and is
    // dropped; the second call gets its own reply.
    thread::sleep(Duration::from_millis(700));
    assert_eq!(client.guest_get_time().unwrap(), 222);
    assert_eq!(pings.load(Ordering::SeqCst), 2);
}

#[test]
fn a_reply_over_the_size_limit_is_refused_clearly() {
    let path = fake_agent(|call, s| {
        if answer_sync(call, s) {
            return;
        }
        if call.execute() == "guest-info" {
            let huge = json!({"version": "x".repeat(10_000), "supported_commands": []});
            answer(call, s, huge);
        } else {
            answer(call, s, json!({}));
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
    // The rest of the big reply is skipped; the channel goes on.
    client.guest_ping().unwrap();
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

#[test]
fn an_agent_that_closes_mid_reply_gives_a_clear_error_then_the_next_call_reconnects() {
    let path = fake_agent(|call, s| {
        if answer_sync(call, s) {
            return;
        }
        if call.connection == 0 && call.execute() == "guest-get-host-name" {
            // Half a reply, then the agent goes away (a guest reboot).
            let _ = s.write_all(b"{\"return\": {\"host-name\": \"ha");
            let _ = s.shutdown(std::net::Shutdown::Both);
            return;
        }
        answer(call, s, json!({"host-name": format!("conn{}", call.connection)}));
    });
    let mut client = Client::new(Connection::connect(&Endpoint::Unix(path), Options::default()).unwrap());
    match client.guest_get_host_name().map_err(Error::from) {
        Err(Error::Closed) => {}
        other => panic!("expected Closed, got {other:?}"),
    }
    assert_eq!(Error::Closed.to_string(), "the agent closed the connection");
    assert!(client.transport().is_dirty());
    // The next call connects again, resyncs and gets a whole reply.
    assert_eq!(client.guest_get_host_name().unwrap().host_name, "conn1");
}

#[test]
fn without_a_way_to_reconnect_a_closed_stream_stays_a_clear_error() {
    let path = fake_agent(|call, s| {
        if answer_sync(call, s) {
            return;
        }
        let _ = s.shutdown(std::net::Shutdown::Both);
    });
    let stream = UnixStream::connect(&path).unwrap();
    let mut client = Client::new(Connection::from_stream(stream, Options::default()).unwrap());
    for _ in 0..2 {
        match client.guest_ping().map_err(Error::from) {
            Err(Error::Closed) => {}
            other => panic!("expected Closed, got {other:?}"),
        }
    }
}

#[test]
fn a_reply_with_a_wrong_id_is_never_delivered() {
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    let path = fake_agent(move |call, s| {
        if answer_sync(call, s) {
            return;
        }
        let id = call.id().as_u64().unwrap();
        if seen.fetch_add(1, Ordering::SeqCst) == 0 {
            // Only ever a reply for some other request.
            reply(s, json!({"return": 111, "id": id + 1}));
            reply(s, json!({"return": 112}));
        } else {
            // A wrong one first, then the right one.
            reply(s, json!({"return": 221, "id": id.wrapping_sub(1)}));
            reply(s, json!({"return": 222, "id": id}));
        }
    });
    let options = Options {
        timeout: ResponseTimeout::Seconds(1),
        ..Options::default()
    };
    let mut client = Client::new(Connection::connect(&Endpoint::Unix(path), options).unwrap());
    match client.guest_get_time().map_err(Error::from) {
        Err(Error::Timeout) => {}
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert_eq!(client.guest_get_time().unwrap(), 222);
}

#[test]
fn commands_without_a_reply_report_errors_in_the_window_and_take_eof_as_success() {
    let path = fake_agent(|call, s| {
        if answer_sync(call, s) {
            return;
        }
        match call.execute() {
            "guest-shutdown" if call.connection == 0 => {
                // An error, as when the guest cannot run its shutdown.
                let desc = "child process has failed to shutdown";
                reply(
                    s,
                    json!({"error": {"class": "GenericError", "desc": desc}, "id": call.id()}),
                );
            }
            // The guest goes down: EOF.
            "guest-shutdown" => {
                let _ = s.shutdown(std::net::Shutdown::Both);
            }
            _ => answer(call, s, json!({})),
        }
    });
    let options = Options {
        no_reply_window: Duration::from_secs(2),
        ..Options::default()
    };
    let mut client = Client::new(Connection::connect(&Endpoint::Unix(path), options).unwrap());
    let args = qga_types::GuestShutdownArgs::default();
    match client.guest_shutdown(&args).map_err(Error::from) {
        Err(Error::Agent(e)) => assert_eq!(e.desc, "child process has failed to shutdown"),
        other => panic!("expected the agent's error, got {other:?}"),
    }
    client.guest_ping().unwrap();
    // Same connection: still connection 0, so another error; force a new
    // connection to reach the EOF case.
    client.transport_mut().reconnect().unwrap();
    let started = std::time::Instant::now();
    client.guest_shutdown(&args).unwrap();
    assert!(
        started.elapsed() < Duration::from_millis(300),
        "EOF ends the window early"
    );
    // The guest came back: the next call reconnects.
    client.guest_ping().unwrap();
}

#[test]
fn an_agent_that_never_answers_shutdown_costs_one_window() {
    let path = fake_agent(|call, s| {
        if answer_sync(call, s) {
            return;
        }
        if call.execute() != "guest-shutdown" {
            answer(call, s, json!({}));
        }
    });
    let options = Options {
        no_reply_window: Duration::from_millis(200),
        timeout: ResponseTimeout::Block,
        ..Options::default()
    };
    let mut conn = Connection::connect(&Endpoint::Unix(path), options).unwrap();
    let started = std::time::Instant::now();
    assert_eq!(
        conn.execute("guest-shutdown", Some(json!({"mode": "powerdown"})))
            .unwrap(),
        json!(null)
    );
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(200) && took < Duration::from_secs(2),
        "{took:?}"
    );
    assert!(conn.is_dirty());
    conn.execute("guest-ping", None).unwrap();
}

/// A minimal agent over TCP: answers syncs and pings.
fn tcp_agent() -> String {
    use std::io::{BufRead, BufReader};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = Vec::new();
                while reader.read_until(b'\n', &mut line).unwrap_or(0) > 0 {
                    line.retain(|&b| b != 0xFF);
                    if let Ok(req) = serde_json::from_slice::<serde_json::Value>(&line) {
                        let out = if req["execute"] == "guest-sync-delimited" {
                            let mut out = vec![0xFF];
                            out.extend(format!("{{\"return\": {}}}\n", req["arguments"]["id"]).as_bytes());
                            out
                        } else {
                            format!("{{\"return\": {{}}, \"id\": {}}}\n", req["id"]).into_bytes()
                        };
                        let _ = stream.write_all(&out);
                    }
                    line.clear();
                }
            });
        }
    });
    addr
}

#[test]
fn tcp_endpoints_work_blocking_and_async() {
    let addr = tcp_agent();
    let endpoint: Endpoint = format!("tcp:{addr}").parse().unwrap();
    let mut client = Client::new(Connection::connect(&endpoint, Options::default()).unwrap());
    client.guest_ping().unwrap();
    #[cfg(feature = "tokio")]
    {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let conn = qga_host::AsyncConnection::connect(&endpoint, Options::default())
                .await
                .unwrap();
            qga_types::client::AsyncClient::new(conn).guest_ping().await.unwrap();
        });
    }
}

#[test]
fn an_agent_that_stops_reading_gives_a_timeout_not_a_blocked_write() {
    let path = fake_agent(|call, s| {
        answer_sync(call, s);
        // Then stops reading: the host's big write fills the socket buffer.
        thread::sleep(Duration::from_secs(3));
        let _ = s.shutdown(std::net::Shutdown::Both);
    });
    let options = Options {
        timeout: ResponseTimeout::Seconds(1),
        ..Options::default()
    };
    let mut client = Client::new(Connection::connect(&Endpoint::Unix(path), options).unwrap());
    assert!(!client.transport().is_dirty());
    let started = std::time::Instant::now();
    let big = qga_types::GuestFileWriteArgs {
        handle: 1,
        buf_b64: "A".repeat(2 * 1024 * 1024),
        count: None,
    };
    match client.guest_file_write(&big).map_err(Error::from) {
        Err(Error::Timeout) => {}
        other => panic!("expected a timeout, got {other:?}"),
    }
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_millis(2500),
        "{took:?}"
    );
}

#[test]
fn a_timeout_too_long_to_add_to_the_clock_waits_without_a_limit() {
    let path = fake_agent(|call, s| {
        if !answer_sync(call, s) {
            answer(call, s, json!(7));
        }
    });
    let endpoint = Endpoint::Unix(path);
    let options = Options {
        timeout: ResponseTimeout::Seconds(u64::MAX),
        no_reply_window: Duration::MAX,
        ..Options::default()
    };
    let mut conn = Connection::connect(&endpoint, options.clone()).unwrap();
    assert_eq!(conn.execute("guest-get-time", None).unwrap(), json!(7));
    #[cfg(feature = "tokio")]
    {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let mut conn = qga_host::AsyncConnection::connect(&endpoint, options).await.unwrap();
            assert_eq!(conn.execute("guest-get-time", None).await.unwrap(), json!(7));
        });
    }
}
