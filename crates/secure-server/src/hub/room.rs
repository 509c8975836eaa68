//! The room: who is in it, and fan-out to them.
//!
//! A frame is pushed once into the room's ring (`ring`), for every member but its sender, under
//! one lock, and, when one of this node's members caused it, handed to the backplane in the
//! same critical section, so that every node sees the room's frames in one order. A member that
//! falls a whole ring behind is a slow consumer: it is removed at once and its departure
//! announced like any other.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use clichat_proto::{HistoryEntry, ServerFrame};
use tokio_util::sync::CancellationToken;

use super::backplane::{Backplane, Departure};
use super::history::Recent;
use super::ring::{Reader, Ring};
use super::{Leases, Payload, Profile};
use crate::auth::TokenKey;

#[derive(Debug)]
pub(super) struct Room {
    pub(super) members: HashMap<u64, Member>,
    /// Where what this node's members cause is also sent (the other nodes, if any).
    pub(super) backplane: Arc<dyn Backplane>,
    /// The frames for the members, each pushed once.
    pub(super) ring: Arc<Ring>,
    /// Frames delivered to receivers, ever (counted under the lock the fan-out holds anyway).
    pub(super) deliveries: u64,
    /// Members dropped as slow consumers, ever.
    pub(super) queue_drops: u64,
    /// `announce_presence_up_to`: joins and departures are announced while the room, counting
    /// whoever joins or leaves, has at most this many members here. `None`: always.
    pub(super) announce_up_to: Option<usize>,
    /// The room's recent messages, while history is on.
    pub(super) recent: Option<Recent>,
    /// Members that asked for history: while there are none, numbered frames are not made.
    stamped: usize,
    /// Held sessions (their connection lost, waiting to be resumed), by the key of their resume
    /// token.
    pub(super) held: HashMap<TokenKey, u64>,
}

#[derive(Debug)]
pub(super) struct Member {
    pub(super) name: String,
    /// The name's key (`names::key`): how the member is found, here and on other nodes.
    pub(super) key: String,
    pub(super) profile: Profile,
    /// Whether it asked for history: its messages carry their number and time.
    pub(super) stamped: bool,
    /// The key of its current resume token (extension `resume`); boxed, so that members that
    /// did not ask for one pay a pointer.
    pub(super) resume: Option<Box<TokenKey>>,
    /// Whether its connection is lost and the session held for a resume: frames for it go
    /// nowhere (nobody reads its place in the ring) until then.
    pub(super) held: bool,
    /// Its place in the ring.
    pub(super) reader: Arc<Reader>,
    /// Released when the member leaves the room, before its departure is announced.
    pub(super) leases: Leases,
    /// Cancelled when the hub removes the member (slow consumer, kick, ban, revocation).
    pub(super) evicted: CancellationToken,
    /// Why the hub removed the member, when it was not for being slow: the refusal to send.
    pub(super) reason: Arc<OnceLock<String>>,
}

/// A member that has left: its leases released, what the room still needs of it.
pub(super) struct Left {
    pub(super) name: String,
    pub(super) key: String,
}

/// Members dropped as slow consumers by a fan-out (id and name), to be logged once the room is
/// unlocked.
#[must_use]
pub(super) struct Dropped(Vec<(u64, String)>);

impl Dropped {
    pub(super) fn none() -> Dropped {
        Dropped(Vec::new())
    }

    pub(super) fn extend(&mut self, other: Dropped) {
        self.0.extend(other.0);
    }

    /// Logs them; call with the room unlocked, so that a slow log never stalls the room.
    pub(super) fn log(self) {
        for (id, name) in self.0 {
            tracing::warn!(id, ?name, "outbound queue full; dropped a slow consumer");
        }
    }
}

impl Member {
    /// Releases the member's leases; what is left is what its departure needs.
    pub(super) fn leave(self) -> Left {
        drop(self.leases);
        Left {
            name: self.name,
            key: self.key,
        }
    }
}

impl Room {
    /// An empty room whose members may each fall `queue_len` frames behind.
    pub(super) fn new(
        backplane: Arc<dyn Backplane>,
        recent: Option<Recent>,
        queue_len: usize,
    ) -> Room {
        Room {
            members: HashMap::new(),
            backplane,
            ring: Ring::new(queue_len),
            deliveries: 0,
            queue_drops: 0,
            announce_up_to: None,
            recent,
            stamped: 0,
            held: HashMap::new(),
        }
    }

    /// Puts a member in the room.
    pub(super) fn insert(&mut self, id: u64, member: Member) {
        self.stamped += usize::from(member.stamped);
        self.members.insert(id, member);
    }

    /// Takes a member out of the room.
    pub(super) fn take(&mut self, id: u64) -> Option<Member> {
        let member = self.members.remove(&id)?;
        member.reader.close();
        self.stamped -= usize::from(member.stamped);
        if let (true, Some(key)) = (member.held, member.resume.as_deref()) {
            self.held.remove(key);
            self.backplane.unheld(key);
        }
        Some(member)
    }

    /// Sets whether member `id` gets numbered frames.
    pub(super) fn set_stamped(&mut self, id: u64, stamped: bool) {
        if let Some(member) = self.members.get_mut(&id) {
            self.stamped = self.stamped + usize::from(stamped) - usize::from(member.stamped);
            member.stamped = stamped;
        }
    }

