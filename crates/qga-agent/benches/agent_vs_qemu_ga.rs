//! One client against our agent, qemu-ga and a trivial echo server (the
//! physical floor), each a separate process on a unix socket, all in the
//! same run. Prints a table and the targets of issue 5.
//!
//! ```sh
//! cargo bench -p qga-agent --bench agent_vs_qemu_ga
//! AGENTVERIFY_BENCH_SCALE=0.2 cargo bench -p qga-agent --bench agent_vs_qemu_ga   # quicker
//! cargo test -p qga-agent --bench agent_vs_qemu_ga   # a smoke run at scale 0.01
//! ```
//!
//! The three servers run side by side and the measurements alternate
//! between them in rounds, so that load from elsewhere falls on all three
//! alike. CPU time per request comes from utime+stime in /proc/PID/stat
//! (10 ms ticks), summed over the rounds.

#[path = "../tests/agent_harness/mod.rs"]
mod agent_harness;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use agent_harness::{proc_cpu_ticks, proc_memory_kib, AgentProcess, Which, QEMU_GA};

const OUR_AGENT: &str = env!("CARGO_BIN_EXE_qga-agent");
const ECHO_ENV: &str = "AGENTVERIFY_ECHO_SERVER";

const PING: &[u8] = b"{\"execute\":\"guest-ping\"}\n";
const INFO: &[u8] = b"{\"execute\":\"guest-info\"}\n";

/// The echo server: a child process (this binary again) that writes back
/// every byte it reads, one client at a time.
fn echo_server(socket: &Path) -> ! {
    let listener = UnixListener::bind(socket).expect("echo server binds");
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if stream.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
    }
    std::process::exit(0)
}

enum Server {
    Agent(AgentProcess),
    Echo {
        child: Child,
        _dir: tempfile::TempDir,
        socket: PathBuf,
    },
}

impl Server {
    fn start(name: &str) -> Server {
        match name {
            "echo" => Self::start_echo(),
            "qemu-ga" => Server::Agent(AgentProcess::start(Which::QemuGa, Path::new(OUR_AGENT), &[])),
            _ => Server::Agent(AgentProcess::start(Which::Ours, Path::new(OUR_AGENT), &[])),
        }
    }

