//! The credential maps: where the credentials are in this kernel's structures, and
//! what each profile allows after an exec (see `ebpf/src/creds.rs`).

use aya::maps::MapError;
use cgwarden_common::{CredOffsets, CredRule};

use super::Kernel;

impl Kernel {
    /// Hands the kernel side the offsets of the credential fields.
    pub fn write_cred_offsets(&mut self, offsets: CredOffsets) -> Result<(), MapError> {
        self.cred_offsets.set(0, offsets, 0)
    }

    /// Writes (or replaces) a profile's credential rule.
    pub fn set_cred_rule(&mut self, profile: u32, rule: CredRule) -> Result<(), MapError> {
        self.cred_rules.insert(profile, rule, 0)
    }

    /// Removes a profile's credential rule (gone already is fine).
    pub fn remove_cred_rule(&mut self, profile: u32) -> Result<(), MapError> {
        match self.cred_rules.remove(&profile) {
            Err(MapError::KeyNotFound) => Ok(()),
            Err(MapError::SyscallError(e)) if e.io_error.raw_os_error() == Some(libc::ENOENT) => {
                Ok(())
            }
            other => other,
        }
    }

    /// Removes the rules of profile ids for which `keep` is false (a previous agent's).
    pub fn sweep_cred_rules(&mut self, keep: impl Fn(u32) -> bool) -> Result<usize, MapError> {
        let stale: Vec<u32> = self
            .cred_rules
            .keys()
            .filter_map(Result::ok)
            .filter(|id| !keep(*id))
            .collect();
        for id in &stale {
            self.remove_cred_rule(*id)?;
        }
        Ok(stale.len())
    }
}
