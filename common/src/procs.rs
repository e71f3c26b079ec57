//! The process table (parent, executable, armed), deviations of the running program
//! and sockets no hook can judge.

use super::*;

/// Bytes of an executable path kept per process.
pub const EXE_BYTES: usize = 128;

/// Capacity of the process table.
pub const PROCS_MAX_ENTRIES: u32 = 32_768;

/// Bits of [`ProcInfo::flags`].
pub mod proc_flags {
    /// The process executed a program inside a monitored cgroup (or descends from one
    /// that did, or was there when the agent applied the profile): syscall rules apply
    /// to it. A container runtime's own set-up process, which joins the cgroup and then
    /// executes the container's entry point, is not armed until that exec.
    pub const ARMED: u32 = 1;
}

/// What the kernel knows of a process of a monitored cgroup.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcInfo {
    /// Parent process id (tgid).
    pub ppid: u32,
    /// [`proc_flags`].
    pub flags: u32,
    /// The program it executed, NUL terminated (cut at [`EXE_BYTES`]).
    pub exe: [u8; EXE_BYTES],
}

/// A socket whose creation the profile forbids (raw or packet sockets).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SocketEvent {
    pub header: EventHeader,
    pub family: u32,
    pub sock_type: u32,
    pub protocol: u32,
    /// [`verdict`].
    pub verdict: u8,
    pub _pad: [u8; 3],
}

/// What a [`DeviationEvent`] is about.
pub mod deviation {
    /// A process runs as another uid than the profile's (root, above all).
    pub const UID: u32 = 1;
}

/// A process that deviates from the hardened profile.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviationEvent {
    pub header: EventHeader,
    /// [`deviation`].
    pub what: u32,
    pub expected_uid: u32,
    /// The program just executed.
    pub exe: [u8; EXE_BYTES],
}

/// Where the fields the programs read are in the tracepoint records of the running
/// kernel, from the tracepoints' `format` files: the loader writes it into the object
/// (a read-only global) before the programs are verified. The layouts moved before
/// (`sched_process_fork`'s comm fields became `__data_loc` strings in 6.x, which moved
/// `child_pid` from 44 to 20), so no program assumes them.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TracepointLayout {
    /// `syscalls:sys_enter_*` and `sys_exit_*`: `__syscall_nr`.
    pub syscall_nr: u32,
    /// `syscalls:sys_enter_*`: the first argument (the others follow, 8 bytes each).
    pub syscall_args: u32,
    /// `syscalls:sys_exit_*`: `ret`.
    pub syscall_ret: u32,
    /// `sched:sched_process_exec`: the `__data_loc` of `filename`.
    pub exec_filename: u32,
    /// `sched:sched_process_fork`: `child_pid`.
    pub fork_child_pid: u32,
    pub _pad: u32,
}

impl TracepointLayout {
    /// The layouts of the kernels this was written on (6.x).
    pub const KNOWN: Self = Self {
        syscall_nr: 8,
        syscall_args: 16,
        syscall_ret: 16,
        exec_filename: 8,
        fork_child_pid: 20,
        _pad: 0,
    };
}
