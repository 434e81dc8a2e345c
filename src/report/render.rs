//! Rendering the report model: Markdown (README, tickets), self-contained HTML (print or
//! PDF: one page per role, no external resources) and JSON (machines).
//!
//! Invariant: every text from the rules (names, filters, agreements) is escaped for the
//! target format, so a column called `a|b` or `<script>` cannot break the layout.
use std::fmt::Write as _;

use super::model::{Gets, Report, RoleEntry};

fn md(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace(['\n', '\r'], " ")
}

fn code(s: &str) -> String {
    if s.is_empty() {
        String::new()
    } else {
        format!("`{}`", md(s).replace('`', "'"))
    }
}

fn or_dash(s: &Option<String>) -> String {
    s.as_deref().map(md).unwrap_or_else(|| "—".to_string())
}

fn gets_label(g: Gets) -> &'static str {
    match g {
        Gets::Clear => "clear",
        Gets::Masked => "masked",
        Gets::Denied => "**denied**",
    }
}

fn intro(r: &Report) -> String {
    let against = match r.catalog_relations {
        Some(n) => format!("compiled against the database catalog ({n} relations)"),
        None => {
            "rules only (no database catalog: columns without a rule are summarised per role)".to_string()
        }
    };
    format!(
        "Generated {} from the rules in `{}` ({}); {against}.",
        r.generated_at,
        r.rules_dir,
        r.rules_files.join(", ")
    )
}

fn role_summary(role: &RoleEntry) -> String {
    if role.unrestricted {
        return "Unrestricted: bypasses every rule and reads every column clear.".to_string();
    }
    let mut s = format!(
        "Sees class **{}** and below; columns without a rule: {}.",
        role.sees, role.unruled_columns
    );
    if !role.limits.is_empty() {
        let l: Vec<String> = role
            .limits
            .iter()
            .map(|l| format!("{} {}", l.name, l.value))
            .collect();
        let _ = write!(s, " Limits: {}.", l.join(", "));
    }
    s
}

pub fn markdown(r: &Report) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "# pgveil access report\n\n{}\n", intro(r));
    let _ = writeln!(
        o,
        "| role | logins | sees | row filters | clear | masked | denied |"
    );
    let _ = writeln!(o, "|---|---|---|---|---|---|---|");
    for role in &r.roles {
        let logins: Vec<String> = role
            .logins
            .iter()
            .map(|l| format!("{} ({})", md(&l.user), l.status))
            .collect();
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {} | {} | {} |",
            md(&role.name),
            if logins.is_empty() {
                "—".to_string()
            } else {
                logins.join(", ")
            },
            role.sees,
            role.row_filters.len(),
            role.counts.clear,
            role.counts.masked,
            role.counts.denied
        );
    }
    for role in &r.roles {
        let _ = writeln!(o, "\n## Role `{}`\n\n{}\n", md(&role.name), role_summary(role));
        if !role.logins.is_empty() {
            let _ = writeln!(
                o,
                "| login | agreement | valid from | valid until | status |\n|---|---|---|---|---|"
            );
            for l in &role.logins {
                let _ = writeln!(
                    o,
                    "| {} | {} | {} | {} | {} |",
                    md(&l.user),
                    or_dash(&l.agreement),
                    or_dash(&l.valid_from),
                    or_dash(&l.valid_until),
                    l.status
                );
            }
            o.push('\n');
        } else {
            let _ = writeln!(o, "No login uses this role.\n");
        }
        if !role.row_filters.is_empty() {
            let _ = writeln!(o, "Row filters (other rows do not exist for this role):\n");
            for f in &role.row_filters {
                let _ = writeln!(
                    o,
                    "- {}: only rows where {} ({})",
                    code(&f.table),
                    code(&f.filter),
                    md(&f.rule)
                );
            }
            o.push('\n');
        }
        for t in &role.tables {
            let _ = writeln!(o, "### {}\n", code(&t.table));
            if let Some(f) = &t.row_filter {
                let _ = writeln!(o, "Rows: only where {}.\n", code(f));
            }
            if t.columns.is_empty() {
                continue;
            }
            let _ = writeln!(
                o,
                "| column | class | gets | mask | still reveals | rule |\n|---|---|---|---|---|---|"
            );
            for c in &t.columns {
                let _ = writeln!(
                    o,
                    "| {} | {} | {} | {} | {} | {} |",
                    code(&c.column),
                    or_dash(&c.class),
                    gets_label(c.gets),
                    c.mask.as_deref().map(code).unwrap_or_default(),
                    c.reveals.as_deref().map(md).unwrap_or_default(),
                    c.rule.as_deref().map(md).unwrap_or_default()
                );
            }
            o.push('\n');
        }
        if !role.clear_relations.is_empty() {
            let names: Vec<String> = role.clear_relations.iter().map(|n| code(n)).collect();
            let _ = writeln!(o, "Every column clear: {}.\n", names.join(", "));
        }
    }
    let _ = writeln!(o, "## Sensitive-looking columns not covered by the rules\n");
    match r.scan_findings {
        None => {
            let _ = writeln!(o, "No scan ran (give `--upstream` to scan the database).");
        }
        Some(n) if r.uncovered.is_empty() => {
            let _ = writeln!(o, "None: the scan flagged {n} column(s), all covered.");
        }
        Some(n) => {
            let _ = writeln!(o, "The scan flagged {n} column(s); these are readable:\n");
            let _ = writeln!(o, "| column | why |\n|---|---|");
            for u in &r.uncovered {
                let _ = writeln!(o, "| {} | {} |", code(&u.column), md(&u.why));
            }
        }
    }
    if !r.keys.is_empty() {
        let _ = writeln!(o, "\n## Token keys\n");
        for k in &r.keys {
            let _ = writeln!(
                o,
                "- {}: read by pgveil from the {} (never stored in the rules)",
                code(&k.id),
                md(&k.read_from)
            );
        }
    }
    if !r.warnings.is_empty() {
        let _ = writeln!(o, "\n## Warnings\n");
        for w in &r.warnings {
            let _ = writeln!(o, "- {}", md(w));
        }
    }
    o
}

