//! `pgveil scan` against real data: the detectors on generated positives and look-alike
//! negatives (precision and recall printed), the demo database (every sensitive column
//! found, `orders.order_no` not), a second generated database with pinyin, hanzi and
//! camelCase column names and 20+ look-alike columns (column-level precision and recall
//! printed, both must be at least 0.95), the draft loading as rules and compiling against the
//! catalog, a locked table skipped and judged by name, and no sampled value in any output.
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use pgveil::cluster::Cluster;
use pgveil::demo::data::SplitMix64;
use pgveil::mask::regions::REGION_CODES;
use pgveil::mask::{luhn_check_digit, resident_id_check_char};
use pgveil::scan::{self, detect, name_hint, Detector, Finding, ScanOptions};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

// ---- generators --------------------------------------------------------------------------

struct Gen(SplitMix64);

const MOBILE_PREFIXES: &[&str] = &[
    "130", "135", "138", "139", "147", "150", "158", "166", "177", "186", "189", "199",
];
const SURNAMES: &[&str] = &[
    "王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙", "马", "朱", "胡", "郭", "林",
    "何", "高", "罗",
];
const GIVEN: &[&str] = &[
    "伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "涛", "明", "超", "秀",
    "霞", "平", "刚", "桂", "英",
];
const ADDRESSES: &[(&str, &[&str])] = &[
    ("广东省深圳市南山区", &["科技园路", "深南大道", "南海大道"]),
    ("北京市海淀区", &["中关村大街", "学院路", "知春路"]),
    ("上海市浦东新区", &["世纪大道", "张杨路", "陆家嘴环路"]),
    ("浙江省杭州市西湖区", &["文三路", "天目山路", "教工路"]),
    ("四川省成都市武侯区", &["人民南路", "科华北路", "玉林街"]),
];
const PLATE_PROVINCES: &[&str] = &["京", "沪", "粤", "浙", "川", "苏", "鲁"];
const PLATE_LETTERS: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ";

impl Gen {
    fn new(seed: u64) -> Gen {
        Gen(SplitMix64::new(seed))
    }
    fn below(&mut self, n: u64) -> u64 {
        self.0.below(n)
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        self.0.pick(items)
    }
    fn digits(&mut self, n: usize) -> String {
        (0..n).map(|_| char::from(b'0' + self.below(10) as u8)).collect()
    }
    fn first17(&mut self) -> String {
        let region = self.pick(REGION_CODES);
        let y = 1950 + self.below(55);
        let m = 1 + self.below(12);
        let d = 1 + self.below(28);
        format!("{region}{y:04}{m:02}{d:02}{}", self.digits(3))
    }
    fn resident_id(&mut self) -> String {
        let mut id = self.first17();
        id.push(resident_id_check_char(&id).unwrap());
        id
    }
    /// Region code and date real, check character wrong: an order number.
    fn id_lookalike(&mut self) -> String {
        let mut id = self.first17();
        let right = resident_id_check_char(&id).unwrap();
        let wrong = loop {
            let c = char::from(b'0' + self.below(10) as u8);
            if c != right {
                break c;
            }
        };
        id.push(wrong);
        id
    }
    fn card(&mut self) -> String {
        let (bin, len) = *self.pick(&[
            ("622202", 19usize),
            ("621700", 19),
            ("436742", 16),
            ("622588", 16),
            ("518710", 16),
        ]);
        let mut c = format!("{bin}{}", self.digits(len - bin.len() - 1));
        c.push(luhn_check_digit(&c).unwrap());
        c
    }
    fn card_broken(&mut self) -> String {
        let mut c = format!("62{}", self.digits(13));
        let right = luhn_check_digit(&c).unwrap();
        c.push(char::from(
            b'0' + ((right as u8 - b'0' + 1 + self.below(9) as u8) % 10),
        ));
        c
    }
    fn mobile(&mut self) -> String {
        format!("{}{}", self.pick(MOBILE_PREFIXES), self.digits(8))
    }
    fn landline(&mut self) -> String {
        match self.below(3) {
            0 => format!("0755-{}{}", 2 + self.below(7), self.digits(7)),
            1 => format!("010-{}{}", 5 + self.below(4), self.digits(7)),
            _ => format!("(021){}{}", 5 + self.below(4), self.digits(7)),
        }
    }
    fn email(&mut self) -> String {
        let user = ["zhang.wei", "li_na", "wangfang88", "chen.jie", "liu-yang"][self.below(5) as usize];
        let domain = ["qq.com", "163.com", "example.com.cn", "sina.cn", "gmail.com"][self.below(5) as usize];
        format!("{user}{}@{domain}", self.below(1000))
    }
    fn name(&mut self) -> String {
        let mut n = if self.below(20) == 0 {
            "欧阳".to_string()
        } else {
            self.pick(SURNAMES).to_string()
        };
        for _ in 0..(1 + self.below(2)) {
            let given = *self.pick(GIVEN);
            n.push_str(given);
        }
        n
    }
    fn address(&mut self) -> String {
        let (area, streets) = *self.pick(ADDRESSES);
        format!(
            "{area}{}{}号{}栋{}室",
            self.pick(streets),
            1 + self.below(300),
            1 + self.below(20),
            101 + self.below(2000)
        )
    }
    /// Registration prefix, region, and an organisation code with its GB 11714 check char
    /// (weights 3 7 9 10 5 8 4 2, written independently of the scanner's).
    fn uscc_body(&mut self) -> String {
        const CHARS: &[u8] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";
        let region = self.pick(REGION_CODES);
        let org: String = (0..8).map(|_| char::from(*self.pick(CHARS))).collect();
        let sum: u32 = org
            .bytes()
            .zip([3, 7, 9, 10, 5, 8, 4, 2])
            .map(|(c, w)| {
                w * if c.is_ascii_digit() {
                    u32::from(c - b'0')
                } else {
                    u32::from(c - b'A') + 10
                }
            })
            .sum();
        let check = match 11 - sum % 11 {
            10 => 'X',
            11 => '0',
            d => char::from(b'0' + d as u8),
        };
        let prefix = *self.pick(&["91", "92", "93", "12", "52", "Y1"]);
        format!("{prefix}{region}{org}{check}")
    }
    fn uscc(&mut self) -> String {
        let mut u = self.uscc_body();
        u.push(scan::uscc_check_char(&u).unwrap());
        u
    }
    fn uscc_broken(&mut self) -> String {
        let mut u = self.uscc_body();
        let right = scan::uscc_check_char(&u).unwrap();
        u.push(if right == '7' { '8' } else { '7' });
        u
    }
    fn plate(&mut self) -> String {
        let p = self.pick(PLATE_PROVINCES).to_string();
        let l = char::from(*self.pick(PLATE_LETTERS));
        if self.below(3) == 0 {
            format!(
                "{p}{l}D{}",
                self.digits(5).get(..4).unwrap().to_owned() + &self.digits(1)
            )
        } else {
            format!("{p}{l}{}", self.digits(5))
        }
    }
    fn passport(&mut self) -> String {
        if self.below(2) == 0 {
            format!("E{}", self.digits(8))
        } else {
            format!("E{}{}", char::from(*self.pick(b"ABCDEFGH")), self.digits(7))
        }
    }
    fn ipv4(&mut self) -> String {
        format!(
            "{}.{}.{}.{}",
            1 + self.below(223),
            self.below(256),
            self.below(256),
            1 + self.below(254)
        )
    }
    fn ipv6(&mut self) -> String {
        format!("2001:db8:{:x}::{:x}", self.below(65536), 1 + self.below(65535))
    }
    fn ean13(&mut self) -> String {
        let body = format!("69{}", self.digits(10));
        let sum: u32 = body
            .bytes()
            .enumerate()
            .map(|(i, b)| u32::from(b - b'0') * if i % 2 == 0 { 1 } else { 3 })
            .sum();
        format!("{body}{}", (10 - sum % 10) % 10)
    }
    fn imei(&mut self) -> String {
        let mut c = format!("86{}", self.digits(12));
        c.push(luhn_check_digit(&c).unwrap());
        c
    }
    fn hotline(&mut self) -> String {
        format!("400-{}-{}", self.digits(3), self.digits(4))
    }
    fn epoch_millis(&mut self) -> String {
        (1_600_000_000_000u64 + self.below(200_000_000_000)).to_string()
    }
    fn epoch_secs(&mut self) -> String {
        (1_600_000_000u64 + self.below(200_000_000)).to_string()
    }
}

