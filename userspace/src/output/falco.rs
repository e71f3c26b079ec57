//! Falco-compatible output: the fields falcosidekick reads (`time`, `rule`, `priority`,
//! `output`, `output_fields`, `source`, `tags`, `hostname`), so its many outputs forward
//! cgwarden alerts unchanged.

use serde::Serialize;
use serde_json::{Value, json};

use crate::events::Record;

/// A Falco alert.
#[derive(Debug, Serialize)]
pub struct FalcoAlert {
    pub time: String,
    pub rule: String,
    pub priority: &'static str,
    pub output: String,
    pub output_fields: Value,
    pub source: &'static str,
    pub tags: Vec<&'static str>,
    pub hostname: String,
}

/// The alert for one record.
pub fn to_falco(record: &Record, hostname: &str) -> FalcoAlert {
    let (rule, priority, output, fields, tags) = match record {
        Record::Net(r) => {
            let (rule, priority) = match r.verdict {
                "deny" => ("cgwarden egress denied", "Warning"),
                "audit" => ("cgwarden egress outside profile (audit)", "Notice"),
                _ => ("cgwarden egress allowed", "Informational"),
            };
            let output = format!(
                "{verdict} {kind} to {dst}:{port}/{proto} by {proc} (pid={pid} uid={uid}) in {cgroup} (profile={profile} rule={rule_name} count={count})",
                verdict = r.verdict,
                kind = r.header.kind,
                dst = r.dst,
                port = r.port,
                proto = r.protocol,
                proc = r.header.process,
                pid = r.header.pid,
                uid = r.header.uid,
                cgroup = r.header.cgroup.as_deref().unwrap_or("?"),
                profile = r.header.profile.as_deref().unwrap_or("?"),
                rule_name = r.rule,
                count = r.count,
            );
            let fields = json!({
                "evt.type": r.header.kind,
                "fd.sip": r.dst,
                "fd.sport": r.port,
                "fd.l4proto": r.protocol,
                "cgwarden.rule": r.rule,
                "cgwarden.verdict": r.verdict,
                "cgwarden.count": r.count,
            });
            (
                rule,
                priority,
                output,
                fields,
                vec!["cgwarden", "network", "egress"],
            )
        }
        Record::Dns(r) => {
            let priority = if r.capped > 0 {
                "Warning"
            } else {
                "Informational"
            };
            let addrs: Vec<&str> = r.answers.iter().map(|a| a.addr.as_str()).collect();
            let output = format!(
                "DNS answer for {name} ({addrs}) received by {proc} (pid={pid}) in {cgroup} (learned={learned} capped={capped})",
                name = r.name,
                addrs = addrs.join(","),
                proc = r.header.process,
                pid = r.header.pid,
                cgroup = r.header.cgroup.as_deref().unwrap_or("?"),
                learned = r.learned,
                capped = r.capped,
            );
            let fields = json!({
                "evt.type": "dns",
                "fd.name": r.name,
                "cgwarden.answers": addrs,
                "cgwarden.learned": r.learned,
                "cgwarden.capped": r.capped,
            });
            (
                "cgwarden DNS answer",
                priority,
                output,
                fields,
                vec!["cgwarden", "network", "dns"],
            )
        }
        Record::Syscall(r) => {
            let (rule, priority) = match r.verdict {
                "deny" => ("cgwarden syscall killed", "Critical"),
                "audit" => ("cgwarden syscall outside profile (audit)", "Warning"),
                _ => ("cgwarden syscall reported", "Notice"),
            };
            let output = format!(
                "{syscall} by {proc} (pid={pid} uid={uid}) in {cgroup}{path} action={action} (profile={profile} rule={rule_name})",
                syscall = r.syscall,
                proc = r.header.process,
                pid = r.header.pid,
                uid = r.header.uid,
                cgroup = r.header.cgroup.as_deref().unwrap_or("?"),
                path = r
                    .path
                    .as_deref()
                    .map(|p| format!(" path={p}"))
                    .unwrap_or_default(),
                action = r.action,
                profile = r.header.profile.as_deref().unwrap_or("?"),
                rule_name = r.rule,
            );
            let fields = json!({
                "evt.type": r.syscall,
                "evt.args": r.args,
                "fd.name": r.path,
                "cgwarden.rule": r.rule,
                "cgwarden.action": r.action,
                "cgwarden.verdict": r.verdict,
            });
            (
                rule,
                priority,
                output,
                fields,
                vec!["cgwarden", "syscall", "container-escape"],
            )
        }
        Record::Sysctl(r) => {
            let (rule, priority) = match r.verdict {
                "deny" => ("cgwarden sysctl write refused", "Critical"),
                "audit" => ("cgwarden sysctl write (audit)", "Warning"),
                _ => ("cgwarden sysctl write", "Warning"),
            };
            let output = format!(
                "write of {name}={value:?} by {proc} (pid={pid} uid={uid}) in {cgroup} ({verdict})",
                name = r.name,
                value = r.value,
                proc = r.header.process,
                pid = r.header.pid,
                uid = r.header.uid,
                cgroup = r.header.cgroup.as_deref().unwrap_or("?"),
                verdict = r.verdict,
            );
            let fields = json!({
                "evt.type": "sysctl",
                "fd.name": format!("/proc/sys/{}", r.name),
                "cgwarden.verdict": r.verdict,
            });
            (
                rule,
                priority,
                output,
                fields,
                vec!["cgwarden", "sysctl", "container-escape"],
            )
        }
        Record::Deviation(r) => (
            "cgwarden runtime profile deviation",
            if r.verdict == "deny" {
                "Critical"
            } else {
                "Warning"
            },
            format!(
                "{} deviation: {} by {} (pid={} uid={}) in {} (profile={} verdict={})",
                r.deviation,
                r.detail,
                r.header.process,
                r.header.pid,
                r.header.uid,
                r.header.cgroup.as_deref().unwrap_or("?"),
                r.header.profile.as_deref().unwrap_or("?"),
                r.verdict
            ),
            {
                let mut fields = json!({
                    "evt.type": r.deviation,
                    "proc.exepath": r.exe,
                    "cgwarden.verdict": r.verdict,
                });
                if let Some(d) = &r.device {
                    fields["cgwarden.device"] =
                        json!(format!("{} {}:{} {}", d.kind, d.major, d.minor, d.access));
                }
                if let Some(w) = &r.write {
                    fields["fd.name"] = json!(w.path);
                    fields["cgwarden.syscall"] = json!(w.syscall);
                    fields["cgwarden.result"] = json!(w.result);
                }
                fields
            },
            vec!["cgwarden", "runtime", "deviation"],
        ),
        Record::Posture(r) => {
            let failed: Vec<String> = r
                .posture
                .checks
                .iter()
                .filter(|f| f.verdict == crate::posture::Verdict::Fail)
                .map(|f| format!("{} {}", f.id, f.title))
                .collect();
            let c = &r.who.container;
            (
                "cgwarden container posture",
                if failed.is_empty() {
                    "Informational"
                } else {
                    "Warning"
                },
                format!(
                    "container {} ({}) posture {}{}",
                    c.name.as_deref().unwrap_or("?"),
                    c.id,
                    r.posture.score,
                    if failed.is_empty() {
                        String::new()
                    } else {
                        format!("; failed: {}", failed.join("; "))
                    }
                ),
                json!({
                    "cgwarden.cgroup": r.cgroup,
                    "cgwarden.profile": r.profile,
                    "cgwarden.posture.passed": r.posture.passed,
                    "cgwarden.posture.failed": r.posture.failed,
                    "cgwarden.posture.unknown": r.posture.unknown,
                }),
                vec!["cgwarden", "posture", "cis"],
            )
        }
        Record::Lost(r) => (
            "cgwarden events lost",
            "Error",
            format!("{} events lost: {}", r.count, r.reason),
            json!({ "cgwarden.lost": r.count }),
            vec!["cgwarden", "agent"],
        ),
    };
    let mut fields = fields;
    if let Value::Object(map) = &mut fields {
        if let Some(h) = record.header() {
            for (k, v) in process_fields(h) {
                map.insert(k.to_owned(), v);
            }
        }
        for (k, v) in container_fields(record.who()) {
            map.insert(k.to_owned(), v);
        }
    }
    FalcoAlert {
        time: record.time().to_owned(),
        rule: rule.to_owned(),
        priority,
        output,
        output_fields: fields,
        source: "cgwarden",
        tags,
        hostname: hostname.to_owned(),
    }
}

