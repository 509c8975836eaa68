//! Frames for the room, serialized and framed once for every receiver.

use std::sync::Arc;

use tungstenite::protocol::frame::FrameHeader;
use tungstenite::protocol::frame::coding::{Data, OpCode};

/// A frame for the room, serialized once and framed once: the JSON text and the header of the
/// WebSocket text frame that carries it. A server's frames are not masked, so the header and
/// text are the same bytes for every receiver, and a session copies them to its socket as they
/// are. Cloning is a reference-count increment.
///
/// One pointer wide, so that the room's ring of frames stays small.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload(Arc<Framed>);

#[derive(Debug, PartialEq, Eq)]
struct Framed {
    /// The frame header: 2 bytes, or 4 for a text of 126 bytes or more (10 past 64 KiB).
    head: [u8; MAX_HEAD],
    head_len: usize,
    text: String,
}

/// The longest header of an unmasked WebSocket frame.
const MAX_HEAD: usize = 10;

impl Payload {
    /// The frame's text.
    pub fn as_str(&self) -> &str {
        &self.0.text
    }

    /// The whole WebSocket frame, as written to a socket: its header, then its text.
    pub fn wire(&self) -> [&[u8]; 2] {
        [&self.0.head[..self.0.head_len], self.0.text.as_bytes()]
    }
}

impl From<String> for Payload {
    fn from(text: String) -> Payload {
        let header = FrameHeader {
            opcode: OpCode::Data(Data::Text),
            ..FrameHeader::default()
        };
        let mut head = [0; MAX_HEAD];
        let mut rest = &mut head[..];
        header
            .format(text.len() as u64, &mut rest)
            .expect("an unmasked frame header fits in 10 bytes");
        let head_len = MAX_HEAD - rest.len();
        Payload(Arc::new(Framed {
            head,
            head_len,
            text,
        }))
    }
}

impl PartialEq<&str> for Payload {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every header length (7-bit, 16-bit and 64-bit payload lengths) parses back as one
    /// final, unmasked text frame carrying exactly the text.
    #[test]
    fn payloads_are_whole_text_frames() {
        for len in [0, 125, 126, 200, 65_535, 65_536, 70_000] {
            let text = "x".repeat(len);
            let payload = Payload::from(text.clone());
            let [head, body] = payload.wire();
            let mut wire = std::io::Cursor::new([head, body].concat());
            let (header, length) = FrameHeader::parse(&mut wire).unwrap().unwrap();
            assert!(header.is_final && header.mask.is_none(), "{len}");
            assert_eq!(header.opcode, OpCode::Data(Data::Text), "{len}");
            assert_eq!(length, len as u64);
            assert_eq!(wire.position() as usize, head.len());
            assert_eq!(body, text.as_bytes());
        }
    }
}
