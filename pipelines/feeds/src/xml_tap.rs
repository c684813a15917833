//! A buffered reader that watches what the XML parser consumes: it counts
//! lines and can hash the exact bytes of one element (a camt `Ntry`) without
//! keeping them, so provenance stays exact in bounded memory.

use std::io::{self, BufRead, Read};

use sha2::{Digest, Sha256};

const BUF: usize = 64 * 1024;

/// `BufRead` adapter with line counting and an optional running hash.
pub struct Tap<R> {
    inner: R,
    buf: Box<[u8]>,
    pos: usize,
    len: usize,
    newlines: u64,
    hasher: Option<Sha256>,
}

impl<R: Read> Tap<R> {
    /// Wraps `inner`.
    pub fn new(inner: R) -> Self {
        Tap { inner, buf: vec![0; BUF].into_boxed_slice(), pos: 0, len: 0, newlines: 0, hasher: None }
    }

    /// 1-based line of the next unconsumed byte.
    pub fn line(&self) -> u64 {
        self.newlines + 1
    }

    /// Starts hashing; `prefix` is the part of the element already consumed
    /// (its start tag), supplied by the caller.
    pub fn start_hash(&mut self, prefix: &[u8]) {
        let mut h = Sha256::new();
        h.update(prefix);
        self.hasher = Some(h);
    }

    /// Stops hashing and returns the hex digest (empty if not hashing).
    pub fn finish_hash(&mut self) -> String {
        self.hasher.take().map(|h| hex::encode(h.finalize())).unwrap_or_default()
    }
}

impl<R: Read> Read for Tap<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let avail = self.fill_buf()?;
        let n = avail.len().min(out.len());
        out[..n].copy_from_slice(&avail[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl<R: Read> BufRead for Tap<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.pos >= self.len {
            self.len = loop {
                match self.inner.read(&mut self.buf) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                }
            };
            self.pos = 0;
        }
        Ok(&self.buf[self.pos..self.len])
    }

    fn consume(&mut self, amt: usize) {
        let end = (self.pos + amt).min(self.len);
        let bytes = &self.buf[self.pos..end];
        self.newlines += bytes.iter().filter(|&&b| b == b'\n').count() as u64;
        if let Some(h) = self.hasher.as_mut() {
            h.update(bytes);
        }
        self.pos = end;
    }
}
