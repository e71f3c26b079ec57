//! Reading profiles from files and directories into valid [`Profile`]s, with errors
//! that name file, line and column: those of the value or key at fault, as the YAML
//! parser ([`crate::yaml`]) or a `Spanned` field of the raw profile gives them.

use std::{
    collections::HashMap,
    fmt,
    path::{Path, PathBuf},
};

use super::{
    raw::{RawProfile, RawRuntime},
    types::{
        ComposeSelector, Egress, EgressRule, K8sSelector, Profile, RuleAction, Runtime, Selector,
        SyscallRule,
    },
};
use crate::yaml::{self, Position, YamlError};

/// One problem in one profile file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}:{line}:{column}: {message}", file.display())]
pub struct PolicyError {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Every problem found while loading a set of profiles.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct PolicyErrors(pub Vec<PolicyError>);

impl fmt::Display for PolicyErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// Loads one profile file, or every `*.yaml`/`*.yml` file of a directory (sorted by
/// name). All files are read and every error is returned, not only the first.
pub fn load_path(path: &Path) -> Result<Vec<Profile>, PolicyErrors> {
    let whole_file = |message: String| PolicyError {
        file: path.to_path_buf(),
        line: 1,
        column: 1,
        message,
    };
    let files = if path.is_dir() {
        let entries = std::fs::read_dir(path)
            .map_err(|e| PolicyErrors(vec![whole_file(format!("cannot read directory: {e}"))]))?;
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.is_file()
                    && matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"))
            })
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(PolicyErrors(vec![whole_file(
                "directory holds no .yaml or .yml profile".to_owned(),
            )]));
        }
        files
    } else {
        vec![path.to_path_buf()]
    };

    let mut profiles = Vec::new();
    let mut errors = Vec::new();
    let mut seen: HashMap<String, PathBuf> = HashMap::new();
    for file in files {
        let text = match std::fs::read_to_string(&file) {
            Ok(text) => text,
            Err(e) => {
                errors.push(PolicyError {
                    file: file.clone(),
                    line: 1,
                    column: 1,
                    message: format!("cannot read profile: {e}"),
                });
                continue;
            }
        };
        match parse(&text, &file) {
            Ok((profile, name_at)) => {
                let name = profile.name.as_str().to_owned();
                if let Some(first) = seen.get(&name) {
                    errors.push(PolicyError::at(
                        &file,
                        YamlError {
                            at: name_at,
                            message: format!(
                                "profile name `{name}` is already used by {}",
                                first.display()
                            ),
                        },
                    ));
                } else {
                    seen.insert(name, file.clone());
                    profiles.push(profile);
                }
            }
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(profiles)
    } else {
        Err(PolicyErrors(errors))
    }
}

impl PolicyError {
    fn at(file: &Path, e: YamlError) -> Self {
        Self {
            file: file.to_path_buf(),
            line: e.at.line,
            column: e.at.column,
            message: e.message,
        }
    }
}

/// Parses one profile document; `file` is used in error messages and kept in the profile.
pub fn parse_str(text: &str, file: &Path) -> Result<Profile, PolicyError> {
    parse(text, file).map(|(profile, _)| profile)
}

/// The profile, and where its name is written.
fn parse(text: &str, file: &Path) -> Result<(Profile, Position), PolicyError> {
    let raw: RawProfile =
        serde_saphyr::from_str_with_options(text, yaml::strict()).map_err(|e| {
            let mut error = YamlError::new(&e, text);
            if let Some(instead) = retired_key(&e) {
                error.message = instead.to_owned();
            }
            PolicyError::at(file, error)
        })?;
    from_raw(raw, file).map_err(|e| PolicyError::at(file, e))
}

