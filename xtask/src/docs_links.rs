//! The README's promise that nothing the documentation cites is missing, as a test.
//!
//! Read: README.md, docs/**/*.md and deploy/**/*.md. Checked, outside fenced code blocks:
//!
//! - every relative Markdown link `[text](path)` / `[text](path#anchor)` (and reference
//!   definitions `[label]: path`): the path, relative to the file that holds the link,
//!   exists, and an anchor into a Markdown file (or `#anchor` into the same file) is one
//!   of its headings, slugged as GitHub does; links with a scheme (`https:`, `mailto:`)
//!   are not followed;
//! - every code span that names a path into the repository (it starts with `userspace/`,
//!   `ebpf/`, `common/`, `xtask/`, `tests/`, `docs/`, `policies/`, `deploy/` or
//!   `benchclients/`): that path exists, relative to the workspace root, after a
//!   trailing `:line` is cut off; spans with `*`, `<`, `{` or a space are patterns or
//!   placeholders and are skipped;
//! - the same repository paths written as plain text (`see tests/tests/gate.rs`), when
//!   they end in a file name with an extension.

use std::{
    collections::{BTreeMap, HashMap},
    fmt, io,
    path::{Component, Path, PathBuf},
};

/// The folders a path into the repository starts with.
const REPO_DIRS: &[&str] = &[
    "userspace/",
    "ebpf/",
    "common/",
    "xtask/",
    "tests/",
    "docs/",
    "policies/",
    "deploy/",
    "benchclients/",
];

/// The extensions that make a plain-text mention a file name rather than a word.
const PLAIN_EXTENSIONS: &[&str] = &["rs", "py", "md", "yaml", "json", "service", "toml"];

/// One thing a document cites that is not there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The document, relative to the workspace root.
    pub file: PathBuf,
    /// 1-based.
    pub line: usize,
    pub what: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file.display(), self.line, self.what)
    }
}

/// README.md, then every `*.md` under docs/ and deploy/, sorted.
pub fn documents(root: &Path) -> io::Result<Vec<PathBuf>> {
    let mut files = vec![root.join("README.md")];
    for dir in ["docs", "deploy"] {
        let mut found = Vec::new();
        markdown_under(&root.join(dir), &mut found)?;
        found.sort();
        files.extend(found);
    }
    Ok(files)
}

fn markdown_under(dir: &Path, out: &mut Vec<PathBuf>) -> io::Result<()> {
    if !dir.is_dir() {
        return Ok(());
    }
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            markdown_under(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "md") {
            out.push(path);
        }
    }
    Ok(())
}

/// Every problem in `files` (absolute paths under `root`).
pub fn check(root: &Path, files: &[PathBuf]) -> Vec<Problem> {
    let mut headings = Headings::default();
    let mut problems = Vec::new();
    for file in files {
        let rel = file.strip_prefix(root).unwrap_or(file).to_path_buf();
        match std::fs::read_to_string(file) {
            Ok(text) => check_text(root, file, &rel, &text, &mut headings, &mut problems),
            Err(e) => problems.push(Problem {
                file: rel,
                line: 0,
                what: format!("cannot read: {e}"),
            }),
        }
    }
    problems
}

/// The heading slugs of the Markdown files read so far.
#[derive(Default)]
struct Headings(HashMap<PathBuf, Option<Vec<String>>>);

impl Headings {
    /// `file`'s slugs, or None when it cannot be read.
    fn of(&mut self, file: &Path) -> Option<&[String]> {
        self.0
            .entry(normalize(file))
            .or_insert_with(|| std::fs::read_to_string(file).ok().map(|t| slugs(&t)))
            .as_deref()
    }
}

