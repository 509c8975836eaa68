//! Token edits on a config's JSON value: adding a generic or bot token (from the CSPRNG)
//! and revoking tokens, keeping everything else as it is.

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::error::EditError;
use super::listing::{TokenInfo, TokenKind, matching};
use crate::config::{Config, Role};
use crate::secrets;

/// Longest token label, in Unicode scalar values.
pub const MAX_LABEL_LEN: usize = 64;

/// Adds a new generic token (from the CSPRNG) with `label` and `role` to the config `value`,
/// and returns it.
///
/// # Errors
/// [`EditError::DuplicateLabel`] if a token has this label already; [`EditError::Invalid`] if
/// the label is blank, too long, holds control characters or is a bot's name, or if `value` is
/// not a valid config.
pub fn add_token(value: &mut Value, label: Option<&str>, role: Role) -> Result<String, EditError> {
    let config = as_config(value)?;
    if let Some(label) = label {
        check_text("label", label, MAX_LABEL_LEN)?;
        if config
            .tokens
            .values()
            .any(|e| e.label.as_deref() == Some(label))
        {
            return Err(EditError::DuplicateLabel(label.to_owned()));
        }
        if config.bots.values().any(|b| b.name() == label) {
            return Err(EditError::Invalid(format!(
                "`{label}` is a bot's name; choose another label"
            )));
        }
    }
    let token = new_token(&config);
    let mut entry = Map::new();
    if let Some(label) = label {
        entry.insert("label".into(), json!(label));
    }
    entry.insert("role".into(), json!(role));
    section(value, "tokens")?.insert(token.clone(), Value::Object(entry));
    Ok(token)
}

/// Adds a new bot token (from the CSPRNG) for the bot `name` with `role` to the config `value`,
/// and returns it. A `user` bot is written in the original's form, `"TOKEN": "name"`.
///
/// # Errors
/// [`EditError::DuplicateBot`] if a bot has this name already; [`EditError::Invalid`] if the
/// name is blank, has white space at either end, holds control characters, is a token's
/// label, or if `value` is not a valid config.
pub fn add_bot(value: &mut Value, name: &str, role: Role) -> Result<String, EditError> {
    let config = as_config(value)?;
    check_text("bot name", name, usize::MAX)?;
    if name.trim() != name {
        return Err(EditError::Invalid(
            "a bot name may not begin or end with white space".into(),
        ));
    }
    if config.bots.values().any(|b| b.name() == name) {
        return Err(EditError::DuplicateBot(name.to_owned()));
    }
    if config
        .tokens
        .values()
        .any(|e| e.label.as_deref() == Some(name))
    {
        return Err(EditError::Invalid(format!(
            "`{name}` is a token's label; choose another bot name"
        )));
    }
    let token = new_token(&config);
    let entry = match role {
        Role::User => json!(name),
        role => json!({"name": name, "role": role}),
    };
    section(value, "bots")?.insert(token.clone(), entry);
    Ok(token)
}

/// Removes from the config `value` the tokens that `token_or_label` names (see
/// [`find`](super::find)), and returns what was removed.
///
/// # Errors
/// As [`find`](super::find), or [`EditError::Invalid`] if `value` is not a valid config.
pub fn revoke(value: &mut Value, token_or_label: &str) -> Result<Vec<TokenInfo>, EditError> {
    let config = as_config(value)?;
    let found = matching(&config, token_or_label)?;
    for (token, info) in &found {
        let key = match info.kind {
            TokenKind::User => "tokens",
            TokenKind::Bot => "bots",
        };
        section(value, key)?.remove(*token);
    }
    Ok(found.into_iter().map(|(_, info)| info).collect())
}

/// The config that `value` holds.
fn as_config(value: &Value) -> Result<Config, EditError> {
    Config::deserialize(value).map_err(|e| EditError::Invalid(format!("not a valid config: {e}")))
}

/// The `tokens` or `bots` object of the config, created if missing.
fn section<'a>(value: &'a mut Value, key: &str) -> Result<&'a mut Map<String, Value>, EditError> {
    let invalid = || EditError::Invalid(format!("`{key}` in the config is not an object"));
    value
        .as_object_mut()
        .ok_or_else(|| EditError::Invalid("the config is not a JSON object".into()))?
        .entry(key)
        .or_insert_with(|| json!({}))
        .as_object_mut()
        .ok_or_else(invalid)
}

