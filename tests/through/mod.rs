//! What a client of pgveil reads when an analysed statement runs directly on PostgreSQL:
//! the rows of the forwarded text, with pgveil's own masks (`StatementInfo::proxy_masks`)
//! applied by position as the session applies them. Shared by the rewrite-level tests
//! (`sql_pg15.rs`, `sql_noninterference.rs`), which run the analyser without the proxy.
use pgveil::mask::{Format, Masked};
use pgveil::sql::Analysis;
use tokio_postgres::{Client, SimpleQueryMessage};

/// All rows of every statement of `a.sql` run as one Simple Query, as text, masked as the
/// session would mask them.
pub async fn rows_through(
    client: &Client,
    a: &Analysis,
) -> Result<Vec<Vec<Option<String>>>, tokio_postgres::Error> {
    let mut out = Vec::new();
    let mut stmt = 0;
    let mut buf = Vec::new();
    for m in client.simple_query(&a.sql).await? {
        match m {
            SimpleQueryMessage::Row(r) => {
                let masks = a
                    .statements
                    .get(stmt)
                    .map(|s| s.proxy_masks.as_slice())
                    .unwrap_or(&[]);
                out.push(
                    (0..r.len())
                        .map(|i| match (r.get(i), masks.iter().find(|(p, _)| *p == i)) {
                            (Some(v), Some((_, m))) => match m.apply(v.as_bytes(), Format::Text, &mut buf) {
                                Masked::Value => Some(String::from_utf8_lossy(&buf).into_owned()),
                                Masked::Null => None,
                            },
                            (v, _) => v.map(str::to_string),
                        })
                        .collect(),
                );
            }
            SimpleQueryMessage::CommandComplete(_) => stmt += 1,
            _ => {}
        }
    }
    Ok(out)
}
