//! The HTTP sink against a local receiver that applies falcosidekick's input checks
//! (a POST, a known priority, a non-empty rule, a non-zero time, non-empty
//! output_fields, Kubernetes fields as strings or null): alerts from a real Docker
//! container arrive with its identity and the configured host name; a receiver that
//! never answers loses records, counted, and never stalls the agent.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{TcpListener, TcpStream},
    sync::{Arc, Mutex},
    time::Duration,
};

use cgwarden_tests::{
    ProfileFile,
    agent::{RunningAgent, scrape},
    engines, exec_full, require_root, wait_for,
};
use serde_json::Value;

/// How the receiver answers.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Behaviour {
    /// falcosidekick's checks: 200 for a valid alert, 400 otherwise.
    Sidekick,
    /// Reads requests and never answers.
    Hang,
}

/// A local HTTP receiver on 127.0.0.1, one thread per connection.
struct Receiver {
    port: u16,
    accepted: Arc<Mutex<Vec<Value>>>,
    refused: Arc<Mutex<Vec<String>>>,
    requests: Arc<Mutex<u64>>,
}

impl Receiver {
    fn start(behaviour: Behaviour) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let r = Self {
            port,
            accepted: Arc::default(),
            refused: Arc::default(),
            requests: Arc::default(),
        };
        let (accepted, refused, requests) = (
            Arc::clone(&r.accepted),
            Arc::clone(&r.refused),
            Arc::clone(&r.requests),
        );
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let (accepted, refused, requests) = (
                    Arc::clone(&accepted),
                    Arc::clone(&refused),
                    Arc::clone(&requests),
                );
                std::thread::spawn(move || {
                    serve(conn, behaviour, &accepted, &refused, &requests);
                });
            }
        });
        r
    }

    fn url(&self) -> String {
        format!("falco:http://127.0.0.1:{}/", self.port)
    }

    fn accepted(&self) -> Vec<Value> {
        self.accepted.lock().unwrap().clone()
    }

    fn refused(&self) -> Vec<String> {
        self.refused.lock().unwrap().clone()
    }
}

/// Serves one kept-alive connection.
fn serve(
    conn: TcpStream,
    behaviour: Behaviour,
    accepted: &Mutex<Vec<Value>>,
    refused: &Mutex<Vec<String>>,
    requests: &Mutex<u64>,
) {
    let mut writer = conn.try_clone().unwrap();
    let mut reader = BufReader::new(conn);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let method = line.split_whitespace().next().unwrap_or("").to_owned();
        let mut length = 0usize;
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 {
                return;
            }
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((k, v)) = header.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                length = v.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        *requests.lock().unwrap() += 1;
        if behaviour == Behaviour::Hang {
            continue;
        }
        let verdict = if method != "POST" {
            Err("Please send with post http method".to_owned())
        } else {
            serde_json::from_slice::<Value>(&body)
                .map_err(|e| format!("Please send a valid request body: {e}"))
                .and_then(|alert| sidekick_check(&alert).map(|()| alert))
        };
        let reply = match verdict {
            Ok(alert) => {
                accepted.lock().unwrap().push(alert);
                "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".to_owned()
            }
            Err(why) => {
                refused.lock().unwrap().push(why.clone());
                format!(
                    "HTTP/1.1 400 Bad Request\r\nContent-Length: {}\r\n\r\n{why}",
                    why.len()
                )
            }
        };
        if writer.write_all(reply.as_bytes()).is_err() {
            return;
        }
    }
}

/// falcosidekick's `FalcoPayload.Check()` and what its decoder needs.
fn sidekick_check(alert: &Value) -> Result<(), String> {
    const PRIORITIES: [&str; 9] = [
        "emergency",
        "alert",
        "critical",
        "error",
        "warning",
        "notice",
        "informational",
        "info",
        "debug",
    ];
    let priority = alert["priority"]
        .as_str()
        .ok_or("priority is not a string")?;
    if !PRIORITIES.contains(&priority.to_ascii_lowercase().as_str()) {
        return Err(format!("unknown priority {priority}"));
    }
    if alert["rule"].as_str().is_none_or(str::is_empty) {
        return Err("empty rule".into());
    }
    let time = alert["time"].as_str().ok_or("time is not a string")?;
    let rfc3339 = time.len() >= 20 && time.as_bytes()[10] == b'T' && time.ends_with('Z');
    if !rfc3339 || time.starts_with("0001-01-01") {
        return Err(format!("zero or bad time {time}"));
    }
    let fields = alert["output_fields"]
        .as_object()
        .ok_or("output_fields is not an object")?;
    if fields.is_empty() {
        return Err("empty output_fields".into());
    }
    for k8s in ["k8s.ns.name", "k8s.pod.name"] {
        if let Some(v) = fields.get(k8s)
            && !(v.is_null() || v.is_string())
        {
            return Err(format!("{k8s} is neither a string nor null"));
        }
    }
    Ok(())
}

