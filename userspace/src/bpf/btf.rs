//! Field offsets from the kernel's BTF (`/sys/kernel/btf/vmlinux`).
//!
//! aya's eBPF side has no CO-RE relocations, so a program that reads a kernel structure
//! gets the offsets of its fields from the agent, which finds them here. This is a small
//! reader of the BTF type section: enough to find a struct by name and the byte offset
//! and size of a member, looking through anonymous struct and union members.

use std::{fs, path::Path};

use cgwarden_common::CredOffsets;

/// Errors reading BTF or finding a field in it.
#[derive(Debug, thiserror::Error)]
pub enum BtfError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("not valid BTF: {0}")]
    Invalid(&'static str),
    #[error("the kernel's BTF has no struct `{0}`")]
    NoStruct(String),
    #[error("struct `{0}` has no member `{1}`")]
    NoMember(String, String),
    #[error("`{0}.{1}` is {2} bytes, expected {3}")]
    Size(String, String, u32, u32),
}

const KIND_INT: u32 = 1;
const KIND_PTR: u32 = 2;
const KIND_ARRAY: u32 = 3;
const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;
const KIND_ENUM: u32 = 6;
const KIND_TYPEDEF: u32 = 8;
const KIND_VOLATILE: u32 = 9;
const KIND_CONST: u32 = 10;
const KIND_RESTRICT: u32 = 11;
const KIND_FUNC_PROTO: u32 = 13;
const KIND_VAR: u32 = 14;
const KIND_DATASEC: u32 = 15;
const KIND_DECL_TAG: u32 = 17;
const KIND_TYPE_TAG: u32 = 18;
const KIND_ENUM64: u32 = 19;

/// The types of one BTF blob. Parsing only records where each type starts; names and
/// members are read when asked for, so reading the kernel's 5 MB takes milliseconds.
pub struct Btf {
    data: Vec<u8>,
    /// Byte offset of the string section in `data`.
    strings: std::ops::Range<usize>,
    /// Byte offset of each type's record, by id (id 0, `void`, has none).
    types: Vec<usize>,
}

/// The header fields of one type record.
struct Header {
    name_off: u32,
    kind: u32,
    vlen: usize,
    kind_flag: bool,
    size_or_type: u32,
}

impl Btf {
    /// Reads a BTF file (normally `/sys/kernel/btf/vmlinux`).
    pub fn from_file(path: &Path) -> Result<Self, BtfError> {
        let data = fs::read(path).map_err(|source| BtfError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(data)
    }

    /// Parses a little-endian BTF blob.
    pub fn parse(data: impl Into<Vec<u8>>) -> Result<Self, BtfError> {
        let data = data.into();
        if data.get(0..2) != Some(&0xeb9fu16.to_le_bytes()[..]) {
            return Err(BtfError::Invalid("bad magic (or not little-endian)"));
        }
        let field = |o: usize| u32_at(&data, o).ok_or(BtfError::Invalid("short header"));
        let hdr_len = field(4)? as usize;
        let (type_off, type_len) = (field(8)? as usize, field(12)? as usize);
        let (str_off, str_len) = (field(16)? as usize, field(20)? as usize);
        let strings = hdr_len + str_off..hdr_len + str_off + str_len;
        let start = hdr_len + type_off;
        let end = start + type_len;
        if data.len() < end || data.len() < strings.end {
            return Err(BtfError::Invalid("section out of bounds"));
        }
        let mut types = vec![0];
        let mut o = start;
        while o + 12 <= end {
            let info = u32_at(&data, o + 4).ok_or(BtfError::Invalid("truncated type"))?;
            let vlen = (info & 0xffff) as usize;
            types.push(o);
            o += 12
                + match (info >> 24) & 0x1f {
                    KIND_INT | KIND_VAR | KIND_DECL_TAG => 4,
                    KIND_ARRAY => 12,
                    KIND_STRUCT | KIND_UNION | KIND_DATASEC | KIND_ENUM64 => 12 * vlen,
                    KIND_ENUM | KIND_FUNC_PROTO => 8 * vlen,
                    _ => 0,
                };
        }
        Ok(Self {
            data,
            strings,
            types,
        })
    }

    fn header(&self, id: u32) -> Option<Header> {
        let o = *self.types.get(id as usize).filter(|_| id != 0)?;
        let info = u32_at(&self.data, o + 4)?;
        Some(Header {
            name_off: u32_at(&self.data, o)?,
            kind: (info >> 24) & 0x1f,
            vlen: (info & 0xffff) as usize,
            kind_flag: info >> 31 == 1,
            size_or_type: u32_at(&self.data, o + 8)?,
        })
    }

    fn name(&self, off: u32) -> &[u8] {
        let rest = self
            .data
            .get(self.strings.start + off as usize..self.strings.end)
            .unwrap_or_default();
        let end = rest.iter().position(|b| *b == 0).unwrap_or(rest.len());
        &rest[..end]
    }

    /// Members of a struct or union: (name offset, type, bit offset).
    fn members(&self, id: u32) -> impl Iterator<Item = (u32, u32, u32)> + '_ {
        let h = self.header(id);
        let base = self.types.get(id as usize).copied().unwrap_or(0) + 12;
        let (n, kind_flag) = match &h {
            Some(h) if matches!(h.kind, KIND_STRUCT | KIND_UNION) => (h.vlen, h.kind_flag),
            _ => (0, false),
        };
        (0..n).filter_map(move |i| {
            let o = base + 12 * i;
            let offset = u32_at(&self.data, o + 8)?;
            let bits = if kind_flag {
                offset & 0xff_ffff
            } else {
                offset
            };
            Some((u32_at(&self.data, o)?, u32_at(&self.data, o + 4)?, bits))
        })
    }

