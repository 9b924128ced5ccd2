//! The binary's options: the command line, qemu-ga's config file format
//! (a key file with a `[general]` group), and the dump of the effective
//! configuration (`-D`).

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

use crate::agent::{DEFAULT_COMMAND_TIMEOUT, DEFAULT_FREEZE_TIMEOUT};

/// Read when `-c` is not given, if it exists (qemu-ga's default).
pub const DEFAULT_CONFIG_FILE: &str = "/etc/qemu/qemu-ga.conf";
pub const DEFAULT_VIRTIO_PATH: &str = "/dev/virtio-ports/org.qemu.guest_agent.0";
pub const DEFAULT_SERIAL_PATH: &str = "/dev/ttyS0";
pub const DEFAULT_STATEDIR: &str = "/var/run";
/// Written when daemonizing without `-f`.
pub const DEFAULT_PIDFILE: &str = "/var/run/qemu-ga.pid";
/// How long a reply may wait for a client that does not read.
pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// How the agent talks to the host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Method {
    /// A virtio-serial port (the character device at the path).
    VirtioSerial,
    /// A serial port (a tty, put in raw mode).
    IsaSerial,
    /// A listening unix socket at the path, one client at a time.
    UnixListen,
    /// A listening vsock socket; the path is `<cid>:<port>`.
    VsockListen,
}

impl Method {
    pub fn name(self) -> &'static str {
        match self {
            Method::VirtioSerial => "virtio-serial",
            Method::IsaSerial => "isa-serial",
            Method::UnixListen => "unix-listen",
            Method::VsockListen => "vsock-listen",
        }
    }

    fn from_name(name: &str) -> Option<Method> {
        [
            Method::VirtioSerial,
            Method::IsaSerial,
            Method::UnixListen,
            Method::VsockListen,
        ]
        .into_iter()
        .find(|m| m.name() == name)
    }
}

/// The command line, with qemu-ga's option names.
#[derive(Debug, Default, Parser)]
#[command(name = "qga-agent", version, about = "QEMU guest agent for Linux guests")]
pub struct Cli {
    /// Transport
    #[arg(short = 'm', long, value_enum)]
    pub method: Option<Method>,
    /// Device or socket path (`<cid>:<port>` for vsock-listen) [default for
    /// virtio-serial: /dev/virtio-ports/org.qemu.guest_agent.0; for
    /// isa-serial: /dev/ttyS0]
    #[arg(short = 'p', long)]
    pub path: Option<PathBuf>,
    /// Log file [default: stderr]
    #[arg(short = 'l', long)]
    pub logfile: Option<PathBuf>,
    /// Pid file, written and locked at start [default when daemonizing:
    /// /var/run/qemu-ga.pid]
    #[arg(short = 'f', long)]
    pub pidfile: Option<PathBuf>,
    /// Directory for state that survives a restart [default: /var/run]
    #[arg(short = 't', long)]
    pub statedir: Option<PathBuf>,
    /// Log debugging information
    #[arg(short = 'v', long)]
    pub verbose: bool,
    /// Become a daemon
    #[arg(short = 'd', long)]
    pub daemonize: bool,
    /// Keep retrying to open the path when it is missing or fails
    /// (virtio-serial, isa-serial)
    #[arg(short = 'r', long)]
    pub retry_path: bool,
    /// Comma-separated commands to disable ("help" lists them all)
    #[arg(short = 'b', long, value_delimiter = ',')]
    pub block_rpcs: Vec<String>,
    /// Comma-separated commands to enable, all others disabled; the block
    /// list wins ("help" lists them all)
    #[arg(short = 'a', long, value_delimiter = ',')]
    pub allow_rpcs: Vec<String>,
    /// Print the effective configuration in config file format and exit
    #[arg(short = 'D', long)]
    pub dump_conf: bool,
    /// Config file [default: $QGA_CONF, else /etc/qemu/qemu-ga.conf if it
    /// exists]
    #[arg(short = 'c', long)]
    pub config: Option<PathBuf>,
    /// Seconds a command may run before its client gets an error [default: 30]
    #[arg(long, value_name = "SECONDS")]
    pub command_timeout: Option<f64>,
    /// Seconds a freeze may run before its client gets an error [default: 60]
    #[arg(long, value_name = "SECONDS")]
    pub freeze_timeout: Option<f64>,
    /// Seconds a reply may wait for a client that does not read, before the
    /// client is dropped [default: 10]
    #[arg(long, value_name = "SECONDS")]
    pub write_timeout: Option<f64>,
}

