//! Learning on top of an existing profile: only what the existing profile would deny is
//! added (new allow rules, appended to `egress.allow`; devices it used beyond an
//! existing `devices:` list, appended to it), and the `runtime:` lines a live learning
//! run writes (`devices`, `capabilities`, `no_new_privileges`) are added when the
//! profile has none; every existing line stays as it was. What cannot be added without
//! changing an existing rule (a syscall the profile kills, a uid, bind or raw-socket
//! setting the workload departs from, capabilities beyond the listed ones, a program
//! without the no-new-privileges the profile promises, a flow a deny rule refuses) is
//! listed for a person to decide, never changed.

use std::{collections::BTreeMap, fmt::Write as _, net::IpAddr, path::Path};

use super::{FlowSeen, LearnedDevice, LearnedRule, Observed, check::egress_verdict};
use crate::policy::{Binds, Profile, RawSockets, Runtime, devices::DeviceRule};

/// The merged profile and what changed.
#[derive(Debug)]
pub struct Merged {
    pub text: String,
    /// The profile's name (the existing one's).
    pub name: String,
    /// Lines added to (`+`) or replaced in (`-`) the egress section.
    pub egress_diff: Vec<String>,
    /// Lines added to the runtime section.
    pub runtime_diff: Vec<String>,
    /// How many allow rules were added.
    pub added: usize,
    /// What the run did that the existing profile refuses and that was not merged.
    pub not_merged: Vec<String>,
}

impl Merged {
    /// The diff for people, per section.
    pub fn render_diff(&self, base: &Path) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "merged into profile `{}` of {}: {} rule(s) added",
            self.name,
            base.display(),
            self.added
        );
        // A section's diff lines under its name, or `<name>: <nothing>` when it has none.
        let section = |out: &mut String, name: &str, diff: &[String], nothing: &str| {
            if diff.is_empty() {
                let _ = writeln!(out, "{name}: {nothing}");
            } else {
                let _ = writeln!(out, "{name}:");
                for l in diff {
                    let _ = writeln!(out, "{l}");
                }
            }
        };
        section(&mut out, "egress", &self.egress_diff, "nothing new");
        out.push_str("syscalls: nothing added (existing rules are kept as they are)\n");
        section(
            &mut out,
            "runtime",
            &self.runtime_diff,
            "nothing added (existing settings are kept as they are)",
        );
        if !self.not_merged.is_empty() {
            out.push_str("not merged, the existing profile still refuses or reports these (review by hand):\n");
            for l in &self.not_merged {
                let _ = writeln!(out, "  ! {l}");
            }
        }
        out
    }
}

/// Merges what a run observed into `existing_text` (the profile file at `path`).
pub fn merge(existing_text: &str, path: &Path, o: &Observed) -> Result<Merged, String> {
    let existing = crate::policy::parse_str(existing_text, path).map_err(|e| e.to_string())?;
    let mut not_merged = Vec::new();
    let new_flows = uncovered(&existing, &o.flows, &mut not_merged);
    let rules = super::rules(&new_flows);
    let (text, egress_diff) = if rules.is_empty() {
        (existing_text.to_owned(), Vec::new())
    } else {
        insert_allow(existing_text, &rules)?
    };
    not_merged.extend(runtime_conflicts(&existing, o));
    let add = plan_runtime(&existing, &text, o, &mut not_merged);
    let (text, runtime_diff) = insert_runtime(&text, &add);
    let merged = crate::policy::parse_str(&text, path)
        .map_err(|e| format!("the merged profile does not parse (a bug): {e}"))?;
    verify(&existing, &merged, rules.len(), &add.expected)?;
    if let Some(list) = &merged.runtime.devices
        && o.watched.devices
        && !add.devices_refused
        && !super::device_entries(&o.devices, list).is_empty()
    {
        return Err("the merged profile still refuses a device the run used (a bug)".to_owned());
    }
    // Every flow not refused by a deny rule is now allowed.
    let mut left = Vec::new();
    let still = uncovered(&merged, &o.flows, &mut left);
    if !still.is_empty() {
        return Err(format!(
            "the merged profile still denies {:?} (a bug)",
            still.keys().collect::<Vec<_>>()
        ));
    }
    Ok(Merged {
        text,
        name: existing.name.as_str().to_owned(),
        egress_diff,
        runtime_diff,
        added: rules.len(),
        not_merged,
    })
}

