//! Shared test bed of the non-interference and legitimate-query suites: the twin seller
//! databases, the statically masked copy, pgveil in front, and a raw protocol client that
//! records everything a client sees.
//!
//! The twins (`seller_a`, `seller_b`) hold the demo schema. They are built from two random
//! streams: a *visible* stream shared by both twins, and a *hidden* stream seeded per twin. A
//! value a restricted role may see (clear columns, the parts of masked values their mask keeps,
//! NULL-ness, which rows pass the row filter) is drawn from the visible stream; everything else
//! (the hidden characters of masked values, denied columns, rows outside the row filter, in
//! number and content) from the twin's hidden stream. Visible draws never depend on hidden
//! ones, so the visible stream is consumed identically in both twins.
//!
//! [`World::start`] checks this claim against the policy pgveil actually compiled: for every
//! protected table, row by row, `Mask::apply` must give the same output on both twins, clear
//! columns must be equal, the rows outside the row filter must differ, and the hidden parts
//! must differ in (almost) every row. So "the twins are visibly equal" is proven, not assumed.
//!
//! Invariants:
//! - The three databases are created from one schema-only template, so every relation has the
//!   same OID in all of them: RowDescription table OIDs and catalog queries compare equal.
//! - Autovacuum is off and every database is ANALYZEd once after loading, so plans and
//!   statistics do not change while the suites run.
//! - The raw client records every backend message (values as text, or hex for binary), so a
//!   comparison of two transcripts is a comparison of everything the client could observe.
#![allow(dead_code)]
use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use pgveil::cluster::{Cluster, ClusterOptions};
use pgveil::config::ServeConfig;
use pgveil::demo::data::SplitMix64;
use pgveil::mask::{luhn_valid, resident_id_check_char, Format, Mask, Masked};
use pgveil::policy::{ColumnAction, RolePlan};
use pgveil::server::Server;
use pgveil::wire::backend;
use pgveil::wire::frame::Frame;
use pgveil::wire::{startup, BodyWriter, FrameReader};
use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::oneshot;

/// The analyst login of the demo rules (rules/logins.yaml).
pub const ANALYST: (&str, &str) = ("analyst", "analyst");
/// Seed of the visible stream (shared by both twins) and of each twin's hidden stream.
pub const VISIBLE_SEED: u64 = 20_261_203;
pub const HIDDEN_SEEDS: [u64; 2] = [1_111, 987_654_321];
/// Twin database names.
pub const TWINS: [&str; 2] = ["seller_a", "seller_b"];
/// The statically masked copy of twin A (what the analyst should see).
pub const MASKED_DB: &str = "seller_m";

// ---------------------------------------------------------------------------------------------
// Raw protocol client
// ---------------------------------------------------------------------------------------------

/// How a statement is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Simple Query ('Q'); all results in text.
    Simple,
    /// Parse / Bind (result format 0) / Describe portal / Execute / Sync.
    ExtendedText,
    /// Parse / Bind (result format 1) / Describe portal / Execute / Sync.
    ExtendedBinary,
    /// Parse / Bind (result format 1) / Execute / Sync: a client that cached the statement and
    /// never asks for a RowDescription (pgveil must mask all the same).
    ExtendedBinaryUndescribed,
}

impl Mode {
    pub const ALL: [Mode; 4] = [
        Mode::Simple,
        Mode::ExtendedText,
        Mode::ExtendedBinary,
        Mode::ExtendedBinaryUndescribed,
    ];
    pub fn name(self) -> &'static str {
        match self {
            Mode::Simple => "simple",
            Mode::ExtendedText => "extended-text",
            Mode::ExtendedBinary => "extended-binary",
            Mode::ExtendedBinaryUndescribed => "extended-binary-undescribed",
        }
    }
}

/// What a transcript keeps of a RowDescription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldDetail {
    /// Name, type, typmod, format, table OID and attribute number (twins share OIDs).
    Full,
    /// Name, type, typmod and format only (the masked copy's columns are real columns where
    /// pgveil's are computed, so their origin differs legitimately).
    Typed,
}

/// Everything a client observed for one statement (one round up to ReadyForQuery), one
/// line per backend message.
pub type Transcript = Vec<String>;

/// True when the transcript holds an ErrorResponse.
pub fn has_error(t: &[String]) -> bool {
    t.iter().any(|l| l.starts_with("E "))
}

/// True when the transcript holds at least one result row or COPY data.
pub fn has_rows(t: &[String]) -> bool {
    t.iter().any(|l| l.starts_with("D ") || l.starts_with("d "))
}

/// The first error line, if any.
pub fn first_error(t: &[String]) -> Option<&str> {
    t.iter().find(|l| l.starts_with("E ")).map(String::as_str)
}

/// A raw protocol connection.
pub struct Conn {
    reader: FrameReader<tokio::net::tcp::OwnedReadHalf>,
    w: tokio::net::tcp::OwnedWriteHalf,
    pub detail: FieldDetail,
    /// False once the server closed the connection or a read timed out.
    pub alive: bool,
}

/// How long one backend message may take to arrive.
const READ_TIMEOUT: Duration = Duration::from_secs(30);

