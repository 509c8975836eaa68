//! The room's history on disk, for a single server: an SQLite database beside the config file
//! (`secureconfig.history.db` for `secureconfig.json`).
//!
//! SQLite (through `rusqlite`, with SQLite built in) because it is the most tested embedded
//! database there is, an owner can open the file with the `sqlite3` shell to see or export what
//! is kept, and trimming by count and by age is one `DELETE` each.
//!
//! The room never waits for the disk: [`HistoryDb::append`] hands the message to a thread of
//! its own through a bounded queue, and that thread gathers what comes within 10 ms of the
//! first message and writes it in one transaction (WAL journal, `synchronous=NORMAL`). A
//! message is on disk, safe from a killed process, once its transaction commits: a `kill -9`
//! loses at most the messages accepted in the last moment, about 10 ms of them (measured in
//! `docs/BENCHMARKS.md`). A power cut may
//! also lose the last transactions the OS had not written yet (`synchronous=NORMAL`); the file
//! stays consistent either way. If the disk falls so far behind that the queue fills, messages
//! are delivered and kept in memory but not written, and counted ([`HistoryDb::unwritten`]).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clichat_proto::{HistoryEntry, Stamp};
use rusqlite::{Connection, OptionalExtension, params};
use tracing::warn;

use crate::config::HistoryConfig;

/// Messages waiting for the writer, at most.
const QUEUE: usize = 65_536;
/// Commands written in one transaction, at most.
const BATCH: usize = 4_096;
/// How long the writer gathers messages after the first before it commits them together: at
/// most this much of the last moment is lost to a killed process, and a busy room costs at
/// most a hundred transactions a second.
const GATHER: Duration = Duration::from_millis(10);
/// How often messages past `keep` are dropped (between, the file holds a little more).
const TRIM_EVERY: Duration = Duration::from_secs(1);
/// How often messages past their age are dropped.
const AGE_TRIM_EVERY: Duration = Duration::from_secs(60);

/// Why the history file could not be used.
#[derive(Debug, thiserror::Error)]
#[error("{}: {source}", path.display())]
pub struct HistoryDbError {
    /// The file.
    pub path: PathBuf,
    /// What went wrong.
    #[source]
    pub source: rusqlite::Error,
}

/// The history file, open, and its writer thread.
#[derive(Debug)]
pub struct HistoryDb {
    queue: SyncSender<Command>,
    writer: Mutex<Option<JoinHandle<()>>>,
    unwritten: AtomicU64,
}

/// What the file held when it was opened.
#[derive(Debug)]
pub struct Opened {
    /// The file, ready for new messages.
    pub db: HistoryDb,
    /// Its newest messages (at most `keep`, none older than `max_age_hours`), oldest first.
    pub recent: Vec<HistoryEntry>,
    /// The number the next message gets: one more than any message ever kept in the file,
    /// cleared or not, so that numbers keep growing across restarts and clears.
    pub next_seq: u64,
}

enum Command {
    Append(HistoryEntry),
    Clear,
    Close,
}

/// Unix milliseconds now.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
        })
}

impl HistoryDb {
    /// The history file that goes with a config file.
    pub fn path_for(config: &Path) -> PathBuf {
        let stem = config.file_stem().unwrap_or_default().to_string_lossy();
        config.with_file_name(format!("{stem}.history.db"))
    }