fn h(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn h_opt(s: &Option<String>) -> String {
    s.as_deref().map(h).unwrap_or_else(|| "—".to_string())
}

/// `**x**` in the role summary becomes `<strong>x</strong>` (the only Markdown in it).
fn h_summary(s: &str) -> String {
    let escaped = h(s);
    let mut out = String::new();
    for (i, part) in escaped.split("**").enumerate() {
        if i % 2 == 1 {
            let _ = write!(out, "<strong>{part}</strong>");
        } else {
            out.push_str(part);
        }
    }
    out
}

const CSS: &str = "body{font-family:system-ui,-apple-system,'Segoe UI','PingFang SC','Microsoft YaHei',sans-serif;\
margin:2em;color:#1a1a1a;font-size:14px}h1{font-size:1.6em}h2{margin-top:2em;border-bottom:2px solid #444}\
h3{font-family:monospace;font-size:1.05em;margin-bottom:.3em}table{border-collapse:collapse;margin:.5em 0 1em;width:100%}\
th,td{border:1px solid #bbb;padding:3px 6px;text-align:left;vertical-align:top}th{background:#eee}\
code{font-family:monospace}.clear{color:#1b5e20}.masked{color:#8a4b00}.denied{color:#b00020;font-weight:bold}\
.note{color:#555}@media print{body{margin:0;font-size:10pt}section.role{break-before:page;page-break-before:always}\
table{page-break-inside:auto}tr{page-break-inside:avoid}h2,h3{page-break-after:avoid}}";

pub fn html(r: &Report) -> String {
    let mut o = String::new();
    let _ = write!(
        o,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>pgveil access report</title>\
         <style>{CSS}</style></head><body>\n<h1>pgveil access report</h1>\n<p class=\"note\">{}</p>\n",
        h(&intro(r))
    );
    o.push_str("<table><tr><th>role</th><th>logins</th><th>sees</th><th>row filters</th><th>clear</th><th>masked</th><th>denied</th></tr>\n");
    for role in &r.roles {
        let logins: Vec<String> = role
            .logins
            .iter()
            .map(|l| format!("{} ({})", h(&l.user), h(&l.status)))
            .collect();
        let _ = writeln!(
            o,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            h(&role.name),
            if logins.is_empty() {
                "—".to_string()
            } else {
                logins.join(", ")
            },
            h(&role.sees),
            role.row_filters.len(),
            role.counts.clear,
            role.counts.masked,
            role.counts.denied
        );
    }
    o.push_str("</table>\n");
    for role in &r.roles {
        let _ = write!(
            o,
            "<section class=\"role\">\n<h2>Role <code>{}</code></h2>\n<p>{}</p>\n",
            h(&role.name),
            h_summary(&role_summary(role))
        );
        if role.logins.is_empty() {
            o.push_str("<p>No login uses this role.</p>\n");
        } else {
            o.push_str("<table><tr><th>login</th><th>agreement</th><th>valid from</th><th>valid until</th><th>status</th></tr>\n");
            for l in &role.logins {
                let _ = writeln!(
                    o,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    h(&l.user),
                    h_opt(&l.agreement),
                    h_opt(&l.valid_from),
                    h_opt(&l.valid_until),
                    h(&l.status)
                );
            }
            o.push_str("</table>\n");
        }
        if !role.row_filters.is_empty() {
            o.push_str("<p>Row filters (other rows do not exist for this role):</p><ul>\n");
            for f in &role.row_filters {
                let _ = writeln!(
                    o,
                    "<li><code>{}</code>: only rows where <code>{}</code> ({})</li>",
                    h(&f.table),
                    h(&f.filter),
                    h(&f.rule)
                );
            }
            o.push_str("</ul>\n");
        }
        for t in &role.tables {
            let _ = writeln!(o, "<h3>{}</h3>", h(&t.table));
            if let Some(f) = &t.row_filter {
                let _ = writeln!(o, "<p>Rows: only where <code>{}</code>.</p>", h(f));
            }
            if t.columns.is_empty() {
                continue;
            }
            o.push_str("<table><tr><th>column</th><th>class</th><th>gets</th><th>mask</th><th>still reveals</th><th>rule</th></tr>\n");
            for c in &t.columns {
                let (cls, label) = match c.gets {
                    Gets::Clear => ("clear", "clear"),
                    Gets::Masked => ("masked", "masked"),
                    Gets::Denied => ("denied", "denied"),
                };
                let _ = writeln!(
                    o,
                    "<tr><td><code>{}</code></td><td>{}</td><td class=\"{cls}\">{label}</td><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
                    h(&c.column),
                    h_opt(&c.class),
                    c.mask.as_deref().map(h).unwrap_or_default(),
                    c.reveals.as_deref().map(h).unwrap_or_default(),
                    c.rule.as_deref().map(h).unwrap_or_default()
                );
            }
            o.push_str("</table>\n");
        }
        if !role.clear_relations.is_empty() {
            let names: Vec<String> = role
                .clear_relations
                .iter()
                .map(|n| format!("<code>{}</code>", h(n)))
                .collect();
            let _ = writeln!(o, "<p>Every column clear: {}.</p>", names.join(", "));
        }
        o.push_str("</section>\n");
    }
    o.push_str("<section class=\"role\">\n<h2>Sensitive-looking columns not covered by the rules</h2>\n");
    match r.scan_findings {
        None => o.push_str("<p>No scan ran (give <code>--upstream</code> to scan the database).</p>\n"),
        Some(n) if r.uncovered.is_empty() => {
            let _ = writeln!(o, "<p>None: the scan flagged {n} column(s), all covered.</p>");
        }
        Some(n) => {
            let _ = writeln!(o, "<p>The scan flagged {n} column(s); these are readable:</p>");
            o.push_str("<table><tr><th>column</th><th>why</th></tr>\n");
            for u in &r.uncovered {
                let _ = writeln!(
                    o,
                    "<tr><td><code>{}</code></td><td>{}</td></tr>",
                    h(&u.column),
                    h(&u.why)
                );
            }
            o.push_str("</table>\n");
        }
    }
    if !r.keys.is_empty() {
        o.push_str("<h2>Token keys</h2><ul>\n");
        for k in &r.keys {
            let _ = writeln!(
                o,
                "<li><code>{}</code>: read by pgveil from the {} (never stored in the rules)</li>",
                h(&k.id),
                h(&k.read_from)
            );
        }
        o.push_str("</ul>\n");
    }
    if !r.warnings.is_empty() {
        o.push_str("<h2>Warnings</h2><ul>\n");
        for w in &r.warnings {
            let _ = writeln!(o, "<li>{}</li>", h(w));
        }
        o.push_str("</ul>\n");
    }
    o.push_str("</section>\n</body></html>\n");
    o
}

pub fn json(r: &Report) -> String {
    // The model holds strings, numbers and enums only: serialising cannot fail.
    let mut s =
        serde_json::to_string_pretty(r).unwrap_or_else(|e| format!("{{\"error\": {:?}}}", e.to_string()));
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping() {
        assert_eq!(md("a|b\nc"), "a\\|b c");
        assert_eq!(h("<x y='1'>&"), "&lt;x y=&#39;1&#39;&gt;&amp;");
        assert_eq!(
            h_summary("Sees **public** <x>"),
            "Sees <strong>public</strong> &lt;x&gt;"
        );
    }
}
