//! The profile file as written, deserialised with serde. Field types that carry their
//! own validation ([`super::types`]) fail inside serde, so their errors get the line and
//! column of the offending value. What is checked across fields, or is required, is
//! checked in [`super::load`] after parsing, from the positions the `Spanned` fields
//! keep: a missing key is reported where its mapping starts, a conflict at the value
//! that conflicts.

use std::{fmt, marker::PhantomData};

use serde::{
    Deserialize,
    de::{self, Unexpected, Visitor},
};
use serde_saphyr::Spanned;

use super::{
    devices::RawDeviceRule,
    paths::ProfilePath,
    types::{
        Binds, CgroupGlob, Destination, DnsSettings, EgressDefault, EngineName, Glob, Mode,
        PortRange, ProfileName, Protocol, RawSockets, ReportLevel, SyscallAction, SyscallName,
        SyscallSet,
    },
};

/// A whole profile. `name` and `mode` are required (checked in [`super::load`]).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProfile {
    #[serde(default)]
    pub name: Option<Spanned<ProfileName>>,
    #[serde(default)]
    pub mode: Option<Mode>,
    #[serde(default)]
    pub selector: Option<RawSelector>,
    #[serde(default)]
    pub egress: Option<Spanned<RawEgress>>,
    #[serde(default)]
    pub syscalls: Vec<Spanned<RawSyscallRule>>,
    #[serde(default)]
    pub runtime: Option<RawRuntime>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSelector {
    #[serde(default)]
    pub cgroup: OneOrMany<CgroupGlob>,
    /// Container ids (globs, e.g. `3f2a*`).
    #[serde(default)]
    pub container: OneOrMany<Glob>,
    /// Engines: docker, podman, containerd, cri-o, runc.
    #[serde(default)]
    pub runtime: OneOrMany<EngineName>,
    /// Container names (globs), as the engine names them.
    #[serde(default)]
    pub name: OneOrMany<Glob>,
    /// Images (globs), as the engine names them.
    #[serde(default)]
    pub image: OneOrMany<Glob>,
    #[serde(default)]
    pub compose: Option<RawCompose>,
    #[serde(default)]
    pub k8s: Option<RawK8s>,
}

/// `selector.compose`: project and service globs.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCompose {
    #[serde(default)]
    pub project: OneOrMany<Glob>,
    #[serde(default)]
    pub service: OneOrMany<Glob>,
}

/// `selector.k8s`: namespace, pod and container globs.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawK8s {
    #[serde(default)]
    pub namespace: OneOrMany<Glob>,
    #[serde(default)]
    pub pod: OneOrMany<Glob>,
    #[serde(default)]
    pub container: OneOrMany<Glob>,
}

/// The egress section; `default` is required.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEgress {
    #[serde(default)]
    pub default: Option<EgressDefault>,
    #[serde(default)]
    pub report: ReportLevel,
    #[serde(default)]
    pub allow: Vec<Spanned<RawEgressRule>>,
    #[serde(default)]
    pub deny: Vec<Spanned<RawEgressRule>>,
    #[serde(default)]
    pub dns: DnsSettings,
}

/// One egress rule; `to` is required.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEgressRule {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub to: Option<OneOrMany<Destination>>,
    #[serde(default)]
    pub ports: Vec<PortRange>,
    #[serde(default)]
    pub protocol: Protocol,
}

/// A syscall rule: `names`, or `set`, or both, and the `action` (required).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSyscallRule {
    #[serde(default)]
    pub names: Vec<SyscallName>,
    #[serde(default)]
    pub set: Option<SyscallSet>,
    /// Syscalls of the set this rule leaves out.
    #[serde(default)]
    pub except: Option<Spanned<Vec<SyscallName>>>,
    #[serde(default)]
    pub action: Option<SyscallAction>,
}

/// `runtime:` as written; checked as a whole into a [`super::types::Runtime`].
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRuntime {
    #[serde(default)]
    pub user: Option<u32>,
    #[serde(default)]
    pub binds: Binds,
    #[serde(default)]
    pub raw_sockets: Option<RawSockets>,
    #[serde(default)]
    pub capabilities: Option<crate::policy::caps::CapSet>,
    #[serde(default)]
    pub no_new_privileges: bool,
    #[serde(default)]
    pub devices: Option<Vec<Spanned<RawDeviceRule>>>,
    #[serde(default)]
    pub read_only: Vec<Spanned<ProfilePath>>,
    #[serde(default)]
    pub writable: Vec<Spanned<ProfilePath>>,
    #[serde(default)]
    pub posture: Vec<crate::posture::Check>,
}

/// A value that may be written as one item or as a list. Hand-written rather than
/// `#[serde(untagged)]` so an invalid item keeps its own message and location.
#[derive(Debug)]
pub enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for OneOrMany<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for Visit<T> {
            type Value = OneOrMany<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a value or a list of values")
            }
            // A single item is built from its text here, away from the YAML
            // deserializer; its error is turned into a plain message, which the
            // deserializer places at the value (a serde-built error would be placed at
            // the key).
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                T::deserialize(de::value::StrDeserializer::<de::value::Error>::new(v))
                    .map(OneOrMany::One)
                    .map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                T::deserialize(de::value::U64Deserializer::<de::value::Error>::new(v))
                    .map(OneOrMany::One)
                    .map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Err(E::custom(invalid(Unexpected::Signed(v), &self)))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Err(E::custom(invalid(Unexpected::Float(v), &self)))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
                Err(E::custom(invalid(Unexpected::Bool(v), &self)))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Err(E::custom(invalid(Unexpected::Unit, &self)))
            }
            fn visit_map<A: de::MapAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
                Err(de::Error::custom(invalid(Unexpected::Map, &self)))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                Vec::<T>::deserialize(de::value::SeqAccessDeserializer::new(seq))
                    .map(OneOrMany::Many)
            }
        }
        deserializer.deserialize_any(Visit(PhantomData))
    }
}

/// Serde's "invalid type" message.
fn invalid(unexpected: Unexpected, expected: &dyn de::Expected) -> String {
    <de::value::Error as de::Error>::invalid_type(unexpected, expected).to_string()
}

impl<T> Default for OneOrMany<T> {
    fn default() -> Self {
        Self::Many(Vec::new())
    }
}

impl<T> OneOrMany<T> {
    pub fn into_vec(self) -> Vec<T> {
        match self {
            Self::One(item) => vec![item],
            Self::Many(items) => items,
        }
    }
}
