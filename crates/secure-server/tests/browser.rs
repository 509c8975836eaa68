//! The browser client (served at `/`) in a real, headless Chromium driven over WebDriver: SAUTH2
//! and bot logins through the page, the name-only login of an open room, chat both ways with
//! protocol-level clients, names and messages rendered as text, refusals in words, the
//! disconnected state and reconnect.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs them); `CHROMEDRIVER` and
//! `CHROMIUM` name other binaries. Without them the browser tests say so in a line and skip,
//! except under `CI=true`, where they fail (see `test_support::require_program`).
//!
//! The chat-view screenshot in `docs/web-client.png` is rewritten only when `UPDATE_SCREENSHOT=1`
//! is set; otherwise it goes to the target directory.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
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
        assert_eq!(
            self.active_id().await,
            "token-link",
            "the next step has the focus"
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
                     return location.href === arguments[0] && t ? t.value : null;",
                    vec![json!(href)],
                )
                .await
                .unwrap();
            shown.as_str().map(str::to_owned)
        })
        .await;
        assert_eq!(temp.len(), 100, "{temp}");
        self.driver.close_window().await.unwrap();
        self.driver.switch_to_window(chat_tab).await.unwrap();

        self.type_into("#temp-token", &temp).await;
        self.find("#tokenauth-submit").await.click().await.unwrap();
        self.visible("#chat-view").await;
        href
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

    screenshot(&browser).await;
    phone_sized(&browser).await;

    bot.close().await;
    browser.entry(&["[BOT] botusr left."]).await;
    bob.close().await;
    browser.entry(&["bob left."]).await;
    browser.assert_no_csp_violations().await;
    browser.close().await;
}

/// The chat view at the README's size, kept as `docs/web-client.png` when asked.
async fn screenshot(browser: &Browser) {
    browser.driver.set_window_size(760, 620).await.unwrap();
    let field = browser.visible("#message").await;
    field.send_keys("on my way").await.unwrap();
    let png = browser.driver.screenshot().await.unwrap();
    field.clear().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    let target = if std::env::var_os("UPDATE_SCREENSHOT").is_some_and(|v| v == "1") {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/web-client.png")
    } else {
        std::env::temp_dir().join("clichat-web-client.png")
    };
    std::fs::write(&target, png).unwrap();
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
    browser.assert_no_csp_violations().await;
    browser.close().await;
}

/// Refusals show in plain words with the server's exact text: a wrong generic token, a wrong bot
/// token, and a wrong temporary token; each returns to the login form, ready to try again.
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
    assert!(text.contains("Server said: “Token refused”"), "{text}");
    assert!(
        browser
            .find("#login-view")
            .await
            .is_displayed()
            .await
            .unwrap()
    );

    browser.login_bot_refused().await;

    // A wrong temporary token: the right generic token, then garbage pasted.
    browser.start_user_login("alice", TOKENS[0]).await;
    browser.visible("#token-link").await;
    browser.type_into("#temp-token", "wrong").await;
    browser
        .find("#tokenauth-submit")
        .await
        .click()
        .await
        .unwrap();
    browser
        .until(
            "const e = document.getElementById('login-error');
             return !e.closest('[hidden]') && e.textContent.includes('temporary token');",
            vec![],
            "the temporary-token refusal",
        )
        .await;
    let text = browser.find("#login-error").await.text().await.unwrap();
    assert!(text.contains("Server said: “refused”"), "{text}");

    // And the name is free again at once: the right login goes through.
    browser.login_user(server.addr, "alice", TOKENS[0]).await;
    browser.entry(&["You joined as alice."]).await;
    browser.assert_no_csp_violations().await;
    browser.close().await;
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
    }
}

/// A message over the server's limit: the page learns the limit from the refusal, marks the
/// message as not delivered, stays connected, and from then on counts against the real limit.
#[tokio::test]
async fn the_message_limit_is_learned_from_a_refusal() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let server = TestServer::start(config(json!({"max_message_length": 10}))).await;
    let mut bob = server.login("bob", TOKENS[0]).await;
    browser.open(server.addr).await;
    browser.login_bot(BOT_NAME, BOT_TOKEN).await;
    bob.expect(json!(["join", format!("[BOT] {BOT_NAME}")]))
        .await;

    browser.say("twelve chars").await;
    let refusal = browser.entry(&["message is too long [12/10]"]).await;
    assert!(
        refusal.contains("That message was too long: 12 characters, and the limit is 10."),
        "{refusal}"
    );
    browser.entry(&["twelve chars", "not delivered"]).await;
    assert_eq!(
        browser
            .js("return document.getElementById('count-limit').textContent;")
            .await,
        "10"
    );

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
    browser
        .entry(&["Too long to send: 12 characters, and the limit is 10."])
        .await;
    assert_eq!(
        field.prop("value").await.unwrap().as_deref(),
        Some("twelve chars")
    );

    // Still connected: a short one goes through.
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

/// When the server goes away the page says so, disables the message field and offers
/// Reconnect (with the focus on it); once the server is back, Reconnect logs in again. Leave
/// disconnects on purpose.
#[tokio::test]
async fn the_page_shows_a_lost_connection_and_reconnects() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let first = TestServer::default().await;
    let addr = first.addr;
    browser.open(addr).await;
    browser.login_bot(BOT_NAME, BOT_TOKEN).await;

    first.stop().await;
    let banner = browser.visible("#disconnected").await;
    let text = banner.text().await.unwrap();
    assert!(text.contains("shutting down or restarting"), "{text}");
    assert_eq!(browser.active_id().await, "reconnect");
    assert!(!browser.find("#message").await.is_enabled().await.unwrap());
    browser.entry(&["Disconnected."]).await;

    // Reconnecting to nothing fails, and says so.
    browser.find("#reconnect").await.click().await.unwrap();
    browser.entry(&["Reconnecting failed."]).await;
    let text = browser.visible("#disconnected").await.text().await.unwrap();
    assert!(text.contains("Could not connect to the server"), "{text}");

    // The server is back on the same address.
    let second = TestServer::start_at(addr, config(json!({}))).await;
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

    // Leave: a deliberate disconnect, seen by the others.
    let mut bob = second.login("bob", TOKENS[0]).await;
    browser.entry(&["bob joined."]).await;
    browser.visible("#leave").await.click().await.unwrap();
    bob.expect(json!(["disconnect", format!("[BOT] {BOT_NAME}")]))
        .await;
    let text = browser.visible("#disconnected").await.text().await.unwrap();
    assert!(text.contains("You left the room."), "{text}");
    browser.assert_no_csp_violations().await;
    browser.close().await;
    second.stop().await;
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
    browser.assert_no_csp_violations().await;
    browser.close().await;
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
    let text = browser.find("#login-error").await.text().await.unwrap();
    assert!(text.contains("Server said: “Token refused”"), "{text}");
    assert!(browser.shown("#token").await, "the token field is back");
    assert!(!browser.shown("#open-note").await);
    assert_eq!(
        browser.active_id().await,
        "token",
        "the missing part has the focus"
    );

    browser.login_user(server.addr, "alice", TOKENS[0]).await;
    browser.entry(&["You joined as alice."]).await;
    browser.assert_no_csp_violations().await;
    browser.close().await;
}
