//! Read-only paths of the hardened runtime profile (`runtime.read_only`, with
//! `runtime.writable` exceptions): their schema, the syscalls that write under a path,
//! and their compilation to the kernel's path patterns and syscall rules.
//!
//! A write is judged by the longest listed path that contains it: `read_only: [/]` with
//! `writable: [/tmp]` reports a write to `/etc/x` and not one to `/tmp/x`. The kernel
//! judges absolute paths as written; a relative path, or one with `.`, `..` or `//`
//! components, is resolved by the agent (from the process's root, working directory or
//! directory fd) and judged the same way; a path that cannot be resolved any more is
//! reported as an unknown location, never treated as harmless. A write the kernel
//! refuses with EROFS is always reported, whatever path reached it.

use std::{fmt, path::Path};

use cgwarden_common::{
    NO_ARG, PATH_PATTERNS_MAX, PATTERN_PREFIX_BYTES, PathPattern, SyscallKey, SyscallRule,
    pattern_applies,
};
use serde::Deserialize;
use serde_saphyr::Spanned;
use syscalls::Sysno;

use crate::yaml::{Position, YamlError};

/// An absolute, normalised path in a profile (`/`, `/etc`, `/var/lib/app`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(try_from = "String")]
pub struct ProfilePath(String);

impl ProfilePath {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `path` (absolute, normalised) is this path or below it.
    pub fn contains(&self, path: &str) -> bool {
        self.0 == "/"
            || path == self.0
            || path
                .strip_prefix(&self.0)
                .is_some_and(|rest| rest.starts_with('/'))
    }
}

impl TryFrom<String> for ProfilePath {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        if !text.starts_with('/') {
            return Err(format!("path `{text}` must be absolute (start with `/`)"));
        }
        let trimmed = if text.len() > 1 {
            text.trim_end_matches('/')
        } else {
            &text
        };
        if trimmed
            .split('/')
            .skip(1)
            .any(|c| c.is_empty() || c == "." || c == "..")
            && trimmed != "/"
        {
            return Err(format!(
                "path `{text}` must be normalised (no `.`, `..` or empty components)"
            ));
        }
        if trimmed.len() > PATTERN_PREFIX_BYTES {
            return Err(format!(
                "path `{text}` is longer than {PATTERN_PREFIX_BYTES} bytes, the most the kernel matches"
            ));
        }
        Ok(Self(trimmed.to_owned()))
    }
}

impl fmt::Display for ProfilePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Checks `read_only`/`writable` together: the same path cannot be both, and the
/// kernel holds at most [`PATH_PATTERNS_MAX`] of them per profile. An error is placed at
/// the path it is about (the writable one of a pair, the first that does not fit).
pub fn validate(
    read_only: &[Spanned<ProfilePath>],
    writable: &[Spanned<ProfilePath>],
) -> Result<(), YamlError> {
    let at = |path: &Spanned<ProfilePath>, message: String| YamlError {
        at: Position::of(path),
        message,
    };
    if let Some(both) = writable
        .iter()
        .find(|w| read_only.iter().any(|r| r.value == w.value))
    {
        return Err(at(
            both,
            format!(
                "`{}` is listed both as read_only and as writable",
                both.value
            ),
        ));
    }
    if let (Some(first), true) = (writable.first(), read_only.is_empty()) {
        return Err(at(
            first,
            "`writable` lists exceptions to `read_only`, which is empty".to_owned(),
        ));
    }
    let total = read_only.len() + writable.len();
    if let Some(beyond) = read_only
        .iter()
        .chain(writable)
        .nth(PATH_PATTERNS_MAX as usize)
    {
        return Err(at(
            beyond,
            format!("read_only and writable list {total} paths; at most {PATH_PATTERNS_MAX} fit"),
        ));
    }
    Ok(())
}

/// Whether a write to `path` (absolute, normalised) is under a read-only path: the
/// longest listed path containing it decides. The kernel's matcher computes the same
/// from the patterns of [`compile_paths`].
pub fn is_read_only(read_only: &[ProfilePath], writable: &[ProfilePath], path: &str) -> bool {
    let longest = |list: &[ProfilePath]| {
        list.iter()
            .filter(|p| p.contains(path))
            .map(|p| p.0.len())
            .max()
    };
    match (longest(read_only), longest(writable)) {
        (Some(ro), Some(w)) => ro > w,
        (Some(_), None) => true,
        _ => false,
    }
}

