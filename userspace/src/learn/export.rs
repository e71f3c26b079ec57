//! Learned egress as a Kubernetes network policy, for clusters that enforce their own:
//! `learn --export networkpolicy:FILE` writes a `networking.k8s.io/v1` NetworkPolicy,
//! `--export cilium:FILE` a `cilium.io/v2` CiliumNetworkPolicy, both from the same
//! learned flows (and the same CIDR collapsing) the profile is written from.
//!
//! A NetworkPolicy cannot name a DNS name: the addresses a name resolved to while
//! learning become its `ipBlock`s, with a comment naming the name (they go stale when
//! its DNS changes). Cilium can: names become `toFQDNs`, with the kube-dns rule its
//! DNS proxy needs to learn their addresses. The resolvers the workload asked are
//! allowed on port 53, UDP and TCP. ICMP cannot be written in either and is left out
//! (a comment says so).

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt::Write as _,
    net::IpAddr,
    path::{Path, PathBuf},
    str::FromStr,
};

use ipnetwork::IpNetwork;
use serde_json::Value;

use super::Observed;

/// Which kind of policy `--export` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `networking.k8s.io/v1` NetworkPolicy.
    NetworkPolicy,
    /// `cilium.io/v2` CiliumNetworkPolicy.
    Cilium,
}

/// A parsed `--export FORMAT:FILE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportSpec {
    pub format: Format,
    pub path: PathBuf,
}

/// What `--export` takes, for its error messages.
const FORMATS: &str = "networkpolicy:FILE (a networking.k8s.io/v1 NetworkPolicy) or cilium:FILE (a cilium.io/v2 CiliumNetworkPolicy)";

impl FromStr for ExportSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (format, path) = s
            .split_once(':')
            .ok_or_else(|| format!("`{s}` is not FORMAT:FILE; give {FORMATS}"))?;
        let format = match format {
            "networkpolicy" => Format::NetworkPolicy,
            "cilium" => Format::Cilium,
            other => return Err(format!("unknown format `{other}`; give {FORMATS}")),
        };
        if path.is_empty() {
            return Err(format!("`{s}` names no file; give {FORMATS}"));
        }
        Ok(Self {
            format,
            path: PathBuf::from(path),
        })
    }
}

impl ExportSpec {
    /// The same export to another file.
    pub fn to_file(&self, path: PathBuf) -> Self {
        Self {
            format: self.format,
            path,
        }
    }
}

/// A parsed `--pod-label KEY=VALUE`: a Kubernetes label the policy's pod selector
/// matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodLabel {
    pub key: String,
    pub value: String,
}

impl FromStr for PodLabel {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (key, value) = s
            .split_once('=')
            .ok_or_else(|| format!("`{s}` is not KEY=VALUE (e.g. app=web)"))?;
        let (prefix, name) = match key.rsplit_once('/') {
            Some((prefix, name)) => (Some(prefix), name),
            None => (None, key),
        };
        if let Some(prefix) = prefix
            && !is_dns_subdomain(prefix)
        {
            return Err(format!(
                "label key `{key}`: its prefix `{prefix}` is not a DNS subdomain (lowercase letters, digits, '-' and '.', at most 253)"
            ));
        }
        if name.is_empty() || !is_label_text(name) {
            return Err(format!(
                "label key `{key}`: its name must be 1-63 letters, digits, '-', '_' or '.', beginning and ending with a letter or digit"
            ));
        }
        if !value.is_empty() && !is_label_text(value) {
            return Err(format!(
                "label value `{value}`: at most 63 letters, digits, '-', '_' or '.', beginning and ending with a letter or digit (or empty)"
            ));
        }
        Ok(Self {
            key: key.to_owned(),
            value: value.to_owned(),
        })
    }
}

/// A label name or value (non-empty): 63 at most, alphanumeric at both ends, `-_.`
/// inside.
fn is_label_text(s: &str) -> bool {
    let ends = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    s.len() <= 63
        && ends(s.chars().next())
        && ends(s.chars().last())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// A DNS-1123 subdomain: dot-separated lowercase labels, 253 at most.
fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253
        && s.split('.').all(|label| {
            let ends =
                |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
            label.len() <= 63
                && ends(label.chars().next())
                && ends(label.chars().last())
                && label
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        })
}

/// A profile name as a Kubernetes object name (a DNS-1123 label): lowercase, every run
/// of other characters one `-`, 63 at most; `learned` when nothing is left.
pub fn object_name(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars().map(|c| c.to_ascii_lowercase()) {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    out.truncate(63);
    let out = out.trim_end_matches('-');
    if out.is_empty() {
        "learned".to_owned()
    } else {
        out.to_owned()
    }
}

/// The Kubernetes namespaces the records' containers ran in (`k8s.namespace`).
pub fn namespaces(records: &[Value]) -> BTreeSet<String> {
    records
        .iter()
        .filter_map(|r| r["k8s"]["namespace"].as_str())
        .filter(|ns| !ns.is_empty())
        .map(str::to_owned)
        .collect()
}

/// What a policy is for, besides the flows.
#[derive(Debug, Clone)]
pub struct Meta<'a> {
    /// The learned profile's name (made an object name here).
    pub name: &'a str,
    /// Where it was learned from, for the header.
    pub origin: &'a str,
    /// The namespaces the learned containers ran in: with exactly one, the policy's.
    pub namespaces: BTreeSet<String>,
    /// The pod selector's labels; none: every pod of the namespace.
    pub pod_labels: &'a [PodLabel],
}

