//! Non-interference: two databases equal in everything the demo's `analyst` may see and
//! different in everything hidden (see `tests/support/mod.rs`) must give identical answers
//! through pgveil, for every attack of `tests/noninterference/attacks.sql`, in the simple
//! protocol and the extended protocol with text and with binary results (the latter also without
//! Describe, as a client with a cached statement sends it): same rows in the same
//! order, same command tags, same errors (SQLSTATE, message, detail, hint and every other
//! field), same notices. Any difference is a leak of hidden data.
//!
//! Each attack is also run directly (superuser, no pgveil) against both twins: one that gives
//! the same answer there tests nothing; the test reports how many differ directly and lists
//! those that do not, so the corpus can be kept sharp. Two self-checks keep the harness honest:
//! a query of hidden data differs directly in every mode, and most sharp attacks sent through
//! pgveil as the unrestricted `dba` are flagged by the very comparison used for the analyst.
//! A second corpus of hand-built protocol sequences (FunctionCall, named statements and
//! portals with row limits, pipelines with a refused statement, Describe of a statement with
//! parameters, a Query inside an extended batch...) is compared the same way.
//!
//! Every attack runs inside `BEGIN` ... `ROLLBACK`, so nothing it does survives it (and cursors
//! work); when one step of a multi-step attack fails, the transaction is restarted so that the
//! next step is still judged (the SELECT after a refused SET). Attacks that could change
//! session state get fresh connections.
//!
//! `PGVEIL_TEST_DUMP=1 cargo test --test noninterference -- --nocapture` prints what came back for
//! every statement.
#[path = "support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::fmt::Write as _;

use bytes::BytesMut;
use support::{first_error, has_error, msg, Conn, Mode, Transcript, World, TWINS};

/// One attack of the corpus.
#[derive(Debug, Clone)]
struct Attack {
    shape: String,
    /// Every statement of the group must be refused (or rejected) in every mode.
    must_refuse: bool,
    /// Every statement of the group must be answered (reads of masked data that the contract
    /// promises), so that refusing everything cannot pass for non-interference.
    must_answer: bool,
    /// Statements run one after the other on one session.
    steps: Vec<String>,
    line: usize,
}

impl Attack {
    fn text(&self) -> String {
        self.steps.join(" \\then ")
    }

    /// Attacks whose effects could outlive the transaction get fresh sessions.
    fn stateful(&self) -> bool {
        let t = self.text().to_ascii_uppercase();
        [
            "PREPARE",
            "SET ",
            "SET_CONFIG",
            "RESET",
            "DISCARD",
            "DECLARE",
            "CREATE",
            "LISTEN",
            "DEALLOCATE",
            "LOAD",
        ]
        .iter()
        .any(|k| t.contains(k))
    }
}

fn corpus() -> Vec<Attack> {
    let text = include_str!("noninterference/attacks.sql");
    let mut attacks = Vec::new();
    let mut shape = String::new();
    let mut must_refuse = false;
    let mut must_answer = false;
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("-- shape:") {
            let rest = rest.trim();
            must_refuse = rest.ends_with("[refused]");
            must_answer = rest.ends_with("[answered]");
            shape = rest
                .trim_end_matches("[refused]")
                .trim_end_matches("[answered]")
                .trim()
                .to_string();
            continue;
        }
        if line.is_empty() || line.starts_with("--") {
            continue;
        }
        assert!(
            !shape.is_empty(),
            "attacks.sql line {}: attack before any `-- shape:` header",
            i + 1
        );
        let steps = line
            .split("\\then")
            .map(|s| s.trim().replace(" ⏎ ", "\n"))
            .filter(|s| !s.is_empty())
            .collect();
        attacks.push(Attack {
            shape: shape.clone(),
            must_refuse,
            must_answer,
            steps,
            line: i + 1,
        });
    }
    attacks
}

/// Runs `attack` on `conn` in `mode` inside a transaction that is rolled back.
async fn run_attack(conn: &mut Conn, mode: Mode, attack: &Attack) -> Transcript {
    let begin = conn.run(Mode::Simple, "BEGIN").await;
    assert!(!has_error(&begin), "BEGIN failed: {begin:?}");
    let mut t = Vec::new();
    for (i, step) in attack.steps.iter().enumerate() {
        if i > 0 {
            t.push("--- next step".into());
        }
        let out = conn.run(mode, step).await;
        let failed = out.last().is_some_and(|l| l == "Z E");
        t.extend(out);
        if failed && conn.alive {
            // A refused step aborts the transaction; the next step must still be judged on
            // its own (e.g. the SELECT after a refused SET), so start a new transaction.
            let _ = conn.run(Mode::Simple, "ROLLBACK").await;
            let _ = conn.run(Mode::Simple, "BEGIN").await;
        }
    }
    if conn.alive {
        let _ = conn.run(Mode::Simple, "ROLLBACK").await;
    }
    t
}

