//! The backplane of a single server: no other nodes, the token pages in memory, and the
//! room's history numbered here and kept in its file ([`HistoryDb`]).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use clichat_proto::{HistoryEntry, Stamp};

use super::PageView;
use super::backplane::{Backplane, BoxFuture, Departure, NodeRequest, NodeStatus, Unavailable};
use super::{MemberInfo, Payload, RemoteHeld};
use crate::auth::TokenKey;
use crate::history_db::HistoryDb;

/// How many settled token pages are remembered so that they answer 410 instead of 404. The
/// oldest are forgotten first, so the memory this takes is bounded.
pub(super) const SETTLED_PAGES_KEPT: usize = 10_000;

/// A single server's backplane: every claim is granted (the hub's own maps decide), nothing is
/// published (there is nobody else), token pages are kept here, and messages are numbered here
/// and written to the history file, if there is one.
#[derive(Debug)]
pub struct Local {
    pages: Mutex<Pages>,
    /// The number the next message gets.
    next_seq: AtomicU64,
    /// Where messages are kept beyond this process (none: in the hub's memory only).
    db: Option<Arc<HistoryDb>>,
}

impl Default for Local {
    fn default() -> Self {
        Local {
            pages: Mutex::default(),
            next_seq: AtomicU64::new(1),
            db: None,
        }
    }
}

#[derive(Debug, Default)]
struct Pages {
    /// Page id -> temporary token and views so far, while the login waits for `tokenauth`.
    pending: HashMap<String, PendingPage>,
    settled: HashSet<String>,
    settled_order: VecDeque<String>,
}

#[derive(Debug)]
struct PendingPage {
    token: String,
    views: u32,
}

impl Local {
    /// A backplane with no other nodes, whose history is kept in memory only.
    pub fn new() -> Local {
        Local::default()
    }

    /// A backplane with no other nodes, whose history is kept in `db`, where the next message
    /// is numbered `next_seq` (see [`crate::history_db::Opened`]).
    pub fn with_history(db: HistoryDb, next_seq: u64) -> Local {
        Local {
            next_seq: AtomicU64::new(next_seq),
            db: Some(Arc::new(db)),
            ..Local::default()
        }
    }

    /// Messages the history file could not keep up with (see [`HistoryDb::unwritten`]).
    pub fn unwritten(&self) -> u64 {
        self.db.as_ref().map_or(0, |db| db.unwritten())
    }

    fn pages(&self) -> MutexGuard<'_, Pages> {
        self.pages.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Backplane for Local {
    fn status(&self) -> Option<NodeStatus<'_>> {
        None
    }

    fn claim_name<'a>(&'a self, _key: &'a str) -> BoxFuture<'a, Result<bool, Unavailable>> {
        Box::pin(std::future::ready(Ok(true)))
    }

    fn release_name(&self, _key: String) {}

    fn claim_hold(&self, _key: TokenKey) -> BoxFuture<'_, Result<bool, Unavailable>> {
        Box::pin(std::future::ready(Ok(true)))
    }

    fn release_hold(&self, _key: TokenKey) {}

    fn open_page<'a>(
        &'a self,
        id: &'a str,
        token: &'a str,
        _ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, Unavailable>> {
        let mut pages = self.pages();
        let free = !pages.pending.contains_key(id) && !pages.settled.contains(id);
        if free {
            let page = PendingPage {
                token: token.to_owned(),
                views: 0,
            };
            pages.pending.insert(id.to_owned(), page);
        }
        Box::pin(std::future::ready(Ok(free)))
    }

    fn view_page<'a>(&'a self, id: &'a str, max_views: u32) -> BoxFuture<'a, PageView> {
        let mut pages = self.pages();
        let view = if let Some(page) = pages.pending.get_mut(id) {
            if page.views >= max_views {
                PageView::TooManyViews
            } else {
                page.views += 1;
                PageView::Pending(page.token.clone())
            }
        } else if pages.settled.contains(id) {
            PageView::Settled
        } else {
            PageView::Unknown
        };
        Box::pin(std::future::ready(view))
    }

    fn settle_page(&self, id: String) {
        let mut pages = self.pages();
        pages.pending.remove(&id);
        pages.settled.insert(id.clone());
        pages.settled_order.push_back(id);
        if pages.settled_order.len() > SETTLED_PAGES_KEPT {
            if let Some(old) = pages.settled_order.pop_front() {
                pages.settled.remove(&old);
            }
        }
    }

    fn pending_pages(&self) -> usize {
        self.pages().pending.len()
    }

    fn accepts_messages(&self) -> bool {
        true
    }

    fn publish(&self, _frame: Payload) {}

    fn number(&self, _sender: u64, from: &str, text: &str, time_ms: u64) -> Option<HistoryEntry> {
        // Called under the room's lock: numbers follow the room's order.
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        let entry = HistoryEntry {
            stamp: Stamp { seq, time_ms },
            from: from.to_owned(),
            text: text.to_owned(),
        };
        if let Some(db) = &self.db {
            db.append(entry.clone());
        }
        Some(entry)
    }

    fn held(&self, _key: &TokenKey, _record: &RemoteHeld, _window: Duration, _stopping: bool) {}

    fn unheld(&self, _key: &TokenKey) {}

    fn take_held<'a>(
        &'a self,
        _key: &'a TokenKey,
    ) -> BoxFuture<'a, Result<Option<RemoteHeld>, Unavailable>> {
        Box::pin(std::future::ready(Ok(None)))
    }

    fn clear_history(&self) {
        if let Some(db) = &self.db {
            db.clear();
        }
    }

    fn joined(&self, _key: &str, _member: &MemberInfo) {}

    fn departed(&self, _key: String, _departure: Departure) {}

    fn find<'a>(&'a self, _key: &'a str) -> BoxFuture<'a, Result<Option<MemberInfo>, Unavailable>> {
        Box::pin(std::future::ready(Ok(None)))
    }

    fn others(&self) -> BoxFuture<'_, Result<Vec<MemberInfo>, Unavailable>> {
        Box::pin(std::future::ready(Ok(Vec::new())))
    }

    fn request(&self, _request: &NodeRequest) {}

    fn leave(&self, _within: Duration) -> BoxFuture<'_, ()> {
        let db = self.db.clone();
        Box::pin(async move {
            if let Some(db) = db {
                // Writes what is queued: a clean stop loses no message.
                let _ = tokio::task::spawn_blocking(move || db.close()).await;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn settled_pages_are_bounded() {
        let local = Local::new();
        let ttl = Duration::from_secs(60);
        for n in 0..=SETTLED_PAGES_KEPT {
            let id = n.to_string();
            assert!(local.open_page(&id, "t", ttl).await.unwrap());
            local.settle_page(id);
        }
        assert_eq!(
            local.view_page("0", 1).await,
            PageView::Unknown,
            "the oldest forgotten"
        );
        assert_eq!(local.view_page("1", 1).await, PageView::Settled);
        assert_eq!(local.pages().settled.len(), SETTLED_PAGES_KEPT);
        assert!(
            !local.open_page("1", "t", ttl).await.unwrap(),
            "a settled id is not reused"
        );
    }
}
