//! The `regex` mask: a DBA-written pattern matched against the whole value; capture groups
//! listed in `keep` are shown, the others become `*` per character.
//!
//! The pattern language is restricted so that Rust's `regex` crate and PostgreSQL's regular
//! expressions read it the same way:
//! - the pattern is a sequence of capture groups `( ... )` covering the whole value: no text
//!   outside groups, no nested groups, no quantifier on a group, no alternation `|`;
//! - inside a group: literal characters, `\` followed by one of `\^$.|?*+()[]{}-`, `.`
//!   (any character, newline included), bracket expressions `[abc]`, `[^0-9A-F]` with literal
//!   characters and ranges (no `\`, `[`, `&`, `~` inside), and greedy quantifiers `*`, `+`, `?`,
//!   `{m}`, `{m,}`, `{m,n}` (m, n <= 255).
//!
//! Whether a value matches is the same in both engines. Where a value can be split between
//! groups in more than one way, the engines may split it differently (Rust takes each group
//! greedily from the left, PostgreSQL may prefer another split); patterns should therefore make
//! each group's extent unambiguous, e.g. fixed widths or groups ending at a literal delimiter
//! the next group cannot start with. `rules/MASKS.md` says so too.
use regex::Regex;

use super::sqlgen::{call, case, concat, len, lit, matches, op, repeat};
use super::MaskError;

#[derive(Debug, Clone)]
pub(crate) struct RegexMask {
    pattern: String,
    /// `^(?:pattern)$` for PostgreSQL (ARE).
    anchored: String,
    re: Regex,
    /// Per group (0-based): shown or starred.
    keep: Vec<bool>,
}

fn bad(reason: impl Into<String>) -> MaskError {
    MaskError::BadParam {
        mask: "regex",
        reason: reason.into(),
    }
}

const META: &str = "\\^$.|?*+()[]{}";

/// Checks the restricted grammar; returns the number of groups.
fn check_pattern(p: &str) -> Result<usize, MaskError> {
    let chars: Vec<char> = p.chars().collect();
    let mut i = 0;
    let mut groups = 0;
    let at = |i: usize| format!("at character {}", i + 1);
    while i < chars.len() {
        if chars[i] != '(' {
            return Err(bad(format!(
                "the pattern must be a sequence of capture groups covering the whole value; found {:?} outside a group {}",
                chars[i],
                at(i)
            )));
        }
        i += 1;
        groups += 1;
        loop {
            let Some(&c) = chars.get(i) else {
                return Err(bad("unclosed group"));
            };
            if c == ')' {
                i += 1;
                break;
            }
            // Atom.
            match c {
                '(' => return Err(bad(format!("nested groups are not supported {}", at(i)))),
                '|' => return Err(bad(format!("alternation `|` is not supported {}", at(i)))),
                '\\' => {
                    let Some(&e) = chars.get(i + 1) else {
                        return Err(bad("pattern ends with `\\`"));
                    };
                    if !META.contains(e) && e != '-' {
                        return Err(bad(format!(
                            "only punctuation escapes (\\. \\( \\\\ ...) are supported; `\\{e}` {}",
                            at(i)
                        )));
                    }
                    i += 2;
                }
                '.' => i += 1,
                '[' => {
                    i += 1;
                    if chars.get(i) == Some(&'^') {
                        i += 1;
                    }
                    let start = i;
                    loop {
                        let Some(&b) = chars.get(i) else {
                            return Err(bad("unclosed bracket expression"));
                        };
                        if b == ']' && i > start {
                            i += 1;
                            break;
                        }
                        if matches!(b, '\\' | '[' | '&' | '~' | ']') {
                            return Err(bad(format!("`{b}` is not supported inside brackets {}", at(i))));
                        }
                        if b == '-' {
                            return Err(bad(format!(
                                "`-` inside brackets must form a range like a-z {}",
                                at(i)
                            )));
                        }
                        if chars.get(i + 1) == Some(&'-') && chars.get(i + 2).is_some_and(|&c| c != ']') {
                            let hi = chars[i + 2];
                            if matches!(hi, '\\' | '[' | '&' | '~' | '-') || hi < b {
                                return Err(bad(format!("invalid range {b}-{hi} {}", at(i))));
                            }
                            i += 3;
                        } else {
                            i += 1;
                        }
                    }
                }
                c if META.contains(c) => {
                    return Err(bad(format!(
                        "unexpected `{c}` {} (escape it with \\ to match it)",
                        at(i)
                    )));
                }
                _ => i += 1,
            }
            // Optional quantifier.
            match chars.get(i) {
                Some('*' | '+' | '?') => {
                    i += 1;
                    if matches!(chars.get(i), Some('?' | '+' | '*')) {
                        return Err(bad(format!(
                            "lazy or stacked quantifiers are not supported {}",
                            at(i)
                        )));
                    }
                }
                Some('{') => {
                    let close = chars[i..].iter().position(|&c| c == '}').map(|k| i + k);
                    let Some(close) = close else {
                        return Err(bad(format!("unclosed {{ {}", at(i))));
                    };
                    let body: String = chars[i + 1..close].iter().collect();
                    let (m, n) = match body.split_once(',') {
                        Some((m, "")) => (m, None),
                        Some((m, n)) => (m, Some(n)),
                        None => (body.as_str(), Some(body.as_str())),
                    };
                    let num = |s: &str| s.parse::<u32>().ok().filter(|v| *v <= 255 && !s.is_empty());
                    let (Some(m), n) = (num(m), n.map(num)) else {
                        return Err(bad(format!("bad bound {{{body}}} {} (numbers 0-255)", at(i))));
                    };
                    if let Some(n) = n {
                        match n {
                            Some(n) if n >= m => {}
                            _ => return Err(bad(format!("bad bound {{{body}}} {}", at(i)))),
                        }
                    }
                    i = close + 1;
                    if matches!(chars.get(i), Some('?' | '+' | '*' | '{')) {
                        return Err(bad(format!(
                            "lazy or stacked quantifiers are not supported {}",
                            at(i)
                        )));
                    }
                }
                _ => {}
            }
        }
        if matches!(chars.get(i), Some('*' | '+' | '?' | '{')) {
            return Err(bad(format!(
                "a quantifier on a whole group is not supported {}",
                at(i)
            )));
        }
    }
    if groups == 0 {
        return Err(bad("the pattern needs at least one capture group"));
    }
    Ok(groups)
}

