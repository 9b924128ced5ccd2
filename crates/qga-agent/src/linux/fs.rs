//! Mounted filesystems and disks: /proc/self/mountinfo, /sys/block and
//! the sysfs device paths behind them (PCI address, bus, unit), with the
//! device node, serial and alias that udev records.

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use qga_types::runtime::CommandError;
use qga_types::{
    GuestDiskAddress, GuestDiskBusType, GuestDiskInfo, GuestDiskSmart, GuestFilesystemInfo, GuestNvMeSmart,
    GuestPciAddress,
};

use super::util::errno_error;

/// A mounted filesystem backed by a block device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    pub dir: String,
    pub fstype: String,
    pub source: String,
    pub major: u32,
    pub minor: u32,
}

/// Undoes mountinfo's octal escapes (`\040` for a space, ...).
fn decode_mount_name(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 3 < bytes.len() && bytes[i + 1..i + 4].iter().all(|b| (b'0'..=b'7').contains(b)) {
            let value =
                (bytes[i + 1] - b'0') as u32 * 64 + (bytes[i + 2] - b'0') as u32 * 8 + (bytes[i + 3] - b'0') as u32;
            if let Ok(byte) = u8::try_from(value) {
                out.push(byte);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One mountinfo line: `ID PARENT MAJ:MIN ROOT DIR OPTIONS [OPTIONAL...] - TYPE SOURCE SUPEROPTS`.
/// Returns every mount, block-backed or not; `major == 0` for the rest.
pub fn parse_mountinfo_line(line: &str) -> Option<Mount> {
    let fields: Vec<&str> = line.split(' ').filter(|f| !f.is_empty()).collect();
    if fields.len() < 7 {
        return None;
    }
    let (major, minor) = fields[2].split_once(':')?;
    let dash = fields.iter().skip(6).position(|f| *f == "-")? + 6;
    Some(Mount {
        dir: decode_mount_name(fields[4]),
        fstype: fields.get(dash + 1)?.to_string(),
        source: decode_mount_name(fields.get(dash + 2).copied().unwrap_or("")),
        major: major.parse().ok()?,
        minor: minor.parse().ok()?,
    })
}

/// The block-device mounts, in mountinfo order. btrfs reports major 0:
/// its source device is asked instead, as qemu-ga does.
pub fn block_mounts_from(text: &str, stat_device: impl Fn(&str) -> Option<(u32, u32)>) -> Vec<Mount> {
    text.lines()
        .filter_map(parse_mountinfo_line)
        .filter_map(|mut m| {
            if m.major == 0 {
                if m.fstype != "btrfs" {
                    return None;
                }
                (m.major, m.minor) = stat_device(&m.source)?;
            }
            Some(m)
        })
        .collect()
}

fn device_numbers(path: &str) -> Option<(u32, u32)> {
    let meta = fs::metadata(path).ok()?;
    if !meta.file_type().is_block_device() {
        return None;
    }
    let rdev = meta.rdev();
    Some((libc::major(rdev), libc::minor(rdev)))
}

pub fn block_mounts() -> Result<Vec<Mount>, CommandError> {
    let text =
        fs::read_to_string("/proc/self/mountinfo").map_err(|e| errno_error("open(\"/proc/self/mountinfo\")", &e))?;
    Ok(block_mounts_from(&text, device_numbers))
}

/// What udev knows of a device: its node and properties from its
/// uevent file and its database entry.
struct UdevInfo {
    devnode: Option<String>,
    serial: Option<String>,
    dm_name: Option<String>,
}

fn udev_info(syspath: &Path) -> UdevInfo {
    let uevent = fs::read_to_string(syspath.join("uevent")).unwrap_or_default();
    let key = |text: &str, prefix: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(prefix))
            .map(str::to_string)
            .filter(|v| !v.is_empty())
    };
    let devnode = key(&uevent, "DEVNAME=").map(|n| format!("/dev/{n}"));
    let db = match (key(&uevent, "MAJOR="), key(&uevent, "MINOR=")) {
        (Some(major), Some(minor)) => {
            fs::read_to_string(format!("/run/udev/data/b{major}:{minor}")).unwrap_or_default()
        }
        _ => String::new(),
    };
    UdevInfo {
        devnode,
        serial: key(&db, "E:ID_SERIAL="),
        dm_name: key(&db, "E:DM_NAME="),
    }
}

/// `%x:%x:%x.%x` at the start of `s`: the PCI address and its length.
fn parse_pci_address(s: &str) -> Option<([i64; 4], usize)> {
    let mut out = [0i64; 4];
    let mut pos = 0;
    for (i, sep) in [Some(':'), Some(':'), Some('.'), None].iter().enumerate() {
        let rest = &s[pos..];
        let len = rest.find(|c: char| !c.is_ascii_hexdigit()).unwrap_or(rest.len());
        if len == 0 {
            return None;
        }
        out[i] = i64::from_str_radix(&rest[..len], 16).ok()?;
        pos += len;
        if let Some(sep) = sep {
            if !s[pos..].starts_with(*sep) {
                return None;
            }
            pos += 1;
        }
    }
    Some((out, pos))
}

fn leading_u32(s: &str) -> Option<u32> {
    super::util::leading_number(s).and_then(|n| u32::try_from(n).ok())
}

/// The numbers of the `ata*` or `host*` siblings in `dir`, sorted.
fn host_numbers(dir: &str, ata: bool) -> Vec<u32> {
    let prefix = if ata { "ata" } else { "host" };
    let mut hosts: Vec<u32> = fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str()?.strip_prefix(prefix).and_then(leading_u32))
                .collect()
        })
        .unwrap_or_default();
    hosts.sort_unstable();
    hosts
}

