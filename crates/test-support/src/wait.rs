//! Waiting with a deadline. A test awaits an event it can see arrive (a frame, a log line)
//! under [`tokio::time::timeout`] with [`WAIT`]; a state it can only look at (a status page, a
//! terminal's screen, a browser's page) it polls with [`eventually`]. Either way a missing event
//! fails the test, with its name, instead of hanging it; and no test sleeps on the chance that
//! something has happened meanwhile.

use std::fmt::Display;
use std::time::Duration;

/// The longest any single expected event may take.
pub const WAIT: Duration = Duration::from_secs(10);

/// How long [`eventually`] rests between two looks: short next to [`WAIT`], long enough not to
/// keep a busy machine busier.
const POLL_EVERY: Duration = Duration::from_millis(20);

/// What one look at a polled condition found: it holds (with a value to hand back), or not yet
/// (with, perhaps, what was seen instead, for the failure message).
pub trait Condition {
    /// What [`eventually`] returns once the condition holds.
    type Output;

    /// `Ok` when the condition holds; otherwise what was seen instead, if worth showing.
    ///
    /// # Errors
    /// When the condition does not hold yet.
    fn check(self) -> Result<Self::Output, Option<String>>;
}

/// `true` holds.
impl Condition for bool {
    type Output = ();

    fn check(self) -> Result<(), Option<String>> {
        if self { Ok(()) } else { Err(None) }
    }
}

/// `Some` holds, and [`eventually`] returns what it holds.
impl<T> Condition for Option<T> {
    type Output = T;

    fn check(self) -> Result<T, Option<String>> {
        self.ok_or(None)
    }
}

/// `Ok` holds; an `Err` is what was seen instead, and the last one is shown if the condition
/// never holds.
impl<T, E: Display> Condition for Result<T, E> {
    type Output = T;

    fn check(self) -> Result<T, Option<String>> {
        self.map_err(|seen| Some(seen.to_string()))
    }
}

/// Polls `check` until it holds, for at most [`WAIT`], and returns what it held.
///
/// `what` names the event waited for, as the failure message shows it:
/// `never happened within 10s: {what}`, followed by the last thing seen instead when `check`
/// answers with `Err`. A `check` that hangs counts against the same deadline.
///
/// # Panics
/// When the condition does not hold within [`WAIT`].
pub async fn eventually<C: Condition>(
    what: impl Display,
    check: impl AsyncFnMut() -> C,
) -> C::Output {
    eventually_within(WAIT, what, check).await
}

/// [`eventually`] with another deadline than [`WAIT`], for a wait known to be long (a server
/// letting go of hundreds of connections under load).
///
/// # Panics
/// When the condition does not hold within `limit`.
pub async fn eventually_within<C: Condition>(
    limit: Duration,
    what: impl Display,
    check: impl AsyncFnMut() -> C,
) -> C::Output {
    match poll_until(limit, check).await {
        Ok(value) => value,
        Err(None) => panic!("never happened within {limit:?}: {what}"),
        // A screen or a page goes on lines of its own.
        Err(Some(seen)) if seen.contains('\n') => {
            panic!("never happened within {limit:?}: {what}\nlast seen:\n{seen}")
        }
        Err(Some(seen)) => panic!("never happened within {limit:?}: {what}\nlast seen: {seen}"),
    }
}

/// What [`eventually_within`] is built on, for a caller that has more to say when the condition
/// never holds (a browser test shows the page's text): polls `check` until it holds or `limit`
/// passes.
///
/// # Errors
/// When `limit` passes first: the last thing seen instead, if `check` said.
pub async fn poll_until<C: Condition>(
    limit: Duration,
    mut check: impl AsyncFnMut() -> C,
) -> Result<C::Output, Option<String>> {
    let mut last_seen = None;
    let polling = async {
        loop {
            match check().await.check() {
                Ok(value) => return value,
                Err(seen) => last_seen = seen,
            }
            tokio::time::sleep(POLL_EVERY).await;
        }
    };
    let outcome = tokio::time::timeout(limit, polling).await;
    outcome.map_err(|_| last_seen)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn returns_what_the_condition_holds_once_it_holds() {
        let mut looks = 0;
        let got = eventually("the third look", async || {
            looks += 1;
            (looks == 3).then_some(looks)
        })
        .await;
        assert_eq!(got, 3);
    }

    #[tokio::test(start_paused = true)]
    #[should_panic(expected = "never happened within 10s: the moon turning blue\nlast seen: grey")]
    async fn fails_naming_the_event_and_the_last_thing_seen() {
        eventually("the moon turning blue", async || Err::<(), _>("grey")).await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_check_that_hangs_counts_against_the_deadline() {
        let outcome = poll_until(Duration::from_secs(1), async || {
            std::future::pending::<()>().await;
            true
        })
        .await;
        assert_eq!(outcome, Err(None));
    }
}
