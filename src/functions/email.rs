//! `normalize_email` and `sha256_email`.

use std::hash::Hash;
use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::StringBuilder;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::Result;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature,
};

use super::args::{
    DOC_SECTION, Sha256Hex, StrArg, check_arity, coerce_string_arg, finish, output_rows, take_args,
};

/// Domains whose mailboxes ignore dots and `+tag` suffixes in the local part; Google Ads
/// Customer Match asks for both to be removed before hashing.
const GOOGLE_MAIL_DOMAINS: [&str; 2] = ["gmail.com", "googlemail.com"];

/// Normalizes an email address the way Google Ads Customer Match documents it, or returns
/// `None` when the text is not a plausible address.
///
/// Leading and trailing whitespace is trimmed and the address is lower-cased; for `gmail.com`
/// and `googlemail.com` the dots and any `+tag` are removed from the local part
/// (`John.Smith+news@Gmail.com` → `johnsmith@gmail.com`). Plausible means: exactly one `@`, a
/// non-empty local part, a domain of at least two non-empty dot-separated labels, and no
/// whitespace or control characters inside.
pub fn normalize_email_str(email: &str) -> Option<String> {
    let mut normalized = String::with_capacity(email.len());
    normalize_email_into(email, &mut normalized).then_some(normalized)
}

/// Characters that show as nothing: a byte-order mark or a zero-width space a spreadsheet or a
/// web form left beside an address would otherwise change its hash.
fn invisible(c: char) -> bool {
    matches!(c, '\u{200B}'..='\u{200F}' | '\u{2060}'..='\u{2064}' | '\u{FEFF}' | '\u{00AD}')
}

/// Lower-case hex SHA-256 of [`normalize_email_str`], or `None` when the address is invalid.
pub fn sha256_email_str(email: &str) -> Option<String> {
    normalize_email_str(email).map(|e| Sha256Hex::of(e.as_bytes()).as_str().to_owned())
}

/// [`normalize_email_str`] writing into a reused buffer; returns whether the address was valid.
fn normalize_email_into(email: &str, out: &mut String) -> bool {
    out.clear();
    let blank = |c: char| c.is_whitespace() || invisible(c);
    let email = email.trim_matches(blank);
    if email.chars().any(|c| blank(c) || c.is_control()) {
        return false;
    }
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    if local.is_empty() || domain.contains('@') {
        return false;
    }
    if !domain.contains('.') || domain.split('.').any(str::is_empty) {
        return false;
    }

    if GOOGLE_MAIL_DOMAINS
        .iter()
        .any(|d| domain.eq_ignore_ascii_case(d))
    {
        let mailbox = local.split('+').next().unwrap_or_default();
        out.extend(mailbox.chars().filter(|&c| c != '.'));
        if out.is_empty() {
            return false;
        }
    } else {
        out.push_str(local);
    }
    out.push('@');
    out.push_str(domain);
    lower_case(out);
    true
}

/// Lower-cases each character of `text` on its own (`char::to_lowercase`, as Customer Match
/// asks), in place byte by byte when the text is ASCII, as nearly every address is: a
/// character at a time it took most of `sha256_email`'s time.
fn lower_case(text: &mut String) {
    if text.is_ascii() {
        text.make_ascii_lowercase();
    } else {
        *text = text.chars().flat_map(char::to_lowercase).collect();
    }
}

/// What an email function returns for a valid address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum EmailOutput {
    /// `normalize_email`: the normalized address.
    Normalized,
    /// `sha256_email`: hex SHA-256 of the normalized address.
    Sha256,
}

impl EmailOutput {
    fn name(self) -> &'static str {
        match self {
            EmailOutput::Normalized => "normalize_email",
            EmailOutput::Sha256 => "sha256_email",
        }
    }
}

/// `normalize_email(email)` and `sha256_email(email)`.
pub(crate) type EmailUdf = super::CountingUdf<EmailOutput>;

