//! Runs every golden scenario in `tests/golden/*.txt` and compares each command's output
//! with the expected output written under it. `UPDATE_GOLDEN=1` rewrites the files with
//! the actual output instead; commit such a diff only once you understand it.
//!
//! The scripts are stories for readers learning Raft: each opens with a paragraph saying
//! what it proves. The interpreter is `raftkv::sim::script`.

use std::path::Path;

use raftkv::sim::script;

#[test]
fn golden_scripts() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .expect("tests/golden exists")
        .map(|e| e.expect("readable dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "no golden scripts in {}", dir.display());
    let update = std::env::var("UPDATE_GOLDEN").is_ok_and(|v| v == "1");
    let mut failures = Vec::new();
    for path in &paths {
        let text = std::fs::read_to_string(path).expect("readable script");
        let run = std::panic::catch_unwind(|| script::run(&text));
        let Ok(outcome) = run else {
            failures.push(format!(
                "{}: the script panicked (see above)",
                path.display()
            ));
            continue;
        };
        if update {
            if outcome.rewritten != text {
                std::fs::write(path, &outcome.rewritten).expect("writable script");
                eprintln!("rewrote {}", path.display());
            }
            continue;
        }
        for block in outcome.blocks.iter().filter(|b| b.expected != b.actual) {
            failures.push(format!(
                "{}:{}: `{}`\n--- expected\n{}\n--- actual\n{}",
                path.display(),
                block.line,
                block.command,
                block.expected,
                block.actual
            ));
        }
    }
    eprintln!("golden: {} scripts", paths.len());
    assert!(
        failures.is_empty(),
        "{} golden blocks differ (UPDATE_GOLDEN=1 rewrites):\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}
