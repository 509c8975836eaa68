//! How the client writes what happens: text made safe for a terminal, local timestamps, the
//! line-mode format, refusals in plain words, and the message-length check.

use clichat_client::{Closed, Event, HistoryEntry, message_length, refusal};

/// Makes text from the network safe to print on a terminal.
///
/// Names and messages come from other people, so they must not be able to move the cursor,
/// change colours, set the window title or break the one-event-per-line format: C0 controls
/// (escape, newline, carriage return, bell, ...) and DEL are shown in caret notation (`^[`,
/// `^J`, `^?`), a tab becomes a space, and C1 controls and the characters that reorder or
/// separate lines (bidirectional overrides and isolates, line and paragraph separators) become
/// U+FFFD. Everything else, emoji and joiners included, is kept.
pub fn sanitize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\t' => out.push(' '),
            '\u{0}'..='\u{1f}' => {
                out.push('^');
                out.push(char::from(c as u8 + 0x40));
            }
            '\u{7f}' => out.push_str("^?"),
            c if is_unsafe_invisible(c) => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// C1 controls, bidirectional controls, and line/paragraph separators.
fn is_unsafe_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{80}'..='\u{9f}'
            | '\u{61c}'
            | '\u{200e}'
            | '\u{200f}'
            | '\u{2028}'..='\u{202e}'
            | '\u{2066}'..='\u{2069}'
    )
}

/// The local time of day, as shown in front of every event.
pub fn now() -> String {
    chrono::Local::now().format("%H:%M:%S").to_string()
}

/// One received event as one line of line-mode output (without the newline), or `None` for
/// events that line mode does not show (frames this client does not know).
///
/// `time` is the local time the event arrived; `me` is the name we joined as; `verbose` adds
/// the technical detail to a disconnection. Every line starts with `[HH:MM:SS] `; names and
/// texts pass through [`sanitize`], so a line never contains a control character (a message's
/// line breaks show as `^J`).
pub fn event_line(time: &str, event: &Event, me: &str, verbose: bool) -> Option<String> {
    let body = match event {
        Event::Joined { version, .. } => match version {
            Some(version) => format!("*** logged in as {} ({})", sanitize(me), sanitize(version)),
            None => format!("*** logged in as {}", sanitize(me)),
        },
        Event::Join(name) => format!("*** {} joined", sanitize(name)),
        Event::Disconnect(name) => format!("*** {} left", sanitize(name)),
        Event::Message { from, text } => format!("<{}> {}", sanitize(from), sanitize(text)),
        Event::Refusal(reason) => format!("!!! refused: {}", explain_refusal(reason)),
        Event::Closed(closed) => format!("!!! disconnected: {}", closed_text(closed, verbose)),
        Event::Reconnecting(closed) => {
            format!("*** {}; reconnecting\u{2026}", closed_text(closed, verbose))
        }
        Event::Resumed {
            missed, complete, ..
        } => format!("*** {}", resumed_text(*missed, *complete)),
        Event::ResumeFailed { reason } => format!("!!! {}", resume_failed_text(reason)),
        // Frames this client does not know or does not ask for (e.g. `Unknown`, `Invalid`).
        _ => return None,
    };
    Some(format!("[{time}] {body}"))
}

/// The local time of day of a server time in Unix milliseconds (a history entry's), shown as
/// [`now`] is.
pub fn time_of(time_ms: u64) -> String {
    i64::try_from(time_ms)
        .ok()
        .and_then(chrono::DateTime::from_timestamp_millis)
        .map(|time| {
            time.with_timezone(&chrono::Local)
                .format("%H:%M:%S")
                .to_string()
        })
        .unwrap_or_else(|| "--:--:--".to_owned())
}

/// The room's history in line mode, one line per message at its own time:
/// `[HH:MM:SS] (earlier) <NAME> TEXT`, so that a script telling messages by `] <` does not take
/// them for new ones. When older messages were no longer kept, a line at `time` says so first.
pub fn history_lines(time: &str, messages: &[HistoryEntry], complete: bool) -> Vec<String> {
    let note = (!complete && !messages.is_empty())
        .then(|| format!("[{time}] *** older messages were not kept"));
    note.into_iter()
        .chain(messages.iter().map(|entry| {
            format!(
                "[{}] (earlier) <{}> {}",
                time_of(entry.stamp.time_ms),
                sanitize(&entry.from),
                sanitize(&entry.text)
            )
        }))
        .collect()
}