    /// Follows typedefs and qualifiers to the type they name.
    fn resolve(&self, mut id: u32) -> u32 {
        for _ in 0..32 {
            match self.header(id) {
                Some(h)
                    if matches!(
                        h.kind,
                        KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | KIND_TYPE_TAG
                    ) =>
                {
                    id = h.size_or_type;
                }
                _ => break,
            }
        }
        id
    }

    /// Size in bytes of a type.
    fn size(&self, id: u32) -> u32 {
        let id = self.resolve(id);
        match self.header(id) {
            Some(h) if h.kind == KIND_PTR => 8,
            Some(h) if h.kind == KIND_ARRAY => {
                let o = self.types[id as usize] + 12;
                let elem = u32_at(&self.data, o).unwrap_or(0);
                let n = u32_at(&self.data, o + 8).unwrap_or(0);
                self.size(elem).saturating_mul(n)
            }
            Some(h) => h.size_or_type,
            None => 0,
        }
    }

    /// The first struct named `name`.
    fn struct_named(&self, name: &str) -> Option<u32> {
        (1..self.types.len() as u32).find(|id| {
            self.header(*id)
                .is_some_and(|h| h.kind == KIND_STRUCT && self.name(h.name_off) == name.as_bytes())
        })
    }

    /// Byte offset and size of `member` in struct `name`, looking into anonymous
    /// members.
    pub fn member(&self, name: &str, member: &str) -> Result<(u32, u32), BtfError> {
        let id = self
            .struct_named(name)
            .ok_or_else(|| BtfError::NoStruct(name.to_owned()))?;
        self.find(id, member.as_bytes(), 0, 0)
            .ok_or_else(|| BtfError::NoMember(name.to_owned(), member.to_owned()))
    }

    fn find(&self, id: u32, member: &[u8], base_bits: u32, depth: u32) -> Option<(u32, u32)> {
        if depth > 8 {
            return None;
        }
        let id = self.resolve(id);
        for (name_off, ty, bits) in self.members(id) {
            let name = self.name(name_off);
            if name == member {
                return Some(((base_bits + bits) / 8, self.size(ty)));
            }
            let anonymous = name.is_empty()
                && self
                    .header(self.resolve(ty))
                    .is_some_and(|h| matches!(h.kind, KIND_STRUCT | KIND_UNION));
            if anonymous && let Some(found) = self.find(ty, member, base_bits + bits, depth + 1) {
                return Some(found);
            }
        }
        None
    }

    /// Offset of a member whose size must be `size` bytes.
    fn sized(&self, name: &str, member: &str, size: u32) -> Result<u32, BtfError> {
        let (offset, got) = self.member(name, member)?;
        if got != size {
            return Err(BtfError::Size(name.into(), member.into(), got, size));
        }
        Ok(offset)
    }

