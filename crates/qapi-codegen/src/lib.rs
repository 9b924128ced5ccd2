//! Rust code generation for QAPI schemas.
