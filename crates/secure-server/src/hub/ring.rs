//! The room's outbound frames: one ring shared by every member, and a cursor for each.
//!
//! A frame for the room is pushed once, whatever the number of receivers; each member's
//! session reads the frames after its cursor and copies their bytes straight into its
//! socket's write buffer, under the ring's lock, without a reference count or a queue push per
//! receiver. The ring keeps the newest `capacity` frames (`outbound_queue` in the config); a
//! member whose cursor falls further behind than that is a slow consumer, found by the push
//! that would overwrite what it has not read.
//!
//! A session that has read everything and waits says so ([`Cursor::ready`]); a push wakes only
//! the sessions waiting, so a session that gathers frames for a while (`session::gather`) is
//! not woken by each of them.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::Poll;

use futures_util::task::AtomicWaker;

use super::Payload;

/// The room's newest frames, each with the member it is not for (its sender).
#[derive(Debug)]
pub(super) struct Ring {
    frames: Mutex<Frames>,
    /// The number the next frame pushed will have: a reader has something new while its
    /// cursor is below it. Written under the lock, read without it.
    next: AtomicU64,
    capacity: usize,
}

#[derive(Debug, Default)]
struct Frames {
    /// The newest frames, oldest first; the last has number `next - 1`.
    slots: VecDeque<Slot>,
}

#[derive(Debug)]
struct Slot {
    /// The member the frame is not for (its sender); 0 for none.
    except: u64,
    /// The frame as the original protocol has it.
    plain: Payload,
    /// Its numbered form, for members that asked for history, when it is a message.
    stamped: Option<Payload>,
}

/// One member's place in the ring, shared by the room (which wakes it and checks it keeps up)
/// and its session (which reads).
#[derive(Debug)]
pub(super) struct Reader {
    /// The number of the next frame it reads.
    cursor: AtomicU64,
    /// It has read everything and its session waits to be woken.
    waiting: AtomicBool,
    waker: AtomicWaker,
    /// The member was removed from the room: its session reads nothing more.
    closed: AtomicBool,
}

impl Reader {
    /// Wakes the member's session if it waits for frames.
    pub(super) fn wake(&self) {
        // A plain load first: a session that is gathering (or busy) costs the push no write.
        if self.waiting.load(Ordering::SeqCst) {
            self.waiting.store(false, Ordering::Relaxed);
            self.waker.wake();
        }
    }

    /// Closes the member's reading and wakes its session: it was removed from the room.
    pub(super) fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.waker.wake();
    }

    /// Whether it has fallen so far behind that the ring no longer holds what it reads next.
    fn lags(&self, oldest: u64) -> bool {
        self.cursor.load(Ordering::Relaxed) < oldest
    }
}

impl Ring {
    /// A ring that keeps the newest `capacity` frames.
    pub(super) fn new(capacity: usize) -> Arc<Ring> {
        Arc::new(Ring {
            frames: Mutex::new(Frames::default()),
            next: AtomicU64::new(1),
            capacity: capacity.max(1),
        })
    }

    fn frames(&self) -> MutexGuard<'_, Frames> {
        self.frames.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A reader that starts at the next frame pushed.
    pub(super) fn reader(&self) -> Arc<Reader> {
        Arc::new(Reader {
            cursor: AtomicU64::new(self.next.load(Ordering::SeqCst)),
            waiting: AtomicBool::new(false),
            waker: AtomicWaker::new(),
            closed: AtomicBool::new(false),
        })
    }

    /// Adds a frame for every member but `except` (`stamped` for those that asked for
    /// history); `sender` is the reader of `except`, whose cursor moves past the frame if it
    /// had read everything before it (a member's own frames never make it lag). Returns the
    /// number of the oldest frame the ring still holds: a reader below it has lost frames
    /// ([`Ring::lagging`]). The caller wakes the readers.
    pub(super) fn push(
        &self,
        except: u64,
        sender: Option<&Reader>,
        plain: &Payload,
        stamped: Option<&Payload>,
    ) -> u64 {
        let mut frames = self.frames();
        if frames.slots.len() == self.capacity {
            frames.slots.pop_front();
        }
        frames.slots.push_back(Slot {
            except,
            plain: plain.clone(),
            stamped: stamped.cloned(),
        });
        let number = self.next.load(Ordering::Relaxed);
        let next = number + 1;
        self.next.store(next, Ordering::SeqCst);
        // Under the lock, as the reader moves its cursor.
        if let Some(sender) = sender {
            if sender.cursor.load(Ordering::Relaxed) == number {
                sender.cursor.store(next, Ordering::Relaxed);
            }
        }
        next - frames.slots.len() as u64
    }

