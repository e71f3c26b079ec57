//! The tracepoint record layout of the running kernel, read from the tracepoints'
//! `format` files and given to the kernel side before its programs are verified
//! (`cgwarden_common::TracepointLayout`): no program reads a record at an offset
//! written in its source.

use std::path::Path;

use cgwarden_common::TracepointLayout;

/// A record layout that is not what the programs can read.
#[derive(Debug, thiserror::Error)]
#[error("tracepoint {tracepoint}: {problem}")]
pub struct LayoutError {
    pub tracepoint: &'static str,
    pub problem: String,
}

/// Reads the layout under `tracefs` (its `events/` directory). A tracepoint whose format
/// cannot be read keeps the known layout (it cannot be attached either, and says so
/// then); one whose format lacks a field, or has it in another size, is an error.
pub fn read(tracefs: &Path) -> Result<TracepointLayout, LayoutError> {
    let mut layout = TracepointLayout::KNOWN;
    let format = |tracepoint: &str| {
        std::fs::read_to_string(tracefs.join("events").join(tracepoint).join("format"))
    };
    if let Ok(f) = format("syscalls/sys_enter_openat") {
        let t = "syscalls:sys_enter_openat";
        layout.syscall_nr = offset(t, &f, "__syscall_nr", 4)?;
        layout.syscall_args = first_after(t, &f, "__syscall_nr", 8)?;
    } else {
        log::warn!("cannot read the format of syscalls:sys_enter_openat; assuming the 6.x layout");
    }
    if let Ok(f) = format("syscalls/sys_exit_openat") {
        let t = "syscalls:sys_exit_openat";
        let nr = offset(t, &f, "__syscall_nr", 4)?;
        if nr != layout.syscall_nr {
            return Err(LayoutError {
                tracepoint: t,
                problem: format!(
                    "__syscall_nr at {nr}, but at {} in the entry records",
                    layout.syscall_nr
                ),
            });
        }
        layout.syscall_ret = offset(t, &f, "ret", 8)?;
    }
    if let Ok(f) = format("sched/sched_process_exec") {
        layout.exec_filename = offset("sched:sched_process_exec", &f, "filename", 4)?;
        if !field(&f, "filename").is_some_and(|(decl, _, _)| decl.contains("__data_loc")) {
            return Err(LayoutError {
                tracepoint: "sched:sched_process_exec",
                problem: "filename is not a __data_loc string".to_owned(),
            });
        }
    }
    if let Ok(f) = format("sched/sched_process_fork") {
        layout.fork_child_pid = offset("sched:sched_process_fork", &f, "child_pid", 4)?;
    }
    Ok(layout)
}

/// The offset of field `name`, which must be `size` bytes.
fn offset(
    tracepoint: &'static str,
    format: &str,
    name: &str,
    size: u32,
) -> Result<u32, LayoutError> {
    let Some((_, offset, found)) = field(format, name) else {
        return Err(LayoutError {
            tracepoint,
            problem: format!("no field `{name}`"),
        });
    };
    if found != size {
        return Err(LayoutError {
            tracepoint,
            problem: format!("`{name}` is {found} bytes, not {size}"),
        });
    }
    Ok(offset)
}

/// The offset of the field after `name` (a syscall's first argument), `size` bytes.
fn first_after(
    tracepoint: &'static str,
    format: &str,
    name: &str,
    size: u32,
) -> Result<u32, LayoutError> {
    let mut fields = fields(format).skip_while(|(decl, _, _)| !declares(decl, name));
    fields.next();
    match fields.next() {
        Some((_, offset, found)) if found == size => Ok(offset),
        Some((decl, _, found)) => Err(LayoutError {
            tracepoint,
            problem: format!("`{decl}` is {found} bytes, not {size}"),
        }),
        None => Err(LayoutError {
            tracepoint,
            problem: format!("no field after `{name}`"),
        }),
    }
}

