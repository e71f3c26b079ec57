//! The device allowlist of the hardened runtime profile (`runtime.devices`): its
//! schema, the OCI default set, and its compilation to `DEVICE_RULES` entries.
//!
//! ```yaml
//! devices:
//!   - default                                        # null, zero, full, random, urandom, tty, ptmx, pts/*
//!   - {type: c, major: 10, minor: 200, access: rw}   # /dev/net/tun
//!   - {type: c, major: 136, minor: "*", access: rw}  # `*`: every number
//! ```

use std::{collections::BTreeMap, fmt};

use cgwarden_common::{DEVICE_ANY, DeviceKey, device_access, device_type};
use serde::{
    Deserialize,
    de::{self, MapAccess, Visitor},
};
use serde_saphyr::Spanned;

use crate::yaml::{Position, YamlError};

/// One entry of `runtime.devices`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceRule {
    /// The OCI default set ([`DEFAULT_DEVICES`]).
    Default,
    Device(Device),
}

/// Devices by type and number, with the accesses allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Device {
    pub kind: DeviceType,
    /// `None`: every major (`*`).
    pub major: Option<u32>,
    /// `None`: every minor (`*`).
    pub minor: Option<u32>,
    /// [`device_access`] bits.
    pub access: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceType {
    Char,
    Block,
    /// Both (`a`, as OCI writes it).
    All,
}

/// The devices every OCI runtime gives a container (runc's default allowlist, less
/// mknod of arbitrary devices): null, zero, full, random, urandom, tty, ptmx, pts/*.
pub const DEFAULT_DEVICES: &[(&str, u32, Option<u32>)] = &[
    ("null", 1, Some(3)),
    ("zero", 1, Some(5)),
    ("full", 1, Some(7)),
    ("random", 1, Some(8)),
    ("urandom", 1, Some(9)),
    ("tty", 5, Some(0)),
    ("ptmx", 5, Some(2)),
    ("pts/*", 136, None),
];

/// The name of a well-known character device, for events.
pub fn char_device_name(major: u32, minor: u32) -> Option<&'static str> {
    Some(match (major, minor) {
        (1, 1) => "mem",
        (1, 2) => "kmem",
        (1, 3) => "null",
        (1, 4) => "port",
        (1, 5) => "zero",
        (1, 7) => "full",
        (1, 8) => "random",
        (1, 9) => "urandom",
        (1, 11) => "kmsg",
        (5, 0) => "tty",
        (5, 1) => "console",
        (5, 2) => "ptmx",
        (10, 200) => "net/tun",
        (10, 229) => "fuse",
        (10, 232) => "kvm",
        (136..=143, _) => "pts/*",
        (4, _) => "tty*",
        _ => return None,
    })
}

/// Access bits as written (`rwm`).
pub fn access_text(bits: u32) -> String {
    let mut s = String::new();
    for (bit, c) in [
        (device_access::READ, 'r'),
        (device_access::WRITE, 'w'),
        (device_access::MKNOD, 'm'),
    ] {
        if bits & bit != 0 {
            s.push(c);
        }
    }
    s
}

/// Compiles a device allowlist into `DEVICE_RULES` entries for profile `profile`. Rules
/// for the same device (or wildcard) are merged: their accesses add up.
pub fn compile_devices(profile: u32, rules: &[DeviceRule]) -> Vec<(DeviceKey, u32)> {
    let all = device_access::READ | device_access::WRITE | device_access::MKNOD;
    let mut out: BTreeMap<DeviceKey, u32> = BTreeMap::new();
    let expanded = rules.iter().flat_map(|r| match r {
        DeviceRule::Default => DEFAULT_DEVICES
            .iter()
            .map(|(_, major, minor)| Device {
                kind: DeviceType::Char,
                major: Some(*major),
                minor: *minor,
                access: all,
            })
            .collect::<Vec<_>>(),
        DeviceRule::Device(d) => vec![*d],
    });
    for d in expanded {
        let types: &[u32] = match d.kind {
            DeviceType::Char => &[device_type::CHAR],
            DeviceType::Block => &[device_type::BLOCK],
            DeviceType::All => &[device_type::CHAR, device_type::BLOCK],
        };
        for t in types {
            let key = DeviceKey {
                profile,
                dev_type: *t,
                major: d.major.unwrap_or(DEVICE_ANY),
                minor: d.minor.unwrap_or(DEVICE_ANY),
            };
            *out.entry(key).or_default() |= d.access;
        }
    }
    out.into_iter().collect()
}

