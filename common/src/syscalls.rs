//! Watched syscalls: rules, path patterns, escape files, calls pending between entry
//! and exit, repeat keys and syscall events.

use super::*;

/// Bytes of a file name in an [`EscapeFileKey`] (with its NUL): the longest escape
/// file's name (`notify_on_release`) fits.
pub const ESCAPE_FILE_NAME_BYTES: usize = 24;

/// An escape file by what it is: the magic number of its file system
/// (`super_block.s_magic`: cgroup v1, procfs, sysfs, binfmt_misc) and its name,
/// NUL-padded. A symlink, a bind mount, a long or relative path, or a reopen through
/// `/proc/self/fd` all reach the same file and so the same key.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct EscapeFileKey {
    pub magic: u64,
    pub name: [u8; ESCAPE_FILE_NAME_BYTES],
}

/// Key of a syscall a learning profile saw used: the monitored cgroup (a container's
/// nested cgroups count as the container), the profile and the syscall number.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SyscallUsedKey {
    pub cgroup_id: u64,
    pub profile: u32,
    pub nr: u32,
}

/// Number of syscall slots in `SYSCALL_WATCH` (a power of two above every x86_64 and
/// aarch64 syscall number).
pub const RAW_SYSCALL_SLOTS: u32 = 1024;

/// Values of `SYSCALL_WATCH`: how a syscall is watched.
pub mod syscall_watch {
    /// The raw `sys_enter` program watches it (no tracepoint of its own here).
    pub const RAW: u8 = 0x80;
    /// The arity in the low bits is known (without it, all six slots are kept).
    pub const KNOWN: u8 = 0x40;
    /// Its exit tracepoint is attached: calls refused before entry are seen there.
    pub const EXIT: u8 = 0x20;
    /// Some rule judges it by its path, at exit only (no entry program is needed for
    /// it): the exit looks the caller's rule up for every call, not only failed ones.
    pub const BY_PATH: u8 = 0x10;
    /// A check of its own runs at the raw `sys_enter` (where syscalls are watched
    /// through the raw tracepoints): `socket` (packet sockets) and `listen` (loopback
    /// binds), whether or not a rule watches the syscall; it is tail-called
    /// (`OWN_CHECKS`), so the common path carries none of its code.
    pub const OWN: u8 = 0x08;
    /// The low bits: the syscall's number of arguments; the slots after them hold
    /// whatever followed the record and are cleared before they are reported.
    pub const ARITY_MASK: u8 = 0x07;
}

/// Capacity of `SYSCALL_REPEATS`.
pub const SYSCALL_REPEATS_MAX_ENTRIES: u32 = 16_384;

/// Identity of a reported syscall for aggregation: identical repeats (same process,
/// syscall, arguments and verdict) share a key. Calls with a path argument are never
/// aggregated (the same pointer can name another path).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SyscallRepeatKey {
    pub cgroup_id: u64,
    pub profile: u32,
    pub pid: u32,
    pub nr: u32,
    pub rule: u32,
    pub verdict: u8,
    pub action: u8,
    pub _pad: [u8; 6],
    pub args: [u64; 6],
}

/// What to do when a watched syscall is made.
pub mod syscall_action {
    /// Report it.
    pub const REPORT: u8 = 1;
    /// Report it and kill the process with SIGKILL before it returns to user space.
    pub const KILL: u8 = 2;
    /// As `KILL`; then the agent kills every process of the container's cgroup
    /// (`cgroup.kill`), so no process sharing what the caller opened goes on with it.
    pub const KILL_CONTAINER: u8 = 3;
}

/// Marks "no such argument" in [`SyscallRule`].
pub const NO_ARG: u8 = 0xff;

/// Key of `SYSCALL_RULES`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SyscallKey {
    pub profile: u32,
    pub nr: u32,
}