/// Checks, before a learning run, that `existing_text` is a valid profile that new
/// rules can be merged into, so a run is not wasted on a profile that cannot take them.
pub fn preflight(existing_text: &str, path: &Path) -> Result<(), String> {
    crate::policy::parse_str(existing_text, path).map_err(|e| e.to_string())?;
    let probe = LearnedRule {
        to: "192.0.2.1".to_owned(),
        ports: Default::default(),
        protocol: "tcp".to_owned(),
        comments: Vec::new(),
    };
    let (text, _) = insert_allow(existing_text, &[probe])?;
    crate::policy::parse_str(&text, path)
        .map(|_| ())
        .map_err(|e| format!("new rules cannot be merged into it: {e}"))
}

/// The flows (with only the ports) `profile` would deny by default; flows an explicit
/// deny rule refuses go to `refused` instead.
fn uncovered(
    profile: &Profile,
    flows: &BTreeMap<(String, String), FlowSeen>,
    refused: &mut Vec<String>,
) -> BTreeMap<(String, String), FlowSeen> {
    let mut out = BTreeMap::new();
    for ((to, proto), seen) in flows {
        let addrs: Vec<IpAddr> = seen
            .addrs
            .keys()
            .filter_map(|a| a.parse().ok())
            .chain(to.parse().ok())
            .collect();
        let name = to.parse::<IpAddr>().is_err().then_some(to.as_str());
        let ports: Vec<Option<u16>> = if seen.ports.is_empty() {
            vec![None]
        } else {
            seen.ports.iter().copied().map(Some).collect()
        };
        let mut missing = FlowSeen {
            ports: Default::default(),
            ..seen.clone()
        };
        let mut any = false;
        for port in ports {
            let v = egress_verdict(profile, &addrs, name, proto, port);
            if v.allowed {
                continue;
            }
            if v.explicit_deny {
                refused.push(format!(
                    "{proto} to {to}{}: refused by rule {}",
                    port.map(|p| format!(" port {p}")).unwrap_or_default(),
                    v.rule
                ));
                continue;
            }
            any = true;
            missing.ports.extend(port);
        }
        if any {
            out.insert((to.clone(), proto.clone()), missing);
        }
    }
    out
}

/// Settings of the existing profile the run departed from.
fn runtime_conflicts(existing: &Profile, o: &Observed) -> Vec<String> {
    let mut out = Vec::new();
    let compiled = crate::policy::compile::compile_syscalls(0, &existing.syscalls);
    for name in &o.escape_syscalls {
        let Some(nr) = crate::policy::syscalls::lookup(name).map(|s| s.id() as u32) else {
            continue;
        };
        if let Some((_, rule, _)) = compiled.iter().find(|(k, _, _)| k.nr == nr)
            && (rule.action == cgwarden_common::syscall_action::KILL
                || rule.action == cgwarden_common::syscall_action::KILL_CONTAINER)
        {
            out.push(format!(
                "syscall {name}: the workload used it; syscalls[{}] kills it",
                rule.rule
            ));
        }
    }
    if let Some(user) = existing.runtime.user {
        let others: Vec<String> = o
            .uids
            .iter()
            .filter(|u| **u != user)
            .map(u32::to_string)
            .collect();
        if !others.is_empty() {
            out.push(format!(
                "runtime.user {user}: programs ran as uid {}",
                others.join(", ")
            ));
        }
    }
    if o.wide_binds && existing.runtime.binds == Binds::Loopback {
        out.push("runtime.binds loopback: the workload bound non-loopback addresses".to_owned());
    }
    if o.raw_sockets && existing.raw_sockets() == RawSockets::Deny {
        out.push("runtime.raw_sockets deny: the workload created raw or packet sockets".to_owned());
    }
    out
}

/// What merging adds to the `runtime:` section, and the settings that gives.
#[derive(Debug, Default)]
struct RuntimeAdd {
    /// Lines of the keys the profile does not have, relative to the section's indent.
    keys: Vec<String>,
    /// Entries appended to the existing (block-style) `devices:` list.
    devices: Vec<LearnedDevice>,
    /// Devices the run used that a flow-style `devices:` list refuses: listed, not
    /// merged.
    devices_refused: bool,
    /// The runtime settings the merged profile must parse to.
    expected: Runtime,
}

