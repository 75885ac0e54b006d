//! Reading the files people write (pipeline YAML, SQL, test files): UTF-8 is checked and the
//! first bad byte located, a leading byte-order mark is dropped (editors on Windows add one),
//! and a file far larger than any pipeline is refused before it is parsed.

use std::io::Read;
use std::path::Path;

use crate::location::Location;

/// Larger than any pipeline, SQL or test file a person writes.
pub const MAX_FILE_BYTES: u64 = 4 << 20;

/// A file that cannot be read as text.
#[derive(Debug, thiserror::Error)]
pub enum TextError {
    #[error("{}: cannot read it: {source}", .path.display())]
    Read {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{at}: the file is not UTF-8 text (a byte here is not valid UTF-8); save it as UTF-8")]
    NotUtf8 { at: Location },
    #[error(
        "{}: the file is larger than {} MiB; a pipeline, SQL or test file is far smaller (is this the right path?)",
        .path.display(), MAX_FILE_BYTES >> 20
    )]
    TooLarge { path: std::path::PathBuf },
}

/// Reads `path` as UTF-8 text without a byte-order mark.
pub fn read_text(path: &Path) -> Result<String, TextError> {
    let read = |source| TextError::Read {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read)?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(TextError::TooLarge {
            path: path.to_owned(),
        });
    }
    decode(path, bytes)
}

fn decode(path: &Path, mut bytes: Vec<u8>) -> Result<String, TextError> {
    if bytes.starts_with(&[0xEF, 0xBB, 0xBF]) {
        bytes.drain(..3);
    }
    String::from_utf8(bytes).map_err(|err| {
        let valid = err.utf8_error().valid_up_to();
        let text = String::from_utf8_lossy(&err.as_bytes()[..valid]);
        TextError::NotUtf8 {
            at: Location::at_offset(path, &text, valid),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_byte_order_mark_is_dropped() {
        let text = decode(Path::new("p.yaml"), b"\xEF\xBB\xBFpipeline: p\n".to_vec()).unwrap();
        assert_eq!(text, "pipeline: p\n");
    }

    #[test]
    fn bad_bytes_are_located() {
        let err = decode(
            Path::new("p.yaml"),
            b"pipeline: p\nname: caf\xE9\n".to_vec(),
        );
        assert_eq!(
            err.unwrap_err().to_string(),
            "p.yaml:2:10: the file is not UTF-8 text (a byte here is not valid UTF-8); save it as UTF-8"
        );
    }
}
