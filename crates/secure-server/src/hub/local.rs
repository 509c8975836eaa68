//! The backplane of a single server: no other nodes, and the token pages in memory.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use super::PageView;
use super::backplane::{Backplane, BoxFuture, Departure, NodeRequest, NodeStatus, Unavailable};
use super::{MemberInfo, Payload};
use crate::auth::TokenKey;

/// How many settled token pages are remembered so that they answer 410 instead of 404. The
/// oldest are forgotten first, so the memory this takes is bounded.
pub(super) const SETTLED_PAGES_KEPT: usize = 10_000;

/// A single server's backplane: every claim is granted (the hub's own maps decide), nothing is
/// published (there is nobody else), and token pages are kept here.
#[derive(Debug, Default)]
pub struct Local {
    pages: Mutex<Pages>,
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
    /// A backplane with no other nodes.
    pub fn new() -> Local {
        Local::default()
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
        Box::pin(std::future::ready(()))
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
