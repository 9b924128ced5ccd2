//! `qga`: talk to a QEMU guest agent from the host.

use std::fs::File;
use std::io::{self, IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use clap::{Args, CommandFactory, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use qga_host::{Capabilities, Connection, Endpoint, Error, Options, ResponseTimeout};
use qga_types::client::Client;
use qga_types::runtime::serde::Serialize;
use qga_types::runtime::serde_json::{self, Value};
use qga_types::runtime::CallError;
use qga_types::*;

/// `println!` that does not panic when stdout is closed early (`| head`).
macro_rules! out {
    ($($arg:tt)*) => {{
        let _ = writeln!(io::stdout(), $($arg)*);
    }};
}

const ABOUT: &str = "Talk to a QEMU guest agent (qemu-ga) from the host.";

const LONG_ABOUT: &str = "\
Talk to a QEMU guest agent (qemu-ga) from the host.

Give the agent's socket with --socket (the host end of a `-chardev socket`,
or `qemu-ga -m unix-listen`), --tcp or --vsock. Every connection starts
with a resync (0xFF and guest-sync-delimited), so leftovers from earlier
clients never get mixed into answers.

Exit status: 0 on success; 1 when the agent answered with an error; 2 for
usage errors; 3 when the agent did not answer in time; 4 for connection
and protocol problems. `exec` exits with the guest command's own status.
Errors are one line on stderr.";

const AFTER_HELP: &str = "\
Examples:
  qga --socket /run/qga.sock ping
  qga --socket /run/qga.sock call guest-get-osinfo
  qga --socket /run/qga.sock call guest-file-open '{\"path\": \"/etc/hostname\"}'
  qga --vsock 3:1234 --timeout 300 fsfreeze freeze
  qga --socket /run/qga.sock exec -- uname -a
  qga --socket /run/qga.sock cat /var/log/messages > messages
  qga completions bash > /etc/bash_completion.d/qga";

#[derive(Parser, Debug)]
#[command(name = "qga", version, about = ABOUT, long_about = LONG_ABOUT, after_help = AFTER_HELP)]
struct Cli {
    /// The agent's unix socket.
    #[arg(long, short = 's', value_name = "PATH", global = true, conflicts_with_all = ["tcp", "vsock"])]
    socket: Option<PathBuf>,

    /// The agent over TCP (a `-chardev socket,host=...,port=...`).
    #[arg(long, value_name = "HOST:PORT", global = true, value_parser = Endpoint::parse_tcp, conflicts_with = "vsock")]
    tcp: Option<Endpoint>,

    /// The agent over vsock (`qemu-ga -m vsock-listen -p vsock:CID:PORT` in the guest).
    #[arg(long, value_name = "CID:PORT", global = true, value_parser = Endpoint::parse_vsock)]
    vsock: Option<Endpoint>,

    /// How long to wait for each reply: whole seconds, `block` (forever),
    /// `nowait` (send, do not wait) or `default` (5 s; 300 s for fsfreeze).
    #[arg(long, short = 't', value_name = "SECS|block|nowait", global = true)]
    timeout: Option<ResponseTimeout>,

    #[command(subcommand)]
    command: Cmd,
}

#[derive(Args, Debug, Clone, Copy)]
struct Json {
    /// Print the agent's answer as JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run any command by its wire name and print its return value as JSON.
    Call {
        /// The command, such as `guest-get-osinfo`.
        command: String,
        /// Its arguments as a JSON object, such as '{"id": 1}'.
        #[arg(value_name = "ARGS-JSON")]
        arguments: Option<String>,
    },
    /// Check that the agent answers.
    Ping(Json),
    /// The agent's version and the commands it offers.
    Info(Json),
    /// The guest's clock.
    Time {
        #[command(subcommand)]
        action: TimeCmd,
    },
    /// Freeze and thaw the guest's filesystems (for consistent snapshots).
    Fsfreeze {
        #[command(subcommand)]
        action: FsfreezeCmd,
    },
    /// The guest's network interfaces and addresses.
    Net(Json),
    /// The guest's virtual CPUs.
    Vcpus(Json),
    /// Run a program in the guest; print its output and exit with its status.
    Exec(ExecArgs),
    /// Copy a file out of the guest to stdout (or --output).
    Cat {
        /// The file in the guest.
        guest_path: String,
        /// Write here instead of stdout.
        #[arg(long, short = 'o', value_name = "FILE", conflicts_with = "json")]
        output: Option<PathBuf>,
        #[command(flatten)]
        json: Json,
    },
    /// Copy a local file into the guest (created or truncated).
    Put {
        /// The local file.
        local_path: PathBuf,
        /// Where to write it in the guest.
        guest_path: String,
        #[command(flatten)]
        json: Json,
    },
    /// Shut the guest down.
    Shutdown {
        /// `powerdown`, `halt` or `reboot`.
        #[arg(long, default_value = "powerdown", value_parser = ["powerdown", "halt", "reboot"])]
        mode: String,
        #[command(flatten)]
        json: Json,
    },
    /// Reboot the guest.
    Reboot(Json),
    /// Print a shell completion script.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
}

#[derive(Subcommand, Debug)]
enum TimeCmd {
    /// Print the guest's time.
    Get(Json),
    /// Set the guest's time (from the guest's hardware clock if no time is given).
    Set {
        /// Nanoseconds since the Epoch (UTC).
        nanoseconds: Option<i64>,
        #[command(flatten)]
        json: Json,
    },
}

#[derive(Subcommand, Debug)]
enum FsfreezeCmd {
    /// Whether the filesystems are frozen.
    Status(Json),
    /// Freeze all filesystems, or only the given mount points.
    Freeze {
        /// Mount points to freeze (all if none).
        mountpoints: Vec<String>,
        #[command(flatten)]
        json: Json,
    },
    /// Thaw the filesystems.
    Thaw(Json),
}

#[derive(Args, Debug)]
struct ExecArgs {
    /// Environment for the program, NAME=VALUE (repeatable).
    #[arg(long, short = 'e', value_name = "NAME=VALUE")]
    env: Vec<String>,
    /// Send this local file to the program's standard input.
    #[arg(long, value_name = "FILE")]
    input: Option<PathBuf>,
    /// Give up waiting after this many seconds (the program keeps running).
    #[arg(long, value_name = "SECS")]
    wait: Option<u64>,
    #[command(flatten)]
    json: Json,
    /// The program (a path in the guest) and its arguments.
    #[arg(required = true, trailing_var_arg = true, value_name = "PROGRAM [ARGS]")]
    command: Vec<String>,
}

/// A failure: one line for stderr and an exit status.
struct Failure {
    message: String,
    code: u8,
}

const AGENT_ERROR: u8 = 1;
const USAGE: u8 = 2;
const TIMEOUT: u8 = 3;
const CONNECTION: u8 = 4;

impl Failure {
    fn new(code: u8, message: impl Into<String>) -> Failure {
        Failure {
            message: message.into(),
            code,
        }
    }

    /// Says what happened during `what` (a command name or a step).
    fn from_error(what: &str, e: Error, timeout: ResponseTimeout) -> Failure {
        let code = match &e {
            Error::CommandNotFound(_) | Error::CommandDisabled(_) | Error::Agent(_) => AGENT_ERROR,
            Error::Timeout => TIMEOUT,
            Error::Encode(_) => USAGE,
            _ => CONNECTION,
        };
        let message = match &e {
            Error::Timeout => match timeout.duration() {
                Some(t) => format!(
                    "{what}: no reply from the agent within {} s (is it running? try --timeout)",
                    t.as_secs()
                ),
                None => format!("{what}: no reply from the agent"),
            },
            _ => format!("{what}: {e}"),
        };
        Failure::new(code, message)
    }
}

struct Session {
    client: Client<Connection>,
    timeout: ResponseTimeout,
    timeout_given: bool,
}

trait Context<T> {
    fn ctx(self, session: &Session, what: &str) -> Result<T, Failure>;
}

impl<T> Context<T> for Result<T, CallError<Error>> {
    fn ctx(self, session: &Session, what: &str) -> Result<T, Failure> {
        self.map_err(|e| Failure::from_error(what, e.into(), session.timeout))
    }
}

impl<T> Context<T> for Result<T, Error> {
    fn ctx(self, session: &Session, what: &str) -> Result<T, Failure> {
        self.map_err(|e| Failure::from_error(what, e, session.timeout))
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(f) => {
            // One line, whatever the agent put in its message.
            let _ = writeln!(io::stderr(), "qga: {}", clean(&f.message));
            ExitCode::from(f.code)
        }
    }
}

/// Text from the guest (untrusted) made safe for a terminal: control
/// characters, newlines and escape sequences included, become `?`.
fn clean(text: &str) -> String {
    text.chars().map(|c| if c.is_control() { '?' } else { c }).collect()
}

fn endpoint(cli: &Cli) -> Result<Endpoint, Failure> {
    if let Some(path) = &cli.socket {
        return Ok(Endpoint::Unix(path.clone()));
    }
    cli.tcp.clone().or_else(|| cli.vsock.clone()).ok_or_else(|| {
        Failure::new(
            USAGE,
            "no agent given: use --socket PATH, --tcp HOST:PORT or --vsock CID:PORT",
        )
    })
}

fn connect(cli: &Cli) -> Result<Session, Failure> {
    let endpoint = endpoint(cli)?;
    let timeout = cli.timeout.unwrap_or_default();
    let options = Options {
        timeout,
        ..Options::default()
    };
    let conn = Connection::connect(&endpoint, options).map_err(|e| match e {
        Error::Io(e) => Failure::new(CONNECTION, format!("cannot connect to {endpoint}: {e}")),
        Error::Timeout => Failure::new(
            TIMEOUT,
            format!(
                "connected to {endpoint}, but the agent did not answer the sync within {} s (is qemu-ga running in the guest?)",
                timeout.sync_duration().as_secs()
            ),
        ),
        e => Failure::new(CONNECTION, format!("{endpoint}: {e}")),
    })?;
    Ok(Session {
        client: Client::new(conn),
        timeout,
        timeout_given: cli.timeout.is_some(),
    })
}

fn print_json(value: &impl Serialize) -> Result<(), Failure> {
    let text = serde_json::to_string_pretty(value).map_err(|e| Failure::new(CONNECTION, e.to_string()))?;
    out!("{text}");
    Ok(())
}

fn run(cli: Cli) -> Result<ExitCode, Failure> {
    if let Cmd::Completions { shell } = &cli.command {
        clap_complete::generate(*shell, &mut Cli::command(), "qga", &mut io::stdout());
        return Ok(ExitCode::SUCCESS);
    }
    let fire_and_forget = matches!(cli.command, Cmd::Call { .. } | Cmd::Shutdown { .. } | Cmd::Reboot(_));
    if cli.timeout == Some(ResponseTimeout::NoWait) && !fire_and_forget {
        return Err(Failure::new(
            USAGE,
            "--timeout nowait does not wait for answers, so it only works with `call`, `shutdown` and `reboot`",
        ));
    }
    let mut s = connect(&cli)?;
    match cli.command {
        Cmd::Completions { .. } => unreachable!("handled above"),
        Cmd::Call { command, arguments } => call(&mut s, &command, arguments.as_deref())?,
        Cmd::Ping(json) => {
            let started = Instant::now();
            s.client.guest_ping().ctx(&s, "guest-ping")?;
            if json.json {
                print_json(&serde_json::json!({}))?;
            } else {
                out!("the agent answers ({} ms)", started.elapsed().as_millis());
            }
        }
        Cmd::Info(json) => info(&mut s, json)?,
        Cmd::Time { action } => time(&mut s, action)?,
        Cmd::Fsfreeze { action } => fsfreeze(&mut s, action)?,
        Cmd::Net(json) => net(&mut s, json)?,
        Cmd::Vcpus(json) => vcpus(&mut s, json)?,
        Cmd::Exec(args) => return exec(&mut s, args),
        Cmd::Cat {
            guest_path,
            output,
            json,
        } => cat(&mut s, &guest_path, output, json)?,
        Cmd::Put {
            local_path,
            guest_path,
            json,
        } => put(&mut s, &local_path, &guest_path, json)?,
        Cmd::Shutdown { mode, json } => shutdown(&mut s, mode, json)?,
        Cmd::Reboot(json) => shutdown(&mut s, "reboot".into(), json)?,
    }
    Ok(ExitCode::SUCCESS)
}

fn call(s: &mut Session, command: &str, arguments: Option<&str>) -> Result<(), Failure> {
    let arguments = match arguments {
        None => None,
        Some(text) => {
            let value: Value = serde_json::from_str(text)
                .map_err(|e| Failure::new(USAGE, format!("ARGS-JSON is not valid JSON: {e}")))?;
            if !value.is_object() {
                return Err(Failure::new(
                    USAGE,
                    "ARGS-JSON must be a JSON object, such as '{\"id\": 1}'",
                ));
            }
            Some(value)
        }
    };
    match s.client.transport_mut().execute(command, arguments) {
        Ok(value) => print_json(&value),
        // Sent in no-wait mode: nothing to print.
        Err(Error::NotAwaited) => Ok(()),
        Err(e) => Err(Failure::from_error(command, e, s.timeout)),
    }
}

/// Prints rows under a header, columns padded to their widest cell.
/// Cells from the guest must already have gone through [`clean`].
fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let last = cells.len() - 1;
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i == last {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  "));
            }
        }
        out!("{}", out.trim_end());
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

