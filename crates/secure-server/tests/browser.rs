//! The browser client (served at `/`) in a real, headless Chromium driven over WebDriver: SAUTH2
//! and bot logins through the page, a wrong temporary token answered with a fresh token page,
//! the name-only login of an open room, chat both ways with protocol-level clients, names and
//! messages rendered as text, links, mentions, multi-line messages, limits kept before sending,
//! refusals in words with the technical detail a click away, the disconnected and left states,
//! reconnect, and the resume of a lost connection (the messages missed shown set apart, a
//! refused resume back at the login view, the window passing).
//!
//! Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs them); `CHROMEDRIVER` and
//! `CHROMIUM` name other binaries. Without them the browser tests say so in a line and skip,
//! except under `CI=true`, where they fail (see `test_support::require_program`).
//!
//! The screenshots in `docs/web-*.png` (token page and chat, light and dark, desktop and phone)
//! are rewritten only when `UPDATE_SCREENSHOT=1` is set; otherwise they go to the temporary
//! directory.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{
    BOT_NAME, BOT_TOKEN, TOKENS, TestServer, WAIT, config, eventually, poll_until, require_program,
};
use fantoccini::elements::Element;
use fantoccini::key::Key;
use fantoccini::{Client as Driver, ClientBuilder, Locator};
use secure_server::config_file::write_atomically;
use serde_json::{Value, json};
use test_support::find_program;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};

/// The Content-Security-Policy the client page must carry.
const CLIENT_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

/// The message that would run script if the page inserted messages as HTML.
const XSS: &str = r#"<img src=x onerror="window.__xss=1">"#;

// ---- The browser ----

/// A headless Chromium under its own chromedriver, with a fresh profile.
struct Browser {
    driver: Driver,
    _chromedriver: ProcessGroup,
    _profile: tempfile::TempDir,
}

/// The colour scheme a browser reports to pages, as Blink numbers them.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Scheme {
    Dark = 0,
    Light = 1,
}

/// chromedriver and the Chromium it starts, in a process group of their own, killed together on
/// drop: a test that fails leaves no browser behind.
struct ProcessGroup(Child);

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        let pid = self.0.id().and_then(|id| i32::try_from(id).ok());
        if let Some(pid) = pid.and_then(rustix::process::Pid::from_raw) {
            let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
        }
    }
}

/// chromedriver, from the environment variable `CHROMEDRIVER` or else `PATH`; `None` (the test
/// is skipped) without it.
fn chromedriver() -> Option<PathBuf> {
    let named = std::env::var_os("CHROMEDRIVER").map(PathBuf::from);
    named.or_else(|| require_program("chromedriver", "chromium-driver"))
}

/// Chromium, from the environment variable `CHROMIUM` or else `PATH` (Debian calls it
/// `chromium`, some others `chromium-browser`); `None` (the test is skipped) without it.
fn chromium() -> Option<PathBuf> {
    let named = std::env::var_os("CHROMIUM").map(PathBuf::from);
    named
        .or_else(|| find_program("chromium-browser"))
        .or_else(|| require_program("chromium", "chromium"))
}

impl Browser {
    /// Starts chromedriver on a free port (it says which once it listens) and opens a session;
    /// `None` when chromedriver or Chromium is not installed, and the test is skipped.
    async fn start() -> Option<Browser> {
        Browser::start_with(Scheme::Light).await
    }