/// Decides what the runtime section gets from a live learning run: the `devices`,
/// `capabilities` and `no_new_privileges` lines the profile lacks (as a fresh learned
/// profile would have them), the devices an existing `devices:` list lacks, and, in
/// `not_merged`, what departs from existing settings.
fn plan_runtime(
    existing: &Profile,
    text: &str,
    o: &Observed,
    not_merged: &mut Vec<String>,
) -> RuntimeAdd {
    let mut add = RuntimeAdd {
        expected: existing.runtime.clone(),
        ..RuntimeAdd::default()
    };
    let runtime = &existing.runtime;
    let section = Section::find(text, "runtime");
    if section.as_ref().is_some_and(|s| s.flow) {
        if o.watched.devices || o.watched.creds {
            not_merged.push(
                "runtime: written in flow style; devices and credentials were not merged"
                    .to_owned(),
            );
        }
        return add;
    }
    let has_key = |key: &str| section.as_ref().is_some_and(|s| s.key(text, key).is_some());
    if o.watched.devices {
        match &runtime.devices {
            None => {
                let entries = super::device_entries(&o.devices, &[DeviceRule::Default]);
                add.keys.push("devices:".to_owned());
                add.keys.push("  - default".to_owned());
                for e in &entries {
                    add.keys.extend(e.render(2).lines().map(str::to_owned));
                }
                add.expected.devices = Some(
                    std::iter::once(DeviceRule::Default)
                        .chain(entries.iter().map(LearnedDevice::rule))
                        .collect(),
                );
            }
            Some(list) => {
                let entries = super::device_entries(&o.devices, list);
                let block = section
                    .as_ref()
                    .and_then(|s| s.key(text, "devices"))
                    .is_some_and(|line| {
                        let rest = text.lines().nth(line).unwrap_or_default().trim_start()
                            ["devices:".len()..]
                            .trim();
                        rest.is_empty() || rest.starts_with('#')
                    });
                // Nothing to do when everything it used is allowed already.
                if !entries.is_empty() && block {
                    if let Some(expected) = &mut add.expected.devices {
                        expected.extend(entries.iter().map(LearnedDevice::rule));
                    }
                    add.devices = entries;
                } else if !entries.is_empty() {
                    add.devices_refused = true;
                    for e in &entries {
                        let item = e.render(0);
                        not_merged.push(format!(
                            "runtime.devices (flow style, add by hand): {}",
                            item.lines()
                                .last()
                                .unwrap_or_default()
                                .trim_start_matches("- ")
                        ));
                    }
                }
            }
        }
    }
    if o.watched.creds {
        match runtime.capabilities {
            None => {
                add.keys.push(format!(
                    "# The effective capabilities its programs held after exec ({})",
                    if o.capabilities.is_empty() {
                        "none".to_owned()
                    } else {
                        o.capabilities.to_string()
                    }
                ));
                add.keys
                    .push(format!("capabilities: {}", o.capabilities.profile_list()));
                add.expected.capabilities = Some(o.capabilities);
            }
            Some(allowed) => {
                let beyond = o.capabilities.beyond(allowed);
                if !beyond.is_empty() {
                    not_merged.push(format!(
                        "runtime.capabilities {}: programs held {beyond}",
                        allowed.profile_list()
                    ));
                }
            }
        }
        let without = &o.without_no_new_privileges;
        if runtime.no_new_privileges && !without.is_empty() {
            not_merged.push(format!(
                "runtime.no_new_privileges: programs ran without it ({})",
                without.iter().cloned().collect::<Vec<_>>().join(", ")
            ));
        } else if !runtime.no_new_privileges && without.is_empty() && !has_key("no_new_privileges")
        {
            add.keys
                .push("no_new_privileges: true   # every program ran with the flag".to_owned());
            add.expected.no_new_privileges = true;
        }
    }
    add
}

