//! No DNS packet that a process inside the monitored cgroup sends, receives from a
//! server it chose, or forges can make an address allowed. The attacker is root in the
//! cgroup; it plays its own resolver, answers itself, asks a rogue server, and resolves
//! a name whose kernel hash collides with an allowed name's.

use cgwarden_tests::{
    ExecOutput, ProfileFile, dns::DnsServer, exec_full, net::TcpServer, netprobe, require_root,
};
use serde_json::Value;

const EPERM: &str = "error 1";

/// The attacker: DNS packets built by hand (Python, root in the cgroup).
const ATTACKER: &str = r#"
import socket, struct, sys
def header(txid, flags, an):
    return struct.pack('>HHHHHH', txid, flags, 1, an, 0, 0)
def qname(name):
    return b''.join(bytes([len(l)]) + l.encode() for l in name.split('.')) + b'\x00'
def query(name, txid):
    return header(txid, 0x0100, 0) + qname(name) + struct.pack('>HH', 1, 1)
def answer(name, txid, ip):
    return (header(txid, 0x8180, 1) + qname(name) + struct.pack('>HH', 1, 1)
            + b'\xc0\x0c' + struct.pack('>HHIH', 1, 1, 3600, 4) + socket.inet_aton(ip))
def connect(ip, port):
    s = socket.socket(); s.settimeout(1)
    try:
        s.connect((ip, port)); print('ok')
    except OSError as e:
        print('error', e.errno)
    finally:
        s.close()
target, tport, rogue, legit, good, gport, own = sys.argv[1:8]
tport, gport = int(tport), int(gport)
me = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); me.bind(('127.0.0.1', 0))
me.settimeout(0.5)
# 1. It plays the trusted resolver itself (an address nobody serves, like Docker's
#    127.0.0.11) and answers its own query: the query matches, the answer comes from
#    the resolver's address, but a monitored process sent it.
fake = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); fake.bind((own, 53))
me.sendto(query('x.api.test', 0x4242), (own, 53))
fake.recvfrom(512)
def forge(name, txid):
    try:
        fake.sendto(answer(name, txid, target), me.getsockname())
    except OSError as e:
        print('forged answer refused', e.errno)
    try:
        me.recvfrom(512); print('forged answer arrived')
    except OSError:
        print('forged answer dropped')
forge('x.api.test', 0x4242)
connect(target, tport)
# 2. An answer nobody asked for.
forge('y.api.test', 0x5151)
connect(target, tport)
# 3. A server it chose: a rogue resolver outside the cgroup answers for it.
me.sendto(query('z.api.test', 0x6161), (rogue, 53))
try:
    me.recvfrom(512); print('rogue answered')
except OSError:
    print('rogue silent')
connect(target, tport)
# 4. The same over TCP: its own resolver's answer on a TCP connection.
lst = socket.socket(); lst.bind((own, 53)); lst.listen()
cli = socket.socket(); cli.settimeout(1); cli.connect((own, 53))
srv, _ = lst.accept()
q = query('v.api.test', 0x2323)
cli.sendall(struct.pack('>H', len(q)) + q)
srv.recv(512)
a = answer('v.api.test', 0x2323, target)
try:
    srv.sendall(struct.pack('>H', len(a)) + a)
except OSError as e:
    print('forged answer refused', e.errno)
try:
    got = cli.recv(512); print('tcp forged answer arrived' if got else 'tcp closed')
except OSError:
    print('tcp forged answer dropped')
connect(target, tport)
# 5. The trusted resolver, for real: learned.
me.sendto(query('w.api.test', 0x7171), (legit, 53))
me.recvfrom(512)
connect(good, gport)
"#;

/// Runs netprobe with `args` under `profile`, the agent asking `dns`; its output lines.
fn probe(profile: &ProfileFile, dns: &DnsServer, args: &[&str]) -> (Vec<String>, ExecOutput) {
    let probe = netprobe();
    let mut cmd = vec![probe.to_str().unwrap()];
    cmd.extend_from_slice(args);
    let resolver = dns.addr.to_string();
    let out = exec_full(profile.path(), &["--resolver", &resolver], &cmd, "");
    (out.stdout.lines().map(str::to_owned).collect(), out)
}

fn zone(entries: &[(&str, &str, u32)]) -> cgwarden_tests::dns::Zone {
    entries
        .iter()
        .map(|(name, ip, ttl)| ((*name).to_owned(), vec![vec![(ip.parse().unwrap(), *ttl)]]))
        .collect()
}

fn untrusted<'a>(out: &'a ExecOutput, reason: &str) -> Vec<&'a Value> {
    out.events
        .iter()
        .filter(|e| e["kind"] == "dns" && e["untrusted"] == reason)
        .collect()
}

