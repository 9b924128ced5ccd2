//! Parse + check throughput of `qapi-parser`.
//!
//! * `qga_v10_2`: our guest-agent schema (`schema/qga.json`) in strict and
//!   default mode, and, when the conformance data is present, QEMU's own
//!   v10.2 guest-agent schema (GPL, read in place, never copied here).
//! * `synthetic`: generated schemas of N definitions, a realistic mix of
//!   every kind of definition, each documented so that strict mode passes;
//!   throughput is reported in definitions per second, to show that cost
//!   grows linearly with N.
//!
//! The schema text is read before timing: `parse_str` is measured, not
//! file I/O.
//!
//! Run with `cargo bench -p qapi-parser --bench parse`.

use std::fmt::Write as _;
use std::hint::black_box;
use std::path::{Path, PathBuf};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use qapi_parser::{parse_str, Options};

const STRICT: Options = Options { strict: true };
const DEFAULT: Options = Options { strict: false };

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn conformance_dir() -> PathBuf {
    match std::env::var_os("QAPI_CONFORMANCE_DIR") {
        Some(d) => PathBuf::from(d),
        None => manifest_dir().join("../../../shared/qapi-conformance"),
    }
}

fn bench_qga(c: &mut Criterion) {
    let mut group = c.benchmark_group("qga_v10_2");

    let ours_path = manifest_dir().join("../../schema/qga.json");
    let ours =
        std::fs::read_to_string(&ours_path).unwrap_or_else(|e| panic!("can't read {}: {e}", ours_path.display()));
    // `parse_str` resolves includes relative to the name; use the real
    // path so that the schema is checked exactly as the CLI checks it.
    let ours_name = ours_path.to_string_lossy().into_owned();
    for (mode, opts) in [("strict", &STRICT), ("default", &DEFAULT)] {
        if let Err(f) = parse_str(&ours_name, &ours, opts) {
            panic!("schema/qga.json fails in {mode} mode:\n{}", f.render());
        }
    }
    group.throughput(criterion::Throughput::Bytes(ours.len() as u64));
    for (mode, opts) in [("strict", &STRICT), ("default", &DEFAULT)] {
        group.bench_function(BenchmarkId::new("ours", mode), |b| {
            b.iter(|| parse_str(black_box(&ours_name), black_box(&ours), opts).is_ok())
        });
    }

    let qemu_path = conformance_dir().join("qga-history/v10.2.0.json");
    match std::fs::read_to_string(&qemu_path) {
        Err(e) => eprintln!(
            "skipping qga_v10_2/qemu: can't read {} ({e}); set QAPI_CONFORMANCE_DIR",
            qemu_path.display()
        ),
        Ok(qemu) => {
            let qemu_name = qemu_path.to_string_lossy().into_owned();
            // QEMU's schema includes files we do not have, so it may not
            // check cleanly here; measure what it does either way, but say
            // so when it fails.
            let modes: Vec<(&str, &Options)> = [("strict", &STRICT), ("default", &DEFAULT)]
                .into_iter()
                .filter(|(mode, opts)| match parse_str(&qemu_name, &qemu, opts) {
                    Ok(_) => true,
                    Err(f) => {
                        eprintln!("note: QEMU v10.2 schema fails in {mode} mode, skipped:\n{f}");
                        false
                    }
                })
                .collect();
            group.throughput(criterion::Throughput::Bytes(qemu.len() as u64));
            for (mode, opts) in modes {
                group.bench_function(BenchmarkId::new("qemu", mode), |b| {
                    b.iter(|| parse_str(black_box(&qemu_name), black_box(&qemu), opts).is_ok())
                });
            }
        }
    }
    group.finish();
}