// ---- pure detectors ----------------------------------------------------------------------

/// Value-level precision and recall of each detector on generated positives (every one must
/// be found, by the right detector) and look-alikes (none may be taken for anything).
#[test]
fn detectors_on_generated_positives_and_lookalikes() {
    let mut g = Gen::new(7);
    type Make = fn(&mut Gen) -> String;
    let positives: &[(Detector, Make)] = &[
        (Detector::CnId, Gen::resident_id),
        (Detector::BankCard, Gen::card),
        (Detector::Mobile, Gen::mobile),
        (Detector::Landline, Gen::landline),
        (Detector::Email, Gen::email),
        (Detector::CnName, Gen::name),
        (Detector::Address, Gen::address),
        (Detector::Uscc, Gen::uscc),
        (Detector::Plate, Gen::plate),
        (Detector::Passport, Gen::passport),
        (Detector::Ipv4, Gen::ipv4),
        (Detector::Ipv6, Gen::ipv6),
    ];
    let negatives: &[(&str, Make)] = &[
        ("order number (ID with a wrong check char)", Gen::id_lookalike),
        ("Luhn-broken serial", Gen::card_broken),
        ("USCC with a wrong check char", Gen::uscc_broken),
        ("EAN-13 barcode", Gen::ean13),
        ("IMEI (Luhn valid, no card BIN)", Gen::imei),
        ("400 hotline", Gen::hotline),
        ("epoch millis", Gen::epoch_millis),
        ("epoch seconds", Gen::epoch_secs),
    ];
    let fixed_negatives = [
        "深圳市南山区",
        "市场部",
        "技术部",
        "北京",
        "苹果",
        "香蕉",
        "矿泉水",
        "三年二班",
        "有限公司",
        "1.2.3",
        "v2.10.4",
        "518000",
        "2026-01-15",
        "SKU-20260115",
        "SF1234567890123",
        "ORD202601150001",
        "00:1A:2B:3C:4D:5E",
        "user@localhost",
        "#FFAABB",
        "22.543096,114.057865",
        "1234567",
        "0000000000",
        "9781234567897",
        "d41d8cd98f00b204e9800998ecf8427e",
        "550e8400-e29b-41d4-a716-446655440000",
        "深圳市腾讯计算机系统有限公司",
        "客户满意，下次再来",
        "订单202601151234567890已退款",
        "11010519491231002",
        "abc",
        "",
    ];
    let mut per: BTreeMap<Detector, (usize, usize, usize)> = BTreeMap::new(); // tp, fp, fn
    let mut failures = Vec::new();
    for (want, make) in positives {
        for _ in 0..300 {
            let v = make(&mut g);
            let got = detect(&v);
            if got == Some(*want) {
                per.entry(*want).or_default().0 += 1;
            } else {
                per.entry(*want).or_default().2 += 1;
                if let Some(d) = got {
                    per.entry(d).or_default().1 += 1;
                }
                failures.push(format!("{want}: {v:?} -> {got:?}"));
            }
        }
    }
    let mut negatives_seen = 0;
    for (what, make) in negatives {
        for _ in 0..300 {
            let v = make(&mut g);
            negatives_seen += 1;
            if let Some(d) = detect(&v) {
                per.entry(d).or_default().1 += 1;
                failures.push(format!("look-alike {what}: {v:?} -> {d}"));
            }
        }
    }
    for v in fixed_negatives {
        negatives_seen += 1;
        if let Some(d) = detect(v) {
            per.entry(d).or_default().1 += 1;
            failures.push(format!("look-alike {v:?} -> {d}"));
        }
    }
    println!("value-level detectors ({negatives_seen} look-alikes):");
    for (d, (tp, fp, fn_)) in &per {
        let precision = *tp as f64 / (tp + fp).max(1) as f64;
        let recall = *tp as f64 / (tp + fn_).max(1) as f64;
        println!("  {d:<10} precision {precision:.3} recall {recall:.3} (tp {tp}, fp {fp}, fn {fn_})");
    }
    assert!(
        failures.is_empty(),
        "{} misjudged values:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

proptest::proptest! {
    /// Detectors never panic, and identifiers found in text sit on character boundaries
    /// and are masked in place without touching the text around them.
    #[test]
    fn detectors_never_panic(s in "\\PC{0,60}", digits in "[0-9 +X-]{0,30}", name in "[a-zA-Z_0-9身份证手机]{0,20}") {
        let text = format!("{s}{digits}{s}");
        let _ = detect(&text);
        let _ = name_hint(&name);
        let found = scan::find_identifiers(&text);
        for (r, _) in &found {
            proptest::prop_assert!(text.is_char_boundary(r.start) && text.is_char_boundary(r.end));
        }
        let masked = scan::mask_identifiers(&text);
        if found.is_empty() {
            proptest::prop_assert_eq!(masked, text);
        }
    }
}

#[test]
fn column_name_hints() {
    let cases: &[(&str, Option<Detector>)] = &[
        ("sfzh", Some(Detector::CnId)),
        ("shenfenzheng", Some(Detector::CnId)),
        ("身份证号码", Some(Detector::CnId)),
        ("id_card", Some(Detector::CnId)),
        ("idNo", Some(Detector::CnId)),
        ("IDNumber", Some(Detector::CnId)),
        ("mobile", Some(Detector::Mobile)),
        ("contact_phone", Some(Detector::Mobile)),
        ("shouji", Some(Detector::Mobile)),
        ("手机号", Some(Detector::Mobile)),
        ("tel", Some(Detector::Mobile)),
        ("card_no", Some(Detector::BankCard)),
        ("yhk", Some(Detector::BankCard)),
        ("bankCardNo", Some(Detector::BankCard)),
        ("email", Some(Detector::Email)),
        ("customerEmail", Some(Detector::Email)),
        ("email_address", Some(Detector::Email)),
        ("youxiang", Some(Detector::Email)),
        ("address", Some(Detector::Address)),
        ("dizhi", Some(Detector::Address)),
        ("家庭地址", Some(Detector::Address)),
        ("name", Some(Detector::CnName)),
        ("xingming", Some(Detector::CnName)),
        ("姓名", Some(Detector::CnName)),
        ("birthday", Some(Detector::BirthDate)),
        ("csrq", Some(Detector::BirthDate)),
        ("出生日期", Some(Detector::BirthDate)),
        ("dateOfBirth", Some(Detector::BirthDate)),
        ("salary", Some(Detector::Salary)),
        ("gongzi", Some(Detector::Salary)),
        ("工资", Some(Detector::Salary)),
        ("uscc", Some(Detector::Uscc)),
        ("tyshxydm", Some(Detector::Uscc)),
        ("passport_no", Some(Detector::Passport)),
        ("huzhao", Some(Detector::Passport)),
        ("plate_no", Some(Detector::Plate)),
        ("chepai", Some(Detector::Plate)),
        ("ip_address", Some(Detector::Ipv4)),
        ("lastLoginIp", Some(Detector::Ipv4)),
        // Not hints.
        ("id", None),
        ("customer_id", None),
        ("order_no", None),
        ("paid_note", None),
        ("hotel", None),
        ("company_name", None),
        ("productName", None),
        ("created_at", None),
        ("status", None),
        ("city", None),
    ];
    let wrong: Vec<String> = cases
        .iter()
        .filter(|(c, want)| name_hint(c) != *want)
        .map(|(c, want)| format!("{c}: want {want:?}, got {:?}", name_hint(c)))
        .collect();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

// ---- against PostgreSQL ------------------------------------------------------------------

fn scan_db(url: &str, sample: usize) -> (Vec<Finding>, Vec<String>) {
    let mut lines = Vec::new();
    let mut opts = ScanOptions::new(url);
    opts.sample = sample;
    opts.timeout = Duration::from_secs(20);
    let findings = rt()
        .block_on(scan::scan(&opts, |l| lines.push(l.to_string())))
        .expect("scan");
    (findings, lines)
}

fn by_column(findings: &[Finding]) -> BTreeMap<String, Detector> {
    findings
        .iter()
        .map(|f| (format!("{}.{}", f.table, f.column), f.detector))
        .collect()
}

/// Every distinct text value of the given columns, for the no-leak checks.
fn all_values(cluster: &Cluster, db: &str, table: &str, columns: &[&str]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for c in columns {
        let sql = format!("SELECT DISTINCT {c}::text FROM {table} WHERE {c} IS NOT NULL");
        for line in cluster.psql(db, &sql).expect("psql").lines() {
            if line.chars().count() >= 2 {
                out.insert(line.to_string());
            }
        }
    }
    out
}

fn assert_no_value_in(values: &BTreeSet<String>, what: &str, text: &str) {
    let leaked: Vec<&String> = values
        .iter()
        .filter(|v| text.contains(v.as_str()))
        .take(5)
        .collect();
    assert!(
        leaked.is_empty(),
        "{what} contains sampled values (first: {} chars)",
        leaked[0].chars().count()
    );
}

/// Writes the draft next to a minimal roles file and loads it as rules.
fn load_draft(draft: &str) -> (tempfile::TempDir, pgveil::rules::RuleSet) {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("tables.yaml"), draft).expect("write draft");
    std::fs::write(
        dir.path().join("roles.yaml"),
        "roles:\n  analyst:\n    sees: public\n",
    )
    .expect("write roles");
    let rules = pgveil::rules::load_dir(dir.path()).unwrap_or_else(|e| {
        panic!(
            "the draft does not load:\n{}\n---\n{draft}",
            pgveil::rules::format_errors(&e)
        )
    });
    (dir, rules)
}

#[test]
fn demo_database_every_sensitive_column_and_no_order_number() {
    let cluster = Cluster::start().expect("PostgreSQL 15 must be installed for this test");
    cluster.create_db("seller").unwrap();
    pgveil::demo::data::load(&cluster, "seller", 20_261_203, 400).unwrap();
    cluster.psql("seller", "ANALYZE").unwrap();
    let url = cluster.url("seller");
    let started = Instant::now();
    let (findings, lines) = scan_db(&url, 1000);
    println!(
        "demo scan: {} findings in {:?}",
        findings.len(),
        started.elapsed()
    );
    let got = by_column(&findings);
    let want: BTreeMap<String, Detector> = [
        ("customers.name", Detector::CnName),
        ("customers.id_number", Detector::CnId),
        ("customers.phone", Detector::Mobile),
        ("customers.email", Detector::Email),
        ("customers.bank_card", Detector::BankCard),
        ("customers.address", Detector::Address),
        ("customers.birth_date", Detector::BirthDate),
        ("customers.notes", Detector::FreeText),
        ("employees.name", Detector::CnName),
        ("employees.salary", Detector::Salary),
        ("employees.id_number", Detector::CnId),
        ("employees.phone", Detector::Mobile),
        ("suppliers.uscc", Detector::Uscc),
        ("suppliers.contact_phone", Detector::Mobile),
    ]
    .into_iter()
    .map(|(c, d)| (c.to_string(), d))
    .collect();
    assert_eq!(got, want, "findings:\n{}", scan::findings_table(&findings));
    assert!(!got.contains_key("orders.order_no"));
    // Content, not only names: the ID columns matched on (nearly) every value.
    for f in &findings {
        if f.detector == Detector::CnId {
            assert!(f.share > 0.99 && f.by_name && f.sampled > 0, "{f:?}");
        }
    }
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("scan [1/4] public.customers (13 columns)")),
        "{lines:?}"
    );

    // The draft loads as rules and compiles against the database (what `pgveil check
    // --upstream` does), and the demo rules cover every finding.
    let draft = scan::draft_rules(&findings);
    assert!(
        draft.contains("# evidence: 100% of 400 sampled values cn_id (check char valid"),
        "{draft}"
    );
    assert!(draft.contains("    salary: { class: secret }"), "{draft}");
    assert!(
        draft.contains("    birth_date: { class: sensitive, mask: { date_trunc: { to: year } } }"),
        "{draft}"
    );
    let (dir, rules) = load_draft(&draft);
    assert_eq!(rules.tables.values().map(|t| t.len()).sum::<usize>(), 14);
    let summary = pgveil::rules::check::check_dir(dir.path(), Some(&url)).expect("pgveil check");
    assert!(summary.contains("against the upstream catalog"), "{summary}");
    let demo_rules = pgveil::rules::load_dir(Path::new("rules")).expect("demo rules");
    assert_eq!(
        scan::coverage(&findings, &demo_rules),
        Vec::<(String, String)>::new()
    );
    let uncovered = scan::coverage(
        &findings,
        &rules_without(&demo_rules, "public.customers", "notes"),
    );
    assert_eq!(uncovered.len(), 1);
    assert!(
        uncovered[0].0 == "public.customers.notes"
            && uncovered[0].1.starts_with("no rule; looks like free_text: ")
    );

    // No sampled value anywhere: findings, evidence, draft, progress, coverage.
    let mut values = all_values(
        &cluster,
        "seller",
        "customers",
        &[
            "name",
            "id_number",
            "phone",
            "email",
            "bank_card",
            "address",
            "notes",
            "birth_date",
        ],
    );
    values.extend(all_values(
        &cluster,
        "seller",
        "employees",
        &["name", "id_number", "phone", "salary"],
    ));
    values.extend(all_values(
        &cluster,
        "seller",
        "suppliers",
        &["uscc", "contact_phone"],
    ));
    values.extend(all_values(&cluster, "seller", "orders", &["order_no"]));
    assert!(values.len() > 2000);
    let json = serde_json::to_string(&findings).unwrap();
    assert_no_value_in(&values, "findings", &json);
    assert_no_value_in(&values, "draft", &draft);
    assert_no_value_in(&values, "progress", &lines.join("\n"));
    assert_no_value_in(&values, "findings table", &scan::findings_table(&findings));
    assert_no_value_in(&values, "coverage", &format!("{uncovered:?}"));

    // The binary: draft to a file, tables on stdout, progress on stderr; no value in any.
    let out_file = dir.path().join("draft.yaml");
    let out = Command::new(env!("CARGO_BIN_EXE_pgveil"))
        .args([
            "scan",
            "--upstream",
            &url,
            "--sample",
            "200",
            "--rules",
            "rules",
            "--out",
        ])
        .arg(&out_file)
        .output()
        .expect("run pgveil scan");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "pgveil scan failed:\n{stdout}\n{stderr}");
    assert!(
        stderr.contains("scan [4/4] public.suppliers (4 columns)"),
        "{stderr}"
    );
    assert!(stdout.contains("public.customers.id_number"), "{stdout}");
    assert!(
        stdout.contains("every sensitive-looking column is covered by the rules"),
        "{stdout}"
    );
    let written = std::fs::read_to_string(&out_file).unwrap();
    assert!(written.contains("id_number: { class: sensitive, mask: cn_id }"));
    assert_no_value_in(&values, "pgveil scan stdout", &stdout);
    assert_no_value_in(&values, "pgveil scan stderr", &stderr);
    assert_no_value_in(&values, "pgveil scan --out", &written);
    // Without --out the draft alone goes to stdout (`pgveil scan > draft.yaml`), the tables
    // to stderr.
    let out = Command::new(env!("CARGO_BIN_EXE_pgveil"))
        .args(["scan", "--upstream", &url, "--schema", "public", "--sample", "50"])
        .output()
        .expect("run pgveil scan");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.starts_with("# Draft rules written by `pgveil scan`"),
        "{stdout}"
    );
    assert!(
        stderr.contains("public.customers.id_number") && !stdout.contains("evidence  "),
        "{stderr}"
    );
    let (_dir2, piped) = load_draft(&stdout);
    assert_eq!(piped.tables.values().map(|t| t.len()).sum::<usize>(), 14);
    assert_no_value_in(&values, "pgveil scan stdout", &stdout);
    assert_no_value_in(&values, "pgveil scan stderr", &stderr);
}

