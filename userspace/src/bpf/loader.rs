//! Loading the embedded eBPF object, attaching its programs, and pinning both in bpffs
//! so enforcement outlives the agent.
//!
//! With a state directory (`cgwarden run`), maps are pinned under
//! `<state>/maps-<object hash>/` and links under `<state>/links-<object hash>/`. A
//! restarted agent of the same build reopens the maps and finds the links still
//! attached, so enforcement never stops; an agent of another build attaches its own
//! programs first and only then removes the previous build's links and maps. Without a
//! state directory (`cgwarden exec`, or `run --fail-open`), everything is detached when
//! the agent exits.

use std::{
    fs::{self, File},
    io,
    os::fd::AsFd,
    path::{Path, PathBuf},
};

use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, HashMap, LpmTrie, MapData, PerCpuArray, ProgramArray, RingBuf},
    programs::{
        CgroupAttachMode, CgroupDevice, CgroupSkb, CgroupSkbAttachType, CgroupSock, CgroupSockAddr,
        CgroupSysctl, ProgramError, RawTracePoint, TracePoint,
        links::{FdLink, PinnedLink},
        raw_trace_point::RawTracePointLink,
        trace_point::TracePointLink,
    },
};
use cgwarden_common::{
    Config, DeviceKey, EgressKey, EgressValue, FlowKey, FlowState, LearnedKey, LearnedValue,
    NameCountKey, NameKey, ProcInfo, ProfileRef, SyscallKey, SyscallRepeatKey, SyscallRule,
    maps as names, syscall_watch,
};
use syscalls::Sysno;

/// The object built from `ebpf/` by `build.rs`.
pub(super) static OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/cgwarden-ebpf"));

/// The sock_addr programs, attached to every monitored cgroup subtree.
const SOCK_ADDR_PROGRAMS: [&str; 6] = [
    "connect4", "connect6", "sendmsg4", "sendmsg6", "bind4", "bind6",
];

/// Socket creation (raw and packet sockets).
const SOCK_CREATE_PROGRAM: &str = "sock_create";

/// The program attached to each watched syscall's tracepoint.
const SYSCALL_PROGRAM: &str = "sys_enter";
/// The program on `socket()`'s entry: packet sockets, which no cgroup hook sees.
const SOCKET_PROGRAM: &str = "sys_enter_socket";
/// The program on `listen()`'s entry: listeners beyond loopback, which no bind hook sees.
const LISTEN_PROGRAM: &str = "sys_enter_listen";

/// The program attached to the exit tracepoint of syscalls some rule judges by path.
const SYSCALL_EXIT_PROGRAM: &str = "sys_exit";
/// The program attached to the exit tracepoint of the other watched syscalls: calls
/// refused before entry only (it needs no path matcher, so it verifies quickly).
const SYSCALL_EXIT_REFUSED_PROGRAM: &str = "sys_exit_refused";
/// The program attached to the raw `sys_enter` tracepoint when needed.
const RAW_SYSCALL_PROGRAM: &str = "raw_sys_enter";
/// `raw_sys_enter_own`: the packet-socket and listen checks, tail-called by
/// `raw_sys_enter` through `OWN_CHECKS` ([`SyscallHooks::Raw`]).
const RAW_OWN_PROGRAM: &str = "raw_sys_enter_own";
/// `raw_sys_exit`: what `sys_exit` does, on the raw `sys_exit` tracepoint
/// ([`SyscallHooks::Raw`]).
const RAW_EXIT_PROGRAM: &str = "raw_sys_exit";
/// `raw_sys_exit_refused`: what `sys_exit_refused` does, on the raw `sys_exit`
/// tracepoint ([`SyscallHooks::Raw`]).
const RAW_EXIT_REFUSED_PROGRAM: &str = "raw_sys_exit_refused";

/// Writes under /proc/sys.
const SYSCTL_PROGRAM: &str = "sysctl";

/// Opens and mknods of device nodes.
const DEVICE_PROGRAM: &str = "device";

/// The process-table programs and their `sched` tracepoints.
const PROC_PROGRAMS: [(&str, &str); 2] = [
    ("proc_exec", "sched_process_exec"),
    ("proc_fork", "sched_process_fork"),
];

/// The same on the raw tracepoints ([`SyscallHooks::Raw`], where the kernel's BTF gave
/// the fields they read), with their pin names.
const RAW_PROC_PROGRAMS: [(&str, &str, &str); 2] = [
    (
        "raw_proc_exec",
        "sched_process_exec",
        "raw-sched_process_exec",
    ),
    (
        "raw_proc_fork",
        "sched_process_fork",
        "raw-sched_process_fork",
    ),
];

/// The packet backstop for flows no socket-address hook sees (ICMP, raw sockets); it
/// also records DNS queries and drops forged answers while some profile reads DNS.
const SKB_EGRESS_PROGRAM: &str = "skb_egress";

/// The DNS half of the egress program (query records, forged answers dropped), which
/// `skb_egress` tail-calls through the `DNS_EGRESS` program array: loaded with the
/// answer reader.
const DNS_EGRESS_PROGRAM: &str = "skb_egress_dns";

/// The DNS answer reader: loaded and attached only once some profile reads DNS (its
/// verification is the slowest of the cgroup programs, and it would run on every
/// packet a monitored socket receives). It then stays attached while the agent runs.
const DNS_ANSWERS_PROGRAM: &str = "skb_ingress";