/// A top-level section of a profile text.
struct Section {
    /// The line of `key:`.
    header: usize,
    /// The line after its last line.
    end: usize,
    /// `key: {...}` or `key: [...]` on one line.
    flow: bool,
}

impl Section {
    fn find(text: &str, key: &str) -> Option<Self> {
        let lines: Vec<&str> = text.lines().collect();
        let prefix = format!("{key}:");
        let header = lines
            .iter()
            .position(|l| l.starts_with(&prefix) && indent_of(l) == 0)?;
        let flow = is_content(&lines[header][prefix.len()..]);
        let mut end = header + 1;
        while end < lines.len() && (!is_content(lines[end]) || indent_of(lines[end]) > 0) {
            end += 1;
        }
        Some(Self { header, end, flow })
    }

    /// The indent of the section's keys (`None`: it has none).
    fn child_indent(&self, lines: &[&str]) -> Option<usize> {
        (self.header + 1..self.end)
            .find(|i| is_content(lines[*i]))
            .map(|i| indent_of(lines[i]))
    }

    /// The line of `key:` directly in the section.
    fn key(&self, text: &str, key: &str) -> Option<usize> {
        let lines: Vec<&str> = text.lines().collect();
        let child = self.child_indent(&lines)?;
        let prefix = format!("{key}:");
        (self.header + 1..self.end)
            .find(|i| indent_of(lines[*i]) == child && lines[*i].trim_start().starts_with(&prefix))
    }
}

/// Writes what [`plan_runtime`] decided into the profile text: device entries after
/// the last item of the `devices:` list, new keys after the section's last line (a new
/// `runtime:` section at the end when there is none). Returns the text and the diff.
fn insert_runtime(text: &str, add: &RuntimeAdd) -> (String, Vec<String>) {
    if add.keys.is_empty() && add.devices.is_empty() {
        return (text.to_owned(), Vec::new());
    }
    let lines: Vec<&str> = text.lines().collect();
    let mut out: Vec<String> = lines.iter().map(|l| (*l).to_owned()).collect();
    let mut diff = Vec::new();
    match Section::find(text, "runtime") {
        None => {
            let mut new = vec!["runtime:".to_owned()];
            new.extend(add.keys.iter().map(|k| format!("  {k}")));
            diff.extend(new.iter().map(|l| format!("+{l}")));
            out.extend(new);
        }
        Some(section) => {
            let child = section.child_indent(&lines).unwrap_or(2);
            let last_content = |from: usize, to: usize| {
                (from..to)
                    .rev()
                    .find(|i| is_content(lines[*i]))
                    .unwrap_or(from)
            };
            // New keys after the section's last line (inserted first: the device list
            // lies before that point, so its place does not move).
            let at = last_content(section.header, section.end) + 1;
            let keys: Vec<String> = add
                .keys
                .iter()
                .map(|k| format!("{}{k}", " ".repeat(child)))
                .collect();
            let mut device_lines = Vec::new();
            if !add.devices.is_empty()
                && let Some(d) = section.key(text, "devices")
            {
                let (j, indent) = block_list(&lines, d, section.end, child);
                let items = lines_of(add.devices.iter().map(|e| e.render(indent)));
                device_lines = items.clone();
                let list_end = last_content(d, j) + 1;
                out.splice(at..at, keys.clone());
                out.splice(list_end..list_end, items);
            } else {
                out.splice(at..at, keys.clone());
            }
            diff.extend(device_lines.iter().map(|l| format!("+{l}")));
            diff.extend(keys.iter().map(|l| format!("+{l}")));
        }
    }
    let mut text_out = out.join("\n");
    if text.ends_with('\n') || text.is_empty() {
        text_out.push('\n');
    }
    (text_out, diff)
}

