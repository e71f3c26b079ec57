//! Decoding ring-buffer records: bytes into the kernel's `#[repr(C)]` records.

use std::mem::size_of;

use cgwarden_common::{
    CredsEvent, DeviationEvent, DeviceEvent, DnsEvent, EventHeader, NetEvent, SocketEvent,
    SyscallEvent, SysctlEvent, kind,
};

/// A ring-buffer record that could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("record of {got} bytes is too short for kind {kind} ({need} bytes)")]
    Short { kind: u32, got: usize, need: usize },
    #[error("record of unknown kind {0}")]
    UnknownKind(u32),
}

/// A decoded kernel record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Raw {
    Net(NetEvent),
    Dns(Box<DnsEvent>),
    Syscall(Box<SyscallEvent>),
    Sysctl(Box<SysctlEvent>),
    Socket(SocketEvent),
    Deviation(Box<DeviationEvent>),
    Device(DeviceEvent),
    /// A write under a read-only path (a [`SyscallEvent`] of kind `READ_ONLY`).
    ReadOnly(Box<SyscallEvent>),
    Creds(Box<CredsEvent>),
    /// A container's first process held at the gate.
    Gate(cgwarden_common::GateEvent),
}

impl Raw {
    /// The fields every record starts with.
    pub fn header(&self) -> &EventHeader {
        match self {
            Self::Net(e) => &e.header,
            Self::Dns(e) => &e.header,
            Self::Syscall(e) => &e.header,
            Self::Sysctl(e) => &e.header,
            Self::Socket(e) => &e.header,
            Self::Deviation(e) => &e.header,
            Self::Device(e) => &e.header,
            Self::ReadOnly(e) => &e.header,
            Self::Creds(e) => &e.header,
            Self::Gate(e) => &e.header,
        }
    }
}

/// Decodes one ring-buffer record.
pub fn decode(bytes: &[u8]) -> Result<Raw, DecodeError> {
    let kind = read::<u32>(bytes).ok_or(DecodeError::Short {
        kind: 0,
        got: bytes.len(),
        need: size_of::<EventHeader>(),
    })?;
    match kind {
        kind::CONNECT | kind::SENDMSG | kind::PACKET | kind::BIND | kind::LISTEN => {
            record(bytes, kind, Raw::Net)
        }
        kind::SYSCALL => record(bytes, kind, |e| Raw::Syscall(Box::new(e))),
        kind::SOCKET => record(bytes, kind, Raw::Socket),
        kind::DEVIATION => record(bytes, kind, |e| Raw::Deviation(Box::new(e))),
        kind::CREDS => record(bytes, kind, |e| Raw::Creds(Box::new(e))),
        kind::SYSCTL => record(bytes, kind, |e| Raw::Sysctl(Box::new(e))),
        kind::DNS => record(bytes, kind, |e| Raw::Dns(Box::new(e))),
        kind::DEVICE => record(bytes, kind, Raw::Device),
        kind::READ_ONLY => record(bytes, kind, |e| Raw::ReadOnly(Box::new(e))),
        kind::GATE => record(bytes, kind, Raw::Gate),
        other => Err(DecodeError::UnknownKind(other)),
    }
}

/// Reads a record of type `T` and wraps it, or says how short it was.
fn record<T: Copy>(
    bytes: &[u8],
    kind: u32,
    wrap: impl FnOnce(T) -> Raw,
) -> Result<Raw, DecodeError> {
    read::<T>(bytes).map(wrap).ok_or(DecodeError::Short {
        kind,
        got: bytes.len(),
        need: size_of::<T>(),
    })
}

fn read<T: Copy>(bytes: &[u8]) -> Option<T> {
    if bytes.len() < size_of::<T>() {
        return None;
    }
    // SAFETY: the length was checked; `T` is plain `#[repr(C)]` data valid for any bytes
    // (only integers and byte arrays), and the read is unaligned-safe.
    Some(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<T>()) })
}
