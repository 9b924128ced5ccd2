//! The agent through `Session`, without sockets: framing, errors, `id`
//! echo, policies, the frozen state and its persistence, thaw after a
//! foreign freeze, timeouts. Machine-changing commands go to a
//! `FakeSystem`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use qga_agent::session::FLUSH_THRESHOLD;
use qga_agent::system::testing::{Call, FakeSystem, Op};
use qga_agent::system::SuspendMode;
use qga_agent::{Agent, AgentConfig, RpcPolicy, Session};
use qga_types::runtime::CommandError;
use qga_types::GuestSetTimeArgs;
use serde_json::{json, Value};

struct Harness {
    fake: FakeSystem,
    dir: tempfile::TempDir,
    session: Session,
}

impl Harness {
    fn new() -> Harness {
        Harness::with(|_| {})
    }

    fn with(configure: impl FnOnce(&mut AgentConfig)) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let fake = FakeSystem::new();
        let mut config = AgentConfig::new(dir.path());
        configure(&mut config);
        let session = Session::new(Agent::new(config, Box::new(fake.clone())));
        Harness { fake, dir, session }
    }

    /// A new agent on the same state directory and fake machine, as after
    /// a restart.
    fn restart(self) -> Harness {
        let config = AgentConfig::new(self.dir.path());
        let session = Session::new(Agent::new(config, Box::new(self.fake.clone())));
        Harness { session, ..self }
    }

    fn agent(&self) -> &Arc<Agent> {
        self.session.agent()
    }

    fn raw(&mut self, input: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        self.session.feed(input, &mut out);
        out
    }

    /// The replies to `input`, one JSON value per line.
    fn replies(&mut self, input: &[u8]) -> Vec<Value> {
        let out = self.raw(input);
        let text = std::str::from_utf8(&out).expect("replies are UTF-8 without a delimiter");
        assert!(
            text.is_empty() || text.ends_with('\n'),
            "reply not terminated: {text:?}"
        );
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad reply line {l:?}: {e}")))
            .collect()
    }

    fn one(&mut self, request: Value) -> Value {
        let replies = self.replies(request.to_string().as_bytes());
        assert_eq!(replies.len(), 1, "one reply to {request}: {replies:?}");
        replies.into_iter().next().unwrap()
    }

    fn execute(&mut self, command: &str) -> Value {
        self.one(json!({ "execute": command }))
    }
}

fn error(class: &str, desc: &str) -> Value {
    json!({"error": {"class": class, "desc": desc}})
}

fn generic(desc: &str) -> Value {
    error("GenericError", desc)
}

fn disabled(command: &str) -> Value {
    error("CommandNotFound", &format!("Command {command} has been disabled"))
}