/// Errors loading or attaching the kernel side.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("loading the eBPF object failed: {0}")]
    Load(#[from] aya::EbpfError),
    #[error("eBPF program `{name}`: {source}")]
    Program {
        name: &'static str,
        #[source]
        source: ProgramError,
    },
    #[error("eBPF program `{0}` is missing from the object")]
    MissingProgram(&'static str),
    #[error("eBPF map `{0}` is missing from the object")]
    MissingMap(&'static str),
    #[error("eBPF map `{name}`: {source}")]
    Map {
        name: &'static str,
        #[source]
        source: aya::maps::MapError,
    },
    #[error("cannot open cgroup {path}: {source}")]
    Cgroup {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("pinning in {path}: {message}")]
    Pin { path: String, message: String },
    #[error(transparent)]
    Layout(#[from] super::layout::LayoutError),
}

/// The loaded kernel side: programs, links and typed map handles.
pub struct Kernel {
    ebpf: Ebpf,
    /// Links that are not pinned: dropping them detaches the programs.
    links: Vec<FdLink>,
    /// The same, for links made without aya.
    raw_links: Vec<std::os::fd::OwnedFd>,
    /// The state directory, when pinned.
    state: Option<PathBuf>,
    /// Maps and links of a previous agent of this build were found and reused.
    adopted: bool,
    /// Kernel ids of the attached programs, by name, for their run statistics.
    program_ids: Vec<(&'static str, u32)>,
    pub(super) cgroup_profiles: HashMap<MapData, u64, ProfileRef>,
    pub(super) config: Array<MapData, Config>,
    pub(super) egress: LpmTrie<MapData, EgressKey, EgressValue>,
    /// `EGRESS`'s own fd, for batched writes (aya's trie does not expose it).
    pub(super) egress_fd: std::os::fd::OwnedFd,
    pub(super) egress_hosts: HashMap<MapData, EgressKey, EgressValue>,
    /// `EGRESS_HOSTS`'s own fd, for batched writes.
    pub(super) egress_hosts_fd: std::os::fd::OwnedFd,
    pub(super) counters: PerCpuArray<MapData, u64>,
    pub(super) flows: HashMap<MapData, FlowKey, FlowState>,
    pub(super) syscall_repeats: HashMap<MapData, SyscallRepeatKey, FlowState>,
    pub(super) names: HashMap<MapData, NameKey, EgressValue>,
    pub(super) name_text: HashMap<MapData, NameKey, cgwarden_common::NameText>,
    pub(super) dns_servers: HashMap<MapData, cgwarden_common::DnsServerKey, u8>,
    pub(super) learned: HashMap<MapData, LearnedKey, LearnedValue>,
    pub(super) name_counts: HashMap<MapData, NameCountKey, u32>,
    pub(super) syscall_rules: HashMap<MapData, SyscallKey, SyscallRule>,
    pub(super) syscall_watch: Array<MapData, u8>,
    pub(super) procs: HashMap<MapData, u32, ProcInfo>,
    pub(super) gated: HashMap<MapData, u32, cgwarden_common::GatedProc>,
    pub(super) runtime_sockets: HashMap<MapData, cgwarden_common::SocketFile, u8>,
    pub(super) path_patterns: Array<MapData, cgwarden_common::PathPattern>,
    pub(super) read_patterns: Array<MapData, cgwarden_common::PathPattern>,
    pub(super) read_leads: Array<MapData, u64>,
    pub(super) escape_files: HashMap<MapData, cgwarden_common::EscapeFileKey, u8>,
    pub(super) profile_patterns:
        HashMap<MapData, cgwarden_common::PatternKey, cgwarden_common::PathPattern>,
    pub(super) device_rules: HashMap<MapData, DeviceKey, u32>,
    pub(super) cred_offsets: Array<MapData, cgwarden_common::CredOffsets>,
    pub(super) cred_rules: HashMap<MapData, u32, cgwarden_common::CredRule>,
    events: Option<RingBuf<MapData>>,
    /// The process-table programs are attached.
    tracking: bool,
    /// The offsets the raw process-table programs read are written (`proc_valid`).
    pub(super) proc_offsets: bool,
    /// Packet sockets are watched (their tracepoint program, or the raw `sys_enter`).
    packet_sockets: bool,
    /// Listens are watched (as packet sockets).
    listens: bool,
    /// Syscalls whose own check runs at the raw `sys_enter` (`syscall_watch::OWN`):
    /// `socket` and `listen` under [`SyscallHooks::Raw`].
    own_checks: Vec<u32>,
    /// Slot 0: `raw_sys_enter_own`, once some syscall has its own check.
    own_programs: ProgramArray<MapData>,
    /// The DNS answer reader is attached (and the DNS half of the egress program is in
    /// `dns_egress`).
    dns_answers: bool,
    /// Slot 0: the DNS half of the egress program, once some profile reads DNS.
    dns_egress: ProgramArray<MapData>,
    /// The cgroup the hooks are attached to (the programs attached later go there too).
    hooked: Option<PathBuf>,
    /// The raw `sys_enter` program is attached.
    raw_attached: bool,
    /// Which raw `sys_exit` programs are attached ([`SyscallHooks::Raw`]).
    raw_exits: RawExits,
    /// How watched syscalls reach their programs.
    syscall_hooks: SyscallHooks,
    syscalls_used: HashMap<MapData, cgwarden_common::SyscallUsedKey, u8>,
    /// Syscalls with a program attached, and how.
    watched: std::collections::BTreeMap<u32, Watch>,
    /// Links attached after start, when a profile first needs them (the syscall and
    /// process tracepoints, the DNS answer reader): pinned ones stay after the agent,
    /// the others end with it.
    late_links: Vec<FdLinkOrPerf>,
    /// Those links pinned (or adopted) by this agent, by pin name.
    late_pins: std::collections::HashSet<String>,
    /// `/proc/kallsyms`, read once when a watched syscall has no tracepoint.
    kallsyms: Option<String>,
}

/// How watched syscalls reach their programs: the trade between what every syscall of
/// the host pays while they are attached and what attaching and detaching cost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum SyscallHooks {
    /// One `syscalls:sys_enter_<name>` and `sys_exit_<name>` tracepoint per watched
    /// syscall (raw `sys_enter` for one that has none): a syscall nobody watches runs
    /// no program, but each tracepoint waits for RCU grace periods, under a lock every
    /// detach of the host takes, when it detaches (tens of ms each). For a long-lived
    /// agent.
    #[default]
    Tracepoints,
    /// The raw `sys_enter` and `sys_exit` tracepoints, whatever the set: two links,
    /// attached and detached at once, but every syscall of every task runs two programs
    /// (an array lookup each) while they are attached. The packet-socket and listen
    /// checks ride on `sys_enter`, and the process table on the raw scheduler
    /// tracepoints (where the kernel's BTF gave their fields): no perf tracepoint, whose
    /// detach waits for RCU. For a short-lived `exec`.
    Raw,
}

/// The raw `sys_exit` programs attached ([`SyscallHooks::Raw`]).
#[derive(Debug, Clone, Copy, Default)]
struct RawExits {
    /// `raw_sys_exit`: judges every watched syscall at exit, paths included.
    full: bool,
    /// `raw_sys_exit_refused`: only the calls refused before entry.
    refused: bool,
}

/// How a syscall is watched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Watch {
    /// Through its own `syscalls:sys_enter_*` and `sys_exit_*` tracepoints, as `hooks`
    /// says; the entry record has `arity` arguments (the program reads six; the others
    /// are not the syscall's).
    Tracepoint { arity: usize, hooks: Hooks },
    /// Through the raw `sys_enter` and `sys_exit` tracepoints ([`SyscallHooks::Raw`]),
    /// as `hooks` says; `arity` as for a tracepoint (6 where it has none).
    RawTracepoints { arity: usize, hooks: Hooks },
    /// Through the raw `sys_enter` tracepoint (it has none of its own here).
    Raw,
    /// Not at all: the running kernel does not implement it (it answers ENOSYS, so a
    /// call can do nothing), and no program runs for it.
    NotImplemented,
}

/// Which programs a watched syscall needs, from the rules that watch it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Hooks {
    /// Some rule judges it at entry, by the rule and the arguments.
    pub entry: bool,
    /// Some rule judges it at exit: by its path, or as refused before entry (a seccomp
    /// filter refuses a call before `sys_enter` fires; its exit still fires).
    pub exit: bool,
    /// Some rule judges it by its path, which only the exit does.
    pub by_path: bool,
}

impl Hooks {
    /// What a rule needs: its action (judged at entry, and at exit when refused before
    /// entry) and its path checks (escape patterns, read-only paths: at exit only).
    pub fn of_rule(rule: &cgwarden_common::SyscallRule) -> Self {
        let by_path = rule.path_filter != 0 || rule.read_only != 0;
        Self {
            entry: rule.action != 0 && rule.path_filter == 0,
            exit: rule.action != 0 || by_path,
            by_path,
        }
    }

    /// What two rules need together.
    pub fn union(self, other: Self) -> Self {
        Self {
            entry: self.entry || other.entry,
            exit: self.exit || other.exit,
            by_path: self.by_path || other.by_path,
        }
    }
}

/// The programs a profile set needs beyond the cgroup hooks, for
/// [`Kernel::attach_programs`].
#[derive(Clone, Copy, Debug, Default)]
pub struct Wanted<'a> {
    /// The process table (`proc_exec`, `proc_fork`).
    pub processes: bool,
    /// Watched syscalls and what each needs.
    pub syscalls: &'a [(Sysno, Hooks)],
    /// `socket()`'s entry: packet sockets.
    pub packet_sockets: bool,
    /// `listen()`'s entry: listeners beyond loopback.
    pub listens: bool,
    /// The DNS answer reader.
    pub dns_answers: bool,
}

/// Whether the running kernel implements syscall `name`, from `/proc/kallsyms`: a
/// syscall the kernel was built without has only the weak stub `COND_SYSCALL` leaves
/// (type `W`, calling `sys_ni_syscall`, which answers ENOSYS), or no symbol at all; an
/// implemented one has its own (type `T`). `None` when kallsyms cannot be read, or
/// names no syscall entry point of this architecture at all.
pub fn implemented(kallsyms: &str, name: &str) -> Option<bool> {
    let prefix = if cfg!(target_arch = "x86_64") {
        "__x64_sys_"
    } else if cfg!(target_arch = "aarch64") {
        "__arm64_sys_"
    } else {
        return None;
    };
    let wanted = format!("{prefix}{name}");
    let mut any_entry = false;
    for line in kallsyms.lines() {
        let mut fields = line.split_whitespace();
        let (Some(_), Some(kind), Some(symbol)) = (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        any_entry |= symbol.starts_with(prefix);
        if symbol == wanted {
            return Some(kind == "T" || kind == "t");
        }
    }
    any_entry.then_some(false)
}

/// Keeps a syscall program attached for as long as it lives.
#[expect(
    dead_code,
    reason = "the links are held only for their Drop, which detaches"
)]
enum FdLinkOrPerf {
    Tracepoint(TracePointLink),
    Raw(RawTracePointLink),
    /// Pinned in the state directory: it outlives the agent.
    Pinned(FdLink),
}

