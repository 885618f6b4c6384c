//! Newline-delimited messages from a child's stdout, each bounded in size (MCP's
//! stdio transport: one JSON-RPC message per line, no embedded newlines).

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt as _};

/// Reads lines of at most `max` bytes.
pub(crate) struct LineReader<R> {
    reader: R,
    buf: BytesMut,
    max: usize,
    /// How far `buf` was already searched for a newline.
    scanned: usize,
}

impl<R: AsyncRead + Unpin> LineReader<R> {
    pub(crate) fn new(reader: R, max: usize) -> Self {
        Self {
            reader,
            buf: BytesMut::with_capacity(16 * 1024),
            max,
            scanned: 0,
        }
    }

    fn too_long(&self) -> String {
        format!(
            "wrote a message over {} bytes on stdout (server.max_body_bytes x 4)",
            self.max
        )
    }

    /// The next non-empty line without its `\n` (or `\r\n`); `None` at the end of
    /// the stream; an error for a line over the limit or a read failure.
    pub(crate) async fn next(&mut self) -> Result<Option<Bytes>, String> {
        loop {
            if let Some(at) = self.buf[self.scanned..].iter().position(|b| *b == b'\n') {
                if self.scanned + at > self.max {
                    return Err(self.too_long());
                }
                let mut line = self.buf.split_to(self.scanned + at + 1);
                self.scanned = 0;
                line.truncate(line.len() - 1);
                if line.last() == Some(&b'\r') {
                    line.truncate(line.len() - 1);
                }
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                return Ok(Some(line.freeze()));
            }
            self.scanned = self.buf.len();
            if self.buf.len() > self.max {
                return Err(self.too_long());
            }
            self.buf.reserve(16 * 1024);
            match self.reader.read_buf(&mut self.buf).await {
                Ok(0) => return Ok(None),
                Ok(_) => {}
                Err(e) => return Err(format!("its stdout failed: {e}")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn all(input: &[u8], max: usize) -> (Vec<Bytes>, Option<String>) {
        let mut reader = LineReader::new(input, max);
        let mut lines = Vec::new();
        loop {
            match reader.next().await {
                Ok(Some(line)) => lines.push(line),
                Ok(None) => return (lines, None),
                Err(e) => return (lines, Some(e)),
            }
        }
    }

    #[tokio::test]
    async fn lines_split_on_newlines_and_skip_blank_ones() {
        let (lines, error) = all(b"{\"a\":1}\r\n\n  \n{\"b\":2}\n{\"c\"", 100).await;
        assert_eq!(
            lines,
            vec![Bytes::from("{\"a\":1}"), Bytes::from("{\"b\":2}")]
        );
        assert!(
            error.is_none(),
            "an unfinished last line is dropped at the end"
        );
    }

    #[tokio::test]
    async fn a_line_over_the_limit_is_an_error() {
        let long = [b'x'; 300];
        let (lines, error) = all(&[&b"ok\n"[..], &long[..], b"\n"].concat(), 100).await;
        assert_eq!(lines, vec![Bytes::from("ok")]);
        assert!(error.unwrap().contains("over 100 bytes"));
    }
}
