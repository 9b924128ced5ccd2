//! Small helpers shared by the Linux command modules: qemu-ga's error
//! texts and tolerant readers for /proc and /sys.

use std::fmt::Display;
use std::io;
use std::path::Path;

use qga_types::runtime::CommandError;

/// The C library's text for an I/O error, without Rust's "(os error N)".
pub fn strerror(err: &io::Error) -> String {
    let Some(code) = err.raw_os_error() else {
        return err.to_string();
    };
    let mut buf = [0 as libc::c_char; 256];
    // The XSI strerror_r fills the buffer; the C library's own wording
    // is what qemu-ga prints.
    if unsafe { libc::strerror_r(code, buf.as_mut_ptr(), buf.len()) } != 0 {
        return format!("Unknown error {code}");
    }
    unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

/// qemu-ga's `error_setg_errno` form: "CONTEXT: STRERROR".
pub fn errno_error(context: impl Display, err: &io::Error) -> CommandError {
    CommandError::generic(format!("{context}: {}", strerror(err)))
}

/// qemu-ga's QERR_QGA_COMMAND_FAILED.
pub fn command_failed(what: impl Display) -> CommandError {
    CommandError::generic(format!("Guest agent command failed, error was '{what}'"))
}

/// Reads a text file, answering qemu-ga's `open("PATH"): ERROR` on failure.
pub fn read_required(path: impl AsRef<Path>) -> Result<String, CommandError> {
    let path = path.as_ref();
    std::fs::read_to_string(path).map_err(|e| errno_error(format_args!("open(\"{}\")", path.display()), &e))
}

/// Leading decimal digits of `s` as a number (C's `atoi`-like tolerance
/// for trailing text), or `None` when `s` does not start with a digit.
pub fn leading_number(s: &str) -> Option<u64> {
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    s[..end].parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linux_strerror_is_the_c_text() {
        let err = io::Error::from_raw_os_error(libc::ENOENT);
        assert_eq!(strerror(&err), "No such file or directory");
        assert_eq!(
            strerror(&io::Error::from_raw_os_error(libc::EBADF)),
            "Bad file descriptor"
        );
        assert_eq!(
            errno_error("open(\"/x\")", &err).desc,
            "open(\"/x\"): No such file or directory"
        );
    }

    #[test]
    fn linux_leading_number() {
        assert_eq!(leading_number("12abc"), Some(12));
        assert_eq!(leading_number("x1"), None);
        assert_eq!(leading_number(""), None);
    }
}
