//! The upstream catalog as pgveil needs it: relations, their columns and types.
//!
//! Loaded with tokio-postgres (see `load`), replaced whole on refresh; readers hold an
//! `Arc<Catalog>` so a refresh never changes what a statement in flight sees.
pub mod load;

use std::collections::HashMap;

/// What kind of relation a name resolves to (`pg_class.relkind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelKind {
    Table,
    PartitionedTable,
    View,
    MaterializedView,
    ForeignTable,
    Other,
}

/// One column of a relation (`pg_attribute`, not dropped, attnum > 0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    pub attnum: i16,
    /// `pg_attribute.atttypid`.
    pub type_oid: u32,
    /// `format_type(atttypid, atttypmod)`, e.g. `character varying(18)`.
    pub type_name: String,
    pub typmod: i32,
    pub not_null: bool,
}

/// One relation (`pg_class`) with its columns in attnum order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relation {
    pub oid: u32,
    pub schema: String,
    pub name: String,
    pub kind: RelKind,
    pub columns: Vec<Column>,
    /// `pg_get_viewdef(oid)` for views and materialized views.
    pub view_definition: Option<String>,
    /// Columns of the primary key (`pg_constraint` contype `p`), in key order; empty when the
    /// relation has none. PostgreSQL lets a query group by the key and read the other columns
    /// (functional dependency); a masking subquery has no key, so the analyser needs it.
    pub primary_key: Vec<String>,
}

impl Relation {
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }
    pub fn qualified_name(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }
}

/// A snapshot of the upstream catalog.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    /// Bumped on every reload; part of the analysis cache key.
    pub version: u64,
    pub relations: HashMap<u32, Relation>,
    /// (schema, name) -> oid.
    pub by_name: HashMap<(String, String), u32>,
    /// Functions, to judge calls: name -> the schemas that define a function of that name
    /// (overloads count once). Filled with [`Catalog::insert_function`], read with
    /// [`Catalog::has_function`]: one hash lookup per call judged.
    pub functions: HashMap<String, Vec<String>>,
    /// Inheritance (`pg_inherits`): child oid -> its parents' oids. Partitions and
    /// inheritance children hold their parent's rows, so they must not be a way around it.
    pub parents: HashMap<u32, Vec<u32>>,
}

impl Catalog {
    pub fn insert(&mut self, rel: Relation) {
        self.by_name
            .insert((rel.schema.clone(), rel.name.clone()), rel.oid);
        self.relations.insert(rel.oid, rel);
    }
    pub fn insert_function(&mut self, schema: String, name: String) {
        let schemas = self.functions.entry(name).or_default();
        if !schemas.contains(&schema) {
            schemas.push(schema);
        }
    }
    /// Whether `schema` defines a function called `name`.
    pub fn has_function(&self, schema: &str, name: &str) -> bool {
        self.functions
            .get(name)
            .is_some_and(|schemas| schemas.iter().any(|s| s == schema))
    }
    pub fn get(&self, schema: &str, name: &str) -> Option<&Relation> {
        self.by_name
            .get(&(schema.to_string(), name.to_string()))
            .and_then(|o| self.relations.get(o))
    }
    pub fn by_oid(&self, oid: u32) -> Option<&Relation> {
        self.relations.get(&oid)
    }
    /// Every ancestor of `oid` (parents, their parents...), each once, nearest first.
    pub fn ancestors(&self, oid: u32) -> Vec<u32> {
        let mut out: Vec<u32> = Vec::new();
        let mut todo = vec![oid];
        while let Some(o) = todo.pop() {
            for p in self.parents.get(&o).map(Vec::as_slice).unwrap_or(&[]) {
                if *p != oid && !out.contains(p) {
                    out.push(*p);
                    todo.push(*p);
                }
            }
        }
        out
    }
    /// Every descendant of `oid` (children, their children...), each once.
    pub fn descendants(&self, oid: u32) -> Vec<u32> {
        let mut out: Vec<u32> = Vec::new();
        let mut todo = vec![oid];
        while let Some(o) = todo.pop() {
            for (child, ps) in &self.parents {
                if ps.contains(&o) && *child != oid && !out.contains(child) {
                    out.push(*child);
                    todo.push(*child);
                }
            }
        }
        out
    }
    /// Resolve an unqualified name along a search path, as PostgreSQL does
    /// (`pg_catalog` first unless it is listed explicitly).
    pub fn resolve(&self, search_path: &[String], name: &str) -> Option<&Relation> {
        if !search_path.iter().any(|s| s == "pg_catalog") {
            if let Some(r) = self.get("pg_catalog", name) {
                return Some(r);
            }
        }
        search_path.iter().find_map(|s| self.get(s, name))
    }
}