    /// Whether `reader` (not held, so expected to read) has lost frames, `oldest` being what
    /// [`Ring::push`] returned.
    pub(super) fn lagging(reader: &Reader, oldest: u64) -> bool {
        reader.lags(oldest)
    }
}

/// A member's side of the ring: what its session reads with.
#[derive(Debug)]
pub struct Cursor {
    ring: Arc<Ring>,
    reader: Arc<Reader>,
    /// The member's id: frames it sent are not for it.
    id: u64,
    /// Whether it reads the numbered forms of messages.
    stamped: bool,
}

impl Cursor {
    pub(super) fn new(ring: Arc<Ring>, reader: Arc<Reader>, id: u64, stamped: bool) -> Cursor {
        Cursor {
            ring,
            reader,
            id,
            stamped,
        }
    }

    /// Completes when there are frames after the cursor (perhaps only the member's own, which
    /// [`Cursor::read`] skips): `true`, or `false` once the member was removed from the room.
    pub(super) async fn ready(&self) -> bool {
        poll_fn(|cx| {
            if self.reader.closed.load(Ordering::SeqCst) {
                return Poll::Ready(false);
            }
            let cursor = self.reader.cursor.load(Ordering::Relaxed);
            if self.ring.next.load(Ordering::SeqCst) > cursor {
                return Poll::Ready(true);
            }
            self.reader.waker.register(cx.waker());
            self.reader.waiting.store(true, Ordering::SeqCst);
            // A push between the check above and the flag is seen here; one after it sees the
            // flag and wakes this task.
            if self.reader.closed.load(Ordering::SeqCst) {
                return Poll::Ready(false);
            }
            if self.ring.next.load(Ordering::SeqCst) > cursor {
                self.reader.waiting.store(false, Ordering::Relaxed);
                return Poll::Ready(true);
            }
            Poll::Pending
        })
        .await
    }

    /// Whether the member was removed from the room: it reads nothing more.
    pub(super) fn closed(&self) -> bool {
        self.reader.closed.load(Ordering::SeqCst)
    }

    /// Whether half the ring or more lies after the cursor: the member has frames to read that
    /// its own sending pushes towards the ring's end (its own frames move the cursor on only
    /// while it has read everything), so its session should write them now.
    pub(super) fn half_behind(&self) -> bool {
        let next = self.ring.next.load(Ordering::SeqCst);
        let unread = next.saturating_sub(self.reader.cursor.load(Ordering::Relaxed));
        unread.saturating_mul(2) >= self.ring.capacity as u64
    }

    /// Appends up to `max` of the frames after the cursor to `out` (their whole wire form, as
    /// written to a socket), oldest first, skipping the member's own, with one allocation, and
    /// moves the cursor past them. Returns how many it appended: none once the member lags or
    /// was removed.
    pub(super) fn read(&self, max: usize, out: &mut Vec<u8>) -> usize {
        let frames = self.ring.frames();
        let next = self.ring.next.load(Ordering::Relaxed);
        let oldest = next - frames.slots.len() as u64;
        let cursor = self.reader.cursor.load(Ordering::Relaxed);
        if cursor < oldest || self.reader.closed.load(Ordering::SeqCst) {
            // Frames it had not read are gone, or it was removed (for that or another reason):
            // nothing more, rather than what came after a gap.
            return 0;
        }
        let unread = frames.slots.range((cursor - oldest) as usize..);
        let size: usize = unread
            .clone()
            .filter(|slot| slot.except != self.id)
            .take(max)
            .map(|slot| self.wire(slot).iter().map(|part| part.len()).sum::<usize>())
            .sum();
        out.reserve(size);
        let mut read = 0;
        let mut position = cursor;
        for slot in unread {
            if read == max {
                break;
            }
            position += 1;
            if slot.except != self.id {
                for part in self.wire(slot) {
                    out.extend_from_slice(part);
                }
                read += 1;
            }
        }
        self.reader.cursor.store(position, Ordering::Relaxed);
        read
    }

