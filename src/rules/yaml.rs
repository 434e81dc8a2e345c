//! A YAML document as a tree of nodes that remember where they were written.
//!
//! Built from the event stream of `granit_parser` (the parser under serde-saphyr), because
//! rule validation needs what serde cannot give in one pass: the line and column of every
//! key and value, every error in a file rather than the first, and did-you-mean hints for
//! unknown fields.
//!
//! Invariants: scalars keep their text exactly as written (typing is left to the reader,
//! which knows what each field expects); aliases are expanded to a copy of their anchor's
//! node; a mapping keeps its keys in source order and a repeated key is reported, never
//! silently overwritten (a second rule for one column must not shadow the first).
use std::borrow::Cow;
use std::collections::HashMap;

use serde_saphyr::granit_parser::{Event, Parser, ScalarStyle, Span};

/// 1-based line and column of a node's first character.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    pub line: usize,
    pub column: usize,
}

impl Pos {
    fn of(span: &Span) -> Pos {
        Pos {
            line: span.start.line(),
            column: span.start.col() + 1,
        }
    }
}

/// One YAML node.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub pos: Pos,
    pub value: Value,
}

/// The three YAML node kinds.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A scalar: its text, and whether it was quoted (a quoted `"true"` is a string).
    Scalar {
        text: String,
        quoted: bool,
    },
    Seq(Vec<Node>),
    /// Key text with the key's position, then the value, in source order.
    Map(Vec<(Key, Node)>),
}

/// A mapping key (always a scalar in the rules format).
#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    pub text: String,
    pub pos: Pos,
}

/// A syntax problem found while building the tree.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntaxError {
    pub pos: Pos,
    pub message: String,
}

impl Node {
    /// A plain (unquoted) `~`, `null` or empty scalar: YAML's null.
    pub fn is_null(&self) -> bool {
        matches!(&self.value, Value::Scalar { text, quoted: false }
            if text.is_empty() || text == "~" || text == "null" || text == "Null" || text == "NULL")
    }

    /// The scalar's text, or None for a sequence or mapping.
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }

    /// What kind of node this is, for error messages ("expected a mapping, got a sequence").
    pub fn kind(&self) -> &'static str {
        match &self.value {
            Value::Scalar { .. } if self.is_null() => "nothing (null)",
            Value::Scalar { .. } => "a scalar",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }

    /// Number of nodes in this subtree (keys not counted).
    fn size(&self) -> usize {
        1 + match &self.value {
            Value::Scalar { .. } => 0,
            Value::Seq(items) => items.iter().map(Node::size).sum(),
            Value::Map(entries) => entries.iter().map(|(_, v)| v.size()).sum(),
        }
    }

    /// The node as JSON, with YAML 1.2 core-schema typing of unquoted scalars, so that serde
    /// types (such as the mask spec) can be deserialized from it with `serde_json`.
    pub fn to_json(&self) -> serde_json::Value {
        match &self.value {
            Value::Scalar { text, quoted: true } => serde_json::Value::String(text.clone()),
            Value::Scalar { text, quoted: false } => scalar_to_json(text),
            Value::Seq(items) => serde_json::Value::Array(items.iter().map(Node::to_json).collect()),
            Value::Map(entries) => {
                let mut map = serde_json::Map::new();
                for (k, v) in entries {
                    map.insert(k.text.clone(), v.to_json());
                }
                serde_json::Value::Object(map)
            }
        }
    }
}