/// The kernel patterns of a profile's paths: longest first, so the first match is the
/// longest listed path containing the written one.
pub fn compile_paths(read_only: &[ProfilePath], writable: &[ProfilePath]) -> Vec<PathPattern> {
    let mut all: Vec<(&ProfilePath, u8)> = read_only
        .iter()
        .map(|p| (p, pattern_applies::READ_ONLY))
        .chain(writable.iter().map(|p| (p, pattern_applies::WRITABLE)))
        .collect();
    all.sort_by_key(|(p, _)| std::cmp::Reverse(p.0.len()));
    all.into_iter()
        .map(|(path, applies)| {
            let bytes = path.0.as_bytes();
            let mut p = PathPattern {
                applies,
                prefix_len: bytes.len() as u8,
                // `/` is a prefix of every absolute path; other paths end at a `/`.
                dir: u8::from(path.0 != "/"),
                ..Default::default()
            };
            p.prefix[..bytes.len()].copy_from_slice(bytes);
            p.prefix_mask = prefix_mask(bytes.len());
            p
        })
        .collect()
}

/// The word masks of a prefix of `len` bytes (see [`PathPattern::prefix_mask`]): on
/// this little-endian target, the low bytes of a word come first.
pub fn prefix_mask(len: usize) -> [u64; PATTERN_PREFIX_BYTES / 8] {
    let mut masks = [0u64; PATTERN_PREFIX_BYTES / 8];
    for (k, mask) in masks.iter_mut().enumerate() {
        let bytes = len.saturating_sub(8 * k).min(8);
        *mask = if bytes == 8 {
            u64::MAX
        } else {
            (1u64 << (8 * bytes)) - 1
        };
    }
    masks
}

/// A syscall that writes under a path: which arguments are the paths written (rename:
/// both), which is the directory fd a relative path is resolved against, and, for
/// opens, where the open flags are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteSyscall {
    pub name: &'static str,
    pub path: u8,
    pub path2: Option<u8>,
    /// The directory fd of `path` (and of `path2`: `dirfd2`), `None`: the working
    /// directory.
    pub dirfd: Option<u8>,
    pub dirfd2: Option<u8>,
    /// Open flags: (argument, behind a pointer). Opens count only with write flags.
    pub open_flags: Option<(u8, bool)>,
}

const fn w(name: &'static str, path: u8, dirfd: Option<u8>) -> WriteSyscall {
    WriteSyscall {
        name,
        path,
        path2: None,
        dirfd,
        dirfd2: None,
        open_flags: None,
    }
}

/// Every syscall judged against read-only paths (x86_64 names; those missing on an
/// architecture are skipped). Metadata changes (chmod, chown, xattrs, times) are not
/// among them.
pub const WRITE_SYSCALLS: &[WriteSyscall] = &[
    WriteSyscall {
        open_flags: Some((1, false)),
        ..w("open", 0, None)
    },
    WriteSyscall {
        open_flags: Some((2, false)),
        ..w("openat", 1, Some(0))
    },
    WriteSyscall {
        open_flags: Some((2, true)),
        ..w("openat2", 1, Some(0))
    },
    w("creat", 0, None),
    w("truncate", 0, None),
    w("mkdir", 0, None),
    w("mkdirat", 1, Some(0)),
    w("mknod", 0, None),
    w("mknodat", 1, Some(0)),
    w("rmdir", 0, None),
    w("unlink", 0, None),
    w("unlinkat", 1, Some(0)),
    WriteSyscall {
        path2: Some(1),
        ..w("rename", 0, None)
    },
    WriteSyscall {
        path2: Some(3),
        dirfd2: Some(2),
        ..w("renameat", 1, Some(0))
    },
    WriteSyscall {
        path2: Some(3),
        dirfd2: Some(2),
        ..w("renameat2", 1, Some(0))
    },
    w("link", 1, None),
    w("linkat", 3, Some(2)),
    w("symlink", 1, None),
    w("symlinkat", 2, Some(1)),
];

/// The write syscall `nr`, if it is one.
pub fn write_syscall(nr: u32) -> Option<&'static WriteSyscall> {
    let sysno = Sysno::new(nr as usize)?;
    WRITE_SYSCALLS.iter().find(|s| s.name == sysno.name())
}

