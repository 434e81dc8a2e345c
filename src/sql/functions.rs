//! Which functions a restricted role may call.
//!
//! The rewrite only protects what the statement reads through relations it names. A function
//! can read anything: a user function can `SELECT salary FROM employees` inside, a built-in can
//! read files (`pg_read_file`), run SQL text (`query_to_xml`), reveal sizes of hidden values
//! (`pg_column_size`), change the session's name resolution (`set_config('search_path', ..)`)
//! or write (`nextval`). So:
//! - a call qualified with a schema other than `pg_catalog`/`information_schema` is refused
//!   unless a rule allows that function (`RolePlan::allowed_functions`);
//! - an unqualified call must name a function that exists in `pg_catalog` and in no schema of
//!   the search path (a same-named user function could win overload resolution), unless the
//!   user function is allowed;
//! - built-ins in [`denied_builtin`] are refused wherever they are found.
//!
//! Invariant: when pgveil cannot tell what a name calls, it refuses (fail closed).
use super::{Context, Refusal};

/// Why a built-in is refused, or `None` when it reads no data or state beyond its arguments.
pub(crate) fn denied_builtin(name: &str) -> Option<&'static str> {
    const FILES: &str = "it reads server files";
    const SQL_TEXT: &str = "it runs SQL text or reads a relation pgveil cannot mask";
    const SIZE: &str = "sizes reveal the length of hidden values";
    const STATE: &str = "it reads or changes server state outside pgveil's masks";
    const WRITES: &str = "it writes";
    // Releases the session's own advisory locks (asyncpg's pool reset sends it); taking
    // locks stays refused.
    if name == "pg_advisory_unlock_all" {
        return None;
    }
    let exact = match name {
        "pg_read_file" | "pg_read_binary_file" | "pg_stat_file" | "pg_current_logfile" => Some(FILES),
        "ts_stat" | "ts_rewrite" | "pg_mcv_list_items" | "pg_get_wal_record_info" => Some(SQL_TEXT),
        "pg_relation_size"
        | "pg_total_relation_size"
        | "pg_table_size"
        | "pg_indexes_size"
        | "pg_database_size"
        | "pg_tablespace_size"
        | "pg_column_size"
        | "pg_column_compression"
        | "pg_column_toast_chunk_id" => Some(SIZE),
        "set_config"
        | "pg_notify"
        | "pg_cancel_backend"
        | "pg_terminate_backend"
        | "pg_reload_conf"
        | "pg_rotate_logfile"
        | "pg_switch_wal"
        | "pg_promote"
        | "pg_create_restore_point"
        | "pg_import_system_collations"
        | "pg_nextoid"
        | "pg_truncate_visibility_map"
        | "gin_clean_pending_list"
        | "pg_show_all_settings"
        | "pg_show_all_file_settings"
        | "pg_hba_file_rules"
        | "pg_ident_file_mappings"
        | "pg_sequence_last_value" => Some(STATE),
        "nextval" | "setval" | "loread" | "lowrite" => Some(WRITES),
        _ => None,
    };
    if exact.is_some() {
        return exact;
    }
    const PREFIXES: &[(&str, &str)] = &[
        ("pg_ls_", FILES),
        ("pg_read_", FILES),
        ("pg_file_", FILES),
        ("pg_logdir_", FILES),
        ("lo_", SQL_TEXT),
        ("dblink", SQL_TEXT),
        ("pg_stat_", STATE),
        ("pg_statio_", STATE),
        ("pg_advisory", STATE),
        ("pg_try_advisory", STATE),
        ("pg_logical_", SQL_TEXT),
        ("pg_replication_", STATE),
        ("pg_create_", STATE),
        ("pg_drop_", STATE),
        ("pg_copy_", STATE),
        ("pg_backup_", STATE),
        ("pg_start_backup", STATE),
        ("pg_stop_backup", STATE),
        ("pg_wal_replay_", STATE),
        ("pg_log_", STATE),
        ("pg_sync_", STATE),
        ("binary_upgrade_", STATE),
        ("brin_summarize", WRITES),
        ("brin_desummarize", WRITES),
        ("pg_visibility", FILES),
        ("pg_buffercache", STATE),
    ];
    if let Some((_, why)) = PREFIXES.iter().find(|(p, _)| name.starts_with(p)) {
        return Some(why);
    }
    // query_to_xml, table_to_xml, cursor_to_xml, schema_to_xmlschema, database_to_xml...
    if name.contains("_to_xml") {
        return Some(SQL_TEXT);
    }
    None
}