/// The pin of the raw `sys_enter` link (every raw tracepoint's pin starts `raw-`).
const RAW_PIN: &str = "raw-sys_enter";
/// The pins of the raw `sys_exit` links.
const RAW_EXIT_PIN: &str = "raw-sys_exit";
const RAW_EXIT_REFUSED_PIN: &str = "raw-sys_exit_refused";

impl Drop for Kernel {
    /// Detaches the tracepoints that are not pinned from several threads at once: each
    /// detach waits for an RCU grace period, and one after the other they made a
    /// `cgwarden exec` watching the escape set take seconds to return.
    fn drop(&mut self) {
        let links = std::mem::take(&mut self.late_links);
        if links.len() < 4 {
            return;
        }
        let per_thread = links.len().div_ceil(8);
        let mut links = links.into_iter();
        std::thread::scope(|scope| {
            loop {
                let chunk: Vec<FdLinkOrPerf> = links.by_ref().take(per_thread).collect();
                if chunk.is_empty() {
                    break;
                }
                scope.spawn(move || drop(chunk));
            }
        });
    }
}

impl Kernel {
    /// Loads the object. With `state`, maps are pinned there (or reopened when a previous
    /// agent of this build pinned them) and programs are loaded only if their links are
    /// not already pinned and attached.
    pub fn load(state: Option<&Path>) -> Result<Self, LoadError> {
        let mut loader = EbpfLoader::new();
        // No CO-RE relocations to apply (the object reads kernel structs at offsets the
        // agent finds in BTF itself, `btf.rs`; a unit test keeps it so). aya has parsed
        // the kernel's BTF in `EbpfLoader::new` already (a few ms); dropping it here frees
        // those megabytes before the object's own load peaks, and skips the relocation
        // pass.
        loader.btf(None);
        let layout = super::layout::read(Path::new(crate::host::TRACEFS))?;
        log::debug!("tracepoint record layout: {layout:?}");
        loader.override_global("TRACEPOINT_LAYOUT", &layout, true);
        let map_dir = state.map(|s| s.join(format!("maps-{}", object_id())));
        if let Some(dir) = &map_dir {
            fs::create_dir_all(dir).map_err(|e| pin_error(dir, e))?;
            for name in names::ALL {
                loader.map_pin_path(name, dir.join(name));
            }
        }
        let started = std::time::Instant::now();
        let mut ebpf = loader.load(OBJECT)?;
        log::debug!("object parsed and maps created in {:?}", started.elapsed());
        let adopted = state.is_some_and(|s| {
            let dir = link_dir(s);
            all_programs().all(|name| dir.join(name).exists())
        });
        // The tracepoint programs (syscalls, process table) are loaded when something
        // first attaches them: an egress-only agent never pays for verifying them.
        if !adopted {
            // The slowest first, so the rest are verified beside it.
            let mut start = vec![SKB_EGRESS_PROGRAM];
            start.extend(SOCK_ADDR_PROGRAMS);
            start.extend([SOCK_CREATE_PROGRAM, SYSCTL_PROGRAM, DEVICE_PROGRAM]);
            super::verify::load_all(&mut ebpf, &start)?;
        }
        let cgroup_profiles = take_map(&mut ebpf, names::CGROUP_PROFILES)?;
        let config = take_map(&mut ebpf, names::CONFIG)?;
        let egress_fd = map_fd(&ebpf, names::EGRESS)?;
        let egress = take_map(&mut ebpf, names::EGRESS)?;
        let egress_hosts_fd = map_fd(&ebpf, names::EGRESS_HOSTS)?;
        let egress_hosts = take_map(&mut ebpf, names::EGRESS_HOSTS)?;
        let dns_egress = take_map(&mut ebpf, names::DNS_EGRESS)?;
        let own_programs = take_map(&mut ebpf, names::OWN_CHECKS)?;
        let counters = take_map(&mut ebpf, names::COUNTERS)?;
        let flows = take_map(&mut ebpf, names::FLOWS)?;
        let syscall_repeats = take_map(&mut ebpf, names::SYSCALL_REPEATS)?;
        let names_map = take_map(&mut ebpf, names::NAMES)?;
        let name_text = take_map(&mut ebpf, names::NAME_TEXT)?;
        let dns_servers = take_map(&mut ebpf, names::DNS_SERVERS)?;
        let learned = take_map(&mut ebpf, names::LEARNED)?;
        let name_counts = take_map(&mut ebpf, names::NAME_COUNTS)?;
        let syscall_rules = take_map(&mut ebpf, names::SYSCALL_RULES)?;
        let syscall_watch = take_map(&mut ebpf, names::SYSCALL_WATCH)?;
        let procs = take_map(&mut ebpf, names::PROCS)?;
        let gated = take_map(&mut ebpf, names::GATED)?;
        let runtime_sockets = take_map(&mut ebpf, names::RUNTIME_SOCKETS)?;
        let path_patterns = take_map(&mut ebpf, names::PATH_PATTERNS)?;
        let read_patterns = take_map(&mut ebpf, names::READ_PATTERNS)?;
        let read_leads = take_map(&mut ebpf, names::READ_LEADS)?;
        let escape_files = take_map(&mut ebpf, names::ESCAPE_FILES)?;
        let profile_patterns = take_map(&mut ebpf, names::PROFILE_PATTERNS)?;
        let syscalls_used = take_map(&mut ebpf, names::SYSCALLS_USED)?;
        let device_rules = take_map(&mut ebpf, names::DEVICE_RULES)?;
        let cred_offsets = take_map(&mut ebpf, names::CRED_OFFSETS)?;
        let cred_rules = take_map(&mut ebpf, names::CRED_RULES)?;
        let events = Some(take_map(&mut ebpf, names::EVENTS)?);
        Ok(Self {
            ebpf,
            links: Vec::new(),
            raw_links: Vec::new(),
            state: state.map(Path::to_path_buf),
            adopted,
            program_ids: Vec::new(),
            cgroup_profiles,
            config,
            egress,
            egress_fd,
            egress_hosts,
            egress_hosts_fd,
            counters,
            flows,
            syscall_repeats,
            names: names_map,
            name_text,
            dns_servers,
            learned,
            name_counts,
            syscall_rules,
            syscall_watch,
            procs,
            gated,
            runtime_sockets,
            path_patterns,
            read_patterns,
            read_leads,
            escape_files,
            profile_patterns,
            device_rules,
            cred_offsets,
            cred_rules,
            events,
            tracking: false,
            proc_offsets: false,
            packet_sockets: false,
            listens: false,
            own_checks: Vec::new(),
            own_programs,
            dns_answers: false,
            dns_egress,
            hooked: None,
            raw_attached: false,
            raw_exits: RawExits::default(),
            syscall_hooks: SyscallHooks::default(),
            syscalls_used,
            watched: Default::default(),
            late_links: Vec::new(),
            late_pins: Default::default(),
            kallsyms: None,
        })
    }

    /// Whether the maps and links of a previous agent of this build were reused: the
    /// kernel kept enforcing while no agent ran.
    pub fn adopted(&self) -> bool {
        self.adopted
    }

