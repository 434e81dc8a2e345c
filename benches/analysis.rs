//! Statement analysis and policy decisions, per statement (`cargo bench --bench analysis`).
//!
//! The catalog is read from a real, throwaway PostgreSQL cluster holding the demo schema
//! (`src/demo/schema.sql`), and the role plans are compiled from the demo rules (`rules/`), so
//! the analyser walks exactly what it walks in production. Statements are what clients send:
//! psql's `\d` catalog queries, BI queries (joins, GROUP BY) and an analyst's statements.
//!
//! - `analysis/cold/*`: [`pgveil::sql::analyze`] on every iteration (parse + resolve + rewrite),
//!   what a session pays the first time it sees a text.
//! - `analysis/cached/*`: [`pgveil::sql::AnalysisCache::analyze`] on a warm cache, what every
//!   repetition of a text costs (prepared statements, dashboards, pgbench).
//! - `policy/*`: the per-statement policy decisions of the session: finding the role's plan,
//!   and judging each RowDescription field against it (mirrors `check_fields` in
//!   `src/session/relay.rs`); plus compiling all plans (what a rules or catalog reload costs).
//!
//! Targets (issue 7): ≤ 20 µs for a typical BI statement uncached, ≤ 2 µs from the cache.
//! Setup failures (no PostgreSQL, a statement refused) abort the bench with a message: a bench
//! that silently measured a refusal would report a meaningless figure.
use std::collections::HashMap;
use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use pgveil::catalog::Catalog;
use pgveil::cluster::Cluster;
use pgveil::policy::{ColumnAction, RolePlan};
use pgveil::sql::{analyze, AnalysisCache, Context};

/// psql 15's `\d`, `\d customers` (two of its queries) and `\dt` texts, as `psql -E` prints them.
const PSQL_D: &str = r#"SELECT n.nspname as "Schema",
  c.relname as "Name",
  CASE c.relkind WHEN 'r' THEN 'table' WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view' WHEN 'i' THEN 'index' WHEN 'S' THEN 'sequence' WHEN 't' THEN 'TOAST table' WHEN 'f' THEN 'foreign table' WHEN 'p' THEN 'partitioned table' WHEN 'I' THEN 'partitioned index' END as "Type",
  pg_catalog.pg_get_userbyid(c.relowner) as "Owner"
FROM pg_catalog.pg_class c
     LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
     LEFT JOIN pg_catalog.pg_am am ON am.oid = c.relam
WHERE c.relkind IN ('r','p','v','m','S','f','')
      AND n.nspname <> 'pg_catalog'
      AND n.nspname !~ '^pg_toast'
      AND n.nspname <> 'information_schema'
  AND pg_catalog.pg_table_is_visible(c.oid)
ORDER BY 1,2;"#;

const PSQL_D_TABLE: &str = r#"SELECT c.oid,
  n.nspname,
  c.relname
FROM pg_catalog.pg_class c
     LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relname OPERATOR(pg_catalog.~) '^(customers)$' COLLATE pg_catalog.default
  AND pg_catalog.pg_table_is_visible(c.oid)
ORDER BY 2, 3;"#;

const PSQL_D_COLUMNS: &str = r#"SELECT a.attname,
  pg_catalog.format_type(a.atttypid, a.atttypmod),
  (SELECT pg_catalog.pg_get_expr(d.adbin, d.adrelid, true)
   FROM pg_catalog.pg_attrdef d
   WHERE d.adrelid = a.attrelid AND d.adnum = a.attnum AND a.atthasdef),
  a.attnotnull,
  (SELECT c.collname FROM pg_catalog.pg_collation c, pg_catalog.pg_type t
   WHERE c.oid = a.attcollation AND t.oid = a.atttypid AND a.attcollation <> t.typcollation) AS attcollation,
  a.attidentity,
  a.attgenerated
FROM pg_catalog.pg_attribute a
WHERE a.attrelid = '16384' AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum;"#;

/// A BI tool's revenue by city: join, filter, GROUP BY, ORDER BY, LIMIT.
const BI_JOIN: &str = "SELECT c.city, count(*) AS orders, sum(o.amount) AS revenue \
FROM customers c JOIN orders o ON o.customer_id = c.id \
WHERE o.ordered_at >= '2025-01-01' AND o.status = 'paid' \
GROUP BY c.city ORDER BY revenue DESC LIMIT 20";

/// A BI tool's monthly cohort: expressions in GROUP BY, an aggregate FILTER, a subquery.
const BI_MONTHLY: &str = "SELECT date_trunc('month', o.ordered_at) AS month, c.vip_level, \
count(DISTINCT o.customer_id) AS buyers, avg(o.amount) AS avg_amount, \
count(*) FILTER (WHERE o.status = 'refunded') AS refunds \
FROM orders o JOIN customers c ON c.id = o.customer_id \
WHERE c.id IN (SELECT customer_id FROM orders GROUP BY customer_id HAVING count(*) > 1) \
GROUP BY 1, 2 ORDER BY 1, 2";

/// An analyst browsing masked personal data.
const ANALYST_BROWSE: &str = "SELECT id, name, id_number, phone, email, bank_card, city \
FROM customers WHERE vip_level >= 2 ORDER BY id LIMIT 100";

/// An analyst's `SELECT *` through a view over a masked table.
const ANALYST_VIEW: &str = "SELECT * FROM customer_contacts WHERE city = '深圳'";

