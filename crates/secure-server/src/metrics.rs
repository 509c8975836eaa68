//! Prometheus metrics (`GET /metrics`, text format) and the process figures that go with them.
//!
//! Counters are bumped where things happen (a login, a refusal, a message, a page view); the
//! figures that describe the present (connections, members, pages, holds, the hub's delivery
//! count, memory) are read at each scrape.

use std::sync::{Arc, Mutex, PoisonError};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use clichat_proto::refusal;

/// A label with one value, e.g. `outcome="user"`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct Outcome {
    outcome: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct Reason {
    reason: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct Status {
    status: String,
}

/// What the server holds at the moment of a scrape.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Snapshot {
    pub(crate) connections: usize,
    pub(crate) sessions: usize,
    pub(crate) members: usize,
    pub(crate) pending_pages: usize,
    pub(crate) tokens_held: usize,
    pub(crate) deliveries: u64,
    pub(crate) socket_writes: u64,
    pub(crate) queue_drops: u64,
    /// In cluster mode: whether the node's link to Redis is up.
    pub(crate) cluster_link_up: Option<bool>,
}

/// The server's metrics.
#[derive(Debug)]
pub(crate) struct Metrics {
    registry: Registry,
    logins: Family<Outcome, Counter>,
    refusals: Family<Reason, Counter>,
    messages: Counter,
    page_views: Family<Status, Counter>,
    connections_refused: Counter,
    snapshot: Arc<Mutex<Snapshot>>,
}

impl Metrics {
    pub(crate) fn new() -> Metrics {
        let mut registry = Registry::default();
        let logins = Family::<Outcome, Counter>::default();
        let refusals = Family::<Reason, Counter>::default();
        let messages = Counter::default();
        let page_views = Family::<Status, Counter>::default();
        let connections_refused = Counter::default();
        let snapshot = Arc::new(Mutex::new(Snapshot::default()));
        registry.register(
            "clichat_logins",
            "Login attempts that ended, by outcome (user, bot, refused)",
            logins.clone(),
        );
        registry.register(
            "clichat_refusals",
            "Refusals sent, by reason",
            refusals.clone(),
        );
        registry.register(
            "clichat_messages_received",
            "Chat messages taken from clients and broadcast",
            messages.clone(),
        );
        registry.register(
            "clichat_page_views",
            "Token page requests, by HTTP status",
            page_views.clone(),
        );
        registry.register(
            "clichat_connections_refused",
            "Sockets refused over the connection limits (HTTP 503)",
            connections_refused.clone(),
        );
        registry.register_collector(Box::new(Present(Arc::clone(&snapshot))));
        registry.register_collector(Box::new(Process));
        Metrics {
            registry,
            logins,
            refusals,
            messages,
            page_views,
            connections_refused,
            snapshot,
        }
    }

