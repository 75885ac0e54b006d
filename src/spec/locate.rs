//! Finds where a field sits in pipeline YAML text, so that errors found after parsing (a missing
//! SQL file, an unknown table, a bad condition) still point at a line and column.
//!
//! serde_yaml keeps no positions once a document is deserialized, so this walks the text by
//! indentation. It understands block mappings, block sequences (`- item`, addressed by index) and
//! one-line flow mappings (`name: { uri: x, format: csv }`), which covers how pipelines are
//! written. When a path cannot be followed to the end, the deepest part found is returned.

/// Opens a one-line flow mapping (`name: { uri: x }`).
const FLOW: char = '{';

/// 1-based (line, column) of the last path element that could be found, or (1, 1).
pub fn locate(text: &str, path: &[&str]) -> (usize, usize) {
    let lines: Vec<&str> = text.lines().collect();
    let mut best = (1, 1);
    // The block being searched: lines [start, end) whose indent is > parent_indent.
    let (mut start, mut end, mut parent_indent) = (0usize, lines.len(), -1i64);
    let mut segments = path.iter().peekable();
    while let Some(segment) = segments.next() {
        let found = match segment.parse::<usize>() {
            Ok(index) => find_item(&lines, start, end, parent_indent, index),
            Err(_) => find_key(&lines, start, end, parent_indent, segment),
        };
        let Some((line, column, indent)) = found else {
            return best;
        };
        best = (line + 1, column + 1);
        // A flow mapping on the same line: look for the remaining keys inside it.
        let rest = &lines[line][column..];
        if let Some(brace) = rest.find(FLOW) {
            let mut offset = column + brace;
            for key in segments.by_ref() {
                match find_inline_key(&lines[line][offset..], key) {
                    Some(at) => {
                        offset += at;
                        best = (line + 1, offset + 1);
                    }
                    None => return best,
                }
            }
            return best;
        }
        start = line + 1;
        end = block_end(&lines, start, indent);
        parent_indent = indent;
        // Sequence items: the item's own keys sit after "- ", deeper than the dash.
        if lines[line].trim_start().starts_with("- ") && segment.parse::<usize>().is_ok() {
            start = line;
            parent_indent = indent;
        }
    }
    best
}

/// Where the last key of `path` is written a second time in its mapping (1-based), after the
/// first occurrence [`locate`] finds: for messages about duplicate keys.
pub fn locate_repeat(text: &str, path: &[&str]) -> Option<(usize, usize)> {
    let key = path.last()?;
    let (line, column) = locate(text, path);
    let lines: Vec<&str> = text.lines().collect();
    let first = lines.get(line - 1)?;
    // A flow mapping: the repeat follows on the same line.
    if first[column - 1..].trim_start().starts_with(['"', '\'']) || first.contains(FLOW) {
        let after = column - 1 + key.len();
        if let Some(at) = find_inline_key(&first[after..], key) {
            return Some((line, after + at + 1));
        }
    }
    let indent = (column - 1) as i64;
    for (i, text) in lines.iter().enumerate().skip(line) {
        if is_blank(text) {
            continue;
        }
        let (this_indent, body) = match text.trim_start().strip_prefix("- ") {
            Some(body) => (indent_of(text) + 2, body),
            None => (indent_of(text), text.trim_start()),
        };
        if indent_of(text) < indent && this_indent != indent {
            return None;
        }
        if this_indent == indent && key_matches(body, key) {
            return Some((i + 1, column));
        }
    }
    None
}

fn indent_of(line: &str) -> i64 {
    (line.len() - line.trim_start().len()) as i64
}

fn is_blank(line: &str) -> bool {
    let t = line.trim();
    t.is_empty() || t.starts_with('#')
}

fn block_end(lines: &[&str], start: usize, indent: i64) -> usize {
    (start..lines.len())
        .find(|&i| !is_blank(lines[i]) && indent_of(lines[i]) <= indent)
        .unwrap_or(lines.len())
}