/// The accesses `rules` allow on one device (`block`: a block device, else a character
/// device), as the kernel judges them.
pub fn allowed(rules: &[DeviceRule], block: bool, major: u32, minor: u32) -> u32 {
    let dev_type = if block {
        device_type::BLOCK
    } else {
        device_type::CHAR
    };
    lookup(&compile_devices(0, rules), dev_type, major, minor)
}

/// The accesses compiled entries allow on one device, the way the kernel looks them up
/// (exact, then the three wildcard forms).
fn lookup(entries: &[(DeviceKey, u32)], dev_type: u32, major: u32, minor: u32) -> u32 {
    entries
        .iter()
        .filter(|(k, _)| {
            k.dev_type == dev_type
                && (k.major == major || k.major == DEVICE_ANY)
                && (k.minor == minor || k.minor == DEVICE_ANY)
        })
        .fold(0, |acc, (_, a)| acc | a)
}

/// The accesses the compiled entries allow for one device, the way the kernel looks
/// them up (exact, then the three wildcard forms). For tests.
#[cfg(test)]
pub(crate) fn simulate(entries: &[(DeviceKey, u32)], dev_type: u32, major: u32, minor: u32) -> u32 {
    lookup(entries, dev_type, major, minor)
}

/// One entry of `runtime.devices` as written; [`RawDeviceRule::validate`] checks it
/// against the positions of its values.
#[derive(Debug)]
pub enum RawDeviceRule {
    Default,
    /// Boxed: four values with their positions.
    Device(Box<DeviceFields>),
}

impl<'de> Deserialize<'de> for RawDeviceRule {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> Visitor<'de> for Visit {
            type Value = RawDeviceRule;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("`default` or a device `{type: c, major: 1, minor: 3, access: rw}`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawDeviceRule, E> {
                if v == "default" {
                    Ok(RawDeviceRule::Default)
                } else {
                    Err(E::custom(format!(
                        "unknown device set `{v}`: write `default` or a device `{{type: c, major: 1, minor: 3, access: rw}}`"
                    )))
                }
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawDeviceRule, A::Error> {
                DeviceFields::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(|f| RawDeviceRule::Device(Box::new(f)))
            }
        }
        deserializer.deserialize_any(Visit)
    }
}

/// A device as written: every key is required (checked by [`RawDeviceRule::validate`],
/// so that a missing one is reported where the device starts).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceFields {
    #[serde(rename = "type", default)]
    kind: Option<Spanned<String>>,
    #[serde(default)]
    major: Option<Spanned<Number>>,
    #[serde(default)]
    minor: Option<Spanned<Number>>,
    #[serde(default)]
    access: Option<Spanned<String>>,
}

/// A device number as written: a number or `*`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Number {
    Value(u64),
    Text(String),
}

/// `message` at the value `at` is about.
fn invalid<T>(at: &Spanned<T>, message: String) -> YamlError {
    YamlError {
        at: Position::of(at),
        message,
    }
}

fn number(n: &Spanned<Number>, what: &str) -> Result<Option<u32>, YamlError> {
    match &n.value {
        Number::Value(v) => u32::try_from(*v)
            .ok()
            .filter(|v| *v != DEVICE_ANY)
            .map(Some)
            .ok_or_else(|| invalid(n, format!("device {what} number {v} is out of range"))),
        Number::Text(t) if t == "*" => Ok(None),
        Number::Text(t) => Err(invalid(
            n,
            format!("device {what} number `{t}` is neither a number nor `*`"),
        )),
    }
}

