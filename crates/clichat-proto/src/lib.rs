//! The CLIChat wire protocol: frame types and their JSON codec.
//!
//! Every CLIChat frame is a WebSocket text frame holding a JSON array whose first element names
//! the frame type: `["msg", {"id": 3, "msg": "hi"}]`. This crate is the one place that knows
//! that shape, so the server, the client library and the benchmark speak the same format by
//! construction. It has no runtime dependencies (serde only).
//!
//! Decoding is deliberately lenient where the original CLIChat was: extra trailing elements are
//! ignored, object keys may come in any order, and arguments of the wrong type decode to `None`
//! fields instead of errors, so that the server (not the codec) decides what such a frame means.
//! Only a frame without a recognizable shape (not JSON, not an array, no string type) is a
//! [`DecodeError`]. Unknown frame types decode to an `Unknown` variant, never an error, so that
//! future frames do not break old peers.
//!
//! ```
//! use clichat_proto::{ClientFrame, ServerFrame};
//!
//! // A bot's login, as it goes on the wire...
//! let login = ClientFrame::BotAuth { name: Some("echo".into()), token: Some("t0ken".into()) };
//! assert_eq!(login.encode(), r#"["botauth",{"bottoken":"t0ken","botusername":"echo"}]"#);
//!
//! // ...and what a server may answer; spacing and extra elements do not matter.
//! let answer = ServerFrame::decode(r#"[ "id", 7, "v1", "extra" ]"#).unwrap();
//! assert_eq!(answer, ServerFrame::Id { id: 7, version: Some("v1".into()) });
//! ```
//!
//! # Layout
//! - [`client`]: frames a client sends ([`ClientFrame`]).
//! - [`server`]: frames a server sends ([`ServerFrame`]).
//! - [`refusal`]: the refusal texts, byte for byte as bots match on them.

pub mod client;
pub mod refusal;
pub mod server;

pub use client::ClientFrame;
pub use server::{HistoryEntry, ResumeToken, ServerFrame, Stamp};

/// The WebSocket close code a server sends when it is restarting (or a node of a cluster is
/// leaving): the client should reconnect and resume (`1012`, "Service Restart").
pub const CLOSE_RESTARTING: u16 = 1012;

use serde_json::Value;

/// Why a text could not be decoded as a CLIChat frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The text is not valid JSON.
    #[error("frame is not valid JSON: {0}")]
    Json(String),
    /// The JSON value is not an array.
    #[error("frame is not a JSON array")]
    NotArray,
    /// The array is empty, so it names no frame type.
    #[error("frame is an empty array")]
    Empty,
    /// The first element of the array is not a string.
    #[error("frame type is not a string")]
    TypeNotString,
}

/// Splits a frame into its type and its arguments (the elements after the type).
fn split(text: &str) -> Result<(String, Vec<Value>), DecodeError> {
    let Plain(value) = serde_json::from_str(text).map_err(|e| DecodeError::Json(e.to_string()))?;
    let Value::Array(mut items) = value else {
        return Err(DecodeError::NotArray);
    };
    if items.is_empty() {
        return Err(DecodeError::Empty);
    }
    let Value::String(kind) = items.remove(0) else {
        return Err(DecodeError::TypeNotString);
    };
    Ok((kind, items))
}

/// A JSON value read as plain JSON. `serde_json::Value`'s own reader gives one object key a
/// hidden meaning when serde_json's `raw_value` feature is on (as it is in the server, through
/// axum): `{"$serde_json::private::RawValue": "..."}` is replaced by the JSON inside the string,
/// so a frame could carry a login no other JSON reader would see. This reader has no such key.
struct Plain(Value);

impl<'de> serde::Deserialize<'de> for Plain {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Plain, D::Error> {
        deserializer.deserialize_any(PlainVisitor).map(Plain)
    }
}

struct PlainVisitor;

impl<'de> serde::de::Visitor<'de> for PlainVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        serde::Deserialize::deserialize(d).map(|Plain(v)| v)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(Plain(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = serde_json::Map::new();
        while let Some((key, Plain(value))) = map.next_entry::<String, Plain>()? {
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

/// The string at `key` of an object argument, if the argument is an object and the value is a
/// string.
fn str_field(arg: Option<&Value>, key: &str) -> Option<String> {
    arg?.get(key)?.as_str().map(str::to_owned)
}

/// The string argument at `index`, if present and a string.
fn str_arg(args: &[Value], index: usize) -> Option<String> {
    args.get(index)?.as_str().map(str::to_owned)
}

/// Serializes a frame given as a serde-serializable tuple. Serializing strings and integers
/// into a `String` cannot fail, so this never panics in practice.
fn encode_tuple(frame: &impl serde::Serialize) -> String {
    serde_json::to_string(frame).unwrap_or_else(|_| String::from("[]"))
}