fn yes_no(b: bool) -> String {
    if b { "yes" } else { "no" }.to_string()
}

fn info(s: &mut Session, json: Json) -> Result<(), Failure> {
    // Read leniently, so agents of every release print.
    let raw = s
        .client
        .transport_mut()
        .execute("guest-info", None)
        .ctx(s, "guest-info")?;
    if json.json {
        return print_json(&raw);
    }
    let caps = Capabilities::from_guest_info(&raw).ctx(s, "guest-info")?;
    out!("version: {}", clean(&caps.version));
    let Some(mut commands) = caps.commands else {
        out!("(this agent does not list its commands)");
        return Ok(());
    };
    commands.sort_by(|a, b| a.name.cmp(&b.name));
    let rows: Vec<Vec<String>> = commands
        .iter()
        .map(|c| vec![clean(&c.name), yes_no(c.enabled), yes_no(c.success_response)])
        .collect();
    print_table(&["COMMAND", "ENABLED", "REPLIES"], &rows);
    Ok(())
}

/// `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ` for nanoseconds since the Epoch.
fn format_utc(nanos: i64) -> String {
    let secs = nanos.div_euclid(1_000_000_000);
    let frac = nanos.rem_euclid(1_000_000_000);
    let days = secs.div_euclid(86_400);
    let tod = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (proleptic Gregorian).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{frac:09}Z",
        tod / 3600,
        tod % 3600 / 60,
        tod % 60
    )
}

