//! DNS answers a monitored container receives, and the queries it sends: the cgroup_skb
//! hooks' DNS half.
//!
//! When a container resolves a name its profile allows, the answer's addresses become
//! allowed for that container only, before the answer reaches the resolver: the kernel
//! parses the answer here and writes the addresses to `LEARNED`, so the connect that
//! follows the answer finds them (no window in which an allowed flow fails, and no DNS
//! proxy that could fail with the agent). Every answer passes: ingress never drops.
//!
//! An answer may allow anything only when it can be trusted:
//! - the container's socket sent a query to a trusted resolver (`DNS_SERVERS`: the
//!   profile's `egress.dns.servers`, else the agent's resolvers and the container's own
//!   resolv.conf), recorded at egress by socket cookie and transaction id;
//! - the answer comes back to that socket, from that resolver, with that id and that
//!   question (name, type, class); each query admits one answer;
//! - only records for the question's name, or for the CNAME chain inside the same
//!   answer, count; their TTLs are capped by the profile (`egress.dns.max_ttl`);
//! - the name matches a rule as a name: by hash first, then byte by byte (`NAME_TEXT`).
//!
//! Answers over TCP count as over UDP when a segment starts the message (its two-byte
//! length first); a message split over segments teaches only what its first holds.
//!
//! A monitored process cannot answer itself: under a profile that learns names, every
//! UDP packet or TCP segment it sends from port 53 is dropped at egress (raw and packet sockets are
//! refused or killed by `sockets.rs`). Untrusted answers are counted and reported, at
//! most once a second per container.
//!
//! Names are hashed per label (FNV-1a of the lowercase label), the labels folded from
//! the first (exact rules) or from a later one (wildcard rules, `*.example.com`). The
//! agent computes the same hashes for the names in a profile.
//!
//! Minimum kernel: 6.16. The records it writes carry the current task's ids and command
//! name (`event::write_header`), and cgroup_skb programs may call
//! `bpf_get_current_uid_gid` and `bpf_get_current_comm` only since 6.16
//! (`bpf_get_current_pid_tgid` since 6.10). Its parsing needs 5.17 (`bpf_loop`).

use core::ffi::c_void;

use aya_ebpf::{
    bindings::__sk_buff,
    helpers::generated::{bpf_get_socket_cookie, bpf_ktime_get_ns, bpf_loop, bpf_skb_load_bytes},
    programs::SkBuffContext,
};
use cgwarden_common::{
    Asker, DNS_BUF_BYTES, DNS_EVENT_ADDRS, DNS_MASK, DNS_MAX_ANSWERS, DNS_MAX_LABELS,
    DNS_MIN_TTL_SECS, DNS_QUERY_TTL_NS, DNS_SCOPE_PROFILE, DnsEvent, DnsQuery, DnsQueryKey,
    DnsScratch, DnsServerKey, FNV_OFFSET, FNV_PRIME, LearnedKey, LearnedValue, NameCountKey,
    NameKey, NameText, config_flags, counters, dns_refused, kind, profile_flags,
};

use crate::{
    event,
    maps::{
        CONFIG, DNS_BUF, DNS_QBUF, DNS_QSCRATCH, DNS_QUERIES, DNS_REFUSALS, DNS_SCRATCH,
        DNS_SERVERS, LEARNED, NAME_COUNTS, NAME_TEXT, NAMES, count,
    },
    packet::{DROP, ETH_P_IP, ETH_P_IPV6, PASS, eth_proto, full_socket},
    profile::{self, Match},
    sockaddr::v4_mapped,
};

const IPPROTO_UDP: u8 = 17;
const IPPROTO_TCP: u8 = 6;
const DNS_PORT: u16 = 53;
const TYPE_A: u16 = 1;
const TYPE_CNAME: u16 = 5;
const TYPE_AAAA: u16 = 28;

/// Whether some profile reads DNS (the agent's global flag).
#[inline(always)]
pub fn on() -> bool {
    CONFIG
        .get(0)
        .is_some_and(|c| c.flags & config_flags::DNS != 0)
}

/// Whether the socket that owns the packet is a UDP or TCP socket.
#[inline(always)]
fn dns_socket(skb: *mut __sk_buff) -> bool {
    may_carry_dns(full_socket(skb))
}

