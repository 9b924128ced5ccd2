//! What an agent offers, from `guest-info`, for agents of any release.

use qga_types::runtime::serde_json::Value;
use qga_types::runtime::Command;

use crate::core::replies_on_success;
use crate::Error;

/// Whether an agent offers a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Support {
    /// Listed and enabled.
    Supported,
    /// Listed but disabled (by the guest's administrator, a distribution's
    /// build, or while filesystems are frozen); calls give
    /// [`Error::CommandDisabled`].
    Disabled,
    /// Not listed: calls give [`Error::CommandNotFound`].
    Absent,
    /// The agent predates the command list in `guest-info` (0.15), so
    /// only a call can tell.
    Unknown,
}

/// One command as the agent lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentCommand {
    pub name: String,
    pub enabled: bool,
    /// False for commands that send no reply on success. Agents before 1.7
    /// do not say; then this is what our schema says, or true.
    pub success_response: bool,
}

/// An agent's version and command list, read leniently from `guest-info`
/// so that every release decodes: 0.15 has no command list, 1.1 to 1.6
/// have no `success-response`, and newer agents may add members.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Capabilities {
    pub version: String,
    /// `None` for agents without a command list (0.15).
    pub commands: Option<Vec<AgentCommand>>,
}

impl Capabilities {
    /// Reads the return value of `guest-info`.
    pub fn from_guest_info(info: &Value) -> Result<Capabilities, Error> {
        let bad = |what: &str| Error::Protocol(format!("guest-info: {what}"));
        let version = info
            .get("version")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("'version' is missing or not a string"))?
            .to_string();
        let commands = match info.get("supported_commands") {
            None | Some(Value::Null) => None,
            Some(Value::Array(list)) => Some(
                list.iter()
                    .map(|entry| {
                        let name = entry
                            .get("name")
                            .and_then(Value::as_str)
                            .ok_or_else(|| bad("a command without a 'name'"))?
                            .to_string();
                        let enabled = entry.get("enabled").and_then(Value::as_bool).unwrap_or(true);
                        let success_response = entry
                            .get("success-response")
                            .and_then(Value::as_bool)
                            .unwrap_or_else(|| replies_on_success(&name));
                        Ok(AgentCommand {
                            name,
                            enabled,
                            success_response,
                        })
                    })
                    .collect::<Result<Vec<_>, Error>>()?,
            ),
            Some(_) => return Err(bad("'supported_commands' is not a list")),
        };
        Ok(Capabilities { version, commands })
    }

    /// Whether the agent offers `command` (a wire name such as
    /// `guest-exec`).
    pub fn support(&self, command: &str) -> Support {
        let Some(commands) = &self.commands else {
            return Support::Unknown;
        };
        match commands.iter().find(|c| c.name == command) {
            Some(c) if c.enabled => Support::Supported,
            Some(_) => Support::Disabled,
            None => Support::Absent,
        }
    }

    /// [`support`](Self::support) for a typed command:
    /// `caps.support_for::<qga_types::commands::GuestExec>()`.
    pub fn support_for<C: Command>(&self) -> Support {
        self.support(C::INFO.name)
    }

    /// The listed command, if any.
    pub fn command(&self, name: &str) -> Option<&AgentCommand> {
        self.commands.as_ref()?.iter().find(|c| c.name == name)
    }
}

impl crate::Connection {
    /// Asks the agent what it offers (`guest-info`, read leniently).
    pub fn capabilities(&mut self) -> Result<Capabilities, Error> {
        Capabilities::from_guest_info(&self.execute("guest-info", None)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use qga_types::runtime::serde_json::json;

    #[test]
    fn every_generation_of_guest_info_reads() {
        let v015 = Capabilities::from_guest_info(&json!({"version": "0.15.0"})).unwrap();
        assert_eq!(v015.support("guest-ping"), Support::Unknown);
        let v11 = Capabilities::from_guest_info(&json!({"version": "1.1.0", "supported_commands": [
            {"name": "guest-ping", "enabled": true},
            {"name": "guest-shutdown", "enabled": true},
            {"name": "guest-file-open", "enabled": false},
        ]}))
        .unwrap();
        assert_eq!(v11.support("guest-ping"), Support::Supported);
        assert_eq!(v11.support("guest-file-open"), Support::Disabled);
        assert_eq!(v11.support("guest-exec"), Support::Absent);
        assert_eq!(v11.support_for::<qga_types::commands::GuestExec>(), Support::Absent);
        assert_eq!(v11.support_for::<qga_types::commands::GuestPing>(), Support::Supported);
        // No success-response before 1.7: our schema knows.
        assert!(!v11.command("guest-shutdown").unwrap().success_response);
        assert!(v11.command("guest-ping").unwrap().success_response);
        let future = Capabilities::from_guest_info(&json!({"version": "99.0", "new-member": 1, "supported_commands": [
            {"name": "guest-teleport", "enabled": true, "success-response": true, "since": "99.0"},
        ]}))
        .unwrap();
        assert_eq!(future.support("guest-teleport"), Support::Supported);
        let e = Capabilities::from_guest_info(&json!({"supported_commands": []})).unwrap_err();
        assert_eq!(
            e.to_string(),
            "protocol error: guest-info: 'version' is missing or not a string"
        );
    }
}