impl Conn {
    /// Connects and authenticates (trust or SCRAM-SHA-256) up to the first ReadyForQuery.
    pub async fn connect(addr: &str, user: &str, password: &str, db: &str) -> Result<Conn, String> {
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect {addr}: {e}"))?;
        tcp.set_nodelay(true).map_err(|e| e.to_string())?;
        let (r, w) = tcp.into_split();
        let mut c = Conn {
            reader: FrameReader::new(r, 1 << 30),
            w,
            detail: FieldDetail::Full,
            alive: true,
        };
        let mut out = BytesMut::new();
        startup::encode_startup(
            &mut out,
            &[
                ("user".into(), user.into()),
                ("database".into(), db.into()),
                ("client_encoding".into(), "UTF8".into()),
            ],
        );
        c.send(&out).await?;
        let mut scram = None;
        loop {
            let f = c
                .recv()
                .await
                .ok_or_else(|| format!("{addr}: closed during startup"))?;
            match f.tag {
                b'R' => match backend::decode_auth(&f).map_err(|e| e.to_string())? {
                    backend::Auth::Ok => {}
                    backend::Auth::Sasl { .. } => {
                        let s = ScramSha256::new(password.as_bytes(), ChannelBinding::unsupported());
                        let mut out = BytesMut::new();
                        let mut m = BodyWriter::new(&mut out, b'p');
                        m.cstr("SCRAM-SHA-256").value(Some(s.message()));
                        m.finish();
                        c.send(&out).await?;
                        scram = Some(s);
                    }
                    backend::Auth::SaslContinue(d) => {
                        let s = scram.as_mut().ok_or("SASLContinue before SASL")?;
                        s.update(d).map_err(|e| e.to_string())?;
                        let mut out = BytesMut::new();
                        let mut m = BodyWriter::new(&mut out, b'p');
                        m.bytes(s.message());
                        m.finish();
                        c.send(&out).await?;
                    }
                    backend::Auth::SaslFinal(d) => {
                        scram
                            .as_mut()
                            .ok_or("SASLFinal before SASL")?
                            .finish(d)
                            .map_err(|e| e.to_string())?;
                    }
                    other => return Err(format!("unsupported auth {other:?}")),
                },
                b'E' => {
                    let e = backend::decode_error(&f).map_err(|e| e.to_string())?;
                    return Err(format!("{}: {}", e.code(), e.message()));
                }
                b'Z' => return Ok(c),
                _ => {}
            }
        }
    }

    /// Ends the session as a client does (Terminate) and waits until the server has closed
    /// the connection, so that the session no longer counts against the role's
    /// `max_sessions` when the next one opens (a dropped socket is noticed asynchronously).
    pub async fn close(mut self) {
        if self.alive && self.send(b"X\0\0\0\x04").await.is_ok() {
            while self.recv().await.is_some() {}
        }
    }

    async fn send(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.w.write_all(bytes).await.map_err(|e| e.to_string())
    }

    async fn recv(&mut self) -> Option<Frame> {
        match tokio::time::timeout(READ_TIMEOUT, self.reader.next()).await {
            Ok(Ok(Some(f))) => Some(f),
            _ => {
                self.alive = false;
                None
            }
        }
    }

    /// Runs one statement in `mode` and records what came back, up to ReadyForQuery.
    pub async fn run(&mut self, mode: Mode, sql: &str) -> Transcript {
        if !self.alive {
            return vec!["DEAD".into()];
        }
        let mut out = BytesMut::new();
        let format = match mode {
            Mode::Simple => {
                let mut m = BodyWriter::new(&mut out, b'Q');
                m.cstr(sql);
                m.finish();
                0
            }
            Mode::ExtendedText | Mode::ExtendedBinary | Mode::ExtendedBinaryUndescribed => {
                let fmt = i16::from(mode != Mode::ExtendedText);
                let mut m = BodyWriter::new(&mut out, b'P');
                m.cstr("").cstr(sql).i16(0);
                m.finish();
                let mut m = BodyWriter::new(&mut out, b'B');
                m.cstr("").cstr("").i16(0).i16(0).i16(1).i16(fmt);
                m.finish();
                if mode != Mode::ExtendedBinaryUndescribed {
                    let mut m = BodyWriter::new(&mut out, b'D');
                    m.u8(b'P').cstr("");
                    m.finish();
                }
                let mut m = BodyWriter::new(&mut out, b'E');
                m.cstr("").i32(0);
                m.finish();
                BodyWriter::new(&mut out, b'S').finish();
                fmt
            }
        };
        if let Err(e) = self.send(&out).await {
            self.alive = false;
            return vec![format!("SEND-FAILED {e}")];
        }
        self.collect(format, 1).await
    }

    /// Sends hand-built frontend messages (see [`msg`]) and records everything up to the
    /// `readies`-th ReadyForQuery (one per Sync or Query sent). `format` is how to show
    /// values that arrive without a RowDescription.
    pub async fn run_raw(&mut self, bytes: &[u8], readies: usize, format: i16) -> Transcript {
        if !self.alive {
            return vec!["DEAD".into()];
        }
        if let Err(e) = self.send(bytes).await {
            self.alive = false;
            return vec![format!("SEND-FAILED {e}")];
        }
        self.collect(format, readies).await
    }

