//! Where the fields the tracepoint programs read are in the running kernel's records:
//! a read-only global the loader sets from the tracepoints' `format` files before the
//! programs are verified (see `cgwarden_common::TracepointLayout`), so no program
//! reads at an offset written here.
//!
//! Minimum kernel: 5.2 (global data: `TRACEPOINT_LAYOUT` lives in a `.rodata` map that
//! the loader fills and freezes, read by direct map-value access).

use cgwarden_common::TracepointLayout;

/// Set by the loader (`EbpfLoader::override_global`); this value is only what an object
/// loaded without it would read.
#[unsafe(no_mangle)]
static TRACEPOINT_LAYOUT: TracepointLayout = TracepointLayout::KNOWN;

macro_rules! field {
    ($($(#[$doc:meta])* $name:ident),*) => {
        $(
            $(#[$doc])*
            #[inline(always)]
            pub fn $name() -> usize {
                // SAFETY: a read of a field of a global that nothing writes at run time
                // (the loader sets it before the object is loaded).
                unsafe { core::ptr::read_volatile(&raw const TRACEPOINT_LAYOUT.$name) as usize }
            }
        )*
    };
}

field!(
    /// `syscalls:sys_enter_*` and `sys_exit_*`: `__syscall_nr`.
    syscall_nr,
    /// `syscalls:sys_enter_*`: the first argument (the others follow, 8 bytes each).
    syscall_args,
    /// `syscalls:sys_exit_*`: `ret`.
    syscall_ret,
    /// `sched:sched_process_exec`: the `__data_loc` of `filename`.
    exec_filename,
    /// `sched:sched_process_fork`: `child_pid`.
    fork_child_pid
);
