fn main() {
    // Writes $OUT_DIR/thermostat.rs and reruns only when the schema changes.
    if let Err(e) = qapi_codegen::Builder::new("schema/thermostat.json")
        .strict(true)
        .compile()
    {
        eprintln!("{e}");
        std::process::exit(1);
    }
}
