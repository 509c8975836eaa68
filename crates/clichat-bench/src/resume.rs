//! The `resume` scenario: N receivers logged in with `history` and `resume`, a sender sending
//! numbered messages, and all N TCP connections cut at once (shut down under the clients: no
//! close frame, as a network fails) halfway through. The client library resumes each one by
//! itself; the report gives resumes per second and how long they took, and messages lost or
//! seen twice: every receiver must get every message exactly once across the cut.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clichat_client::Event;
use serde::Serialize;
use tokio::sync::Notify;

use crate::Setup;
use crate::login::{login, login_keeping};
use crate::report::{
    Counts, CpuShare, CpuWindow, Latency, Run, Table, counts_text, micros_histogram, record,
};

/// What to run.
#[derive(Debug, Clone)]
pub struct Params {
    /// Receivers, all cut at once.
    pub receivers: usize,
    /// Messages the sender sends, numbered; the cut comes after half of them.
    pub messages: usize,
    /// Messages per second.
    pub rate: f64,
    /// How long to wait after the last message for every receiver to have it.
    pub drain: Duration,
}

/// The outcome.
#[derive(Debug, Serialize)]
pub struct Report {
    /// The scenario, where it connected and how it logged in.
    #[serde(flatten)]
    pub run: Run,
    /// Receivers logged in and cut.
    pub receivers: usize,
    /// Receivers whose login failed, by reason.
    pub login_failures: Counts,
    /// Messages sent.
    pub messages: usize,
    /// Resumes accepted.
    pub resumed: usize,
    /// Resumes that failed, by reason.
    pub resume_failures: Counts,
    /// Seconds from the cut to the last resume accepted.
    pub resume_seconds: f64,
    /// Resumes per second over that time.
    pub resumes_per_s: f64,
    /// From the cut to each receiver's [`Event::Resumed`].
    pub resume_latency: Latency,
    /// Messages handed out after a resume as missed (summed over receivers).
    pub missed_delivered: u64,
    /// Messages some receiver never got (summed over receivers): must be 0.
    pub lost: u64,
    /// Messages some receiver got twice (summed): must be 0.
    pub duplicates: u64,
    /// The bench's and the server's CPU.
    pub cpu: CpuShare,
    /// Whether every receiver resumed and got every message exactly once.
    pub ok: bool,
}

impl Report {
    /// The human table.
    pub fn table(&self) -> Table {
        let mut t = Table::default();
        t.row("scenario", "resume")
            .server(&self.run.nodes)
            .row(
                "receivers",
                format!("{} ({} login)", self.receivers, self.run.login),
            )
            .row("login failures", counts_text(&self.login_failures))
            .row("messages sent", self.messages)
            .row("resumed", format!("{} of {}", self.resumed, self.receivers))
            .row("resume failures", counts_text(&self.resume_failures))
            .row(
                "resumes/s",
                format!(
                    "{:.0} (all in {:.3} s)",
                    self.resumes_per_s, self.resume_seconds
                ),
            )
            .row("resume time", self.resume_latency.text())
            .row("missed, delivered", self.missed_delivered)
            .row("lost", self.lost)
            .row("duplicates", self.duplicates)
            .row("cpu", self.cpu.text());
        t
    }
}

/// What one receiver saw.
#[derive(Default)]
struct Seen {
    numbers: BTreeSet<usize>,
    duplicates: u64,
    missed: u64,
    resumed_after: Option<Duration>,
    failure: Option<String>,
}

