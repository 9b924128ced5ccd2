//! guest-exec and guest-exec-status: children started in the background,
//! their input fed and their output captured by helper threads, their
//! exit collected (reaped) by a waiter thread.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use qga_types::runtime::CommandError;
use qga_types::{GuestExec, GuestExecArgs, GuestExecCaptureOutput, GuestExecCaptureOutputMode, GuestExecStatus};

use super::files::decode_base64;
use super::util::{command_failed, strerror};

/// qemu-ga's cap on captured output per stream (GUEST_EXEC_MAX_OUTPUT).
pub const MAX_OUTPUT: usize = 16 * 1024 * 1024;

#[derive(Default)]
struct Captured {
    data: Vec<u8>,
    truncated: bool,
    /// The pipe reached end of file: nothing more will come.
    closed: bool,
}

#[derive(Default)]
struct ProcessState {
    status: Option<ExitStatus>,
    /// `None` for a stream that is not captured.
    out: Option<Captured>,
    err: Option<Captured>,
}

type Shared = Arc<Mutex<ProcessState>>;

fn lock(state: &Shared) -> std::sync::MutexGuard<'_, ProcessState> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

#[derive(Default)]
pub struct ProcessTable {
    processes: Mutex<HashMap<i64, Shared>>,
}

/// Which streams to capture and whether stderr joins stdout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Capture {
    stdout: bool,
    stderr: bool,
    merged: bool,
}

fn capture_mode(capture: Option<&GuestExecCaptureOutput>) -> Result<Capture, CommandError> {
    let c = |stdout, stderr, merged| Capture { stdout, stderr, merged };
    Ok(match capture {
        None | Some(GuestExecCaptureOutput::Flag(false)) => c(false, false, false),
        Some(GuestExecCaptureOutput::Flag(true)) => c(true, true, false),
        Some(GuestExecCaptureOutput::Mode(mode)) => match mode {
            GuestExecCaptureOutputMode::None => c(false, false, false),
            GuestExecCaptureOutputMode::Stdout => c(true, false, false),
            GuestExecCaptureOutputMode::Stderr => c(false, true, false),
            GuestExecCaptureOutputMode::Separated => c(true, true, false),
            GuestExecCaptureOutputMode::Merged => c(true, false, true),
            other => {
                return Err(CommandError::generic(format!(
                    "Parameter 'capture-output' does not accept value '{}'",
                    serde_json::to_value(other)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default()
                )))
            }
        },
    })
}

/// Builds the command as qemu-ga does: `path` searched in PATH, `arg`
/// after it, and `env`, when given, as the whole environment.
fn build_command(args: &GuestExecArgs) -> Command {
    let mut cmd = Command::new(&args.path);
    cmd.args(args.arg.iter().flatten());
    if let Some(env) = &args.env {
        cmd.env_clear();
        for entry in env {
            match entry.split_once('=') {
                Some((key, value)) => cmd.env(key, value),
                None => cmd.env(entry, ""),
            };
        }
    }
    cmd
}

/// Reads a pipe to its end, keeping at most MAX_OUTPUT bytes and
/// draining the rest so the child never blocks on a full pipe.
fn collect(mut pipe: impl Read, state: Shared, pick: fn(&mut ProcessState) -> &mut Option<Captured>) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match pipe.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        let mut guard = lock(&state);
        if let Some(captured) = pick(&mut guard) {
            let room = MAX_OUTPUT - captured.data.len();
            captured.data.extend_from_slice(&buf[..n.min(room)]);
            captured.truncated |= n > room;
        }
    }
    if let Some(captured) = pick(&mut lock(&state)) {
        captured.closed = true;
    }
}

fn start(work: impl FnOnce() + Send + 'static) -> io::Result<()> {
    thread::Builder::new().name("qga-exec".into()).spawn(work).map(drop)
}

fn feed(mut stdin: ChildStdin, data: Vec<u8>) {
    // A child that exits without reading its input is not an error.
    let _ = stdin.write_all(&data);
}

fn spawn_error(path: &str, e: &io::Error) -> CommandError {
    command_failed(format_args!(
        "Failed to execute child process “{path}” ({})",
        strerror(e)
    ))
}