    /// Reads messages up to the `readies`-th ReadyForQuery into a transcript.
    async fn collect(&mut self, mut format: i16, mut readies: usize) -> Transcript {
        let mut t = Vec::new();
        let mut formats: Vec<i16> = Vec::new();
        let mut ranges = Vec::new();
        loop {
            let Some(f) = self.recv().await else {
                t.push("EOF".into());
                return t;
            };
            let line = match f.tag {
                b'T' => match backend::decode_row_description(&f) {
                    Ok(fields) => {
                        formats = fields.iter().map(|x| x.format).collect();
                        let mut s = String::from("T");
                        for x in &fields {
                            match self.detail {
                                FieldDetail::Full => write!(
                                    s,
                                    " [{} type={} mod={} fmt={} rel={} att={}]",
                                    x.name, x.type_oid, x.typmod, x.format, x.table_oid, x.attnum
                                ),
                                FieldDetail::Typed => {
                                    write!(
                                        s,
                                        " [{} type={} mod={} fmt={}]",
                                        x.name, x.type_oid, x.typmod, x.format
                                    )
                                }
                            }
                            .ok();
                        }
                        s
                    }
                    Err(e) => format!("T-MALFORMED {e}"),
                },
                b'D' => {
                    let body = f.body();
                    match backend::data_row_ranges(body, &mut ranges) {
                        Ok(()) => {
                            let mut s = String::from("D");
                            for (i, r) in ranges.iter().enumerate() {
                                let fmt = formats.get(i).copied().unwrap_or(format);
                                match r {
                                    None => s.push_str(" NULL"),
                                    Some((a, b)) => {
                                        let v = &body[*a..*b];
                                        if fmt == 1 {
                                            s.push_str(" x");
                                            for byte in v {
                                                write!(s, "{byte:02x}").ok();
                                            }
                                        } else {
                                            write!(s, " {:?}", String::from_utf8_lossy(v)).ok();
                                        }
                                    }
                                }
                            }
                            s
                        }
                        Err(e) => format!("D-MALFORMED {e}"),
                    }
                }
                b'C' => format!(
                    "C {}",
                    String::from_utf8_lossy(f.body().strip_suffix(&[0]).unwrap_or(f.body()))
                ),
                b'E' | b'N' => match backend::decode_error(&f) {
                    Ok(e) => {
                        let mut s = String::from(if f.tag == b'E' { "E" } else { "N" });
                        // Fields that identify the server's source code location are stable,
                        // but carry nothing a client reasons about; everything else is kept.
                        for (code, v) in &e.fields {
                            if matches!(code, b'F' | b'L' | b'R' | b'V') {
                                continue;
                            }
                            write!(s, " {}={:?}", *code as char, v).ok();
                        }
                        s
                    }
                    Err(e) => format!("E-MALFORMED {e}"),
                },
                b'H' => {
                    // CopyOutResponse: overall format, then per-column formats.
                    let b = f.body();
                    format = i16::from(b.first().copied().unwrap_or(0));
                    format!("H {:?}", b)
                }
                b'd' => {
                    let b = f.body();
                    if format == 1 {
                        let mut s = String::from("d x");
                        for byte in b {
                            write!(s, "{byte:02x}").ok();
                        }
                        s
                    } else {
                        format!("d {:?}", String::from_utf8_lossy(b))
                    }
                }
                b'G' | b'W' => {
                    // CopyIn / CopyBoth: refuse to send anything.
                    let mut out = BytesMut::new();
                    let mut m = BodyWriter::new(&mut out, b'f');
                    m.cstr("test client sends no COPY data");
                    m.finish();
                    if self.send(&out).await.is_err() {
                        self.alive = false;
                    }
                    format!("{} {:?}", f.tag as char, f.body())
                }
                b'Z' => {
                    t.push(format!(
                        "Z {}",
                        f.body().first().map(|&b| b as char).unwrap_or('?')
                    ));
                    readies = readies.saturating_sub(1);
                    if readies == 0 {
                        return t;
                    }
                    continue;
                }
                b'V' => {
                    // FunctionCallResponse: the result, whatever its format, as hex.
                    let mut s = String::from("V x");
                    for byte in f.body() {
                        write!(s, "{byte:02x}").ok();
                    }
                    s
                }
                b'S' => match backend::decode_parameter_status(&f) {
                    Ok((k, v)) => format!("S {k}={v}"),
                    Err(e) => format!("S-MALFORMED {e}"),
                },
                b'A' => format!("A {:?}", String::from_utf8_lossy(f.body())),
                b't' => format!("t {:?}", f.body()),
                tag => format!("{} {}", tag as char, f.body().len()),
            };
            t.push(line);
        }
    }