    /// As [`Browser::start`], with the system's colour scheme as `scheme` (what the page's
    /// `prefers-color-scheme` sees).
    async fn start_with(scheme: Scheme) -> Option<Browser> {
        const MISSING: &str = "headless Chromium is needed for the browser tests: install \
             Debian's `chromium` and `chromium-driver` (apt-get install -y chromium chromium-driver), \
             or point CHROMIUM and CHROMEDRIVER at the binaries";
        let chromedriver_bin = chromedriver()?;
        let chromium_bin = chromium()?;

        let mut chromedriver = Command::new(&chromedriver_bin)
            .arg("--port=0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {}: {e}. {MISSING}",
                    chromedriver_bin.display()
                )
            });
        let mut lines = BufReader::new(chromedriver.stdout.take().unwrap()).lines();
        let chromedriver = ProcessGroup(chromedriver);
        let port = tokio::time::timeout(WAIT, async {
            while let Some(line) = lines.next_line().await.unwrap() {
                // "ChromeDriver was started successfully on port 34295."
                if let Some(rest) = line.split("started successfully on port ").nth(1) {
                    return rest.trim_end_matches('.').parse::<u16>().unwrap();
                }
            }
            panic!("chromedriver exited before listening");
        })
        .await
        .expect("chromedriver listens in time");
        // Keep reading its output so that it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });

        let profile = tempfile::tempdir().unwrap();
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium_bin,
                "args": [
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--disable-dev-shm-usage",
                    "--no-first-run",
                    "--disable-crash-reporter",
                    "--disable-breakpad",
                    "--window-size=800,600",
                    // Blink's preferred colour scheme: 0 dark, 1 light.
                    format!("--blink-settings=preferredColorScheme={}", scheme as u8),
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            },
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!()
        };
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let driver = ClientBuilder::new(connector)
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "chromedriver could not start {}: {e}",
                    chromium_bin.display()
                )
            });
        Some(Browser {
            driver,
            _chromedriver: chromedriver,
            _profile: profile,
        })
    }

    /// Ends the session (which ends Chromium), then chromedriver.
    async fn close(self) {
        let _ = self.driver.close().await;
    }

    /// Ends a test's browser: the page met no CSP violation all along, then [`Browser::close`].
    async fn finish(self) {
        self.assert_no_csp_violations().await;
        self.close().await;
    }

    /// Opens the client of `server` and records any CSP violation the page meets from now on.
    async fn open(&self, server: SocketAddr) {
        self.driver
            .goto(&format!("http://{server}/"))
            .await
            .unwrap();
        self.driver
            .execute(
                "window.__csp = [];
                 document.addEventListener('securitypolicyviolation',
                   (e) => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));",
                vec![],
            )
            .await
            .unwrap();
        self.visible("#login-view").await;
    }

    /// The element matching `css` once it exists, waiting at most [`WAIT`].
    async fn find(&self, css: &str) -> Element {
        self.driver
            .wait()
            .at_most(WAIT)
            .every(Duration::from_millis(20))
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css} never appeared: {e}"))
    }

    /// The element matching `css` once it is shown (it and its ancestors have no `hidden`).
    async fn visible(&self, css: &str) -> Element {
        self.until(
            "const el = document.querySelector(arguments[0]);
             return !!el && !el.closest('[hidden]');",
            vec![json!(css)],
            &format!("{css} shown"),
        )
        .await;
        self.find(css).await
    }

    /// Polls the script until it returns something other than `false`/`null`; returns that.
    /// Fails with the page's text if it does not within [`WAIT`].
    async fn until(&self, script: &str, args: Vec<Value>, what: &str) -> Value {
        let shown = poll_until(WAIT, async || {
            let value = self.driver.execute(script, args.clone()).await.unwrap();
            (!matches!(value, Value::Null | Value::Bool(false))).then_some(value)
        })
        .await;
        match shown {
            Ok(value) => value,
            Err(_) => panic!(
                "never happened within {WAIT:?}: {what}\npage text:\n{}",
                self.page_text().await
            ),
        }
    }

    async fn page_text(&self) -> String {
        self.driver
            .execute("return document.body.innerText;", vec![])
            .await
            .map(|v| v.as_str().unwrap_or_default().to_owned())
            .unwrap_or_default()
    }

    /// Waits for an entry of the message list whose text contains every one of `parts`; returns
    /// its text.
    async fn entry(&self, parts: &[&str]) -> String {
        self.until(
            "const want = arguments[0];
             const li = [...document.querySelectorAll('#messages li')]
               .find((li) => want.every((p) => li.textContent.includes(p)));
             return li ? li.textContent : null;",
            vec![json!(parts)],
            &format!("a message entry with {parts:?}"),
        )
        .await
        .as_str()
        .unwrap()
        .to_owned()
    }

    /// The `(name, text)` of the newest chat message in the list.
    async fn last_message(&self) -> (String, String) {
        let v = self
            .driver
            .execute(
                "const all = document.querySelectorAll('#messages li.msg');
                 const li = all[all.length - 1];
                 return [li.querySelector('.name').firstChild.textContent,
                         li.querySelector('.text').textContent];",
                vec![],
            )
            .await
            .unwrap();
        (
            v[0].as_str().unwrap().to_owned(),
            v[1].as_str().unwrap().to_owned(),
        )
    }

    async fn type_into(&self, css: &str, text: &str) {
        let field = self.visible(css).await;
        field.clear().await.unwrap();
        field.send_keys(text).await.unwrap();
    }

    /// Fills the login form as a person and connects; returns at the token view.
    async fn start_user_login(&self, name: &str, token: &str) {
        self.visible("#kind-user").await.click().await.unwrap();
        self.type_into("#username", name).await;
        self.type_into("#token", token).await;
        // Enter in a field submits the form.
        self.find("#token")
            .await
            .send_keys(&Key::Enter.to_string())
            .await
            .unwrap();
    }

    /// Logs in as a bot through the page; returns in the chat view.
    async fn login_bot(&self, name: &str, token: &str) {
        self.visible("#kind-bot").await.click().await.unwrap();
        self.type_into("#botname", name).await;
        self.type_into("#bottoken", token).await;
        self.find("#connect").await.click().await.unwrap();
        self.visible("#chat-view").await;
    }

    /// Logs in as a person through the whole SAUTH2 flow, as a person would: connect, open the
    /// token page from the button (a new tab), read the token there, paste it, log in. Returns
    /// the link of the token page.
    async fn login_user(&self, server: SocketAddr, name: &str, token: &str) -> String {
        self.start_user_login(name, token).await;
        self.visible("#token-link").await;
        assert_eq!(
            self.active_id().await,
            "token-link",
            "the next step has the focus"
        );
        self.finish_user_login(server).await
    }

    /// The rest of a SAUTH2 login from the token view: open the token page from the button,
    /// read the token, paste it, log in. Returns the link of the token page.
    async fn finish_user_login(&self, server: SocketAddr) -> String {
        let temp = self.read_token_page(server, None).await;
        self.type_into("#temp-token", &temp).await;
        self.find("#tokenauth-submit").await.click().await.unwrap();
        self.visible("#chat-view").await;
        self.find("#token-link")
            .await
            .attr("href")
            .await
            .unwrap()
            .expect("the link has an href")
    }

    /// Opens the token page from the token view's button (a new tab), checks the link, reads
    /// the temporary token there (keeping a screenshot of the page at `shot`, if given), and
    /// closes the tab. Returns the token.
    async fn read_token_page(&self, server: SocketAddr, shot: Option<&str>) -> String {
        let link = self.visible("#token-link").await;
        let href = link
            .attr("href")
            .await
            .unwrap()
            .expect("the link has an href");
        let id = href
            .strip_prefix(&format!("http://{server}/"))
            .unwrap_or_else(|| panic!("{href} is a page on this server"));
        assert!(
            id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()),
            "{href}"
        );
        assert_eq!(
            link.attr("target").await.unwrap().as_deref(),
            Some("_blank")
        );
        let rel = link.attr("rel").await.unwrap().unwrap_or_default();
        assert!(
            rel.contains("noopener") && rel.contains("noreferrer"),
            "{rel}"
        );

        // Open the page in its new tab, read the token, close the tab.
        let chat_tab = self.driver.window().await.unwrap();
        link.click().await.unwrap();
        let token_tab = eventually("the token page opening in a new tab", async || {
            let windows = self.driver.windows().await.unwrap();
            windows.into_iter().find(|w| *w != chat_tab)
        })
        .await;
        self.driver.switch_to_window(token_tab).await.unwrap();
        let temp = eventually("the token page showing a token", async || {
            let shown = self
                .driver
                .execute(
                    "const t = document.getElementById('token');
                     const copy = document.getElementById('copy');
                     return location.href === arguments[0] && t && copy && !copy.hidden
                       ? t.value : null;",
                    vec![json!(href)],
                )
                .await
                .unwrap();
            shown.as_str().map(str::to_owned)
        })
        .await;
        assert_eq!(temp.len(), 100, "{temp}");
        if let Some(name) = shot {
            self.screenshot(name).await;
        }
        self.driver.close_window().await.unwrap();
        self.driver.switch_to_window(chat_tab).await.unwrap();
        temp
    }

    /// Types `text` into the message field and presses Enter.
    async fn say(&self, text: &str) {
        let field = self.visible("#message").await;
        field.send_keys(text).await.unwrap();
        field.send_keys(&Key::Enter.to_string()).await.unwrap();
    }

    async fn active_id(&self) -> String {
        self.driver
            .execute("return document.activeElement.id;", vec![])
            .await
            .unwrap()
            .as_str()
            .unwrap()
            .to_owned()
    }

    async fn js(&self, script: &str) -> Value {
        self.driver.execute(script, vec![]).await.unwrap()
    }

    async fn assert_no_csp_violations(&self) {
        assert_eq!(self.js("return window.__csp;").await, json!([]));
    }

    /// The technical details inside the element matching `css`, as a person sees them: the
    /// details are closed at first (so the page's text does not show them), and one click on
    /// their summary opens them.
    async fn details(&self, css: &str) -> String {
        let summary = format!("{css} details.tech > summary");
        let closed = self
            .driver
            .execute(
                "return !document.querySelector(arguments[0]).parentElement.open;",
                vec![json!(summary)],
            )
            .await
            .unwrap();
        assert_eq!(closed, true, "the details start closed");
        self.find(&summary).await.click().await.unwrap();
        self.find(&format!("{css} details.tech"))
            .await
            .text()
            .await
            .unwrap()
    }

    /// Saves a screenshot of the window as `docs/{name}` with `UPDATE_SCREENSHOT=1`, else in
    /// the temporary directory.
    async fn screenshot(&self, name: &str) {
        let png = self.driver.screenshot().await.unwrap();
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        let target = if std::env::var_os("UPDATE_SCREENSHOT").is_some_and(|v| v == "1") {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../docs")
                .join(name)
        } else {
            std::env::temp_dir().join(format!("clichat-{name}"))
        };
        std::fs::write(&target, png).unwrap();
    }

    /// The window at `width` x `height`, once the page has seen it.
    async fn resize(&self, width: u32, height: u32) {
        self.driver.set_window_size(width, height).await.unwrap();
        self.until(
            "return window.innerWidth === arguments[0];",
            vec![json!(width)],
            "the window takes its size",
        )
        .await;
    }

    /// A script's value in the chat tab, read from another tab of the same origin that this
    /// one opened (`window.opener`): a look at the chat tab while it is hidden behind it.
    async fn in_opener(&self, script: &str, what: &str) -> Value {
        self.until(
            &format!("const chat = window.opener; return chat ? ({script}) : null;"),
            vec![],
            what,
        )
        .await
    }
}

// ---- Tests ----

