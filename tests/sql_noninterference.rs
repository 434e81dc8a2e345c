//! Non-interference of the analyser's rewrites, on a real PostgreSQL 15.
//!
//! Two databases hold the demo schema with data identical in everything an analyst may see
//! (clear columns, the visible part of masked values, keyed columns, every consenting
//! customer row) and different in everything hidden (the masked middle of phones, redacted
//! and nulled columns, denied columns, and the customers outside the row filter: other rows,
//! another number of them). Every attack statement is analysed once; what pgveil would
//! forward runs on both databases and must give the same answer (rows, or the same error)
//! or be refused. Each attack also runs directly on both, where it must differ: an attack
//! that cannot tell the twins apart without pgveil tests nothing.
//!
//! A second test runs 33 legitimate analyst queries through the rewrite and on a statically
//! masked copy of the data: the answers must be identical (pgveil is transparent otherwise).
//!
//! Keyed columns are identical in the twins by construction (their tokens are visible), and
//! pgveil masks them in results by position; here the positions are checked to be reported.
mod through;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use pgveil::catalog::load::load;
use pgveil::catalog::Catalog;
use pgveil::cluster::Cluster;
use pgveil::mask::{ColumnType, Format, Keys, Mask, MaskSpec, Masked, TokenFormat};
use pgveil::policy::{ColumnAction, ColumnPlan, Limits, RolePlan, RuleRef, TablePlan};
use pgveil::sql::{analyze, Analysis, Context};
use tokio_postgres::{Client, SimpleQueryMessage};

const SCHEMA: &str = include_str!("../src/demo/schema.sql");

/// The twins' data; `:h` is the hidden seed ('a' or 'b'), `:extra` the number of hidden
/// customers (10 or 17).
const DATA: &str = "
INSERT INTO customers
SELECT i, '名' || md5(:h || i), '11010119900101' || lpad(i::text, 4, '0'),
       '138' || lpad((abs(hashtext(:h || i)) % 10000)::text, 4, '0') || lpad(i::text, 4, '0'),
       md5(:h || 'e' || i) || repeat('x', abs(hashtext(:h || 'el' || i)) % 5) || '@example.com',
       '6222' || lpad((abs(hashtext(:h || 'c' || i)) % 1000000000)::text, 12 + abs(hashtext(:h || 'cl' || i)) % 4, '0'),
       '深圳市' || md5(:h || 'a' || i) || repeat('号', abs(hashtext(:h || 'al' || i)) % 3), date '1990-01-01' + i,
       CASE WHEN i % 2 = 0 THEN '深圳' ELSE '广州' END,
       i % 4, true, 'secret ' || md5(:h || 'n' || i), timestamp '2026-01-01' + i * interval '1 day'
  FROM generate_series(1, 30) i;
INSERT INTO customers
SELECT 1000 + i, md5(:h || 'hn' || i), lpad((abs(hashtext(:h || 'hid' || i)))::text, 18, '9'),
       '139' || lpad((abs(hashtext(:h || 'hp' || i)) % 100000000)::text, 8, '0'), md5(:h || i) || '@hidden.com',
       NULL, md5(:h), date '1970-01-01' + (abs(hashtext(:h || i)) % 9000), CASE WHEN hashtext(:h || i) % 2 = 0 THEN '北京' ELSE '上海' END,
       abs(hashtext(:h || 'v' || i)) % 9, false, repeat(md5(:h || 'hn2' || i), 50), timestamp '2025-01-01' + i * interval '1 hour'
  FROM generate_series(1, :extra) i;
INSERT INTO orders SELECT i, 1 + i % 30, lpad(i::text, 18, '0'), i * 10.5, CASE WHEN i % 2 = 0 THEN 'paid' ELSE 'open' END,
       timestamp '2026-02-01' + i * interval '1 hour' FROM generate_series(1, 80) i;
INSERT INTO employees SELECT i, '员工' || i, CASE WHEN i % 2 = 0 THEN 'sales' ELSE 'ops' END,
       10000 + abs(hashtext(:h || 's' || i)) % 90000, left(md5(:h || 'id' || i), 10 + abs(hashtext(:h || 'il' || i)) % 8),
       '139' || lpad((abs(hashtext(:h || 'ep' || i)) % 10000)::text, 4, '0') || lpad(i::text, 4, '0'),
       date '2020-01-01' + i FROM generate_series(1, 12) i;