    /// Runs `sql` in simple mode and fails unless it succeeds.
    pub async fn must(&mut self, sql: &str) {
        let t = self.run(Mode::Simple, sql).await;
        assert!(!has_error(&t) && self.alive, "`{sql}` failed: {t:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// pgveil in process
// ---------------------------------------------------------------------------------------------

/// A running pgveil in this process (stopped on drop).
pub struct Proxy {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    pub shared: Arc<pgveil::session::Shared>,
}

impl Proxy {
    pub async fn start(upstream: &str, rules: &Path) -> Proxy {
        let config = ServeConfig::new("127.0.0.1:0".parse().expect("addr"), upstream, rules);
        let server = Server::bind(config).await.expect("pgveil starts");
        let addr = server.local_addr;
        let shared = server.shared();
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(async move {
            server
                .run(async {
                    let _ = rx.await;
                })
                .await
                .expect("server runs");
        });
        Proxy {
            addr,
            stop: Some(tx),
            task: Some(task),
            shared,
        }
    }

    /// The plan pgveil compiled for `role`.
    pub fn plan(&self, role: &str) -> Arc<RolePlan> {
        self.shared
            .policy
            .load()
            .plans
            .get(role)
            .cloned()
            .unwrap_or_else(|| panic!("no plan for role {role}"))
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

/// The demo rules directory of the repository.
pub fn rules_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("rules")
}

// ---------------------------------------------------------------------------------------------
// The data
// ---------------------------------------------------------------------------------------------

/// One generated table: column names and rows of PostgreSQL text values (None = NULL).
#[derive(Debug, Clone)]
pub struct Table {
    pub name: &'static str,
    pub columns: Vec<&'static str>,
    pub rows: Vec<Vec<Option<String>>>,
}

struct Region {
    code: &'static str,
    /// Province prefix of an address ("" for municipalities, whose city names the province).
    province: &'static str,
    /// Prefecture-level city as written in an address.
    city_full: &'static str,
    /// The public `city` column.
    city: &'static str,
    districts: &'static [&'static str],
}

const REGIONS: &[Region] = &[
    Region {
        code: "110105",
        province: "",
        city_full: "北京市",
        city: "北京",
        districts: &["朝阳区", "海淀区", "东城区", "西城区"],
    },
    Region {
        code: "310115",
        province: "",
        city_full: "上海市",
        city: "上海",
        districts: &["浦东新区", "徐汇区", "静安区", "黄浦区"],
    },
    Region {
        code: "440305",
        province: "广东省",
        city_full: "深圳市",
        city: "深圳",
        districts: &["南山区", "福田区", "罗湖区", "宝安区"],
    },
    Region {
        code: "440106",
        province: "广东省",
        city_full: "广州市",
        city: "广州",
        districts: &["天河区", "越秀区", "海珠区", "白云区"],
    },
    Region {
        code: "330106",
        province: "浙江省",
        city_full: "杭州市",
        city: "杭州",
        districts: &["西湖区", "上城区", "拱墅区", "滨江区"],
    },
    Region {
        code: "320102",
        province: "江苏省",
        city_full: "南京市",
        city: "南京",
        districts: &["玄武区", "鼓楼区", "秦淮区", "建邺区"],
    },
    Region {
        code: "510107",
        province: "四川省",
        city_full: "成都市",
        city: "成都",
        districts: &["武侯区", "锦江区", "青羊区", "金牛区"],
    },
    Region {
        code: "420106",
        province: "湖北省",
        city_full: "武汉市",
        city: "武汉",
        districts: &["武昌区", "江汉区", "洪山区", "汉阳区"],
    },
];

const SURNAMES: &[&str] = &[
    "王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙", "马", "朱", "胡", "郭", "何",
    "高", "林", "罗",
];
const COMPOUND_SURNAMES: &[&str] = &["欧阳", "司马", "诸葛", "上官", "慕容"];
const GIVEN: &[&str] = &[
    "伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明", "超",
    "霞", "平", "刚", "浩", "宇", "轩", "梓", "涵", "欣", "怡", "诺", "佳", "琪", "俊", "雨", "婷", "思",
    "博", "文", "晨", "嘉", "宁", "雪",
];
const STREETS: &[&str] = &[
    "建国路",
    "中山路",
    "人民南路",
    "科技园路",
    "解放大道",
    "文三路",
    "学院路",
    "湖滨路",
    "长江路",
    "东风路",
];
const MOBILE_PREFIXES: &[&str] = &["130", "135", "138", "139", "150", "158", "186", "188", "199"];
const DOMAINS: &[&str] = &["qq.com", "163.com", "126.com", "gmail.com"];
const CARD_BINS_19: &[&str] = &["622202", "621700", "622848", "621661", "622260"];
const CARD_BINS_16: &[&str] = &["436742", "622588", "625800"];
const NOTE_TEXTS: &[&str] = &[
    "老客户，偏好线上渠道",
    "地址变更待核实",
    "客户要求账单寄送至单位",
    "曾投诉，已处理完毕",
    "理财风险评估：稳健型",
    "备用联系电话",
];
const STATUSES: &[&str] = &[
    "paid",
    "shipped",
    "delivered",
    "delivered",
    "cancelled",
    "refunded",
];
const DEPARTMENTS: &[&str] = &["风控部", "信息技术部", "零售业务部", "财务部", "合规部"];
const SUPPLIER_WORDS: &[&str] = &[
    "腾云", "华信", "博远", "中科", "恒通", "鼎盛", "金桥", "瑞达", "星河", "天成",
];
const USCC_CHARS: &[u8] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";

/// Customers with ids `1..=COMMON_IDS` exist in both twins (visible or hidden); orders refer
/// only to them. Extra hidden customers (ids above 1000) differ in number per twin.
pub const COMMON_IDS: i64 = 80;

fn digits(r: &mut SplitMix64, n: usize) -> String {
    (0..n).map(|_| char::from(b'0' + r.below(10) as u8)).collect()
}

fn lower(r: &mut SplitMix64, n: usize) -> String {
    const A: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    (0..n)
        .map(|_| char::from(A[r.below(A.len() as u64) as usize]))
        .collect()
}

fn day(y: i32, doy: u64) -> chrono::NaiveDate {
    let start = chrono::NaiveDate::from_ymd_opt(y, 1, 1).expect("date");
    let len = if chrono::NaiveDate::from_ymd_opt(y, 2, 29).is_some() {
        366
    } else {
        365
    };
    start + chrono::Duration::days((doy % len) as i64)
}

fn timestamp(r: &mut SplitMix64, from_year: i32, years: u64) -> String {
    let d = day(from_year + r.below(years) as i32, r.below(366));
    format!(
        "{} {:02}:{:02}:{:02}",
        d.format("%Y-%m-%d"),
        r.below(24),
        r.below(60),
        r.below(60)
    )
}

/// A resident ID: `region` + `date` + 3 sequence digits from `h` + check character.
fn resident_id(region: &str, date: chrono::NaiveDate, h: &mut SplitMix64) -> String {
    let mut id = format!("{region}{}{}", date.format("%Y%m%d"), digits(h, 3));
    let check = resident_id_check_char(&id).expect("17 digits");
    id.push(check);
    id
}

/// A mobile: prefix and last four from `v`, middle four from `h`.
fn mobile(v: &mut SplitMix64, h: &mut SplitMix64) -> String {
    let prefix = *v.pick(MOBILE_PREFIXES);
    let last = digits(v, 4);
    format!("{prefix}{}{last}", digits(h, 4))
}

/// A Luhn-valid card of `len` digits ending in `last4`, everything else from `h`.
fn bank_card(len: usize, last4: &str, h: &mut SplitMix64) -> String {
    let bin = if len == 19 {
        *h.pick(CARD_BINS_19)
    } else {
        *h.pick(CARD_BINS_16)
    };
    let middle = digits(h, len - 4 - 6);
    for x in 0..10u8 {
        // The digit right after the BIN is solved so that the whole card passes Luhn.
        let card = format!("{bin}{}{}{last4}", char::from(b'0' + x), &middle[1..]);
        if luhn_valid(&card) {
            return card;
        }
    }
    unreachable!("one of ten digits always completes a Luhn number")
}

/// A person's name: surname from `v`, given name (1 or 2 characters) from `h`.
fn person_name(v: &mut SplitMix64, h: &mut SplitMix64) -> String {
    let surname = if v.chance(10) {
        *v.pick(COMPOUND_SURNAMES)
    } else {
        *v.pick(SURNAMES)
    };
    let n = 1 + h.below(2) as usize;
    let mut s = surname.to_string();
    for _ in 0..n {
        let given: &&str = h.pick(GIVEN);
        s.push_str(given);
    }
    s
}

fn quote(v: &Option<String>) -> String {
    match v {
        None => "NULL".into(),
        Some(s) => format!("'{}'", s.replace('\'', "''")),
    }
}

/// A customer. `v` gives what the analyst sees, `h` the rest; `twin` 0 keeps the ID's date
/// equal to the birth date (realistic data), twin 1 draws it independently, so the date part
/// of the ID (which the `cn_id` mask hides, year included) differs between the twins.
fn customer(
    id: i64,
    consent: bool,
    v: &mut SplitMix64,
    h: &mut SplitMix64,
    twin: usize,
) -> Vec<Option<String>> {
    let region = v.pick(REGIONS);
    let name = person_name(v, h);
    let birth_year = 1955 + v.below(50) as i32;
    let birth_null = v.chance(5);
    let birth = day(birth_year, h.below(366));
    let id_date = if twin == 0 && !birth_null {
        birth
    } else {
        day(1950 + h.below(56) as i32, h.below(366))
    };
    let id_number = resident_id(region.code, id_date, h);
    let phone = if v.chance(8) { None } else { Some(mobile(v, h)) };
    let first = lower(v, 1);
    let domain = *v.pick(DOMAINS);
    let local_len = 2 + h.below(7) as usize;
    let email = if v.chance(5) {
        None
    } else {
        Some(format!("{first}{}@{domain}", lower(h, local_len)))
    };
    let card_len = if v.chance(30) { 16 } else { 19 };
    let last4 = digits(v, 4);
    let card = Some(bank_card(card_len, &last4, h));
    let address = Some(format!(
        "{}{}{}{}{}号",
        region.province,
        region.city_full,
        h.pick(region.districts),
        h.pick(STREETS),
        1 + h.below(300)
    ));
    let vip = v.below(6);
    let notes = if v.chance(40) {
        None
    } else {
        let text = h.pick(NOTE_TEXTS).to_string();
        if h.chance(40) {
            let mut t = SplitMix64::new(h.next_u64());
            Some(format!("{text}：{}", mobile(h, &mut t)))
        } else {
            Some(text)
        }
    };
    let created = timestamp(v, 2015, 10);
    vec![
        Some(id.to_string()),
        Some(name),
        Some(id_number),
        phone,
        email,
        card,
        address,
        if birth_null {
            None
        } else {
            Some(birth.format("%Y-%m-%d").to_string())
        },
        Some(region.city.to_string()),
        Some(vip.to_string()),
        Some(if consent { "t" } else { "f" }.to_string()),
        notes,
        Some(created),
    ]
}

/// The data of one twin (`twin` 0 or 1).
pub fn generate(twin: usize) -> Vec<Table> {
    let mut v = SplitMix64::new(VISIBLE_SEED);
    let mut h = SplitMix64::new(HIDDEN_SEEDS[twin]);
    let mut customers = Vec::new();
    for id in 1..=COMMON_IDS {
        // Whether the row passes the row filter is visible (the analyst sees which ids exist);
        // a hidden row's content comes wholly from the hidden stream.
        if v.chance(25) {
            let mut hv = SplitMix64::new(h.next_u64());
            customers.push(customer(id, false, &mut hv, &mut h, twin));
        } else {
            customers.push(customer(id, true, &mut v, &mut h, twin));
        }
    }
    // Extra hidden customers: a different number per twin, no orders.
    let extra = 4 + 6 * twin as u64 + h.below(3);
    let mut next = 1000 + h.below(50) as i64;
    for _ in 0..extra {
        let mut hv = SplitMix64::new(h.next_u64());
        customers.push(customer(next, false, &mut hv, &mut h, twin));
        next += 1 + h.below(40) as i64;
    }
    // Orders: all visible but the amount (class internal).
    let mut orders = Vec::new();
    let mut oid = 1;
    for cid in 1..=COMMON_IDS {
        for _ in 0..v.below(4) {
            let region = v.pick(REGIONS);
            let date = day(1960 + v.below(40) as i32, v.below(366));
            let order_no = format!("{}{}{}", region.code, date.format("%Y%m%d"), digits(&mut v, 4));
            let status = *v.pick(STATUSES);
            let at = timestamp(&mut v, 2020, 5);
            let amount = format!("{}.{:02}", 1 + h.below(20_000), h.below(100));
            orders.push(vec![
                Some(oid.to_string()),
                Some(cid.to_string()),
                Some(order_no),
                Some(amount),
                Some(status.to_string()),
                Some(at),
            ]);
            oid += 1;
        }
    }
    let mut employees = Vec::new();
    for id in 1..=20i64 {
        let name = person_name(&mut v, &mut h);
        let dept = *v.pick(DEPARTMENTS);
        let salary = format!("{}.{:02}", 8_000 + h.below(52_000), h.below(100));
        let region = v.pick(REGIONS);
        let id_number = resident_id(region.code, day(1960 + h.below(40) as i32, h.below(366)), &mut h);
        let phone = if v.chance(10) {
            None
        } else {
            Some(mobile(&mut v, &mut h))
        };
        let hired = day(2005 + v.below(20) as i32, v.below(366))
            .format("%Y-%m-%d")
            .to_string();
        employees.push(vec![
            Some(id.to_string()),
            Some(name),
            Some(dept.to_string()),
            Some(salary),
            Some(id_number),
            phone,
            Some(hired),
        ]);
    }
    let mut suppliers = Vec::new();
    for id in 1..=10i64 {
        let name = format!(
            "{}{}有限公司",
            v.pick(SUPPLIER_WORDS),
            v.pick(&["科技", "物流", "咨询", "印务"])
        );
        let region = v.pick(REGIONS);
        let mut uscc = format!("91{}", region.code);
        for _ in 0..10 {
            uscc.push(char::from(*h.pick(USCC_CHARS)));
        }
        let phone = Some(mobile(&mut v, &mut h));
        suppliers.push(vec![Some(id.to_string()), Some(name), Some(uscc), phone]);
    }
    vec![
        Table {
            name: "customers",
            columns: vec![
                "id",
                "name",
                "id_number",
                "phone",
                "email",
                "bank_card",
                "address",
                "birth_date",
                "city",
                "vip_level",
                "consent_transfer",
                "notes",
                "created_at",
            ],
            rows: customers,
        },
        Table {
            name: "orders",
            columns: vec!["id", "customer_id", "order_no", "amount", "status", "ordered_at"],
            rows: orders,
        },
        Table {
            name: "employees",
            columns: vec![
                "id",
                "name",
                "department",
                "salary",
                "id_number",
                "phone",
                "hired_on",
            ],
            rows: employees,
        },
        Table {
            name: "suppliers",
            columns: vec!["id", "name", "uscc", "contact_phone"],
            rows: suppliers,
        },
    ]
}

/// INSERT statements for `tables`, keeping only the listed columns of each.
pub fn insert_sql(tables: &[Table]) -> String {
    let mut sql = String::from("BEGIN;\n");
    for t in tables {
        if t.rows.is_empty() {
            continue;
        }
        writeln!(sql, "INSERT INTO {} ({}) VALUES", t.name, t.columns.join(", ")).ok();
        let rows: Vec<String> = t
            .rows
            .iter()
            .map(|r| format!("({})", r.iter().map(quote).collect::<Vec<_>>().join(", ")))
            .collect();
        sql.push_str(&rows.join(",\n"));
        sql.push_str(";\n");
    }
    sql.push_str("COMMIT;\n");
    sql
}

// ---------------------------------------------------------------------------------------------
// The world: cluster, twins, masked copy, proxies
// ---------------------------------------------------------------------------------------------

/// The cluster with the three databases and one pgveil per twin.
pub struct World {
    pub cluster: Cluster,
    /// pgveil in front of `seller_a` and `seller_b`.
    pub proxies: [Proxy; 2],
    /// The analyst's plan (from the proxy of twin A).
    pub plan: Arc<RolePlan>,
    /// Figures from the twin check, for the report.
    pub twin_report: String,
}

/// Reads a table as text values, ordered by its first column.
async fn read_table(client: &tokio_postgres::Client, sql: &str) -> Vec<Vec<Option<String>>> {
    let msgs = client
        .simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    msgs.into_iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => {
                Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect())
            }
            _ => None,
        })
        .collect()
}