impl ProcessTable {
    pub fn exec(&self, args: &GuestExecArgs) -> Result<GuestExec, CommandError> {
        let input = args.input_data.as_deref().map(decode_base64).transpose()?;
        let capture = capture_mode(args.capture_output.as_ref())?;
        let mut cmd = build_command(args);
        cmd.stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() });
        // For "merged", one pipe serves both streams; the parent's copies
        // of its write end go away with `cmd` right after the spawn.
        let mut merged_reader: Option<std::fs::File> = None;
        if capture.merged {
            let (read_end, write_end) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
                .map_err(|e| spawn_error(&args.path, &io::Error::from(e)))?;
            let second: OwnedFd = write_end.try_clone().map_err(|e| spawn_error(&args.path, &e))?;
            cmd.stdout(Stdio::from(write_end)).stderr(Stdio::from(second));
            merged_reader = Some(std::fs::File::from(read_end));
        } else {
            cmd.stdout(if capture.stdout { Stdio::piped() } else { Stdio::null() });
            cmd.stderr(if capture.stderr { Stdio::piped() } else { Stdio::null() });
        }
        let child = cmd.spawn().map_err(|e| spawn_error(&args.path, &e));
        drop(cmd);
        let mut child: Child = child?;
        let pid = i64::from(child.id());

        let state: Shared = Arc::new(Mutex::new(ProcessState {
            status: None,
            out: (capture.stdout || capture.merged).then(Captured::default),
            err: capture.stderr.then(Captured::default),
        }));
        let stdout_pick: fn(&mut ProcessState) -> &mut Option<Captured> = |s| &mut s.out;
        let stderr_pick: fn(&mut ProcessState) -> &mut Option<Captured> = |s| &mut s.err;
        // Helper threads are started with an error instead of a panic
        // when none can be had; the child is then killed and reaped here.
        let helpers = (|| -> io::Result<()> {
            if let (Some(stdin), Some(data)) = (child.stdin.take(), input) {
                start(move || feed(stdin, data))?;
            }
            if let Some(reader) = merged_reader {
                let state = state.clone();
                start(move || collect(reader, state, stdout_pick))?;
            }
            if let Some(out) = child.stdout.take() {
                let state = state.clone();
                start(move || collect(out, state, stdout_pick))?;
            }
            if let Some(err) = child.stderr.take() {
                let state = state.clone();
                start(move || collect(err, state, stderr_pick))?;
            }
            Ok(())
        })();
        // The waiter receives the child once it runs, so one that could
        // not start leaves the child here.
        let (hand_over, handed) = mpsc::sync_channel::<Child>(1);
        let started = helpers.and_then(|()| {
            let state = state.clone();
            start(move || {
                let Ok(mut child) = handed.recv() else { return };
                let status = child.wait();
                // wait only fails for a child we do not own; record a
                // failure as a plain exit so the entry can be collected.
                lock(&state).status = Some(status.unwrap_or_else(|_| ExitStatus::from_raw(0xff00)));
            })
        });
        let unreaped = match started {
            Ok(()) => hand_over
                .send(child)
                .err()
                .map(|mpsc::SendError(child)| (child, io::Error::other("the exec waiter ended early"))),
            Err(e) => Some((child, e)),
        };
        if let Some((mut child, e)) = unreaped {
            let _ = child.kill();
            let _ = child.wait();
            return Err(spawn_error(&args.path, &e));
        }
        self.processes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(pid, state);
        Ok(GuestExec { pid })
    }

    /// The process's state; once it has ended and its output pipes are
    /// drained, the answer carries the exit and the output, and the pid
    /// is forgotten.
    pub fn status(&self, pid: i64) -> Result<GuestExecStatus, CommandError> {
        let mut processes = self.processes.lock().unwrap_or_else(|p| p.into_inner());
        let state = processes
            .get(&pid)
            .cloned()
            .ok_or_else(|| CommandError::generic("Invalid parameter 'pid'"))?;
        let guard = lock(&state);
        let drained = [&guard.out, &guard.err]
            .iter()
            .all(|c| c.as_ref().is_none_or(|c| c.closed));
        let mut reply = GuestExecStatus {
            exited: false,
            exitcode: None,
            signal: None,
            out_data: None,
            err_data: None,
            out_truncated: None,
            err_truncated: None,
        };
        let Some(status) = guard.status.filter(|_| drained) else {
            return Ok(reply);
        };
        reply.exited = true;
        reply.exitcode = status.code().map(i64::from);
        reply.signal = status.signal().map(i64::from);
        if let Some(out) = guard.out.as_ref().filter(|c| !c.data.is_empty()) {
            reply.out_data = Some(STANDARD.encode(&out.data));
            reply.out_truncated = Some(out.truncated);
        }
        if let Some(err) = guard.err.as_ref().filter(|c| !c.data.is_empty()) {
            reply.err_data = Some(STANDARD.encode(&err.data));
            reply.err_truncated = Some(err.truncated);
        }
        drop(guard);
        processes.remove(&pid);
        Ok(reply)
    }

    /// Kills a process whose client never learnt its pid (its `guest-exec`
    /// answered after the client was told it timed out) and forgets it.
    /// Its waiter thread still reaps it.
    pub fn abandon(&self, pid: i64) {
        let state = self.processes.lock().unwrap_or_else(|p| p.into_inner()).remove(&pid);
        let Some(state) = state else { return };
        // Not yet reaped, so the pid is still this child's.
        let guard = lock(&state);
        if guard.status.is_none() {
            if let Ok(pid) = i32::try_from(pid) {
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn args(path: &str, arg: &[&str]) -> GuestExecArgs {
        GuestExecArgs {
            path: path.into(),
            arg: Some(arg.iter().map(|s| s.to_string()).collect()),
            env: None,
            input_data: None,
            capture_output: None,
        }
    }

    fn sh(script: &str, capture: Option<GuestExecCaptureOutput>) -> GuestExecArgs {
        GuestExecArgs {
            capture_output: capture,
            ..args("sh", &["-c", script])
        }
    }

    /// Polls until the process is reported as exited (bounded).
    fn finish(table: &ProcessTable, pid: i64) -> GuestExecStatus {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let status = table.status(pid).unwrap();
            if status.exited {
                return status;
            }
            assert!(Instant::now() < deadline, "process {pid} did not finish");
            thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn an_abandoned_process_is_killed_and_forgotten() {
        let table = ProcessTable::default();
        let pid = table.exec(&args("sleep", &["30"])).unwrap().pid;
        table.abandon(pid);
        assert_eq!(
            table.status(pid).unwrap_err().desc,
            "Invalid parameter 'pid'",
            "the table forgot it"
        );
        // Killed and reaped by its waiter: the pid is gone.
        let deadline = Instant::now() + Duration::from_secs(10);
        while nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), None).is_ok() {
            assert!(Instant::now() < deadline, "process {pid} still runs");
            thread::sleep(Duration::from_millis(10));
        }
    }

    fn decoded(data: &Option<String>) -> Vec<u8> {
        STANDARD.decode(data.as_deref().unwrap_or("")).unwrap()
    }

    #[test]
    fn linux_exec_exit_code_and_separate_capture() {
        let table = ProcessTable::default();
        let pid = table
            .exec(&sh(
                "echo out; echo err >&2; exit 3",
                Some(GuestExecCaptureOutput::Flag(true)),
            ))
            .unwrap()
            .pid;
        let status = finish(&table, pid);
        assert_eq!((status.exitcode, status.signal), (Some(3), None));
        let reaped = nix::sys::wait::waitpid(
            nix::unistd::Pid::from_raw(pid as i32),
            Some(nix::sys::wait::WaitPidFlag::WNOHANG),
        );
        assert_eq!(
            reaped,
            Err(nix::errno::Errno::ECHILD),
            "an exited child is reaped, no zombie"
        );
        assert_eq!(decoded(&status.out_data), b"out\n");
        assert_eq!(decoded(&status.err_data), b"err\n");
        assert_eq!((status.out_truncated, status.err_truncated), (Some(false), Some(false)));
        // A finished process is reported once, then forgotten, as in qemu-ga.
        assert_eq!(table.status(pid).unwrap_err().desc, "Invalid parameter 'pid'");
        assert_eq!(table.status(-5).unwrap_err().desc, "Invalid parameter 'pid'");
    }

    #[test]
    fn linux_exec_without_capture_and_signal() {
        let table = ProcessTable::default();
        let pid = table.exec(&sh("echo ignored; kill -9 $$", None)).unwrap().pid;
        let status = finish(&table, pid);
        assert_eq!((status.exitcode, status.signal), (None, Some(9)));
        assert!(status.out_data.is_none() && status.out_truncated.is_none());
        let pid = table.exec(&args("true", &[])).unwrap().pid;
        assert_eq!(finish(&table, pid).exitcode, Some(0));
    }

    #[test]
    fn linux_exec_input_env_and_modes() {
        let table = ProcessTable::default();
        let mut cat = args("cat", &[]);
        cat.input_data = Some(STANDARD.encode(b"fed through stdin"));
        cat.capture_output = Some(GuestExecCaptureOutput::Mode(GuestExecCaptureOutputMode::Stdout));
        let status = finish(&table, table.exec(&cat).unwrap().pid);
        assert_eq!(decoded(&status.out_data), b"fed through stdin");

        let mut env = sh(
            "echo \"$FOO\"; echo \"[$HOME]\"",
            Some(GuestExecCaptureOutput::Flag(true)),
        );
        env.path = "/bin/sh".into();
        env.env = Some(vec!["FOO=bar=baz".into()]);
        let status = finish(&table, table.exec(&env).unwrap().pid);
        assert_eq!(
            decoded(&status.out_data),
            b"bar=baz\n[]\n",
            "env replaces the environment"
        );

        let merged = sh(
            "echo a; echo b >&2; echo c",
            Some(GuestExecCaptureOutput::Mode(GuestExecCaptureOutputMode::Merged)),
        );
        let status = finish(&table, table.exec(&merged).unwrap().pid);
        assert_eq!(decoded(&status.out_data), b"a\nb\nc\n");
        assert!(status.err_data.is_none());

        let stderr_only = sh(
            "echo a; echo b >&2",
            Some(GuestExecCaptureOutput::Mode(GuestExecCaptureOutputMode::Stderr)),
        );
        let status = finish(&table, table.exec(&stderr_only).unwrap().pid);
        assert_eq!(
            (decoded(&status.out_data), decoded(&status.err_data)),
            (vec![], b"b\n".to_vec())
        );
    }

    #[test]
    fn linux_exec_output_is_capped() {
        let table = ProcessTable::default();
        // 16 MiB + 3 bytes on stdout, a little on stderr.
        let script = "head -c 16777219 /dev/zero; echo small >&2";
        let pid = table
            .exec(&sh(script, Some(GuestExecCaptureOutput::Flag(true))))
            .unwrap()
            .pid;
        let status = finish(&table, pid);
        assert_eq!(status.exitcode, Some(0));
        assert_eq!(decoded(&status.out_data).len(), MAX_OUTPUT);
        assert_eq!(status.out_truncated, Some(true));
        assert_eq!(status.err_truncated, Some(false));
    }

    #[test]
    fn linux_exec_running_then_errors() {
        let table = ProcessTable::default();
        let pid = table.exec(&sh("sleep 0.3", None)).unwrap().pid;
        let early = table.status(pid).unwrap();
        assert!(!early.exited && early.exitcode.is_none());
        assert!(finish(&table, pid).exited);

        let err = table.exec(&args("no-such-program-for-qga", &[])).unwrap_err();
        assert_eq!(
            err.desc,
            "Guest agent command failed, error was 'Failed to execute child process “no-such-program-for-qga” (No such file or directory)'"
        );
        let mut bad = args("true", &[]);
        bad.input_data = Some("!!".into());
        assert_eq!(
            table.exec(&bad).unwrap_err().desc,
            "Base64 data contains invalid characters"
        );
    }
}
