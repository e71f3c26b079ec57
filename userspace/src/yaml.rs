//! Reading YAML (profiles, the agent's configuration, Compose files) with serde-saphyr.
//!
//! Every error carries the line and column of the key or value it is about, as the
//! parser saw it: a bad value where the value is written, an unknown or repeated key
//! where that key is written (the second time, for a repeated one). Checks made after
//! parsing take their positions from [`Spanned`] fields ([`Position::of`]).

use std::{borrow::Cow, fmt};

use serde::de::DeserializeOwned;
use serde_saphyr::{
    Budget, DuplicateKeyPolicy, Error, Localizer, Location, MergeKeyPolicy, MessageFormatter,
    Options, SnippetMode, Spanned, UserMessageFormatter,
};

/// A 1-based line and column (in characters) in a YAML text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

impl Position {
    /// The start of the text, for what is about the whole document.
    pub const START: Self = Self { line: 1, column: 1 };

    /// Where a spanned value is written (for a value reached through an alias: where the
    /// alias is). An unknown location (which serde-saphyr gives under
    /// `#[serde(flatten)]` and untagged enums, neither used around a `Spanned`) is the
    /// start of the text.
    pub fn of<T>(spanned: &Spanned<T>) -> Self {
        Self::from_location(spanned.referenced).unwrap_or(Self::START)
    }