fn check_text(
    root: &Path,
    file: &Path,
    rel: &Path,
    text: &str,
    headings: &mut Headings,
    problems: &mut Vec<Problem>,
) {
    let dir = file.parent().unwrap_or(root);
    let mut report = |line: usize, what: String| {
        problems.push(Problem {
            file: rel.to_path_buf(),
            line,
            what,
        })
    };
    let (definitions, body) = reference_definitions(&without_fences(text));
    for (line, target) in definitions {
        check_link(dir, rel, text, &target, headings, |w| report(line, w));
    }
    for segment in segments(&body) {
        match segment.kind {
            Kind::Code => {
                let Some(path) = repo_path_in_code(segment.text.trim()) else {
                    continue;
                };
                if !root.join(path).exists() {
                    report(
                        segment.line,
                        format!("`{path}` names a path that does not exist"),
                    );
                }
            }
            Kind::Prose => {
                let (links, rest) = links(&segment.text);
                for (offset, target) in links {
                    let line = segment.line + newlines_before(&segment.text, offset);
                    check_link(dir, rel, text, &target, headings, |w| report(line, w));
                }
                for (offset, path) in plain_repo_paths(&rest) {
                    if !root.join(&path).exists() {
                        let line = segment.line + newlines_before(&rest, offset);
                        report(line, format!("{path} names a path that does not exist"));
                    }
                }
            }
        }
    }
}

/// Checks one link target found in the file `rel` (in `dir`, its text `text`), reporting
/// through `report`.
fn check_link(
    dir: &Path,
    rel: &Path,
    text: &str,
    target: &str,
    headings: &mut Headings,
    mut report: impl FnMut(String),
) {
    if has_scheme(target) {
        return;
    }
    let (path, anchor) = match target.split_once('#') {
        Some((p, a)) => (p, Some(a)),
        None => (target, None),
    };
    let slugs: Option<Vec<String>> = if path.is_empty() {
        Some(slugs(text))
    } else {
        let resolved = dir.join(path);
        if !resolved.exists() {
            report(format!("link `{target}`: {path} does not exist"));
            return;
        }
        match anchor {
            Some(_) if resolved.extension().is_some_and(|e| e == "md") => {
                headings.of(&resolved).map(<[String]>::to_vec)
            }
            _ => None,
        }
    };
    let (Some(anchor), Some(slugs)) = (anchor, slugs) else {
        return;
    };
    if !slugs.iter().any(|s| s == anchor) {
        let in_file = if path.is_empty() {
            rel.display().to_string()
        } else {
            path.to_owned()
        };
        report(format!(
            "link `{target}`: no heading `#{anchor}` in {in_file}"
        ));
    }
}

/// `scheme:` at the start (https:, mailto:, ...).
fn has_scheme(target: &str) -> bool {
    match target.split_once(':') {
        Some((scheme, _)) => {
            scheme.starts_with(|c: char| c.is_ascii_alphabetic())
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+.-".contains(c))
        }
        None => false,
    }
}

/// `path` with `.` and `..` resolved lexically, as the key of a file.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// The text with the lines of fenced code blocks (``` or ~~~) blanked, so line numbers
/// stay.
fn without_fences(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut fence: Option<(char, usize)> = None;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_start();
        let run = |c: char| trimmed.chars().take_while(|&x| x == c).count();
        let blank = match fence {
            Some((c, n)) => {
                if run(c) >= n && trimmed.trim_start_matches(c).trim().is_empty() {
                    fence = None;
                }
                true
            }
            None => {
                for c in ['`', '~'] {
                    if run(c) >= 3 {
                        fence = Some((c, run(c)));
                    }
                }
                fence.is_some()
            }
        };
        if blank {
            out.extend(line.chars().filter(|&c| c == '\n'));
        } else {
            out.push_str(line);
        }
    }
    out
}

/// The GitHub anchors of the headings of a Markdown text, duplicates numbered `-1`, `-2`.
pub fn slugs(text: &str) -> Vec<String> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut out = Vec::new();
    for line in without_fences(text).lines() {
        let Some(heading) = heading(line) else {
            continue;
        };
        let slug = slug(&heading);
        let n = seen.entry(slug.clone()).or_insert(0);
        out.push(if *n == 0 { slug } else { format!("{slug}-{n}") });
        *n += 1;
    }
    out
}