/// A pool of one connection per mode, replaced when an attack may have changed its session.
struct Sessions<F> {
    open: F,
    conns: Vec<Option<Conn>>,
}

impl<F, Fut> Sessions<F>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Conn>,
{
    fn new(open: F) -> Self {
        Sessions {
            open,
            conns: (0..Mode::ALL.len()).map(|_| None).collect(),
        }
    }

    async fn run(&mut self, slot: usize, mode: Mode, attack: &Attack) -> Transcript {
        // A session is closed (and the server has let it go) before another one opens: the
        // demo analyst may hold 5 sessions, and this harness holds 4 (one per mode).
        let mut conn = match self.conns[slot].take() {
            Some(c) if c.alive && !attack.stateful() => c,
            old => {
                if let Some(c) = old {
                    c.close().await;
                }
                (self.open)().await
            }
        };
        let t = run_attack(&mut conn, mode, attack).await;
        if conn.alive && !attack.stateful() {
            self.conns[slot] = Some(conn);
        } else {
            conn.close().await;
        }
        t
    }
}

/// The first line where two transcripts differ, for the report.
fn first_difference(a: &[String], b: &[String]) -> String {
    for i in 0..a.len().max(b.len()) {
        let (x, y) = (a.get(i), b.get(i));
        if x != y {
            let cut = |s: Option<&String>| match s {
                None => "<nothing>".to_string(),
                Some(s) if s.chars().count() > 300 => {
                    format!("{}...", s.chars().take(300).collect::<String>())
                }
                Some(s) => s.clone(),
            };
            return format!("message {i}:\n      A: {}\n      B: {}", cut(x), cut(y));
        }
    }
    "identical".into()
}