    fn from_location(location: Location) -> Option<Self> {
        let line = usize::try_from(location.line()).ok()?;
        let column = usize::try_from(location.column()).ok()?;
        (line > 0 && column > 0).then_some(Self { line, column })
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// A YAML text that is not what was expected, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{at}: {message}")]
pub struct YamlError {
    pub at: Position,
    pub message: String,
}

/// The options for files cgwarden owns (profiles, the agent config): one document, every
/// key once, no merge keys (`<<`, which let a later key silently override a merged one)
/// and no tags (which would be dropped), booleans only `true`/`false` (YAML 1.2, as
/// before: `yes` is not a boolean).
pub fn strict() -> Options {
    let mut o = Options::default();
    // A profile may list as many rules as the kernel has egress entries, a handful of
    // nodes each; serde-saphyr's default budget (250,000 nodes) would refuse the
    // benchmark's 100,000-rule profile. The other limits (depth, aliases) stay.
    let mut budget = Budget::default();
    budget.max_nodes = budget
        .max_nodes
        .max(16 * cgwarden_common::EGRESS_MAX_ENTRIES as usize);
    budget.max_events = budget.max_events.max(4 * budget.max_nodes);
    o.budget = Some(budget);
    o.duplicate_keys = DuplicateKeyPolicy::Error;
    o.merge_keys = MergeKeyPolicy::Error;
    o.reject_unsupported_tags = true;
    o.strict_booleans = true;
    o.with_snippet = false;
    o
}

/// The options for files other tools own (Compose files): merge keys are expanded, as
/// Compose does for its `x-` fragments, and tags Compose defines (`!reset`,
/// `!override`) are left to it; keys still appear once.
pub fn foreign() -> Options {
    let mut o = strict();
    o.merge_keys = MergeKeyPolicy::Merge;
    o.reject_unsupported_tags = false;
    o
}

/// Parses one document of a file cgwarden owns ([`strict`]).
pub fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, YamlError> {
    serde_saphyr::from_str_with_options(text, strict()).map_err(|e| YamlError::new(&e, text))
}

/// Parses one document of a file another tool owns ([`foreign`]).
pub fn from_foreign_str<T: DeserializeOwned>(text: &str) -> Result<T, YamlError> {
    serde_saphyr::from_str_with_options(text, foreign()).map_err(|e| YamlError::new(&e, text))
}

impl YamlError {
    /// The error serde-saphyr gave for `text`: its position and its message, without
    /// the position repeated at the end. An error in a value reached through an alias
    /// is placed where the value is written, and names the alias.
    pub fn new(e: &Error, text: &str) -> Self {
        let (inner, alias) = unwrap(e);
        let at = inner
            .location()
            .and_then(Position::from_location)
            .or_else(|| e.location().and_then(Position::from_location))
            .unwrap_or(Position::START);
        let mut message = match inner {
            Error::InvalidScalar { ty, location } => invalid_scalar(ty, written(text, *location)),
            _ => inner.render_with_options(serde_saphyr::render_options! {
                formatter: &Wording,
                snippets: SnippetMode::Off,
            }),
        };
        if let Some(used) = alias.and_then(Position::from_location)
            && used != at
        {
            message.push_str(&format!(" (through the alias at {used})"));
        }
        Self { at, message }
    }
}

/// The original error under alias and snippet wrappers, and the alias's position.
fn unwrap(mut e: &Error) -> (&Error, Option<Location>) {
    let mut alias = None;
    loop {
        match e {
            Error::WithSnippet { error, .. } => e = error,
            Error::AliasError {
                error, locations, ..
            } => {
                alias = alias.or(Some(locations.reference_location));
                e = error;
            }
            _ => return (e, alias),
        }
    }
}

/// The text a location spans, if it is a short single line.
fn written(text: &str, location: Location) -> Option<&str> {
    let span = location.span();
    let start = usize::try_from(span.byte_offset()?).ok()?;
    let len = usize::try_from(span.byte_len()?).ok()?;
    text.get(start..start.checked_add(len)?)
        .filter(|s| !s.is_empty() && s.len() <= 80 && !s.contains('\n'))
}

/// A scalar that is not of the type wanted (`user: root`, `max_ttl: -1`).
fn invalid_scalar(ty: &str, written: Option<&str>) -> String {
    let wanted: Cow<str> = match ty {
        "u8" | "u16" | "u32" | "u64" | "usize" => Cow::Owned(format!(
            "a whole number from 0 to {}",
            match ty {
                "u8" => u64::from(u8::MAX),
                "u16" => u64::from(u16::MAX),
                "u32" => u64::from(u32::MAX),
                _ => u64::MAX,
            }
        )),
        "i8" | "i16" | "i32" | "i64" | "isize" => Cow::Borrowed("a whole number"),
        "f32" | "f64" | "floating point" => Cow::Borrowed("a number"),
        "bool" | "boolean" => Cow::Borrowed("`true` or `false`"),
        other => Cow::Owned(format!("a {other}")),
    };
    match written {
        Some(text) => format!("invalid value `{text}`, expected {wanted}"),
        None => format!("invalid value, expected {wanted}"),
    }
}

/// Messages as cgwarden words them, the position left out (it comes first).
struct Wording;

impl MessageFormatter for Wording {
    fn localizer(&self) -> &dyn Localizer {
        &Unplaced
    }

    fn format_message<'a>(&self, err: &'a Error) -> Cow<'a, str> {
        match err {
            Error::Unexpected { expected, .. } => Cow::Owned(format!(
                "expected {}",
                match *expected {
                    "sequence start" => "a list",
                    "mapping start" => "a mapping",
                    "string scalar" => "a string",
                    "scalar" => "a single value",
                    other => other,
                }
            )),
            Error::SerdeUnknownField {
                field, expected, ..
            } => Cow::Owned(format!(
                "unknown field `{field}`, expected {}",
                one_of(expected)
            )),
            Error::DuplicateMappingKey { key: Some(k), .. } => {
                Cow::Owned(format!("duplicate key `{k}`: each key may appear once"))
            }
            Error::DuplicateMappingKey { key: None, .. } => {
                Cow::Borrowed("duplicate key: each key may appear once")
            }
            Error::MergeKeyNotAllowed { .. } => Cow::Borrowed(
                "YAML merge keys (`<<`) are not accepted here: write the keys out (anchors and aliases are fine)",
            ),
            Error::UnsupportedTag { tag, .. } => {
                Cow::Owned(format!("YAML tag `{tag}` is not accepted here"))
            }
            Error::MultipleDocuments { .. } => {
                Cow::Borrowed("more than one YAML document (`---`): give one per file")
            }
            _ => UserMessageFormatter.format_message(err),
        }
    }
}

