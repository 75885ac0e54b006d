//! What a run records about itself: `manifest.json` (written last of its files; the same
//! document as `--json`), and `report.html`, the run as a person reads it, built from the
//! manifest and the published runs before it — never from a second computation.

mod html;
mod manifest;
mod svg;

pub(crate) use html::{IndexEntry, ReportInput, index, render};
pub use manifest::{InvalidIdentifiers, Manifest, RunStatus, Step};

/// `n` with `separator` between groups of three digits: 1,234,567.
pub(crate) fn group_digits(n: u64, separator: char) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(separator);
        }
        out.push(c);
    }
    out
}
