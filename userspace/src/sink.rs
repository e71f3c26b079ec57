//! Where events go: a file (appended to), standard output or standard error.

use std::{
    fs::OpenOptions,
    io::{self, BufWriter, Write},
    path::Path,
};

/// Opens the events destination: `-` is `default` (stdout for `run`, stderr for
/// `exec`), anything else a file appended to.
pub fn open(target: Option<&Path>, default: Std) -> io::Result<Box<dyn Write + Send>> {
    Ok(match target {
        Some(path) if path != Path::new("-") => Box::new(BufWriter::new(
            OpenOptions::new().create(true).append(true).open(path)?,
        )),
        _ => match default {
            Std::Out => Box::new(BufWriter::new(io::stdout())),
            Std::Err => Box::new(BufWriter::new(io::stderr())),
        },
    })
}

/// A standard stream.
#[derive(Debug, Clone, Copy)]
pub enum Std {
    Out,
    Err,
}
