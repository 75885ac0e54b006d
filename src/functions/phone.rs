//! `normalize_phone`, `sha256_phone_e164` and `sha256_phone_digits`.

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

/// What a national number starts with that is dialled only inside the country and is not part
/// of the E.164 number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trunk {
    /// No trunk prefix: a leading 0 is part of the number (Italy) or never written.
    None,
    /// A single leading `0` (most of Europe, Australia, New Zealand).
    Zero,
    /// North American Numbering Plan: an optional leading `1` before the ten-digit number.
    NanpOne,
}

/// A country national numbers can be read for: ISO 3166-1 alpha-2 code, calling code, trunk,
/// and how many digits its numbers have after the calling code (the fewest, the most).
struct Country {
    iso: &'static str,
    calling_code: &'static str,
    trunk: Trunk,
    digits: (usize, usize),
}

const fn country(
    iso: &'static str,
    calling_code: &'static str,
    trunk: Trunk,
    digits: (usize, usize),
) -> Country {
    Country {
        iso,
        calling_code,
        trunk,
        digits,
    }
}

impl Country {
    fn holds(&self, digits: usize) -> bool {
        (self.digits.0..=self.digits.1).contains(&digits)
    }
}

/// Countries whose national numbers `normalize_phone` can complete. Italy, Spain and Portugal
/// have no trunk prefix: an Italian landline keeps its leading 0 in E.164 (`06…` → `+3906…`).
/// The digit counts are generous (libphonenumber's possible lengths, widened): they only tell a
/// national number from one written with its calling code but without `+` (`447700900123`).
const COUNTRIES: &[Country] = &[
    country("GB", "44", Trunk::Zero, (7, 10)),
    // Not an ISO code, but reserved for the United Kingdom and common in CRM data.
    country("UK", "44", Trunk::Zero, (7, 10)),
    country("IE", "353", Trunk::Zero, (7, 10)),
    country("FR", "33", Trunk::Zero, (9, 9)),
    country("DE", "49", Trunk::Zero, (4, 15)),
    country("ES", "34", Trunk::None, (9, 9)),
    country("NL", "31", Trunk::Zero, (9, 9)),
    country("IT", "39", Trunk::None, (6, 11)),
    country("BE", "32", Trunk::Zero, (8, 9)),
    country("PT", "351", Trunk::None, (9, 9)),
    country("LU", "352", Trunk::None, (4, 11)),
    country("AT", "43", Trunk::Zero, (4, 13)),
    country("CH", "41", Trunk::Zero, (9, 9)),
    country("DK", "45", Trunk::None, (8, 8)),
    country("SE", "46", Trunk::Zero, (7, 10)),
    country("NO", "47", Trunk::None, (5, 8)),
    country("FI", "358", Trunk::Zero, (5, 12)),
    country("PL", "48", Trunk::None, (9, 9)),
    country("AU", "61", Trunk::Zero, (9, 10)),
    country("NZ", "64", Trunk::Zero, (8, 10)),
    country("US", "1", Trunk::NanpOne, (10, 10)),
    country("CA", "1", Trunk::NanpOne, (10, 10)),
];

/// Calling codes whose numbers keep a leading 0 after them (Italy, San Marino, the Vatican):
/// `+39 (0)6…` is `+3906…`, where elsewhere `(0)` marks a trunk 0 not dialled from abroad.
const ZERO_KEPT: [&str; 3] = ["39", "378", "379"];

fn country_by_iso(iso: &str) -> Option<&'static Country> {
    let iso = iso.trim();
    COUNTRIES.iter().find(|c| c.iso.eq_ignore_ascii_case(iso))
}

/// The international calling code (without `+`) of an ISO 3166-1 alpha-2 country code that
/// `normalize_phone` accepts as `default_country`, e.g. `"GB"` → `"44"`.
pub fn calling_code(default_country: &str) -> Option<&'static str> {
    country_by_iso(default_country).map(|c| c.calling_code)
}