/// How a profile watches one syscall.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyscallRule {
    /// [`syscall_action`].
    pub action: u8,
    /// Index of the argument that is a path to read, or [`NO_ARG`].
    pub path_arg: u8,
    /// Index of the flags argument that must intersect `flags_mask`, or [`NO_ARG`]
    /// (then every call counts).
    pub flags_arg: u8,
    /// The flags are the first u64 of the struct the argument points to (clone3).
    pub flags_indirect: u8,
    /// Index of the rule in the profile, for events.
    pub rule: u32,
    pub flags_mask: u64,
    /// Nonzero: count the call only when its path matches a `PATH_PATTERNS` entry for
    /// this kind of access ([`pattern_applies`] bits: OPEN for opens, CONNECT for
    /// connects).
    pub path_filter: u8,
    /// The path argument is a `struct sockaddr` (connect): only AF_UNIX paths count.
    pub sockaddr: u8,
    /// Index of the open flags argument (to tell opens for writing), or [`NO_ARG`].
    pub open_flags_arg: u8,
    /// The open flags are the first u64 of the struct the argument points to (openat2).
    pub open_flags_indirect: u8,
    /// Nonzero: the call writes (an open only with [`OPEN_WRITE_FLAGS`]) and is judged
    /// at exit against the profile's read-only and writable paths (pattern set = the
    /// profile id).
    pub read_only: u8,
    /// The path argument(s) the write lands on, or [`NO_ARG`] (rename: both paths).
    pub write_path_arg: u8,
    pub write_path_arg2: u8,
    /// Index of a second string argument to copy into the event (mount's file system
    /// type), or [`NO_ARG`].
    pub str_arg: u8,
    /// Nonzero: count the call only when it is the dirty-pipe pattern (`splice` from a
    /// regular file opened read-only that is set-uid/set-gid or another user's, into a
    /// pipe).
    pub dirty_pipe: u8,
    /// Index of a descriptor argument whose file's inode number goes into the event
    /// (`SyscallEvent::fd_ino`: setns's target namespace), or [`NO_ARG`].
    pub fd_ino_arg: u8,
    pub _pad: [u8; 6],
}

/// Open flags that make an open a write: O_WRONLY, O_RDWR, O_CREAT, O_TRUNC.
pub const OPEN_WRITE_FLAGS: u64 = 0o1 | 0o2 | 0o100 | 0o1000;

/// A path pattern: matches when the path starts with `prefix` and ends with `suffix`
/// (either may be empty), for the accesses in `applies`. The first pattern of a set that
/// matches decides, so a set lists longer prefixes first.
///
/// The prefix is compared a word at a time: `prefix_mask[k]` keeps the bytes of word `k`
/// that belong to the prefix (all of them, some, or none), so the kernel compares
/// without a branch per byte (the verifier would explore each).
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PathPattern {
    pub prefix: [u8; PATTERN_PREFIX_BYTES],
    pub prefix_mask: [u64; PATTERN_PREFIX_BYTES / 8],
    pub suffix: [u8; PATTERN_SUFFIX_BYTES],
    /// [`pattern_applies`] bits; 0 marks an unused slot.
    pub applies: u8,
    pub prefix_len: u8,
    pub suffix_len: u8,
    /// Nonzero: the prefix is a whole directory: the path must end right after it or
    /// continue with `/` (`/etc` matches `/etc` and `/etc/x`, not `/etcd`).
    pub dir: u8,
}

/// The `READ_LEADS` bits of a pattern set: bit `b & 63` for the second byte `b` of every
/// pattern's prefix, or every bit when some pattern's prefix is shorter than two bytes
/// (it may match a path with any second byte). A path whose second byte's bit is clear
/// matches no pattern of the set. 0 (no pattern) is written as every bit too: the
/// kernel then reads every path, as before the agent wrote the map.
pub fn read_leads(patterns: &[PathPattern]) -> u64 {
    let mut bits = 0u64;
    for p in patterns {
        if p.prefix_len < 2 {
            return u64::MAX;
        }
        bits |= 1 << (p.prefix[1] & 63);
    }
    if bits == 0 { u64::MAX } else { bits }
}

impl Default for PathPattern {
    fn default() -> Self {
        Self {
            applies: 0,
            prefix_len: 0,
            suffix_len: 0,
            dir: 0,
            prefix: [0; PATTERN_PREFIX_BYTES],
            prefix_mask: [0; PATTERN_PREFIX_BYTES / 8],
            suffix: [0; PATTERN_SUFFIX_BYTES],
        }
    }
}

/// Key of `PROFILE_PATTERNS`: the pattern set (a profile id; set 0, the escape set, is
/// the `PATH_PATTERNS` array) and the pattern's place in it (0, 1, ... up to the first
/// missing index).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PatternKey {
    pub set: u32,
    pub index: u32,
}

pub const PATTERN_PREFIX_BYTES: usize = 64;

pub const PATTERN_SUFFIX_BYTES: usize = 20;

/// Most patterns in one set.
pub const PATH_PATTERNS_MAX: u32 = 32;

/// The pattern set of [`names::READ_PATTERNS`] (set 0 is every escape pattern, other
/// sets are profiles' read-only paths, numbered by profile id).
pub const READ_PATTERN_SET: u32 = u32::MAX;

/// Which accesses a [`PathPattern`] applies to.
pub mod pattern_applies {
    /// Any open of the path.
    pub const OPEN: u8 = 1;
    /// An open for writing (O_WRONLY or O_RDWR).
    pub const OPEN_WRITE: u8 = 2;
    /// A connect to a unix socket at the path.
    pub const CONNECT: u8 = 4;
    /// A write under the path is a deviation (`runtime.read_only`).
    pub const READ_ONLY: u8 = 8;
    /// Writes under the path are expected (`runtime.writable`).
    pub const WRITABLE: u8 = 16;
    /// An open of the path yields a handle on a process's executable: the descriptor is
    /// remembered in `EXE_HANDLES` instead of being reported.
    pub const EXE_HANDLE: u8 = 32;
    /// A write-open of the path counts only when it reopens a remembered executable
    /// handle through `/proc/<pid|self|thread-self>/fd/<fd>`.
    pub const PROC_FD: u8 = 64;
}