#[test]
fn forged_unsolicited_and_rogue_answers_teach_nothing() {
    require_root();
    let target = TcpServer::bind("127.0.0.71");
    let good = TcpServer::bind("127.0.0.72");
    let legit = DnsServer::start("127.53.0.71", zone(&[("w.api.test", "127.0.0.72", 300)]));
    let rogue = DnsServer::start("127.53.0.73", zone(&[("z.api.test", "127.0.0.71", 300)]));
    let own = "127.53.0.72";
    let profile = ProfileFile::new(&format!(
        "name: trust\nmode: enforce\negress:\n  default: deny\n  dns:\n    servers: [{own}, 127.53.0.71]\n  allow:\n    - to: \"*.api.test\"\n      protocol: tcp\n    - to: [127.53.0.0/16, 127.0.0.1]\n      protocol: udp\n    - to: {own}\n      ports: [53]\n      protocol: tcp\n"
    ));
    let args = [
        "127.0.0.71".to_owned(),
        target.port().to_string(),
        "127.53.0.73".to_owned(),
        "127.53.0.71".to_owned(),
        "127.0.0.72".to_owned(),
        good.port().to_string(),
        own.to_owned(),
    ];
    let mut cmd = vec!["python3", "-c", ATTACKER];
    cmd.extend(args.iter().map(String::as_str));
    let out = exec_full(profile.path(), &[], &cmd, "");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(
        lines,
        [
            "forged answer refused 1",
            "forged answer dropped",
            EPERM,
            "forged answer refused 1",
            "forged answer dropped",
            EPERM,
            "rogue answered",
            EPERM,
            "tcp forged answer dropped",
            EPERM,
            "ok"
        ],
        "{out:?}"
    );
    assert_eq!(target.accepted(), 0, "the attacker's address was reached");
    assert_eq!(good.accepted(), 1);
    assert_eq!(rogue.queries("z.api.test", 1), 1);
    assert_eq!(legit.queries("w.api.test", 1), 1);
    // Reported, at most once a second per container.
    let forged = untrusted(&out, "forged").len();
    assert!((1..=3).contains(&forged), "{:#?}", out.events);
}

#[test]
fn a_name_whose_kernel_hash_collides_with_an_allowed_name_is_not_that_name() {
    require_root();
    // Two labels with the same 64-bit FNV-1a hash (found with Brent's cycle search on
    // f(x) = fnv1a(base32(x))): so their names fold to the same kernel hash.
    let (allowed, crafted) = ("ntc3cjkjmbzmp.api.test", "7cqlefsflw3pe.api.test");
    let allowed_server = TcpServer::bind("127.0.0.75");
    let crafted_server = TcpServer::bind("127.0.0.76");
    let dns = DnsServer::start(
        "127.53.0.75",
        zone(&[(allowed, "127.0.0.75", 300), (crafted, "127.0.0.76", 300)]),
    );
    let profile = ProfileFile::new(&format!(
        "name: collide\nmode: enforce\negress:\n  default: deny\n  allow:\n    - to: {allowed}\n      protocol: tcp\n    - to: 127.53.0.75\n      ports: [53]\n      protocol: udp\n"
    ));
    let (lines, out) = probe(
        &profile,
        &dns,
        &[
            "dns",
            &format!("{crafted}@127.53.0.75"),
            "tcp",
            &crafted_server.addr.to_string(),
            "dns",
            &format!("{allowed}@127.53.0.75"),
            "tcp",
            &allowed_server.addr.to_string(),
        ],
    );
    assert_eq!(
        lines,
        ["ok 127.0.0.76", EPERM, "ok 127.0.0.75", "ok"],
        "{out:?}"
    );
    assert_eq!(crafted_server.accepted(), 0);
}

#[test]
fn learned_addresses_live_no_longer_than_max_ttl() {
    require_root();
    let server = TcpServer::bind("127.0.0.78");
    let dns = DnsServer::start("127.53.0.78", zone(&[("a.ttl.test", "127.0.0.78", 86_400)]));
    let profile = ProfileFile::new(
        "name: ttl\nmode: enforce\negress:\n  default: deny\n  dns:\n    max_ttl: 5\n  allow:\n    - to: \"*.ttl.test\"\n      protocol: tcp\n    - to: 127.53.0.78\n      ports: [53]\n      protocol: udp\n",
    );
    let addr = server.addr.to_string();
    let (lines, out) = probe(
        &profile,
        &dns,
        &[
            "dns",
            "a.ttl.test@127.53.0.78",
            "tcp",
            &addr,
            "sleep",
            "6500",
            "tcp",
            &addr,
        ],
    );
    // The answer says a day; the profile says five seconds.
    assert_eq!(lines, ["ok 127.0.0.78", "ok", "ok", EPERM], "{out:?}");
}