/// The text of an ATX heading line (`## Text ##`), links reduced to their text.
fn heading(line: &str) -> Option<String> {
    let indent = line.len() - line.trim_start_matches(' ').len();
    let rest = &line[indent..];
    let level = rest.chars().take_while(|&c| c == '#').count();
    if indent > 3 || !(1..=6).contains(&level) {
        return None;
    }
    let rest = &rest[level..];
    if !(rest.is_empty() || rest.starts_with([' ', '\t'])) {
        return None;
    }
    let mut text = rest.trim();
    // A closing run of #s, after a space.
    let closed = text.trim_end_matches('#');
    if closed.is_empty() || closed.ends_with([' ', '\t']) {
        text = closed.trim_end();
    }
    Some(strip_links(text))
}

/// `[label](target)` replaced by `label`.
fn strip_links(text: &str) -> String {
    let mut s = text.to_owned();
    while let Some(mid) = s.find("](") {
        let (Some(open), Some(close)) = (s[..mid].rfind('['), s[mid..].find(')')) else {
            break;
        };
        let label = s[open + 1..mid].to_owned();
        s.replace_range(open..mid + close + 1, &label);
    }
    s
}

/// GitHub's anchor for a heading: lowercase; only letters, digits, spaces, hyphens and
/// underscores kept; spaces become hyphens.
pub fn slug(heading: &str) -> String {
    heading
        .to_lowercase()
        .chars()
        .filter(|&c| c.is_alphanumeric() || c == ' ' || c == '-' || c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Prose,
    Code,
}

/// A stretch of a text: a code span's content or the prose between code spans.
#[derive(Debug)]
struct Segment {
    kind: Kind,
    /// The line it starts on, 1-based.
    line: usize,
    text: String,
}

/// The text cut into prose and code spans. A run of N backticks opens a span that the
/// next run of exactly N closes; a run with no closing one is prose.
fn segments(text: &str) -> Vec<Segment> {
    let bytes = text.as_bytes();
    let run_at = |i: usize| bytes[i..].iter().take_while(|&&b| b == b'`').count();
    let mut out = Vec::new();
    let mut line = 1;
    let mut prose_start = 0;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'`' {
            i += 1;
            continue;
        }
        let n = run_at(i);
        // The closing run: exactly n backticks.
        let mut j = i + n;
        let mut close = None;
        while j < bytes.len() {
            if bytes[j] == b'`' {
                let m = run_at(j);
                if m == n {
                    close = Some(j);
                    break;
                }
                j += m;
            } else {
                j += 1;
            }
        }
        let Some(close) = close else {
            i += n;
            continue;
        };
        let prose = &text[prose_start..i];
        out.push(Segment {
            kind: Kind::Prose,
            line,
            text: prose.to_owned(),
        });
        line += newlines_before(prose, prose.len());
        let code = &text[i + n..close];
        out.push(Segment {
            kind: Kind::Code,
            line,
            text: code.to_owned(),
        });
        line += newlines_before(code, code.len());
        i = close + n;
        prose_start = i;
    }
    out.push(Segment {
        kind: Kind::Prose,
        line,
        text: text[prose_start..].to_owned(),
    });
    out
}

fn newlines_before(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
}

/// The inline link targets of a prose text, each with the offset of its `](`, and the
/// text with those targets blanked (so they are not read again as plain paths).
fn links(text: &str) -> (Vec<(usize, String)>, String) {
    let mut found = Vec::new();
    let mut rest = text.to_owned();
    let mut from = 0;
    while let Some(at) = text[from..].find("](") {
        let start = from + at + 2;
        let Some(len) = text[start..].find(')') else {
            break;
        };
        let inside = &text[start..start + len];
        // `[text](path "title")`: the path is the first word.
        let target = inside.split_whitespace().next().unwrap_or("");
        let target = target
            .strip_prefix('<')
            .and_then(|t| t.strip_suffix('>'))
            .unwrap_or(target);
        if !target.is_empty() {
            found.push((from + at, target.to_owned()));
            // Blanked byte for byte, so the offsets after it stay.
            let blank: String = inside
                .chars()
                .flat_map(|c| {
                    let n = if c == '\n' { 1 } else { c.len_utf8() };
                    std::iter::repeat_n(if c == '\n' { '\n' } else { ' ' }, n)
                })
                .collect();
            rest.replace_range(start..start + len, &blank);
        }
        from = start + len;
    }
    (found, rest)
}