INSERT INTO suppliers SELECT i, '供应商' || i, '91440300' || lpad(i::text, 10, '0'),
       '075' || lpad((abs(hashtext(:h || 'sp' || i)) % 10000)::text, 4, '0') || lpad(i::text, 4, '0') FROM generate_series(1, 6) i;
ANALYZE;
";

/// (table, per-column mask — `None` denies —, row filter).
type TableSpec = (
    &'static str,
    Vec<(&'static str, Option<MaskSpec>)>,
    Option<&'static str>,
);

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

async fn connect(url: &str) -> Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    client
}

fn plan(cat: &Catalog) -> RolePlan {
    let keys = Keys {
        keys: HashMap::from([("default".to_string(), vec![5u8; 32])]),
    };
    let partial = || MaskSpec::Partial {
        keep_first: 3,
        keep_last: 4,
        fill: '*',
        fixed_length: None,
    };
    let specs: Vec<TableSpec> = vec![
        (
            "customers",
            vec![
                ("name", Some(MaskSpec::Redact)),
                (
                    "id_number",
                    Some(MaskSpec::Token {
                        format: TokenFormat::CnId,
                        key: "default".into(),
                    }),
                ),
                ("phone", Some(partial())),
                ("email", Some(MaskSpec::Redact)),
                ("bank_card", Some(MaskSpec::Null)),
                ("address", Some(MaskSpec::Redact)),
                ("notes", None),
            ],
            Some("consent_transfer"),
        ),
        (
            "employees",
            vec![
                ("salary", None),
                ("id_number", Some(MaskSpec::Redact)),
                ("phone", Some(partial())),
            ],
            None,
        ),
        ("suppliers", vec![("contact_phone", Some(partial()))], None),
    ];
    let mut tables = HashMap::new();
    for (name, cols, filter) in specs {
        let r = cat.get("public", name).expect("demo table");
        let columns = r
            .columns
            .iter()
            .map(|c| {
                let action = match cols.iter().find(|(n, _)| *n == c.name) {
                    Some((_, None)) => ColumnAction::Deny,
                    Some((_, Some(s))) => ColumnAction::Mask(Arc::new(
                        Mask::new(s, &ColumnType::from_catalog(c.type_oid, c.typmod), &keys)
                            .expect("mask fits"),
                    )),
                    None => ColumnAction::Clear,
                };
                let rule = Some(RuleRef {
                    file: "rules/tables.yaml".into(),
                    line: 1,
                    what: format!("{name}.{}", c.name),
                });
                ColumnPlan {
                    name: c.name.clone(),
                    attnum: c.attnum,
                    action,
                    rule,
                }
            })
            .collect();
        let row_filter = filter.map(|f| {
            (
                f.to_string(),
                RuleRef {
                    file: "rules/tables.yaml".into(),
                    line: 2,
                    what: "consent".into(),
                },
            )
        });
        tables.insert(
            r.oid,
            TablePlan {
                oid: r.oid,
                schema: "public".into(),
                name: name.into(),
                columns,
                row_filter,
            },
        );
    }
    RolePlan {
        role: "analyst".into(),
        unrestricted: false,
        tables,
        allowed_functions: HashSet::new(),
        limits: Limits::default(),
    }
}

/// The answer to a statement: every row of every result as text, or the error.
#[derive(Debug, PartialEq, Eq)]
enum Answer {
    Rows(Vec<Vec<Option<String>>>),
    Error(String, String),
}

async fn answer(c: &Client, sql: &str) -> Answer {
    match c.simple_query(sql).await {
        Ok(msgs) => Answer::Rows(
            msgs.iter()
                .filter_map(|m| match m {
                    SimpleQueryMessage::Row(r) => {
                        Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect())
                    }
                    _ => None,
                })
                .collect(),
        ),
        Err(e) => error_answer(e),
    }
}

