//! Everything that reads or changes the Linux system.