/// Whether a socket's packets may be DNS: any UDP socket (an unconnected one has no
/// fixed peer), a TCP socket only with port 53 at one end. Decided from the socket
/// alone, so the TCP traffic of a container that learns names pays no packet read.
#[inline(always)]
pub fn may_carry_dns(full: *mut aya_ebpf::bindings::bpf_sock) -> bool {
    if full.is_null() {
        return false;
    }
    // SAFETY: `full` is a full socket the kernel handed out, not null.
    unsafe {
        let protocol = (*full).protocol;
        protocol == u32::from(IPPROTO_UDP)
            || (protocol == u32::from(IPPROTO_TCP)
                && ((*full).src_port == u32::from(DNS_PORT)
                    || u16::from_be((*full).dst_port) == DNS_PORT))
    }
}

/// Where a DNS message may be in a packet: the addresses and ports, and the message's
/// offset and length (UDP: the payload; TCP: after the two-byte length that starts a
/// message, when this segment starts one).
struct Seg {
    saddr: [u8; 16],
    daddr: [u8; 16],
    sport: u16,
    dport: u16,
    /// Offset of the DNS message in the packet.
    msg: usize,
    /// Its length, as far as this packet holds it.
    len: usize,
}

#[inline(always)]
fn seg_of(ctx: &SkBuffContext) -> Option<Seg> {
    let (l4, proto, total, saddr, daddr) = match eth_proto(ctx.skb.skb) {
        ETH_P_IP => {
            let ip = ctx.load::<[u8; 20]>(0).ok()?;
            let s = u32::from_ne_bytes([ip[12], ip[13], ip[14], ip[15]]);
            let d = u32::from_ne_bytes([ip[16], ip[17], ip[18], ip[19]]);
            let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
            (
                usize::from(ip[0] & 0x0f) * 4,
                ip[9],
                total,
                v4_mapped(s),
                v4_mapped(d),
            )
        }
        ETH_P_IPV6 => {
            let ip = ctx.load::<[u8; 40]>(0).ok()?;
            let mut s = [0u8; 16];
            let mut d = [0u8; 16];
            s.copy_from_slice(&ip[8..24]);
            d.copy_from_slice(&ip[24..40]);
            let total = 40 + usize::from(u16::from_be_bytes([ip[4], ip[5]]));
            (40, ip[6], total, s, d)
        }
        _ => return None,
    };
    let ports = ctx.load::<[u8; 4]>(l4).ok()?;
    let (sport, dport) = (
        u16::from_be_bytes([ports[0], ports[1]]),
        u16::from_be_bytes([ports[2], ports[3]]),
    );
    let (msg, len) = if proto == IPPROTO_UDP {
        let udp = ctx.load::<[u8; 8]>(l4).ok()?;
        let len = usize::from(u16::from_be_bytes([udp[4], udp[5]]));
        (l4 + 8, len.checked_sub(8)?)
    } else if proto == IPPROTO_TCP {
        let tcp = ctx.load::<[u8; 14]>(l4).ok()?;
        let data = l4 + usize::from(tcp[12] >> 4) * 4;
        let payload = total.checked_sub(data)?;
        if payload < 2 + 12 {
            // No message starts here (a handshake, an ACK, a continuation).
            return None;
        }
        let prefix = ctx.load::<[u8; 2]>(data).ok()?;
        let declared = usize::from(u16::from_be_bytes(prefix));
        (data + 2, declared.min(payload - 2))
    } else {
        return None;
    };
    Some(Seg {
        saddr,
        daddr,
        sport,
        dport,
        msg,
        len,
    })
}

/// Looks at one incoming packet; always lets it pass. Returns at once unless some
/// profile reads DNS and the receiving socket is a UDP or TCP socket.
#[inline(always)]
pub fn ingress(ctx: &SkBuffContext) -> i32 {
    let skb: *mut __sk_buff = ctx.skb.skb;
    if !on() || !dns_socket(skb) {
        return PASS;
    }
    let Some(m) = profile::of_skb(skb) else {
        return PASS;
    };
    if m.profile.flags & profile_flags::READS_DNS != 0 {
        let _ = answer(ctx, &m);
    }
    PASS
}