impl World {
    /// Starts everything and proves the twins visibly equal (see the module doc).
    pub async fn start() -> World {
        // The auditor's token key must exist for the demo rules to load (analyst never uses it).
        std::env::set_var("PGVEIL_TOKEN_KEY", "noninterference-test-key-0123456789");
        let twins = [generate(0), generate(1)];
        let cluster = tokio::task::spawn_blocking(move || {
            let c = Cluster::start_with(ClusterOptions {
                extra_conf: vec!["autovacuum = off".into(), "fsync = off".into()],
                ..Default::default()
            })
            .unwrap_or_else(|e| panic!("PostgreSQL 15 is required for this test: {e}"));
            c.create_db("seller_tpl").expect("create template");
            c.psql("seller_tpl", pgveil::demo::data::SCHEMA_SQL)
                .expect("schema");
            for db in TWINS.iter().chain([&MASKED_DB]) {
                c.psql("postgres", &format!("CREATE DATABASE {db} TEMPLATE seller_tpl"))
                    .expect("create db");
            }
            c
        })
        .await
        .expect("join");
        for (i, db) in TWINS.iter().enumerate() {
            let client = cluster.connect(db).await.expect("connect twin");
            client
                .batch_execute(&insert_sql(&twins[i]))
                .await
                .unwrap_or_else(|e| panic!("load {db}: {e:?}"));
            client.batch_execute("ANALYZE").await.expect("analyze");
        }
        let rules = rules_dir();
        let proxies = [
            Proxy::start(&cluster.url(TWINS[0]), &rules).await,
            Proxy::start(&cluster.url(TWINS[1]), &rules).await,
        ];
        let plan = proxies[0].plan("analyst");
        assert!(!plan.unrestricted, "the demo's analyst must be restricted");
        let twin_report = check_twins(&cluster, &plan).await;
        build_masked_copy(&cluster, &plan).await;
        World {
            cluster,
            proxies,
            plan,
            twin_report,
        }
    }