/// The policy text in `format`.
pub fn render(format: Format, meta: &Meta<'_>, o: &Observed) -> String {
    match format {
        Format::NetworkPolicy => network_policy(meta, o),
        Format::Cilium => cilium(meta, o),
    }
}

/// Writes every export asked for.
pub fn write_all(specs: &[ExportSpec], meta: &Meta<'_>, o: &Observed) -> anyhow::Result<()> {
    for spec in specs {
        write_one(&spec.path, &render(spec.format, meta, o))?;
    }
    Ok(())
}

fn write_one(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))
}

/// Where an egress rule goes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum To {
    /// A name the workload resolved, with the addresses it used.
    Name(String, Vec<IpNetwork>),
    /// An address (as a /32 or /128) or a collapsed network.
    Net(IpNetwork),
}

/// An L4 protocol as both policies spell it; `None`: any.
type Protocol = Option<&'static str>;

/// One learned destination.
#[derive(Debug, Clone)]
struct Dest {
    to: To,
    protocol: Protocol,
    ports: BTreeSet<u16>,
    comments: Vec<String>,
}

/// The learned egress, as both policies need it.
#[derive(Debug, Default)]
struct Learned {
    /// The addresses it sent DNS (port 53) to.
    resolvers: BTreeSet<IpAddr>,
    dests: Vec<Dest>,
    /// Destinations of ICMP flows, which neither policy can allow.
    icmp: Vec<String>,
}

impl Learned {
    fn names(&self) -> bool {
        self.dests.iter().any(|d| matches!(d.to, To::Name(..)))
    }
}

/// The learned flows split into the resolvers and the other destinations, the latter
/// as the profile's rules (names kept, unnamed neighbours collapsed).
fn learned(o: &Observed) -> Learned {
    let mut flows = o.flows.clone();
    let mut resolvers = BTreeSet::new();
    flows.retain(|(to, proto), seen| match to.parse::<IpAddr>() {
        Ok(addr) if (proto == "udp" || proto == "tcp") && seen.ports.contains(&53) => {
            resolvers.insert(addr);
            seen.ports.remove(&53);
            !seen.ports.is_empty()
        }
        _ => true,
    });
    let mut out = Learned {
        resolvers,
        ..Learned::default()
    };
    for rule in super::rules(&flows) {
        let protocol = match rule.protocol.as_str() {
            "tcp" => Some("TCP"),
            "udp" => Some("UDP"),
            "icmp" => {
                out.icmp.push(rule.to);
                continue;
            }
            _ => None,
        };
        let to = match rule.to.parse::<IpNetwork>() {
            Ok(net) => To::Net(net),
            Err(_) => {
                let addrs = flows
                    .get(&(rule.to.clone(), rule.protocol.clone()))
                    .map(|seen| {
                        seen.addrs
                            .keys()
                            .filter_map(|a| a.parse::<IpAddr>().ok())
                            .map(IpNetwork::from)
                            .collect::<BTreeSet<_>>()
                    })
                    .unwrap_or_default();
                To::Name(rule.to.clone(), addrs.into_iter().collect())
            }
        };
        out.dests.push(Dest {
            to,
            protocol,
            ports: rule.ports,
            comments: rule.comments,
        });
    }
    out.icmp.sort();
    out.icmp.dedup();
    out
}

