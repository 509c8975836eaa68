//! Reading the room stream: what the other nodes wrote, in order, handed to the hub as events;
//! and where a node reads on from after a reconnect ([`Cursor`], [`recover`]).

use clichat_proto::{HistoryEntry, Stamp};
use redis::Value;
use redis::aio::MultiplexedConnection;
use tokio::sync::mpsc;
use tracing::{debug, warn};

use super::pipeline::{key, node_key};
use super::replicas::Replicas;
use super::scripts::Scripts;
use super::worker::Ended;
use crate::hub::{Event, NodeRequest, Payload};

/// Stream entries read at once, at most.
const READ_COUNT: u32 = 1024;
/// How long one read of the stream waits for news, in milliseconds.
pub(super) const READ_BLOCK_MS: u32 = 1000;

/// How long a node's read position (`clichat:node:<id>:read`, written while it waits for
/// replicas) outlives its last read, in seconds.
const READ_MARK_SECS: u32 = 86_400;

/// Nobody reads the events any more: the server is gone.
struct Gone;

/// Where a node is in the room stream: the last entry it delivered, and the highest message
/// number among what it delivered.
#[derive(Debug, Clone)]
pub(super) struct Cursor {
    pub(super) id: String,
    pub(super) seq: u64,
}

/// A stream entry id (`MS-SEQ`) as numbers, to compare; `None` if it is not one.
fn parse_id(id: &str) -> Option<(u64, u64)> {
    let (ms, seq) = id.split_once('-')?;
    Some((ms.parse().ok()?, seq.parse().ok()?))
}

/// After a reconnect: makes the Redis now behind `conn` agree with what this node delivered
/// before, should it have lost its newest writes (restarted without its data, or failed over
/// to a replica that had not caught up while nothing waited for one; see
/// [`super::replicas`]). The message counter is raised to the highest number delivered, so
/// that no number is handed out twice; and a read position past the end of the stream moves
/// back to its end, so that what is written next is not skipped.
pub(super) async fn recover(
    conn: &mut MultiplexedConnection,
    cursor: &mut Cursor,
) -> redis::RedisResult<()> {
    let counter: u64 = redis::cmd("EVALSHA")
        .arg(Scripts::get().raise_seq.hash)
        .arg(1)
        .arg(key("seq"))
        .arg(cursor.seq)
        .query_async(conn)
        .await?;
    if counter < cursor.seq {
        warn!(
            counter,
            delivered = cursor.seq,
            "Redis has lost messages already delivered (restarted without its data, or failed \
             over to a replica that had not caught up); numbers go on after the highest delivered"
        );
    }
    let newest = latest_id(conn).await?;
    if parse_id(&cursor.id) > parse_id(&newest) {
        warn!(
            read = %cursor.id,
            newest = %newest,
            "the room stream ends before where this node had read (Redis has lost its newest \
             writes); reading on from its end"
        );
        cursor.id = newest;
    }
    Ok(())
}

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
    cursor: &mut Cursor,
    events: &mpsc::Sender<Event>,
    replicas: &Replicas,
) -> redis::RedisResult<Ended> {
    loop {
        if read_stream(conn, node, cursor, events, replicas)
            .await?
            .is_err()
        {
            return Ok(Ended::Dropped);
        }
    }
}

/// Reads what is new in the room stream and hands what other nodes wrote to the hub, once a
/// replica has it if the node waits for replicas; the inner `Err` when nobody reads the
/// events any more.
async fn read_stream(
    conn: &mut MultiplexedConnection,
    node: &str,
    cursor: &mut Cursor,
    events: &mpsc::Sender<Event>,
    replicas: &Replicas,
) -> redis::RedisResult<Result<(), Gone>> {
    let reply: Value = redis::cmd("XREAD")
        .arg("COUNT")
        .arg(READ_COUNT)
        .arg("BLOCK")
        .arg(READ_BLOCK_MS)
        .arg("STREAMS")
        .arg(key("room"))
        .arg(cursor.id.as_str())
        .query_async(conn)
        .await?;
    // [[stream, [[id, [field, value, ...]], ...]]], or nil when nothing came.
    let Value::Array(streams) = reply else {
        return Ok(Ok(()));
    };
    let mut read = Vec::new();
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
                read.push((id, event_of(node, fields)));
            }
        }
    }
    if let Some((newest, _)) = read.last() {
        // A write of this connection's own after what it read: a replica that has it has
        // everything before it.
        let mut pipe = redis::pipe();
        pipe.cmd("SET")
            .arg(node_key(node, "read"))
            .arg(newest)
            .arg("EX")
            .arg(READ_MARK_SECS)
            .ignore();
        if replicas.add_wait(&mut pipe) {
            let (acknowledged,): (i64,) = pipe.query_async(conn).await?;
            // None: read again after reconnecting, perhaps from another master.
            replicas.acknowledged(acknowledged)?;
        }
    }
    for (id, event) in read {
        if let Some(event) = event {
            if let Event::Said { entry, .. } = &event {
                cursor.seq = cursor.seq.max(entry.stamp.seq);
            }
            if events.send(event).await.is_err() {
                return Ok(Err(Gone));
            }
        }
        cursor.id = id;
    }
    Ok(Ok(()))
}

