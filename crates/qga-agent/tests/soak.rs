//! Soak test: many successive clients send our agent random bytes,
//! truncated requests, requests past 64 MiB and nesting past 1024, over
//! unix-listen. The agent must stay alive, its memory must stay bounded,
//! and a `guest-sync-delimited` must get through afterwards, on the same
//! connection (after a 0xFF) and for the next client.
//!
//! Bounded in time (about 20 s on a debug build) and in clients. The seed
//! is printed; `AGENTVERIFY_SOAK_SEED` replays one.

mod agent_harness;

use std::path::Path;
use std::time::{Duration, Instant};

use agent_harness::{render_items, AgentProcess, Conn, Item, Which};

const OUR_AGENT: &str = env!("CARGO_BIN_EXE_qga-agent");

/// Time for the random clients; the fixed ones come on top.
const RANDOM_PHASE: Duration = Duration::from_secs(4);
const MAX_RANDOM_CLIENTS: usize = 3000;
const OVERSIZE: usize = 64 * 1024 * 1024 + 4096;

const VALID_REQUESTS: &[&str] = &[
    r#"{"execute":"guest-ping"}"#,
    r#"{"execute":"guest-sync","arguments":{"id":42}}"#,
    r#"{"execute":"guest-sync-delimited","arguments":{"id":43}}"#,
    r#"{"execute":"guest-info","id":"x"}"#,
    r#"{"execute":"guest-get-time"}"#,
    r#"{"execute":"guest-get-host-name","id":[1,{"a":null}]}"#,
    r#"{"execute":"guest-get-timezone"}"#,
    r#"{"execute":"guest-file-read","arguments":{"handle":123456}}"#,
    r#"{"execute":"guest-sync","arguments":{"id":"wrong"}}"#,
    r#"{"execute":"no-such-command"}"#,
];

/// Pieces that make JSON-looking noise when glued at random.
const TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ":",
    ",",
    "\"",
    "\\",
    "\"execute\"",
    "\"arguments\"",
    "\"id\"",
    "\"guest-ping\"",
    "\"guest-sync\"",
    "1",
    "-0",
    "1e999",
    "0.5",
    "true",
    "null",
    "nul",
    " ",
    "\n",
    "\\u00",
    "\\uD800",
    "'",
    "\u{e9}",
];

fn random_bytes(rng: &mut fastrand::Rng) -> Vec<u8> {
    let len = rng.usize(0..4096);
    match rng.u8(0..4) {
        // Raw bytes, but rarely 0xFF so they do not all cancel out.
        0 => (0..len).map(|_| rng.u8(0..0xFF)).collect(),
        // Token soup.
        1 | 2 => {
            let mut out = Vec::new();
            while out.len() < len {
                out.extend_from_slice(TOKENS[rng.usize(0..TOKENS.len())].as_bytes());
            }
            out
        }
        // Valid requests with bytes flipped.
        _ => {
            let mut out = Vec::new();
            while out.len() < len.min(2048) {
                out.extend_from_slice(VALID_REQUESTS[rng.usize(0..VALID_REQUESTS.len())].as_bytes());
            }
            for _ in 0..rng.usize(1..8).min(out.len()) {
                let i = rng.usize(0..out.len());
                out[i] = rng.u8(0..0xFF);
            }
            out
        }
    }
}

fn truncated_request(rng: &mut fastrand::Rng) -> Vec<u8> {
    let full = VALID_REQUESTS[rng.usize(0..VALID_REQUESTS.len())].as_bytes();
    full[..rng.usize(1..full.len())].to_vec()
}