impl RegexMask {
    pub(crate) fn new(pattern: &str, keep: &[u32]) -> Result<RegexMask, MaskError> {
        let groups = check_pattern(pattern)?;
        let mut kept = vec![false; groups];
        for &k in keep {
            if k == 0 || k as usize > groups {
                return Err(bad(format!(
                    "keep lists group {k}, but the pattern has groups 1 to {groups}"
                )));
            }
            kept[k as usize - 1] = true;
        }
        let re = Regex::new(&format!("(?s)^(?:{pattern})$")).map_err(|e| bad(format!("{e}")))?;
        Ok(RegexMask {
            pattern: pattern.to_string(),
            anchored: format!("^(?:{pattern})$"),
            re,
            keep: kept,
        })
    }

    pub(crate) fn apply(&self, s: &str, out: &mut Vec<u8>) {
        match self.re.captures(s) {
            Some(caps) => {
                for (i, keep) in self.keep.iter().enumerate() {
                    let g = caps.get(i + 1).map_or("", |m| m.as_str());
                    if *keep {
                        out.extend_from_slice(g.as_bytes());
                    } else {
                        out.resize(out.len() + g.chars().count(), b'*');
                    }
                }
            }
            None => out.resize(out.len() + s.chars().count(), b'*'),
        }
    }

    pub(crate) fn sql(&self, t: &str, tc: &str) -> String {
        let group_len = |i: usize| {
            len(&format!(
                "({})[{}]",
                call("regexp_match", &[tc, &lit(&self.anchored)]),
                i + 1
            ))
        };
        let mut parts = Vec::new();
        let mut start = "1".to_string();
        for (i, keep) in self.keep.iter().enumerate() {
            let l = group_len(i);
            parts.push(if *keep {
                call("substr", &[t, &start, &l])
            } else {
                repeat("*", &l)
            });
            start = op(&start, "+", &l);
        }
        case(
            &[(matches(tc, &self.anchored), concat(&parts))],
            &repeat("*", &len(t)),
        )
    }

    pub(crate) fn reveals(&self) -> String {
        let kept: Vec<String> = self
            .keep
            .iter()
            .enumerate()
            .filter(|(_, k)| **k)
            .map(|(i, _)| (i + 1).to_string())
            .collect();
        format!(
            "groups [{}] of /{}/ and the length of the others; non-matching values: their length",
            kept.join(", "),
            self.pattern
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grammar() {
        assert!(check_pattern("([0-9]{3})([0-9]*)").is_ok());
        assert!(check_pattern("([^@]+)(@.*)").is_ok());
        assert!(check_pattern("(\\d+)").is_err());
        assert!(check_pattern("(a|b)").is_err());
        assert!(check_pattern("a(b)").is_err());
        assert!(check_pattern("((a))").is_err());
        assert!(check_pattern("(a)+").is_err());
        assert!(check_pattern("(a*?)").is_err());
        assert!(check_pattern("(a{256})").is_err());
        assert!(check_pattern("([a-])").is_err());
        assert!(check_pattern("").is_err());
    }

    #[test]
    fn apply_examples() {
        let m = RegexMask::new("([A-Z]{2})([0-9]+)(-[0-9]{2})", &[1, 3]).unwrap();
        let mut out = Vec::new();
        m.apply("AB12345-67", &mut out);
        assert_eq!(out, b"AB*****-67");
        out.clear();
        m.apply("nope", &mut out);
        assert_eq!(out, b"****");
        assert!(RegexMask::new("(a)", &[2]).is_err());
    }
}
