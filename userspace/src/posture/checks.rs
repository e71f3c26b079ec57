//! The checks: one function each, deciding a [`Verdict`] with its [`Evidence`] from a
//! container's [`Facts`]. The OCI spec decides most of them for every engine; Docker's
//! own files decide the ones the spec cannot (ports, healthcheck, bridge) and add the
//! setting the user wrote (`HostConfig.Privileged`, `HostConfig.PidMode`). A check no
//! fact decides is unknown.

use std::path::{Component, Path, PathBuf};

use serde_json::Value;

use super::{
    Check, Evidence, Verdict,
    facts::{Facts, Source},
};
use crate::engines::Engine;

type Outcome = (Verdict, Vec<Evidence>);

/// Decides one check.
pub fn decide(check: Check, f: &Facts) -> Outcome {
    match check {
        Check::NonRootUser => with_spec(f, user),
        Check::Capabilities => with_spec(f, capabilities),
        Check::Privileged => privileged(f),
        Check::SensitiveMounts => with_spec(f, sensitive_mounts),
        Check::PrivilegedPorts => docker_only(f, |s, _| privileged_ports(s)),
        Check::HostNetwork => namespace(f, "network", "net", "NetworkMode"),
        Check::MemoryLimit => resource(f, "Memory", "linux.resources.memory.limit", |s| {
            &s["linux"]["resources"]["memory"]["limit"]
        }),
        Check::CpuShares => cpu(f),
        Check::ReadOnlyRoot => with_spec(f, |s, _| {
            flag(s, "root.readonly", &s.value["root"]["readonly"])
        }),
        Check::PortInterface => docker_only(f, |s, _| port_interface(s)),
        Check::HostPid => namespace(f, "pid", "pid", "PidMode"),
        Check::HostIpc => namespace(f, "ipc", "ipc", "IpcMode"),
        Check::HostDevices => with_spec(f, devices),
        Check::SharedPropagation => with_spec(f, |s, _| propagation(s)),
        Check::HostUts => namespace(f, "uts", "uts", "UTSMode"),
        Check::Seccomp => with_spec(f, seccomp),
        Check::NoNewPrivileges => with_spec(f, |s, _| {
            flag(
                s,
                "process.noNewPrivileges",
                &s.value["process"]["noNewPrivileges"],
            )
        }),
        Check::Healthcheck => docker_only(f, |_, f| healthcheck(f)),
        Check::PidsLimit => resource(f, "PidsLimit", "linux.resources.pids.limit", |s| {
            &s["linux"]["resources"]["pids"]["limit"]
        }),
        Check::DefaultBridge => docker_only(f, default_bridge),
        Check::HostUserns => namespace(f, "user", "user", "UsernsMode"),
        Check::RuntimeSocket => with_spec(f, runtime_socket),
    }
}

fn ev(key: impl Into<String>, value: impl Into<String>, file: &str) -> Evidence {
    Evidence {
        key: key.into(),
        value: value.into(),
        file: file.to_owned(),
    }
}