impl RawDeviceRule {
    /// The rule, or what is wrong with it where it is written; `at` is where the entry
    /// starts.
    pub fn validate(self, at: Position) -> Result<DeviceRule, YamlError> {
        let f = match self {
            Self::Default => return Ok(DeviceRule::Default),
            Self::Device(f) => *f,
        };
        let missing = |key: &str| YamlError {
            at,
            message: format!("missing field `{key}`"),
        };
        let kind = f.kind.ok_or_else(|| missing("type"))?;
        let major = f.major.ok_or_else(|| missing("major"))?;
        let minor = f.minor.ok_or_else(|| missing("minor"))?;
        let access_text = f.access.ok_or_else(|| missing("access"))?;
        let kind = match kind.value.as_str() {
            "c" => DeviceType::Char,
            "b" => DeviceType::Block,
            "a" | "*" => DeviceType::All,
            other => {
                return Err(invalid(
                    &kind,
                    format!(
                        "device type `{other}` is not `c` (character), `b` (block) or `a` (both)"
                    ),
                ));
            }
        };
        let mut access = 0;
        for c in access_text.value.chars() {
            access |= match c {
                'r' => device_access::READ,
                'w' => device_access::WRITE,
                'm' => device_access::MKNOD,
                other => {
                    return Err(invalid(
                        &access_text,
                        format!(
                            "device access `{}` has `{other}`; use r (read), w (write) and m (mknod)",
                            access_text.value
                        ),
                    ));
                }
            };
        }
        if access == 0 {
            return Err(invalid(
                &access_text,
                "device access is empty; use r, w and m".to_owned(),
            ));
        }
        Ok(DeviceRule::Device(Device {
            kind,
            major: number(&major, "major")?,
            minor: number(&minor, "minor")?,
            access,
        }))
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use cgwarden_common::device_access::{MKNOD, READ, WRITE};

    use super::*;
    use crate::policy::parse_str;

    fn devices(list: &str) -> Result<Vec<DeviceRule>, String> {
        let yaml = format!("name: t\nmode: enforce\nruntime:\n  devices:\n{list}");
        parse_str(&yaml, Path::new("t.yaml"))
            .map(|p| p.runtime.devices.expect("devices"))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn parses_default_and_devices_with_wildcards() {
        let rules = devices(
            "    - default\n    - {type: c, major: 10, minor: 200, access: rw}\n    - {type: b, major: \"*\", minor: \"*\", access: m}\n",
        )
        .unwrap();
        assert_eq!(rules[0], DeviceRule::Default);
        assert_eq!(
            rules[1],
            DeviceRule::Device(Device {
                kind: DeviceType::Char,
                major: Some(10),
                minor: Some(200),
                access: READ | WRITE
            })
        );
        let compiled = compile_devices(3, &rules);
        let c = device_type::CHAR;
        assert_eq!(simulate(&compiled, c, 1, 3), READ | WRITE | MKNOD);
        assert_eq!(simulate(&compiled, c, 136, 7), READ | WRITE | MKNOD);
        assert_eq!(simulate(&compiled, c, 10, 200), READ | WRITE);
        // /dev/mem is in no rule.
        assert_eq!(simulate(&compiled, c, 1, 1), 0);
        assert_eq!(simulate(&compiled, device_type::BLOCK, 8, 0), MKNOD);
        assert!(compiled.iter().all(|(k, _)| k.profile == 3));
    }

    #[test]
    fn type_a_covers_both_and_duplicates_merge() {
        let rules = devices(
            "    - {type: a, major: 7, minor: \"*\", access: r}\n    - {type: c, major: 7, minor: \"*\", access: w}\n",
        )
        .unwrap();
        let compiled = compile_devices(1, &rules);
        assert_eq!(compiled.len(), 2);
        assert_eq!(simulate(&compiled, device_type::CHAR, 7, 1), READ | WRITE);
        assert_eq!(simulate(&compiled, device_type::BLOCK, 7, 1), READ);
    }

    #[test]
    fn bad_devices_are_refused_at_their_line() {
        for (entry, needle) in [
            (
                "    - {type: x, major: 1, minor: 3, access: rw}\n",
                "device type `x`",
            ),
            ("    - {type: c, major: 1, minor: 3, access: rx}\n", "`x`"),
            (
                "    - {type: c, major: one, minor: 3, access: r}\n",
                "`one`",
            ),
            (
                "    - {type: c, major: 1, minor: 3, access: \"\"}\n",
                "empty",
            ),
            ("    - {type: c, major: 1, access: r}\n", "minor"),
            ("    - defaults\n", "`defaults`"),
        ] {
            let err = devices(&format!("    - default\n{entry}")).unwrap_err();
            assert!(err.contains(needle), "{entry}: {err}");
            assert!(err.contains("t.yaml:6:"), "{entry}: {err}");
        }
    }
}
