//! Logical processors and memory blocks under /sys/devices/system, read
//! and (for `LinuxSystem`) switched on and off.

use std::fs;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use qga_types::runtime::CommandError;
use qga_types::{GuestLogicalProcessor, GuestMemoryBlock, GuestMemoryBlockInfo, GuestMemoryBlockResponse};
use qga_types::{GuestMemoryBlockResponseType, GuestSetVcpusArgs};

use super::util::errno_error;

/// Where the kernel shows CPUs and memory blocks; a field so tests can
/// point it at a fake tree.
#[derive(Clone, Debug)]
pub struct SysDevices {
    pub cpu: PathBuf,
    pub memory: PathBuf,
}

impl Default for SysDevices {
    fn default() -> Self {
        SysDevices {
            cpu: PathBuf::from("/sys/devices/system/cpu"),
            memory: PathBuf::from("/sys/devices/system/memory"),
        }
    }
}

/// `cpuN` or `memoryN` with only digits after the prefix.
fn numbered(name: &str, prefix: &str) -> Option<u64> {
    let digits = name.strip_prefix(prefix)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// First byte of an `online` file, `None` when the file is absent.
fn read_online_flag(path: &Path) -> io::Result<Option<u8>> {
    match fs::File::open(path) {
        Ok(mut file) => {
            let mut byte = [0u8; 1];
            match file.read(&mut byte)? {
                0 => Err(io::Error::new(io::ErrorKind::UnexpectedEof, "unexpected EOF")),
                _ => Ok(Some(byte[0])),
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

impl SysDevices {
    /// CPUs in directory order, as qemu-ga lists them. A CPU without an
    /// `online` file (usually cpu0) is online and can't be offlined.
    pub fn vcpus(&self) -> Result<Vec<GuestLogicalProcessor>, CommandError> {
        let dir =
            fs::read_dir(&self.cpu).map_err(|e| errno_error(format_args!("open(\"{}\")", self.cpu.display()), &e))?;
        let mut cpus = Vec::new();
        for entry in dir.flatten() {
            let Some(id) = entry.file_name().to_str().and_then(|n| numbered(n, "cpu")) else {
                continue;
            };
            let online_path = entry.path().join("online");
            let flag = read_online_flag(&online_path)
                .map_err(|e| errno_error(format_args!("pread(\"{}\")", online_path.display()), &e))?;
            cpus.push(GuestLogicalProcessor {
                logical_id: id as i64,
                online: flag.is_none_or(|b| b != b'0'),
                can_offline: Some(flag.is_some()),
            });
        }
        Ok(cpus)
    }

    /// Brings CPUs on or offline; returns how many requests were handled
    /// before the first failure (an error only when the first one fails).
    pub fn set_vcpus(&self, args: &GuestSetVcpusArgs) -> Result<i64, CommandError> {
        let mut processed = 0;
        for vcpu in &args.vcpus {
            if let Err(e) = self.set_vcpu(vcpu) {
                return if processed == 0 { Err(e) } else { Ok(processed) };
            }
            processed += 1;
        }
        Ok(processed)
    }

    fn set_vcpu(&self, vcpu: &GuestLogicalProcessor) -> Result<(), CommandError> {
        let dir = self.cpu.join(format!("cpu{}", vcpu.logical_id));
        if !dir.is_dir() {
            return Err(errno_error(
                format_args!("open(\"{}/\")", dir.display()),
                &io::Error::from_raw_os_error(libc::ENOENT),
            ));
        }
        let path = dir.join("online");
        let mut file = match fs::OpenOptions::new().read(true).write(true).open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return if vcpu.online {
                    Ok(())
                } else {
                    Err(CommandError::generic(format!(
                        "logical processor #{} can't be offlined",
                        vcpu.logical_id
                    )))
                };
            }
            Err(e) => return Err(errno_error(format_args!("open(\"{}\")", path.display()), &e)),
        };
        let mut byte = [0u8; 1];
        let read = file
            .read(&mut byte)
            .map_err(|e| errno_error(format_args!("pread(\"{}\")", path.display()), &e))?;
        if read == 0 {
            return Err(CommandError::generic(format!(
                "pread(\"{}\"): unexpected EOF",
                path.display()
            )));
        }
        if (byte[0] != b'0') != vcpu.online {
            let wanted = if vcpu.online { b"1" } else { b"0" };
            file.seek(SeekFrom::Start(0))
                .and_then(|_| file.write_all(wanted))
                .map_err(|e| errno_error(format_args!("pwrite(\"{}\")", path.display()), &e))?;
        }
        Ok(())
    }

    pub fn memory_blocks(&self) -> Result<Vec<GuestMemoryBlock>, CommandError> {
        let dir = match fs::read_dir(&self.memory) {
            Ok(dir) => dir,
            // No memory hotplug in this kernel: nothing to list.
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(errno_error(
                    format_args!("Can't open directory\"{}/\"", self.memory.display()),
                    &e,
                ))
            }
        };
        let mut blocks = Vec::new();
        for entry in dir.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if !name.starts_with("memory") || !entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let index = super::util::leading_number(&name[6..]).unwrap_or(0);
            blocks.push(self.memory_block(&entry.path(), index)?);
        }
        if blocks.is_empty() {
            return Err(CommandError::generic("guest reported zero memory blocks!"));
        }
        Ok(blocks)
    }

    fn memory_block(&self, dir: &Path, phys_index: u64) -> Result<GuestMemoryBlock, CommandError> {
        let state_path = dir.join("state");
        let (online, can_offline) = match fs::read_to_string(&state_path) {
            Ok(state) => {
                let removable = match fs::read_to_string(dir.join("removable")) {
                    Ok(r) => !r.starts_with('0'),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => false,
                    Err(e) => return Err(errno_error(format_args!("open(\"{}/removable\")", dir.display()), &e)),
                };
                (state.starts_with("online"), removable)
            }
            // Old kernels have no state file: always online.
            Err(e) if e.kind() == io::ErrorKind::NotFound => (true, false),
            Err(e) => return Err(errno_error(format_args!("open(\"{}\")", state_path.display()), &e)),
        };
        Ok(GuestMemoryBlock {
            phys_index,
            online,
            can_offline: Some(can_offline),
        })
    }

    pub fn memory_block_info(&self) -> Result<GuestMemoryBlockInfo, CommandError> {
        let path = self.memory.join("block_size_bytes");
        let text =
            fs::read_to_string(&path).map_err(|e| errno_error(format_args!("open(\"{}\")", path.display()), &e))?;
        let hex = text.trim().trim_start_matches("0x");
        let size = u64::from_str_radix(hex, 16)
            .map_err(|_| CommandError::generic(format!("unexpected memory block size '{}'", text.trim())))?;
        Ok(GuestMemoryBlockInfo { size })
    }

    /// One response per requested block, in request order.
    pub fn set_memory_blocks(&self, blocks: &[GuestMemoryBlock]) -> Vec<GuestMemoryBlockResponse> {
        blocks.iter().map(|b| self.set_memory_block(b)).collect()
    }

    fn set_memory_block(&self, block: &GuestMemoryBlock) -> GuestMemoryBlockResponse {
        let failed = |response, e: &io::Error| GuestMemoryBlockResponse {
            phys_index: block.phys_index,
            response,
            error_code: Some(e.raw_os_error().unwrap_or(libc::EIO) as i64),
        };
        if !self.memory.is_dir() {
            let e = io::Error::from_raw_os_error(libc::ENOENT);
            return failed(GuestMemoryBlockResponseType::OperationNotSupported, &e);
        }
        let dir = self.memory.join(format!("memory{}", block.phys_index));
        if let Err(e) = fs::metadata(&dir) {
            let kind = if e.kind() == io::ErrorKind::NotFound {
                GuestMemoryBlockResponseType::NotFound
            } else {
                GuestMemoryBlockResponseType::OperationFailed
            };
            return failed(kind, &e);
        }
        let state_path = dir.join("state");
        let state = match fs::read_to_string(&state_path) {
            Ok(state) => state,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let kind = if block.online {
                    GuestMemoryBlockResponseType::Success
                } else {
                    GuestMemoryBlockResponseType::OperationNotSupported
                };
                return failed(kind, &e);
            }
            Err(e) => return failed(GuestMemoryBlockResponseType::OperationFailed, &e),
        };
        if state.starts_with("online") != block.online {
            let wanted = if block.online { "online" } else { "offline" };
            if let Err(e) = fs::write(&state_path, wanted) {
                return failed(GuestMemoryBlockResponseType::OperationFailed, &e);
            }
        }
        GuestMemoryBlockResponse {
            phys_index: block.phys_index,
            response: GuestMemoryBlockResponseType::Success,
            error_code: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linux_vcpus_match_sysfs() {
        let cpus = SysDevices::default().vcpus().unwrap();
        let online = fs::read_to_string("/sys/devices/system/cpu/online").unwrap();
        assert!(!cpus.is_empty());
        assert!(cpus.iter().any(|c| c.logical_id == 0));
        assert!(cpus.iter().all(|c| c.can_offline.is_some()));
        assert!(online.starts_with('0'), "{online}");
    }

    #[test]
    fn linux_vcpus_and_memory_from_a_fake_tree() {
        let tmp = tempfile::tempdir().unwrap();
        let sys = SysDevices {
            cpu: tmp.path().join("cpu"),
            memory: tmp.path().join("memory"),
        };
        fs::create_dir_all(sys.cpu.join("cpu0")).unwrap();
        fs::create_dir_all(sys.cpu.join("cpu1")).unwrap();
        fs::create_dir_all(sys.cpu.join("cpufreq")).unwrap();
        fs::write(sys.cpu.join("cpu1/online"), "0\n").unwrap();
        let mut cpus = sys.vcpus().unwrap();
        cpus.sort_by_key(|c| c.logical_id);
        assert_eq!(cpus.len(), 2);
        assert!(cpus[0].online && cpus[0].can_offline == Some(false));
        assert!(!cpus[1].online && cpus[1].can_offline == Some(true));

        let request = |id, online| GuestLogicalProcessor {
            logical_id: id,
            online,
            can_offline: None,
        };
        let args = GuestSetVcpusArgs {
            vcpus: vec![request(1, true), request(0, false)],
        };
        assert_eq!(sys.set_vcpus(&args).unwrap(), 1);
        assert_eq!(
            fs::read_to_string(sys.cpu.join("cpu1/online")).unwrap().as_bytes()[0],
            b'1'
        );
        let err = sys
            .set_vcpus(&GuestSetVcpusArgs {
                vcpus: vec![request(0, false)],
            })
            .unwrap_err();
        assert_eq!(err.desc, "logical processor #0 can't be offlined");

        assert_eq!(sys.memory_blocks().unwrap(), vec![]);
        fs::create_dir_all(sys.memory.join("memory3")).unwrap();
        fs::write(sys.memory.join("memory3/state"), "online\n").unwrap();
        fs::write(sys.memory.join("memory3/removable"), "1\n").unwrap();
        fs::write(sys.memory.join("block_size_bytes"), "8000000\n").unwrap();
        let blocks = sys.memory_blocks().unwrap();
        assert_eq!(blocks.len(), 1);
        assert_eq!(
            (blocks[0].phys_index, blocks[0].online, blocks[0].can_offline),
            (3, true, Some(true))
        );
        assert_eq!(sys.memory_block_info().unwrap().size, 0x8000000);

        let set = |index, online| GuestMemoryBlock {
            phys_index: index,
            online,
            can_offline: None,
        };
        let replies = sys.set_memory_blocks(&[set(3, false), set(9, true)]);
        assert_eq!(replies[0].response, GuestMemoryBlockResponseType::Success);
        assert_eq!(fs::read_to_string(sys.memory.join("memory3/state")).unwrap(), "offline");
        assert_eq!(replies[1].response, GuestMemoryBlockResponseType::NotFound);
        assert_eq!(replies[1].error_code, Some(libc::ENOENT as i64));
    }

    #[test]
    fn linux_memory_blocks_answer_like_qemu_ga_here() {
        let sys = SysDevices::default();
        if !sys.memory.is_dir() {
            eprintln!("skipped: no /sys/devices/system/memory here");
            return;
        }
        let blocks = sys.memory_blocks().unwrap();
        assert!(!blocks.is_empty());
        assert!(blocks.iter().all(|b| b.can_offline.is_some()));
        let size = sys.memory_block_info().unwrap().size;
        assert!(size.is_power_of_two(), "{size}");
    }
}