/// A JSON value as evidence shows it: strings bare, the rest as JSON, absent as such.
fn text(v: &Value) -> String {
    match v {
        Value::Null => "absent".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Runs a check that needs the OCI spec; unknown without one.
fn with_spec(f: &Facts, check: impl Fn(&Source, &Facts) -> Outcome) -> Outcome {
    match &f.spec {
        Some(spec) => check(spec, f),
        None => (
            Verdict::Unknown,
            vec![ev(
                "config.json",
                "the bundle's config.json cannot be read",
                &f.state_file,
            )],
        ),
    }
}

/// Runs a check only Docker's own files decide; unknown for other engines.
fn docker_only(f: &Facts, check: impl Fn(&Source, &Facts) -> Outcome) -> Outcome {
    match (&f.host_config, f.engine) {
        (Some(host), _) => check(host, f),
        (None, Engine::Docker) => (
            Verdict::Unknown,
            vec![ev(
                "hostconfig.json",
                "Docker's hostconfig.json cannot be read",
                &f.state_file,
            )],
        ),
        (None, engine) => (
            Verdict::Unknown,
            vec![ev(
                "engine",
                format!(
                    "{engine} keeps this setting outside the OCI config, where cgwarden does not read it"
                ),
                &f.state_file,
            )],
        ),
    }
}

/// A boolean that must be true.
fn flag(s: &Source, key: &str, v: &Value) -> Outcome {
    let verdict = if v.as_bool() == Some(true) {
        Verdict::Pass
    } else {
        Verdict::Fail
    };
    (verdict, vec![ev(key, text(v), &s.file)])
}

/// A resource limit that must be set (above zero).
fn limit(s: &Source, key: &str, v: &Value) -> Outcome {
    let verdict = if v.as_i64().is_some_and(|n| n > 0) {
        Verdict::Pass
    } else {
        Verdict::Fail
    };
    (verdict, vec![ev(key, text(v), &s.file)])
}

/// 4.1: the container's process runs as a uid other than 0.
fn user(s: &Source, f: &Facts) -> Outcome {
    let uid = &s.value["process"]["user"]["uid"];
    let mut evidence = vec![ev("process.user.uid", text(uid), &s.file)];
    let root = uid.as_u64().unwrap_or(0) == 0;
    if root && let Some(c) = &f.docker_config {
        let user = &c.value["Config"]["User"];
        evidence.push(ev(
            "Config.User",
            match user.as_str() {
                Some("") | None => "unset (the image's user)".to_owned(),
                Some(u) => u.to_owned(),
            },
            &c.file,
        ));
    }
    (if root { Verdict::Fail } else { Verdict::Pass }, evidence)
}

/// The capabilities a Docker container holds when none are added or dropped.
const DOCKER_DEFAULT_CAPS: [&str; 14] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

const CAP_SETS: [&str; 5] = [
    "bounding",
    "effective",
    "permitted",
    "inheritable",
    "ambient",
];

/// 5.3: no set holds a capability beyond Docker's default set.
fn capabilities(s: &Source, f: &Facts) -> Outcome {
    let sets = &s.value["process"]["capabilities"];
    let mut evidence = Vec::new();
    let mut held = std::collections::BTreeSet::new();
    for set in CAP_SETS {
        let names: Vec<String> = sets[set]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c.as_str().map(|c| c.to_ascii_uppercase()))
            .collect();
        held.extend(names.iter().cloned());
        let beyond: Vec<&str> = names
            .iter()
            .map(String::as_str)
            .filter(|c| !DOCKER_DEFAULT_CAPS.contains(c))
            .collect();
        if !beyond.is_empty() {
            evidence.push(ev(
                format!("process.capabilities.{set}"),
                format!("{} beyond Docker's default set", beyond.join(", ")),
                &s.file,
            ));
        }
    }
    if evidence.is_empty() {
        return (
            Verdict::Pass,
            vec![ev(
                "process.capabilities",
                format!(
                    "{} held, none beyond Docker's default set",
                    if held.is_empty() {
                        "none".to_owned()
                    } else {
                        held.into_iter().collect::<Vec<_>>().join(", ")
                    }
                ),
                &s.file,
            )],
        );
    }
    if let Some(h) = &f.host_config {
        evidence.push(ev("HostConfig.CapAdd", text(&h.value["CapAdd"]), &h.file));
    }
    (Verdict::Fail, evidence)
}

/// 5.4: not privileged, as the engine recorded it (Docker's `HostConfig.Privileged`,
/// Podman's annotation) and in effect: `CAP_SYS_ADMIN` with no seccomp filter and no
/// masked paths is privileged whatever flag made it.
fn privileged(f: &Facts) -> Outcome {
    let mut evidence = Vec::new();
    let mut fail = false;
    if let Some(h) = &f.host_config {
        let p = &h.value["Privileged"];
        fail |= p.as_bool() == Some(true);
        evidence.push(ev("HostConfig.Privileged", text(p), &h.file));
    }
    let Some(s) = &f.spec else {
        if fail {
            return (Verdict::Fail, evidence);
        }
        evidence.push(ev(
            "config.json",
            "the bundle's config.json cannot be read",
            &f.state_file,
        ));
        return (Verdict::Unknown, evidence);
    };
    let annotation = &s.value["annotations"]["io.podman.annotations.privileged"];
    if !annotation.is_null() {
        fail |= annotation.as_str() == Some("TRUE");
        evidence.push(ev(
            "annotations[io.podman.annotations.privileged]",
            text(annotation),
            &s.file,
        ));
    }
    let linux = &s.value["linux"];
    let sys_admin = s.value["process"]["capabilities"]["bounding"]
        .as_array()
        .is_some_and(|caps| caps.iter().any(|c| c.as_str() == Some("CAP_SYS_ADMIN")));
    let no_seccomp = linux["seccomp"].is_null();
    let unmasked = linux["maskedPaths"].as_array().is_none_or(|m| m.is_empty());
    if sys_admin && no_seccomp && unmasked {
        fail = true;
        evidence.push(ev(
            "process.capabilities.bounding, linux.seccomp, linux.maskedPaths",
            "CAP_SYS_ADMIN held, no seccomp filter, no masked paths: privileged in effect",
            &s.file,
        ));
    } else {
        let mut missing = Vec::new();
        if !sys_admin {
            missing.push("CAP_SYS_ADMIN not held");
        }
        if !no_seccomp {
            missing.push("a seccomp filter in force");
        }
        if !unmasked {
            missing.push("/proc paths masked");
        }
        evidence.push(ev(
            "process.capabilities.bounding, linux.seccomp, linux.maskedPaths",
            format!("not privileged in effect: {}", missing.join(", ")),
            &s.file,
        ));
    }
    (if fail { Verdict::Fail } else { Verdict::Pass }, evidence)
}

/// The host directories 5.5 names.
const SENSITIVE: [&str; 8] = [
    "/", "/boot", "/dev", "/etc", "/lib", "/proc", "/sys", "/usr",
];

/// A bind mount of the spec: its index, source, destination and whether it is
/// read-only.
struct Bind<'a> {
    index: usize,
    source: &'a str,
    destination: &'a str,
    read_only: bool,
}

