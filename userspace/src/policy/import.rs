//! Profiles from what users already have: an OCI runtime config (`config.json`) or a
//! Compose service. The hardened settings become `runtime:` lines (the capabilities the
//! container keeps become `capabilities:`, its no-new-privileges setting
//! `no_new_privileges:`, a read-only root becomes `read_only: [/]` with the container's
//! writable mounts as exceptions, the devices it is given become its `devices:`
//! allowlist); egress is left as an explicit, commented default-deny to fill in.

use std::fmt::Write as _;

use serde_json::Value;

use crate::policy::caps::CapSet;

/// The hardened settings found in a container definition.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Hardening {
    pub user: Option<u32>,
    /// The effective capabilities the container's programs hold (OCI: `effective` and
    /// `ambient`; Compose: Docker's default set with `cap_add` and `cap_drop`).
    pub capabilities: CapSet,
    /// The bounding set, when it is wider: what an exec as root, or a program with
    /// file capabilities, can still gain.
    pub bounding: CapSet,
    /// Capability names this agent does not know (a newer kernel's), left out of
    /// `capabilities:` and named in a comment.
    pub unknown_capabilities: Vec<String>,
    /// Where the capabilities were read, for the comment.
    pub capabilities_from: &'static str,
    pub read_only_root: bool,
    pub no_new_privileges: bool,
    /// Every published port is bound to a loopback address.
    pub loopback_ports: bool,
    /// Published ports as written, for the comments.
    pub ports: Vec<String>,
    /// The engine forwards published ports into the container's own network namespace
    /// (Compose services with ports, not `network_mode: host` or `none`).
    pub forwarded_ports: bool,
    pub networks: Vec<String>,
    /// Mount points the container can write (tmpfs, rw volumes, /dev, /proc), for a
    /// read-only root's exceptions.
    pub writable: Vec<String>,
    /// Devices beyond the OCI default set: (type, major, minor, access, where from).
    pub devices: Vec<DeviceLine>,
    /// The Compose project and service, for a selector of exactly that service's
    /// containers.
    pub compose: Option<(String, String)>,
}

/// A device the container is given, as a `devices:` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceLine {
    pub kind: String,
    pub major: Option<i64>,
    pub minor: Option<i64>,
    pub access: String,
    pub origin: String,
}

/// Reads an OCI runtime `config.json`.
pub fn from_oci(config: &Value) -> Hardening {
    let caps = &config["process"]["capabilities"];
    let names = |sets: &[&str]| -> Vec<String> {
        sets.iter()
            .flat_map(|set| caps[*set].as_array().cloned().unwrap_or_default())
            .filter_map(|c| c.as_str().map(str::to_owned))
            .collect()
    };
    // Ambient capabilities are raised into the effective set at every exec.
    let (capabilities, mut unknown_capabilities) = cap_set(&names(&["effective", "ambient"]));
    let (bounding, unknown_bounding) = cap_set(&names(&["bounding", "permitted"]));
    unknown_capabilities.extend(unknown_bounding);
    unknown_capabilities.sort();
    unknown_capabilities.dedup();
    Hardening {
        user: config["process"]["user"]["uid"].as_u64().map(|u| u as u32),
        capabilities,
        bounding: bounding.beyond(capabilities),
        unknown_capabilities,
        capabilities_from: "process.capabilities.effective and .ambient",
        read_only_root: config["root"]["readonly"].as_bool() == Some(true),
        no_new_privileges: config["process"]["noNewPrivileges"].as_bool() == Some(true),
        // An OCI config publishes no ports: the runtime's network set-up does.
        loopback_ports: true,
        ports: Vec::new(),
        forwarded_ports: false,
        compose: None,
        networks: Vec::new(),
        writable: writable_mounts(
            config["mounts"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|m| {
                    !m["options"]
                        .as_array()
                        .is_some_and(|o| o.iter().any(|x| x == "ro"))
                })
                .filter_map(|m| m["destination"].as_str()),
        ),
        devices: oci_devices(config),
    }
}