    /// A connection to pgveil (twin `i`) as the analyst.
    pub async fn analyst(&self, i: usize) -> Conn {
        let addr = self.proxies[i].addr.to_string();
        Conn::connect(&addr, ANALYST.0, ANALYST.1, TWINS[i])
            .await
            .unwrap_or_else(|e| panic!("analyst login: {e}"))
    }

    /// A direct superuser connection to database `db`.
    pub async fn direct(&self, db: &str) -> Conn {
        let addr = format!("{}:{}", self.cluster.host(), self.cluster.port());
        let mut c = Conn::connect(&addr, "postgres", "", db)
            .await
            .unwrap_or_else(|e| panic!("direct {db}: {e}"));
        c.must("SET statement_timeout = '20s'").await;
        c
    }
}

/// The masks, denied columns and row filters of the analyst's plan, by table name.
struct TableRules {
    masks: HashMap<String, Arc<Mask>>,
    denied: Vec<String>,
    filter: Option<String>,
}

fn table_rules(plan: &RolePlan, table: &str) -> Option<TableRules> {
    let tp = plan
        .tables
        .values()
        .find(|t| t.schema == "public" && t.name == table)?;
    let mut masks = HashMap::new();
    let mut denied = Vec::new();
    for c in &tp.columns {
        match &c.action {
            ColumnAction::Clear => {}
            ColumnAction::Mask(m) => {
                masks.insert(c.name.clone(), m.clone());
            }
            ColumnAction::Deny => denied.push(c.name.clone()),
        }
    }
    Some(TableRules {
        masks,
        denied,
        filter: tp.row_filter.as_ref().map(|(f, _)| f.clone()),
    })
}

