//! What the tools print: answers for scripts on stdout (text or `--json`), explanations for
//! people on stderr, and a new token, shown once.

use std::io::Write;

use secure_server::config::edit::{TokenInfo, TokenKind};
use serde_json::{Value, json};

use super::OwnerError;

/// Prints a new token: alone on stdout (or in JSON), with what it is and how to use it on
/// stderr.
pub(super) fn print_new_token(
    token: &str,
    info: &TokenInfo,
    json: bool,
    to: &str,
) -> Result<(), OwnerError> {
    if json {
        let mut value = json!({ "token": token });
        if let (Some(out), Value::Object(fields)) = (value.as_object_mut(), json!(info)) {
            out.extend(fields);
        }
        return print_json(&value);
    }
    let (what, how) = match (info.kind, info.name.as_deref()) {
        (TokenKind::Bot, Some(name)) => (
            format!("a token for the bot \"{name}\""),
            format!(
                "The bot logs in with [\"botauth\", {{\"botusername\": {}, \"bottoken\": \
                 \"<this token>\"}}].",
                json!(name)
            ),
        ),
        _ => (
            format!(
                "a user token{}",
                info.label
                    .as_deref()
                    .map(|l| format!(" labelled \"{l}\""))
                    .unwrap_or_default()
            ),
            "Users log in with it (SAUTH2).".to_owned(),
        ),
    };
    note(&format!(
        "Added {what} (role {}) {to}. It is shown only this once:",
        info.role.as_str()
    ))?;
    print(&format!("{token}\n"))?;
    note(&format!(
        "{how} A running server accepts it without a restart. Fingerprint: {}.",
        info.fingerprint
    ))
}

pub(super) fn print(text: &str) -> Result<(), OwnerError> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| OwnerError::Terminal("write to stdout", e))
}

pub(super) fn print_json(value: &Value) -> Result<(), OwnerError> {
    let text = serde_json::to_string_pretty(value).expect("a Value always serializes");
    print(&format!("{text}\n"))
}

/// A line for people, on stderr.
fn note(text: &str) -> Result<(), OwnerError> {
    writeln!(std::io::stderr(), "{text}").map_err(|e| OwnerError::Terminal("write to stderr", e))
}