/// One outgoing UDP packet or TCP segment of a monitored socket, while some profile
/// reads DNS: a query to a trusted resolver is recorded for its answer; a packet from
/// port 53 (an answer the container would forge for itself) is dropped. Everything
/// else passes.
#[inline(always)]
pub fn egress(ctx: &SkBuffContext) -> i32 {
    let skb: *mut __sk_buff = ctx.skb.skb;
    let Some(m) = profile::of_skb(skb) else {
        return PASS;
    };
    if m.profile.flags & profile_flags::READS_DNS == 0 {
        return PASS;
    }
    let Some(udp) = seg_of(ctx) else {
        return PASS;
    };
    if udp.sport == DNS_PORT && m.profile.flags & profile_flags::LEARN_DNS != 0 {
        count(counters::DNS_FORGED);
        refusal(&m, dns_refused::FORGED, None, None);
        return DROP;
    }
    // A profile that learns trusts only answers to queries to its resolvers; one that
    // only reports records every query, for the name of the process that asked.
    if udp.dport == DNS_PORT
        && (m.profile.flags & profile_flags::LEARN_DNS == 0 || trusted(&m, &udp.daddr))
    {
        let _ = query(ctx, &m, &udp);
    }
    PASS
}

/// Whether `addr` is a trusted resolver for the profile or the monitored cgroup.
#[inline(always)]
fn trusted(m: &Match, addr: &[u8; 16]) -> bool {
    let mut key = DnsServerKey {
        scope: DNS_SCOPE_PROFILE | u64::from(m.profile.id),
        addr: *addr,
    };
    // SAFETY: read-only lookups of values the agent writes.
    if unsafe { DNS_SERVERS.get(&key) }.is_some() {
        return true;
    }
    key.scope = m.cgroup;
    unsafe { DNS_SERVERS.get(&key) }.is_some()
}

/// Records a query (its socket, id, resolver and question) for its answer.
#[inline(always)]
fn query(ctx: &SkBuffContext, m: &Match, udp: &Seg) -> Option<()> {
    let skb = ctx.skb.skb;
    let (buf, copy) = copy_message(skb, udp, DNS_QBUF.get_ptr_mut(0)?.cast(), 511)?;
    let s_ptr = DNS_QSCRATCH.get_ptr_mut(0)?;
    // A standard query (QR 0, opcode 0) with one question.
    let flags = be16(buf, 2);
    if flags & 0xf800 != 0 || be16(buf, 4) != 1 {
        return None;
    }
    let (qhash, qtype, qclass) = question(buf, s_ptr, copy, m)?;
    let key = DnsQueryKey {
        cookie: unsafe { bpf_get_socket_cookie(skb.cast()) },
        txid: u32::from(be16(buf, 0)),
        _pad: 0,
    };
    // The segment normally leaves in the sender's own context (a UDP send, the first
    // TCP segment); one sent from softirq (a retransmit) names nobody rather than
    // whichever task ran then.
    let asker = match profile::entry_of_current() {
        Some(current) if current.cgroup == m.cgroup => event::current_task(),
        _ => Asker::default(),
    };
    let value = DnsQuery {
        server: udp.daddr,
        qhash,
        qtype,
        qclass,
        _pad: 0,
        // SAFETY: plain helper call.
        expires_ns: unsafe { bpf_ktime_get_ns() } + DNS_QUERY_TTL_NS,
        asker,
    };
    let _ = DNS_QUERIES.insert(&key, &value, 0);
    Some(())
}

/// Copies a DNS message (at most `mask` bytes) into `buf`; returns it and the bytes
/// copied.
#[inline(always)]
fn copy_message(
    skb: *mut __sk_buff,
    udp: &Seg,
    buf: *mut u8,
    mask: u32,
) -> Option<(*const u8, u64)> {
    if udp.len < 12 {
        return None;
    }
    let mut len = udp.len;
    if len > mask as usize {
        len = mask as usize;
    }
    let copy = (len as u32) & mask;
    if copy == 0 {
        return None;
    }
    // SAFETY: `buf` holds more than `mask` bytes and `copy` <= `mask`.
    let rc = unsafe { bpf_skb_load_bytes(skb.cast(), udp.msg as u32, buf.cast(), copy) };
    if rc != 0 {
        return None;
    }
    Some((buf.cast_const(), u64::from(copy)))
}

