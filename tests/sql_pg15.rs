//! The analyser's rewrites run on a real PostgreSQL 15 holding the demo schema, with the
//! catalog loaded from it (pgveil::catalog::load), so every relation, column type and
//! built-in function is the server's own.
//!
//! Proves: (1) rewritten statements execute; (2) they compute on masked values (no raw value
//! of a masked column comes back, the row filter holds everywhere); (3) the catalog queries
//! psql's `\d` family sends (captured live with `psql -E`) are allowed and return exactly what
//! they return directly.
mod through;

use std::collections::{HashMap, HashSet};
use std::process::Command;
use std::sync::Arc;

use pgveil::catalog::load::load;
use pgveil::catalog::Catalog;
use pgveil::cluster::Cluster;
use pgveil::mask::{ColumnType, Format, Keys, Mask, MaskSpec, TokenFormat};
use pgveil::policy::{ColumnAction, ColumnPlan, Limits, RolePlan, RuleRef, TablePlan};
use pgveil::sql::{analyze, Analysis, Context};
use through::rows_through;
use tokio_postgres::{Client, SimpleQueryMessage};

const SCHEMA: &str = include_str!("../src/demo/schema.sql");

/// Deterministic sample data: 40 customers (every third without consent), their orders,
/// employees and suppliers.
const DATA: &str = "
INSERT INTO customers
SELECT i, '客户' || i, '11010119900101' || lpad(i::text, 4, '0'), '138' || lpad(i::text, 8, '0'),
       'user' || i || '@example.com', '62220000000000' || lpad(i::text, 5, '0'), '深圳市南山区' || i || '号',
       date '1990-01-01' + i, CASE WHEN i % 2 = 0 THEN '深圳' ELSE '广州' END, i % 4, i % 3 <> 0,
       'call 1390000' || lpad(i::text, 4, '0'), timestamp '2026-01-01' + i * interval '1 day'
  FROM generate_series(1, 40) i;
INSERT INTO orders SELECT i, 1 + i % 40, lpad(i::text, 18, '0'), i * 10.5, CASE WHEN i % 2 = 0 THEN 'paid' ELSE 'open' END,
       timestamp '2026-02-01' + i * interval '1 hour' FROM generate_series(1, 100) i;
INSERT INTO employees SELECT i, '员工' || i, CASE WHEN i % 2 = 0 THEN 'sales' ELSE 'ops' END, 10000 + i * 100,
       '44030019800101' || lpad(i::text, 4, '0'), '139' || lpad(i::text, 8, '0'), date '2020-01-01' + i FROM generate_series(1, 10) i;
INSERT INTO suppliers SELECT i, '供应商' || i, '91440300' || lpad(i::text, 10, '0'), '0755' || lpad(i::text, 8, '0') FROM generate_series(1, 5) i;
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

fn rule(what: &str) -> Option<RuleRef> {
    Some(RuleRef {
        file: "rules/tables.yaml".into(),
        line: 1,
        what: what.into(),
    })
}

