//! cgwarden: a kernel-level egress and syscall monitor for containers.
//!
//! The kernel side (`ebpf/`) decides and reports; this library is the agent that feeds
//! it profiles and turns its records into events. Where things are decided:
//! - **a connect or UDP send**: in the kernel, `ebpf/src/sockaddr.rs` (the hooks) and
//!   `ebpf/src/egress.rs` (the allowlist lookup), with `verdict.rs` the one
//!   enforce-or-audit choice; the rules come from [`policy::compile`];
//! - **a watched syscall**: `ebpf/src/syscalls/enter.rs` (by rule and arguments) and
//!   `exit.rs` (by path and result, and calls a seccomp filter refused); the tables
//!   profiles name syscalls by are in [`policy::syscalls`];
//! - **a deviation from the runtime profile**: in the kernel (credentials at exec,
//!   devices, sockets, sysctl writes) and in [`agent`]'s `deviations` (the OCI
//!   configuration); [`posture`] checks the CIS Docker Benchmark;
//! - **which container a cgroup is**: [`engines`] (and the gate, `agent::gate`).
//!
//! Modules:
//! - [`policy`]: the profile schema, its validation and compilation, the syscall,
//!   capability and device tables, profiles imported from OCI and Compose files;
//! - [`bpf`]: loading the object, attaching programs, writing maps, BTF, raw bpf(2);
//! - [`host`]: host preparation, `/proc`, the cgroup v2 tree, systemd notification;
//! - [`engines`]: which containers run, their names, and watching them appear;
//! - [`posture`]: each container's configuration against the CIS Docker Benchmark;
//! - [`events`]: the pipeline from a kernel record to what users read (decode, enrich,
//!   aggregate);
//! - [`output`]: where events go (JSON, Falco, files, syslog, HTTP) and the metrics;
//! - [`dns`]: the DNS wire format and the resolver of the names profiles allow;
//! - [`agent`] and [`serve`]: the running agent and its event loop; [`control`]: its
//!   root-only local socket; [`config`]: its file;
//! - [`exec`]: one command (or, for a while, a running cgroup) under a profile;
//!   [`learn`]: learn mode, merging, checking and exporting a profile; [`report`]: what
//!   an events file says;
//! - [`yaml`]: reading YAML, with the position of every error; [`error`]: the
//!   library's errors by class, and the exit code of each.

pub mod agent;
pub mod bpf;
pub mod config;
pub mod control;
pub mod dns;
pub mod engines;
pub mod error;
pub mod events;
pub mod exec;
pub mod host;
pub mod learn;
pub mod output;
pub mod policy;
pub mod posture;
pub mod report;
pub mod serve;
pub mod yaml;

pub use error::Error;
