//! Every subcommand's `--help` is byte-identical to the committed texts
//! (`tests/fixtures/cli_help/`, written by `make_help.py` beside them from the binary): a change to
//! what users read must be deliberate, with the fixtures regenerated in the same commit.

use std::path::Path;
use std::process::Command;

#[test]
fn help_texts_unchanged() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cli_help");
    let list = std::fs::read_to_string(dir.join("commands.txt")).unwrap();
    let mut n = 0;
    for line in list.lines() {
        let path: Vec<&str> = line.split_whitespace().collect();
        let file = dir.join(format!(
            "{}.txt",
            ["celltext"]
                .iter()
                .chain(&path)
                .copied()
                .collect::<Vec<_>>()
                .join("-")
        ));
        let want = std::fs::read_to_string(&file).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_celltext"))
            .args(&path)
            .arg("--help")
            .output()
            .unwrap();
        assert!(out.status.success(), "celltext {line} --help failed");
        let got = String::from_utf8(out.stdout).unwrap();
        assert_eq!(
            got,
            want,
            "`celltext {line} --help` differs from {}",
            file.display()
        );
        n += 1;
    }
    assert!(n > 20, "only {n} commands listed");
}