const STORAGE_DRIVERS: [&str; 5] = ["ata_piix", "sym53c8xx", "virtio-pci", "ahci", "nvme"];

/// Reads the controller's PCI address, bus type, bus and unit from a
/// sysfs device path under /devices/pci. `None` when the path or driver
/// is not one qemu-ga understands.
fn pci_disk_address(syspath: &str, disk: &mut GuestDiskAddress) -> Option<()> {
    let start = syspath.find("/devices/pci")? + "/devices/pci".len();
    let after_root = syspath[start..].find('/')? + start + 1;
    let (mut pci, len) = parse_pci_address(&syspath[after_root..])?;
    let mut end = after_root + len;
    let driver = loop {
        let link = fs::read_link(format!("{}/driver", &syspath[..end])).ok();
        let driver = link
            .as_ref()
            .and_then(|l| l.file_name())
            .and_then(|n| n.to_str().map(str::to_string));
        if let Some(driver) = driver.filter(|d| STORAGE_DRIVERS.contains(&d.as_str())) {
            break driver;
        }
        let next = syspath[end..].strip_prefix('/')?;
        let (address, len) = parse_pci_address(next)?;
        pci = address;
        end += 1 + len;
    };
    // "/targetH:C:T/H:C:T:L": channel, target and lun of the second part.
    let target: Option<[u32; 3]> = syspath.find("/target").and_then(|p| {
        let rest = &syspath[p + 7..];
        let second = rest.split('/').nth(1)?;
        let n: Vec<u32> = second.split(':').map_while(leading_u32).collect();
        (n.len() >= 4).then(|| [n[1], n[2], n[3]])
    });
    let (host_pos, ata) = match syspath.find("/ata") {
        Some(p) => (Some((p, p + 4)), true),
        None => (syspath.find("/host").map(|p| (p, p + 5)), false),
    };
    let host = host_pos.and_then(|(p, q)| Some((leading_u32(&syspath[q..])?, host_numbers(&syspath[..p], ata))));
    disk.pci_controller = GuestPciAddress {
        domain: pci[0],
        bus: pci[1],
        slot: pci[2],
        function: pci[3],
    };
    let host_index = || {
        let (host, hosts) = host.as_ref()?;
        hosts.iter().position(|h| h == host)
    };
    match driver.as_str() {
        "ata_piix" => {
            let target = target?;
            disk.bus_type = GuestDiskBusType::Ide;
            disk.bus = host_index()? as i64;
            disk.unit = i64::from(target[1]);
        }
        "sym53c8xx" => {
            disk.bus_type = GuestDiskBusType::Scsi;
            disk.unit = i64::from(target?[1]);
        }
        "virtio-pci" => match target {
            Some(target) => {
                disk.bus_type = GuestDiskBusType::Scsi;
                disk.unit = i64::from(target[2]);
            }
            None => disk.bus_type = GuestDiskBusType::Virtio,
        },
        "ahci" => {
            target?;
            disk.bus_type = GuestDiskBusType::Sata;
            disk.unit = host_index()? as i64;
        }
        _ => disk.bus_type = GuestDiskBusType::Nvme,
    }
    Some(())
}