/// Normalizes a phone number to E.164 (`+447700900123`), or returns `None` when it cannot be
/// read as one.
///
/// Spaces, dashes, dots and parentheses are removed, and an extension after the number (`ext.
/// 12`, `x12`, `#12`). A number written with `+` or `00` (`011` for the US and Canada) is
/// international; a `(0)` after the country code (kept as a 0 for Italy), or a trunk 0 written
/// there by mistake (`+44 07700…`) for a country whose trunk prefix is 0, is dropped. Any
/// other number is national: its trunk prefix (a single leading 0, or the optional 1 in the US
/// and Canada) is dropped and the calling code of `default_country` (ISO 3166-1 alpha-2,
/// case-insensitive) is put in front, unless the number already starts with that code and is
/// one of the country's once it is taken off (`447700900123`); an unsupported
/// `default_country` gives `None`. The result must have 8 to 15 digits, not start with 0, and
/// numbers under country code 1 must have ten digits after it with an area code starting 2–9.
/// Letters or any other characters give `None`.
pub fn normalize_phone_str(phone: &str, default_country: &str) -> Option<String> {
    let mut e164 = String::with_capacity(16);
    normalize_phone_into(phone, default_country, &mut e164).then_some(e164)
}

/// Hex SHA-256 of the E.164 number with its `+` (Google Ads Customer Match).
pub fn sha256_phone_e164_str(phone: &str, default_country: &str) -> Option<String> {
    normalize_phone_str(phone, default_country)
        .map(|e| Sha256Hex::of(e.as_bytes()).as_str().to_owned())
}

/// Hex SHA-256 of the E.164 digits without the `+` (Meta Custom Audiences).
pub fn sha256_phone_digits_str(phone: &str, default_country: &str) -> Option<String> {
    normalize_phone_str(phone, default_country)
        .map(|e| Sha256Hex::of(digits_without_plus(&e)).as_str().to_owned())
}

/// The digits of a normalized E.164 number, which always starts with `+`.
fn digits_without_plus(e164: &str) -> &[u8] {
    &e164.as_bytes()[1..]
}

/// [`normalize_phone_str`] writing into a reused buffer; returns whether the number was valid.
fn normalize_phone_into(phone: &str, default_country: &str, out: &mut String) -> bool {
    out.clear();
    out.push('+');
    let mut plus = false;
    let mut rest = without_extension(phone.trim());
    let country = country_by_iso(default_country);
    let nanp = country.is_some_and(|c| c.trunk == Trunk::NanpOne);
    while let Some(c) = rest.chars().next() {
        // "(0)" marks a trunk 0 that is not dialled from abroad: "+44 (0)20 7946 0000".
        if rest.starts_with("(0)") && (plus || out[1..].starts_with("00")) {
            let code = out[1..].trim_start_matches("00");
            if ZERO_KEPT.contains(&code) {
                out.push('0');
            }
            rest = &rest[3..];
            continue;
        }
        match c {
            '0'..='9' => out.push(c),
            '+' if !plus && out.len() == 1 => plus = true,
            // Separators people write: dashes, dots, parentheses, and the German slash.
            '-' | '.' | '(' | ')' | '/' => {}
            c if c.is_whitespace() => {}
            _ => return false,
        }
        rest = &rest[c.len_utf8()..];
    }

    // North America dials abroad with 011 where Europe dials 00.
    let prefix = match () {
        _ if plus => 0,
        _ if out[1..].starts_with("00") => 2,
        _ if nanp && out[1..].starts_with("011") => 3,
        _ => usize::MAX,
    };
    if prefix != usize::MAX {
        out.replace_range(1..1 + prefix, "");
        let misplaced_trunk = COUNTRIES.iter().find(|c| {
            c.trunk == Trunk::Zero
                && out[1..].starts_with(c.calling_code)
                && out[1 + c.calling_code.len()..].starts_with('0')
        });
        if let Some(country) = misplaced_trunk {
            out.remove(1 + country.calling_code.len());
        }
    } else {
        let Some(country) = country else {
            return false;
        };
        match country.trunk {
            Trunk::Zero if out[1..].starts_with('0') => {
                out.remove(1);
            }
            Trunk::NanpOne if out.len() == 1 + 11 && out[1..].starts_with('1') => {
                out.remove(1);
            }
            _ => {}
        }
        // Written with its calling code but without `+` or `00` (`447700900123`, as Meta's
        // uploads and spreadsheets that dropped the `+` hold them): the right length after its
        // code (and a trunk 0 written there), and either too long for a number of the country
        // or, where national numbers are written with a trunk 0, written without one.
        let trunk_zero = country.trunk == Trunk::Zero;
        let whole = out.len() - 1;
        let after_code = (out[1..].strip_prefix(country.calling_code))
            .filter(|_| !(trunk_zero && phone_starts_with_trunk(phone)))
            .map(|after| match trunk_zero {
                true => after.strip_prefix('0').unwrap_or(after),
                false => after,
            })
            .filter(|after| country.holds(after.len()) && (trunk_zero || !country.holds(whole)))
            .map(str::to_owned);
        if let Some(after) = after_code {
            out.truncate(1);
            out.push_str(&after);
        }
        out.insert_str(1, country.calling_code);
    }
    is_plausible_e164(&out[1..])
}

