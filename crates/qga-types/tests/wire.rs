//! Serde round trips of real wire messages, and decoding replies from a
//! newer agent.

use qga_types::runtime::serde_json::{self, json, Value};
use qga_types::runtime::{Command, ReplyCommand};
use qga_types::*;

fn returns() -> serde_json::Map<String, Value> {
    let text = include_str!("data/qemu-ga-7.2-returns.json");
    serde_json::from_str(text).unwrap()
}

/// Decodes a real return value as the command's type, encodes it again
/// and expects the same JSON (member order aside: qemu-ga emits members
/// in hash order).
fn round_trip<C: ReplyCommand>() -> C::Returns {
    let all = returns();
    let wire = all
        .get(C::INFO.name)
        .unwrap_or_else(|| panic!("no capture of {}", C::INFO.name));
    let typed: C::Returns = serde_json::from_value(wire.clone()).unwrap();
    let again = serde_json::to_value(&typed).unwrap();
    assert_eq!(&again, wire, "{} does not round-trip", C::INFO.name);
    typed
}

#[test]
fn structs_round_trip() {
    let info = round_trip::<commands::GuestInfo>();
    assert_eq!(info.version, "7.2.22");
    assert!(info
        .supported_commands
        .iter()
        .any(|c| c.name == "guest-sync-delimited" && c.success_response));
    let os = round_trip::<commands::GuestGetOsinfo>();
    assert_eq!(os.id.as_deref(), Some("debian"));
    round_trip::<commands::GuestGetHostName>();
    round_trip::<commands::GuestGetTimezone>();
    round_trip::<commands::GuestGetVcpus>();
    round_trip::<commands::GuestGetMemoryBlocks>();
    round_trip::<commands::GuestGetUsers>();
    round_trip::<commands::GuestGetDiskstats>();
}

#[test]
fn enums_round_trip() {
    let status = round_trip::<commands::GuestFsfreezeStatus>();
    assert_eq!(status, GuestFsfreezeStatus::Thawed);
    let ifaces = round_trip::<commands::GuestNetworkGetInterfaces>();
    let lo = ifaces.iter().find(|i| i.name == "lo").unwrap();
    let addrs = lo.ip_addresses.as_ref().unwrap();
    assert!(addrs.iter().any(|a| a.ip_address_type == GuestIpAddressType::Ipv4));
}

#[test]
fn nested_structs_and_enums_round_trip() {
    let fs = round_trip::<commands::GuestGetFsinfo>();
    assert_eq!(fs[0].disk[0].bus_type, GuestDiskBusType::Virtio);
    round_trip::<commands::GuestGetDisks>();
}

#[test]
fn unions_round_trip() {
    let stats = round_trip::<commands::GuestGetCpustats>();
    assert!(matches!(stats[0], GuestCpuStats::Linux(_)));
    let device = GuestDeviceId::Pci(GuestDeviceIdPci {
        vendor_id: 0x1af4,
        device_id: 0x1003,
    });
    let wire = json!({"type": "pci", "vendor-id": 6900, "device-id": 4099});
    assert_eq!(serde_json::to_value(&device).unwrap(), wire);
    assert_eq!(serde_json::from_value::<GuestDeviceId>(wire).unwrap(), device);
    // A branch without members.
    let smart: GuestDiskSmart = serde_json::from_value(json!({"type": "virtio"})).unwrap();
    assert_eq!(smart, GuestDiskSmart::Virtio);
    assert_eq!(serde_json::to_value(&smart).unwrap(), json!({"type": "virtio"}));
}

#[test]
fn alternates_round_trip() {
    for (wire, typed) in [
        (json!(3), GuestFileWhence::Value(3)),
        (json!("end"), GuestFileWhence::Name(QgaSeek::End)),
    ] {
        assert_eq!(serde_json::from_value::<GuestFileWhence>(wire.clone()).unwrap(), typed);
        assert_eq!(serde_json::to_value(&typed).unwrap(), wire);
    }
    let capture: GuestExecCaptureOutput = serde_json::from_value(json!(true)).unwrap();
    assert_eq!(capture, GuestExecCaptureOutput::Flag(true));
    assert!(serde_json::from_value::<GuestFileWhence>(json!([1])).is_err());
}