/// The members in the order they are shown: people, then bots, each by name ignoring case.
pub fn sorted_members<'a>(names: impl IntoIterator<Item = &'a String>) -> Vec<&'a str> {
    let mut names: Vec<&str> = names.into_iter().map(String::as_str).collect();
    names.sort_by_cached_key(|name| (name.starts_with("[BOT] "), name.to_lowercase()));
    names.dedup();
    names
}

/// The answer to `/who` in line mode: `[HH:MM:SS] *** in the room (N): NAME, NAME`.
pub fn members_line(time: &str, names: &[String]) -> String {
    let names: Vec<String> = sorted_members(names).into_iter().map(sanitize).collect();
    format!(
        "[{time}] *** in the room ({}): {}",
        names.len(),
        names.join(", ")
    )
}

/// A refusal in the server's exact (sanitized) words, followed by what it means for the person
/// reading it.
pub fn explain_refusal(reason: &str) -> String {
    let meaning = match reason {
        refusal::USERNAME_TAKEN => "someone else is using that name, or logging in with it",
        refusal::INVALID_USERNAME => {
            "that name is not allowed (blank, spaces at either end, control or invisible \
             characters, or starting with [BOT])"
        }
        refusal::USERNAME_TOO_LONG => "choose a shorter name",
        refusal::PROFANITY => "the server filters a word in it",
        refusal::TOKEN_REFUSED => {
            "the server did not take the token: it is wrong, missing, or in use by someone \
             else (one user per token)"
        }
        refusal::TEMP_TOKEN_REFUSED => "the token from the page was not the right one",
        refusal::BOT_REFUSED => "the bot name and bot token do not match the server's",
        refusal::EMPTY_MESSAGE => "empty messages are not allowed",
        refusal::TOKENAUTH_TIMEOUT => "the token from the page came too late; log in again",
        _ if limit_from_refusal(reason).is_some() => "the message was not delivered",
        _ => return sanitize(reason),
    };
    format!("{} ({meaning})", sanitize(reason))
}

/// What a resumed connection brings, as a sentence: the missed messages follow it.
pub fn resumed_text(missed: usize, complete: bool) -> String {
    let missed = match missed {
        0 => "no messages were missed".to_owned(),
        1 => "1 message said meanwhile follows".to_owned(),
        n => format!("{n} messages said meanwhile follow"),
    };
    let kept = if complete {
        ""
    } else {
        " (older ones were no longer kept)"
    };
    format!("reconnected: {missed}{kept}")
}

/// Why a lost connection could not be taken back, and what to do.
pub fn resume_failed_text(reason: &str) -> String {
    let reason = if reason == refusal::RESUME_REFUSED {
        "the server no longer holds this session".to_owned()
    } else {
        sanitize(reason)
    };
    format!("could not reconnect: {reason}; log in again")
}

/// How a connection ended, as a sentence for a person (no close codes, no library errors);
/// with `verbose`, the technical detail follows in brackets.
pub fn closed_text(closed: &Closed, verbose: bool) -> String {
    let reason = sanitize(&closed.reason);
    let text = match (closed.code, reason.as_str()) {
        (Some(1001), "no answer to ping") => {
            "the server stopped hearing from this client (a network problem?)"
        }
        (Some(1001), _) => "the server is shutting down",
        (Some(1012), _) => "the server is restarting",
        (Some(1008), "outbound queue full") => "the server dropped this client for falling behind",
        (Some(1008), "too many frames") => {
            "the server disconnected this client for sending too much, too fast"
        }
        (Some(1008), _) => "the server removed this client from the room",
        (Some(1009), _) => "the server disconnected this client for sending too much at once",
        (Some(1002 | 1003 | 1007), _) => {
            "the server could not understand this client and disconnected it"
        }
        (Some(1011), _) => "the server ran into a problem and closed the connection",
        (Some(1000), _) => "the server closed the connection",
        // 1006 and the like: no closing handshake, the connection just ended.
        _ => "the connection to the server was lost",
    };
    if !verbose {
        return text.to_owned();
    }
    let detail = match (closed.code, reason.as_str()) {
        (Some(code), "") => format!("code {code}"),
        (Some(code), reason) => format!("code {code}: {reason}"),
        (None, "") => "no close frame".to_owned(),
        (None, reason) => reason.to_owned(),
    };
    format!("{text} [{detail}]")
}

/// A refusal during the chat, as a sentence for a person; with `verbose`, the server's exact
/// words follow in brackets. (Line mode prints [`explain_refusal`] instead: scripts match on
/// the server's words.)
pub fn chat_refusal(reason: &str, verbose: bool) -> String {
    let sentence = match reason {
        refusal::PROFANITY => "Your message was blocked by the server's word filter.".to_owned(),
        refusal::EMPTY_MESSAGE => "Empty messages are not allowed.".to_owned(),
        _ => match limit_from_refusal(reason) {
            Some(limit) => format!(
                "Not delivered: the message is longer than this server takes ({limit} characters)."
            ),
            None => common_refusal(reason),
        },
    };
    with_words(sentence, reason, verbose)
}