fn enabled_in_info(h: &mut Harness) -> Vec<(String, bool)> {
    let info = h.execute("guest-info");
    info["return"]["supported_commands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap().to_string(), c["enabled"].as_bool().unwrap()))
        .collect()
}

#[test]
fn ping_sync_and_id_echo() {
    let mut h = Harness::new();
    assert_eq!(h.execute("guest-ping"), json!({"return": {}}));
    assert_eq!(
        h.one(json!({"execute": "guest-ping", "id": {"any": ["json", 1]}})),
        json!({"return": {}, "id": {"any": ["json", 1]}})
    );
    assert_eq!(
        h.one(json!({"execute": "guest-sync", "arguments": {"id": -77}, "id": "x"})),
        json!({"return": -77, "id": "x"})
    );
}

#[test]
fn sync_delimited_writes_0xff_before_its_reply_only() {
    let mut h = Harness::new();
    let out = h.raw(br#"{"execute":"guest-sync-delimited","arguments":{"id":12345}}"#);
    assert_eq!(out[0], 0xFF);
    let reply: Value = serde_json::from_slice(&out[1..]).unwrap();
    assert_eq!(reply, json!({"return": 12345}));
    assert!(out.ends_with(b"\n"));
    // A failed call has no delimiter.
    let out = h.raw(br#"{"execute":"guest-sync-delimited","arguments":{}}"#);
    assert_ne!(out[0], 0xFF);
}

#[test]
fn envelope_and_argument_errors_match_qemu_ga() {
    let mut h = Harness::new();
    let cases = [
        (json!([1]), generic("QMP input must be a JSON object")),
        (json!(12), generic("QMP input must be a JSON object")),
        (
            json!({"execute": "guest-ping", "foo": 1}),
            generic("QMP input member 'foo' is unexpected"),
        ),
        (
            json!({"execute": 1}),
            generic("QMP input member 'execute' must be a string"),
        ),
        (json!({"arguments": {}}), generic("QMP input lacks member 'execute'")),
        (
            json!({"execute": "guest-ping", "arguments": []}),
            generic("QMP input member 'arguments' must be an object"),
        ),
        (
            json!({"execute": "nope"}),
            error("CommandNotFound", "The command nope has not been found"),
        ),
        (
            json!({"execute": "guest-sync", "arguments": {}}),
            generic("Parameter 'id' is missing"),
        ),
        (
            json!({"execute": "guest-sync", "arguments": {"id": "a"}}),
            generic("Invalid parameter type for 'id', expected: integer"),
        ),
        (
            json!({"execute": "guest-sync", "arguments": {"id": 1, "x": 2}}),
            generic("Parameter 'x' is unexpected"),
        ),
        (json!({"execute": "guest-get-devices"}), disabled("guest-get-devices")),
    ];
    for (request, expected) in cases {
        // A trailing space ends a top-level scalar such as `12`.
        let replies = h.replies(format!("{request} ").as_bytes());
        assert_eq!(replies, vec![expected], "for {request}");
    }
    // The id is echoed on errors too.
    assert_eq!(
        h.one(json!({"execute": "nope", "id": 9})),
        json!({"error": {"class": "CommandNotFound", "desc": "The command nope has not been found"}, "id": 9})
    );
}

#[test]
fn malformed_json_gets_one_error_then_recovery() {
    let mut h = Harness::new();
    let ping = json!({"return": {}});
    assert_eq!(
        h.replies(br#"{"execute":"guest-ping",} {"execute":"guest-ping"}"#),
        vec![generic("JSON parse error, expecting value"), ping.clone()]
    );
    assert_eq!(
        h.replies(br#"{"execute":"guest-ping","id":1,"id":2}{"execute":"guest-ping"}"#),
        vec![generic("JSON parse error, duplicate key"), ping.clone()]
    );
    assert_eq!(
        h.replies(b"nul {\"execute\":\"guest-ping\"}"),
        vec![generic("JSON parse error, invalid keyword 'nul'"), ping.clone()]
    );
    assert_eq!(h.replies(b"}"), vec![generic("JSON parse error, expecting value")]);
}

#[test]
fn a_stray_byte_gets_one_error_at_once_and_input_resumes_at_a_structural_character() {
    let mut h = Harness::new();
    assert_eq!(h.replies(b"@"), vec![generic("JSON parse error, stray '@'")]);
    // Still skipping: everything up to the newline is ignored.
    assert_eq!(h.replies(b"x \"y\" 12 \n"), Vec::<Value>::new());
    // Skipped up to the brace, as qemu-ga does.
    assert_eq!(
        h.replies(b"@@@ \"x\" {\"execute\":\"guest-ping\"}"),
        vec![generic("JSON parse error, stray '@'"), json!({"return": {}})]
    );
    // A colon or comma ends the skip too, and is then an error of its own
    // (qemu-ga 7.2 answers these three lines the same way).
    assert_eq!(
        h.replies(b"@ : 1 {\"execute\":\"guest-ping\"}"),
        vec![
            generic("JSON parse error, stray '@'"),
            generic("JSON parse error, expecting value"),
            generic("QMP input must be a JSON object"),
            json!({"return": {}})
        ]
    );
    assert_eq!(h.replies(b"\x01"), vec![generic("JSON parse error, stray '\u{1}'")]);
    assert_eq!(
        h.replies(b"\n\xc3\xa9\n"),
        vec![generic("JSON parse error, stray '\u{FFFD}'")]
    );
}

#[test]
fn delimiter_drops_partial_input_with_one_error() {
    let mut h = Harness::new();
    assert_eq!(h.replies(br#"{"execute":"guest-sy"#), Vec::<Value>::new());
    assert_eq!(
        h.replies(b"\xff{\"execute\":\"guest-ping\"}"),
        vec![generic("JSON parse error, stray '\u{FFFD}'"), json!({"return": {}})]
    );
    // After a 0xFF inside a string, the rest of that request is skipped up
    // to a bracket or brace (here its closing brace, an error of its own,
    // as with qemu-ga), so its quotes never pair up with the next
    // request's; the same for a bare token after a 0xFF.
    assert_eq!(
        h.replies(b"{\"execute\":\"guest-\xffping\"}\n{\"execute\":\"guest-sync\",\"arguments\":{\"id\":4}}"),
        vec![
            generic("JSON parse error, stray '\u{FFFD}'"),
            generic("JSON parse error, expecting value"),
            json!({"return": 4})
        ]
    );
    assert_eq!(
        h.replies(b"\xff 123 {\"execute\":\"guest-ping\"}"),
        vec![generic("JSON parse error, stray '\u{FFFD}'"), json!({"return": {}})]
    );
}

#[test]
fn requests_split_anywhere_or_pipelined() {
    let mut h = Harness::new();
    let input = br#"{"execute":"guest-sync","arguments":{"id":1}}{"execute":"guest-ping","id":"}{"} {"execute":"guest-sync","arguments":{"id":3}}"#;
    let expected = vec![
        json!({"return": 1}),
        json!({"return": {}, "id": "}{"}),
        json!({"return": 3}),
    ];
    assert_eq!(h.replies(input), expected);
    let mut out = Vec::new();
    for b in input {
        h.session.feed(&[*b], &mut out);
    }
    let replies: Vec<Value> = out
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    assert_eq!(replies, expected);
}

#[test]
fn nesting_and_size_limits_give_one_error_then_recover() {
    let mut h = Harness::new();
    let deep = format!("{}{}{{\"execute\":\"guest-ping\"}}", "[".repeat(1025), "]".repeat(1025));
    assert_eq!(
        h.replies(deep.as_bytes()),
        vec![generic("JSON nesting depth limit exceeded"), json!({"return": {}})]
    );
    // Exactly at the limit is fine: it is a JSON array, not an object.
    let at_limit = format!("{}{}", "[".repeat(1024), "]".repeat(1024));
    assert_eq!(
        h.replies(at_limit.as_bytes()),
        vec![generic("QMP input must be a JSON object")]
    );
    // Tokens: `[`, n numbers, n - 1 commas and `]`. With 1 Mi numbers
    // that is one past qemu-ga's limit of 2 Mi (its answer to both of
    // these requests is the same), with one number fewer it passes.
    let numbers = 1 << 20;
    let many = format!("[{}1]{{\"execute\":\"guest-ping\"}}", "1,".repeat(numbers - 1));
    assert_eq!(
        h.replies(many.as_bytes()),
        vec![generic("JSON token count limit exceeded"), json!({"return": {}})]
    );
    let fewer = format!("[{}1]", "1,".repeat(numbers - 2));
    assert_eq!(
        h.replies(fewer.as_bytes()),
        vec![generic("QMP input must be a JSON object")]
    );

    // A deep id is echoed, by inline commands and by worker commands.
    let deep_id = format!("{}1{}", "[".repeat(1023), "]".repeat(1023));
    for command in ["guest-ping", "guest-get-time", "guest-get-devices"] {
        let request = format!("{{\"execute\":\"{command}\",\"id\":{deep_id}}}");
        let mut out = Vec::new();
        h.session.feed(request.as_bytes(), &mut out);
        // Checked without building a deep value on this thread's stack.
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.ends_with(&format!(",\"id\":{deep_id}}}\n")),
            "{command}: {}",
            &text[..80.min(text.len())]
        );
    }

    let big = format!("{{\"execute\":\"guest-ping\",\"id\":\"{}\"}}", "x".repeat(64 << 20));
    let mut out = Vec::new();
    for chunk in big.as_bytes().chunks(1 << 20) {
        h.session.feed(chunk, &mut out);
    }
    h.session.feed(br#"{"execute":"guest-ping"}"#, &mut out);
    let replies: Vec<Value> = out
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    assert_eq!(
        replies,
        vec![generic("JSON token size limit exceeded"), json!({"return": {}})]
    );
}

#[test]
fn single_quoted_strings_are_accepted_like_qemu() {
    let mut h = Harness::new();
    assert_eq!(
        h.replies(b"{'execute':'guest-sync','arguments':{'id':5},'id':'it\\'s'}"),
        vec![json!({"return": 5, "id": "it's"})]
    );
    // A double quote is plain text inside single quotes, also for framing.
    assert_eq!(
        h.replies(b"{'execute':'guest-ping','id':'say \"hi\"'} {'execute':'guest-ping','id':2}"),
        vec![
            json!({"return": {}, "id": "say \"hi\""}),
            json!({"return": {}, "id": 2})
        ]
    );
}

#[test]
fn a_new_session_is_not_swallowed_by_the_previous_clients_half_request() {
    let mut h = Harness::new();
    assert_eq!(h.replies(br#"{"execute":"guest-ping","id":[1,"#), Vec::<Value>::new());
    // The next client of the same agent.
    let mut next = Session::new(h.agent().clone());
    let mut out = Vec::new();
    next.feed(br#"{"execute":"guest-sync","arguments":{"id":8}}"#, &mut out);
    assert_eq!(serde_json::from_slice::<Value>(&out).unwrap(), json!({"return": 8}));
    // And `reset` does the same for a session that is reused.
    assert_eq!(h.replies(b"["), Vec::<Value>::new());
    h.session.reset();
    assert_eq!(h.execute("guest-ping"), json!({"return": {}}));
}

#[test]
fn guest_info_lists_every_command_with_flags() {
    let mut h = Harness::new();
    let info = h.execute("guest-info");
    let commands = info["return"]["supported_commands"].as_array().unwrap();
    assert_eq!(commands.len(), qga_types::COMMANDS.len());
    let find = |name: &str| commands.iter().find(|c| c["name"] == name).unwrap().clone();
    assert_eq!(
        find("guest-get-devices"),
        json!({"name": "guest-get-devices", "enabled": false, "success-response": true})
    );
    assert_eq!(
        find("guest-shutdown"),
        json!({"name": "guest-shutdown", "enabled": true, "success-response": false})
    );
    assert_eq!(find("guest-suspend-ram")["success-response"], false);
    assert_eq!(find("guest-ping")["enabled"], true);
    assert_eq!(info["return"]["version"], env!("CARGO_PKG_VERSION"));
}

#[test]
fn block_and_allow_lists_disable_commands_and_show_in_guest_info() {
    let mut h = Harness::with(|c| c.policy = RpcPolicy::new(&["guest-ping", "guest-exec"], &[]));
    assert_eq!(h.execute("guest-ping"), disabled("guest-ping"));
    assert_eq!(
        h.one(json!({"execute": "guest-exec", "arguments": {"path": "/bin/true"}, "id": 4})),
        {
            let mut d = disabled("guest-exec");
            d["id"] = json!(4);
            d
        }
    );
    let info = enabled_in_info(&mut h);
    assert!(info.contains(&("guest-ping".into(), false)));
    assert!(info.contains(&("guest-exec".into(), false)));
    assert!(info.contains(&("guest-sync".into(), true)));

    // Allow list: only those; the block list wins over it.
    let mut h =
        Harness::with(|c| c.policy = RpcPolicy::new(&["guest-ping"], &["guest-ping", "guest-info", "guest-sync"]));
    assert_eq!(h.execute("guest-ping"), disabled("guest-ping"));
    assert_eq!(h.execute("guest-get-time"), disabled("guest-get-time"));
    assert_eq!(
        h.one(json!({"execute": "guest-sync", "arguments": {"id": 2}})),
        json!({"return": 2})
    );
    let enabled: Vec<String> = enabled_in_info(&mut h)
        .into_iter()
        .filter(|(_, e)| *e)
        .map(|(n, _)| n)
        .collect();
    assert_eq!(enabled, ["guest-info", "guest-sync"]);
    // Unknown names still say "not found", not "disabled".
    assert_eq!(
        h.execute("guest-nope"),
        error("CommandNotFound", "The command guest-nope has not been found")
    );
}

const FROZEN_ENABLED: [&str; 6] = [
    "guest-ping",
    "guest-info",
    "guest-sync",
    "guest-sync-delimited",
    "guest-fsfreeze-status",
    "guest-fsfreeze-thaw",
];

#[test]
fn while_frozen_only_six_commands_stay_enabled() {
    let mut h = Harness::new();
    assert_eq!(h.execute("guest-fsfreeze-status"), json!({"return": "thawed"}));
    assert_eq!(h.execute("guest-fsfreeze-freeze"), json!({"return": 3}));
    assert_eq!(h.fake.calls(), vec![Call::Freeze(None)]);
    assert_eq!(h.execute("guest-fsfreeze-status"), json!({"return": "frozen"}));
    for (name, enabled) in enabled_in_info(&mut h) {
        assert_eq!(enabled, FROZEN_ENABLED.contains(&name.as_str()), "{name}");
    }
    assert_eq!(h.execute("guest-get-time"), disabled("guest-get-time"));
    assert_eq!(h.execute("guest-fsfreeze-freeze"), disabled("guest-fsfreeze-freeze"));
    assert_eq!(
        h.one(json!({"execute": "guest-file-open", "arguments": {"path": "/etc/hostname"}})),
        disabled("guest-file-open")
    );
    assert_eq!(h.execute("guest-shutdown"), disabled("guest-shutdown"));
    assert_eq!(h.execute("guest-ping"), json!({"return": {}}));
    assert_eq!(h.execute("guest-fsfreeze-thaw"), json!({"return": 3}));
    assert_eq!(h.execute("guest-fsfreeze-status"), json!({"return": "thawed"}));
    assert!(enabled_in_info(&mut h)
        .into_iter()
        .all(|(n, e)| e || n == "guest-get-devices"));
    assert_eq!(h.fake.calls(), vec![Call::Freeze(None), Call::Thaw]);
}

#[test]
fn freeze_list_passes_the_mount_points() {
    let mut h = Harness::new();
    let reply = h.one(json!({"execute": "guest-fsfreeze-freeze-list", "arguments": {"mountpoints": ["/", "/srv"]}}));
    assert_eq!(reply, json!({"return": 2}));
    assert_eq!(
        h.fake.calls(),
        vec![Call::Freeze(Some(vec!["/".into(), "/srv".into()]))]
    );
}

#[test]
fn a_failed_freeze_leaves_the_agent_thawed() {
    let mut h = Harness::new();
    h.fake.fail(
        Op::Freeze,
        CommandError::generic("failed to freeze /srv: Device or resource busy"),
    );
    assert_eq!(
        h.execute("guest-fsfreeze-freeze"),
        generic("failed to freeze /srv: Device or resource busy")
    );
    assert_eq!(h.execute("guest-fsfreeze-status"), json!({"return": "thawed"}));
    assert!(!h.agent().freeze_marker().exists());
    assert!(h.agent().is_enabled("guest-get-time"));
    // Freezing is enabled again, and this time works.
    h.fake.succeed(Op::Freeze);
    assert_eq!(h.execute("guest-fsfreeze-freeze"), json!({"return": 3}));
}

#[test]
fn the_frozen_state_survives_an_agent_restart() {
    let mut h = Harness::new();
    assert_eq!(h.execute("guest-fsfreeze-freeze"), json!({"return": 3}));
    assert!(h.agent().freeze_marker().exists());
    let mut h = h.restart();
    assert_eq!(h.execute("guest-fsfreeze-status"), json!({"return": "frozen"}));
    assert_eq!(h.execute("guest-get-time"), disabled("guest-get-time"));
    assert_eq!(h.execute("guest-fsfreeze-thaw"), json!({"return": 3}));
    assert!(!h.agent().freeze_marker().exists());
    let mut h = h.restart();
    assert_eq!(h.execute("guest-fsfreeze-status"), json!({"return": "thawed"}));
}

#[test]
fn thaw_always_asks_the_system_even_after_a_foreign_freeze() {
    let mut h = Harness::new();
    h.fake.freeze_externally();
    // The agent did not freeze anything, but thaw still reaches the system.
    assert_eq!(h.execute("guest-fsfreeze-status"), json!({"return": "thawed"}));
    assert_eq!(h.execute("guest-fsfreeze-thaw"), json!({"return": 3}));
    assert_eq!(h.fake.calls(), vec![Call::Thaw]);
    assert_eq!(h.fake.frozen(), 0);
    // And thawing twice is harmless.
    assert_eq!(h.execute("guest-fsfreeze-thaw"), json!({"return": 0}));
}

#[test]
fn a_failed_thaw_keeps_the_frozen_state() {
    let mut h = Harness::new();
    h.execute("guest-fsfreeze-freeze");
    h.fake
        .fail(Op::Thaw, CommandError::generic("failed to thaw /: Invalid argument"));
    assert_eq!(
        h.execute("guest-fsfreeze-thaw"),
        generic("failed to thaw /: Invalid argument")
    );
    assert_eq!(h.execute("guest-fsfreeze-status"), json!({"return": "frozen"}));
    h.fake.succeed(Op::Thaw);
    assert_eq!(h.execute("guest-fsfreeze-thaw"), json!({"return": 3}));
}

#[test]
fn machine_changing_commands_go_through_the_system() {
    let mut h = Harness::new();
    // No reply on success for shutdown and suspend.
    assert_eq!(
        h.replies(br#"{"execute":"guest-shutdown","arguments":{"mode":"reboot"}}"#),
        Vec::<Value>::new()
    );
    assert_eq!(h.replies(br#"{"execute":"guest-shutdown"}"#), Vec::<Value>::new());
    assert_eq!(
        h.execute_args("guest-shutdown", json!({"mode": "explode"})),
        generic("mode is invalid (valid values are: halt|powerdown|reboot")
    );
    for command in ["guest-suspend-disk", "guest-suspend-ram", "guest-suspend-hybrid"] {
        assert_eq!(
            h.replies(format!("{{\"execute\":\"{command}\"}}").as_bytes()),
            Vec::<Value>::new()
        );
    }
    assert_eq!(
        h.execute_args("guest-set-time", json!({"time": 1_700_000_000_000_000_000i64})),
        json!({"return": {}})
    );
    assert_eq!(h.execute("guest-set-time"), json!({"return": {}}));
    assert_eq!(
        h.execute_args(
            "guest-set-vcpus",
            json!({"vcpus": [{"logical-id": 1, "online": false}]})
        ),
        json!({"return": 1})
    );
    assert_eq!(
        h.execute_args(
            "guest-set-user-password",
            json!({"username": "root", "password": "aGk=", "crypted": false})
        ),
        json!({"return": {}})
    );
    assert_eq!(
        h.execute_args(
            "guest-set-memory-blocks",
            json!({"mem-blks": [{"phys-index": 7, "online": true}]})
        ),
        json!({"return": [{"phys-index": 7, "response": "success"}]})
    );
    assert_eq!(h.execute("guest-fstrim"), json!({"return": {"paths": []}}));
    let calls: Vec<String> = h.fake.calls().iter().map(|c| format!("{c:?}")).collect();
    let expected = [
        "Shutdown(GuestShutdownArgs { mode: Some(\"reboot\") })",
        "Shutdown(GuestShutdownArgs { mode: None })",
    ];
    assert_eq!(calls[..2], expected);
    let calls = h.fake.calls();
    assert_eq!(
        calls[2..5],
        [
            Call::Suspend(SuspendMode::Disk),
            Call::Suspend(SuspendMode::Ram),
            Call::Suspend(SuspendMode::Hybrid)
        ]
    );
    assert_eq!(calls.len(), 11, "{calls:?}");
    assert_eq!(
        calls[5..7],
        [
            Call::SetTime(GuestSetTimeArgs {
                time: Some(1_700_000_000_000_000_000)
            }),
            Call::SetTime(GuestSetTimeArgs { time: None })
        ]
    );
    let ops: Vec<Op> = calls[7..].iter().map(Call::op).collect();
    assert_eq!(
        ops,
        [Op::SetVcpus, Op::SetUserPassword, Op::SetMemoryBlocks, Op::Fstrim]
    );
    // A failure is the client's error reply, with its id.
    h.fake.fail(
        Op::Shutdown,
        CommandError::generic("child process has failed to shutdown"),
    );
    assert_eq!(
        h.one(json!({"execute": "guest-shutdown", "id": 1})),
        json!({"error": {"class": "GenericError", "desc": "child process has failed to shutdown"}, "id": 1})
    );
}

impl Harness {
    fn execute_args(&mut self, command: &str, arguments: Value) -> Value {
        self.one(json!({ "execute": command, "arguments": arguments }))
    }
}

#[test]
fn a_hung_command_times_out_and_the_agent_stays_responsive() {
    let mut h = Harness::with(|c| c.command_timeout = Duration::from_millis(200));
    h.fake.hang(Op::SetTime);
    let started = Instant::now();
    assert_eq!(
        h.one(json!({"execute": "guest-set-time", "id": 3})),
        json!({"error": {"class": "GenericError", "desc": "Command guest-set-time timed out after 0.2 seconds"}, "id": 3})
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(h.agent().abandoned_handlers(), 1);
    // Served at once, inline and through a fresh worker.
    assert_eq!(h.execute("guest-ping"), json!({"return": {}}));
    assert_eq!(
        h.execute_args("guest-fstrim", json!({"minimum": 1})),
        json!({"return": {"paths": []}})
    );
    h.fake.release();
    let deadline = Instant::now() + Duration::from_secs(10);
    while h.agent().abandoned_handlers() != 0 {
        assert!(Instant::now() < deadline, "the released handler never finished");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_freeze_that_completes_after_its_timeout_is_undone() {
    let mut h = Harness::with(|c| c.freeze_timeout = Duration::from_millis(200));
    h.fake.hang(Op::Freeze);
    let reply = h.execute("guest-fsfreeze-freeze");
    assert_eq!(
        reply["error"]["desc"],
        "Command guest-fsfreeze-freeze timed out after 0.2 seconds"
    );
    // Status still answers while the freeze hangs.
    assert_eq!(h.execute("guest-fsfreeze-status"), json!({"return": "frozen"}));
    h.fake.release();
    let deadline = Instant::now() + Duration::from_secs(10);
    while h.agent().abandoned_handlers() != 0 {
        assert!(Instant::now() < deadline, "the released freeze never finished");
        std::thread::sleep(Duration::from_millis(10));
    }
    // The client was told it failed, so the agent thawed it.
    assert_eq!(h.fake.calls(), vec![Call::Freeze(None), Call::Thaw]);
    assert_eq!(h.fake.frozen(), 0);
    assert_eq!(h.execute("guest-fsfreeze-status"), json!({"return": "thawed"}));
}

/// Whether a process with exactly these arguments runs (zombies excluded).
fn running(argv: &[&str]) -> bool {
    let wanted: Vec<u8> = argv.iter().flat_map(|a| a.bytes().chain([0])).collect();
    std::fs::read_dir("/proc").unwrap().flatten().any(|entry| {
        let dir = entry.path();
        std::fs::read(dir.join("cmdline")).is_ok_and(|c| c == wanted)
            && !std::fs::read_to_string(dir.join("stat")).is_ok_and(|s| s.contains(") Z "))
    })
}

#[test]
fn a_guest_exec_that_answers_after_its_timeout_has_its_process_killed() {
    // Every worker command times out at once; the exec still starts its
    // process, whose pid the client never learns.
    let mut h = Harness::with(|c| c.command_timeout = Duration::ZERO);
    let argv = ["sleep", "37.25"];
    let reply = h.execute_args("guest-exec", json!({"path": argv[0], "arg": [argv[1]]}));
    assert_eq!(reply["error"]["desc"], "Command guest-exec timed out after 0 seconds");
    let deadline = Instant::now() + Duration::from_secs(10);
    while h.agent().abandoned_handlers() != 0 || running(&argv) {
        assert!(Instant::now() < deadline, "the orphaned process still runs");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn thaw_works_while_a_timed_out_freeze_still_hangs() {
    let mut h = Harness::with(|c| c.freeze_timeout = Duration::from_millis(200));
    h.fake.hang(Op::Freeze);
    let reply = h.execute("guest-fsfreeze-freeze");
    assert_eq!(
        reply["error"]["desc"],
        "Command guest-fsfreeze-freeze timed out after 0.2 seconds"
    );
    assert_eq!(h.fake.hanging(), 1);
    // The hung freeze holds no lock the thaw needs.
    assert_eq!(h.execute("guest-fsfreeze-thaw"), json!({"return": 0}));
    assert_eq!(h.execute("guest-fsfreeze-status"), json!({"return": "thawed"}));
    assert!(h.agent().is_enabled("guest-get-time"));
    h.fake.release();
    let deadline = Instant::now() + Duration::from_secs(10);
    while h.agent().abandoned_handlers() != 0 {
        assert!(Instant::now() < deadline, "the released freeze never finished");
        std::thread::sleep(Duration::from_millis(10));
    }
    // The late freeze was undone too.
    assert_eq!(h.fake.calls(), vec![Call::Freeze(None), Call::Thaw, Call::Thaw]);
    assert_eq!(h.fake.frozen(), 0);
    assert_eq!(h.execute("guest-fsfreeze-status"), json!({"return": "thawed"}));
}

#[test]
fn large_pipelined_output_is_flushed_as_it_grows() {
    let mut h = Harness::new();
    let one_reply = h.raw(br#"{"execute":"guest-info"}"#).len();
    let count = 2 * FLUSH_THRESHOLD / one_reply + 10;
    let input = br#"{"execute":"guest-info"}"#.repeat(count);
    let (mut flushed, mut out) = (Vec::new(), Vec::new());
    h.session.feed_with(&input, &mut out, |out| {
        // At most one reply past the threshold is held before a flush.
        assert!(out.len() < FLUSH_THRESHOLD + one_reply, "{} bytes held", out.len());
        flushed.push(std::mem::take(out));
        true
    });
    assert!(flushed.len() >= 2, "{} flushes", flushed.len());
    flushed.push(out);
    assert_eq!(flushed.concat(), h.raw(&input));

    // A flush that fails stops the reading.
    let mut out = Vec::new();
    h.session.feed_with(&input, &mut out, |_| false);
    assert!(out.len() < FLUSH_THRESHOLD + one_reply);
}