impl Bind<'_> {
    fn key(&self) -> String {
        format!("mounts[{}]", self.index)
    }

    fn text(&self) -> String {
        format!(
            "{} -> {} ({})",
            self.source,
            self.destination,
            if self.read_only { "ro" } else { "rw" }
        )
    }
}

/// A spec mount's `options`.
fn mount_options(m: &Value) -> Vec<&str> {
    m["options"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect()
}

fn binds(spec: &Value) -> Vec<Bind<'_>> {
    spec["mounts"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
        .filter_map(|(index, m)| {
            let options = mount_options(m);
            let bind = m["type"].as_str() == Some("bind")
                || options.iter().any(|o| *o == "bind" || *o == "rbind");
            bind.then(|| Bind {
                index,
                source: m["source"].as_str().unwrap_or(""),
                destination: m["destination"].as_str().unwrap_or(""),
                read_only: options.contains(&"ro"),
            })
        })
        .collect()
}

/// A path with `.`, `..` and repeated slashes taken out, as the kernel would walk it
/// (without following symlinks).
fn lexical(path: &str) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in Path::new(path).components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

/// The sensitive directory `path` is, or is inside (`/` only itself).
fn sensitive_dir(path: &Path) -> Option<&'static str> {
    SENSITIVE
        .into_iter()
        .find(|d| path == Path::new(d) || (*d != "/" && path.starts_with(d)))
}

/// 5.5: no bind mount's source is a sensitive host directory or inside one, as
/// written or as its symlinks resolve on the host.
fn sensitive_mounts(s: &Source, _: &Facts) -> Outcome {
    let all = binds(&s.value);
    let found: Vec<Evidence> = all
        .iter()
        .filter_map(|b| {
            let written = lexical(b.source);
            let resolved = std::fs::canonicalize(&written).ok();
            let dir =
                sensitive_dir(&written).or_else(|| resolved.as_deref().and_then(sensitive_dir))?;
            let via = match &resolved {
                Some(r) if r != &written => format!(", which is {}", r.display()),
                _ => String::new(),
            };
            Some(ev(
                b.key(),
                format!(
                    "{}{via}: host {dir}{}",
                    b.text(),
                    if b.read_only { "" } else { ", writable" }
                ),
                &s.file,
            ))
        })
        .collect();
    if found.is_empty() {
        (
            Verdict::Pass,
            vec![ev(
                "mounts",
                format!("{} bind mounts, none of {}", all.len(), SENSITIVE.join(" ")),
                &s.file,
            )],
        )
    } else {
        (Verdict::Fail, found)
    }
}

