//! Against the real qemu-ga (Debian's qemu-guest-agent), started per test
//! on a unix socket in a temporary directory. Only commands that do not
//! change the machine are sent; files are written under the test's own
//! directory. Without qemu-ga the tests say so and pass, unless
//! `QGA_REAL_AGENT_REQUIRED` is set (CI sets it).

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use qga_host::{Connection, Endpoint, Error, Options, Support};
use qga_types::client::Client;
#[cfg(feature = "cli")]
use qga_types::runtime::serde_json::{self, json, Value};
use qga_types::*;

const QEMU_GA: &str = "/usr/sbin/qemu-ga";

struct Agent {
    child: Child,
    dir: PathBuf,
}

impl Agent {
    fn start(name: &str) -> Option<Agent> {
        if !std::path::Path::new(QEMU_GA).exists() {
            let message =
                format!("\n*** {QEMU_GA} not found (apt-get install qemu-guest-agent); test did NOT run ***\n");
            assert!(std::env::var_os("QGA_REAL_AGENT_REQUIRED").is_none(), "{message}");
            eprintln!("{message}");
            return None;
        }
        let dir = std::env::temp_dir().join(format!("qga-host-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("state")).unwrap();
        let sock = dir.join("sock");
        let child = Command::new(QEMU_GA)
            .args(["-m", "unix-listen", "-p"])
            .arg(&sock)
            .arg("-t")
            .arg(dir.join("state"))
            .arg("-l")
            .arg(dir.join("log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("qemu-ga starts");
        let started = Instant::now();
        while !sock.exists() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "qemu-ga did not create {}",
                sock.display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(Agent { child, dir })
    }

    fn endpoint(&self) -> Endpoint {
        Endpoint::Unix(self.dir.join("sock"))
    }

    fn client(&self) -> Client<Connection> {
        Client::new(Connection::connect(&self.endpoint(), Options::default()).expect("connects and syncs"))
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn ping_info_and_sync() {
    let Some(agent) = Agent::start("ping") else { return };
    let mut client = agent.client();
    client.guest_ping().unwrap();
    let info = client.guest_info().unwrap();
    assert!(!info.version.is_empty());
    assert!(info
        .supported_commands
        .iter()
        .any(|c| c.name == "guest-sync-delimited" && c.enabled));
    assert_eq!(client.guest_sync(&GuestSyncArgs { id: 77 }).unwrap(), 77);
    // An explicit resync between calls changes nothing for the caller.
    client.transport_mut().resync().unwrap();
    client.guest_ping().unwrap();
}

#[test]
fn read_only_information() {
    let Some(agent) = Agent::start("info") else { return };
    let mut client = agent.client();
    let os = client.guest_get_osinfo().unwrap();
    assert!(os.kernel_release.is_some());
    assert!(!client.guest_get_host_name().unwrap().host_name.is_empty());
    assert!(client.guest_get_time().unwrap() > 0);
    assert!(!client.guest_get_vcpus().unwrap().is_empty());
    let ifaces = client.guest_network_get_interfaces().unwrap();
    assert!(ifaces.iter().any(|i| i.name == "lo"));
    client.guest_get_timezone().unwrap();
}

#[test]
fn file_round_trip_in_a_temp_dir() {
    let Some(agent) = Agent::start("file") else { return };
    let mut client = agent.client();
    let path = agent.dir.join("round-trip.txt").display().to_string();
    let handle = client
        .guest_file_open(&GuestFileOpenArgs {
            path: path.clone(),
            mode: Some("w".into()),
        })
        .unwrap();
    let written = client
        .guest_file_write(&GuestFileWriteArgs {
            handle,
            buf_b64: "aGVsbG8sIGd1ZXN0Cg==".into(),
            count: None,
        })
        .unwrap();
    assert_eq!(written.count, 13);
    client.guest_file_close(&GuestFileCloseArgs { handle }).unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "hello, guest\n");
    let handle = client.guest_file_open(&GuestFileOpenArgs { path, mode: None }).unwrap();
    let read = client
        .guest_file_read(&GuestFileReadArgs { handle, count: None })
        .unwrap();
    assert_eq!(read.buf_b64, "aGVsbG8sIGd1ZXN0Cg==");
    client.guest_file_close(&GuestFileCloseArgs { handle }).unwrap();
}

#[test]
fn agent_errors_are_typed_and_capabilities_match() {
    let Some(agent) = Agent::start("errors") else { return };
    let mut client = agent.client();
    // qemu-ga 7.2 on Linux lists guest-get-devices as disabled.
    let caps = client.transport_mut().capabilities().unwrap();
    assert_eq!(caps.support("guest-get-devices"), Support::Disabled);
    assert_eq!(caps.support("guest-ping"), Support::Supported);
    assert_eq!(caps.support("guest-no-such-command"), Support::Absent);
    assert!(!caps.command("guest-shutdown").unwrap().success_response);
    match client.guest_get_devices().map_err(Error::from) {
        Err(Error::CommandDisabled(e)) => {
            assert_eq!(e.class, qga_types::runtime::ErrorClass::CommandNotFound);
            assert_eq!(e.command(), Some("guest-get-devices"));
        }
        other => panic!("expected CommandDisabled, got {other:?}"),
    }
    match client.transport_mut().execute("guest-no-such-command", None) {
        Err(Error::CommandNotFound(e)) => {
            assert_eq!(e.desc, "The command guest-no-such-command has not been found")
        }
        other => panic!("expected CommandNotFound, got {other:?}"),
    }
    client.guest_ping().unwrap();
}

#[test]
fn resync_clears_a_half_request_and_an_unread_reply_left_by_an_earlier_client() {
    let Some(agent) = Agent::start("stale") else { return };
    let mut raw = UnixStream::connect(agent.dir.join("sock")).unwrap();
    // A whole request whose reply nobody reads, then half of another.
    raw.write_all(b"{\"execute\": \"guest-get-host-name\", \"id\": 1}\n{\"execute\": \"guest-pi")
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let mut client = Client::new(Connection::from_stream(raw, Options::default()).unwrap());
    client.guest_ping().unwrap();
    assert_eq!(client.guest_sync(&GuestSyncArgs { id: 5 }).unwrap(), 5);
}

#[cfg(feature = "tokio")]
#[tokio::test]
async fn the_async_client_against_the_real_agent() {
    use qga_host::AsyncConnection;
    use qga_types::client::AsyncClient;

    let Some(agent) = Agent::start("async") else { return };
    let conn = AsyncConnection::connect(&agent.endpoint(), Options::default())
        .await
        .unwrap();
    let mut client = AsyncClient::new(conn);
    client.guest_ping().await.unwrap();
    assert!(!client.guest_get_host_name().await.unwrap().host_name.is_empty());
    // Cancelled mid-call, then the next call resyncs and works.
    let _ = tokio::time::timeout(Duration::from_micros(1), client.guest_get_osinfo()).await;
    assert!(client.guest_get_osinfo().await.unwrap().kernel_release.is_some());
    let caps = client.transport_mut().capabilities().await.unwrap();
    assert_eq!(caps.support("guest-get-devices"), Support::Disabled);
}

#[cfg(feature = "cli")]
fn qga(agent: &Agent, args: &[&str]) -> Value {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_qga"))
        .arg("--socket")
        .arg(agent.dir.join("sock"))
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "qga {args:?} failed: {stderr}");
    assert!(stderr.is_empty(), "qga {args:?} wrote to stderr: {stderr}");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("qga {args:?} printed no JSON ({e})"))
}

#[cfg(feature = "cli")]
#[test]
fn the_cli_against_the_real_agent() {
    let Some(agent) = Agent::start("cli") else { return };
    assert_eq!(qga(&agent, &["ping", "--json"]), json!({}));
    assert_eq!(qga(&agent, &["call", "guest-sync", r#"{"id": 4242}"#]), json!(4242));
    let info = qga(&agent, &["info", "--json"]);
    assert!(info["version"].as_str().is_some_and(|v| !v.is_empty()));
    assert!(info["supported_commands"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["name"] == "guest-get-osinfo"));
    assert!(qga(&agent, &["time", "get", "--json"]).as_i64().unwrap() > 0);
    assert!(qga(&agent, &["call", "guest-get-osinfo"])["kernel-release"].is_string());
    assert!(qga(&agent, &["call", "guest-get-host-name"])["host-name"].is_string());
    let ifaces = qga(&agent, &["net", "--json"]);
    assert!(ifaces.as_array().unwrap().iter().any(|i| i["name"] == "lo"));
    assert!(!qga(&agent, &["vcpus", "--json"]).as_array().unwrap().is_empty());
    // The text forms run too.
    for args in [["info"], ["net"], ["vcpus"], ["ping"]] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_qga"))
            .arg("--socket")
            .arg(agent.dir.join("sock"))
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success() && !out.stdout.is_empty(), "{args:?}");
    }
}

#[cfg(feature = "cli")]
#[test]
fn a_file_round_trip_through_the_cli() {
    let Some(agent) = Agent::start("cli-file") else { return };
    // Big enough for several chunks.
    let data: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let local = agent.dir.join("local.bin");
    std::fs::write(&local, &data).unwrap();
    let guest = agent.dir.join("guest.bin").display().to_string();
    let put = qga(&agent, &["put", "--json", local.to_str().unwrap(), &guest]);
    assert_eq!(put["count"], json!(data.len()));
    assert_eq!(std::fs::read(&guest).unwrap(), data);
    let back = agent.dir.join("back.bin");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_qga"))
        .arg("--socket")
        .arg(agent.dir.join("sock"))
        .args(["cat", &guest, "--output", back.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read(&back).unwrap(), data);
    // Small files to stdout, and the JSON form.
    let small = agent.dir.join("small.txt");
    std::fs::write(&small, "hello, guest\n").unwrap();
    let cat = qga(&agent, &["cat", "--json", small.to_str().unwrap()]);
    assert_eq!(cat["buf-b64"], "aGVsbG8sIGd1ZXN0Cg==");
    assert_eq!(cat["count"], 13);
}
