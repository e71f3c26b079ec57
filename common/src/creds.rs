//! Credentials: the kernel's field offsets (from BTF), the profile's credential rule,
//! per-process state and credential events.

use super::*;

/// Byte offsets of the credential fields in this kernel, found by the agent in its BTF
/// (aya's eBPF side has no CO-RE relocations). Entry 0 of `CRED_OFFSETS`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CredOffsets {
    /// 1 once the agent has written the offsets; the kernel reads nothing before.
    pub valid: u32,
    /// `task_struct.cred` (a pointer to the subjective credentials).
    pub task_cred: u32,
    /// `task_struct.atomic_flags` (bit [`PFA_NO_NEW_PRIVS`]).
    pub task_atomic_flags: u32,
    /// `cred.euid`, `cred.egid` (each a 32-bit `kuid_t`/`kgid_t`).
    pub cred_euid: u32,
    pub cred_egid: u32,
    /// `cred.cap_effective` (a 64-bit `kernel_cap_t`).
    pub cred_cap_effective: u32,
    /// `task_struct.files`, `files_struct.fdt`, `fdtable.fd`, `file.f_inode`: from a
    /// descriptor to its inode (which file an executable handle or a reopen names).
    pub task_files: u32,
    pub files_fdt: u32,
    pub fdtable_fd: u32,
    pub file_inode: u32,
    /// 1 when the socket offsets below were found: from a descriptor to the address a
    /// socket is bound to (`listen()` under `binds: loopback`).
    pub sock_valid: u32,
    /// `inode.i_mode` (16 bits: `S_IFSOCK` tells a socket), `file.private_data` (the
    /// `struct socket`), `socket.sk`, and in `struct sock` (its `__sk_common` first):
    /// `skc_family`, `skc_num` (the local port, host order), `skc_rcv_saddr`,
    /// `skc_v6_rcv_saddr`.
    pub inode_mode: u32,
    pub file_private_data: u32,
    pub socket_sk: u32,
    pub sk_family: u32,
    pub sk_num: u32,
    pub sk_rcv_saddr: u32,
    pub sk_v6_rcv_saddr: u32,
    /// 1 when the unix socket offsets below were found: from a connected unix socket
    /// to the socket file its peer listens on (runtime sockets by identity).
    pub unix_valid: u32,
    /// `unix_sock.peer`, `unix_sock.path` (its `dentry` pointer: `path.dentry`),
    /// `dentry.d_inode`, `inode.i_ino`, `inode.i_sb`, `super_block.s_dev`.
    pub unix_peer: u32,
    pub unix_path_dentry: u32,
    pub dentry_inode: u32,
    pub inode_ino: u32,
    pub inode_sb: u32,
    pub sb_dev: u32,
    /// 1 when `file.f_path.dentry`, `dentry.d_name.name`, `dentry.d_sb` and
    /// `super_block.s_magic` were found: what file an open reached (its file system
    /// and name), whatever path the caller wrote.
    pub name_valid: u32,
    pub file_dentry: u32,
    pub dentry_name: u32,
    pub dentry_sb: u32,
    pub sb_magic: u32,
    /// 1 when `file.f_mode` and `inode.i_uid` were found (the dirty-pipe pattern).
    pub pipe_valid: u32,
    pub file_mode: u32,
    pub inode_uid: u32,
    /// 1 when `inode.i_mode` and `inode.i_rdev` were found: whether an open reached a
    /// block device, whatever its name.
    pub block_valid: u32,
    pub inode_rdev: u32,
    /// 1 when `linux_binprm.filename` and `task_struct.pid` were found: what the raw
    /// `sched_process_exec` and `sched_process_fork` programs read (their arguments
    /// are the kernel's structures, not a tracepoint record).
    pub proc_valid: u32,
    pub binprm_filename: u32,
    pub task_pid: u32,
}

/// Bit of `task_struct.atomic_flags` set by `prctl(PR_SET_NO_NEW_PRIVS)`.
pub const PFA_NO_NEW_PRIVS: u64 = 1;

/// Bits of [`CredRule::flags`].
pub mod cred_rule {
    /// Report effective capabilities outside [`crate::CredRule::allowed_caps`].
    pub const CAPS: u32 = 1;
    /// The profile promises no-new-privileges: report a program executed without the
    /// flag, and an exec that gained privileges (see [`crate::cred_deviation::GAINED`]).
    pub const NO_NEW_PRIVS: u32 = 2;
    /// Report an effective uid other than [`crate::CredRule::expected_euid`] while the
    /// real uid is the expected one (a set-uid program).
    pub const EUID: u32 = 4;
}

/// Value of `CRED_RULES`: what a profile allows after an exec.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CredRule {
    /// [`cred_rule`] bits.
    pub flags: u32,
    pub expected_euid: u32,
    /// Allowed effective capabilities, bit `n` = capability `n`.
    pub allowed_caps: u64,
}

/// Value of `CREDS`: a process's effective credentials when last seen.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CredState {
    pub euid: u32,
    pub egid: u32,
    pub cap_effective: u64,
}

/// What a [`CredsEvent`] reports (bits, several may be set).
pub mod cred_deviation {
    /// The effective uid is not the profile's user (the real uid is).
    pub const EUID: u32 = 1;
    /// Effective capabilities outside the allowed set.
    pub const CAPS: u32 = 2;
    /// The no-new-privileges flag is not set.
    pub const NO_NEW_PRIVS: u32 = 4;
    /// The exec switched the effective uid or gid to ones other than the real ones
    /// (a set-uid or set-gid program) or added effective capabilities.
    pub const GAINED: u32 = 8;
}

/// Credentials after the exec of an armed process beyond what its profile allows.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CredsEvent {
    pub header: EventHeader,
    /// [`cred_deviation`] bits.
    pub what: u32,
    pub euid: u32,
    pub egid: u32,
    /// 1 when the no-new-privileges flag is set.
    pub no_new_privs: u32,
    pub cap_effective: u64,
    /// The profile's rule.
    pub rule: CredRule,
    /// The credentials before the exec, when known (`before_known` = 1).
    pub before: CredState,
    pub before_known: u32,
    pub _pad: u32,
    /// The program just executed.
    pub exe: [u8; EXE_BYTES],
}
