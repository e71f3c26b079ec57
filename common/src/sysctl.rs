//! Sysctl writes: the event.

use super::*;

/// Bytes of a sysctl name and value kept in a [`SysctlEvent`].
pub const SYSCTL_TEXT_BYTES: usize = 64;

/// A write under /proc/sys by a monitored process.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SysctlEvent {
    pub header: EventHeader,
    /// [`verdict`]: DENY (refused), AUDIT (would have been), ALLOW (reported).
    pub verdict: u8,
    pub _pad: [u8; 3],
    /// Bytes of `name` and `value` (without NUL; the value may be cut).
    pub name_len: u32,
    pub value_len: u32,
    pub _pad2: u32,
    /// The sysctl, e.g. `kernel/core_pattern`.
    pub name: [u8; SYSCTL_TEXT_BYTES],
    /// The value being written.
    pub value: [u8; SYSCTL_TEXT_BYTES],
}
