//! Against the real qemu-ga (Debian's qemu-guest-agent), started per test
//! on a unix socket in a temporary directory. Only commands that do not
//! change the machine are sent; files are written under the test's own
//! directory. Without qemu-ga the tests say so and pass, unless
//! `QGA_REAL_AGENT_REQUIRED` is set (CI sets it).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use qga_host::{Connection, Endpoint, Error, Options, Support};
use qga_types::client::Client;
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
