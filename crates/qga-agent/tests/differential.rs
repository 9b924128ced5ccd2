//! Differential test: the same raw bytes go to qemu-ga and to our agent,
//! each on a unix socket in its own temporary directory, and the replies
//! are compared as JSON.
//!
//! Every transcript ends with a `guest-sync` whose reply marks the end of
//! the replies (and proves the agent recovered). Replies whose request id
//! starts with `mask:` have their `return` replaced by its JSON type
//! (times, handles); ids starting with `shape:` have it replaced by its
//! structure (keys and value types, recursively), `shapes:` likewise but
//! keeping each distinct element shape of an array. Nothing sent here
//! changes the machine; files are only written under a temporary
//! directory.
//!
//! Deliberate differences are handled where they arise and named in
//! `DELIBERATE` below.

mod agent_harness;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use agent_harness::{
    is_sentinel_reply, qemu_ga_available, render_items, sentinel_request, show_bytes, AgentProcess, Conn, Item, Which,
    REPLY_TIMEOUT,
};
use serde_json::{json, Value};

const OUR_AGENT: &str = env!("CARGO_BIN_EXE_qga-agent");

/// Where we differ from qemu-ga 7.2 on purpose, and why; the comparisons
/// above allow exactly these.
#[allow(dead_code)] // documentation, kept next to the code that allows them
const DELIBERATE: &[(&str, &str)] = &[
    (
        "nesting limit",
        "past depth 1024 qemu-ga 7.2 sends one error per leftover token (over a thousand replies); \
         we send one error and skip to the end of the message (collapse_nesting_errors)",
    ),
    (
        "parse error wording",
        "the words after 'JSON parse error, ' come from each parser; class and prefix are compared \
         (without_parse_error_details)",
    ),
    (
        "number of parse errors",
        "qemu-ga's lexer often answers one broken message with two errors, and a run of 0xFF bytes \
         irregularly (two give one error, three give three); we answer one per broken message or 0xFF \
         (collapse_parse_errors)",
    ),
    (
        "fresh reader per connection",
        "qemu-ga keeps half a request from the previous client and swallows the next client's request \
         (half_request_then_new_client)",
    ),
    (
        "commands newer than 7.2",
        "our schema is QEMU 10.2's: guest-get-load and guest-network-get-route answer CommandNotFound \
         in qemu-ga 7.2; guest-info flags are compared for the commands both know",
    ),
    ("guest-info version", "each agent reports its own version; not compared"),
    (
        "message size limit",
        "not compared: qemu-ga 7.2 needs minutes for one 64 MiB message; the soak test covers ours",
    ),
];

/// Differences no comparison rule allows, by case name, with the reason
/// (also in the README's list). Each must still differ (see
/// [`Report::push`]), so the list stays true.
const PENDING: &[(&str, &str)] = &[(
    "negative zero",
    "-0 for an integer argument: qemu-ga takes it as 0; serde_json parses -0 as the float -0.0 \
     (indistinguishable from -0.0, which qemu-ga refuses too), so we refuse it as not an integer",
)];

/// `AGENTVERIFY_OURS` is set (both agents are qemu-ga): checks of our
/// own behaviour are skipped and no difference is expected.
fn self_check() -> bool {
    std::env::var_os("AGENTVERIFY_OURS").is_some()
}

struct Pair {
    qemu: AgentProcess,
    ours: AgentProcess,
}

impl Pair {
    fn start(test: &str, extra: &[&str]) -> Option<Pair> {
        if !qemu_ga_available(test) {
            return None;
        }
        // AGENTVERIFY_OURS=/usr/sbin/qemu-ga checks the harness itself:
        // qemu-ga against qemu-ga must show no difference.
        let ours = Path::new(OUR_AGENT);
        Some(Pair {
            qemu: AgentProcess::start(Which::QemuGa, ours, extra),
            ours: AgentProcess::start(Which::Ours, ours, extra),
        })
    }

    fn agents(&self) -> [&AgentProcess; 2] {
        [&self.qemu, &self.ours]
    }
}

/// How the bytes of a transcript are written.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Writes {
    /// The whole transcript in one write.
    One,
    /// One write per byte.
    Bytewise,
}

/// How long one transcript may take. Both agents answer in milliseconds;
/// running out means the agent did not recover.
const TRANSCRIPT_TIMEOUT: Duration = Duration::from_secs(5);

/// Sends `bytes` then the sentinel on a new connection; returns every
/// item before the sentinel's reply. Without that reply, the items end
/// with a note naming the agent, so that the case differs even when
/// neither agent recovered.
fn transcript(agent: &AgentProcess, bytes: &[u8], writes: Writes) -> Vec<Item> {
    let mut conn = agent.connect();
    match writes {
        Writes::One => conn.send(bytes),
        Writes::Bytewise => conn.send_bytewise(bytes),
    }
    conn.send(sentinel_request().as_bytes());
    let mut items = match conn.try_read_until(TRANSCRIPT_TIMEOUT, |items| items.iter().any(is_sentinel_reply)) {
        Ok(items) => items,
        Err(failure) => {
            eprintln!("{failure}");
            let mut items = std::mem::take(&mut conn.items);
            items.truncate(20);
            items.push(Item::Garbage(format!(
                "NO REPLY from {} to the guest-sync sent after this transcript within {TRANSCRIPT_TIMEOUT:?}",
                agent.which.name()
            )));
            return items;
        }
    };
    let last = items.pop();
    assert!(
        last.as_ref().is_some_and(is_sentinel_reply),
        "{}: replies after the sentinel:\n{}",
        agent.which.name(),
        render_items(&items, 40)
    );
    items
}

/// The prefix of every reply to input that does not parse.
const PARSE_ERROR: &str = "JSON parse error, ";

fn is_parse_error(item: &Item) -> bool {
    matches!(item, Item::Json(v) if v["error"]["desc"].as_str().is_some_and(|d| d.starts_with(PARSE_ERROR)))
}

/// For input that does not parse: qemu-ga's lexer sometimes answers one
/// broken message with several errors (it recovers token by token), and
/// its count for a run of 0xFF bytes is irregular (two give one error,
/// three give three); we answer one error per broken message or 0xFF
/// (deliberate). Runs of parse errors collapse to one, on both sides.
fn collapse_parse_errors(items: Vec<Item>) -> Vec<Item> {
    let mut out: Vec<Item> = Vec::new();
    for item in items {
        if is_parse_error(&item) && out.last().is_some_and(is_parse_error) {
            continue;
        }
        out.push(item);
    }
    out
}

