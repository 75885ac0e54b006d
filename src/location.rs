//! Where things are: a position in a user's file (the prefix of every error that points at
//! YAML or SQL), a problem found there, and where data lives (a local path or a URL).

use std::fmt;
use std::path::{Path, PathBuf};

/// A position in a pipeline or SQL file, printed as `file:line:column` (1-based, like compilers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
}

impl Location {
    pub fn new(file: impl Into<PathBuf>, line: usize, column: usize) -> Self {
        Self {
            file: file.into(),
            line,
            column,
        }
    }

    /// The start of `file`, for errors about a file as a whole.
    pub fn file(file: impl Into<PathBuf>) -> Self {
        Self::new(file, 1, 1)
    }

    /// The location of byte `offset` in `text`.
    pub fn at_offset(file: &Path, text: &str, offset: usize) -> Self {
        let before = &text[..offset.min(text.len())];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        Self::new(file, line, column)
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

/// One problem in a pipeline, at the place to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub at: Location,
    pub message: String,
}

impl Diagnostic {
    pub fn new(at: Location, message: impl Into<String>) -> Self {
        Self {
            at,
            message: message.into(),
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.at, self.message)
    }
}

/// Where data lives: a path on this machine or an object-store URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Uri {
    Local(PathBuf),
    Url(url::Url),
}

impl Uri {
    /// Reads a URI as a pipeline writes it; relative paths resolve against `root`.
    pub fn resolve(root: &Path, text: &str) -> Result<Self, String> {
        match text.split_once("://") {
            Some(("file", rest)) => Ok(Uri::Local(PathBuf::from(rest))),
            Some((scheme, _)) => {
                let url = url::Url::parse(text).map_err(|e| format!("not a valid URL: {e}"))?;
                match scheme {
                    "s3" | "s3a" | "gs" | "az" | "abfs" | "abfss" | "azure" | "memory" => {
                        if url.host_str().is_none_or(str::is_empty) {
                            return Err(format!(
                                "\"{text}\" names no bucket; write {scheme}://bucket/path"
                            ));
                        }
                        // `#…` and `?…` would be left out of the path: another folder's data.
                        if url.fragment().is_some() || url.query().is_some() {
                            return Err(format!(
                                "\"{text}\" has a `#` or `?`, which a URL reads as the end of its path, so segflow would read or write another folder; name a folder without them"
                            ));
                        }
                        Ok(Uri::Url(url))
                    }
                    "http" | "https" => Ok(Uri::Url(url)),
                    other => Err(format!(
                        "unsupported scheme \"{other}://\"; use a local path, file://, s3://, gs://, az:// or https://"
                    )),
                }
            }
            None => {
                let path = Path::new(text);
                Ok(Uri::Local(
                    if path.is_absolute() || root == Path::new(".") {
                        path.to_owned()
                    } else {
                        root.join(path)
                    },
                ))
            }
        }
    }

    /// True when the text names a set of files (`*`, `?`, `[`).
    pub fn is_glob(&self) -> bool {
        self.to_string().contains(['*', '?', '['])
    }
}

impl fmt::Display for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Uri::Local(path) => write!(f, "{}", path.display()),
            Uri::Url(url) => write!(f, "{url}"),
        }
    }
}

/// Finds `word` in `text` as a whole identifier (not part of a longer name nor a `$parameter`),
/// ignoring case. Used to point at a table or column that DataFusion reported without a
/// position.
pub fn find_identifier(text: &str, word: &str) -> Option<usize> {
    let lower = text.to_ascii_lowercase();
    let word = word.to_ascii_lowercase();
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut from = 0;
    while let Some(found) = lower[from..].find(&word) {
        let start = from + found;
        let end = start + word.len();
        let before_ok = lower[..start]
            .chars()
            .next_back()
            .is_none_or(|c| !is_ident(c) && c != '$');
        let after_ok = lower[end..].chars().next().is_none_or(|c| !is_ident(c));
        if before_ok && after_ok {
            return Some(start);
        }
        from = end;
    }
    None
}

/// Where `needle` first stands in SQL `text` outside a `--` comment.
pub fn find_in_code(text: &str, needle: &str) -> Option<usize> {
    text.match_indices(needle).map(|(at, _)| at).find(|at| {
        let line_start = text[..*at].rfind('\n').map_or(0, |n| n + 1);
        !text[line_start..*at].contains("--")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_is_searched_outside_line_comments() {
        let text = "-- uses $days\nselect $days -- $days\n";
        assert_eq!(find_in_code(text, "$days"), Some(21));
        assert_eq!(find_in_code("-- only $days\n", "$days"), None);
    }

    #[test]
    fn offsets_become_one_based_lines_and_columns() {
        let text = "select a\nfrom  b\n";
        let at = Location::at_offset(Path::new("m.sql"), text, text.find('b').unwrap());
        assert_eq!(at.to_string(), "m.sql:2:7");
    }

    #[test]
    fn identifiers_match_whole_words_only() {
        let sql = "select x from customers_old join customers c";
        assert_eq!(find_identifier(sql, "customers"), Some(33));
        assert_eq!(find_identifier(sql, "CUSTOMERS_OLD"), Some(14));
        assert_eq!(find_identifier(sql, "custom"), None);
        let sql = "select $run_date - 1 as day, run_date from t";
        assert_eq!(find_identifier(sql, "run_date"), Some(29));
    }
}
