//! Validators for the identifier formats the masks know: PRC resident identity numbers
//! (GB 11643: 6-digit region, 8-digit birth date, 3-digit sequence, ISO 7064 MOD 11-2 check
//! character) and payment card numbers (Luhn).
//!
//! Pure functions over `&str`; they never panic, whatever the input. Format-preserving tokens
//! use the check-character functions to build valid values, and the tests (and the demo data
//! generator) use the validators to verify them.

/// Weights of ISO 7064 MOD 11-2 for the 17 leading digits of a resident ID.
const ID_WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
/// Check character by `sum mod 11`.
const ID_CHECK: [u8; 11] = *b"10X98765432";

/// The check character (`0`-`9` or `X`) of a resident ID from its first 17 digits, or `None`
/// when the input is not exactly 17 ASCII digits.
pub fn resident_id_check_char(first17: &str) -> Option<char> {
    let b = first17.as_bytes();
    if b.len() != 17 || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(id_check_byte(b) as char)
}

/// Check byte for 17 ASCII digits (caller guarantees the shape).
pub(crate) fn id_check_byte(digits17: &[u8]) -> u8 {
    let sum: u32 = digits17
        .iter()
        .zip(ID_WEIGHTS.iter())
        .map(|(d, w)| u32::from(d - b'0') * w)
        .sum();
    ID_CHECK[(sum % 11) as usize]
}

/// True for an 18-character resident ID with a real-looking structure: 17 digits, a valid
/// check character (`X` upper case), a birth date that exists (1900-01-01 to 2099-12-31) and
/// a region code whose province part is a mainland province (11-65).
pub fn is_valid_resident_id(id: &str) -> bool {
    let b = id.as_bytes();
    if b.len() != 18 || !b[..17].iter().all(u8::is_ascii_digit) {
        return false;
    }
    if id_check_byte(&b[..17]) != b[17] {
        return false;
    }
    let num = |r: std::ops::Range<usize>| -> u32 {
        b[r].iter().fold(0u32, |acc, d| acc * 10 + u32::from(d - b'0'))
    };
    let province = num(0..2);
    if !(11..=65).contains(&province) {
        return false;
    }
    let (y, m, d) = (num(6..10), num(10..12), num(12..14));
    (1900..=2099).contains(&y) && (1..=12).contains(&m) && d >= 1 && d <= days_in_month(y, m)
}

/// Days in month `m` (1-12) of Gregorian year `y`.
pub(crate) fn days_in_month(y: u32, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400) => 29,
        2 => 28,
        _ => 0,
    }
}

/// True when `number` is all ASCII digits (at least 2) and passes the Luhn check.
pub fn luhn_valid(number: &str) -> bool {
    let b = number.as_bytes();
    if b.len() < 2 || !b.iter().all(u8::is_ascii_digit) {
        return false;
    }
    luhn_sum(b, false).is_multiple_of(10)
}

/// The Luhn check digit to append to `payload` (all ASCII digits, at least one), or `None`.
pub fn luhn_check_digit(payload: &str) -> Option<char> {
    let b = payload.as_bytes();
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(luhn_check_byte(b) as char)
}

/// Check byte for a payload of ASCII digits (caller guarantees the shape).
pub(crate) fn luhn_check_byte(payload: &[u8]) -> u8 {
    let s = luhn_sum(payload, true);
    b'0' + ((10 - s % 10) % 10) as u8
}

/// Luhn sum over digits from the right; `double_first` says whether the rightmost digit is
/// doubled (true for a payload still missing its check digit).
fn luhn_sum(digits: &[u8], double_first: bool) -> u32 {
    let mut sum = 0u32;
    let mut double = double_first;
    for &c in digits.iter().rev() {
        let mut d = u32::from(c - b'0');
        if double {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
        double = !double;
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resident_id_known_values() {
        // The GB 11643 worked example.
        assert_eq!(resident_id_check_char("11010519491231002"), Some('X'));
        assert!(is_valid_resident_id("11010519491231002X"));
        assert!(!is_valid_resident_id("110105194912310021"));
        assert!(!is_valid_resident_id("11010519491331002X"));
        assert_eq!(resident_id_check_char("1101051949123100"), None);
        assert_eq!(resident_id_check_char("1101051949123100a"), None);
        assert!(!is_valid_resident_id("北京"));
    }

    #[test]
    fn luhn_known_values() {
        assert!(luhn_valid("4111111111111111"));
        assert!(luhn_valid("79927398713"));
        assert!(!luhn_valid("79927398710"));
        assert_eq!(luhn_check_digit("7992739871"), Some('3'));
        assert_eq!(luhn_check_digit("411111111111111"), Some('1'));
        assert_eq!(luhn_check_digit(""), None);
        assert!(!luhn_valid("4111 1111"));
    }
}
