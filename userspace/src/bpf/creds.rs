//! The credential maps: where the credentials are in this kernel's structures, and
//! what each profile allows after an exec (see `ebpf/src/creds.rs`).

use aya::maps::MapError;
use cgwarden_common::{CredOffsets, CredRule};

use super::Kernel;

impl Kernel {
    /// Hands the kernel side the offsets of the credential fields.
    pub fn write_cred_offsets(&mut self, offsets: CredOffsets) -> Result<(), MapError> {
        self.cred_offsets.set(0, offsets, 0)?;
        self.proc_offsets = offsets.valid != 0 && offsets.proc_valid != 0;
        Ok(())
    }

    /// Writes (or replaces) a profile's credential rule.
    pub fn set_cred_rule(&mut self, profile: u32, rule: CredRule) -> Result<(), MapError> {
        self.cred_rules.insert(profile, rule, 0)
    }

    /// Removes a profile's credential rule (gone already is fine). A previous agent's
    /// rules are swept with the other rule maps (`sweep_rules`).
    pub fn remove_cred_rule(&mut self, profile: u32) -> Result<(), MapError> {
        super::maps::ignore_missing(self.cred_rules.remove(&profile))
    }
}
