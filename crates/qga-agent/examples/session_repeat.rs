//! A fixed workload for profilers: N requests of one kind through a
//! `Session`, without sockets (see BENCHMARKS.md).
//!
//! `session_repeat ping|sync|info N`

use qga_agent::system::testing::FakeSystem;
use qga_agent::{Agent, AgentConfig, Session};

fn main() {
    let mut args = std::env::args().skip(1);
    let kind = args.next().unwrap_or_else(|| "ping".into());
    let n: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(10_000);
    let request: &[u8] = match kind.as_str() {
        "ping" => b"{\"execute\":\"guest-ping\"}\n",
        "sync" => b"{\"execute\":\"guest-sync\",\"arguments\":{\"id\":12345}}\n",
        "info" => b"{\"execute\":\"guest-info\"}\n",
        other => {
            eprintln!("session_repeat: unknown kind '{other}' (ping, sync or info)");
            std::process::exit(2);
        }
    };
    let statedir = std::env::temp_dir().join(format!("qga-session-repeat-{}", std::process::id()));
    std::fs::create_dir_all(&statedir).expect("state directory");
    let agent = Agent::new(AgentConfig::new(&statedir), Box::new(FakeSystem::new()));
    let mut session = Session::new(agent);
    let mut out = Vec::new();
    let mut bytes = 0;
    for _ in 0..n {
        out.clear();
        session.feed(request, &mut out);
        bytes += out.len();
    }
    let _ = std::fs::remove_dir_all(&statedir);
    println!("{n} {kind} requests, {bytes} reply bytes");
}
