//! Between flat etcd keys and nested trees, with the reference's rules: `get_prefix` turns
//! `config/redis/addr = A` into `{"redis": {"addr": "A"}}` and keeps a value that sits at a node under
//! the empty key `""`; `put_prefix` turns a JSON object back into keys, quoting each piece and
//! spelling each leaf as Python's `str()` would (`True`, `None`, `['a', 'b']`, `5.0`).

use bai_pyjson::Layout;
use indexmap::IndexMap;
use serde::{Serialize, Serializer};
use serde_json::Value;

use crate::quote::{quote, unquote};

/// A nested view of etcd keys. Children keep the order of their (sorted, quoted) etcd keys, which is
/// the order the reference prints them in.
pub type ConfigTree = IndexMap<String, ConfigNode>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigNode {
    Value(String),
    Tree(ConfigTree),
}

impl ConfigNode {
    pub fn as_value(&self) -> Option<&str> {
        match self {
            ConfigNode::Value(value) => Some(value),
            ConfigNode::Tree(_) => None,
        }
    }

    pub fn as_tree(&self) -> Option<&ConfigTree> {
        match self {
            ConfigNode::Value(_) => None,
            ConfigNode::Tree(tree) => Some(tree),
        }
    }
}

/// Builds the tree of `pairs` (keys relative to the scope root, already sorted) below `prefix`.
pub fn tree_from_pairs<'a>(
    prefix: &str,
    pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> ConfigTree {
    let mut root = ConfigTree::new();
    for (key, value) in pairs {
        let rest = key.strip_prefix(prefix).unwrap_or(key);
        let rest = rest.strip_prefix('/').unwrap_or(rest);
        let pieces: Vec<String> = rest.split('/').map(unquote).collect();
        let Some((last, parents)) = pieces.split_last() else {
            continue;
        };
        let mut node = &mut root;
        for piece in parents {
            let child = node
                .entry(piece.clone())
                .or_insert_with(|| ConfigNode::Tree(ConfigTree::new()));
            if let ConfigNode::Value(value) = child {
                let at_node = std::mem::take(value);
                *child = ConfigNode::Tree(ConfigTree::from([(
                    String::new(),
                    ConfigNode::Value(at_node),
                )]));
            }
            let ConfigNode::Tree(tree) = child else {
                unreachable!("a value was just replaced by a tree")
            };
            node = tree;
        }
        node.insert(last.clone(), ConfigNode::Value(value.to_owned()));
    }
    root
}

/// Merges per-scope trees like Python's `ChainMap`: only top-level keys are merged, the first tree
/// that has a key wins, and keys are ordered from the last tree to the first.
pub fn merge_shallow(trees: Vec<ConfigTree>) -> ConfigTree {
    let mut merged = ConfigTree::new();
    for tree in trees.iter().rev() {
        for key in tree.keys() {
            merged
                .entry(key.clone())
                .or_insert(ConfigNode::Value(String::new()));
        }
    }
    for (key, slot) in &mut merged {
        if let Some(node) = trees.iter().find_map(|tree| tree.get(key)) {
            *slot = node.clone();
        }
    }
    merged
}

/// The flat `(key, value)` pairs that `put_prefix(prefix, object)` writes.
pub fn flatten(prefix: &str, object: &serde_json::Map<String, Value>) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    flatten_into(prefix, object, &mut pairs);
    pairs
}

fn flatten_into(
    prefix: &str,
    object: &serde_json::Map<String, Value>,
    pairs: &mut Vec<(String, String)>,
) {
    for (key, value) in object {
        let path = if key.is_empty() {
            prefix.to_owned()
        } else {
            format!("{prefix}/{}", quote(key))
        };
        match value {
            Value::Object(child) => flatten_into(&path, child, pairs),
            leaf => pairs.push((path, python_str(leaf))),
        }
    }
}

/// The tree as JSON, so that it can be written back with [`flatten`] (leaves are strings).
pub fn tree_to_json(tree: &ConfigTree) -> serde_json::Map<String, Value> {
    tree.iter()
        .map(|(key, node)| {
            let value = match node {
                ConfigNode::Value(value) => Value::String(value.clone()),
                ConfigNode::Tree(child) => Value::Object(tree_to_json(child)),
            };
            (key.clone(), value)
        })
        .collect()
}

/// The text `json.dumps(tree, indent=4)` prints: four-space indent, ASCII only.
pub fn tree_to_python_json(tree: &ConfigTree) -> String {
    bai_pyjson::to_string(&TreeJson(tree), Layout::Indented(4))
        .expect("a tree of string keys and values always serializes")
}

/// A tree as a JSON object in its own order.
struct TreeJson<'a>(&'a ConfigTree);

impl Serialize for TreeJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0)
    }
}

/// A value as a JSON string, a tree as a JSON object in its own order.
impl Serialize for ConfigNode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            ConfigNode::Value(value) => serializer.serialize_str(value),
            ConfigNode::Tree(tree) => TreeJson(tree).serialize(serializer),
        }
    }
}

/// Python's `str(value)` of what `json.load` returns for `value`.
pub fn python_str(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => python_repr(other),
    }
}

fn python_repr(value: &Value) -> String {
    match value {
        Value::Null => "None".to_owned(),
        Value::Bool(true) => "True".to_owned(),
        Value::Bool(false) => "False".to_owned(),
        Value::Number(number) => match number.as_f64().filter(|_| number.is_f64()) {
            Some(float) => bai_pyjson::float_repr(float),
            None => number.to_string(),
        },
        Value::String(text) => python_string_repr(text),
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(python_repr).collect();
            format!("[{}]", items.join(", "))
        }
        Value::Object(entries) => {
            let entries: Vec<String> = entries
                .iter()
                .map(|(key, value)| format!("{}: {}", python_string_repr(key), python_repr(value)))
                .collect();
            format!("{{{}}}", entries.join(", "))
        }
    }
}