/// The newest `count` messages of the history stream, oldest first.
pub(super) async fn recent(
    conn: &mut MultiplexedConnection,
    count: usize,
) -> redis::RedisResult<Vec<HistoryEntry>> {
    let newest: Value = redis::cmd("XREVRANGE")
        .arg(key("history"))
        .arg("+")
        .arg("-")
        .arg("COUNT")
        .arg(count)
        .query_async(conn)
        .await?;
    let Value::Array(entries) = newest else {
        return Ok(Vec::new());
    };
    let mut recent: Vec<HistoryEntry> = entries
        .into_iter()
        .filter_map(|entry| match entry {
            Value::Array(mut entry) => match entry.pop() {
                Some(Value::Array(fields)) => Fields::of(fields).message(),
                _ => None,
            },
            _ => None,
        })
        .collect();
    recent.reverse();
    Ok(recent)
}

/// The fields of one stream entry, by name: `o` origin node, then `f` frame, `c` request, or a
/// numbered message (`m` member, `s` number, `t` time, `u` name, `x` text).
#[derive(Default)]
struct Fields {
    origin: Option<Vec<u8>>,
    body: Option<(u8, Vec<u8>)>,
    member: Option<Vec<u8>>,
    seq: Option<Vec<u8>>,
    time: Option<Vec<u8>>,
    name: Option<Vec<u8>>,
    text: Option<Vec<u8>>,
}

impl Fields {
    fn of(fields: Vec<Value>) -> Fields {
        let mut parsed = Fields::default();
        let mut fields = fields.into_iter();
        while let (Some(name), Some(value)) = (fields.next(), fields.next()) {
            let (Value::BulkString(name), Value::BulkString(value)) = (name, value) else {
                continue;
            };
            match name.as_slice() {
                b"o" => parsed.origin = Some(value),
                b"f" | b"c" => parsed.body = Some((name[0], value)),
                b"m" => parsed.member = Some(value),
                b"s" => parsed.seq = Some(value),
                b"t" => parsed.time = Some(value),
                b"u" => parsed.name = Some(value),
                b"x" => parsed.text = Some(value),
                _ => {}
            }
        }
        parsed
    }

    /// The numbered message, if the entry is one.
    fn message(&self) -> Option<HistoryEntry> {
        let number =
            |bytes: &Option<Vec<u8>>| std::str::from_utf8(bytes.as_deref()?).ok()?.parse().ok();
        let text = |bytes: &Option<Vec<u8>>| String::from_utf8(bytes.clone()?).ok();
        Some(HistoryEntry {
            stamp: Stamp {
                seq: number(&self.seq)?,
                time_ms: number(&self.time)?,
            },
            from: text(&self.name)?,
            text: text(&self.text)?,
        })
    }
}

/// What one stream entry means for this node, if anything.
fn event_of(node: &str, fields: Vec<Value>) -> Option<Event> {
    let fields = Fields::of(fields);
    if let Some(entry) = fields.message() {
        // Numbered messages come back to the node that wrote them too: it delivers them in
        // the room's order, like everyone's, but not to their sender.
        let ours = fields.origin.as_deref() == Some(node.as_bytes());
        let member = fields
            .member
            .as_deref()
            .and_then(|m| std::str::from_utf8(m).ok());
        let sender = member.and_then(|m| m.parse().ok()).filter(|_| ours);
        return Some(Event::Said { sender, entry });
    }
    let (origin, (kind, body)) = fields.origin.zip(fields.body)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_ids_compare_as_numbers() {
        assert_eq!(parse_id("0-0"), Some((0, 0)));
        assert!(parse_id("1700000000000-10") > parse_id("1700000000000-9"));
        assert!(parse_id("1700000000001-0") > parse_id("999999999999-5"));
        assert_eq!(parse_id("garbage"), None);
    }
}