/// Whether a number's first digit, as written, is a trunk 0.
fn phone_starts_with_trunk(phone: &str) -> bool {
    phone.chars().find(char::is_ascii_digit) == Some('0')
}

/// The number without an extension written after it (`… ext. 12`, `… x12`, `…#12`,
/// `…;ext=12`): the platforms match the number alone.
fn without_extension(phone: &str) -> &str {
    // Most numbers have no extension: no copy, no search for them.
    if !phone.contains(|c: char| c.is_ascii_alphabetic() || c == '#' || c == ';') {
        return phone;
    }
    // ASCII lower-casing keeps every byte where it was.
    let lower = phone.to_ascii_lowercase();
    for marker in [";ext=", "extension", "ext.", "ext", "#", "x"] {
        let Some(at) = lower.rfind(marker) else {
            continue;
        };
        let extension = lower[at + marker.len()..].trim_start_matches([' ', '.', ':']);
        let digits_before = lower[..at].bytes().filter(u8::is_ascii_digit).count();
        if !extension.is_empty()
            && extension.bytes().all(|b| b.is_ascii_digit())
            && digits_before >= 7
        {
            return phone[..at].trim_end_matches([' ', ',', ';']);
        }
    }
    phone
}

/// E.164 allows at most 15 digits; fewer than 8 is a fragment in every country segflow serves.
fn is_plausible_e164(digits: &str) -> bool {
    let bytes = digits.as_bytes();
    if !(8..=15).contains(&bytes.len()) || bytes[0] == b'0' {
        return false;
    }
    // Country code 1 is the North American Numbering Plan: exactly ten digits follow, and an
    // area code never starts with 0 or 1.
    bytes[0] != b'1' || (bytes.len() == 11 && bytes[1] >= b'2')
}

/// What a phone function returns for a valid number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum PhoneOutput {
    /// `normalize_phone`: the E.164 string, `+447700900123`.
    E164,
    /// `sha256_phone_e164`: hex SHA-256 of `+447700900123` (Google Ads Customer Match).
    Sha256E164,
    /// `sha256_phone_digits`: hex SHA-256 of `447700900123` (Meta Custom Audiences).
    Sha256Digits,
}

impl PhoneOutput {
    fn name(self) -> &'static str {
        match self {
            PhoneOutput::E164 => "normalize_phone",
            PhoneOutput::Sha256E164 => "sha256_phone_e164",
            PhoneOutput::Sha256Digits => "sha256_phone_digits",
        }
    }
}

/// `normalize_phone`, `sha256_phone_e164` and `sha256_phone_digits`, all
/// `(phone, default_country)`.
pub(crate) type PhoneUdf = super::CountingUdf<PhoneOutput>;

