//! cgwarden: a kernel-level egress and syscall monitor for containers.
//!
//! The kernel side (`ebpf/`) decides and reports; this library is the agent that feeds
//! it profiles and turns its records into events:
//! - [`policy`]: profile schema, validation, compilation to map entries;
//! - [`bpf`]: loading the object, attaching programs, writing maps;
//! - [`cgroups`]: the cgroup v2 tree; [`engines`]: which containers run, and their names;
//! - [`posture`]: each container's configuration against the CIS Docker Benchmark;
//! - [`host`]: privileges and mounts;
//! - [`events`]: decoding and enriching kernel records; [`aggregate`]: repeat counts;
//!   [`reach`]: what a failed open's path reaches, where the kernel could not decide;
//! - [`agent`] and [`serve`]: the running agent; [`control`]: its local socket;
//! - [`sinks`], [`metrics`]: where events and counters go; [`config`]: the agent's file;
//!   [`notify`]: telling systemd the agent is enforcing;
//! - [`exec`]: one command (or, for a while, a running cgroup) under a profile;
//!   [`learn`]: learn mode, merging, checking a profile;
//! - [`yaml`]: reading YAML, with the position of every error.

pub mod agent;
pub mod bpf;
pub mod btf;
pub mod caps;
pub mod cgroups;
pub mod config;
pub mod control;
pub mod dns_wire;
pub mod engines;
pub mod events;
pub mod exec;
pub mod host;
pub mod import;
pub mod learn;
pub mod metrics;
pub mod notify;
pub mod policy;
pub mod posture;
pub mod procfs;
pub mod report;
pub mod resolver;
pub mod running;
pub mod serve;
pub mod sinks;
pub mod syscalls;
pub mod watch;
pub mod yaml;
