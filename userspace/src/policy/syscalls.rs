//! The syscalls a profile can watch: their numbers, which argument is a path worth
//! reading or carries the flags a rule depends on, the built-in `escape` set, and how
//! events show their arguments.

use std::str::FromStr;

use serde_json::{Map, Value, json};
use syscalls::Sysno;

/// Every namespace flag of clone/clone3/unshare.
pub const CLONE_NS_FLAGS: u64 = 0x0002_0000 // CLONE_NEWNS
    | 0x0200_0000 // CLONE_NEWCGROUP
    | 0x0400_0000 // CLONE_NEWUTS
    | 0x0800_0000 // CLONE_NEWIPC
    | 0x1000_0000 // CLONE_NEWUSER
    | 0x2000_0000 // CLONE_NEWPID
    | 0x4000_0000 // CLONE_NEWNET
    | 0x0000_0080; // CLONE_NEWTIME

/// Syscalls used to break out of a container or to attack the host. `clone` and
/// `clone3` count only with namespace flags.
pub const ESCAPE: &[&str] = &[
    "mount",
    "umount2",
    "fsopen",
    "fsconfig",
    "fsmount",
    "move_mount",
    "open_tree",
    "open_tree_attr",
    "mount_setattr",
    "fspick",
    "unshare",
    "clone",
    "clone3",
    "setns",
    "pivot_root",
    "chroot",
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "bpf",
    "perf_event_open",
    "init_module",
    "finit_module",
    "delete_module",
    "kexec_load",
    "kexec_file_load",
    "open_by_handle_at",
    "name_to_handle_at",
    "keyctl",
    "add_key",
    "request_key",
    "userfaultfd",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "personality",
    "reboot",
    "swapon",
    "swapoff",
    "iopl",
    "ioperm",
    // The dirty-pipe pattern only (see `Spec::dirty_pipe`).
    "splice",
    "acct",
    "quotactl",
    "settimeofday",
    "clock_settime",
];

/// Syscalls the `escape` set watches only for some paths: opens of the escape paths
/// and connects to container runtime sockets (see [`ESCAPE_PATTERNS`]).
pub const ESCAPE_PATH_SYSCALLS: &[&str] = &["open", "openat", "openat2", "connect"];

/// The escape set's paths: (accesses, prefix, suffix).
pub const ESCAPE_PATTERNS: &[(u8, &str, &str)] = {
    use cgwarden_common::pattern_applies::{CONNECT, EXE_HANDLE, OPEN, OPEN_WRITE, PROC_FD};
    &[
        // Cgroup v1 release agents, core dumps, module loading and hotplug helpers,
        // the magic SysRq key: writing them runs code or acts on the host.
        (OPEN_WRITE, "", "release_agent"),
        (OPEN_WRITE, "", "notify_on_release"),
        (OPEN_WRITE, "", "core_pattern"),
        (OPEN_WRITE, "", "kernel/modprobe"),
        (OPEN_WRITE, "", "uevent_helper"),
        (OPEN_WRITE, "", "kernel/hotplug"),
        (OPEN_WRITE, "", "sysrq-trigger"),
        // The cgroup v1 device controller (a container granting itself devices) and
        // binfmt_misc (an interpreter the host runs for matching files).
        (OPEN_WRITE, "", "devices.allow"),
        (OPEN_WRITE, "", "binfmt_misc/register"),
        // Another process's memory, written through /proc/<pid>/mem.
        (OPEN_WRITE, "/proc/", "/mem"),
        // Overwriting a process's executable (CVE-2019-5736 style runtime escapes):
        // directly, or through a handle opened earlier (even O_PATH) and reopened for
        // writing through /proc/<pid>/fd/<fd>. Order matters: the first match decides.
        (OPEN_WRITE, "/proc/", "/exe"),
        (OPEN | EXE_HANDLE, "/proc/", "/exe"),
        // Host block devices: reading or writing the host's disks.
        (OPEN, "/dev/sd", ""),
        (OPEN, "/dev/vd", ""),
        (OPEN, "/dev/xvd", ""),
        (OPEN, "/dev/nvme", ""),
        (OPEN, "/dev/dm-", ""),
        (OPEN, "/dev/mapper/", ""),
        // Container runtime sockets: full control of the host's containers.
        (CONNECT, "", "docker.sock"),
        (CONNECT, "", "containerd.sock"),
        (CONNECT, "", "crio.sock"),
        (CONNECT, "", "podman.sock"),
        // containerd-shim's abstract sockets (CVE-2020-15257: reachable from a
        // container on the host's network), written `@name`.
        (CONNECT, "@/containerd-shim/", ""),
        // Last: any other write-open under /proc or /dev/fd is checked for a reopen of
        // a remembered executable handle.
        (OPEN_WRITE | PROC_FD, "/proc/", ""),
        (OPEN_WRITE | PROC_FD, "/dev/fd/", ""),
    ]
};

