//! An incremental `text/event-stream` parser, so the respond stage can decide each
//! upstream event as it arrives instead of buffering the whole stream.
//!
//! Follows the WHATWG rules that matter here: lines end in `\n`, `\r\n` or `\r` (a
//! `\r` at the end of a chunk waits for the next one), `data` lines join with `\n`,
//! one leading space after the colon is dropped, comments start with `:`, and a
//! blank line ends an event. Each event keeps its raw bytes so an event the proxy
//! does not change is forwarded byte for byte.

use bytes::{Bytes, BytesMut};

/// One parsed event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SseEvent {
    /// The event exactly as received, blank line included.
    pub(crate) raw: Bytes,
    /// The `data` lines joined with `\n`; empty when there were none.
    pub(crate) data: Vec<u8>,
    /// The last `id` field.
    pub(crate) id: Option<String>,
    /// The `event` field.
    pub(crate) event: Option<String>,
    /// True when the event had at least one `data` line.
    pub(crate) has_data: bool,
}

impl SseEvent {
    /// The same event with new data (one `data` line), keeping `id` and `event`.
    pub(crate) fn with_data(&self, data: &[u8]) -> Bytes {
        let mut out = BytesMut::with_capacity(data.len() + 64);
        if let Some(event) = &self.event {
            out.extend_from_slice(format!("event: {event}\n").as_bytes());
        }
        if let Some(id) = &self.id {
            out.extend_from_slice(format!("id: {id}\n").as_bytes());
        }
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(data);
        out.extend_from_slice(b"\n\n");
        out.freeze()
    }
}

/// Accumulates bytes and yields complete events.
#[derive(Debug, Default)]
pub(crate) struct SseParser {
    buf: BytesMut,
    /// Where the current event starts in `buf` is always 0; `scan` is how far lines
    /// of the current event have been consumed.
    scan: usize,
    data: Vec<u8>,
    id: Option<String>,
    event: Option<String>,
    has_data: bool,
    has_fields: bool,
}

impl SseParser {
    /// Feeds a chunk; returns the events it completed.
    pub(crate) fn feed(&mut self, chunk: &[u8]) -> Vec<SseEvent> {
        self.buf.extend_from_slice(chunk);
        let mut events = Vec::new();
        while let Some((line_end, next)) = self.next_line() {
            let line = self.buf[self.scan..line_end].to_vec();
            self.scan = next;
            if line.is_empty() {
                if let Some(event) = self.dispatch() {
                    events.push(event);
                }
            } else {
                self.field(&line);
            }
        }
        events
    }

    /// The end of the next complete line and where the one after starts.
    fn next_line(&self) -> Option<(usize, usize)> {
        let rest = &self.buf[self.scan..];
        let at = rest.iter().position(|b| *b == b'\n' || *b == b'\r')?;
        let end = self.scan + at;
        if rest[at] == b'\n' {
            return Some((end, end + 1));
        }
        // A `\r` may be the first half of `\r\n`: wait for the next byte.
        match rest.get(at + 1) {
            None => None,
            Some(b'\n') => Some((end, end + 2)),
            Some(_) => Some((end, end + 1)),
        }
    }