/// The page, script and style come from the server itself, with the strict CSP and the pages'
/// other security headers, and the token pages keep their paths. (No browser needed.)
#[tokio::test]
async fn the_client_is_served_same_origin_with_a_strict_csp() {
    let server = TestServer::default().await;
    for (path, kind) in [
        ("/", "text/html"),
        ("/app/app.js", "text/javascript"),
        ("/app/app.css", "text/css"),
        ("/app/icon.svg", "image/svg+xml"),
    ] {
        let response = reqwest::get(server.url(path)).await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let headers = response.headers().clone();
        let content_type = headers["content-type"].to_str().unwrap();
        assert!(content_type.starts_with(kind), "{path}: {content_type}");
        assert_eq!(headers["content-security-policy"], CLIENT_CSP, "{path}");
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(headers["x-frame-options"], "DENY", "{path}");
        assert_eq!(headers["referrer-policy"], "no-referrer", "{path}");
        assert_eq!(headers["cache-control"], "no-store", "{path}");
        let body = response.text().await.unwrap();
        assert!(body.len() > 100, "{path}");
        assert_eq!(
            headers["content-length"].to_str().unwrap(),
            body.len().to_string()
        );
    }
    let index = reqwest::get(server.url("/"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(index.contains(r#"<script src="/app/app.js" defer></script>"#));
    assert!(index.contains(r#"<link rel="stylesheet" href="/app/app.css">"#));

    assert_eq!(common::status(&server.url("/app/other.js")).await, 404);
    assert_eq!(
        common::status(&server.url("/0123456789abcdef0123456789abcdef")).await,
        404,
        "token pages keep their paths"
    );
}

/// A person logs in through SAUTH2 in the page (the token page opened from the button, its
/// token pasted back), and chats both ways with a protocol-level user and bot; the page shows
/// the joins and the leaves, and its own messages.
#[tokio::test]
async fn a_person_logs_in_with_sauth2_and_chats_with_protocol_clients() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let server = TestServer::default().await;
    let mut bob = server.login("bob", TOKENS[1]).await;
    browser.open(server.addr).await;

    let link = browser.login_user(server.addr, "alice", TOKENS[0]).await;
    bob.expect(json!(["join", "alice"])).await;
    browser.entry(&["You joined as alice."]).await;
    assert_eq!(browser.active_id().await, "message", "ready to type");
    assert_eq!(
        browser
            .js("return document.getElementById('whoami').textContent;")
            .await,
        "Signed in as alice"
    );
    assert_eq!(
        common::status(&link).await,
        410,
        "the token page is used up"
    );

    // Browser -> protocol client, with the character count on the way.
    let field = browser.visible("#message").await;
    field.send_keys("hello from the browser").await.unwrap();
    assert_eq!(
        browser
            .js("return document.getElementById('count').textContent.replace(/\\s+/g, ' ').trim();")
            .await,
        "22/200 characters"
    );
    field.send_keys(&Key::Enter.to_string()).await.unwrap();
    bob.expect(json!(["message", "alice", "hello from the browser"]))
        .await;
    assert_eq!(
        browser.last_message().await,
        ("alice".to_owned(), "hello from the browser".to_owned())
    );
    browser
        .entry(&["alice (you)", "hello from the browser"])
        .await;
    assert_eq!(field.prop("value").await.unwrap().as_deref(), Some(""));
    assert_eq!(
        browser
            .js("return document.getElementById('count-value').textContent;")
            .await,
        "0"
    );

    // Protocol client -> browser.
    bob.say("hi alice, from the terminal").await;
    browser.entry(&["bob", "hi alice, from the terminal"]).await;
    assert_eq!(
        browser.last_message().await,
        ("bob".to_owned(), "hi alice, from the terminal".to_owned())
    );

    // A bot joins, talks, and leaves; every entry has a local time.
    let mut bot = server.login_bot().await;
    bob.expect(json!(["join", format!("[BOT] {BOT_NAME}")]))
        .await;
    browser.entry(&["[BOT] botusr joined."]).await;
    bot.say("beep: 3 users online").await;
    bob.expect(json!([
        "message",
        format!("[BOT] {BOT_NAME}"),
        "beep: 3 users online"
    ]))
    .await;
    browser
        .entry(&["[BOT] botusr", "beep: 3 users online"])
        .await;
    browser.say("thanks, bot").await;
    bob.expect(json!(["message", "alice", "thanks, bot"])).await;
    bot.expect(json!(["message", "alice", "thanks, bot"])).await;
    bob.say("see you both").await;
    bot.expect(json!(["message", "bob", "see you both"])).await;
    browser.entry(&["see you both"]).await;
    assert_eq!(
        browser
            .js("return [...document.querySelectorAll('#messages li')]
                   .every((li) => /^\\d\\d:\\d\\d/.test(li.querySelector('time').textContent)
                     && !isNaN(Date.parse(li.querySelector('time').dateTime)));")
            .await,
        true,
        "every entry shows a local time"
    );

    phone_sized(&browser).await;

    bot.close().await;
    browser.entry(&["[BOT] botusr left."]).await;
    bob.close().await;
    browser.entry(&["bob left."]).await;
    browser.finish().await;
}

/// At a phone's width nothing scrolls sideways and the message field and its button fit.
async fn phone_sized(browser: &Browser) {
    browser.driver.set_window_size(375, 740).await.unwrap();
    browser
        .until(
            "return window.innerWidth <= 375;",
            vec![],
            "the window narrows",
        )
        .await;
    let fits = browser
        .js("const w = document.documentElement.clientWidth;
             const inside = (id) => {
               const r = document.getElementById(id).getBoundingClientRect();
               return r.left >= 0 && r.right <= w && r.width > 0;
             };
             return document.documentElement.scrollWidth <= w
               && inside('message') && inside('send') && inside('messages');")
        .await;
    assert_eq!(fits, true, "the chat view fits a 375px screen");
    browser.driver.set_window_size(800, 600).await.unwrap();
}

/// Names and messages are text, never markup: a name and a message full of HTML show as typed,
/// no element is created and no script runs. The browser logs in as a bot this time.
#[tokio::test]
async fn names_and_messages_render_as_text_never_as_html() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let server = TestServer::default().await;
    browser.open(server.addr).await;
    browser.login_bot(BOT_NAME, BOT_TOKEN).await;
    browser.entry(&["You joined as [BOT] botusr."]).await;

    let evil_name = "<b>m</b>";
    let mut mallory = server.login(evil_name, TOKENS[0]).await;
    browser.entry(&["<b>m</b> joined."]).await;
    mallory.say(XSS).await;
    browser.entry(&[XSS]).await;
    assert_eq!(
        browser.last_message().await,
        (evil_name.to_owned(), XSS.to_owned())
    );

    // The page's own copy of a message is text too.
    browser.say(XSS).await;
    mallory
        .expect(json!(["message", format!("[BOT] {BOT_NAME}"), XSS]))
        .await;
    browser.entry(&["(you)", XSS]).await;

    assert_eq!(
        browser
            .js("return document.querySelectorAll('img').length;")
            .await,
        0
    );
    assert_eq!(
        browser
            .js("return document.querySelectorAll('#messages b').length;")
            .await,
        0
    );
    assert_eq!(browser.js("return typeof window.__xss;").await, "undefined");
    browser.finish().await;
}

/// Refusals show in plain words, with the server's exact text one click away: a wrong generic
/// token and a wrong bot token; each returns to the login form, ready to try again, and the
/// right login then goes through.
#[tokio::test]
async fn refusals_show_in_words_and_verbatim() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let server = TestServer::default().await;
    browser.open(server.addr).await;

    browser.start_user_login("alice", "not-a-token").await;
    let error = browser.visible("#login-error").await;
    let text = error.text().await.unwrap();
    assert!(text.contains("The server refused your token."), "{text}");
    assert!(
        !text.contains("Token refused"),
        "the server's text is in the details: {text}"
    );
    let details = browser.details("#login-error").await;
    assert!(
        details.contains("Server said: “Token refused”"),
        "{details}"
    );
    assert!(
        browser
            .find("#login-view")
            .await
            .is_displayed()
            .await
            .unwrap()
    );

    browser.login_bot_refused().await;

    // The right login goes through.
    browser.login_user(server.addr, "alice", TOKENS[0]).await;
    browser.entry(&["You joined as alice."]).await;
    browser.finish().await;
}

/// A wrong temporary token does not send the person back to the start: the page logs in again
/// with the same name and token by itself, shows the new token page's link with a word on what
/// happened, and the new page's token then gets in. Nothing is typed again but the temporary
/// token, and the login form never shows.
#[tokio::test]
async fn a_wrong_temporary_token_gets_a_fresh_token_page() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let server = TestServer::default().await;
    let mut bob = server.login("bob", TOKENS[1]).await;
    browser.open(server.addr).await;

    browser.start_user_login("alice", TOKENS[0]).await;
    let first = browser
        .visible("#token-link")
        .await
        .attr("href")
        .await
        .unwrap()
        .unwrap();
    browser
        .js("window.__loginShown = false;
             const view = document.getElementById('login-view');
             new MutationObserver(() => { if (!view.hidden) window.__loginShown = true; })
               .observe(view, { attributes: true });")
        .await;

    browser.type_into("#temp-token", "wrong").await;
    browser
        .find("#tokenauth-submit")
        .await
        .click()
        .await
        .unwrap();
    let second = browser
        .until(
            "const a = document.getElementById('token-link');
             return !a.closest('[hidden]') && a.href && a.href !== arguments[0] ? a.href : null;",
            vec![json!(first)],
            "a new token page",
        )
        .await;
    let second = second.as_str().unwrap().to_owned();
    assert!(
        second.starts_with(&format!("http://{}/", server.addr)),
        "{second}"
    );
    let notice = browser.visible("#token-note").await.text().await.unwrap();
    assert!(
        notice.contains("That token was not accepted, so here is a new token page."),
        "{notice}"
    );
    assert_eq!(
        browser.active_id().await,
        "token-link",
        "the next step has the focus"
    );
    let details = browser.details("#token-note").await;
    assert!(details.contains("Server said: “refused”"), "{details}");
    assert_eq!(
        browser
            .find("#temp-token")
            .await
            .prop("value")
            .await
            .unwrap()
            .as_deref(),
        Some("")
    );
    assert_eq!(
        common::status(&first).await,
        410,
        "the first page is used up"
    );

    // The new page's token gets in, with nothing else typed again.
    let used = browser.finish_user_login(server.addr).await;
    assert_eq!(used, second);
    browser.entry(&["You joined as alice."]).await;
    bob.expect(json!(["join", "alice"])).await;
    assert_eq!(browser.js("return window.__loginShown;").await, false);
    assert_eq!(
        browser
            .find("#username")
            .await
            .prop("value")
            .await
            .unwrap()
            .as_deref(),
        Some("alice")
    );
    browser.finish().await;
}

impl Browser {
    async fn login_bot_refused(&self) {
        self.visible("#kind-bot").await.click().await.unwrap();
        self.type_into("#botname", BOT_NAME).await;
        self.type_into("#bottoken", "wrong-bot-token").await;
        self.find("#connect").await.click().await.unwrap();
        self.until(
            "const e = document.getElementById('login-error');
             return !e.closest('[hidden]') && e.textContent.includes('bot refused');",
            vec![],
            "the bot refusal",
        )
        .await;
        let text = self.find("#login-error").await.text().await.unwrap();
        assert!(
            text.contains("The server refused the bot name or bot token."),
            "{text}"
        );
        let details = self.details("#login-error").await;
        assert!(details.contains("Server said: “bot refused”"), "{details}");
    }
}

/// A message over the server's limit is never sent: the page knows the limit from
/// `/app/server.json`, marks the count, and says why instead of sending; the other person gets
/// nothing, and a short message then goes through.
#[tokio::test]
async fn an_over_long_message_is_not_sent() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let server = TestServer::start(config(json!({"max_message_length": 10}))).await;
    let mut bob = server.login("bob", TOKENS[0]).await;
    browser.open(server.addr).await;
    browser.count_limit_is("10").await;
    browser.login_bot(BOT_NAME, BOT_TOKEN).await;
    bob.expect(json!(["join", format!("[BOT] {BOT_NAME}")]))
        .await;

    let field = browser.visible("#message").await;
    field.send_keys("twelve chars").await.unwrap();
    assert_eq!(
        browser
            .js("return document.getElementById('count').classList.contains('over');")
            .await,
        true
    );
    field.send_keys(&Key::Enter.to_string()).await.unwrap();
    let note = browser
        .visible("#composer-note")
        .await
        .text()
        .await
        .unwrap();
    assert!(
        note.contains("Too long to send: 12 characters, and the limit is 10. Shorten it by 2"),
        "{note}"
    );
    assert_eq!(
        field.prop("value").await.unwrap().as_deref(),
        Some("twelve chars"),
        "kept to shorten"
    );
    assert_eq!(
        browser
            .js("return document.querySelectorAll('#messages li.msg').length;")
            .await,
        0,
        "not shown as sent"
    );

    // Shortened, it goes; bob's next frame is that one, so the long one never reached him.
    field.clear().await.unwrap();
    browser.say("short").await;
    bob.expect(json!(["message", format!("[BOT] {BOT_NAME}"), "short"]))
        .await;
    assert!(!browser.shown("#composer-note").await);
    browser.finish().await;
}

/// A limit the page could not know: the server announced 30 when the page loaded, and a
/// reload lowered it to 10 since. The page sends a 12-character message, learns the limit from
/// the refusal, marks the message as not delivered, stays connected, and from then on blocks
/// over-long messages itself.
#[tokio::test]
async fn the_message_limit_is_learned_from_a_refusal() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secureconfig.json");
    let write = |limit: u32| {
        let config = common::config_json(json!({"max_message_length": limit}));
        write_atomically(&path, config.to_string().as_bytes()).unwrap();
    };
    write(30);
    let server = TestServer::start_from_file(&path).await;
    let mut bob = server.login("bob", TOKENS[0]).await;
    browser.open(server.addr).await;
    browser.count_limit_is("30").await;
    browser.login_bot(BOT_NAME, BOT_TOKEN).await;
    bob.expect(json!(["join", format!("[BOT] {BOT_NAME}")]))
        .await;

    write(10);
    let info = server.url("/app/server.json");
    eventually("the reload lowers the limit", async || {
        let info = reqwest::get(&info).await.unwrap().text().await.unwrap();
        let info: Value = serde_json::from_str(&info).unwrap();
        info["max_message_length"] == 10
    })
    .await;
    assert_eq!(
        browser
            .js("return document.getElementById('count-limit').textContent;")
            .await,
        "30",
        "the page still has the announced limit"
    );

    browser.say("twelve chars").await;
    let refusal = browser.entry(&["message is too long [12/10]"]).await;
    assert!(
        refusal.contains("That message was too long: 12 characters, and the limit is 10."),
        "{refusal}"
    );
    let details = browser.details("#messages li.refusal").await;
    assert!(
        details.contains("Server said: “message is too long [12/10]”"),
        "{details}"
    );
    browser.entry(&["twelve chars", "not delivered"]).await;
    browser.count_limit_is("10").await;

    // The message is back in the field to shorten, and now the page knows the limit: it is
    // marked over and not sent.
    let field = browser.visible("#message").await;
    assert_eq!(
        field.prop("value").await.unwrap().as_deref(),
        Some("twelve chars")
    );
    assert_eq!(
        browser
            .js("return document.getElementById('count').classList.contains('over');")
            .await,
        true
    );
    field.send_keys(&Key::Enter.to_string()).await.unwrap();
    let note = browser
        .visible("#composer-note")
        .await
        .text()
        .await
        .unwrap();
    assert!(
        note.contains("Too long to send: 12 characters, and the limit is 10."),
        "{note}"
    );
    assert_eq!(
        field.prop("value").await.unwrap().as_deref(),
        Some("twelve chars")
    );

    // Still connected: a short one goes through, and it is the first message bob gets.
    field.clear().await.unwrap();
    browser.say("short").await;
    bob.expect(json!(["message", format!("[BOT] {BOT_NAME}"), "short"]))
        .await;
    assert!(
        !browser
            .find("#disconnected")
            .await
            .is_displayed()
            .await
            .unwrap()
    );
    browser.close().await;
}

impl Browser {
    /// Waits until the message counter shows `limit` as the limit.
    async fn count_limit_is(&self, limit: &str) {
        self.until(
            "return document.getElementById('count-limit').textContent === arguments[0];",
            vec![json!(limit)],
            &format!("the limit {limit} in the counter"),
        )
        .await;
    }
}

/// When the server goes away the page first tries to take the session back ("reconnecting…",
/// the message field kept); once the server's resume window has passed it gives up, says so,
/// disables the message field and offers Reconnect (with the focus on it); once the server is
/// back, Reconnect logs in again. Leave disconnects on purpose.
#[tokio::test]
async fn the_page_shows_a_lost_connection_and_reconnects() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    // A short window, so that the page gives up soon.
    let settings = json!({"resume_window_secs": 2});
    let first = TestServer::start(config(settings.clone())).await;
    let addr = first.addr;
    browser.open(addr).await;
    browser.login_bot(BOT_NAME, BOT_TOKEN).await;

    // 1012, "server restarting; resume": the page tries to.
    first.stop().await;
    let status = browser.visible("#reconnecting").await.text().await.unwrap();
    assert!(status.contains("reconnecting…"), "{status}");
    browser.entry(&["Connection lost; reconnecting…"]).await;
    assert!(browser.find("#message").await.is_enabled().await.unwrap());

    // Nothing answers within the window: the page gives up.
    let banner = browser.visible("#disconnected").await;
    let text = banner.text().await.unwrap();
    assert!(
        text.contains("could not be reached again in time"),
        "{text}"
    );
    assert!(!text.contains("1006"), "no code in the sentence: {text}");
    assert!(
        !browser
            .find("#reconnecting")
            .await
            .is_displayed()
            .await
            .unwrap()
    );
    assert_eq!(browser.active_id().await, "reconnect");
    assert!(!browser.find("#message").await.is_enabled().await.unwrap());
    browser.entries_with("Reconnecting failed.", 1).await;
    let details = browser.details("#disconnected").await;
    assert!(
        details.contains("WebSocket closed with code 1006"),
        "{details}"
    );

    // Reconnecting to nothing fails, and says so.
    browser.find("#reconnect").await.click().await.unwrap();
    browser.entries_with("Reconnecting failed.", 2).await;
    let text = browser.visible("#disconnected").await.text().await.unwrap();
    assert!(text.contains("Could not connect to the server"), "{text}");
    assert!(!text.contains("1006"), "no code in the sentence: {text}");
    let details = browser.details("#disconnected").await;
    assert!(
        details.contains("WebSocket closed with code 1006"),
        "{details}"
    );

    // The server is back on the same address.
    let second = TestServer::start_at(addr, config(settings)).await;
    browser.find("#reconnect").await.click().await.unwrap();
    browser.entry(&["Reconnected as [BOT] botusr."]).await;
    assert!(
        !browser
            .find("#disconnected")
            .await
            .is_displayed()
            .await
            .unwrap()
    );
    assert!(browser.find("#message").await.is_enabled().await.unwrap());
    assert_eq!(browser.active_id().await, "message");

    // Leave: a deliberate disconnect, seen by the others, and a polite state, not an error.
    let mut bob = second.login("bob", TOKENS[0]).await;
    browser.entry(&["bob joined."]).await;
    browser.visible("#leave").await.click().await.unwrap();
    bob.expect(json!(["disconnect", format!("[BOT] {BOT_NAME}")]))
        .await;
    browser.assert_left().await;
    browser.finish().await;
    second.stop().await;
}

/// A connection lost without a close frame, while the server runs on: the page says
/// "reconnecting…" and keeps what is being typed, resumes with the token it kept in memory
/// only, shows exactly the messages said meanwhile, in order and set apart, and then chats live
/// again; the room never saw it leave. Leave then closes with a close frame, so the server holds
/// nothing.
#[tokio::test]
async fn a_lost_connection_resumes_with_the_messages_missed_meanwhile() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let server = TestServer::default().await;
    let relay = Relay::start(server.addr).await;
    let mut bob = server.login("bob", TOKENS[1]).await;
    let mut carol = server.login("carol", TOKENS[2]).await;
    bob.expect(json!(["join", "carol"])).await;
    browser.open(relay.addr).await;
    browser.login_user(relay.addr, "alice", TOKENS[0]).await;
    bob.expect(json!(["join", "alice"])).await;
    carol.expect(json!(["join", "alice"])).await;
    // It comes after the page's `session` frame: the page holds a token.
    bob.say("before the cut").await;
    browser.entry(&["bob", "before the cut"]).await;
    carol
        .expect(json!(["message", "bob", "before the cut"]))
        .await;
    let field = browser.visible("#message").await;
    field.send_keys("typed while away").await.unwrap();

    // The network drops the connection: no close frame (1006).
    relay.cut();
    let status = browser.visible("#reconnecting").await.text().await.unwrap();
    assert!(status.contains("reconnecting…"), "{status}");
    held(&server, 1).await;
    assert_eq!(
        field.prop("value").await.unwrap().as_deref(),
        Some("typed while away"),
        "what was typed stays"
    );
    assert!(field.is_enabled().await.unwrap());
    assert!(!browser.find("#send").await.is_enabled().await.unwrap());
    assert!(
        !browser
            .find("#disconnected")
            .await
            .is_displayed()
            .await
            .unwrap()
    );

    // Said while the page is away; once carol has them, the room has numbered them.
    bob.say("missed one").await;
    bob.say("missed two").await;
    carol.expect(json!(["message", "bob", "missed one"])).await;
    carol.expect(json!(["message", "bob", "missed two"])).await;
    relay.mend();

    // Back: exactly the missed messages, in order, between their dividers.
    let list = browser
        .until(
            "const items = [...document.querySelectorAll('#messages li')];
             const at = items.findIndex((li) => li.classList.contains('missed'));
             if (at < 0 || items.length < at + 4) return null;
             return items.slice(at, at + 4).map((li) => [li.className, li.textContent]);",
            vec![],
            "the missed messages between their dividers",
        )
        .await;
    assert_eq!(
        list[0],
        json!(["divider missed", "2 messages while you were away"])
    );
    for (i, text) in [(1, "missed one"), (2, "missed two")] {
        assert_eq!(list[i][0], "msg earlier", "{list}");
        let shown = list[i][1].as_str().unwrap();
        assert!(shown.contains("bob") && shown.ends_with(text), "{list}");
    }
    assert_eq!(list[3], json!(["divider", "Now"]));
    assert_eq!(
        browser
            .js("return [...document.querySelectorAll('#messages li')]
                   .filter((li) => li.textContent.includes('before the cut')).length;")
            .await,
        1,
        "nothing seen before is shown again"
    );
    browser
        .entry(&["Reconnected: you are still in the room."])
        .await;
    browser
        .until(
            "return document.getElementById('reconnecting').hidden
               && document.getElementById('disconnected').hidden
               && !document.getElementById('send').disabled;",
            vec![],
            "the status gone and Send back",
        )
        .await;

    // Live again, both ways; the room saw no departure and no join in between.
    bob.say("live again").await;
    browser.entry(&["bob", "live again"]).await;
    assert_eq!(
        browser.last_message().await,
        ("bob".to_owned(), "live again".to_owned())
    );
    assert_eq!(
        browser
            .js("return document.querySelector('#messages li.msg:last-child').className;")
            .await,
        "msg",
        "a live message, not an earlier one"
    );
    carol.expect(json!(["message", "bob", "live again"])).await;
    field.send_keys(&Key::Enter.to_string()).await.unwrap();
    bob.expect(json!(["message", "alice", "typed while away"]))
        .await;
    carol
        .expect(json!(["message", "alice", "typed while away"]))
        .await;

    // The resume token lived in memory only: not in storage, a cookie, the URL or the page.
    let kept = browser
        .js("const token = /[A-Za-z0-9]{43}/;
             return [localStorage.length, sessionStorage.length, document.cookie,
                     token.test(location.href),
                     token.test(document.documentElement.outerHTML)];")
        .await;
    assert_eq!(kept, json!([0, 0, "", false, false]));

    // Leave sends a close frame: the session is not held, the room hears at once.
    browser.visible("#leave").await.click().await.unwrap();
    bob.expect(json!(["disconnect", "alice"])).await;
    carol.expect(json!(["disconnect", "alice"])).await;
    held(&server, 0).await;
    browser.assert_left().await;
    browser.finish().await;
}

/// A resume the server refuses (here: a server restarted without the sessions the first one
/// held) takes the page back to the login view, which says why and what to do; Connect there
/// logs in again.
#[tokio::test]
async fn a_refused_resume_goes_back_to_the_login_view() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let first = TestServer::default().await;
    let addr = first.addr;
    browser.open(addr).await;
    browser.login_bot(BOT_NAME, BOT_TOKEN).await;
    browser.entry(&["You joined as [BOT] botusr."]).await;

    first.stop().await;
    browser.visible("#reconnecting").await;
    let second = TestServer::start_at(addr, config(json!({}))).await;
    let error = browser.visible("#login-error").await.text().await.unwrap();
    assert!(
        error.contains("could not take your session back") && error.contains("Log in again"),
        "{error}"
    );
    let details = browser.details("#login-error").await;
    assert!(
        details.contains("Resume refused; log in again."),
        "{details}"
    );
    assert!(
        !browser
            .find("#chat-view")
            .await
            .is_displayed()
            .await
            .unwrap()
    );

    let mut bob = second.login("bob", TOKENS[0]).await;
    browser.find("#connect").await.click().await.unwrap();
    bob.expect(json!(["join", format!("[BOT] {BOT_NAME}")]))
        .await;
    browser.visible("#chat-view").await;
    browser.entries_with("You joined as [BOT] botusr.", 2).await;
    browser.finish().await;
    second.stop().await;
}

impl Browser {
    /// Waits until exactly `count` entries of the message list contain `text`.
    async fn entries_with(&self, text: &str, count: usize) {
        self.until(
            "return [...document.querySelectorAll('#messages li')]
               .filter((li) => li.textContent.includes(arguments[0])).length === arguments[1];",
            vec![json!(text), json!(count)],
            &format!("{count} entries with {text:?}"),
        )
        .await;
    }
}

/// Waits until the server holds `count` sessions for a resume (its `/_status`).
async fn held(server: &TestServer, count: u64) {
    common::status::wait_held(&server.url("/_status"), count).await;
}

/// A TCP relay between the browser and the server, standing for the network: it passes every
/// connection through until [`Relay::cut`] drops them all at once (the browser sees its
/// WebSocket end without a close frame, 1006, and the server sees it end too) and turns new
/// ones away, until [`Relay::mend`].
struct Relay {
    /// Where the browser connects.
    addr: SocketAddr,
    state: Arc<Mutex<RelayState>>,
    accepting: tokio::task::JoinHandle<()>,
}

#[derive(Default)]
struct RelayState {
    cut: bool,
    links: Vec<tokio::task::AbortHandle>,
}

impl Relay {
    async fn start(server: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(RelayState::default()));
        let shared = Arc::clone(&state);
        let accepting = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let mut state = shared.lock().unwrap();
                if state.cut {
                    continue; // Dropped: refused.
                }
                let link = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(server).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                state.links.push(link.abort_handle());
            }
        });
        Relay {
            addr,
            state,
            accepting,
        }
    }

    /// Drops every connection passing through, and turns new ones away.
    fn cut(&self) {
        let mut state = self.state.lock().unwrap();
        state.cut = true;
        for link in state.links.drain(..) {
            link.abort();
        }
    }

    /// Lets new connections through again.
    fn mend(&self) {
        self.state.lock().unwrap().cut = false;
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.accepting.abort();
        self.cut();
    }
}

