// With the `codegen` feature, generates the protocol module from our
// guest-agent schema into OUT_DIR. The builder prints rerun-if-changed for
// each schema file, so a no-op rebuild does no code generation. Without
// the feature, src/generated.rs (the same code, checked in) is used.
fn main() {
    #[cfg(feature = "codegen")]
    {
        let schema = concat!(env!("CARGO_MANIFEST_DIR"), "/../../schema/qga.json");
        if let Err(e) = qapi_codegen::Builder::new(schema).strict(true).compile() {
            eprintln!("{e}");
            std::process::exit(1);
        }
    }
    #[cfg(not(feature = "codegen"))]
    println!("cargo:rerun-if-changed=build.rs");
}