#[test]
fn falco_alerts_from_a_docker_container_reach_a_sidekick_receiver_with_its_identity() {
    require_root();
    engines::docker();
    let receiver = Receiver::start(Behaviour::Sidekick);
    let name = engines::name("posted");
    let profile = ProfileFile::new(&format!(
        "name: posted\nmode: enforce\nselector:\n  name: \"{name}\"\negress:\n  default: deny\n"
    ));
    let hostname = std::path::Path::new("node-7.example");
    let agent = RunningAgent::start_with_env(
        profile.path(),
        &["--sink", &receiver.url(), "--metrics-per-container"],
        &[("CGWARDEN_HOSTNAME", hostname)],
    );
    // It stays up after its connect: per-container series go when its cgroup goes.
    let _container = engines::DockerContainer::start(
        &name,
        &["--network", "none"],
        &["sh", "-c", "nc -w 1 127.0.0.9 4242 </dev/null; sleep 60"],
    );
    let alert = wait_for(Duration::from_secs(10), || {
        receiver
            .accepted()
            .into_iter()
            .find(|a| a["output_fields"]["fd.sport"] == 4242)
    })
    .unwrap_or_else(|| {
        panic!(
            "no alert accepted; refused: {:?}\n{}",
            receiver.refused(),
            agent.log()
        )
    });
    assert!(receiver.refused().is_empty(), "{:?}", receiver.refused());
    assert_eq!(alert["rule"], "cgwarden egress denied");
    assert_eq!(alert["hostname"], "node-7.example");
    let f = &alert["output_fields"];
    assert_eq!(f["container.name"], name.as_str(), "{f}");
    let id = f["container.id"].as_str().unwrap_or_default();
    assert_eq!(id.len(), 64, "{f}");
    assert!(
        f["container.image.repository"]
            .as_str()
            .is_some_and(|r| engines::docker_image().starts_with(r)),
        "{f}"
    );
    assert!(f["k8s.pod.name"].is_null(), "{f}");
    // Delivered and counted; nothing dropped.
    let (_, status, _) = agent.client("status -o json");
    let status: Value = serde_json::from_str(&status).unwrap();
    let sink = &status["sinks"][0];
    assert!(sink["delivered"].as_u64().unwrap() >= 1, "{sink}");
    assert_eq!(sink["dropped_failed"], 0, "{sink}");
    assert_eq!(sink["dropped_queue_full"], 0, "{sink}");
    let (_, table, _) = agent.client("status");
    assert!(
        table.contains(&format!("sink http://127.0.0.1:{}/: ", receiver.port))
            && table.contains(" 0 dropped "),
        "{table}"
    );
    let metrics = scrape(agent.metrics_addr());
    assert!(
        metrics.lines().any(|l| l.starts_with(&format!(
            "cgwarden_sink_records_total{{sink=\"http://127.0.0.1:{}/\",outcome=\"delivered\"}}",
            receiver.port
        ))),
        "{metrics}"
    );
    // Per-container series name the container the engine named.
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("cgwarden_flows_total{")
                && l.contains(&format!("container=\"{name}\""))
                && l.contains("verdict=\"deny\"")),
        "{metrics}"
    );
}

#[test]
fn a_receiver_that_never_answers_loses_records_counted_and_never_stalls_the_agent() {
    require_root();
    let receiver = Receiver::start(Behaviour::Hang);
    let profile = ProfileFile::new("name: hang\nmode: enforce\negress:\n  default: deny\n");
    // Ten thousand distinct refused connects (each port its own flow): more than the
    // sink's queue holds while its first request waits for an answer that never comes.
    const FLOWS: u32 = 10_000;
    let script = format!(
        "import socket\nfor port in range(20000, 20000 + {FLOWS}):\n    s = socket.socket()\n    try:\n        s.connect(('127.0.0.9', port))\n    except OSError:\n        pass\n    s.close()\nprint('done')\n"
    );
    let sink = receiver.url();
    let out = exec_full(
        profile.path(),
        &["--sink", &sink],
        &["python3", "-c", &script],
        "",
    );
    assert_eq!(out.stdout, "done\n", "{out:?}");
    // The JSON sink beside it got every one: the agent went on.
    let connects = out
        .events
        .iter()
        .filter(|e| e["kind"] == "connect" && e["verdict"] == "deny")
        .count();
    assert_eq!(connects, FLOWS as usize, "{}", out.stderr);
    // The HTTP sink's losses are said, not hidden.
    assert!(*receiver.requests.lock().unwrap() >= 1);
    assert!(
        out.stderr.contains("queue full"),
        "no loss reported:\n{}",
        out.stderr
    );
    let summary = out
        .stderr
        .lines()
        .find(|l| l.contains("records dropped in all"))
        .unwrap_or_else(|| panic!("no closing count:\n{}", out.stderr));
    let dropped: u64 = summary
        .split("records dropped in all")
        .next()
        .and_then(|s| s.split_whitespace().last())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{summary}"));
    assert!(
        dropped >= u64::from(FLOWS) - cgwarden_queue_records(),
        "{summary}"
    );
}

/// The sink's queue length, as the agent's source states it.
fn cgwarden_queue_records() -> u64 {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let source = std::fs::read_to_string(root.join("userspace/src/output/http.rs")).unwrap();
    source
        .lines()
        .find_map(|l| l.strip_prefix("pub const QUEUE_RECORDS: usize = "))
        .and_then(|v| v.trim_end_matches(';').replace('_', "").parse().ok())
        .expect("QUEUE_RECORDS in output/http.rs")
}
