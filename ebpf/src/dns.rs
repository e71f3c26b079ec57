//! The cgroup_skb ingress hook: DNS answers a monitored container receives.
//!
//! When a container resolves a name its profile allows, the answer's addresses become
//! allowed for that container only, before the answer reaches the resolver: the kernel
//! parses the answer here and writes the addresses to `LEARNED`, so the connect that
//! follows the answer finds them (no window in which an allowed flow fails, and no DNS
//! proxy that could fail with the agent). Every packet passes: this hook never drops.
//!
//! Names are matched by hash: the FNV-1a hash of each lowercase label, folded from the
//! first label (exact rules) or from a later one (wildcard rules, `*.example.com`). The
//! agent computes the same hashes for the names in a profile.

use core::ffi::c_void;

use aya_ebpf::{
    bindings::__sk_buff,
    helpers::generated::{bpf_ktime_get_ns, bpf_loop, bpf_skb_load_bytes},
    programs::SkBuffContext,
};
use cgwarden_common::{
    DNS_BUF_BYTES, DNS_EVENT_ADDRS, DNS_MASK, DNS_MAX_ANSWERS, DNS_MAX_LABELS, DNS_MIN_TTL_SECS,
    DnsEvent, DnsScratch, FNV_OFFSET, FNV_PRIME, LearnedKey, LearnedValue, NameCountKey, NameKey,
    config_flags, counters, kind, profile_flags,
};

use crate::{
    event,
    maps::{CONFIG, DNS_BUF, DNS_SCRATCH, EVENTS, LEARNED, NAME_COUNTS, NAMES, count},
    packet::{ETH_P_IP, ETH_P_IPV6, PASS, eth_proto, full_socket},
    profile::{self, Match},
};

const IPPROTO_UDP: u8 = 17;
const DNS_PORT: u16 = 53;
const TYPE_A: u16 = 1;
const TYPE_AAAA: u16 = 28;