    /// Opens (or creates) the file, reads what it keeps, and starts the writer.
    ///
    /// # Errors
    /// The file cannot be opened, created or read as a history file.
    pub fn open(path: &Path, config: HistoryConfig) -> Result<Opened, HistoryDbError> {
        let fail = |source| HistoryDbError {
            path: path.to_owned(),
            source,
        };
        let conn = Connection::open(path).map_err(fail)?;
        // Held from the first write to the close: no other process (a second server on the
        // same config, `history clear` while this one runs) can change the file underneath.
        conn.pragma_update(None, "locking_mode", "EXCLUSIVE")
            .map_err(fail)?;
        let (recent, next_seq) = prepare(&conn, config).map_err(fail)?;
        conn.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES ('next_seq', ?1)",
            params![next_seq as i64],
        )
        .map_err(fail)?;
        let (queue, commands) = mpsc::sync_channel(QUEUE);
        let writer = Writer {
            conn,
            config,
            path: path.to_owned(),
            next_seq,
            trimmed: std::time::Instant::now(),
            age_trimmed: std::time::Instant::now(),
        };
        let thread = std::thread::Builder::new()
            .name("history-db".into())
            .spawn(move || writer.run(commands))
            .map_err(|error| fail(rusqlite::Error::ToSqlConversionFailure(Box::new(error))))?;
        let db = HistoryDb {
            queue,
            writer: Mutex::new(Some(thread)),
            unwritten: AtomicU64::new(0),
        };
        Ok(Opened {
            db,
            recent,
            next_seq,
        })
    }

    /// Queues a message to be written; never waits.
    pub fn append(&self, entry: HistoryEntry) {
        match self.queue.try_send(Command::Append(entry)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                if self.unwritten.fetch_add(1, Ordering::Relaxed) == 0 {
                    warn!("the history file falls behind; messages are not all written");
                }
            }
            Err(TrySendError::Disconnected(_)) => {
                self.unwritten.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Messages not written because the writer fell behind (or stopped), since the start.
    pub fn unwritten(&self) -> u64 {
        self.unwritten.load(Ordering::Relaxed)
    }

    /// Drops every message kept (after those queued before it are written). Numbers go on
    /// from where they were.
    pub fn clear(&self) {
        // Waits for room rather than lose it: a clear is rare, and is never called by the room.
        let _ = self.queue.send(Command::Clear);
    }

    /// Writes what is queued and stops the writer; later appends are not written. Blocks until
    /// the last transaction commits.
    pub fn close(&self) {
        let _ = self.queue.send(Command::Close);
        let thread = self.writer.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }

    /// Drops every message kept in the file at `path`, while no server has it open; returns
    /// how many there were. A file that does not exist holds none.
    ///
    /// # Errors
    /// The file exists but cannot be opened or written as a history file.
    pub fn clear_file(path: &Path) -> Result<usize, HistoryDbError> {
        if !path.exists() {
            return Ok(0);
        }
        let fail = |source| HistoryDbError {
            path: path.to_owned(),
            source,
        };
        let conn = Connection::open(path).map_err(fail)?;
        prepare(&conn, HistoryConfig::default()).map_err(fail)?;
        conn.execute("DELETE FROM messages", []).map_err(fail)
    }
}

impl Drop for HistoryDb {
    fn drop(&mut self) {
        self.close();
    }
}

/// Sets the file up (creating its tables) and reads what it keeps.
fn prepare(conn: &Connection, config: HistoryConfig) -> rusqlite::Result<(Vec<HistoryEntry>, u64)> {
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS messages (
             seq INTEGER PRIMARY KEY,
             time_ms INTEGER NOT NULL,
             name TEXT NOT NULL,
             text TEXT NOT NULL
         );
         CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);",
    )?;
    let stored: Option<i64> = conn
        .query_row("SELECT value FROM meta WHERE key = 'next_seq'", [], |row| {
            row.get(0)
        })
        .optional()?;
    let newest: Option<i64> =
        conn.query_row("SELECT MAX(seq) FROM messages", [], |row| row.get(0))?;
    let next_seq = stored
        .unwrap_or(1)
        .max(newest.map_or(1, |seq| seq.saturating_add(1)))
        .max(1);
    let cutoff = now_ms().saturating_sub(ms(config.max_age()));
    let mut query = conn.prepare(
        "SELECT seq, time_ms, name, text FROM messages WHERE time_ms >= ?1
         ORDER BY seq DESC LIMIT ?2",
    )?;
    let mut recent = query
        .query_map(params![cutoff as i64, config.keep as i64], |row| {
            Ok(HistoryEntry {
                stamp: Stamp {
                    seq: row.get::<_, i64>(0)? as u64,
                    time_ms: row.get::<_, i64>(1)? as u64,
                },
                from: row.get(2)?,
                text: row.get(3)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    recent.reverse();
    Ok((recent, next_seq as u64))
}

fn ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// The writer thread's state.
struct Writer {
    conn: Connection,
    config: HistoryConfig,
    path: PathBuf,
    /// One more than the newest message written.
    next_seq: u64,
    trimmed: std::time::Instant,
    age_trimmed: std::time::Instant,
}

impl Writer {
    fn run(mut self, commands: Receiver<Command>) {
        while let Ok(first) = commands.recv() {
            // Asleep rather than waiting on the queue: the room's appends meanwhile wake
            // nobody, so a busy room costs one wake-up per batch, not one per message.
            if !matches!(first, Command::Close) {
                std::thread::sleep(GATHER);
            }
            let mut batch = vec![first];
            while batch.len() < BATCH {
                match commands.try_recv() {
                    Ok(command) => batch.push(command),
                    Err(_) => break,
                }
            }
            let closing = batch
                .iter()
                .any(|command| matches!(command, Command::Close));
            if let Err(error) = self.write(batch, closing) {
                warn!(path = %self.path.display(), %error, "could not write the history file");
            }
            if closing {
                break;
            }
        }
    }

    /// Writes one batch in one transaction, and now and then (and when `closing`) trims what is
    /// past `keep`, and less often what is past its age.
    fn write(&mut self, batch: Vec<Command>, closing: bool) -> rusqlite::Result<()> {
        let tx = self.conn.transaction()?;
        let mut cleared = false;
        {
            let mut insert = tx.prepare_cached(
                "INSERT OR REPLACE INTO messages (seq, time_ms, name, text) VALUES (?1, ?2, ?3, ?4)",
            )?;
            for command in batch {
                match command {
                    Command::Append(entry) => {
                        insert.execute(params![
                            entry.stamp.seq as i64,
                            entry.stamp.time_ms as i64,
                            entry.from,
                            entry.text
                        ])?;
                        self.next_seq = self.next_seq.max(entry.stamp.seq.saturating_add(1));
                    }
                    Command::Clear => {
                        tx.execute("DELETE FROM messages", [])?;
                        // The newest message's number is gone with it: kept here instead.
                        cleared = true;
                    }
                    Command::Close => {}
                }
            }
        }
        let trim = closing || self.trimmed.elapsed() >= TRIM_EVERY;
        let age_trim = self.age_trimmed.elapsed() >= AGE_TRIM_EVERY;
        if cleared || trim || age_trim {
            // Whenever messages may be deleted: the next number must survive the newest
            // message. Between, the newest message kept says it.
            tx.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('next_seq', ?1)",
                params![self.next_seq as i64],
            )?;
        }
        if trim {
            self.trimmed = std::time::Instant::now();
            let oldest_kept = self.next_seq.saturating_sub(self.config.keep as u64);
            tx.execute(
                "DELETE FROM messages WHERE seq < ?1",
                params![oldest_kept as i64],
            )?;
        }
        if age_trim {
            self.age_trimmed = std::time::Instant::now();
            let cutoff = now_ms().saturating_sub(ms(self.config.max_age()));
            // Numbers and times grow together, so everything before the first young message
            // is old; without an index on time, this reads only the rows it deletes.
            tx.execute(
                "DELETE FROM messages WHERE seq < COALESCE(
                     (SELECT seq FROM messages WHERE time_ms >= ?1 ORDER BY seq LIMIT 1),
                     ?2)",
                params![cutoff as i64, self.next_seq as i64],
            )?;
        }
        tx.commit()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Message `seq` by `a`, said at `time_ms`, for the tests of what keeps history.
    pub(crate) fn entry(seq: u64, time_ms: u64) -> HistoryEntry {
        HistoryEntry {
            stamp: Stamp { seq, time_ms },
            from: "a".into(),
            text: format!("m{seq}"),
        }
    }

    #[test]
    fn keeps_the_newest_across_reopening_and_numbers_survive_a_clear() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.db");
        let config = HistoryConfig {
            on_join: 2,
            keep: 3,
            max_age_hours: 1,
        };
        let opened = HistoryDb::open(&path, config).unwrap();
        assert_eq!(opened.next_seq, 1);
        let now = now_ms();
        for seq in 1..=5 {
            opened.db.append(entry(seq, now));
        }
        opened.db.close();
        let opened = HistoryDb::open(&path, config).unwrap();
        let seqs: Vec<u64> = opened.recent.iter().map(|e| e.stamp.seq).collect();
        assert_eq!(seqs, [3, 4, 5]);
        assert_eq!(opened.next_seq, 6);
        opened.db.clear();
        opened.db.close();
        let opened = HistoryDb::open(&path, config).unwrap();
        assert!(opened.recent.is_empty());
        assert_eq!(opened.next_seq, 6, "numbers go on after a clear");
    }

    #[test]
    fn old_messages_are_not_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.db");
        let config = HistoryConfig {
            on_join: 5,
            keep: 10,
            max_age_hours: 1,
        };
        let opened = HistoryDb::open(&path, config).unwrap();
        let now = now_ms();
        opened.db.append(entry(1, now - 2 * 3_600_000));
        opened.db.append(entry(2, now));
        opened.db.close();
        let opened = HistoryDb::open(&path, config).unwrap();
        let seqs: Vec<u64> = opened.recent.iter().map(|e| e.stamp.seq).collect();
        assert_eq!(seqs, [2]);
        drop(opened);
        assert_eq!(HistoryDb::clear_file(&path).unwrap(), 2);
    }
}
