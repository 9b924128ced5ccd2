//! A thermostat protocol generated from `schema/thermostat.json`: both the
//! server and a client in one program.

use std::cell::Cell;
use std::convert::Infallible;

// A program uses only part of the generated API (a library would export
// it), so unused items are expected here.
#[allow(dead_code)]
mod protocol {
    include!(concat!(env!("OUT_DIR"), "/thermostat.rs"));
}

use protocol::server::{dispatch, Server};
use protocol::{Mode, Reading, SetModeArgs};
use qapi_runtime::serde_json::{self, Value};
use qapi_runtime::{CommandError, CommandInfo, Reply, Request, Transport};

struct Thermostat {
    mode: Cell<u8>,
}

impl Server for Thermostat {
    fn read(&self) -> Result<Reading, CommandError> {
        let mode = match self.mode.get() {
            1 => Mode::Heat,
            2 => Mode::Cool,
            _ => Mode::Off,
        };
        Ok(Reading { celsius: 21.5, mode })
    }

    fn set_mode(&self, args: SetModeArgs) -> Result<(), CommandError> {
        self.mode.set(match args.mode {
            Mode::Heat => 1,
            Mode::Cool => 2,
            _ => 0,
        });
        Ok(())
    }
}

/// Requests go straight to the server, through JSON text.
struct Direct<'a>(&'a Thermostat);

impl Transport for Direct<'_> {
    type Error = Infallible;

    fn call(&mut self, command: &'static CommandInfo, arguments: Option<Value>) -> Result<Reply, Infallible> {
        let request = Request {
            execute: command.name.into(),
            arguments,
            id: None,
        };
        let text = serde_json::to_string(&request).expect("requests encode");
        let reply = dispatch(self.0, serde_json::from_str(&text).expect("valid JSON"), &|_: &str| {
            true
        });
        Ok(Reply::from_value(reply.expect("a reply")).expect("a valid reply"))
    }

    fn send(&mut self, command: &'static CommandInfo, arguments: Option<Value>) -> Result<Option<Reply>, Infallible> {
        self.call(command, arguments).map(Some)
    }
}

fn main() {
    let thermostat = Thermostat { mode: Cell::new(0) };
    let mut client = protocol::client::Client::new(Direct(&thermostat));
    client
        .set_mode(&SetModeArgs { mode: Mode::Heat })
        .expect("set-mode works");
    let reading = client.read().expect("read works");
    println!("{:.1} °C, {}", reading.celsius, reading.mode);
    assert_eq!(reading.mode, Mode::Heat);
}

#[cfg(test)]
mod tests {
    #[test]
    fn client_and_server_agree() {
        super::main();
    }
}