/// Serde's wording of a list of keys: `` `a` ``, `` `a` or `b` ``, `` one of `a`, `b`, `c` ``.
fn one_of(names: &[&str]) -> String {
    match names {
        [] => "no fields".to_owned(),
        [one] => format!("`{one}`"),
        [a, b] => format!("`{a}` or `{b}`"),
        many => format!(
            "one of {}",
            many.iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// A localizer that adds no position to messages.
struct Unplaced;

impl Localizer for Unplaced {
    fn attach_location<'a>(&self, base: Cow<'a, str>, _: Location) -> Cow<'a, str> {
        base
    }

    fn alias_defined_at(&self, _: Location) -> String {
        String::new()
    }

    fn alias_used_at(&self, _: Location) -> String {
        String::new()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Doc {
        #[serde(default)]
        n: Option<u32>,
        #[serde(default)]
        on: Option<bool>,
        #[serde(default)]
        list: Vec<String>,
        #[serde(default)]
        map: BTreeMap<String, u32>,
    }

    fn err(text: &str) -> YamlError {
        from_str::<Doc>(text).unwrap_err()
    }

    #[test]
    fn errors_are_placed_and_worded_without_the_position_again() {
        let e = err("n: 1\nlist: [a, b]\nn: 2\n");
        assert_eq!((e.at.line, e.at.column), (3, 1), "{e}");
        assert_eq!(e.message, "duplicate key `n`: each key may appear once");
        let e = err("n: 1\nnn: 2\n");
        assert_eq!(
            e.to_string(),
            "2:1: unknown field `nn`, expected one of `n`, `on`, `list`, `map`"
        );
        let e = err("list: [a]\nn: many\n");
        assert_eq!(
            e.to_string(),
            "2:4: invalid value `many`, expected a whole number from 0 to 4294967295"
        );
        let e = err("n: -1\n");
        assert!(e.message.contains("`-1`"), "{e}");
        let e = err("list: a\n");
        assert_eq!(e.to_string(), "1:7: expected a list");
        let e = err("map:\n  a: 1\n  b: [2]\n");
        assert_eq!(e.at, Position { line: 3, column: 6 }, "{e}");
        assert!(!e.message.contains("line"), "{e}");
    }

    #[test]
    fn yaml_1_2_booleans_one_document_no_merges_no_tags() {
        assert_eq!(from_str::<Doc>("on: true\n").unwrap().on, Some(true));
        assert_eq!(err("on: yes\n").at, Position { line: 1, column: 5 });
        let e = err("n: 1\n---\nn: 2\n");
        assert!(e.message.contains("more than one YAML document"), "{e}");
        // Anchors and aliases are fine.
        let aliased: BTreeMap<String, BTreeMap<String, u32>> =
            from_str("a: &m {x: 1}\nb: *m\n").unwrap();
        assert_eq!(aliased["b"]["x"], 1);
        let merge = "a: &m {x: 1}\nb:\n  <<: *m\n  y: 2\n";
        let e = from_str::<BTreeMap<String, BTreeMap<String, u32>>>(merge).unwrap_err();
        assert_eq!(e.at.line, 3, "{e}");
        assert!(e.message.contains("merge keys"), "{e}");
        let merged: BTreeMap<String, BTreeMap<String, u32>> = from_foreign_str(merge).unwrap();
        assert_eq!(merged["b"]["x"], 1);
        let e = err("list: [!secret a]\n");
        assert!(e.message.contains("`!secret`"), "{e}");
    }

    #[test]
    fn an_error_through_an_alias_is_placed_at_the_value() {
        // `x` is a fine list item, not a number.
        let e = err("list: [&x x]\nn: *x\n");
        assert_eq!(
            e.at,
            Position {
                line: 1,
                column: 11
            },
            "{e}"
        );
        assert!(e.message.ends_with("(through the alias at 2:4)"), "{e}");
    }
}
