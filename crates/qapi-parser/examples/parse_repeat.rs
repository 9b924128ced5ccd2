//! Parses one schema N times; a fixed workload for instruction counts
//! (`valgrind --tool=callgrind`), see BENCHMARKS.md.
//!
//! `cargo run --release -p qapi-parser --example parse_repeat -- SCHEMA [N] [--default]`

use qapi_parser::{parse_str, Options};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(path) = args.first() else {
        eprintln!("usage: parse_repeat SCHEMA [N] [--default]");
        std::process::exit(2);
    };
    let count: usize = args.get(1).and_then(|n| n.parse().ok()).unwrap_or(10);
    let opts = Options {
        strict: !args.iter().any(|a| a == "--default"),
    };
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| {
        eprintln!("can't read {path}: {e}");
        std::process::exit(2);
    });
    let mut ok = 0;
    for _ in 0..count {
        ok += usize::from(std::hint::black_box(parse_str(path, &text, &opts)).is_ok());
    }
    println!("{ok}/{count} parses succeeded");
}