/// The analyst's plan on the loaded catalog (same shape as tests/sql_analysis.rs).
fn analyst(cat: &Catalog) -> RolePlan {
    let keys = Keys {
        keys: HashMap::from([("default".to_string(), vec![9u8; 32])]),
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
                ("name", Some(MaskSpec::CnName)),
                (
                    "id_number",
                    Some(MaskSpec::Token {
                        format: TokenFormat::CnId,
                        key: "default".into(),
                    }),
                ),
                ("phone", Some(partial())),
                ("email", Some(MaskSpec::Email)),
                ("bank_card", Some(MaskSpec::BankCard { keep_bin: true })),
                ("address", Some(MaskSpec::Address)),
                ("notes", None),
            ],
            Some("consent_transfer"),
        ),
        (
            "employees",
            vec![
                ("salary", None),
                (
                    "id_number",
                    Some(MaskSpec::CnId {
                        keep_birth_year: false,
                    }),
                ),
                ("phone", Some(partial())),
            ],
            None,
        ),
        ("suppliers", vec![("contact_phone", Some(partial()))], None),
    ];
    let mut tables = HashMap::new();
    for (name, cols, filter) in specs {
        let r = cat.get("public", name).expect("demo table loaded");
        let columns = r
            .columns
            .iter()
            .map(|c| {
                let action = match cols.iter().find(|(n, _)| *n == c.name) {
                    Some((_, None)) => ColumnAction::Deny,
                    Some((_, Some(s))) => ColumnAction::Mask(Arc::new(
                        Mask::new(s, &ColumnType::from_catalog(c.type_oid, c.typmod), &keys)
                            .unwrap_or_else(|e| panic!("mask for {name}.{}: {e}", c.name)),
                    )),
                    None => ColumnAction::Clear,
                };
                ColumnPlan {
                    name: c.name.clone(),
                    attnum: c.attnum,
                    action,
                    rule: rule(&format!("public.{name}.{}", c.name)),
                }
            })
            .collect();
        tables.insert(
            r.oid,
            TablePlan {
                oid: r.oid,
                schema: "public".into(),
                name: name.into(),
                columns,
                row_filter: filter.map(|f| {
                    (
                        f.to_string(),
                        RuleRef {
                            file: "rules/tables.yaml".into(),
                            line: 2,
                            what: "consent".into(),
                        },
                    )
                }),
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

/// All rows of every statement of a simple query, as text.
async fn rows(client: &Client, sql: &str) -> Result<Vec<Vec<Option<String>>>, tokio_postgres::Error> {
    let mut out = Vec::new();
    for m in client.simple_query(sql).await? {
        if let SimpleQueryMessage::Row(r) = m {
            out.push((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect());
        }
    }
    Ok(out)
}

struct Env {
    _cluster: Cluster,
    cluster_url: String,
    cat: Catalog,
    plan: RolePlan,
    path: Vec<String>,
}

fn setup() -> Env {
    let cluster = Cluster::start().unwrap_or_else(|e| panic!("cannot start PostgreSQL 15 for the test: {e}"));
    let url = cluster.url("postgres");
    let cat = rt().block_on(async {
        let c = connect(&url).await;
        c.batch_execute(SCHEMA).await.expect("schema");
        c.batch_execute(DATA).await.expect("data");
        load(&c, 1).await.expect("catalog")
    });
    let plan = analyst(&cat);
    Env {
        _cluster: cluster,
        cluster_url: url,
        cat,
        plan,
        path: vec!["public".into()],
    }
}

impl Env {
    fn analyze(&self, sql: &str) -> Analysis {
        let ctx = Context {
            catalog: &self.cat,
            plan: &self.plan,
            search_path: &self.path,
        };
        analyze(sql, &ctx).unwrap_or_else(|e| panic!("refused: {sql}\n{e}"))
    }
}

fn raw_values(cells: &[Vec<Option<String>>]) -> HashSet<String> {
    cells.iter().flatten().flatten().cloned().collect()
}

#[test]
fn rewritten_statements_execute_on_masked_values() {
    let env = setup();
    rt().block_on(async {
        let c = connect(&env.cluster_url).await;
        let raw = |col: &'static str, table: &'static str| {
            let c = &c;
            async move { raw_values(&rows(c, &format!("SELECT {col}::text FROM {table}")).await.expect("raw")) }
        };
        let raw_phones = raw("phone", "customers").await;
        let raw_emails = raw("email", "customers").await;
        let raw_names = raw("name", "customers").await;
        let raw_ids = raw("id_number", "employees").await;
        let consenting: i64 = rows(&c, "SELECT count(*) FROM customers WHERE consent_transfer").await.expect("count")[0][0]
            .as_deref()
            .and_then(|v| v.parse().ok())
            .expect("number");

        // (statement, columns whose values must all be masked: none of them raw)
        let cases: &[(&str, &[&HashSet<String>])] = &[
            ("SELECT phone FROM customers", &[&raw_phones]),
            ("SELECT c.phone, c.email FROM customers c WHERE c.phone LIKE '138%' ORDER BY c.phone", &[&raw_phones, &raw_emails]),
            ("SELECT public.customers.email FROM public.customers", &[&raw_emails]),
            ("SELECT name FROM customers UNION SELECT name FROM customers", &[&raw_names]),
            ("SELECT city, count(DISTINCT phone) FROM customers GROUP BY city ORDER BY city", &[]),
            ("SELECT o.amount, c.phone FROM orders o JOIN customers c ON c.id = o.customer_id ORDER BY o.id", &[&raw_phones]),
            ("SELECT phone FROM customers WHERE id IN (SELECT customer_id FROM orders WHERE status = 'paid')", &[&raw_phones]),
            ("SELECT (SELECT max(email) FROM customers) AS m", &[&raw_emails]),
            ("WITH x AS (SELECT id, phone FROM customers) SELECT phone FROM x ORDER BY id", &[&raw_phones]),
            ("WITH customers AS (SELECT 1 AS phone) SELECT phone FROM customers", &[]),
            ("WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < (SELECT count(*) FROM customers)) SELECT max(n) FROM r", &[]),
            ("SELECT o.id, l.phone FROM orders o, LATERAL (SELECT phone FROM customers c WHERE c.id = o.customer_id) l", &[&raw_phones]),
            ("SELECT row_to_json(s) FROM suppliers s", &[]),
            ("SELECT s FROM suppliers s", &[]),
            ("SELECT * FROM suppliers NATURAL JOIN orders", &[]),
            ("SELECT * FROM suppliers JOIN orders USING (id)", &[]),
            ("TABLE suppliers", &[]),
            ("SELECT DISTINCT ON (contact_phone) name FROM suppliers ORDER BY contact_phone", &[]),
            ("SELECT name, rank() OVER (PARTITION BY department ORDER BY hired_on) FROM employees", &[]),
            ("SELECT id_number FROM employees", &[&raw_ids]),
            ("SELECT e.name, e.phone FROM employees e WHERE e.department = 'sales'", &[]),
            ("SELECT phone FROM customer_contacts", &[&raw_phones]),
            ("SELECT v.email FROM customer_contacts v WHERE v.city = '深圳'", &[&raw_emails]),
            ("SELECT id, id_number, bank_card FROM customers ORDER BY id", &[]),
            ("SELECT count(*) FROM orders o WHERE EXISTS (SELECT 1 FROM customers c WHERE c.id = o.customer_id)", &[]),
            ("SELECT c.relname, c.reltuples FROM pg_catalog.pg_class c WHERE c.relname = 'customers'", &[]),
            ("SELECT U&\"p\\0068one\" FROM CUSTOMERS", &[&raw_phones]),
            ("SELECT phone FROM customers; SELECT email FROM customers", &[&raw_phones, &raw_emails]),
            ("SELECT name FROM pg_settings WHERE name = 'work_mem'", &[]),
            ("SELECT count(*) FROM customers a JOIN customers b ON a.phone = b.phone", &[]),
        ];
        for (sql, masked) in cases {
            let a = env.analyze(sql);
            let got = rows_through(&c, &a).await.unwrap_or_else(|e| panic!("rewrite of {sql} fails on PostgreSQL 15: {e}\n{}", a.sql));
            let values = raw_values(&got);
            for raw in *masked {
                let leaked: Vec<&String> = values.intersection(raw).collect();
                assert!(leaked.is_empty(), "{sql}: raw values came back: {leaked:?}\n{}", a.sql);
            }
            if masked.iter().any(|m| !m.is_empty()) {
                assert!(!values.is_empty(), "{sql}: no rows");
            }
        }

        // The row filter holds in every position.
        for sql in [
            "SELECT count(*) FROM customers",
            "SELECT count(*) FROM (SELECT id FROM customers) s",
            "SELECT count(*) FROM customer_contacts",
            "WITH k AS (SELECT id FROM customers) SELECT count(*) FROM k",
            "SELECT count(DISTINCT c.id) FROM orders o JOIN customers c ON c.id = o.customer_id",
        ] {
            let a = env.analyze(sql);
            let got = rows_through(&c, &a).await.expect("runs");
            let n: i64 = got[0][0].as_deref().and_then(|v| v.parse().ok()).expect("number");
            assert!(n <= consenting && n > 0, "{sql}: {n} rows, {consenting} consenting");
        }
        let direct = rows(&c, "SELECT count(*) FROM customers").await.expect("count")[0][0].clone();
        assert_ne!(direct.as_deref(), Some(consenting.to_string().as_str()), "the fixture must hide some rows");

        // Predicates never run on hidden rows: this divides by zero on every hidden row.
        let a = env.analyze("SELECT count(*) FROM customers WHERE 1 / (CASE WHEN consent_transfer THEN 1 ELSE 0 END) = 1");
        rows_through(&c, &a).await.unwrap_or_else(|e| panic!("predicate ran on a hidden row: {e}\n{}", a.sql));

        // Keyed columns: raw in the database result, at the positions pgveil masks.
        let a = env.analyze("SELECT id, id_number FROM customers ORDER BY id");
        assert_eq!(a.statements[0].proxy_masks.iter().map(|p| p.0).collect::<Vec<_>>(), vec![1]);
        let st = c.prepare(a.sql.as_str()).await.unwrap_or_else(|e| panic!("{e}\n{}", a.sql));
        let names: Vec<&str> = st.columns().iter().map(|c| c.name()).collect();
        assert_eq!(names, vec!["id", "id_number"], "clients see their own column names");
        // The raw column is reachable under its internal name only: a reference pgveil did
        // not rewrite (as a parser differential would produce) fails in the database.
        let sneaky = format!("SELECT s.id_number FROM ({}) s", a.sql.replace(" AS id_number", ""));
        assert!(rows(&c, &sneaky).await.is_err(), "{sneaky}");

        // COPY, cursors, PREPARE/EXECUTE, parameters.
        let a = env.analyze("COPY suppliers TO STDOUT");
        let text = env._cluster.psql("postgres", &format!("{};", a.sql)).expect("COPY through psql");
        assert_eq!(text.lines().count(), 5, "{text}");
        // contact_phone (position 3) is raw in the database's COPY rows: pgveil masks it.
        assert_eq!(a.statements[0].proxy_masks.iter().map(|p| p.0).collect::<Vec<_>>(), vec![3]);
        let a = env.analyze("COPY suppliers TO STDOUT (FORMAT csv)");
        assert!(a.statements[0].proxy_masks.is_empty(), "with options every mask stays in SQL");
        let text = env._cluster.psql("postgres", &format!("{};", a.sql)).expect("COPY through psql");
        assert!(text.lines().count() == 5 && !text.contains("07550000000"), "{text}");
        let a = env.analyze("DECLARE cur CURSOR WITH HOLD FOR SELECT phone FROM customers ORDER BY id");
        c.batch_execute(&a.sql).await.expect("declare");
        let got = rows(&c, "FETCH 3 FROM cur").await.expect("fetch");
        assert_eq!(got.len(), 3);
        assert!(raw_values(&got).is_disjoint(&raw_phones));
        c.batch_execute("CLOSE cur").await.expect("close");
        let a = env.analyze("PREPARE p(int) AS SELECT email FROM customers WHERE id = $1");
        c.batch_execute(&a.sql).await.expect("prepare");
        let got = rows(&c, "EXECUTE p(4)").await.expect("execute");
        assert_eq!(got.len(), 1);
        assert!(rows(&c, "EXECUTE p(3)").await.expect("execute").is_empty(), "customer 3 gave no consent");
        assert!(raw_values(&got).is_disjoint(&raw_emails));
        let a = env.analyze("SELECT phone FROM customers WHERE id = $1");
        let got = c.query(a.sql.as_str(), &[&4i32]).await.expect("extended query");
        let phone: Option<String> = got[0].get(0);
        let (_, mask) = &a.statements[0].proxy_masks[0];
        let mut masked = Vec::new();
        let _ = mask.apply(phone.unwrap_or_default().as_bytes(), Format::Text, &mut masked);
        assert!(!raw_phones.contains(&String::from_utf8_lossy(&masked).into_owned()));
    });
}

/// The catalog queries psql sends for the `\d` family, captured from psql itself.
fn psql_describe_queries(env: &Env, meta: &str) -> Vec<String> {
    let out = Command::new(env._cluster.bin("psql"))
        .args(["-X", "-E", "-d", &env.cluster_url, "-c", meta])
        .env("PGCLIENTENCODING", "UTF8")
        .output()
        .expect("run psql");
    assert!(
        out.status.success(),
        "psql {meta}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let mut queries = Vec::new();
    let mut cur: Option<String> = None;
    for line in text.lines() {
        if line.starts_with("********* QUERY") {
            cur = Some(String::new());
        } else if line.starts_with("**************************") {
            if let Some(q) = cur.take() {
                queries.push(q.trim().to_string());
            }
        } else if let Some(q) = cur.as_mut() {
            q.push_str(line);
            q.push('\n');
        }
    }
    queries
}

#[test]
fn psql_describe_queries_pass_and_answer_as_directly() {
    let env = setup();
    let (mut total, mut unchanged) = (0, 0);
    for meta in [
        "\\d customers",
        "\\d",
        "\\dt",
        "\\dn",
        "\\df",
        "\\l",
        "\\dv",
        "\\di",
        "\\d customer_contacts",
        "\\d+ customers",
        "\\du",
    ] {
        let queries = psql_describe_queries(&env, meta);
        assert!(!queries.is_empty(), "psql -E {meta} printed no query");
        rt().block_on(async {
            let c = connect(&env.cluster_url).await;
            for q in &queries {
                let a = env.analyze(q);
                let direct = rows(&c, q)
                    .await
                    .unwrap_or_else(|e| panic!("{meta}: direct {q}: {e}"));
                let through = rows_through(&c, &a)
                    .await
                    .unwrap_or_else(|e| panic!("{meta}: rewritten fails: {e}\n{}", a.sql));
                assert_eq!(through, direct, "{meta}: {q}\nrewritten: {}", a.sql);
                total += 1;
                if a.sql == *q {
                    unchanged += 1;
                }
            }
        });
    }
    println!("psql: {total} catalog queries answered as directly, {unchanged} forwarded byte for byte");
    assert!(total >= 15, "only {total} psql queries checked");
    // Only queries reading pg_class's size columns need the guard's rewrite.
    assert!(
        unchanged * 10 >= total * 8,
        "only {unchanged} of {total} psql queries kept their text"
    );
}

/// Catalog queries pgjdbc's DatabaseMetaData and connection setup send (getTables,
/// getColumns, getPrimaryKeys, getSchemas, type cache), as the driver composes them.
const JDBC: &[&str] = &[
    "SET extra_float_digits = 3",
    "SET application_name = 'PostgreSQL JDBC Driver'",
    "SELECT NULL AS TABLE_CAT, n.nspname AS TABLE_SCHEM, c.relname AS TABLE_NAME, CASE n.nspname ~ '^pg_' OR n.nspname = 'information_schema' WHEN true THEN CASE WHEN n.nspname = 'pg_catalog' OR n.nspname = 'information_schema' THEN CASE c.relkind WHEN 'r' THEN 'SYSTEM TABLE' WHEN 'v' THEN 'SYSTEM VIEW' WHEN 'i' THEN 'SYSTEM INDEX' ELSE NULL END WHEN n.nspname = 'pg_toast' THEN CASE c.relkind WHEN 'r' THEN 'SYSTEM TOAST TABLE' WHEN 'i' THEN 'SYSTEM TOAST INDEX' ELSE NULL END ELSE CASE c.relkind WHEN 'r' THEN 'TEMPORARY TABLE' WHEN 'p' THEN 'TEMPORARY TABLE' WHEN 'i' THEN 'TEMPORARY INDEX' WHEN 'S' THEN 'TEMPORARY SEQUENCE' WHEN 'v' THEN 'TEMPORARY VIEW' ELSE NULL END END WHEN false THEN CASE c.relkind WHEN 'r' THEN 'TABLE' WHEN 'p' THEN 'PARTITIONED TABLE' WHEN 'i' THEN 'INDEX' WHEN 'S' THEN 'SEQUENCE' WHEN 'v' THEN 'VIEW' WHEN 'c' THEN 'TYPE' WHEN 'f' THEN 'FOREIGN TABLE' WHEN 'm' THEN 'MATERIALIZED VIEW' ELSE NULL END ELSE NULL END AS TABLE_TYPE, d.description AS REMARKS, '' as TYPE_CAT, '' as TYPE_SCHEM, '' as TYPE_NAME, '' AS SELF_REFERENCING_COL_NAME, '' AS REF_GENERATION FROM pg_catalog.pg_namespace n, pg_catalog.pg_class c LEFT JOIN pg_catalog.pg_description d ON (c.oid = d.objoid AND d.objsubid = 0 and d.classoid = 'pg_class'::regclass) WHERE c.relnamespace = n.oid AND c.relname LIKE '%' AND (false OR ( c.relkind IN ('r','p') AND n.nspname !~ '^pg_' AND n.nspname <> 'information_schema' ) OR ( c.relkind = 'v' AND n.nspname <> 'pg_catalog' AND n.nspname <> 'information_schema' ) ) ORDER BY TABLE_TYPE,TABLE_SCHEM,TABLE_NAME",
    "SELECT * FROM (SELECT n.nspname,c.relname,a.attname,a.atttypid,a.attnotnull OR (t.typtype = 'd' AND t.typnotnull) AS attnotnull,a.atttypmod,a.attlen,t.typtypmod,row_number() OVER (PARTITION BY a.attrelid ORDER BY a.attnum) AS attnum, nullif(a.attidentity, '') as attidentity,nullif(a.attgenerated, '') as attgenerated,pg_catalog.pg_get_expr(def.adbin, def.adrelid) AS adsrc,dsc.description,t.typbasetype,t.typtype  FROM pg_catalog.pg_namespace n  JOIN pg_catalog.pg_class c ON (c.relnamespace = n.oid)  JOIN pg_catalog.pg_attribute a ON (a.attrelid=c.oid)  JOIN pg_catalog.pg_type t ON (a.atttypid = t.oid)  LEFT JOIN pg_catalog.pg_attrdef def ON (a.attrelid=def.adrelid AND a.attnum = def.adnum)  LEFT JOIN pg_catalog.pg_description dsc ON (c.oid=dsc.objoid AND a.attnum = dsc.objsubid)  LEFT JOIN pg_catalog.pg_class dc ON (dc.oid=dsc.classoid AND dc.relname='pg_class')  LEFT JOIN pg_catalog.pg_namespace dn ON (dc.relnamespace=dn.oid AND dn.nspname='pg_catalog')  WHERE c.relkind in ('r','p','v','f','m') and a.attnum > 0 AND NOT a.attisdropped  AND n.nspname LIKE 'public' AND c.relname LIKE 'customers') c WHERE true  ORDER BY nspname,c.relname,attnum",
    "SELECT result.TABLE_CAT, result.TABLE_SCHEM, result.TABLE_NAME, result.COLUMN_NAME, result.KEY_SEQ, result.PK_NAME FROM (SELECT NULL AS TABLE_CAT, n.nspname AS TABLE_SCHEM,   ct.relname AS TABLE_NAME, a.attname AS COLUMN_NAME,   (information_schema._pg_expandarray(i.indkey)).n AS KEY_SEQ, ci.relname AS PK_NAME,   information_schema._pg_expandarray(i.indkey) AS KEYS, a.attnum AS A_ATTNUM FROM pg_catalog.pg_class ct   JOIN pg_catalog.pg_attribute a ON (ct.oid = a.attrelid)   JOIN pg_catalog.pg_namespace n ON (ct.relnamespace = n.oid)   JOIN pg_catalog.pg_index i ON ( a.attrelid = i.indrelid)   JOIN pg_catalog.pg_class ci ON (ci.oid = i.indexrelid) WHERE true  AND n.nspname = E'public' AND ct.relname = E'customers' AND i.indisprimary  ) result where  result.A_ATTNUM = (result.KEYS).x  ORDER BY result.table_name, result.pk_name, result.key_seq",
    "SELECT nspname AS TABLE_SCHEM, NULL AS TABLE_CATALOG FROM pg_catalog.pg_namespace  WHERE nspname <> 'pg_toast' AND (nspname !~ '^pg_temp_'  OR nspname = (pg_catalog.current_schemas(true))[1]) AND (nspname !~ '^pg_toast_temp_'  OR nspname = replace((pg_catalog.current_schemas(true))[1], 'pg_temp_', 'pg_toast_temp_'))  ORDER BY TABLE_SCHEM",
    "SELECT t.typname,t.oid FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON (t.typnamespace = n.oid)  WHERE n.nspname  != 'pg_toast' AND  (t.typrelid = 0 OR (SELECT c.relkind = 'c' FROM pg_catalog.pg_class c WHERE c.oid = t.typrelid))",
    "SELECT typinput='pg_catalog.array_in'::regproc as is_array, typtype, typname, pg_type.oid   FROM pg_catalog.pg_type   LEFT JOIN (select ns.oid as nspoid, ns.nspname, r.r           from pg_namespace as ns           join ( select s.r, (current_schemas(false))[s.r] as nspname                    from generate_series(1, array_upper(current_schemas(false), 1)) as s(r) ) as r          using ( nspname )        ) as sp     ON sp.nspoid = typnamespace  WHERE pg_type.oid = 23  ORDER BY sp.r, pg_type.oid DESC",
];

#[test]
fn jdbc_metadata_queries_pass_and_answer_as_directly() {
    let env = setup();
    rt().block_on(async {
        let c = connect(&env.cluster_url).await;
        for q in JDBC {
            let a = env.analyze(q);
            let direct = rows(&c, q).await.unwrap_or_else(|e| panic!("direct {q}: {e}"));
            let through = rows_through(&c, &a)
                .await
                .unwrap_or_else(|e| panic!("rewritten fails: {e}\n{}", a.sql));
            assert_eq!(through, direct, "{q}\nrewritten: {}", a.sql);
        }
    });
}

impl Env {
    fn refusal(&self, sql: &str) -> pgveil::sql::Refusal {
        let ctx = Context {
            catalog: &self.cat,
            plan: &self.plan,
            search_path: &self.path,
        };
        match analyze(sql, &ctx) {
            Ok(a) => panic!("expected a refusal: {sql}\nforwarded as {}", a.sql),
            Err(r) => r,
        }
    }
}

/// The fixes the driver and non-interference runs called for, executed on PostgreSQL 15:
/// GROUP BY a protected table's primary key, asyncpg's pool reset, SQLAlchemy's
/// `current_setting($1::VARCHAR)`, Metabase's `pg_stat_user_tables` join, credential
/// catalogs, and partitions/inheritance children of protected tables.
#[test]
fn driver_fixes_run_on_postgresql_15() {
    let mut env = setup();
    rt().block_on(async {
        let c = connect(&env.cluster_url).await;
        c.batch_execute(
            "CREATE TABLE events (id int PRIMARY KEY, phone varchar(20)) PARTITION BY RANGE (id);
             CREATE TABLE events_low PARTITION OF events FOR VALUES FROM (0) TO (50);
             CREATE TABLE events_high PARTITION OF events FOR VALUES FROM (50) TO (1000);
             INSERT INTO events SELECT i, '137' || lpad(i::text, 8, '0') FROM generate_series(1, 80) i;
             CREATE TABLE customers_archive () INHERITS (customers);
             CREATE TABLE multi (a int, b text, c int, PRIMARY KEY (c, a));",
        )
        .await
        .expect("partitions");
        env.cat = load(&c, 2).await.expect("catalog");
    });
    // The catalog now knows keys (in key order) and inheritance.
    let oid = |n: &str| {
        env.cat
            .get("public", n)
            .unwrap_or_else(|| panic!("{n} loaded"))
            .oid
    };
    assert_eq!(
        env.cat.get("public", "customers").map(|r| r.primary_key.clone()),
        Some(vec!["id".to_string()])
    );
    assert_eq!(
        env.cat.get("public", "multi").map(|r| r.primary_key.clone()),
        Some(vec!["c".to_string(), "a".to_string()])
    );
    assert_eq!(
        env.cat.parents.get(&oid("events_low")),
        Some(&vec![oid("events")])
    );
    assert_eq!(
        env.cat.parents.get(&oid("customers_archive")),
        Some(&vec![oid("customers")])
    );
    assert!(env
        .cat
        .get("pg_catalog", "pg_class")
        .is_some_and(|r| r.primary_key == ["oid"]));
    env.plan = analyst(&env.cat);
    let events = env.cat.get("public", "events").expect("events").clone();
    let keys = Keys {
        keys: HashMap::from([("default".to_string(), vec![9u8; 32])]),
    };
    let phone_mask = MaskSpec::Partial {
        keep_first: 3,
        keep_last: 4,
        fill: '*',
        fixed_length: None,
    };
    env.plan.tables.insert(
        events.oid,
        TablePlan {
            oid: events.oid,
            schema: "public".into(),
            name: "events".into(),
            columns: events
                .columns
                .iter()
                .map(|col| ColumnPlan {
                    name: col.name.clone(),
                    attnum: col.attnum,
                    action: if col.name == "phone" {
                        ColumnAction::Mask(Arc::new(
                            Mask::new(
                                &phone_mask,
                                &ColumnType::from_catalog(col.type_oid, col.typmod),
                                &keys,
                            )
                            .expect("mask"),
                        ))
                    } else {
                        ColumnAction::Clear
                    },
                    rule: rule("public.events.phone"),
                })
                .collect(),
            row_filter: None,
        },
    );

    rt().block_on(async {
        let c = connect(&env.cluster_url).await;
        let raw_phones = raw_values(&rows(&c, "SELECT phone FROM customers").await.expect("raw"));
        let raw_names = raw_values(&rows(&c, "SELECT name FROM customers").await.expect("raw"));

        // 1. GROUP BY the primary key of a protected table.
        let sql = "SELECT c.id, c.name, c.phone, count(o.id) FROM customers c LEFT JOIN orders o ON o.customer_id = c.id GROUP BY c.id ORDER BY c.id";
        let a = env.analyze(sql);
        let got = rows_through(&c, &a).await.unwrap_or_else(|e| panic!("{e}\n{}", a.sql));
        let want = rows(&c, "SELECT c.id::text, count(o.id)::text FROM customers c LEFT JOIN orders o ON o.customer_id = c.id WHERE c.consent_transfer GROUP BY c.id ORDER BY c.id")
            .await
            .expect("direct");
        let got_counts: Vec<Vec<Option<String>>> = got.iter().map(|r| vec![r[0].clone(), r[3].clone()]).collect();
        assert_eq!(got_counts, want, "groups and counts as PostgreSQL computes them\n{}", a.sql);
        let values = raw_values(&got);
        assert!(values.is_disjoint(&raw_phones) && values.is_disjoint(&raw_names), "{got:?}");
        for sql in [
            "SELECT c.id, c.id_number FROM customers c GROUP BY c.id ORDER BY c.id",
            "SELECT s.*, count(o.id) FROM suppliers s LEFT JOIN orders o ON o.id = s.id GROUP BY s.id",
            "SELECT id, email, count(*) FROM customers GROUP BY 1 HAVING city <> 'x' ORDER BY name",
            "SELECT e.id, e.phone, (SELECT count(*) FROM events v WHERE v.id = e.id) FROM employees e GROUP BY e.id",
            "SELECT v.id, v.phone FROM events v GROUP BY v.id",
        ] {
            let a = env.analyze(sql);
            let got = rows_through(&c, &a).await.unwrap_or_else(|e| panic!("{sql}: {e}\n{}", a.sql));
            assert!(!got.is_empty(), "{sql}");
            assert!(raw_values(&got).is_disjoint(&raw_phones), "{sql}: {got:?}");
        }

        // 2. asyncpg's pool reset passes unchanged and runs.
        let reset = "SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL;";
        let a = env.analyze(reset);
        assert_eq!(a.sql, reset);
        rows_through(&c, &a).await.expect("reset runs");
        for sql in ["SELECT pg_advisory_lock(1)", "DISCARD ALL"] {
            assert_eq!(env.refusal(sql).sqlstate, "42501", "{sql}");
        }

        // 3. current_setting of a bound name: built-in settings read, custom ones do not.
        c.batch_execute("SET app.secret = 'hunter2'").await.expect("custom setting");
        let a = env.analyze("SELECT pg_catalog.current_setting($1::VARCHAR)");
        let got = c.query(a.sql.as_str(), &[&"default_table_access_method"]).await.unwrap_or_else(|e| panic!("{e}\n{}", a.sql));
        assert_eq!(got[0].get::<_, String>(0), "heap");
        for name in ["app.secret", "APP.SECRET", "app.secret\n", "\napp.secret"] {
            match c.query(a.sql.as_str(), &[&name]).await {
                Ok(r) => panic!("{name:?}: read {:?}", r[0].get::<_, Option<String>>(0)),
                Err(e) => {
                    let m = e.as_db_error().map(|d| d.message().to_string()).unwrap_or_default();
                    assert!(m.contains("pgveil_custom_settings_are_hidden") && !m.contains("hunter2"), "{name:?}: {m}");
                }
            }
        }
        let a = env.analyze("SELECT pg_catalog.current_setting($1, true)");
        let read = |name: &'static str| {
            let (c, sql) = (&c, a.sql.clone());
            async move { c.query(sql.as_str(), &[&name]).await.expect("missing_ok").remove(0).get::<_, Option<String>>(0) }
        };
        assert_eq!(read("app.secret").await, None);
        assert!(read("work_mem").await.is_some());
        let direct: String = c.query_one("SELECT current_setting('app.secret')", &[]).await.expect("direct").get(0);
        assert_eq!(direct, "hunter2", "the fixture's secret is readable directly");
        // The pattern covers names with newlines (PostgreSQL's `.` matches them).
        let got = rows(&c, "SELECT pg_catalog.regexp_replace(E'x\\napp.secret\\ny', '^.*[.].*$', 'hidden')").await.expect("regexp");
        assert_eq!(got, vec![vec![Some("hidden".to_string())]]);

        // 4. Metabase's table listing: identity passes, counters read NULL.
        let metabase = "SELECT n.nspname AS schema, c.relname AS name, stat.n_live_tup AS estimated_row_count FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON c.relnamespace = n.oid LEFT JOIN pg_stat_user_tables AS stat ON n.nspname = stat.schemaname AND c.relname = stat.relname WHERE c.relkind IN ('r', 'p') AND n.nspname = 'public' ORDER BY 1, 2";
        let a = env.analyze(metabase);
        let got = rows_through(&c, &a).await.unwrap_or_else(|e| panic!("{e}\n{}", a.sql));
        let direct = rows(&c, metabase).await.expect("direct");
        assert_eq!(got.len(), direct.len());
        assert!(got.iter().any(|r| r[1].as_deref() == Some("customers")), "{got:?}");
        assert!(got.iter().all(|r| r[2].is_none()), "counters must read NULL: {got:?}");
        for sql in [
            "SELECT * FROM pg_stat_all_tables",
            "SELECT * FROM pg_catalog.pg_statio_user_tables",
            "SELECT relname, n_tup_ins, last_autovacuum FROM pg_stat_sys_tables",
        ] {
            let a = env.analyze(sql);
            let got = rows_through(&c, &a).await.unwrap_or_else(|e| panic!("{sql}: {e}\n{}", a.sql));
            assert!(!got.is_empty(), "{sql}");
            // relid, schemaname, relname pass; nothing else has a value.
            let first_null = if sql.starts_with("SELECT relname") { 1 } else { 3 };
            assert!(got.iter().all(|r| r[first_null..].iter().all(Option::is_none)), "{sql}: {got:?}");
        }
        for sql in ["SELECT * FROM pg_stat_activity", "SELECT * FROM pg_stats", "SELECT * FROM pg_stat_user_indexes"] {
            assert_eq!(env.refusal(sql).sqlstate, "42501", "{sql}");
        }

        // 5. Credential and configuration catalogs.
        for t in ["pg_shadow", "pg_authid", "pg_user_mappings", "pg_user_mapping", "pg_subscription", "pg_hba_file_rules", "pg_file_settings"] {
            let sql = format!("SELECT * FROM {t}");
            assert!(rows(&c, &sql).await.is_ok(), "{t} is readable directly by the superuser");
            let r = env.refusal(&sql);
            assert!(r.sqlstate == "42501" && r.message.contains(t), "{t}: {r}");
        }

        // 6. Partitions and inheritance children.
        for (sql, parent) in [
            ("SELECT * FROM events_low", "public.events"),
            ("SELECT phone FROM ONLY events_high", "public.events"),
            ("SELECT * FROM customers_archive", "public.customers"),
        ] {
            let r = env.refusal(sql);
            assert!(r.sqlstate == "42501" && r.message.contains(parent), "{sql}: {r}");
        }
        let raw_events = raw_values(&rows(&c, "SELECT phone FROM events").await.expect("raw"));
        let a = env.analyze("SELECT id, phone FROM events ORDER BY id");
        let got = rows_through(&c, &a).await.unwrap_or_else(|e| panic!("{e}\n{}", a.sql));
        assert_eq!(got.len(), 80);
        assert!(raw_values(&got).is_disjoint(&raw_events), "{got:?}");
    });
}
