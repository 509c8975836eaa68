//! Token pages and HTTP statuses, read over HTTP the way the person in front of the browser
//! reads them.

use crate::wait::eventually;

/// The temporary token shown on the token page at `link`.
///
/// # Panics
/// If the page does not answer 200 or shows no token.
pub async fn page_token(link: &str) -> String {
    let response = reqwest::get(link).await.unwrap();
    assert_eq!(response.status(), 200, "token page {link}");
    token_in(&response.text().await.unwrap())
}

/// The temporary token in a token page's HTML (the `<textarea id="token">`), exactly as it
/// stands: this server's pages put nothing around it.
///
/// # Panics
/// If the page shows none.
pub fn token_in(page: &str) -> String {
    let field = page.find("id=\"token\"").expect("page shows a token");
    let start = page[field..].find('>').unwrap() + field + 1;
    let end = page[start..].find("</textarea>").unwrap() + start;
    page[start..end].to_owned()
}

/// The HTTP status `url` answers.
///
/// # Panics
/// If the request fails (no answer at all).
pub async fn status(url: &str) -> u16 {
    reqwest::get(url).await.unwrap().status().as_u16()
}

/// Waits until `url` answers `want`, for a change the server makes on its own time (it notices
/// a dropped socket when it next reads it).
///
/// # Panics
/// If it does not within [`WAIT`](crate::WAIT), with the last status seen.
pub async fn wait_for_status(url: &str, want: u16) {
    eventually(format!("{url} answering {want}"), async || {
        match status(url).await {
            got if got == want => Ok(()),
            got => Err(got),
        }
    })
    .await;
}