/// The words after "JSON parse error, " come from each agent's own
/// parser (deliberate); the class and every other member stay compared.
fn without_parse_error_details(items: &[Item]) -> Vec<Item> {
    items
        .iter()
        .map(|item| {
            let mut item = item.clone();
            if is_parse_error(&item) {
                if let Item::Json(reply) = &mut item {
                    reply["error"]["desc"] = Value::from(format!("{PARSE_ERROR}..."));
                }
            }
            item
        })
        .collect()
}

/// The JSON type of a value, as a string.
fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Keys and value types, recursively. The elements of an array merge into
/// one shape (their keys united), so arrays of different lengths with the
/// same kind of element have the same shape; an empty array stays `[]`.
fn shape(v: &Value) -> Value {
    match v {
        Value::Array(items) => {
            let merged = items.iter().map(shape).reduce(merge_shapes);
            Value::Array(merged.into_iter().collect())
        }
        Value::Object(map) => Value::Object(map.iter().map(|(k, v)| (k.clone(), shape(v))).collect()),
        other => Value::String(type_name(other).into()),
    }
}

/// Like [`shape`], but an array becomes the sorted set of its elements'
/// distinct shapes: an element that lacks a member the others have
/// still shows, whatever the array's length or order.
fn distinct_shapes(v: &Value) -> Value {
    match v {
        Value::Array(items) => {
            let shapes: BTreeMap<String, Value> = items
                .iter()
                .map(|item| {
                    let s = distinct_shapes(item);
                    (canonical(&s), s)
                })
                .collect();
            Value::Array(shapes.into_values().collect())
        }
        Value::Object(map) => Value::Object(map.iter().map(|(k, v)| (k.clone(), distinct_shapes(v))).collect()),
        other => Value::String(type_name(other).into()),
    }
}

fn merge_shapes(a: Value, b: Value) -> Value {
    match (a, b) {
        (Value::Object(mut a), Value::Object(b)) => {
            for (k, vb) in b {
                let merged = match a.remove(&k) {
                    Some(va) => merge_shapes(va, vb),
                    None => vb,
                };
                a.insert(k, merged);
            }
            Value::Object(a)
        }
        (Value::Array(a), Value::Array(b)) => {
            Value::Array(a.into_iter().chain(b).reduce(merge_shapes).into_iter().collect())
        }
        (a, b) if a == b => a,
        (a, b) => {
            let mut kinds: BTreeSet<String> = BTreeSet::new();
            for s in [&a, &b] {
                match s {
                    Value::String(s) => kinds.extend(s.split('|').map(str::to_owned)),
                    other => {
                        kinds.insert(other.to_string());
                    }
                }
            }
            Value::String(kinds.into_iter().collect::<Vec<_>>().join("|"))
        }
    }
}

/// Applies the `mask:` and `shape:` rules of the request ids.
fn normalise(items: &[Item]) -> Vec<Item> {
    items
        .iter()
        .map(|item| match item {
            Item::Json(Value::Object(reply)) => {
                let mut reply = reply.clone();
                let id = reply.get("id").and_then(Value::as_str).unwrap_or("").to_owned();
                if let Some(ret) = reply.get_mut("return") {
                    if id.starts_with("mask:") {
                        *ret = Value::String(format!("<{}>", type_name(ret)));
                    } else if id.starts_with("shape:") {
                        *ret = shape(ret);
                    } else if id.starts_with("shapes:") {
                        *ret = distinct_shapes(ret);
                    }
                }
                Item::Json(Value::Object(reply))
            }
            other => other.clone(),
        })
        .collect()
}

/// A readable side-by-side listing of both reply sequences, or `None`
/// when they are equal.
fn diff(case: &str, request: &[u8], qemu: &[Item], ours: &[Item]) -> Option<String> {
    if qemu == ours {
        return None;
    }
    let mut out = format!("\n=== {case}: replies differ\nrequest: {}\n", show_bytes(request));
    let n = qemu.len().max(ours.len());
    let mut shown = 0;
    for i in 0..n {
        let (a, b) = (qemu.get(i), ours.get(i));
        if a == b {
            continue;
        }
        shown += 1;
        if shown > 12 {
            out.push_str("  ... more differences\n");
            break;
        }
        let show = |x: Option<&Item>| x.map_or("<nothing>".to_owned(), |x| x.to_string());
        out.push_str(&format!(
            "  [{i}] qemu-ga:   {}\n      qga-agent: {}\n",
            show(a),
            show(b)
        ));
    }
    out.push_str(&format!(
        "  ({} replies from qemu-ga, {} from qga-agent)\n",
        qemu.len(),
        ours.len()
    ));
    Some(out)
}

/// Collects the differences of one test, then fails with all of them.
#[derive(Default)]
struct Report {
    differences: Vec<String>,
    cases: usize,
    wording_notes: usize,
    pending: usize,
}

impl Report {
    /// Records the outcome of one case. A case listed in [`PENDING`] must
    /// still differ: once it no longer does, the test fails until it is
    /// taken off the list (except in a self-check, where nothing may
    /// differ).
    fn push(&mut self, case: &str, d: Option<String>) {
        self.cases += 1;
        let pending = PENDING.iter().find(|(name, _)| *name == case && !self_check());
        match (d, pending) {
            (Some(d), Some((_, why))) => {
                eprintln!("known difference ({why}):{d}");
                self.pending += 1;
            }
            (Some(d), None) => self.differences.push(d),
            (None, Some(_)) => self.differences.push(format!(
                "\n=== {case}: now equal to qemu-ga; take it off the PENDING list\n"
            )),
            (None, None) => {}
        }
    }

    /// Runs one transcript on both agents and compares the normalised
    /// replies.
    fn case(&mut self, pair: &Pair, case: &str, bytes: &[u8], writes: Writes) {
        let qemu = normalise(&transcript(&pair.qemu, bytes, writes));
        let ours = normalise(&transcript(&pair.ours, bytes, writes));
        self.push(case, diff(case, bytes, &qemu, &ours));
    }