/// The error a statement ended with; a lost connection is a failure of the test, not an answer.
fn error_answer(e: tokio_postgres::Error) -> Answer {
    match e.as_db_error() {
        Some(db) => Answer::Error(db.code().code().to_string(), db.message().to_string()),
        None => panic!("connection failure, not an answer: {e}"),
    }
}

/// The answer the client of pgveil gets: the forwarded text's answer with pgveil's own masks
/// applied to the result rows by position, as the session does.
async fn answer_through(c: &Client, an: &Analysis) -> Answer {
    match through::rows_through(c, an).await {
        Ok(rows) => Answer::Rows(rows),
        Err(e) => error_answer(e),
    }
}

/// Hidden-data targets: (table, expression over it reading something hidden).
const TARGETS: &[(&str, &str)] = &[
    ("customers", "phone"),
    ("customers", "email"),
    ("customers", "name"),
    ("customers", "address"),
    ("customers", "bank_card"),
    ("customers", "notes"),
    ("employees", "salary"),
    ("employees", "id_number"),
    ("employees", "phone"),
    ("suppliers", "contact_phone"),
];

/// Shapes applied to every target (`{t}` table, `{x}` expression).
const SHAPES: &[&str] = &[
    "SELECT {x} FROM {t} ORDER BY id",
    "SELECT count(*) FROM {t} WHERE {x}::text LIKE '%5%'",
    "SELECT id FROM {t} ORDER BY {x}, id",
    "SELECT md5(string_agg({x}::text, ',' ORDER BY id)) FROM {t}",
    "SELECT sum(length({x}::text)) FROM {t}",
    "SELECT id FROM {t} WHERE substr({x}::text, 4, 1) = '5' ORDER BY id",
    "SELECT max({x}::text) FROM {t}",
    "SELECT row_to_json(z) FROM {t} z ORDER BY z.id",
    "SELECT * FROM {t} ORDER BY id",
    "SELECT (SELECT {x}::text FROM {t} ORDER BY id LIMIT 1)",
    "WITH c AS (SELECT id, {x} AS v FROM {t}) SELECT v FROM c ORDER BY id",
    "SELECT v FROM (SELECT id, {x} AS v FROM {t}) s ORDER BY id",
    "SELECT count(*) FROM (SELECT DISTINCT {x} FROM {t}) d",
    "SELECT {x}::text, count(*) FROM {t} GROUP BY 1 ORDER BY 1",
    "SELECT sum(1 / (CASE WHEN substr({x}::text, 4, 1) IN ('0','1','2','3','4') THEN 0 ELSE 1 END)) FROM {t}",
    "SELECT ({x})::text::int FROM {t} ORDER BY id",
];

