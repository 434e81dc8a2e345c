//! Reading the catalog and sampling each table, with bounded load on the seller's database.
//!
//! Per table: `BEGIN READ ONLY`, `SET LOCAL statement_timeout` (the scan's per-table budget),
//! `SET LOCAL lock_timeout = '2s'` (never queue behind an `ALTER TABLE`), then one SELECT of
//! the sampled columns, each cut server-side to 1000 characters. Big tables (estimated rows
//! above ten times the sample) are read with `TABLESAMPLE SYSTEM (p) REPEATABLE (42)`, small
//! ones with `LIMIT`. Views are not sampled (their rows come from tables that are); nor are
//! partitions (their parent is) or foreign tables (remote load), which are judged by name.
//!
//! Invariant: sampled values stay in this function's locals; a failure is reported by its
//! SQLSTATE class only, since some PostgreSQL errors quote data.
use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context as _;
use tokio_postgres::{Client, SimpleQueryMessage};

use super::judge::{judge, ValueKind};
use super::{suggest, Finding, ScanOptions};
use crate::upstream::{internal_client, UpstreamConfig};

/// Longest value the server sends back, in characters.
const MAX_VALUE_CHARS: u32 = 1000;

/// Candidate columns of ordinary tables, partitioned tables, materialized views and foreign
/// tables of user schemas (partitions excluded: their parent stands for them).
const COLUMNS: &str = "\
SELECT n.nspname::text, c.relname::text, c.relkind::text, c.reltuples::float8,
       a.attname::text, pg_catalog.format_type(a.atttypid, a.atttypmod), a.atttypid, t.typcategory::text
  FROM pg_catalog.pg_class c
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid
  JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
 WHERE c.relkind IN ('r', 'p', 'm', 'f')
   AND NOT c.relispartition
   AND a.attnum > 0 AND NOT a.attisdropped
   AND n.nspname NOT IN ('pg_catalog', 'information_schema')
   AND n.nspname !~ '^pg_(toast|temp_)'
   AND (cardinality($1::text[]) = 0 OR n.nspname = ANY($1::text[]))
 ORDER BY 1, 2, a.attnum";

struct Col {
    name: String,
    type_name: String,
    kind: ValueKind,
}

struct Table {
    schema: String,
    name: String,
    relkind: String,
    reltuples: f64,
    columns: Vec<Col>,
}

/// Scans the upstream: one [`Finding`] per column that looks sensitive, in schema, table
/// and column order. `progress` receives one line per table (and one per skipped table);
/// the lines never hold a value.
pub async fn scan(opts: &ScanOptions, mut progress: impl FnMut(&str)) -> anyhow::Result<Vec<Finding>> {
    anyhow::ensure!(opts.sample > 0, "--sample must be at least 1 row per table");
    let cfg = UpstreamConfig::from_url(&opts.upstream)?;
    let mut client = internal_client(&cfg)
        .await
        .with_context(|| format!("cannot connect to {}", cfg.display()))?;
    let tables = read_tables(&client, &opts.schemas)
        .await
        .context("cannot read the catalog")?;
    let total = tables.len();
    let mut findings = Vec::new();
    let mut skipped = 0usize;
    for (i, t) in tables.iter().enumerate() {
        progress(&format!(
            "scan [{}/{total}] {}.{} ({} columns)",
            i + 1,
            t.schema,
            t.name,
            t.columns.len()
        ));
        let wanted: Vec<&Col> = t.columns.iter().filter(|c| c.kind.sampled()).collect();
        let mut note = None;
        let mut samples: Option<Vec<Vec<String>>> = None;
        if !wanted.is_empty() {
            if matches!(t.relkind.as_str(), "r" | "p" | "m") {
                match sample_table(&client, t, &wanted, opts).await {
                    Ok(s) => samples = Some(s),
                    Err(Skip { reason, reconnect }) => {
                        skipped += 1;
                        progress(&format!(
                            "scan: {}.{} skipped ({reason}); judged by column names only",
                            t.schema, t.name
                        ));
                        note = Some(format!("table not sampled: {reason}"));
                        if reconnect {
                            client = internal_client(&cfg)
                                .await
                                .context("cannot reconnect to the upstream")?;
                        }
                    }
                }
            } else {
                note = Some("foreign table: not sampled".to_string());
            }
        }
        let mut sampled_iter = samples.as_ref().map(|s| s.iter());
        for c in &t.columns {
            let values = if c.kind.sampled() {
                sampled_iter.as_mut().and_then(|it| it.next())
            } else {
                None
            };
            let Some(v) = judge(&c.name, c.kind, values.map(|v| v.as_slice())) else {
                continue;
            };
            let (class, mask) = suggest(v.detector, c.kind);
            let note = if v.share == 0.0 && values.is_none() && c.kind.sampled() {
                note.clone()
            } else {
                None
            };
            findings.push(Finding {
                schema: t.schema.clone(),
                table: t.name.clone(),
                column: c.name.clone(),
                type_name: c.type_name.clone(),
                detector: v.detector,
                share: v.share,
                by_name: v.by_name(),
                suggested_class: class,
                suggested_mask: mask,
                sampled: v.sampled,
                hint: v.hint.map(str::to_string),
                note,
            });
        }
    }
    progress(&format!(
        "scan: {} sensitive-looking column(s) in {total} table(s){}",
        findings.len(),
        if skipped > 0 {
            format!(", {skipped} table(s) skipped")
        } else {
            String::new()
        }
    ));
    Ok(findings)
}

