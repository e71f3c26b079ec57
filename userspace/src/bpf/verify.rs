//! Loading programs into the kernel, which verifies each one there and then: side by
//! side, one thread per CPU. The verifier runs in the thread that loads, one program at
//! a time, so a batch of programs is verified in the time of its longest one (the
//! path-judging `sys_exit`) rather than the sum of all of them.

use std::sync::Mutex;

use aya::{Ebpf, programs::Program};

use super::LoadError;

/// Loads the programs `names` names that are not loaded yet, several at a time, in the
/// order given (put the slowest first: it then overlaps the others). Stops at the
/// first refusal; the programs loaded until then stay loaded.
pub(super) fn load_all(ebpf: &mut Ebpf, names: &[&'static str]) -> Result<(), LoadError> {
    let mut queue: Vec<(&'static str, &mut Program)> = Vec::with_capacity(names.len());
    let mut found: Vec<(&str, &mut Program)> = ebpf.programs_mut().collect();
    for &name in names {
        let at = found
            .iter()
            .position(|(n, _)| *n == name)
            .ok_or(LoadError::MissingProgram(name))?;
        let (_, program) = found.swap_remove(at);
        if program.fd().is_err() {
            queue.push((name, program));
        }
    }
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(queue.len());
    if workers <= 1 {
        return queue
            .into_iter()
            .try_for_each(|(name, program)| load_one(name, program));
    }
    let queue = Mutex::new(queue.into_iter());
    let next = || queue.lock().ok().and_then(|mut q| q.next());
    std::thread::scope(|s| {
        let threads: Vec<_> = (0..workers)
            .map(|_| {
                s.spawn(|| {
                    while let Some((name, program)) = next() {
                        load_one(name, program)?;
                    }
                    Ok(())
                })
            })
            .collect();
        threads.into_iter().try_for_each(|t| {
            t.join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    })
}

/// Loads one program (the kernel verifies it) if it is not loaded yet.
pub(super) fn load_one(name: &'static str, program: &mut Program) -> Result<(), LoadError> {
    if program.fd().is_ok() {
        return Ok(());
    }
    let started = std::time::Instant::now();
    match program {
        Program::CgroupSockAddr(p) => p.load(),
        Program::CgroupSock(p) => p.load(),
        Program::CgroupSysctl(p) => p.load(),
        Program::CgroupDevice(p) => p.load(),
        Program::CgroupSkb(p) => p.load(),
        Program::TracePoint(p) => p.load(),
        Program::RawTracePoint(p) => p.load(),
        _ => return Err(LoadError::MissingProgram(name)),
    }
    .map_err(|source| LoadError::Program { name, source })?;
    // The verifier allows a million; the path-judging exit program is the largest.
    let verified = program
        .info()
        .ok()
        .and_then(|i| i.verified_instruction_count());
    log::debug!(
        "program {name}: {verified:?} instructions verified in {:?}",
        started.elapsed()
    );
    Ok(())
}