/// Parses the question at offset 12 into `s` (label hashes and offsets, its end);
/// returns its name hash, type and class.
#[inline(always)]
fn question(buf: *const u8, s: *mut DnsScratch, len: u64, m: &Match) -> Option<(u64, u16, u16)> {
    // SAFETY: `s` is this CPU's scratch value; the program runs to completion on it.
    unsafe {
        (*s).len = len;
        (*s).remaining = 0;
        (*s).nlabels = 0;
        (*s).hash = FNV_OFFSET;
        (*s).end = 0;
        (*s).failed = 0;
        (*s).profile = m.profile;
        (*s).cgroup = m.cgroup;
    }
    let mut cursor = Cursor {
        buf,
        s,
        text: core::ptr::null(),
    };
    let state = (&raw mut cursor).cast::<c_void>();
    // SAFETY: the callback only uses `state` as the `Cursor` it is.
    unsafe { bpf_loop(255, qname_step as *mut c_void, state, 0) };
    // SAFETY: as above.
    let (failed, end, nlabels) = unsafe { ((*s).failed, (*s).end as usize, (*s).nlabels) };
    if failed != 0 || end == 0 || nlabels == 0 || end as u64 + 4 > len {
        return None;
    }
    // SAFETY: as above.
    let labels = unsafe { &(*s).labels };
    Some((
        fold(labels, 0, nlabels as usize),
        be16(buf, end),
        be16(buf, end + 2),
    ))
}

/// Reports an untrusted answer (or a forged one at egress), at most once a second per
/// monitored cgroup, naming `who` asked (`None`: the current task, at egress).
#[inline(always)]
fn refusal(
    m: &Match,
    reason: u32,
    who: Option<&Asker>,
    qname: Option<(*mut __sk_buff, usize, usize)>,
) {
    // SAFETY: plain helper call.
    let now = unsafe { bpf_ktime_get_ns() };
    // SAFETY: read of a plain timestamp.
    if let Some(last) = unsafe { DNS_REFUSALS.get(&m.cgroup) }
        && now.saturating_sub(*last) < 1_000_000_000
    {
        return;
    }
    let _ = DNS_REFUSALS.insert(&m.cgroup, &now, 0);
    event::emit::<DnsEvent>(false, |ev| {
        // SAFETY: `ev` points to the reserved event; every field read later is written.
        unsafe {
            match who {
                Some(who) => event::write_header_as(
                    &raw mut (*ev).header,
                    kind::DNS,
                    m.profile.id,
                    m.cgroup,
                    who,
                ),
                None => {
                    event::write_header(&raw mut (*ev).header, kind::DNS, m.profile.id, m.cgroup)
                }
            }
            (*ev).learned_for = m.cgroup;
            (*ev).count = 0;
            (*ev).learned = 0;
            (*ev).capped = 0;
            (*ev).refused = reason;
            (*ev)._pad = 0;
            (*ev).qname_len = 0;
            if let Some((skb, offset, qlen)) = qname {
                copy_qname(skb, ev, offset, qlen);
            }
        }
    });
}

/// Copies the question name (`qlen` bytes at packet offset `offset`) into an event.
/// One helper call instead of a byte loop (which the verifier would walk 256 times).
/// The length is written so the verifier sees it in 1..=256; `qlen` is at least 1
/// because the name ended past offset 12.
///
/// # Safety
/// `ev` points to a reserved event.
#[inline(always)]
unsafe fn copy_qname(skb: *mut __sk_buff, ev: *mut DnsEvent, offset: usize, qlen: usize) {
    // SAFETY: the caller's `ev` is a reserved event; the length is bounded as above.
    unsafe {
        (*ev).qname_len = qlen as u32;
        if bpf_skb_load_bytes(
            skb.cast(),
            offset as u32,
            (&raw mut (*ev).qname).cast(),
            ((qlen as u32).wrapping_sub(1) & 0xff) + 1,
        ) != 0
        {
            (*ev).qname_len = 0;
        }
    }
}

/// Byte `i` of the copied message (masked so the verifier sees it in bounds).
#[inline(always)]
fn at(buf: *const u8, i: usize) -> u8 {
    // SAFETY: `i & DNS_MASK` < DNS_BUF_BYTES, the buffer's size.
    unsafe { *buf.add(i & DNS_MASK) }
}

#[inline(always)]
fn be16(buf: *const u8, i: usize) -> u16 {
    u16::from_be_bytes([at(buf, i), at(buf, i + 1)])
}