/// An open room (`"SAUTH2": false`): the page learns it from `/app/server.json`, says so, and
/// asks a person for a name alone (no token field, no token page); the person joins with a name
/// and chats both ways with a protocol-level user who also logged in with a name only. The
/// announced limits replace the page's defaults. On a SAUTH2 server the token field stays.
#[tokio::test]
async fn an_open_room_logs_a_person_in_with_a_name_alone() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let server = TestServer::start(config(json!({
        "SAUTH2": false,
        "max_username_length": 12,
        "max_message_length": 120,
    })))
    .await;
    let mut bob = server.connect().await;
    bob.send(json!(["auth", {"username": "bob"}])).await;
    bob.expect_id().await;
    browser.open(server.addr).await;

    // The name-only login, with the server's own limits.
    let note = browser.visible("#open-note").await;
    assert_eq!(
        note.text().await.unwrap(),
        "This room is open: pick a name to join."
    );
    assert!(browser.shown("#username").await);
    assert!(!browser.shown("#token").await, "no token field");
    assert!(!browser.shown("#token-view").await);
    assert_eq!(
        browser
            .visible("#username-hint")
            .await
            .text()
            .await
            .unwrap(),
        "(up to 12 characters)"
    );
    assert_eq!(
        browser
            .js("return document.getElementById('count-limit').textContent;")
            .await,
        "120"
    );
    // The bot login is still offered, with its name and token.
    browser.visible("#kind-bot").await.click().await.unwrap();
    assert!(browser.shown("#botname").await && browser.shown("#bottoken").await);
    browser.visible("#kind-user").await.click().await.unwrap();
    assert!(!browser.shown("#token").await, "no token field");

    // A name and Enter: straight into the room, no token page on the way.
    browser.type_into("#username", "carol").await;
    browser
        .find("#username")
        .await
        .send_keys(&Key::Enter.to_string())
        .await
        .unwrap();
    browser.visible("#chat-view").await;
    bob.expect(json!(["join", "carol"])).await;
    browser.entry(&["You joined as carol."]).await;
    assert_eq!(
        browser
            .js("return document.getElementById('whoami').textContent;")
            .await,
        "Signed in as carol"
    );

    // Both ways.
    browser.say("hello from an open room").await;
    bob.expect(json!(["message", "carol", "hello from an open room"]))
        .await;
    browser
        .entry(&["carol (you)", "hello from an open room"])
        .await;
    bob.say("hi carol, no token needed").await;
    browser.entry(&["bob", "hi carol, no token needed"]).await;
    assert_eq!(
        browser.last_message().await,
        ("bob".to_owned(), "hi carol, no token needed".to_owned())
    );
    assert!(!browser.shown("#token-view").await, "never a token page");
    browser.assert_no_csp_violations().await;
    bob.close().await;

    // A SAUTH2 server: once the page has heard from it (the name hint shows its limit), the
    // token field is there and the open-room note is not.
    let sauth2 = TestServer::default().await;
    browser.open(sauth2.addr).await;
    assert_eq!(
        browser
            .visible("#username-hint")
            .await
            .text()
            .await
            .unwrap(),
        "(up to 15 characters)"
    );
    assert!(browser.shown("#username").await);
    assert!(browser.shown("#token").await, "the token field");
    assert!(!browser.shown("#open-note").await);
    browser.finish().await;
}