#[derive(Default)]
struct ShapeStats {
    attacks: usize,
    answered: usize,
    refused: usize,
    differ_directly: usize,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twins_are_indistinguishable_through_pgveil() {
    let started = std::time::Instant::now();
    let attacks = corpus();
    assert!(
        attacks.len() >= 150,
        "the corpus must hold at least 150 attacks, has {}",
        attacks.len()
    );

    let world = World::start().await;
    eprintln!(
        "twins (hidden parts that differ, visible rows):\n{}",
        world.twin_report
    );
    eprintln!("setup took {:?}", started.elapsed());

    harness_sees_differences(&world).await;

    let w = &world;
    let mut leaks = Vec::new();
    let mut not_refused = Vec::new();
    let mut same_directly = Vec::new();
    let mut stats: BTreeMap<String, ShapeStats> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    // Attacks that tell the twins apart directly, for the self-check of the harness.
    let mut sharp: Vec<Attack> = Vec::new();

    // One pool of sessions per twin through pgveil, and one direct session per twin.
    let mut through: Vec<_> = (0..2).map(|i| Sessions::new(move || w.analyst(i))).collect();
    let mut direct: Vec<_> = (0..2)
        .map(|i| Sessions::new(move || w.direct(TWINS[i])))
        .collect();

    for attack in &attacks {
        if !order.contains(&attack.shape) {
            order.push(attack.shape.clone());
        }
        let mut answered = true;
        for (slot, mode) in Mode::ALL.into_iter().enumerate() {
            let (pa, pb) = through.split_at_mut(1);
            let (ta, tb) = tokio::join!(pa[0].run(slot, mode, attack), pb[0].run(slot, mode, attack));
            if ta != tb {
                leaks.push(format!(
                    "LEAK line {} [{}] mode {}: {}\n    {}",
                    attack.line,
                    attack.shape,
                    mode.name(),
                    attack.text(),
                    first_difference(&ta, &tb)
                ));
            }
            if mode == Mode::Simple && std::env::var_os("PGVEIL_TEST_DUMP").is_some() {
                let head: Vec<&str> = ta.iter().take(4).map(|l| &l[..l.len().min(200)]).collect();
                eprintln!(
                    "[{}] {} ({} messages)\n    {}",
                    attack.line,
                    attack.text(),
                    ta.len(),
                    head.join("\n    ")
                );
            }
            let refused = has_error(&ta);
            if attack.must_answer && refused {
                not_refused.push(format!(
                    "line {} mode {}: must be answered, got {}",
                    attack.line,
                    mode.name(),
                    first_error(&ta).unwrap_or("?")
                ));
            }
            if attack.must_refuse && !refused {
                not_refused.push(format!(
                    "line {} mode {}: {}",
                    attack.line,
                    mode.name(),
                    attack.text()
                ));
            }
            if mode == Mode::Simple {
                answered = !refused;
            }
            if ta.iter().any(|l| l == "EOF" || l == "DEAD") {
                leaks.push(format!(
                    "BROKEN SESSION line {} mode {}: {} -> {:?}",
                    attack.line,
                    mode.name(),
                    attack.text(),
                    ta.last()
                ));
            }
        }
        let (da, db) = direct.split_at_mut(1);
        let (xa, xb) = tokio::join!(
            da[0].run(0, Mode::Simple, attack),
            db[0].run(0, Mode::Simple, attack)
        );
        let differs = xa != xb;
        if differs && sharp.len() < 40 {
            sharp.push(attack.clone());
        }
        if !differs {
            same_directly.push(format!(
                "line {} [{}]: {} => {}",
                attack.line,
                attack.shape,
                attack.text(),
                first_error(&xa).unwrap_or("same rows")
            ));
        }
        let s = stats.entry(attack.shape.clone()).or_default();
        s.attacks += 1;
        if answered {
            s.answered += 1;
        } else {
            s.refused += 1;
        }
        if differs {
            s.differ_directly += 1;
        }
    }

    // Self-check: through pgveil as the unrestricted `dba`, the same comparison must flag
    // (almost) every sharp attack, so a real leak through pgveil would not go unnoticed.
    let mut dba: Vec<_> = (0..2)
        .map(|i| {
            Sessions::new(move || async move {
                let addr = w.proxies[i].addr.to_string();
                Conn::connect(&addr, "dba", "dba", TWINS[i])
                    .await
                    .unwrap_or_else(|e| panic!("dba login: {e}"))
            })
        })
        .collect();
    let mut flagged = 0;
    for attack in &sharp {
        let (pa, pb) = dba.split_at_mut(1);
        let (ta, tb) = tokio::join!(
            pa[0].run(0, Mode::ExtendedBinary, attack),
            pb[0].run(0, Mode::ExtendedBinary, attack)
        );
        if ta != tb {
            flagged += 1;
        }
    }
    eprintln!(
        "self-check: {flagged} of {} sharp attacks differ through pgveil for the unrestricted dba",
        sharp.len()
    );
    assert!(
        flagged * 10 >= sharp.len() * 9,
        "the comparison through pgveil flags only {flagged} of {} attacks for an unrestricted role",
        sharp.len()
    );

    let mut table = String::new();
    writeln!(
        table,
        "{:<28} | {:>7} | {:>8} | {:>16} | {:>15}",
        "shape", "attacks", "answered", "refused-or-error", "differ-directly"
    )
    .ok();
    let mut total = ShapeStats::default();
    for shape in &order {
        let s = &stats[shape];
        writeln!(
            table,
            "{:<28} | {:>7} | {:>8} | {:>16} | {:>15}",
            shape, s.attacks, s.answered, s.refused, s.differ_directly
        )
        .ok();
        total.attacks += s.attacks;
        total.answered += s.answered;
        total.refused += s.refused;
        total.differ_directly += s.differ_directly;
    }
    writeln!(
        table,
        "{:<28} | {:>7} | {:>8} | {:>16} | {:>15}",
        "TOTAL", total.attacks, total.answered, total.refused, total.differ_directly
    )
    .ok();
    eprintln!("\n{table}");
    eprintln!(
        "{} attacks give the same answer directly on both twins (they test refusal or fidelity only):",
        same_directly.len()
    );
    for s in &same_directly {
        eprintln!("  {s}");
    }
    eprintln!(
        "took {:?} for {} attacks x {} modes x 2 twins + direct runs",
        started.elapsed(),
        attacks.len(),
        Mode::ALL.len()
    );

    // Protocol-level attacks: the same comparison for hand-built message sequences.
    let (proto_leaks, proto_report) = protocol_attacks(&world).await;
    eprintln!("{proto_report}");
    leaks.extend(proto_leaks);

    // Most attacks must be sharp: they tell the twins apart when pgveil is not in the way.
    assert!(
        total.differ_directly * 10 >= total.attacks * 7,
        "only {} of {} attacks differ directly: the twins or the corpus are too weak",
        total.differ_directly,
        total.attacks
    );
    assert!(
        not_refused.is_empty(),
        "{} statements were answered that must be refused, or refused that must be answered:\n{}",
        not_refused.len(),
        not_refused.join("\n")
    );
    assert!(
        leaks.is_empty(),
        "{} differences between the twins through pgveil:\n{}",
        leaks.len(),
        leaks.join("\n")
    );
}

/// The harness itself can see a difference when there is one: a query that reads hidden data
/// tells the twins apart directly in every mode, while through pgveil it is answered, masked,
/// and the same on both.
async fn harness_sees_differences(world: &World) {
    let q = "SELECT phone, id_number FROM customers ORDER BY id";
    let mut a = world.direct(TWINS[0]).await;
    let mut b = world.direct(TWINS[1]).await;
    for mode in Mode::ALL {
        assert_ne!(
            a.run(mode, q).await,
            b.run(mode, q).await,
            "direct {} must differ",
            mode.name()
        );
    }
    let mut a = world.analyst(0).await;
    let mut b = world.analyst(1).await;
    let ta = a.run(Mode::Simple, q).await;
    assert!(!has_error(&ta), "the analyst can read masked phones: {ta:?}");
    assert!(
        ta.iter().any(|l| l.contains("****")),
        "phones come back masked: {ta:?}"
    );
    assert_eq!(ta, b.run(Mode::Simple, q).await);
    tokio::join!(a.close(), b.close());
}

/// A protocol-level attack: frontend messages built by hand, and how many ReadyForQuery
/// messages they end with.
struct ProtocolAttack {
    name: &'static str,
    bytes: BytesMut,
    readies: usize,
    /// Format for values that arrive without a RowDescription.
    format: i16,
}

/// The OID of a function, from the template (OIDs are the same in every database).
async fn function_oid(world: &World, signature: &str) -> u32 {
    let mut c = world.direct(TWINS[0]).await;
    let t = c
        .run(Mode::Simple, &format!("SELECT '{signature}'::regprocedure::oid"))
        .await;
    t.iter()
        .find_map(|l| l.strip_prefix("D \"").and_then(|v| v.strip_suffix('"')))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("oid of {signature}: {t:?}"))
}

