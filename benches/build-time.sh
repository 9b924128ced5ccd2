#!/usr/bin/env bash
# Clean-build time of a minimal host program on qga-types (default, and
# with --features codegen) next to the same program on the crates.io
# `qapi` crate with its `qga` feature. One after the other, same run.
# Usage: benches/build-time.sh [ROUNDS]   (results on stdout)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
rounds="${1:-2}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

mk() { # name, dependency lines, main body
    mkdir -p "$work/$1/src"
    printf '[package]\nname = "%s"\nversion = "0.0.0"\nedition = "2021"\n[dependencies]\n%s\n[workspace]\n' "$1" "$2" \
        > "$work/$1/Cargo.toml"
    printf '%s\n' "$3" > "$work/$1/src/main.rs"
}
mk ours "qga-types = { path = \"$root/crates/qga-types\" }" 'use qga_types::runtime::serde_json;
fn main() {
    println!("{}", serde_json::to_string(&qga_types::GuestSyncArgs { id: 42 }).unwrap());
    let info: qga_types::GuestAgentInfo = serde_json::from_str(r#"{"version":"1","supported_commands":[]}"#).unwrap();
    println!("{}", info.version);
}'
mk codegen "qga-types = { path = \"$root/crates/qga-types\", features = [\"codegen\"] }" "$(cat "$work/ours/src/main.rs")"
mk peer 'qapi = { version = "0.15", features = ["qga"] }
serde_json = "1"' 'fn main() {
    println!("{}", serde_json::to_string(&qapi::qga::guest_sync { id: 42 }).unwrap());
    let info: qapi::qga::GuestAgentInfo = serde_json::from_str(r#"{"version":"1","supported_commands":[]}"#).unwrap();
    println!("{}", info.version);
}'
for who in ours codegen peer; do (cd "$work/$who" && cargo fetch -q); done
for round in $(seq "$rounds"); do
    for profile in dev release; do
        for who in ours codegen peer; do
            rm -rf "$work/target-$who"
            flag=(); [ "$profile" = release ] && flag=(--release)
            start=$(date +%s.%N)
            (cd "$work/$who" && CARGO_TARGET_DIR="$work/target-$who" cargo build -q "${flag[@]}")
            end=$(date +%s.%N)
            printf 'round=%s profile=%s build=%s seconds=%.1f\n' "$round" "$profile" "$who" "$(echo "$end - $start" | bc)"
        done
    done
done
start=$(date +%s.%N)
(cd "$work/codegen" && CARGO_TARGET_DIR="$work/target-codegen" cargo build -q --release)
end=$(date +%s.%N)
printf 'no-op rebuild with codegen: %.2f s\n' "$(echo "$end - $start" | bc)"
