//! Benchmarks. Each measures cgwarden against a baseline taken in the same run.

use std::path::Path;

use anyhow::bail;

pub fn run(_root: &Path, _bin: &Path, which: Option<&str>) -> anyhow::Result<()> {
    bail!("no benchmark `{}` yet", which.unwrap_or("all"))
}