/// Reference definitions, `[label]: target` at the start of a line, with their line, and
/// the text with those lines emptied.
fn reference_definitions(text: &str) -> (Vec<(usize, String)>, String) {
    let mut found = Vec::new();
    let mut rest = String::with_capacity(text.len());
    for (i, line) in text.split_inclusive('\n').enumerate() {
        match reference_definition(line) {
            Some(target) => {
                found.push((i + 1, target.to_owned()));
                rest.extend(line.chars().filter(|&c| c == '\n'));
            }
            None => rest.push_str(line),
        }
    }
    (found, rest)
}

fn reference_definition(line: &str) -> Option<&str> {
    let after = line.trim_start().strip_prefix('[')?;
    let (label, rest) = after.split_once("]:")?;
    if label.is_empty() || label.contains(']') {
        return None;
    }
    rest.split_whitespace().next()
}

/// The repository path a code span names, if it names one, with what follows a colon
/// (`:line`) cut off; None for what is not a path into the repository or is a pattern.
fn repo_path_in_code(span: &str) -> Option<&str> {
    if !REPO_DIRS.iter().any(|d| span.starts_with(d)) {
        return None;
    }
    if span.contains(['*', '<', '{', ' ', '\t', '\n']) {
        return None;
    }
    // `path:12`, `path:12:3`, `path:12-20`, `path::item`: the file is before the colon.
    Some(span.split_once(':').map_or(span, |(path, _)| path))
}