#[inline(always)]
fn fnv(h: u64, byte: u8) -> u64 {
    (h ^ u64::from(byte)).wrapping_mul(FNV_PRIME)
}

/// Folds label hashes `from..n` into a name hash.
#[inline(always)]
fn fold(labels: &[u64; DNS_MAX_LABELS], from: usize, n: usize) -> u64 {
    let mut h = FNV_OFFSET;
    for k in 0..DNS_MAX_LABELS {
        if k >= from && k < n {
            h = (h ^ labels[k]).wrapping_mul(FNV_PRIME);
        }
    }
    h
}

/// What the `bpf_loop` callbacks get: pointers to the message, to the parser state
/// (both per-CPU map values: the callback context must live on the stack, the state is
/// too large for it) and, for the name compare, to the rule's name.
#[repr(C)]
struct Cursor {
    buf: *const u8,
    s: *mut DnsScratch,
    text: *const NameText,
}

fn answer(ctx: &SkBuffContext, m: &Match) -> Option<()> {
    let skb = ctx.skb.skb;
    // A subprogram of its own: its stack is gone before the parsing loops run.
    let checked = trusted_answer(ctx, m);
    if checked == 0 {
        return None;
    }
    let qname_at = (checked >> 16) as usize;
    let end = (checked & 0xffff) as usize;
    let qlen = end.saturating_sub(12) & 0xff;
    let buf = DNS_BUF.get_ptr_mut(0)?.cast::<u8>().cast_const();
    let s = DNS_SCRATCH.get_ptr_mut(0)?;
    // SAFETY: plain helper call.
    let now = unsafe { bpf_ktime_get_ns() };

    // SAFETY: `s` is this CPU's scratch value; the program runs to completion on it.
    unsafe {
        (*s).answers = u64::from(be16(buf, 6));
        (*s).found = 0;
        (*s).capped = 0;
        (*s).now = now;
        (*s).rule = 0;
        (*s).target = 12;
    }
    let mut cursor = Cursor {
        buf,
        s,
        text: core::ptr::null(),
    };
    let state = (&raw mut cursor).cast::<c_void>();
    if m.profile.flags & profile_flags::LEARN_DNS != 0 {
        // SAFETY: the callbacks only use `state` as the `Cursor` it is.
        unsafe { bpf_loop(DNS_MAX_LABELS as u32, rule_step as *mut c_void, state, 0) };
        // The rule's name, byte by byte: a hash that collides is not the name.
        // SAFETY: as above.
        if unsafe { (*s).rule } != 0 && !same_name(&mut cursor) {
            // SAFETY: as above.
            unsafe { (*s).rule = 0 };
        }
    }
    let state = (&raw mut cursor).cast::<c_void>();
    // SAFETY: as above.
    unsafe {
        (*s).pos = (end + 4) as u64;
        bpf_loop(DNS_MAX_ANSWERS as u32, answer_step as *mut c_void, state, 0);
    }
    report_answer(skb, m, s, qname_at, qlen);
    Some(())
}

/// Copies the answer, parses its question and checks it answers a query this socket
/// sent to a trusted resolver (reporting it when not). Returns 0 to stop, else the
/// question name's offset in the packet (high bits) and the question's end in the
/// message (low 16 bits).
#[inline(never)]
fn trusted_answer(ctx: &SkBuffContext, m: &Match) -> u64 {
    check(ctx, m).unwrap_or(0)
}

