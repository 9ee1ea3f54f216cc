//! The repository describes the product, not the machine it was built on: no tracked file outside
//! the generated fixtures names an absolute home, temp or build directory, or talks about "this
//! machine". Fixtures are exempt because hostile-input fixtures carry such paths as payloads.

use std::path::Path;
use std::process::Command;

/// Path prefixes of a developer's or a build machine's directories. A match needs a name after
/// the prefix (`/tmp/x`), so prose like "a /tmp directory" or a bare `/` does not trip it.
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
/// Phrases that describe where the code was written instead of what it does.
const PHRASES: &[&str] = &["this machine", "measured here", "tuned here", "on this box"];
/// The exempt tree (generated references and hostile-input payloads), and this file itself.
const EXEMPT: &[&str] = &["tests/fixtures/", "tests/repo_hygiene.rs"];

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
fn offences(file: &str, text: &str) -> Vec<String> {
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
        for phrase in PHRASES {
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
    let mut bad = Vec::new();
    for f in &files {
        if EXEMPT.iter().any(|e| f.starts_with(e)) {
            continue;
        }
        let Ok(bytes) = std::fs::read(root.join(f)) else {
            continue;
        };
        if bytes.contains(&0) {
            continue; // binary (h5ad, gzip, images): not prose
        }
        bad.extend(offences(f, &String::from_utf8_lossy(&bytes)));
    }
    assert!(
        bad.is_empty(),
        "tracked files describe the build machine:\n{}",
        bad.join("\n")
    );
}

#[test]
fn the_check_catches_what_it_is_for() {
    let caught = |s: &str| !offences("x", s).is_empty();
    assert!(caught("python at /home/alice/venv/bin/python"));
    assert!(caught("wrote /tmp/out.h5ad"));
    assert!(caught("`/work/shared/data/cells`"));
    assert!(caught("(\"/root/.cache\")"));
    assert!(caught("On this machine it takes 3 s"));
    assert!(caught("Measured here on 2 cores"));
    assert!(!caught(
        "see https://github.com/owner/repo/tree/main/home/x"
    ));
    assert!(!caught("relative tests/data/tmp/file and ../shared-thing"));
    assert!(!caught(
        "AMD EPYC Zen 3, 2 cores: 5,768 tok/s (`cargo bench --bench encoder`)"
    ));
}
