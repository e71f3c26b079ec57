//! The path matcher: a path against a pattern set (the escape set's, the read-only
//! opens', or a profile's read-only and writable paths), word by word, in a bounded
//! `bpf_loop`; and the check for `.`, `..` and `//` components the kernel cannot place.
//!
//! Minimum kernel: 5.17 (`bpf_loop`); its path reads need 5.5
//! (`bpf_probe_read_user_str`).

use super::*;

/// Looks at byte `i`: a `/` followed by `/`, `./`, `../` or `.`/`..` at the end makes
/// the path one the kernel does not place.
pub(super) extern "C" fn dot_step(i: u64, state: *mut c_void) -> i64 {
    // SAFETY: `state` is the `Matcher` passed to bpf_loop.
    let m = unsafe { &mut *state.cast::<Matcher>() };
    let i = i as usize;
    if i >= m.len {
        return 1;
    }
    let at = |j: usize| -> u8 {
        if j < m.len {
            // SAFETY: masked into the scratch buffer.
            unsafe { *m.buf.add(j & PATH_MASK) }
        } else {
            0
        }
    };
    if at(i) != b'/' {
        return 0;
    }
    let (a, b, c) = (at(i + 1), at(i + 2), at(i + 3));
    let end = |x: u8| x == b'/' || x == 0;
    if a == b'/' || (a == b'.' && (end(b) || (b == b'.' && end(c)))) {
        m.matched = 1;
        return 1;
    }
    0
}

/// State of the pattern matcher, shared with its `bpf_loop` callback.
#[repr(C)]
pub(super) struct Matcher {
    pub(super) buf: *const u8,
    pub(super) len: usize,
    pub(super) access: u8,
    /// The `applies` bits of the first pattern that matched (0: none).
    pub(super) matched: u8,
    pub(super) set: u32,
}

/// The `applies` bits of the escape pattern the call's path matches, 0 for none.
/// `access` is what the call asks for ([`open_access`] for opens, CONNECT for
/// connects). A path that cannot be read counts as a plain match: an unknown path is
/// never treated as harmless.
#[inline(always)]
pub(super) fn path_matches(rule: &SyscallRule, args: &[u64; 6], access: u8) -> u8 {
    const UNKNOWN: u8 = pattern_applies::OPEN;
    let Some(buf) = PATH_SCRATCH.get_ptr_mut(0) else {
        return UNKNOWN;
    };
    let ptr = pick(args, rule.path_arg);
    let src = if rule.sockaddr != 0 {
        // SAFETY: reading sa_family from the caller's sockaddr.
        let family = unsafe { bpf_probe_read_user(ptr as *const u16) }.unwrap_or(0);
        if family != AF_UNIX {
            // Network connects are judged by the egress hooks.
            return 0;
        }
        ptr + 2
    } else {
        ptr
    };
    // Most opens only read, and only a few read patterns exist (under /proc and /dev):
    // a path whose second byte none of them has is not read in full.
    if access == pattern_applies::OPEN && !may_match_read(src) {
        return 0;
    }
    // SAFETY: `buf` is this CPU's scratch value, SYSCALL_PATH_BYTES long.
    let read = unsafe { bpf_probe_read_user_str_bytes(src as *const u8, &mut *buf) };
    let len = match read {
        // An abstract socket's name (`sun_path` starts with a NUL: a shim's socket,
        // CVE-2020-15257), read after the NUL and written `@name`. The kernel matches
        // an abstract name exactly, so the name written is the socket reached.
        Ok([]) if rule.sockaddr != 0 => {
            // SAFETY: as above; the name goes after the `@`.
            let (at, rest) = unsafe { (*buf).split_at_mut(1) };
            at[0] = b'@';
            // SAFETY: reading the caller's sockaddr past the NUL.
            let read = match unsafe { bpf_probe_read_user_str_bytes((src + 1) as *const u8, rest) }
            {
                Ok(name) => name.len() + 1,
                Err(_) => return 0,
            };
            // The name ends where `addrlen` (the argument after the sockaddr) says, not
            // at a NUL: the family's two bytes, the NUL, then the name.
            let addrlen = pick(args, rule.path_arg + 1) as usize;
            let len = if addrlen >= 3 && addrlen - 2 < read {
                addrlen - 2
            } else {
                read
            };
            // SAFETY: masked into the scratch buffer.
            unsafe { (*buf)[len & PATH_MASK] = 0 };
            len
        }
        Ok(bytes) => bytes.len(),
        Err(_) => {
            // SAFETY: as above.
            unsafe { (*buf)[0] = 0 };
            return UNKNOWN;
        }
    };
    // Most opens only read: they walk only the patterns a read can match.
    let set = if access == pattern_applies::OPEN {
        READ_PATTERN_SET
    } else {
        0
    };
    match_set(set, buf.cast::<u8>().cast_const(), len, access)
}