impl ScalarUDFImpl for EmailUdf {
    fn name(&self) -> &str {
        self.output.name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        check_arity(self.name(), arg_types, &["email"])?;
        Ok(vec![coerce_string_arg(
            self.name(),
            "email",
            &arg_types[0],
            "",
        )?])
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn is_strict(&self) -> bool {
        true
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let (rows, all_scalar) = output_rows(&args.args, args.number_rows);
        let [email] = take_args::<1>(self.name(), args.args)?;
        let email = StrArg::new(self.name(), &email)?;

        let bytes_per_row = match self.output {
            EmailOutput::Normalized => 24,
            EmailOutput::Sha256 => 64,
        };
        let mut result = StringBuilder::with_capacity(rows, rows * bytes_per_row);
        let mut normalized = String::new();
        let mut invalid = 0u64;
        for row in 0..rows {
            match email.get(row) {
                None => result.append_null(),
                Some(raw) if normalize_email_into(raw, &mut normalized) => match self.output {
                    EmailOutput::Normalized => result.append_value(&normalized),
                    EmailOutput::Sha256 => {
                        result.append_value(Sha256Hex::of(normalized.as_bytes()).as_str())
                    }
                },
                Some(_) => {
                    invalid += 1;
                    result.append_null();
                }
            }
        }
        self.stats.add_invalid_emails(invalid);
        finish(Arc::new(result.finish()), all_scalar)
    }

    fn documentation(&self) -> Option<&Documentation> {
        static NORMALIZE: LazyLock<Documentation> = LazyLock::new(|| {
            Documentation::builder(
                DOC_SECTION,
                "Trims and lower-cases an email address; for gmail.com and googlemail.com also \
                 removes dots and any +tag from the local part (Google Ads Customer Match). \
                 NULL when the value is not a plausible address; such values are counted.",
                "normalize_email(email)",
            )
            .with_sql_example("SELECT normalize_email(' John.Smith+news@Gmail.com ');")
            .with_argument("email", "The email address, a string column or literal.")
            .with_related_udf("sha256_email")
            .build()
        });
        static SHA256: LazyLock<Documentation> = LazyLock::new(|| {
            Documentation::builder(
                DOC_SECTION,
                "Lower-case hex SHA-256 of normalize_email(email), the identifier ad platforms \
                 match on. NULL when the value is not a plausible address.",
                "sha256_email(email)",
            )
            .with_sql_example("SELECT sha256_email('test@example.com');")
            .with_argument("email", "The email address, a string column or literal.")
            .with_related_udf("normalize_email")
            .build()
        });
        Some(match self.output {
            EmailOutput::Normalized => &NORMALIZE,
            EmailOutput::Sha256 => &SHA256,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(email: &str) -> Option<String> {
        normalize_email_str(email)
    }

    #[test]
    fn trims_and_lower_cases() {
        assert_eq!(
            norm("  Test@Example.COM \t").as_deref(),
            Some("test@example.com")
        );
        assert_eq!(
            norm("ÉLODIE@Exemple.FR").as_deref(),
            Some("élodie@exemple.fr")
        );
        // Each character on its own: a capital sigma is always σ, at the end of a word too.
        assert_eq!(norm("ΟΔΟΣ@Gmail.com").as_deref(), Some("οδοσ@gmail.com"));
        assert_eq!(
            norm("İ@example.com").as_deref(),
            Some("i\u{307}@example.com")
        );
    }

    #[test]
    fn invisible_characters_around_an_address_are_trimmed() {
        for written in [
            "\u{feff}test@example.com",
            "test@example.com\u{200b}",
            "\u{200e}test@example.com ",
        ] {
            assert_eq!(
                normalize_email_str(written).as_deref(),
                Some("test@example.com"),
                "{written:?}"
            );
        }
        assert_eq!(normalize_email_str("te\u{200b}st@example.com"), None);
    }

    #[test]
    fn keeps_dots_and_tags_outside_google_mail() {
        assert_eq!(
            norm("John.Smith+news@Example.co.uk").as_deref(),
            Some("john.smith+news@example.co.uk")
        );
    }

    #[test]
    fn removes_dots_and_tags_for_google_mail() {
        assert_eq!(
            norm("John.Smith+news@Gmail.com").as_deref(),
            Some("johnsmith@gmail.com")
        );
        assert_eq!(
            norm("j.o.h.n@GOOGLEMAIL.COM").as_deref(),
            Some("john@googlemail.com")
        );
        assert_eq!(norm("a+b+c@gmail.com").as_deref(), Some("a@gmail.com"));
    }

    #[test]
    fn google_mail_local_part_that_strips_to_nothing_is_invalid() {
        assert_eq!(norm("+news@gmail.com"), None);
        assert_eq!(norm("...@gmail.com"), None);
    }

    #[test]
    fn rejects_implausible_addresses() {
        for bad in [
            "",
            "   ",
            "plainaddress",
            "@example.com",
            "a@@example.com",
            "a@b@example.com",
            "a@localhost",
            "a@example.",
            "a@.example.com",
            "a@example..com",
            "john smith@example.com",
            "John Smith <john@example.com>",
            "a@exa mple.com",
            "a\u{0}@example.com",
        ] {
            assert_eq!(norm(bad), None, "{bad:?} should be invalid");
        }
    }

    // Expected hashes computed independently with Python:
    // python3 -c 'import hashlib; print(hashlib.sha256(b"johnsmith@gmail.com").hexdigest())'
    #[test]
    fn hashes_are_hex_sha256_of_the_normalized_address() {
        let hash = |e| sha256_email_str(e);
        let test_example = "973dfe463ec85785f5f95af5ba3906eedb2d931c24e69824a89ea65dba4e813b";
        assert_eq!(hash("test@example.com").as_deref(), Some(test_example));
        assert_eq!(hash("  TEST@Example.com ").as_deref(), Some(test_example));
        assert_eq!(
            hash("John.Smith+news@Gmail.com").as_deref(),
            Some("3586de92bb3636d0885a12eff961429a32e4ebd764b96f50d85d016f9338d586")
        );
        assert_eq!(
            hash("John.Smith+news@Example.co.uk").as_deref(),
            Some("1178cfb6513a961cc2940136ce5cd46811e653083d19fd8cc43b23017a669134")
        );
        assert_eq!(hash("not an email"), None);
    }
}