/// A refusal of a login, as a sentence for a person; with `verbose`, the server's exact words
/// follow in brackets. `max_name` is the longest name the server takes, for "too long".
pub fn login_refusal(reason: &str, max_name: usize, verbose: bool) -> String {
    let sentence = match reason {
        refusal::USERNAME_TAKEN => {
            "Someone else is using that name, or logging in with it.".to_owned()
        }
        refusal::INVALID_USERNAME => "The server does not allow that name: a name may not be \
                                      blank, start or end with a space, hold invisible or control \
                                      characters, mix look-alike letters of different alphabets, \
                                      or start with [BOT]."
            .to_owned(),
        refusal::USERNAME_TOO_LONG => {
            format!("That name is too long: this server takes at most {max_name} characters.")
        }
        refusal::PROFANITY => "The server's word filter does not allow that name.".to_owned(),
        _ => common_refusal(reason),
    };
    with_words(sentence, reason, verbose)
}

/// Refusals that read the same at login and in the chat.
fn common_refusal(reason: &str) -> String {
    let sentence = match reason {
        refusal::TOKEN_REFUSED => {
            "The server did not take the token: it is wrong, or someone else is logged in with \
             it (one person per token)."
        }
        refusal::TEMP_TOKEN_REFUSED => "The token from the page was not the right one.",
        refusal::TOKENAUTH_TIMEOUT => "The token from the page came too late.",
        refusal::BOT_REFUSED => "The server does not know this bot name with this bot token.",
        refusal::TOO_MANY_LOGINS => {
            "Too many login attempts from this address: wait a minute, then try again."
        }
        refusal::AUTH_TIMEOUT => "The login took too long, and the server gave up waiting.",
        refusal::SLOW_DOWN => "Not delivered: you are sending messages too fast. Slow down.",
        refusal::FLOOD => "You sent too many messages too fast, and the server disconnected you.",
        refusal::NOT_PERMITTED => "You are not allowed to do that.",
        refusal::TOKEN_REVOKED => "The server's owner has withdrawn your token.",
        refusal::CLUSTER_UNAVAILABLE | refusal::MESSAGE_NOT_SENT | refusal::CLUSTER_CONFLICT => {
            return reason.to_owned();
        }
        _ => {
            if let Some(why) = reason.strip_prefix("kicked: ") {
                return format!("You were removed from the room: {}", sanitize(why));
            }
            if let Some(ban) = reason.strip_prefix("banned until ") {
                return match ban.split_once(": ") {
                    Some(("lifted", why)) => {
                        format!("You are banned from this server: {}", sanitize(why))
                    }
                    Some((until, why)) => format!(
                        "You are banned from this server until {}: {}",
                        sanitize(until),
                        sanitize(why)
                    ),
                    None => format!("You are banned from this server: {}", sanitize(ban)),
                };
            }
            return format!("The server refused: \u{201c}{}\u{201d}", sanitize(reason));
        }
    };
    sentence.to_owned()
}

/// `sentence`, and with `verbose` the server's words after it.
fn with_words(sentence: String, reason: &str, verbose: bool) -> String {
    if verbose {
        format!("{sentence} [server: {}]", sanitize(reason))
    } else {
        sentence
    }
}

/// Why connecting failed, as a sentence for a person; with `verbose`, the library's error
/// follows in brackets. `server` is the address as `host:port`.
pub fn connect_failure(server: &str, error: &clichat_client::Error, verbose: bool) -> String {
    let text = match error {
        clichat_client::Error::Connect(inner) => {
            let detail = inner.to_string();
            let io = std::error::Error::source(inner)
                .and_then(|source| source.downcast_ref::<std::io::Error>());
            let host = server.rsplit_once(':').map_or(server, |(host, _)| host);
            match io.map(std::io::Error::kind) {
                Some(std::io::ErrorKind::ConnectionRefused) => format!(
                    "nothing is answering at {server} (is the server running, and is the port \
                     right?)"
                ),
                Some(std::io::ErrorKind::TimedOut) => {
                    format!("the server at {server} did not answer in time")
                }
                _ if detail.contains("lookup address") || detail.contains("not known") => {
                    format!("no computer called {host} could be found (is it spelled right?)")
                }
                _ if detail.to_lowercase().contains("certificate") => format!(
                    "the server at {server} has a certificate this computer does not trust \
                     (for a self-signed one, use --trust-cert FILE)"
                ),
                _ if detail.contains("HTTP error") => {
                    format!("{server} answers, but it is not a chat server (is the address right?)")
                }
                Some(_) => format!(
                    "the connection to {server} failed (is it a chat server, and is it ws:// \
                     or wss://?)"
                ),
                None => format!("{server} did not answer as a chat server does"),
            }
        }
        clichat_client::Error::Closed(closed) => closed_text(closed, false),
        clichat_client::Error::WebSocket(_) => "the connection to the server was lost".to_owned(),
        other => sanitize(&other.to_string()),
    };
    let text = format!("could not connect: {text}");
    if verbose {
        format!("{text} [{}]", sanitize(&error.to_string()))
    } else {
        text
    }
}