#[inline(always)]
fn check(ctx: &SkBuffContext, m: &Match) -> Option<u64> {
    let skb = ctx.skb.skb;
    let udp = seg_of(ctx)?;
    if udp.sport != DNS_PORT {
        return None;
    }
    let (buf, len) = copy_message(skb, &udp, DNS_BUF.get_ptr_mut(0)?.cast(), DNS_MASK as u32)?;
    let s = DNS_SCRATCH.get_ptr_mut(0)?;

    // Header: a response without error, one question.
    let flags = be16(buf, 2);
    if flags & 0x8000 == 0 || flags & 0x000f != 0 || be16(buf, 4) != 1 {
        return None;
    }
    let qname_at = udp.msg + 12;
    // The query it answers: sent by this socket, with this id.
    let key = DnsQueryKey {
        // SAFETY: `skb` is the context pointer.
        cookie: unsafe { bpf_get_socket_cookie(skb.cast()) },
        txid: u32::from(be16(buf, 0)),
        _pad: 0,
    };
    if m.profile.flags & profile_flags::LEARN_DNS == 0 {
        // Only reported (learn mode): nothing is allowed from it, so nothing to trust;
        // the report says which resolvers the workload asked, and who asked.
        question(buf, s, len, m)?;
        // SAFETY: the value is copied out at once; `s` is this CPU's scratch value.
        unsafe {
            (*s).asker = DNS_QUERIES.get(&key).map_or(Asker::default(), |q| q.asker);
        }
        let _ = DNS_QUERIES.remove(&key);
        // SAFETY: as in `question`.
        let end = unsafe { (*s).end } as usize;
        return Some(((qname_at as u64) << 16) | (end as u64 & 0xffff));
    }
    // To a trusted resolver: what the egress side recorded.
    // SAFETY: plain helper call.
    let now = unsafe { bpf_ktime_get_ns() };
    // SAFETY: the value is copied out at once.
    let Some(asked) = (unsafe { DNS_QUERIES.get(&key) }).copied() else {
        count(counters::DNS_UNTRUSTED);
        refusal(m, dns_refused::NO_QUERY, Some(&Asker::default()), None);
        return None;
    };
    if asked.expires_ns < now {
        count(counters::DNS_UNTRUSTED);
        refusal(m, dns_refused::NO_QUERY, Some(&Asker::default()), None);
        return None;
    }
    // The resolver must be trusted now, not only when the query left: a query recorded
    // under a profile that only reported DNS (any resolver), or before a reload changed
    // the trusted resolvers, must not make its answer trusted.
    if asked.server != udp.saddr || !trusted(m, &asked.server) {
        count(counters::DNS_UNTRUSTED);
        refusal(m, dns_refused::WRONG_SERVER, Some(&asked.asker), None);
        return None;
    }
    let (qhash, qtype, qclass) = question(buf, s, len, m)?;
    // SAFETY: as in `question`.
    let end = unsafe { (*s).end } as usize;
    let qlen = end.saturating_sub(12) & 0xff;
    if (qhash, qtype, qclass) != (asked.qhash, asked.qtype, asked.qclass) {
        count(counters::DNS_UNTRUSTED);
        refusal(
            m,
            dns_refused::WRONG_QUESTION,
            Some(&asked.asker),
            Some((skb, qname_at, qlen)),
        );
        return None;
    }
    // One answer per query; its record names who asked.
    // SAFETY: `s` is this CPU's scratch value.
    unsafe { (*s).asker = asked.asker };
    let _ = DNS_QUERIES.remove(&key);
    Some(((qname_at as u64) << 16) | (end as u64 & 0xffff))
}

/// Sends the answer's event when the profile reports answers or some were capped.
#[inline(always)]
fn report_answer(skb: *mut __sk_buff, m: &Match, s: *mut DnsScratch, qname_at: usize, qlen: usize) {
    // SAFETY: `s` is this CPU's scratch value.
    let (found, rule, capped) = unsafe { ((*s).found, (*s).rule, (*s).capped) };
    if m.profile.flags & profile_flags::REPORT_DNS == 0 && capped == 0 {
        return;
    }
    event::emit::<DnsEvent>(false, |ev| {
        // SAFETY: `ev` points to the reserved event; every field is written before submit.
        unsafe {
            event::write_header_as(
                &raw mut (*ev).header,
                kind::DNS,
                m.profile.id,
                m.cgroup,
                &(*s).asker,
            );
            (*ev).learned_for = m.cgroup;
            (*ev).addrs = (*s).addrs;
            (*ev).ttls = (*s).ttls;
            (*ev).count = found as u32;
            (*ev).learned = rule;
            (*ev).capped = capped as u32;
            (*ev).refused = dns_refused::NONE;
            (*ev)._pad = 0;
            copy_qname(skb, ev, qname_at, qlen);
        }
    });
}