/// File systems escape files live on, by `super_block.s_magic` (linux/magic.h).
pub mod fs_magic {
    pub const CGROUP: u64 = 0x0027_e0eb;
    pub const PROC: u64 = 0x9fa0;
    pub const SYSFS: u64 = 0x6265_6572;
    pub const BINFMT_MISC: u64 = 0x4249_4e4d;

    /// A file system's name, for events.
    pub fn name(magic: u64) -> Option<&'static str> {
        Some(match magic {
            CGROUP => "cgroup",
            PROC => "proc",
            SYSFS => "sysfs",
            BINFMT_MISC => "binfmt_misc",
            _ => return None,
        })
    }
}

/// The escape files by what they are: (file system, name). A write-open that reaches
/// one is an escape attempt whatever path got it there; the kernel reads both from
/// the file the open returned. The same files as the write patterns of
/// [`ESCAPE_PATTERNS`], which judge the path as written (and opens that fail).
pub const ESCAPE_FILES: &[(u64, &str)] = {
    use fs_magic::{BINFMT_MISC, CGROUP, PROC, SYSFS};
    &[
        // cgroup v1: the release agent the host runs, and the device controller.
        (CGROUP, "release_agent"),
        (CGROUP, "notify_on_release"),
        (CGROUP, "devices.allow"),
        // procfs: core dumps and module loading helpers (sysctls), the hotplug helper
        // (`kernel/hotplug`, uevent_helper's sysctl), the magic SysRq key, another
        // process's memory (`/proc/<pid>/mem` and `/proc/<pid>/task/<tid>/mem`).
        (PROC, "core_pattern"),
        (PROC, "modprobe"),
        (PROC, "hotplug"),
        (PROC, "sysrq-trigger"),
        (PROC, "mem"),
        // sysfs: the hotplug helper.
        (SYSFS, "uevent_helper"),
        // binfmt_misc: an interpreter the host runs for matching files.
        (BINFMT_MISC, "register"),
    ]
};

/// [`ESCAPE_FILES`] as the kernel stores them (it looks them up; the value is unused).
pub fn escape_files() -> Vec<cgwarden_common::EscapeFileKey> {
    ESCAPE_FILES
        .iter()
        .map(|(magic, name)| {
            let mut key = cgwarden_common::EscapeFileKey {
                magic: *magic,
                ..Default::default()
            };
            key.name[..name.len()].copy_from_slice(name.as_bytes());
            key
        })
        .collect()
}

/// Whether (file system, name) is an escape file.
pub fn is_escape_file(magic: u64, name: &str) -> bool {
    ESCAPE_FILES.iter().any(|(m, n)| *m == magic && *n == name)
}

/// The escape patterns as the kernel stores them.
pub fn escape_patterns() -> Vec<cgwarden_common::PathPattern> {
    use cgwarden_common::{PATTERN_PREFIX_BYTES, PATTERN_SUFFIX_BYTES, PathPattern};
    ESCAPE_PATTERNS
        .iter()
        .map(|(applies, prefix, suffix)| {
            let mut p = PathPattern {
                applies: *applies,
                prefix_len: prefix.len().min(PATTERN_PREFIX_BYTES) as u8,
                suffix_len: suffix.len().min(PATTERN_SUFFIX_BYTES) as u8,
                ..Default::default()
            };
            p.prefix[..usize::from(p.prefix_len)]
                .copy_from_slice(&prefix.as_bytes()[..usize::from(p.prefix_len)]);
            p.suffix[..usize::from(p.suffix_len)]
                .copy_from_slice(&suffix.as_bytes()[..usize::from(p.suffix_len)]);
            p.prefix_mask = crate::policy::paths::prefix_mask(usize::from(p.prefix_len));
            p
        })
        .collect()
}