/// The devices an OCI config gives beyond the runtime's defaults: the nodes it creates
/// (`linux.devices`) and the `allow: true` rules of `linux.resources.devices`.
fn oci_devices(config: &Value) -> Vec<DeviceLine> {
    let mut out = Vec::new();
    for d in config["linux"]["devices"].as_array().into_iter().flatten() {
        // FIFOs are no device to the device controller.
        if d["type"] == "p" {
            continue;
        }
        out.push(DeviceLine {
            kind: d["type"].as_str().unwrap_or("c").replace('u', "c"),
            major: d["major"].as_i64(),
            minor: d["minor"].as_i64(),
            access: "rwm".to_owned(),
            origin: format!("linux.devices {}", d["path"].as_str().unwrap_or("?")),
        });
    }
    for r in config["linux"]["resources"]["devices"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if r["allow"].as_bool() != Some(true) {
            continue;
        }
        out.push(DeviceLine {
            kind: r["type"].as_str().unwrap_or("a").to_owned(),
            major: r["major"].as_i64(),
            minor: r["minor"].as_i64(),
            access: r["access"].as_str().unwrap_or("rwm").to_owned(),
            origin: "linux.resources.devices".to_owned(),
        });
    }
    out
}

/// Writable mount points as `writable:` entries: normalised, without those another one
/// contains, at most what the kernel holds for a profile (one slot is `/`).
fn writable_mounts<'a>(mounts: impl Iterator<Item = &'a str>) -> Vec<String> {
    use crate::policy::paths::{ProfilePath, normalise};
    let mut paths: Vec<String> = mounts
        .filter(|m| m.starts_with('/'))
        .map(normalise)
        .filter(|m| m != "/")
        .filter(|m| ProfilePath::try_from(m.clone()).is_ok())
        .collect();
    paths.sort();
    paths.dedup();
    let all = paths.clone();
    paths.retain(|p| {
        !all.iter()
            .any(|o| o != p && p.starts_with(o.as_str()) && p[o.len()..].starts_with('/'))
    });
    paths.truncate(cgwarden_common::PATH_PATTERNS_MAX as usize - 1);
    paths
}

/// The project name Compose gives a Compose file's containers (label
/// `com.docker.compose.project`): `explicit` (`-p`), else the file's top-level `name:`,
/// else `COMPOSE_PROJECT_NAME`, else the name of the file's directory, lower-cased,
/// keeping only `a-z`, `0-9`, `-` and `_` (as docker-compose and `docker compose` do).
pub fn compose_project(file: &std::path::Path, compose: &Value, explicit: Option<&str>) -> String {
    let normalise = |name: &str| -> String {
        name.to_lowercase()
            .chars()
            .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-' || *c == '_')
            .collect()
    };
    if let Some(name) = explicit {
        return normalise(name);
    }
    if let Some(name) = compose.get("name").and_then(Value::as_str) {
        return normalise(name);
    }
    if let Ok(name) = std::env::var("COMPOSE_PROJECT_NAME")
        && !name.is_empty()
    {
        return normalise(&name);
    }
    let dir = std::fs::canonicalize(file)
        .ok()
        .and_then(|f| f.parent().map(std::path::Path::to_path_buf))
        .unwrap_or_default();
    normalise(
        &dir.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
    )
}

