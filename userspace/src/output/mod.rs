//! Where events go. Each sink pairs a format (cgwarden's JSON lines, or Falco-compatible
//! JSON so an existing falcosidekick forwards cgwarden alerts unchanged) with a target
//! (standard output or error, a file rotated by size, syslog, or an HTTP receiver).
//!
//! Sinks are written as `FORMAT:TARGET` on the command line and in the agent's config
//! file: `json:-`, `json:stderr`, `falco:/var/log/cgwarden.json`, `json:syslog`,
//! `falco:syslog=/run/other.sock`, `falco:http://127.0.0.1:2801/`.
//!
//! Beside the sinks: the Prometheus counters ([`metrics`]). The followers of the
//! control socket (`cgwarden events`) are served by `control`.

mod falco;
pub mod http;
pub mod metrics;
mod rotate;
mod syslog;

use std::{
    fs::OpenOptions,
    io::{self, BufWriter, Write},
    path::PathBuf,
    str::FromStr,
};

use crate::events::{Record, SCHEMA_VERSION};

/// How records are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One cgwarden JSON object per line.
    Json,
    /// One Falco-compatible JSON object per line.
    Falco,
}

/// Where records are written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Stdout,
    Stderr,
    /// A file, appended to; rotated when it reaches `max_bytes` (0: never), keeping
    /// `keep` old files (`path.1` newest).
    File {
        path: PathBuf,
        max_bytes: u64,
        keep: u32,
    },
    /// A syslog socket (`/dev/log` unless given).
    Syslog(PathBuf),
    /// An HTTP receiver (falcosidekick, a webhook), posted to by a thread of its own.
    Http(http::Url),
}

/// A parsed `FORMAT:TARGET`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkSpec {
    pub format: Format,
    pub target: Target,
}

/// Default rotation for file sinks given on the command line.
pub const DEFAULT_MAX_BYTES: u64 = 100 * 1024 * 1024;
pub const DEFAULT_KEEP: u32 = 5;

impl FromStr for SinkSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (format, target) = s.split_once(':').ok_or_else(|| {
            format!("sink `{s}` must be FORMAT:TARGET, e.g. json:- or falco:/var/log/cgwarden.json")
        })?;
        let format = match format {
            "json" => Format::Json,
            "falco" => Format::Falco,
            other => return Err(format!("unknown sink format `{other}` (json or falco)")),
        };
        let target = match target {
            "-" | "stdout" => Target::Stdout,
            "stderr" => Target::Stderr,
            "syslog" => Target::Syslog(PathBuf::from("/dev/log")),
            t if t.starts_with("syslog=") => Target::Syslog(PathBuf::from(&t["syslog=".len()..])),
            t if t.starts_with("http://") || t.starts_with("https://") => {
                Target::Http(t.parse().map_err(|e| format!("sink `{s}`: {e}"))?)
            }
            "" => return Err(format!("sink `{s}` has no target")),
            path => Target::File {
                path: PathBuf::from(path),
                max_bytes: DEFAULT_MAX_BYTES,
                keep: DEFAULT_KEEP,
            },
        };
        Ok(Self { format, target })
    }
}

/// Creates an events file's directory (mode 0750) when it is missing, so a fresh
/// host or image starts with the default `/var/log/cgwarden/events.jsonl`.
fn ensure_parent(path: &std::path::Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() && !dir.exists() => std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o750)
            .create(dir)
            .map_err(|e| {
                io::Error::new(e.kind(), format!("events directory {}: {e}", dir.display()))
            }),
        _ => Ok(()),
    }
}

/// The open sinks.
pub struct Sinks {
    outputs: Vec<(Format, Box<dyn Write + Send>)>,
    hostname: String,
    /// The HTTP sinks' delivery counts.
    http: Vec<http::HealthHandle>,
    /// The JSON line being written, reused from record to record.
    line: Vec<u8>,
}

impl Sinks {
    pub fn open(specs: &[SinkSpec]) -> io::Result<Self> {
        let mut outputs: Vec<(Format, Box<dyn Write + Send>)> = Vec::new();
        let mut health = Vec::new();
        for spec in specs {
            if let Target::File { path, .. } = &spec.target {
                ensure_parent(path)?;
            }
            let writer: Box<dyn Write + Send> = match &spec.target {
                Target::Stdout => Box::new(BufWriter::new(io::stdout())),
                Target::Stderr => Box::new(BufWriter::new(io::stderr())),
                Target::File {
                    path, max_bytes: 0, ..
                } => Box::new(BufWriter::new(
                    OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(path)
                        .map_err(|e| {
                            io::Error::new(e.kind(), format!("events file {}: {e}", path.display()))
                        })?,
                )),
                Target::File {
                    path,
                    max_bytes,
                    keep,
                } => Box::new(rotate::RotatingFile::open(path, *max_bytes, *keep)?),
                Target::Syslog(socket) => Box::new(syslog::Syslog::connect(socket)?),
                Target::Http(url) => {
                    let sink = http::HttpSink::start(url.clone(), spec.format)?;
                    health.push(sink.health_handle());
                    Box::new(sink)
                }
            };
            outputs.push((spec.format, writer));
        }
        Ok(Self {
            outputs,
            hostname: hostname(),
            http: health,
            line: Vec::with_capacity(1024),
        })
    }