/// Docker's `HostConfig.PortBindings`: (container port, host address, host port).
fn port_bindings(h: &Value) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for (port, bindings) in h["PortBindings"].as_object().into_iter().flatten() {
        for b in bindings.as_array().into_iter().flatten() {
            out.push((
                port.clone(),
                b["HostIp"].as_str().unwrap_or("").to_owned(),
                b["HostPort"].as_str().unwrap_or("").to_owned(),
            ));
        }
    }
    out
}

fn binding_text(port: &str, ip: &str, host_port: &str) -> String {
    format!(
        "{}:{} -> {port}",
        if ip.is_empty() { "0.0.0.0" } else { ip },
        if host_port.is_empty() {
            "random"
        } else {
            host_port
        }
    )
}

/// 5.7: no host port below 1024 is mapped.
fn privileged_ports(h: &Source) -> Outcome {
    let all = port_bindings(&h.value);
    let low: Vec<Evidence> = all
        .iter()
        .filter(|(_, _, p)| p.parse::<u16>().is_ok_and(|p| p > 0 && p < 1024))
        .map(|(port, ip, p)| {
            ev(
                format!("HostConfig.PortBindings[{port}]"),
                binding_text(port, ip, p),
                &h.file,
            )
        })
        .collect();
    if low.is_empty() {
        (
            Verdict::Pass,
            vec![ev(
                "HostConfig.PortBindings",
                format!("{} bindings, none below host port 1024", all.len()),
                &h.file,
            )],
        )
    } else {
        (Verdict::Fail, low)
    }
}

/// 5.13: every mapped port is bound to one host address, not all of them.
fn port_interface(h: &Source) -> Outcome {
    let all = port_bindings(&h.value);
    let wild: Vec<Evidence> = all
        .iter()
        .filter(|(_, ip, _)| matches!(ip.as_str(), "" | "0.0.0.0" | "::" | "[::]"))
        .map(|(port, ip, p)| {
            ev(
                format!("HostConfig.PortBindings[{port}]"),
                format!("{}: every host interface", binding_text(port, ip, p)),
                &h.file,
            )
        })
        .collect();
    if wild.is_empty() {
        (
            Verdict::Pass,
            vec![ev(
                "HostConfig.PortBindings",
                if all.is_empty() {
                    "no port mapped".to_owned()
                } else {
                    all.iter()
                        .map(|(port, ip, p)| binding_text(port, ip, p))
                        .collect::<Vec<_>>()
                        .join(", ")
                },
                &h.file,
            )],
        )
    } else {
        (Verdict::Fail, wild)
    }
}