/// Adds the read-only judgement to a profile's compiled syscall rules: a write syscall
/// already watched keeps its rule and gains the judgement; the others get a rule with
/// no action of their own.
pub fn add_write_rules(profile: u32, rules: &mut Vec<(SyscallKey, SyscallRule, Sysno)>) {
    for s in WRITE_SYSCALLS {
        let Some(sysno) = crate::policy::syscalls::lookup(s.name) else {
            continue;
        };
        let nr = sysno.id() as u32;
        let i = match rules.iter().position(|(k, _, _)| k.nr == nr) {
            Some(i) => i,
            None => {
                rules.push((
                    SyscallKey { profile, nr },
                    SyscallRule {
                        action: 0,
                        path_arg: s.path,
                        flags_arg: NO_ARG,
                        flags_indirect: 0,
                        rule: 0,
                        flags_mask: 0,
                        path_filter: 0,
                        sockaddr: 0,
                        open_flags_arg: NO_ARG,
                        open_flags_indirect: 0,
                        read_only: 0,
                        write_path_arg: NO_ARG,
                        write_path_arg2: NO_ARG,
                        str_arg: NO_ARG,
                        dirty_pipe: 0,
                        fd_ino_arg: NO_ARG,
                        _pad: [0; 6],
                    },
                    sysno,
                ));
                rules.len() - 1
            }
        };
        let rule = &mut rules[i].1;
        rule.read_only = 1;
        rule.write_path_arg = s.path;
        rule.write_path_arg2 = s.path2.unwrap_or(NO_ARG);
        if let Some((arg, indirect)) = s.open_flags {
            rule.open_flags_arg = arg;
            rule.open_flags_indirect = u8::from(indirect);
        }
    }
    rules.sort_by_key(|(k, _, _)| k.nr);
}

/// Lexically normalises an absolute path (`.`, `..`, `//`), as the kernel would walk
/// it if no component were a symlink.
pub fn normalise(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    format!("/{}", parts.join("/"))
}