/// Repository paths in prose (`tests/tests/gate.rs`), each with its offset: a word that
/// starts with one of [`REPO_DIRS`], made of letters, digits and `_./-`, ending in a
/// file name with one of [`PLAIN_EXTENSIONS`].
fn plain_repo_paths(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let word = |c: char| c.is_alphanumeric() || "_./-".contains(c);
    for (i, _) in text.char_indices() {
        let before = text[..i].chars().next_back();
        if before.is_some_and(|c| word(c) || c == '`') {
            continue;
        }
        let rest = &text[i..];
        if !REPO_DIRS.iter().any(|d| rest.starts_with(d)) {
            continue;
        }
        let len = rest.find(|c: char| !word(c)).unwrap_or(rest.len());
        // A sentence's full stop, a folder's slash.
        let path = rest[..len].trim_end_matches(['.', '/', '-']);
        let is_file = Path::new(path)
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| PLAIN_EXTENSIONS.contains(&e));
        if is_file {
            out.push((i, path.to_owned()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workspace_root() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("xtask/ has a parent")
            .to_path_buf()
    }

    #[test]
    fn nothing_the_docs_cite_is_missing() {
        let root = workspace_root();
        let files = documents(&root).unwrap();
        assert!(files.len() > 3, "found only {files:?}");
        assert!(files.iter().any(|f| f.ends_with("docs/bench/egress.md")));
        assert!(
            files
                .iter()
                .any(|f| f.ends_with("deploy/container/README.md"))
        );
        let problems = check(&root, &files);
        assert!(
            problems.is_empty(),
            "{} broken reference(s) in the docs:\n{}",
            problems.len(),
            problems
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        );
    }

    #[test]
    fn slugs_follow_github() {
        assert_eq!(
            slug("Syscalls: `cargo xtask bench syscalls`"),
            "syscalls-cargo-xtask-bench-syscalls"
        );
        assert_eq!(
            slug("Container runtime sockets, by the socket"),
            "container-runtime-sockets-by-the-socket"
        );
        assert_eq!(
            slug("The runtime's set-up is not_it"),
            "the-runtimes-set-up-is-not_it"
        );
        assert_eq!(
            slugs("# A\n## A\n```\n# not a heading\n```\n### A ###\n#nope\n## [Link](x.md) too\n"),
            ["a", "a-1", "a-2", "link-too"]
        );
    }

    #[test]
    fn code_spans_and_links_are_found_where_they_are() {
        let text = "a `x` b [l](p.md)\nc ``d ` e`` [m](\nq.md#h \"t\")";
        let segs = segments(text);
        let kinds: Vec<_> = segs
            .iter()
            .map(|s| (s.kind, s.line, s.text.as_str()))
            .collect();
        assert_eq!(
            kinds,
            [
                (Kind::Prose, 1, "a "),
                (Kind::Code, 1, "x"),
                (Kind::Prose, 1, " b [l](p.md)\nc "),
                (Kind::Code, 2, "d ` e"),
                (Kind::Prose, 2, " [m](\nq.md#h \"t\")"),
            ]
        );
        let (found, _) = links(&segs[4].text);
        assert_eq!(found, [(3, "q.md#h".to_owned())]);
        assert_eq!(repo_path_in_code("tests/x.rs:12"), Some("tests/x.rs"));
        assert_eq!(repo_path_in_code("tests/x.rs:12:3"), Some("tests/x.rs"));
        assert_eq!(repo_path_in_code("docs/bench/<name>.md"), None);
        assert_eq!(repo_path_in_code("policies/*.yaml"), None);
        assert_eq!(repo_path_in_code("src/x.rs"), None);
        assert_eq!(
            plain_repo_paths("see tests/tests/a.rs. Or xtask/ and `docs/b.md`, x/docs/c.md"),
            [(4, "tests/tests/a.rs".to_owned())]
        );
    }

    /// A scratch directory, removed when dropped.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(name: &str) -> Self {
            let dir = std::env::temp_dir()
                .join(format!("xtask-docs-links-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(dir.join("docs/bench")).unwrap();
            Self(dir)
        }

        fn write(&self, rel: &str, text: &str) -> PathBuf {
            let path = self.0.join(rel);
            std::fs::write(&path, text).unwrap();
            path
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn broken_links_missing_anchors_and_missing_paths_are_reported() {
        let tree = Scratch::new("broken");
        tree.write("docs/there.md", "# There\n\n## Some `code`, here\n");
        tree.write("docs/bench/r.md", "# R\n[up](../there.md#there)\n");
        tree.write(
            "README.md",
            "# Top\n\
             [ok](docs/there.md) [ok](docs/there.md#some-code-here) [ok](docs/bench/)\n\
             [gone](docs/gone.md)\n\
             [bad anchor](docs/there.md#nowhere) [web](https://example.invalid/x) \
             [mail](mailto:a@b.invalid)\n\
             [here](#top) [not here](#bottom)\n\
             `docs/there.md:3` `docs/` `tests/missing.rs:10` `docs/bench/<name>.md`\n\
             ```sh\n[in a fence](nowhere.md) `tests/fenced.rs`\n```\n\
             a [split\nlink](docs/also-gone.md) and plain xtask/src/gone.rs.\n\
             [ref]: docs/no-ref.md\n",
        );
        let files = documents(&tree.0).unwrap();
        assert_eq!(files.len(), 3, "{files:?}");
        let problems: Vec<String> = check(&tree.0, &files)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            problems,
            [
                "README.md:12: link `docs/no-ref.md`: docs/no-ref.md does not exist",
                "README.md:3: link `docs/gone.md`: docs/gone.md does not exist",
                "README.md:4: link `docs/there.md#nowhere`: no heading `#nowhere` in docs/there.md",
                "README.md:5: link `#bottom`: no heading `#bottom` in README.md",
                "README.md:6: `tests/missing.rs` names a path that does not exist",
                "README.md:11: link `docs/also-gone.md`: docs/also-gone.md does not exist",
                "README.md:11: xtask/src/gone.rs names a path that does not exist",
            ]
        );
    }
}