/// 5.9, 5.15, 5.16, 5.20, 5.30: the container has a namespace of its own of `oci_type`
/// (`proc_kind` under /proc/<pid>/ns). No entry in the spec means the host's; an entry
/// with a path joins an existing one, which the container's first process shows.
fn namespace(f: &Facts, oci_type: &str, proc_kind: &str, docker_key: &str) -> Outcome {
    with_spec(f, |s, f| {
        let docker = f.host_config.as_ref().map(|h| {
            ev(
                format!("HostConfig.{docker_key}"),
                match h.value[docker_key].as_str() {
                    Some("") | None => "unset (the default)".to_owned(),
                    Some(m) => m.to_owned(),
                },
                &h.file,
            )
        });
        let entries = s.value["linux"]["namespaces"].as_array();
        let found = entries
            .into_iter()
            .flatten()
            .enumerate()
            .find(|(_, n)| n["type"].as_str() == Some(oci_type));
        let mut evidence = Vec::new();
        let verdict = match found {
            None => {
                evidence.push(ev(
                    "linux.namespaces",
                    format!("no `{oci_type}` entry: the container is in the host's"),
                    &s.file,
                ));
                evidence.extend(docker);
                Verdict::Fail
            }
            Some((i, n)) => match n["path"].as_str().filter(|p| !p.is_empty()) {
                None => {
                    evidence.push(ev(
                        format!("linux.namespaces[{i}]"),
                        format!("{oci_type}, a new namespace"),
                        &s.file,
                    ));
                    Verdict::Pass
                }
                Some(path) => {
                    evidence.push(ev(
                        format!("linux.namespaces[{i}].path"),
                        format!("{path} (joins an existing {oci_type} namespace)"),
                        &s.file,
                    ));
                    let live = format!("{}/{}/ns/{proc_kind}", f.host.proc.display(), f.init_pid);
                    match f.host.shares_namespace(f.init_pid, proc_kind) {
                        Some((shared, theirs, host)) => {
                            evidence.push(ev(
                                "namespace",
                                if shared {
                                    format!("{theirs}, the host's")
                                } else {
                                    format!("{theirs}, not the host's {host}")
                                },
                                &live,
                            ));
                            if shared {
                                evidence.extend(docker);
                                Verdict::Fail
                            } else {
                                Verdict::Pass
                            }
                        }
                        None => {
                            evidence.push(ev(
                                "namespace",
                                "cannot be read (the first process is gone, or /proc hides it)",
                                &live,
                            ));
                            Verdict::Unknown
                        }
                    }
                }
            },
        };
        if oci_type == "user" && verdict == Verdict::Pass {
            let maps = &s.value["linux"]["uidMappings"];
            evidence.push(ev("linux.uidMappings", text(maps), &s.file));
        }
        (verdict, evidence)
    })
}

/// 5.10 and 5.28: a resource limit is set. Docker's `hostconfig.json` holds the
/// limit as `docker update` last set it (the bundle's spec keeps the one it started
/// with), so it decides for Docker; the spec for the other engines.
fn resource(
    f: &Facts,
    docker_key: &str,
    spec_key: &str,
    in_spec: impl Fn(&Value) -> &Value,
) -> Outcome {
    match &f.host_config {
        Some(h) => limit(h, &format!("HostConfig.{docker_key}"), &h.value[docker_key]),
        None => with_spec(f, |s, _| limit(s, spec_key, in_spec(&s.value))),
    }
}

/// 5.11: CPU priority set: shares away from the default (0 or 1024 is no priority),
/// or a quota. Docker's `hostconfig.json` decides for Docker (see [`resource`]).
fn cpu(f: &Facts) -> Outcome {
    let decide = |shares: u64, quota: i64| {
        if (shares != 0 && shares != 1024) || quota > 0 {
            Verdict::Pass
        } else {
            Verdict::Fail
        }
    };
    if let Some(h) = &f.host_config {
        let v = &h.value;
        let quota = v["CpuQuota"]
            .as_i64()
            .unwrap_or(0)
            .max(v["NanoCpus"].as_i64().unwrap_or(0));
        return (
            decide(v["CpuShares"].as_u64().unwrap_or(0), quota),
            vec![
                ev("HostConfig.CpuShares", text(&v["CpuShares"]), &h.file),
                ev("HostConfig.NanoCpus", text(&v["NanoCpus"]), &h.file),
                ev("HostConfig.CpuQuota", text(&v["CpuQuota"]), &h.file),
            ],
        );
    }
    with_spec(f, |s, _| {
        let cpu = &s.value["linux"]["resources"]["cpu"];
        (
            decide(
                cpu["shares"].as_u64().unwrap_or(0),
                cpu["quota"].as_i64().unwrap_or(0),
            ),
            vec![
                ev("linux.resources.cpu.shares", text(&cpu["shares"]), &s.file),
                ev("linux.resources.cpu.quota", text(&cpu["quota"]), &s.file),
            ],
        )
    })
}

/// 5.17: no host device is added to the container.
fn devices(s: &Source, f: &Facts) -> Outcome {
    let list = s.value["linux"]["devices"].as_array();
    let found: Vec<Evidence> = list
        .into_iter()
        .flatten()
        .enumerate()
        .map(|(i, d)| {
            ev(
                format!("linux.devices[{i}]"),
                format!(
                    "{} ({} {}:{})",
                    text(&d["path"]),
                    text(&d["type"]),
                    text(&d["major"]),
                    text(&d["minor"])
                ),
                &s.file,
            )
        })
        .collect();
    if found.is_empty() {
        return (Verdict::Pass, vec![ev("linux.devices", "none", &s.file)]);
    }
    let mut evidence = found;
    if let Some(h) = &f.host_config
        && h.value["Devices"].as_array().is_some_and(|d| !d.is_empty())
    {
        evidence.push(ev("HostConfig.Devices", text(&h.value["Devices"]), &h.file));
    }
    (Verdict::Fail, evidence)
}