impl ScalarUDFImpl for PhoneUdf {
    fn name(&self) -> &str {
        self.output.name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let name = self.name();
        check_arity(name, arg_types, &["phone", "default_country"])?;
        Ok(vec![
            coerce_string_arg(
                name,
                "phone",
                &arg_types[0],
                "; a phone number stored as an integer has lost its leading 0 or +, \
                 read the column as a string (VARCHAR) instead",
            )?,
            coerce_string_arg(
                name,
                "default_country",
                &arg_types[1],
                "; pass an ISO 3166-1 alpha-2 code such as 'GB'",
            )?,
        ])
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn is_strict(&self) -> bool {
        true
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let (rows, all_scalar) = output_rows(&args.args, args.number_rows);
        let [phone, default_country] = take_args::<2>(self.name(), args.args)?;
        let phone = StrArg::new(self.name(), &phone)?;
        let default_country = StrArg::new(self.name(), &default_country)?;

        let bytes_per_row = match self.output {
            PhoneOutput::E164 => 13,
            PhoneOutput::Sha256E164 | PhoneOutput::Sha256Digits => 64,
        };
        let mut result = StringBuilder::with_capacity(rows, rows * bytes_per_row);
        let mut e164 = String::new();
        let mut invalid = 0u64;
        for row in 0..rows {
            let (Some(raw), Some(country)) = (phone.get(row), default_country.get(row)) else {
                result.append_null();
                continue;
            };
            if !normalize_phone_into(raw, country, &mut e164) {
                invalid += 1;
                result.append_null();
                continue;
            }
            match self.output {
                PhoneOutput::E164 => result.append_value(&e164),
                PhoneOutput::Sha256E164 => {
                    result.append_value(Sha256Hex::of(e164.as_bytes()).as_str())
                }
                PhoneOutput::Sha256Digits => {
                    result.append_value(Sha256Hex::of(digits_without_plus(&e164)).as_str())
                }
            }
        }
        self.stats.add_invalid_phones(invalid);
        finish(Arc::new(result.finish()), all_scalar)
    }

    fn documentation(&self) -> Option<&Documentation> {
        fn doc(name: &str, description: &str, related: [&str; 2]) -> Documentation {
            Documentation::builder(
                DOC_SECTION,
                description.to_owned(),
                format!("{name}(phone, default_country)"),
            )
            .with_sql_example(format!("SELECT {name}('07700 900123', 'GB');"))
            .with_argument("phone", "The phone number, a string column or literal.")
            .with_argument(
                "default_country",
                "ISO 3166-1 alpha-2 code (column or literal) used to read numbers written \
                 without + or 00, e.g. 'GB', 'FR', 'US'.",
            )
            .with_related_udf(related[0])
            .with_related_udf(related[1])
            .build()
        }
        static E164: LazyLock<Documentation> = LazyLock::new(|| {
            doc(
                "normalize_phone",
                "The phone number in E.164 form, e.g. +447700900123. National numbers are read \
                 with the calling code of default_country. NULL when the value cannot be read \
                 as a phone number; such values are counted.",
                ["sha256_phone_e164", "sha256_phone_digits"],
            )
        });
        static SHA256_E164: LazyLock<Documentation> = LazyLock::new(|| {
            doc(
                "sha256_phone_e164",
                "Lower-case hex SHA-256 of normalize_phone(phone, default_country), including \
                 the leading + (the form Google Ads Customer Match expects).",
                ["normalize_phone", "sha256_phone_digits"],
            )
        });
        static SHA256_DIGITS: LazyLock<Documentation> = LazyLock::new(|| {
            doc(
                "sha256_phone_digits",
                "Lower-case hex SHA-256 of the digits of normalize_phone(phone, \
                 default_country), without the leading + (the form Meta Custom Audiences \
                 expects).",
                ["normalize_phone", "sha256_phone_e164"],
            )
        });
        Some(match self.output {
            PhoneOutput::E164 => &E164,
            PhoneOutput::Sha256E164 => &SHA256_E164,
            PhoneOutput::Sha256Digits => &SHA256_DIGITS,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(phone: &str, country: &str) -> Option<String> {
        normalize_phone_str(phone, country)
    }

    #[test]
    fn national_numbers_drop_the_trunk_zero_and_take_the_default_country() {
        let cases = [
            ("07700 900123", "GB", "+447700900123"),
            ("(020) 7946-0000", "gb", "+442079460000"),
            ("087 123 4567", "IE", "+353871234567"),
            ("06.12.34.56.78", "FR", "+33612345678"),
            ("030 1234567", "DE", "+49301234567"),
            ("06-12345678", "NL", "+31612345678"),
            ("0470 12 34 56", "BE", "+32470123456"),
            ("0664 1234567", "AT", "+436641234567"),
            ("0171 / 4252 8338", "DE", "+4917142528338"),
        ];
        for (phone, country, expected) in cases {
            assert_eq!(
                norm(phone, country).as_deref(),
                Some(expected),
                "{phone} in {country}"
            );
        }
    }

    #[test]
    fn countries_without_a_trunk_prefix_keep_a_leading_zero() {
        // Italian landlines keep their 0 after +39; mobiles start with 3.
        assert_eq!(norm("06 1234 5678", "IT").as_deref(), Some("+390612345678"));
        assert_eq!(norm("312 345 6789", "IT").as_deref(), Some("+393123456789"));
        assert_eq!(norm("612 345 678", "ES").as_deref(), Some("+34612345678"));
        assert_eq!(norm("912 345 678", "PT").as_deref(), Some("+351912345678"));
    }

    #[test]
    fn north_american_numbers_take_an_optional_leading_one() {
        for phone in [
            "(415) 555-2671",
            "415.555.2671",
            "1 415 555 2671",
            "1-415-555-2671",
        ] {
            assert_eq!(
                norm(phone, "US").as_deref(),
                Some("+14155552671"),
                "{phone}"
            );
        }
        assert_eq!(norm("416 555 0123", "CA").as_deref(), Some("+14165550123"));
        // Seven-digit local numbers and area codes starting 0 or 1 are not dialable.
        assert_eq!(norm("555 2671", "US"), None);
        assert_eq!(norm("115 555 2671", "US"), None);
        assert_eq!(norm("+1 415 555 267", "GB"), None);
    }

    #[test]
    fn international_numbers_ignore_the_default_country() {
        for phone in [
            "+44 7700 900123",
            "0044 7700 900123",
            "+44 (0) 7700 900123",
            "0044 (0)7700 900123",
            "+44 07700 900123",
            "  +44-7700-900-123  ",
        ] {
            assert_eq!(
                norm(phone, "FR").as_deref(),
                Some("+447700900123"),
                "{phone}"
            );
            assert_eq!(
                norm(phone, "XX").as_deref(),
                Some("+447700900123"),
                "{phone}"
            );
        }
        // Italy's leading 0 is part of the number, so it survives after +39.
        assert_eq!(
            norm("+39 06 1234 5678", "GB").as_deref(),
            Some("+390612345678")
        );
        assert_eq!(
            norm("+1 415 555 2671", "GB").as_deref(),
            Some("+14155552671")
        );
    }

    #[test]
    fn unknown_default_country_invalidates_national_numbers_only() {
        assert_eq!(norm("07700 900123", "XX"), None);
        assert_eq!(norm("07700 900123", ""), None);
        assert_eq!(
            norm("07700 900123", " uk ").as_deref(),
            Some("+447700900123")
        );
    }

    #[test]
    fn rejects_garbage_and_impossible_lengths() {
        for bad in [
            "",
            "   ",
            "n/a",
            "+44 7700 9001234567890",
            "+44 123",
            "12",
            "+",
            "00",
            "+0 7700 900123",
            "44+7700900123",
            "++447700900123",
            "+44 ７７００ 900123",
        ] {
            assert_eq!(norm(bad, "GB"), None, "{bad:?} should be invalid");
        }
    }

    /// What libphonenumber (python `phonenumbers`) gives for each.
    #[test]
    fn numbers_with_their_calling_code_but_no_plus_extensions_and_011() {
        let cases = [
            ("447700900123", "GB", "+447700900123"),
            ("44 07700 900123", "GB", "+447700900123"),
            ("33612345678", "FR", "+33612345678"),
            ("61412345678", "AU", "+61412345678"),
            ("353871234567", "IE", "+353871234567"),
            ("39 3120456789", "IT", "+393120456789"),
            ("34612345678", "ES", "+34612345678"),
            // A number of the country that starts like its calling code stays as it is.
            ("393 123 4567", "IT", "+393931234567"),
            ("3312 3456", "DK", "+4533123456"),
            // Italy keeps the 0 that `(0)` marks elsewhere as a trunk 0.
            ("+39 (0)6 1234 5678", "GB", "+390612345678"),
            ("0039 (0)6 12345678", "GB", "+390612345678"),
            ("011 44 20 7946 0000", "US", "+442079460000"),
            ("(201) 555-0823 ext 12", "US", "+12015550823"),
            ("+33 9 42 34 56 78#12", "FR", "+33942345678"),
            ("07700 900123 x12", "GB", "+447700900123"),
            ("+447700900123;ext=12", "GB", "+447700900123"),
            ("07700 900123 Ext. 4", "GB", "+447700900123"),
        ];
        for (phone, country, expected) in cases {
            assert_eq!(
                norm(phone, country).as_deref(),
                Some(expected),
                "{phone} in {country}"
            );
        }
        // 011 is North America's way abroad only; an extension needs a number before it.
        assert_eq!(norm("011 44 20 7946 0000", "GB"), None);
        assert_eq!(norm("x12", "GB"), None);
    }

    #[test]
    fn at_most_fifteen_digits() {
        assert_eq!(norm("+123456789012345", "GB"), None); // country code 1 needs 11 digits
        assert_eq!(
            norm("+493012345678901", "GB").as_deref(),
            Some("+493012345678901")
        );
        assert_eq!(norm("+4930123456789012", "GB"), None);
        assert_eq!(norm("+4930123", "GB"), None);
        assert_eq!(norm("+49301234", "GB").as_deref(), Some("+49301234"));
    }

    #[test]
    fn calling_codes() {
        assert_eq!(calling_code("gb"), Some("44"));
        assert_eq!(calling_code("PT"), Some("351"));
        assert_eq!(calling_code("CA"), Some("1"));
        assert_eq!(calling_code("XX"), None);
    }

    // Expected hashes computed independently with Python:
    // python3 -c 'import hashlib; print(hashlib.sha256(b"+447700900123").hexdigest())'
    #[test]
    fn hashes_pin_each_platform_form() {
        assert_eq!(
            sha256_phone_e164_str("07700 900123", "GB").as_deref(),
            Some("a8acc3a90a7b4e4dc65e93db9240ed26523050ef754d63b75b5161de76781436")
        );
        assert_eq!(
            sha256_phone_digits_str("07700 900123", "GB").as_deref(),
            Some("033134b911b137918338415ee3d20a064b24773d36a3b02e8b99fdd3fcd6b4cd")
        );
        assert_eq!(
            sha256_phone_e164_str("(415) 555-2671", "US").as_deref(),
            Some("cb6880e416769253645cb9c6b8989154bf66a56a77fc14c81fb1019663cbb928")
        );
        assert_eq!(
            sha256_phone_digits_str("(415) 555-2671", "US").as_deref(),
            Some("758fbf68945f21c416814c539ab578876c8d98fb69e6da692def92cd52417fe0")
        );
        assert_eq!(sha256_phone_e164_str("garbage", "GB"), None);
    }
}
