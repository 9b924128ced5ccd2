//! CPU statistics from /proc/stat and disk statistics from
//! /proc/diskstats, with the members each kernel version provides.

use qga_types::runtime::CommandError;
use qga_types::{GuestCpuStats, GuestDiskStats, GuestDiskStatsInfo, GuestLinuxCpuStats};

use super::util::read_required;

fn clock_ticks_per_second() -> u64 {
    match unsafe { libc::sysconf(libc::_SC_CLK_TCK) } {
        n if n > 0 => n as u64,
        _ => 100,
    }
}

pub fn cpustats() -> Result<Vec<GuestCpuStats>, CommandError> {
    parse_cpustats(&read_required("/proc/stat")?, clock_ticks_per_second())
}

/// Per-CPU lines (`cpuN ...`, not the `cpu` total) converted from clock
/// ticks to milliseconds. Optional members appear as the kernel has them.
pub fn parse_cpustats(text: &str, ticks_per_second: u64) -> Result<Vec<GuestCpuStats>, CommandError> {
    let mut list = Vec::new();
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        let Some(name) = fields.next() else { continue };
        let Some(id) = name.strip_prefix("cpu").filter(|rest| !rest.is_empty()) else {
            continue;
        };
        let values: Vec<u64> = fields.map_while(|f| f.parse().ok()).take(10).collect();
        if values.len() < 4 {
            // qemu-ga stops at a line it can't read and answers what it has.
            break;
        }
        let ms = |i: usize| values.get(i).map(|v| v.saturating_mul(1000) / ticks_per_second);
        list.push(GuestCpuStats::Linux(GuestLinuxCpuStats {
            cpu: super::util::leading_number(id).unwrap_or(0) as i64,
            user: ms(0).unwrap_or(0),
            nice: ms(1).unwrap_or(0),
            system: ms(2).unwrap_or(0),
            idle: ms(3).unwrap_or(0),
            iowait: ms(4),
            irq: ms(5),
            softirq: ms(6),
            steal: ms(7),
            guest: ms(8),
            guestnice: ms(9),
        }));
    }
    Ok(list)
}

pub fn diskstats() -> Result<Vec<GuestDiskStatsInfo>, CommandError> {
    Ok(parse_diskstats(&read_required("/proc/diskstats")?))
}

/// /proc/diskstats lines: 4 counters on old kernels' partitions, 11 on
/// older kernels, 15 with discards (4.18), 17 with flushes (5.5).
pub fn parse_diskstats(text: &str) -> Vec<GuestDiskStatsInfo> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 7 {
                return None;
            }
            let major = f[0].parse().ok()?;
            let minor = f[1].parse().ok()?;
            let n: Vec<u64> = f[3..].iter().map_while(|v| v.parse().ok()).take(17).collect();
            let get = |i: usize| n.get(i).copied();
            let mut stats = GuestDiskStats {
                read_sectors: None,
                read_ios: None,
                read_merges: None,
                write_sectors: None,
                write_ios: None,
                write_merges: None,
                discard_sectors: None,
                discard_ios: None,
                discard_merges: None,
                flush_ios: None,
                read_ticks: None,
                write_ticks: None,
                discard_ticks: None,
                flush_ticks: None,
                ios_pgr: None,
                total_ticks: None,
                weight_ticks: None,
            };
            match n.len() {
                4 => {
                    stats.read_ios = get(0);
                    stats.read_sectors = get(1);
                    stats.write_ios = get(2);
                    stats.write_sectors = get(3);
                }
                len if len >= 11 => {
                    stats.read_ios = get(0);
                    stats.read_merges = get(1);
                    stats.read_sectors = get(2);
                    stats.read_ticks = get(3);
                    stats.write_ios = get(4);
                    stats.write_merges = get(5);
                    stats.write_sectors = get(6);
                    stats.write_ticks = get(7);
                    stats.ios_pgr = get(8);
                    stats.total_ticks = get(9);
                    stats.weight_ticks = get(10);
                    if len >= 15 {
                        stats.discard_ios = get(11);
                        stats.discard_merges = get(12);
                        stats.discard_sectors = get(13);
                        stats.discard_ticks = get(14);
                    }
                    if len >= 17 {
                        stats.flush_ios = get(15);
                        stats.flush_ticks = get(16);
                    }
                }
                _ => {}
            }
            Some(GuestDiskStatsInfo {
                name: f[2].to_string(),
                major,
                minor,
                stats,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linux_cpustats_one_per_cpu() {
        let stats = cpustats().unwrap();
        let cpus = std::fs::read_to_string("/proc/stat")
            .unwrap()
            .lines()
            .filter(|l| l.starts_with("cpu") && !l.starts_with("cpu "))
            .count();
        assert_eq!(stats.len(), cpus);
        let GuestCpuStats::Linux(first) = &stats[0] else {
            panic!("not linux stats")
        };
        assert!(first.user + first.system + first.idle > 0);
        assert!(first.guestnice.is_some(), "modern kernels have all ten columns");
    }

    #[test]
    fn linux_cpustats_parsing_and_units() {
        let text = "cpu  10 0 10 10\ncpu0 100 2 30 40 5\nintr 1 2\n";
        let stats = parse_cpustats(text, 100).unwrap();
        assert_eq!(stats.len(), 1);
        let GuestCpuStats::Linux(s) = &stats[0] else { panic!() };
        assert_eq!((s.cpu, s.user, s.nice, s.system, s.idle), (0, 1000, 20, 300, 400));
        assert_eq!((s.iowait, s.irq), (Some(50), None));
        assert_eq!(
            parse_cpustats("cpu0 1 2 3 4\ncpu3 1 2\ncpu4 1 2 3 4\n", 100)
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn linux_diskstats_field_generations() {
        let text = "   8       0 sda 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17\n   8       1 sda1 1 2 3 4\n 7 0 loop0 1 2 3 4 5 6 7 8 9 10 11\n";
        let list = parse_diskstats(text);
        assert_eq!(list.len(), 3);
        let sda = &list[0].stats;
        assert_eq!((list[0].major, list[0].minor, list[0].name.as_str()), (8, 0, "sda"));
        assert_eq!(
            (sda.read_ios, sda.read_merges, sda.read_sectors),
            (Some(1), Some(2), Some(3))
        );
        assert_eq!(
            (sda.flush_ios, sda.flush_ticks, sda.weight_ticks),
            (Some(16), Some(17), Some(11))
        );
        let part = &list[1].stats;
        assert_eq!(
            (part.read_sectors, part.write_ios, part.read_merges),
            (Some(2), Some(3), None)
        );
        assert_eq!((list[2].stats.total_ticks, list[2].stats.discard_ios), (Some(10), None));
    }

    #[test]
    fn linux_diskstats_live() {
        let list = diskstats().unwrap();
        let lines = std::fs::read_to_string("/proc/diskstats").unwrap().lines().count();
        assert_eq!(list.len(), lines);
    }
}