    fn start_echo() -> Server {
        let dir = tempfile::Builder::new().prefix("agentverify-echo-").tempdir().unwrap();
        let socket = dir.path().join("sock");
        let child = Command::new(std::env::current_exe().unwrap())
            .env(ECHO_ENV, &socket)
            .stdin(Stdio::null())
            .spawn()
            .expect("echo server starts");
        let server = Server::Echo {
            child,
            _dir: dir,
            socket,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while UnixStream::connect(server.socket()).is_err() {
            assert!(Instant::now() < deadline, "echo server did not listen");
            std::thread::sleep(Duration::from_millis(2));
        }
        server
    }

    fn socket(&self) -> &Path {
        match self {
            Server::Agent(a) => &a.socket,
            Server::Echo { socket, .. } => socket,
        }
    }

    fn pid(&self) -> u32 {
        match self {
            Server::Agent(a) => a.pid(),
            Server::Echo { child, .. } => child.id(),
        }
    }

    fn connect(&self) -> Client {
        let stream = UnixStream::connect(self.socket()).expect("connect");
        stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        Client {
            reader: BufReader::with_capacity(256 * 1024, stream.try_clone().unwrap()),
            stream,
            line: Vec::new(),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Server::Echo { child, .. } = self {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

struct Client {
    stream: UnixStream,
    reader: BufReader<UnixStream>,
    line: Vec<u8>,
}

impl Client {
    /// One request, one reply line.
    fn round_trip(&mut self, request: &[u8]) -> usize {
        self.stream.write_all(request).unwrap();
        self.read_reply()
    }

    fn read_reply(&mut self) -> usize {
        self.line.clear();
        let n = self.reader.read_until(b'\n', &mut self.line).unwrap();
        assert!(n > 0 && self.line.ends_with(b"\n"), "connection closed mid-reply");
        assert!(
            !self.line.starts_with(b"{\"error\""),
            "error reply: {}",
            String::from_utf8_lossy(&self.line)
        );
        n
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

#[derive(Default, Clone)]
struct Sequential {
    rate: f64,
    p50: Duration,
    p99: Duration,
    cpu_us: f64,
}

#[derive(Default, Clone)]
struct Row {
    name: String,
    ping: Sequential,
    sync: Sequential,
    info: Sequential,
    pipelined_rate: f64,
    pipelined_cpu_us: f64,
    start_to_reply: Duration,
    rss_kib: u64,
    hwm_kib: u64,
}

fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        100.0
    }
}

/// Latencies, wall time and server CPU ticks gathered over rounds.
#[derive(Default)]
struct Samples {
    times: Vec<Duration>,
    wall: Duration,
    ticks: u64,
    requests: usize,
}

impl Samples {
    fn sequential(&self) -> Sequential {
        let mut times = self.times.clone();
        times.sort();
        Sequential {
            rate: self.requests as f64 / self.wall.as_secs_f64(),
            p50: percentile(&times, 0.5),
            p99: percentile(&times, 0.99),
            cpu_us: self.cpu_us(),
        }
    }

    fn cpu_us(&self) -> f64 {
        self.ticks as f64 * (1e6 / clock_ticks_per_second()) / self.requests as f64
    }
}

/// One round of `n` sequential round trips on an open connection.
fn sequential_round(server: &Server, client: &mut Client, requests: &[Vec<u8>], samples: &mut Samples) {
    let cpu_before = proc_cpu_ticks(server.pid());
    let started = Instant::now();
    for r in requests {
        let t = Instant::now();
        client.round_trip(r);
        samples.times.push(t.elapsed());
    }
    samples.wall += started.elapsed();
    samples.ticks += proc_cpu_ticks(server.pid()) - cpu_before;
    samples.requests += requests.len();
}

/// One round of `n` pings written by one thread while this one reads the
/// replies.
fn pipelined_round(server: &Server, client: &mut Client, n: usize, samples: &mut Samples) {
    let mut writer = client.stream.try_clone().unwrap();
    let batch: Vec<u8> = PING.repeat(100);
    let n = n / 100 * 100;
    let cpu_before = proc_cpu_ticks(server.pid());
    let started = Instant::now();
    let thread = std::thread::spawn(move || {
        for _ in 0..n / 100 {
            writer.write_all(&batch).unwrap();
        }
    });
    for _ in 0..n {
        client.read_reply();
    }
    samples.wall += started.elapsed();
    thread.join().unwrap();
    samples.ticks += proc_cpu_ticks(server.pid()) - cpu_before;
    samples.requests += n;
}

/// Median over `runs` of: spawn the agent, connect as soon as the socket
/// accepts, and get the reply to one guest-ping.
fn start_to_first_reply(name: &str, runs: usize) -> Duration {
    let mut times = Vec::new();
    for _ in 0..runs {
        let which = if name == "qemu-ga" { Which::QemuGa } else { Which::Ours };
        let agent = AgentProcess::spawn(which, Path::new(OUR_AGENT), &[]);
        let stream = loop {
            if let Ok(s) = UnixStream::connect(&agent.socket) {
                break s;
            }
            assert!(
                agent.started.elapsed() < Duration::from_secs(10),
                "{name} did not start"
            );
            std::thread::sleep(Duration::from_micros(200));
        };
        let mut client = Client {
            reader: BufReader::new(stream.try_clone().unwrap()),
            stream,
            line: Vec::new(),
        };
        client.round_trip(PING);
        times.push(agent.started.elapsed());
    }
    times.sort();
    times[times.len() / 2]
}

const NAMES: [&str; 3] = ["echo", "qemu-ga", "qga-agent"];

/// Rounds alternate between the three servers, so that load from
/// elsewhere on the machine falls on all three alike.
const ROUNDS: usize = 10;

fn measure_all(scale: f64) -> Vec<Row> {
    let n = |base: f64| ((base * scale / ROUNDS as f64) as usize).max(100);
    let servers: Vec<Server> = NAMES.iter().map(|name| Server::start(name)).collect();
    let mut clients: Vec<Client> = servers.iter().map(Server::connect).collect();
    let sync = |i: usize| format!("{{\"execute\":\"guest-sync\",\"arguments\":{{\"id\":{i}}}}}\n").into_bytes();
    let workloads: [(Vec<Vec<u8>>, &str); 3] = [
        ((0..n(50_000.0)).map(|_| PING.to_vec()).collect(), "guest-ping"),
        ((0..n(50_000.0)).map(sync).collect(), "guest-sync"),
        ((0..n(10_000.0)).map(|_| INFO.to_vec()).collect(), "guest-info"),
    ];
    let mut sequential: Vec<Vec<Samples>> = (0..3).map(|_| (0..3).map(|_| Samples::default()).collect()).collect();
    let mut pipelined: Vec<Samples> = (0..3).map(|_| Samples::default()).collect();
    // Warm-up.
    for (client, _) in clients.iter_mut().zip(&servers) {
        for (requests, _) in &workloads {
            for r in requests.iter().take(200) {
                client.round_trip(r);
            }
        }
    }
    for round in 0..ROUNDS {
        eprint!("round {}/{ROUNDS}\r", round + 1);
        for (w, (requests, _)) in workloads.iter().enumerate() {
            for (s, server) in servers.iter().enumerate() {
                sequential_round(server, &mut clients[s], requests, &mut sequential[w][s]);
            }
        }
        for (s, server) in servers.iter().enumerate() {
            pipelined_round(server, &mut clients[s], n(200_000.0), &mut pipelined[s]);
        }
    }
    eprintln!();
    let memory: Vec<(u64, u64)> = servers.iter().map(|s| proc_memory_kib(s.pid())).collect();
    drop(clients);
    drop(servers);
    (0..3)
        .map(|s| Row {
            name: NAMES[s].to_owned(),
            ping: sequential[0][s].sequential(),
            sync: sequential[1][s].sequential(),
            info: sequential[2][s].sequential(),
            pipelined_rate: pipelined[s].requests as f64 / pipelined[s].wall.as_secs_f64(),
            pipelined_cpu_us: pipelined[s].cpu_us(),
            start_to_reply: if s == 0 {
                Duration::ZERO
            } else {
                start_to_first_reply(NAMES[s], 11)
            },
            rss_kib: memory[s].0,
            hwm_kib: memory[s].1,
        })
        .collect()
}

fn us(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e6)
}

fn cpu(c: f64) -> String {
    format!("{c:.2}")
}

fn print_table(rows: &[Row]) {
    println!("\n| | echo (floor) | qemu-ga | qga-agent |\n|---|---:|---:|---:|");
    let line = |label: &str, f: &dyn Fn(&Row) -> String| {
        let cells: Vec<String> = rows.iter().map(f).collect();
        println!("| {label} | {} |", cells.join(" | "));
    };
    for (label, pick) in [
        ("guest-ping", (|r: &Row| r.ping.clone()) as fn(&Row) -> Sequential),
        ("guest-sync", |r: &Row| r.sync.clone()),
        ("guest-info", |r: &Row| r.info.clone()),
    ] {
        line(&format!("{label} sequential, requests/s"), &|r| {
            format!("{:.0}", pick(r).rate)
        });
        line(&format!("{label} p50 / p99, µs"), &|r| {
            let s = pick(r);
            format!("{} / {}", us(s.p50), us(s.p99))
        });
        line(&format!("{label} server CPU per request, µs"), &|r| cpu(pick(r).cpu_us));
    }
    line("guest-ping pipelined, requests/s", &|r| {
        format!("{:.0}", r.pipelined_rate)
    });
    line("guest-ping pipelined, server CPU per request, µs", &|r| {
        cpu(r.pipelined_cpu_us)
    });
    line("start to first reply, ms (median of 11)", &|r| {
        if r.name == "echo" {
            "-".into()
        } else {
            format!("{:.2}", r.start_to_reply.as_secs_f64() * 1e3)
        }
    });
    line("VmRSS / VmHWM after the run, KiB", &|r| {
        format!("{} / {}", r.rss_kib, r.hwm_kib)
    });
}

fn print_targets(echo: &Row, qemu: &Row, ours: &Row) {
    println!("\n| target | qemu-ga | qga-agent | ratio | met |\n|---|---:|---:|---:|---|");
    let target = |label: &str, theirs: f64, ours_v: f64, ok: bool, unit: &str| {
        let ratio = ours_v / theirs;
        let met = if ok { "yes" } else { "**no**" };
        println!("| {label} | {theirs:.2}{unit} | {ours_v:.2}{unit} | {ratio:.2} | {met} |");
    };
    for (label, q, o) in [
        (
            "CPU per sequential guest-ping <= 0.5x",
            qemu.ping.cpu_us,
            ours.ping.cpu_us,
        ),
        (
            "CPU per sequential guest-sync <= 0.5x",
            qemu.sync.cpu_us,
            ours.sync.cpu_us,
        ),
        (
            "CPU per sequential guest-info <= 0.5x",
            qemu.info.cpu_us,
            ours.info.cpu_us,
        ),
        (
            "CPU per pipelined guest-ping <= 0.5x",
            qemu.pipelined_cpu_us,
            ours.pipelined_cpu_us,
        ),
    ] {
        target(label, q, o, o <= 0.5 * q, " µs");
    }
    target(
        "pipelined guest-ping rate >= 2x",
        qemu.pipelined_rate,
        ours.pipelined_rate,
        ours.pipelined_rate >= 2.0 * qemu.pipelined_rate,
        "/s",
    );
    target(
        "sequential guest-info rate >= 2x",
        qemu.info.rate,
        ours.info.rate,
        ours.info.rate >= 2.0 * qemu.info.rate,
        "/s",
    );
    let (floor, p50) = (echo.ping.p50.as_secs_f64() * 1e6, ours.ping.p50.as_secs_f64() * 1e6);
    println!(
        "| guest-ping p50 <= 1.3x echo floor ({floor:.1} µs) | {:.1} µs | {p50:.1} µs | {:.2} (vs floor) | {} |",
        qemu.ping.p50.as_secs_f64() * 1e6,
        p50 / floor,
        if p50 <= 1.3 * floor { "yes" } else { "**no**" }
    );
    for (label, q, o) in [
        ("guest-ping p99 <= qemu-ga", &qemu.ping, &ours.ping),
        ("guest-sync p99 <= qemu-ga", &qemu.sync, &ours.sync),
        ("guest-info p99 <= qemu-ga", &qemu.info, &ours.info),
    ] {
        let (q, o) = (q.p99.as_secs_f64() * 1e6, o.p99.as_secs_f64() * 1e6);
        target(label, q, o, o <= q, " µs");
    }
    target(
        "VmRSS <= qemu-ga",
        qemu.rss_kib as f64,
        ours.rss_kib as f64,
        ours.rss_kib <= qemu.rss_kib,
        " KiB",
    );
}

fn load_average() -> String {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    text.split(' ').take(3).collect::<Vec<_>>().join(" ")
}

fn main() {
    if let Some(socket) = std::env::var_os(ECHO_ENV) {
        echo_server(Path::new(&socket));
    }
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    if !Path::new(QEMU_GA).exists() {
        eprintln!("{QEMU_GA} not found (apt-get install qemu-guest-agent); benchmark did NOT run");
        return;
    }
    // `cargo bench` passes `--bench`; `cargo test --benches` (or
    // `--all-targets`) does not, and then a tiny run checks that it works.
    let smoke_test = !std::env::args().any(|a| a == "--bench");
    let scale: f64 = std::env::var("AGENTVERIFY_BENCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if smoke_test { 0.01 } else { 1.0 });
    let load_before = load_average();
    let started = Instant::now();
    let rows = measure_all(scale);
    print_table(&rows);
    print_targets(&rows[0], &rows[1], &rows[2]);
    println!(
        "\nscale {scale}, {:.1} s in all; load average before: {load_before}, after: {}",
        started.elapsed().as_secs_f64(),
        load_average()
    );
    if smoke_test {
        println!("smoke run (no --bench): these figures are not measurements");
    }
}