    /// Attaches every hook to the cgroup at `path` (and so to its whole subtree), pinning
    /// the links when there is a state directory. Adopted links stay as they are. Links of
    /// other builds are removed only after this build's are attached.
    pub fn attach(&mut self, path: &Path) -> Result<(), LoadError> {
        self.hooked = Some(path.to_owned());
        if self.adopted {
            if let Some(state) = &self.state {
                let dir = link_dir(state);
                for name in all_programs() {
                    let id = PinnedLink::from_pin(dir.join(name))
                        .ok()
                        .map(FdLink::from)
                        .and_then(|l| l.info().ok())
                        .map(|i| i.program_id());
                    self.program_ids.extend(id.map(|id| (name, id)));
                }
            }
            if self.dns_answers && !self.late_pins.contains(DNS_ANSWERS_PROGRAM) {
                self.attach_dns_answers(path)?;
            }
            return Ok(());
        }
        let cgroup = File::open(path).map_err(|source| LoadError::Cgroup {
            path: path.display().to_string(),
            source,
        })?;
        let mut fresh: Vec<(&'static str, FdLink)> = Vec::new();
        for name in SOCK_ADDR_PROGRAMS {
            let program = program::<CgroupSockAddr>(&mut self.ebpf, name)?;
            let id = program
                .attach(cgroup.as_fd(), CgroupAttachMode::Single)
                .map_err(failed(name))?;
            fresh.push(pinnable(
                name,
                program.take_link(id).map_err(failed(name))?,
            )?);
        }
        {
            let name = SKB_EGRESS_PROGRAM;
            let program = program::<CgroupSkb>(&mut self.ebpf, name)?;
            let id = program
                .attach(
                    cgroup.as_fd(),
                    CgroupSkbAttachType::Egress,
                    CgroupAttachMode::Single,
                )
                .map_err(failed(name))?;
            fresh.push(pinnable(
                name,
                program.take_link(id).map_err(failed(name))?,
            )?);
        }
        {
            let name = SOCK_CREATE_PROGRAM;
            let program = program::<CgroupSock>(&mut self.ebpf, SOCK_CREATE_PROGRAM)?;
            let id = program
                .attach(cgroup.as_fd(), CgroupAttachMode::Single)
                .map_err(failed(name))?;
            fresh.push(pinnable(
                name,
                program.take_link(id).map_err(failed(name))?,
            )?);
        }
        // aya cannot make the sysctl and device programs' links pinnable: link them
        // directly. A cgroup link is always a multi-attachment, so the device program
        // runs next to a container runtime's own device filter (runc's on cgroup v2)
        // and the runtime's attach and detach of its filter never touch ours.
        let sysctl_link = {
            let name = SYSCTL_PROGRAM;
            let program = program::<CgroupSysctl>(&mut self.ebpf, SYSCTL_PROGRAM)?;
            let prog_fd = program.fd().map_err(failed(name))?;
            super::raw::link_create(
                prog_fd.as_fd(),
                cgroup.as_fd(),
                super::raw::ATTACH_CGROUP_SYSCTL,
            )
            .map_err(|e| link_error_io(name, &e))?
        };
        let device_link = {
            let name = DEVICE_PROGRAM;
            let program = program::<CgroupDevice>(&mut self.ebpf, DEVICE_PROGRAM)?;
            let prog_fd = program.fd().map_err(failed(name))?;
            if let Ok(info) = program.info() {
                self.program_ids.push((name, info.id()));
            }
            super::raw::link_create(
                prog_fd.as_fd(),
                cgroup.as_fd(),
                super::raw::ATTACH_CGROUP_DEVICE,
            )
            .map_err(|e| link_error_io(name, &e))?
        };
        for (name, link) in &fresh {
            match link.info() {
                Ok(info) => self.program_ids.push((name, info.program_id())),
                Err(e) => log::debug!("no link info for {name}: {e}"),
            }
        }
        let Some(state) = self.state.clone() else {
            self.links.extend(fresh.into_iter().map(|(_, l)| l));
            self.raw_links.push(sysctl_link);
            self.raw_links.push(device_link);
            if self.dns_answers {
                self.attach_dns_answers(path)?;
            }
            return Ok(());
        };
        let dir = link_dir(&state);
        fs::create_dir_all(&dir).map_err(|e| pin_error(&dir, e))?;
        for (name, link) in fresh {
            let path = dir.join(name);
            let _ = fs::remove_file(&path);
            link.pin(&path).map_err(|e| pin_error(&path, e))?;
        }
        for (name, link) in [
            (SYSCTL_PROGRAM, &sysctl_link),
            (DEVICE_PROGRAM, &device_link),
        ] {
            let path = dir.join(name);
            let _ = fs::remove_file(&path);
            super::raw::pin(link.as_fd(), &path).map_err(|e| pin_error(&path, e))?;
        }
        remove_other_builds(&state);
        if self.dns_answers && !self.late_pins.contains(DNS_ANSWERS_PROGRAM) {
            self.attach_dns_answers(path)?;
        }
        Ok(())
    }

    /// Attaches the raw `sys_enter` program (once).
    fn attach_raw(&mut self) -> Result<(), LoadError> {
        if self.raw_attached {
            return Ok(());
        }
        self.raw_attached = true;
        self.attach_raw_tracepoint(RAW_SYSCALL_PROGRAM, "sys_enter", RAW_PIN)
    }

    /// Attaches raw tracepoint program `program_name` to `tracepoint`, pinned as `pin`
    /// in the state directory (or adopted from there).
    fn attach_raw_tracepoint(
        &mut self,
        program_name: &'static str,
        tracepoint: &str,
        pin: &str,
    ) -> Result<(), LoadError> {
        if self.adopt_late_link(pin, program_name) {
            return Ok(());
        }
        let program: &mut RawTracePoint = loaded(&mut self.ebpf, program_name)?;
        let prog_id = program.info().map(|i| i.id()).ok();
        let id = program.attach(tracepoint).map_err(failed(program_name))?;
        let link = program.take_link(id).map_err(failed(program_name))?;
        self.note_program(program_name, prog_id);
        if self.state.is_some() {
            self.pin_late_link(pin, FdLink::from(link))
        } else {
            self.late_links.push(FdLinkOrPerf::Raw(link));
            Ok(())
        }
    }

    /// Chooses how watched syscalls reach their programs, before any is watched (a
    /// syscall watched already stays as it is).
    pub fn set_syscall_hooks(&mut self, hooks: SyscallHooks) {
        self.syscall_hooks = hooks;
    }

    /// Learn mode: makes the raw `sys_enter` program record every syscall of learning
    /// profiles (it runs for every syscall of every task while attached).
    pub fn learn_syscalls(&mut self) -> Result<(), LoadError> {
        self.attach_raw()
    }

    /// The syscall numbers a learning profile's processes used: in the monitored cgroup
    /// `cgroup` (by id), or in any.
    pub fn syscalls_used(&self, profile: u32, cgroup: Option<u64>) -> Vec<u32> {
        let mut nrs: Vec<u32> = self
            .syscalls_used
            .keys()
            .filter_map(Result::ok)
            .filter(|k| k.profile == profile && cgroup.is_none_or(|c| c == k.cgroup_id))
            .map(|k| k.nr)
            .collect();
        nrs.sort_unstable();
        nrs.dedup();
        nrs
    }

    /// Attaches a tracepoint program to `category:name`; the link lives with the agent.
    fn attach_tracepoint(
        &mut self,
        program_name: &'static str,
        category: &str,
        name: &str,
    ) -> Result<(), LoadError> {
        let pin = format!("tp-{program_name}-{category}-{name}");
        if self.adopt_late_link(&pin, program_name) {
            return Ok(());
        }
        let tp: &mut TracePoint = loaded(&mut self.ebpf, program_name)?;
        let prog_id = tp.info().map(|i| i.id()).ok();
        let id = tp.attach(category, name).map_err(failed(program_name))?;
        let link = tp.take_link(id).map_err(failed(program_name))?;
        self.note_program(program_name, prog_id);
        if self.state.is_some() {
            let link = FdLink::try_from(link).map_err(|e| link_error(program_name, e))?;
            self.pin_late_link(&pin, link)
        } else {
            self.late_links.push(FdLinkOrPerf::Tracepoint(link));
            Ok(())
        }
    }

    /// Records a late link's program for its run statistics, once (one program serves
    /// many tracepoints).
    fn note_program(&mut self, name: &'static str, id: Option<u32>) {
        if let Some(id) = id
            && !self.program_ids.iter().any(|(n, _)| *n == name)
        {
            self.program_ids.push((name, id));
        }
    }

    /// Reuses a late link (a tracepoint, the DNS reader) a previous agent of this build
    /// pinned, if there is one: its program already runs on the same maps, so kill rules
    /// never stopped. The link names the program (`program`), for its run statistics, as
    /// the adopted cgroup links do in [`Kernel::attach`].
    fn adopt_late_link(&mut self, pin: &str, program: &'static str) -> bool {
        let (Some(state), true) = (&self.state, self.adopted) else {
            return false;
        };
        let path = link_dir(state).join(pin);
        match PinnedLink::from_pin(&path) {
            Ok(link) => {
                let link = FdLink::from(link);
                self.note_program(program, link.info().map(|i| i.program_id()).ok());
                self.late_links.push(FdLinkOrPerf::Pinned(link));
                self.late_pins.insert(pin.to_owned());
                true
            }
            Err(_) => false,
        }
    }

    /// Pins a late link, so the syscall rules (and the process table they rely on) and
    /// the DNS reader keep working while no agent runs, as the cgroup hooks do.
    fn pin_late_link(&mut self, pin: &str, link: FdLink) -> Result<(), LoadError> {
        let Some(state) = &self.state else {
            self.late_links.push(FdLinkOrPerf::Pinned(link));
            return Ok(());
        };
        let dir = link_dir(state);
        fs::create_dir_all(&dir).map_err(|e| pin_error(&dir, e))?;
        let path = dir.join(pin);
        let _ = fs::remove_file(&path);
        let pinned = link.pin(&path).map_err(|e| pin_error(&path, e))?;
        self.late_links
            .push(FdLinkOrPerf::Pinned(FdLink::from(pinned)));
        self.late_pins.insert(pin.to_owned());
        Ok(())
    }

    /// Unpins the late links a previous agent left that this one does not use (syscalls
    /// no profile watches any more, the DNS reader when no profile reads DNS); their
    /// programs detach.
    pub fn sweep_late_links(&self) -> usize {
        let Some(state) = &self.state else {
            return 0;
        };
        let Ok(entries) = fs::read_dir(link_dir(state)) else {
            return 0;
        };
        let mut removed = 0;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let tracepoint =
                name.starts_with("tp-") || name.starts_with("raw-") || name == DNS_ANSWERS_PROGRAM;
            if tracepoint && !self.late_pins.contains(&name) {
                match fs::remove_file(entry.path()) {
                    Ok(()) => removed += 1,
                    Err(e) => log::warn!("could not unpin {}: {e}", entry.path().display()),
                }
            }
        }
        removed
    }