    /// What each HTTP sink has delivered and dropped so far.
    pub fn health(&self) -> Vec<http::Health> {
        self.http.iter().map(http::HealthHandle::health).collect()
    }

    /// The host name Falco alerts carry instead of the kernel's.
    pub fn set_hostname(&mut self, name: &str) {
        name.trim().clone_into(&mut self.hostname);
    }

    /// Writes one record to every sink; a sink that fails does not keep the others
    /// from it. Returns the first failure.
    pub fn emit(&mut self, record: &Record) -> io::Result<()> {
        let mut json_written = false;
        let mut falco: Option<Vec<u8>> = None;
        let mut failed = Ok(());
        for (format, out) in &mut self.outputs {
            let line: &[u8] = match format {
                Format::Json => {
                    if !json_written {
                        write_record_line(&mut self.line, record);
                        json_written = true;
                    }
                    &self.line
                }
                Format::Falco => {
                    falco.get_or_insert_with(|| line_of(&falco::to_falco(record, &self.hostname)))
                }
            };
            if let Err(e) = out.write_all(line)
                && failed.is_ok()
            {
                failed = Err(e);
            }
        }
        failed
    }

    /// Flushes every sink; returns the first failure.
    pub fn flush(&mut self) -> io::Result<()> {
        let mut failed = Ok(());
        for (_, out) in &mut self.outputs {
            if let Err(e) = out.flush()
                && failed.is_ok()
            {
                failed = Err(e);
            }
        }
        failed
    }
}

/// A record as one JSON line, its schema version first: `{"schema_version":1,` and then
/// the record's own fields (a record is always a JSON object; written so, it needs no
/// second pass of serde's `flatten`, which would cost every event).
pub fn record_line(record: &Record) -> Vec<u8> {
    let mut line = Vec::with_capacity(512);
    write_record_line(&mut line, record);
    line
}

/// [`record_line`] into `line` (emptied first), which keeps its capacity: serialized in
/// place, the record's opening brace becoming the comma after the version.
pub fn write_record_line(line: &mut Vec<u8>, record: &Record) {
    use std::io::Write as _;
    line.clear();
    let _ = write!(line, "{{\"schema_version\":{SCHEMA_VERSION}");
    let start = line.len();
    match serde_json::to_writer(&mut *line, record) {
        Ok(()) if line.len() > start + 2 && line[start] == b'{' => {
            line[start] = b',';
            line.push(b'\n');
        }
        Ok(()) => {
            line.truncate(start);
            line.extend_from_slice(b",\"kind\":\"error\",\"error\":\"an empty record\"}\n");
        }
        Err(e) => {
            line.clear();
            line.extend_from_slice(&line_of(&serde_json::json!({
                "schema_version": SCHEMA_VERSION,
                "kind": "error",
                "error": format!("unserialisable record: {e}"),
            })));
        }
    }
}

/// A value as one JSON line.
pub fn line_of<T: serde::Serialize>(value: &T) -> Vec<u8> {
    let mut line = serde_json::to_vec(value).unwrap_or_else(|e| {
        format!("{{\"kind\":\"error\",\"error\":\"unserialisable record: {e}\"}}").into_bytes()
    });
    line.push(b'\n');
    line
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_line_says_its_schema_version_first() {
        let record = Record::Lost(crate::events::LostRecord::ring_buffer_full("t".into(), 3));
        let line = record_line(&record);
        assert!(
            line.starts_with(b"{\"schema_version\":1,\"time\":\"t\""),
            "{}",
            String::from_utf8_lossy(&line)
        );
        assert!(line.ends_with(b"}\n"));
        let v: serde_json::Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(v["count"], 3);
        assert_eq!(v["kind"], "lost");
    }

    #[test]
    fn parses_sink_specs() {
        assert_eq!(
            "json:-".parse::<SinkSpec>().unwrap(),
            SinkSpec {
                format: Format::Json,
                target: Target::Stdout
            }
        );
        assert_eq!(
            "falco:syslog".parse::<SinkSpec>().unwrap().target,
            Target::Syslog(PathBuf::from("/dev/log"))
        );
        assert!(matches!(
            "json:/var/log/x.json".parse::<SinkSpec>().unwrap().target,
            Target::File {
                max_bytes: DEFAULT_MAX_BYTES,
                ..
            }
        ));
        assert!(matches!(
            "falco:http://127.0.0.1:2801/"
                .parse::<SinkSpec>()
                .unwrap()
                .target,
            Target::Http(_)
        ));
        assert!("falco:https://x/".parse::<SinkSpec>().is_err());
        assert!("xml:-".parse::<SinkSpec>().is_err());
        assert!("json".parse::<SinkSpec>().is_err());
    }
}
