//! The shape of a YAML document, checked before it is read as a pipeline: no key twice in one
//! mapping (serde would silently keep the last one), no nesting deeper than a pipeline ever
//! needs (a hostile file is rejected at once instead of being parsed for minutes), and in a
//! pipeline no key left without a value (read as if it were not there: a `scope:` whose list
//! was commented out would hold back everything).

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

/// Flow collections: sequences and mappings written inline.
const OPENING: [char; 2] = ['[', '{'];
const CLOSING: [char; 2] = [']', '}'];

/// Deeper than any pipeline or test file needs (they nest about 8 levels).
pub const MAX_DEPTH: usize = 32;

/// A problem with the document's shape; serde_yaml adds where it is.
pub(super) enum ShapeProblem {
    Duplicate { path: Vec<String> },
    TooDeep,
    Empty { path: Vec<String> },
}

/// Walks a document, keeping the path to the current node.
struct Walk<'a> {
    path: &'a mut Vec<String>,
    problem: &'a mut Option<ShapeProblem>,
    /// Whether a key's value may be null (`key:`, `key: ~`), as a test's rows may be.
    nulls: bool,
    /// Whether the node is the value of a mapping's key.
    keyed: bool,
}

impl Walk<'_> {
    fn null<E: de::Error>(self) -> Result<(), E> {
        if self.nulls || !self.keyed {
            return Ok(());
        }
        *self.problem = Some(ShapeProblem::Empty {
            path: self.path.clone(),
        });
        Err(E::custom("a key has no value"))
    }
}

impl<'de> DeserializeSeed<'de> for Walk<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        if self.path.len() > MAX_DEPTH {
            *self.problem = Some(ShapeProblem::TooDeep);
            return Err(de::Error::custom(format!(
                "the document nests deeper than {MAX_DEPTH} levels; a pipeline needs far fewer"
            )));
        }
        deserializer.deserialize_any(self)
    }
}

/// A mapping key as text (other keys are rare in pipelines and never repeat meaningfully).
struct KeyText;

impl<'de> DeserializeSeed<'de> for KeyText {
    type Value = String;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<String, D::Error> {
        deserializer.deserialize_any(KeyText)
    }
}

impl<'de> Visitor<'de> for KeyText {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_unit<E: de::Error>(self) -> Result<String, E> {
        Ok("null".into())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<String, A::Error> {
        while map
            .next_entry::<de::IgnoredAny, de::IgnoredAny>()?
            .is_some()
        {}
        Ok("{…}".into())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<String, A::Error> {
        while seq.next_element::<de::IgnoredAny>()?.is_some() {}
        Ok("[…]".into())
    }
}

impl<'de> Visitor<'de> for Walk<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a YAML document")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_i128<E>(self, _: i128) -> Result<(), E> {
        Ok(())
    }
    fn visit_u128<E>(self, _: u128) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.null()
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        self.null()
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        self.deserialize(deserializer)
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        self.deserialize(d)
    }

    fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<(), A::Error> {
        // A tagged value (`!tag value`): look inside it like any other value.
        let (_, variant) = data.variant::<de::IgnoredAny>()?;
        de::VariantAccess::newtype_variant_seed(variant, self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut index = 0;
        loop {
            self.path.push(index.to_string());
            let more = seq.next_element_seed(Walk {
                path: self.path,
                problem: self.problem,
                nulls: self.nulls,
                keyed: false,
            })?;
            self.path.pop();
            if more.is_none() {
                return Ok(());
            }
            index += 1;
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = std::collections::HashSet::new();
        while let Some(key) = map.next_key_seed(KeyText)? {
            if !seen.insert(key.clone()) {
                let mut path = self.path.clone();
                path.push(key.clone());
                *self.problem = Some(ShapeProblem::Duplicate { path });
                return Err(de::Error::custom(format!("\"{key}\" appears twice")));
            }
            self.path.push(key);
            map.next_value_seed(Walk {
                path: self.path,
                problem: self.problem,
                nulls: self.nulls,
                keyed: true,
            })?;
            self.path.pop();
        }
        Ok(())
    }
}

/// The first place where flow brackets (`[`, `{`) nest deeper than [`MAX_DEPTH`], found by
/// scanning the text: the YAML parser reads a whole document before serde sees any of it, which
/// takes seconds for a hostile one.
pub(super) fn too_deep_brackets(text: &str) -> Option<usize> {
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    let mut comment = false;
    for (offset, c) in text.char_indices() {
        match (quote, c) {
            (_, '\n') if quote.is_none() => comment = false,
            _ if comment => {}
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '#') => comment = true,
            (None, '\'' | '"') => quote = Some(c),
            (None, c) if OPENING.contains(&c) => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Some(offset);
                }
            }
            (None, c) if CLOSING.contains(&c) => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    None
}

/// Checks the document's shape (keys may be left without a value when `nulls`); on a problem,
/// returns it with serde_yaml's error (which knows where it was found).
pub(super) fn check(text: &str, nulls: bool) -> Result<(), (ShapeProblem, serde_yaml::Error)> {
    let mut path = Vec::new();
    let mut problem = None;
    let deserializer = serde_yaml::Deserializer::from_str(text);
    let walk = Walk {
        path: &mut path,
        problem: &mut problem,
        nulls,
        keyed: false,
    };
    match walk.deserialize(deserializer) {
        Ok(()) => Ok(()),
        // Errors of the YAML itself are reported by the real parse, with its wording.
        Err(err) => match problem {
            Some(problem) => Err((problem, err)),
            None => Ok(()),
        },
    }
}
