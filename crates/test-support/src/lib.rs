//! What the integration tests of this workspace share, so that each test crate does not keep its
//! own copy: a real `secure-server` on `127.0.0.1:0`, the test config, the token pages read over
//! HTTP, waiting for an event with a deadline, and the outside programs some tests drive.
//!
//! A test speaks the real wire to a real server and synchronizes on what it sees, never on a
//! sleep: an event it can wait for directly (a frame, a log line) it awaits under
//! [`tokio::time::timeout`] with [`WAIT`]; a state it can only look at (a status page, a
//! terminal's screen) it polls with [`eventually`], which fails the test naming what never
//! happened.
//!
//! ```no_run
//! use serde_json::json;
//! use test_support::{TestServer, config, eventually, status};
//!
//! # async fn example() {
//! let server = TestServer::start(config(json!({"max_message_length": 10}))).await;
//! let url = server.url("/");
//! eventually("the index page answering 200", async || status(&url).await == 200).await;
//! server.stop().await;
//! # }
//! ```
//!
//! # Layout
//! - [`server`]: [`TestServer`], a server started in the test's process and stopped by it.
//! - [`mod@config`]: the test config: [`TOKENS`], the bot, generous limits, [`config_json`].
//! - [`page`]: token pages and HTTP statuses: [`page_token`], [`token_in`], [`status`].
//! - [`wait`]: [`WAIT`] and [`eventually`], the one way to poll until something happens.
//! - [`program`]: [`require_program`], for tests that drive tmux, a browser or redis-server.

pub mod config;
pub mod page;
pub mod program;
pub mod server;
pub mod wait;

pub use config::{
    BOT_NAME, BOT_TOKEN, TOKENS, config, config_file, config_json, generous_limits, write_config,
};
pub use page::{page_token, status, token_in, wait_for_status};
pub use program::{find_program, require_program};
pub use server::TestServer;
pub use wait::{Condition, WAIT, eventually, eventually_within, poll_until};
