//! Text inputs for `embed`: one text per line, or JSONL objects with `text` (and optional `id`).

use anyhow::{bail, Context, Result};
use std::path::Path;

#[derive(Debug, Clone, PartialEq)]
pub struct TextRecord {
    pub id: String,
    pub text: String,
}

/// Read texts; JSONL when the extension is `.jsonl`/`.ndjson` or every non-empty line starts with `{`.
pub fn read_texts(path: &Path) -> Result<Vec<TextRecord>> {
    let bytes =
        std::fs::read(path).with_context(|| format!("{}: cannot read input", path.display()))?;
    let text = match std::str::from_utf8(&bytes) {
        Ok(t) => t,
        Err(e) => {
            let line = bytes[..e.valid_up_to()]
                .iter()
                .filter(|&&b| b == b'\n')
                .count()
                + 1;
            bail!(
                "{}: line {line}: not valid UTF-8 (byte offset {}); re-encode the file as UTF-8 (e.g. `iconv -f latin1 -t utf-8`)",
                path.display(),
                e.valid_up_to()
            );
        }
    };
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let lines: Vec<(usize, &str)> = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim_end_matches('\r')))
        .filter(|(_, l)| !l.trim().is_empty())
        .collect();
    if lines.is_empty() {
        bail!("{}: no texts: the file is empty", path.display());
    }
    let jsonl = ext == "jsonl"
        || ext == "ndjson"
        || lines.iter().all(|(_, l)| l.trim_start().starts_with('{'));
    let mut out = Vec::with_capacity(lines.len());
    for (k, (no, line)) in lines.iter().enumerate() {
        if jsonl {
            let v: serde_json::Value = serde_json::from_str(line)
                .with_context(|| format!("{}: line {no}: invalid JSON", path.display()))?;
            let text = v.get("text").and_then(|t| t.as_str()).with_context(|| {
                format!("{}: line {no}: missing string field `text`", path.display())
            })?;
            let id = match v.get("id") {
                Some(serde_json::Value::String(s)) => s.clone(),
                Some(serde_json::Value::Number(n)) => n.to_string(),
                None | Some(serde_json::Value::Null) => k.to_string(),
                Some(_) => bail!(
                    "{}: line {no}: field `id` must be a string or number",
                    path.display()
                ),
            };
            out.push(TextRecord {
                id,
                text: text.to_string(),
            });
        } else {
            out.push(TextRecord {
                id: k.to_string(),
                text: line.to_string(),
            });
        }
    }
    Ok(out)
}