/// Attacks beyond the target × shape grid (hidden rows, catalogs, functions, odd syntax),
/// each chosen to tell the twins apart when run directly.
const EXTRA: &[&str] = &[
    "SELECT count(*) FROM customers",
    "SELECT max(id) FROM customers",
    "SELECT count(*) FROM customers WHERE NOT consent_transfer",
    "SELECT id FROM customers WHERE id > 1000",
    "SELECT sum(1 / (id - 1015)) FROM customers",
    "SELECT count(*) FROM customers WHERE 1 / (id - 1015) > 0",
    "SELECT count(*) FROM customers WHERE id > 1010 AND 1 / (vip_level - vip_level) > 0",
    "SELECT count(*) FROM customers WHERE 1 / (CASE WHEN consent_transfer THEN 1 ELSE id - 1015 END) > 0",
    "SELECT vip_level, count(*) FROM customers GROUP BY 1 ORDER BY 1",
    "SELECT min(birth_date) FROM customers",
    "SELECT count(*) FROM customer_contacts",
    "SELECT md5(string_agg(phone, ',' ORDER BY id)) FROM customer_contacts",
    "SELECT md5(string_agg(email, ',' ORDER BY id)) FROM customer_contacts",
    "SELECT EXISTS (SELECT 1 FROM customers WHERE id = 1013)",
    "SELECT (SELECT count(*) FROM customers c2 WHERE c2.city = c.city) FROM customers c ORDER BY id",
    "SELECT reltuples FROM pg_class WHERE relname = 'customers'",
    "SELECT relpages FROM pg_class WHERE relname = 'customers'",
    "SELECT histogram_bounds::text FROM pg_stats WHERE tablename = 'customers' AND attname = 'phone'",
    "SELECT md5(string_agg(stavalues1::text, ',' ORDER BY starelid, staattnum)) FROM pg_statistic",
    "SELECT pg_relation_size('customers')",
    "SELECT pg_total_relation_size('customers')",
    "SELECT sum(pg_column_size(notes)) FROM customers",
    "SELECT query_to_xml('select salary from employees', true, true, '')",
    "SELECT table_to_xml('employees', true, true, '')",
    "SELECT ts_stat('select to_tsvector(notes) from customers')",
    "SELECT sum(salary) FROM employees",
    "SELECT department, avg(salary) FROM employees GROUP BY 1 ORDER BY 1",
    "SELECT name FROM employees WHERE salary > 50000 ORDER BY id",
    "SELECT e.* FROM employees e",
    "SELECT e FROM employees e",
    "SELECT (e).salary FROM employees e",
    "SELECT x.d FROM employees AS x(a, b, c, d)",
    "SELECT * FROM employees NATURAL JOIN (SELECT salary FROM employees WHERE id = 1) s",
    "SELECT U&\"s\\0061lary\" FROM employees",
    "SELECT \"salary\" FROM employees",
    "SELECT SALARY FROM EMPLOYEES",
    "COPY employees TO STDOUT",
    "COPY (SELECT notes FROM customers) TO STDOUT",
    "COPY (SELECT phone, email FROM customers ORDER BY id) TO STDOUT",
    "SELECT id FROM employees WHERE id_number < '8' ORDER BY id",
    "SELECT id FROM customers ORDER BY notes LIMIT 3",
    "SELECT id FROM customers WHERE md5(name) < md5(address) ORDER BY id",
    "SELECT string_agg(bank_card, ',') FROM customers",
    "SELECT count(*) FROM customers WHERE bank_card IS NULL",
    "SELECT email::int FROM customers",
    "SELECT phone::int FROM customers ORDER BY id",
    "SELECT contact_phone::bigint % 7 FROM suppliers ORDER BY id",
    "SELECT count(*) FROM customers TABLESAMPLE BERNOULLI (50) REPEATABLE (1)",
    "SELECT id FROM customers ORDER BY id FOR UPDATE",
    "EXPLAIN SELECT * FROM customers",
    "EXPLAIN ANALYZE SELECT count(*) FROM customers",
    "SELECT count(*) FROM customers a JOIN customers b ON a.phone < b.phone",
    "SELECT x.phone FROM customers x, LATERAL (SELECT x.notes) l",
    "WITH RECURSIVE r(n, p) AS (SELECT 1, (SELECT phone FROM customers ORDER BY id LIMIT 1) UNION ALL SELECT n + 1, p FROM r WHERE n < 3) SELECT p FROM r",
    "SELECT phone FROM customers UNION ALL SELECT contact_phone FROM suppliers ORDER BY 1",
    "SELECT count(*) FROM orders WHERE customer_id IN (SELECT id FROM customers WHERE phone LIKE '1381%')",
    "SELECT o.id, c.phone FROM orders o LEFT JOIN customers c ON c.id = o.customer_id ORDER BY o.id",
    "SELECT id, row_number() OVER (ORDER BY phone) FROM customers ORDER BY id",
    "SELECT c.city, max(c.email) FROM customers c GROUP BY c.city ORDER BY 1",
    "SELECT count(*) FILTER (WHERE address LIKE '%号%') FROM customers",
    "SELECT array_agg(phone ORDER BY phone) FROM customers",
    "SELECT to_json(array_agg(z ORDER BY z.id)) FROM suppliers z",
    "SELECT id FROM customers WHERE (city, phone) > ('广州', '1385') ORDER BY id",
];

/// Runs `sql` on one twin: COPY through psql (its output is the answer), the rest as a
/// simple query.
async fn run(cluster: &Cluster, db: &str, c: &Client, sql: &str) -> Answer {
    if sql.starts_with("COPY") {
        return match cluster.psql(db, &format!("{sql};")) {
            Ok(o) => Answer::Rows(vec![vec![Some(o)]]),
            Err(e) => Answer::Error("psql".into(), e.to_string()),
        };
    }
    answer(c, sql).await
}

