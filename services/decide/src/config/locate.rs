//! Finds where a configuration path such as `actions[3].eligibility` is written, by a small scan
//! of block-style YAML: good enough to point an editor at the entry, and cheap.
//!
//! It follows the path key by key through indentation. Where the YAML turns to flow style
//! (`{...}`, `[...]`) it stops and answers the deepest entry it found; (0, 0) if none.

/// One non-blank, non-comment line, or the part of a sequence item after its `- `.
#[derive(Clone, Copy)]
struct Line<'a> {
    /// 1-based line number.
    number: u32,
    /// Column (0-based) where `text` starts.
    indent: usize,
    /// The text from `indent` on.
    text: &'a str,
}

/// One step of a path.
enum Segment<'a> {
    Key(&'a str),
    Index(usize),
}

/// The 1-based line and column of the key (or sequence item) `path` names; (0, 0) when not found.
pub(super) fn locate(yaml: &str, path: &str) -> (u32, u32) {
    let mut scope: Vec<Line<'_>> = yaml
        .lines()
        .zip(1u32..)
        .filter_map(|(raw, number)| {
            let text = raw.trim_start_matches(' ');
            let blank = text.trim().is_empty() || text.starts_with('#');
            let marker = text.starts_with("---") || text.starts_with("...");
            (!blank && !marker).then_some(Line {
                number,
                indent: raw.len() - text.len(),
                text,
            })
        })
        .collect();
    let mut found = (0, 0);
    for segment in segments(path) {
        let Some(base) = scope.iter().map(|l| l.indent).min() else {
            break;
        };
        let step = match segment {
            Segment::Key(key) => key_step(&scope, base, key),
            Segment::Index(index) => item_step(&scope, base, index),
        };
        let Some((at, children)) = step else {
            break;
        };
        found = (at.number, column(at.indent));
        scope = children;
    }
    found
}

/// The line of `key` at indentation `base` in `scope`, and the lines of its value.
fn key_step<'a>(scope: &[Line<'a>], base: usize, key: &str) -> Option<(Line<'a>, Vec<Line<'a>>)> {
    let position = scope
        .iter()
        .position(|l| l.indent == base && value_after_key(l.text, key).is_some())?;
    let at = scope[position];
    let inline = value_after_key(at.text, key).unwrap_or_default();
    let block = inline.is_empty() || inline.starts_with(['|', '>', '#', '&']);
    let children = if block {
        scope[position + 1..]
            .iter()
            .take_while(|l| l.indent > at.indent || (l.indent == at.indent && is_item(l.text)))
            .copied()
            .collect()
    } else {
        Vec::new()
    };
    Some((at, children))
}

/// The `index`-th sequence item at indentation `base` in `scope`, and the lines of its value.
fn item_step<'a>(
    scope: &[Line<'a>],
    base: usize,
    index: usize,
) -> Option<(Line<'a>, Vec<Line<'a>>)> {
    let position = scope
        .iter()
        .enumerate()
        .filter(|(_, l)| l.indent == base && is_item(l.text))
        .nth(index)?
        .0;
    let at = scope[position];
    let after_dash = &at.text[1..];
    let rest = after_dash.trim_start_matches(' ');
    let rest_line = Line {
        number: at.number,
        indent: at.indent + 1 + (after_dash.len() - rest.len()),
        text: rest,
    };
    let mut children = Vec::new();
    if !rest.is_empty() && !rest.starts_with(['{', '[', '#']) {
        children.push(rest_line);
    }
    if !rest.starts_with(['{', '[']) {
        children.extend(
            scope[position + 1..]
                .iter()
                .take_while(|l| l.indent > at.indent)
                .copied(),
        );
    }
    let shown = if rest.is_empty() { at } else { rest_line };
    Some((shown, children))
}

/// What follows `key:` on a line that starts with that key (plain or quoted), trimmed.
fn value_after_key<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    let after = [("", ""), ("\"", "\""), ("'", "'")]
        .iter()
        .find_map(|(open, close)| {
            text.strip_prefix(open)?
                .strip_prefix(key)?
                .strip_prefix(close)
        })?;
    let value = after.trim_start_matches(' ').strip_prefix(':')?;
    (value.is_empty() || value.starts_with([' ', '\t'])).then(|| value.trim())
}

fn is_item(text: &str) -> bool {
    text == "-" || text.starts_with("- ")
}

fn column(indent: usize) -> u32 {
    u32::try_from(indent + 1).unwrap_or(0)
}

/// `a[1].b` as `Key(a), Index(1), Key(b)`; unparsable parts end the path.
fn segments(path: &str) -> Vec<Segment<'_>> {
    let mut out = Vec::new();
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let (key, mut indices) = part.split_once('[').map_or((part, ""), |(k, i)| (k, i));
        if !key.is_empty() {
            out.push(Segment::Key(key));
        }
        while let Some((index, rest)) = indices.split_once(']') {
            match index.parse() {
                Ok(i) => out.push(Segment::Index(i)),
                Err(_) => return out,
            }
            indices = rest.strip_prefix('[').unwrap_or(rest);
        }
    }
    out
}