/// Whether the question name, from the rule's first label on, is the rule's name
/// (`NAME_TEXT`), byte by byte, lower-cased.
#[inline(always)]
fn same_name(cursor: &mut Cursor) -> bool {
    let s = cursor.s;
    // SAFETY: `s` is this CPU's scratch value.
    let (wildcard, hash, from, end) =
        unsafe { ((*s).wildcard, (*s).rule_hash, (*s).rule_from, (*s).end) };
    let key = NameKey {
        // SAFETY: as above.
        profile: unsafe { (*s).profile.id },
        wildcard,
        hash,
    };
    // SAFETY: read-only lookup of a value the agent writes whole.
    let Some(text) = (unsafe { NAME_TEXT.get(&key) }) else {
        return false;
    };
    // SAFETY: as above.
    let start = unsafe { (*s).label_pos[from as usize & (DNS_MAX_LABELS - 1)] };
    if text.len == 0 || start + u64::from(text.len) != end {
        return false;
    }
    cursor.text = text;
    // SAFETY: as above.
    unsafe { (*s).differ = 0 };
    let state = (cursor as *mut Cursor).cast::<c_void>();
    // SAFETY: the callback only uses `state` as the `Cursor` it is.
    unsafe { bpf_loop(256, name_byte_step as *mut c_void, state, 0) };
    // SAFETY: as above.
    unsafe { (*s).differ == 0 }
}

/// One byte of the name compare.
extern "C" fn name_byte_step(i: u64, state: *mut c_void) -> i64 {
    // SAFETY: `state` is the `Cursor` passed to bpf_loop, with `text` set.
    let (buf, s, text) = unsafe {
        let c = &*state.cast::<Cursor>();
        (c.buf, &mut *c.s, &*c.text)
    };
    if i >= u64::from(text.len) {
        return 1;
    }
    let start = s.label_pos[s.rule_from as usize & (DNS_MAX_LABELS - 1)];
    let got = at(buf, (start + i) as usize).to_ascii_lowercase();
    if got != text.wire[i as usize & 0xff] {
        s.differ += 1;
        return 1;
    }
    0
}

/// One byte of the question name: hashes labels, records each label's hash and where
/// it starts.
extern "C" fn qname_step(i: u64, state: *mut c_void) -> i64 {
    // SAFETY: `state` is the `Cursor` passed to bpf_loop; `s` is a live map value.
    let (buf, s) = unsafe {
        let c = &*state.cast::<Cursor>();
        (c.buf, &mut *c.s)
    };
    let pos = 12 + i as usize;
    if pos as u64 >= s.len {
        s.failed = 1;
        return 1;
    }
    let c = at(buf, pos);
    if s.remaining == 0 {
        if i > 0 {
            if s.nlabels >= DNS_MAX_LABELS as u64 {
                s.failed = 1;
                return 1;
            }
            s.labels[s.nlabels as usize & (DNS_MAX_LABELS - 1)] = s.hash;
            s.nlabels += 1;
        }
        if c == 0 {
            s.end = pos as u64 + 1;
            return 1;
        }
        if c > 63 || s.nlabels >= DNS_MAX_LABELS as u64 {
            s.failed = 1;
            return 1;
        }
        s.label_pos[s.nlabels as usize & (DNS_MAX_LABELS - 1)] = pos as u64;
        s.remaining = u64::from(c);
        s.hash = FNV_OFFSET;
    } else {
        s.hash = fnv(s.hash, c.to_ascii_lowercase());
        s.remaining -= 1;
    }
    0
}

/// Tries the name from label `from` on: the whole name (an exact rule) for 0, the part
/// after `from` labels (a wildcard rule) otherwise. Stops at the first rule found, so
/// the most specific one wins.
extern "C" fn rule_step(from: u64, state: *mut c_void) -> i64 {
    // SAFETY: as in `qname_step`.
    let s = unsafe { &mut *(*state.cast::<Cursor>()).s };
    let n = s.nlabels as usize;
    let from = from as usize;
    if from >= n {
        return 1;
    }
    let hash = fold(&s.labels, from, n);
    let key = NameKey {
        profile: s.profile.id,
        wildcard: u32::from(from > 0),
        hash,
    };
    // SAFETY: read-only lookup of a value written whole by the agent.
    if unsafe { NAMES.get(&key) }.is_some() {
        s.rule = 1;
        s.wildcard = key.wildcard;
        s.rule_hash = hash;
        s.rule_from = from as u64;
        return 1;
    }
    0
}