/// The address of a non-virtual block device, when anything is known.
fn real_device_address(syspath: &Path) -> Option<GuestDiskAddress> {
    let udev = udev_info(syspath);
    let mut disk = GuestDiskAddress {
        pci_controller: GuestPciAddress {
            domain: -1,
            bus: -1,
            slot: -1,
            function: -1,
        },
        bus_type: GuestDiskBusType::Unknown,
        bus: 0,
        target: 0,
        unit: 0,
        serial: udev.serial,
        dev: udev.devnode,
        ccw_address: None,
    };
    let path = syspath.to_string_lossy();
    let known = path.contains("/devices/pci") && pci_disk_address(&path, &mut disk).is_some();
    if !known {
        // A half-filled address from a failed parse would mislead.
        disk.pci_controller = GuestPciAddress {
            domain: -1,
            bus: -1,
            slot: -1,
            function: -1,
        };
        disk.bus_type = GuestDiskBusType::Unknown;
        (disk.bus, disk.unit) = (0, 0);
    }
    (known || disk.dev.is_some() || disk.serial.is_some()).then_some(disk)
}

/// Disks behind a device: itself when real, its slaves when virtual
/// (device mapper, md), newest first like qemu-ga's list.
fn device_disks(
    devpath: &Path,
    disks: &mut Vec<GuestDiskAddress>,
    name: &mut Option<String>,
) -> Result<(), CommandError> {
    let syspath =
        fs::canonicalize(devpath).map_err(|e| errno_error(format_args!("realpath(\"{}\")", devpath.display()), &e))?;
    if name.is_none() {
        *name = syspath.file_name().map(|n| n.to_string_lossy().into_owned());
    }
    if syspath.to_string_lossy().contains("/devices/virtual/block/") {
        let mut slaves_dir = syspath.join("slaves");
        if !slaves_dir.is_dir() && syspath.join("partition").exists() {
            if let Some(parent) = syspath.parent() {
                slaves_dir = parent.join("slaves");
            }
        }
        let Ok(entries) = fs::read_dir(&slaves_dir) else {
            return Ok(());
        };
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_symlink()) {
                device_disks(&entry.path(), disks, name)?;
            }
        }
    } else if let Some(disk) = real_device_address(&syspath) {
        disks.insert(0, disk);
    }
    Ok(())
}

fn fs_usage(dir: &str) -> Option<(u64, u64)> {
    let st = nix::sys::statvfs::statvfs(dir).ok()?;
    let frsize = st.fragment_size();
    let used = st.blocks().saturating_sub(st.blocks_free());
    // Saturating: a filesystem's statfs numbers are the driver's word.
    let nonroot_total = used.saturating_add(st.blocks_available());
    Some((used.saturating_mul(frsize), nonroot_total.saturating_mul(frsize)))
}

pub fn fsinfo() -> Result<Vec<GuestFilesystemInfo>, CommandError> {
    let mut list = Vec::new();
    // qemu-ga lists the most recent mount first.
    for mount in block_mounts()?.into_iter().rev() {
        let devpath = PathBuf::from(format!("/sys/dev/block/{}:{}", mount.major, mount.minor));
        let mut disks = Vec::new();
        let mut name = None;
        device_disks(&devpath, &mut disks, &mut name)?;
        let usage = fs_usage(&mount.dir);
        list.push(GuestFilesystemInfo {
            name: name.unwrap_or_default(),
            mountpoint: mount.dir,
            r#type: mount.fstype,
            used_bytes: usage.map(|u| u.0),
            total_bytes: usage.map(|u| u.1),
            // qemu-ga 7.2 does not send this newer member.
            total_bytes_privileged: None,
            disk: disks,
        });
    }
    Ok(list)
}

