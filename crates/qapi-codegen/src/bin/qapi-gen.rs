//! `qapi-gen`: check, dump and (later) generate Rust from a QAPI schema.

use std::io::Write as _;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use qapi_parser::{Options, Schema};

/// Check QAPI schemas and show what QEMU's generator would see.
#[derive(Parser)]
#[command(name = "qapi-gen", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check a schema. Exit status: 0 valid, 1 invalid, 2 usage or I/O error.
    Check(SchemaArgs),
    /// Print the checked schema in the format of QEMU's
    /// tests/qapi-schema/*.out files.
    Dump(SchemaArgs),
    /// Generate one Rust module (types, commands, client, server) that
    /// compiles as the lib.rs of a crate depending on qapi-runtime.
    Generate(GenerateArgs),
}

#[derive(Args)]
struct GenerateArgs {
    #[command(flatten)]
    schema: SchemaArgs,
    /// Write here instead of standard output.
    #[arg(short, long)]
    output: Option<std::path::PathBuf>,
}

#[derive(Args)]
struct SchemaArgs {
    /// Follow QEMU 10.2's rules exactly, including documentation style.
    /// Without it, forms of older guest-agent schemas are warnings.
    #[arg(long)]
    strict: bool,
    /// The root schema file; includes are resolved relative to it.
    schema: String,
}

fn load(args: &SchemaArgs) -> Result<Schema, ExitCode> {
    let opts = Options { strict: args.strict };
    match qapi_parser::parse_file(&args.schema, &opts) {
        Ok(schema) => {
            let mut err = std::io::stderr().lock();
            for w in &schema.warnings {
                let _ = err.write_all(w.render(&schema.sources).as_bytes());
            }
            Ok(schema)
        }
        Err(failure) => {
            let _ = std::io::stderr().write_all(failure.render().as_bytes());
            Err(ExitCode::from(if failure.io { 2 } else { 1 }))
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check(args) => match load(&args) {
            Ok(_) => ExitCode::SUCCESS,
            Err(code) => code,
        },
        Command::Dump(args) => match load(&args) {
            Ok(schema) => {
                let text = qapi_parser::dump::dump(&schema);
                match std::io::stdout().lock().write_all(text.as_bytes()) {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(_) => ExitCode::from(2),
                }
            }
            Err(code) => code,
        },
        Command::Generate(args) => match load(&args.schema) {
            Ok(schema) => {
                let label = std::path::Path::new(&args.schema.schema)
                    .file_name()
                    .map_or(args.schema.schema.clone(), |n| n.to_string_lossy().into_owned());
                let text = qapi_codegen::generate(&schema, &label);
                let written = match &args.output {
                    Some(path) => qapi_codegen::write_if_changed(path, &text).map_err(|e| e.to_string()),
                    None => std::io::stdout()
                        .lock()
                        .write_all(text.as_bytes())
                        .map_err(|e| e.to_string()),
                };
                match written {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(e) => {
                        eprintln!("qapi-gen: {e}");
                        ExitCode::from(2)
                    }
                }
            }
            Err(code) => code,
        },
    }
}