/// Bytes of a path argument copied into a [`SyscallEvent`].
pub const SYSCALL_PATH_BYTES: usize = 256;

/// A watched syscall made by a monitored process.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyscallEvent {
    pub header: EventHeader,
    pub nr: u32,
    /// [`syscall_action`] taken: KILL only in enforce mode.
    pub action: u8,
    /// [`verdict`]: DENY when killed, AUDIT when kill was due but the profile audits,
    /// ALLOW when only reported.
    pub verdict: u8,
    /// 1 when the path argument could not be read (an unknown path, never harmless).
    pub path_unreadable: u8,
    /// [`READ_ONLY`](kind::READ_ONLY) records: 1 when the kernel could not place the
    /// path (relative to a directory it does not know, or with `.`, `..` or `//`
    /// components); the agent resolves and judges it.
    pub unresolved: u8,
    pub rule: u32,
    /// Bytes of `path` (including the NUL), 0 when there is no path argument.
    pub path_len: u32,
    /// The raw arguments.
    pub args: [u64; 6],
    /// For rules with a flags condition: the flags that were checked.
    pub flags: u64,
    pub path: [u8; SYSCALL_PATH_BYTES],
    /// The process: parent and executable, from the process table.
    pub ppid: u32,
    /// [`judged`]: where the call was judged, and so whether `ret` is known.
    pub judged: u32,
    pub exe: [u8; EXE_BYTES],
    /// How many times this call (same [`SyscallRepeatKey`]) has been made so far, this
    /// one included; 0 for calls that are never aggregated (kills, path arguments).
    pub total: u64,
    /// The call's return value (a negative errno when it failed), when judged at exit.
    pub ret: i64,
    /// The rule's second string argument ([`SyscallRule::str_arg`]), NUL-terminated;
    /// `str_len` bytes with the NUL, 0 when none.
    pub str_len: u32,
    /// [`reached`]: whether the call was judged by the file it reached.
    pub reached: u8,
    pub _pad3: [u8; 3],
    /// With `reached` = FILE, the reached file's name (NUL-terminated, `str_len` bytes);
    /// otherwise the rule's second string argument.
    pub str_val: [u8; 32],
    /// The inode number of the file behind the rule's descriptor argument
    /// ([`SyscallRule::fd_ino_arg`]): for setns, the target namespace's id (as
    /// `/proc/<pid>/ns/*` links show it); 0 when none.
    pub fd_ino: u64,
    /// With `reached` = FILE, the magic number of the reached file's file system.
    pub reached_magic: u64,
}

/// Values of [`SyscallEvent::reached`].
pub mod reached {
    /// Judged by the path as the call wrote it (or not a path-judged call).
    pub const PATH: u8 = 0;
    /// Judged by the file the open reached (an [`EscapeFileKey`](super::EscapeFileKey)
    /// in `str_val` and `reached_magic`), whatever path the call wrote.
    pub const FILE: u8 = 1;
    /// The kernel could not decide: a write-open that failed (so reached no file) and
    /// whose path as written names no escape file. Reported, never killed; the agent
    /// resolves the path in the caller's root and decides.
    pub const UNDECIDED: u8 = 2;
    /// The open returned a block device (a disk, whatever the node is called): its name
    /// in `str_val`, its device number (major << 20 | minor) in `reached_magic`.
    pub const BLOCK_DEVICE: u8 = 3;
}

/// Values of [`SyscallEvent::judged`].
pub mod judged {
    /// At entry, before the call ran: its result is not known.
    pub const ENTRY: u32 = 0;
    /// At exit (calls judged by their path): `ret` is its result.
    pub const EXIT: u32 = 1;
    /// At exit, and it was never entered: refused before it ran, by a seccomp filter
    /// (or a tracer). `ret` is the errno the filter gave.
    pub const REFUSED_BEFORE_ENTRY: u32 = 2;
}

/// Value of `ENTERED` (per CPU): the last watched call judged at entry on this CPU, so
/// its exit does not judge it again as refused before entry.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EnteredMark {
    pub id: u64,
    pub nr: u64,
}

/// Key of `RUNTIME_SOCKETS`: a container runtime's API socket file, by identity (its
/// inode and the kernel's device number of its file system).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SocketFile {
    pub ino: u64,
    pub dev: u32,
    pub _pad: u32,
}