    /// Run count and total run time of each attached program, as the kernel counts
    /// them (only while `kernel.bpf_stats_enabled` is 1; zero otherwise).
    pub fn program_stats(&self) -> Vec<(&'static str, u64, u64)> {
        let by_id: std::collections::HashMap<u32, &'static str> =
            self.program_ids.iter().map(|(n, id)| (*id, *n)).collect();
        aya::programs::loaded_programs()
            .filter_map(Result::ok)
            .filter_map(|p| {
                by_id
                    .get(&p.id())
                    .map(|name| (*name, p.run_count(), p.run_time().as_nanos() as u64))
            })
            .collect()
    }

    /// Watches packet sockets (`socket()` of `AF_PACKET` or `AF_XDP` by a process whose
    /// profile forbids them): their tracepoint program, or under [`SyscallHooks::Raw`]
    /// the raw `sys_enter`'s own check. It stays while the agent runs.
    fn watch_packet_sockets(&mut self, wanted: bool) -> Result<(), LoadError> {
        if !wanted || self.packet_sockets {
            return Ok(());
        }
        match self.syscall_hooks {
            SyscallHooks::Raw => self.own_check(Sysno::socket)?,
            SyscallHooks::Tracepoints => {
                self.attach_tracepoint(SOCKET_PROGRAM, "syscalls", "sys_enter_socket")?
            }
        }
        self.packet_sockets = true;
        Ok(())
    }

    /// Runs `sysno`'s own check (packet sockets, listens) in the raw `sys_enter`
    /// program: its `syscall_watch::OWN` bit, kept by every later write of its entry.
    /// No tracepoint of its own is attached, so none is detached at the end either.
    fn own_check(&mut self, sysno: Sysno) -> Result<(), LoadError> {
        // The kernel side knows them by these x86_64 numbers (ebpf syscalls/regs.rs).
        const _: () = assert!(Sysno::socket.id() == 41 && Sysno::listen.id() == 50);
        let nr = sysno.id() as u32;
        if self.own_checks.is_empty() {
            let own = loaded::<RawTracePoint>(&mut self.ebpf, RAW_OWN_PROGRAM)?;
            let fd = own.fd().map_err(failed(RAW_OWN_PROGRAM))?;
            set_slot(&mut self.own_programs, names::OWN_CHECKS, fd)?;
        }
        if !self.own_checks.contains(&nr) {
            self.own_checks.push(nr);
        }
        let bits = self.syscall_watch.get(&nr, 0).unwrap_or(0);
        self.set_watch(nr, bits)?;
        self.attach_raw()
    }

    /// Loads and attaches the DNS answer reader once some profile reads DNS (names to
    /// learn, or answers to report), on the cgroup the other hooks are on (when they
    /// are not attached yet, [`Kernel::attach`] attaches it with them), pinned as they
    /// are; it stays attached while the agent runs. Called before the profile that
    /// needs it is written, so no answer to its first query is missed.
    fn watch_dns_answers(&mut self, wanted: bool) -> Result<(), LoadError> {
        if !wanted || self.dns_answers {
            return Ok(());
        }
        self.dns_answers = true;
        if self.adopt_late_link(DNS_ANSWERS_PROGRAM, DNS_ANSWERS_PROGRAM) {
            // The pinned program array still holds the previous agent's DNS egress half.
            return Ok(());
        }
        // Verified on first use; `attach_programs` has verified them with the rest.
        let egress_dns = loaded::<CgroupSkb>(&mut self.ebpf, DNS_EGRESS_PROGRAM)?;
        let fd = egress_dns.fd().map_err(failed(DNS_EGRESS_PROGRAM))?;
        set_slot(&mut self.dns_egress, names::DNS_EGRESS, fd)?;
        loaded::<CgroupSkb>(&mut self.ebpf, DNS_ANSWERS_PROGRAM)?;
        match self.hooked.clone() {
            Some(path) => self.attach_dns_answers(&path),
            None => Ok(()),
        }
    }

    /// Attaches the (loaded) DNS answer reader to the cgroup at `path` and pins it.
    fn attach_dns_answers(&mut self, path: &Path) -> Result<(), LoadError> {
        let name = DNS_ANSWERS_PROGRAM;
        let cgroup = File::open(path).map_err(|source| LoadError::Cgroup {
            path: path.display().to_string(),
            source,
        })?;
        let program = program::<CgroupSkb>(&mut self.ebpf, name)?;
        let id = program
            .attach(
                cgroup.as_fd(),
                CgroupSkbAttachType::Ingress,
                CgroupAttachMode::Single,
            )
            .map_err(failed(name))?;
        let (_, link) = pinnable(name, program.take_link(id).map_err(failed(name))?)?;
        self.note_program(name, link.info().map(|i| i.program_id()).ok());
        self.pin_late_link(name, link)
    }

    /// Attaches what `wanted` names that is not attached yet (what is attached stays).
    /// The programs it will attach fresh are verified first, side by side.
    pub fn attach_programs(&mut self, wanted: &Wanted) -> Result<(), LoadError> {
        if !self.adopted {
            let fresh = self.fresh_programs(wanted);
            // Which syscalls this kernel implements is read from kallsyms (tens of
            // milliseconds) while the programs verify.
            let read_kallsyms = self.kallsyms.is_none() && self.lacks_tracepoints(wanted.syscalls);
            let ebpf = &mut self.ebpf;
            let (verified, kallsyms) = std::thread::scope(|s| {
                let reader = read_kallsyms.then(|| s.spawn(kallsyms));
                let verified = super::verify::load_all(ebpf, &fresh);
                (verified, reader.and_then(|r| r.join().ok()))
            });
            if kallsyms.is_some() {
                self.kallsyms = kallsyms;
            }
            verified?;
        }
        self.track_processes(wanted.processes)?;
        self.watch_syscalls(wanted.syscalls)?;
        self.watch_packet_sockets(wanted.packet_sockets)?;
        self.watch_listens(wanted.listens)?;
        self.watch_dns_answers(wanted.dns_answers)
    }

