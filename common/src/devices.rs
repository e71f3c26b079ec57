//! Device access: the allowlist key and device events.

use super::*;

/// Device types as the cgroup_device hook reports them (`BPF_DEVCG_DEV_*`).
pub mod device_type {
    pub const BLOCK: u32 = 1;
    pub const CHAR: u32 = 2;
}

/// Device accesses as the cgroup_device hook reports them (`BPF_DEVCG_ACC_*`), also the
/// bits of a `DEVICE_RULES` value.
pub mod device_access {
    pub const MKNOD: u32 = 1;
    pub const READ: u32 = 2;
    pub const WRITE: u32 = 4;
}

/// A major or minor number of [`DeviceKey`] that stands for every number (`*`).
pub const DEVICE_ANY: u32 = u32::MAX;

/// Key of `DEVICE_RULES`: a profile's rule for one device, or for every major or minor
/// number ([`DEVICE_ANY`]). The kernel tries the exact device and the three wildcard
/// forms; the accesses of every entry found are allowed.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeviceKey {
    pub profile: u32,
    /// [`device_type`].
    pub dev_type: u32,
    pub major: u32,
    pub minor: u32,
}

/// A device access outside the profile's allowlist.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeviceEvent {
    pub header: EventHeader,
    /// [`device_type`].
    pub dev_type: u32,
    pub major: u32,
    pub minor: u32,
    /// [`device_access`] bits requested.
    pub access: u32,
    /// [`device_access`] bits the profile allows for this device.
    pub allowed: u32,
    /// [`verdict`]: DENY (refused with EPERM) or AUDIT (would have been).
    pub verdict: u8,
    pub _pad: [u8; 3],
}
