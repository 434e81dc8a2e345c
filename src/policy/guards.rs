//! Built-in protections of catalog relations, applied for restricted roles on top of the
//! DBA's rules.
//!
//! PostgreSQL's catalogs hold derived copies of table data: `pg_statistic` keeps most common
//! values and histogram bounds of every analysed column, `pg_stats` shows them, extended
//! statistics keep MCV lists, `pg_stat_activity` shows other sessions' statement text (with
//! its literals), `pg_largeobject` holds raw data, and `pg_class.reltuples`/`relpages` count
//! rows a row filter hides; `pg_authid`/`pg_shadow` hold password hashes and user mappings and
//! subscriptions hold connection credentials (readable if the upstream account is a
//! superuser). A masking proxy that let these through would unmask by the back door, so every
//! reference to such a relation is judged here.
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
    /// Read the relation through a subquery where every column except those listed reads as
    /// NULL of its type (activity counters: the row identity passes, the numbers do not).
    Nulls { keep: &'static [&'static str] },
}

/// The identity columns of the per-table statistics views (`pg_stat_*_tables`,
/// `pg_statio_*_tables`): tools such as Metabase join them to list tables.
const TABLE_IDENTITY: &[&str] = &["relid", "schemaname", "relname"];

/// Catalogs holding credentials (password hashes, user mapping options, subscription
/// connection strings): readable by the upstream account if it is a superuser.
const CREDENTIALS: &str = "it holds credentials (password hashes or connection options); pgveil never \
                           lets restricted roles read them";

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
        "pg_authid" | "pg_shadow" | "pg_user_mapping" | "pg_user_mappings" | "pg_subscription" => {
            Some(Guard::Refuse { reason: CREDENTIALS })
        }
        // Per-table counters count rows a row filter hides (n_live_tup) and time activity on
        // hidden data; which tables exist is in pg_class anyway, so only the identity passes.
        "pg_stat_all_tables"
        | "pg_stat_user_tables"
        | "pg_stat_sys_tables"
        | "pg_stat_xact_all_tables"
        | "pg_stat_xact_user_tables"
        | "pg_stat_xact_sys_tables"
        | "pg_statio_all_tables"
        | "pg_statio_user_tables"
        | "pg_statio_sys_tables" => Some(Guard::Nulls { keep: TABLE_IDENTITY }),
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
            "pg_stat_user_indexes",
            "pg_stat_statements",
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
    fn credential_and_config_catalogs_are_refused() {
        for n in [
            "pg_authid",
            "pg_shadow",
            "pg_user_mapping",
            "pg_user_mappings",
            "pg_subscription",
            "pg_hba_file_rules",
            "pg_ident_file_mappings",
            "pg_file_settings",
        ] {
            assert!(
                matches!(guard_for("pg_catalog", n), Some(Guard::Refuse { .. })),
                "{n}"
            );
        }
        // pg_roles and pg_user show passwords as ******** and stay readable (psql \du).
        assert_eq!(guard_for("pg_catalog", "pg_roles"), None);
        assert_eq!(guard_for("pg_catalog", "pg_user"), None);
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
        for n in [
            "pg_stat_user_tables",
            "pg_stat_all_tables",
            "pg_statio_user_tables",
        ] {
            assert!(
                matches!(guard_for("pg_catalog", n), Some(Guard::Nulls { keep }) if keep.contains(&"relname")),
                "{n}"
            );
        }
        // A user table that happens to be called pg_class is not a catalog.
        assert_eq!(guard_for("public", "pg_class"), None);
    }
}
