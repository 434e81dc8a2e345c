//! Built-in protections of catalog relations, applied for restricted roles on top of the
//! DBA's rules.
//!
//! PostgreSQL's catalogs hold derived copies of table data: `pg_statistic` keeps most common
//! values and histogram bounds of every analysed column, `pg_stats` shows them, extended
//! statistics keep MCV lists, `pg_stat_activity` shows other sessions' statement text (with
//! its literals), `pg_largeobject` holds raw data, and `pg_class.reltuples`/`relpages` count
//! rows a row filter hides. A masking proxy that let these through would unmask by the back
//! door, so every reference to such a relation is judged here.
//!
//! Invariants:
//! - A relation in `pg_toast` is always refused (toast chunks are raw column values).
//! - A guard never makes a catalog query return *more*: it refuses or replaces values by
//!   constants, so psql's `\d` family keeps working on everything it needs.

/// What the analyser does with a reference to a guarded relation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Guard {
    /// Refuse any statement that reads the relation, telling the client why.
    Refuse { reason: &'static str },
    /// Read the relation through a masking subquery: the listed columns read as the given
    /// constant SQL expressions, and only rows where `row_filter` is true exist.
    Rewrite {
        constants: &'static [(&'static str, &'static str)],
        row_filter: Option<&'static str>,
    },
}

const STATS: &str = "statistics hold samples of column values (most common values, histograms), \
                     which would reveal masked data";

/// The guard for `schema.name`, if any. Names are as stored in the catalog (already folded).
pub fn guard_for(schema: &str, name: &str) -> Option<Guard> {
    if schema == "pg_toast" {
        return Some(Guard::Refuse {
            reason: "TOAST tables hold raw column values",
        });
    }
    // pg_stat_statements lives wherever its extension was installed (usually public).
    if name == "pg_stat_statements" || name == "pg_stat_statements_info" {
        return Some(Guard::Refuse {
            reason: "pg_stat_statements keeps other sessions' statement text, literals included",
        });
    }
    if schema != "pg_catalog" {
        return None;
    }
    match name {
        "pg_statistic" | "pg_stats" | "pg_stats_ext" | "pg_stats_ext_exprs" | "pg_statistic_ext_data" => {
            Some(Guard::Refuse { reason: STATS })
        }
        "pg_largeobject" => Some(Guard::Refuse {
            reason: "large objects are data pgveil cannot mask",
        }),
        "pg_stat_activity" => Some(Guard::Refuse {
            reason: "pg_stat_activity shows other sessions' statement text, literals included",
        }),
        "pg_prepared_xacts" | "pg_cursors" | "pg_prepared_statements" => None,
        // Counters of every kind (rows inserted, tuples live, blocks read) count rows a row
        // filter hides and time activity on hidden data.
        n if n.starts_with("pg_stat_") || n.starts_with("pg_statio_") => Some(Guard::Refuse {
            reason: "activity statistics count rows and reads that pgveil hides",
        }),
        "pg_class" => Some(Guard::Rewrite {
            constants: &[
                ("relpages", "0::integer"),
                ("reltuples", "(-1)::real"),
                ("relallvisible", "0::integer"),
            ],
            row_filter: None,
        }),
        // Custom (dotted) settings are where applications keep secrets and tenant keys.
        "pg_settings" => Some(Guard::Rewrite {
            constants: &[],
            row_filter: Some("strpos(name, '.') = 0"),
        }),
        "pg_file_settings" | "pg_hba_file_rules" | "pg_ident_file_mappings" => Some(Guard::Refuse {
            reason: "server configuration files can hold secrets",
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statistics_and_activity_are_refused() {
        for n in [
            "pg_statistic",
            "pg_stats",
            "pg_stats_ext",
            "pg_stat_activity",
            "pg_stat_user_tables",
        ] {
            assert!(
                matches!(guard_for("pg_catalog", n), Some(Guard::Refuse { .. })),
                "{n}"
            );
        }
        assert!(matches!(
            guard_for("public", "pg_stat_statements"),
            Some(Guard::Refuse { .. })
        ));
        assert!(matches!(
            guard_for("pg_toast", "pg_toast_16384"),
            Some(Guard::Refuse { .. })
        ));
    }

    #[test]
    fn describe_catalogs_pass_or_are_rewritten() {
        for n in [
            "pg_attribute",
            "pg_namespace",
            "pg_type",
            "pg_index",
            "pg_constraint",
            "pg_description",
        ] {
            assert_eq!(guard_for("pg_catalog", n), None, "{n}");
        }
        assert!(matches!(
            guard_for("pg_catalog", "pg_class"),
            Some(Guard::Rewrite { .. })
        ));
        // Extended statistics definitions (psql \d) pass; their data does not.
        assert_eq!(guard_for("pg_catalog", "pg_statistic_ext"), None);
        assert!(matches!(
            guard_for("pg_catalog", "pg_statistic_ext_data"),
            Some(Guard::Refuse { .. })
        ));
        // A user table that happens to be called pg_class is not a catalog.
        assert_eq!(guard_for("public", "pg_class"), None);
    }
}