/// The container runtimes' API sockets on a host: Docker's, containerd's (and its ttrpc
/// socket, and those of the containerd dockerd starts), CRI-O's and Podman's. A connect
/// that reaches one of these socket files is an escape attempt whatever path the caller
/// named it by (`cgwarden run --runtime-socket` adds more).
pub const RUNTIME_SOCKETS: &[&str] = &[
    "/run/docker.sock",
    "/var/run/docker.sock",
    "/run/containerd/containerd.sock",
    "/run/containerd/containerd.sock.ttrpc",
    "/run/docker/containerd/containerd.sock",
    "/run/docker/containerd/containerd.sock.ttrpc",
    "/run/crio/crio.sock",
    "/run/podman/podman.sock",
];

/// The identity of each socket file in `paths` that exists (its inode, and its file
/// system's device number as the kernel encodes it: major << 20 | minor).
pub fn socket_files(paths: &[std::path::PathBuf]) -> Vec<cgwarden_common::SocketFile> {
    use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _};
    let mut out: Vec<cgwarden_common::SocketFile> = paths
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .filter(|m| m.file_type().is_socket())
        .map(|m| {
            let dev = m.dev();
            let (major, minor) = (libc::major(dev), libc::minor(dev));
            cgwarden_common::SocketFile {
                ino: m.ino(),
                dev: (major << 20) | (minor & 0xf_ffff),
                _pad: 0,
            }
        })
        .collect();
    out.sort_by_key(|f| (f.dev, f.ino));
    out.dedup();
    out
}

/// How the kernel watches one syscall.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spec {
    pub sysno: Sysno,
    /// Argument that is a path to copy into the event.
    pub path_arg: Option<u8>,
    /// Only calls whose flags intersect `mask` count.
    pub flags: Option<FlagsCondition>,
    /// Only calls whose path matches an escape pattern count.
    pub path_filter: bool,
    /// The path argument is a sockaddr (connect).
    pub sockaddr: bool,
    /// The open flags: (argument, behind a pointer).
    pub open_flags: Option<(u8, bool)>,
    /// A second string argument to copy into the event (mount's file system type).
    pub str_arg: Option<u8>,
    /// Only the dirty-pipe pattern counts (`splice` in the escape set).
    pub dirty_pipe: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlagsCondition {
    pub arg: u8,
    /// The flags are the first u64 of the struct the argument points to.
    pub indirect: bool,
    pub mask: u64,
}

/// The syscall called `name` on this architecture.
pub fn lookup(name: &str) -> Option<Sysno> {
    Sysno::from_str(name).ok()
}

/// How to watch `sysno`. `escape_only` restricts clone/clone3 to namespace flags (the
/// `escape` set); a rule naming them explicitly watches every call.
pub fn spec(sysno: Sysno, escape_only: bool) -> Spec {
    let flags = match sysno.name() {
        "clone" if escape_only => Some(FlagsCondition {
            arg: 0,
            indirect: false,
            mask: CLONE_NS_FLAGS,
        }),
        "clone3" if escape_only => Some(FlagsCondition {
            arg: 0,
            indirect: true,
            mask: CLONE_NS_FLAGS,
        }),
        _ => None,
    };
    let name = sysno.name();
    let open_flags = match name {
        "open" => Some((1, false)),
        "openat" => Some((2, false)),
        "openat2" => Some((2, true)),
        _ => None,
    };
    Spec {
        sysno,
        path_arg: if name == "connect" {
            Some(1)
        } else {
            path_arg(name)
        },
        flags,
        path_filter: escape_only && ESCAPE_PATH_SYSCALLS.contains(&name),
        sockaddr: name == "connect",
        open_flags,
        // `mount -t cgroup` is how the release_agent escape starts.
        str_arg: (name == "mount").then_some(2),
        dirty_pipe: escape_only && name == "splice",
    }
}