/// The header lines both policies share.
fn header(kind: &str, meta: &Meta<'_>, learned: &Learned) -> String {
    let mut y = String::new();
    let _ = writeln!(
        y,
        "# {kind} learned by cgwarden from {}, for profile `{}`.",
        one_line(meta.origin),
        one_line(meta.name)
    );
    let _ = writeln!(
        y,
        "# Egress only: it allows what the workload did while learning, nothing else."
    );
    let _ = writeln!(y, "# Review it before applying it.");
    if !learned.icmp.is_empty() {
        let _ = writeln!(
            y,
            "# ICMP was seen to {}: a {kind} cannot allow ICMP, so it is not allowed.",
            learned.icmp.join(", ")
        );
    }
    match meta.namespaces.len() {
        0 => y.push_str(
            "# No Kubernetes namespace was seen: no metadata.namespace (kubectl applies it to its current one).\n",
        ),
        1 => {}
        _ => {
            let _ = writeln!(
                y,
                "# The learned containers ran in several namespaces ({}): no metadata.namespace; apply it to each.",
                meta.namespaces
                    .iter()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    y
}

fn metadata(meta: &Meta<'_>) -> Node {
    let mut entries = vec![entry("name", text(&object_name(meta.name)))];
    if let (1, Some(ns)) = (meta.namespaces.len(), meta.namespaces.iter().next()) {
        entries.push(entry("namespace", text(ns)));
    }
    Node::Map(entries)
}

/// The pod (or endpoint) selector, with the comment it needs when it selects every pod.
fn selector(key: &str, meta: &Meta<'_>) -> Entry {
    if meta.pod_labels.is_empty() {
        return Entry {
            comments: vec![
                "{} selects every pod of the namespace: narrow it with --pod-label KEY=VALUE or by hand.".to_owned(),
            ],
            key: key.to_owned(),
            node: Node::Map(Vec::new()),
        };
    }
    let labels: BTreeMap<&str, &str> = meta
        .pod_labels
        .iter()
        .map(|l| (l.key.as_str(), l.value.as_str()))
        .collect();
    entry(
        key,
        Node::Map(vec![entry(
            "matchLabels",
            Node::Map(labels.into_iter().map(|(k, v)| entry(k, text(v))).collect()),
        )]),
    )
}

/// A `networking.k8s.io/v1` NetworkPolicy allowing the learned egress.
pub fn network_policy(meta: &Meta<'_>, o: &Observed) -> String {
    let learned = learned(o);
    let mut rules = Vec::new();
    if !learned.resolvers.is_empty() {
        rules.push(Item {
            comments: vec![
                "DNS to the resolvers it asked. A Service address (kube-dns's) may be translated"
                    .to_owned(),
                "before the policy sees it: then allow the DNS pods instead (namespaceSelector"
                    .to_owned(),
                "kubernetes.io/metadata.name: kube-system, podSelector k8s-app: kube-dns)."
                    .to_owned(),
            ],
            node: Node::Map(vec![
                entry(
                    "to",
                    Node::List(
                        learned
                            .resolvers
                            .iter()
                            .map(|a| item(ip_block(IpNetwork::from(*a))))
                            .collect(),
                    ),
                ),
                entry("ports", Node::List(dns_ports_np())),
            ]),
        });
    }
    for d in &learned.dests {
        let mut comments = Vec::new();
        let nets = match &d.to {
            To::Name(name, addrs) => {
                comments.push(format!(
                    "{name}: a NetworkPolicy cannot name it; the addresses it resolved to while learning,"
                ));
                comments.push("which go stale when its DNS changes.".to_owned());
                addrs.clone()
            }
            To::Net(net) => vec![*net],
        };
        if nets.is_empty() {
            continue;
        }
        comments.extend(d.comments.iter().cloned());
        let mut entries = vec![entry(
            "to",
            Node::List(nets.into_iter().map(|n| item(ip_block(n))).collect()),
        )];
        match d.protocol {
            Some(proto) if d.ports.is_empty() => entries.push(entry(
                "ports",
                Node::List(vec![item(Node::Map(vec![entry("protocol", text(proto))]))]),
            )),
            Some(proto) => entries.push(entry(
                "ports",
                Node::List(
                    d.ports
                        .iter()
                        .map(|p| {
                            item(Node::Map(vec![
                                entry("protocol", text(proto)),
                                entry("port", Node::Int(u64::from(*p))),
                            ]))
                        })
                        .collect(),
                ),
            )),
            None => comments.push(
                "A protocol a NetworkPolicy cannot name: every port and protocol to it.".to_owned(),
            ),
        }
        rules.push(Item {
            comments,
            node: Node::Map(entries),
        });
    }
    let doc = Node::Map(vec![
        entry("apiVersion", text("networking.k8s.io/v1")),
        entry("kind", text("NetworkPolicy")),
        entry("metadata", metadata(meta)),
        entry(
            "spec",
            Node::Map(vec![
                selector("podSelector", meta),
                entry("policyTypes", Node::List(vec![item(text("Egress"))])),
                Entry {
                    comments: if rules.is_empty() {
                        vec!["It made no connection: nothing is allowed.".to_owned()]
                    } else {
                        Vec::new()
                    },
                    key: "egress".to_owned(),
                    node: Node::List(rules),
                },
            ]),
        ),
    ]);
    let mut y = header("NetworkPolicy", meta, &learned);
    emit(&doc, 0, &mut y);
    y
}

fn ip_block(net: IpNetwork) -> Node {
    Node::Map(vec![entry(
        "ipBlock",
        Node::Map(vec![entry("cidr", text(&net.to_string()))]),
    )])
}

fn dns_ports_np() -> Vec<Item> {
    ["UDP", "TCP"]
        .into_iter()
        .map(|proto| {
            item(Node::Map(vec![
                entry("protocol", text(proto)),
                entry("port", Node::Int(53)),
            ]))
        })
        .collect()
}

/// Cilium takes at most this many ports in one `toPorts` entry.
const CILIUM_MAX_PORTS: usize = 40;

/// A `cilium.io/v2` CiliumNetworkPolicy allowing the learned egress.
pub fn cilium(meta: &Meta<'_>, o: &Observed) -> String {
    let learned = learned(o);
    let mut rules = Vec::new();
    if learned.names() || !learned.resolvers.is_empty() {
        rules.push(Item {
            comments: vec![
                "DNS through kube-dns, which toFQDNs needs: Cilium's DNS proxy learns the names'"
                    .to_owned(),
                "addresses from the answers it sees.".to_owned(),
            ],
            node: Node::Map(vec![
                entry(
                    "toEndpoints",
                    Node::List(vec![item(Node::Map(vec![entry(
                        "matchLabels",
                        Node::Map(vec![
                            entry("k8s:io.kubernetes.pod.namespace", text("kube-system")),
                            entry("k8s:k8s-app", text("kube-dns")),
                        ]),
                    )]))]),
                ),
                entry("toPorts", dns_to_ports()),
            ]),
        });
    }
    if !learned.resolvers.is_empty() {
        rules.push(Item {
            comments: vec![
                "DNS to the resolvers it asked; kube-dns's Service address needs no rule of its"
                    .to_owned(),
                "own (the rule above covers it): this one is for resolvers outside the cluster."
                    .to_owned(),
            ],
            node: Node::Map(vec![
                entry(
                    "toCIDR",
                    Node::List(
                        learned
                            .resolvers
                            .iter()
                            .map(|a| item(text(&IpNetwork::from(*a).to_string())))
                            .collect(),
                    ),
                ),
                entry("toPorts", dns_to_ports()),
            ]),
        });
    }
    for d in &learned.dests {
        let mut comments = d.comments.clone();
        let mut entries = vec![match &d.to {
            To::Name(name, _) => {
                let key = if name.starts_with("*.") {
                    "matchPattern"
                } else {
                    "matchName"
                };
                entry(
                    "toFQDNs",
                    Node::List(vec![item(Node::Map(vec![entry(key, text(name))]))]),
                )
            }
            To::Net(net) => entry("toCIDR", Node::List(vec![item(text(&net.to_string()))])),
        }];
        if d.ports.is_empty() {
            comments.push("No port was seen: every port and protocol to it.".to_owned());
        } else {
            let ports: Vec<u16> = d.ports.iter().copied().collect();
            entries.push(entry(
                "toPorts",
                Node::List(
                    ports
                        .chunks(CILIUM_MAX_PORTS)
                        .map(|chunk| {
                            item(Node::Map(vec![entry(
                                "ports",
                                Node::List(
                                    chunk
                                        .iter()
                                        .map(|p| {
                                            item(Node::Map(vec![
                                                entry("port", text(&p.to_string())),
                                                entry(
                                                    "protocol",
                                                    text(d.protocol.unwrap_or("ANY")),
                                                ),
                                            ]))
                                        })
                                        .collect(),
                                ),
                            )]))
                        })
                        .collect(),
                ),
            ));
        }
        rules.push(Item {
            comments,
            node: Node::Map(entries),
        });
    }
    let mut spec = vec![selector("endpointSelector", meta)];
    if rules.is_empty() {
        spec.push(Entry {
            comments: vec![
                "It made no connection: nothing is allowed (an empty egress list alone would"
                    .to_owned(),
                "leave egress unrestricted).".to_owned(),
            ],
            key: "enableDefaultDeny".to_owned(),
            node: Node::Map(vec![entry("egress", Node::Raw("true".to_owned()))]),
        });
    }
    spec.push(entry("egress", Node::List(rules)));
    let doc = Node::Map(vec![
        entry("apiVersion", text("cilium.io/v2")),
        entry("kind", text("CiliumNetworkPolicy")),
        entry("metadata", metadata(meta)),
        entry("spec", Node::Map(spec)),
    ]);
    let mut y = header("CiliumNetworkPolicy", meta, &learned);
    y.push_str("# toCIDR matches destinations outside the cluster only: peers inside it need\n# toEndpoints (by their labels), which cgwarden does not learn.\n");
    emit(&doc, 0, &mut y);
    y
}

/// `toPorts` of a DNS rule: port 53 over UDP and TCP, every name visible to the proxy.
fn dns_to_ports() -> Node {
    Node::List(vec![item(Node::Map(vec![
        entry(
            "ports",
            Node::List(
                ["UDP", "TCP"]
                    .into_iter()
                    .map(|proto| {
                        item(Node::Map(vec![
                            entry("port", text("53")),
                            entry("protocol", text(proto)),
                        ]))
                    })
                    .collect(),
            ),
        ),
        entry(
            "rules",
            Node::Map(vec![entry(
                "dns",
                Node::List(vec![item(Node::Map(vec![entry(
                    "matchPattern",
                    text("*"),
                )]))]),
            )]),
        ),
    ]))])
}

/// A YAML document as written: mappings keep their order, and entries and list items
/// may have comment lines before them.
#[derive(Debug, Clone, PartialEq)]
enum Node {
    Str(String),
    /// A boolean written as it is (`true`).
    Raw(String),
    Int(u64),
    Map(Vec<Entry>),
    List(Vec<Item>),
}

#[derive(Debug, Clone, PartialEq)]
struct Entry {
    comments: Vec<String>,
    key: String,
    node: Node,
}

#[derive(Debug, Clone, PartialEq)]
struct Item {
    comments: Vec<String>,
    node: Node,
}

fn text(s: &str) -> Node {
    Node::Str(s.to_owned())
}

fn entry(key: &str, node: Node) -> Entry {
    Entry {
        comments: Vec::new(),
        key: key.to_owned(),
        node,
    }
}

fn item(node: Node) -> Item {
    Item {
        comments: Vec::new(),
        node,
    }
}

/// A string as a YAML scalar: plain when it can only be read back as that string,
/// otherwise double-quoted (JSON's quoting is YAML's).
fn scalar(s: &str) -> String {
    let plain = s
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || (c.is_ascii_digit() && s.contains('/')))
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
        && !matches!(
            s.to_ascii_lowercase().as_str(),
            "true" | "false" | "yes" | "no" | "on" | "off" | "y" | "n" | "null" | "nan" | "inf"
        );
    if plain {
        s.to_owned()
    } else {
        serde_json::Value::String(s.to_owned()).to_string()
    }
}

/// The text of a scalar or empty collection on its key's line; `None`: a block follows.
fn inline(node: &Node) -> Option<String> {
    match node {
        Node::Str(s) => Some(scalar(s)),
        Node::Raw(s) => Some(s.clone()),
        Node::Int(n) => Some(n.to_string()),
        Node::Map(m) if m.is_empty() => Some("{}".to_owned()),
        Node::List(l) if l.is_empty() => Some("[]".to_owned()),
        Node::Map(_) | Node::List(_) => None,
    }
}

/// Text for a comment line: line breaks (a command line's, or a name's from a DNS
/// answer) written as `\n`.
fn one_line(s: &str) -> String {
    s.replace('\r', "\\r").replace('\n', "\\n")
}

fn comment_lines(comments: &[String], indent: usize, out: &mut String) {
    for c in comments {
        let _ = writeln!(out, "{:indent$}# {}", "", one_line(c));
    }
}

/// Writes `node` in block style, its entries or items at `indent` spaces.
fn emit(node: &Node, indent: usize, out: &mut String) {
    match node {
        Node::Map(entries) => {
            for e in entries {
                comment_lines(&e.comments, indent, out);
                let key = scalar(&e.key);
                match inline(&e.node) {
                    Some(v) => {
                        let _ = writeln!(out, "{:indent$}{key}: {v}", "");
                    }
                    None => {
                        let _ = writeln!(out, "{:indent$}{key}:", "");
                        emit(&e.node, indent + 2, out);
                    }
                }
            }
        }
        Node::List(items) => {
            for i in items {
                comment_lines(&i.comments, indent, out);
                match (&i.node, inline(&i.node)) {
                    (_, Some(v)) => {
                        let _ = writeln!(out, "{:indent$}- {v}", "");
                    }
                    (Node::Map(entries), None) => {
                        // The first entry goes on the item's line, its comments before it.
                        let mut entries = entries.clone();
                        comment_lines(&std::mem::take(&mut entries[0].comments), indent, out);
                        let mut inner = String::new();
                        emit(&Node::Map(entries), indent + 2, &mut inner);
                        let _ = write!(out, "{:indent$}- {}", "", &inner[indent + 2..]);
                    }
                    (node, None) => {
                        let _ = writeln!(out, "{:indent$}-", "");
                        emit(node, indent + 2, out);
                    }
                }
            }
        }
        Node::Str(_) | Node::Raw(_) | Node::Int(_) => {
            let _ = writeln!(out, "{:indent$}{}", "", inline(node).unwrap_or_default());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A workload that asked a resolver for `api.test` (two addresses, two TCP ports),
    /// talked to four unnamed neighbours (collapsed), an IPv6 address over UDP, and
    /// pinged one.
    fn records() -> Vec<Value> {
        let mut r = vec![
            json!({"kind":"dns","name":"api.test","answers":[{"addr":"192.0.2.10","ttl":60},{"addr":"192.0.2.11","ttl":60}],"k8s":{"namespace":"shop","pod":"web-1"}}),
            json!({"kind":"sendmsg","dst":"10.96.0.10","port":53,"protocol":"udp","count":3,"time":"t0","k8s":{"namespace":"shop","pod":"web-1"}}),
            json!({"kind":"connect","dst":"10.96.0.10","port":53,"protocol":"tcp","count":1,"time":"t0"}),
            json!({"kind":"connect","dst":"192.0.2.10","port":443,"protocol":"tcp","count":2,"time":"t1"}),
            json!({"kind":"connect","dst":"192.0.2.11","port":8443,"protocol":"tcp","count":1,"time":"t2"}),
            json!({"kind":"sendmsg","dst":"2001:db8::5","port":4500,"protocol":"udp","count":1,"time":"t3"}),
            json!({"kind":"packet","dst":"203.0.113.9","protocol":"icmp","count":1,"time":"t4"}),
        ];
        for i in [1, 2, 3, 6] {
            r.push(json!({"kind":"connect","dst":format!("198.51.100.{i}"),"port":5432,"protocol":"tcp","time":"t5"}));
        }
        r
    }

    fn meta<'a>(records: &[Value], labels: &'a [PodLabel]) -> Meta<'a> {
        Meta {
            name: "Shop_Web",
            origin: "a test",
            namespaces: namespaces(records),
            pod_labels: labels,
        }
    }

    fn parse(yaml: &str) -> Value {
        crate::yaml::from_str(yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"))
    }

    fn label(s: &str) -> PodLabel {
        s.parse().unwrap()
    }

    #[test]
    fn a_network_policy_allows_exactly_what_was_learned() {
        let records = records();
        let labels = [label("app=web"), label("app.kubernetes.io/part-of=shop")];
        let yaml = network_policy(&meta(&records, &labels), &super::super::observe(&records));
        let v = parse(&yaml);
        assert_eq!(v["apiVersion"], "networking.k8s.io/v1");
        assert_eq!(v["kind"], "NetworkPolicy");
        assert_eq!(
            v["metadata"],
            json!({"name": "shop-web", "namespace": "shop"})
        );
        assert_eq!(
            v["spec"]["podSelector"],
            json!({"matchLabels": {"app": "web", "app.kubernetes.io/part-of": "shop"}})
        );
        assert_eq!(v["spec"]["policyTypes"], json!(["Egress"]));
        let block = |c: &str| json!({"ipBlock": {"cidr": c}});
        let port = |proto: &str, p: u16| json!({"protocol": proto, "port": p});
        assert_eq!(
            v["spec"]["egress"],
            json!([
                // The resolver: UDP and TCP 53.
                {"to": [block("10.96.0.10/32")], "ports": [port("UDP", 53), port("TCP", 53)]},
                // Sorted by destination as the profile writes it.
                {"to": [block("198.51.100.0/29")], "ports": [port("TCP", 5432)]},
                {"to": [block("2001:db8::5/128")], "ports": [port("UDP", 4500)]},
                {"to": [block("192.0.2.10/32"), block("192.0.2.11/32")],
                 "ports": [port("TCP", 443), port("TCP", 8443)]},
            ])
        );
        // The name's addresses say where they came from, and that they go stale.
        assert!(
            yaml.contains("# api.test: a NetworkPolicy cannot name it; the addresses it resolved to while learning,\n    # which go stale when its DNS changes.\n"),
            "{yaml}"
        );
        assert!(
            yaml.contains("ICMP was seen to 203.0.113.9: a NetworkPolicy cannot allow ICMP"),
            "{yaml}"
        );
        assert!(!yaml.contains("narrow it"), "{yaml}");
    }

    #[test]
    fn a_cilium_policy_names_the_names_and_asks_kube_dns() {
        let records = records();
        let yaml = cilium(&meta(&records, &[]), &super::super::observe(&records));
        let v = parse(&yaml);
        assert_eq!(v["apiVersion"], "cilium.io/v2");
        assert_eq!(v["kind"], "CiliumNetworkPolicy");
        assert_eq!(
            v["metadata"],
            json!({"name": "shop-web", "namespace": "shop"})
        );
        assert_eq!(v["spec"]["endpointSelector"], json!({}));
        assert!(
            yaml.contains("# {} selects every pod of the namespace: narrow it with --pod-label"),
            "{yaml}"
        );
        assert!(v["spec"].get("enableDefaultDeny").is_none());
        let ports = |ps: &[(&str, &str)]| json!([{"ports": ps.iter().map(|(p, proto)| json!({"port": p, "protocol": proto})).collect::<Vec<_>>()}]);
        let dns_ports = json!([{
            "ports": [{"port": "53", "protocol": "UDP"}, {"port": "53", "protocol": "TCP"}],
            "rules": {"dns": [{"matchPattern": "*"}]},
        }]);
        assert_eq!(
            v["spec"]["egress"],
            json!([
                {"toEndpoints": [{"matchLabels": {
                    "k8s:io.kubernetes.pod.namespace": "kube-system",
                    "k8s:k8s-app": "kube-dns"}}],
                 "toPorts": dns_ports},
                {"toCIDR": ["10.96.0.10/32"], "toPorts": dns_ports},
                {"toCIDR": ["198.51.100.0/29"], "toPorts": ports(&[("5432", "TCP")])},
                {"toCIDR": ["2001:db8::5/128"], "toPorts": ports(&[("4500", "UDP")])},
                {"toFQDNs": [{"matchName": "api.test"}],
                 "toPorts": ports(&[("443", "TCP"), ("8443", "TCP")])},
            ])
        );
    }

    #[test]
    fn wildcards_become_patterns_and_many_ports_are_split() {
        let mut o = Observed::default();
        let seen = o
            .flows
            .entry(("*.cdn.test".to_owned(), "tcp".to_owned()))
            .or_default();
        seen.ports.extend(1000..1045);
        seen.addrs.insert("192.0.2.1".to_owned(), 1);
        let v = parse(&cilium(&meta(&[], &[]), &o));
        let rule = &v["spec"]["egress"][1];
        assert_eq!(rule["toFQDNs"], json!([{"matchPattern": "*.cdn.test"}]));
        let chunks = rule["toPorts"].as_array().unwrap();
        assert_eq!(chunks.len(), 2);
        assert_eq!(chunks[0]["ports"].as_array().unwrap().len(), 40);
        assert_eq!(chunks[1]["ports"].as_array().unwrap().len(), 5);
        assert!(v["metadata"].get("namespace").is_none());
    }

    #[test]
    fn nothing_learned_allows_nothing() {
        let o = Observed::default();
        let v = parse(&network_policy(&meta(&[], &[]), &o));
        assert_eq!(v["spec"]["egress"], json!([]));
        assert_eq!(v["spec"]["policyTypes"], json!(["Egress"]));
        let v = parse(&cilium(&meta(&[], &[]), &o));
        assert_eq!(v["spec"]["egress"], json!([]));
        assert_eq!(v["spec"]["enableDefaultDeny"], json!({"egress": true}));
    }

    #[test]
    fn a_line_break_in_a_name_stays_in_its_comment() {
        let mut o = Observed::default();
        let seen = o
            .flows
            .entry(("evil\nkind: Secret".to_owned(), "tcp".to_owned()))
            .or_default();
        seen.ports.insert(443);
        seen.addrs.insert("192.0.2.1".to_owned(), 1);
        let m = Meta {
            origin: "`sh -c a\nb`",
            ..meta(&[], &[])
        };
        for yaml in [network_policy(&m, &o), cilium(&m, &o)] {
            let v = parse(&yaml);
            assert_ne!(v["kind"], "Secret", "{yaml}");
            assert!(!yaml.contains("\nkind: Secret"), "{yaml}");
        }
        let v = parse(&cilium(&m, &o));
        assert_eq!(
            v["spec"]["egress"][1]["toFQDNs"][0]["matchName"],
            "evil\nkind: Secret"
        );
    }

    #[test]
    fn several_namespaces_give_none() {
        let records = vec![
            json!({"kind":"dns","k8s":{"namespace":"a"}}),
            json!({"kind":"dns","k8s":{"namespace":"b"}}),
        ];
        let yaml = network_policy(&meta(&records, &[]), &Observed::default());
        assert!(parse(&yaml)["metadata"].get("namespace").is_none());
        assert!(yaml.contains("several namespaces (a, b)"), "{yaml}");
    }

    #[test]
    fn export_and_label_arguments_are_checked() {
        assert_eq!(
            "networkpolicy:/tmp/np.yaml".parse::<ExportSpec>(),
            Ok(ExportSpec {
                format: Format::NetworkPolicy,
                path: PathBuf::from("/tmp/np.yaml")
            })
        );
        assert_eq!(
            "cilium:c.yaml".parse::<ExportSpec>().unwrap().format,
            Format::Cilium
        );
        for bad in ["calico:x.yaml", "np.yaml", "cilium:"] {
            let e = bad.parse::<ExportSpec>().unwrap_err();
            assert!(
                e.contains("networkpolicy:FILE") && e.contains("cilium:FILE"),
                "{bad}: {e}"
            );
        }
        assert_eq!(label("tier=").value, "");
        assert_eq!(label("example.com/tier=db").key, "example.com/tier");
        for bad in [
            "app",
            "=web",
            "-app=web",
            "app=we b",
            "Example.com/x=y",
            "a=-b",
        ] {
            assert!(bad.parse::<PodLabel>().is_err(), "{bad}");
        }
        assert_eq!(object_name("Shop_Web.v2"), "shop-web-v2");
        assert_eq!(object_name("__"), "learned");
        assert_eq!(object_name(&"a".repeat(70)).len(), 63);
    }

    #[test]
    fn scalars_read_back_as_the_strings_they_were() {
        for s in [
            "53",
            "1.5",
            "true",
            "no",
            "null",
            "2001:db8::/64",
            "10.0.0.0/8",
            "*",
            "*.x",
            "k8s:k8s-app",
            "",
            "a b",
            "2026-01-01",
            "0x1f",
            "~",
        ] {
            let v: Value = crate::yaml::from_str(&format!("k: {}", scalar(s))).unwrap();
            assert_eq!(v["k"].as_str(), Some(s), "{s} as {}", scalar(s));
        }
    }

    /// Cilium's CRD schema for CiliumNetworkPolicy (tests-fixtures/README.md says
    /// where it comes from).
    fn cilium_schema() -> Value {
        serde_json::from_str(include_str!(
            "../../tests-fixtures/ciliumnetworkpolicy_v2.schema.json"
        ))
        .unwrap()
    }

    /// Where `v` breaks `schema`, as `path: why`: the JSON-schema keywords the CRD's
    /// schema uses (types, int-or-string, required and unknown properties, items and
    /// their counts, enums, patterns, lengths, bounds, CIDRs, oneOf and anyOf). Its
    /// CEL rules (`x-kubernetes-validations`) are not evaluated.
    fn schema_errors(schema: &Value, v: &Value, at: &str, errors: &mut Vec<String>) {
        let mut fail = |why: String| errors.push(format!("{at}: {why}"));
        if schema["x-kubernetes-int-or-string"] == true {
            if !(v.is_string() || v.is_u64() || v.is_i64()) {
                fail(format!("{v} is neither an integer nor a string"));
            }
        } else if let Some(t) = schema["type"].as_str() {
            let fits = match t {
                "object" => v.is_object(),
                "array" => v.is_array(),
                "string" => v.is_string(),
                "integer" => v.is_u64() || v.is_i64(),
                "number" => v.is_number(),
                "boolean" => v.is_boolean(),
                other => panic!("type {other} is not known here"),
            };
            if !fits {
                fail(format!("{v} is not of type {t}"));
                return;
            }
        }
        if let Some(allowed) = schema["enum"].as_array()
            && !allowed.contains(v)
        {
            fail(format!("{v} is not one of {allowed:?}"));
        }
        if let Some(s) = v.as_str() {
            if let Some(p) = schema["pattern"].as_str()
                && !regex::Regex::new(p).unwrap().is_match(s)
            {
                fail(format!("{s:?} does not match {p}"));
            }
            let n = s.chars().count() as u64;
            if schema["maxLength"].as_u64().is_some_and(|max| n > max)
                || schema["minLength"].as_u64().is_some_and(|min| n < min)
            {
                fail(format!("{s:?} has a length out of bounds"));
            }
            if schema["format"] == "cidr" && !(s.contains('/') && s.parse::<IpNetwork>().is_ok()) {
                fail(format!("{s:?} is not a CIDR"));
            }
        }
        if let Some(n) = v.as_i64()
            && (schema["maximum"].as_i64().is_some_and(|max| n > max)
                || schema["minimum"].as_i64().is_some_and(|min| n < min))
        {
            fail(format!("{n} is out of bounds"));
        }
        if let Some(map) = v.as_object() {
            for key in schema["required"].as_array().into_iter().flatten() {
                if !map.contains_key(key.as_str().unwrap()) {
                    fail(format!("{key} is required"));
                }
            }
            for (k, value) in map {
                let at = format!("{at}.{k}");
                match (&schema["properties"][k], &schema["additionalProperties"]) {
                    (Value::Object(property), _) => {
                        schema_errors(&Value::Object(property.clone()), value, &at, errors)
                    }
                    (_, Value::Bool(false)) => errors.push(format!("{at}: an unknown field")),
                    (_, more @ Value::Object(_)) => schema_errors(more, value, &at, errors),
                    _ => {}
                }
            }
        }
        if let Some(items) = v.as_array() {
            let n = items.len() as u64;
            if schema["maxItems"].as_u64().is_some_and(|max| n > max)
                || schema["minItems"].as_u64().is_some_and(|min| n < min)
            {
                errors.push(format!("{at}: {n} items, out of bounds"));
            }
            if schema["items"].is_object() {
                for (i, item) in items.iter().enumerate() {
                    schema_errors(&schema["items"], item, &format!("{at}[{i}]"), errors);
                }
            }
        }
        let fitting = |key: &str| {
            schema[key].as_array().map(|subs| {
                subs.iter()
                    .filter(|sub| {
                        let mut e = Vec::new();
                        schema_errors(sub, v, at, &mut e);
                        e.is_empty()
                    })
                    .count()
            })
        };
        if fitting("oneOf").is_some_and(|n| n != 1) {
            errors.push(format!("{at}: not exactly one of its oneOf"));
        }
        if fitting("anyOf") == Some(0) {
            errors.push(format!("{at}: none of its anyOf"));
        }
    }

    fn cilium_errors(v: &Value) -> Vec<String> {
        let mut errors = Vec::new();
        schema_errors(&cilium_schema(), v, "", &mut errors);
        errors
    }

    #[test]
    fn the_cilium_policy_fits_ciliums_schema() {
        let records = records();
        let observed = super::super::observe(&records);
        let mut wild = Observed::default();
        let seen = wild
            .flows
            .entry(("*.cdn.test".to_owned(), "tcp".to_owned()))
            .or_default();
        seen.ports.extend(1000..1045);
        seen.addrs.insert("192.0.2.1".to_owned(), 1);
        let labels = [label("app=web"), label("example.com/tier=")];
        for yaml in [
            cilium(&meta(&records, &[]), &observed),
            cilium(&meta(&records, &labels), &observed),
            cilium(&meta(&[], &[]), &Observed::default()),
            cilium(&meta(&[], &[]), &wild),
        ] {
            let errors = cilium_errors(&parse(&yaml));
            assert!(errors.is_empty(), "{errors:#?}\n{yaml}");
        }
    }

    #[test]
    fn the_schema_check_finds_what_cilium_would_refuse() {
        let records = records();
        let good = parse(&cilium(
            &meta(&records, &[]),
            &super::super::observe(&records),
        ));
        let broken = |edit: &dyn Fn(&mut Value)| {
            let mut v = good.clone();
            edit(&mut v);
            cilium_errors(&v)
        };
        let some = |errors: Vec<String>, what: &str| {
            assert!(
                errors.iter().any(|e| e.contains(what)),
                "{what}: {errors:#?}"
            );
        };
        some(
            broken(&|v| v["spec"]["egress"][2]["toPorts"][0]["ports"][0]["port"] = json!(5432)),
            "is not of type string",
        );
        some(
            broken(&|v| v["spec"]["egress"][2]["toCidr"] = json!(["10.0.0.0/8"])),
            "spec.egress[2].toCidr: an unknown field",
        );
        some(
            broken(&|v| v["spec"]["egress"][2]["toCIDR"] = json!(["10.0.0.1"])),
            "is not a CIDR",
        );
        some(
            broken(&|v| {
                v["spec"]["egress"][2]["toPorts"][0]["ports"][0]["protocol"] = json!("tcp")
            }),
            "is not one of",
        );
        some(
            broken(&|v| v["spec"]["egress"][4]["toFQDNs"][0] = json!({"matchName": "a b"})),
            "does not match",
        );
        some(
            broken(&|v| {
                v["spec"]
                    .as_object_mut()
                    .unwrap()
                    .remove("endpointSelector");
            }),
            "spec: not exactly one of its oneOf",
        );
        some(
            broken(&|v| {
                v["spec"].as_object_mut().unwrap().remove("egress");
            }),
            "spec: none of its anyOf",
        );
        some(
            broken(&|v| {
                v.as_object_mut().unwrap().remove("metadata");
            }),
            "\"metadata\" is required",
        );
    }

    /// The tool the deploy test validates manifests with (`cargo xtask setup`
    /// installs it).
    fn kubernetes_validate() -> PathBuf {
        std::env::var_os("CGWARDEN_KUBERNETES_VALIDATE")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("../target/tools/venv/bin/kubernetes-validate")
            })
    }

    #[test]
    fn the_network_policy_passes_kubernetes_validate() {
        let records = records();
        let dir = tempfile::tempdir().unwrap();
        let observed = super::super::observe(&records);
        let labels = [label("app=web")];
        let files = [
            (
                "learned.yaml",
                network_policy(&meta(&records, &labels), &observed),
            ),
            (
                "empty.yaml",
                network_policy(&meta(&[], &[]), &Observed::default()),
            ),
        ];
        let tool = kubernetes_validate();
        for (name, text) in files {
            let file = dir.path().join(name);
            std::fs::write(&file, &text).unwrap();
            let out = std::process::Command::new(&tool)
                .arg("--strict")
                .arg(&file)
                .output()
                .unwrap_or_else(|e| {
                    panic!(
                        "kubernetes-validate (PyPI; `cargo xtask setup` installs it, or set CGWARDEN_KUBERNETES_VALIDATE) at {}: {e}",
                        tool.display()
                    )
                });
            let said = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            // A kind it has no schema for is only a warning: "passed" says it checked.
            assert!(
                out.status.success() && said.contains("passed"),
                "{said}\n{text}"
            );
        }
    }
}