/// The NVMe SMART / health log page (512 bytes), little endian.
pub fn parse_nvme_smart(log: &[u8; 512]) -> GuestNvMeSmart {
    let u64_at = |offset: usize| u64::from_le_bytes(log[offset..offset + 8].try_into().expect("8 bytes"));
    // 128-bit counters come as (low, high) 64-bit halves.
    let pair = |offset: usize| (u64_at(offset), u64_at(offset + 8));
    let (data_units_read_lo, data_units_read_hi) = pair(32);
    let (data_units_written_lo, data_units_written_hi) = pair(48);
    let (host_read_commands_lo, host_read_commands_hi) = pair(64);
    let (host_write_commands_lo, host_write_commands_hi) = pair(80);
    let (controller_busy_time_lo, controller_busy_time_hi) = pair(96);
    let (power_cycles_lo, power_cycles_hi) = pair(112);
    let (power_on_hours_lo, power_on_hours_hi) = pair(128);
    let (unsafe_shutdowns_lo, unsafe_shutdowns_hi) = pair(144);
    let (media_errors_lo, media_errors_hi) = pair(160);
    let (number_of_error_log_entries_lo, number_of_error_log_entries_hi) = pair(176);
    GuestNvMeSmart {
        critical_warning: i64::from(log[0]),
        temperature: i64::from(u16::from_le_bytes([log[1], log[2]])),
        available_spare: i64::from(log[3]),
        available_spare_threshold: i64::from(log[4]),
        percentage_used: i64::from(log[5]),
        data_units_read_lo,
        data_units_read_hi,
        data_units_written_lo,
        data_units_written_hi,
        host_read_commands_lo,
        host_read_commands_hi,
        host_write_commands_lo,
        host_write_commands_hi,
        controller_busy_time_lo,
        controller_busy_time_hi,
        power_cycles_lo,
        power_cycles_hi,
        power_on_hours_lo,
        power_on_hours_hi,
        unsafe_shutdowns_lo,
        unsafe_shutdowns_hi,
        media_errors_lo,
        media_errors_hi,
        number_of_error_log_entries_lo,
        number_of_error_log_entries_hi,
    }
}

/// The kernel's `struct nvme_admin_cmd` (NVME_IOCTL_ADMIN_CMD).
#[repr(C)]
#[derive(Default)]
struct NvmeAdminCmd {
    opcode: u8,
    flags: u8,
    rsvd1: u16,
    nsid: u32,
    cdw2: u32,
    cdw3: u32,
    metadata: u64,
    addr: u64,
    metadata_len: u32,
    data_len: u32,
    cdw10: u32,
    cdw11: u32,
    cdw12: u32,
    cdw13: u32,
    cdw14: u32,
    cdw15: u32,
    timeout_ms: u32,
    result: u32,
}

const NVME_IOCTL_ADMIN_CMD: u64 = nix::request_code_readwrite!(b'N', 0x41, std::mem::size_of::<NvmeAdminCmd>()) as u64;

/// Reads the SMART / health log of an NVMe device node; `None` when the
/// device can't be opened or does not answer, as qemu-ga leaves `smart`
/// out then.
fn nvme_smart(devnode: &str) -> Option<GuestNvMeSmart> {
    use std::os::fd::AsRawFd;
    let device = fs::File::open(devnode).ok()?;
    let mut log = [0u8; 512];
    let dwords = (log.len() / 4 - 1) as u32;
    let mut cmd = NvmeAdminCmd {
        opcode: 0x02,      // Get Log Page
        nsid: 0xffff_ffff, // every namespace
        addr: log.as_mut_ptr() as u64,
        data_len: log.len() as u32,
        // SMART / health log (0x02), its length in dwords, and "retain
        // asynchronous event" so the read does not clear pending events.
        cdw10: 0x02 | (dwords << 16) | (1 << 15),
        ..NvmeAdminCmd::default()
    };
    // SAFETY: `cmd` is the kernel's layout and `addr` points at `log`,
    // which outlives the call and is `data_len` bytes long.
    let rc = unsafe { libc::ioctl(device.as_raw_fd(), NVME_IOCTL_ADMIN_CMD as _, &mut cmd) };
    (rc == 0).then(|| parse_nvme_smart(&log))
}

fn is_partition_name(disk: &str, entry: &str) -> bool {
    let Some(rest) = entry.strip_prefix(disk) else {
        return false;
    };
    let rest = rest
        .strip_prefix('p')
        .filter(|r| r.starts_with(|c: char| c.is_ascii_digit()))
        .unwrap_or(rest);
    rest.starts_with(|c: char| c.is_ascii_digit())
}