/// The tracepoint of a syscall (`syscalls:sys_enter_<name>`); the kernel names a few
/// differently from the syscall.
pub fn tracepoint_name(sysno: Sysno) -> String {
    match sysno.name() {
        "umount2" => "sys_enter_umount".to_owned(),
        name => format!("sys_enter_{name}"),
    }
}

fn path_arg(name: &str) -> Option<u8> {
    Some(match name {
        "open" | "creat" | "chroot" | "pivot_root" | "umount2" | "acct" | "swapon" | "swapoff"
        | "execve" | "truncate" | "unlink" | "mkdir" | "rmdir" | "chdir" | "fsopen" => 0,
        "openat" | "openat2" | "mount" | "name_to_handle_at" | "open_tree" | "move_mount"
        | "open_tree_attr" | "mount_setattr" | "fspick" | "execveat" | "unlinkat" | "mkdirat"
        | "quotactl" => 1,
        _ => return None,
    })
}

/// The arguments of a syscall as events show them: flags by name, target pids and
/// operations by field, other arguments as hexadecimal.
pub fn decode(sysno: Sysno, args: &[u64; 6], arity: usize) -> Map<String, Value> {
    let mut m = Map::new();
    let hex = |v: u64| json!(format!("{v:#x}"));
    match sysno.name() {
        "clone" => {
            // The low byte is the signal sent to the parent when the child exits.
            let mut flags = names(args[0] & !0xff, CLONE_FLAGS);
            match args[0] & 0xff {
                0 => {}
                17 => flags.push("SIGCHLD".to_owned()),
                sig => flags.push(format!("signal {sig}")),
            }
            m.insert("flags".into(), json!(flags));
        }
        "unshare" => {
            m.insert("flags".into(), json!(names(args[0], CLONE_FLAGS)));
        }
        "setns" => {
            m.insert("fd".into(), json!(args[0] as i32));
            m.insert("nstype".into(), json!(names(args[1], CLONE_FLAGS)));
        }
        "mount" => {
            m.insert("flags".into(), json!(names(args[3], MOUNT_FLAGS)));
        }
        "ptrace" => {
            m.insert("request".into(), json!(ptrace_request(args[0])));
            m.insert("pid".into(), json!(args[1] as i32));
        }
        "process_vm_readv" | "process_vm_writev" | "kill" | "tkill" | "pidfd_open" => {
            m.insert("pid".into(), json!(args[0] as i32));
        }
        "perf_event_open" => {
            m.insert("pid".into(), json!(args[1] as i32));
            m.insert("cpu".into(), json!(args[2] as i32));
        }
        "open" => {
            m.insert("flags".into(), json!(open_flags(args[1])));
        }
        "openat" => {
            m.insert("dirfd".into(), json!(args[0] as i32));
            m.insert("flags".into(), json!(open_flags(args[2])));
        }
        "keyctl" => {
            m.insert("operation".into(), json!(keyctl_operation(args[0])));
        }
        "bpf" => {
            m.insert("cmd".into(), json!(bpf_cmd(args[0])));
        }
        "splice" => {
            m.insert("fd_in".into(), json!(args[0] as i32));
            m.insert("fd_out".into(), json!(args[2] as i32));
            m.insert("len".into(), json!(args[4]));
        }
        "io_uring_setup" => {
            m.insert("entries".into(), json!(args[0]));
        }
        "connect" => {
            m.insert("fd".into(), json!(args[0] as i32));
        }
        "openat2" => {
            m.insert("dirfd".into(), json!(args[0] as i32));
        }
        "personality" => {
            m.insert("persona".into(), hex(args[0]));
        }
        _ => {
            for (i, a) in args.iter().enumerate().take(arity) {
                m.insert(format!("arg{i}"), hex(*a));
            }
        }
    }
    m
}