impl Browser {
    /// Whether the element matching `css` is shown now (it and its ancestors have no `hidden`).
    async fn shown(&self, css: &str) -> bool {
        self.driver
            .execute(
                "const el = document.querySelector(arguments[0]);
                 return !!el && !el.closest('[hidden]');",
                vec![json!(css)],
            )
            .await
            .unwrap()
            .as_bool()
            .unwrap()
    }
}

/// The room is closed by a reload while the page still offers the name-only login: the
/// name-only login is refused in words that say so, the token field comes back, and the SAUTH2
/// login then goes through.
#[tokio::test]
async fn a_room_closed_since_the_page_loaded_asks_for_the_token_again() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secureconfig.json");
    let write = |sauth2: bool| {
        let config = common::config_json(json!({"SAUTH2": sauth2}));
        write_atomically(&path, config.to_string().as_bytes()).unwrap();
    };
    write(false);
    let server = TestServer::start_from_file(&path).await;
    browser.open(server.addr).await;
    browser.visible("#open-note").await;

    write(true);
    let info = server.url("/app/server.json");
    eventually("the reload closes the room", async || {
        let info = reqwest::get(&info).await.unwrap().text().await.unwrap();
        let info: Value = serde_json::from_str(&info).unwrap();
        info["sauth2"] == true
    })
    .await;

    browser.type_into("#username", "alice").await;
    browser.find("#connect").await.click().await.unwrap();
    browser
        .until(
            "const e = document.getElementById('login-error');
             return !e.closest('[hidden]') && e.textContent.includes('no longer open');",
            vec![],
            "the closed-room refusal",
        )
        .await;
    assert!(browser.shown("#token").await, "the token field is back");
    assert!(!browser.shown("#open-note").await);
    assert_eq!(
        browser.active_id().await,
        "token",
        "the missing part has the focus"
    );
    let details = browser.details("#login-error").await;
    assert!(
        details.contains("Server said: “Token refused”"),
        "{details}"
    );

    browser.login_user(server.addr, "alice", TOKENS[0]).await;
    browser.entry(&["You joined as alice."]).await;
    browser.finish().await;
}

