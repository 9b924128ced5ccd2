//! Project chores: `cargo xtask <task>`.
//!
//! Tasks:
//!   qga-history [DIR]   check every released guest-agent schema in default
//!                       and strict mode and print a table (DIR defaults to
//!                       ../shared/qapi-conformance/qga-history)

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use qapi_parser::{parse_file, Options};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn qga_history(dir: Option<String>) -> ExitCode {
    let dir = dir.map(PathBuf::from).unwrap_or_else(|| {
        std::env::var_os("QAPI_CONFORMANCE_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| workspace_root().join("../shared/qapi-conformance"))
            .join("qga-history")
    });
    let Ok(entries) = std::fs::read_dir(&dir) else {
        eprintln!("xtask: can't read {}", dir.display());
        return ExitCode::from(2);
    };
    let mut files: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    files.sort_by_key(|p| {
        let stem = p
            .file_stem()
            .unwrap_or_default()
            .to_string_lossy()
            .trim_start_matches('v')
            .to_string();
        stem.split('.')
            .map(|n| n.parse::<u32>().unwrap_or(0))
            .collect::<Vec<_>>()
    });
    println!("{:<10} {:>8} {:>9} {:>8}", "release", "default", "warnings", "strict");
    let mut ok = true;
    for f in files {
        let path = f.to_str().unwrap();
        let default = parse_file(path, &Options::default());
        let strict = parse_file(path, &Options { strict: true });
        let warnings = default.as_ref().map_or(0, |s| s.warnings.len());
        ok &= default.is_ok();
        println!(
            "{:<10} {:>8} {:>9} {:>8}",
            f.file_stem().unwrap().to_string_lossy(),
            if default.is_ok() { "ok" } else { "FAIL" },
            warnings,
            if strict.is_ok() { "ok" } else { "rejected" }
        );
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    match args.next().as_deref() {
        Some("qga-history") => qga_history(args.next()),
        _ => {
            eprintln!("usage: cargo xtask qga-history [DIR]");
            ExitCode::from(2)
        }
    }
}