fn deep_nesting(rng: &mut fastrand::Rng, closed: bool) -> Vec<u8> {
    let depth = rng.usize(1025..20_000);
    let (open, close) = if rng.bool() { ("[", "]") } else { (r#"{"a":"#, "}") };
    let mut out = open.repeat(depth);
    if closed {
        out.push('1');
        out.push_str(&close.repeat(depth));
    }
    out.into_bytes()
}

/// Sends `guest-sync-delimited` (after a 0xFF when `flush`) and checks
/// that its reply comes after a 0xFF, skipping whatever came before.
fn sync_delimited(conn: &mut Conn, id: i64, flush: bool, context: &str) {
    let request = format!(r#"{{"execute":"guest-sync-delimited","arguments":{{"id":{id}}}}}"#);
    if flush {
        conn.send(b"\xff");
    }
    conn.send(request.as_bytes());
    let found = |items: &[Item]| {
        items
            .windows(2)
            .any(|w| w[0] == Item::Delimiter && matches!(&w[1], Item::Json(v) if v["return"] == id))
    };
    let items = conn.read_until(Duration::from_secs(30), found);
    // The reply is the last thing sent; nothing may follow it.
    assert!(
        matches!(items.last(), Some(Item::Json(v)) if v["return"] == id),
        "{context}: stray output after the sync reply:\n{}",
        render_items(&items, 20)
    );
}

struct Soak {
    agent: AgentProcess,
    rng: fastrand::Rng,
    next_id: i64,
    clients: usize,
}

impl Soak {
    fn id(&mut self) -> i64 {
        self.next_id += 1;
        self.next_id
    }

    /// A fresh client must get through at once, whatever the last did.
    fn check_next_client(&mut self, context: &str) {
        self.agent.assert_alive();
        let id = self.id();
        let mut conn = self.agent.connect();
        sync_delimited(&mut conn, id, false, &format!("next client after {context}"));
        self.clients += 1;
    }

    /// Sends `bytes`, then either hangs up at once or resynchronises on
    /// the same connection with a 0xFF.
    fn client(&mut self, bytes: &[u8], hang_up: bool, context: &str) {
        let mut conn = self.agent.connect();
        self.clients += 1;
        conn.send(bytes);
        if hang_up {
            return;
        }
        let id = self.id();
        sync_delimited(&mut conn, id, true, context);
    }

    fn memory(&self) -> (u64, u64) {
        self.agent.memory_kib()
    }
}

#[test]
fn soak_many_clients_of_garbage() {
    let seed = std::env::var("AGENTVERIFY_SOAK_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    eprintln!("soak seed {seed} (replay with AGENTVERIFY_SOAK_SEED={seed})");
    // A client that stops reading is dropped after this long.
    let agent = AgentProcess::start(Which::Ours, Path::new(OUR_AGENT), &["--write-timeout", "1"]);
    let mut soak = Soak {
        agent,
        rng: fastrand::Rng::with_seed(seed),
        next_id: 1000,
        clients: 0,
    };
    soak.check_next_client("start");
    let (rss_start, _) = soak.memory();

    // Random clients, half of them hanging up without reading.
    let started = Instant::now();
    let mut random_clients = 0;
    let mut rss_after_warmup = None;
    let random_phase = std::env::var("AGENTVERIFY_SOAK_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .map_or(RANDOM_PHASE, Duration::from_secs);
    while started.elapsed() < random_phase && random_clients < MAX_RANDOM_CLIENTS {
        let kind = soak.rng.u8(0..4);
        let bytes = match kind {
            0 | 1 => random_bytes(&mut soak.rng),
            2 => truncated_request(&mut soak.rng),
            _ => {
                let closed = soak.rng.bool();
                deep_nesting(&mut soak.rng, closed)
            }
        };
        let hang_up = soak.rng.bool();
        let context = format!("random client {random_clients} (kind {kind}, {} bytes)", bytes.len());
        soak.client(&bytes, hang_up, &context);
        if hang_up || kind == 2 {
            soak.check_next_client(&context);
        }
        random_clients += 1;
        if random_clients == 50 {
            rss_after_warmup = Some(soak.memory().0);
        }
    }
    let rss_after_random = soak.memory().0;
    eprintln!(
        "{random_clients} random clients in {:?}; VmRSS {rss_start} KiB at start, {rss_after_random} KiB after",
        started.elapsed()
    );
    assert!(random_clients >= 50, "too few random clients ran: {random_clients}");

    // A truncated request must not swallow the next client's request.
    for request in VALID_REQUESTS {
        let bytes = request.as_bytes();
        soak.client(&bytes[..bytes.len() / 2], true, "half request");
        soak.check_next_client(&format!("half of {request}"));
    }

    // Too deep, closed and left open, on the same connection and the next.
    for depth in [1025, 5000, 200_000] {
        let mut bytes = "[".repeat(depth).into_bytes();
        bytes.extend("]".repeat(depth).into_bytes());
        let id = soak.id();
        let mut conn = soak.agent.connect();
        conn.send(&bytes);
        // Once the message ends, the next request on the connection
        // must be read normally, without a 0xFF.
        sync_delimited(&mut conn, id, false, &format!("closed nesting of depth {depth}"));
        drop(conn);
        soak.client(&"{\"a\":".repeat(depth).into_bytes(), false, "open nesting then 0xFF");
        soak.client(&"[".repeat(depth).into_bytes(), true, "open nesting then hang up");
        soak.check_next_client(&format!("open nesting of depth {depth}"));
    }

    // Past 64 MiB: a long string, then the same left unfinished.
    let mut long_string = br#"{"execute":"guest-sync","arguments":{"id":""#.to_vec();
    long_string.resize(OVERSIZE, b'a');
    let id = soak.id();
    let mut conn = soak.agent.connect();
    conn.send(&long_string);
    conn.send(br#""}}"#);
    sync_delimited(&mut conn, id, false, "oversized string");
    drop(conn);
    soak.client(&long_string, true, "oversized and unfinished, then hang up");
    drop(long_string);
    soak.check_next_client("oversized and unfinished");
    let (_, hwm_oversized) = soak.memory();

    // Under 64 MiB but 4 Mi tokens (qemu-ga stops at 2 Mi tokens per
    // message): the memory it costs must stay within a few times the
    // message size limit. `repeat`: this test is built without
    // optimisation.
    let mut many_tokens = b"[".to_vec();
    many_tokens.extend_from_slice(&b"1,".repeat(4 << 20));
    many_tokens.extend_from_slice(b"1]");
    soak.client(&many_tokens, false, "4 Mi tokens");
    drop(many_tokens);
    let (_, hwm_tokens) = soak.memory();
    eprintln!("VmHWM after the oversized messages {hwm_oversized} KiB, after 4 Mi tokens {hwm_tokens} KiB");

    // Clients that send many requests and never read the replies: one
    // hangs up, the other stays connected, so the agent must give up
    // writing to it (--write-timeout 1) before it can serve the next one.
    for hang_up in [true, false] {
        let flood: Vec<u8> = r#"{"execute":"guest-info"}"#.repeat(5_000).into_bytes();
        let conn = soak.agent.connect();
        soak.clients += 1;
        let writer = {
            let mut stream = conn.stream.try_clone().unwrap();
            std::thread::spawn(move || {
                use std::io::Write;
                // Fails once the agent or we hang up; only the agent matters.
                let _ = stream.write_all(&flood);
            })
        };
        std::thread::sleep(Duration::from_millis(300));
        if hang_up {
            let _ = conn.stream.shutdown(std::net::Shutdown::Both);
            soak.check_next_client("a flood that was never read, then a hang-up");
        } else {
            let waited = Instant::now();
            soak.check_next_client("a flood that was never read, still connected");
            eprintln!("next client served {:?} after a stalled one", waited.elapsed());
            let _ = conn.stream.shutdown(std::net::Shutdown::Both);
        }
        drop(conn);
        writer.join().unwrap();
    }

    soak.agent.assert_alive();
    let (rss_end, hwm_end) = soak.memory();
    eprintln!(
        "{} clients in {:?}; VmRSS {rss_end} KiB, VmHWM {hwm_end} KiB",
        soak.clients,
        started.elapsed()
    );
    // Memory: nothing kept from the big messages, no growth from the
    // random clients, and a peak of a few times the 64 MiB limit.
    assert!(
        rss_end < 64 * 1024,
        "VmRSS {rss_end} KiB after the soak: memory was not given back"
    );
    if let Some(warm) = rss_after_warmup {
        assert!(
            rss_after_random < warm + 4 * 1024,
            "VmRSS grew from {warm} KiB to {rss_after_random} KiB over the random clients"
        );
    }
    assert!(
        hwm_oversized < 256 * 1024,
        "VmHWM {hwm_oversized} KiB: a message past 64 MiB cost too much memory"
    );
    // A message of more than 2 Mi tokens is refused before it is parsed,
    // as by qemu-ga ("JSON token count limit exceeded"), so it never
    // becomes a value of about 70 bytes per token.
    assert!(
        hwm_end < 256 * 1024,
        "VmHWM {hwm_end} KiB: an 8 MiB message of 4 Mi tokens cost too much memory"
    );
}
