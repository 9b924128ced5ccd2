//! Agents of other releases: an old one with few commands and none of the
//! newer members, and one from the future with members and enum values
//! this schema does not know.

mod common;

use std::sync::{Arc, Mutex};

use common::{answer, answer_sync, fake_agent, not_found, reply};
use qga_host::{Connection, Endpoint, Error, Options, Support};
use qga_types::client::Client;
use qga_types::runtime::serde_json::json;
use qga_types::runtime::ErrorClass;
use qga_types::{GuestFileOpenArgs, GuestFsfreezeStatus, GuestIpAddressType};

/// Like qemu-ga 1.1: no `success-response` in guest-info, no
/// `statistics` in interfaces, and the old wording for disabled commands.
fn old_agent() -> Client<Connection> {
    let path = fake_agent(|call, s| {
        if answer_sync(call, s) {
            return;
        }
        match call.execute() {
            "guest-ping" => answer(call, s, json!({})),
            "guest-info" => answer(
                call,
                s,
                json!({"version": "1.1.0", "supported_commands": [
                    {"name": "guest-sync-delimited", "enabled": true},
                    {"name": "guest-sync", "enabled": true},
                    {"name": "guest-ping", "enabled": true},
                    {"name": "guest-info", "enabled": true},
                    {"name": "guest-shutdown", "enabled": true},
                    {"name": "guest-file-open", "enabled": false},
                    {"name": "guest-network-get-interfaces", "enabled": true},
                ]}),
            ),
            "guest-network-get-interfaces" => answer(
                call,
                s,
                json!([{"name": "lo", "hardware-address": "00:00:00:00:00:00", "ip-addresses": [
                    {"ip-address": "127.0.0.1", "ip-address-type": "ipv4", "prefix": 8}
                ]}]),
            ),
            "guest-file-open" => {
                let desc = "The command guest-file-open has been disabled for this instance";
                reply(
                    s,
                    json!({"error": {"class": "GenericError", "desc": desc}, "id": call.id()}),
                );
            }
            _ => not_found(call, s),
        }
    });
    Client::new(Connection::connect(&Endpoint::Unix(path), Options::default()).unwrap())
}

#[test]
fn an_old_agent_answers_what_it_has_and_says_what_it_lacks() {
    let mut agent = old_agent();
    let caps = agent.transport_mut().capabilities().unwrap();
    assert_eq!(caps.version, "1.1.0");
    assert_eq!(caps.support("guest-ping"), Support::Supported);
    assert_eq!(caps.support("guest-file-open"), Support::Disabled);
    assert_eq!(caps.support("guest-get-osinfo"), Support::Absent);
    assert!(!caps.command("guest-shutdown").unwrap().success_response);

    // Calls to what it lacks give the not-found or disabled error, and the
    // channel goes on working.
    match agent.guest_get_osinfo().map_err(Error::from) {
        Err(Error::CommandNotFound(e)) => {
            assert_eq!(e.class, ErrorClass::CommandNotFound);
            assert_eq!(e.command(), Some("guest-get-osinfo"));
            assert_eq!(
                e.reply["error"]["desc"],
                "The command guest-get-osinfo has not been found"
            );
        }
        other => panic!("expected CommandNotFound, got {other:?}"),
    }
    let open = GuestFileOpenArgs {
        path: "/tmp/x".into(),
        mode: None,
    };
    match agent.guest_file_open(&open).map_err(Error::from) {
        Err(Error::CommandDisabled(e)) => assert_eq!(e.command(), Some("guest-file-open")),
        other => panic!("expected CommandDisabled, got {other:?}"),
    }
    agent.guest_ping().unwrap();

    // Replies without the members added later decode.
    let ifaces = agent.guest_network_get_interfaces().unwrap();
    assert_eq!(ifaces[0].name, "lo");
    assert!(ifaces[0].statistics.is_none());
}

