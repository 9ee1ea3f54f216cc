//! Line reading for the text formats (MatrixMarket, TSV side files, dense tables): gzip is detected
//! by magic bytes, not by extension, and read errors name the file and line, saying when a gzip
//! stream is truncated.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use flate2::read::MultiGzDecoder;

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
            Box::new(BufReader::with_capacity(
                1 << 16,
                MultiGzDecoder::new(BufReader::with_capacity(1 << 16, f)),
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