/// One answer record. Only records whose owner is the question's name, or the target
/// of a CNAME of it in this answer, count: a CNAME moves the chain on, an A or AAAA
/// record is learned. Owner names must be compression pointers (as every resolver
/// writes them); parsing stops at anything else, which can only mean learning less.
extern "C" fn answer_step(i: u64, state: *mut c_void) -> i64 {
    // SAFETY: as in `qname_step`.
    let (buf, s) = unsafe {
        let c = &*state.cast::<Cursor>();
        (c.buf, &mut *c.s)
    };
    if i >= s.answers {
        return 1;
    }
    let pos = s.pos as usize;
    let len = s.len as usize;
    if pos + 12 > len || at(buf, pos) & 0xc0 != 0xc0 {
        return 1;
    }
    let owner = (usize::from(at(buf, pos) & 0x3f) << 8) | usize::from(at(buf, pos + 1));
    let ty = be16(buf, pos + 2);
    let ttl = u32::from_be_bytes([
        at(buf, pos + 6),
        at(buf, pos + 7),
        at(buf, pos + 8),
        at(buf, pos + 9),
    ]);
    let rdlen = usize::from(be16(buf, pos + 10));
    let data = pos + 12;
    if data + rdlen > len {
        return 1;
    }
    s.pos = (data + rdlen) as u64;
    if owner as u64 != s.target {
        return 0;
    }
    if ty == TYPE_CNAME {
        // The chain goes on at the CNAME's target: its name here, or where it points.
        s.target = if at(buf, data) & 0xc0 == 0xc0 {
            ((u64::from(at(buf, data) & 0x3f)) << 8) | u64::from(at(buf, data + 1))
        } else {
            data as u64
        };
        return 0;
    }
    let mut addr = [0u8; 16];
    if ty == TYPE_A && rdlen == 4 {
        addr[10] = 0xff;
        addr[11] = 0xff;
        addr[12] = at(buf, data);
        addr[13] = at(buf, data + 1);
        addr[14] = at(buf, data + 2);
        addr[15] = at(buf, data + 3);
    } else if ty == TYPE_AAAA && rdlen == 16 {
        for k in 0..16 {
            addr[k] = at(buf, data + k);
        }
    } else {
        return 0;
    }
    if s.found < DNS_EVENT_ADDRS as u64 {
        let slot = s.found as usize & (DNS_EVENT_ADDRS - 1);
        s.addrs[slot] = addr;
        s.ttls[slot] = ttl;
        s.found += 1;
    }
    if s.rule != 0 {
        let max = if s.profile.dns_max_ttl == 0 {
            u32::MAX
        } else {
            s.profile.dns_max_ttl
        };
        let ttl = ttl.clamp(DNS_MIN_TTL_SECS, max.max(DNS_MIN_TTL_SECS));
        let expires = s.now + u64::from(ttl) * 1_000_000_000;
        if !learn(s, addr, expires) {
            s.capped += 1;
        }
    }
    0
}

/// Allows `addr` for the container until `expires_ns` under the name rule in `s`;
/// false when the name's cap of learned addresses is reached (the caller reports it).
#[inline(always)]
fn learn(s: &DnsScratch, addr: [u8; 16], expires_ns: u64) -> bool {
    let key = LearnedKey {
        cgroup_id: s.cgroup,
        addr,
    };
    if let Some(existing) = LEARNED.get_ptr_mut(&key) {
        // SAFETY: the pointer comes from the map; the fields are plain data.
        unsafe {
            if (*existing).expires_ns < expires_ns {
                (*existing).expires_ns = expires_ns;
            }
            (*existing).wildcard = s.wildcard;
            (*existing).hash = s.rule_hash;
        }
        return true;
    }
    let counter = NameCountKey {
        cgroup_id: s.cgroup,
        wildcard: s.wildcard,
        _pad: 0,
        hash: s.rule_hash,
    };
    // SAFETY: read of a plain counter.
    let used = unsafe { NAME_COUNTS.get(&counter) }.copied().unwrap_or(0);
    if used >= s.profile.dns_cap {
        count(counters::DNS_CAPPED);
        return false;
    }
    let value = LearnedValue {
        expires_ns,
        wildcard: s.wildcard,
        _pad: 0,
        hash: s.rule_hash,
    };
    if LEARNED.insert(&key, &value, 0).is_err() {
        return false;
    }
    let _ = NAME_COUNTS.insert(&counter, &(used + 1), 0);
    count(counters::DNS_LEARNED);
    true
}

#[allow(dead_code)]
const _: () = assert!(DNS_BUF_BYTES > DNS_MASK + 32);