/// Reads one service of a Compose file whose project is `project`.
pub fn from_compose(compose: &Value, project: &str, service: &str) -> Result<Hardening, String> {
    let svc = compose
        .get("services")
        .and_then(|s| s.get(service))
        .ok_or_else(|| format!("the Compose file has no service `{service}`"))?;
    let strings = |key: &str| -> Vec<String> {
        match svc.get(key) {
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(|i| match i {
                    Value::String(s) => Some(s.clone()),
                    Value::Number(n) => Some(n.to_string()),
                    Value::Object(m) => m.get("published").map(|p| {
                        format!(
                            "{}:{:?}",
                            m.get("host_ip")
                                .and_then(|h| h.as_str())
                                .unwrap_or("0.0.0.0"),
                            p
                        )
                    }),
                    _ => None,
                })
                .collect(),
            Some(Value::Object(m)) => m.keys().cloned().collect(),
            _ => Vec::new(),
        }
    };
    let user = svc.get("user").and_then(|u| match u {
        Value::Number(n) => n.as_u64().map(|v| v as u32),
        Value::String(s) => s.split(':').next().and_then(|x| x.parse().ok()),
        _ => None,
    });
    let privileged = svc.get("privileged").and_then(Value::as_bool) == Some(true);
    let (capabilities, unknown_capabilities) =
        docker_capabilities(&strings("cap_add"), &strings("cap_drop"), privileged);
    let ports = strings("ports");
    let loopback_ports = ports
        .iter()
        .all(|p| p.starts_with("127.") || p.starts_with("[::1]") || p.starts_with("::1"));
    // tmpfs mounts and volumes not marked `:ro` stay writable; the runtime's /dev and
    // /proc always are.
    let mut mounts: Vec<String> = strings("tmpfs")
        .iter()
        .map(|t| t.split(':').next().unwrap_or_default().to_owned())
        .collect();
    if let Some(Value::String(t)) = svc.get("tmpfs") {
        mounts.push(t.split(':').next().unwrap_or_default().to_owned());
    }
    for v in svc
        .get("volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        match v {
            Value::String(s) => {
                let parts: Vec<&str> = s.split(':').collect();
                let ro = parts
                    .get(2)
                    .is_some_and(|o| o.split(',').any(|x| x == "ro"));
                if let (Some(target), false) = (parts.get(1).or(parts.first()), ro) {
                    mounts.push((*target).to_owned());
                }
            }
            Value::Object(m) => {
                let ro = m.get("read_only").and_then(Value::as_bool) == Some(true);
                if let (Some(target), false) = (m.get("target").and_then(|t| t.as_str()), ro) {
                    mounts.push(target.to_owned());
                }
            }
            _ => {}
        }
    }
    mounts.extend(["/dev".to_owned(), "/proc".to_owned()]);
    let devices = strings("devices")
        .iter()
        .filter_map(|d| compose_device(d))
        .collect();
    Ok(Hardening {
        user,
        capabilities,
        // Docker gives the same bounding set as effective one.
        bounding: CapSet::default(),
        unknown_capabilities,
        capabilities_from: if privileged {
            "privileged"
        } else {
            "Docker's default set with cap_add and cap_drop"
        },
        writable: writable_mounts(mounts.iter().map(String::as_str)),
        devices,
        read_only_root: svc.get("read_only").and_then(Value::as_bool) == Some(true),
        no_new_privileges: strings("security_opt")
            .iter()
            .any(|o| o.replace('=', ":") == "no-new-privileges:true" || o == "no-new-privileges"),
        loopback_ports,
        forwarded_ports: !ports.is_empty()
            && !matches!(
                svc.get("network_mode").and_then(Value::as_str),
                Some("host" | "none")
            ),
        ports,
        compose: Some((project.to_owned(), service.to_owned())),
        networks: strings("networks"),
    })
}

/// A Compose `devices:` entry (`/dev/host[:/dev/ctr[:rwm]]`): the host node's numbers,
/// read from the host (the entry is skipped when it is not a device here).
fn compose_device(entry: &str) -> Option<DeviceLine> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let mut parts = entry.split(':');
    let host = parts.next()?;
    let access = parts.nth(1).unwrap_or("rwm").to_owned();
    let meta = std::fs::metadata(host).ok()?;
    let kind = if meta.file_type().is_char_device() {
        "c"
    } else if meta.file_type().is_block_device() {
        "b"
    } else {
        return None;
    };
    let rdev = meta.rdev();
    Some(DeviceLine {
        kind: kind.to_owned(),
        major: Some(i64::from(libc::major(rdev))),
        minor: Some(i64::from(libc::minor(rdev))),
        access,
        origin: format!("devices {host}"),
    })
}

/// The capabilities Docker gives a service, the way the engine computes them: `cap_add:
/// [ALL]` is every capability less `cap_drop`; `cap_drop: [ALL]` keeps only `cap_add`;
/// otherwise the default set less `cap_drop` plus `cap_add`. Names may have the `CAP_`
/// prefix or not, in any case. Unknown names are returned apart.
fn docker_capabilities(
    cap_add: &[String],
    cap_drop: &[String],
    privileged: bool,
) -> (CapSet, Vec<String>) {
    if privileged {
        return (CapSet::all(), Vec::new());
    }
    let (add, mut unknown) = cap_set(cap_add);
    // A dropped name this agent does not know is no capability it could see held.
    let (drop, _) = cap_set(cap_drop);
    let all = CapSet::all();
    let caps = if add == all {
        all.beyond(drop)
    } else if drop == all {
        add
    } else {
        CapSet(cap_set(DOCKER_DEFAULT_CAPS).0.beyond(drop).0 | add.0)
    };
    unknown.sort();
    unknown.dedup();
    (caps, unknown)
}

