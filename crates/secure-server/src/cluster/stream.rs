//! Reading the room stream: what the other nodes wrote, in order, handed to the hub as events.

use redis::Value;
use redis::aio::MultiplexedConnection;
use tokio::sync::mpsc;
use tracing::debug;

use super::pipeline::key;
use super::worker::Ended;
use crate::hub::{Event, NodeRequest, Payload};

/// Stream entries read at once, at most.
const READ_COUNT: u32 = 1024;
/// How long one read of the stream waits for news, in milliseconds.
pub(super) const READ_BLOCK_MS: u32 = 1000;

/// Nobody reads the events any more: the server is gone.
struct Gone;

/// The newest entry of the room stream, or `0-0`: where a starting node begins to read.
pub(super) async fn latest_id(conn: &mut MultiplexedConnection) -> redis::RedisResult<String> {
    let newest: Value = redis::cmd("XREVRANGE")
        .arg(key("room"))
        .arg("+")
        .arg("-")
        .arg("COUNT")
        .arg(1)
        .query_async(conn)
        .await?;
    let id = match newest {
        Value::Array(entries) => entries.into_iter().next().and_then(|entry| match entry {
            Value::Array(mut parts) if !parts.is_empty() => {
                redis::from_redis_value::<String>(&parts.swap_remove(0)).ok()
            }
            _ => None,
        }),
        _ => None,
    };
    Ok(id.unwrap_or_else(|| "0-0".to_owned()))
}

/// Reads the room stream until reading fails.
pub(super) async fn read_forever(
    conn: &mut MultiplexedConnection,
    node: &str,
    last_id: &mut String,
    events: &mpsc::Sender<Event>,
) -> redis::RedisResult<Ended> {
    loop {
        if read_stream(conn, node, last_id, events).await?.is_err() {
            return Ok(Ended::Dropped);
        }
    }
}

/// Reads what is new in the room stream and hands what other nodes wrote to the hub; the inner
/// `Err` when nobody reads the events any more.
async fn read_stream(
    conn: &mut MultiplexedConnection,
    node: &str,
    last_id: &mut String,
    events: &mpsc::Sender<Event>,
) -> redis::RedisResult<Result<(), Gone>> {
    let reply: Value = redis::cmd("XREAD")
        .arg("COUNT")
        .arg(READ_COUNT)
        .arg("BLOCK")
        .arg(READ_BLOCK_MS)
        .arg("STREAMS")
        .arg(key("room"))
        .arg(last_id.as_str())
        .query_async(conn)
        .await?;
    // [[stream, [[id, [field, value, ...]], ...]]], or nil when nothing came.
    let Value::Array(streams) = reply else {
        return Ok(Ok(()));
    };
    for stream in streams {
        let Value::Array(mut parts) = stream else {
            continue;
        };
        let Some(Value::Array(entries)) = parts.pop() else {
            continue;
        };
        for entry in entries {
            let Value::Array(mut entry) = entry else {
                continue;
            };
            let (Some(Value::Array(fields)), Some(id)) = (entry.pop(), entry.pop()) else {
                continue;
            };
            if let Ok(id) = redis::from_redis_value::<String>(&id) {
                *last_id = id;
            }
            if let Some(event) = event_of(node, fields) {
                if events.send(event).await.is_err() {
                    return Ok(Err(Gone));
                }
            }
        }
    }
    Ok(Ok(()))
}

/// What one stream entry (`o` origin, then `f` frame or `c` request) means for this node, if
/// anything.
fn event_of(node: &str, fields: Vec<Value>) -> Option<Event> {
    let mut origin = None;
    let mut body = None;
    let mut fields = fields.into_iter();
    while let (Some(name), Some(value)) = (fields.next(), fields.next()) {
        let (Value::BulkString(name), Value::BulkString(value)) = (name, value) else {
            continue;
        };
        match name.as_slice() {
            b"o" => origin = Some(value),
            b"f" | b"c" => body = Some((name[0], value)),
            _ => {}
        }
    }
    let (origin, (kind, body)) = origin.zip(body)?;
    let body = String::from_utf8(body).ok()?;
    match kind {
        // Frames from this node's members were delivered here when they were made.
        b'f' if origin != node.as_bytes() => Some(Event::Deliver(Payload::from(body))),
        b'c' => match serde_json::from_str::<NodeRequest>(&body) {
            Ok(request) => Some(Event::Request(request)),
            Err(error) => {
                debug!(?error, "ignored an unreadable request from another node");
                None
            }
        },
        _ => None,
    }
}
