//! The byte cursor the pickle VM reads through: every read is bounds-checked against the bytes
//! actually present (before anything is allocated), and a short read is an error naming the
//! pickle and the byte, never a panic.

use anyhow::{anyhow, bail, Result};

pub(super) struct Input<'a> {
    pub(super) data: &'a [u8],
    pub(super) pos: usize,
    /// What this pickle is, for error messages (e.g. `archive/data.pkl`).
    pub(super) what: &'a str,
}

impl<'a> Input<'a> {
    pub(super) fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let data: &'a [u8] = self.data;
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= data.len())
            .ok_or_else(|| {
                anyhow!(
                "truncated file: pickle needs {n} more bytes at byte {} but only {} remain [{}]",
                self.pos,
                data.len().saturating_sub(self.pos),
                self.what
            )
            })?;
        let s = &data[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    pub(super) fn arr<const N: usize>(&mut self) -> Result<[u8; N]> {
        let s = self.take(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    pub(super) fn u8(&mut self) -> Result<u8> {
        Ok(self.arr::<1>()?[0])
    }

    pub(super) fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.arr()?))
    }

    pub(super) fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.arr()?))
    }

    /// Length prefix → usize (still bounds-checked by `take` before any allocation).
    pub(super) fn len_u64(&mut self, n: u64) -> Result<usize> {
        usize::try_from(n)
            .map_err(|_| anyhow!("corrupt pickle: length {n} too large [{}]", self.what))
    }

    /// A `\n`-terminated line for the text opcodes (without the newline).
    pub(super) fn line(&mut self) -> Result<&'a [u8]> {
        let data: &'a [u8] = self.data;
        let rest = data.get(self.pos..).unwrap_or(&[]);
        match rest.iter().position(|&b| b == b'\n') {
            Some(i) => {
                let s = &rest[..i];
                self.pos += i + 1;
                Ok(s)
            }
            None => bail!(
                "truncated file: unterminated line in pickle at byte {} [{}]",
                self.pos,
                self.what
            ),
        }
    }
}