#[test]
fn scalar_returns_round_trip() {
    assert_eq!(round_trip::<commands::GuestSync>(), 1234);
    assert!(round_trip::<commands::GuestGetTime>() > 0);
    assert_eq!(round_trip::<commands::GuestFileOpen>(), 1000);
}

#[test]
fn requests_are_what_qemu_expects() {
    let args = GuestFileReadArgs {
        handle: 1000,
        count: Some(4096),
    };
    let request = qga_types::runtime::Request {
        execute: commands::GuestFileRead::INFO.name.to_string(),
        arguments: qga_types::runtime::client::encode_arguments::<commands::GuestFileRead>(&args).unwrap(),
        id: None,
    };
    assert_eq!(
        serde_json::to_string(&request).unwrap(),
        r#"{"execute":"guest-file-read","arguments":{"handle":1000,"count":4096}}"#
    );
    // Absent optional members are left out, not sent as null.
    let args = GuestFileReadArgs {
        handle: 1000,
        count: None,
    };
    assert_eq!(serde_json::to_value(&args).unwrap(), json!({"handle": 1000}));
}

#[test]
fn replies_from_a_newer_agent_decode() {
    // A new member and a new enum value.
    let os: GuestOsInfo =
        serde_json::from_value(json!({"id": "debian", "kernel-release": "9.9", "new-member": [1, 2]})).unwrap();
    assert_eq!(os.id.as_deref(), Some("debian"));
    let bus: GuestDiskBusType = serde_json::from_value(json!("cxl")).unwrap();
    assert_eq!(bus, GuestDiskBusType::Unrecognized("cxl".into()));
    assert_eq!(serde_json::to_value(&bus).unwrap(), json!("cxl"));
    // A union branch this schema does not know keeps its members.
    let stats: GuestCpuStats = serde_json::from_value(json!({"type": "windows", "kernel": 5})).unwrap();
    let GuestCpuStats::Unrecognized(unknown) = &stats else {
        panic!("{stats:?}")
    };
    assert_eq!(unknown.tag, "windows");
    assert_eq!(
        serde_json::to_value(&stats).unwrap(),
        json!({"type": "windows", "kernel": 5})
    );
    // A whole reply with both, through the typed path.
    let reply = json!([{"name": "vda", "mountpoint": "/", "type": "ext4", "disk": [
        {"bus-type": "cxl", "bus": 0, "unit": 0, "target": 0, "brand-new": true,
         "pci-controller": {"bus": 0, "slot": 2, "domain": 0, "function": 0}}]}]);
    let fs: Vec<GuestFilesystemInfo> = serde_json::from_value(reply).unwrap();
    assert_eq!(fs[0].disk[0].bus_type.as_str(), "cxl");
}

#[test]
fn command_table_carries_flags_and_conditions() {
    assert_eq!(COMMANDS.len(), 44);
    let no_reply: Vec<&str> = COMMANDS
        .iter()
        .filter(|c| !c.success_response)
        .map(|c| c.name)
        .collect();
    assert_eq!(
        no_reply,
        [
            "guest-shutdown",
            "guest-suspend-disk",
            "guest-suspend-ram",
            "guest-suspend-hybrid"
        ]
    );
    let linux = |name: &str| name == "CONFIG_LINUX" || name == "CONFIG_POSIX";
    let windows = |name: &str| name == "CONFIG_WIN32";
    let info = |n: &str| COMMANDS.iter().find(|c| c.name == n).unwrap();
    // Windows-only commands are here for a Linux host to call.
    let set_password = info("guest-set-user-password");
    let get_devices = info("guest-get-devices");
    assert!(get_devices
        .condition
        .is_some_and(|c| c.eval(&windows) && !c.eval(&linux)));
    assert!(set_password.condition.is_none_or(|c| c.eval(&linux)));
    assert!(info("guest-ping").condition.is_none());
}
