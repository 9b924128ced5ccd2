//! Network interfaces (getifaddrs plus /proc/net/dev) and routes
//! (/proc/net/route and /proc/net/ipv6_route).

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr};

use nix::ifaddrs::getifaddrs;
use qga_types::runtime::CommandError;
use qga_types::GuestNetworkRoute;
use qga_types::{GuestIpAddress, GuestIpAddressType, GuestNetworkInterface, GuestNetworkInterfaceStat};

use super::util::{errno_error, read_required};

/// qemu-ga asks for the hardware address only when the interface flags
/// intersect this value (the SIOCGIFHWADDR request number, a quirk of
/// its check); matched so the same interfaces carry the member.
const HWADDR_FLAG_MASK: libc::c_int = 0x8927;

pub fn interfaces() -> Result<Vec<GuestNetworkInterface>, CommandError> {
    let addrs = getifaddrs().map_err(|e| errno_error("getifaddrs failed", &io::Error::from(e)))?;
    let dev = std::fs::read_to_string("/proc/net/dev").unwrap_or_default();
    let mut list: Vec<GuestNetworkInterface> = Vec::new();
    for ifa in addrs {
        let index = match list.iter().position(|i| i.name == ifa.interface_name) {
            Some(index) => index,
            None => {
                list.push(GuestNetworkInterface {
                    name: ifa.interface_name.clone(),
                    hardware_address: None,
                    ip_addresses: None,
                    statistics: None,
                });
                list.len() - 1
            }
        };
        let info = &mut list[index];
        if info.hardware_address.is_none() && ifa.flags.bits() & HWADDR_FLAG_MASK != 0 {
            info.hardware_address = Some(format_mac(&hardware_address(&ifa.interface_name)?));
        }
        let Some(address) = ifa_ip_address(&ifa) else {
            continue;
        };
        info.ip_addresses.get_or_insert_with(Vec::new).push(address);
        if info.statistics.is_none() {
            info.statistics = interface_stats(&dev, &info.name);
        }
    }
    Ok(list)
}

fn ifa_ip_address(ifa: &nix::ifaddrs::InterfaceAddress) -> Option<GuestIpAddress> {
    let addr = ifa.address.as_ref()?;
    let prefix_of = |bits: u32| i64::from(bits);
    if let Some(v4) = addr.as_sockaddr_in() {
        let prefix = ifa
            .netmask
            .as_ref()
            .and_then(|m| m.as_sockaddr_in())
            .map(|m| prefix_of(m.ip().to_bits().count_ones()))
            .unwrap_or(0);
        return Some(GuestIpAddress {
            ip_address: v4.ip().to_string(),
            ip_address_type: GuestIpAddressType::Ipv4,
            prefix,
        });
    }
    if let Some(v6) = addr.as_sockaddr_in6() {
        let prefix = ifa
            .netmask
            .as_ref()
            .and_then(|m| m.as_sockaddr_in6())
            .map(|m| prefix_of(m.ip().to_bits().count_ones()))
            .unwrap_or(0);
        return Some(GuestIpAddress {
            ip_address: v6.ip().to_string(),
            ip_address_type: GuestIpAddressType::Ipv6,
            prefix,
        });
    }
    None
}

/// SIOCGIFHWADDR, as qemu-ga does.
fn hardware_address(name: &str) -> Result<[u8; 6], CommandError> {
    let sock = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if sock < 0 {
        return Err(errno_error("failed to create socket", &io::Error::last_os_error()));
    }
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(name.bytes().take(libc::IFNAMSIZ - 1)) {
        *dst = src as libc::c_char;
    }
    let rc = unsafe { libc::ioctl(sock, libc::SIOCGIFHWADDR, &mut req) };
    let err = io::Error::last_os_error();
    unsafe { libc::close(sock) };
    if rc < 0 {
        return Err(errno_error(format_args!("failed to get MAC address of {name}"), &err));
    }
    let data = unsafe { req.ifr_ifru.ifru_hwaddr.sa_data };
    let mut mac = [0u8; 6];
    for (dst, src) in mac.iter_mut().zip(data.iter()) {
        *dst = *src as u8;
    }
    Ok(mac)
}

