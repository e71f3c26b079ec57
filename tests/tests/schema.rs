//! The events' JSON Schema (docs/events.schema.json) is strict enough to fail: every
//! event any test reads is validated against it (the harness's `read_events`), and
//! here a real event validates while the same event with a field missing, added or
//! mistyped does not.

use cgwarden_tests::{ProfileFile, event_schema, exec, netprobe, require_root};
use serde_json::Value;

#[test]
fn a_real_event_validates_and_a_changed_one_does_not() {
    require_root();
    let profile = ProfileFile::new("name: schema\nmode: enforce\negress:\n  default: deny\n");
    let probe = netprobe();
    let out = exec(
        profile.path(),
        &[probe.to_str().unwrap(), "tcp", "127.0.0.9:4242"],
    );
    let event = out
        .events
        .iter()
        .find(|e| e["kind"] == "connect")
        .unwrap_or_else(|| panic!("no connect event: {out:?}"))
        .clone();
    assert_eq!(event["schema_version"], 1, "{event}");
    let schema = event_schema();
    assert!(schema.is_valid(&event), "{event}");
    let changed = |f: &dyn Fn(&mut serde_json::Map<String, Value>)| {
        let mut e = event.clone();
        f(e.as_object_mut().unwrap());
        e
    };
    for (what, bad) in [
        (
            "no schema_version",
            changed(&|e| drop(e.remove("schema_version"))),
        ),
        (
            "an undocumented field",
            changed(&|e| drop(e.insert("bogus".into(), 1.into()))),
        ),
        (
            "an unknown kind",
            changed(&|e| drop(e.insert("kind".into(), "teleport".into()))),
        ),
        (
            "a port that is text",
            changed(&|e| drop(e.insert("port".into(), "4242".into()))),
        ),
        ("no verdict", changed(&|e| drop(e.remove("verdict")))),
    ] {
        assert!(!schema.is_valid(&bad), "{what} validated: {bad}");
    }
}