/// Falco's process fields and cgwarden's cgroup and profile, on every alert about a
/// process (every record from the kernel).
fn process_fields(h: &crate::events::Header) -> [(&'static str, Value); 7] {
    [
        ("proc.name", json!(h.process)),
        ("proc.pid", json!(h.pid)),
        ("user.uid", json!(h.uid)),
        ("group.gid", json!(h.gid)),
        ("cgwarden.cgroup", json!(h.cgroup)),
        ("cgwarden.cgroup_id", json!(h.cgroup_id)),
        ("cgwarden.profile", json!(h.profile)),
    ]
}

/// Falco's container and Kubernetes fields (the container plugin's names), on every
/// alert: null where the record has no container, or the engine did not say. Strings
/// or null only: falcosidekick reads the Kubernetes ones as strings.
fn container_fields(who: Option<&crate::engines::Identity>) -> [(&'static str, Value); 6] {
    let c = who.map(|w| &w.container);
    let k8s = who.and_then(|w| w.k8s.as_ref());
    let image = c.and_then(|c| c.image.as_deref());
    let (repository, tag) = image.map_or((None, None), split_image);
    [
        ("container.id", json!(c.map(|c| c.id.as_str()))),
        ("container.name", json!(c.and_then(|c| c.name.as_deref()))),
        ("container.image.repository", json!(repository)),
        ("container.image.tag", json!(tag)),
        ("k8s.ns.name", json!(k8s.map(|k| k.namespace.as_str()))),
        ("k8s.pod.name", json!(k8s.map(|k| k.pod.as_str()))),
    ]
}

/// An image reference's repository and tag: `registry:5000/app:1.2@sha256:..` is
/// (`registry:5000/app`, `1.2`); no tag: (the repository, None). A colon before the last
/// `/` belongs to a registry's port, not a tag.
fn split_image(image: &str) -> (Option<&str>, Option<&str>) {
    let name = image.split_once('@').map_or(image, |(name, _)| name);
    let last = name.rfind('/').map_or(0, |i| i + 1);
    match name[last..].rfind(':') {
        Some(i) => (Some(&name[..last + i]), Some(&name[last + i + 1..])),
        None => (Some(name), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{DeviationRecord, Header, WriteAttempt};

    #[test]
    fn a_read_only_write_names_path_syscall_and_result() {
        let r = DeviationRecord {
            header: Header {
                time: "t".into(),
                kind: "deviation",
                pid: 7,
                tid: 7,
                process: "sh".into(),
                uid: 1000,
                gid: 1000,
                cgroup: Some("/gw/abc".into()),
                cgroup_id: 9,
                who: None,
                profile: Some("gateway".into()),
            },
            verdict: "report",
            deviation: "read_only",
            detail: "openat writes under a read-only path: /etc/x (EROFS)".into(),
            device: None,
            write: Some(WriteAttempt {
                path: "/etc/x".into(),
                written: None,
                location_unknown: false,
                syscall: "openat".into(),
                result: "EROFS".into(),
            }),
            exe: Some("/bin/busybox".into()),
            creds: None,
        };
        let alert = to_falco(&Record::Deviation(r), "host");
        assert_eq!(alert.priority, "Warning");
        assert_eq!(alert.output_fields["fd.name"], "/etc/x");
        assert_eq!(alert.output_fields["cgwarden.syscall"], "openat");
        assert_eq!(alert.output_fields["cgwarden.result"], "EROFS");
        assert!(alert.output_fields.get("cgwarden.device").is_none());
        assert!(
            alert.output.contains("read_only deviation"),
            "{}",
            alert.output
        );
        assert_eq!(alert.output_fields["group.gid"], 1000);
        assert!(alert.output_fields.get("user.gid").is_none());
        // No container: the fields are there, null.
        assert_eq!(alert.output_fields["container.id"], Value::Null);
        assert_eq!(alert.output_fields["k8s.pod.name"], Value::Null);
    }

    #[test]
    fn a_containers_identity_uses_falcos_field_names() {
        use crate::engines::{Engine, Identity, K8s};
        let mut who = Identity::new(Engine::Containerd, "abc123".into());
        who.container.name = Some("web".into());
        who.container.image = Some("registry.example:5000/team/web:1.4@sha256:00".into());
        who.k8s = Some(K8s {
            namespace: "shop".into(),
            pod: "web-7d9".into(),
            container: Some("web".into()),
        });
        let fields: serde_json::Map<String, Value> = container_fields(Some(&who))
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        assert_eq!(fields["container.id"], "abc123");
        assert_eq!(fields["container.name"], "web");
        assert_eq!(
            fields["container.image.repository"],
            "registry.example:5000/team/web"
        );
        assert_eq!(fields["container.image.tag"], "1.4");
        assert_eq!(fields["k8s.ns.name"], "shop");
        assert_eq!(fields["k8s.pod.name"], "web-7d9");
        assert_eq!(split_image("busybox"), (Some("busybox"), None));
        assert_eq!(
            split_image("localhost:5000/busybox"),
            (Some("localhost:5000/busybox"), None)
        );
    }
}