/// Generates a valid, fully documented schema of `n` definitions.
///
/// Definitions cycle through enum, struct, enum, struct, union, alternate,
/// command, event; structs, unions, alternates, commands and events refer
/// to earlier types. Every definition carries a documentation block that
/// passes QEMU 10.2's strict rules.
pub fn generate_schema(n: usize) -> String {
    let mut s = String::with_capacity(n * 420);
    s.push_str("# Generated schema for benchmarking\n\n");
    s.push_str("{ 'pragma': { 'doc-required': true } }\n\n");
    // Names of earlier definitions, with their enum values for enums.
    let mut enums: Vec<(String, Vec<String>)> = Vec::new();
    let mut structs: Vec<String> = Vec::new();
    const WORDS: [&str; 6] = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta"];
    for i in 0..n {
        // Pick an earlier definition pseudo-randomly but deterministically.
        let pick = |len: usize, salt: usize| (i.wrapping_mul(2654435761).wrapping_add(salt * 40503)) % len;
        // Varies from 0 to 3 between neighbouring definitions of a kind.
        let vary = (i / 8 * 3 + i / 2) % 4;
        match i % 8 {
            0 | 2 => {
                let name = format!("Enum{i}");
                let count = 2 + vary;
                let values: Vec<String> = WORDS[..count].iter().map(|w| w.to_string()).collect();
                let _ = writeln!(s, "##\n# @{name}:\n#\n# Kinds of generated thing number {i}.\n#");
                for v in &values {
                    let _ = writeln!(s, "# @{v}: the {v} kind of thing\n#");
                }
                s.push_str("# Since: 1.0\n##\n");
                let quoted: Vec<String> = values.iter().map(|v| format!("'{v}'")).collect();
                let _ = writeln!(s, "{{ 'enum': '{name}',\n  'data': [ {} ] }}\n", quoted.join(", "));
                enums.push((name, values));
            }
            1 | 3 => {
                let name = format!("Struct{i}");
                let member_count = 3 + vary;
                let e = &enums[pick(enums.len(), 1)].0;
                let mut members: Vec<(String, String, &str)> = vec![
                    ("name".into(), "'str'".into(), "the name of the thing"),
                    ("*count".into(), "'int'".into(), "how many there are, if known"),
                    ("tags".into(), "['str']".into(), "labels attached to the thing"),
                    ("mode".into(), format!("'{e}'"), "the kind of the thing"),
                ];
                if let Some(k) = (!structs.is_empty()).then(|| pick(structs.len(), 2)) {
                    members.push(("*child".into(), format!("'{}'", structs[k]), "a nested thing"));
                }
                members.push(("*enabled".into(), "'bool'".into(), "whether the thing is on"));
                members.truncate(member_count);
                let _ = writeln!(s, "##\n# @{name}:\n#\n# A generated thing, number {i}.\n#");
                for (m, _, text) in &members {
                    let _ = writeln!(s, "# @{}: {text}\n#", m.trim_start_matches('*'));
                }
                s.push_str("# Since: 1.0\n##\n");
                let _ = write!(s, "{{ 'struct': '{name}',\n  'data': {{ ");
                for (k, (m, t, _)) in members.iter().enumerate() {
                    let sep = if k == 0 { "" } else { ",\n            " };
                    let _ = write!(s, "{sep}'{m}': {t}");
                }
                s.push_str(" } }\n\n");
                structs.push(name);
            }
            4 => {
                let name = format!("Union{i}");
                let (e, values) = &enums[pick(enums.len(), 3)];
                let _ = writeln!(
                    s,
                    "##\n# @{name}:\n#\n# A generated thing of several kinds.  Number {i}.\n#\n\
                     # @kind: which kind of thing this is\n#\n\
                     # @serial: a serial number\n#\n\
                     # Since: 1.0\n##"
                );
                let _ = write!(
                    s,
                    "{{ 'union': '{name}',\n  'base': {{ 'kind': '{e}', '*serial': 'int' }},\n  \
                     'discriminator': 'kind',\n  'data': {{ "
                );
                // Branches for all values but the last, which stays empty.
                for (k, v) in values[..values.len() - 1].iter().enumerate() {
                    let sep = if k == 0 { "" } else { ",\n            " };
                    let _ = write!(s, "{sep}'{v}': '{}'", structs[pick(structs.len(), 4 + k)]);
                }
                s.push_str(" } }\n\n");
            }
            5 => {
                let name = format!("Alt{i}");
                let st = &structs[pick(structs.len(), 5)];
                let _ = writeln!(
                    s,
                    "##\n# @{name}:\n#\n# A thing given by number, flag or value.\n#\n\
                     # @number: the thing's number\n#\n\
                     # @flag: a shorthand for the default thing\n#\n\
                     # @value: the thing itself\n#\n\
                     # Since: 1.0\n##"
                );
                let _ = writeln!(
                    s,
                    "{{ 'alternate': '{name}',\n  'data': {{ 'number': 'int', 'flag': 'bool',\n            \
                     'value': '{st}' }} }}\n"
                );
            }
            6 => {
                let name = format!("do-thing-{i}");
                let arg = &structs[pick(structs.len(), 6)];
                let ret = &structs[pick(structs.len(), 7)];
                let _ = writeln!(
                    s,
                    "##\n# @{name}:\n#\n# Do something with a thing.  This is command {i}.\n#\n\
                     # @id: identifies the thing\n#\n\
                     # @force: do it even if the thing is busy\n#\n\
                     # @thing: the thing to work on\n#\n\
                     # Returns: the thing after the change\n#\n\
                     # Since: 1.0\n##"
                );
                let _ = writeln!(
                    s,
                    "{{ 'command': '{name}',\n  'data': {{ 'id': 'str', '*force': 'bool', 'thing': '{arg}' }},\n  \
                     'returns': '{ret}' }}\n"
                );
            }
            _ => {
                let name = format!("THING_CHANGED_{i}");
                let e = &enums[pick(enums.len(), 8)].0;
                let _ = writeln!(
                    s,
                    "##\n# @{name}:\n#\n# Emitted when a thing changes.\n#\n\
                     # @id: identifies the thing\n#\n\
                     # @mode: the new kind of the thing\n#\n\
                     # @when: time of the change, in seconds\n#\n\
                     # Since: 1.0\n##"
                );
                let _ = writeln!(
                    s,
                    "{{ 'event': '{name}',\n  'data': {{ 'id': 'str', 'mode': '{e}', '*when': 'int' }} }}\n"
                );
            }
        }
    }
    s
}