    /// The programs [`Kernel::attach_programs`] will attach that are not
    /// attached yet, the slowest to verify first. The same decisions as the attach
    /// calls make (syscalls without a tracepoint of their own are left to them).
    fn fresh_programs(&self, wanted: &Wanted) -> Vec<&'static str> {
        let tracefs = Path::new(crate::host::TRACEFS).join("events/syscalls");
        let raw = self.syscall_hooks == SyscallHooks::Raw;
        let (mut entry, mut exit, mut refused) = (false, false, false);
        let mut own_entry = false;
        for &(sysno, hooks) in wanted.syscalls {
            let nr = sysno.id() as u32;
            let had = match self.watched.get(&nr) {
                Some(Watch::Tracepoint { hooks, .. } | Watch::RawTracepoints { hooks, .. }) => {
                    *hooks
                }
                Some(_) => continue,
                None => Hooks::default(),
            };
            if !raw
                && !tracefs
                    .join(crate::policy::syscalls::tracepoint_name(sysno))
                    .exists()
            {
                continue;
            }
            let now = had.union(hooks);
            if now.by_path && !had.by_path {
                exit = true;
            } else if now.exit && !had.exit {
                refused = true;
            }
            entry |= now.entry && !had.entry;
        }
        if raw {
            // The raw `sys_enter` passes socket and listen calls on to their own checks.
            let own = (wanted.packet_sockets && !self.packet_sockets)
                || (wanted.listens && !self.listens);
            own_entry = own && self.own_checks.is_empty();
            entry |= own;
            // The raw programs judge every syscall of the set: one for each end.
            exit &= !self.raw_exits.full;
            refused &= !self.raw_exits.refused && !exit && !self.raw_exits.full;
            entry &= !self.raw_attached;
        }
        let (exit_program, refused_program, entry_program) = if raw {
            (
                RAW_EXIT_PROGRAM,
                RAW_EXIT_REFUSED_PROGRAM,
                RAW_SYSCALL_PROGRAM,
            )
        } else {
            (
                SYSCALL_EXIT_PROGRAM,
                SYSCALL_EXIT_REFUSED_PROGRAM,
                SYSCALL_PROGRAM,
            )
        };
        let mut fresh = Vec::new();
        if exit {
            fresh.push(exit_program);
        }
        if wanted.processes && !self.tracking {
            if self.raw_processes() {
                fresh.extend(RAW_PROC_PROGRAMS.iter().map(|(name, ..)| *name));
            } else {
                fresh.extend(PROC_PROGRAMS.iter().map(|(name, _)| *name));
            }
        }
        if entry {
            fresh.push(entry_program);
        }
        if own_entry {
            fresh.push(RAW_OWN_PROGRAM);
        }
        if refused {
            fresh.push(refused_program);
        }
        if !raw && wanted.packet_sockets && !self.packet_sockets {
            fresh.push(SOCKET_PROGRAM);
        }
        if !raw && wanted.listens && !self.listens {
            fresh.push(LISTEN_PROGRAM);
        }
        if wanted.dns_answers && !self.dns_answers {
            fresh.extend([DNS_ANSWERS_PROGRAM, DNS_EGRESS_PROGRAM]);
        }
        fresh
    }

    /// Watches listens (`listen()` beyond loopback under `binds: loopback`), as
    /// [`Kernel::watch_packet_sockets`] watches packet sockets.
    fn watch_listens(&mut self, wanted: bool) -> Result<(), LoadError> {
        if !wanted || self.listens {
            return Ok(());
        }
        match self.syscall_hooks {
            SyscallHooks::Raw => self.own_check(Sysno::listen)?,
            SyscallHooks::Tracepoints => {
                self.attach_tracepoint(LISTEN_PROGRAM, "syscalls", "sys_enter_listen")?
            }
        }
        self.listens = true;
        Ok(())
    }

    /// Whether the process table comes from the raw scheduler tracepoints: under
    /// [`SyscallHooks::Raw`], once the kernel's BTF gave the fields they read.
    fn raw_processes(&self) -> bool {
        self.syscall_hooks == SyscallHooks::Raw && self.proc_offsets
    }

    /// Attaches the process-table programs (sched exec and fork) once something needs
    /// them: syscall rules (which apply to armed processes) or uid expectations.
    fn track_processes(&mut self, wanted: bool) -> Result<(), LoadError> {
        if !wanted || self.tracking {
            return Ok(());
        }
        if self.raw_processes() {
            for (name, tracepoint, pin) in RAW_PROC_PROGRAMS {
                self.attach_raw_tracepoint(name, tracepoint, pin)?;
            }
        } else {
            for (name, tracepoint) in PROC_PROGRAMS {
                self.attach_tracepoint(name, "sched", tracepoint)?;
            }
        }
        self.tracking = true;
        Ok(())
    }

    /// Makes sure the programs each of these syscalls needs run on it ([`Hooks`]): its
    /// own entry and exit tracepoints where the kernel has them, the raw `sys_enter`
    /// tracepoint (filtered by number) where it has none. What is attached stays
    /// attached; a syscall that now needs more gets the rest.
    fn watch_syscalls(&mut self, wanted: &[(Sysno, Hooks)]) -> Result<(), LoadError> {
        if self.syscall_hooks == SyscallHooks::Raw {
            return self.watch_syscalls_raw(wanted);
        }
        let tracefs = Path::new(crate::host::TRACEFS).join("events/syscalls");
        for &(sysno, hooks) in wanted {
            let nr = sysno.id() as u32;
            let tracepoint = crate::policy::syscalls::tracepoint_name(sysno);
            if !tracefs.join(&tracepoint).exists() {
                self.watch_without_tracepoint(sysno, hooks)?;
                continue;
            }
            let (arity, mut had, mut bits) = match self.watched.get(&nr) {
                Some(Watch::Tracepoint { arity, hooks }) => {
                    (*arity, *hooks, self.syscall_watch.get(&nr, 0).unwrap_or(0))
                }
                _ => {
                    // Fields after `__syscall_nr` are the arguments. A format that cannot
                    // be read leaves the arity unknown: the kernel then keeps all six
                    // slots (never fewer than the syscall has, which would hide its
                    // flags).
                    let format =
                        std::fs::read_to_string(tracefs.join(&tracepoint).join("format")).ok();
                    let arity = format.as_deref().and_then(syscall_arity);
                    if arity.is_none() {
                        log::warn!("{tracepoint}: no readable format, keeping all six arguments");
                    }
                    let bits = arity.map_or(0, |a| syscall_watch::KNOWN | a as u8);
                    (arity.unwrap_or(6), Hooks::default(), bits)
                }
            };
            let now = had.union(hooks);
            if now == had && self.watched.contains_key(&nr) {
                continue;
            }
            // The kernel learns that an exit program runs before the entry marks calls
            // for it. Calls judged by their path are judged at exit, and calls refused
            // before entry (seccomp) are seen only there (see `ebpf/src/syscalls/`):
            // the path-judging exit program does both; the other one only the second.
            if now.exit {
                bits |= syscall_watch::EXIT;
            }
            self.set_watch(nr, bits)?;
            let exit = tracepoint.replacen("sys_enter_", "sys_exit_", 1);
            if now.by_path && !had.by_path {
                self.attach_tracepoint(SYSCALL_EXIT_PROGRAM, "syscalls", &exit)?;
                had.exit = true;
                had.by_path = true;
                // Only now does the refused-only program leave these calls to it: for
                // a moment both judge a refused call (reported twice), never neither.
                bits |= syscall_watch::BY_PATH;
                self.set_watch(nr, bits)?;
            } else if now.exit && !had.exit {
                self.attach_tracepoint(SYSCALL_EXIT_REFUSED_PROGRAM, "syscalls", &exit)?;
                had.exit = true;
            }
            if now.entry && !had.entry {
                self.attach_tracepoint(SYSCALL_PROGRAM, "syscalls", &tracepoint)?;
                had.entry = true;
            }
            self.watched
                .insert(nr, Watch::Tracepoint { arity, hooks: had });
        }
        let (entries, exits) = self.watched.values().fold((0, 0), |(n, x), w| match w {
            Watch::Tracepoint { hooks, .. } => {
                (n + usize::from(hooks.entry), x + usize::from(hooks.exit))
            }
            _ => (n, x),
        });
        log::debug!("syscall tracepoints attached: {entries} entry, {exits} exit");
        Ok(())
    }

    /// [`Kernel::watch_syscalls`] through the raw `sys_enter` and `sys_exit` tracepoints
    /// ([`SyscallHooks::Raw`]): the syscalls' bits in `SYSCALL_WATCH` say what each
    /// needs, and each raw program is attached once some syscall needs it. The exit
    /// programs are attached before any bit names them and the entry program after,
    /// as for tracepoints: the exit learns of an entry mark before any is made.
    fn watch_syscalls_raw(&mut self, wanted: &[(Sysno, Hooks)]) -> Result<(), LoadError> {
        let tracefs = Path::new(crate::host::TRACEFS).join("events/syscalls");
        let mut changed = Vec::new();
        let (mut entry, mut exit, mut by_path) = (false, false, false);
        for &(sysno, hooks) in wanted {
            let nr = sysno.id() as u32;
            if nr >= cgwarden_common::RAW_SYSCALL_SLOTS {
                log::warn!("cannot watch {}: number {nr} is out of range", sysno.name());
                continue;
            }
            let (arity, had) = match self.watched.get(&nr) {
                Some(Watch::RawTracepoints { arity, hooks }) => (Some(*arity), *hooks),
                Some(_) => continue,
                None => {
                    let tracepoint = tracefs.join(crate::policy::syscalls::tracepoint_name(sysno));
                    if !tracepoint.exists() && !self.implemented(sysno) {
                        self.watched.insert(nr, Watch::NotImplemented);
                        continue;
                    }
                    let format = std::fs::read_to_string(tracepoint.join("format")).ok();
                    (format.as_deref().and_then(syscall_arity), Hooks::default())
                }
            };
            let now = had.union(hooks);
            entry |= now.entry;
            exit |= now.exit;
            by_path |= now.by_path;
            if now != had || !self.watched.contains_key(&nr) {
                changed.push((nr, arity, now));
            }
        }
        if by_path && !self.raw_exits.full {
            self.attach_raw_tracepoint(RAW_EXIT_PROGRAM, "sys_exit", RAW_EXIT_PIN)?;
            self.raw_exits.full = true;
        } else if exit && !self.raw_exits.full && !self.raw_exits.refused {
            self.attach_raw_tracepoint(RAW_EXIT_REFUSED_PROGRAM, "sys_exit", RAW_EXIT_REFUSED_PIN)?;
            self.raw_exits.refused = true;
        }
        for &(nr, arity, now) in &changed {
            let mut bits = arity.map_or(0, |a| syscall_watch::KNOWN | a as u8);
            if now.entry {
                bits |= syscall_watch::RAW;
            }
            if now.exit {
                bits |= syscall_watch::EXIT;
            }
            if now.by_path {
                bits |= syscall_watch::BY_PATH;
            }
            self.set_watch(nr, bits)?;
            let arity = arity.unwrap_or(6);
            self.watched
                .insert(nr, Watch::RawTracepoints { arity, hooks: now });
        }
        if entry {
            self.attach_raw()?;
        }
        log::debug!(
            "syscalls watched through raw sys_enter and sys_exit: {} changed",
            changed.len()
        );
        Ok(())
    }

    /// Whether some of these syscalls, not watched yet, have no tracepoint here (so
    /// whether the kernel implements them will be asked).
    fn lacks_tracepoints(&self, wanted: &[(Sysno, Hooks)]) -> bool {
        let tracefs = Path::new(crate::host::TRACEFS).join("events/syscalls");
        wanted.iter().any(|&(sysno, _)| {
            !self.watched.contains_key(&(sysno.id() as u32))
                && !tracefs
                    .join(crate::policy::syscalls::tracepoint_name(sysno))
                    .exists()
        })
    }

    /// Whether the running kernel implements `sysno` (from kallsyms, read once); a
    /// syscall it cannot tell about counts as implemented.
    fn implemented(&mut self, sysno: Sysno) -> bool {
        let kallsyms = self.kallsyms.get_or_insert_with(kallsyms);
        if implemented(kallsyms, sysno.name()) == Some(false) {
            log::info!(
                "{} is not implemented by this kernel (it answers ENOSYS): nothing to watch",
                sysno.name()
            );
            return false;
        }
        true
    }

    /// Watches a syscall the kernel has no tracepoint for: not at all when the kernel
    /// does not implement it, through the raw `sys_enter` program otherwise (judged at
    /// entry only: no exit program sees it, so calls refused before entry and paths are
    /// not judged).
    fn watch_without_tracepoint(&mut self, sysno: Sysno, hooks: Hooks) -> Result<(), LoadError> {
        let nr = sysno.id() as u32;
        if self.watched.contains_key(&nr) {
            return Ok(());
        }
        if nr >= cgwarden_common::RAW_SYSCALL_SLOTS {
            log::warn!("cannot watch {}: number {nr} is out of range", sysno.name());
            return Ok(());
        }
        // No tracepoint may mean the kernel was built without the syscall: then every
        // call answers ENOSYS, and watching it would cost every syscall of every task a
        // program run for nothing.
        if !self.implemented(sysno) {
            self.watched.insert(nr, Watch::NotImplemented);
            return Ok(());
        }
        if hooks.by_path {
            log::warn!(
                "{} has no tracepoint here: its paths cannot be judged (only its rule, at entry)",
                sysno.name()
            );
        }
        self.set_watch(nr, syscall_watch::RAW)?;
        if !self.raw_attached {
            self.attach_raw()?;
            log::info!(
                "{} has no tracepoint here: watching it through raw sys_enter (every syscall of every task now pays for one array lookup)",
                sysno.name()
            );
        }
        self.watched.insert(nr, Watch::Raw);
        Ok(())
    }

    /// Tells the kernel how syscall `nr` is watched (see `syscall_watch`).
    fn set_watch(&mut self, nr: u32, value: u8) -> Result<(), LoadError> {
        if nr >= cgwarden_common::RAW_SYSCALL_SLOTS {
            return Ok(());
        }
        let value = if self.own_checks.contains(&nr) {
            value | syscall_watch::OWN
        } else {
            value
        };
        self.syscall_watch
            .set(nr, value, 0)
            .map_err(|source| LoadError::Map {
                name: names::SYSCALL_WATCH,
                source,
            })
    }

    /// The syscalls watched, and how.
    pub fn watched_syscalls(&self) -> &std::collections::BTreeMap<u32, Watch> {
        &self.watched
    }

    /// Hands out the event ring buffer (once).
    pub fn take_events(&mut self) -> Option<RingBuf<MapData>> {
        self.events.take()
    }
}