impl Browser {
    /// After Leave: a polite banner (not an error) that offers to join again.
    async fn assert_left(&self) {
        let banner = self.visible("#disconnected").await;
        let text = banner.text().await.unwrap();
        assert!(text.contains("You left. Join again?"), "{text}");
        let class = banner.attr("class").await.unwrap().unwrap_or_default();
        assert!(
            class.split(' ').any(|c| c == "info") && !class.split(' ').any(|c| c == "error"),
            "{class}"
        );
        assert_eq!(
            banner.attr("role").await.unwrap().as_deref(),
            Some("status")
        );
        assert_eq!(
            self.find("#reconnect").await.text().await.unwrap(),
            "Join again"
        );
        self.entry(&["You left."]).await;
    }

    /// Counts the WebSockets the page opens from now on, in `window.__sockets`.
    async fn count_sockets(&self) {
        self.js("window.__sockets = 0;
                 const Real = WebSocket;
                 window.WebSocket = function (...args) { window.__sockets++; return new Real(...args); };
                 window.WebSocket.OPEN = Real.OPEN;")
            .await;
    }
}

/// A login's errors show on the login view, where it was typed, never on the chat view of a
/// session before it: after Leave (a polite state) and "Log in differently", a name over the
/// announced limit is refused by the page itself (the hint says the limit and how far over the
/// name is, and nothing is sent), and a name the server refuses shows its refusal there too.
/// "Back to the room" and "Join again" then log in as the last session did, not as typed since.
#[tokio::test]
async fn a_login_s_errors_show_on_the_login_view_and_reconnect_uses_the_last_session() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let server = TestServer::default().await;
    let mut bob = server.login("bob", TOKENS[1]).await;
    browser.open(server.addr).await;
    browser.login_bot(BOT_NAME, BOT_TOKEN).await;
    bob.expect(json!(["join", format!("[BOT] {BOT_NAME}")]))
        .await;
    browser.visible("#leave").await.click().await.unwrap();
    bob.expect(json!(["disconnect", format!("[BOT] {BOT_NAME}")]))
        .await;
    browser.assert_left().await;

    browser.find("#switch-login").await.click().await.unwrap();
    browser.visible("#login-view").await;
    browser.count_sockets().await;
    browser.visible("#kind-user").await.click().await.unwrap();
    assert_eq!(
        browser
            .visible("#username-hint")
            .await
            .text()
            .await
            .unwrap(),
        "(up to 15 characters)"
    );
    let long = "abcdefghijklmnopqrstu";
    browser.type_into("#username", long).await;
    assert_eq!(
        browser
            .visible("#username-hint")
            .await
            .text()
            .await
            .unwrap(),
        "(up to 15 characters; this one has 21)"
    );
    browser.type_into("#token", TOKENS[0]).await;
    browser.find("#connect").await.click().await.unwrap();
    let text = browser.visible("#login-error").await.text().await.unwrap();
    assert_eq!(
        text,
        "That username is too long: it has 21 characters, and this server allows 15. Shorten it."
    );
    assert_eq!(browser.active_id().await, "username");
    assert!(!browser.shown("#chat-view").await);
    assert_eq!(
        browser.js("return window.__sockets;").await,
        0,
        "nothing sent"
    );

    // A name the server refuses: its refusal on the login view too.
    browser.type_into("#username", "bob").await;
    browser.find("#connect").await.click().await.unwrap();
    browser
        .until(
            "const e = document.getElementById('login-error');
             return !e.closest('[hidden]') && e.textContent.includes('already uses that name');",
            vec![],
            "the refusal on the login view",
        )
        .await;
    let details = browser.details("#login-error").await;
    assert!(
        details.contains("Server said: “Username already taken.”"),
        "{details}"
    );
    assert!(!browser.shown("#chat-view").await);
    assert_eq!(browser.js("return window.__sockets;").await, 1);

    // Back to the room, and Join again: as the bot, whatever was typed since.
    browser.visible("#login-back").await.click().await.unwrap();
    browser.assert_left().await;
    browser.find("#reconnect").await.click().await.unwrap();
    browser
        .entry(&[&format!("You joined again as [BOT] {BOT_NAME}.")])
        .await;
    bob.expect(json!(["join", format!("[BOT] {BOT_NAME}")]))
        .await;
    assert!(!browser.shown("#disconnected").await);
    browser.finish().await;
}

