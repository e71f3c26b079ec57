//! Linux capabilities by name: the sets a profile allows (`runtime.capabilities`) and
//! the names events show.

use std::fmt;

use serde::Deserialize;

/// Capability names in number order (`CAP_CHOWN` is 0).
pub const NAMES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// A set of capabilities, bit `n` = capability `n` (as the kernel's `kernel_cap_t`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(from = "Vec<CapEntry>")]
pub struct CapSet(pub u64);

/// One name of a written list (`NET_ADMIN`, `cap_chown`, `ALL`), checked on its own so
/// that a name that is no capability is reported where it is written.
#[derive(Deserialize)]
#[serde(try_from = "String")]
struct CapEntry(CapSet);

impl TryFrom<String> for CapEntry {
    type Error = String;
    fn try_from(name: String) -> Result<Self, String> {
        CapSet::from_names(&[name]).map(Self)
    }
}

impl From<Vec<CapEntry>> for CapSet {
    fn from(entries: Vec<CapEntry>) -> Self {
        Self(entries.iter().fold(0, |bits, e| bits | e.0.0))
    }
}

impl CapSet {
    /// The number of a capability named `NET_ADMIN`, `CAP_NET_ADMIN` or `net_admin`.
    pub fn number(name: &str) -> Option<u32> {
        let upper = name.trim().to_ascii_uppercase();
        let full = if upper.starts_with("CAP_") {
            upper
        } else {
            format!("CAP_{upper}")
        };
        NAMES.iter().position(|n| *n == full).map(|i| i as u32)
    }

    /// Parses capability names; `ALL` is every capability.
    pub fn from_names<S: AsRef<str>>(names: &[S]) -> Result<Self, String> {
        let mut bits = 0u64;
        for name in names {
            let name = name.as_ref();
            if name.eq_ignore_ascii_case("all") {
                bits |= Self::all().0;
                continue;
            }
            let n =
                Self::number(name).ok_or_else(|| format!("`{name}` is not a Linux capability"))?;
            bits |= 1 << n;
        }
        Ok(Self(bits))
    }

    /// Whether the set holds no capability.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The capabilities of `self` that `allowed` does not hold.
    pub fn beyond(self, allowed: Self) -> Self {
        Self(self.0 & !allowed.0)
    }

    /// Every capability with a name.
    pub fn all() -> Self {
        Self((1u64 << NAMES.len()) - 1)
    }

    /// The set as a profile lists it: `[]`, `[ALL]` when it holds every capability, or
    /// the names without `CAP_` (`[CHOWN, NET_BIND_SERVICE]`); numbers without a name
    /// are left out (a profile cannot name them).
    pub fn profile_list(self) -> String {
        if self == Self::all() {
            return "[ALL]".to_owned();
        }
        let names: Vec<&str> = (0..NAMES.len())
            .filter(|n| self.0 & (1 << n) != 0)
            .map(|n| NAMES[n].trim_start_matches("CAP_"))
            .collect();
        format!("[{}]", names.join(", "))
    }

    /// Names of the capabilities in the set (`cap_<n>` for numbers without a name).
    pub fn names(self) -> Vec<String> {
        (0..64)
            .filter(|n| self.0 & (1 << n) != 0)
            .map(|n| {
                NAMES
                    .get(n as usize)
                    .map_or_else(|| format!("cap_{n}"), |s| (*s).to_owned())
            })
            .collect()
    }
}

impl TryFrom<Vec<String>> for CapSet {
    type Error = String;
    fn try_from(names: Vec<String>) -> Result<Self, String> {
        Self::from_names(&names)
    }
}

/// Names the capabilities, or counts them when there are many (the full lists are in
/// the records' fields).
impl fmt::Display for CapSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = self.names();
        match names.len() {
            0 => f.write_str("no capabilities"),
            1..=12 => f.write_str(&names.join(" ")),
            n => write!(f, "{n} capabilities ({} ...)", names[..4].join(" ")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        let set = CapSet::from_names(&["NET_BIND_SERVICE", "cap_sys_admin"]).unwrap();
        assert_eq!(set.0, (1 << 10) | (1 << 21));
        assert_eq!(set.names(), vec!["CAP_NET_BIND_SERVICE", "CAP_SYS_ADMIN"]);
        assert_eq!(CapSet::from_names(&["ALL"]).unwrap().names().len(), 41);
        assert!(CapSet::from_names(&["FLY"]).is_err());
        assert_eq!(CapSet(1 << 63).names(), vec!["cap_63"]);
        let all = CapSet::from_names(&["ALL"]).unwrap();
        assert_eq!(all, CapSet::all());
        assert_eq!(all.beyond(set).0.count_ones(), 39);
        assert_eq!(all.profile_list(), "[ALL]");
        assert_eq!(CapSet::default().profile_list(), "[]");
        assert_eq!(
            CapSet(set.0 | 1 << 63).profile_list(),
            "[NET_BIND_SERVICE, SYS_ADMIN]"
        );
        let listed = format!("capabilities: {}", set.profile_list());
        let parsed: std::collections::HashMap<String, CapSet> =
            crate::yaml::from_str(&listed).unwrap();
        assert_eq!(parsed["capabilities"], set);
    }
}