/// A token that is neither a user nor a bot token yet.
fn new_token(config: &Config) -> String {
    loop {
        let token = secrets::generate_generic_token();
        if !config.tokens.contains_key(&token) && !config.bots.contains_key(&token) {
            return token;
        }
    }
}

fn check_text(what: &str, text: &str, max: usize) -> Result<(), EditError> {
    if text.trim().is_empty() {
        return Err(EditError::Invalid(format!("the {what} is blank")));
    }
    if text.chars().any(char::is_control) {
        return Err(EditError::Invalid(format!(
            "the {what} holds control characters"
        )));
    }
    if text.chars().count() > max {
        return Err(EditError::Invalid(format!(
            "the {what} is longer than {max} characters"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::edit::fingerprint;
    use crate::config::edit::fixtures::CONFIG;

    #[test]
    fn duplicate_labels_and_bot_names_are_refused() {
        let mut value: Value = serde_json::from_str(CONFIG).unwrap();
        let before = value.clone();
        assert!(matches!(
            add_token(&mut value, Some("alice"), Role::User),
            Err(EditError::DuplicateLabel(l)) if l == "alice"
        ));
        assert!(matches!(
            add_bot(&mut value, "echo", Role::User),
            Err(EditError::DuplicateBot(n)) if n == "echo"
        ));
        assert!(matches!(
            add_token(&mut value, Some("echo"), Role::User),
            Err(EditError::Invalid(_))
        ));
        assert!(matches!(
            add_bot(&mut value, "alice", Role::User),
            Err(EditError::Invalid(_))
        ));
        for bad in ["", "  ", "a\nb"] {
            assert!(add_token(&mut value, Some(bad), Role::User).is_err());
            assert!(add_bot(&mut value, bad, Role::User).is_err());
        }
        assert!(add_bot(&mut value, " padded", Role::User).is_err());
        assert_eq!(value, before);
    }

    #[test]
    fn revoke_by_token_label_or_bot_name() {
        let mut value: Value = serde_json::from_str(CONFIG).unwrap();
        let revoked = revoke(&mut value, "an-existing-token-number-two-abc").unwrap();
        assert_eq!(revoked.len(), 1);
        assert_eq!(revoked[0].kind, TokenKind::User);
        assert_eq!(revoked[0].masked, "an-e…");
        assert_eq!(
            revoked[0].fingerprint,
            fingerprint("an-existing-token-number-two-abc")
        );

        let revoked = revoke(&mut value, "alice").unwrap();
        assert_eq!(revoked[0].label.as_deref(), Some("alice"));
        let revoked = revoke(&mut value, "echo").unwrap();
        assert_eq!(revoked[0].kind, TokenKind::Bot);
        assert_eq!(revoked[0].name.as_deref(), Some("echo"));
        assert_eq!(value["tokens"], json!({}));
        assert_eq!(value["bots"], json!({}));
        assert!(value["port"] == 7070 && value["filter"] == json!(["badword"]));

        let err = revoke(&mut value, "alice").unwrap_err();
        assert!(matches!(err, EditError::NotFound(_)), "{err}");
        // A token-sized query is masked in the message.
        let err = revoke(&mut value, "a-long-token-that-is-not-configured")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("not-configured"), "{err}");
    }

    #[test]
    fn a_label_shared_by_hand_edited_tokens_revokes_them_all() {
        let mut value = json!({"tokens": {"t1": {"label": "x"}, "t2": {"label": "x"}, "t3": {}}});
        assert_eq!(revoke(&mut value, "x").unwrap().len(), 2);
        assert_eq!(value, json!({"tokens": {"t3": {}}}));
    }

    #[test]
    fn a_label_that_is_also_a_bot_name_is_ambiguous() {
        let mut value = json!({"tokens": {"t1": {"label": "x"}}, "bots": {"b1": "x"}});
        assert!(matches!(
            revoke(&mut value, "x"),
            Err(EditError::Ambiguous(_))
        ));
        assert_eq!(revoke(&mut value, "b1").unwrap()[0].kind, TokenKind::Bot);
    }
}