/// The effective configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub method: Method,
    pub path: Option<PathBuf>,
    pub logfile: Option<PathBuf>,
    pub pidfile: Option<PathBuf>,
    pub statedir: PathBuf,
    pub verbose: bool,
    pub daemonize: bool,
    pub retry_path: bool,
    pub block_rpcs: Vec<String>,
    pub allow_rpcs: Vec<String>,
    pub command_timeout: Duration,
    pub freeze_timeout: Duration,
    pub write_timeout: Duration,
    /// Problems that do not stop the agent (unknown keys in the file), to
    /// log once logging is set up.
    pub warnings: Vec<String>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            method: Method::VirtioSerial,
            path: None,
            logfile: None,
            pidfile: None,
            statedir: PathBuf::from(DEFAULT_STATEDIR),
            verbose: false,
            daemonize: false,
            retry_path: false,
            block_rpcs: Vec::new(),
            allow_rpcs: Vec::new(),
            command_timeout: DEFAULT_COMMAND_TIMEOUT,
            freeze_timeout: DEFAULT_FREEZE_TIMEOUT,
            write_timeout: DEFAULT_WRITE_TIMEOUT,
            warnings: Vec::new(),
        }
    }
}

fn seconds(key: &str, value: f64) -> Result<Duration, String> {
    if value.is_finite() && value > 0.0 && value < 1e9 {
        Ok(Duration::from_secs_f64(value))
    } else {
        Err(format!("{key} must be a positive number of seconds, not {value}"))
    }
}

fn boolean(key: &str, value: &str) -> Result<bool, String> {
    match value {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(format!("{key} must be true or false, not '{value}'")),
    }
}