fn mask_text(m: &Mask, v: &Option<String>) -> Option<String> {
    let v = v.as_ref()?;
    let mut out = Vec::new();
    match m.apply(v.as_bytes(), Format::Text, &mut out) {
        Masked::Null => None,
        Masked::Value => Some(String::from_utf8(out).expect("masks give UTF-8")),
    }
}

/// Proves the twins visibly equal and hidden-different under `plan`; returns a summary.
async fn check_twins(cluster: &Cluster, plan: &RolePlan) -> String {
    let a = cluster.connect(TWINS[0]).await.expect("connect a");
    let b = cluster.connect(TWINS[1]).await.expect("connect b");
    let mut report = String::new();
    let mut protected = 0;
    for table in ["customers", "orders", "employees", "suppliers"] {
        let cols: Vec<String> = read_table(
            &a,
            &format!(
                "SELECT attname FROM pg_attribute WHERE attrelid = 'public.{table}'::regclass AND attnum > 0 \
                 AND NOT attisdropped ORDER BY attnum"
            ),
        )
        .await
        .into_iter()
        .map(|r| r[0].clone().expect("name"))
        .collect();
        let rules = table_rules(plan, table);
        if rules.is_some() {
            protected += 1;
        }
        let rules = rules.unwrap_or(TableRules {
            masks: HashMap::new(),
            denied: Vec::new(),
            filter: None,
        });
        let all = format!("SELECT * FROM {table} ORDER BY id");
        let visible = match &rules.filter {
            Some(f) => format!("SELECT * FROM {table} WHERE ({f}) ORDER BY id"),
            None => all.clone(),
        };
        let (ra, rb) = (read_table(&a, &visible).await, read_table(&b, &visible).await);
        assert_eq!(
            ra.len(),
            rb.len(),
            "{table}: the twins must have the same visible rows"
        );
        let mut differing = vec![0usize; cols.len()];
        let mut non_null = vec![0usize; cols.len()];
        for (x, y) in ra.iter().zip(&rb) {
            for (i, col) in cols.iter().enumerate() {
                if x[i] != y[i] {
                    differing[i] += 1;
                }
                if x[i].is_some() {
                    non_null[i] += 1;
                }
                if rules.denied.contains(col) {
                    continue;
                }
                match rules.masks.get(col) {
                    Some(m) => assert_eq!(
                        mask_text(m, &x[i]),
                        mask_text(m, &y[i]),
                        "{table}.{col} row {:?}: twins must agree on what the mask keeps ({:?} vs {:?})",
                        x[0],
                        x[i],
                        y[i]
                    ),
                    None => assert_eq!(x[i], y[i], "{table}.{col} row {:?}: clear column differs", x[0]),
                }
            }
        }
        // Every hidden part differs in (almost) every row.
        for (i, col) in cols.iter().enumerate() {
            let hidden = rules.masks.contains_key(col) || rules.denied.contains(col);
            if hidden {
                let need = non_null[i] * 85 / 100;
                assert!(
                    differing[i] >= need.max(1),
                    "{table}.{col}: only {} of {} visible rows differ between the twins",
                    differing[i],
                    non_null[i]
                );
            }
            if hidden || differing[i] > 0 {
                writeln!(
                    report,
                    "  {table}.{col}: {}/{} visible rows differ",
                    differing[i],
                    ra.len()
                )
                .ok();
            }
        }
        if let Some(f) = &rules.filter {
            let hidden_q = format!("SELECT * FROM {table} WHERE NOT coalesce(({f}), false) ORDER BY id");
            let (ha, hb) = (read_table(&a, &hidden_q).await, read_table(&b, &hidden_q).await);
            assert_ne!(
                ha.len(),
                hb.len(),
                "{table}: rows outside the row filter must differ in number"
            );
            let common = ha.iter().zip(&hb).filter(|(x, y)| x[0] == y[0]).count();
            let same = ha.iter().zip(&hb).filter(|(x, y)| x[1..] == y[1..]).count();
            assert_eq!(
                same, 0,
                "{table}: rows outside the row filter must differ in content"
            );
            writeln!(
                report,
                "  {table}: {} visible rows; hidden rows {} vs {} ({common} share an id, none share content)",
                ra.len(),
                ha.len(),
                hb.len()
            )
            .ok();
        }
        // Tables the analyst sees whole must be equal whole.
        if rules.filter.is_none() {
            let (fa, fb) = (read_table(&a, &all).await, read_table(&b, &all).await);
            assert_eq!(fa.len(), fb.len(), "{table}: row counts differ");
        }
    }
    assert!(
        protected >= 3,
        "expected customers, orders/employees and suppliers to be protected"
    );
    report
}

