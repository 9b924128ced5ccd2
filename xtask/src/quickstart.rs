//! `cargo xtask quickstart`: the whole system in one command. Builds the
//! guest agent and the host CLI, starts the agent on a unix socket in a
//! temporary directory (no VM needed), queries it with `qga`, and stops
//! it. Only read-only commands are sent, so it is safe on any machine.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use crate::workspace_root;

/// The queries shown, as `qga` arguments.
const QUERIES: &[&[&str]] = &[
    &["ping"],
    &["info"],
    &["call", "guest-sync", r#"{"id": 12345}"#],
    &["time", "get"],
    &["call", "guest-get-osinfo"],
    &["call", "guest-get-host-name"],
    &["exec", "--", "/bin/uname", "-sr"],
];

struct Agent(Child);

/// Removes the temporary directory however quickstart ends.
struct RemovedOnDrop(PathBuf);

impl Drop for RemovedOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

fn show(program: &Path, args: &[impl AsRef<std::ffi::OsStr>]) {
    let args: Vec<String> = args.iter().map(|a| a.as_ref().to_string_lossy().into_owned()).collect();
    let name = program.file_name().unwrap_or_default().to_string_lossy();
    println!("\n$ {name} {}", args.join(" "));
}

pub fn quickstart() -> ExitCode {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    println!("Building qga-agent and qga...");
    let built = Command::new(&cargo)
        .current_dir(workspace_root())
        .args(["build", "--quiet", "-p", "qga-agent", "-p", "qga-host", "--bins"])
        .status();
    if !built.is_ok_and(|s| s.success()) {
        eprintln!("xtask: the build failed");
        return ExitCode::FAILURE;
    }
    let bin = target_dir().join("debug");
    let (agent_bin, qga_bin) = (bin.join("qga-agent"), bin.join("qga"));

    let dir = std::env::temp_dir().join(format!("qga-quickstart-{}", std::process::id()));
    let state = dir.join("state");
    if let Err(e) = std::fs::create_dir_all(&state) {
        eprintln!("xtask: cannot create {}: {e}", state.display());
        return ExitCode::FAILURE;
    }
    let _cleanup = RemovedOnDrop(dir.clone());
    let sock = dir.join("qga.sock");
    let log = dir.join("agent.log");
    let agent_args = [
        "-m".as_ref(),
        "unix-listen".as_ref(),
        "-p".as_ref(),
        sock.as_os_str(),
        "-t".as_ref(),
        state.as_os_str(),
        "-l".as_ref(),
        log.as_os_str(),
        "-v".as_ref(),
    ];
    show(&agent_bin, &agent_args);
    let mut agent = match Command::new(&agent_bin).args(agent_args).stdin(Stdio::null()).spawn() {
        Ok(child) => Agent(child),
        Err(e) => {
            eprintln!("xtask: cannot start {}: {e}", agent_bin.display());
            return ExitCode::FAILURE;
        }
    };
    let started = Instant::now();
    while !sock.exists() {
        let exited = agent.0.try_wait().ok().flatten();
        if exited.is_some() || started.elapsed() > Duration::from_secs(10) {
            let how = exited.map_or("did not create its socket".to_string(), |status| {
                format!("exited ({status})")
            });
            eprintln!("xtask: the agent {how}; its log:");
            eprint!("{}", std::fs::read_to_string(&log).unwrap_or_default());
            return ExitCode::FAILURE;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    println!("(agent running, pid {}, on {})", agent.0.id(), sock.display());

    let mut failed = 0;
    for query in QUERIES {
        let mut args: Vec<&std::ffi::OsStr> = vec!["--socket".as_ref(), sock.as_os_str()];
        args.extend(query.iter().map(std::ffi::OsStr::new));
        show(&qga_bin, &args);
        match Command::new(&qga_bin).args(&args).status() {
            Ok(status) if status.success() => {}
            Ok(status) => {
                println!("(exit status {status})");
                failed += 1;
            }
            Err(e) => {
                eprintln!("xtask: cannot run {}: {e}", qga_bin.display());
                return ExitCode::FAILURE;
            }
        }
    }
    drop(agent);
    println!("\nAgent log ({}):", log.display());
    print!("{}", std::fs::read_to_string(&log).unwrap_or_default());
    if failed == 0 {
        println!("\nquickstart: all {} queries answered", QUERIES.len());
        ExitCode::SUCCESS
    } else {
        eprintln!("\nquickstart: {failed} of {} queries failed", QUERIES.len());
        ExitCode::FAILURE
    }
}
