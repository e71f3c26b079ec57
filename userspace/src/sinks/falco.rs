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
                kind = r.kind,
                dst = r.dst,
                port = r.port,
                proto = r.protocol,
                proc = r.process,
                pid = r.pid,
                uid = r.uid,
                cgroup = r.cgroup.as_deref().unwrap_or("?"),
                profile = r.profile.as_deref().unwrap_or("?"),
                rule_name = r.rule,
                count = r.count,
            );
            let fields = json!({
                "evt.type": r.kind,
                "proc.name": r.process,
                "proc.pid": r.pid,
                "user.uid": r.uid,
                "user.gid": r.gid,
                "fd.sip": r.dst,
                "fd.sport": r.port,
                "fd.l4proto": r.protocol,
                "cgwarden.cgroup": r.cgroup,
                "cgwarden.cgroup_id": r.cgroup_id,
                "cgwarden.profile": r.profile,
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
                proc = r.process,
                pid = r.pid,
                cgroup = r.cgroup.as_deref().unwrap_or("?"),
                learned = r.learned,
                capped = r.capped,
            );
            let fields = json!({
                "evt.type": "dns",
                "proc.name": r.process,
                "proc.pid": r.pid,
                "fd.name": r.name,
                "cgwarden.cgroup": r.cgroup,
                "cgwarden.profile": r.profile,
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
                proc = r.process,
                pid = r.pid,
                uid = r.uid,
                cgroup = r.cgroup.as_deref().unwrap_or("?"),
                path = r
                    .path
                    .as_deref()
                    .map(|p| format!(" path={p}"))
                    .unwrap_or_default(),
                action = r.action,
                profile = r.profile.as_deref().unwrap_or("?"),
                rule_name = r.rule,
            );
            let fields = json!({
                "evt.type": r.syscall,
                "evt.args": r.args,
                "proc.name": r.process,
                "proc.pid": r.pid,
                "user.uid": r.uid,
                "fd.name": r.path,
                "cgwarden.cgroup": r.cgroup,
                "cgwarden.profile": r.profile,
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
                proc = r.process,
                pid = r.pid,
                uid = r.uid,
                cgroup = r.cgroup.as_deref().unwrap_or("?"),
                verdict = r.verdict,
            );
            let fields = json!({
                "evt.type": "sysctl",
                "fd.name": format!("/proc/sys/{}", r.name),
                "proc.name": r.process,
                "proc.pid": r.pid,
                "user.uid": r.uid,
                "cgwarden.cgroup": r.cgroup,
                "cgwarden.profile": r.profile,
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
                r.process,
                r.pid,
                r.uid,
                r.cgroup.as_deref().unwrap_or("?"),
                r.profile.as_deref().unwrap_or("?"),
                r.verdict
            ),
            {
                let mut fields = json!({
                    "evt.type": r.deviation,
                    "proc.name": r.process,
                    "proc.pid": r.pid,
                    "proc.exepath": r.exe,
                    "user.uid": r.uid,
                    "cgwarden.cgroup": r.cgroup,
                    "cgwarden.profile": r.profile,
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
                    "container.id": c.id,
                    "container.name": c.name,
                    "container.image.repository": c.image,
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
    FalcoAlert {
        time: match record {
            Record::Net(r) => r.time.clone(),
            Record::Dns(r) => r.time.clone(),
            Record::Syscall(r) => r.time.clone(),
            Record::Sysctl(r) => r.time.clone(),
            Record::Deviation(r) => r.time.clone(),
            Record::Posture(r) => r.time.clone(),
            Record::Lost(r) => r.time.clone(),
        },
        rule: rule.to_owned(),
        priority,
        output,
        output_fields: fields,
        source: "cgwarden",
        tags,
        hostname: hostname.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{DeviationRecord, WriteAttempt};

    #[test]
    fn a_read_only_write_names_path_syscall_and_result() {
        let r = DeviationRecord {
            time: "t".into(),
            kind: "deviation",
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
            pid: 7,
            tid: 7,
            process: "sh".into(),
            exe: Some("/bin/busybox".into()),
            uid: 1000,
            gid: 1000,
            cgroup: Some("/gw/abc".into()),
            cgroup_id: 9,
            who: None,
            creds: None,
            profile: Some("gateway".into()),
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
    }
}