/// Removes every pinned link and map under `state`: the programs detach and enforcement
/// ends. Returns false when there was nothing to remove.
pub fn uninstall(state: &Path) -> io::Result<bool> {
    if !state.exists() {
        return Ok(false);
    }
    if let Ok(entries) = fs::read_dir(state) {
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with("maps-") {
                release_held(&entry.path());
            }
        }
    }
    fs::remove_dir_all(state)?;
    Ok(true)
}

/// Lets the processes a pinned `GATED` map (in the maps directory `maps`) holds at the
/// gate go on: once the gate's pins are gone, no agent would.
fn release_held(maps: &Path) {
    let Ok(data) = MapData::from_pin(maps.join(names::GATED)) else {
        return;
    };
    let Ok(gated) =
        HashMap::<_, u32, cgwarden_common::GatedProc>::try_from(aya::maps::Map::HashMap(data))
    else {
        return;
    };
    for pid in gated.keys().filter_map(Result::ok) {
        // SAFETY: kill(2) with a valid signal; a pid that is gone gives ESRCH.
        unsafe { libc::kill(pid as i32, libc::SIGCONT) };
    }
}

/// Identifies this build's object, so pins of another build are never reused.
pub fn object_id() -> String {
    let hash = OBJECT.iter().fold(cgwarden_common::FNV_OFFSET, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(cgwarden_common::FNV_PRIME)
    });
    format!("{hash:016x}")
}