/// Looks at one incoming packet; always lets it pass. Returns at once unless some
/// profile reads DNS and the receiving socket is a UDP socket.
#[inline(always)]
pub fn ingress(ctx: &SkBuffContext) -> i32 {
    let skb: *mut __sk_buff = ctx.skb.skb;
    if CONFIG
        .get(0)
        .is_none_or(|c| c.flags & config_flags::DNS == 0)
    {
        return PASS;
    }
    let full = full_socket(skb);
    // SAFETY: `full` is checked for null before the read.
    let udp = !full.is_null() && unsafe { (*full).protocol } == u32::from(IPPROTO_UDP);
    if !udp {
        return PASS;
    }
    let Some(m) = profile::of_skb(skb) else {
        return PASS;
    };
    if m.profile.flags & (profile_flags::LEARN_DNS | profile_flags::REPORT_DNS) != 0 {
        let _ = answer(ctx, &m);
    }
    PASS
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

/// What the `bpf_loop` callbacks get: pointers to the message and to the parser state,
/// both per-CPU map values (the callback context must live on the stack, the state is
/// too large for it).
#[repr(C)]
struct Cursor {
    buf: *const u8,
    s: *mut DnsScratch,
}

fn answer(ctx: &SkBuffContext, m: &Match) -> Option<()> {
    let skb = ctx.skb.skb;
    let eth_proto = eth_proto(skb);
    let l4 = if eth_proto == ETH_P_IP {
        let ip = ctx.load::<[u8; 20]>(0).ok()?;
        if ip[9] != IPPROTO_UDP {
            return None;
        }
        usize::from(ip[0] & 0x0f) * 4
    } else if eth_proto == ETH_P_IPV6 {
        let ip = ctx.load::<[u8; 8]>(0).ok()?;
        if ip[6] != IPPROTO_UDP {
            return None;
        }
        40
    } else {
        return None;
    };
    let udp = ctx.load::<[u8; 8]>(l4).ok()?;
    if u16::from_be_bytes([udp[0], udp[1]]) != DNS_PORT {
        return None;
    }
    let udp_len = usize::from(u16::from_be_bytes([udp[4], udp[5]]));
    if udp_len < 8 + 12 {
        return None;
    }
    let mut len = udp_len - 8;
    if len > DNS_MASK {
        len = DNS_MASK;
    }
    let buf = DNS_BUF.get_ptr_mut(0)?.cast::<u8>();
    let s = DNS_SCRATCH.get_ptr_mut(0)?;
    let copy = (len as u32) & (DNS_MASK as u32);
    if copy == 0 {
        return None;
    }
    // SAFETY: `buf` holds DNS_BUF_BYTES > DNS_MASK bytes and `copy` <= DNS_MASK.
    let rc = unsafe { bpf_skb_load_bytes(skb.cast(), (l4 + 8) as u32, buf.cast(), copy) };
    if rc != 0 {
        return None;
    }
    let buf = buf.cast_const();

    // Header: a response without error, one question.
    let flags = be16(buf, 2);
    if flags & 0x8000 == 0 || flags & 0x000f != 0 || be16(buf, 4) != 1 {
        return None;
    }
    // SAFETY: `s` is this CPU's scratch value; the program runs to completion on it.
    unsafe {
        (*s).len = u64::from(copy);
        (*s).remaining = 0;
        (*s).nlabels = 0;
        (*s).hash = FNV_OFFSET;
        (*s).end = 0;
        (*s).failed = 0;
        (*s).answers = u64::from(be16(buf, 6));
        (*s).found = 0;
        (*s).capped = 0;
        (*s).now = bpf_ktime_get_ns();
        (*s).rule = 0;
        (*s).profile = m.profile;
        (*s).cgroup = m.cgroup;
    }
    let mut cursor = Cursor { buf, s };
    let state = (&raw mut cursor).cast::<c_void>();
    // SAFETY: the callbacks only use `state` as the `Cursor` it is.
    unsafe { bpf_loop(255, qname_step as *mut c_void, state, 0) };
    // SAFETY: as above.
    let (failed, end, nlabels) = unsafe { ((*s).failed, (*s).end as usize, (*s).nlabels) };
    if failed != 0 || end == 0 || nlabels == 0 {
        return None;
    }

    if m.profile.flags & profile_flags::LEARN_DNS != 0 {
        // SAFETY: as above.
        unsafe { bpf_loop(DNS_MAX_LABELS as u32, rule_step as *mut c_void, state, 0) };
    }
    // SAFETY: as above.
    unsafe {
        (*s).pos = (end + 4) as u64;
        bpf_loop(DNS_MAX_ANSWERS as u32, answer_step as *mut c_void, state, 0);
    }

    // SAFETY: as above.
    let (found, rule, capped) = unsafe { ((*s).found, (*s).rule, (*s).capped) };
    if m.profile.flags & profile_flags::REPORT_DNS == 0 && capped == 0 {
        return Some(());
    }
    let Some(mut slot) = EVENTS.reserve::<DnsEvent>(0) else {
        count(counters::RINGBUF_DROPS);
        return Some(());
    };
    let ev = slot.as_mut_ptr();
    let qlen = end.saturating_sub(12) & 0xff;
    // SAFETY: `ev` points to the reserved event; every field is written before submit.
    unsafe {
        (*ev).header = event::header(kind::DNS, m.profile.id, m.cgroup);
        (*ev).learned_for = m.cgroup;
        (*ev).addrs = (*s).addrs;
        (*ev).ttls = (*s).ttls;
        (*ev).count = found as u32;
        (*ev).learned = rule;
        (*ev).capped = capped as u32;
        (*ev).qname_len = qlen as u32;
        // One helper call instead of a byte loop (which the verifier would walk 256
        // times). The length is written so the verifier sees it in 1..=256; `qlen` is
        // at least 1 because the name ended past offset 12.
        if bpf_skb_load_bytes(
            skb.cast(),
            (l4 + 8 + 12) as u32,
            (&raw mut (*ev).qname).cast(),
            ((qlen as u32).wrapping_sub(1) & 0xff) + 1,
        ) != 0
        {
            (*ev).qname_len = 0;
        }
    }
    slot.submit(crate::event::wakeup::<DnsEvent>());
    Some(())
}

/// One byte of the question name: hashes labels, records each label's hash.
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
        if c > 63 {
            s.failed = 1;
            return 1;
        }
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
        return 1;
    }
    0
}

/// One answer record: reads an A or AAAA record and learns it. Owner names must be
/// compression pointers (as every resolver writes them); parsing stops at anything else,
/// which can only mean learning less.
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
        let ttl = if ttl < DNS_MIN_TTL_SECS {
            DNS_MIN_TTL_SECS
        } else {
            ttl
        };
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