    /// For input that does not parse: like [`Report::case`], but runs of
    /// parse errors count as one and the parse errors' wording is not
    /// compared (wording differences are printed as notes).
    fn malformed_case(&mut self, pair: &Pair, case: &str, bytes: &[u8], writes: Writes) {
        let qemu = collapse_parse_errors(normalise(&transcript(&pair.qemu, bytes, writes)));
        let ours = collapse_parse_errors(normalise(&transcript(&pair.ours, bytes, writes)));
        if let Some(note) = diff(case, bytes, &qemu, &ours) {
            if diff(
                case,
                bytes,
                &without_parse_error_details(&qemu),
                &without_parse_error_details(&ours),
            )
            .is_none()
            {
                eprintln!("note (parse error wording only, deliberate):{note}");
                self.wording_notes += 1;
            }
        }
        let (qemu, ours) = (without_parse_error_details(&qemu), without_parse_error_details(&ours));
        self.push(case, diff(case, bytes, &qemu, &ours));
    }

    fn finish(self, test: &str) {
        assert!(
            self.differences.is_empty(),
            "{test}: {} of {} cases differ from qemu-ga:\n{}",
            self.differences.len(),
            self.cases,
            self.differences.join("")
        );
        eprintln!(
            "{test}: {} cases equal to qemu-ga's ({} differ only in parse error wording), {} pending",
            self.cases - self.pending,
            self.wording_notes,
            self.pending
        );
    }
}

#[test]
fn ping_sync_and_sync_delimited() {
    let Some(pair) = Pair::start("ping_sync_and_sync_delimited", &[]) else {
        return;
    };
    let mut report = Report::default();
    let cases: &[(&str, &[u8])] = &[
        ("ping", br#"{"execute":"guest-ping"}"#),
        (
            "ping with empty arguments",
            br#"{"execute":"guest-ping","arguments":{}}"#,
        ),
        ("sync", br#"{"execute":"guest-sync","arguments":{"id":12345}}"#),
        (
            "sync negative",
            br#"{"execute":"guest-sync","arguments":{"id":-9223372036854775808}}"#,
        ),
        (
            "sync largest",
            br#"{"execute":"guest-sync","arguments":{"id":9223372036854775807}}"#,
        ),
        (
            "sync-delimited",
            br#"{"execute":"guest-sync-delimited","arguments":{"id":4711}}"#,
        ),
        (
            "sync-delimited after a host 0xFF",
            b"\xff{\"execute\":\"guest-sync-delimited\",\"arguments\":{\"id\":4712}}",
        ),
        (
            "0xFF flushes a half request",
            b"{\"execute\":\"guest-sync\",\"argum\xff{\"execute\":\"guest-sync-delimited\",\"arguments\":{\"id\":1}}",
        ),
        (
            "0xFF between requests",
            b"{\"execute\":\"guest-ping\"}\xff{\"execute\":\"guest-ping\"}",
        ),
        (
            "0xFF inside a string",
            b"{\"execute\":\"guest-\xffping\"}{\"execute\":\"guest-ping\"}",
        ),
        ("0xFF then a bare word", b"\xffabc{\"execute\":\"guest-ping\"}"),
        ("0xFF then a number", b"\xff5 {\"execute\":\"guest-ping\"}"),
        (
            "0xFF inside a top-level string",
            b"\"x\xff\"y\"{\"execute\":\"guest-ping\"}",
        ),
        (
            "0xFF inside a key",
            b"{\"exe\xffcute\":\"guest-ping\"}{\"execute\":\"guest-ping\"}",
        ),
        ("a stray byte then 0xFF", b"@\xff{\"execute\":\"guest-ping\"}"),
        ("0xFF then a stray byte", b"\xff@{\"execute\":\"guest-ping\"}"),
        ("0xFF, space, 0xFF", b"\xff \xff{\"execute\":\"guest-ping\"}"),
        ("two 0xFF in a message", b"{\"a\":1\xff\xff{\"execute\":\"guest-ping\"}"),
        (
            "sync-delimited without its id",
            br#"{"execute":"guest-sync-delimited"}"#,
        ),
        (
            "sync-delimited with a string id",
            br#"{"execute":"guest-sync-delimited","arguments":{"id":"x"},"id":1}"#,
        ),
        (
            "sync-delimited with an envelope id",
            br#"{"execute":"guest-sync-delimited","arguments":{"id":3},"id":"e"}"#,
        ),
    ];
    for (name, bytes) in cases {
        if bytes.contains(&0xFF) {
            report.malformed_case(&pair, name, bytes, Writes::One);
        } else {
            report.case(&pair, name, bytes, Writes::One);
        }
    }
    report.finish("ping_sync_and_sync_delimited");
}

/// `guest-info` for the commands both agents know: enabled and
/// success-response must agree. Version is not compared.
fn info_flags(conn: &mut Conn) -> (String, BTreeMap<String, (bool, bool)>) {
    let reply = conn.call(r#"{"execute":"guest-info"}"#);
    let ret = &reply["return"];
    let version = ret["version"]
        .as_str()
        .unwrap_or_else(|| panic!("no version in {reply}"))
        .to_owned();
    let flags = ret["supported_commands"]
        .as_array()
        .unwrap_or_else(|| panic!("no supported_commands in {reply}"))
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_owned(),
                (
                    c["enabled"].as_bool().unwrap(),
                    c["success-response"].as_bool().unwrap(),
                ),
            )
        })
        .collect();
    (version, flags)
}

fn compare_info_flags(pair: &Pair, case: &str) -> Option<String> {
    let (qemu_version, qemu) = info_flags(&mut pair.qemu.connect());
    let (our_version, ours) = info_flags(&mut pair.ours.connect());
    assert!(!our_version.is_empty(), "our guest-info has an empty version");
    let mut out = String::new();
    for (name, flags) in &qemu {
        match ours.get(name) {
            Some(o) if o == flags => {}
            Some(o) => out.push_str(&format!(
                "  {name}: qemu-ga {} enabled={} success-response={}, qga-agent {} enabled={} success-response={}\n",
                qemu_version, flags.0, flags.1, our_version, o.0, o.1
            )),
            None => out.push_str(&format!(
                "  {name}: listed by qemu-ga {qemu_version}, missing from ours\n"
            )),
        }
    }
    let only_ours: Vec<&String> = ours.keys().filter(|k| !qemu.contains_key(*k)).collect();
    eprintln!("{case}: commands only we list (newer than qemu-ga {qemu_version}): {only_ours:?}");
    (!out.is_empty()).then(|| format!("\n=== {case}: guest-info flags differ\n{out}"))
}

#[test]
fn guest_info_flags() {
    let Some(pair) = Pair::start("guest_info_flags", &[]) else {
        return;
    };
    let mut report = Report::default();
    report.push("guest-info flags", compare_info_flags(&pair, "guest-info flags"));
    report.finish("guest_info_flags");
}