/// Whether a message may be sent: `Err` with a warning when the server would refuse it for its
/// length (more than `max` Unicode scalar values, the way servers count).
pub fn check_length(text: &str, max: usize) -> Result<(), String> {
    let length = message_length(text);
    if length > max {
        Err(format!(
            "not sent: the message is too long [{length}/{max}]; the server would refuse it"
        ))
    } else {
        Ok(())
    }
}

/// The server's real limit, read from its `message is too long [N/LIMIT]` refusal, so the
/// client warns correctly from then on even if `--max-length` was wrong.
pub fn limit_from_refusal(reason: &str) -> Option<usize> {
    let counts = reason
        .strip_prefix("message is too long [")?
        .strip_suffix(']')?;
    let (_length, limit) = counts.split_once('/')?;
    limit.parse().ok().filter(|&limit| limit > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_mode_says_when_it_reconnects_and_what_follows() {
        let lost = Event::Reconnecting(Closed {
            code: Some(1012),
            reason: String::new(),
        });
        assert_eq!(
            event_line("10:00:00", &lost, "alice", false).unwrap(),
            "[10:00:00] *** the server is restarting; reconnecting\u{2026}"
        );
        let back = Event::Resumed {
            id: 2,
            missed: 3,
            complete: false,
        };
        assert_eq!(
            event_line("10:00:01", &back, "alice", false).unwrap(),
            "[10:00:01] *** reconnected: 3 messages said meanwhile follow (older ones were no longer kept)"
        );
        let failed = Event::ResumeFailed {
            reason: "the session expired\u{7}".into(),
        };
        let line = event_line("10:00:02", &failed, "alice", false).unwrap();
        assert!(line.starts_with("[10:00:02] !!! could not reconnect: the session expired"));
        assert!(
            line.ends_with("; log in again") && !line.contains('\u{7}'),
            "{line}"
        );
    }

    #[test]
    fn history_lines_are_set_apart_from_live_ones() {
        use clichat_client::Stamp;
        let entry = |seq, from: &str, text: &str| HistoryEntry {
            stamp: Stamp {
                seq,
                time_ms: 1_764_000_000_000,
            },
            from: from.into(),
            text: text.into(),
        };
        let lines = history_lines(
            "10:00:00",
            &[entry(1, "bob", "hi"), entry(2, "eve\u{1b}", "a\nb")],
            false,
        );
        assert_eq!(lines[0], "[10:00:00] *** older messages were not kept");
        let at = time_of(1_764_000_000_000);
        assert_eq!(lines[1], format!("[{at}] (earlier) <bob> hi"));
        assert_eq!(lines[2], format!("[{at}] (earlier) <eve^[> a^Jb"));
        assert_eq!(
            history_lines("10:00:00", &[entry(1, "bob", "hi")], true).len(),
            1
        );
        assert!(history_lines("10:00:00", &[], false).is_empty());
        assert_eq!(time_of(u64::MAX), "--:--:--");
    }

    #[test]
    fn members_are_listed_people_first() {
        let names: Vec<String> = ["[BOT] echo", "bob", "Alice", "carol\u{7}"]
            .map(String::from)
            .to_vec();
        assert_eq!(
            members_line("10:00:00", &names),
            "[10:00:00] *** in the room (4): Alice, bob, carol^G, [BOT] echo"
        );
    }

    #[test]
    fn escape_sequences_cannot_reach_the_terminal() {
        let hostile = "\u{1b}[2J\u{1b}]0;pwned\u{7}red\r\nline\u{9b}31m\u{7f}";
        let safe = sanitize(hostile);
        assert_eq!(safe, "^[[2J^[]0;pwned^Gred^M^Jline\u{fffd}31m^?");
        assert!(!safe.chars().any(char::is_control), "{safe:?}");
    }

    #[test]
    fn bidirectional_controls_are_replaced_and_emoji_kept() {
        assert_eq!(sanitize("a\u{202e}b\u{2066}c"), "a\u{fffd}b\u{fffd}c");
        assert_eq!(sanitize("tab\there"), "tab here");
        let family = "👨\u{200d}👩\u{200d}👧 héllo";
        assert_eq!(sanitize(family), family);
    }

    #[test]
    fn line_mode_writes_one_safe_line_per_event() {
        let time = "12:03:04";
        let line = |event: Event| event_line(time, &event, "carol", false);
        assert_eq!(
            line(Event::Message {
                from: "alice".into(),
                text: "hi".into()
            })
            .unwrap(),
            "[12:03:04] <alice> hi"
        );
        assert_eq!(
            line(Event::Join("[BOT] echo".into())).unwrap(),
            "[12:03:04] *** [BOT] echo joined"
        );
        assert_eq!(
            line(Event::Disconnect("bob".into())).unwrap(),
            "[12:03:04] *** bob left"
        );
        assert_eq!(
            line(Event::Joined {
                id: 3,
                version: Some("v1".into())
            })
            .unwrap(),
            "[12:03:04] *** logged in as carol (v1)"
        );
        assert_eq!(
            line(Event::Refusal("message is too long [201/200]".into())).unwrap(),
            "[12:03:04] !!! refused: message is too long [201/200] (the message was not delivered)"
        );
        assert_eq!(
            line(Event::Closed(Closed {
                code: Some(1001),
                reason: String::new()
            }))
            .unwrap(),
            "[12:03:04] !!! disconnected: the server is shutting down"
        );
        let injected = line(Event::Message {
            from: "eve\nfake".into(),
            text: "x\r\n[12:00:00] <bob> forged".into(),
        })
        .unwrap();
        assert_eq!(
            injected,
            "[12:03:04] <eve^Jfake> x^M^J[12:00:00] <bob> forged"
        );
        assert!(
            line(Event::Unknown {
                kind: "who".into(),
                args: vec![]
            })
            .is_none()
        );
    }

    #[test]
    fn length_is_counted_as_the_server_counts_it() {
        assert!(check_length(&"x".repeat(200), 200).is_ok());
        assert!(check_length(&"😀".repeat(200), 200).is_ok());
        let warning = check_length(&"x".repeat(201), 200).unwrap_err();
        assert!(warning.contains("[201/200]"), "{warning}");
    }

    #[test]
    fn the_servers_limit_is_learned_from_its_refusal() {
        assert_eq!(
            limit_from_refusal("message is too long [250/120]"),
            Some(120)
        );
        assert_eq!(limit_from_refusal("message is too long"), None);
        assert_eq!(limit_from_refusal("refused"), None);
    }

    #[test]
    fn known_refusals_are_explained() {
        assert!(explain_refusal("Token refused").starts_with("Token refused ("));
        assert_eq!(explain_refusal("odd\u{1b}"), "odd^[");
    }

    #[test]
    fn people_read_sentences_and_verbose_adds_the_detail() {
        let lost = Closed {
            code: Some(1006),
            reason: String::new(),
        };
        assert_eq!(
            closed_text(&lost, false),
            "the connection to the server was lost"
        );
        assert_eq!(
            closed_text(&lost, true),
            "the connection to the server was lost [code 1006]"
        );
        let reset = Closed {
            code: None,
            reason: "WebSocket protocol error: Connection reset without closing handshake".into(),
        };
        assert_eq!(
            closed_text(&reset, false),
            "the connection to the server was lost"
        );
        assert!(closed_text(&reset, true).ends_with("without closing handshake]"));
        for closed in [lost, reset] {
            let text = closed_text(&closed, false);
            assert!(
                !text.contains("code") && !text.contains("WebSocket"),
                "{text}"
            );
        }

        assert_eq!(
            chat_refusal("message is too long [250/200]", false),
            "Not delivered: the message is longer than this server takes (200 characters)."
        );
        assert_eq!(
            chat_refusal("No profanity allowed!", true),
            "Your message was blocked by the server's word filter. [server: No profanity allowed!]"
        );
        assert_eq!(
            login_refusal("username is too long", 15, false),
            "That name is too long: this server takes at most 15 characters."
        );
        assert_eq!(
            login_refusal("refused", 15, false),
            "The token from the page was not the right one."
        );
        assert_eq!(
            chat_refusal("banned until lifted: spam", false),
            "You are banned from this server: spam"
        );
        assert_eq!(
            chat_refusal("odd\u{1b}", false),
            "The server refused: \u{201c}odd^[\u{201d}"
        );
    }
}