/// Checks that merging kept every existing rule and setting, added `added` rules, and
/// left the runtime settings as `runtime` (the existing ones with what was added).
fn verify(old: &Profile, new: &Profile, added: usize, runtime: &Runtime) -> Result<(), String> {
    use crate::policy::RuleAction::{Allow, Deny};
    let fail = |what: &str| Err(format!("merging changed the existing {what} (a bug)"));
    if old.name != new.name || old.mode != new.mode {
        return fail("name or mode");
    }
    if format!("{:?}", old.syscalls) != format!("{:?}", new.syscalls) {
        return fail("syscall rules");
    }
    if *runtime != new.runtime {
        return fail("runtime settings");
    }
    if (old.egress.default, old.egress.report, &old.egress.dns)
        != (new.egress.default, new.egress.report, &new.egress.dns)
    {
        return fail("egress settings");
    }
    // A profile's rules of one action, each as its debug text.
    let rules = |p: &Profile, action| {
        p.egress
            .rules
            .iter()
            .filter(|r| r.action == action)
            .map(|r| format!("{r:?}"))
            .collect::<Vec<_>>()
    };
    let (old_allow, new_allow) = (rules(old, Allow), rules(new, Allow));
    if new_allow.len() != old_allow.len() + added || new_allow[..old_allow.len()] != old_allow[..] {
        return fail("allow rules");
    }
    if rules(old, Deny) != rules(new, Deny) {
        return fail("deny rules");
    }
    Ok(())
}

/// The block list under the key on line `key`, whose section's children stand at
/// `child` and which ends by line `end` at the latest. The list is the deeper lines, or
/// `- ` items at the key's own indent. Returns the line after the list (the first
/// content line that is neither) and the indent of its items (`child + 2` when it has
/// none yet).
fn block_list(lines: &[&str], key: usize, end: usize, child: usize) -> (usize, usize) {
    let mut j = key + 1;
    let mut item_indent = None;
    while j < end {
        let l = lines[j];
        if is_content(l) {
            let ind = indent_of(l);
            let item = l.trim_start().starts_with('-');
            if item_indent.is_none() && item && ind >= child {
                item_indent = Some(ind);
            }
            if !(ind > child || (ind == child && item)) {
                break;
            }
        }
        j += 1;
    }
    (j, item_indent.unwrap_or(child + 2))
}

/// The lines of every text, in order.
fn lines_of(texts: impl Iterator<Item = String>) -> Vec<String> {
    texts
        .flat_map(|t| t.lines().map(str::to_owned).collect::<Vec<_>>())
        .collect()
}

fn indent_of(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
}

/// A line that carries YAML content (not blank, not only a comment).
fn is_content(line: &str) -> bool {
    let t = line.trim();
    !t.is_empty() && !t.starts_with('#')
}

