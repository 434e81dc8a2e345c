//! Bad input never panics the rules loader, and every error it reports points inside the
//! file it names.
//!
//! Inputs: arbitrary text, and the demo rules with random edits (a character deleted,
//! replaced or inserted, a line duplicated), which reach far deeper into the validation than
//! random text does.
use std::path::Path;

use proptest::prelude::*;

fn demo_files() -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    let mut files: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read_to_string(&p).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}

/// Loads the files; checks that every error names one of them and a line inside it.
fn load_and_check(files: &[(String, String)]) {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    if let Err(errors) = pgveil::rules::load_dir(dir.path()) {
        assert!(!errors.is_empty());
        for e in &errors {
            let name = e.file.file_name().unwrap().to_string_lossy().into_owned();
            let (_, text) = files
                .iter()
                .find(|(n, _)| *n == name)
                .unwrap_or_else(|| panic!("{e}: unknown file"));
            let lines = text.lines().count().max(1);
            assert!(
                e.line >= 1 && e.line <= lines + 1,
                "{e}: line outside the file ({lines} lines)"
            );
            assert!(!e.message.is_empty());
        }
    }
}

#[derive(Debug, Clone)]
enum Edit {
    Delete(usize),
    Replace(usize, char),
    Insert(usize, char),
    DuplicateLine(usize),
}

fn apply(text: &str, edit: &Edit) -> String {
    let chars: Vec<char> = text.chars().collect();
    let at = |i: usize| if chars.is_empty() { 0 } else { i % chars.len() };
    match edit {
        Edit::Delete(i) => chars
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != at(*i))
            .map(|(_, c)| c)
            .collect(),
        Edit::Replace(i, c) => chars
            .iter()
            .enumerate()
            .map(|(j, x)| if j == at(*i) { *c } else { *x })
            .collect(),
        Edit::Insert(i, c) => {
            let mut v = chars.clone();
            v.insert(at(*i), *c);
            v.into_iter().collect()
        }
        Edit::DuplicateLine(i) => {
            let lines: Vec<&str> = text.lines().collect();
            let k = i % lines.len().max(1);
            let mut out: Vec<&str> = Vec::new();
            for (j, l) in lines.iter().enumerate() {
                out.push(l);
                if j == k {
                    out.push(l);
                }
            }
            out.join("\n") + "\n"
        }
    }
}

fn edit() -> impl Strategy<Value = Edit> {
    let ch = prop_oneof![
        Just(':'),
        Just('{'),
        Just('}'),
        Just(' '),
        Just('\n'),
        Just('\t'),
        Just('-'),
        Just('&'),
        Just('*'),
        Just('"'),
        Just('#'),
        Just('.'),
        any::<char>()
    ];
    prop_oneof![
        any::<usize>().prop_map(Edit::Delete),
        (any::<usize>(), ch.clone()).prop_map(|(i, c)| Edit::Replace(i, c)),
        (any::<usize>(), ch).prop_map(|(i, c)| Edit::Insert(i, c)),
        any::<usize>().prop_map(Edit::DuplicateLine),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,300}") {
        load_and_check(&[("t.yaml".to_string(), text)]);
    }

    #[test]
    fn edited_demo_rules_never_panic(file in 0usize..3, edits in proptest::collection::vec(edit(), 1..4)) {
        let mut files = demo_files();
        let k = file % files.len();
        for e in &edits {
            files[k].1 = apply(&files[k].1, e);
        }
        load_and_check(&files);
    }
}