/// The capabilities named, and the names that are none this agent knows.
fn cap_set<S: AsRef<str>>(names: &[S]) -> (CapSet, Vec<String>) {
    let mut set = CapSet::default();
    let mut unknown = Vec::new();
    for name in names {
        match CapSet::from_names(&[name.as_ref()]) {
            Ok(one) => set.0 |= one.0,
            Err(_) => unknown.push(name.as_ref().to_owned()),
        }
    }
    (set, unknown)
}

const DOCKER_DEFAULT_CAPS: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "FSETID",
    "FOWNER",
    "MKNOD",
    "NET_RAW",
    "SETGID",
    "SETUID",
    "SETFCAP",
    "SETPCAP",
    "NET_BIND_SERVICE",
    "SYS_CHROOT",
    "KILL",
    "AUDIT_WRITE",
];

#[cfg(test)]
mod project_tests {
    #[test]
    fn the_project_is_named_as_compose_names_it() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("My Shop.v2");
        std::fs::create_dir(&sub).unwrap();
        let file = sub.join("compose.yml");
        std::fs::write(&file, "services: {}\n").unwrap();
        let plain: serde_json::Value = crate::yaml::from_foreign_str("services: {}").unwrap();
        let named: serde_json::Value =
            crate::yaml::from_foreign_str("name: Shop\nservices: {}").unwrap();
        assert_eq!(super::compose_project(&file, &named, None), "shop");
        assert_eq!(super::compose_project(&file, &plain, Some("X-1")), "x-1");
        if std::env::var_os("COMPOSE_PROJECT_NAME").is_none() {
            assert_eq!(super::compose_project(&file, &plain, None), "myshopv2");
        }
    }
}

/// A YAML double-quoted string.
fn yaml_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_owned())
}

