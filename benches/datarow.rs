//! DataRow masking per row, as the session does it (`cargo bench --bench datarow`).
//!
//! A row of the macro benchmark's wide table (`bench/`): 10 columns, 5 of them masked
//! (name `cn_name`, id_number `cn_id`, phone `phone`, email `email`, bank_card `bank_card`),
//! in text and in binary format. Each iteration splits one DataRow body into value ranges,
//! rebuilds the row with the masked values and patches its length: the same calls, in the same
//! order, as `mask_row` in `src/session/relay.rs` (that function is private, so it is mirrored
//! here; keep the two in step).
//!
//! - `datarow/rebuild_no_mask/*`: split and rebuild without masking: the framing cost alone.
//! - `datarow/mask5_partial/*`: the five partial masks above (target: ≤ 100 ns per value, so
//!   ≤ 500 ns per row plus framing).
//! - `datarow/mask5_token/text`: five keyed tokens (what pgveil itself applies; partial masks
//!   normally run inside PostgreSQL as SQL, see `Mask::sql`).
//!
//! Rows cycle through 64 distinct generated rows so that branch predictors see a realistic mix.
use std::hint::black_box;
use std::sync::Arc;

use bytes::{BufMut, BytesMut};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use pgveil::mask::{numeric_text_to_binary, ColumnType, Format, Keys, Mask, MaskSpec, Masked};
use pgveil::wire::backend::{data_row_ranges, finish_data_row, put_value, start_data_row};

fn keys() -> Keys {
    let mut k = Keys::default();
    k.keys
        .insert("main".into(), b"bench-key-0123456789abcdef012345".to_vec());
    k
}

fn mix(i: u64, salt: u64) -> u64 {
    let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ salt;
    x ^= x >> 29;
    x.wrapping_mul(0xBF58_476D_1CE4_E5B9)
}

const NAMES: [&str; 6] = ["张三", "李四光", "欧阳娜娜", "王小明", "司马相如", "赵敏"];
const CITIES: [&str; 4] = ["深圳", "北京", "杭州", "伊宁"];

/// One wide-table row's 10 values in the given format (id int4, name text,
/// id_number varchar(18), phone varchar(20), email text, bank_card varchar(19), city text,
/// vip_level int4, amount numeric(12,2), created_at timestamp).
fn row_values(i: u64, format: Format) -> Vec<Vec<u8>> {
    let id = i as i32 + 1;
    let vip = (i % 5) as i32;
    let amount = format!("{}.{:02}", mix(i, 4) % 100_000, i % 100);
    let micros: i64 = 820_000_000_000_000 + (mix(i, 5) % 100_000_000_000) as i64;
    let text = |s: String| s.into_bytes();
    let (id_v, vip_v, amount_v, ts_v) = match format {
        Format::Text => (
            text(id.to_string()),
            text(vip.to_string()),
            text(amount.clone()),
            text(format!(
                "2025-{:02}-{:02} 12:34:56.{:06}",
                1 + i % 12,
                1 + i % 28,
                i
            )),
        ),
        Format::Binary => (
            id.to_be_bytes().to_vec(),
            vip.to_be_bytes().to_vec(),
            numeric_text_to_binary(&amount).unwrap_or_else(|| panic!("numeric {amount}")),
            micros.to_be_bytes().to_vec(),
        ),
    };
    vec![
        id_v,
        text(NAMES[i as usize % 6].to_string()),
        text(format!(
            "{:06}{}{:02}{:02}{:03}X",
            110101 + i % 50,
            1950 + i % 50,
            1 + i % 12,
            1 + i % 28,
            i % 1000
        )),
        text(format!("1{}{:09}", 3 + i % 7, mix(i, 1) % 1_000_000_000)),
        text(format!("user{}.name@example{}.com", mix(i, 3) % 10_000, i % 7)),
        text(format!("62{:014}", mix(i, 2) % 100_000_000_000_000)),
        text(CITIES[i as usize % 4].to_string()),
        vip_v,
        amount_v,
        ts_v,
    ]
}