/// YAML 1.2 core schema resolution of a plain scalar.
fn scalar_to_json(text: &str) -> serde_json::Value {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return serde_json::Value::Null,
        "true" | "True" | "TRUE" => return serde_json::Value::Bool(true),
        "false" | "False" | "FALSE" => return serde_json::Value::Bool(false),
        _ => {}
    }
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        if let Ok(i) = text.parse::<i64>() {
            return serde_json::Value::from(i);
        }
        if let Ok(u) = text.parse::<u64>() {
            return serde_json::Value::from(u);
        }
    }
    let looks_float = !digits.is_empty()
        && digits
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b'.' || b == b'e' || b == b'E' || b == b'-' || b == b'+')
        && digits
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_digit() || b == b'.');
    if looks_float {
        if let Ok(f) = text.parse::<f64>() {
            if let Some(n) = serde_json::Number::from_f64(f) {
                return serde_json::Value::Number(n);
            }
        }
    }
    serde_json::Value::String(text.to_string())
}

/// Most nodes aliases may copy in one file: a few aliases of aliases can otherwise expand
/// exponentially ("billion laughs") and exhaust memory while reading the rules.
const MAX_ALIAS_NODES: usize = 100_000;

/// A collection being built.
enum Frame {
    Seq {
        pos: Pos,
        anchor: usize,
        items: Vec<Node>,
    },
    Map {
        pos: Pos,
        anchor: usize,
        entries: Vec<(Key, Node)>,
        pending_key: Option<Key>,
    },
}