/// The profile for hardened settings, with comments saying where each line came from.
pub fn profile_yaml(name: &str, origin: &str, h: &Hardening) -> String {
    let mut y = String::new();
    let yes = |b: bool| if b { "yes" } else { "no" };
    y.push_str(&format!("# Generated by cgwarden from {origin}.\n"));
    y.push_str(&format!(
        "# The container's own settings: user {}, capabilities {}, read-only root {}, no-new-privileges {}.\n",
        h.user.map_or("unset (root)".to_owned(), |u| u.to_string()),
        if h.capabilities.is_empty() { "none".to_owned() } else { h.capabilities.to_string() },
        yes(h.read_only_root),
        yes(h.no_new_privileges)
    ));
    if !h.networks.is_empty() {
        y.push_str(&format!("# Networks: {}.\n", h.networks.join(", ")));
    }
    y.push_str(&format!("name: {name}\n"));
    y.push_str(
        "# Start in audit (nothing refused, everything reported), then enforce.\nmode: audit\n",
    );
    match &h.compose {
        Some((project, service)) => y.push_str(&format!(
            "selector:\n  # The service's containers, by the labels Compose gives them; they are\n  # covered from their first process.\n  compose:\n    project: {}\n    service: {}\n",
            yaml_string(project),
            yaml_string(service)
        )),
        None => y.push_str(&format!(
            "selector:\n  # The container's cgroup(s): adapt, or select by name, image or id.\n  cgroup: \"/cgwarden/{name}/*\"\n"
        )),
    }
    y.push_str("egress:\n  # Default deny: list here what the container may reach (CIDRs, addresses,\n  # DNS names, ports), or learn it with `cgwarden exec --learn`.\n  default: deny\n  allow:\n    - name: loopback\n      to: [127.0.0.0/8, \"::1\"]\n");
    y.push_str("runtime:\n");
    match h.user {
        Some(uid) => y.push_str(&format!("  user: {uid}   # from the container's user\n")),
        None => {
            y.push_str("  # no user is set: the container runs as root; set one and add `user:`\n")
        }
    }
    if h.forwarded_ports {
        // Docker forwards a published port to the container's own address, so the
        // service listens beyond its loopback whatever host address it is published on.
        y.push_str(&format!(
            "  # Docker forwards the published ports ({}) to the container's own address,\n  # so its listeners bind beyond loopback; where they are published on the host\n  # ({}) is Docker's setting, not a bind in the container.\n  binds: any\n",
            h.ports.join(", "),
            if h.loopback_ports { "host loopback only" } else { "beyond host loopback" }
        ));
    } else if h.loopback_ports {
        y.push_str("  binds: loopback   # nothing is published: listeners on loopback only\n");
    } else {
        y.push_str(&format!(
            "  binds: any   # published ports listen beyond loopback: {}\n",
            h.ports.join(", ")
        ));
    }
    let net_raw = CapSet(h.capabilities.0 | h.bounding.0)
        .names()
        .iter()
        .any(|c| c == "CAP_NET_RAW");
    if net_raw {
        y.push_str("  raw_sockets: allow   # the container keeps CAP_NET_RAW\n");
    } else {
        y.push_str("  raw_sockets: deny   # no CAP_NET_RAW: raw sockets are never legitimate\n");
    }
    let _ = writeln!(
        y,
        "  # Effective capabilities after exec ({}): a program holding any other\n  # is reported, by name.",
        h.capabilities_from
    );
    let root = h.user.is_none_or(|u| u == 0);
    if root && !h.bounding.is_empty() {
        let _ = writeln!(
            y,
            "  # It runs as root: an exec gains the bounding set too ({}), reported\n  # unless listed here.",
            h.bounding
        );
    }
    if !h.unknown_capabilities.is_empty() {
        let _ = writeln!(
            y,
            "  # Not capabilities this agent knows, left out: {}.",
            h.unknown_capabilities.join(", ")
        );
    }
    let _ = writeln!(y, "  capabilities: {}", h.capabilities.profile_list());
    if h.no_new_privileges {
        y.push_str("  # no-new-privileges is set: a program without the flag, or an exec that gains\n  # privileges (a set-uid or file-capability program), is reported.\n  no_new_privileges: true\n");
    } else {
        y.push_str("  # no-new-privileges is not set: set it in the container and here.\n  no_new_privileges: false\n");
    }
    y.push_str(
        "  # Devices: the OCI default set (null, zero, full, random, urandom, tty, ptmx,\n  # pts/*) and those the container is given; other opens and mknods fail (EPERM).\n  devices:\n    - default\n",
    );
    for d in &h.devices {
        let number = |n: Option<i64>| {
            n.filter(|n| *n >= 0)
                .map_or_else(|| "\"*\"".to_owned(), |n| n.to_string())
        };
        y.push_str(&format!(
            "    - {{type: {}, major: {}, minor: {}, access: {}}}   # from {}\n",
            d.kind,
            number(d.major),
            number(d.minor),
            d.access,
            d.origin
        ));
    }
    if h.read_only_root {
        y.push_str("  # The root file system is read-only: every write under it is reported (the\n  # kernel refuses it with EROFS; the attempt is the deviation). Writable mounts:\n  read_only: [/]\n");
        if !h.writable.is_empty() {
            y.push_str(&format!("  writable: [{}]\n", h.writable.join(", ")));
        }
    } else {
        y.push_str("  # The root file system is writable: list paths that must not change, e.g.\n  # read_only: [/etc, /usr]\n");
    }
    y.push_str("syscalls:\n  # Container escape attempts. `kill` ends the process before it returns to\n  # user space (see the README for what it cannot undo).\n  - set: escape\n    action: kill\n");
    y
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_hardened_oci_config() {
        let config: Value = serde_json::json!({
            "process": {"user": {"uid": 1000, "gid": 1000}, "noNewPrivileges": true,
                         "capabilities": {"bounding": [], "effective": []}},
            "root": {"readonly": true}
        });
        let h = from_oci(&config);
        assert_eq!(h.user, Some(1000));
        assert!(h.capabilities.is_empty() && h.read_only_root && h.no_new_privileges);
        let yaml = profile_yaml("gw", "config.json", &h);
        assert!(yaml.contains("\n  capabilities: []\n"), "{yaml}");
        assert!(yaml.contains("\n  no_new_privileges: true\n"), "{yaml}");
        let p = crate::policy::parse_str(&yaml, std::path::Path::new("gw.yaml")).unwrap();
        assert_eq!(p.runtime.capabilities, Some(CapSet::default()));
        assert!(p.runtime.no_new_privileges && p.runtime.read_only_root());
        assert_eq!(p.runtime.user, Some(1000));
        assert_eq!(p.raw_sockets(), crate::policy::RawSockets::Deny);
        assert_eq!(p.runtime.read_only.len(), 1);
        assert_eq!(
            p.runtime.devices,
            Some(vec![crate::policy::devices::DeviceRule::Default])
        );
    }

    #[test]
    fn oci_mounts_and_devices_become_writable_paths_and_device_rules() {
        let config: Value = serde_json::json!({
            "root": {"readonly": true},
            "mounts": [
                {"destination": "/proc", "type": "proc"},
                {"destination": "/dev", "type": "tmpfs"},
                {"destination": "/dev/pts", "type": "devpts"},
                {"destination": "/sys", "type": "sysfs", "options": ["nosuid", "ro"]},
                {"destination": "/var/lib/app/", "type": "bind", "options": ["rbind"]},
                {"destination": "/etc/app", "type": "bind", "options": ["rbind", "ro"]}
            ],
            "linux": {
                "devices": [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229}],
                "resources": {"devices": [
                    {"allow": false, "access": "rwm"},
                    {"allow": true, "type": "c", "major": 136, "access": "rw"}
                ]}
            }
        });
        let h = from_oci(&config);
        assert_eq!(h.writable, ["/dev", "/proc", "/var/lib/app"]);
        let yaml = profile_yaml("app", "config.json", &h);
        let p = crate::policy::parse_str(&yaml, std::path::Path::new("app.yaml"))
            .unwrap_or_else(|e| panic!("{e}\n{yaml}"));
        assert_eq!(p.runtime.writable.len(), 3);
        let devices = p.runtime.devices.unwrap();
        assert_eq!(devices.len(), 3, "{yaml}");
        let compiled = crate::policy::devices::compile_devices(1, &devices);
        let c = cgwarden_common::device_type::CHAR;
        assert_ne!(crate::policy::devices::simulate(&compiled, c, 10, 229), 0);
        assert_ne!(crate::policy::devices::simulate(&compiled, c, 136, 9), 0);
        assert_eq!(crate::policy::devices::simulate(&compiled, c, 1, 1), 0);
    }

    #[test]
    fn reads_a_compose_service() {
        let compose: Value = crate::yaml::from_foreign_str(
            "services:\n  gateway:\n    user: \"1000:1000\"\n    cap_drop: [ALL]\n    read_only: true\n    security_opt: [\"no-new-privileges:true\"]\n    ports: [\"127.0.0.1:8080:8080\"]\n    networks: [backend]\n  web:\n    ports: [\"80:80\"]\n",
        )
        .unwrap();
        let h = from_compose(&compose, "proj", "gateway").unwrap();
        assert_eq!(h.user, Some(1000));
        assert!(
            h.capabilities.is_empty()
                && h.read_only_root
                && h.no_new_privileges
                && h.loopback_ports
        );
        assert_eq!(h.writable, ["/dev", "/proc"]);
        let yaml = profile_yaml("gateway", "compose", &h);
        let p = crate::policy::parse_str(&yaml, std::path::Path::new("gw.yaml")).unwrap();
        assert_eq!(p.runtime.capabilities, Some(CapSet::default()), "{yaml}");
        // The selector names exactly this service's containers.
        let id = "ab".repeat(32);
        let mut who = crate::engines::Identity::new(crate::engines::Engine::Docker, id.clone());
        who.compose = Some(crate::engines::Compose {
            project: "proj".into(),
            service: "gateway".into(),
        });
        assert!(
            p.selector
                .matches_container(&format!("/docker/{id}"), Some(&who)),
            "{yaml}"
        );
        who.compose.as_mut().unwrap().service = "web".into();
        assert!(
            !p.selector
                .matches_container(&format!("/docker/{id}"), Some(&who))
        );
        assert!(p.runtime.no_new_privileges, "{yaml}");
        let web = from_compose(&compose, "proj", "web").unwrap();
        assert!(!web.loopback_ports);
        assert_eq!(
            web.capabilities,
            CapSet::from_names(DOCKER_DEFAULT_CAPS).unwrap()
        );
        let yaml = profile_yaml("web", "compose", &web);
        let p = crate::policy::parse_str(&yaml, std::path::Path::new("web.yaml")).unwrap();
        assert_eq!(p.runtime.binds, crate::policy::Binds::Any);
        assert_eq!(p.runtime.capabilities, Some(web.capabilities), "{yaml}");
        assert!(!p.runtime.no_new_privileges, "{yaml}");
        assert!(yaml.contains("  raw_sockets: allow"), "{yaml}");
        assert!(from_compose(&compose, "proj", "db").is_err());
    }

    #[test]
    fn oci_capabilities_are_the_effective_and_ambient_sets_by_profile_name() {
        let config: Value = serde_json::json!({
            "process": {"user": {"uid": 0}, "noNewPrivileges": false, "capabilities": {
                "bounding": ["CAP_NET_BIND_SERVICE", "CAP_KILL", "CAP_AUDIT_WRITE", "CAP_FUTURE"],
                "effective": ["CAP_NET_BIND_SERVICE", "CAP_FUTURE"],
                "permitted": ["CAP_NET_BIND_SERVICE"],
                "ambient": ["CAP_KILL"]
            }}
        });
        let h = from_oci(&config);
        assert_eq!(
            h.capabilities.names(),
            vec!["CAP_KILL", "CAP_NET_BIND_SERVICE"]
        );
        assert_eq!(h.bounding.names(), vec!["CAP_AUDIT_WRITE"]);
        assert_eq!(h.unknown_capabilities, ["CAP_FUTURE"]);
        let yaml = profile_yaml("app", "config.json", &h);
        assert!(
            yaml.contains("\n  capabilities: [KILL, NET_BIND_SERVICE]\n"),
            "{yaml}"
        );
        assert!(
            yaml.contains("bounding set too (CAP_AUDIT_WRITE)"),
            "{yaml}"
        );
        assert!(yaml.contains("left out: CAP_FUTURE."), "{yaml}");
        assert!(yaml.contains("\n  no_new_privileges: false\n"), "{yaml}");
        let p = crate::policy::parse_str(&yaml, std::path::Path::new("app.yaml"))
            .unwrap_or_else(|e| panic!("{e}\n{yaml}"));
        assert_eq!(p.runtime.capabilities, Some(h.capabilities));
        assert!(!p.runtime.no_new_privileges);
    }

    #[test]
    fn compose_capabilities_follow_dockers_rules() {
        let caps = |add: &[&str], drop: &[&str]| {
            let s = |l: &[&str]| l.iter().map(|c| (*c).to_owned()).collect::<Vec<_>>();
            docker_capabilities(&s(add), &s(drop), false)
        };
        let default = CapSet::from_names(DOCKER_DEFAULT_CAPS).unwrap();
        let all = CapSet::from_names(&["ALL"]).unwrap();
        assert_eq!(caps(&[], &[]).0, default);
        // Names with or without the prefix, in any case.
        let (c, unknown) = caps(&["cap_net_admin", "FLY"], &["CAP_NET_RAW", "mknod"]);
        assert_eq!(
            c,
            CapSet(
                default
                    .beyond(CapSet::from_names(&["NET_RAW", "MKNOD"]).unwrap())
                    .0
                    | CapSet::from_names(&["NET_ADMIN"]).unwrap().0
            )
        );
        assert_eq!(unknown, ["FLY"]);
        assert_eq!(
            caps(&["NET_BIND_SERVICE"], &["ALL"]).0.names(),
            vec!["CAP_NET_BIND_SERVICE"]
        );
        assert_eq!(
            caps(&["ALL"], &["SYS_ADMIN"]).0,
            all.beyond(CapSet::from_names(&["SYS_ADMIN"]).unwrap())
        );
        assert_eq!(docker_capabilities(&[], &[], true).0, all);
        // A privileged service: every capability, written as ALL, and it parses.
        let compose: Value = crate::yaml::from_foreign_str(
            "services:\n  x:\n    privileged: true\n    security_opt: [no-new-privileges]\n",
        )
        .unwrap();
        let h = from_compose(&compose, "proj", "x").unwrap();
        let yaml = profile_yaml("x", "compose", &h);
        assert!(yaml.contains("\n  capabilities: [ALL]\n"), "{yaml}");
        let p = crate::policy::parse_str(&yaml, std::path::Path::new("x.yaml")).unwrap();
        assert_eq!(p.runtime.capabilities, Some(all));
        assert!(p.runtime.no_new_privileges);
    }
}
