//! Reading the events file as it grows, by the million lines: the generator's
//! `sendmsg` records and their `count`s, the records the agent rebuilt, the `lost`
//! records, and everything else.

use std::{
    io::Read as _,
    path::{Path, PathBuf},
};

use anyhow::Context;

use crate::bench::util::EventLine;

/// What the events file holds, read as it grows.
pub(super) struct Tally {
    path: PathBuf,
    pid: u64,
    file: Option<std::fs::File>,
    /// An incomplete last line, kept for the next read.
    partial: Vec<u8>,
    /// Sum of `count` of the generator's sendmsg records.
    pub(super) delivered: u64,
    pub(super) records: u64,
    /// Of those, records rebuilt by the agent's flush from the kernel's flow table
    /// after their own record was dropped (rebuilt from the kernel's key: no process
    /// name, `"process":""`).
    pub(super) recovered: u64,
    pub(super) lost: u64,
    pub(super) other: u64,
    pub(super) bytes: u64,
}

impl Tally {
    pub(super) fn new(path: &Path, pid: u64) -> Self {
        Self {
            path: path.to_owned(),
            pid,
            file: None,
            partial: Vec::new(),
            delivered: 0,
            records: 0,
            recovered: 0,
            lost: 0,
            other: 0,
            bytes: 0,
        }
    }

    /// Reads and counts what was appended since the last call.
    pub(super) fn update(&mut self) -> anyhow::Result<()> {
        if self.file.is_none() {
            match std::fs::File::open(&self.path) {
                Ok(f) => self.file = Some(f),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                Err(e) => {
                    return Err(e).with_context(|| format!("opening {}", self.path.display()));
                }
            }
        }
        let Some(mut file) = self.file.take() else {
            return Ok(());
        };
        let result = self.read_from(&mut file);
        self.file = Some(file);
        result
    }

    fn read_from(&mut self, file: &mut std::fs::File) -> anyhow::Result<()> {
        let mut chunk = vec![0u8; 4 << 20];
        loop {
            let n = file
                .read(&mut chunk)
                .with_context(|| format!("reading {}", self.path.display()))?;
            if n == 0 {
                return Ok(());
            }
            self.bytes += n as u64;
            let mut data = &chunk[..n];
            while let Some(end) = data.iter().position(|b| *b == b'\n') {
                if self.partial.is_empty() {
                    self.line(&data[..end])?;
                } else {
                    let mut line = std::mem::take(&mut self.partial);
                    line.extend_from_slice(&data[..end]);
                    self.line(&line)?;
                }
                data = &data[end + 1..];
            }
            self.partial.extend_from_slice(data);
        }
    }

    fn line(&mut self, line: &[u8]) -> anyhow::Result<()> {
        let e = EventLine::parse(line)?;
        let count = e.count.with_context(|| {
            format!(
                "an event without `count`: {}",
                String::from_utf8_lossy(line)
            )
        })?;
        if e.is("sendmsg") && e.pid == Some(self.pid) {
            self.delivered += count;
            self.records += 1;
            if e.process.as_deref() == Some("") {
                self.recovered += 1;
            }
        } else if e.is("lost") {
            self.lost += count;
        } else {
            self.other += 1;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_records_as_json() {
        use std::io::Write as _;
        let dir = std::env::temp_dir().join(format!("cgwarden-tally-json-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("e.json");
        let mut t = Tally::new(&path, 7);
        let mut f = std::fs::File::create(&path).expect("create");
        // Keys in any order; a process name with escaped quotes (the substring search
        // ended the name at the first `\"`); a nested `pid` before the record's own (the
        // substring search took it); a record without `count` is an error.
        f.write_all(
            b"{\"count\":4,\"process\":\"\",\"pid\":7,\"kind\":\"sendmsg\"}\n\
              {\"kind\":\"sendmsg\",\"process\":\"a \\\"b\\\"\",\"pid\":7,\"count\":1}\n\
              {\"kind\":\"sendmsg\",\"ancestry\":[{\"pid\":7}],\"pid\":8,\"count\":1}\n",
        )
        .expect("write");
        t.update().expect("update");
        assert_eq!((t.delivered, t.records, t.recovered, t.other), (5, 2, 1, 1));
        f.write_all(b"{\"kind\":\"sendmsg\",\"pid\":7}\n")
            .expect("write");
        let err = t.update().expect_err("no count");
        let _ = std::fs::remove_dir_all(&dir);
        assert!(format!("{err:#}").contains("an event without `count`"));
    }

    #[test]
    fn tallies_a_growing_file() {
        use std::io::Write as _;
        let dir = std::env::temp_dir().join(format!("cgwarden-tally-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("e.json");
        let mut t = Tally::new(&path, 7);
        t.update().expect("no file yet");
        let mut f = std::fs::File::create(&path).expect("create");
        f.write_all(
            b"{\"kind\":\"sendmsg\",\"pid\":7,\"process\":\"udp\",\"count\":1}\n\
              {\"kind\":\"sendmsg\",\"pid\":7,\"process\":\"\",\"co",
        )
        .expect("write");
        t.update().expect("update");
        assert_eq!((t.delivered, t.records), (1, 1));
        f.write_all(
            b"unt\":2}\n{\"kind\":\"sendmsg\",\"pid\":8,\"count\":1}\n\
              {\"time\":\"t\",\"kind\":\"lost\",\"count\":5,\"reason\":\"ring buffer full\"}\n",
        )
        .expect("write");
        t.update().expect("update");
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(
            (t.delivered, t.records, t.recovered, t.lost, t.other),
            (3, 2, 1, 5, 1)
        );
    }
}
