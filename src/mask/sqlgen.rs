//! Building blocks for the SQL twins of masks.
//!
//! Invariants of everything built here:
//! - immune to `search_path` tricks: functions are called as `pg_catalog.f(...)`, operators as
//!   `OPERATOR(pg_catalog.op)`, types are `pg_catalog.` names or SQL keywords;
//! - literals are `E'...'` strings with `\` and `'` escaped, so they mean the same whatever
//!   `standard_conforming_strings` says;
//! - collation-sensitive operations (regex, `LIKE`, `strpos`, equality and `<`/`>=`) only
//!   happen on `COLLATE "C"` copies and only yield booleans or integers (text derived from a
//!   `C` copy, such as `rtrim(right(tc, 5), '0123456789')`, is only ever measured or
//!   compared, never output), so a
//!   column with a nondeterministic collation never makes them fail, and the masked text keeps
//!   the column's collation.
//! - cost: PostgreSQL evaluates these expressions once per row wherever a restricted role
//!   computes on a masked column, and it does not share common subexpressions, so each
//!   twin tests the cheap, common shape first (byte lengths, `LIKE`, byte-order comparisons)
//!   and then at most one regular expression without counted repetitions on the usual path
//!   (see [`all_digits`] for the measured costs).
use super::ColumnType;

/// A text literal, typed.
pub(crate) fn lit(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 24);
    o.push_str("E'");
    for c in s.chars() {
        match c {
            '\\' => o.push_str("\\\\"),
            '\'' => o.push_str("''"),
            c => o.push(c),
        }
    }
    o.push_str("'::pg_catalog.text");
    o
}

/// `pg_catalog.name(args...)`.
pub(crate) fn call(name: &str, args: &[&str]) -> String {
    format!("pg_catalog.{name}({})", args.join(", "))
}

/// `(a OPERATOR(pg_catalog.op) b)`.
pub(crate) fn op(a: &str, o: &str, b: &str) -> String {
    format!("({a} OPERATOR(pg_catalog.{o}) {b})")
}

/// Concatenation of text expressions.
pub(crate) fn concat(parts: &[String]) -> String {
    match parts.len() {
        0 => lit(""),
        1 => parts[0].clone(),
        _ => format!("({})", parts.join(" OPERATOR(pg_catalog.||) ")),
    }
}

/// `tc ~ pattern` (tc must already be `COLLATE "C"`).
pub(crate) fn matches(tc: &str, pattern: &str) -> String {
    op(tc, "~", &lit(pattern))
}

/// `pg_catalog.char_length(x)`.
pub(crate) fn len(x: &str) -> String {
    call("char_length", &[x])
}

/// `pg_catalog.octet_length(x)`: the length in bytes. For a `varlena` value PostgreSQL
/// reads it from the header, where `char_length` walks the UTF-8 sequence; where every
/// character of interest is ASCII the two agree and this one is cheaper.
pub(crate) fn octets(x: &str) -> String {
    call("octet_length", &[x])
}

/// `tc LIKE pattern` (tc must already be `COLLATE "C"`). PostgreSQL's LIKE matcher does no
/// allocation and no character-class work: much cheaper than a regular expression where a
/// pattern of literals, `%` and `_` says enough.
pub(crate) fn like(tc: &str, pattern: &str) -> String {
    op(tc, "~~", &lit(pattern))
}

/// The ASCII digits, as the set argument of `rtrim`.
pub(crate) const DIGITS: &str = "0123456789";

/// `tc` is only ASCII digits (or empty): `tc ~ '^[0-9]*$'`.
///
/// Measured on PostgreSQL 15, per value: this regex costs about 0.15 µs, `ltrim(tc,
/// '0123456789') = ''` about 0.4 µs (it builds character arrays of both arguments), and a
/// regex with a counted repetition such as `^[0-9]{17}[0-9Xx]$` about 0.65 µs (the count
/// unrolls into many automaton states). So exact lengths are tested with `octet_length`
/// and the characters with an uncounted class like this one.
pub(crate) fn all_digits(tc: &str) -> String {
    matches(tc, "^[0-9]*$")
}

/// `pg_catalog.repeat(fill, n)`.
pub(crate) fn repeat(fill: &str, n: &str) -> String {
    call("repeat", &[&lit(fill), n])
}

