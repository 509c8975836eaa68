//! How the client writes what happens: text made safe for a terminal, local timestamps, the
//! line-mode format, refusals in plain words, and the message-length check.

use clichat_client::{Closed, Event, message_length, refusal};

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
/// `time` is the local time the event arrived; `me` is the name we joined as. Every line starts
/// with `[HH:MM:SS] `; names and texts pass through [`sanitize`], so a line never contains a
/// control character.
pub fn event_line(time: &str, event: &Event, me: &str) -> Option<String> {
    let body = match event {
        Event::Joined { version, .. } => match version {
            Some(version) => format!("*** logged in as {} ({})", sanitize(me), sanitize(version)),
            None => format!("*** logged in as {}", sanitize(me)),
        },
        Event::Join(name) => format!("*** {} joined", sanitize(name)),
        Event::Disconnect(name) => format!("*** {} left", sanitize(name)),
        Event::Message { from, text } => format!("<{}> {}", sanitize(from), sanitize(text)),
        Event::Refusal(reason) => format!("!!! refused: {}", explain_refusal(reason)),
        Event::Closed(closed) => format!("!!! disconnected: {}", closed_text(closed)),
        // Frames this client does not know or does not ask for (e.g. `Unknown`, `Invalid`).
        _ => return None,
    };
    Some(format!("[{time}] {body}"))
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

/// How a connection ended, in plain words.
pub fn closed_text(closed: &Closed) -> String {
    let reason = sanitize(&closed.reason);
    match (closed.code, reason.as_str()) {
        (Some(1001), _) => "the server is shutting down".to_owned(),
        (Some(1008), _) => "the server dropped this client for falling behind".to_owned(),
        (Some(code), "") => format!("the server closed the connection (code {code})"),
        (Some(code), reason) => format!("the server closed the connection (code {code}: {reason})"),
        (None, "") => "the connection was lost".to_owned(),
        (None, reason) => format!("the connection was lost: {reason}"),
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
        let line = |event: Event| event_line(time, &event, "carol");
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
}