    /// The form of a slot's frame this member reads.
    fn wire<'a>(&self, slot: &'a Slot) -> [&'a [u8]; 2] {
        match &slot.stamped {
            Some(stamped) if self.stamped => stamped.wire(),
            _ => slot.plain.wire(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(text: &str) -> Payload {
        Payload::from(text.to_owned())
    }

    /// A ring of `capacity` with one member, id 1, reading the plain forms.
    fn ring_with_member(capacity: usize) -> (Arc<Ring>, Arc<Reader>, Cursor) {
        let ring = Ring::new(capacity);
        let reader = ring.reader();
        let cursor = Cursor::new(Arc::clone(&ring), Arc::clone(&reader), 1, false);
        (ring, reader, cursor)
    }

    /// The texts of the frames `cursor` reads, parsed back out of their wire form.
    fn texts(cursor: &Cursor, max: usize) -> Vec<String> {
        let mut wire = Vec::new();
        let read = cursor.read(max, &mut wire);
        let mut texts = Vec::new();
        let mut rest = &wire[..];
        while !rest.is_empty() {
            // Test frames are short: a 2-byte header whose second byte is the length.
            let len = usize::from(rest[1]);
            texts.push(String::from_utf8(rest[2..2 + len].to_vec()).unwrap());
            rest = &rest[2 + len..];
        }
        assert_eq!(texts.len(), read);
        texts
    }

    #[test]
    fn readers_see_what_came_after_they_joined_but_their_own() {
        let ring = Ring::new(8);
        ring.push(0, None, &frame("before"), None);
        let a = Cursor::new(Arc::clone(&ring), ring.reader(), 1, false);
        let b = Cursor::new(Arc::clone(&ring), ring.reader(), 2, true);
        ring.push(1, None, &frame("from a"), Some(&frame("from a, numbered")));
        ring.push(2, None, &frame("from b"), Some(&frame("from b, numbered")));
        ring.push(0, None, &frame("join"), None);
        assert_eq!(texts(&a, 10), ["from b", "join"]);
        assert_eq!(texts(&b, 1), ["from a, numbered"]);
        assert_eq!(texts(&b, 10), ["join"], "its own skipped, the rest once");
        assert!(texts(&a, 10).is_empty());
    }

    #[test]
    fn a_reader_that_falls_a_ring_behind_lags() {
        let (ring, reader, cursor) = ring_with_member(2);
        let oldest = ring.push(0, None, &frame("1"), None);
        assert!(!Ring::lagging(&reader, oldest));
        let oldest = ring.push(0, None, &frame("2"), None);
        assert!(!Ring::lagging(&reader, oldest));
        let oldest = ring.push(0, None, &frame("3"), None);
        assert!(
            Ring::lagging(&reader, oldest),
            "frame 1 was overwritten unread"
        );
        assert!(
            texts(&cursor, 10).is_empty(),
            "nothing after the gap: the room removes it"
        );
    }

    #[test]
    fn a_members_own_frames_never_make_it_lag() {
        let (ring, reader, cursor) = ring_with_member(2);
        for i in 0..5 {
            let oldest = ring.push(1, Some(&reader), &frame(&i.to_string()), None);
            assert!(!Ring::lagging(&reader, oldest), "after its own frame {i}");
        }
        let oldest = ring.push(2, None, &frame("other"), None);
        let oldest = ring
            .push(1, Some(&reader), &frame("own, after"), None)
            .max(oldest);
        assert!(!Ring::lagging(&reader, oldest));
        assert_eq!(
            texts(&cursor, 10),
            ["other"],
            "an unread frame keeps the cursor"
        );
    }

    #[test]
    fn a_reader_with_frames_to_read_falls_behind_as_it_sends() {
        let (ring, reader, cursor) = ring_with_member(4);
        for i in 0..4 {
            ring.push(1, Some(&reader), &frame(&i.to_string()), None);
            assert!(!cursor.half_behind(), "its own frames alone, read or not");
        }
        ring.push(2, None, &frame("for it"), None);
        assert!(!cursor.half_behind());
        ring.push(1, Some(&reader), &frame("own"), None);
        assert!(cursor.half_behind(), "two of four frames after the cursor");
        assert_eq!(texts(&cursor, 10), ["for it"]);
        assert!(!cursor.half_behind());
    }

    #[tokio::test]
    async fn a_waiting_reader_is_woken_by_a_push_and_by_closing() {
        let ring = Ring::new(4);
        let reader = ring.reader();
        let cursor = Arc::new(Cursor::new(
            Arc::clone(&ring),
            Arc::clone(&reader),
            1,
            false,
        ));
        let waiting = tokio::spawn({
            let cursor = Arc::clone(&cursor);
            async move { cursor.ready().await }
        });
        while !reader.waiting.load(Ordering::SeqCst) {
            tokio::task::yield_now().await;
        }
        ring.push(0, None, &frame("x"), None);
        reader.wake();
        assert!(waiting.await.unwrap());
        assert_eq!(texts(&cursor, 10), ["x"]);
        reader.close();
        assert!(!cursor.ready().await, "a closed reader reads nothing more");
    }
}