/// Parses one YAML file. Returns the root node (None for an empty file), plus the problems
/// found: a syntax error stops the parse (the rest of the file cannot be trusted), a
/// repeated key does not.
pub fn parse(text: &str) -> (Option<Node>, Vec<SyntaxError>) {
    let mut errors = Vec::new();
    let mut stack: Vec<Frame> = Vec::new();
    let mut anchors: HashMap<usize, Node> = HashMap::new();
    let mut root: Option<Node> = None;
    let mut documents = 0usize;
    let mut expanded = 0usize;

    for item in Parser::new_from_str(text) {
        let (event, span) = match item {
            Ok(pair) => pair,
            Err(e) => {
                let m = e.marker();
                errors.push(SyntaxError {
                    pos: Pos {
                        line: m.line().max(1),
                        column: m.col() + 1,
                    },
                    message: format!("YAML syntax error: {}", e.info()),
                });
                return (None, errors);
            }
        };
        let pos = Pos::of(&span);
        let done: Option<(Node, usize)> = match event {
            Event::DocumentStart(..) => {
                documents += 1;
                if documents > 1 {
                    errors.push(SyntaxError {
                        pos,
                        message: "more than one YAML document in a file (`---`): put each in its own file"
                            .into(),
                    });
                    return (root, errors);
                }
                None
            }
            Event::Scalar(text, style, anchor, _tag) => {
                let quoted = !matches!(style, ScalarStyle::Plain);
                Some((
                    Node {
                        pos,
                        value: Value::Scalar {
                            text: Cow::into_owned(text),
                            quoted,
                        },
                    },
                    anchor,
                ))
            }
            Event::Alias(id) => match anchors.get(&id) {
                Some(n) => {
                    expanded += n.size();
                    if expanded > MAX_ALIAS_NODES {
                        errors.push(SyntaxError {
                            pos,
                            message: format!("aliases expand to more than {MAX_ALIAS_NODES} nodes"),
                        });
                        return (None, errors);
                    }
                    Some((
                        Node {
                            pos,
                            value: n.value.clone(),
                        },
                        0,
                    ))
                }
                None => {
                    errors.push(SyntaxError {
                        pos,
                        message: "alias to an unknown anchor".into(),
                    });
                    return (None, errors);
                }
            },
            Event::SequenceStart(_, anchor, _) => {
                stack.push(Frame::Seq {
                    pos,
                    anchor,
                    items: Vec::new(),
                });
                None
            }
            Event::MappingStart(_, anchor, _) => {
                stack.push(Frame::Map {
                    pos,
                    anchor,
                    entries: Vec::new(),
                    pending_key: None,
                });
                None
            }
            Event::SequenceEnd => match stack.pop() {
                Some(Frame::Seq { pos, anchor, items }) => Some((
                    Node {
                        pos,
                        value: Value::Seq(items),
                    },
                    anchor,
                )),
                _ => None,
            },
            Event::MappingEnd => match stack.pop() {
                Some(Frame::Map {
                    pos, anchor, entries, ..
                }) => Some((
                    Node {
                        pos,
                        value: Value::Map(entries),
                    },
                    anchor,
                )),
                _ => None,
            },
            _ => None,
        };
        let Some((node, anchor)) = done else { continue };
        if anchor != 0 {
            anchors.insert(anchor, node.clone());
        }
        match stack.last_mut() {
            None => root = Some(node),
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map {
                entries, pending_key, ..
            }) => match pending_key.take() {
                None => {
                    let text = match &node.value {
                        Value::Scalar { text, .. } => text.clone(),
                        _ => {
                            errors.push(SyntaxError {
                                pos: node.pos,
                                message: format!("a mapping key must be a plain name, got {}", node.kind()),
                            });
                            String::new()
                        }
                    };
                    if let Some((first, _)) = entries.iter().find(|(k, _)| k.text == text && !text.is_empty())
                    {
                        errors.push(SyntaxError {
                            pos: node.pos,
                            message: format!("duplicate key '{text}' (first at line {})", first.pos.line),
                        });
                    }
                    *pending_key = Some(Key { text, pos: node.pos });
                }
                Some(key) => {
                    // A repeated key keeps its first value; the error above already names it.
                    if !entries.iter().any(|(k, _)| k.text == key.text) {
                        entries.push((key, node));
                    }
                }
            },
        }
    }
    (root, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_of_keys_and_values() {
        let (root, errs) = parse("a:\n  b: { c: 1 }\n  d: [x, 'y']\n");
        assert!(errs.is_empty(), "{errs:?}");
        let root = root.unwrap();
        let Value::Map(top) = &root.value else { panic!() };
        assert_eq!(top[0].0.text, "a");
        assert_eq!(top[0].0.pos, Pos { line: 1, column: 1 });
        let Value::Map(inner) = &top[0].1.value else {
            panic!()
        };
        assert_eq!(inner[0].0.pos, Pos { line: 2, column: 3 });
        assert_eq!(inner[1].0.text, "d");
        assert_eq!(inner[1].0.pos.line, 3);
        assert_eq!(
            root.to_json(),
            serde_json::json!({"a": {"b": {"c": 1}, "d": ["x", "y"]}})
        );
    }

    #[test]
    fn duplicate_key_is_reported() {
        let (_, errs) = parse("a: 1\nb: 2\na: 3\n");
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].pos.line, 3);
        assert!(
            errs[0].message.contains("duplicate key 'a' (first at line 1)"),
            "{}",
            errs[0].message
        );
    }

    #[test]
    fn syntax_error_has_line() {
        let (_, errs) = parse("a: 1\nb: [1, 2\nc: 3\n");
        assert_eq!(errs.len(), 1);
        assert!(
            errs[0].message.starts_with("YAML syntax error"),
            "{}",
            errs[0].message
        );
        assert!(errs[0].pos.line >= 2);
    }

    #[test]
    fn alias_bomb_is_refused() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..8 {
            let refs = vec![format!("*a{}", i - 1); 10].join(", ");
            text.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
        }
        let (root, errs) = parse(&text);
        assert!(root.is_none());
        assert_eq!(errs.len(), 1);
        assert!(
            errs[0]
                .message
                .contains("aliases expand to more than 100000 nodes"),
            "{}",
            errs[0].message
        );
    }

    #[test]
    fn aliases_are_expanded_and_scalars_typed() {
        let (root, errs) = parse("a: &x { n: 1.5, t: true, s: 'true', z: ~ }\nb: *x\n");
        assert!(errs.is_empty(), "{errs:?}");
        let j = root.unwrap().to_json();
        assert_eq!(
            j["b"],
            serde_json::json!({"n": 1.5, "t": true, "s": "true", "z": null})
        );
    }
}
