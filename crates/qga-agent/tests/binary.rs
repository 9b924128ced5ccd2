//! The `qga-agent` binary over unix-listen: options, the block and allow
//! lists, `-D`, per-connection reset, and clients that do not read.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const AGENT: &str = env!("CARGO_BIN_EXE_qga-agent");

struct Running {
    child: Child,
    dir: tempfile::TempDir,
}

impl Running {
    fn start(extra: &[&str]) -> Running {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("state")).unwrap();
        let sock = dir.path().join("sock");
        let child = Command::new(AGENT)
            .args(["-m", "unix-listen", "-p"])
            .arg(&sock)
            .arg("-t")
            .arg(dir.path().join("state"))
            .arg("-l")
            .arg(dir.path().join("log"))
            .args(extra)
            .stdin(Stdio::null())
            .spawn()
            .expect("qga-agent starts");
        let started = Instant::now();
        while !sock.exists() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "no socket at {}",
                sock.display()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        Running { child, dir }
    }

    fn sock(&self) -> PathBuf {
        self.dir.path().join("sock")
    }

    fn connect(&self) -> Client {
        let stream = UnixStream::connect(self.sock()).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        Client {
            reader: BufReader::new(stream.try_clone().unwrap()),
            stream,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Client {
    stream: UnixStream,
    reader: BufReader<UnixStream>,
}

impl Client {
    fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    fn reply(&mut self) -> Value {
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("a reply line");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("bad reply {line:?}: {e}"))
    }

    fn call(&mut self, request: Value) -> Value {
        self.send(request.to_string().as_bytes());
        self.reply()
    }
}

fn disabled(command: &str) -> Value {
    json!({"error": {"class": "CommandNotFound", "desc": format!("Command {command} has been disabled")}})
}

#[test]
fn serves_core_commands_over_a_unix_socket() {
    let agent = Running::start(&[]);
    let mut client = agent.connect();
    assert_eq!(
        client.call(json!({"execute": "guest-ping", "id": 1})),
        json!({"return": {}, "id": 1})
    );
    client.send(b"\xff{\"execute\":\"guest-sync-delimited\",\"arguments\":{\"id\":42}}");
    // The 0xFF gets its error reply; then the delimiter and the reply.
    assert_eq!(client.reply()["error"]["class"], "GenericError");
    let mut byte = [0u8];
    client.reader.read_exact(&mut byte).unwrap();
    assert_eq!(byte[0], 0xFF);
    assert_eq!(client.reply(), json!({"return": 42}));
    let info = client.call(json!({"execute": "guest-info"}));
    assert_eq!(
        info["return"]["supported_commands"].as_array().unwrap().len(),
        qga_types::COMMANDS.len()
    );
}

#[test]
fn block_and_allow_lists_from_the_command_line() {
    let agent = Running::start(&[
        "-b",
        "guest-ping,guest-get-time",
        "-a",
        "guest-ping,guest-info,guest-sync",
    ]);
    let mut client = agent.connect();
    assert_eq!(client.call(json!({"execute": "guest-ping"})), disabled("guest-ping"));
    assert_eq!(
        client.call(json!({"execute": "guest-get-time"})),
        disabled("guest-get-time")
    );
    assert_eq!(
        client.call(json!({"execute": "guest-get-osinfo"})),
        disabled("guest-get-osinfo")
    );
    assert_eq!(
        client.call(json!({"execute": "guest-sync", "arguments": {"id": 5}})),
        json!({"return": 5})
    );
    let info = client.call(json!({"execute": "guest-info"}));
    let enabled: Vec<&str> = info["return"]["supported_commands"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["enabled"] == true)
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(enabled, ["guest-info", "guest-sync"]);
}

#[test]
fn a_half_request_does_not_swallow_the_next_clients_request() {
    let agent = Running::start(&[]);
    let mut first = agent.connect();
    first.send(br#"{"execute":"guest-sync","arguments":{"id":"#);
    drop(first);
    let mut second = agent.connect();
    assert_eq!(
        second.call(json!({"execute": "guest-sync", "arguments": {"id": 7}})),
        json!({"return": 7})
    );
}

#[test]
fn a_client_that_does_not_read_is_dropped_and_the_next_is_served() {
    let agent = Running::start(&["--write-timeout", "0.3"]);
    let mut stuck = agent.connect();
    // Far more reply bytes than the socket buffers hold.
    let request = br#"{"execute":"guest-info"}"#.repeat(4000);
    stuck.stream.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = stuck.stream.write_all(&request);
    let started = Instant::now();
    let mut next = agent.connect();
    assert_eq!(next.call(json!({"execute": "guest-ping"})), json!({"return": {}}));
    assert!(started.elapsed() < Duration::from_secs(8));
    drop(stuck);
    assert!(agent.log().contains("did not read"), "log: {}", agent.log());
}

fn run(args: &[&str], config: Option<(&Path, &str)>) -> Output {
    if let Some((path, text)) = config {
        std::fs::write(path, text).unwrap();
    }
    Command::new(AGENT).args(args).output().unwrap()
}

#[test]
fn dump_conf_prints_the_effective_config_and_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("qga.conf");
    let conf_arg = conf.to_str().unwrap();
    let out = run(
        &[
            "-c",
            conf_arg,
            "-m",
            "unix-listen",
            "-p",
            "/tmp/x.sock",
            "-b",
            "guest-info,guest-ping",
            "-D",
        ],
        Some((
            &conf,
            "[general]\nverbose=true\nstatedir=/srv/state\nallow-rpcs=guest-ping;guest-info\n",
        )),
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let dump = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        dump,
        "[general]\ndaemon=false\nmethod=unix-listen\npath=/tmp/x.sock\nstatedir=/srv/state\nverbose=true\n\
         retry-path=false\nblock-rpcs=guest-info,guest-ping\nallow-rpcs=guest-ping,guest-info\n\
         command-timeout=30\nfreeze-timeout=60\nwrite-timeout=10\n"
    );
    // Dumped, read back, dumped again: the same.
    let again = run(&["-c", conf_arg, "-D"], Some((&conf, &dump)));
    assert_eq!(String::from_utf8(again.stdout).unwrap(), dump);
}

#[test]
fn bad_options_are_named() {
    let out = run(&["-m", "serial", "-D"], None);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("serial"));

    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("qga.conf");
    let out = run(
        &["-c", conf.to_str().unwrap(), "-D"],
        Some((&conf, "[general]\nverbose=maybe\n")),
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("line 2: verbose must be true or false, not 'maybe'"),
        "{stderr}"
    );

    let out = run(&["-m", "unix-listen", "-t", "/nonexistent/state/dir"], None);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs a path"));

    let out = run(
        &["-m", "unix-listen", "-p", "/tmp/unused", "-t", "/nonexistent/state/dir"],
        None,
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("state directory /nonexistent/state/dir does not exist"));
}