fn list(value: &str) -> impl Iterator<Item = String> + '_ {
    value
        .split([',', ';'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

fn append_unique(to: &mut Vec<String>, items: impl IntoIterator<Item = String>) {
    for item in items {
        if !to.contains(&item) {
            to.push(item);
        }
    }
}

impl Config {
    /// The configuration from a config file (`-c`, else the default file
    /// if it exists) overridden by the command line. Lists from both are
    /// joined.
    pub fn resolve(cli: &Cli) -> Result<Config, String> {
        let mut config = Config::default();
        // As qemu-ga: QGA_CONF names the file when -c does not.
        let file = match (&cli.config, std::env::var_os("QGA_CONF")) {
            (Some(path), _) => Some(path.clone()),
            (None, Some(path)) => Some(PathBuf::from(path)),
            (None, None) => Some(PathBuf::from(DEFAULT_CONFIG_FILE)).filter(|p| p.exists()),
        };
        if let Some(file) = file {
            let text = std::fs::read_to_string(&file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
            config
                .apply_key_file(&text)
                .map_err(|e| format!("{}: {e}", file.display()))?;
        }
        config.apply_cli(cli)?;
        Ok(config)
    }

    fn apply_cli(&mut self, cli: &Cli) -> Result<(), String> {
        if let Some(method) = cli.method {
            self.method = method;
        }
        let paths = [
            (&cli.path, &mut self.path),
            (&cli.logfile, &mut self.logfile),
            (&cli.pidfile, &mut self.pidfile),
        ];
        for (from, to) in paths {
            if let Some(p) = from {
                *to = Some(p.clone());
            }
        }
        if let Some(dir) = &cli.statedir {
            self.statedir = dir.clone();
        }
        self.verbose |= cli.verbose;
        self.daemonize |= cli.daemonize;
        self.retry_path |= cli.retry_path;
        append_unique(&mut self.block_rpcs, cli.block_rpcs.iter().flat_map(|s| list(s)));
        append_unique(&mut self.allow_rpcs, cli.allow_rpcs.iter().flat_map(|s| list(s)));
        if let Some(s) = cli.command_timeout {
            self.command_timeout = seconds("--command-timeout", s)?;
        }
        if let Some(s) = cli.freeze_timeout {
            self.freeze_timeout = seconds("--freeze-timeout", s)?;
        }
        if let Some(s) = cli.write_timeout {
            self.write_timeout = seconds("--write-timeout", s)?;
        }
        Ok(())
    }

    /// Applies the `[general]` group of a key file in qemu-ga's format.
    /// Unknown keys are only warned about, as qemu-ga ignores them, so a
    /// file written for qemu-ga keeps working.
    pub fn apply_key_file(&mut self, text: &str) -> Result<(), String> {
        let mut group = None::<String>;
        for (number, line) in text.lines().enumerate() {
            let number = number + 1;
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            if let Some(name) = line.strip_prefix('[') {
                let name = name
                    .strip_suffix(']')
                    .ok_or_else(|| format!("line {number}: unterminated group header"))?;
                group = Some(name.to_string());
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                return Err(format!("line {number}: expected key=value, found '{line}'"));
            };
            let (key, value) = (key.trim(), value.trim());
            match group.as_deref() {
                Some("general") => {}
                Some(_) => continue,
                None => return Err(format!("line {number}: key '{key}' outside any group")),
            }
            let warnings = self.warnings.len();
            self.apply_key(key, value).map_err(|e| format!("line {number}: {e}"))?;
            for warning in &mut self.warnings[warnings..] {
                *warning = format!("line {number}: {warning}");
            }
        }
        Ok(())
    }

    fn apply_key(&mut self, key: &str, value: &str) -> Result<(), String> {
        let path = || Some(PathBuf::from(value));
        match key {
            "method" => self.method = Method::from_name(value).ok_or_else(|| format!("unknown method '{value}'"))?,
            "path" => self.path = path(),
            "logfile" => self.logfile = path(),
            "pidfile" => self.pidfile = path(),
            "statedir" => self.statedir = PathBuf::from(value),
            "verbose" => self.verbose = boolean(key, value)?,
            "daemon" => self.daemonize = boolean(key, value)?,
            "retry-path" => self.retry_path = boolean(key, value)?,
            "block-rpcs" | "blacklist" => append_unique(&mut self.block_rpcs, list(value)),
            "allow-rpcs" => append_unique(&mut self.allow_rpcs, list(value)),
            "command-timeout" | "freeze-timeout" | "write-timeout" => {
                let number: f64 = value
                    .parse()
                    .map_err(|_| format!("{key} must be a number of seconds, not '{value}'"))?;
                let duration = seconds(key, number)?;
                match key {
                    "command-timeout" => self.command_timeout = duration,
                    "freeze-timeout" => self.freeze_timeout = duration,
                    _ => self.write_timeout = duration,
                }
            }
            "fsfreeze-hook" => self
                .warnings
                .push("fsfreeze-hook is not supported: freeze and thaw run without a hook".into()),
            _ => self.warnings.push(format!("unknown key '{key}' ignored")),
        }
        Ok(())
    }

    /// The path to serve on, with the method's default.
    pub fn effective_path(&self) -> Result<PathBuf, String> {
        match (&self.path, self.method) {
            (Some(path), _) => Ok(path.clone()),
            (None, Method::VirtioSerial) => Ok(PathBuf::from(DEFAULT_VIRTIO_PATH)),
            (None, Method::IsaSerial) => Ok(PathBuf::from(DEFAULT_SERIAL_PATH)),
            (None, method) => Err(format!("method {} needs a path (-p)", method.name())),
        }
    }

    /// The effective configuration in the config file's format; reading
    /// it back gives the same configuration.
    pub fn dump(&self) -> String {
        let mut out = String::from("[general]\n");
        let mut line = |key: &str, value: &dyn std::fmt::Display| {
            let _ = writeln!(out, "{key}={value}");
        };
        line("daemon", &self.daemonize);
        line("method", &self.method.name());
        if let Ok(path) = self.effective_path() {
            line("path", &path.display());
        }
        let optional: [(&str, &Option<PathBuf>); 2] = [("logfile", &self.logfile), ("pidfile", &self.pidfile)];
        for (key, value) in optional {
            if let Some(value) = value {
                line(key, &value.display());
            }
        }
        line("statedir", &self.statedir.display());
        line("verbose", &self.verbose);
        line("retry-path", &self.retry_path);
        if !self.block_rpcs.is_empty() {
            line("block-rpcs", &self.block_rpcs.join(","));
        }
        if !self.allow_rpcs.is_empty() {
            line("allow-rpcs", &self.allow_rpcs.join(","));
        }
        line("command-timeout", &self.command_timeout.as_secs_f64());
        line("freeze-timeout", &self.freeze_timeout.as_secs_f64());
        line("write-timeout", &self.write_timeout.as_secs_f64());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cli(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("qga-agent").chain(args.iter().copied())).unwrap()
    }

    #[test]
    fn command_line_overrides_the_file_and_lists_join() {
        let mut config = Config::default();
        config
            .apply_key_file("# comment\n[general]\nmethod=unix-listen\npath=/a\nverbose=true\nblock-rpcs=guest-exec;guest-ping\n[other]\nx=1\n")
            .unwrap();
        config
            .apply_cli(&cli(&[
                "-p",
                "/b",
                "-b",
                "guest-info,guest-ping",
                "--command-timeout",
                "2.5",
            ]))
            .unwrap();
        assert_eq!(config.method, Method::UnixListen);
        assert_eq!(config.path, Some(PathBuf::from("/b")));
        assert!(config.verbose);
        assert_eq!(config.block_rpcs, ["guest-exec", "guest-ping", "guest-info"]);
        assert_eq!(config.command_timeout, Duration::from_millis(2500));
    }

    #[test]
    fn dump_reads_back_to_the_same_config() {
        let mut config = Config::default();
        config
            .apply_cli(&cli(&[
                "-m",
                "unix-listen",
                "-p",
                "/s",
                "-l",
                "/log",
                "-t",
                "/st",
                "-a",
                "guest-ping",
                "-b",
                "guest-info",
            ]))
            .unwrap();
        let dump = config.dump();
        assert!(
            dump.starts_with("[general]\ndaemon=false\nmethod=unix-listen\npath=/s\nlogfile=/log\n"),
            "{dump}"
        );
        let mut again = Config::default();
        again.apply_key_file(&dump).unwrap();
        assert_eq!(again, config);
    }

    #[test]
    fn bad_files_name_the_problem() {
        let mut config = Config::default();
        config.apply_key_file("[general]\nmethd=x\n").unwrap();
        assert_eq!(config.warnings, ["line 2: unknown key 'methd' ignored"]);
        assert_eq!(
            config.apply_key_file("[general]\nmethod=serial\n").unwrap_err(),
            "line 2: unknown method 'serial'"
        );
        assert_eq!(
            config.apply_key_file("[general]\nverbose=yes\n").unwrap_err(),
            "line 2: verbose must be true or false, not 'yes'"
        );
        assert_eq!(
            config.apply_key_file("[general]\ncommand-timeout=0\n").unwrap_err(),
            "line 2: command-timeout must be a positive number of seconds, not 0"
        );
    }

    #[test]
    fn listening_methods_need_a_path() {
        let config = Config {
            method: Method::UnixListen,
            ..Config::default()
        };
        assert_eq!(
            config.effective_path().unwrap_err(),
            "method unix-listen needs a path (-p)"
        );
        assert_eq!(
            Config::default().effective_path().unwrap(),
            PathBuf::from(DEFAULT_VIRTIO_PATH)
        );
    }
}