/// [`run`] of what pgveil forwards, with pgveil's masks applied to the rows (COPY text rows
/// too: one line per row, fields split at tabs, as the session masks CopyData).
async fn run_through(cluster: &Cluster, db: &str, c: &Client, an: &Analysis) -> Answer {
    if !an.sql.starts_with("COPY") {
        return answer_through(c, an).await;
    }
    let masks = an
        .statements
        .first()
        .map(|s| s.proxy_masks.as_slice())
        .unwrap_or(&[]);
    match run(cluster, db, c, &an.sql).await {
        Answer::Rows(r) if !masks.is_empty() => {
            let text = r
                .first()
                .and_then(|row| row.first())
                .cloned()
                .flatten()
                .unwrap_or_default();
            let mut out = String::new();
            let (mut value, mut masked) = (Vec::new(), Vec::new());
            for line in text.lines() {
                let fields: Vec<String> = line
                    .split('\t')
                    .enumerate()
                    .map(|(i, f)| match masks.iter().find(|(p, _)| *p == i) {
                        None => f.to_string(),
                        Some((_, m)) => {
                            let mut enc = bytes::BytesMut::new();
                            if pgveil::wire::copy::text_field_decode(f.as_bytes(), &mut value) {
                                match m.apply(&value, Format::Text, &mut masked) {
                                    Masked::Value => {
                                        pgveil::wire::copy::text_field_encode(Some(&masked), &mut enc)
                                    }
                                    Masked::Null => pgveil::wire::copy::text_field_encode(None, &mut enc),
                                }
                            } else {
                                pgveil::wire::copy::text_field_encode(None, &mut enc);
                            }
                            String::from_utf8_lossy(&enc).into_owned()
                        }
                    })
                    .collect();
                out.push_str(&fields.join("\t"));
                out.push('\n');
            }
            Answer::Rows(vec![vec![Some(out)]])
        }
        other => other,
    }
}

/// The grid of target × shape attacks.
fn grid() -> Vec<String> {
    let mut out = Vec::new();
    for (t, x) in TARGETS {
        for s in SHAPES {
            out.push(s.replace("{t}", t).replace("{x}", x));
        }
    }
    out
}

#[test]
fn twins_answer_alike_through_the_rewrite() {
    let cluster = Cluster::start().unwrap_or_else(|e| panic!("cannot start PostgreSQL 15 for the test: {e}"));
    cluster.create_db("twin_a").expect("db a");
    cluster.create_db("twin_b").expect("db b");
    // One runtime for everything: the connections' tasks live on it.
    let runtime = rt();
    let (cat, a, b) = runtime.block_on(async {
        let a = connect(&cluster.url("twin_a")).await;
        let b = connect(&cluster.url("twin_b")).await;
        for (c, h, extra) in [(&a, "'a'", "10"), (&b, "'b'", "17")] {
            c.batch_execute(SCHEMA).await.expect("schema");
            c.batch_execute(&DATA.replace(":h", h).replace(":extra", extra))
                .await
                .expect("data");
        }
        let cat = load(&a, 1).await.expect("catalog");
        (cat, a, b)
    });
    let plan = plan(&cat);
    let path = vec!["public".to_string()];
    let ctx = Context {
        catalog: &cat,
        plan: &plan,
        search_path: &path,
    };
    // Curated attacks must each tell the twins apart directly; grid attacks that happen not
    // to (a shape that cannot see the difference the data has for that column) are dropped.
    let curated: Vec<String> = EXTRA.iter().map(|s| s.to_string()).collect();
    let attacks: Vec<String> = curated.iter().cloned().chain(grid()).collect();
    let (mut answered, mut refused, mut dropped) = (0, 0, 0);
    let mut same_directly = Vec::new();
    runtime.block_on(async {
        for sql in &attacks {
            let (da, db) = (
                run(&cluster, "twin_a", &a, sql).await,
                run(&cluster, "twin_b", &b, sql).await,
            );
            if da == db {
                if curated.contains(sql) {
                    same_directly.push(format!("{sql}\n    both: {da:?}"));
                }
                dropped += 1;
                continue;
            }
            match analyze(sql, &ctx) {
                Err(r) => {
                    assert!(
                        ["42501", "0A000", "42P01"].contains(&r.sqlstate),
                        "{sql}: unexpected refusal {r}"
                    );
                    refused += 1;
                }
                Ok(an) => {
                    let (ra, rb) = (
                        run_through(&cluster, "twin_a", &a, &an).await,
                        run_through(&cluster, "twin_b", &b, &an).await,
                    );
                    assert_eq!(
                        ra, rb,
                        "LEAK: twins differ through pgveil for\n  {sql}\nforwarded as\n  {}",
                        an.sql
                    );
                    answered += 1;
                }
            }
        }
    });
    println!(
        "non-interference: {} attacks kept ({} curated, {} grid; {dropped} grid attacks dropped as blind \
         directly), {answered} answered alike, {refused} refused",
        answered + refused,
        curated.len(),
        answered + refused - curated.len(),
    );
    assert!(
        same_directly.is_empty(),
        "these attacks cannot tell the twins apart even directly, so they test nothing:\n{}",
        same_directly.join("\n")
    );
    assert!(
        answered + refused >= 150,
        "only {} attacks tell the twins apart directly",
        answered + refused
    );
    assert!(
        answered >= 40,
        "too few attacks answered ({answered}): the suite would only test refusals"
    );
}

