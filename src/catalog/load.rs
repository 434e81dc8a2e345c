//! Loading a [`Catalog`] snapshot from the upstream PostgreSQL with tokio-postgres.
//!
//! Five catalog queries (relations, columns, primary keys, functions, inheritance), read in one REPEATABLE READ
//! transaction so that the snapshot is consistent even if DDL runs meanwhile (a column added
//! between two queries would otherwise belong to no relation).
//!
//! What is loaded: every table, partitioned table, view, materialized view and foreign table
//! of every schema except the toast and temporary ones (`pg_toast*`, `pg_temp_*`): user
//! schemas, `pg_catalog` and `information_schema` alike, since restricted roles name catalog
//! relations too (psql's `\d`). Dropped columns and system columns (attnum <= 0) are not.
use std::collections::HashMap;

use tokio_postgres::Client;

use super::{Catalog, Column, RelKind, Relation};

/// Relations (pg_class) of the kinds pgveil plans for.
const RELATIONS: &str = "\
SELECT c.oid, n.nspname::text, c.relname::text, c.relkind::text,
       CASE WHEN c.relkind IN ('v', 'm') THEN pg_catalog.pg_get_viewdef(c.oid) END
  FROM pg_catalog.pg_class c
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')
   AND n.nspname !~ '^pg_toast'
   AND n.nspname !~ '^pg_temp_'";

/// Their live user columns, in attnum order.
const COLUMNS: &str = "\
SELECT a.attrelid, a.attname::text, a.attnum, a.atttypid, a.atttypmod,
       pg_catalog.format_type(a.atttypid, a.atttypmod), a.attnotnull
  FROM pg_catalog.pg_attribute a
  JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')
   AND n.nspname !~ '^pg_toast'
   AND n.nspname !~ '^pg_temp_'
   AND a.attnum > 0
   AND NOT a.attisdropped
 ORDER BY a.attrelid, a.attnum";

/// Primary keys: the key's column names in key order.
const PRIMARY_KEYS: &str = "\
SELECT con.conrelid, a.attname::text
  FROM pg_catalog.pg_constraint con
 CROSS JOIN LATERAL pg_catalog.unnest(con.conkey) WITH ORDINALITY AS k(attnum, ord)
  JOIN pg_catalog.pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum
 WHERE con.contype = 'p'
 ORDER BY con.conrelid, k.ord";

/// Inheritance and partitioning: child -> parent.
const INHERITS: &str = "SELECT inhrelid, inhparent FROM pg_catalog.pg_inherits";

const FUNCTIONS: &str = "\
SELECT DISTINCT n.nspname::text, p.proname::text
  FROM pg_catalog.pg_proc p
  JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace";

fn relkind(k: &str) -> RelKind {
    match k {
        "r" => RelKind::Table,
        "p" => RelKind::PartitionedTable,
        "v" => RelKind::View,
        "m" => RelKind::MaterializedView,
        "f" => RelKind::ForeignTable,
        _ => RelKind::Other,
    }
}

/// Reads the catalog. `version` is stored as is (the caller bumps it on each reload).
///
/// Runs a transaction on `client`: give it a connection no other task uses meanwhile.
pub async fn load(client: &Client, version: u64) -> Result<Catalog, tokio_postgres::Error> {
    client
        // search_path = pg_catalog: pg_get_viewdef then qualifies every other name, so view
        // definitions read the same whatever a session's search_path (sql::walk relies on it).
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET LOCAL search_path = pg_catalog")
        .await?;
    let result = read(client, version).await;
    // COMMIT of a read-only transaction cannot lose anything; a failure here means the
    // connection is gone, which the caller sees on its next use.
    let end = client
        .batch_execute(if result.is_ok() { "COMMIT" } else { "ROLLBACK" })
        .await;
    let catalog = result?;
    end?;
    Ok(catalog)
}

async fn read(client: &Client, version: u64) -> Result<Catalog, tokio_postgres::Error> {
    let mut relations: HashMap<u32, Relation> = HashMap::new();
    for row in client.query(RELATIONS, &[]).await? {
        let oid: u32 = row.try_get(0)?;
        relations.insert(
            oid,
            Relation {
                oid,
                schema: row.try_get(1)?,
                name: row.try_get(2)?,
                kind: relkind(row.try_get::<_, &str>(3)?),
                columns: Vec::new(),
                view_definition: row.try_get(4)?,
                primary_key: Vec::new(),
            },
        );
    }
    for row in client.query(COLUMNS, &[]).await? {
        let rel: u32 = row.try_get(0)?;
        if let Some(r) = relations.get_mut(&rel) {
            r.columns.push(Column {
                name: row.try_get(1)?,
                attnum: row.try_get(2)?,
                type_oid: row.try_get(3)?,
                typmod: row.try_get(4)?,
                type_name: row.try_get(5)?,
                not_null: row.try_get(6)?,
            });
        }
    }
    for row in client.query(PRIMARY_KEYS, &[]).await? {
        let rel: u32 = row.try_get(0)?;
        if let Some(r) = relations.get_mut(&rel) {
            r.primary_key.push(row.try_get(1)?);
        }
    }
    let mut catalog = Catalog {
        version,
        ..Catalog::default()
    };
    for rel in relations.into_values() {
        catalog.insert(rel);
    }
    for row in client.query(FUNCTIONS, &[]).await? {
        catalog.insert_function(row.try_get(0)?, row.try_get(1)?);
    }
    for row in client.query(INHERITS, &[]).await? {
        let child: u32 = row.try_get(0)?;
        catalog.parents.entry(child).or_default().push(row.try_get(1)?);
    }
    Ok(catalog)
}