/// 5.19: no mount (and not the root) propagates as shared.
fn propagation(s: &Source) -> Outcome {
    let shared = |o: &str| o == "shared" || o == "rshared";
    let mut found = Vec::new();
    for (i, m) in s.value["mounts"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        if let Some(o) = mount_options(m).into_iter().find(|o| shared(o)) {
            found.push(ev(
                format!("mounts[{i}]"),
                format!(
                    "{} -> {} ({o})",
                    text(&m["source"]),
                    text(&m["destination"])
                ),
                &s.file,
            ));
        }
    }
    let root = &s.value["linux"]["rootfsPropagation"];
    if root.as_str().is_some_and(shared) {
        found.push(ev("linux.rootfsPropagation", text(root), &s.file));
    }
    if found.is_empty() {
        (
            Verdict::Pass,
            vec![ev(
                "mounts, linux.rootfsPropagation",
                format!("no shared propagation (root: {})", text(root)),
                &s.file,
            )],
        )
    } else {
        (Verdict::Fail, found)
    }
}

/// 5.21: a seccomp filter is installed.
fn seccomp(s: &Source, f: &Facts) -> Outcome {
    let filter = &s.value["linux"]["seccomp"];
    if filter.is_null() {
        let mut evidence = vec![ev("linux.seccomp", "absent: no filter", &s.file)];
        if let Some(h) = &f.host_config {
            evidence.push(ev(
                "HostConfig.SecurityOpt",
                text(&h.value["SecurityOpt"]),
                &h.file,
            ));
        }
        return (Verdict::Fail, evidence);
    }
    let rules = filter["syscalls"].as_array().map_or(0, Vec::len);
    (
        Verdict::Pass,
        vec![ev(
            "linux.seccomp.defaultAction",
            format!("{} ({rules} rules)", text(&filter["defaultAction"])),
            &s.file,
        )],
    )
}

/// 5.26: the container (or its image) has a healthcheck.
fn healthcheck(f: &Facts) -> Outcome {
    let Some(c) = &f.docker_config else {
        return (
            Verdict::Unknown,
            vec![ev(
                "config.v2.json",
                "Docker's config.v2.json cannot be read",
                &f.state_file,
            )],
        );
    };
    let test = &c.value["Config"]["Healthcheck"]["Test"];
    let words: Vec<&str> = test
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let verdict = match words.first() {
        None | Some(&"NONE") => Verdict::Fail,
        Some(_) => Verdict::Pass,
    };
    (
        verdict,
        vec![ev("Config.Healthcheck.Test", text(test), &c.file)],
    )
}

/// 5.29: not on Docker's default bridge network.
fn default_bridge(h: &Source, f: &Facts) -> Outcome {
    let mode = &h.value["NetworkMode"];
    let mut evidence = vec![ev("HostConfig.NetworkMode", text(mode), &h.file)];
    let mut on_bridge = matches!(mode.as_str(), Some("default" | "bridge"));
    if let Some(c) = &f.docker_config
        && let Some(networks) = c.value["NetworkSettings"]["Networks"].as_object()
    {
        on_bridge |= networks.contains_key("bridge");
        let names: Vec<&str> = networks.keys().map(String::as_str).collect();
        evidence.push(ev("NetworkSettings.Networks", names.join(", "), &c.file));
    }
    (
        if on_bridge {
            Verdict::Fail
        } else {
            Verdict::Pass
        },
        evidence,
    )
}