#[test]
fn a_future_agent_with_unknown_members_and_values_decodes() {
    let path = fake_agent(|call, s| {
        if answer_sync(call, s) {
            return;
        }
        match call.execute() {
            "guest-info" => answer(
                call,
                s,
                json!({"version": "42.0.0", "build": "x", "supported_commands": [
                    {"name": "guest-ping", "enabled": true, "success-response": true, "since": "0.15"},
                    {"name": "guest-teleport", "enabled": true, "success-response": true},
                    {"name": "guest-get-devices", "enabled": false, "success-response": true},
                ]}),
            ),
            "guest-fsfreeze-status" => answer(call, s, json!("thawing")),
            "guest-network-get-interfaces" => answer(
                call,
                s,
                json!([{"name": "eth0", "mtu": 9000, "ip-addresses": [
                    {"ip-address": "fd00::1/64@q", "ip-address-type": "ipv7", "prefix": 64, "scope": "global"}
                ]}]),
            ),
            "guest-get-osinfo" => answer(
                call,
                s,
                json!({"id": "future-os", "kernel-release": "9.0", "kernel-flavour": "quantum"}),
            ),
            "guest-teleport" => answer(call, s, json!({"arrived": true})),
            "guest-get-devices" => reply(
                s,
                json!({"error": {"class": "CommandNotFound", "desc": "Command guest-get-devices has been disabled"}, "id": call.id()}),
            ),
            _ => not_found(call, s),
        }
    });
    let mut agent = Client::new(Connection::connect(&Endpoint::Unix(path), Options::default()).unwrap());
    // The typed guest-info ignores members it does not know.
    let info = agent.guest_info().unwrap();
    assert_eq!(info.version, "42.0.0");
    let caps = agent.transport_mut().capabilities().unwrap();
    assert_eq!(caps.support("guest-teleport"), Support::Supported);
    assert_eq!(caps.support("guest-get-devices"), Support::Disabled);
    assert_eq!(
        agent.guest_fsfreeze_status().unwrap(),
        GuestFsfreezeStatus::Unrecognized("thawing".into())
    );
    let ifaces = agent.guest_network_get_interfaces().unwrap();
    let addr = &ifaces[0].ip_addresses.as_ref().unwrap()[0];
    assert_eq!(addr.ip_address_type, GuestIpAddressType::Unrecognized("ipv7".into()));
    assert_eq!(addr.prefix, 64);
    let os = agent.guest_get_osinfo().unwrap();
    assert_eq!(os.id.as_deref(), Some("future-os"));
    // A command this schema does not have, by wire name.
    assert_eq!(
        agent.transport_mut().execute("guest-teleport", None).unwrap(),
        json!({"arrived": true})
    );
    match agent.guest_get_devices().map_err(Error::from) {
        Err(Error::CommandDisabled(e)) => assert_eq!(e.desc, "Command guest-get-devices has been disabled"),
        other => panic!("expected CommandDisabled, got {other:?}"),
    }
}

/// Like qemu-ga 0.15 and 1.0: no `guest-sync-delimited` (so no 0xFF in
/// replies), a `guest-info` without a command list.
#[test]
fn an_agent_without_the_delimited_sync_is_synced_with_guest_sync() {
    let executed = Arc::new(Mutex::new(Vec::<String>::new()));
    let log = executed.clone();
    let path = fake_agent(move |call, s| {
        log.lock().unwrap().push(call.execute().to_string());
        match call.execute() {
            "guest-sync" => {
                // Stale output from an earlier client first.
                reply(s, json!({"return": 1, "id": "old"}));
                answer(call, s, call.request["arguments"]["id"].clone());
            }
            "guest-info" => answer(call, s, json!({"version": "0.15.0"})),
            "guest-ping" => answer(call, s, json!({})),
            "guest-get-time" => {} // hangs
            _ => not_found(call, s),
        }
    });
    let options = Options {
        timeout: qga_host::ResponseTimeout::Seconds(1),
        ..Options::default()
    };
    let mut agent = Client::new(Connection::connect(&Endpoint::Unix(path), options).unwrap());
    agent.guest_ping().unwrap();
    let caps = agent.transport_mut().capabilities().unwrap();
    assert_eq!(caps.version, "0.15.0");
    assert_eq!(caps.support("guest-ping"), Support::Unknown);
    match agent.guest_get_time().map_err(Error::from) {
        Err(Error::Timeout) => {}
        other => panic!("expected a timeout, got {other:?}"),
    }
    // The resync after the timeout uses guest-sync again.
    agent.guest_ping().unwrap();
    assert_eq!(
        *executed.lock().unwrap(),
        [
            "guest-sync-delimited",
            "guest-sync",
            "guest-ping",
            "guest-info",
            "guest-get-time",
            "guest-sync",
            "guest-ping"
        ]
    );
}
