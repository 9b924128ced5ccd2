//! A Linux guest agent serving the generated `qga_types::server::Server`
//! trait.

pub mod linux;
pub mod system;