fn bench_synthetic(c: &mut Criterion) {
    let mut group = c.benchmark_group("synthetic");
    for n in [100usize, 1_000, 10_000] {
        let text = generate_schema(n);
        eprintln!(
            "synthetic N = {n}: {} bytes, {} lines",
            text.len(),
            text.lines().count()
        );
        if let Some(path) = std::env::var_os("QAPI_BENCH_DUMP") {
            // Inspect the generated schema: QAPI_BENCH_DUMP=/tmp/synth
            let _ = std::fs::write(format!("{}-{n}.json", path.to_string_lossy()), &text);
        }
        // The generated schema must be valid in strict mode, or the bench
        // would time an early error.
        match parse_str("synthetic.json", &text, &STRICT) {
            Ok(schema) => assert!(schema.lookup(&format!("Enum{}", 0)).is_some()),
            Err(f) => panic!("generated schema (N = {n}) is invalid:\n{}", f.render()),
        }
        group.throughput(Throughput::Elements(n as u64));
        if n >= 10_000 {
            group.sample_size(20);
        }
        for (mode, opts) in [("strict", &STRICT), ("default", &DEFAULT)] {
            group.bench_with_input(BenchmarkId::new(mode, n), &text, |b, text| {
                b.iter(|| parse_str("synthetic.json", black_box(text), opts).is_ok())
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench_qga, bench_synthetic);
criterion_main!(benches);