/// pgbench -S's statement shape on an unprotected table (suppliers has no masked column read).
const POINT_SELECT: &str = "SELECT name FROM suppliers WHERE id = 7";

const STATEMENTS: &[(&str, &str)] = &[
    ("psql_d", PSQL_D),
    ("psql_d_table", PSQL_D_TABLE),
    ("psql_d_columns", PSQL_D_COLUMNS),
    ("bi_join_groupby", BI_JOIN),
    ("bi_monthly_subquery", BI_MONTHLY),
    ("analyst_browse_masked", ANALYST_BROWSE),
    ("analyst_view", ANALYST_VIEW),
    ("point_select", POINT_SELECT),
];

struct Setup {
    /// Kept alive for the bench's duration; dropping it stops the server.
    _cluster: Cluster,
    catalog: Catalog,
    plans: HashMap<String, Arc<RolePlan>>,
    rules: pgveil::rules::RuleSet,
    keys: pgveil::mask::Keys,
}

fn setup() -> Setup {
    let cluster = Cluster::start().unwrap_or_else(|e| panic!("starting PostgreSQL for the bench: {e}"));
    cluster
        .create_db("seller")
        .unwrap_or_else(|e| panic!("creating the bench database: {e}"));
    cluster
        .psql("seller", pgveil::demo::data::SCHEMA_SQL)
        .unwrap_or_else(|e| panic!("loading the demo schema: {e}"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("tokio runtime: {e}"));
    let catalog = rt.block_on(async {
        let client = cluster
            .connect("seller")
            .await
            .unwrap_or_else(|e| panic!("connecting to the bench database: {e}"));
        pgveil::catalog::load::load(&client, 1)
            .await
            .unwrap_or_else(|e| panic!("loading the catalog: {e}"))
    });
    if std::env::var_os(pgveil::demo::TOKEN_KEY_ENV).is_none() {
        std::env::set_var(pgveil::demo::TOKEN_KEY_ENV, pgveil::demo::DEMO_TOKEN_KEY);
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    let rules = pgveil::rules::load_dir(&dir)
        .unwrap_or_else(|e| panic!("demo rules: {}", pgveil::rules::format_errors(&e)));
    let keys = pgveil::rules::load_keys(&rules)
        .unwrap_or_else(|e| panic!("demo keys: {}", pgveil::rules::format_errors(&e)));
    let plans = pgveil::policy::compile::compile(&rules, &catalog, &keys)
        .unwrap_or_else(|e| panic!("compiling the demo rules: {}", pgveil::rules::format_errors(&e)));
    Setup {
        _cluster: cluster,
        catalog,
        plans,
        rules,
        keys,
    }
}

fn plan<'a>(s: &'a Setup, role: &str) -> &'a RolePlan {
    s.plans
        .get(role)
        .unwrap_or_else(|| panic!("the demo rules have no role {role}"))
}

fn analysis(c: &mut Criterion) {
    let s = setup();
    let search_path = vec!["public".to_string()];
    let cache = AnalysisCache::new(1024);
    for role in ["analyst", "auditor"] {
        let ctx = Context {
            catalog: &s.catalog,
            plan: plan(&s, role),
            search_path: &search_path,
        };
        for (name, sql) in STATEMENTS {
            // A refused statement would measure the refusal path, not the analysis.
            if let Err(r) = analyze(sql, &ctx) {
                panic!("{role}: {name} is refused, the bench would be meaningless: {r}");
            }
            c.bench_function(&format!("analysis/cold/{role}/{name}"), |b| {
                b.iter(|| black_box(analyze(black_box(sql), &ctx)))
            });
            c.bench_function(&format!("analysis/cached/{role}/{name}"), |b| {
                let _ = cache.analyze(sql, &ctx);
                b.iter(|| black_box(cache.analyze(black_box(sql), &ctx)))
            });
        }
    }
}

/// Judges each RowDescription field (table oid, attnum) against the plan, as the session's
/// `check_fields` does: returns how many fields are clear (so nothing is optimised away).
fn judge_fields(fields: &[(u32, i16)], plan: &RolePlan) -> usize {
    let mut clear = 0;
    for &(oid, attnum) in fields {
        if oid == 0 {
            clear += 1;
            continue;
        }
        let Some(t) = plan.tables.get(&oid) else {
            clear += 1;
            continue;
        };
        if let Some(c) = t.columns.iter().find(|c| c.attnum == attnum) {
            if matches!(c.action, ColumnAction::Clear) {
                clear += 1;
            }
        }
    }
    clear
}

fn policy(c: &mut Criterion) {
    let s = setup();
    let customers = s
        .catalog
        .get("public", "customers")
        .unwrap_or_else(|| panic!("the demo schema has no public.customers"));
    // `SELECT * FROM customers`: 13 fields straight from the table.
    let fields: Vec<(u32, i16)> = customers
        .columns
        .iter()
        .map(|col| (customers.oid, col.attnum))
        .collect();
    let plans = &s.plans;
    c.bench_function("policy/role_lookup_and_fields/analyst/customers_star", |b| {
        b.iter(|| {
            let p = plans
                .get(black_box("analyst"))
                .map(|p| judge_fields(black_box(&fields), p));
            black_box(p)
        })
    });
    c.bench_function("policy/compile_all_roles", |b| {
        b.iter(|| black_box(pgveil::policy::compile::compile(&s.rules, &s.catalog, &s.keys).is_ok()))
    });
}

criterion_group!(benches, analysis, policy);
criterion_main!(benches);