    /// Where the credentials are in this kernel's `task_struct` and `cred`.
    pub fn cred_offsets(&self) -> Result<CredOffsets, BtfError> {
        Ok(CredOffsets {
            valid: 1,
            task_cred: self.sized("task_struct", "cred", 8)?,
            task_atomic_flags: self.sized("task_struct", "atomic_flags", 8)?,
            cred_euid: self.sized("cred", "euid", 4)?,
            cred_egid: self.sized("cred", "egid", 4)?,
            cred_cap_effective: self.sized("cred", "cap_effective", 8)?,
            task_files: self.sized("task_struct", "files", 8)?,
            files_fdt: self.sized("files_struct", "fdt", 8)?,
            fdtable_fd: self.sized("fdtable", "fd", 8)?,
            file_inode: self.sized("file", "f_inode", 8)?,
            ..self.socket_offsets().unwrap_or_default()
        })
        .map(|mut o| {
            if let Ok(u) = self.unix_offsets() {
                o.unix_valid = 1;
                o.unix_peer = u.unix_peer;
                o.unix_path_dentry = u.unix_path_dentry;
                o.dentry_inode = u.dentry_inode;
                o.inode_ino = u.inode_ino;
                o.inode_sb = u.inode_sb;
                o.sb_dev = u.sb_dev;
            }
            if let (Ok(mode), Ok(uid)) = (
                self.sized("file", "f_mode", 4),
                self.sized("inode", "i_uid", 4),
            ) {
                o.pipe_valid = 1;
                o.file_mode = mode;
                o.inode_uid = uid;
            }
            if let (Ok(mode), Ok(rdev)) = (
                self.sized("inode", "i_mode", 2),
                self.sized("inode", "i_rdev", 4),
            ) {
                o.block_valid = 1;
                o.inode_mode = mode;
                o.inode_rdev = rdev;
            }
            if let (Ok(filename), Ok(pid)) = (
                self.sized("linux_binprm", "filename", 8),
                self.sized("task_struct", "pid", 4),
            ) {
                o.proc_valid = 1;
                o.binprm_filename = filename;
                o.task_pid = pid;
            }
            if let Ok(n) = self.name_offsets() {
                o.name_valid = 1;
                o.file_dentry = n.file_dentry;
                o.dentry_name = n.dentry_name;
                o.dentry_sb = n.dentry_sb;
                o.sb_magic = n.sb_magic;
            }
            o
        })
    }

    /// From an open file to its name and file system (`file.f_path.dentry`,
    /// `dentry.d_name.name`, `dentry.d_sb`, `super_block.s_magic`).
    fn name_offsets(&self) -> Result<CredOffsets, BtfError> {
        let (f_path, _) = self.member("file", "f_path")?;
        let (d_name, _) = self.member("dentry", "d_name")?;
        Ok(CredOffsets {
            file_dentry: f_path + self.sized("path", "dentry", 8)?,
            dentry_name: d_name + self.sized("qstr", "name", 8)?,
            dentry_sb: self.sized("dentry", "d_sb", 8)?,
            sb_magic: self.sized("super_block", "s_magic", 8)?,
            ..CredOffsets::default()
        })
    }

    /// From a unix socket to the file its peer was bound to.
    fn unix_offsets(&self) -> Result<CredOffsets, BtfError> {
        let (path, _) = self.member("unix_sock", "path")?;
        Ok(CredOffsets {
            unix_peer: self.sized("unix_sock", "peer", 8)?,
            unix_path_dentry: path + self.sized("path", "dentry", 8)?,
            dentry_inode: self.sized("dentry", "d_inode", 8)?,
            inode_ino: self.sized("inode", "i_ino", 8)?,
            inode_sb: self.sized("inode", "i_sb", 8)?,
            sb_dev: self.sized("super_block", "s_dev", 4)?,
            ..CredOffsets::default()
        })
    }