async fn protocol_corpus(world: &World) -> Vec<ProtocolAttack> {
    let query_to_xml = function_oid(world, "pg_catalog.query_to_xml(text,boolean,boolean,text)").await;
    let live_tuples = function_oid(world, "pg_catalog.pg_stat_get_live_tuples(oid)").await;
    let upper = function_oid(world, "pg_catalog.upper(text)").await;
    let mut v = Vec::new();
    let mut add = |name: &'static str, readies: usize, format: i16, build: &dyn Fn(&mut BytesMut)| {
        let mut bytes = BytesMut::new();
        build(&mut bytes);
        v.push(ProtocolAttack {
            name,
            bytes,
            readies,
            format,
        });
    };
    add("FunctionCall query_to_xml", 1, 0, &|b| {
        msg::function_call(
            b,
            query_to_xml,
            &[
                Some("SELECT string_agg(phone, ',' ORDER BY id) FROM customers"),
                Some("t"),
                Some("f"),
                Some(""),
            ],
            0,
        )
    });
    add("FunctionCall pg_stat_get_live_tuples", 1, 1, &|b| {
        msg::function_call(b, live_tuples, &[Some("16385")], 1)
    });
    add("FunctionCall upper (harmless built-in)", 1, 0, &|b| {
        msg::function_call(b, upper, &[Some("abc")], 0)
    });
    add("named statement, portal resumed with row limits", 2, 0, &|b| {
        msg::parse(
            b,
            "s1",
            "SELECT id, phone, birth_date FROM customers ORDER BY id",
            &[],
        );
        msg::bind(b, "p1", "s1", &[], 0);
        msg::execute(b, "p1", 5);
        msg::execute(b, "p1", 5);
        msg::sync(b);
        msg::close(b, b'S', "s1");
        msg::parse(b, "s1", "SELECT id_number FROM customers ORDER BY id", &[]);
        msg::bind(b, "p2", "s1", &[], 1);
        msg::execute(b, "p2", 3);
        msg::sync(b);
    });
    add("refused statement inside a pipeline", 2, 0, &|b| {
        msg::parse(b, "", "SELECT salary FROM employees", &[]);
        msg::bind(b, "", "", &[], 0);
        msg::execute(b, "", 0);
        msg::parse(b, "", "SELECT phone FROM customers ORDER BY id", &[]);
        msg::bind(b, "", "", &[], 0);
        msg::execute(b, "", 0);
        msg::sync(b);
        msg::parse(b, "", "SELECT email FROM customers ORDER BY id", &[]);
        msg::bind(b, "", "", &[], 1);
        msg::describe(b, b'P', "");
        msg::execute(b, "", 0);
        msg::sync(b);
    });
    add(
        "Describe statement, then binary Bind with a parameter",
        1,
        1,
        &|b| {
            msg::parse(
                b,
                "s5",
                "SELECT id, birth_date, bank_card, notes FROM customers WHERE id > $1 ORDER BY id",
                &[23],
            );
            msg::describe(b, b'S', "s5");
            msg::bind(b, "", "s5", &[Some("10")], 1);
            msg::execute(b, "", 0);
            msg::sync(b);
        },
    );
    add("parameter compared with a masked column", 1, 0, &|b| {
        msg::parse(
            b,
            "",
            "SELECT id FROM customers WHERE phone LIKE $1 OR substr(id_number, 7, 4) = $2 ORDER BY id",
            &[25, 25],
        );
        msg::bind(b, "", "", &[Some("13_5%"), Some("1990")], 0);
        msg::execute(b, "", 0);
        msg::sync(b);
    });
    add("unnamed statement replaced after Bind", 1, 1, &|b| {
        msg::parse(b, "", "SELECT 1", &[]);
        msg::bind(b, "p", "", &[], 1);
        msg::parse(b, "", "SELECT phone, id_number FROM customers ORDER BY id", &[]);
        msg::execute(b, "p", 0);
        msg::bind(b, "", "", &[], 1);
        msg::execute(b, "", 0);
        msg::sync(b);
    });
    add("Flush before Sync", 1, 0, &|b| {
        msg::parse(b, "", "SELECT name, address FROM customers ORDER BY id", &[]);
        msg::bind(b, "", "", &[], 0);
        msg::describe(b, b'P', "");
        msg::execute(b, "", 0);
        msg::flush(b);
        msg::sync(b);
    });
    add("Query in the middle of an extended batch", 2, 0, &|b| {
        msg::parse(b, "", "SELECT phone FROM customers ORDER BY id", &[]);
        msg::bind(b, "", "", &[], 0);
        msg::query(b, "SELECT id_number FROM customers ORDER BY id");
        msg::execute(b, "", 0);
        msg::sync(b);
    });
    add("portal closed, then executed", 1, 0, &|b| {
        msg::parse(b, "s9", "SELECT email FROM customers ORDER BY id", &[]);
        msg::bind(b, "p9", "s9", &[], 0);
        msg::close(b, b'P', "p9");
        msg::execute(b, "p9", 0);
        msg::sync(b);
    });
    add("multiple statements in one Parse", 1, 0, &|b| {
        msg::parse(b, "", "SELECT 1; SELECT phone FROM customers", &[]);
        msg::bind(b, "", "", &[], 0);
        msg::execute(b, "", 0);
        msg::sync(b);
    });
    v
}

