//! The rules a username and a message must pass, with the refusal each broken rule earns.

use clichat_proto::refusal;

use crate::config::Config;
use crate::names;

/// Username and message rules, from the config.
#[derive(Debug, Clone)]
pub struct Rules {
    /// Filtered words, lowercased once.
    filter: Vec<String>,
    max_username_length: usize,
    max_message_length: usize,
}

/// A message that broke a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageRefusal {
    /// Longer than the limit: refused, and the connection stays.
    TooLong(String),
    /// Empty, or filtered: refused, and the connection is closed.
    Close(&'static str),
}

impl Rules {
    /// The rules of a config.
    pub fn new(config: &Config) -> Rules {
        Rules {
            filter: config.filter.iter().map(|w| w.to_lowercase()).collect(),
            max_username_length: config.max_username_length,
            max_message_length: config.max_message_length,
        }
    }

    /// Checks a username a user asked for, in this order: present and well-formed
    /// ([`names::check`]: not blank, no white space at either end, no control, invisible or
    /// look-alike characters, no mixed scripts; and not passing for a bot, [`names::is_reserved`]),
    /// not too long, not filtered. The well-formedness rules keep one name from passing for
    /// another (`alice` and `alice `, `аlice` in Cyrillic, or a user and a bot).
    /// Uniqueness is the hub's business (by [`names::key`]).
    ///
    /// # Errors
    /// The refusal text of the first broken rule; otherwise the name is given back.
    pub fn check_username(&self, name: Option<String>) -> Result<String, &'static str> {
        let Some(name) = name else {
            return Err(refusal::INVALID_USERNAME);
        };
        if !names::check(&name) || names::is_reserved(&name) {
            return Err(refusal::INVALID_USERNAME);
        }
        if name.chars().count() > self.max_username_length {
            return Err(refusal::USERNAME_TOO_LONG);
        }
        if self.is_filtered(&name) {
            return Err(refusal::PROFANITY);
        }
        Ok(name)
    }

    /// Checks a chat message, in this order: length (in Unicode scalar values), not empty or
    /// white space only, not filtered.
    ///
    /// # Errors
    /// The refusal, and whether the connection stays.
    pub fn check_message(&self, text: &str) -> Result<(), MessageRefusal> {
        let len = text.chars().count();
        if len > self.max_message_length {
            return Err(MessageRefusal::TooLong(refusal::message_too_long(
                len,
                self.max_message_length,
            )));
        }
        if text.trim().is_empty() {
            return Err(MessageRefusal::Close(refusal::EMPTY_MESSAGE));
        }
        if self.is_filtered(text) {
            return Err(MessageRefusal::Close(refusal::PROFANITY));
        }
        Ok(())
    }

    fn is_filtered(&self, text: &str) -> bool {
        if self.filter.is_empty() {
            return false;
        }
        let text = text.to_lowercase();
        self.filter.iter().any(|word| text.contains(word.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> Rules {
        let config: Config = serde_json::from_str(r#"{"filter": ["Darn"]}"#).unwrap();
        Rules::new(&config)
    }

    #[test]
    fn usernames() {
        let r = rules();
        let check = |name: Option<&str>| r.check_username(name.map(str::to_owned)).map(|_| ());
        assert_eq!(check(Some("alice")), Ok(()));
        assert_eq!(check(Some("ééééééééééééééé")), Ok(()), "15 scalar values");
        assert_eq!(
            check(Some("abcdefghijklmnop")),
            Err(refusal::USERNAME_TOO_LONG)
        );
        assert_eq!(check(None), Err(refusal::INVALID_USERNAME));
        assert_eq!(check(Some(" \t")), Err(refusal::INVALID_USERNAME));
        assert_eq!(check(Some("a\u{7}b")), Err(refusal::INVALID_USERNAME));
        assert_eq!(check(Some("[bot] x")), Err(refusal::INVALID_USERNAME));
        assert_eq!(check(Some(" [BOT] x")), Err(refusal::INVALID_USERNAME));
        assert_eq!(check(Some("alice ")), Err(refusal::INVALID_USERNAME));
        assert_eq!(check(Some("al\u{200B}ice")), Err(refusal::INVALID_USERNAME));
        assert_eq!(check(Some("\u{202E}ecila")), Err(refusal::INVALID_USERNAME));
        assert_eq!(check(Some("two words")), Ok(()));
        assert_eq!(check(Some("xDARNx")), Err(refusal::PROFANITY));
    }

    #[test]
    fn messages() {
        let r = rules();
        assert_eq!(r.check_message("hello"), Ok(()));
        assert_eq!(r.check_message(&"é".repeat(200)), Ok(()));
        assert_eq!(
            r.check_message(&"x".repeat(201)),
            Err(MessageRefusal::TooLong(
                "message is too long [201/200]".into()
            ))
        );
        assert_eq!(
            r.check_message(""),
            Err(MessageRefusal::Close(refusal::EMPTY_MESSAGE))
        );
        assert_eq!(
            r.check_message(" \n\t"),
            Err(MessageRefusal::Close(refusal::EMPTY_MESSAGE))
        );
        assert_eq!(
            r.check_message("oh darn"),
            Err(MessageRefusal::Close(refusal::PROFANITY))
        );
        assert_eq!(
            r.check_message("100% sure"),
            Ok(()),
            "the original's % rule is not kept"
        );
    }
}