#[test]
fn a_name_may_gain_more_than_a_hundred_addresses_npep_133() {
    require_root();
    // Five answers of 30, 30, 30, 30 and 10 addresses (CDN rotation): 130 in all, two
    // beyond the default cap of 128.
    let sets: Vec<Vec<(std::net::IpAddr, u32)>> = (0..5)
        .map(|set| {
            let n = if set == 4 { 10 } else { 30 };
            (0..n)
                .map(|i| (format!("127.1.{set}.{}", i + 1).parse().unwrap(), 300))
                .collect()
        })
        .collect();
    let zone = [("many.npep.test".to_owned(), sets)].into_iter().collect();
    let dns = DnsServer::start("127.53.0.79", zone);
    let profile = ProfileFile::new(
        "name: npep\nmode: enforce\negress:\n  default: deny\n  dns:\n    report: true\n  allow:\n    - to: \"*.npep.test\"\n      protocol: tcp\n    - to: 127.53.0.79\n      ports: [53]\n      protocol: udp\n",
    );
    let resolver = dns.addr.to_string();
    let probe = netprobe();
    let mut args = vec![probe.display().to_string()];
    for _ in 0..5 {
        args.extend(["dns".to_owned(), "many.npep.test@127.53.0.79".to_owned()]);
    }
    // One address of each of the first four answers, the last of the first 128, and
    // the two past the cap.
    for addr in [
        "127.1.0.1",
        "127.1.1.30",
        "127.1.2.15",
        "127.1.3.30",
        "127.1.4.8",
        "127.1.4.9",
        "127.1.4.10",
    ] {
        args.extend(["tcp".to_owned(), format!("{addr}:9")]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = exec_full(profile.path(), &["--resolver", &resolver], &args, "");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 12, "{out:?}");
    // Allowed: the connection reaches loopback, where nothing listens (ECONNREFUSED).
    assert_eq!(&lines[5..10], ["error 111"; 5], "{out:?}");
    assert_eq!(&lines[10..], [EPERM; 2], "the cap holds: {out:?}");
    let capped: u64 = out
        .events
        .iter()
        .filter(|e| e["kind"] == "dns")
        .map(|e| e["capped"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(capped, 2, "{:#?}", out.events);
}

#[test]
fn answers_over_tcp_from_a_trusted_resolver_are_learned() {
    require_root();
    let server = TcpServer::bind("127.0.0.85");
    let dns = DnsServer::start("127.53.0.85", zone(&[("big.tcp.test", "127.0.0.85", 300)]));
    let profile = ProfileFile::new(
        "name: tcpdns\nmode: enforce\negress:\n  default: deny\n  allow:\n    - to: \"*.tcp.test\"\n      protocol: tcp\n    - to: 127.53.0.85\n      ports: [53]\n",
    );
    let addr = server.addr.to_string();
    let (lines, out) = probe(
        &profile,
        &dns,
        &[
            "tcp",
            &addr,
            "dns-tcp",
            "big.tcp.test@127.53.0.85",
            "tcp",
            &addr,
        ],
    );
    assert_eq!(lines, [EPERM, "ok 127.0.0.85", "ok"], "{out:?}");
    assert_eq!(dns.tcp_queries("big.tcp.test", 1), 1);
}

#[test]
fn only_records_of_the_name_and_its_cname_chain_count() {
    require_root();
    use cgwarden_tests::dns::Alias;
    let aliases = [(
        "www.alias.test".to_owned(),
        Alias {
            target: "edge.cdn.test".to_owned(),
            addrs: vec!["127.0.0.91".parse().unwrap()],
            // An A record for `cdn.test` in the same answer: not the name asked.
            stray: Some("127.0.0.92".parse().unwrap()),
        },
    )]
    .into_iter()
    .collect();
    let dns = DnsServer::start_with_aliases("127.53.0.91", Default::default(), aliases);
    let profile = ProfileFile::new(
        "name: chain\nmode: enforce\negress:\n  default: deny\n  allow:\n    - to: \"*.alias.test\"\n      protocol: tcp\n    - to: 127.53.0.91\n      ports: [53]\n      protocol: udp\n",
    );
    let (lines, out) = probe(
        &profile,
        &dns,
        &[
            "dns",
            "www.alias.test@127.53.0.91",
            "tcp",
            "127.0.0.91:9",
            "tcp",
            "127.0.0.92:9",
        ],
    );
    // The chain's address is allowed (nothing listens: ECONNREFUSED); the stray is not.
    assert_eq!(lines[1..], ["error 111", EPERM], "{out:?}");
}