    /// Where a socket's bound address is, from its file; `valid` 0 (with a reason in
    /// the log) when this kernel's BTF lacks one of them.
    fn socket_offsets(&self) -> Result<CredOffsets, BtfError> {
        // `struct sock` starts with its `struct sock_common __sk_common`.
        let (common, _) = self.member("sock", "__sk_common")?;
        let sk = |member: &str, size: u32| -> Result<u32, BtfError> {
            Ok(common + self.sized("sock_common", member, size)?)
        };
        Ok(CredOffsets {
            sock_valid: 1,
            inode_mode: self.sized("inode", "i_mode", 2)?,
            file_private_data: self.sized("file", "private_data", 8)?,
            socket_sk: self.sized("socket", "sk", 8)?,
            sk_family: sk("skc_family", 2)?,
            sk_num: sk("skc_num", 2)?,
            sk_rcv_saddr: sk("skc_rcv_saddr", 4)?,
            sk_v6_rcv_saddr: sk("skc_v6_rcv_saddr", 16)?,
            ..CredOffsets::default()
        })
    }
}

fn u32_at(data: &[u8], o: usize) -> Option<u32> {
    data.get(o..o + 4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// The credential offsets of the running kernel.
pub fn kernel_cred_offsets(vmlinux: &Path) -> Result<CredOffsets, BtfError> {
    Btf::from_file(vmlinux)?.cred_offsets()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a BTF blob: `int` (id 1), `typedef int kuid_t` (2), and
    /// `struct cred { int a; kuid_t euid; union { int x; struct { int pad; long caps; }; }; }`.
    fn blob() -> Vec<u8> {
        let mut strings = b"\0int\0kuid_t\0cred\0a\0euid\0x\0pad\0caps\0long\0".to_vec();
        let off = |s: &str, strings: &[u8]| {
            let needle = format!("\0{s}\0");
            strings
                .windows(needle.len())
                .position(|w| w == needle.as_bytes())
                .unwrap() as u32
                + 1
        };
        let mut types: Vec<u32> = Vec::new();
        let mut ty = |words: &[u32]| types.extend_from_slice(words);
        let s = &strings;
        ty(&[off("int", s), KIND_INT << 24, 4, 32]); // 1: int
        ty(&[off("kuid_t", s), KIND_TYPEDEF << 24, 1]); // 2: kuid_t
        ty(&[off("long", s), KIND_INT << 24, 8, 64]); // 3: long
        // 4: anonymous struct { int pad; long caps; }
        ty(&[0, (KIND_STRUCT << 24) | 2, 16]);
        ty(&[off("pad", s), 1, 0, off("caps", s), 3, 64]);
        // 5: anonymous union { int x; struct 4; }
        ty(&[0, (KIND_UNION << 24) | 2, 16]);
        ty(&[off("x", s), 1, 0, 0, 4, 0]);
        // 6: struct cred
        ty(&[off("cred", s), (KIND_STRUCT << 24) | 3, 24]);
        ty(&[off("a", s), 1, 0, off("euid", s), 2, 32, 0, 5, 64]);
        let type_bytes: Vec<u8> = types.iter().flat_map(|w| w.to_le_bytes()).collect();
        let mut out = Vec::new();
        out.extend_from_slice(&0xeb9fu16.to_le_bytes());
        out.extend_from_slice(&[1, 0]);
        for w in [24u32, 0, type_bytes.len() as u32, type_bytes.len() as u32] {
            out.extend_from_slice(&w.to_le_bytes());
        }
        out.extend_from_slice(&(strings.len() as u32).to_le_bytes());
        out.extend_from_slice(&type_bytes);
        out.append(&mut strings);
        out
    }

    #[test]
    fn finds_members_through_typedefs_and_anonymous_members() {
        let btf = Btf::parse(blob()).unwrap();
        assert_eq!(btf.member("cred", "a").unwrap(), (0, 4));
        assert_eq!(btf.member("cred", "euid").unwrap(), (4, 4));
        assert_eq!(btf.member("cred", "x").unwrap(), (8, 4));
        assert_eq!(btf.member("cred", "caps").unwrap(), (16, 8));
        assert!(matches!(
            btf.member("cred", "nope"),
            Err(BtfError::NoMember(..))
        ));
        assert!(matches!(
            btf.member("task_struct", "cred"),
            Err(BtfError::NoStruct(_))
        ));
        assert!(matches!(btf.cred_offsets(), Err(BtfError::NoStruct(_))));
    }

    #[test]
    fn refuses_what_is_not_btf() {
        assert!(matches!(
            Btf::parse(b"hello world, not btf at all".to_vec()),
            Err(BtfError::Invalid(_))
        ));
    }
}
