//! Code generation for the guest-agent schema, in process: building the
//! token stream from a checked schema, and formatting it with prettyplease.
//! `cargo bench -p qapi-codegen --bench generate`

use criterion::{criterion_group, criterion_main, Criterion};
use qapi_parser::{parse_str, Options};

fn bench(c: &mut Criterion) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../schema/qga.json");
    let text = std::fs::read_to_string(path).unwrap();
    let schema = parse_str("qga.json", &text, &Options { strict: true }).unwrap();
    let mut group = c.benchmark_group("qga_v10_2");
    group.bench_function("tokens", |b| b.iter(|| qapi_codegen::generate_tokens(&schema)));
    group.bench_function("tokens+format", |b| {
        b.iter(|| qapi_codegen::generate(&schema, "qga.json"))
    });
    group.bench_function("parse+check+tokens+format", |b| {
        b.iter(|| {
            let schema = parse_str("qga.json", &text, &Options { strict: true }).unwrap();
            qapi_codegen::generate(&schema, "qga.json")
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
