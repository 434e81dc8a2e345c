//! Did-you-mean hints: the closest known name to a misspelt one.
//!
//! A hint is only offered when the candidate is close (edit distance at most a third of the
//! word, at least 1), so an unrelated word never gets a misleading suggestion.

/// Edit distance over characters (names may be Chinese), counting a swap of two adjacent
/// characters as one edit (optimal string alignment), the commonest typo (`phnoe`).
pub fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let w = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * w];
    for i in 0..=a.len() {
        d[i * w] = i;
    }
    for (j, cell) in d.iter_mut().enumerate().take(w) {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[(i - 1) * w + j] + 1)
                .min(d[i * w + j - 1] + 1)
                .min(d[(i - 1) * w + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[(i - 2) * w + j - 2] + 1);
            }
            d[i * w + j] = v;
        }
    }
    d[a.len() * w + b.len()]
}

/// The closest candidate to `word`, when close enough to be a plausible typo.
pub fn closest<'a, I>(word: &str, candidates: I) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a str>,
{
    let limit = (word.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .map(|c| (distance(&word.to_lowercase(), &c.to_lowercase()), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// `did you mean 'x'?` when a candidate is close, otherwise the list of valid names.
pub fn hint<'a, I>(word: &str, candidates: I, what: &str) -> String
where
    I: IntoIterator<Item = &'a str> + Clone,
{
    match closest(word, candidates.clone()) {
        Some(c) => format!("did you mean '{c}'?"),
        None => {
            let all: Vec<&str> = candidates.into_iter().collect();
            if all.is_empty() {
                format!("no {what} is defined")
            } else {
                format!("{what} are: {}", all.join(", "))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_words_are_suggested_far_ones_are_not() {
        assert_eq!(distance("sensitve", "sensitive"), 1);
        assert_eq!(distance("phnoe", "phone"), 1);
        assert_eq!(distance("欧阳", "欧阳娜"), 1);
        assert_eq!(
            closest("sensitve", ["public", "internal", "sensitive", "secret"]),
            Some("sensitive")
        );
        assert_eq!(
            closest("banana", ["public", "internal", "sensitive", "secret"]),
            None
        );
        assert_eq!(hint("x", ["a1", "b2"], "sections"), "sections are: a1, b2");
    }
}
