//! Fuzzes the frame codec: any UTF-8 text decodes, with both decoders, to a frame or a typed
//! `DecodeError` (never a panic), both decoders agree on which texts have no frame shape, and a
//! decoded frame re-encodes to text that decodes to the same frame.
//!
//! Known finding: without serde_json's `float_roundtrip` feature, a float is parsed up to one
//! unit in the last place off (`4.5e300` reads as `4.5000000000000005e300`, which reads back as
//! `4.500000000000001e300`), so a float inside a `ServerFrame::Unknown` drifts on every pass.
//! Until that feature is on, [`EXACT_FLOATS`] is `false` and floats are compared to within
//! [`MAX_ULPS`] units in the last place (the most one pass drifts); everything else must match
//! exactly.
//!
//! Known finding: with serde_json's `raw_value` feature (which axum turns on in the server's
//! build), an object whose first key is `$serde_json::private::RawValue` is not an object: its
//! string value is parsed as JSON in its place. A frame holding that key anywhere may not
//! survive a round trip; until the codec parses without that magic, [`RAW_VALUE_KEY_BUG`] skips
//! such frames.

#![no_main]

use clichat_proto::{ClientFrame, ServerFrame};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// Whether floats must survive a round trip bit for bit (needs serde_json's `float_roundtrip`).
const EXACT_FLOATS: bool = true;
/// How far a float may drift in one pass, in units in the last place, while [`EXACT_FLOATS`]
/// is `false`.
const MAX_ULPS: u64 = 2;
/// Whether frames holding serde_json's magic raw-value key are exempt from the round trip.
const RAW_VALUE_KEY_BUG: bool = false;
/// The key serde_json (with `raw_value`) reads as "parse my value as JSON in my place".
const RAW_VALUE_KEY: &str = "$serde_json::private::RawValue";

fuzz_target!(|data: &[u8]| {
    // WebSocket text frames are UTF-8 by the time they reach the codec (tungstenite checks).
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let client = ClientFrame::decode(text);
    let server = ServerFrame::decode(text);
    // The shape check is shared: both decoders fail, with the same error, or neither does.
    assert_eq!(client.as_ref().err(), server.as_ref().err(), "{text:?}");

    if let Ok(frame) = client {
        let encoded = frame.encode();
        let again = ClientFrame::decode(&encoded)
            .unwrap_or_else(|e| panic!("client frame {frame:?} encoded as {encoded:?}: {e}"));
        assert_eq!(again, frame, "client frame from {text:?} via {encoded:?}");
    }
    if let Ok(frame) = server {
        if RAW_VALUE_KEY_BUG && holds_raw_value_key(&frame) {
            return;
        }
        let encoded = frame.encode();
        let again = ServerFrame::decode(&encoded)
            .unwrap_or_else(|e| panic!("server frame {frame:?} encoded as {encoded:?}: {e}"));
        assert!(
            same_server_frame(&again, &frame),
            "server frame from {text:?} via {encoded:?}: {again:?} != {frame:?}"
        );
    }
});

fn same_server_frame(a: &ServerFrame, b: &ServerFrame) -> bool {
    match (a, b) {
        (
            ServerFrame::Unknown { kind, args },
            ServerFrame::Unknown {
                kind: kind_b,
                args: args_b,
            },
        ) if !EXACT_FLOATS => {
            kind == kind_b
                && args.len() == args_b.len()
                && args.iter().zip(args_b).all(|(a, b)| same_value(a, b))
        }
        _ => a == b,
    }
}

/// Equal JSON values, floats to within [`MAX_ULPS`].
fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) if x.is_f64() && y.is_f64() => {
            let (x, y) = (x.as_f64().unwrap_or(0.0), y.as_f64().unwrap_or(0.0));
            let ulps = (x.to_bits() as i64).wrapping_sub(y.to_bits() as i64);
            x == y
                || (x.is_sign_negative() == y.is_sign_negative() && ulps.unsigned_abs() <= MAX_ULPS)
        }
        (Value::Array(xs), Value::Array(ys)) => {
            xs.len() == ys.len() && xs.iter().zip(ys).all(|(x, y)| same_value(x, y))
        }
        (Value::Object(xs), Value::Object(ys)) => {
            xs.len() == ys.len()
                && xs
                    .iter()
                    .zip(ys)
                    .all(|((kx, x), (ky, y))| kx == ky && same_value(x, y))
        }
        _ => a == b,
    }
}

fn holds_raw_value_key(frame: &ServerFrame) -> bool {
    fn in_value(value: &Value) -> bool {
        match value {
            Value::Array(items) => items.iter().any(in_value),
            Value::Object(map) => map.iter().any(|(k, v)| k == RAW_VALUE_KEY || in_value(v)),
            _ => false,
        }
    }
    matches!(frame, ServerFrame::Unknown { args, .. } if args.iter().any(in_value))
}
