//! Random bytes through qga-agent's wire reader and dispatcher
//! (`qga_agent::Session` over an `Agent` with a `FakeSystem`), fed in
//! pieces whose sizes the input chooses.
//!
//! Checks: nothing panics or hangs; every reply is one line of JSON (the
//! reply to `guest-sync-delimited` after a 0xFF); and after any input a
//! 0xFF and a `guest-sync-delimited` get exactly their reply back.
//!
//! Only commands that touch nothing outside the agent's state directory
//! are allowed: machine-changing ones go to the fake, and the real
//! commands that could write files or run programs (file-open, exec, the
//! SSH key commands) are not on the allow list.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use qga_agent::system::testing::FakeSystem;
use qga_agent::{Agent, AgentConfig, RpcPolicy, Session};

const ALLOWED: &[&str] = &[
    "guest-sync",
    "guest-sync-delimited",
    "guest-ping",
    "guest-info",
    "guest-get-time",
    "guest-get-timezone",
    "guest-get-host-name",
    "guest-get-load",
    "guest-fsfreeze-status",
    "guest-exec-status",
    "guest-file-read",
    "guest-file-write",
    "guest-file-seek",
    "guest-file-flush",
    "guest-file-close",
    // These reach only the fake system.
    "guest-shutdown",
    "guest-suspend-disk",
    "guest-suspend-ram",
    "guest-suspend-hybrid",
    "guest-set-time",
    "guest-fsfreeze-freeze",
    "guest-fsfreeze-freeze-list",
    "guest-fsfreeze-thaw",
    "guest-fstrim",
    "guest-set-vcpus",
    "guest-set-user-password",
    "guest-set-memory-blocks",
];

fn statedir() -> &'static std::path::Path {
    static DIR: OnceLock<std::path::PathBuf> = OnceLock::new();
    DIR.get_or_init(|| std::env::temp_dir().join(format!("qga-agent-fuzz-{}", std::process::id())))
}

/// Checks that `out` is a sequence of JSON lines, each optionally after
/// one 0xFF.
fn check_replies(out: &[u8]) {
    let mut rest = out;
    while !rest.is_empty() {
        if rest[0] == 0xFF {
            rest = &rest[1..];
        }
        let end = rest
            .iter()
            .position(|&b| b == b'\n')
            .unwrap_or_else(|| panic!("reply without a newline: {:?}", String::from_utf8_lossy(rest)));
        let line = &rest[..end];
        let value: serde_json::Value = serde_json::from_slice(line)
            .unwrap_or_else(|e| panic!("reply is not JSON ({e}): {:?}", String::from_utf8_lossy(line)));
        assert!(
            value.get("return").is_some() || value.get("error").is_some(),
            "reply is neither a return nor an error: {value}"
        );
        rest = &rest[end + 1..];
    }
}

fuzz_target!(|data: &[u8]| {
    // Each input starts from a fresh agent and an empty state directory
    // (no freeze marker, no file handles), removed again at the end so
    // that none is left in the temp dir when the fuzzer exits.
    let _ = std::fs::remove_dir_all(statedir());
    std::fs::create_dir_all(statedir()).unwrap();
    let mut config = AgentConfig::new(statedir());
    config.policy = RpcPolicy::new::<&str>(&[], ALLOWED);
    let agent = Agent::new(config, Box::new(FakeSystem::new()));
    let mut session = Session::new(agent);

    // The first byte chooses the piece size (0: all at once).
    let (piece, input) = match data.split_first() {
        Some((&p, rest)) => (usize::from(p % 16), rest),
        None => (0, data),
    };
    let mut out = Vec::new();
    if piece == 0 {
        session.feed(input, &mut out);
    } else {
        for chunk in input.chunks(piece) {
            session.feed(chunk, &mut out);
        }
    }
    check_replies(&out);

    out.clear();
    session.feed(
        b"\xff{\"execute\":\"guest-sync-delimited\",\"arguments\":{\"id\":424242}}",
        &mut out,
    );
    check_replies(&out);
    assert!(
        out.ends_with(b"\xff{\"return\":424242}\n"),
        "no sync reply after the input: {:?}",
        String::from_utf8_lossy(&out)
    );
    drop(session);
    let _ = std::fs::remove_dir_all(statedir());
});
