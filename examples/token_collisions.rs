//! Measures token collisions on N distinct synthetic values per format (default 10 million):
//! resident IDs, bank cards and mobile numbers, each tokenised with its format-preserving
//! token and with the text token. Not part of CI; run once in release mode:
//!
//! `cargo run --release --example token_collisions [N]`
//!
//! Prints, per format, how many distinct inputs shared a token with an earlier one, next to
//! the birthday-bound expectation N²/(2·S) for a token space of size S.
use std::collections::HashSet;
use std::time::Instant;

use pgveil::mask::{resident_id_check_char, ColumnType, Format, Keys, Mask, MaskSpec, TokenFormat};

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10_000_000);
    let mut keys = Keys::default();
    keys.keys
        .insert("main".into(), b"collision-test-key-0123456789abcdef".to_vec());
    let text = ColumnType::Text {
        oid: 25,
        max_chars: None,
    };
    let region_count = pgveil::mask::regions::REGION_CODES.len() as f64;
    // Token space sizes (for the expectation).
    let id_space = region_count * 20_454.0 * 1000.0;
    let card_space = 9.0 * 1e14; // 16 digits: first 1-9, 14 free, check digit fixed
    let phone_space = 53.0 * 1e8;
    let text_space = 2f64.powi(128);

    // Distinct inputs: the i-th value of each format is an injective function of i.
    let id = |i: u64| {
        let region = 110101 + (i % 1000);
        let day = i / 1000; // up to 10_000 distinct birth dates
        let (y, m, d) = (1950 + day / 336, 1 + (day / 28) % 12, 1 + day % 28);
        let seq = 0; // region and date already make i unique
        let first17 = format!("{region:06}{y:04}{m:02}{d:02}{seq:03}");
        let check = resident_id_check_char(&first17).unwrap_or('0');
        format!("{first17}{check}")
    };
    let card = |i: u64| format!("6222{i:012}");
    let phone = |i: u64| format!("138{i:08}");

    for (label, format, space, gen) in [
        (
            "resident ID -> cn_id token",
            TokenFormat::CnId,
            id_space,
            &id as &dyn Fn(u64) -> String,
        ),
        (
            "bank card -> bank_card token",
            TokenFormat::BankCard,
            card_space,
            &card,
        ),
        ("mobile -> phone token", TokenFormat::Phone, phone_space, &phone),
        ("resident ID -> text token", TokenFormat::Text, text_space, &id),
    ] {
        let spec = MaskSpec::Token {
            format,
            key: "main".into(),
        };
        let mask = match Mask::new(&spec, &text, &keys) {
            Ok(m) => m,
            Err(e) => {
                eprintln!("{label}: {e}");
                std::process::exit(1);
            }
        };
        let start = Instant::now();
        let mut seen: HashSet<u128> = HashSet::with_capacity(n as usize);
        // Spot check on the first 100k that the generated inputs are distinct.
        let mut inputs: HashSet<u64> = HashSet::new();
        let mut out = Vec::with_capacity(64);
        let mut collisions = 0u64;
        for i in 0..n {
            let v = gen(i);
            mask.apply(v.as_bytes(), Format::Text, &mut out);
            let fp = exact_key(&out);
            if !seen.insert(fp) {
                collisions += 1;
            }
            if i < 100_000 {
                inputs.insert(exact_key(v.as_bytes()) as u64);
            }
        }
        assert_eq!(inputs.len() as u64, n.min(100_000), "inputs must be distinct");
        let expected = (n as f64) * (n as f64) / (2.0 * space);
        println!(
            "{label}: {n} distinct inputs, {collisions} collisions ({:.6}%), birthday expectation {expected:.1}, {:.0} ns/token",
            100.0 * collisions as f64 / n as f64,
            start.elapsed().as_nanos() as f64 / n as f64
        );
    }
}

/// An injective u128 of a token: digit tokens (0-9, X) read in base 11; text tokens
/// (`tok_<id>_<26 base32>`) by their 128 bits.
fn exact_key(b: &[u8]) -> u128 {
    if b.starts_with(b"tok_") {
        let tail = &b[b.len() - 26..];
        let val = |c: u8| -> u128 {
            if c.is_ascii_lowercase() {
                u128::from(c - b'a')
            } else {
                u128::from(c - b'2' + 26)
            }
        };
        let mut k: u128 = 0;
        for &c in &tail[..25] {
            k = (k << 5) | val(c);
        }
        (k << 3) | (val(tail[25]) >> 2)
    } else {
        b.iter().fold(0u128, |k, &c| {
            k * 11 + if c == b'X' { 10 } else { u128::from(c - b'0') }
        })
    }
}