fn rules_without(rules: &pgveil::rules::RuleSet, table: &str, column: &str) -> pgveil::rules::RuleSet {
    let mut r = rules.clone();
    let (s, t) = table.split_once('.').unwrap();
    r.tables
        .get_mut(&pgveil::rules::TableName::new(s, t))
        .unwrap()
        .remove(column);
    r
}

/// A table locked by someone else is skipped after the lock timeout (2 s) and judged by
/// its column names; the scan goes on with the next table; a big table is sampled with
/// TABLESAMPLE, within the sample size.
#[test]
fn locked_table_is_skipped_and_judged_by_name() {
    let cluster = Cluster::start().expect("PostgreSQL 15 must be installed for this test");
    cluster.create_db("locked").unwrap();
    cluster
        .psql(
            "locked",
            "CREATE TABLE busy (id int, sfzh text, notes text);
             INSERT INTO busy SELECT i, '11010519491231002X', 'x' FROM generate_series(1, 50) i;
             CREATE TABLE calm (id int, shouji text);
             INSERT INTO calm SELECT i, '13812345678' FROM generate_series(1, 50) i;
             CREATE TABLE big (id int, contact text, memo text);
             INSERT INTO big SELECT i, '1391234' || lpad((i % 10000)::text, 4, '0'), 'row ' || i
               FROM generate_series(1, 60000) i;
             ANALYZE big;",
        )
        .unwrap();
    let url = cluster.url("locked");
    let rt = rt();
    let (findings, lines, elapsed) = rt.block_on(async {
        let (locker, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        locker
            .batch_execute("BEGIN; LOCK TABLE busy IN ACCESS EXCLUSIVE MODE")
            .await
            .unwrap();
        let mut lines = Vec::new();
        let started = Instant::now();
        let mut opts = ScanOptions::new(url.clone());
        opts.sample = 500;
        let findings = scan::scan(&opts, |l| lines.push(l.to_string())).await.unwrap();
        let elapsed = started.elapsed();
        locker.batch_execute("ROLLBACK").await.unwrap();
        (findings, lines, elapsed)
    });
    assert!(elapsed < Duration::from_secs(15), "{elapsed:?}");
    assert!(
        lines.iter().any(|l| l
            == "scan: public.busy skipped (lock timeout (the table is locked)); judged by column names only"),
        "{lines:?}"
    );
    let busy: Vec<&Finding> = findings.iter().filter(|f| f.table == "busy").collect();
    assert_eq!(busy.len(), 1, "{findings:?}");
    assert_eq!(
        (busy[0].column.as_str(), busy[0].detector, busy[0].share),
        ("sfzh", Detector::CnId, 0.0)
    );
    assert_eq!(
        busy[0].note.as_deref(),
        Some("table not sampled: lock timeout (the table is locked)")
    );
    let calm: Vec<&Finding> = findings.iter().filter(|f| f.table == "calm").collect();
    assert_eq!(calm.len(), 1);
    assert_eq!((calm[0].detector, calm[0].share), (Detector::Mobile, 1.0));
    // The big table (60000 rows, estimate known) is read with TABLESAMPLE: a bounded sample.
    let big: Vec<&Finding> = findings.iter().filter(|f| f.table == "big").collect();
    assert_eq!(big.len(), 1, "{findings:?}");
    assert_eq!(
        (big[0].column.as_str(), big[0].detector, big[0].share),
        ("contact", Detector::Mobile, 1.0)
    );
    assert!(
        big[0].sampled > 100 && big[0].sampled <= 500,
        "{}",
        big[0].sampled
    );
}

// ---- a second database: other names, planted look-alikes -----------------------------------

/// (column, SQL type, truth, generator)
type ColumnSpec = (
    &'static str,
    &'static str,
    Option<Detector>,
    fn(&mut Gen) -> String,
);

fn lit(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

const PRODUCTS: &[&str] = &[
    "苹果",
    "香蕉",
    "牛奶",
    "面包",
    "矿泉水",
    "酸奶",
    "饼干",
    "大米",
    "食用油",
    "洗发水",
    "毛巾",
    "牙膏",
    "雨伞",
    "台灯",
    "键盘",
    "鼠标",
    "耳机",
    "充电器",
    "水杯",
    "拖鞋",
];
const DEPARTMENTS: &[&str] = &[
    "市场部",
    "技术部",
    "财务部",
    "人事部",
    "销售部",
    "客服部",
    "法务部",
];
const CITIES: &[&str] = &["北京", "上海", "广州", "深圳", "杭州", "成都", "武汉", "南京"];
const COMPANIES: &[&str] = &[
    "深圳市腾达科技有限公司",
    "杭州云帆网络有限公司",
    "北京华信咨询有限公司",
    "上海天和贸易有限公司",
];

fn tables() -> Vec<(&'static str, Vec<ColumnSpec>)> {
    vec![
        (
            "客户信息",
            vec![
                ("姓名", "text", Some(Detector::CnName), |g| g.name()),
                ("身份证号", "varchar(18)", Some(Detector::CnId), |g| {
                    g.resident_id()
                }),
                ("手机", "varchar(20)", Some(Detector::Mobile), |g| {
                    let m = g.mobile();
                    match g.below(3) {
                        0 => format!("+86 {m}"),
                        1 => format!("{}-{}-{}", &m[..3], &m[3..7], &m[7..]),
                        _ => m,
                    }
                }),
                ("地址", "text", Some(Detector::Address), |g| g.address()),
                ("出生日期", "date", Some(Detector::BirthDate), |g| {
                    format!("19{}-0{}-1{}", 50 + g.below(49), 1 + g.below(9), g.below(9))
                }),
                ("城市", "text", None, |g| g.pick(CITIES).to_string()),
            ],
        ),
        (
            "kehu",
            vec![
                ("xingming", "text", Some(Detector::CnName), |g| g.name()),
                ("sfzh", "varchar(18)", Some(Detector::CnId), |g| {
                    g.resident_id().to_lowercase()
                }),
                ("shouji", "bigint", Some(Detector::Mobile), |g| g.mobile()),
                ("yhkh", "varchar(24)", Some(Detector::BankCard), |g| {
                    let c = g.card();
                    if g.below(2) == 0 {
                        c.as_bytes()
                            .chunks(4)
                            .map(|b| String::from_utf8_lossy(b).into_owned())
                            .collect::<Vec<_>>()
                            .join(" ")
                    } else {
                        c
                    }
                }),
                ("youxiang", "text", Some(Detector::Email), |g| g.email()),
                ("dizhi", "text", Some(Detector::Address), |g| g.address()),
                ("csrq", "date", Some(Detector::BirthDate), |g| {
                    format!("198{}-1{}-2{}", g.below(10), g.below(3), g.below(9))
                }),
                ("gongzi", "numeric(10,2)", Some(Detector::Salary), |g| {
                    format!("{}.{}", 3000 + g.below(40000), g.digits(2))
                }),
                ("chepai", "text", Some(Detector::Plate), |g| g.plate()),
                ("beizhu", "text", Some(Detector::FreeText), |g| {
                    match g.below(10) {
                        0 => format!("客户身份证{}已核验", g.resident_id()),
                        1 => format!("改约时间，联系{}", g.mobile()),
                        _ => format!("第{}次回访，客户满意", g.below(20)),
                    }
                }),
                ("beiyong1", "text", Some(Detector::CnId), |g| g.resident_id()),
                ("ext2", "text", Some(Detector::Email), |g| g.email()),
                ("zhuangtai", "text", None, |g| {
                    ["正常", "冻结", "注销"][g.below(3) as usize].to_string()
                }),
                ("bumen", "text", None, |g| g.pick(DEPARTMENTS).to_string()),
            ],
        ),
        (
            "customerProfile",
            vec![
                ("fullName", "text", Some(Detector::CnName), |g| g.name()),
                ("idNo", "text", Some(Detector::CnId), |g| g.resident_id()),
                ("mobileNo", "text", Some(Detector::Mobile), |g| g.mobile()),
                ("emailAddr", "text", Some(Detector::Email), |g| g.email()),
                ("homeAddress", "text", Some(Detector::Address), |g| g.address()),
                ("dateOfBirth", "timestamp", Some(Detector::BirthDate), |g| {
                    format!("1990-01-0{} 00:00", 1 + g.below(9))
                }),
                ("monthlySalary", "integer", Some(Detector::Salary), |g| {
                    (5000 + g.below(30000)).to_string()
                }),
                ("lastLoginIp", "text", Some(Detector::Ipv4), |g| g.ipv4()),
                ("passportNo", "text", Some(Detector::Passport), |g| g.passport()),
                ("officePhone", "text", Some(Detector::Landline), |g| g.landline()),
                ("attr1", "text", Some(Detector::Mobile), |g| g.mobile()),
                ("v6", "text", Some(Detector::Ipv6), |g| g.ipv6()),
                ("loginCount", "integer", None, |g| g.below(500).to_string()),
            ],
        ),
        (
            "gongyingshang",
            vec![
                ("tyshxydm", "varchar(18)", Some(Detector::Uscc), |g| g.uscc()),
                ("companyName", "text", None, |g| g.pick(COMPANIES).to_string()),
                ("lianxiren", "text", Some(Detector::CnName), |g| g.name()),
                ("lxdh", "varchar(20)", Some(Detector::Mobile), |g| g.mobile()),
                ("客服电话", "text", None, |g| g.hotline()),
            ],
        ),
        (
            "dingdan",
            vec![
                ("dingdanhao", "varchar(18)", None, |g| g.id_lookalike()),
                ("fapiaohao", "varchar(18)", None, |g| g.uscc_broken()),
                ("xuliehao", "varchar(16)", None, |g| g.card_broken()),
                ("tiaoma", "varchar(13)", None, |g| g.ean13()),
                ("kefuRexian", "text", None, |g| g.hotline()),
                ("createdAtMillis", "bigint", None, |g| g.epoch_millis()),
                ("eventTs", "bigint", None, |g| g.epoch_secs()),
                ("liushuihao", "varchar(20)", None, |g| g.digits(20)),
                ("trackingNo", "text", None, |g| format!("SF{}", g.digits(12))),
                ("skuCode", "text", None, |g| format!("SKU-{}", g.digits(8))),
                ("imei", "varchar(15)", None, |g| g.imei()),
                ("youbian", "varchar(6)", None, |g| {
                    format!("{}0000", 10 + g.below(80))
                }),
                ("versionNo", "text", None, |g| {
                    format!("{}.{}.{}", g.below(5), g.below(20), g.below(100))
                }),
                ("yuanyin", "text", None, |g| {
                    format!("订单{}{}已退款", 2024, g.digits(16))
                }),
                ("amount", "numeric(12,2)", None, |g| {
                    format!("{}.{}", g.below(100000), g.digits(2))
                }),
                ("uuid", "text", None, |g| {
                    format!("550e8400-e29b-41d4-a716-{}", g.digits(12))
                }),
                ("hashId", "text", None, |g| {
                    format!(
                        "{:032x}",
                        u128::from(g.0.next_u64()) << 64 | u128::from(g.0.next_u64())
                    )
                }),
                ("orderDate", "date", None, |g| {
                    format!("2025-0{}-1{}", 1 + g.below(9), g.below(9))
                }),
                ("zhanghu", "text", None, |g| format!("ACC{}", g.digits(10))),
                ("guige", "text", None, |g| {
                    format!("{}ml*{}", 250 * (1 + g.below(4)), 6 * (1 + g.below(4)))
                }),
            ],
        ),
        (
            "shangpin",
            vec![
                ("productName", "text", None, |g| g.pick(PRODUCTS).to_string()),
                ("isbn", "varchar(13)", None, |g| format!("978{}", g.digits(10))),
                ("banji", "text", None, |g| {
                    format!(
                        "{}年{}班",
                        ["一", "二", "三"][g.below(3) as usize],
                        ["一", "二", "三", "四"][g.below(4) as usize]
                    )
                }),
                ("mac", "text", None, |g| {
                    format!(
                        "00:1A:2B:{:02X}:{:02X}:{:02X}",
                        g.below(256),
                        g.below(256),
                        g.below(256)
                    )
                }),
                ("chengshi", "text", None, |g| g.pick(CITIES).to_string()),
                ("location", "text", None, |g| {
                    format!("22.{},114.{}", g.digits(6), g.digits(6))
                }),
            ],
        ),
    ]
}

fn second_db_sql(rows: usize) -> String {
    let mut g = Gen::new(42);
    let mut sql = String::new();
    for (table, cols) in tables() {
        let defs: Vec<String> = cols.iter().map(|(c, t, _, _)| format!("\"{c}\" {t}")).collect();
        sql.push_str(&format!(
            "CREATE TABLE \"{table}\" (\"编号\" serial PRIMARY KEY, {});\n",
            defs.join(", ")
        ));
        let names: Vec<String> = cols.iter().map(|(c, _, _, _)| format!("\"{c}\"")).collect();
        for _ in 0..rows {
            let vals: Vec<String> = cols.iter().map(|(_, _, _, make)| lit(&make(&mut g))).collect();
            sql.push_str(&format!(
                "INSERT INTO \"{table}\" ({}) VALUES ({});\n",
                names.join(", "),
                vals.join(", ")
            ));
        }
    }
    sql
}

#[test]
fn second_database_precision_and_recall() {
    let cluster = Cluster::start().expect("PostgreSQL 15 must be installed for this test");
    cluster.create_db("crm").unwrap();
    cluster
        .psql("crm", &format!("BEGIN;\n{}COMMIT;\nANALYZE;", second_db_sql(300)))
        .unwrap();
    let url = cluster.url("crm");
    let (findings, lines) = scan_db(&url, 1000);
    let got = by_column(&findings);
    let family = |d: Detector| d.family();
    let (mut tp, mut fp, mut fn_) = (0usize, 0usize, 0usize);
    let mut wrong = Vec::new();
    let mut negatives = 0;
    for (table, cols) in tables() {
        for (c, _, truth, _) in cols {
            let key = format!("{table}.{c}");
            match (truth, got.get(&key)) {
                (Some(t), Some(d)) if family(t) == family(*d) => tp += 1,
                (Some(t), Some(d)) => {
                    fp += 1;
                    fn_ += 1;
                    wrong.push(format!("{key}: want {t}, got {d}"));
                }
                (Some(t), None) => {
                    fn_ += 1;
                    wrong.push(format!("{key}: want {t}, not flagged"));
                }
                (None, Some(d)) => {
                    fp += 1;
                    wrong.push(format!("{key}: look-alike flagged as {d}"));
                }
                (None, None) => {}
            }
            if truth.is_none() {
                negatives += 1;
            }
        }
    }
    assert!(!got.contains_key("客户信息.编号"));
    let precision = tp as f64 / (tp + fp).max(1) as f64;
    let recall = tp as f64 / (tp + fn_).max(1) as f64;
    println!(
        "second database: {tp} true positives, {fp} false positives, {fn_} missed, {negatives} look-alike/plain columns; \
         precision {precision:.3}, recall {recall:.3}"
    );
    for w in &wrong {
        println!("  {w}");
    }
    assert!(negatives >= 20);
    assert!(
        precision >= 0.95 && recall >= 0.95,
        "precision {precision:.3} recall {recall:.3}:\n{}\n{}",
        wrong.join("\n"),
        scan::findings_table(&findings)
    );
    assert!(
        lines.iter().any(|l| l.contains("public.客户信息 (7 columns)")),
        "{lines:?}"
    );

    // The draft, with hanzi and camelCase names, loads and compiles against this database.
    let draft = scan::draft_rules(&findings);
    let (dir, _rules) = load_draft(&draft);
    pgveil::rules::check::check_dir(dir.path(), Some(&url))
        .unwrap_or_else(|e| panic!("the draft does not compile against the catalog: {e:#}\n{draft}"));
    assert!(
        draft.contains("身份证号: { class: sensitive, mask: cn_id }"),
        "{draft}"
    );
    assert!(
        draft.contains("shouji: { class: sensitive, mask: redact }"),
        "bigint mobile gets a mask that fits: {draft}"
    );
    assert!(draft.contains("monthlySalary: { class: secret }"), "{draft}");

    // No sampled value of any column in the findings or the draft.
    let mut values = BTreeSet::new();
    for (table, cols) in tables() {
        let names: Vec<String> = cols.iter().map(|(c, _, _, _)| format!("\"{c}\"")).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        values.extend(all_values(&cluster, "crm", &format!("\"{table}\""), &names));
    }
    // Short categorical values (2-3 characters such as 正常) could occur by chance in a
    // column name or the header comment; identifiers and names are what must not leak.
    values.retain(|v| {
        v.chars().count() >= 4 || v.chars().all(|c| !c.is_ascii()) && detect(v) == Some(Detector::CnName)
    });
    assert_no_value_in(&values, "findings", &serde_json::to_string(&findings).unwrap());
    assert_no_value_in(&values, "draft", &draft);
    assert_no_value_in(&values, "progress", &lines.join("\n"));
}