/// Queries an analyst legitimately runs; through pgveil they must answer exactly as the
/// same queries do on a statically masked copy of the data (schema `masked_copy`, built from
/// the masking subqueries: masked values, consenting rows only, no denied column).
const LEGIT: &[&str] = &[
    "SELECT count(*) FROM customers",
    "SELECT city, count(*) FROM customers GROUP BY city ORDER BY city",
    "SELECT phone FROM customers WHERE phone LIKE '138%' ORDER BY id",
    "SELECT email, name FROM customers ORDER BY id LIMIT 10",
    "SELECT c.city, sum(o.amount) FROM orders o JOIN customers c ON c.id = o.customer_id GROUP BY c.city ORDER BY 1",
    "SELECT count(DISTINCT phone) FROM customers",
    "SELECT vip_level, avg(o.amount) FROM customers c JOIN orders o ON o.customer_id = c.id GROUP BY 1 ORDER BY 1",
    "SELECT * FROM suppliers ORDER BY id",
    "SELECT s.name, s.contact_phone FROM suppliers s WHERE s.contact_phone LIKE '075%' ORDER BY 1",
    "SELECT department, count(*) FROM employees GROUP BY 1 ORDER BY 1",
    "SELECT name, phone FROM employees ORDER BY hired_on",
    "SELECT e.name, e.id_number FROM employees e ORDER BY e.id",
    "WITH big AS (SELECT customer_id, sum(amount) AS total FROM orders GROUP BY 1) SELECT c.name, b.total FROM big b JOIN customers c ON c.id = b.customer_id ORDER BY b.total DESC, c.id LIMIT 5",
    "SELECT c.id, (SELECT count(*) FROM orders o WHERE o.customer_id = c.id) AS n FROM customers c ORDER BY c.id",
    "SELECT id FROM customers WHERE EXISTS (SELECT 1 FROM orders o WHERE o.customer_id = customers.id AND o.status = 'paid') ORDER BY id",
    "SELECT row_to_json(s) FROM suppliers s ORDER BY s.id",
    "SELECT phone FROM customer_contacts ORDER BY id",
    "SELECT city, string_agg(email, ',' ORDER BY id) FROM customer_contacts GROUP BY city ORDER BY city",
    "SELECT date_trunc('month', birth_date) AS m, count(*) FROM customers GROUP BY 1 ORDER BY 1",
    "SELECT id, rank() OVER (PARTITION BY city ORDER BY created_at) FROM customers ORDER BY id",
    "SELECT name FROM customers UNION SELECT name FROM employees ORDER BY 1",
    "SELECT count(*) FROM customers a JOIN customers b ON a.phone = b.phone",
    "SELECT upper(email) FROM customers ORDER BY id LIMIT 5",
    "SELECT length(address), count(*) FROM customers GROUP BY 1 ORDER BY 1",
    "SELECT * FROM orders o WHERE o.customer_id IN (SELECT id FROM customers WHERE city = '深圳') ORDER BY o.id LIMIT 20",
    "SELECT c.name, o.order_no FROM customers c LEFT JOIN LATERAL (SELECT order_no FROM orders WHERE customer_id = c.id ORDER BY ordered_at DESC LIMIT 1) o ON true ORDER BY c.id",
    "SELECT DISTINCT city FROM customers ORDER BY 1",
    "SELECT min(created_at), max(created_at) FROM customers",
    "VALUES ((SELECT count(*) FROM suppliers))",
    "SELECT coalesce(bank_card, 'none') FROM customers ORDER BY id",
    "SELECT s.* FROM suppliers s NATURAL JOIN (SELECT id FROM suppliers) x ORDER BY s.id",
    "SELECT id, email FROM customers WHERE email ~ '^[*]+$' ORDER BY id",
    "SELECT o.status, count(*), sum(o.amount) FROM orders o JOIN customer_contacts cc ON cc.id = o.customer_id GROUP BY 1 ORDER BY 1",
];