/// What to write instead of a key profiles no longer have (reported at the key).
fn retired_key(e: &serde_saphyr::Error) -> Option<&'static str> {
    match e.without_snippet() {
        serde_saphyr::Error::SerdeUnknownField {
            field, expected, ..
        } if field == "read_only_root" && expected.contains(&"writable") => Some(
            "`read_only_root` is no longer a key: a read-only root is `read_only: [/]`, with the container's writable mounts as `writable` (the OCI check follows from it)",
        ),
        _ => None,
    }
}

/// `missing field` at `at`, where the mapping that lacks it starts.
fn missing(at: Position, key: &str) -> YamlError {
    YamlError {
        at,
        message: format!("missing field `{key}`"),
    }
}

/// Checks what serde does not (required keys, keys that depend on each other) and
/// builds the profile; every error is placed at the value or mapping it is about.
fn from_raw(raw: RawProfile, file: &Path) -> Result<(Profile, Position), YamlError> {
    let name = raw.name.ok_or_else(|| missing(Position::START, "name"))?;
    let mode = raw.mode.ok_or_else(|| missing(Position::START, "mode"))?;
    let selector = match raw.selector {
        Some(s) => Selector {
            cgroup: s.cgroup.into_vec(),
            container: s.container.into_vec(),
            runtime: s.runtime.into_vec().into_iter().map(|e| e.0).collect(),
            name: s.name.into_vec(),
            image: s.image.into_vec(),
            compose: s.compose.map(|c| ComposeSelector {
                project: c.project.into_vec(),
                service: c.service.into_vec(),
            }),
            k8s: s.k8s.map(|k| K8sSelector {
                namespace: k.namespace.into_vec(),
                pod: k.pod.into_vec(),
                container: k.container.into_vec(),
            }),
        },
        None => Selector::default(),
    };
    let egress = match raw.egress {
        None => Egress::default(),
        Some(spanned) => {
            let at = Position::of(&spanned);
            let e = spanned.value;
            let default = e.default.ok_or_else(|| missing(at, "default"))?;
            let mut rules = Vec::with_capacity(e.allow.len() + e.deny.len());
            for (list, kind, action) in [
                (e.allow, "allow", RuleAction::Allow),
                (e.deny, "deny", RuleAction::Deny),
            ] {
                for (i, r) in list.into_iter().enumerate() {
                    let at = Position::of(&r);
                    let r = r.value;
                    rules.push(EgressRule {
                        label: r.name.unwrap_or_else(|| format!("{kind}[{i}]")),
                        action,
                        to: r.to.ok_or_else(|| missing(at, "to"))?.into_vec(),
                        ports: r.ports,
                        protocol: r.protocol,
                    });
                }
            }
            Egress {
                default,
                report: e.report,
                rules,
                dns: e.dns,
            }
        }
    };
    let syscalls = raw
        .syscalls
        .into_iter()
        .map(|spanned| {
            let at = Position::of(&spanned);
            let r = spanned.value;
            if r.names.is_empty() && r.set.is_none() {
                return Err(YamlError {
                    at,
                    message: "a syscall rule needs `names`, `set`, or both".to_owned(),
                });
            }
            let except = match r.except {
                Some(except) if !except.value.is_empty() && r.set.is_none() => {
                    return Err(YamlError {
                        at: Position::of(&except),
                        message: "`except` leaves syscalls out of a `set`; this rule has none"
                            .to_owned(),
                    });
                }
                Some(except) => except.value,
                None => Vec::new(),
            };
            Ok(SyscallRule {
                names: r.names,
                set: r.set,
                except,
                action: r.action.ok_or_else(|| missing(at, "action"))?,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let profile = Profile {
        name: name.value.clone(),
        mode,
        selector,
        egress,
        syscalls,
        runtime: runtime(raw.runtime.unwrap_or_default())?,
        learn: false,
        source: file.to_path_buf(),
    };
    Ok((profile, Position::of(&name)))
}

/// The hardened runtime profile: paths checked together, devices one by one.
fn runtime(r: RawRuntime) -> Result<Runtime, YamlError> {
    super::paths::validate(&r.read_only, &r.writable)?;
    let devices = match r.devices {
        None => None,
        Some(entries) => Some(
            entries
                .into_iter()
                .map(|d| {
                    let at = Position::of(&d);
                    d.value.validate(at)
                })
                .collect::<Result<Vec<_>, _>>()?,
        ),
    };
    let mut posture = r.posture;
    posture.sort_unstable();
    posture.dedup();
    Ok(Runtime {
        user: r.user,
        binds: r.binds,
        raw_sockets: r.raw_sockets,
        capabilities: r.capabilities,
        no_new_privileges: r.no_new_privileges,
        devices,
        read_only: r.read_only.into_iter().map(|p| p.value).collect(),
        writable: r.writable.into_iter().map(|p| p.value).collect(),
        posture,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{Destination, Mode, PortRange, Protocol};

    fn parse(text: &str) -> Result<Profile, PolicyError> {
        parse_str(text, Path::new("p.yaml"))
    }

    #[test]
    fn parses_the_documented_example() {
        let p = parse(
            "name: web\nmode: enforce\nselector:\n  cgroup: \"/docker/*\"\negress:\n  default: deny\n  allow:\n    - to: 10.0.0.0/8\n      ports: [443, \"8000-8100\"]\n      protocol: tcp\nsyscalls:\n  - names: [mount, unshare]\n    action: kill\n",
        )
        .unwrap();
        assert_eq!(p.name.as_str(), "web");
        assert_eq!(p.mode, Mode::Enforce);
        assert!(p.selector.matches("/docker/abc"));
        assert!(!p.selector.matches("/docker/abc/def"));
        let r = &p.egress.rules[0];
        assert_eq!(r.label, "allow[0]");
        assert_eq!(r.protocol, Protocol::Tcp);
        assert_eq!(
            r.ports,
            vec![
                PortRange { lo: 443, hi: 443 },
                PortRange { lo: 8000, hi: 8100 }
            ]
        );
        assert!(matches!(r.to[0], Destination::Net(_)));
        assert_eq!(p.syscalls[0].names.len(), 2);
    }

    #[test]
    fn selects_by_what_the_engine_says() {
        use crate::engines::{Compose, Engine, Identity, K8s};
        let p = parse(
            "name: a\nmode: audit\nselector:\n  runtime: [docker, podman]\n  image: \"shop/*\"\n  compose:\n    project: shop\n    service: [web, api]\n",
        )
        .unwrap();
        assert!(p.selector.selects_by_container());
        let id = "ab".repeat(32);
        let path = format!("/docker/{id}");
        let mut who = Identity::new(Engine::Docker, id.clone());
        who.container.image = Some("shop/web:1".into());
        who.compose = Some(Compose {
            project: "shop".into(),
            service: "web".into(),
        });
        assert!(p.selector.matches_container(&path, Some(&who)));
        // Every key must match: another service, another image, another engine.
        let mut other = who.clone();
        other.compose.as_mut().unwrap().service = "db".into();
        assert!(!p.selector.matches_container(&path, Some(&other)));
        let mut other = who.clone();
        other.container.image = Some("nginx".into());
        assert!(!p.selector.matches_container(&path, Some(&other)));
        let mut other = who.clone();
        other.container.runtime = Engine::Containerd;
        assert!(!p.selector.matches_container(&path, Some(&other)));
        // Path alone: no image, no compose labels known.
        assert!(!p.selector.matches(&path));
        let k = parse(
            "name: a\nmode: audit\nselector:\n  k8s:\n    namespace: shop\n    pod: \"web-*\"\n",
        )
        .unwrap();
        let mut pod = Identity::new(Engine::Containerd, "c1".into());
        pod.k8s = Some(K8s {
            namespace: "shop".into(),
            pod: "web-7d9f".into(),
            container: Some("web".into()),
        });
        assert!(k.selector.matches_container("/k8s.io/c1", Some(&pod)));
        pod.k8s.as_mut().unwrap().namespace = "kube-system".into();
        assert!(!k.selector.matches_container("/k8s.io/c1", Some(&pod)));
    }

    #[test]
    fn invalid_selector_values_are_errors_at_their_place() {
        let e = parse("name: a\nmode: audit\nselector:\n  container: \"[x\"\n").unwrap_err();
        assert_eq!((e.line, e.column), (4, 14), "{e}");
        assert!(e.message.contains("invalid glob `[x`"), "{}", e.message);
        let e = parse("name: a\nmode: audit\nselector:\n  runtime: dockr\n").unwrap_err();
        assert_eq!(e.line, 4, "{e}");
        assert!(
            e.message.contains("unknown runtime `dockr`"),
            "{}",
            e.message
        );
        let e = parse(
            "name: a\nmode: audit\nselector:\n  compose:\n    project: x\n    service: [\"ok\", \"[\"]\n",
        )
        .unwrap_err();
        assert_eq!(e.line, 6, "{e}");
        let e = parse("name: a\nmode: audit\nselector:\n  k8s:\n    cluster: x\n").unwrap_err();
        assert_eq!(e.line, 5, "{e}");
    }

    #[test]
    fn selects_containers_by_id_and_runtime() {
        let id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        let p =
            parse("name: a\nmode: audit\nselector:\n  container: \"0123*\"\n  runtime: docker\n")
                .unwrap();
        assert!(p.selector.matches(&format!("/docker/{id}")));
        assert!(
            p.selector
                .matches(&format!("/system.slice/docker-{id}.scope"))
        );
        assert!(
            !p.selector
                .matches(&format!("/machine.slice/libpod-{id}.scope")),
            "podman"
        );
        assert!(
            !p.selector
                .matches(&format!("/docker/{}", id.replace("0123", "ffff")))
        );
        assert!(!p.selector.matches("/system.slice/sshd.service"));
    }

    #[test]
    fn hardened_runtime_keys_and_name_selectors() {
        let p = parse(
            "name: a\nmode: audit\nselector:\n  name: \"web-*\"\nruntime:\n  user: 1000\n  capabilities: [NET_BIND_SERVICE, cap_chown]\n  no_new_privileges: true\n  read_only: [/]\n  writable: [/tmp]\n",
        )
        .unwrap();
        let caps = p.runtime.capabilities.unwrap();
        assert_eq!(caps.names(), vec!["CAP_CHOWN", "CAP_NET_BIND_SERVICE"]);
        assert!(p.runtime.no_new_privileges && p.runtime.read_only_root());
        assert!(p.runtime.needs_creds());
        let named = |name: &str| {
            let mut who = crate::engines::Identity::new(crate::engines::Engine::Runc, "abc".into());
            who.container.name = Some(name.to_owned());
            who
        };
        assert!(
            p.selector
                .matches_container("/x/abc", Some(&named("web-1")))
        );
        assert!(!p.selector.matches_container("/x/abc", Some(&named("db-1"))));
        // A cgroup nested in the container is covered through it, not selected itself.
        assert!(
            !p.selector
                .matches_container("/x/abc/sub", Some(&named("web-1")))
        );
        assert!(!p.selector.matches("/x/abc"));
        let none = parse("name: a\nmode: audit\nruntime:\n  capabilities: []\n").unwrap();
        assert_eq!(none.runtime.capabilities.map(|c| c.0), Some(0));
        assert!(
            !parse("name: a\nmode: audit\nruntime:\n  user: 1\n")
                .unwrap()
                .runtime
                .needs_creds()
        );
        let e = parse("name: a\nmode: audit\nruntime:\n  capabilities: [FLY]\n").unwrap_err();
        assert_eq!(e.line, 4);
        assert!(
            e.message.contains("`FLY` is not a Linux capability"),
            "{}",
            e.message
        );
    }

    #[test]
    fn a_read_only_root_is_read_only_slash() {
        let root = |body: &str| {
            parse(&format!("name: a\nmode: audit\nruntime:\n{body}"))
                .unwrap()
                .runtime
                .read_only_root()
        };
        assert!(root("  read_only: [/]\n  writable: [/tmp, /dev]\n"));
        assert!(!root("  read_only: [/etc, /usr]\n"));
        assert!(!root("  user: 1000\n"));
        // The old key is refused where it is written, with what to write instead.
        let e = parse("name: a\nmode: audit\nruntime:\n  user: 1000\n  read_only_root: true\n")
            .unwrap_err();
        assert_eq!((e.line, e.column), (5, 3), "{e}");
        assert!(e.message.contains("`read_only: [/]`"), "{e}");
    }

    #[test]
    fn bad_cidr_is_located() {
        let e = parse(
            "name: a\nmode: audit\negress:\n  default: deny\n  allow:\n    - to: 10.0.0.300/8\n",
        )
        .unwrap_err();
        assert_eq!((e.line, e.column), (6, 11), "{e}");
        assert!(e.message.contains("10.0.0.300/8"), "{e}");
    }

    #[test]
    fn bad_port_is_located() {
        let e = parse("name: a\nmode: audit\negress:\n  default: deny\n  allow:\n    - to: ::1\n      ports: [\"90-80\"]\n")
            .unwrap_err();
        assert_eq!(e.line, 7, "{e}");
        assert!(e.message.contains("empty"), "{e}");
        let e = parse("name: a\nmode: audit\negress:\n  default: deny\n  allow:\n    - to: ::1\n      ports: [70000]\n")
            .unwrap_err();
        assert!(e.message.contains("out of range"), "{e}");
    }

    #[test]
    fn unknown_key_and_bad_mode_are_rejected() {
        let e = parse("name: a\nmode: audit\negres: {}\n").unwrap_err();
        assert_eq!(e.line, 3, "{e}");
        let e = parse("name: a\nmode: block\n").unwrap_err();
        assert_eq!(e.line, 2, "{e}");
        assert!(e.message.contains("block"), "{e}");
    }

    #[test]
    fn syscall_rule_needs_names_or_set() {
        let e = parse("name: a\nmode: audit\nsyscalls:\n  - action: kill\n").unwrap_err();
        assert_eq!(e.line, 4, "{e}");
        assert!(
            parse("name: a\nmode: audit\nsyscalls:\n  - set: escape\n    action: kill\n").is_ok()
        );
    }

    #[test]
    fn host_bits_and_bad_names_are_refused() {
        let e = parse(
            "name: a\nmode: audit\negress:\n  default: deny\n  allow:\n    - to: 10.0.0.1/8\n",
        )
        .unwrap_err();
        assert!(e.message.contains("10.0.0.0/8"), "{e}");
        let e = parse(
            "name: a\nmode: audit\negress:\n  default: deny\n  allow:\n    - to: \"bad name!\"\n",
        )
        .unwrap_err();
        assert!(e.message.contains("bad name!"), "{e}");
        let e = parse("name: a b\nmode: audit\n").unwrap_err();
        assert_eq!(e.line, 1, "{e}");
    }

    #[test]
    fn directory_reports_every_file_and_duplicate_names() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.yaml"), "name: x\nmode: audit\n").unwrap();
        std::fs::write(dir.path().join("b.yaml"), "name: x\nmode: audit\n").unwrap();
        std::fs::write(dir.path().join("c.yaml"), "name: y\nmode: nope\n").unwrap();
        let errors = load_path(dir.path()).unwrap_err().0;
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors[0].message.contains("already used"));
        assert!(errors[0].file.ends_with("b.yaml"));
        assert!(errors[1].file.ends_with("c.yaml"));
    }

    /// The line and column of the error `text` gives, and its message.
    fn error_at(text: &str) -> ((usize, usize), String) {
        let e = parse(text).unwrap_err();
        ((e.line, e.column), e.message)
    }

    #[test]
    fn a_bad_cidr_in_the_third_rule_is_placed_at_itself() {
        let (at, message) = error_at(concat!(
            "name: a\n",
            "mode: enforce\n",
            "egress:\n",
            "  default: deny\n",
            "  allow:\n",
            "    - to: 10.0.0.0/8\n",
            "    - to: [192.168.0.0/16, example.com]\n",
            "    - name: third\n",
            "      to: [10.1.0.0/16, 10.2.0.300/16]\n",
            "      ports: [443]\n",
        ));
        assert_eq!(at, (9, 25), "{message}");
        assert!(
            message.contains("invalid CIDR `10.2.0.300/16`"),
            "{message}"
        );
    }

    #[test]
    fn a_bad_port_in_a_nested_list_is_placed_at_itself() {
        let (at, message) = error_at(concat!(
            "name: a\n",
            "mode: audit\n",
            "egress:\n",
            "  default: deny\n",
            "  deny:\n",
            "    - to: ::1\n",
            "    - to: 192.0.2.0/24\n",
            "      ports:\n",
            "        - 53\n",
            "        - \"1000-999\"\n",
            "        - 80\n",
        ));
        assert_eq!(at, (10, 11), "{message}");
        assert_eq!(message, "port range `1000-999` is empty (start above end)");
        let (at, message) = error_at(
            "name: a\nmode: audit\negress:\n  default: deny\n  allow:\n    - {to: ::1, ports: [1, 70000]}\n",
        );
        assert_eq!(at, (6, 28), "{message}");
        assert!(message.contains("70000 is out of range"), "{message}");
    }

    #[test]
    fn an_unknown_key_in_a_syscall_rule_is_placed_at_the_key() {
        let (at, message) = error_at(concat!(
            "name: a\n",
            "mode: audit\n",
            "syscalls:\n",
            "  - names: [mount]\n",
            "    action: kill\n",
            "  - set: escape\n",
            "    except: [ptrace]\n",
            "    acton: report\n",
        ));
        assert_eq!(at, (8, 5), "{message}");
        assert!(
            message.starts_with("unknown field `acton`, expected one of `names`"),
            "{message}"
        );
        // A syscall name that is none, in a flow list.
        let (at, message) = error_at(
            "name: a\nmode: audit\nsyscalls:\n  - names: [mount, teleport]\n    action: kill\n",
        );
        assert_eq!(at, (4, 20), "{message}");
    }

    #[test]
    fn bad_device_entries_are_placed_at_the_value_at_fault() {
        let devices = |entries: &str| {
            error_at(&format!(
                "name: a\nmode: enforce\nruntime:\n  devices:\n    - default\n{entries}"
            ))
        };
        let (at, message) =
            devices("    - type: c\n      major: 10\n      minor: 200\n      access: rwx\n");
        assert_eq!(at, (9, 15), "{message}");
        assert!(message.contains("has `x`"), "{message}");
        let (at, message) =
            devices("    - type: c\n      major: 4294967295\n      minor: 1\n      access: r\n");
        assert_eq!(at, (7, 14), "{message}");
        assert!(message.contains("out of range"), "{message}");
        let (at, message) = devices("    - {type: q, major: 1, minor: 3, access: r}\n");
        assert_eq!(at, (6, 14), "{message}");
        // A missing key: where the device starts.
        let (at, message) = devices("    - type: c\n      major: 10\n      access: rw\n");
        assert_eq!(at, (6, 7), "{message}");
        assert_eq!(message, "missing field `minor`");
        let (at, message) = devices("    - {type: c, major: 1, minor: 3, acess: r}\n");
        assert_eq!(at, (6, 37), "{message}");
        assert!(message.starts_with("unknown field `acess`"), "{message}");
    }

    #[test]
    fn a_key_repeated_in_a_rule_is_placed_at_its_second_occurrence() {
        let (at, message) = error_at(concat!(
            "name: a\n",
            "mode: enforce\n",
            "egress:\n",
            "  default: deny\n",
            "  allow:\n",
            "    - to: 10.0.0.0/8\n",
            "      ports: [443]\n",
            "      protocol: tcp\n",
            "      ports: [80]\n",
        ));
        assert_eq!(at, (9, 7), "{message}");
        assert_eq!(message, "duplicate key `ports`: each key may appear once");
        let (at, _) = error_at("name: a\nmode: audit\nname: b\n");
        assert_eq!(at, (3, 1));
        let (at, _) = error_at("name: a\nmode: audit\nselector: {image: x, name: y, image: z}\n");
        assert_eq!(at, (3, 31));
    }

    #[test]
    fn a_value_of_the_wrong_type_deep_inside_is_placed_at_itself() {
        let (at, message) =
            error_at("name: a\nmode: enforce\nruntime:\n  user: 1000\n  read_only: /etc\n");
        assert_eq!(at, (5, 14), "{message}");
        assert_eq!(message, "expected a list");
        let (at, message) = error_at(
            "name: a\nmode: enforce\negress:\n  default: deny\n  dns:\n    servers: [10.0.0.53]\n    max_ttl: [60]\n",
        );
        assert_eq!(at, (7, 14), "{message}");
        let (at, message) = error_at(
            "name: a\nmode: enforce\negress:\n  default: deny\n  allow:\n    - to: 10.0.0.0/8\n      ports: 443\n",
        );
        assert_eq!((at, message.as_str()), ((7, 14), "expected a list"));
        let (at, message) = error_at("name: a\nmode: audit\nruntime:\n  user: nobody\n");
        assert_eq!(at, (4, 9), "{message}");
        assert!(message.contains("`nobody`"), "{message}");
        let (at, message) = error_at("name: a\nmode: audit\nselector:\n  runtime: 5\n");
        assert_eq!(at, (4, 12), "{message}");
        assert_eq!(message, "invalid type: integer `5`, expected a string");
        let (at, message) =
            error_at("name: a\nmode: audit\nruntime:\n  capabilities: [NET_ADMIN, FLY]\n");
        assert_eq!(at, (4, 29), "{message}");
        let (at, message) =
            error_at("name: a\nmode: audit\nselector:\n  runtime: [docker, dockr]\n");
        assert_eq!(at, (4, 21), "{message}");
        let (at, message) = error_at("name: a\nmode: block\n");
        assert_eq!(at, (2, 7), "{message}");
        let (at, message) = error_at("name: a\nmode: audit\nruntime:\n  no_new_privileges: yes\n");
        assert_eq!(at, (4, 22), "{message}");
    }

    #[test]
    fn missing_and_conflicting_keys_are_placed_at_their_mapping_or_value() {
        let (at, message) = error_at(
            "name: a\nmode: audit\negress:\n  default: deny\n  allow:\n    - to: 10.0.0.0/8\n    - ports: [443]\n      protocol: tcp\n",
        );
        assert_eq!((at, message.as_str()), ((7, 7), "missing field `to`"));
        let (at, message) = error_at("name: a\nmode: audit\negress:\n  allow: []\n");
        assert_eq!((at, message.as_str()), ((4, 3), "missing field `default`"));
        let (at, message) = error_at("name: a\nmode: audit\nsyscalls:\n  - names: [mount]\n");
        assert_eq!((at, message.as_str()), ((4, 5), "missing field `action`"));
        let (at, message) = error_at("name: a\nselector: {}\n");
        assert_eq!((at, message.as_str()), ((1, 1), "missing field `mode`"));
        let (at, message) = error_at(
            "name: a\nmode: audit\nsyscalls:\n  - names: [mount]\n    except: [umount2]\n    action: kill\n",
        );
        assert_eq!(at, (5, 13), "{message}");
        assert!(message.contains("has none"), "{message}");
        let (at, message) = error_at(
            "name: a\nmode: audit\nruntime:\n  read_only: [/, /etc]\n  writable:\n    - /tmp\n    - /etc\n",
        );
        assert_eq!(at, (7, 7), "{message}");
        assert!(message.contains("`/etc` is listed both"), "{message}");
        let (at, message) = error_at("name: a\nmode: audit\nruntime:\n  writable: [/tmp]\n");
        assert_eq!(at, (4, 14), "{message}");
        let many: Vec<String> = (0..40).map(|i| format!("/p{i}")).collect();
        let (at, message) = error_at(&format!(
            "name: a\nmode: audit\nruntime:\n  read_only:\n    - {}\n",
            many.join("\n    - ")
        ));
        assert_eq!(at, (5 + 32, 7), "{message}");
    }

    #[test]
    fn yaml_as_people_write_it_is_read() {
        let p = parse(concat!(
            "--- # a profile\n",
            "name: 'web'            # single-quoted\n",
            "mode: \"audit\"\n",
            "selector:\n",
            "  cgroup: [\"/docker/*\"]\n",
            "egress:\n",
            "  default: deny\n",
            "  allow:\n",
            "    - &internal\n",
            "      to: [10.0.0.0/8, \"192.168.0.0/16\"]\n",
            "      ports: [443, \"8000-8100\"]\n",
            "      protocol: tcp\n",
            "    - *internal\n",
            "    - to: example.com\n",
            "      ports:\n",
            "        - 53\n",
            "runtime:\n",
            "  no_new_privileges: true\n",
            "  user: 0\n",
            "...\n",
        ))
        .unwrap();
        assert_eq!(p.name.as_str(), "web");
        assert_eq!(p.egress.rules.len(), 3);
        assert_eq!(p.egress.rules[1].to, p.egress.rules[0].to);
        assert_eq!(p.egress.rules[1].label, "allow[1]");
        assert!(p.runtime.no_new_privileges);
        // Merge keys, tags and a second document are refused where they are written.
        let (at, message) = error_at(
            "name: a\nmode: audit\negress:\n  default: deny\n  allow:\n    - &r {to: 10.0.0.0/8}\n    - <<: *r\n      ports: [443]\n",
        );
        assert_eq!(at.0, 7, "{message}");
        assert!(message.contains("merge keys"), "{message}");
        let (at, message) = error_at("name: a\nmode: !strict audit\n");
        assert_eq!(at.0, 2, "{message}");
        assert!(message.contains("`!strict`"), "{message}");
        // (At the second document's first key.)
        let (at, message) = error_at("name: a\nmode: audit\n---\nname: b\nmode: audit\n");
        assert_eq!(at, (4, 1), "{message}");
        assert!(message.contains("more than one YAML document"), "{message}");
    }

    #[test]
    fn a_profile_as_big_as_the_benchmarks_loads() {
        use std::fmt::Write as _;
        // As `cargo xtask bench egress` writes it.
        let mut y = "name: big\nmode: enforce\negress:\n  default: deny\n  allow:\n".to_owned();
        for i in 0..100_000u32 {
            let _ = writeln!(
                y,
                "    - to: 10.{}.{}.{}/32",
                i >> 16,
                (i >> 8) & 255,
                i & 255
            );
        }
        assert_eq!(parse(&y).unwrap().egress.rules.len(), 100_000);
    }

    #[test]
    fn a_name_used_twice_is_placed_at_the_second_name() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.yaml"), "name: x\nmode: audit\n").unwrap();
        std::fs::write(dir.path().join("b.yaml"), "mode: audit\nname: x\n").unwrap();
        let errors = load_path(dir.path()).unwrap_err().0;
        assert_eq!((errors[0].line, errors[0].column), (2, 7), "{errors:?}");
    }
}
