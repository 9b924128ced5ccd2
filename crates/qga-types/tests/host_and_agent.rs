//! A host-side client and an agent-side server, both from `qga-types`,
//! talking in-process through the runtime's framing: bytes out, bytes in.

use std::cell::RefCell;
use std::convert::Infallible;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use qga_types::client::{AsyncClient, Client};
use qga_types::runtime::framing::{Frame, MessageReader};
use qga_types::runtime::serde_json::{self, Value};
use qga_types::runtime::{AsyncTransport, CallError, CommandError, CommandInfo, ErrorClass, Reply, Request, Transport};
use qga_types::server::{dispatch, Server};
use qga_types::*;

struct Agent {
    hostname: String,
    halted: RefCell<bool>,
}

impl Server for Agent {
    fn guest_get_host_name(&self) -> Result<GuestHostName, CommandError> {
        Ok(GuestHostName {
            host_name: self.hostname.clone(),
        })
    }

    fn guest_info(&self) -> Result<GuestAgentInfo, CommandError> {
        Ok(GuestAgentInfo {
            version: "test".into(),
            supported_commands: COMMANDS
                .iter()
                .map(|c| GuestAgentCommandInfo {
                    name: c.name.into(),
                    enabled: true,
                    success_response: c.success_response,
                })
                .collect(),
        })
    }

    fn guest_shutdown(&self, _: GuestShutdownArgs) -> Result<(), CommandError> {
        *self.halted.borrow_mut() = true;
        Ok(())
    }
}

/// A transport whose "wire" is a byte buffer into the agent's reader.
struct Loopback {
    agent: Agent,
    reader: MessageReader,
    next_id: u64,
}

impl Loopback {
    fn exchange(&mut self, command: &'static CommandInfo, arguments: Option<Value>) -> Option<Reply> {
        self.next_id += 1;
        let request = Request {
            execute: command.name.to_string(),
            arguments,
            id: Some(self.next_id.into()),
        };
        let mut bytes = serde_json::to_vec(&request).unwrap();
        bytes.push(b'\n');
        let mut frames = Vec::new();
        // Split the request in two reads, as a socket may.
        let (a, b) = bytes.split_at(bytes.len() / 2);
        self.reader.push(a, &mut frames);
        self.reader.push(b, &mut frames);
        let [Frame::Message(message)] = frames.as_slice() else {
            panic!("{frames:?}")
        };
        let request: Value = serde_json::from_slice(message).unwrap();
        let reply = dispatch(&self.agent, request, &|_: &str| true)?;
        let reply_bytes = serde_json::to_vec(&reply).unwrap();
        let reply = Reply::from_value(serde_json::from_slice(&reply_bytes).unwrap()).unwrap();
        assert_eq!(reply.id, Some(self.next_id.into()));
        Some(reply)
    }
}

impl Transport for Loopback {
    type Error = Infallible;

    fn call(&mut self, command: &'static CommandInfo, arguments: Option<Value>) -> Result<Reply, Infallible> {
        Ok(self.exchange(command, arguments).expect("a reply"))
    }

    fn send(&mut self, command: &'static CommandInfo, arguments: Option<Value>) -> Result<Option<Reply>, Infallible> {
        Ok(self.exchange(command, arguments))
    }
}

impl AsyncTransport for Loopback {
    type Error = Infallible;

    fn call(
        &mut self,
        command: &'static CommandInfo,
        arguments: Option<Value>,
    ) -> impl Future<Output = Result<Reply, Infallible>> + Send {
        let reply = self.exchange(command, arguments).expect("a reply");
        async move { Ok(reply) }
    }

    fn send(
        &mut self,
        command: &'static CommandInfo,
        arguments: Option<Value>,
    ) -> impl Future<Output = Result<Option<Reply>, Infallible>> + Send {
        let reply = self.exchange(command, arguments);
        async move { Ok(reply) }
    }
}

fn loopback() -> Loopback {
    Loopback {
        agent: Agent {
            hostname: "guest-1".into(),
            halted: RefCell::new(false),
        },
        reader: MessageReader::default(),
        next_id: 0,
    }
}

fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

#[test]
fn blocking_client_talks_to_server() {
    let mut client = Client::new(loopback());
    assert_eq!(client.guest_get_host_name().unwrap().host_name, "guest-1");
    let info = client.guest_info().unwrap();
    assert_eq!(info.supported_commands.len(), 44);
    // The agent does not implement this one: a typed agent error.
    match client.guest_get_osinfo() {
        Err(CallError::Agent { error, .. }) => assert_eq!(error.class, ErrorClass::GenericError),
        other => panic!("{other:?}"),
    }
    // No reply on success, and nothing to wait for.
    client
        .guest_shutdown(&GuestShutdownArgs {
            mode: Some("powerdown".into()),
        })
        .unwrap();
    assert!(*client.transport().agent.halted.borrow());
}

#[test]
fn async_client_talks_to_server() {
    let mut client = AsyncClient::new(loopback());
    let name = block_on(client.guest_get_host_name()).unwrap();
    assert_eq!(name.host_name, "guest-1");
    block_on(client.guest_shutdown(&GuestShutdownArgs::default())).unwrap();
}
