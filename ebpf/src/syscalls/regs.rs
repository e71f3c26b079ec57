//! A task's saved user registers: where the syscall arguments are at entry (raw
//! `sys_enter`) and still are at exit (a call seccomp refused before its entry).
//! Architecture-specific (`bpf_target_arch`, from build.rs): x86_64 passes them in rdi,
//! rsi, rdx, r10, r8, r9; no other architecture is supported yet, and building for one
//! is an error rather than a program that reads the wrong registers.

use super::*;

#[cfg(not(bpf_target_arch = "x86_64"))]
compile_error!("syscall argument registers are only known for x86_64 kernels (bpf_target_arch)");

/// The syscall arguments in the current task's saved user registers (x86_64: rdi,
/// rsi, rdx, r10, r8, r9), as they still are at the syscall's exit.
#[inline(always)]
pub(super) fn saved_args() -> [u64; 6] {
    // SAFETY: plain helper calls; the registers are read with probe reads.
    unsafe {
        let task = aya_ebpf::helpers::generated::bpf_get_current_task_btf();
        let regs = aya_ebpf::helpers::generated::bpf_task_pt_regs(task) as *const pt_regs;
        if regs.is_null() {
            return [0; 6];
        }
        args_in(regs)
    }
}

/// The syscall arguments in saved user registers: x86_64 passes them in rdi, rsi,
/// rdx, r10, r8, r9. Each is read with a probe read (0 when it fails).
#[cfg(bpf_target_arch = "x86_64")]
#[inline(always)]
pub(super) fn args_in(regs: *const pt_regs) -> [u64; 6] {
    // SAFETY: only probe reads of fields of the kernel's pt_regs.
    unsafe {
        [
            bpf_probe_read_kernel(&raw const (*regs).rdi).unwrap_or(0),
            bpf_probe_read_kernel(&raw const (*regs).rsi).unwrap_or(0),
            bpf_probe_read_kernel(&raw const (*regs).rdx).unwrap_or(0),
            bpf_probe_read_kernel(&raw const (*regs).r10).unwrap_or(0),
            bpf_probe_read_kernel(&raw const (*regs).r8).unwrap_or(0),
            bpf_probe_read_kernel(&raw const (*regs).r9).unwrap_or(0),
        ]
    }
}
