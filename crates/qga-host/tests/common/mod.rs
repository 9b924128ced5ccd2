//! A scripted fake agent on a unix socket, shared by the fault and
//! version-skew tests.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;

use qga_types::runtime::serde_json::{self, json, Value};

static NEXT: AtomicUsize = AtomicUsize::new(0);

pub fn socket_path() -> PathBuf {
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let p = std::env::temp_dir().join(format!("qga-host-fake-{}-{n}.sock", std::process::id()));
    let _ = std::fs::remove_file(&p);
    p
}

/// What the script sees of one request.
pub struct Call<'a> {
    pub request: &'a Value,
    /// 0 for the first connection, 1 for the next...
    pub connection: usize,
}

impl Call<'_> {
    pub fn execute(&self) -> &str {
        self.request["execute"].as_str().unwrap_or("")
    }

    pub fn id(&self) -> Value {
        self.request["id"].clone()
    }

    /// The id of a `guest-sync-delimited`, if this is one.
    pub fn sync_id(&self) -> Option<u64> {
        (self.execute() == "guest-sync-delimited").then(|| self.request["arguments"]["id"].as_u64().unwrap())
    }
}

/// Accepts connections (each on its own thread), reads requests (skipping
/// 0xFF bytes) and lets `script` answer each with raw bytes.
pub fn fake_agent(script: impl Fn(&Call, &mut UnixStream) + Send + Sync + 'static) -> PathBuf {
    let path = socket_path();
    let listener = UnixListener::bind(&path).unwrap();
    let script = Arc::new(script);
    thread::spawn(move || {
        for (connection, stream) in listener.incoming().enumerate() {
            let Ok(mut stream) = stream else { return };
            let script = script.clone();
            thread::spawn(move || {
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
                    script(
                        &Call {
                            request: &request,
                            connection,
                        },
                        &mut stream,
                    );
                }
            });
        }
    });
    path
}

pub fn reply(stream: &mut UnixStream, value: Value) {
    let mut bytes = serde_json::to_vec(&value).unwrap();
    bytes.push(b'\n');
    // The client may be gone already.
    let _ = stream.write_all(&bytes);
}

/// Answers a sync the way qemu-ga does; false if `call` is no sync.
pub fn answer_sync(call: &Call, stream: &mut UnixStream) -> bool {
    let Some(id) = call.sync_id() else { return false };
    let _ = stream.write_all(&[0xFF]);
    reply(stream, json!({"return": id}));
    true
}

/// `{"return": value, "id": ...}` for `call`.
pub fn answer(call: &Call, stream: &mut UnixStream, value: Value) {
    reply(stream, json!({"return": value, "id": call.id()}));
}

/// qemu-ga's answer to a command it does not have.
pub fn not_found(call: &Call, stream: &mut UnixStream) {
    let desc = format!("The command {} has not been found", call.execute());
    reply(
        stream,
        json!({"error": {"class": "CommandNotFound", "desc": desc}, "id": call.id()}),
    );
}
