//! DNS for the agent: reading and writing the wire format ([`wire`]) and resolving the
//! names profiles allow ([`resolver`]). The kernel's DNS answer parser is in
//! `ebpf/src/dns.rs`; which answers are trusted is decided there and reported as `dns`
//! records (`events::dns`).

pub mod resolver;
pub mod wire;
