//! With the `codegen` feature, the build script's output must be exactly
//! the checked-in `src/generated.rs` (`cargo test -p qga-types --features
//! codegen`; CI runs it).

#[cfg(feature = "codegen")]
#[test]
fn build_script_output_matches_checked_in_copy() {
    let built = std::fs::read_to_string(concat!(env!("OUT_DIR"), "/qga.rs")).unwrap();
    let copy = include_str!("../src/generated.rs");
    assert!(built == copy, "src/generated.rs is stale: run `cargo xtask regen`");
}