/// A boolean SQL `CASE` with a final `ELSE`.
pub(crate) fn case(whens: &[(String, String)], otherwise: &str) -> String {
    let mut o = String::from("(CASE");
    for (w, t) in whens {
        o.push_str(" WHEN ");
        o.push_str(w);
        o.push_str(" THEN ");
        o.push_str(t);
    }
    o.push_str(" ELSE ");
    o.push_str(otherwise);
    o.push_str(" END)");
    o
}

/// The column as text (`t`, keeps its collation; bpchar loses trailing blanks exactly as
/// the Rust side strips them) and a `COLLATE "C"` copy (`tc`) for tests and positions.
pub(crate) fn text_forms(col: &str) -> (String, String) {
    let t = format!("CAST({col} AS pg_catalog.text)");
    let tc = format!("({t} COLLATE pg_catalog.\"C\")");
    (t, tc)
}

/// The parenthesised digits-and-commas typmod that starts `rest`, e.g. `(10,2)`.
fn leading_typmod(rest: &str) -> Option<&str> {
    if !rest.starts_with('(') {
        return None;
    }
    let end = rest.find(')')?;
    let inner = &rest[1..end];
    if inner.is_empty()
        || !inner
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b',' || b == b'-' || b == b' ')
    {
        return None;
    }
    Some(&rest[..=end])
}

/// The type to cast a mask's result to, spelled so that `search_path` cannot change it.
pub(crate) fn cast_target(ty: &ColumnType, sql_type: &str) -> String {
    let sql_type = sql_type.trim();
    match ty {
        ColumnType::Text {
            oid: 1043,
            max_chars: Some(n),
        } => format!("pg_catalog.varchar({n})"),
        ColumnType::Text {
            oid: 1043,
            max_chars: None,
        } => "pg_catalog.varchar".into(),
        ColumnType::Text {
            oid: 1042,
            max_chars: Some(n),
        } => format!("pg_catalog.bpchar({n})"),
        ColumnType::Text {
            oid: 1042,
            max_chars: None,
        } => "pg_catalog.bpchar".into(),
        ColumnType::Text { oid: 19, .. } => "pg_catalog.name".into(),
        ColumnType::Text { .. } => "pg_catalog.text".into(),
        ColumnType::Int2 => "pg_catalog.int2".into(),
        ColumnType::Int4 => "pg_catalog.int4".into(),
        ColumnType::Int8 => "pg_catalog.int8".into(),
        ColumnType::Numeric => "pg_catalog.numeric".into(),
        ColumnType::NumericScaled { precision, scale } => format!("pg_catalog.numeric({precision},{scale})"),
        ColumnType::Float4 => "pg_catalog.float4".into(),
        ColumnType::Float8 => "pg_catalog.float8".into(),
        ColumnType::Date => "pg_catalog.date".into(),
        ColumnType::Timestamp | ColumnType::Timestamptz => {
            let base = if matches!(ty, ColumnType::Timestamp) {
                "timestamp"
            } else {
                "timestamptz"
            };
            match sql_type.strip_prefix("timestamp").and_then(leading_typmod) {
                Some(m) => format!("pg_catalog.{base}{m}"),
                None => format!("pg_catalog.{base}"),
            }
        }
        ColumnType::Bool => "pg_catalog.bool".into(),
        ColumnType::Uuid => "pg_catalog.uuid".into(),
        // Only `null` applies: the cast of NULL cannot reveal anything whatever the name means.
        ColumnType::Other { .. } => sql_type.to_string(),
    }
}

/// The SQL form of the redact constant (cast to the column type by the caller).
pub(crate) fn redact_literal(ty: &ColumnType) -> String {
    match ty {
        ColumnType::Text { .. } => lit(super::text::REDACTED),
        ColumnType::Int2 | ColumnType::Int4 | ColumnType::Int8 => "0".into(),
        ColumnType::Numeric | ColumnType::NumericScaled { .. } => "0::pg_catalog.numeric".into(),
        ColumnType::Float4 | ColumnType::Float8 => "0::pg_catalog.float8".into(),
        ColumnType::Date => "'1900-01-01'::pg_catalog.date".into(),
        ColumnType::Timestamp => "'1900-01-01 00:00:00'::pg_catalog.timestamp".into(),
        ColumnType::Timestamptz => "'1970-01-01 00:00:00+00'::pg_catalog.timestamptz".into(),
        ColumnType::Bool => "false".into(),
        ColumnType::Uuid => "'00000000-0000-0000-0000-000000000000'::pg_catalog.uuid".into(),
        ColumnType::Other { .. } => "NULL".into(),
    }
}