/// Appends `rules` to the block-style `egress.allow` list of a profile text (creating
/// the list when the section has none or it is `[]`). Returns the new text and the
/// diff lines.
fn insert_allow(text: &str, rules: &[LearnedRule]) -> Result<(String, Vec<String>), String> {
    let lines: Vec<&str> = text.lines().collect();
    let unsupported = |why: &str| {
        Err(format!(
            "{why}; merging needs `egress:` and `allow:` in block style"
        ))
    };
    let Some(egress) = lines
        .iter()
        .position(|l| l.starts_with("egress:") && indent_of(l) == 0)
    else {
        return unsupported("it has no `egress:` section");
    };
    if is_content(&lines[egress]["egress:".len()..]) {
        return unsupported("`egress:` is written in flow style");
    }
    // The section: every following line until the next top-level key.
    let mut end = egress + 1;
    while end < lines.len() && (!is_content(lines[end]) || indent_of(lines[end]) > 0) {
        end += 1;
    }
    let section = egress + 1..end;
    let Some(child) = section
        .clone()
        .find(|i| is_content(lines[*i]))
        .map(|i| indent_of(lines[i]))
    else {
        return unsupported("`egress:` is empty");
    };
    let last_content = |from: usize, to: usize| (from..to).rev().find(|i| is_content(lines[*i]));
    let render = |indent: usize| lines_of(rules.iter().map(|r| r.render(indent)));
    let allow = section
        .clone()
        .find(|i| indent_of(lines[*i]) == child && lines[*i].trim_start().starts_with("allow:"));
    let mut out: Vec<String> = lines.iter().map(|l| (*l).to_owned()).collect();
    let mut diff = Vec::new();
    match allow {
        None => {
            let at = last_content(egress + 1, end).unwrap_or(egress) + 1;
            let mut new = vec![format!("{}allow:", " ".repeat(child))];
            new.extend(render(child + 2));
            diff.extend(new.iter().map(|l| format!("+{l}")));
            out.splice(at..at, new);
        }
        Some(a) => {
            let rest = lines[a].trim_start()["allow:".len()..].trim();
            if rest.starts_with("[]") {
                let new_key = format!("{}allow:", " ".repeat(child));
                diff.push(format!("-{}", lines[a]));
                diff.push(format!("+{new_key}"));
                out[a] = new_key;
                let items = render(child + 2);
                diff.extend(items.iter().map(|l| format!("+{l}")));
                out.splice(a + 1..a + 1, items);
            } else if rest.is_empty() || rest.starts_with('#') {
                let (j, indent) = block_list(&lines, a, end, child);
                let at = last_content(a, j).unwrap_or(a) + 1;
                let items = render(indent);
                diff.extend(items.iter().map(|l| format!("+{l}")));
                out.splice(at..at, items);
            } else {
                return unsupported("`allow:` is written in flow style");
            }
        }
    }
    let mut text_out = out.join("\n");
    if text.ends_with('\n') || text.is_empty() {
        text_out.push('\n');
    }
    Ok((text_out, diff))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn observed(records: &[serde_json::Value]) -> Observed {
        super::super::observe(records)
    }

    fn base_records() -> Vec<serde_json::Value> {
        vec![
            json!({"kind":"dns","name":"api.test","answers":[{"addr":"127.0.0.21","ttl":60}]}),
            json!({"kind":"connect","dst":"127.0.0.21","port":443,"protocol":"tcp","time":"t1"}),
            json!({"kind":"sendmsg","dst":"127.53.0.1","port":53,"protocol":"udp","time":"t0"}),
            json!({"kind":"deviation","deviation":"uid","uid":1000}),
        ]
    }

    /// Every line of `old` appears in `new`, in the same order.
    fn keeps_every_line(old: &str, new: &str) -> bool {
        let mut new_lines = new.lines();
        old.lines().all(|l| new_lines.any(|n| n == l))
    }

    /// Merges, and asserts that every line of `base` is kept.
    fn merge_keeping(base: &str, path: &Path, o: &Observed) -> Merged {
        let m = merge(base, path, o).unwrap();
        assert!(keeps_every_line(base, &m.text), "{}", m.text);
        m
    }

    #[test]
    fn adds_exactly_the_new_destination_and_port() {
        let base = super::super::profile_yaml("svc", "a test", &observed(&base_records()));
        let mut again = base_records();
        again.push(
            json!({"kind":"connect","dst":"127.0.0.21","port":8443,"protocol":"tcp","time":"t5"}),
        );
        again.push(
            json!({"kind":"connect","dst":"127.0.0.99","port":80,"protocol":"tcp","time":"t6"}),
        );
        let m = merge_keeping(&base, Path::new("base.yaml"), &observed(&again));
        assert_eq!(m.added, 2, "{}", m.text);
        assert!(
            m.text
                .contains("- to: api.test\n      ports: [8443]\n      protocol: tcp"),
            "only the new port of a known name: {}",
            m.text
        );
        assert!(m.text.contains("- to: 127.0.0.99\n      ports: [80]"));
        let plus: Vec<&String> = m
            .egress_diff
            .iter()
            .filter(|l| l.starts_with('+'))
            .collect();
        assert_eq!(plus.len(), m.text.lines().count() - base.lines().count());
        assert!(m.not_merged.is_empty(), "{:?}", m.not_merged);
        // Learning the same again adds nothing.
        let m2 = merge(&m.text, Path::new("m.yaml"), &observed(&again)).unwrap();
        assert_eq!(m2.added, 0);
        assert_eq!(m2.text, m.text);
        assert!(
            m2.render_diff(Path::new("m.yaml"))
                .contains("egress: nothing new")
        );
    }

    #[test]
    fn existing_rules_decide_and_conflicts_are_listed_not_changed() {
        let base = "# hand-written\nname: web\nmode: enforce\negress:\n  default: deny\n  allow:\n  - to: 10.0.0.0/8   # the cluster\n    protocol: tcp\n  deny:\n  - to: 10.9.0.0/16\nruntime:\n  user: 1000\n  binds: loopback\nsyscalls:\n  - set: escape\n    action: kill\n";
        let records = vec![
            json!({"kind":"connect","dst":"10.1.2.3","port":5432,"protocol":"tcp"}),
            json!({"kind":"connect","dst":"10.9.0.1","port":80,"protocol":"tcp"}),
            json!({"kind":"connect","dst":"192.0.2.1","port":443,"protocol":"tcp"}),
            json!({"kind":"syscall","syscall":"unshare"}),
            json!({"kind":"deviation","deviation":"uid","uid":0}),
            json!({"kind":"bind"}),
        ];
        let m = merge_keeping(base, Path::new("web.yaml"), &observed(&records));
        assert_eq!(m.added, 1);
        // Items at the key's own indent: the new one follows that style.
        assert!(
            m.text.contains("  - to: 192.0.2.1\n    ports: [443]"),
            "{}",
            m.text
        );
        assert_eq!(m.not_merged.len(), 4, "{:?}", m.not_merged);
        assert!(m.not_merged[0].contains("10.9.0.1") && m.not_merged[0].contains("deny[0]"));
        assert!(
            m.not_merged
                .iter()
                .any(|l| l.starts_with("syscall unshare"))
        );
        assert!(m.not_merged.iter().any(|l| l.contains("uid 0")));
        assert!(m.not_merged.iter().any(|l| l.starts_with("runtime.binds")));
    }

    #[test]
    fn an_empty_or_missing_allow_list_is_created() {
        let records = vec![json!({"kind":"connect","dst":"192.0.2.1","port":443,"protocol":"tcp"})];
        for base in [
            "name: a\nmode: audit\negress:\n  default: deny\n  allow: []\nsyscalls:\n  - names: [ptrace]\n    action: report\n",
            "name: a\nmode: audit\negress:\n    default: deny\n",
        ] {
            let m = merge(base, Path::new("a.yaml"), &observed(&records)).unwrap();
            assert_eq!(m.added, 1, "{}", m.text);
            let p = crate::policy::parse_str(&m.text, Path::new("a.yaml")).unwrap();
            assert_eq!(p.egress.rules.len(), 1);
            assert_eq!(preflight(base, Path::new("a.yaml")), Ok(()));
        }
        let flow = "name: a\nmode: audit\negress: {default: deny}\n";
        assert!(merge(flow, Path::new("a.yaml"), &observed(&records)).is_err());
        assert!(preflight(flow, Path::new("a.yaml")).is_err());
        assert!(preflight("name: a\nmode: nope\n", Path::new("a.yaml")).is_err());
        // Default allow: nothing to add, the text stays byte for byte.
        let open = "name: a\nmode: audit\negress:\n  default: allow\n";
        let m = merge(open, Path::new("a.yaml"), &observed(&records)).unwrap();
        assert_eq!((m.added, m.text.as_str()), (0, open));
    }

    fn live(records: &[serde_json::Value]) -> Observed {
        let mut o = observed(records);
        o.watched = super::super::Watched {
            devices: true,
            creds: true,
        };
        o
    }

    fn kmsg(access: &str) -> serde_json::Value {
        json!({"kind":"deviation","deviation":"device","process":"app","device":{"type":"c","major":1,"minor":11,"access":access}})
    }

    fn creds(exe: &str, caps: &[&str], nnp: bool) -> serde_json::Value {
        json!({"kind":"deviation","deviation":"capabilities","exe":exe,"capabilities":caps,"no_new_privileges":nnp})
    }

    #[test]
    fn runtime_lines_are_added_when_the_profile_has_none() {
        let base = "name: a\nmode: enforce\negress:\n  default: deny\nruntime:\n  user: 0   # root\n\nsyscalls:\n  - set: escape\n    action: kill\n";
        let m = merge_keeping(
            base,
            Path::new("a.yaml"),
            &live(&[kmsg("r"), creds("/bin/app", &["CAP_CHOWN"], true)]),
        );
        assert!(
            m.text.contains("  user: 0   # root\n  devices:\n    - default\n    # c 1:11 /dev/kmsg: r ×1 by app\n    - {type: c, major: 1, minor: 11, access: r}\n"),
            "{}",
            m.text
        );
        assert!(m.text.contains("  capabilities: [CHOWN]\n"), "{}", m.text);
        assert!(m.text.contains("  no_new_privileges: true"), "{}", m.text);
        let p = crate::policy::parse_str(&m.text, Path::new("a.yaml")).unwrap();
        assert_eq!(p.runtime.user, Some(0));
        assert!(p.runtime.no_new_privileges);
        assert_eq!(
            m.runtime_diff.len(),
            m.text.lines().count() - base.lines().count()
        );
        assert!(
            m.render_diff(Path::new("a.yaml"))
                .contains("runtime:\n+  devices:")
        );
        // Learned again: nothing new.
        let again = merge(
            &m.text,
            Path::new("a.yaml"),
            &live(&[kmsg("r"), creds("/bin/app", &["CAP_CHOWN"], true)]),
        )
        .unwrap();
        assert_eq!(again.text, m.text);
        assert!(again.runtime_diff.is_empty());
        assert!(
            again
                .render_diff(Path::new("a.yaml"))
                .contains("runtime: nothing added")
        );
        // No runtime section at all: one is appended.
        let bare = "name: a\nmode: enforce\negress:\n  default: deny\n";
        let m = merge(bare, Path::new("a.yaml"), &live(&[])).unwrap();
        assert!(
            m.text.ends_with("runtime:\n  devices:\n    - default\n  # The effective capabilities its programs held after exec (none)\n  capabilities: []\n  no_new_privileges: true   # every program ran with the flag\n"),
            "{}",
            m.text
        );
        // An events file (nothing watched) adds no runtime line.
        let m = merge(base, Path::new("a.yaml"), &observed(&[kmsg("r")])).unwrap();
        assert_eq!(m.text, base);
    }

    #[test]
    fn new_devices_are_appended_and_credential_departures_listed() {
        let base = "name: a\nmode: enforce\negress:\n  default: deny\nruntime:\n  capabilities: [NET_BIND_SERVICE]\n  no_new_privileges: true\n  devices:\n  - default\n  - {type: c, major: 1, minor: 11, access: r}   # kmsg\n  read_only: [/]\n";
        let records = [
            kmsg("rm"),
            json!({"kind":"deviation","deviation":"device","process":"app","device":{"type":"c","major":10,"minor":200,"access":"rw"}}),
            creds("/bin/app", &["CAP_NET_BIND_SERVICE", "CAP_SYS_ADMIN"], true),
            creds("/bin/sh", &[], false),
        ];
        let m = merge_keeping(base, Path::new("a.yaml"), &live(&records));
        // Only the access the existing rule lacks, and the new device; in the list's
        // own style, before the next key.
        assert!(
            m.text.contains("access: r}   # kmsg\n  # c 1:11 /dev/kmsg: rm ×1 by app\n  - {type: c, major: 1, minor: 11, access: m}\n  # c 10:200 /dev/net/tun: rw ×1 by app\n  - {type: c, major: 10, minor: 200, access: rw}\n  read_only: [/]\n"),
            "{}",
            m.text
        );
        assert_eq!(m.not_merged.len(), 2, "{:?}", m.not_merged);
        assert!(
            m.not_merged[0].contains("CAP_SYS_ADMIN"),
            "{:?}",
            m.not_merged
        );
        assert!(m.not_merged[1].contains("/bin/sh"), "{:?}", m.not_merged);
        let p = crate::policy::parse_str(&m.text, Path::new("a.yaml")).unwrap();
        assert_eq!(
            p.runtime.capabilities.unwrap().names(),
            vec!["CAP_NET_BIND_SERVICE"]
        );
        // A flow-style list is not changed: what it lacks is listed.
        let flow = "name: a\nmode: enforce\negress:\n  default: deny\nruntime:\n  devices: [default]\n  no_new_privileges: false\n";
        let m = merge(flow, Path::new("a.yaml"), &live(&[kmsg("r")])).unwrap();
        assert!(
            m.not_merged
                .iter()
                .any(|l| l.contains("{type: c, major: 1, minor: 11, access: r}")),
            "{:?}",
            m.not_merged
        );
        // An explicit `no_new_privileges: false` stays; capabilities are added.
        assert!(!m.text.contains("no_new_privileges: true"), "{}", m.text);
        assert!(m.text.contains("  capabilities: []\n"), "{}", m.text);
    }
}
