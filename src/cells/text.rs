//! Line reading for the text formats (MatrixMarket, TSV side files, dense tables): gzip is detected
//! by magic bytes, not by extension, and read errors name the file and line, saying when a gzip
//! stream is truncated.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use flate2::read::MultiGzDecoder;

use crate::limits::{inflate_error, inflate_limit, InflateLimit, Limited};

/// A text reader that transparently gunzips (by magic bytes, not by extension).
pub struct TextFile {
    pub path: PathBuf,
    pub gz: bool,
    inner: Box<dyn BufRead>,
    pub line_no: usize,
}

impl TextFile {
    pub fn open(path: &Path) -> Result<Self> {
        let mut f = File::open(path).with_context(|| format!("{}: cannot open", path.display()))?;
        let mut magic = [0u8; 2];
        let n = f
            .read(&mut magic)
            .with_context(|| format!("{}: cannot read", path.display()))?;
        let f = File::open(path).with_context(|| format!("{}: cannot open", path.display()))?;
        let gz = n == 2 && magic == [0x1f, 0x8b];
        let inner: Box<dyn BufRead> = if gz {
            let len = f.metadata().map(|m| m.len()).unwrap_or(0);
            Box::new(BufReader::with_capacity(
                1 << 16,
                Limited::new(
                    MultiGzDecoder::new(BufReader::with_capacity(1 << 16, f)),
                    inflate_limit(len),
                ),
            ))
        } else {
            Box::new(BufReader::with_capacity(1 << 16, f))
        };
        Ok(Self {
            path: path.to_path_buf(),
            gz,
            inner,
            line_no: 0,
        })
    }

    /// Next line without the trailing newline (and `\r`); `None` at end of file.
    pub fn next_line(&mut self, buf: &mut String) -> Result<bool> {
        buf.clear();
        let n = match self.inner.read_line(buf) {
            Ok(n) => n,
            Err(e) => return Err(self.io_error(e)),
        };
        if n == 0 {
            return Ok(false);
        }
        self.line_no += 1;
        while buf.ends_with('\n') || buf.ends_with('\r') {
            buf.pop();
        }
        Ok(true)
    }

    /// Read everything that is left (for the csv crate).
    pub fn into_reader(self) -> Box<dyn BufRead> {
        self.inner
    }

    pub fn io_error(&self, e: std::io::Error) -> anyhow::Error {
        if let Some(l) = e.get_ref().and_then(|x| x.downcast_ref::<InflateLimit>()) {
            let len = std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0);
            return inflate_error(&self.path, len, l.limit);
        }
        if self.gz {
            anyhow::anyhow!(
                "{}: gzip stream is truncated or corrupt after line {} ({e}); re-download the file or \
                 re-compress it (gzip -t {} checks it)",
                self.path.display(),
                self.line_no,
                self.path.display()
            )
        } else if e.kind() == std::io::ErrorKind::InvalidData {
            anyhow::anyhow!(
                "{}: line {}: not valid UTF-8 text ({e})",
                self.path.display(),
                self.line_no + 1
            )
        } else {
            anyhow::anyhow!(
                "{}: read error after line {}: {e}",
                self.path.display(),
                self.line_no
            )
        }
    }
}

/// Whether `path` is a gzip file (by magic bytes).
fn is_gzip(path: &Path) -> bool {
    let mut magic = [0u8; 2];
    File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && magic == [0x1f, 0x8b]
}

/// A gzip stream's checksum is only checked at its end, so a flipped bit shows up first as
/// garbage (an out-of-range index, a bad number). When reading `path` (a file, or a directory
/// of them) failed with `err`, inflate every gzip file involved to its end and, if one is
/// corrupt, report that instead: the corruption is the cause, the parse error its symptom.
pub fn explain_corrupt_gzip(path: &Path, err: anyhow::Error) -> anyhow::Error {
    let files: Vec<PathBuf> = if path.is_dir() {
        let mut v: Vec<PathBuf> = std::fs::read_dir(path)
            .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).collect())
            .unwrap_or_default();
        v.sort();
        v
    } else {
        vec![path.to_path_buf()]
    };
    for f in files.iter().filter(|f| f.is_file() && is_gzip(f)) {
        let Ok(file) = File::open(f) else { continue };
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        let mut r = Limited::new(
            MultiGzDecoder::new(BufReader::new(file)),
            inflate_limit(len),
        );
        match std::io::copy(&mut r, &mut std::io::sink()) {
            Ok(_) => {}
            Err(e) if crate::limits::is_inflate_limit(&e) => {
                return inflate_error(f, len, inflate_limit(len))
            }
            Err(e) => {
                return anyhow::anyhow!(
                    "corrupt gzip stream in {} ({e}); re-download the file or re-compress it \
                     (gzip -t {} checks it). While reading it: {err:#}",
                    f.display(),
                    f.display()
                )
            }
        }
    }
    err
}
