//! `cgwarden check`: a profile it accepts contains nothing that is ignored; every
//! invalid value is an error at its file:line:column, and a rule that can never match
//! is a warning.

use std::process::Command;

use cgwarden_tests::{ProfileFile, cgwarden};

fn check(yaml: &str) -> (Option<i32>, String, String, String) {
    let p = ProfileFile::new(yaml);
    let out = Command::new(cgwarden())
        .arg("check")
        .arg(p.path())
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        p.path().display().to_string(),
    )
}

#[test]
fn invalid_selector_values_are_errors_with_their_position() {
    let (code, _, err, file) = check("name: a\nmode: audit\nselector:\n  container: \"[x\"\n");
    assert_eq!(code, Some(1));
    assert!(err.contains(&format!("{file}:4:14")), "{err}");
    assert!(err.contains("invalid glob `[x`"), "{err}");
    let (code, _, err, file) = check("name: a\nmode: audit\nselector:\n  runtime: dockr\n");
    assert_eq!(code, Some(1));
    assert!(err.contains(&format!("{file}:4:")), "{err}");
    assert!(err.contains("unknown runtime `dockr`"), "{err}");
    let (code, _, err, _) =
        check("name: a\nmode: audit\nselector:\n  compose:\n    project: shop\n    servce: web\n");
    assert_eq!(code, Some(1), "a misspelt key is not ignored: {err}");
    assert!(err.contains(":6:"), "{err}");
}

#[test]
fn rules_that_can_never_match_are_warnings() {
    let (code, out, err, file) = check(
        "name: a\nmode: enforce\negress:\n  default: deny\n  allow:\n    - name: web\n      to: 192.0.2.1\n      ports: [443]\n  deny:\n    - to: 192.0.2.1\n",
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("is valid"), "{out}");
    assert!(
        err.contains(&format!("{file}: warning: rule `web` can never match")),
        "{err}"
    );
}