/// (line, column of the key, indent of the key) for `key:` directly inside the block.
fn find_key(
    lines: &[&str],
    start: usize,
    end: usize,
    parent: i64,
    key: &str,
) -> Option<(usize, usize, i64)> {
    let mut child_indent = None;
    for (i, line) in lines.iter().enumerate().take(end).skip(start) {
        if is_blank(line) {
            continue;
        }
        // Keys of a mapping that is itself a sequence item start after "- ".
        let (indent, body) = match line.trim_start().strip_prefix("- ") {
            Some(body) if i == start => (indent_of(line) + 2, body),
            _ => (indent_of(line), line.trim_start()),
        };
        if indent <= parent {
            break;
        }
        let child = *child_indent.get_or_insert(indent);
        if indent != child {
            continue;
        }
        if key_matches(body, key) {
            return Some((i, indent as usize, indent));
        }
    }
    None
}

fn find_item(
    lines: &[&str],
    start: usize,
    end: usize,
    parent: i64,
    index: usize,
) -> Option<(usize, usize, i64)> {
    let mut seen = 0;
    // Items of this sequence share the indent of its first item; deeper dashes belong to
    // nested sequences.
    let mut item_indent = None;
    for (i, line) in lines.iter().enumerate().take(end).skip(start) {
        if is_blank(line) || indent_of(line) <= parent {
            continue;
        }
        if line.trim_start().starts_with("- ") || line.trim() == "-" {
            if *item_indent.get_or_insert(indent_of(line)) != indent_of(line) {
                continue;
            }
            if seen == index {
                let indent = indent_of(line);
                return Some((i, indent as usize, indent));
            }
            seen += 1;
        }
    }
    None
}

fn key_matches(body: &str, key: &str) -> bool {
    let body = body.trim_start_matches(['"', '\'']);
    body.strip_prefix(key).is_some_and(|rest| {
        let rest = rest.trim_start_matches(['"', '\'']);
        rest.trim_start().starts_with(':')
    })
}

fn find_inline_key(text: &str, key: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(at) = text[from..].find(key) {
        let start = from + at;
        let before = text[..start].trim_end().chars().next_back();
        let after = text[start + key.len()..].trim_start().chars().next();
        if before.is_some_and(|c| c == FLOW || matches!(c, ',' | '"' | '\'')) && after == Some(':')
        {
            return Some(start);
        }
        from = start + key.len();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::{locate, locate_repeat};

    const YAML: &str = "\
pipeline: demo
sources:
  customers:
    uri: data/customers.csv
    format: csv
  events: { uri: data/events/, format: parquet }
models:
  profile:
    sql: sql/profile.sql
checks:
  - { model: profile, unique: customer_id }
  - model: other
    not_null: [a]
";

    #[test]
    fn finds_block_keys() {
        assert_eq!(locate(YAML, &["sources", "customers", "uri"]), (4, 5));
        assert_eq!(locate(YAML, &["models", "profile", "sql"]), (9, 5));
    }

    #[test]
    fn finds_keys_inside_flow_mappings() {
        assert_eq!(locate(YAML, &["sources", "events", "format"]), (6, 32));
    }

    #[test]
    fn finds_sequence_items() {
        assert_eq!(locate(YAML, &["checks", "0", "unique"]), (11, 23));
        assert_eq!(locate(YAML, &["checks", "1", "not_null"]), (13, 5));
    }

    #[test]
    fn nested_sequences_do_not_count_as_items() {
        let text =
            "tests:\n  - name: a\n    rows:\n      - { x: 1 }\n      - { x: 2 }\n  - name: b\n";
        assert_eq!(locate(text, &["tests", "1", "name"]), (6, 5));
    }

    #[test]
    fn finds_a_key_written_twice() {
        let text = "a:\n  x: 1\n  y:\n    x: 2\n  x: 3\nb: { k: 1, k: 2 }\n";
        assert_eq!(locate_repeat(text, &["a", "x"]), Some((5, 3)));
        assert_eq!(locate_repeat(text, &["b", "k"]), Some((6, 12)));
        assert_eq!(locate_repeat(text, &["a", "y"]), None);
    }

    #[test]
    fn falls_back_to_the_deepest_found_key() {
        assert_eq!(locate(YAML, &["sources", "customers", "nope"]), (3, 3));
        assert_eq!(locate(YAML, &["missing"]), (1, 1));
    }
}