/// 5.31: no bind mount is one of the host's runtime sockets, or a directory that holds
/// one, by the file it is (device and inode) rather than its name.
fn runtime_socket(s: &Source, f: &Facts) -> Outcome {
    use std::os::unix::fs::MetadataExt as _;
    let sockets = &f.host.runtime_sockets;
    let all = binds(&s.value);
    let (mut found, mut unreadable) = (Vec::new(), Vec::new());
    for b in &all {
        let Ok(meta) = std::fs::metadata(b.source) else {
            unreadable.push(ev(
                b.key(),
                format!("{}: source cannot be read", b.text()),
                &s.file,
            ));
            continue;
        };
        if let Some(sock) = sockets
            .iter()
            .find(|r| (r.dev, r.ino) == (meta.dev(), meta.ino()))
        {
            found.push(ev(
                b.key(),
                format!("{}: the runtime socket {}", b.text(), sock.path.display()),
                &s.file,
            ));
            continue;
        }
        if meta.is_dir() {
            let dir = std::fs::canonicalize(b.source).unwrap_or_else(|_| lexical(b.source));
            if let Some(sock) = sockets.iter().find(|r| r.path.starts_with(&dir)) {
                found.push(ev(
                    b.key(),
                    format!(
                        "{}: holds the runtime socket {}",
                        b.text(),
                        sock.path.display()
                    ),
                    &s.file,
                ));
            }
        }
    }
    let known = if sockets.is_empty() {
        "none found on this host".to_owned()
    } else {
        sockets
            .iter()
            .map(|r| r.path.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    if !found.is_empty() {
        (Verdict::Fail, found)
    } else if !unreadable.is_empty() {
        (Verdict::Unknown, unreadable)
    } else {
        (
            Verdict::Pass,
            vec![ev(
                "mounts",
                format!(
                    "{} bind mounts, none is or holds a runtime socket (known: {known})",
                    all.len()
                ),
                &s.file,
            )],
        )
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::posture::{Posture, facts::Host};

    fn facts(spec: Value, host_config: Option<Value>, docker_config: Option<Value>) -> Facts {
        Facts {
            engine: if host_config.is_some() {
                Engine::Docker
            } else {
                Engine::Runc
            },
            state_file: "/run/x/state.json".into(),
            spec: Some(Source {
                value: spec,
                file: "config.json".into(),
            }),
            host_config: host_config.map(|value| Source {
                value,
                file: "hostconfig.json".into(),
            }),
            docker_config: docker_config.map(|value| Source {
                value,
                file: "config.v2.json".into(),
            }),
            init_pid: 0,
            host: Host::default(),
        }
    }

    fn verdict(p: &Posture, c: Check) -> Verdict {
        p.finding(c).unwrap().verdict
    }

    #[test]
    fn a_weak_docker_container_fails_with_evidence() {
        let spec = json!({
            "process": {"user": {"uid": 0}, "capabilities": {"bounding": ["CAP_CHOWN", "CAP_SYS_ADMIN"]}},
            "root": {"readonly": false},
            "mounts": [
                {"destination": "/proc", "type": "proc", "source": "proc"},
                {"destination": "/host", "type": "bind", "source": "/etc/../etc//", "options": ["rbind"]},
                {"destination": "/data", "type": "bind", "source": "/srv", "options": ["rbind", "rshared"]}
            ],
            "linux": {"namespaces": [{"type": "mount"}],
                      "devices": [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229}]}
        });
        let host = json!({
            "Privileged": true, "NetworkMode": "default", "PidMode": "host",
            "PortBindings": {"80/tcp": [{"HostIp": "", "HostPort": "80"}]},
            "CapAdd": ["CAP_SYS_ADMIN"], "SecurityOpt": ["seccomp=unconfined"]
        });
        let config =
            json!({"Config": {"User": ""}, "NetworkSettings": {"Networks": {"bridge": {}}}});
        let p = Posture::evaluate(&facts(spec, Some(host), Some(config)));
        for c in [
            Check::NonRootUser,
            Check::Capabilities,
            Check::Privileged,
            Check::SensitiveMounts,
            Check::PrivilegedPorts,
            Check::HostNetwork,
            Check::MemoryLimit,
            Check::CpuShares,
            Check::ReadOnlyRoot,
            Check::PortInterface,
            Check::HostPid,
            Check::HostIpc,
            Check::HostDevices,
            Check::SharedPropagation,
            Check::HostUts,
            Check::Seccomp,
            Check::NoNewPrivileges,
            Check::Healthcheck,
            Check::PidsLimit,
            Check::DefaultBridge,
            Check::HostUserns,
        ] {
            assert_eq!(verdict(&p, c), Verdict::Fail, "{c}: {:?}", p.finding(c));
        }
        // No runtime socket is known or mounted; /srv and /etc exist here.
        assert_eq!(verdict(&p, Check::RuntimeSocket), Verdict::Pass);
        let mounts = &p.finding(Check::SensitiveMounts).unwrap().evidence;
        assert_eq!(mounts.len(), 1);
        assert_eq!(mounts[0].key, "mounts[1]");
        assert!(
            mounts[0].value.contains("host /etc, writable"),
            "{mounts:?}"
        );
        let privileged = &p.finding(Check::Privileged).unwrap().evidence;
        assert!(privileged.iter().any(|e| e.key == "HostConfig.Privileged"
            && e.value == "true"
            && e.file == "hostconfig.json"));
        let pid = &p.finding(Check::HostPid).unwrap().evidence;
        assert!(
            pid.iter()
                .any(|e| e.key == "HostConfig.PidMode" && e.value == "host")
        );
        assert_eq!(p.score, "1/22 PASS");
    }

    #[test]
    fn a_hardened_spec_passes_and_other_engines_say_unknown() {
        let spec = json!({
            "process": {"user": {"uid": 1000}, "noNewPrivileges": true, "capabilities": {"bounding": []}},
            "root": {"readonly": true},
            "mounts": [{"destination": "/etc/hosts", "type": "bind", "source": "/tmp", "options": ["rbind", "ro"]}],
            "linux": {
                "namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}, {"type": "user"}],
                "uidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
                "resources": {"memory": {"limit": 67108864}, "cpu": {"shares": 512}, "pids": {"limit": 64}},
                "seccomp": {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{}]},
                "maskedPaths": ["/proc/kcore"]
            }
        });
        let p = Posture::evaluate(&facts(spec, None, None));
        assert_eq!(p.failed, 0, "{p:#?}");
        for c in [
            Check::PrivilegedPorts,
            Check::PortInterface,
            Check::Healthcheck,
            Check::DefaultBridge,
        ] {
            let f = p.finding(c).unwrap();
            assert_eq!(f.verdict, Verdict::Unknown, "{c}");
            assert!(f.evidence[0].value.contains("runc keeps this setting"));
        }
        assert_eq!(p.passed, 18);
        // A namespace joined by path is decided by the live process; none here.
        let joined =
            json!({"linux": {"namespaces": [{"type": "network", "path": "/proc/1/ns/net"}]}});
        let p = Posture::evaluate(&facts(joined, None, None));
        assert_eq!(verdict(&p, Check::HostNetwork), Verdict::Unknown);
        // No spec at all: unknown, never pass.
        let mut gone = facts(json!({}), None, None);
        gone.spec = None;
        let p = Posture::evaluate(&gone);
        assert_eq!(p.passed, 0);
        assert_eq!(p.failed, 0);
    }

    #[test]
    fn a_runtime_socket_is_found_by_what_the_mount_reaches() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("api.sock");
        let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        let link = dir.path().join("innocent");
        std::os::unix::fs::symlink(&sock, &link).unwrap();
        let decoy = dir.path().join("docker.sock");
        std::fs::write(&decoy, "").unwrap();
        let host = Host::new(std::slice::from_ref(&sock));
        let mount = |src: &std::path::Path| json!({"mounts": [{"destination": "/x", "type": "bind", "source": src, "options": ["rbind"]}]});
        let judge = |spec: Value| {
            let mut f = facts(spec, None, None);
            f.host = host.clone();
            Posture::evaluate(&f)
                .finding(Check::RuntimeSocket)
                .unwrap()
                .clone()
        };
        assert_eq!(judge(mount(&link)).verdict, Verdict::Fail);
        let held = judge(mount(dir.path()));
        assert_eq!(held.verdict, Verdict::Fail);
        assert!(held.evidence[0].value.contains("holds the runtime socket"));
        // The name alone decides nothing.
        assert_eq!(judge(mount(&decoy)).verdict, Verdict::Pass);
        assert_eq!(
            judge(mount(&dir.path().join("gone"))).verdict,
            Verdict::Unknown
        );
    }
}