    fn field(&mut self, line: &[u8]) {
        self.has_fields = true;
        if line.first() == Some(&b':') {
            return; // a comment (keep-alive)
        }
        let (name, value) = match line.iter().position(|b| *b == b':') {
            Some(i) => {
                let value = &line[i + 1..];
                (&line[..i], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &b""[..]),
        };
        match name {
            b"data" => {
                if self.has_data {
                    self.data.push(b'\n');
                }
                self.data.extend_from_slice(value);
                self.has_data = true;
            }
            b"id" => self.id = Some(String::from_utf8_lossy(value).into_owned()),
            b"event" => self.event = Some(String::from_utf8_lossy(value).into_owned()),
            _ => {} // `retry` and unknown fields travel in `raw`
        }
    }

    fn dispatch(&mut self) -> Option<SseEvent> {
        let raw = self.buf.split_to(self.scan).freeze();
        self.scan = 0;
        if !self.has_fields {
            return None;
        }
        self.has_fields = false;
        Some(SseEvent {
            raw,
            data: std::mem::take(&mut self.data),
            id: self.id.take(),
            event: self.event.take(),
            has_data: std::mem::take(&mut self.has_data),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(chunks: &[&[u8]]) -> Vec<SseEvent> {
        let mut parser = SseParser::default();
        chunks.iter().flat_map(|c| parser.feed(c)).collect()
    }

    #[test]
    fn one_event_keeps_its_raw_bytes_and_fields() {
        let events = all(&[b"event: message\nid: 7\ndata: {\"a\":1}\n\n"]);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].data, b"{\"a\":1}");
        assert_eq!(events[0].id.as_deref(), Some("7"));
        assert_eq!(events[0].event.as_deref(), Some("message"));
        assert_eq!(
            &events[0].raw[..],
            b"event: message\nid: 7\ndata: {\"a\":1}\n\n"
        );
    }

    #[test]
    fn events_split_across_chunks_at_every_byte_parse_the_same() {
        let stream: &[u8] = b"data: {\"x\":\r\ndata:2}\r\n\r\n: ping\n\ndata: b\r\r\n";
        let whole = all(&[stream]);
        for split in 1..stream.len() {
            let parts = all(&[&stream[..split], &stream[split..]]);
            assert_eq!(parts, whole, "split at {split}");
        }
        assert_eq!(whole.len(), 3);
        assert_eq!(whole[0].data, b"{\"x\":\n2}");
        assert!(
            !whole[1].has_data,
            "a comment-only event is kept for keep-alives"
        );
        assert_eq!(whole[2].data, b"b");
    }

    #[test]
    fn a_byte_by_byte_feed_yields_the_same_events() {
        let stream: &[u8] = b"id: 1\ndata: one\ndata: two\n\nretry: 10\ndata:three\n\n";
        let mut parser = SseParser::default();
        let events: Vec<_> = stream.iter().flat_map(|b| parser.feed(&[*b])).collect();
        assert_eq!(events, all(&[stream]));
        assert_eq!(events[0].data, b"one\ntwo");
        assert_eq!(events[1].data, b"three");
        assert!(events[1].raw.starts_with(b"retry: 10\n"));
    }

    #[test]
    fn an_unfinished_event_is_not_dispatched() {
        let mut parser = SseParser::default();
        assert!(parser.feed(b"data: partial").is_empty());
        assert!(parser.feed(b"\n").is_empty());
        assert_eq!(parser.feed(b"\n").len(), 1);
    }

    #[test]
    fn with_data_rewrites_one_event() {
        let event = &all(&[b"event: message\nid: 3\ndata: old\n\n"])[0];
        assert_eq!(
            &event.with_data(b"new")[..],
            b"event: message\nid: 3\ndata: new\n\n"
        );
    }

    proptest::proptest! {
        #[test]
        fn any_chunking_of_any_stream_yields_the_same_events(
            lines in proptest::collection::vec("(data|id|event|retry|:)?:? ?[a-z{}\"0-9 ]{0,12}", 0..12),
            endings in proptest::collection::vec(0usize..3, 12),
            cuts in proptest::collection::vec(0usize..200, 0..8),
        ) {
            let mut stream = Vec::new();
            for (line, ending) in lines.iter().zip(&endings) {
                stream.extend_from_slice(line.as_bytes());
                stream.extend_from_slice([&b"\n"[..], b"\r\n", b"\n\n"][*ending]);
            }
            let whole = all(&[&stream]);
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (stream.len() + 1)).collect();
            cuts.sort_unstable();
            let mut chunks = Vec::new();
            let mut from = 0;
            for cut in cuts {
                chunks.push(&stream[from..cut]);
                from = cut;
            }
            chunks.push(&stream[from..]);
            proptest::prop_assert_eq!(all(&chunks), whole);
        }
    }
}
