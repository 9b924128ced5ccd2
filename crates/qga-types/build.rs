// Generates the protocol module from our guest-agent schema. Only the
// schema files trigger a rerun (the builder prints rerun-if-changed for
// each), so a no-op build does no code generation.
fn main() {
    let schema = concat!(env!("CARGO_MANIFEST_DIR"), "/../../schema/qga.json");
    if let Err(e) = qapi_codegen::Builder::new(schema).strict(true).compile() {
        eprintln!("{e}");
        std::process::exit(1);
    }
}