/// Runs the protocol corpus through pgveil (analyst) and directly, on both twins.
async fn protocol_attacks(world: &World) -> (Vec<String>, String) {
    let corpus = protocol_corpus(world).await;
    let mut leaks = Vec::new();
    let mut report = String::from("protocol-level attacks (through pgveil | directly):\n");
    for a in &corpus {
        let (mut pa, mut pb) = tokio::join!(world.analyst(0), world.analyst(1));
        let (ta, tb) = tokio::join!(
            pa.run_raw(&a.bytes, a.readies, a.format),
            pb.run_raw(&a.bytes, a.readies, a.format)
        );
        let (mut da, mut db) = tokio::join!(world.direct(TWINS[0]), world.direct(TWINS[1]));
        let (xa, xb) = tokio::join!(
            da.run_raw(&a.bytes, a.readies, a.format),
            db.run_raw(&a.bytes, a.readies, a.format)
        );
        if std::env::var_os("PGVEIL_TEST_DUMP").is_some() {
            eprintln!(
                "[protocol] {}\n    {}",
                a.name,
                ta.iter()
                    .map(|l| &l[..l.len().min(160)])
                    .collect::<Vec<_>>()
                    .join("\n    ")
            );
        }
        let outcome = if has_error(&ta) {
            "error in the exchange"
        } else {
            "answered"
        };
        writeln!(
            report,
            "  {:<52} | {:<21} | {}",
            a.name,
            outcome,
            if xa != xb { "differs" } else { "same" }
        )
        .ok();
        if ta != tb {
            leaks.push(format!(
                "LEAK protocol attack `{}`:\n    {}",
                a.name,
                first_difference(&ta, &tb)
            ));
        }
        if ta.iter().any(|l| l == "EOF" || l == "DEAD") {
            leaks.push(format!(
                "BROKEN SESSION protocol attack `{}`: {:?}",
                a.name,
                ta.last()
            ));
        }
        // Closed before the next attack opens new sessions (the analyst's max_sessions).
        tokio::join!(pa.close(), pb.close());
    }
    (leaks, report)
}
