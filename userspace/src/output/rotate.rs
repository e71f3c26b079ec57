//! A file rotated by size: when it would grow past its limit it becomes `path.1`, older
//! ones shift up, and at most `keep` old files remain.

use std::{
    fs::{self, File, OpenOptions},
    io::{self, BufWriter, Write},
    path::{Path, PathBuf},
};

pub struct RotatingFile {
    path: PathBuf,
    max_bytes: u64,
    keep: u32,
    file: BufWriter<File>,
    size: u64,
}

impl RotatingFile {
    pub fn open(path: &Path, max_bytes: u64, keep: u32) -> io::Result<Self> {
        let file = open(path)?;
        let size = file.metadata()?.len();
        Ok(Self {
            path: path.to_path_buf(),
            max_bytes,
            keep,
            file: BufWriter::new(file),
            size,
        })
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.file.flush()?;
        let numbered = |n: u32| PathBuf::from(format!("{}.{n}", self.path.display()));
        if self.keep == 0 {
            fs::remove_file(&self.path)?;
        } else {
            let _ = fs::remove_file(numbered(self.keep));
            for n in (1..self.keep).rev() {
                let from = numbered(n);
                if from.exists() {
                    fs::rename(&from, numbered(n + 1))?;
                }
            }
            fs::rename(&self.path, numbered(1))?;
        }
        self.file = BufWriter::new(open(&self.path)?);
        self.size = 0;
        Ok(())
    }
}

impl Write for RotatingFile {
    /// Writes whole records (the sinks write one line per call), rotating before a
    /// record that would take the file past its limit.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.size > 0 && self.size + buf.len() as u64 > self.max_bytes {
            self.rotate()?;
        }
        self.file.write_all(buf)?;
        self.size += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

fn open(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| io::Error::new(e.kind(), format!("events file {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_by_size_and_keeps_a_bounded_number_of_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        let mut f = RotatingFile::open(&path, 20, 2).unwrap();
        for i in 0..7 {
            f.write_all(format!("record-{i:02}\n").as_bytes()).unwrap();
        }
        f.flush().unwrap();
        // 10 bytes a record, 20 a file: two per file, newest in `path`.
        assert_eq!(fs::read_to_string(&path).unwrap(), "record-06\n");
        let one = fs::read_to_string(dir.path().join("events.jsonl.1")).unwrap();
        assert_eq!(one, "record-04\nrecord-05\n");
        let two = fs::read_to_string(dir.path().join("events.jsonl.2")).unwrap();
        assert_eq!(two, "record-02\nrecord-03\n");
        assert!(!dir.path().join("events.jsonl.3").exists());
    }
}