async fn read_tables(client: &Client, schemas: &[String]) -> Result<Vec<Table>, tokio_postgres::Error> {
    let rows = client.query(COLUMNS, &[&schemas]).await?;
    let mut tables: BTreeMap<(String, String), Table> = BTreeMap::new();
    for row in rows {
        let schema: String = row.try_get(0)?;
        let name: String = row.try_get(1)?;
        let oid: u32 = row.try_get(6)?;
        let category: String = row.try_get(7)?;
        let t = tables.entry((schema.clone(), name.clone())).or_insert(Table {
            schema,
            name,
            relkind: row.try_get(2)?,
            reltuples: row.try_get(3)?,
            columns: Vec::new(),
        });
        t.columns.push(Col {
            name: row.try_get(4)?,
            type_name: row.try_get(5)?,
            kind: ValueKind::from_type(oid, &category),
        });
    }
    Ok(tables.into_values().collect())
}

/// Why a table was not sampled (no value in it), and whether the connection is unusable.
struct Skip {
    reason: String,
    reconnect: bool,
}

pub(crate) fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// The SELECT that samples `columns` of `t`.
fn sample_sql(t: &Table, columns: &[&Col], sample: usize) -> String {
    let cols: Vec<String> = columns
        .iter()
        .map(|c| {
            format!(
                "pg_catalog.left(({})::pg_catalog.text, {MAX_VALUE_CHARS})",
                quote_ident(&c.name)
            )
        })
        .collect();
    let from = format!("{}.{}", quote_ident(&t.schema), quote_ident(&t.name));
    // reltuples is -1 for a table never analysed; TABLESAMPLE only for big, known tables
    // (partitioned tables are read with LIMIT: the estimate is on the partitions).
    let big = t.relkind != "p" && t.reltuples > (sample as f64) * 10.0;
    if big {
        // Twice the expected share, so that page-level sampling still fills the sample.
        let pct = ((sample as f64) * 2.0 / t.reltuples * 100.0).clamp(0.0001, 100.0);
        format!(
            "SELECT {} FROM {from} TABLESAMPLE SYSTEM ({pct:.4}) REPEATABLE (42) LIMIT {sample}",
            cols.join(", ")
        )
    } else {
        format!("SELECT {} FROM {from} LIMIT {sample}", cols.join(", "))
    }
}

/// Samples one table in its own read-only transaction. Returns one vector of non-null
/// values per column of `columns`, in order.
async fn sample_table(
    client: &Client,
    t: &Table,
    columns: &[&Col],
    opts: &ScanOptions,
) -> Result<Vec<Vec<String>>, Skip> {
    let timeout_ms = opts.timeout.as_millis().clamp(1, i32::MAX as u128);
    let begin = format!(
        "BEGIN READ ONLY; SET LOCAL statement_timeout = '{timeout_ms}ms'; SET LOCAL lock_timeout = '2s'"
    );
    let sql = sample_sql(t, columns, opts.sample);
    // A backstop in case the server does not answer (the statement timeout normally fires).
    let budget = opts.timeout + Duration::from_secs(5);
    let work = async {
        client.batch_execute(&begin).await?;
        let msgs = client.simple_query(&sql).await;
        let end = client
            .batch_execute(if msgs.is_ok() { "COMMIT" } else { "ROLLBACK" })
            .await;
        let msgs = msgs?;
        end?;
        Ok::<_, tokio_postgres::Error>(msgs)
    };
    let msgs = match tokio::time::timeout(budget, work).await {
        Err(_) => {
            return Err(Skip {
                reason: format!("no answer within {} s", budget.as_secs()),
                reconnect: true,
            });
        }
        Ok(Err(e)) => {
            return Err(Skip {
                reason: describe_error(&e),
                reconnect: e.as_db_error().is_none(),
            })
        }
        Ok(Ok(m)) => m,
    };
    let mut out: Vec<Vec<String>> = vec![Vec::new(); columns.len()];
    for m in msgs {
        if let SimpleQueryMessage::Row(row) = m {
            for (i, col) in out.iter_mut().enumerate() {
                if let Some(v) = row.get(i) {
                    col.push(v.to_string());
                }
            }
        }
    }
    Ok(out)
}

/// A failure by SQLSTATE only: messages such as "invalid input syntax" can quote values.
fn describe_error(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => match db.code().code() {
            "57014" => "statement timeout".to_string(),
            "55P03" => "lock timeout (the table is locked)".to_string(),
            "42501" => "permission denied".to_string(),
            code => format!("error SQLSTATE {code}"),
        },
        None if e.is_closed() => "connection closed".to_string(),
        None => "connection error".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(reltuples: f64, relkind: &str) -> Table {
        Table {
            schema: "public".into(),
            name: "Odd\"Name".into(),
            relkind: relkind.into(),
            reltuples,
            columns: vec![Col {
                name: "phone".into(),
                type_name: "text".into(),
                kind: ValueKind::Text,
            }],
        }
    }

    #[test]
    fn small_tables_use_limit_big_ones_tablesample() {
        let t = table(500.0, "r");
        let cols: Vec<&Col> = t.columns.iter().collect();
        assert_eq!(
            sample_sql(&t, &cols, 1000),
            "SELECT pg_catalog.left((\"phone\")::pg_catalog.text, 1000) FROM \"public\".\"Odd\"\"Name\" LIMIT 1000"
        );
        let t = table(1_000_000.0, "r");
        let sql = sample_sql(&t, &cols, 1000);
        assert!(
            sql.contains("TABLESAMPLE SYSTEM (0.2000) REPEATABLE (42) LIMIT 1000"),
            "{sql}"
        );
        let t = table(1_000_000.0, "p");
        assert!(sample_sql(&t, &cols, 1000).ends_with("LIMIT 1000"));
        let t = table(-1.0, "r");
        assert!(!sample_sql(&t, &cols, 1000).contains("TABLESAMPLE"));
    }
}
