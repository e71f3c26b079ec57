//! A task's saved user registers: where the syscall arguments are at entry (raw
//! `sys_enter`) and still are at exit (a call seccomp refused before its entry).
//! Architecture-specific (`bpf_target_arch`, from build.rs): x86_64 passes them in rdi,
//! rsi, rdx, r10, r8, r9; no other architecture is supported yet, and building for one
//! is an error rather than a program that reads the wrong registers.
//!
//! Minimum kernel: 5.15 (`bpf_task_pt_regs`); `bpf_get_current_task_btf` is 5.11 and
//! needs the kernel's BTF, the register read 5.5 (`bpf_probe_read_kernel`).

use super::*;

#[cfg(not(bpf_target_arch = "x86_64"))]
compile_error!("syscall argument registers are only known for x86_64 kernels (bpf_target_arch)");

/// The syscall arguments in the current task's saved user registers (x86_64: rdi,
/// rsi, rdx, r10, r8, r9), as they still are at the syscall's exit.
#[inline(always)]
pub(super) fn saved_args() -> [u64; 6] {
    // SAFETY: plain helper calls; the registers are read with one probe read (which
    // fails, leaving zeros, if there are none).
    unsafe {
        let task = aya_ebpf::helpers::generated::bpf_get_current_task_btf();
        let regs = aya_ebpf::helpers::generated::bpf_task_pt_regs(task) as *const pt_regs;
        args_in(regs)
    }
}

/// The current syscall's number, from the task's saved registers (x86_64: `orig_ax`, `orig_rax` in the bindings),
/// as the raw `sys_exit` needs it (its record has only the registers and the result).
/// One direct load through the typed pointer `bpf_task_pt_regs` returns.
#[cfg(bpf_target_arch = "x86_64")]
#[inline(always)]
pub(super) fn current_syscall_nr() -> u64 {
    // SAFETY: `bpf_task_pt_regs` returns a pointer the verifier knows as the kernel's
    // `pt_regs` (a faulting load reads zero).
    unsafe {
        let task = aya_ebpf::helpers::generated::bpf_get_current_task_btf();
        let regs = aya_ebpf::helpers::generated::bpf_task_pt_regs(task) as *const pt_regs;
        (*regs).orig_rax
    }
}

/// x86_64's number of `socket`, whose own check the raw `sys_enter` runs
/// (`syscall_watch::OWN`; the loader marks `Sysno::socket`, the same number).
#[cfg(bpf_target_arch = "x86_64")]
pub(super) const SOCKET_NR: u64 = 41;

/// x86_64's number of `listen` (as [`SOCKET_NR`]).
#[cfg(bpf_target_arch = "x86_64")]
pub(super) const LISTEN_NR: u64 = 50;

/// The x86_64 `pt_regs` from r10 to rdi, in the kernel's order: r10, r9, r8, rax, rcx,
/// rdx, rsi, rdi. The six argument registers are all in it.
#[cfg(bpf_target_arch = "x86_64")]
const ARG_BLOCK: usize = 8;

#[cfg(bpf_target_arch = "x86_64")]
const _: () = {
    use core::mem::offset_of;
    let r10 = offset_of!(pt_regs, r10);
    assert!(offset_of!(pt_regs, r9) == r10 + 8);
    assert!(offset_of!(pt_regs, r8) == r10 + 16);
    assert!(offset_of!(pt_regs, rdx) == r10 + 40);
    assert!(offset_of!(pt_regs, rsi) == r10 + 48);
    assert!(offset_of!(pt_regs, rdi) == r10 + 56);
};

/// The syscall arguments in saved user registers: x86_64 passes them in rdi, rsi,
/// rdx, r10, r8, r9. One probe read of the block that holds them, whose result is not
/// branched on (a failed read leaves zeros): one verifier state, not one per register
/// that might have failed.
#[cfg(bpf_target_arch = "x86_64")]
#[inline(always)]
pub(super) fn args_in(regs: *const pt_regs) -> [u64; 6] {
    // Not zeroed first: the helper writes every byte (zeros when the read fails), and a
    // zeroing is a byte loop the verifier walks at each call site (64 steps).
    let mut block = core::mem::MaybeUninit::<[u64; ARG_BLOCK]>::uninit();
    // SAFETY: a probe read of `ARG_BLOCK` u64s of the kernel's pt_regs into `block`,
    // which it fills whole, read or not.
    let block = unsafe {
        aya_ebpf::helpers::generated::bpf_probe_read_kernel(
            block.as_mut_ptr().cast(),
            (ARG_BLOCK * 8) as u32,
            (&raw const (*regs).r10).cast(),
        );
        block.assume_init()
    };
    [block[7], block[6], block[5], block[0], block[2], block[1]]
}
