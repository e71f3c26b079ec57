//! The profile file as written, deserialised with serde. Field types that carry their
//! own validation ([`super::types`]) fail inside serde, so their errors get the line and
//! column of the offending value.

use std::{fmt, marker::PhantomData};

use serde::{
    Deserialize,
    de::{self, IntoDeserializer, Visitor},
};

use super::types::{
    CgroupGlob, Destination, DnsSettings, EgressDefault, EngineName, Glob, Mode, PortRange,
    ProfileName, Protocol, ReportLevel, Runtime, SyscallAction, SyscallName, SyscallSet,
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProfile {
    pub name: ProfileName,
    pub mode: Mode,
    #[serde(default)]
    pub selector: Option<RawSelector>,
    #[serde(default)]
    pub egress: Option<RawEgress>,
    #[serde(default)]
    pub syscalls: Vec<RawSyscallRule>,
    #[serde(default)]
    pub runtime: Runtime,
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEgress {
    pub default: EgressDefault,
    #[serde(default)]
    pub report: ReportLevel,
    #[serde(default)]
    pub allow: Vec<RawEgressRule>,
    #[serde(default)]
    pub deny: Vec<RawEgressRule>,
    #[serde(default)]
    pub dns: DnsSettings,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEgressRule {
    #[serde(default)]
    pub name: Option<String>,
    pub to: OneOrMany<Destination>,
    #[serde(default)]
    pub ports: Vec<PortRange>,
    #[serde(default)]
    pub protocol: Protocol,
}

/// A syscall rule: `names`, or `set`, or both. Checked inside serde so a rule with
/// neither is reported at its own line.
#[derive(Debug, Deserialize)]
#[serde(try_from = "SyscallRuleFields")]
pub struct RawSyscallRule {
    pub names: Vec<SyscallName>,
    pub set: Option<SyscallSet>,
    pub except: Vec<SyscallName>,
    pub action: SyscallAction,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyscallRuleFields {
    #[serde(default)]
    names: Vec<SyscallName>,
    #[serde(default)]
    set: Option<SyscallSet>,
    /// Syscalls of the set this rule leaves out.
    #[serde(default)]
    except: Vec<SyscallName>,
    action: SyscallAction,
}

impl TryFrom<SyscallRuleFields> for RawSyscallRule {
    type Error = String;
    fn try_from(f: SyscallRuleFields) -> Result<Self, String> {
        if f.names.is_empty() && f.set.is_none() {
            return Err("a syscall rule needs `names`, `set`, or both".to_owned());
        }
        if !f.except.is_empty() && f.set.is_none() {
            return Err("`except` leaves syscalls out of a `set`; this rule has none".to_owned());
        }
        Ok(Self {
            names: f.names,
            set: f.set,
            except: f.except,
            action: f.action,
        })
    }
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
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                T::deserialize(v.into_deserializer()).map(OneOrMany::One)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                T::deserialize(v.into_deserializer()).map(OneOrMany::One)
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                Vec::<T>::deserialize(de::value::SeqAccessDeserializer::new(seq))
                    .map(OneOrMany::Many)
            }
        }
        deserializer.deserialize_any(Visit(PhantomData))
    }
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