/// Builds `seller_m`: twin A as the analyst should see it, masked with `Mask::apply` (text
/// format), rows outside the row filter deleted, denied columns dropped.
async fn build_masked_copy(cluster: &Cluster, plan: &RolePlan) {
    let a = cluster.connect(TWINS[0]).await.expect("connect a");
    let m = cluster.connect(MASKED_DB).await.expect("connect m");
    // Orders of customers outside the row filter stay: orders are visible whole.
    m.batch_execute("ALTER TABLE orders DROP CONSTRAINT orders_customer_id_fkey")
        .await
        .expect("drop fk");
    let mut tables = Vec::new();
    for table in ["customers", "orders", "employees", "suppliers"] {
        let cols: Vec<String> = read_table(
            &a,
            &format!(
                "SELECT attname FROM pg_attribute WHERE attrelid = 'public.{table}'::regclass AND attnum > 0 \
                 AND NOT attisdropped ORDER BY attnum"
            ),
        )
        .await
        .into_iter()
        .map(|r| r[0].clone().expect("name"))
        .collect();
        let rules = table_rules(plan, table).unwrap_or(TableRules {
            masks: HashMap::new(),
            denied: Vec::new(),
            filter: None,
        });
        let q = match &rules.filter {
            Some(f) => format!("SELECT * FROM {table} WHERE ({f}) ORDER BY id"),
            None => format!("SELECT * FROM {table} ORDER BY id"),
        };
        let rows = read_table(&a, &q).await;
        for d in &rules.denied {
            m.batch_execute(&format!("ALTER TABLE {table} DROP COLUMN {d} CASCADE"))
                .await
                .expect("drop denied");
        }
        let keep: Vec<usize> = (0..cols.len())
            .filter(|&i| !rules.denied.contains(&cols[i]))
            .collect();
        let columns: Vec<&'static str> = keep
            .iter()
            .map(|&i| &*Box::leak(cols[i].clone().into_boxed_str()))
            .collect();
        let rows = rows
            .iter()
            .map(|r| {
                keep.iter()
                    .map(|&i| match rules.masks.get(&cols[i]) {
                        Some(mask) => mask_text(mask, &r[i]),
                        None => r[i].clone(),
                    })
                    .collect()
            })
            .collect();
        tables.push(Table {
            name: Box::leak(table.to_string().into_boxed_str()),
            columns,
            rows,
        });
    }
    m.batch_execute(&insert_sql(&tables))
        .await
        .unwrap_or_else(|e| panic!("load masked copy: {e:?}"));
    // Put the foreign key back as the catalog shows it upstream (psql's \d shows it), without
    // checking it: orders of customers outside the row filter refer to rows that are not here.
    m.batch_execute(
        "ALTER TABLE orders ADD CONSTRAINT orders_customer_id_fkey FOREIGN KEY (customer_id) \
         REFERENCES customers(id) NOT VALID; \
         UPDATE pg_constraint SET convalidated = true WHERE conname = 'orders_customer_id_fkey'",
    )
    .await
    .expect("restore fk");
    m.batch_execute("ANALYZE").await.expect("analyze");
}

/// Builders of frontend messages for protocol-level attacks.
pub mod msg {
    use bytes::BytesMut;
    use pgveil::wire::BodyWriter;

    pub fn query(out: &mut BytesMut, sql: &str) {
        let mut m = BodyWriter::new(out, b'Q');
        m.cstr(sql);
        m.finish();
    }

    /// Parse with explicit parameter type OIDs (0 = let the server infer).
    pub fn parse(out: &mut BytesMut, name: &str, sql: &str, types: &[u32]) {
        let mut m = BodyWriter::new(out, b'P');
        m.cstr(name).cstr(sql).i16(types.len() as i16);
        for t in types {
            m.i32(*t as i32);
        }
        m.finish();
    }

    /// Bind with text parameters and one result format for all columns.
    pub fn bind(out: &mut BytesMut, portal: &str, stmt: &str, params: &[Option<&str>], format: i16) {
        let mut m = BodyWriter::new(out, b'B');
        m.cstr(portal).cstr(stmt).i16(0).i16(params.len() as i16);
        for p in params {
            m.value(p.map(str::as_bytes));
        }
        m.i16(1).i16(format);
        m.finish();
    }

    /// Describe a statement (`b'S'`) or a portal (`b'P'`).
    pub fn describe(out: &mut BytesMut, kind: u8, name: &str) {
        let mut m = BodyWriter::new(out, b'D');
        m.u8(kind).cstr(name);
        m.finish();
    }

    pub fn execute(out: &mut BytesMut, portal: &str, max_rows: i32) {
        let mut m = BodyWriter::new(out, b'E');
        m.cstr(portal).i32(max_rows);
        m.finish();
    }

    /// Close a statement (`b'S'`) or a portal (`b'P'`).
    pub fn close(out: &mut BytesMut, kind: u8, name: &str) {
        let mut m = BodyWriter::new(out, b'C');
        m.u8(kind).cstr(name);
        m.finish();
    }

    pub fn sync(out: &mut BytesMut) {
        BodyWriter::new(out, b'S').finish();
    }

    pub fn flush(out: &mut BytesMut) {
        BodyWriter::new(out, b'H').finish();
    }

    /// The legacy FunctionCall message: calls a function by OID with text arguments.
    pub fn function_call(out: &mut BytesMut, oid: u32, args: &[Option<&str>], format: i16) {
        let mut m = BodyWriter::new(out, b'F');
        m.i32(oid as i32).i16(1).i16(0).i16(args.len() as i16);
        for a in args {
            m.value(a.map(str::as_bytes));
        }
        m.i16(format);
        m.finish();
    }
}
