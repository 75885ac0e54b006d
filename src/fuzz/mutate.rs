//! Ways to damage a pipeline project, each from a seed so a failure can be replayed.

use rand::Rng;
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use serde_yaml::Value;

/// Values a careless user or an attacker might write anywhere.
fn hostile_value(rng: &mut StdRng) -> Value {
    let long = "x".repeat(10_000);
    let deep = format!("{}1{}", "[".repeat(40), "]".repeat(40));
    let texts = [
        "",
        "x",
        "emial",
        "-1",
        "1e309",
        "NaN",
        "s3://",
        "s3:///x",
        "../../../../etc/passwd",
        "'; DROP TABLE customers; --",
        "$undefined_param",
        "$run_date",
        "spend_365d / 0 > 1",
        "CAST(first_name AS DOUBLE) > 1",
        "1 = 1",
        "NULL",
        "customer_id",
        "Customer_ID",
        "\u{0}",
        "\u{feff}",
        "2262-04-12",
        "1850-01-01",
        long.as_str(),
        deep.as_str(),
    ];
    match rng.random_range(0..10) {
        0 => Value::Null,
        1 => Value::Bool(rng.random()),
        2 => Value::from(
            *[0i64, -1, 1, i64::MAX, i64::MIN, 100, 101, 4_294_967_295]
                .choose(rng)
                .unwrap(),
        ),
        3 => Value::from(
            *[f64::NAN, f64::INFINITY, -0.5, 1e300, 100.5, 0.0]
                .choose(rng)
                .unwrap(),
        ),
        4 => Value::Sequence(Vec::new()),
        5 => Value::Mapping(Default::default()),
        6 => Value::Sequence(vec![hostile_scalar(rng), hostile_scalar(rng)]),
        _ => Value::from(texts.choose(rng).unwrap().to_string()),
    }
}

fn hostile_scalar(rng: &mut StdRng) -> Value {
    Value::from(
        *["email", "sms", "x", "", "customer_id"]
            .choose(rng)
            .unwrap(),
    )
}

/// Every node of a document, by its path of keys and indices.
fn paths(value: &Value, path: &mut Vec<Value>, out: &mut Vec<Vec<Value>>) {
    out.push(path.clone());
    match value {
        Value::Mapping(map) => {
            for (key, child) in map {
                path.push(key.clone());
                paths(child, path, out);
                path.pop();
            }
        }
        Value::Sequence(items) => {
            for (i, child) in items.iter().enumerate() {
                path.push(Value::from(i as u64));
                paths(child, path, out);
                path.pop();
            }
        }
        _ => {}
    }
}

fn node_mut<'a>(value: &'a mut Value, path: &[Value]) -> Option<&'a mut Value> {
    let mut node = value;
    for step in path {
        node = match (node, step) {
            (Value::Mapping(map), key) => map.get_mut(key)?,
            (Value::Sequence(items), Value::Number(i)) => items.get_mut(i.as_u64()? as usize)?,
            _ => return None,
        };
    }
    Some(node)
}

/// One structure-aware edit of the pipeline's YAML.
pub(super) fn mutate_yaml(text: &str, rng: &mut StdRng) -> String {
    let Ok(mut doc) = serde_yaml::from_str::<Value>(text) else {
        return text.to_string();
    };
    let mut all = Vec::new();
    paths(&doc, &mut Vec::new(), &mut all);
    let path = all.choose(rng).cloned().unwrap_or_default();
    let edits = rng.random_range(0..6);
    match edits {
        // Replace the node.
        0..=2 => {
            if let Some(node) = node_mut(&mut doc, &path) {
                *node = hostile_value(rng);
            }
        }
        // Remove it from its mapping or sequence.
        3 => {
            if let Some((last, parent)) = path.split_last()
                && let Some(node) = node_mut(&mut doc, parent)
            {
                match (node, last) {
                    (Value::Mapping(map), key) => {
                        map.remove(key);
                    }
                    (Value::Sequence(items), Value::Number(i)) => {
                        let i = i.as_u64().unwrap_or(0) as usize;
                        if i < items.len() {
                            items.remove(i);
                        }
                    }
                    _ => {}
                }
            }
        }
        // Add a key nobody declared, or misspell one.
        _ => {
            if let Some(Value::Mapping(map)) = node_mut(&mut doc, &path) {
                let keys: Vec<Value> = map.keys().cloned().collect();
                match keys.choose(rng) {
                    Some(key) if edits == 4 => {
                        let value = map.remove(key).unwrap_or(Value::Null);
                        let typo = format!("{}x", key.as_str().unwrap_or("k"));
                        map.insert(Value::from(typo), value);
                    }
                    _ => {
                        map.insert(Value::from("unknwon"), hostile_value(rng));
                    }
                }
            }
        }
    }
    serde_yaml::to_string(&doc).unwrap_or_else(|_| text.to_string())
}

/// Damage to the bytes of a file: what an editor, a bad copy or a hostile user leaves.
pub(super) fn mutate_bytes(bytes: &[u8], rng: &mut StdRng) -> Vec<u8> {
    let mut out = bytes.to_vec();
    if out.is_empty() {
        return vec![0xFF];
    }
    let at = rng.random_range(0..out.len());
    match rng.random_range(0..8) {
        0 => out[at] ^= 1 << rng.random_range(0..8),
        1 => {
            out.insert(
                at,
                *[0xFFu8, 0xC3, b'\t', b'{', b'[', b':', b'"', b'\'']
                    .choose(rng)
                    .unwrap(),
            );
        }
        2 => {
            let end = (at + rng.random_range(1..200)).min(out.len());
            out.drain(at..end);
        }
        3 => out.truncate(at),
        4 => {
            // Repeat a line: a key written twice.
            let start = out[..at]
                .iter()
                .rposition(|b| *b == b'\n')
                .map_or(0, |p| p + 1);
            let end = out[at..]
                .iter()
                .position(|b| *b == b'\n')
                .map_or(out.len(), |p| at + p + 1);
            let line = out[start..end].to_vec();
            out.splice(end..end, line);
        }
        5 => out.splice(0..0, [0xEF, 0xBB, 0xBF]).for_each(drop),
        6 => {
            let nested: Vec<u8> = std::iter::repeat_n(b'[', 5000).collect();
            out.splice(at..at, nested).for_each(drop);
        }
        _ => out.swap(at, rng.random_range(0..bytes.len())),
    }
    out
}