    /// Delivers a numbered message to every member but `except`: with its number and time to
    /// those that asked for history, as `plain` (its original frame, made before the room was
    /// locked) to the others. A message the room already delivered (by its number) is not
    /// delivered again.
    pub(super) fn said(&mut self, except: u64, entry: HistoryEntry, plain: &Payload) -> Dropped {
        let stamp = entry.stamp;
        if let Some(recent) = &mut self.recent {
            if !recent.push(entry) {
                return Dropped::none();
            }
        }
        let stamped = (self.stamped > 0).then(|| stamped(plain, stamp));
        let mut slow = Vec::new();
        self.deliver(except, plain, stamped.as_ref(), &mut slow);
        self.drop_slow(slow)
    }

    /// Delivers `payload` to every member but `except`, and, when it is this node's to
    /// `publish`, to the other nodes. A member a whole ring behind is a slow consumer: it is
    /// removed from the room at once (its leases released, its session told through its
    /// eviction token) and its departure is announced like any other.
    pub(super) fn fan_out(&mut self, except: u64, payload: Payload, publish: bool) -> Dropped {
        let mut slow = Vec::new();
        self.deliver(except, &payload, None, &mut slow);
        if publish {
            self.backplane.publish(payload);
        }
        self.drop_slow(slow)
    }

    /// Removes the slow consumers a delivery found, announcing their departures (which may find
    /// more).
    fn drop_slow(&mut self, mut slow: Vec<u64>) -> Dropped {
        let mut dropped = Vec::new();
        while let Some(id) = slow.pop() {
            if let Some(member) = self.take(id) {
                self.queue_drops += 1;
                member.evicted.cancel();
                let left = member.leave();
                if self.announces_presence(1) {
                    let bye = Payload::from(ServerFrame::Disconnect(left.name.clone()).encode());
                    self.deliver(id, &bye, None, &mut slow);
                    self.backplane.departed(left.key, Departure::Announced(bye));
                } else {
                    self.backplane.departed(left.key, Departure::Silent);
                }
                dropped.push((id, left.name));
            }
        }
        Dropped(dropped)
    }

    /// Whether a join or departure is announced, the room now having `gone` fewer members
    /// than counting the one who joins or leaves.
    pub(super) fn announces_presence(&self, gone: usize) -> bool {
        self.announce_up_to
            .is_none_or(|limit| self.members.len() + gone <= limit)
    }

    /// Removes member `id`, for `reason` when the hub removes it (told to its session), and
    /// announces its departure (here unless the server is closing; to the other nodes always).
    /// Returns its name and any slow consumers the announcement dropped; `None` if it is not in
    /// the room (any more).
    pub(super) fn remove(
        &mut self,
        id: u64,
        reason: Option<&str>,
        closing: &AtomicBool,
    ) -> Option<(String, Dropped)> {
        let member = self.take(id)?;
        if let Some(reason) = reason {
            let _ = member.reason.set(reason.to_owned());
            member.evicted.cancel();
        }
        let left = member.leave();
        if !self.announces_presence(1) {
            self.backplane.departed(left.key, Departure::Silent);
            return Some((left.name, Dropped::none()));
        }
        let bye = Payload::from(ServerFrame::Disconnect(left.name.clone()).encode());
        // The other nodes' members hear of it even while everyone here is leaving too.
        self.backplane
            .departed(left.key, Departure::Announced(bye.clone()));
        if closing.load(Ordering::Relaxed) {
            return Some((left.name, Dropped::none()));
        }
        let dropped = self.fan_out(id, bye, false);
        Some((left.name, dropped))
    }

    /// Pushes `payload` into the ring for every member but `except` (`stamped` for those that
    /// asked for history, when there is one), and wakes the members waiting for frames. A
    /// member the push leaves a whole ring behind goes to `slow`; held members read nothing.
    fn deliver(
        &mut self,
        except: u64,
        payload: &Payload,
        stamped: Option<&Payload>,
        slow: &mut Vec<u64>,
    ) {
        let sender = self.members.get(&except).map(|member| &*member.reader);
        let oldest = self.ring.push(except, sender, payload, stamped);
        let mut delivered = 0;
        for (&id, member) in &self.members {
            if member.held {
                continue;
            }
            // The sender too: its own frames do not make it lag while it reads, but they can
            // push out a frame of the room's it has not read yet.
            if Ring::lagging(&member.reader, oldest) {
                slow.push(id);
            } else if id != except {
                member.reader.wake();
                delivered += 1;
            }
        }
        self.deliveries += delivered;
    }
}

/// The numbered form of a message's original frame: `["message",NAME,TEXT]` with `SEQ` and
/// `TIME_MS` appended, as [`ServerFrame::Message`] with a stamp encodes it.
fn stamped(plain: &Payload, stamp: clichat_proto::Stamp) -> Payload {
    let text = plain.as_str();
    let open = text.strip_suffix(']').unwrap_or(text);
    Payload::from(format!("{open},{},{}]", stamp.seq, stamp.time_ms))
}

#[cfg(test)]
mod tests {
    use clichat_proto::Stamp;

    use super::*;

    #[test]
    fn a_stamped_frame_is_the_original_with_its_number_and_time() {
        let message = |stamp| ServerFrame::Message {
            from: "a\"b".into(),
            text: "x]".into(),
            stamp,
        };
        let stamp = Stamp { seq: 7, time_ms: 8 };
        let plain = Payload::from(message(None).encode());
        let with = message(Some(stamp));
        assert_eq!(stamped(&plain, stamp).as_str(), with.encode());
    }
}
