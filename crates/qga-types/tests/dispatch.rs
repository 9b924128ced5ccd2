//! The generated dispatcher answers like qemu-ga (wording checked against
//! qemu-ga 7.2 replies).

use std::sync::Mutex;

use qga_types::runtime::serde_json::{json, Value};
use qga_types::runtime::CommandError;
use qga_types::server::{dispatch, Server};
use qga_types::*;

#[derive(Default)]
struct Agent {
    shutdowns: Mutex<Vec<Option<String>>>,
}

impl Server for Agent {
    fn guest_sync(&self, args: GuestSyncArgs) -> Result<i64, CommandError> {
        Ok(args.id)
    }

    fn guest_ping(&self) -> Result<(), CommandError> {
        Ok(())
    }

    fn guest_shutdown(&self, args: GuestShutdownArgs) -> Result<(), CommandError> {
        if args.mode.as_deref() == Some("fail") {
            return Err(CommandError::generic("shutdown failed"));
        }
        self.shutdowns.lock().unwrap().push(args.mode);
        Ok(())
    }

    fn guest_file_seek(&self, args: GuestFileSeekArgs) -> Result<GuestFileSeek, CommandError> {
        Ok(GuestFileSeek {
            position: args.offset,
            eof: matches!(args.whence, GuestFileWhence::Name(QgaSeek::End)),
        })
    }
}

fn run(request: Value) -> Option<Value> {
    dispatch(&Agent::default(), request, &|_: &str| true)
}

fn error(class: &str, desc: &str) -> Value {
    json!({"error": {"class": class, "desc": desc}})
}

fn with_id(mut reply: Value, id: Value) -> Value {
    reply.as_object_mut().unwrap().insert("id".into(), id);
    reply
}

#[test]
fn calls_the_method_and_echoes_id() {
    assert_eq!(
        run(json!({"execute": "guest-sync", "arguments": {"id": 42}, "id": "abc"})),
        Some(json!({"return": 42, "id": "abc"}))
    );
    assert_eq!(run(json!({"execute": "guest-ping"})), Some(json!({"return": {}})));
    let id = json!({"any": ["json", 1]});
    assert_eq!(
        run(json!({"execute": "guest-ping", "id": id.clone()})),
        Some(with_id(json!({"return": {}}), id))
    );
}

#[test]
fn arguments_are_checked_like_qemu() {
    let cases = [
        (json!({}), "Parameter 'id' is missing"),
        (json!({"id": "x"}), "Invalid parameter type for 'id', expected: integer"),
        (json!({"id": 1.5}), "Invalid parameter type for 'id', expected: integer"),
        (json!({"id": 1, "extra": 2}), "Parameter 'extra' is unexpected"),
    ];
    for (args, desc) in cases {
        assert_eq!(
            run(json!({"execute": "guest-sync", "arguments": args, "id": 7})),
            Some(with_id(error("GenericError", desc), json!(7))),
            "{desc}"
        );
    }
    // No 'arguments' at all for a command that needs some.
    assert_eq!(
        run(json!({"execute": "guest-sync"})),
        Some(error("GenericError", "Parameter 'id' is missing"))
    );
    // Enums and alternates inside arguments.
    assert_eq!(
        run(json!({"execute": "guest-file-seek", "arguments": {"handle": 1, "offset": 0, "whence": "middle"}})),
        Some(error(
            "GenericError",
            "Parameter 'whence' does not accept value 'middle'"
        ))
    );
    assert_eq!(
        run(json!({"execute": "guest-file-seek", "arguments": {"handle": 1, "offset": 0, "whence": true}})),
        Some(error(
            "GenericError",
            "Invalid parameter type for 'whence', expected: GuestFileWhence"
        ))
    );
    assert_eq!(
        run(json!({"execute": "guest-file-seek", "arguments": {"handle": 1, "offset": 9, "whence": "end"}})),
        Some(json!({"return": {"position": 9, "eof": true}}))
    );
    // A command without arguments rejects any.
    assert_eq!(
        run(json!({"execute": "guest-ping", "arguments": {"x": 1}})),
        Some(error("GenericError", "Parameter 'x' is unexpected"))
    );
}

#[test]
fn envelope_errors() {
    let cases = [
        (json!([1]), None, "QMP input must be a JSON object"),
        (json!("guest-ping"), None, "QMP input must be a JSON object"),
        (json!({"id": 1}), Some(json!(1)), "QMP input lacks member 'execute'"),
        (
            json!({"execute": 5, "id": 1}),
            Some(json!(1)),
            "QMP input member 'execute' must be a string",
        ),
        (
            json!({"execute": "guest-ping", "arguments": [], "id": 1}),
            Some(json!(1)),
            "QMP input member 'arguments' must be an object",
        ),
        (
            json!({"execute": "guest-ping", "bogus": 1}),
            None,
            "QMP input member 'bogus' is unexpected",
        ),
    ];
    for (request, id, desc) in cases {
        let mut expected = error("GenericError", desc);
        if let Some(id) = id {
            expected = with_id(expected, id);
        }
        assert_eq!(run(request), Some(expected), "{desc}");
    }
}

#[test]
fn unknown_disabled_and_unimplemented_commands() {
    assert_eq!(
        run(json!({"execute": "guest-frobnicate"})),
        Some(error(
            "CommandNotFound",
            "The command guest-frobnicate has not been found"
        ))
    );
    let agent = Agent::default();
    let policy = |name: &str| name != "guest-ping";
    assert_eq!(
        dispatch(&agent, json!({"execute": "guest-ping", "id": 3}), &policy),
        Some(with_id(
            error("CommandNotFound", "Command guest-ping has been disabled"),
            json!(3)
        ))
    );
    // Not implemented by this agent: the trait's default answer.
    assert_eq!(
        run(json!({"execute": "guest-get-osinfo"})),
        Some(error(
            "GenericError",
            "this feature or command is not currently supported"
        ))
    );
}

#[test]
fn commands_without_success_response_send_nothing_unless_they_fail() {
    let agent = Agent::default();
    let all = |_: &str| true;
    assert_eq!(
        dispatch(
            &agent,
            json!({"execute": "guest-shutdown", "arguments": {"mode": "halt"}}),
            &all
        ),
        None
    );
    assert_eq!(agent.shutdowns.lock().unwrap().as_slice(), [Some("halt".to_string())]);
    assert_eq!(
        dispatch(
            &agent,
            json!({"execute": "guest-shutdown", "arguments": {"mode": "fail"}, "id": 9}),
            &all
        ),
        Some(with_id(error("GenericError", "shutdown failed"), json!(9)))
    );
}
