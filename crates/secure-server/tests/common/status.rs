//! A server's `/_status` report (loopback only), and waiting on what it says: the link of a
//! cluster node, sessions held for a resume, any count.

use serde_json::Value;

use super::eventually;

/// The report at `url` (a server's `/_status`), as JSON.
pub async fn report(url: &str) -> Value {
    let response = reqwest::get(url).await.unwrap();
    assert_eq!(response.status(), 200, "{url}");
    serde_json::from_str(&response.text().await.unwrap()).unwrap()
}

/// Polls the report at `url` until `ready` says yes (`what` names it if it never does).
pub async fn wait_until(url: &str, what: impl std::fmt::Display, ready: impl Fn(&Value) -> bool) {
    eventually(what.to_string(), async || {
        let status = report(url).await;
        if ready(&status) { Ok(()) } else { Err(status) }
    })
    .await;
}

/// Waits until the cluster link of the node whose report is at `url` is `want` ("up" or
/// "down").
pub async fn wait_link(url: &str, want: &str) {
    let what = format!("the cluster link {want} at {url}");
    wait_until(url, what, |status| status["cluster"]["link"] == want).await;
}

/// Waits until the server whose report is at `url` holds `count` sessions for a resume.
pub async fn wait_held(url: &str, count: u64) {
    let what = format!("{count} sessions held at {url}");
    wait_until(url, what, |status| status["held_sessions"] == count).await;
}