    /// A login that ended: `"user"`, `"bot"` or `"refused"`.
    pub(crate) fn login(&self, outcome: &str) {
        self.logins
            .get_or_create(&Outcome {
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    /// A refusal sent.
    pub(crate) fn refusal(&self, text: &str) {
        self.refusals
            .get_or_create(&Reason {
                reason: reason_label(text).to_owned(),
            })
            .inc();
    }

    pub(crate) fn message(&self) {
        self.messages.inc();
    }

    pub(crate) fn page_view(&self, status: u16) {
        self.page_views
            .get_or_create(&Status {
                status: status.to_string(),
            })
            .inc();
    }

    pub(crate) fn connection_refused(&self) {
        self.connections_refused.inc();
    }

    /// The text format, with `now` as the present figures.
    pub(crate) fn render(&self, now: Snapshot) -> String {
        *self.snapshot.lock().unwrap_or_else(PoisonError::into_inner) = now;
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

/// A short, fixed label for a refusal text (the texts themselves hold names and numbers).
fn reason_label(text: &str) -> &'static str {
    match text {
        refusal::USERNAME_TAKEN => "username_taken",
        refusal::PROFANITY => "profanity",
        refusal::USERNAME_TOO_LONG => "username_too_long",
        refusal::TOKEN_REFUSED => "token_refused",
        refusal::TEMP_TOKEN_REFUSED => "temp_token_refused",
        refusal::BOT_REFUSED => "bot_refused",
        refusal::EMPTY_MESSAGE => "empty_message",
        refusal::INVALID_USERNAME => "invalid_username",
        refusal::TOKENAUTH_TIMEOUT => "tokenauth_timeout",
        refusal::TOO_MANY_LOGINS => "too_many_logins",
        refusal::AUTH_TIMEOUT => "auth_timeout",
        refusal::SLOW_DOWN => "slow_down",
        refusal::FLOOD => "flood",
        refusal::NOT_PERMITTED => "not_permitted",
        refusal::TOKEN_REVOKED => "token_revoked",
        t if t.starts_with("message is too long") => "message_too_long",
        t if t.starts_with("kicked: ") => "kicked",
        t if t.starts_with("banned until ") => "banned",
        _ => "other",
    }
}

/// The present figures, as of the last [`Metrics::render`].
#[derive(Debug)]
struct Present(Arc<Mutex<Snapshot>>);

impl Collector for Present {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let now = *self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let gauges = [
            (
                "clichat_connections_open",
                "Open connections (HTTP and WebSocket)",
                now.connections,
            ),
            (
                "clichat_sessions",
                "WebSocket sessions, logged in or not",
                now.sessions,
            ),
            ("clichat_members", "Logged-in users and bots", now.members),
            (
                "clichat_pending_token_pages",
                "Token pages waiting for tokenauth",
                now.pending_pages,
            ),
            (
                "clichat_tokens_held",
                "Generic tokens held by a connection",
                now.tokens_held,
            ),
        ];
        for (name, help, value) in gauges {
            let gauge = ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX));
            gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)?;
        }
        if let Some(up) = now.cluster_link_up {
            let gauge = ConstGauge::new(i64::from(up));
            let help = "1 while this cluster node can reach Redis, else 0";
            let name = "clichat_cluster_link_up";
            gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)?;
        }
        let counters = [
            (
                "clichat_deliveries",
                "Frames queued for receivers by broadcasts",
                now.deliveries,
            ),
            (
                "clichat_socket_writes",
                "Writes made to client sockets (each a system call)",
                now.socket_writes,
            ),
            (
                "clichat_outbound_queue_drops",
                "Connections dropped because their outbound queue was full",
                now.queue_drops,
            ),
        ];
        for (name, help, value) in counters {
            let counter = ConstCounter::new(value);
            counter.encode(encoder.encode_descriptor(
                name,
                help,
                None,
                counter.metric_type(),
            )?)?;
        }
        Ok(())
    }
}

/// The process's memory, files and CPU time, from `/proc/self`.
#[derive(Debug)]
struct Process;

impl Collector for Process {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        if let Some(rss) = resident_bytes() {
            let gauge = ConstGauge::new(rss);
            let help = "Resident memory size in bytes";
            gauge.encode(encoder.encode_descriptor(
                "process_resident_memory_bytes",
                help,
                None,
                gauge.metric_type(),
            )?)?;
        }
        if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
            let gauge = ConstGauge::new(i64::try_from(fds.count()).unwrap_or(i64::MAX));
            gauge.encode(encoder.encode_descriptor(
                "process_open_fds",
                "Open file descriptors",
                None,
                gauge.metric_type(),
            )?)?;
        }
        if let Some(seconds) = cpu_seconds() {
            let counter = ConstCounter::new(seconds);
            counter.encode(encoder.encode_descriptor(
                "process_cpu_seconds",
                "User and system CPU time spent, in seconds",
                None,
                counter.metric_type(),
            )?)?;
        }
        Ok(())
    }
}

fn resident_bytes() -> Option<i64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: i64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which is in parentheses and may hold spaces).
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    let per_second = rustix::param::clock_ticks_per_second() as f64;
    Some(ticks / per_second)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusal_labels_are_fixed_words() {
        assert_eq!(reason_label("Token refused"), "token_refused");
        assert_eq!(
            reason_label("message is too long [201/200]"),
            "message_too_long"
        );
        assert_eq!(reason_label("kicked: rude"), "kicked");
        assert_eq!(reason_label("banned until lifted: spam"), "banned");
        assert_eq!(reason_label("something new"), "other");
    }

    #[test]
    fn the_text_holds_counters_present_figures_and_the_process() {
        let metrics = Metrics::new();
        metrics.login("user");
        metrics.refusal("Token refused");
        let text = metrics.render(Snapshot {
            members: 3,
            deliveries: 7,
            socket_writes: 5,
            ..Snapshot::default()
        });
        for line in [
            "clichat_logins_total{outcome=\"user\"} 1",
            "clichat_refusals_total{reason=\"token_refused\"} 1",
            "clichat_members 3",
            "clichat_deliveries_total 7",
            "clichat_socket_writes_total 5",
            "# TYPE process_resident_memory_bytes gauge",
            "# EOF",
        ] {
            assert!(text.contains(line), "{line} in\n{text}");
        }
    }
}
