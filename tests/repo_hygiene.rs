//! The repository describes the product, not the machine it was built on: no tracked file outside
//! the generated fixtures names an absolute home, temp or build directory, or talks about "this
//! machine". Fixtures are exempt because hostile-input fixtures carry such paths as payloads; the
//! phrases and the sample lines this check is tested on live in `tests/fixtures/hygiene/`.

use std::path::Path;
use std::process::Command;

/// Path prefixes of a developer's or a build machine's directories. A match needs a file or
/// directory name right after the prefix, so a bare prefix in prose does not trip it.
const PATH_PREFIXES: &[&str] = &[
    "/tmp/",
    "/var/tmp/",
    "/var/folders/",
    "/private/var/",
    "/home/",
    "/root/",
    "/Users/",
    "/work/",
];
/// The exempt tree (generated references, hostile-input payloads, this check's own samples).
const EXEMPT: &str = "tests/fixtures/";

/// Lines of a file under `tests/fixtures/hygiene/`.
fn hygiene_lines(name: &str) -> Vec<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/hygiene")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect()
}

/// Phrases that describe where the code was written instead of what it does (lowercase).
fn phrases() -> Vec<String> {
    hygiene_lines("phrases.txt")
        .into_iter()
        .map(|p| p.to_lowercase())
        .collect()
}

fn tracked_files(root: &Path) -> Option<Vec<String>> {
    let out = Command::new("git")
        .args(["ls-files", "-z"])
        .current_dir(root)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    Some(
        out.stdout
            .split(|&b| b == 0)
            .filter(|p| !p.is_empty())
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .collect(),
    )
}

/// Every offending `(file, line number, what)` in `text`.
fn offences(file: &str, text: &str, phrases: &[String]) -> Vec<String> {
    let mut found = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let lower = line.to_lowercase();
        for prefix in PATH_PREFIXES {
            let mut from = 0;
            while let Some(at) = line[from..].find(prefix) {
                let start = from + at;
                let after = line[start + prefix.len()..].chars().next();
                // a path, not a URL (`https://x/home/...`) and not the tail of a longer path
                let preceded = line[..start].chars().last();
                let in_url = line[..start]
                    .rfind("://")
                    .is_some_and(|u| !line[u..start].contains(' '));
                if after.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
                    && !preceded.is_some_and(|c| {
                        c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-'
                    })
                    && !in_url
                {
                    found.push(format!(
                        "{file}:{}: absolute machine path `{prefix}…`: {}",
                        i + 1,
                        line.trim()
                    ));
                    break;
                }
                from = start + prefix.len();
            }
        }
        for phrase in phrases {
            if lower.contains(phrase) {
                found.push(format!("{file}:{}: \"{phrase}\": {}", i + 1, line.trim()));
            }
        }
    }
    found
}

#[test]
fn tracked_files_name_no_machine_paths() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let Some(files) = tracked_files(root) else {
        eprintln!("SKIPPED: not a git checkout (or no `git`), so the tracked files are unknown");
        return;
    };
    assert!(
        files.iter().any(|f| f == "Cargo.toml"),
        "git ls-files did not list Cargo.toml: {files:?}"
    );
    let phrases = phrases();
    let mut bad = Vec::new();
    for f in &files {
        if f.starts_with(EXEMPT) {
            continue;
        }
        let Ok(bytes) = std::fs::read(root.join(f)) else {
            continue;
        };
        if bytes.contains(&0) {
            continue; // binary (h5ad, gzip, images): not prose
        }
        bad.extend(offences(f, &String::from_utf8_lossy(&bytes), &phrases));
    }
    assert!(
        bad.is_empty(),
        "tracked files describe the build machine:\n{}",
        bad.join("\n")
    );
}

#[test]
fn the_check_catches_what_it_is_for() {
    let phrases = phrases();
    let caught = |s: &str| !offences("x", s, &phrases).is_empty();
    let (bad, good) = (hygiene_lines("caught.txt"), hygiene_lines("passed.txt"));
    assert!(bad.len() >= 6 && good.len() >= 3);
    for line in &bad {
        assert!(caught(line), "not caught: {line}");
    }
    for line in &good {
        assert!(!caught(line), "caught by mistake: {line}");
    }
}