fn format_mac(mac: &[u8; 6]) -> String {
    mac.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

/// The counters of `name` from /proc/net/dev text.
pub fn interface_stats(dev: &str, name: &str) -> Option<GuestNetworkInterfaceStat> {
    dev.lines().find_map(|line| {
        let (ifname, counters) = line.split_once(':')?;
        if ifname.trim() != name {
            return None;
        }
        let n: Vec<u64> = counters
            .split_whitespace()
            .map(|f| f.parse().ok())
            .collect::<Option<_>>()?;
        if n.len() < 16 {
            return None;
        }
        Some(GuestNetworkInterfaceStat {
            rx_bytes: n[0],
            rx_packets: n[1],
            rx_errs: n[2],
            rx_dropped: n[3],
            tx_bytes: n[8],
            tx_packets: n[9],
            tx_errs: n[10],
            tx_dropped: n[11],
        })
    })
}

pub fn routes() -> Result<Vec<GuestNetworkRoute>, CommandError> {
    let mut list = Vec::new();
    // Either table may be absent (no IPv6); the other still counts.
    let v4 = read_required("/proc/net/route");
    let v6 = read_required("/proc/net/ipv6_route");
    if let (Err(e), Err(_)) = (&v4, &v6) {
        return Err(e.clone());
    }
    if let Ok(text) = v4 {
        list.extend(text.lines().skip(1).filter_map(parse_ipv4_route));
    }
    if let Ok(text) = v6 {
        list.extend(text.lines().filter_map(parse_ipv6_route));
    }
    Ok(list)
}

fn hex_u32(s: &str) -> Option<u32> {
    u32::from_str_radix(s, 16).ok()
}

/// The kernel prints IPv4 addresses as the hex of the in-memory word.
fn ipv4_from_hex(s: &str) -> Option<String> {
    Some(Ipv4Addr::from(hex_u32(s)?.to_ne_bytes()).to_string())
}

fn ipv6_from_hex(s: &str) -> Option<String> {
    if s.len() != 32 {
        return None;
    }
    Some(Ipv6Addr::from(u128::from_str_radix(s, 16).ok()?).to_string())
}

/// One line of /proc/net/route: Iface Destination Gateway Flags RefCnt
/// Use Metric Mask MTU Window IRTT.
pub fn parse_ipv4_route(line: &str) -> Option<GuestNetworkRoute> {
    let f: Vec<&str> = line.split_whitespace().collect();
    if f.len() < 11 {
        return None;
    }
    let int = |s: &str| s.parse::<i32>().ok().map(i64::from);
    Some(GuestNetworkRoute {
        iface: f[0].to_string(),
        destination: ipv4_from_hex(f[1])?,
        gateway: Some(ipv4_from_hex(f[2])?),
        flags: Some(u64::from(hex_u32(f[3])?)),
        refcnt: Some(int(f[4])?),
        r#use: Some(int(f[5])?),
        metric: int(f[6])?,
        mask: Some(ipv4_from_hex(f[7])?),
        mtu: Some(int(f[8])?),
        window: Some(int(f[9])?),
        irtt: Some(int(f[10])?),
        desprefixlen: None,
        source: None,
        srcprefixlen: None,
        nexthop: None,
        version: 4,
    })
}

/// One line of /proc/net/ipv6_route: destination, its prefix length,
/// source, its prefix length, next hop, metric, refcount, use, flags and
/// device, numbers in hex.
pub fn parse_ipv6_route(line: &str) -> Option<GuestNetworkRoute> {
    let f: Vec<&str> = line.split_whitespace().collect();
    if f.len() < 10 {
        return None;
    }
    // 32-bit fields as the C int qemu-ga reads them into.
    let word = |s: &str| hex_u32(s).map(|v| i64::from(v as i32));
    Some(GuestNetworkRoute {
        iface: f[9].to_string(),
        destination: ipv6_from_hex(f[0])?,
        desprefixlen: Some(word(f[1])?.to_string()),
        source: Some(ipv6_from_hex(f[2])?),
        srcprefixlen: Some(word(f[3])?.to_string()),
        nexthop: Some(ipv6_from_hex(f[4])?),
        metric: word(f[5])?,
        refcnt: Some(word(f[6])?),
        r#use: Some(word(f[7])?),
        flags: Some(u64::from(hex_u32(f[8])?)),
        gateway: None,
        mask: None,
        irtt: None,
        window: None,
        mtu: None,
        version: 6,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linux_interfaces_include_loopback() {
        let list = interfaces().unwrap();
        let lo = list.iter().find(|i| i.name == "lo").expect("lo listed");
        assert_eq!(lo.hardware_address.as_deref(), Some("00:00:00:00:00:00"));
        let addrs = lo.ip_addresses.as_ref().expect("lo has addresses");
        assert!(addrs
            .iter()
            .any(|a| a.ip_address == "127.0.0.1" && a.prefix == 8 && a.ip_address_type == GuestIpAddressType::Ipv4));
        assert!(lo.statistics.is_some());
        let up = getifaddrs()
            .unwrap()
            .any(|a| a.interface_name == "lo" && a.flags.contains(nix::net::if_::InterfaceFlags::IFF_UP));
        assert!(up);
        // Statistics come only with an address, as in qemu-ga.
        assert!(list.iter().all(|i| i.statistics.is_none() || i.ip_addresses.is_some()));
    }

    #[test]
    fn linux_proc_net_dev_parsing() {
        let dev = "Inter-|   Receive                                                |  Transmit\n face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    lo:    6386      58    1    2    0     0          0         0     6387      59    3    4    0     0       0          0\n";
        let s = interface_stats(dev, "lo").unwrap();
        assert_eq!((s.rx_bytes, s.rx_packets, s.rx_errs, s.rx_dropped), (6386, 58, 1, 2));
        assert_eq!((s.tx_bytes, s.tx_packets, s.tx_errs, s.tx_dropped), (6387, 59, 3, 4));
        assert!(interface_stats(dev, "eth0").is_none());
    }

    #[test]
    fn linux_route_lines() {
        let r = parse_ipv4_route("eth0\t00000000\t0102000A\t0003\t0\t0\t100\t00000000\t0\t0\t0").unwrap();
        assert_eq!(r.destination, "0.0.0.0");
        assert_eq!(r.gateway.as_deref(), Some("10.0.2.1"));
        assert_eq!((r.metric, r.flags, r.version), (100, Some(3), 4));
        assert!(parse_ipv4_route("Iface\tDestination\tGateway").is_none());

        let line = "fe800000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0";
        let r = parse_ipv6_route(line).unwrap();
        assert_eq!(r.destination, "fe80::");
        assert_eq!(r.desprefixlen.as_deref(), Some("64"));
        assert_eq!(r.nexthop.as_deref(), Some("::"));
        assert_eq!((r.metric, r.version, r.iface.as_str()), (256, 6, "eth0"));
        let unreachable = "00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo";
        assert_eq!(parse_ipv6_route(unreachable).unwrap().metric, -1);
    }

    #[test]
    fn linux_routes_read_the_live_tables() {
        let routes = routes().unwrap();
        let v4_lines = std::fs::read_to_string("/proc/net/route")
            .map(|t| t.lines().count() - 1)
            .unwrap_or(0);
        assert_eq!(routes.iter().filter(|r| r.version == 4).count(), v4_lines);
    }
}