fn time(s: &mut Session, action: TimeCmd) -> Result<(), Failure> {
    match action {
        TimeCmd::Get(json) => {
            let nanos = s.client.guest_get_time().ctx(s, "guest-get-time")?;
            if json.json {
                print_json(&nanos)
            } else {
                out!("{} ({nanos} ns since the Epoch)", format_utc(nanos));
                Ok(())
            }
        }
        TimeCmd::Set { nanoseconds, json } => {
            s.client
                .guest_set_time(&GuestSetTimeArgs { time: nanoseconds })
                .ctx(s, "guest-set-time")?;
            if json.json {
                print_json(&serde_json::json!({}))
            } else {
                match nanoseconds {
                    Some(n) => out!("guest time set to {}", format_utc(n)),
                    None => out!("guest time set from its hardware clock"),
                }
                Ok(())
            }
        }
    }
}

fn fsfreeze(s: &mut Session, action: FsfreezeCmd) -> Result<(), Failure> {
    // Freezing and thawing may take minutes on a busy guest.
    if !s.timeout_given {
        s.client.transport_mut().set_next_timeout(ResponseTimeout::Seconds(300));
        s.timeout = ResponseTimeout::Seconds(300);
    }
    match action {
        FsfreezeCmd::Status(json) => {
            let status = s.client.guest_fsfreeze_status().ctx(s, "guest-fsfreeze-status")?;
            if json.json {
                return print_json(&status);
            }
            out!("{}", clean(status.as_str()));
        }
        FsfreezeCmd::Freeze { mountpoints, json } => {
            let count = if mountpoints.is_empty() {
                s.client.guest_fsfreeze_freeze().ctx(s, "guest-fsfreeze-freeze")?
            } else {
                let args = GuestFsfreezeFreezeListArgs {
                    mountpoints: Some(mountpoints),
                };
                s.client
                    .guest_fsfreeze_freeze_list(&args)
                    .ctx(s, "guest-fsfreeze-freeze-list")?
            };
            if json.json {
                return print_json(&count);
            }
            out!("{count} filesystem(s) frozen");
        }
        FsfreezeCmd::Thaw(json) => {
            let count = s.client.guest_fsfreeze_thaw().ctx(s, "guest-fsfreeze-thaw")?;
            if json.json {
                return print_json(&count);
            }
            out!("{count} filesystem(s) thawed");
        }
    }
    Ok(())
}

