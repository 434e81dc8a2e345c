//! Which `SET`/`RESET` a restricted role may run.
//!
//! Some settings change how pgveil must read later statements (`search_path`: name
//! resolution; `standard_conforming_strings`, `backslash_quote`, `client_encoding`: how text
//! is lexed), who the session is (`role`, `session_authorization`), or what the database
//! enforces (`row_security`, custom settings read by row-security policies, limits pgveil set).
//! Those are refused; the allow-list below holds settings that only affect formatting,
//! planning or timeouts. Unknown names are refused (fail closed). `RESET ALL` passes: it
//! returns to the session's start values, which pgveil fixes (see `check_set`).
use pg_query::protobuf::{self, a_const, node::Node as N};

use super::Refusal;
use crate::policy::Limits;

/// Settings a restricted role may change.
const SAFE: &[&str] = &[
    "application_name",
    "extra_float_digits",
    "client_min_messages",
    "timezone",
    "datestyle",
    "intervalstyle",
    "bytea_output",
    "lock_timeout",
    "idle_in_transaction_session_timeout",
    "idle_session_timeout",
    "work_mem",
    "hash_mem_multiplier",
    "maintenance_work_mem",
    "temp_buffers",
    "default_transaction_isolation",
    "transaction_isolation",
    "default_transaction_read_only",
    "transaction_read_only",
    "default_transaction_deferrable",
    "transaction_deferrable",
    "lc_monetary",
    "lc_numeric",
    "lc_time",
    "lc_messages",
    "xmloption",
    "xmlbinary",
    "escape_string_warning",
    "plan_cache_mode",
    "random_page_cost",
    "seq_page_cost",
    "cpu_tuple_cost",
    "cpu_index_tuple_cost",
    "cpu_operator_cost",
    "effective_cache_size",
    "effective_io_concurrency",
    "from_collapse_limit",
    "join_collapse_limit",
    "max_parallel_workers_per_gather",
    "parallel_setup_cost",
    "parallel_tuple_cost",
    "min_parallel_table_scan_size",
    "min_parallel_index_scan_size",
    "constraint_exclusion",
    "cursor_tuple_fraction",
    "default_text_search_config",
    "synchronize_seqscans",
    "timezone_abbreviations",
    "quote_all_identifiers",
    "array_nulls",
    "gin_fuzzy_search_limit",
    "geqo",
    "geqo_threshold",
    "geqo_effort",
    "jit",
    "jit_above_cost",
    "jit_inline_above_cost",
    "jit_optimize_above_cost",
    "debug_parallel_query",
    "force_parallel_mode",
];

fn refuse(name: &str, why: &str) -> Refusal {
    Refusal::new(
        "42501",
        format!("permission denied to set parameter \"{name}\" for restricted roles"),
        Some(format!("pgveil: {why}")),
    )
}

fn first_string_arg(s: &protobuf::VariableSetStmt) -> Option<String> {
    match s.args.first().and_then(|a| a.node.as_ref()) {
        Some(N::AConst(c)) => match &c.val {
            Some(a_const::Val::Sval(v)) => Some(v.sval.clone()),
            _ => None,
        },
        _ => None,
    }
}

pub(crate) fn check_set(limits: &Limits, s: &protobuf::VariableSetStmt) -> Result<(), Refusal> {
    use protobuf::VariableSetKind as K;
    if s.kind == K::VarResetAll as i32 {
        // RESET ALL returns every setting to its session start value (asyncpg's pool reset
        // sends it). What pgveil relies on is fixed at session start and cannot be changed by
        // a restricted role afterwards: search_path comes from the role's defaults (SET and
        // set_config of it are refused), statement_timeout is a startup parameter pgveil
        // sets, standard_conforming_strings is checked at startup. So resetting only undoes
        // what the listed safe settings changed.
        return Ok(());
    }
    let name = s.name.to_lowercase();
    if s.kind == K::VarSetMulti as i32 {
        // SET TRANSACTION ..., SET SESSION CHARACTERISTICS AS TRANSACTION ...,
        // SET TRANSACTION SNAPSHOT: isolation and read-only modes only.
        return match name.as_str() {
            "transaction" | "session characteristics" | "transaction snapshot" => Ok(()),
            _ => Err(refuse(&s.name, "not a setting restricted roles may change")),
        };
    }
    match name.as_str() {
        "search_path" => Err(refuse(
            &s.name,
            "name resolution must stay as pgveil sees it; qualify names with their schema instead",
        )),
        "role" | "session_authorization" => Err(refuse(&s.name, "the session's identity decides its rules")),
        "standard_conforming_strings" | "backslash_quote" => Err(refuse(
            &s.name,
            "it changes how statements are lexed; pgveil parses with standard_conforming_strings on",
        )),
        "client_encoding" => {
            let v = first_string_arg(s)
                .unwrap_or_default()
                .to_uppercase()
                .replace(['-', '_'], "");
            if s.kind == K::VarSetValue as i32 && (v == "UTF8" || v == "UNICODE") {
                Ok(())
            } else {
                Err(refuse(&s.name, "pgveil reads statements as UTF8"))
            }
        }
        "statement_timeout" if limits.statement_timeout_ms.is_some() => Err(refuse(
            &s.name,
            "the role's statement timeout is set by its agreement",
        )),
        "statement_timeout" => Ok(()),
        n if n.contains('.') => Err(refuse(
            &s.name,
            "custom settings can steer row-security policies and hold secrets",
        )),
        n if n.starts_with("enable_") => Ok(()),
        n if SAFE.contains(&n) => Ok(()),
        _ => Err(refuse(&s.name, "not a setting restricted roles may change")),
    }
}