/// Judge one call by its (already case-folded) name parts.
/// `search_path` is the session's, or empty inside view definitions (printed with every
/// non-`pg_catalog` name qualified).
pub(crate) fn check_call(ctx: &Context, search_path: &[String], names: &[String]) -> Result<(), Refusal> {
    let (schema, name) = match names {
        [n] => (None, n.as_str()),
        [s, n] => (Some(s.as_str()), n.as_str()),
        [_db, s, n] => (Some(s.as_str()), n.as_str()),
        _ => {
            return Err(Refusal::new(
                "42601",
                format!("improper qualified function name: {}", names.join(".")),
                None,
            ))
        }
    };
    let shown = names.join(".");
    if let Some(why) = denied_builtin(name) {
        return Err(Refusal::new(
            "42501",
            format!("permission denied for function {shown}"),
            Some(format!("pgveil refuses {name} for restricted roles: {why}")),
        ));
    }
    let allowed = |s: &str| ctx.plan.allowed_functions.contains(&format!("{s}.{name}"));
    match schema {
        Some("pg_catalog") | Some("information_schema") => Ok(()),
        Some(s) if allowed(s) => Ok(()),
        Some(_) => Err(user_function(&shown)),
        None => {
            let in_path: Vec<&str> = search_path
                .iter()
                .map(String::as_str)
                .filter(|s| *s != "pg_catalog" && function_exists(ctx, s, name))
                .collect();
            if let Some(s) = in_path.iter().find(|s| !allowed(s)) {
                return Err(user_function(&format!("{s}.{name}")));
            }
            if !in_path.is_empty() || function_exists(ctx, "pg_catalog", name) {
                Ok(())
            } else {
                Err(Refusal::new(
                    "42501",
                    format!("permission denied for function {name}: not a known built-in function"),
                    Some(
                        "pgveil lets restricted roles call built-in functions and the user \
                         functions a rule allows"
                            .into(),
                    ),
                ))
            }
        }
    }
}

fn user_function(shown: &str) -> Refusal {
    Refusal::new(
        "42501",
        format!("permission denied for function {shown}"),
        Some(
            "user functions can read tables pgveil does not see; a rule can allow it \
             (allowed_functions)"
                .into(),
        ),
    )
}

fn function_exists(ctx: &Context, schema: &str, name: &str) -> bool {
    ctx.catalog.has_function(schema, name)
}

#[cfg(test)]
mod tests {
    use super::denied_builtin;

    #[test]
    fn denylist_covers_families() {
        for f in [
            "pg_read_file",
            "pg_ls_dir",
            "lo_get",
            "lo_import",
            "dblink_exec",
            "query_to_xml",
            "table_to_xmlschema",
            "cursor_to_xml",
            "database_to_xml",
            "pg_column_size",
            "pg_total_relation_size",
            "set_config",
            "pg_advisory_lock",
            "pg_try_advisory_lock",
            "pg_advisory_xact_lock",
            "pg_advisory_unlock",
            "nextval",
            "setval",
            "pg_stat_get_live_tuples",
            "pg_logical_slot_get_changes",
            "ts_stat",
            "pg_terminate_backend",
            "pg_reload_conf",
            "pg_notify",
        ] {
            assert!(denied_builtin(f).is_some(), "{f} should be denied");
        }
        for f in [
            "upper",
            "count",
            "pg_get_viewdef",
            "format_type",
            "pg_sleep",
            "now",
            "xpath",
            "pg_table_is_visible",
            "current_setting",
            "txid_current",
            "pg_size_pretty",
            "pg_advisory_unlock_all",
        ] {
            assert!(denied_builtin(f).is_none(), "{f} should pass");
        }
    }
}