/// A DataRow message body (after the type byte and length) holding `values`.
fn data_row_body(values: &[Vec<u8>]) -> Vec<u8> {
    let mut b = BytesMut::new();
    b.put_u16(values.len() as u16);
    for v in values {
        b.put_i32(v.len() as i32);
        b.put_slice(v);
    }
    b.to_vec()
}

/// The masks at their output positions, from rule-style specs.
fn masks(specs: &[(usize, &str, ColumnType)]) -> Vec<(usize, Arc<Mask>)> {
    let k = keys();
    specs
        .iter()
        .map(|(pos, spec, ty)| {
            let s: MaskSpec = serde_saphyr::from_str(spec).unwrap_or_else(|e| panic!("spec {spec}: {e}"));
            let m = Mask::new(&s, ty, &k).unwrap_or_else(|e| panic!("mask {spec}: {e}"));
            (*pos, Arc::new(m))
        })
        .collect()
}

/// Mirror of `mask_row` in `src/session/relay.rs`.
fn mask_row(
    body: &[u8],
    masks: &[(usize, Arc<Mask>)],
    format: Format,
    out: &mut BytesMut,
    ranges: &mut Vec<Option<(usize, usize)>>,
    scratch: &mut Vec<u8>,
) -> u64 {
    if data_row_ranges(body, ranges).is_err() {
        return 0;
    }
    let mut masked = 0;
    let start = start_data_row(out, ranges.len() as u16);
    for (i, r) in ranges.iter().enumerate() {
        let value = r.map(|(a, b)| &body[a..b]);
        match (value, masks.iter().find(|(p, _)| *p == i)) {
            (Some(v), Some((_, m))) => {
                masked += 1;
                match m.apply(v, format, scratch) {
                    Masked::Value => put_value(out, Some(scratch)),
                    Masked::Null => put_value(out, None),
                }
            }
            (v, _) => put_value(out, v),
        }
    }
    finish_data_row(out, start);
    masked
}

fn bench_rows(c: &mut Criterion, name: &str, format: Format, m: &[(usize, Arc<Mask>)]) {
    let rows: Vec<Vec<u8>> = (0..64).map(|i| data_row_body(&row_values(i, format))).collect();
    let mut out = BytesMut::with_capacity(64 * 1024);
    let mut ranges = Vec::with_capacity(16);
    let mut scratch = Vec::with_capacity(128);
    let mut i = 0usize;
    let mut g = c.benchmark_group("datarow");
    g.throughput(Throughput::Elements(1));
    g.bench_function(name, |b| {
        b.iter(|| {
            i = (i + 1) & 63;
            // The session flushes its output buffer in batches; clear it well before it grows.
            if out.len() > 48 * 1024 {
                out.clear();
            }
            black_box(mask_row(
                black_box(&rows[i]),
                m,
                format,
                &mut out,
                &mut ranges,
                &mut scratch,
            ))
        })
    });
    g.finish();
}

fn datarow(c: &mut Criterion) {
    let text = ColumnType::Text {
        oid: 25,
        max_chars: None,
    };
    let vc = |n: u32| ColumnType::Text {
        oid: 1043,
        max_chars: Some(n),
    };
    let partial = masks(&[
        (1, "cn_name", text.clone()),
        (2, "cn_id", vc(18)),
        (3, "phone", vc(20)),
        (4, "email", text.clone()),
        (5, "bank_card", vc(19)),
    ]);
    let tokens = masks(&[
        (1, "{ token: { key: main } }", text.clone()),
        (2, "{ token: { format: cn_id, key: main } }", vc(18)),
        (3, "{ token: { format: phone, key: main } }", vc(20)),
        (4, "{ token: { key: main } }", text.clone()),
        (5, "{ token: { format: bank_card, key: main } }", vc(19)),
    ]);
    for (fname, format) in [("text", Format::Text), ("binary", Format::Binary)] {
        bench_rows(c, &format!("rebuild_no_mask/{fname}"), format, &[]);
        bench_rows(c, &format!("mask5_partial/{fname}"), format, &partial);
    }
    bench_rows(c, "mask5_token/text", Format::Text, &tokens);
}

criterion_group!(benches, datarow);
criterion_main!(benches);