const CLONE_FLAGS: &[(u64, &str)] = &[
    (0x0000_0080, "CLONE_NEWTIME"),
    (0x0000_0100, "CLONE_VM"),
    (0x0000_0200, "CLONE_FS"),
    (0x0000_0400, "CLONE_FILES"),
    (0x0000_0800, "CLONE_SIGHAND"),
    (0x0000_2000, "CLONE_PTRACE"),
    (0x0000_4000, "CLONE_VFORK"),
    (0x0000_8000, "CLONE_PARENT"),
    (0x0001_0000, "CLONE_THREAD"),
    (0x0002_0000, "CLONE_NEWNS"),
    (0x0004_0000, "CLONE_SYSVSEM"),
    (0x0008_0000, "CLONE_SETTLS"),
    (0x0010_0000, "CLONE_PARENT_SETTID"),
    (0x0020_0000, "CLONE_CHILD_CLEARTID"),
    (0x0100_0000, "CLONE_CHILD_SETTID"),
    (0x0200_0000, "CLONE_NEWCGROUP"),
    (0x0400_0000, "CLONE_NEWUTS"),
    (0x0800_0000, "CLONE_NEWIPC"),
    (0x1000_0000, "CLONE_NEWUSER"),
    (0x2000_0000, "CLONE_NEWPID"),
    (0x4000_0000, "CLONE_NEWNET"),
    (0x8000_0000, "CLONE_IO"),
];

const MOUNT_FLAGS: &[(u64, &str)] = &[
    (1, "MS_RDONLY"),
    (2, "MS_NOSUID"),
    (4, "MS_NODEV"),
    (8, "MS_NOEXEC"),
    (32, "MS_REMOUNT"),
    (4096, "MS_BIND"),
    (8192, "MS_MOVE"),
    (16384, "MS_REC"),
    (1 << 17, "MS_UNBINDABLE"),
    (1 << 18, "MS_PRIVATE"),
    (1 << 19, "MS_SLAVE"),
    (1 << 20, "MS_SHARED"),
];