#[test]
fn request_errors() {
    let Some(pair) = Pair::start("request_errors", &[]) else {
        return;
    };
    let mut report = Report::default();
    let cases: &[(&str, &[u8])] = &[
        ("unknown command", br#"{"execute":"guest-no-such-command"}"#),
        (
            "unknown command with id",
            br#"{"execute":"guest-no-such-command","id":1}"#,
        ),
        ("empty command name", br#"{"execute":""}"#),
        ("missing argument", br#"{"execute":"guest-sync"}"#),
        (
            "missing argument, empty arguments",
            br#"{"execute":"guest-sync","arguments":{}}"#,
        ),
        (
            "wrongly typed argument",
            br#"{"execute":"guest-sync","arguments":{"id":"seven"}}"#,
        ),
        (
            "float for an integer",
            br#"{"execute":"guest-sync","arguments":{"id":1.5}}"#,
        ),
        (
            "integer past int64",
            br#"{"execute":"guest-sync","arguments":{"id":9223372036854775808}}"#,
        ),
        (
            "integer below int64",
            br#"{"execute":"guest-sync","arguments":{"id":-9223372036854775809}}"#,
        ),
        (
            "integer past uint64",
            br#"{"execute":"guest-sync","arguments":{"id":18446744073709551616}}"#,
        ),
        (
            "exponent for an integer",
            br#"{"execute":"guest-sync","arguments":{"id":1e2}}"#,
        ),
        ("negative zero", br#"{"execute":"guest-sync","arguments":{"id":-0}}"#),
        (
            "bool for an integer",
            br#"{"execute":"guest-sync","arguments":{"id":true}}"#,
        ),
        (
            "null for an integer",
            br#"{"execute":"guest-sync","arguments":{"id":null}}"#,
        ),
        (
            "extra argument",
            br#"{"execute":"guest-sync","arguments":{"id":1,"extra":2}}"#,
        ),
        (
            "argument to a command without any",
            br#"{"execute":"guest-ping","arguments":{"x":1}}"#,
        ),
        ("arguments not an object", br#"{"execute":"guest-ping","arguments":[]}"#),
        ("arguments null", br#"{"execute":"guest-ping","arguments":null}"#),
        ("execute not a string", br#"{"execute":1}"#),
        ("execute missing", br#"{}"#),
        ("execute missing, arguments given", br#"{"arguments":{}}"#),
        ("unknown top-level key", br#"{"execute":"guest-ping","bogus":1}"#),
        ("unknown top-level key only", br#"{"foo":1}"#),
        ("exec-oob", br#"{"exec-oob":"guest-ping"}"#),
        ("array input", br#"[1,2]"#),
        ("number input", br#"5 "#),
        ("string input", br#""guest-ping""#),
        ("true input", br#"true "#),
        ("null input", br#"null "#),
        (
            "wrong type nested",
            br#"{"execute":"guest-file-open","arguments":{"path":7}}"#,
        ),
        (
            "optional with wrong type",
            br#"{"execute":"guest-file-open","arguments":{"path":"/x","mode":1}}"#,
        ),
        (
            "enum value unknown",
            br#"{"execute":"guest-fsfreeze-status","arguments":{"x":"y"}}"#,
        ),
        (
            "file read of an unknown handle",
            br#"{"execute":"guest-file-read","arguments":{"handle":987654321}}"#,
        ),
        (
            "file open of a missing file",
            br#"{"execute":"guest-file-open","arguments":{"path":"/nonexistent-agentverify/x"}}"#,
        ),
        (
            "file open with a bad mode",
            br#"{"execute":"guest-file-open","arguments":{"path":"/dev/null","mode":"q"}}"#,
        ),
        (
            "ssh keys of an unknown user",
            br#"{"execute":"guest-ssh-get-authorized-keys","arguments":{"username":"no-such-user-agentverify"}}"#,
        ),
        (
            "exec-status of an unknown pid",
            br#"{"execute":"guest-exec-status","arguments":{"pid":987654321}}"#,
        ),
    ];
    for (name, bytes) in cases {
        report.case(&pair, name, bytes, Writes::One);
    }
    report.finish("request_errors");
}

#[test]
fn malformed_json_then_recovery() {
    let Some(pair) = Pair::start("malformed_json_then_recovery", &[]) else {
        return;
    };
    let mut report = Report::default();
    let cases: &[(&str, &[u8])] = &[
        ("double colon", br#"{"execute" :: } {"execute":"guest-ping"}"#),
        ("stray close brace", br#"}{"execute":"guest-ping"}"#),
        ("stray close bracket", br#"]{"execute":"guest-ping"}"#),
        ("stray at sign", br#"@{"execute":"guest-ping"}"#),
        ("stray comma", br#",{"execute":"guest-ping"}"#),
        (
            "trailing comma",
            br#"{"execute":"guest-ping",}{"execute":"guest-ping"}"#,
        ),
        ("missing value", br#"{"execute":}{"execute":"guest-ping"}"#),
        ("bare word", br#"nonsense {"execute":"guest-ping"}"#),
        ("bad escape", br#"{"execute":"guest-\q"}{"execute":"guest-ping"}"#),
        (
            "control character in a string",
            b"{\"execute\":\"guest-\x01ping\"}{\"execute\":\"guest-ping\"}",
        ),
        (
            "invalid UTF-8 in a string",
            b"{\"execute\":\"guest-\xc3ping\"}{\"execute\":\"guest-ping\"}",
        ),
        ("single-quoted strings", br#"{'execute':'guest-ping'}"#),
        (
            "mismatched brackets",
            br#"{"execute":"guest-ping"]{"execute":"guest-ping"}"#,
        ),
        (
            "unterminated string then 0xFF",
            b"{\"execute\":\"guest-pi\xff{\"execute\":\"guest-ping\"}",
        ),
        (
            "unterminated object then 0xFF",
            b"{\"execute\":\"guest-ping\"\xff{\"execute\":\"guest-ping\"}",
        ),
        (
            "number with junk",
            br#"{"execute":"guest-sync","arguments":{"id":12x}}{"execute":"guest-ping"}"#,
        ),
        (
            "leading zero",
            br#"{"execute":"guest-sync","arguments":{"id":012}}{"execute":"guest-ping"}"#,
        ),
        ("unicode escape", br#"{"execute":"guest-p\u0069ng"}"#),
        ("NUL byte", b"\x00{\"execute\":\"guest-ping\"}"),
    ];
    for (name, bytes) in cases {
        report.malformed_case(&pair, name, bytes, Writes::One);
    }
    report.finish("malformed_json_then_recovery");
}

#[test]
fn id_echo() {
    let Some(pair) = Pair::start("id_echo", &[]) else {
        return;
    };
    let mut report = Report::default();
    let cases: &[(&str, &[u8])] = &[
        ("number id", br#"{"execute":"guest-ping","id":1}"#),
        ("negative id", br#"{"execute":"guest-ping","id":-42}"#),
        ("float id", br#"{"execute":"guest-ping","id":2.5}"#),
        (
            "big id",
            br#"{"execute":"guest-ping","id":123456789012345678901234567890}"#,
        ),
        ("string id", br#"{"execute":"guest-ping","id":"abc"}"#),
        (
            "object id",
            br#"{"execute":"guest-ping","id":{"a":[1,{"b":null}],"c":"d"}}"#,
        ),
        ("array id", br#"{"execute":"guest-ping","id":[1,"x"]}"#),
        ("null id", br#"{"execute":"guest-ping","id":null}"#),
        ("bool id", br#"{"execute":"guest-ping","id":false}"#),
        ("id before execute", br#"{"id":"first","execute":"guest-ping"}"#),
        ("id on an error", br#"{"execute":"guest-sync","id":"err"}"#),
        ("id on an unknown command", br#"{"execute":"guest-nope","id":{"x":1}}"#),
        (
            "id on an unknown top-level key",
            br#"{"execute":"guest-ping","id":3,"bogus":1}"#,
        ),
        ("id with execute not a string", br#"{"execute":7,"id":3}"#),
        (
            "id with a return value",
            br#"{"execute":"guest-sync","arguments":{"id":5},"id":"s"}"#,
        ),
    ];
    for (name, bytes) in cases {
        report.case(&pair, name, bytes, Writes::One);
    }
    report.finish("id_echo");
}

const PIPELINE: &[u8] = b"{\"execute\":\"guest-ping\",\"id\":1}\
{\"execute\":\"guest-sync\",\"arguments\":{\"id\":2}}\n\
  {\"execute\":\"guest-nope\",\"id\":3}\r\n\
{\"execute\":\"guest-sync-delimited\",\"arguments\":{\"id\":4}}\
{\"execute\":\"guest-sync\",\"arguments\":{\"id\":\"x\"},\"id\":5}\
\t{\"execute\":\"guest-ping\",\"id\":{\"n\":[6]}}\
{\"execute\":\"guest-get-time\",\"id\":\"mask:time\"}\
{\"execute\":\"guest-ping\",\"id\":\"with \\\"escaped\\\" quotes and } braces {\"}";

#[test]
fn pipelined_and_split_requests() {
    let Some(pair) = Pair::start("pipelined_and_split_requests", &[]) else {
        return;
    };
    let mut report = Report::default();
    report.case(&pair, "pipelined in one write", PIPELINE, Writes::One);
    report.case(&pair, "one byte per write", PIPELINE, Writes::Bytewise);
    report.malformed_case(
        &pair,
        "one byte per write with a 0xFF flush",
        b"{\"execute\":\"guest-sy\xff{\"execute\":\"guest-sync-delimited\",\"arguments\":{\"id\":9}}",
        Writes::Bytewise,
    );
    report.finish("pipelined_and_split_requests");
}

#[test]
fn blocked_commands() {
    let blocked = "guest-get-time,guest-get-host-name,guest-get-osinfo";
    let Some(pair) = Pair::start("blocked_commands", &["-b", blocked]) else {
        return;
    };
    let mut report = Report::default();
    let cases: &[(&str, &[u8])] = &[
        ("blocked command", br#"{"execute":"guest-get-time"}"#),
        (
            "blocked command with id",
            br#"{"execute":"guest-get-host-name","id":"b"}"#,
        ),
        (
            "blocked command with bad arguments",
            br#"{"execute":"guest-get-osinfo","arguments":{"x":1}}"#,
        ),
        (
            "unblocked command",
            br#"{"execute":"guest-get-timezone","id":"shape:tz"}"#,
        ),
    ];
    for (name, bytes) in cases {
        report.case(&pair, name, bytes, Writes::One);
    }
    report.push(
        "guest-info flags with -b",
        compare_info_flags(&pair, "guest-info flags with -b"),
    );
    for agent in pair.agents() {
        let (_, flags) = info_flags(&mut agent.connect());
        for name in blocked.split(',') {
            let enabled = flags.get(name).map(|f| f.0);
            assert_eq!(
                enabled,
                Some(false),
                "{}: {name} must be listed as disabled",
                agent.which.name()
            );
        }
    }
    report.finish("blocked_commands");
}

/// qemu-ga 7.2 answers a message past the nesting limit with one error,
/// then one more error per token left over (over a thousand). We answer
/// with one error (deliberate). Compare with qemu-ga's replies up to its
/// first error, then everything after its run of leftover-token errors.
fn collapse_nesting_errors(items: Vec<Item>) -> Vec<Item> {
    let is_error = |i: &Item| matches!(i, Item::Json(v) if v.get("error").is_some());
    let mut out = Vec::new();
    let mut iter = items.into_iter().peekable();
    while let Some(item) = iter.next() {
        let too_deep = matches!(&item, Item::Json(v)
            if v["error"]["desc"].as_str().is_some_and(|d| d.contains("nesting depth")));
        out.push(item);
        if too_deep {
            while iter.peek().is_some_and(is_error) {
                iter.next();
            }
        }
    }
    out
}

#[test]
fn nesting_limit() {
    let Some(pair) = Pair::start("nesting_limit", &[]) else {
        return;
    };
    let mut report = Report::default();
    let mut cases: Vec<(&str, Vec<u8>)> = Vec::new();
    let deep = |open: &str, inner: &str, close: &str, n: usize| {
        let mut s = open.repeat(n);
        s.push_str(inner);
        s.push_str(&close.repeat(n));
        s.into_bytes()
    };
    cases.push(("arrays at the limit", deep("[", "", "]", 1024)));
    cases.push(("arrays past the limit", deep("[", "", "]", 1025)));
    cases.push(("arrays far past the limit", deep("[", "", "]", 5000)));
    cases.push(("objects past the limit", deep(r#"{"a":"#, "1", "}", 1030)));
    let mut in_args = br#"{"execute":"guest-sync","arguments":{"id":"#.to_vec();
    in_args.extend(deep("[", "", "]", 1030));
    in_args.extend(b"}}");
    cases.push(("deep argument", in_args));
    for (name, bytes) in &cases {
        let qemu = collapse_nesting_errors(transcript(&pair.qemu, bytes, Writes::One));
        let mut ours = transcript(&pair.ours, bytes, Writes::One);
        if self_check() {
            ours = collapse_nesting_errors(ours);
        }
        report.push(name, diff(name, bytes, &qemu, &ours));
    }
    report.finish("nesting_limit");
}

/// Open, write, seek, read, close a file under a temporary directory. The
/// same requests go to both agents (the handle is substituted), the file
/// is removed in between.
#[test]
fn file_round_trip() {
    let Some(pair) = Pair::start("file_round_trip", &[]) else {
        return;
    };
    let dir = tempfile::Builder::new().prefix("agentverify-files-").tempdir().unwrap();
    let path = dir.path().join("round-trip.bin");
    let path_json = serde_json::to_string(&path.display().to_string()).unwrap();
    let steps: Vec<String> = vec![
        format!(r#"{{"execute":"guest-file-open","arguments":{{"path":{path_json},"mode":"w+"}},"id":"mask:open"}}"#),
        // "hello, agent\n" and three bytes that are not UTF-8.
        r#"{"execute":"guest-file-write","arguments":{"handle":HANDLE,"buf-b64":"aGVsbG8sIGFnZW50Cv/+AA=="}}"#.into(),
        r#"{"execute":"guest-file-flush","arguments":{"handle":HANDLE}}"#.into(),
        r#"{"execute":"guest-file-seek","arguments":{"handle":HANDLE,"offset":0,"whence":"set"}}"#.into(),
        r#"{"execute":"guest-file-read","arguments":{"handle":HANDLE,"count":5}}"#.into(),
        r#"{"execute":"guest-file-seek","arguments":{"handle":HANDLE,"offset":-3,"whence":"end"}}"#.into(),
        r#"{"execute":"guest-file-read","arguments":{"handle":HANDLE}}"#.into(),
        r#"{"execute":"guest-file-read","arguments":{"handle":HANDLE}}"#.into(),
        r#"{"execute":"guest-file-seek","arguments":{"handle":HANDLE,"offset":2,"whence":1}}"#.into(),
        r#"{"execute":"guest-file-seek","arguments":{"handle":HANDLE,"offset":0,"whence":"nowhere"}}"#.into(),
        r#"{"execute":"guest-file-read","arguments":{"handle":HANDLE,"count":-1}}"#.into(),
        r#"{"execute":"guest-file-write","arguments":{"handle":HANDLE,"buf-b64":"not base64!"}}"#.into(),
        r#"{"execute":"guest-file-write","arguments":{"handle":HANDLE,"buf-b64":"YWJj","count":5}}"#.into(),
        r#"{"execute":"guest-file-close","arguments":{"handle":HANDLE}}"#.into(),
        r#"{"execute":"guest-file-close","arguments":{"handle":HANDLE}}"#.into(),
        format!(r#"{{"execute":"guest-file-open","arguments":{{"path":{path_json}}},"id":"mask:reopen"}}"#),
        r#"{"execute":"guest-file-read","arguments":{"handle":HANDLE,"count":100}}"#.into(),
        r#"{"execute":"guest-file-close","arguments":{"handle":HANDLE}}"#.into(),
    ];
    let mut report = Report::default();
    file_steps(&pair, &path, &steps, "file round trip", &mut report);
    report.finish("file_round_trip");
}

/// Runs `steps` on one connection to each agent, `HANDLE` standing for
/// the handle of the last successful guest-file-open, `path` removed
/// before each; compares the replies and what is left in `path`.
fn file_steps(pair: &Pair, path: &Path, steps: &[String], case: &str, report: &mut Report) {
    let mut replies: Vec<Vec<Item>> = Vec::new();
    let mut contents = Vec::new();
    for agent in pair.agents() {
        let _ = std::fs::remove_file(path);
        let mut conn = agent.connect();
        let mut handle = String::from("0");
        let mut items = Vec::new();
        for step in steps {
            let reply = conn.call(&step.replace("HANDLE", &handle));
            if step.contains("guest-file-open") {
                if let Some(h) = reply.get("return").and_then(Value::as_i64) {
                    handle = h.to_string();
                }
            }
            items.push(Item::Json(reply));
        }
        replies.push(normalise(&items));
        contents.push(std::fs::read(path).ok());
    }
    // Were qemu-ga's first open to fail, both sides could agree on errors alone.
    assert!(
        matches!(&replies[0][0], Item::Json(v) if v.get("return").is_some()),
        "{case}: qemu-ga did not open the file, so the case compares nothing: {}",
        replies[0][0]
    );
    report.push(case, diff(case, steps.join("\n").as_bytes(), &replies[0], &replies[1]));
    let contents_case = format!("{case}: file contents");
    let contents_diff = (contents[0] != contents[1]).then(|| {
        format!(
            "\n=== {contents_case} differ\n  qemu-ga:   {:?}\n  qga-agent: {:?}\n",
            contents[0], contents[1]
        )
    });
    report.push(&contents_case, contents_diff);
}

/// Error paths of the file commands, under a temporary directory.
#[test]
fn file_errors() {
    let Some(pair) = Pair::start("file_errors", &[]) else {
        return;
    };
    let dir = tempfile::Builder::new().prefix("agentverify-files-").tempdir().unwrap();
    let path = dir.path().join("errors.txt");
    let json_path = |p: &Path| serde_json::to_string(&p.display().to_string()).unwrap();
    let (file, directory) = (json_path(&path), json_path(dir.path()));
    let open = |p: &str, mode: &str| {
        format!(r#"{{"execute":"guest-file-open","arguments":{{"path":{p},"mode":"{mode}"}},"id":"mask:open"}}"#)
    };
    let steps: Vec<String> = vec![
        open(&file, "w"),
        r#"{"execute":"guest-file-write","arguments":{"handle":HANDLE,"buf-b64":"YWJj"}}"#.into(),
        r#"{"execute":"guest-file-read","arguments":{"handle":HANDLE}}"#.into(),
        r#"{"execute":"guest-file-close","arguments":{"handle":HANDLE}}"#.into(),
        open(&file, "r"),
        r#"{"execute":"guest-file-write","arguments":{"handle":HANDLE,"buf-b64":"YWJj"}}"#.into(),
        r#"{"execute":"guest-file-read","arguments":{"handle":HANDLE,"count":50331649}}"#.into(),
        r#"{"execute":"guest-file-read","arguments":{"handle":HANDLE,"count":0}}"#.into(),
        r#"{"execute":"guest-file-seek","arguments":{"handle":HANDLE,"offset":-10,"whence":"set"}}"#.into(),
        r#"{"execute":"guest-file-seek","arguments":{"handle":HANDLE,"offset":0,"whence":7}}"#.into(),
        r#"{"execute":"guest-file-seek","arguments":{"handle":HANDLE,"offset":100,"whence":"end"}}"#.into(),
        r#"{"execute":"guest-file-read","arguments":{"handle":HANDLE}}"#.into(),
        r#"{"execute":"guest-file-close","arguments":{"handle":HANDLE}}"#.into(),
        open(&file, "a+"),
        r#"{"execute":"guest-file-write","arguments":{"handle":HANDLE,"buf-b64":"ZGVm"}}"#.into(),
        r#"{"execute":"guest-file-seek","arguments":{"handle":HANDLE,"offset":0,"whence":"set"}}"#.into(),
        r#"{"execute":"guest-file-read","arguments":{"handle":HANDLE}}"#.into(),
        r#"{"execute":"guest-file-close","arguments":{"handle":HANDLE}}"#.into(),
        open(&directory, "r"),
        r#"{"execute":"guest-file-read","arguments":{"handle":HANDLE}}"#.into(),
        r#"{"execute":"guest-file-close","arguments":{"handle":HANDLE}}"#.into(),
        open(&file, "x"),
        open(&file, "rb+"),
        r#"{"execute":"guest-file-close","arguments":{"handle":HANDLE}}"#.into(),
    ];
    let mut report = Report::default();
    file_steps(&pair, &path, &steps[..4], "write-only file", &mut report);
    // The path is removed before each run: the rest needs the first part again.
    file_steps(&pair, &path, &steps, "file error paths", &mut report);
    report.finish("file_errors");
}

/// The read-only information commands: the structure of each reply must
/// be equal. Where the value cannot change between the two calls, the
/// values must be equal too (arrays compared as sets).
#[test]
fn read_only_information() {
    let Some(pair) = Pair::start("read_only_information", &[]) else {
        return;
    };
    let mut report = Report::default();
    let structure_only = [
        "guest-get-fsinfo",
        "guest-get-disks",
        "guest-network-get-interfaces",
        "guest-get-cpustats",
        "guest-get-diskstats",
        "guest-get-users",
        "guest-fsfreeze-status",
        "guest-get-time",
    ];
    for command in structure_only {
        let bytes = format!(r#"{{"execute":"{command}","id":"shapes:{command}"}}"#);
        report.case(&pair, command, bytes.as_bytes(), Writes::One);
    }
    // Stable values: equal as values, arrays in any order.
    let stable = [
        "guest-get-osinfo",
        "guest-get-host-name",
        "guest-get-timezone",
        "guest-get-vcpus",
        "guest-get-memory-block-info",
        "guest-get-memory-blocks",
        "guest-get-users",
        "guest-get-disks",
        "guest-fsfreeze-status",
    ];
    for command in stable {
        let request = format!(r#"{{"execute":"{command}"}}"#);
        let replies: Vec<Value> = pair
            .agents()
            .iter()
            .map(|a| sort_arrays(a.connect().call(&request)))
            .collect();
        let as_items = |v: &Value| vec![Item::Json(v.clone())];
        let case = format!("{command} values");
        report.push(
            &case,
            diff(
                &case,
                request.as_bytes(),
                &as_items(&replies[0]),
                &as_items(&replies[1]),
            ),
        );
    }
    // guest-get-load is newer than qemu-ga 7.2: check ours alone.
    if self_check() {
        return report.finish("read_only_information");
    }
    let load = pair.ours.connect().call(r#"{"execute":"guest-get-load"}"#);
    let expected = json!({"return": {"load1m": "number", "load5m": "number", "load15m": "number"}});
    assert_eq!(
        json!({"return": shape(&load["return"])}),
        expected,
        "guest-get-load reply: {load}"
    );
    for key in ["load1m", "load5m", "load15m"] {
        let value = load["return"][key].as_f64().unwrap();
        assert!(value.is_finite() && value >= 0.0, "guest-get-load {key} = {value}");
    }
    report.finish("read_only_information");
}

/// JSON text with object keys sorted, whatever the map's own order.
fn canonical(v: &Value) -> String {
    match v {
        Value::Object(map) => {
            let sorted: BTreeMap<&String, String> = map.iter().map(|(k, v)| (k, canonical(v))).collect();
            let members: Vec<String> = sorted
                .iter()
                .map(|(k, v)| format!("{}:{v}", Value::from(k.as_str())))
                .collect();
            format!("{{{}}}", members.join(","))
        }
        Value::Array(items) => format!("[{}]", items.iter().map(canonical).collect::<Vec<_>>().join(",")),
        other => other.to_string(),
    }
}

/// Arrays sorted by their elements' canonical JSON text, recursively.
fn sort_arrays(v: Value) -> Value {
    match v {
        Value::Array(items) => {
            let mut items: Vec<Value> = items.into_iter().map(sort_arrays).collect();
            items.sort_by_key(canonical);
            Value::Array(items)
        }
        Value::Object(map) => Value::Object(map.into_iter().map(|(k, v)| (k, sort_arrays(v))).collect()),
        other => other,
    }
}

/// A check of the checks: the normalisation and diff used above find a
/// difference where there is one.
#[test]
fn comparison_finds_differences() {
    let a = vec![Item::Json(json!({"return": {"x": [1, 2]}, "id": "shape:a"}))];
    let b = vec![Item::Json(json!({"return": {"x": ["1"]}, "id": "shape:a"}))];
    assert!(diff("t", b"", &normalise(&a), &normalise(&b)).is_some());
    let c = vec![Item::Json(json!({"return": {"x": [3]}, "id": "shape:a"}))];
    assert!(diff("t", b"", &normalise(&a), &normalise(&c)).is_none());
    let t1 = vec![Item::Json(json!({"return": 1, "id": "mask:t"}))];
    let t2 = vec![Item::Json(json!({"return": 2, "id": "mask:t"}))];
    assert!(diff("t", b"", &normalise(&t1), &normalise(&t2)).is_none());
    assert!(diff("t", b"", &t1, &t2).is_some());
    let merged = shape(&json!([{"a": 1}, {"b": "x"}, {"a": 2.5}]));
    assert_eq!(merged, json!([{"a": "number", "b": "string"}]));
    // Distinct shapes: order and length do not matter, a missing member does.
    let full = json!([{"a": 1, "b": "x"}, {"a": 2, "b": "y"}]);
    let reordered = json!([{"b": "z", "a": 3}]);
    let one_short = json!([{"a": 1, "b": "x"}, {"a": 2}]);
    assert_eq!(distinct_shapes(&full), distinct_shapes(&reordered));
    assert_ne!(distinct_shapes(&full), distinct_shapes(&one_short));
    assert_eq!(shape(&full), shape(&one_short));
    let error = |d: &str| Item::Json(json!({"error": {"class": "GenericError", "desc": d}}));
    let collapsed = collapse_nesting_errors(vec![
        error("JSON nesting depth limit exceeded"),
        error("JSON parse error, expecting value"),
        error("QMP input must be a JSON object"),
        Item::Json(json!({"return": {}})),
    ]);
    assert_eq!(collapsed.len(), 2);
    // Runs of parse errors collapse; other errors in a row do not.
    let runs = collapse_parse_errors(vec![
        error("JSON parse error, a"),
        error("JSON parse error, b"),
        error("QMP input must be a JSON object"),
        error("QMP input must be a JSON object"),
    ]);
    assert_eq!(runs.len(), 3);
    // Parse errors differing in wording only compare equal; in class or id, not.
    let parse_error = |class: &str, desc: &str| Item::Json(json!({"error": {"class": class, "desc": desc}}));
    let wording = |items: Vec<Item>| without_parse_error_details(&items);
    let expecting = parse_error("GenericError", "JSON parse error, expecting value");
    let invalid = parse_error("GenericError", "JSON parse error, invalid keyword");
    assert_eq!(wording(vec![expecting.clone()]), wording(vec![invalid]));
    let other_class = parse_error("CommandNotFound", "JSON parse error, expecting value");
    assert_ne!(wording(vec![expecting.clone()]), wording(vec![other_class]));
    let with_id = Item::Json(json!({"error": {"class": "GenericError", "desc": "JSON parse error, x"}, "id": 1}));
    assert_ne!(wording(vec![expecting]), wording(vec![with_id]));
}

/// guest-exec then guest-exec-status until the process has exited; the
/// final status is compared (the pid is masked), and so is asking again
/// once it was reported. Only harmless programs run.
#[test]
fn exec_round_trip() {
    let Some(pair) = Pair::start("exec_round_trip", &[]) else {
        return;
    };
    let programs: &[(&str, &str)] = &[
        (
            "exit code and both outputs",
            r#"{"path":"/bin/sh","arg":["-c","echo out; echo err >&2; exit 3"],"capture-output":true}"#,
        ),
        (
            "input data",
            r#"{"path":"/bin/cat","input-data":"aGVsbG8=","capture-output":true}"#,
        ),
        ("killed by a signal", r#"{"path":"/bin/sh","arg":["-c","kill -9 $$"]}"#),
        (
            "environment",
            r#"{"path":"/bin/sh","arg":["-c","exit $A"],"env":["A=7"]}"#,
        ),
        ("no output captured", r#"{"path":"/bin/echo","arg":["hidden"]}"#),
    ];
    let mut report = Report::default();
    for (case, arguments) in programs {
        let mut replies: Vec<Vec<Item>> = Vec::new();
        for agent in pair.agents() {
            let mut conn = agent.connect();
            let started = conn.call(&format!(r#"{{"execute":"guest-exec","arguments":{arguments}}}"#));
            let Some(pid) = started["return"]["pid"].as_i64() else {
                // Were qemu-ga not to run it, both sides could agree on errors alone.
                assert!(
                    agent.which == Which::Ours,
                    "{case}: qemu-ga did not run the program: {started}"
                );
                replies.push(vec![Item::Json(started)]);
                continue;
            };
            let status_request = format!(r#"{{"execute":"guest-exec-status","arguments":{{"pid":{pid}}}}}"#);
            let deadline = std::time::Instant::now() + REPLY_TIMEOUT;
            let status = loop {
                let status = conn.call(&status_request);
                if status["return"]["exited"] != json!(false) || std::time::Instant::now() > deadline {
                    break status;
                }
                std::thread::sleep(Duration::from_millis(10));
            };
            let again = conn.call(&status_request).to_string().replace(&pid.to_string(), "PID");
            replies.push(vec![
                Item::Json(json!({"return": {"pid": type_name(&started["return"]["pid"])}})),
                Item::Json(status),
                Item::Json(serde_json::from_str(&again).unwrap()),
            ]);
        }
        report.push(case, diff(case, arguments.as_bytes(), &replies[0], &replies[1]));
    }
    let missing = r#"{"execute":"guest-exec","arguments":{"path":"/nonexistent-agentverify/program"}}"#;
    report.case(&pair, "exec of a missing program", missing.as_bytes(), Writes::One);
    report.finish("exec_round_trip");
}

/// Deliberate difference: a client that leaves half a request behind.
/// qemu-ga 7.2 keeps it and swallows the next client's request with it
/// (that client must resynchronise with 0xFF); our agent starts each
/// connection with a fresh reader, so the next client is answered at once.
#[test]
fn half_request_then_new_client() {
    let Some(pair) = Pair::start("half_request_then_new_client", &[]) else {
        return;
    };
    let mut outcomes = Vec::new();
    for agent in pair.agents() {
        let mut first = agent.connect();
        first.send(br#"{"execute":"guest-sync","arguments":{"id":"#);
        drop(first);
        let mut next = agent.connect();
        next.send(br#"{"execute":"guest-sync","arguments":{"id":1}}"#);
        // qemu-ga is expected to stay silent: waiting long for it only
        // slows the test. Ours must answer, however loaded the machine.
        let wait = match agent.which {
            Which::QemuGa => Duration::from_secs(1),
            Which::Ours => TRANSCRIPT_TIMEOUT,
        };
        let answered = next.try_read_until(wait, |items| {
            items.iter().any(|i| matches!(i, Item::Json(v) if v["return"] == 1))
        });
        // Whatever happened, 0xFF and the sentinel bring both back.
        next.send(b"\xff");
        next.send(sentinel_request().as_bytes());
        next.read_until(TRANSCRIPT_TIMEOUT, |items| items.iter().any(is_sentinel_reply));
        outcomes.push(answered.is_ok());
    }
    eprintln!(
        "next client answered at once: qemu-ga {}, qga-agent {} (deliberate difference)",
        outcomes[0], outcomes[1]
    );
    if !self_check() {
        assert!(
            outcomes[1],
            "our agent did not answer the next client after half a request"
        );
    }
}
