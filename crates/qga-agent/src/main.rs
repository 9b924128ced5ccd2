use std::fs::OpenOptions;
use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use nix::fcntl::{Flock, FlockArg};
use qga_agent::config::{Cli, Config, Method, DEFAULT_PIDFILE};
use qga_agent::linux::LinuxSystem;
use qga_agent::serve::{serve, ServeOptions};
use qga_agent::{logging, Agent, AgentConfig, RpcPolicy};
use tracing::{error, info, warn};

fn fail(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("qga-agent: {message}");
    ExitCode::FAILURE
}

/// Writes our pid and holds a lock on the file, so a second agent with the
/// same pid file refuses to start.
fn lock_pidfile(path: &std::path::Path) -> Result<Flock<std::fs::File>, String> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| format!("cannot open pid file {}: {e}", path.display()))?;
    let mut lock = Flock::lock(file, FlockArg::LockExclusiveNonblock)
        .map_err(|(_, e)| format!("pid file {} is locked by another agent: {e}", path.display()))?;
    lock.set_len(0)
        .and_then(|()| writeln!(lock, "{}", std::process::id()))
        .map_err(|e| format!("cannot write pid file {}: {e}", path.display()))?;
    Ok(lock)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.block_rpcs.iter().chain(&cli.allow_rpcs).any(|s| s == "help") {
        for command in qga_types::COMMANDS.iter() {
            println!("{}", command.name);
        }
        return ExitCode::SUCCESS;
    }
    let mut config = match Config::resolve(&cli) {
        Ok(config) => config,
        Err(e) => return fail(e),
    };
    if cli.dump_conf {
        print!("{}", config.dump());
        return ExitCode::SUCCESS;
    }
    let path = match config.effective_path() {
        Ok(path) => path,
        Err(e) => return fail(e),
    };
    if !config.statedir.is_dir() {
        return fail(format!("state directory {} does not exist", config.statedir.display()));
    }
    let mut pidfile = config.pidfile.clone();
    let mut path = path;
    if config.daemonize {
        // Paths must survive the change to / that daemonizing makes.
        let absolute = |p: &std::path::Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
        config.statedir = absolute(&config.statedir);
        config.logfile = config.logfile.as_deref().map(absolute);
        pidfile = Some(absolute(pidfile.as_deref().unwrap_or(DEFAULT_PIDFILE.as_ref())));
        if config.method != Method::VsockListen {
            path = absolute(&path);
        }
        // SAFETY: no other thread exists yet, so forking is sound.
        if unsafe { libc::daemon(0, 0) } != 0 {
            return fail(format!("cannot daemonize: {}", std::io::Error::last_os_error()));
        }
    }
    // Held (locked) for as long as the agent runs.
    let _pidfile_lock = match pidfile.as_deref().map(lock_pidfile).transpose() {
        Ok(lock) => lock,
        Err(e) => return fail(e),
    };
    let policy = RpcPolicy::new(&config.block_rpcs, &config.allow_rpcs);
    let agent = Agent::new(
        AgentConfig {
            statedir: config.statedir.clone(),
            policy: policy.clone(),
            command_timeout: config.command_timeout,
            freeze_timeout: config.freeze_timeout,
        },
        Box::new(LinuxSystem),
    );
    if let Err(e) = logging::init(config.logfile.as_deref(), config.verbose, agent.frozen_flag()) {
        return fail(format!(
            "cannot open log file {}: {e}",
            config.logfile.as_deref().unwrap_or("stderr".as_ref()).display()
        ));
    }
    for warning in &config.warnings {
        warn!("config: {warning}");
    }
    for name in policy.unknown_names() {
        warn!("no command named {name} (in the block or allow list)");
    }
    info!("qga-agent {} starting", env!("CARGO_PKG_VERSION"));
    let options = ServeOptions {
        method: config.method,
        path,
        retry_path: config.retry_path,
        write_timeout: config.write_timeout,
    };
    match serve(agent, &options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e}");
            fail(e)
        }
    }
}
