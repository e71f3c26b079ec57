//! Loading the embedded eBPF object and attaching its programs.

use std::{fs::File, os::fd::AsFd, path::Path};

use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, HashMap, LpmTrie, MapData, PerCpuArray, RingBuf},
    programs::{CgroupAttachMode, CgroupSkb, CgroupSkbAttachType, CgroupSockAddr, ProgramError},
};
use cgwarden_common::{
    Config, EgressKey, EgressValue, FlowKey, FlowState, LearnedKey, LearnedValue, NameCountKey,
    NameKey, ProfileRef, maps as names,
};

/// The object built from `ebpf/` by `build.rs`.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/cgwarden-ebpf"));

/// The sock_addr programs, attached to every monitored cgroup subtree.
const SOCK_ADDR_PROGRAMS: [&str; 4] = ["connect4", "connect6", "sendmsg4", "sendmsg6"];

/// The packet backstop for flows no socket-address hook sees (ICMP, raw sockets), and
/// the DNS answer reader.
const SKB_PROGRAMS: [(&str, CgroupSkbAttachType); 2] = [
    ("skb_egress", CgroupSkbAttachType::Egress),
    ("skb_ingress", CgroupSkbAttachType::Ingress),
];

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
        source: std::io::Error,
    },
}

/// The loaded kernel side: programs (with their links) and typed map handles.
pub struct Kernel {
    // Owns the programs and their links: dropping it detaches everything.
    ebpf: Ebpf,
    pub(super) cgroup_profiles: HashMap<MapData, u64, ProfileRef>,
    pub(super) config: Array<MapData, Config>,
    pub(super) egress: LpmTrie<MapData, EgressKey, EgressValue>,
    pub(super) counters: PerCpuArray<MapData, u64>,
    pub(super) flows: HashMap<MapData, FlowKey, FlowState>,
    pub(super) names: HashMap<MapData, NameKey, EgressValue>,
    pub(super) learned: HashMap<MapData, LearnedKey, LearnedValue>,
    pub(super) name_counts: HashMap<MapData, NameCountKey, u32>,
    events: Option<RingBuf<MapData>>,
}

impl Kernel {
    /// Loads the object and every program into the kernel (nothing is attached yet).
    pub fn load() -> Result<Self, LoadError> {
        let mut ebpf = EbpfLoader::new().load(OBJECT)?;
        for name in SOCK_ADDR_PROGRAMS {
            let program: &mut CgroupSockAddr = ebpf
                .program_mut(name)
                .ok_or(LoadError::MissingProgram(name))?
                .try_into()
                .map_err(|source| LoadError::Program { name, source })?;
            program
                .load()
                .map_err(|source| LoadError::Program { name, source })?;
        }
        for (name, _) in SKB_PROGRAMS {
            skb_program(&mut ebpf, name)?
                .load()
                .map_err(|source| LoadError::Program { name, source })?;
        }
        let cgroup_profiles = take_map(&mut ebpf, names::CGROUP_PROFILES)?;
        let config = take_map(&mut ebpf, names::CONFIG)?;
        let egress = take_map(&mut ebpf, names::EGRESS)?;
        let counters = take_map(&mut ebpf, names::COUNTERS)?;
        let flows = take_map(&mut ebpf, names::FLOWS)?;
        let names_map = take_map(&mut ebpf, names::NAMES)?;
        let learned = take_map(&mut ebpf, names::LEARNED)?;
        let name_counts = take_map(&mut ebpf, names::NAME_COUNTS)?;
        let events = Some(take_map(&mut ebpf, names::EVENTS)?);
        Ok(Self {
            ebpf,
            cgroup_profiles,
            config,
            egress,
            counters,
            flows,
            names: names_map,
            learned,
            name_counts,
            events,
        })
    }

    /// Attaches every hook to the cgroup at `path` (and so to its whole subtree). The
    /// links live as long as this `Kernel`.
    pub fn attach(&mut self, path: &Path) -> Result<(), LoadError> {
        let cgroup = File::open(path).map_err(|source| LoadError::Cgroup {
            path: path.display().to_string(),
            source,
        })?;
        for name in SOCK_ADDR_PROGRAMS {
            let program: &mut CgroupSockAddr = self
                .ebpf
                .program_mut(name)
                .ok_or(LoadError::MissingProgram(name))?
                .try_into()
                .map_err(|source| LoadError::Program { name, source })?;
            program
                .attach(cgroup.as_fd(), CgroupAttachMode::Single)
                .map_err(|source| LoadError::Program { name, source })?;
        }
        for (name, attach_type) in SKB_PROGRAMS {
            skb_program(&mut self.ebpf, name)?
                .attach(cgroup.as_fd(), attach_type, CgroupAttachMode::Single)
                .map_err(|source| LoadError::Program { name, source })?;
        }
        Ok(())
    }

    /// Hands out the event ring buffer (once).
    pub fn take_events(&mut self) -> Option<RingBuf<MapData>> {
        self.events.take()
    }
}

fn skb_program<'a>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut CgroupSkb, LoadError> {
    ebpf.program_mut(name)
        .ok_or(LoadError::MissingProgram(name))?
        .try_into()
        .map_err(|source| LoadError::Program { name, source })
}

fn take_map<T>(ebpf: &mut Ebpf, name: &'static str) -> Result<T, LoadError>
where
    T: TryFrom<aya::maps::Map, Error = aya::maps::MapError>,
{
    let map = ebpf.take_map(name).ok_or(LoadError::MissingMap(name))?;
    T::try_from(map).map_err(|source| LoadError::Map { name, source })
}
