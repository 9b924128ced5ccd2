//! Polls many agents at once: N fake agents in this process, each on its
//! own unix socket, 10% of them hung (they answer the first sync, then
//! nothing), through the async client with a 1 s response timeout.
//!
//! `cargo bench -p qga-host --bench poll_many` (N from `QGA_BENCH_N`,
//! default `10,100,1000`).

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant};

use qga_host::{AsyncConnection, Endpoint, Error, Options, ResponseTimeout};
use qga_types::commands::GuestGetTime;
use qga_types::runtime::serde_json::{self, json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::task::JoinSet;

/// Counts live heap bytes.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards to the system allocator and only adds counting.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        System.alloc(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        System.dealloc(ptr, layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size as isize - layout.size() as isize, Ordering::Relaxed);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Each agent needs a listening socket and two connected ones.
fn raise_fd_limit() -> u64 {
    // SAFETY: getrlimit/setrlimit with a valid struct.
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
            libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        }
        lim.rlim_cur
    }
}

/// A fake agent: answers syncs and guest-get-time; a hung one answers
/// its first sync (so connecting works) and then nothing.
async fn serve(listener: UnixListener, hung: bool) {
    while let Ok((stream, _)) = listener.accept().await {
        tokio::spawn(agent_connection(stream, hung));
    }
}

async fn agent_connection(stream: UnixStream, hung: bool) {
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::with_capacity(512, read);
    let mut line = Vec::with_capacity(256);
    let mut synced = false;
    loop {
        line.clear();
        match read.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        line.retain(|&b| b != 0xFF);
        let Ok(request) = serde_json::from_slice::<Value>(&line) else {
            continue;
        };
        if hung && synced {
            continue;
        }
        let mut out = Vec::with_capacity(64);
        match request["execute"].as_str() {
            Some("guest-sync-delimited") => {
                synced = true;
                out.push(0xFF);
                out.extend(serde_json::to_vec(&json!({"return": request["arguments"]["id"]})).unwrap());
            }
            Some("guest-get-time") => {
                out.extend(
                    serde_json::to_vec(&json!({"return": 1_700_000_000_000_000_000i64, "id": request["id"]})).unwrap(),
                );
            }
            _ => continue,
        }
        out.push(b'\n');
        if write.write_all(&out).await.is_err() {
            return;
        }
    }
}

struct Round {
    took: Duration,
    ok: usize,
    /// When the last healthy agent had answered.
    last_ok: Duration,
    timeouts: usize,
    other: usize,
}

async fn poll(conns: Vec<AsyncConnection>) -> (Vec<AsyncConnection>, Round) {
    let started = Instant::now();
    let mut set = JoinSet::new();
    for mut conn in conns {
        set.spawn(async move {
            let result = conn.run::<GuestGetTime>(&Default::default()).await;
            (conn, result, started.elapsed())
        });
    }
    let mut round = Round {
        took: Duration::ZERO,
        ok: 0,
        last_ok: Duration::ZERO,
        timeouts: 0,
        other: 0,
    };
    let mut back = Vec::new();
    while let Some(joined) = set.join_next().await {
        let (conn, result, at) = joined.expect("poll task");
        match result {
            Ok(_) => {
                round.ok += 1;
                round.last_ok = round.last_ok.max(at);
            }
            Err(Error::Timeout) => round.timeouts += 1,
            Err(e) => {
                eprintln!("unexpected: {e}");
                round.other += 1
            }
        }
        back.push(conn);
    }
    round.took = started.elapsed();
    (back, round)
}

async fn bench(n: usize, dir: &Path) {
    let hung = n / 10;
    let mut paths: Vec<PathBuf> = Vec::with_capacity(n);
    for i in 0..n {
        let path = dir.join(format!("a{n}-{i}.sock"));
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).expect("bind");
        tokio::spawn(serve(listener, i % 10 == 9));
        paths.push(path);
    }
    let heap_before = LIVE.load(Ordering::Relaxed);
    let rss_before = rss_kib();
    let options = Options {
        timeout: ResponseTimeout::Seconds(1),
        ..Options::default()
    };
    let started = Instant::now();
    let mut set = JoinSet::new();
    for path in &paths {
        let endpoint = Endpoint::Unix(path.clone());
        let options = options.clone();
        set.spawn(async move { AsyncConnection::connect(&endpoint, options).await });
    }
    let mut conns = Vec::with_capacity(n);
    while let Some(joined) = set.join_next().await {
        conns.push(joined.expect("connect task").expect("connect"));
    }
    let connect_took = started.elapsed();
    let (conns, first) = poll(conns).await;
    let heap_after = LIVE.load(Ordering::Relaxed);
    let rss_after = rss_kib();
    let (conns, second) = poll(conns).await;
    println!(
        "N={n:>5} ({hung} hung): connect+sync all {:>7.3} s | poll 1: {:>6.3} s ({} ok, all by {:.1} ms; {} timed out, {} other) | poll 2: {:>6.3} s ({} ok, all by {:.1} ms; {} timed out, {} other)",
        connect_took.as_secs_f64(),
        first.took.as_secs_f64(),
        first.ok,
        first.last_ok.as_secs_f64() * 1000.0,
        first.timeouts,
        first.other,
        second.took.as_secs_f64(),
        second.ok,
        second.last_ok.as_secs_f64() * 1000.0,
        second.timeouts,
        second.other,
    );
    println!(
        "          memory per connection, both ends (client + fake agent task): RSS {:.1} KiB, live heap {:.1} KiB; size_of::<AsyncConnection>() = {} B",
        (rss_after.saturating_sub(rss_before)) as f64 / n as f64,
        (heap_after - heap_before) as f64 / 1024.0 / n as f64,
        std::mem::size_of::<AsyncConnection>(),
    );
    assert_eq!(first.ok + second.ok, 2 * (n - hung));
    drop(conns);
    for path in &paths {
        let _ = std::fs::remove_file(path);
    }
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` does not: a small case then.
    let quick = !std::env::args().any(|a| a == "--bench");
    let sizes: Vec<usize> = if quick {
        vec![10]
    } else {
        std::env::var("QGA_BENCH_N")
            .unwrap_or_else(|_| "10,100,1000".into())
            .split(',')
            .map(|s| s.trim().parse().expect("QGA_BENCH_N: numbers separated by commas"))
            .collect()
    };
    let limit = raise_fd_limit();
    println!("RLIMIT_NOFILE {limit}; 1 s response timeout; 10% of agents hung");
    let dir = std::env::temp_dir().join(format!("qga-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    for n in sizes {
        runtime.block_on(bench(n, &dir));
    }
    let _ = std::fs::remove_dir_all(&dir);
}