/// Resolves a written path as the process sees it: relative paths against its working
/// directory or the directory fd (read from `proc`, e.g. `/proc`, while the process
/// lives), relative to the process's root. `None` when the process is gone.
pub fn resolve(proc: &Path, pid: u32, written: &str, dirfd: Option<i32>) -> Option<String> {
    if written.starts_with('/') {
        return Some(normalise(written));
    }
    let base = match dirfd {
        Some(fd) if fd >= 0 => format!("fd/{fd}"),
        _ => "cwd".to_owned(),
    };
    let dir = std::fs::read_link(proc.join(pid.to_string()).join(base)).ok()?;
    let root = std::fs::read_link(proc.join(pid.to_string()).join("root")).ok()?;
    // Both links read as paths from the agent's root: strip the process's root.
    let dir = dir.to_string_lossy();
    let root = root.to_string_lossy();
    let inside = if root == "/" {
        dir.to_string()
    } else {
        let rest = dir.strip_prefix(root.as_ref())?;
        if !rest.is_empty() && !rest.starts_with('/') {
            return None;
        }
        format!("/{rest}")
    };
    Some(normalise(&format!("{inside}/{written}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::parse_str;

    fn paths(list: &[&str]) -> Vec<ProfilePath> {
        list.iter()
            .map(|p| ProfilePath::try_from((*p).to_owned()).unwrap())
            .collect()
    }

    /// What the kernel decides from the compiled patterns: the first pattern that
    /// matches, compared word by word under the masks, as `ebpf/src/syscalls.rs` does
    /// (the scratch buffer past the path holds stale bytes).
    fn kernel(patterns: &[PathPattern], path: &str) -> bool {
        let b = path.as_bytes();
        let mut buf = [0xa5u8; 256];
        buf[..b.len()].copy_from_slice(b);
        buf[b.len()] = 0;
        let word = |bytes: &[u8], k: usize| {
            u64::from_le_bytes(bytes[8 * k..8 * k + 8].try_into().unwrap())
        };
        patterns
            .iter()
            .find(|p| {
                let pl = usize::from(p.prefix_len);
                let diff = (0..PATTERN_PREFIX_BYTES / 8).fold(0, |acc, k| {
                    acc | ((word(&buf, k) ^ word(&p.prefix, k)) & p.prefix_mask[k])
                });
                b.len() >= pl && diff == 0 && (p.dir == 0 || b.len() == pl || b[pl] == b'/')
            })
            .is_some_and(|p| p.applies & pattern_applies::READ_ONLY != 0)
    }

    #[test]
    fn prefix_masks_cover_exactly_the_prefix() {
        assert_eq!(prefix_mask(0), [0; 8]);
        assert_eq!(prefix_mask(3)[0], 0xff_ffff);
        assert_eq!(prefix_mask(8)[..2], [u64::MAX, 0]);
        assert_eq!(prefix_mask(64), [u64::MAX; 8]);
    }

    #[test]
    fn the_longest_listed_path_decides_in_the_kernel_and_here() {
        let ro = paths(&["/", "/etc", "/tmp/keep"]);
        let rw = paths(&["/tmp", "/run", "/etc/app/"]);
        let patterns = compile_paths(&ro, &rw);
        for (path, want) in [
            ("/etc/passwd", true),
            ("/etc", true),
            ("/etcd/x", true),
            ("/tmp/x", false),
            ("/tmp", false),
            ("/tmpx", true),
            ("/tmp/keep/x", true),
            ("/tmp/keeper", false),
            ("/etc/app/conf", false),
            ("/run/lock", false),
            ("/usr/bin/sh", true),
        ] {
            assert_eq!(is_read_only(&ro, &rw, path), want, "{path}");
            assert_eq!(kernel(&patterns, path), want, "kernel: {path}");
        }
        // Without `/`, only what is listed is read-only.
        let ro = paths(&["/etc"]);
        assert!(!is_read_only(&ro, &[], "/tmp/x"));
        assert!(!kernel(&compile_paths(&ro, &[]), "/etcd"));
    }

    #[test]
    fn profile_paths_are_validated_at_their_line() {
        let parse = |body: &str| {
            parse_str(
                &format!("name: t\nmode: enforce\nruntime:\n{body}"),
                Path::new("t.yaml"),
            )
        };
        let p = parse("  read_only: [/, /etc/]\n  writable: [/tmp]\n").unwrap();
        assert_eq!(p.runtime.read_only, paths(&["/", "/etc"]));
        for (body, needle) in [
            ("  read_only: [etc]\n", "absolute"),
            ("  read_only: [/etc/../x]\n", "normalised"),
            ("  read_only: [/etc]\n  writable: [/etc]\n", "both"),
            ("  writable: [/tmp]\n", "empty"),
        ] {
            let e = parse(body).unwrap_err();
            assert!(e.message.contains(needle), "{body}: {e}");
            assert!(e.line >= 3, "{body}: {e}");
        }
        let long = format!("  read_only: [/{}]\n", "x".repeat(80));
        assert!(parse(&long).unwrap_err().message.contains("longer"));
    }

    #[test]
    fn write_rules_join_the_escape_rules() {
        let mut rules = crate::policy::compile::compile_syscalls(
            5,
            &[crate::policy::SyscallRule {
                names: vec![],
                set: Some(crate::policy::SyscallSet::Escape),
                except: vec![],
                action: crate::policy::SyscallAction::Kill,
            }],
        );
        let before = rules.len();
        add_write_rules(5, &mut rules);
        let find = |name: &str| {
            let nr = crate::policy::syscalls::lookup(name).unwrap().id() as u32;
            rules.iter().find(|(k, _, _)| k.nr == nr).unwrap().1
        };
        // openat keeps its escape rule (kill on escape paths) and gains the judgement.
        let openat = find("openat");
        assert_eq!(openat.action, cgwarden_common::syscall_action::KILL);
        assert_eq!((openat.path_filter, openat.read_only), (1, 1));
        assert_eq!((openat.write_path_arg, openat.open_flags_arg), (1, 2));
        // renameat2 writes both paths; mkdir has no action of its own.
        let renameat2 = find("renameat2");
        assert_eq!(
            (renameat2.write_path_arg, renameat2.write_path_arg2),
            (1, 3)
        );
        assert_eq!(find("mkdir").action, 0);
        assert!(rules.len() > before);
        assert!(rules.iter().all(|(k, _, _)| k.profile == 5));
    }

    #[test]
    fn normalises_and_resolves_paths() {
        assert_eq!(normalise("/tmp/../etc//./passwd"), "/etc/passwd");
        assert_eq!(normalise("/.."), "/");
        let dir = tempfile::tempdir().unwrap();
        let proc = dir.path();
        std::fs::create_dir_all(proc.join("7/fd")).unwrap();
        std::os::unix::fs::symlink("/run/ctr/rootfs", proc.join("7/root")).unwrap();
        std::os::unix::fs::symlink("/run/ctr/rootfs/tmp", proc.join("7/cwd")).unwrap();
        std::os::unix::fs::symlink("/run/ctr/rootfs/etc", proc.join("7/fd/3")).unwrap();
        assert_eq!(resolve(proc, 7, "x", None).as_deref(), Some("/tmp/x"));
        assert_eq!(
            resolve(proc, 7, "../etc/x", None).as_deref(),
            Some("/etc/x")
        );
        assert_eq!(
            resolve(proc, 7, "passwd", Some(3)).as_deref(),
            Some("/etc/passwd")
        );
        assert_eq!(resolve(proc, 8, "x", None), None);
        assert_eq!(resolve(proc, 8, "/a/./b", None).as_deref(), Some("/a/b"));
    }
}