/// Runs the scenario.
///
/// # Errors
/// When the sender cannot log in; receivers that cannot are counted.
pub async fn run(setup: &Setup, params: &Params) -> anyhow::Result<Report> {
    let n = params.receivers.max(1);
    let mut receivers = Vec::new();
    let mut cuts = Vec::new();
    let mut login_failures = Counts::new();
    let semaphore = Arc::new(tokio::sync::Semaphore::new(setup.concurrency));
    let logins: Vec<_> = (0..n)
        .map(|index| {
            let target = Arc::clone(&setup.target);
            let credential = setup.credential(index);
            let semaphore = Arc::clone(&semaphore);
            tokio::spawn(async move {
                let _permit = semaphore.acquire().await;
                let mut cut = None;
                let logged_in = login_keeping(&target, &credential, index, Some(&mut cut)).await;
                logged_in.map(|logged_in| (logged_in.client, cut))
            })
        })
        .collect();
    for login in logins {
        match login.await? {
            Ok((client, Some(cut))) => {
                receivers.push(client);
                cuts.push(cut);
            }
            Ok((_, None)) => *login_failures.entry("no socket handle".into()).or_default() += 1,
            Err(error) => *login_failures.entry(error.reason()).or_default() += 1,
        }
    }
    let sender = login(&setup.target, &setup.credential(n), n)
        .await
        .map_err(|e| anyhow::anyhow!("the sender could not log in: {e}"))?
        .client;

    // Every receiver reads on its own. The first half of the messages goes out before the
    // cut, and the cut waits until every receiver read the last of them: the resume token came
    // before any message, so every receiver holds one by then.
    let cut_at = Arc::new(Mutex::new(None::<Instant>));
    let half = params.messages / 2;
    let ready = Arc::new(AtomicUsize::new(0));
    let ready_notify = Arc::new(Notify::new());
    let expected = params.messages;
    let seens: Vec<Arc<Mutex<Seen>>> = (0..receivers.len()).map(|_| Arc::default()).collect();
    let mut tasks: Vec<_> = receivers
        .into_iter()
        .zip(&seens)
        .map(|(mut client, seen)| {
            let cut_at = Arc::clone(&cut_at);
            let ready = Arc::clone(&ready);
            let ready_notify = Arc::clone(&ready_notify);
            let seen = Arc::clone(seen);
            tokio::spawn(async move {
                let mut counting_missed = 0;
                while let Some(event) = client.next_event().await {
                    let mut seen = seen.lock().expect("not poisoned");
                    match event {
                        Event::Message { text, .. } => {
                            let Some(number) = number_of(&text) else {
                                continue;
                            };
                            if !seen.numbers.insert(number) {
                                seen.duplicates += 1;
                            }
                            if counting_missed > 0 {
                                counting_missed -= 1;
                                seen.missed += 1;
                            }
                            if number + 1 == half {
                                ready.fetch_add(1, Ordering::Relaxed);
                                ready_notify.notify_one();
                            }
                            if seen.numbers.len() == expected && seen.resumed_after.is_some() {
                                break;
                            }
                        }
                        Event::Resumed { missed, .. } => {
                            counting_missed = missed;
                            let cut = *cut_at.lock().expect("not poisoned");
                            seen.resumed_after = cut.map(|at| at.elapsed());
                        }
                        Event::ResumeFailed { reason } => seen.failure = Some(reason),
                        _ => {}
                    }
                }
            })
        })
        .collect();

    let cpu = CpuWindow::start(&[], &setup.watched);
    let pause = Duration::from_secs_f64(1.0 / params.rate.max(0.001));
    for number in 0..params.messages {
        if number == half {
            tokio::time::timeout(params.drain, async {
                while ready.load(Ordering::Relaxed) < cuts.len() {
                    ready_notify.notified().await;
                }
            })
            .await
            .map_err(|_| anyhow::anyhow!("receivers did not all get the first half in time"))?;
            *cut_at.lock().expect("not poisoned") = Some(Instant::now());
            for cut in &cuts {
                // No close frame: the TCP connection just ends, both ways.
                let _ = cut.shutdown(std::net::Shutdown::Both);
            }
        }
        sender.send(&format!("n{number}")).await?;
        tokio::time::sleep(pause).await;
    }
    // Receivers still waiting after the drain are counted with what they got.
    let _ = tokio::time::timeout(params.drain, async {
        for task in tasks.iter_mut() {
            let _ = task.await;
        }
    })
    .await;
    for task in &tasks {
        task.abort();
    }
    let cpu = cpu.finish();
    let _ = sender.close().await;

    let mut report = Report {
        run: Run::of("resume", setup),
        receivers: cuts.len(),
        login_failures,
        messages: params.messages,
        resumed: 0,
        resume_failures: Counts::new(),
        resume_seconds: 0.0,
        resumes_per_s: 0.0,
        resume_latency: Latency::default(),
        missed_delivered: 0,
        lost: 0,
        duplicates: 0,
        cpu,
        ok: false,
    };
    let mut latency = micros_histogram();
    let mut slowest = Duration::ZERO;
    for seen in &seens {
        let seen = std::mem::take(&mut *seen.lock().expect("not poisoned"));
        if let Some(after) = seen.resumed_after {
            report.resumed += 1;
            record(&mut latency, after);
            slowest = slowest.max(after);
        }
        if let Some(reason) = seen.failure {
            *report.resume_failures.entry(reason).or_default() += 1;
        }
        report.missed_delivered += seen.missed;
        report.duplicates += seen.duplicates;
        report.lost += (params.messages - seen.numbers.len()) as u64;
    }
    report.resume_latency = Latency::of(&latency);
    report.resume_seconds = slowest.as_secs_f64();
    if report.resume_seconds > 0.0 {
        report.resumes_per_s = report.resumed as f64 / report.resume_seconds;
    }
    report.ok = report.login_failures.is_empty()
        && report.resumed == report.receivers
        && report.lost == 0
        && report.duplicates == 0;
    Ok(report)
}

/// The number of a message `nN`.
fn number_of(text: &str) -> Option<usize> {
    text.strip_prefix('n')?.parse().ok()
}