fn names(value: u64, table: &[(u64, &'static str)]) -> Vec<String> {
    let mut out: Vec<String> = table
        .iter()
        .filter(|(bit, _)| value & bit != 0)
        .map(|(_, n)| (*n).to_owned())
        .collect();
    let known = table.iter().fold(0, |acc, (bit, _)| acc | bit);
    let rest = value & !known;
    if rest != 0 {
        out.push(format!("{rest:#x}"));
    }
    out
}

fn open_flags(flags: u64) -> Vec<String> {
    let mut out = vec![
        match flags & 3 {
            0 => "O_RDONLY",
            1 => "O_WRONLY",
            _ => "O_RDWR",
        }
        .to_owned(),
    ];
    for (bit, name) in [
        (0o100, "O_CREAT"),
        (0o1000, "O_TRUNC"),
        (0o2000, "O_APPEND"),
        (0o200000, "O_DIRECTORY"),
        (0o2000000, "O_CLOEXEC"),
        (0o20000000, "O_PATH"),
    ] {
        if flags & bit != 0 {
            out.push(name.to_owned());
        }
    }
    out
}

/// The namespace setns entered, as its inode number says: `{"id": "net:[4026531992]",
/// "host": true}` when it is one of the host's namespaces. `nstype` names its
/// kind when the caller gave one.
pub fn namespace_of(ino: u64, nstype: u64) -> Value {
    use std::os::unix::fs::MetadataExt as _;
    const KINDS: [&str; 8] = ["net", "mnt", "pid", "uts", "ipc", "user", "cgroup", "time"];
    // The host's: pid 1's, or where pid 1's cannot be read, the agent's own (which
    // runs in the host's namespaces).
    let host_ino = |k: &str| {
        std::fs::metadata(format!("/proc/1/ns/{k}"))
            .or_else(|_| std::fs::metadata(format!("/proc/self/ns/{k}")))
            .map(|m| m.ino())
    };
    let host_kind = KINDS.iter().find(|k| host_ino(k).is_ok_and(|i| i == ino));
    let kind = host_kind.map(|k| (*k).to_owned()).or_else(|| {
        let names = names(nstype, CLONE_FLAGS);
        names.first().map(|n| {
            n.trim_start_matches("CLONE_NEW")
                .to_ascii_lowercase()
                .replace("ns", "mnt")
        })
    });
    json!({
        "id": match kind {
            Some(k) => format!("{k}:[{ino}]"),
            None => format!("[{ino}]"),
        },
        "host": host_kind.is_some(),
    })
}

/// `bpf(2)` commands by name (`enum bpf_cmd`).
fn bpf_cmd(c: u64) -> String {
    const NAMES: [&str; 37] = [
        "BPF_MAP_CREATE",
        "BPF_MAP_LOOKUP_ELEM",
        "BPF_MAP_UPDATE_ELEM",
        "BPF_MAP_DELETE_ELEM",
        "BPF_MAP_GET_NEXT_KEY",
        "BPF_PROG_LOAD",
        "BPF_OBJ_PIN",
        "BPF_OBJ_GET",
        "BPF_PROG_ATTACH",
        "BPF_PROG_DETACH",
        "BPF_PROG_TEST_RUN",
        "BPF_PROG_GET_NEXT_ID",
        "BPF_MAP_GET_NEXT_ID",
        "BPF_PROG_GET_FD_BY_ID",
        "BPF_MAP_GET_FD_BY_ID",
        "BPF_OBJ_GET_INFO_BY_FD",
        "BPF_PROG_QUERY",
        "BPF_RAW_TRACEPOINT_OPEN",
        "BPF_BTF_LOAD",
        "BPF_BTF_GET_FD_BY_ID",
        "BPF_TASK_FD_QUERY",
        "BPF_MAP_LOOKUP_AND_DELETE_ELEM",
        "BPF_MAP_FREEZE",
        "BPF_BTF_GET_NEXT_ID",
        "BPF_MAP_LOOKUP_BATCH",
        "BPF_MAP_LOOKUP_AND_DELETE_BATCH",
        "BPF_MAP_UPDATE_BATCH",
        "BPF_MAP_DELETE_BATCH",
        "BPF_LINK_CREATE",
        "BPF_LINK_UPDATE",
        "BPF_LINK_GET_FD_BY_ID",
        "BPF_LINK_GET_NEXT_ID",
        "BPF_ENABLE_STATS",
        "BPF_ITER_CREATE",
        "BPF_LINK_DETACH",
        "BPF_PROG_BIND_MAP",
        "BPF_TOKEN_CREATE",
    ];
    NAMES
        .get(c as usize)
        .map_or_else(|| format!("{c}"), |n| (*n).to_owned())
}

/// `keyctl(2)` operations by name.
fn keyctl_operation(op: u64) -> String {
    const NAMES: [&str; 33] = [
        "KEYCTL_GET_KEYRING_ID",
        "KEYCTL_JOIN_SESSION_KEYRING",
        "KEYCTL_UPDATE",
        "KEYCTL_REVOKE",
        "KEYCTL_CHOWN",
        "KEYCTL_SETPERM",
        "KEYCTL_DESCRIBE",
        "KEYCTL_CLEAR",
        "KEYCTL_LINK",
        "KEYCTL_UNLINK",
        "KEYCTL_SEARCH",
        "KEYCTL_READ",
        "KEYCTL_INSTANTIATE",
        "KEYCTL_NEGATE",
        "KEYCTL_SET_REQKEY_KEYRING",
        "KEYCTL_SET_TIMEOUT",
        "KEYCTL_ASSUME_AUTHORITY",
        "KEYCTL_GET_SECURITY",
        "KEYCTL_SESSION_TO_PARENT",
        "KEYCTL_REJECT",
        "KEYCTL_INSTANTIATE_IOV",
        "KEYCTL_INVALIDATE",
        "KEYCTL_GET_PERSISTENT",
        "KEYCTL_DH_COMPUTE",
        "KEYCTL_PKEY_QUERY",
        "KEYCTL_PKEY_ENCRYPT",
        "KEYCTL_PKEY_DECRYPT",
        "KEYCTL_PKEY_SIGN",
        "KEYCTL_PKEY_VERIFY",
        "KEYCTL_RESTRICT_KEYRING",
        "KEYCTL_MOVE",
        "KEYCTL_CAPABILITIES",
        "KEYCTL_WATCH_KEY",
    ];
    NAMES
        .get(op as usize)
        .map_or_else(|| format!("{op}"), |n| (*n).to_owned())
}

fn ptrace_request(r: u64) -> String {
    match r {
        0 => "PTRACE_TRACEME".into(),
        1 | 2 => "PTRACE_PEEKDATA".into(),
        4 | 5 => "PTRACE_POKEDATA".into(),
        16 => "PTRACE_ATTACH".into(),
        17 => "PTRACE_DETACH".into(),
        0x4206 => "PTRACE_SEIZE".into(),
        other => format!("{other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_patterns_fit_the_kernel_slots() {
        let patterns = escape_patterns();
        assert!(patterns.len() <= cgwarden_common::PATH_PATTERNS_MAX as usize);
        let exe = patterns
            .iter()
            .find(|p| p.suffix_len == 4 && &p.suffix[..4] == b"/exe")
            .unwrap();
        assert_eq!(&exe.prefix[..6], b"/proc/");
        assert_eq!(&exe.suffix[..4], b"/exe");
        let connect = spec(lookup("connect").unwrap(), true);
        assert!(connect.path_filter && connect.sockaddr);
        assert!(!spec(lookup("connect").unwrap(), false).path_filter);
    }

    /// A read-only open is matched against the read patterns only when its path's
    /// second byte may start one of them: the escape set's are under /proc and /dev.
    #[test]
    fn read_leads_let_through_every_path_a_read_pattern_matches() {
        use cgwarden_common::{pattern_applies::OPEN, read_leads};
        let read: Vec<_> = escape_patterns()
            .into_iter()
            .filter(|p| p.applies & OPEN != 0)
            .collect();
        let bits = read_leads(&read);
        let passes = |path: &str| bits & (1 << (path.as_bytes()[1] & 63)) != 0;
        for path in ["/proc/self/exe", "/proc/1/exe", "/dev/sda", "/dev/mapper/x"] {
            assert!(passes(path), "{path}");
        }
        for path in ["/usr/lib/libc.so.6", "/etc/passwd", "/tmp/x", "/home/a"] {
            assert!(!passes(path), "{path}");
        }
        // A pattern with a shorter prefix (a suffix only) may match any path.
        let any = escape_patterns()
            .into_iter()
            .find(|p| p.prefix_len == 0)
            .unwrap();
        assert_eq!(read_leads(&[any]), u64::MAX);
        assert_eq!(read_leads(&[]), u64::MAX);
    }

    #[test]
    fn every_escape_syscall_exists_here() {
        for name in ESCAPE {
            assert!(lookup(name).is_some(), "{name}");
        }
        assert_eq!(
            tracepoint_name(lookup("umount2").unwrap()),
            "sys_enter_umount"
        );
    }

    #[test]
    fn clone_counts_only_with_namespace_flags_in_the_escape_set() {
        let clone3 = spec(lookup("clone3").unwrap(), true);
        assert_eq!(clone3.flags.map(|f| f.indirect), Some(true));
        assert!(spec(lookup("clone").unwrap(), false).flags.is_none());
        assert_eq!(spec(lookup("mount").unwrap(), true).path_arg, Some(1));
    }

    #[test]
    fn decodes_flags_by_name() {
        let sys = lookup("unshare").unwrap();
        let d = decode(
            sys,
            &[0x1000_0000 | 0x0002_0000 | 0x1_0000_0000, 0, 0, 0, 0, 0],
            1,
        );
        assert_eq!(
            d["flags"],
            json!(["CLONE_NEWNS", "CLONE_NEWUSER", "0x100000000"])
        );
        let bpf = decode(lookup("bpf").unwrap(), &[5, 0, 0, 0, 0, 0], 3);
        assert_eq!(bpf["cmd"], "BPF_PROG_LOAD");
        let keyctl = decode(lookup("keyctl").unwrap(), &[1, 0, 0, 0, 0, 0], 5);
        assert_eq!(keyctl["operation"], "KEYCTL_JOIN_SESSION_KEYRING");
        let ptrace = decode(lookup("ptrace").unwrap(), &[16, 42, 0, 0, 0, 0], 4);
        assert_eq!(ptrace["request"], "PTRACE_ATTACH");
        assert_eq!(ptrace["pid"], 42);
        let openat = decode(
            lookup("openat").unwrap(),
            &[u64::MAX - 99, 0, 0o1101, 0, 0, 0],
            4,
        );
        assert_eq!(openat["flags"], json!(["O_WRONLY", "O_CREAT", "O_TRUNC"]));
        assert_eq!(openat["dirfd"], -100);
    }
}
