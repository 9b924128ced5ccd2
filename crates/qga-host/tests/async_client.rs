//! The async client against the scripted fake agent: cancellation,
//! timeouts, commands without a reply, reconnection.

#![cfg(feature = "tokio")]

mod common;

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use common::{answer, answer_sync, fake_agent};
use qga_host::{AsyncConnection, Endpoint, Error, Options, ResponseTimeout};
use qga_types::client::AsyncClient;
use qga_types::runtime::serde_json::json;

#[tokio::test]
async fn a_cancelled_call_leaves_the_client_usable_and_its_late_reply_is_never_delivered() {
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    let path = fake_agent(move |call, s| {
        if answer_sync(call, s) {
            return;
        }
        let n = seen.fetch_add(1, Ordering::SeqCst);
        let id = call.id();
        let mut out = s.try_clone().unwrap();
        // The first call's reply comes at 400 ms, after it was cancelled
        // and while the second call waits for its own (at 700 ms).
        let (delay, time) = if n == 0 { (400, 111) } else { (600, 222) };
        thread::spawn(move || {
            thread::sleep(Duration::from_millis(delay));
            let _ = out.write_all(format!("{{\"return\": {time}, \"id\": {id}}}\n").as_bytes());
        });
    });
    let endpoint = Endpoint::Unix(path);
    let mut client = AsyncClient::new(AsyncConnection::connect(&endpoint, Options::default()).await.unwrap());
    let cancelled = tokio::time::timeout(Duration::from_millis(100), client.guest_get_time()).await;
    assert!(cancelled.is_err(), "the first call should still be waiting");
    assert!(client.transport().is_dirty());
    // The next call resyncs and gets its own reply, not the late 111.
    assert_eq!(client.guest_get_time().await.unwrap(), 222);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert!(!client.transport().is_dirty());
}

#[tokio::test]
async fn cancelled_before_the_reply_starts_or_mid_reply_then_a_good_call() {
    let path = fake_agent(move |call, s| {
        if answer_sync(call, s) {
            return;
        }
        if call.execute() == "guest-get-host-name" {
            // Half a reply, then nothing: the call is cancelled mid-reply.
            let _ = s.write_all(b"{\"return\": {\"host-name\": \"hal");
            return;
        }
        answer(call, s, json!({}));
    });
    let mut client = AsyncClient::new(
        AsyncConnection::connect(&Endpoint::Unix(path), Options::default())
            .await
            .unwrap(),
    );
    let cancelled = tokio::time::timeout(Duration::from_millis(200), client.guest_get_host_name()).await;
    assert!(cancelled.is_err());
    // The half reply is dropped by the resync; the ping gets its own.
    client.guest_ping().await.unwrap();
    client.guest_ping().await.unwrap();
}

#[tokio::test]
async fn a_hung_command_times_out_then_the_next_call_succeeds() {
    let path = fake_agent(move |call, s| {
        if answer_sync(call, s) {
            return;
        }
        if call.execute() != "guest-get-users" {
            answer(call, s, json!({}));
        }
    });
    let options = Options {
        timeout: ResponseTimeout::Seconds(1),
        ..Options::default()
    };
    let mut conn = AsyncConnection::connect(&Endpoint::Unix(path), options).await.unwrap();
    let started = std::time::Instant::now();
    match conn
        .run::<qga_types::commands::GuestGetUsers>(&Default::default())
        .await
    {
        Err(Error::Timeout) => {}
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(3));
    conn.run::<qga_types::commands::GuestPing>(&Default::default())
        .await
        .unwrap();
}

#[tokio::test]
async fn shutdown_returns_reports_errors_in_the_window_and_counts_eof_as_success() {
    let path = fake_agent(move |call, s| {
        if answer_sync(call, s) {
            return;
        }
        match call.execute() {
            // The guest goes down: EOF.
            "guest-shutdown" => {
                let _ = s.shutdown(std::net::Shutdown::Both);
            }
            // Fails at once, as when the guest cannot suspend.
            "guest-suspend-disk" => common::reply(
                s,
                json!({"error": {"class": "GenericError", "desc": "suspend not supported"}, "id": call.id()}),
            ),
            // Never answers (the guest is going down slowly).
            "guest-suspend-ram" => {}
            _ => answer(call, s, json!({})),
        }
    });
    let options = Options {
        no_reply_window: Duration::from_millis(300),
        ..Options::default()
    };
    let mut client = AsyncClient::new(AsyncConnection::connect(&Endpoint::Unix(path), options).await.unwrap());
    match client.guest_suspend_disk().await.map_err(Error::from) {
        Err(Error::Agent(e)) => assert_eq!(e.desc, "suspend not supported"),
        other => panic!("expected the agent's error, got {other:?}"),
    }
    client.guest_ping().await.unwrap();
    client.guest_suspend_ram().await.unwrap();
    client.guest_ping().await.unwrap();
    client.guest_shutdown(&Default::default()).await.unwrap();
    // The guest "came back": the next call reconnects.
    client.guest_ping().await.unwrap();
}

#[tokio::test]
async fn an_agent_that_stops_reading_gives_a_timeout_not_a_blocked_write() {
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
    let mut client = AsyncClient::new(AsyncConnection::connect(&Endpoint::Unix(path), options).await.unwrap());
    let big = qga_types::GuestFileWriteArgs {
        handle: 1,
        buf_b64: "A".repeat(2 * 1024 * 1024),
        count: None,
    };
    let started = std::time::Instant::now();
    match client.guest_file_write(&big).await.map_err(Error::from) {
        Err(Error::Timeout) => {}
        other => panic!("expected a timeout, got {other:?}"),
    }
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_millis(2500),
        "{took:?}"
    );
}