/// Whether the path at `ptr` may match a read pattern, from its first two bytes and
/// `READ_LEADS`. Bytes that cannot be read say yes: the full read then decides (and an
/// unreadable path is never harmless).
#[inline(always)]
pub(super) fn may_match_read(ptr: u64) -> bool {
    // SAFETY: a probe read of the caller's memory.
    let Ok(lead) = (unsafe { bpf_probe_read_user(ptr as *const [u8; 2]) }) else {
        return true;
    };
    let bits = crate::maps::READ_LEADS.get(0).copied().unwrap_or(0);
    bits == 0 || bits & (1u64 << (lead[1] & 63)) != 0
}

/// Matches the path in `buf` (`len` bytes) against pattern set `set`; returns the
/// `applies` bits of the first pattern that applies to `access` and matches, or 0.
#[inline(always)]
pub(super) fn match_set(set: u32, buf: *const u8, len: usize, access: u8) -> u8 {
    let mut m = Matcher {
        buf,
        len,
        access,
        matched: 0,
        set,
    };
    // SAFETY: the callback only uses the pointer as the `Matcher` it is.
    unsafe {
        bpf_loop(
            PATH_PATTERNS_MAX,
            pattern_step as *mut c_void,
            (&raw mut m).cast(),
            0,
        )
    };
    m.matched
}

/// Tries pattern `i` of the set; stops at the first match or the first missing index.
pub(super) extern "C" fn pattern_step(i: u64, state: *mut c_void) -> i64 {
    // SAFETY: `state` is the `Matcher` passed to bpf_loop.
    let m = unsafe { &mut *state.cast::<Matcher>() };
    let p = if m.set == 0 {
        PATH_PATTERNS.get(i as u32)
    } else if m.set == READ_PATTERN_SET {
        crate::maps::READ_PATTERNS.get(i as u32)
    } else {
        let key = PatternKey {
            set: m.set,
            index: i as u32,
        };
        // SAFETY: values are written whole by the agent and only read here.
        unsafe { PROFILE_PATTERNS.get(&key) }
    };
    let Some(p) = p else {
        return 1;
    };
    if p.applies == 0 {
        return 1;
    }
    if p.applies & m.access == 0 {
        return 0;
    }
    let (pl, sl) = (usize::from(p.prefix_len), usize::from(p.suffix_len));
    if pl > m.len || sl > m.len {
        return 0;
    }
    // Word by word, the bytes past the prefix masked out: no branch per byte.
    // SAFETY: both are map values (8-byte aligned), the scratch buffer holds at least
    // PATTERN_PREFIX_BYTES and `PathPattern` is 8-byte aligned.
    let (path, prefix) = (m.buf.cast::<u64>(), p.prefix.as_ptr().cast::<u64>());
    let mut diff = 0u64;
    for k in 0..PATTERN_PREFIX_BYTES / 8 {
        // SAFETY: as above.
        diff |= unsafe { *path.add(k) ^ *prefix.add(k) } & p.prefix_mask[k];
    }
    if diff != 0 {
        return 0;
    }
    // A directory prefix ends at a path component boundary.
    // SAFETY: as above.
    if p.dir != 0 && pl < m.len && unsafe { *m.buf.add(pl & PATH_MASK) } != b'/' {
        return 0;
    }
    let start = m.len - sl;
    for j in 0..PATTERN_SUFFIX_BYTES {
        // SAFETY: masked into the scratch buffer.
        if j < sl && unsafe { *m.buf.add((start + j) & PATH_MASK) } != p.suffix[j] {
            return 0;
        }
    }
    m.matched = p.applies;
    1
}

pub(super) const AF_UNIX: u16 = 1;

/// Keeps indexes inside the SYSCALL_PATH_BYTES scratch buffer.
pub(super) const PATH_MASK: usize = SYSCALL_PATH_BYTES - 1;
