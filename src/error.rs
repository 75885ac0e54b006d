//! Errors as people read them: one line from the outermost context to the root cause.

/// An error and its causes on one line, outermost first: `context: cause: root cause`. Each
/// error's message says only its own part, so the chain reads as a sentence.
pub fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let part = cause.to_string();
        // Transparent wrappers repeat their inner message; say it once.
        if !text.ends_with(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = cause.source();
    }
    text
}