/// Python's `repr(str)`: single quotes unless the text has a single quote and no double quote.
fn python_string_repr(text: &str) -> String {
    let quote_char = if text.contains('\'') && !text.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(text.len() + 2);
    out.push(quote_char);
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote_char => {
                out.push('\\');
                out.push(c);
            }
            c if u32::from(c) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", u32::from(c)))
            }
            c => out.push(c),
        }
    }
    out.push(quote_char);
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn flat(prefix: &str, value: Value) -> Vec<(String, String)> {
        let Value::Object(object) = value else {
            panic!("an object")
        };
        flatten(prefix, &object)
    }

    #[test]
    fn leaves_are_spelled_as_python_str() {
        let pairs = flat(
            "config",
            json!({"a": true, "b": null, "c": ["x", 1, 2.5, false], "d": 1500, "e": 5.0, "f": "", "g": {}}),
        );
        assert_eq!(
            pairs,
            [
                ("config/a", "True"),
                ("config/b", "None"),
                ("config/c", "['x', 1, 2.5, False]"),
                ("config/d", "1500"),
                ("config/e", "5.0"),
                ("config/f", ""),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
        );
    }

    #[test]
    fn keys_are_quoted_and_the_empty_key_is_the_node_itself() {
        let pairs = flat(
            "config/docker/registry",
            json!({"cr.backend.ai:5000": {"": "https://cr.backend.ai:5000", "type": "harbor2"}}),
        );
        assert_eq!(
            pairs,
            [
                (
                    "config/docker/registry/cr.backend.ai%3A5000",
                    "https://cr.backend.ai:5000"
                ),
                (
                    "config/docker/registry/cr.backend.ai%3A5000/type",
                    "harbor2"
                ),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
        );
    }

    #[test]
    fn floats_follow_python_repr() {
        for (value, expected) in [
            (5.0, "5.0"),
            (0.3, "0.3"),
            (1e16, "1e+16"),
            (1.5e16, "1.5e+16"),
            (123_456_789_012_345.0, "123456789012345.0"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (-2.5e-7, "-2.5e-07"),
        ] {
            assert_eq!(python_str(&json!(value)), expected, "{value}");
        }
    }

    #[test]
    fn strings_in_lists_follow_python_repr() {
        assert_eq!(
            python_repr(&json!(["it's", "say \"hi\"", "both ' \""])),
            r#"["it's", 'say "hi"', 'both \' "']"#
        );
    }

    #[test]
    fn pairs_become_a_tree_with_values_at_nodes_under_the_empty_key() {
        let tree = tree_from_pairs(
            "config",
            [
                ("config/docker/registry/cr.backend.ai%3A5000", "https://x"),
                (
                    "config/docker/registry/cr.backend.ai%3A5000/type",
                    "harbor2",
                ),
                ("config/redis", "legacy"),
                ("config/redis/addr", "127.0.0.1:8110"),
                ("config/redis-x/y", "sibling"),
            ],
        );
        assert_eq!(
            tree_to_python_json(&tree),
            r#"{
    "docker": {
        "registry": {
            "cr.backend.ai:5000": {
                "": "https://x",
                "type": "harbor2"
            }
        }
    },
    "redis": {
        "": "legacy",
        "addr": "127.0.0.1:8110"
    },
    "redis-x": {
        "y": "sibling"
    }
}"#
        );
    }

    #[test]
    fn a_prefix_is_a_plain_string_prefix() {
        let tree = tree_from_pairs(
            "config/redis",
            [("config/redis/addr", "A"), ("config/redis-x/y", "B")],
        );
        assert_eq!(tree.keys().collect::<Vec<_>>(), ["addr", "-x"]);
    }

    #[test]
    fn a_leaf_prefix_is_a_value_under_the_empty_key() {
        let tree = tree_from_pairs("config/redis/addr", [("config/redis/addr", "A")]);
        assert_eq!(tree_to_python_json(&tree), "{\n    \"\": \"A\"\n}");
        assert_eq!(tree_to_python_json(&ConfigTree::new()), "{}");
    }

    #[test]
    fn json_text_is_ascii_escaped_like_python() {
        let tree = tree_from_pairs("", [("k", "한 \"q\" \\ \n \u{1F600} \u{7f}")]);
        assert_eq!(
            tree_to_python_json(&tree),
            "{\n    \"k\": \"\\ud55c \\\"q\\\" \\\\ \\n \\ud83d\\ude00 \\u007f\"\n}"
        );
    }

    #[test]
    fn the_first_scope_wins_for_top_level_keys_only() {
        let node = tree_from_pairs("", [("a/x", "node"), ("b", "node-b")]);
        let global = tree_from_pairs("", [("a/y", "global"), ("c", "global-c")]);
        let merged = merge_shallow(vec![node, global]);
        assert_eq!(merged.keys().collect::<Vec<_>>(), ["a", "c", "b"]);
        assert_eq!(
            merged["a"]
                .as_tree()
                .map(|tree| tree.keys().cloned().collect::<Vec<_>>()),
            Some(vec!["x".to_owned()])
        );
    }

    #[test]
    fn a_tree_flattens_back_to_its_keys() {
        let pairs = [
            ("config/a%2Fb", "1"),
            ("config/a%2Fb/c", "2"),
            ("config/d", "3"),
        ];
        let tree = tree_from_pairs("config", pairs);
        let flat = flatten("config", &tree_to_json(&tree));
        assert_eq!(flat, pairs.map(|(k, v)| (k.to_owned(), v.to_owned())));
    }
}