#[test]
fn the_pid_file_holds_our_pid_and_keeps_a_second_agent_out() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("agent.pid");
    let pidfile_arg = pidfile.to_str().unwrap();
    let agent = Running::start(&["-f", pidfile_arg]);
    // Written before the socket is bound.
    let written = std::fs::read_to_string(&pidfile).unwrap();
    assert_eq!(written, format!("{}\n", agent.child.id()));
    let other_sock = dir.path().join("other.sock");
    let mut second = Command::new(AGENT)
        .args(["-m", "unix-listen", "-p"])
        .arg(&other_sock)
        .arg("-t")
        .arg(dir.path())
        .args(["-f", pidfile_arg])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Had it taken the lock it would serve forever: bound the wait.
    let started = Instant::now();
    let status = loop {
        if let Some(status) = second.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(10) {
            let _ = second.kill();
            let _ = second.wait();
            panic!("a second agent started on a locked pid file");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(!status.success());
    let mut stderr = String::new();
    second.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    assert!(stderr.contains("is locked by another agent"), "{stderr}");
    assert!(!other_sock.exists());
    // The running agent's pid is still there.
    assert_eq!(std::fs::read_to_string(&pidfile).unwrap(), written);
}

#[test]
fn block_rpcs_help_lists_the_commands() {
    let out = run(&["-b", "help"], None);
    assert!(out.status.success());
    let names: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(names.len(), qga_types::COMMANDS.len());
    assert!(names.contains(&"guest-sync-delimited".to_string()));
}

#[test]
fn isa_serial_on_a_pseudo_terminal_in_raw_mode() {
    use std::fs::File;
    let pty = nix::pty::openpty(None, None).unwrap();
    let slave_path = nix::unistd::ttyname(&pty.slave).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut agent = Command::new(AGENT)
        .args(["-m", "isa-serial", "-p"])
        .arg(&slave_path)
        .arg("-t")
        .arg(dir.path())
        .arg("-l")
        .arg(dir.path().join("log"))
        .spawn()
        .unwrap();
    let mut master = File::from(pty.master);
    // Input sent before the agent set raw mode would be cooked; wait for
    // its log line first.
    let started = Instant::now();
    while !std::fs::read_to_string(dir.path().join("log"))
        .unwrap_or_default()
        .contains("serving on isa-serial")
    {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the agent did not open {}",
            slave_path.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    master
        .write_all(br#"{"execute":"guest-sync","arguments":{"id":77}}"#)
        .unwrap();
    let mut reply = Vec::new();
    let mut byte = [0u8];
    while !reply.ends_with(b"\n") {
        master.read_exact(&mut byte).unwrap();
        reply.push(byte[0]);
    }
    let _ = agent.kill();
    let _ = agent.wait();
    // Raw mode: no echo of the request, no "\r\n" for "\n".
    assert_eq!(reply, b"{\"return\":77}\n");
}

#[test]
fn the_example_config_in_contrib_parses_cleanly() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../../contrib/qemu-ga.conf.example");
    let out = run(&["-c", example, "-D"], None);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("method=virtio-serial\n"));
}
