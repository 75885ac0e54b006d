//! Orders models so each runs after the models it reads.

use std::collections::BTreeSet;

use indexmap::IndexMap;

/// Orders `deps` (node → the nodes it reads) topologically, keeping declaration order where
/// the graph allows it so plans read like the pipeline file. On a cycle, returns its nodes in
/// order, first node repeated at the end (`a → b → a`).
pub(crate) fn topological_order(
    deps: &IndexMap<String, BTreeSet<String>>,
) -> Result<Vec<String>, Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Active,
        Done,
    }
    let mut marks: IndexMap<&str, Mark> = deps.keys().map(|k| (k.as_str(), Mark::New)).collect();
    let mut order = Vec::with_capacity(deps.len());

    fn visit<'a>(
        node: &'a str,
        deps: &'a IndexMap<String, BTreeSet<String>>,
        marks: &mut IndexMap<&'a str, Mark>,
        stack: &mut Vec<&'a str>,
        order: &mut Vec<String>,
    ) -> Result<(), Vec<String>> {
        match marks[node] {
            Mark::Done => return Ok(()),
            Mark::Active => {
                let start = stack.iter().position(|n| *n == node).unwrap_or(0);
                let mut cycle: Vec<String> = stack[start..].iter().map(|s| s.to_string()).collect();
                cycle.push(node.to_string());
                return Err(cycle);
            }
            Mark::New => {}
        }
        marks[node] = Mark::Active;
        stack.push(node);
        for dep in &deps[node] {
            if deps.contains_key(dep) {
                visit(dep, deps, marks, stack, order)?;
            }
        }
        stack.pop();
        marks[node] = Mark::Done;
        order.push(node.to_string());
        Ok(())
    }

    let mut stack = Vec::new();
    for node in deps.keys() {
        visit(node, deps, &mut marks, &mut stack, &mut order)?;
    }
    Ok(order)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(edges: &[(&str, &[&str])]) -> IndexMap<String, BTreeSet<String>> {
        edges
            .iter()
            .map(|(n, ds)| (n.to_string(), ds.iter().map(|d| d.to_string()).collect()))
            .collect()
    }

    #[test]
    fn dependencies_come_first() {
        let g = graph(&[
            ("profile", &["features", "address", "customers"]),
            ("features", &["events"]),
            ("address", &[]),
        ]);
        assert_eq!(
            topological_order(&g).unwrap(),
            ["address", "features", "profile"]
        );
    }

    #[test]
    fn cycles_are_named() {
        let g = graph(&[("a", &["b"]), ("b", &["c"]), ("c", &["a"])]);
        assert_eq!(topological_order(&g).unwrap_err(), ["a", "b", "c", "a"]);
    }
}