fn link_dir(state: &Path) -> PathBuf {
    state.join(format!("links-{}", object_id()))
}

fn all_programs() -> impl Iterator<Item = &'static str> {
    SOCK_ADDR_PROGRAMS
        .into_iter()
        .chain([SKB_EGRESS_PROGRAM])
        .chain([SYSCTL_PROGRAM, SOCK_CREATE_PROGRAM, DEVICE_PROGRAM])
}

/// Unpins the links and maps of other builds (their programs detach once unpinned).
fn remove_other_builds(state: &Path) {
    let ours = object_id();
    let Ok(entries) = fs::read_dir(state) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let other =
            (name.starts_with("links-") || name.starts_with("maps-")) && !name.ends_with(&ours);
        if other {
            if name.starts_with("maps-") {
                release_held(&entry.path());
            }
            // Links first: they hold the old programs, which hold the old maps.
            if let Err(e) = fs::remove_dir_all(entry.path()) {
                log::warn!("could not remove {}: {e}", entry.path().display());
            }
        }
    }
}

fn pin_error(path: &Path, e: impl std::fmt::Display) -> LoadError {
    LoadError::Pin {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

fn link_error_io(name: &'static str, e: &io::Error) -> LoadError {
    LoadError::Pin {
        path: name.to_owned(),
        message: e.to_string(),
    }
}

fn link_error(name: &'static str, e: aya::programs::links::LinkError) -> LoadError {
    LoadError::Pin {
        path: name.to_owned(),
        message: e.to_string(),
    }
}

/// A program of the object, as its type.
fn program<'a, T>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut T, LoadError>
where
    &'a mut T: TryFrom<&'a mut aya::programs::Program, Error = ProgramError>,
{
    ebpf.program_mut(name)
        .ok_or(LoadError::MissingProgram(name))?
        .try_into()
        .map_err(failed(name))
}

/// Puts the program `fd` in slot 0 of the program array `map` (named `name`), for the
/// program that tail-calls through it.
fn set_slot(
    map: &mut ProgramArray<MapData>,
    name: &'static str,
    fd: &aya::programs::ProgramFd,
) -> Result<(), LoadError> {
    map.set(0, fd, 0)
        .map_err(|source| LoadError::Map { name, source })
}

/// The kernel's symbols (empty when they cannot be read).
fn kallsyms() -> String {
    std::fs::read_to_string("/proc/kallsyms").unwrap_or_default()
}

/// The number of arguments a `syscalls:sys_enter_*` tracepoint's format lists (the
/// fields after `__syscall_nr`), or `None` when it has no `__syscall_nr` field.
fn syscall_arity(format: &str) -> Option<usize> {
    let mut lines = format.lines();
    lines.by_ref().find(|l| l.contains("__syscall_nr"))?;
    Some(
        lines
            .filter(|l| l.trim_start().starts_with("field:"))
            .count()
            .min(6),
    )
}

/// A cgroup program's link as a link that can be pinned.
fn pinnable<L>(name: &'static str, link: L) -> Result<(&'static str, FdLink), LoadError>
where
    FdLink: TryFrom<L, Error = aya::programs::links::LinkError>,
{
    Ok((
        name,
        FdLink::try_from(link).map_err(|e| link_error(name, e))?,
    ))
}

/// A tracepoint program, loaded (verified) on first use.
fn loaded<'a, T>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut T, LoadError>
where
    &'a mut T: TryFrom<&'a mut aya::programs::Program, Error = ProgramError>,
{
    let program = ebpf
        .program_mut(name)
        .ok_or(LoadError::MissingProgram(name))?;
    super::verify::load_one(name, program)?;
    program.try_into().map_err(failed(name))
}

/// Wraps a program's error with its name.
fn failed(name: &'static str) -> impl FnOnce(ProgramError) -> LoadError {
    move |source| LoadError::Program { name, source }
}

/// A duplicate of map `name`'s fd, for the system calls aya has no method for (batched
/// writes).
fn map_fd(ebpf: &Ebpf, name: &'static str) -> Result<std::os::fd::OwnedFd, LoadError> {
    use std::os::fd::AsFd;
    let data = match ebpf.map(name) {
        Some(aya::maps::Map::LpmTrie(data) | aya::maps::Map::HashMap(data)) => data,
        _ => return Err(LoadError::MissingMap(name)),
    };
    data.fd()
        .as_fd()
        .try_clone_to_owned()
        .map_err(|source| LoadError::Map {
            name,
            source: aya::maps::MapError::SyscallError(aya::sys::SyscallError {
                call: "dup",
                io_error: source,
            }),
        })
}

fn take_map<T>(ebpf: &mut Ebpf, name: &'static str) -> Result<T, LoadError>
where
    T: TryFrom<aya::maps::Map, Error = aya::maps::MapError>,
{
    let map = ebpf.take_map(name).ok_or(LoadError::MissingMap(name))?;
    T::try_from(map).map_err(|source| LoadError::Map { name, source })
}

#[cfg(test)]
mod tests {
    use super::{implemented, syscall_arity};

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn a_syscall_with_only_its_weak_stub_is_not_implemented() {
        let kallsyms = "ffffffff81312750 T __x64_sys_ni_syscall\nffffffff81382930 T __x64_sys_getppid\nffffffff81398380 W __x64_sys_init_module\n";
        assert_eq!(implemented(kallsyms, "getppid"), Some(true));
        assert_eq!(implemented(kallsyms, "init_module"), Some(false));
        assert_eq!(implemented(kallsyms, "kexec_load"), Some(false));
        // Unreadable (or another architecture's): not known, so it is watched.
        assert_eq!(implemented("", "init_module"), None);
        // The running kernel, whose getppid is implemented.
        let here = std::fs::read_to_string("/proc/kallsyms").unwrap_or_default();
        assert_ne!(implemented(&here, "getppid"), Some(false));
    }

    /// `Kernel::load` gives aya no kernel BTF (`btf(None)`): that is right only while
    /// the object asks for no CO-RE relocation, which would then go unapplied.
    #[test]
    fn the_object_has_no_core_relocations() {
        use object::{Object as _, ObjectSection as _};
        let elf = object::File::parse(super::OBJECT).unwrap();
        let Some(ext) = elf.section_by_name(".BTF.ext") else {
            return;
        };
        let ext = ext.data().unwrap();
        let u32_at = |o: usize| u32::from_le_bytes(ext[o..o + 4].try_into().unwrap());
        assert_eq!(u16::from_le_bytes([ext[0], ext[1]]), 0xeb9f, "not BTF.ext");
        // btf_ext_header: magic, version, flags, hdr_len, func_info and line_info
        // (offset, length), then core_relo (offset, length) when hdr_len reaches it.
        let hdr_len = u32_at(4) as usize;
        let core_relo_len = if hdr_len >= 32 { u32_at(28) } else { 0 };
        assert_eq!(
            core_relo_len, 0,
            "the eBPF object has CO-RE relocations: give aya the kernel BTF in Kernel::load"
        );
    }

    #[test]
    fn arity_comes_from_the_fields_after_the_syscall_number() {
        let format = "name: sys_enter_setns\nformat:\n\tfield:unsigned short common_type;\toffset:0;\n\tfield:int __syscall_nr;\toffset:8;\n\tfield:int fd;\toffset:16;\n\tfield:int flags;\toffset:24;\n\nprint fmt: \"fd\"";
        assert_eq!(syscall_arity(format), Some(2));
        assert_eq!(syscall_arity("garbage"), None);
        assert_eq!(syscall_arity(""), None);
    }
}