/// A message that names the person (as a word, in any case) is highlighted, and others are
/// not. While the chat tab is hidden its title counts the messages that arrive, and a mention
/// becomes a desktop notification once the person turned them on; the count goes when the tab
/// is seen again.
///
/// Hiding the tab is real: the test opens a second tab from the page (`window.open`) and
/// switches to it, which Chromium reports to the chat tab as `visibilityState` "hidden". It
/// reads the chat tab's title from the second tab through `window.opener` (same origin), since
/// switching back would show the tab. Headless Chromium cannot answer a permission prompt, so
/// the test stands in for the browser's `Notification` (permission and constructor) after the
/// page loaded, and checks that the page asked only when the button was pressed.
#[tokio::test]
async fn a_mention_is_highlighted_and_counted_while_the_tab_is_hidden() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let server = TestServer::default().await;
    let mut bob = server.login("bob", TOKENS[1]).await;
    browser.open(server.addr).await;
    browser.login_user(server.addr, "alice", TOKENS[0]).await;
    bob.expect(json!(["join", "alice"])).await;

    let mentions = [
        ("hello ALICE, are you there?", true),
        ("@alice: ping", true),
        ("malice is not a mention, nor is alice2", false),
        ("nothing here", false),
    ];
    for (text, mention) in mentions {
        bob.say(text).await;
        browser.entry(&[text]).await;
        let marked = browser
            .js(
                "const li = [...document.querySelectorAll('#messages li.msg')].pop();
                 return li.classList.contains('mention');",
            )
            .await;
        assert_eq!(marked, mention, "{text}");
    }
    browser.say("alice here").await;
    bob.expect(json!(["message", "alice", "alice here"])).await;
    assert_eq!(
        browser
            .js("return document.querySelectorAll('#messages li.own.mention').length;")
            .await,
        0,
        "one's own message is no mention"
    );
    assert_eq!(browser.driver.title().await.unwrap(), "CLIChat");

    // Notifications: asked for only when the button is pressed.
    browser
        .js("window.__asked = 0;
             window.__notes = [];
             let permission = 'default';
             window.Notification = class {
               constructor(title, options) { window.__notes.push([title, options.body]); }
               static get permission() { return permission; }
               static requestPermission() {
                 window.__asked++;
                 permission = 'granted';
                 return Promise.resolve(permission);
               }
             };")
        .await;
    let toggle = browser.visible("#notify").await;
    assert_eq!(
        toggle.attr("aria-pressed").await.unwrap().as_deref(),
        Some("false")
    );
    toggle.click().await.unwrap();
    browser
        .until(
            "return document.getElementById('notify').getAttribute('aria-pressed') === 'true';",
            vec![],
            "notifications on",
        )
        .await;
    assert_eq!(browser.js("return window.__asked;").await, 1);

    // Hide the chat tab behind a second one.
    let chat_tab = browser.driver.window().await.unwrap();
    browser.js("window.open('/app/server.json');").await;
    let other = eventually("the second tab", async || {
        let windows = browser.driver.windows().await.unwrap();
        windows.into_iter().find(|w| *w != chat_tab)
    })
    .await;
    browser.driver.switch_to_window(other).await.unwrap();
    browser
        .in_opener(
            "chat.document.visibilityState === 'hidden'",
            "the chat tab hidden",
        )
        .await;

    bob.say("one").await;
    bob.say("two, alice").await;
    let mut carol = server.login("carol", TOKENS[2]).await;
    carol.say("three").await;
    let title = browser
        .in_opener(
            "[...chat.document.querySelectorAll('#messages li')]
               .some((li) => li.textContent.includes('three')) && chat.document.title",
            "the third message in the hidden tab",
        )
        .await;
    assert_eq!(title, "(3) CLIChat", "the join is not counted");
    let notes = browser.in_opener("chat.__notes", "the notifications").await;
    assert_eq!(notes, json!([["bob mentioned you", "two, alice"]]));

    // Seen again: the count goes.
    browser.driver.close_window().await.unwrap();
    browser.driver.switch_to_window(chat_tab).await.unwrap();
    browser
        .until(
            "return document.visibilityState === 'visible' && document.title === 'CLIChat';",
            vec![],
            "the title without a count",
        )
        .await;
    carol.close().await;
    browser.finish().await;
}

/// http(s) URLs in messages are links (built as elements, opening in a new tab without
/// referrer or opener), with the sentence's punctuation left out; `javascript:`, `data:` and
/// any other scheme stay text.
#[tokio::test]
async fn links_are_links_and_other_schemes_are_text() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let server = TestServer::default().await;
    let mut bob = server.login("bob", TOKENS[0]).await;
    browser.open(server.addr).await;
    browser.login_bot(BOT_NAME, BOT_TOKEN).await;
    bob.expect(json!(["join", format!("[BOT] {BOT_NAME}")]))
        .await;

    let text = "see https://example.com/a?b=1&c=(2). or HTTP://example.org, \
                not javascript:alert(1) nor data:text/html,hi nor ftp://example.net/x";
    bob.say(text).await;
    browser.entry(&["javascript:alert(1)"]).await;
    let links = browser
        .js(
            "const li = [...document.querySelectorAll('#messages li.msg')].pop();
             return [li.querySelector('.text').textContent,
                     [...li.querySelectorAll('a')].map((a) =>
                       [a.textContent, a.href, a.rel, a.target, a.parentElement.className])];",
        )
        .await;
    assert_eq!(links[0], text, "the whole message shows");
    assert_eq!(
        links[1],
        json!([
            [
                "https://example.com/a?b=1&c=(2)",
                "https://example.com/a?b=1&c=(2)",
                "noopener noreferrer",
                "_blank",
                "text"
            ],
            [
                "HTTP://example.org",
                "http://example.org/",
                "noopener noreferrer",
                "_blank",
                "text"
            ]
        ])
    );
    assert_eq!(
        browser
            .js("return [...document.querySelectorAll('a')]
                   .filter((a) => !/^https?:$/.test(a.protocol)).length;")
            .await,
        0,
        "no link of another scheme anywhere"
    );

    // One's own messages too.
    browser.say("mine: http://example.org/x").await;
    bob.expect(json!([
        "message",
        format!("[BOT] {BOT_NAME}"),
        "mine: http://example.org/x"
    ]))
    .await;
    assert_eq!(
        browser
            .js(
                "const li = [...document.querySelectorAll('#messages li.own')].pop();
                 return li.querySelector('.text a').href;"
            )
            .await,
        "http://example.org/x"
    );
    browser.finish().await;
}

/// Shift+Enter starts a new line and Enter sends: one message with its newline, which a
/// protocol-level client receives as such; messages with line breaks show them, sent or
/// received.
#[tokio::test]
async fn shift_enter_writes_one_multi_line_message() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let server = TestServer::default().await;
    let mut bob = server.login("bob", TOKENS[0]).await;
    browser.open(server.addr).await;
    browser.login_bot(BOT_NAME, BOT_TOKEN).await;
    bob.expect(json!(["join", format!("[BOT] {BOT_NAME}")]))
        .await;

    let field = browser.visible("#message").await;
    let shift_enter = format!("{}{}{}", Key::Shift, Key::Enter, Key::Null);
    field
        .send_keys(&format!("first line{shift_enter}second line"))
        .await
        .unwrap();
    assert_eq!(
        field.prop("value").await.unwrap().as_deref(),
        Some("first line\nsecond line")
    );
    assert_eq!(
        browser
            .js("return document.getElementById('count-value').textContent;")
            .await,
        "22"
    );
    field.send_keys(&Key::Enter.to_string()).await.unwrap();
    bob.expect(json!([
        "message",
        format!("[BOT] {BOT_NAME}"),
        "first line\nsecond line"
    ]))
    .await;
    assert_eq!(field.prop("value").await.unwrap().as_deref(), Some(""));

    bob.say("one\ntwo\nthree").await;
    browser.entry(&["one\ntwo\nthree"]).await;
    let shown = browser
        .js("const lines = (t) => {
               const range = document.createRange();
               range.selectNodeContents(t);
               const rects = [...range.getClientRects()].filter((r) => r.width > 0);
               return new Set(rects.map((r) => Math.round(r.top))).size;
             };
             return [...document.querySelectorAll('#messages li.msg .text')].map((t) =>
               [t.textContent, t.innerText, getComputedStyle(t).whiteSpace, lines(t)]);")
        .await;
    assert_eq!(
        shown,
        json!([
            [
                "first line\nsecond line",
                "first line\nsecond line",
                "pre-wrap",
                2
            ],
            ["one\ntwo\nthree", "one\ntwo\nthree", "pre-wrap", 3]
        ]),
        "each line on a line of its own"
    );

    // That was one message: bob's next frame is the next one.
    browser.say("after").await;
    bob.expect(json!(["message", format!("[BOT] {BOT_NAME}"), "after"]))
        .await;
    browser.finish().await;
}

/// FNV-1a, 32 bits, over the name's UTF-8 bytes: the nick colour's hash, as the page and the
/// terminal client compute it.
fn fnv1a(name: &str) -> u32 {
    name.bytes().fold(2_166_136_261_u32, |hash, byte| {
        (hash ^ u32::from(byte)).wrapping_mul(16_777_619)
    })
}