fn net(s: &mut Session, json: Json) -> Result<(), Failure> {
    let ifaces = s
        .client
        .guest_network_get_interfaces()
        .ctx(s, "guest-network-get-interfaces")?;
    if json.json {
        return print_json(&ifaces);
    }
    let rows: Vec<Vec<String>> = ifaces
        .iter()
        .map(|i| {
            let addrs: Vec<String> = i
                .ip_addresses
                .iter()
                .flatten()
                .map(|a| format!("{}/{}", clean(&a.ip_address), a.prefix))
                .collect();
            vec![
                clean(&i.name),
                i.hardware_address.as_deref().map(clean).unwrap_or_else(|| "-".into()),
                if addrs.is_empty() { "-".into() } else { addrs.join(" ") },
            ]
        })
        .collect();
    print_table(&["INTERFACE", "HARDWARE ADDRESS", "ADDRESSES"], &rows);
    Ok(())
}

fn vcpus(s: &mut Session, json: Json) -> Result<(), Failure> {
    let cpus = s.client.guest_get_vcpus().ctx(s, "guest-get-vcpus")?;
    if json.json {
        return print_json(&cpus);
    }
    let rows: Vec<Vec<String>> = cpus
        .iter()
        .map(|c| {
            vec![
                c.logical_id.to_string(),
                yes_no(c.online),
                c.can_offline.map(yes_no).unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    print_table(&["CPU", "ONLINE", "CAN OFFLINE"], &rows);
    Ok(())
}

fn read_local(path: &PathBuf) -> Result<Vec<u8>, Failure> {
    std::fs::read(path).map_err(|e| Failure::new(USAGE, format!("cannot read {}: {e}", path.display())))
}

fn exec(s: &mut Session, args: ExecArgs) -> Result<ExitCode, Failure> {
    let mut command = args.command.into_iter();
    let path = command.next().expect("clap requires the program");
    let input_data = match &args.input {
        Some(file) => Some(BASE64.encode(read_local(file)?)),
        None => None,
    };
    let request = GuestExecArgs {
        path,
        arg: Some(command.collect()),
        env: (!args.env.is_empty()).then_some(args.env),
        input_data,
        capture_output: Some(GuestExecCaptureOutput::Flag(true)),
    };
    let pid = s.client.guest_exec(&request).ctx(s, "guest-exec")?.pid;
    let started = Instant::now();
    let mut pause = Duration::from_millis(20);
    let status = loop {
        let status = s
            .client
            .guest_exec_status(&GuestExecStatusArgs { pid })
            .ctx(s, "guest-exec-status")?;
        if status.exited {
            break status;
        }
        if let Some(wait) = args.wait {
            if started.elapsed() >= Duration::from_secs(wait) {
                return Err(Failure::new(
                    TIMEOUT,
                    format!("the guest process (pid {pid}) is still running after {wait} s"),
                ));
            }
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(500));
    };
    let code = match (status.exitcode, status.signal) {
        (Some(c), _) => c.clamp(0, 255) as u8,
        // The guest's number may be anything: no overflow.
        (None, Some(sig)) => 128i64.saturating_add(sig).clamp(0, 255) as u8,
        (None, None) => 0,
    };
    if args.json.json {
        print_json(&status)?;
        return Ok(ExitCode::from(code));
    }
    let decode = |data: &Option<String>, what: &str| -> Result<Vec<u8>, Failure> {
        match data {
            Some(b64) => BASE64
                .decode(b64)
                .map_err(|e| Failure::new(CONNECTION, format!("guest-exec-status: {what} is not base64: {e}"))),
            None => Ok(Vec::new()),
        }
    };
    let out = decode(&status.out_data, "out-data")?;
    let err = decode(&status.err_data, "err-data")?;
    let _ = io::stdout().write_all(&out);
    let _ = io::stderr().write_all(&err);
    if status.out_truncated == Some(true) || status.err_truncated == Some(true) {
        eprintln!("qga: the agent truncated the program's output");
    }
    if let Some(sig) = status.signal {
        eprintln!("qga: the program was killed by signal {sig}");
    }
    Ok(ExitCode::from(code))
}

/// Bytes per guest-file-read/-write: about 1.4 MB of base64 per message.
const CHUNK: usize = 1024 * 1024;
/// Files from this size get a progress bar (on a terminal).
const LARGE: u64 = 4 * 1024 * 1024;

fn progress(total: Option<u64>) -> ProgressBar {
    match total {
        Some(total) if total >= LARGE && io::stderr().is_terminal() => {
            let bar = ProgressBar::new(total);
            if let Ok(style) = ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
            {
                bar.set_style(style);
            }
            bar
        }
        _ => ProgressBar::hidden(),
    }
}

/// Runs `body` with an open guest file handle, closing it afterwards
/// whatever happened.
fn with_guest_file<T>(
    s: &mut Session,
    path: &str,
    mode: &str,
    body: impl FnOnce(&mut Session, i64) -> Result<T, Failure>,
) -> Result<T, Failure> {
    let open = GuestFileOpenArgs {
        path: path.to_string(),
        mode: Some(mode.to_string()),
    };
    let handle = s.client.guest_file_open(&open).ctx(s, "guest-file-open")?;
    let result = body(s, handle);
    let closed = s
        .client
        .guest_file_close(&GuestFileCloseArgs { handle })
        .ctx(s, "guest-file-close");
    let value = result?;
    closed?;
    Ok(value)
}

fn cat(s: &mut Session, guest_path: &str, output: Option<PathBuf>, json: Json) -> Result<(), Failure> {
    // clap keeps --output and --json apart.
    let mut out: Box<dyn Write> = match &output {
        Some(path) => Box::new(
            File::create(path).map_err(|e| Failure::new(USAGE, format!("cannot create {}: {e}", path.display())))?,
        ),
        _ => Box::new(io::stdout().lock()),
    };
    let mut collected = Vec::new();
    let total = with_guest_file(s, guest_path, "r", |s, handle| {
        // The size, for the progress bar; not every file can seek.
        let size = s
            .client
            .guest_file_seek(&GuestFileSeekArgs {
                handle,
                offset: 0,
                whence: GuestFileWhence::Name(QgaSeek::End),
            })
            .ok()
            .map(|end| end.position as u64);
        if size.is_some() {
            s.client
                .guest_file_seek(&GuestFileSeekArgs {
                    handle,
                    offset: 0,
                    whence: GuestFileWhence::Name(QgaSeek::Set),
                })
                .ctx(s, "guest-file-seek")?;
        }
        let bar = progress(size);
        let mut total = 0u64;
        loop {
            let read = s
                .client
                .guest_file_read(&GuestFileReadArgs {
                    handle,
                    count: Some(CHUNK as i64),
                })
                .ctx(s, "guest-file-read")?;
            let data = BASE64
                .decode(&read.buf_b64)
                .map_err(|e| Failure::new(CONNECTION, format!("guest-file-read: buf-b64 is not base64: {e}")))?;
            total += data.len() as u64;
            bar.inc(data.len() as u64);
            if json.json {
                collected.extend_from_slice(&data);
            } else {
                out.write_all(&data)
                    .map_err(|e| Failure::new(CONNECTION, format!("writing the output: {e}")))?;
            }
            if read.eof || data.is_empty() {
                break;
            }
        }
        bar.finish_and_clear();
        Ok(total)
    })?;
    out.flush()
        .map_err(|e| Failure::new(CONNECTION, format!("writing the output: {e}")))?;
    if json.json {
        print_json(&serde_json::json!({"path": guest_path, "count": total, "buf-b64": BASE64.encode(&collected)}))?;
    }
    Ok(())
}

fn put(s: &mut Session, local_path: &PathBuf, guest_path: &str, json: Json) -> Result<(), Failure> {
    let mut file = File::open(local_path)
        .map_err(|e| Failure::new(USAGE, format!("cannot read {}: {e}", local_path.display())))?;
    let size = file.metadata().ok().map(|m| m.len());
    let total = with_guest_file(s, guest_path, "w", |s, handle| {
        let bar = progress(size);
        let mut buf = vec![0u8; CHUNK];
        let mut total = 0u64;
        loop {
            let n = file
                .read(&mut buf)
                .map_err(|e| Failure::new(USAGE, format!("reading {}: {e}", local_path.display())))?;
            if n == 0 {
                break;
            }
            let mut sent = 0;
            while sent < n {
                let written = s
                    .client
                    .guest_file_write(&GuestFileWriteArgs {
                        handle,
                        buf_b64: BASE64.encode(&buf[sent..n]),
                        count: None,
                    })
                    .ctx(s, "guest-file-write")?;
                if written.count <= 0 {
                    return Err(Failure::new(
                        AGENT_ERROR,
                        format!("guest-file-write: the agent wrote nothing to {guest_path}"),
                    ));
                }
                sent += written.count as usize;
            }
            total += n as u64;
            bar.inc(n as u64);
        }
        bar.finish_and_clear();
        Ok(total)
    })?;
    if json.json {
        print_json(&serde_json::json!({"path": guest_path, "count": total}))
    } else {
        out!("wrote {total} bytes to {guest_path}");
        Ok(())
    }
}

fn shutdown(s: &mut Session, mode: String, json: Json) -> Result<(), Failure> {
    let args = GuestShutdownArgs {
        mode: Some(mode.clone()),
    };
    s.client.guest_shutdown(&args).ctx(s, "guest-shutdown")?;
    if json.json {
        print_json(&Value::Null)
    } else {
        out!("{mode} requested");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn cat_does_not_ignore_output_when_printing_json() {
        let both = Cli::try_parse_from(["qga", "cat", "/etc/hostname", "--json", "-o", "out"]);
        assert_eq!(both.unwrap_err().kind(), clap::error::ErrorKind::ArgumentConflict);
        assert!(Cli::try_parse_from(["qga", "cat", "/etc/hostname", "-o", "out"]).is_ok());
    }

    #[test]
    fn utc_formatting() {
        assert_eq!(format_utc(0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(format_utc(951_782_400_000_000_001), "2000-02-29T00:00:00.000000001Z");
        assert_eq!(format_utc(-1), "1969-12-31T23:59:59.999999999Z");
    }
}