/// Field `name`: its declaration, offset and size.
fn field<'a>(format: &'a str, name: &str) -> Option<(&'a str, u32, u32)> {
    fields(format).find(|(decl, _, _)| declares(decl, name))
}

/// Whether a declaration (`int __syscall_nr`, `__data_loc char[] filename`,
/// `char comm[16]`) names `name`.
fn declares(decl: &str, name: &str) -> bool {
    decl.rsplit([' ', '*'])
        .next()
        .map(|last| last.split('[').next().unwrap_or(last))
        == Some(name)
}

/// Every `field:<declaration>; offset:<n>; size:<n>;` line.
fn fields(format: &str) -> impl Iterator<Item = (&str, u32, u32)> {
    format.lines().filter_map(|line| {
        let line = line.trim().strip_prefix("field:")?;
        let mut parts = line.split(';').map(str::trim);
        let decl = parts.next()?;
        let mut offset = None;
        let mut size = None;
        for p in parts {
            if let Some(v) = p.strip_prefix("offset:") {
                offset = v.parse().ok();
            } else if let Some(v) = p.strip_prefix("size:") {
                size = v.parse().ok();
            }
        }
        Some((decl, offset?, size?))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const FORK_6X: &str = "name: sched_process_fork
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:__data_loc char[] parent_comm;\toffset:8;\tsize:4;\tsigned:0;
\tfield:pid_t parent_pid;\toffset:12;\tsize:4;\tsigned:1;
\tfield:__data_loc char[] child_comm;\toffset:16;\tsize:4;\tsigned:0;
\tfield:pid_t child_pid;\toffset:20;\tsize:4;\tsigned:1;
";

    const FORK_5X: &str = "\tfield:char parent_comm[16];\toffset:8;\tsize:16;\tsigned:0;
\tfield:pid_t parent_pid;\toffset:24;\tsize:4;\tsigned:1;
\tfield:char child_comm[16];\toffset:28;\tsize:16;\tsigned:0;
\tfield:pid_t child_pid;\toffset:44;\tsize:4;\tsigned:1;
";

    const ENTER: &str = "\tfield:int __syscall_nr;\toffset:8;\tsize:4;\tsigned:1;
\tfield:int dfd;\toffset:16;\tsize:8;\tsigned:0;
\tfield:const char * filename;\toffset:24;\tsize:8;\tsigned:0;
";

    #[test]
    fn fields_are_found_by_name_whatever_their_type() {
        assert_eq!(offset("t", FORK_6X, "child_pid", 4).unwrap(), 20);
        // The older layout, with the comm fields inline: child_pid moved.
        assert_eq!(offset("t", FORK_5X, "child_pid", 4).unwrap(), 44);
        assert_eq!(offset("t", ENTER, "__syscall_nr", 4).unwrap(), 8);
        assert_eq!(first_after("t", ENTER, "__syscall_nr", 8).unwrap(), 16);
        assert_eq!(field(ENTER, "filename").map(|f| f.1), Some(24));
        // `parent_comm` is not `comm`.
        assert!(field(FORK_6X, "comm").is_none());
    }

    #[test]
    fn a_missing_field_or_another_size_is_an_error() {
        let e = offset("sched:sched_process_fork", FORK_6X, "child_tid", 4).unwrap_err();
        assert_eq!(
            e.to_string(),
            "tracepoint sched:sched_process_fork: no field `child_tid`"
        );
        let e = offset("t", FORK_5X, "child_comm", 4).unwrap_err();
        assert!(e.to_string().contains("16 bytes, not 4"), "{e}");
    }

    #[test]
    fn the_running_kernels_layout_is_read() {
        // This kernel's records are laid out as the 6.x ones (read from the files as
        // root; the fallback without access is the same layout).
        let layout = read(Path::new(crate::host::TRACEFS)).unwrap();
        assert_eq!(layout, TracepointLayout::KNOWN);
    }
}