#[test]
fn legitimate_queries_answer_as_on_a_masked_copy() {
    let cluster = Cluster::start().unwrap_or_else(|e| panic!("cannot start PostgreSQL 15 for the test: {e}"));
    let runtime = rt();
    runtime.block_on(async {
        let c = connect(&cluster.url("postgres")).await;
        c.batch_execute(SCHEMA).await.expect("schema");
        c.batch_execute(&DATA.replace(":h", "'a'").replace(":extra", "10")).await.expect("data");
        let cat = load(&c, 1).await.expect("catalog");
        let plan = plan(&cat);
        let path = vec!["public".to_string()];
        let ctx = Context { catalog: &cat, plan: &plan, search_path: &path };
        // The masked copy, built from what pgveil forwards for plain reads of each table.
        let visible = |t: &str| -> String {
            let r = cat.get("public", t).expect("table");
            let tp = plan.tables.get(&r.oid);
            r.columns
                .iter()
                .filter(|col| match tp.and_then(|tp| tp.column(&col.name)).map(|cp| &cp.action) {
                    Some(ColumnAction::Deny) => false,
                    Some(ColumnAction::Mask(m)) => !m.is_keyed(),
                    _ => true,
                })
                .map(|col| format!("\"{}\"", col.name))
                .collect::<Vec<_>>()
                .join(", ")
        };
        c.batch_execute("CREATE SCHEMA masked_copy").await.expect("schema");
        for t in ["customers", "orders", "employees", "suppliers"] {
            // Read one level down, where every mask is computed in the database.
            let read = analyze(&format!("SELECT * FROM (SELECT {} FROM public.{t}) v", visible(t)), &ctx)
                .expect("plain read");
            c.batch_execute(&format!("CREATE TABLE masked_copy.{t} AS {}", read.sql)).await.expect("copy");
        }
        c.batch_execute(
            "CREATE VIEW masked_copy.customer_contacts AS SELECT id, name, phone, email, city FROM masked_copy.customers",
        )
        .await
        .expect("view");
        let copy = connect(&cluster.url("postgres")).await;
        copy.batch_execute("SET search_path = masked_copy").await.expect("path");
        let (mut nonempty, mut empty) = (0, Vec::new());
        for sql in LEGIT {
            let a = analyze(sql, &ctx).unwrap_or_else(|e| panic!("legitimate query refused: {sql}\n{e}"));
            let through = answer_through(&c, &a).await;
            let on_copy = answer(&copy, sql).await;
            assert_eq!(through, on_copy, "{sql}\nforwarded as\n{}", a.sql);
            if matches!(&through, Answer::Rows(r) if !r.is_empty()) {
                nonempty += 1;
            } else {
                empty.push(format!("{sql}: {through:?}"));
            }
        }
        assert_eq!(nonempty, LEGIT.len(), "every legitimate query should return rows:\n{}", empty.join("\n"));
        println!("legitimate queries: {} answered as on the masked copy", LEGIT.len());
    });
}