/// Screenshots of the token page and the chat (a few people, a mention, a link, a multi-line
/// message), light and dark, at a desktop's width and a phone's (390 px, where nothing may
/// scroll sideways). Each name has its colour: class `nick-N` with N its FNV-1a hash modulo 8.
#[tokio::test]
async fn screenshots_light_and_dark_desktop_and_phone() {
    for scheme in [Scheme::Light, Scheme::Dark] {
        let Some(browser) = Browser::start_with(scheme).await else {
            return;
        };
        let dark = browser
            .js("return matchMedia('(prefers-color-scheme: dark)').matches;")
            .await;
        assert_eq!(dark, scheme == Scheme::Dark);
        let mode = if scheme == Scheme::Dark {
            "dark"
        } else {
            "light"
        };
        let server = TestServer::default().await;
        let mut bob = server.login("bob", TOKENS[1]).await;
        // A name beyond ASCII, whose colour hashes its UTF-8 bytes.
        let mut jurgen = server.login("Jürgen", TOKENS[2]).await;
        let mut bot = server.login_bot().await;
        bob.expect(json!(["join", "Jürgen"])).await;
        for client in [&mut bob, &mut jurgen] {
            client
                .expect(json!(["join", format!("[BOT] {BOT_NAME}")]))
                .await;
        }
        browser.resize(900, 640).await;
        browser.open(server.addr).await;

        browser.start_user_login("Chloé", TOKENS[0]).await;
        let temp = browser
            .read_token_page(server.addr, Some(&format!("web-token-{mode}.png")))
            .await;
        browser.type_into("#temp-token", &temp).await;
        browser
            .find("#tokenauth-submit")
            .await
            .click()
            .await
            .unwrap();
        browser.visible("#chat-view").await;
        for client in [&mut bob, &mut jurgen, &mut bot] {
            client.expect(json!(["join", "Chloé"])).await;
        }

        // One at a time, each seen before the next, so that the order is the same every time.
        bob.say("Morning! The 0.4 release notes are up: https://example.com/releases/0.4")
            .await;
        browser.entry(&["release notes are up"]).await;
        jurgen
            .say("Thanks Bob. Chloé, could you try the web client on your phone?")
            .await;
        browser.entry(&["on your phone?"]).await;
        browser.say("On it, Jürgen.").await;
        browser.entry(&["Chloé (you)", "On it, Jürgen."]).await;
        bot.say("build 812 passed: 143 tests in 41 s").await;
        browser.entry(&["build 812 passed"]).await;
        bob.say("Two things I noticed:\n- names have colours now\n- links open in a new tab")
            .await;
        browser.entry(&["links open in a new tab"]).await;
        let field = browser.visible("#message").await;
        field.send_keys("Looks good on mine").await.unwrap();

        let colours = browser
            .js(
                "return [...document.querySelectorAll('#messages li.msg .name')].map((n) =>
                   [n.firstChild.textContent, n.className]);",
            )
            .await;
        for pair in colours.as_array().unwrap() {
            let name = pair[0].as_str().unwrap();
            assert_eq!(
                pair[1],
                format!("name nick-{}", fnv1a(name) % 8),
                "the colour of {name}"
            );
        }
        assert_eq!(colours.as_array().unwrap().len(), 5);
        assert_eq!(fnv1a("Jürgen") % 8, 2, "ü is two bytes, c3 bc");
        assert_eq!(
            browser
                .js("return document.querySelectorAll('#messages li.mention').length;")
                .await,
            1
        );

        browser.screenshot(&format!("web-chat-{mode}.png")).await;
        if scheme == Scheme::Light {
            browser.screenshot("web-client.png").await;
        }
        browser.resize(390, 760).await;
        let fits = browser
            .js("const w = document.documentElement.clientWidth;
                 const inside = (id) => {
                   const r = document.getElementById(id).getBoundingClientRect();
                   return r.left >= 0 && r.right <= w && r.width > 0;
                 };
                 return document.documentElement.scrollWidth <= w
                   && inside('message') && inside('send') && inside('messages')
                   && inside('leave');")
            .await;
        assert_eq!(fits, true, "the chat view fits a 390px screen");
        browser
            .screenshot(&format!("web-chat-phone-{mode}.png"))
            .await;
        browser.assert_no_csp_violations().await;
        browser.close().await;
    }
}

#[test]
fn fnv1a_is_the_reference_hash() {
    // The published FNV-1a test vectors.
    assert_eq!(fnv1a(""), 0x811c_9dc5);
    assert_eq!(fnv1a("a"), 0xe40c_292c);
    assert_eq!(fnv1a("foobar"), 0xbf9c_f968);
    // The values the terminal client's tests check (secure-client's view.rs).
    assert_eq!(fnv1a("alice") % 8, 7);
    assert_eq!(fnv1a("bob") % 8, 4);
    assert_eq!(fnv1a("carol") % 8, 2);
}

/// The extensions in the page: what was said before joining shows set apart (between "Earlier
/// messages" and "Now"), and who is in the room shows beside the chat on a wide screen, kept
/// current as people come and go, and behind the People button on a phone. (Needs a server that
/// grants `history` and `presence`.)
#[tokio::test]
async fn history_and_members_beside_the_chat_and_behind_a_button_on_a_phone() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let server = TestServer::default().await;
    let mut bob = server.login("bob", TOKENS[1]).await;
    let mut carol = server.login("carol", TOKENS[2]).await;
    bob.expect(json!(["join", "carol"])).await;
    bob.say("said before alice came").await;
    // Once carol has it, the room has it.
    carol
        .expect(json!(["message", "bob", "said before alice came"]))
        .await;

    browser.resize(1100, 800).await;
    browser.open(server.addr).await;
    browser.login_user(server.addr, "alice", TOKENS[0]).await;
    bob.expect(json!(["join", "alice"])).await;
    browser.entry(&["You joined as alice."]).await;

    // The history: one earlier message between its dividers, not a live one.
    let list = browser
        .until(
            "const items = [...document.querySelectorAll('#messages li')];
             const at = items.findIndex((li) => li.classList.contains('divider'));
             if (at < 0 || items.length < at + 3) return null;
             return items.slice(at, at + 3).map((li) => [li.className, li.textContent]);",
            vec![],
            "the history between its dividers",
        )
        .await;
    assert_eq!(list[0], json!(["divider", "Earlier messages"]));
    assert_eq!(list[1][0], "msg earlier", "{list}");
    let old = list[1][1].as_str().unwrap();
    assert!(
        old.contains("bob") && old.ends_with("said before alice came"),
        "{list}"
    );
    assert_eq!(list[2], json!(["divider", "Now"]));
    assert_eq!(
        browser
            .js("const li = document.querySelector('#messages li.earlier');
                 return [Number(getComputedStyle(li).opacity) < 1,
                         !isNaN(Date.parse(li.querySelector('time').dateTime))];")
            .await,
        json!([true, true]),
        "dimmed, with the time it was said"
    );

    // Wide: the members beside the messages, no button.
    let members = "return [...document.querySelectorAll('#members-list li')]
                     .map((li) => li.textContent);";
    browser.visible("#members").await;
    browser
        .until(
            &format!(
                "const names = (() => {{ {members} }})();
                      return names.length === 3 ? names : null;"
            ),
            vec![],
            "three members",
        )
        .await;
    assert_eq!(
        browser.js(members).await,
        json!(["alice (you)", "bob", "carol"])
    );
    let beside = browser
        .js(
            "const m = document.getElementById('members').getBoundingClientRect();
             const l = document.getElementById('messages').getBoundingClientRect();
             const button = document.getElementById('members-toggle');
             return [m.left >= l.right - 1, m.width > 0,
                     getComputedStyle(button).display];",
        )
        .await;
    assert_eq!(beside, json!([true, true, "none"]), "beside, and no button");

    // Kept current: a bot comes (listed after the people), bob goes.
    let mut bot = server.login_bot().await;
    browser.entry(&["[BOT] botusr joined."]).await;
    assert_eq!(
        browser.js(members).await,
        json!(["alice (you)", "bob", "carol", "[BOT] botusr"])
    );
    bob.close().await;
    browser.entry(&["bob left."]).await;
    assert_eq!(
        browser.js(members).await,
        json!(["alice (you)", "carol", "[BOT] botusr"])
    );
    assert_eq!(
        browser
            .js("return document.getElementById('members-count').textContent;")
            .await,
        "(3)"
    );

    // A phone: the list is behind the People button, over the messages when opened.
    browser.resize(375, 740).await;
    let toggle = browser.visible("#members-toggle").await;
    // Whether the list shows, within the screen's width.
    let open = "const m = document.getElementById('members');
                const r = m.getBoundingClientRect();
                const open = getComputedStyle(m).display !== 'none' && r.width > 0
                  && r.right <= document.documentElement.clientWidth;";
    let shown = format!("{open} return open;");
    let closed = format!("{open} return !open;");
    assert_eq!(browser.js(&shown).await, false, "closed at first");
    assert_eq!(toggle.text().await.unwrap(), "People (3)");
    assert_eq!(
        toggle.attr("aria-expanded").await.unwrap().as_deref(),
        Some("false")
    );
    toggle.click().await.unwrap();
    browser.until(&shown, vec![], "the list opened").await;
    assert_eq!(
        toggle.attr("aria-expanded").await.unwrap().as_deref(),
        Some("true")
    );
    assert_eq!(
        browser
            .js("return document.documentElement.scrollWidth
                   <= document.documentElement.clientWidth;")
            .await,
        true,
        "nothing scrolls sideways"
    );
    toggle.click().await.unwrap();
    browser
        .until(&closed, vec![], "the list closed again")
        .await;

    bot.say("still here").await;
    browser.entry(&["[BOT] botusr", "still here"]).await;
    carol.close().await;
    bot.close().await;
    browser.finish().await;
}