pub fn disks() -> Result<Vec<GuestDiskInfo>, CommandError> {
    disks_under(Path::new("/sys/block"))
}

/// Disks and their partitions, each added in front like qemu-ga's list.
fn disks_under(block: &Path) -> Result<Vec<GuestDiskInfo>, CommandError> {
    let entries = fs::read_dir(block)
        .map_err(|e| errno_error(format_args!("Can't open directory \"{}\"", block.display()), &e))?;
    let mut list: Vec<GuestDiskInfo> = Vec::new();
    for entry in entries.flatten() {
        if !entry.file_type().is_ok_and(|t| t.is_symlink()) {
            continue;
        }
        let disk_name = entry.file_name().to_string_lossy().into_owned();
        let disk_dir = entry.path();
        match fs::read_to_string(disk_dir.join("size")) {
            Ok(size) if size.trim() != "0" => {}
            _ => continue,
        }
        let udev = udev_info(&disk_dir);
        let Some(dev_name) = udev.devnode else { continue };
        let real = fs::canonicalize(&disk_dir).ok();
        let is_virtual = real
            .as_ref()
            .is_none_or(|p| p.to_string_lossy().contains("/devices/virtual/"));
        let address = if is_virtual {
            None
        } else {
            real.as_deref().and_then(real_device_address)
        };
        let smart = address
            .as_ref()
            .filter(|a| a.bus_type == GuestDiskBusType::Nvme)
            .and_then(|_| nvme_smart(&dev_name))
            .map(GuestDiskSmart::Nvme);
        let dependencies = fs::read_dir(disk_dir.join("slaves")).ok().map(|slaves| {
            let mut deps: Vec<String> = Vec::new();
            for slave in slaves.flatten() {
                if let Some(node) = udev_info(&slave.path()).devnode {
                    deps.insert(0, node);
                }
            }
            deps
        });
        list.insert(
            0,
            GuestDiskInfo {
                name: dev_name.clone(),
                partition: false,
                dependencies,
                address,
                alias: udev.dm_name,
                smart,
            },
        );
        for part in fs::read_dir(&disk_dir).into_iter().flatten().flatten() {
            let part_name = part.file_name().to_string_lossy().into_owned();
            if !part.file_type().is_ok_and(|t| t.is_dir()) || !is_partition_name(&disk_name, &part_name) {
                continue;
            }
            let Some(node) = udev_info(&part.path()).devnode else {
                continue;
            };
            list.insert(
                0,
                GuestDiskInfo {
                    name: node,
                    partition: true,
                    dependencies: Some(vec![dev_name.clone()]),
                    address: None,
                    alias: None,
                    smart: None,
                },
            );
        }
    }
    Ok(list)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw,discard
30 27 8:1 / /mnt/with\\040space rw master:2 shared:3 - xfs /dev/sda1 rw
31 27 0:40 /sub /data rw - btrfs /dev/sdb rw
32 27 0:41 / /tmp rw - tmpfs tmpfs rw
garbage line
";

    #[test]
    fn linux_mountinfo_parsing() {
        let m = parse_mountinfo_line("27 1 254:0 / / rw,relatime - ext4 /dev/vda rw").unwrap();
        assert_eq!(
            (m.dir.as_str(), m.fstype.as_str(), m.major, m.minor),
            ("/", "ext4", 254, 0)
        );
        let mounts = block_mounts_from(MOUNTINFO, |dev| (dev == "/dev/sdb").then_some((8, 16)));
        let dirs: Vec<_> = mounts
            .iter()
            .map(|m| (m.dir.as_str(), m.fstype.as_str(), m.major, m.minor))
            .collect();
        assert_eq!(
            dirs,
            vec![
                ("/", "ext4", 254, 0),
                ("/mnt/with space", "xfs", 8, 1),
                ("/data", "btrfs", 8, 16)
            ]
        );
        assert!(block_mounts_from(MOUNTINFO, |_| None)
            .iter()
            .all(|m| m.fstype != "btrfs"));
    }

    #[test]
    fn linux_pci_address_and_partition_names() {
        assert_eq!(parse_pci_address("0000:00:02.0/virtio1"), Some(([0, 0, 2, 0], 12)));
        assert_eq!(parse_pci_address("0000:00:1f.2"), Some(([0, 0, 0x1f, 2], 12)));
        assert_eq!(parse_pci_address("virtio1"), None);
        assert!(is_partition_name("vda", "vda1"));
        assert!(is_partition_name("nvme0n1", "nvme0n1p2"));
        assert!(!is_partition_name("vda", "vdaq"));
        assert!(!is_partition_name("vda", "queue"));
    }

    /// A fake sysfs tree: `controller` with a driver link and the given
    /// host directories, and the device path below it.
    fn fake_device(root: &Path, controller: &str, driver: &str, hosts: &[&str], below: &str) -> String {
        let base = root.join("devices/pci0000:00").join(controller);
        fs::create_dir_all(&base).unwrap();
        for host in hosts {
            fs::create_dir_all(base.join(host)).unwrap();
        }
        std::os::unix::fs::symlink(format!("../../../bus/pci/drivers/{driver}"), base.join("driver")).unwrap();
        format!("{}/{below}", base.display())
    }

    fn address_of(syspath: &str) -> Option<GuestDiskAddress> {
        let mut disk = GuestDiskAddress {
            pci_controller: GuestPciAddress {
                domain: -1,
                bus: -1,
                slot: -1,
                function: -1,
            },
            bus_type: GuestDiskBusType::Unknown,
            bus: 0,
            target: 0,
            unit: 0,
            serial: None,
            dev: None,
            ccw_address: None,
        };
        pci_disk_address(syspath, &mut disk).map(|()| disk)
    }

    #[test]
    fn linux_disk_addresses_from_fake_sysfs() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let sata = fake_device(
            root,
            "0000:00:1f.2",
            "ahci",
            &["ata1", "ata3", "ata2"],
            "ata2/host1/target1:0:0/1:0:0:0/block/sda",
        );
        let d = address_of(&sata).unwrap();
        assert_eq!((d.bus_type, d.unit), (GuestDiskBusType::Sata, 1));
        assert_eq!(
            (
                d.pci_controller.domain,
                d.pci_controller.bus,
                d.pci_controller.slot,
                d.pci_controller.function
            ),
            (0, 0, 0x1f, 2)
        );

        let ide = fake_device(
            root,
            "0000:00:01.1",
            "ata_piix",
            &["ata1", "ata2"],
            "ata2/host1/target1:0:1/1:0:1:0/block/sdb",
        );
        let d = address_of(&ide).unwrap();
        assert_eq!((d.bus_type, d.bus, d.unit), (GuestDiskBusType::Ide, 1, 1));

        let vscsi = fake_device(
            root,
            "0000:00:05.0",
            "virtio-pci",
            &[],
            "virtio2/host2/target2:0:3/2:0:3:4/block/sdc",
        );
        let d = address_of(&vscsi).unwrap();
        assert_eq!(
            (d.bus_type, d.unit, d.pci_controller.slot),
            (GuestDiskBusType::Scsi, 4, 5)
        );

        let vblk = fake_device(root, "0000:00:06.0", "virtio-pci", &[], "virtio3/block/vdb");
        assert_eq!(address_of(&vblk).unwrap().bus_type, GuestDiskBusType::Virtio);

        // Behind a bridge: the address is the storage controller's.
        let bridge = fake_device(root, "0000:00:1c.0", "pcieport", &[], "0000:01:00.0/nvme/nvme0/nvme0n1");
        fs::create_dir_all(root.join("devices/pci0000:00/0000:00:1c.0/0000:01:00.0")).unwrap();
        std::os::unix::fs::symlink(
            "../../../../bus/pci/drivers/nvme",
            root.join("devices/pci0000:00/0000:00:1c.0/0000:01:00.0/driver"),
        )
        .unwrap();
        let d = address_of(&bridge).unwrap();
        assert_eq!(
            (d.bus_type, d.pci_controller.bus, d.pci_controller.slot),
            (GuestDiskBusType::Nvme, 1, 0)
        );

        let usb = fake_device(
            root,
            "0000:00:14.0",
            "xhci_hcd",
            &[],
            "usb1/1-1/host4/target4:0:0/4:0:0:0/block/sdd",
        );
        assert!(address_of(&usb).is_none(), "unknown controllers give no address");
        assert!(address_of("/sys/devices/platform/foo/block/mmcblk0").is_none());
    }

    #[test]
    fn linux_virtual_devices_resolve_to_their_slaves() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        // Two virtio disks under one device-mapper volume, as LVM builds.
        let mut disks = Vec::new();
        for (slot, name) in [("02", "vda"), ("03", "vdb")] {
            let path = fake_device(
                root,
                &format!("0000:00:{slot}.0"),
                "virtio-pci",
                &[],
                &format!("virtio{slot}/block/{name}"),
            );
            fs::create_dir_all(&path).unwrap();
            fs::write(
                format!("{path}/uevent"),
                format!("MAJOR=254\nMINOR=0\nDEVNAME={name}\n"),
            )
            .unwrap();
            disks.push((name, path));
        }
        let dm = root.join("devices/virtual/block/dm-0");
        fs::create_dir_all(dm.join("slaves")).unwrap();
        for (name, path) in &disks {
            std::os::unix::fs::symlink(path, dm.join("slaves").join(name)).unwrap();
        }
        let link = root.join("dev-block-253:0");
        std::os::unix::fs::symlink(&dm, &link).unwrap();

        let mut found = Vec::new();
        let mut name = None;
        device_disks(&link, &mut found, &mut name).unwrap();
        assert_eq!(name.as_deref(), Some("dm-0"));
        let mut nodes: Vec<_> = found
            .iter()
            .map(|d| (d.dev.clone().unwrap(), d.pci_controller.slot))
            .collect();
        nodes.sort();
        assert_eq!(nodes, vec![("/dev/vda".to_string(), 2), ("/dev/vdb".to_string(), 3)]);
        assert!(found.iter().all(|d| d.bus_type == GuestDiskBusType::Virtio));

        let err = device_disks(&root.join("missing"), &mut found, &mut name).unwrap_err();
        assert!(err.desc.starts_with("realpath(\""), "{}", err.desc);
    }

    #[test]
    fn linux_nvme_smart_log_layout() {
        let mut log = [0u8; 512];
        log[0] = 0x04;
        log[1..3].copy_from_slice(&310u16.to_le_bytes());
        (log[3], log[4], log[5]) = (100, 10, 3);
        log[32..40].copy_from_slice(&7u64.to_le_bytes());
        log[40..48].copy_from_slice(&1u64.to_le_bytes());
        log[128..136].copy_from_slice(&4242u64.to_le_bytes());
        log[176..184].copy_from_slice(&9u64.to_le_bytes());
        let s = parse_nvme_smart(&log);
        assert_eq!((s.critical_warning, s.temperature, s.available_spare), (4, 310, 100));
        assert_eq!((s.available_spare_threshold, s.percentage_used), (10, 3));
        assert_eq!((s.data_units_read_lo, s.data_units_read_hi), (7, 1));
        assert_eq!((s.power_on_hours_lo, s.number_of_error_log_entries_lo), (4242, 9));
        assert_eq!(std::mem::size_of::<NvmeAdminCmd>(), 72);
        assert_eq!(NVME_IOCTL_ADMIN_CMD, 0xC048_4E41);
        let json = serde_json::to_value(GuestDiskSmart::Nvme(s)).unwrap();
        assert_eq!(json["type"], "nvme");
        assert!(nvme_smart("/nonexistent/nvme0n1").is_none());
    }

    #[test]
    fn linux_fsinfo_lists_block_mounts() {
        let mounts = block_mounts().unwrap();
        let info = fsinfo().unwrap();
        assert_eq!(info.len(), mounts.len());
        for fs in &info {
            assert!(fs.mountpoint.starts_with('/') && !fs.name.is_empty() && !fs.r#type.is_empty());
            if let (Some(used), Some(total)) = (fs.used_bytes, fs.total_bytes) {
                assert!(used <= total, "{fs:?}");
            }
        }
        if let Some(root) = info.iter().find(|f| f.mountpoint == "/") {
            assert!(root.total_bytes.unwrap() > 0);
        }
    }

    #[test]
    fn linux_disks_skip_empty_devices() {
        let disks = disks().unwrap();
        for disk in &disks {
            assert!(disk.name.starts_with("/dev/"), "{disk:?}");
            assert!(disk.dependencies.is_some() || disk.partition);
            let base = disk.name.trim_start_matches("/dev/");
            if !disk.partition {
                let size = fs::read_to_string(format!("/sys/block/{base}/size")).unwrap();
                assert_ne!(size.trim(), "0");
            }
        }
    }
}
