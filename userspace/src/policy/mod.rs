//! Profiles: the schema users write, its validation, and its compilation to map entries.
//!
//! Input goes through two stages. [`raw`] mirrors the YAML with serde; [`load`] turns it
//! into a [`Profile`], which exists only if it is valid, or into a [`PolicyError`] that
//! names file, line and column. [`compile`] turns a profile's egress rules into LPM
//! trie entries for the kernel.
//!
//! Beside them, the tables profiles name things by: [`syscalls`] (numbers, arguments,
//! the escape set), [`caps`] (capabilities), [`devices`]; and [`import`], which writes
//! a profile from an OCI config or a Compose service.

pub mod caps;
pub mod compile;
pub mod devices;
pub mod import;
pub mod lint;
mod load;
pub mod paths;
mod raw;
pub mod syscalls;
mod types;

pub use load::{PolicyError, PolicyErrors, load_path, parse_str};
pub use types::*;
