//! Protocol extensions a client asks for with `["caps", [NAME, ...]]` as its first frame, and
//! what the server grants: `history` (recent messages on joining, and messages that carry their
//! number and time), `presence` (the member list on joining, and on asking) and `resume` (a
//! session token that takes the session back after its connection is lost). A client that
//! never asks sees exactly the original protocol.

/// What a client asked for and was granted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Caps {
    pub(super) history: bool,
    pub(super) presence: bool,
    pub(super) resume: bool,
}

impl Caps {
    /// Grants, of what `asked` names, what this server knows and has on: `history` only while
    /// the room keeps it. Unknown names are ignored.
    pub(super) fn grant(asked: &[String], history_on: bool) -> Caps {
        let asks = |name: &str| asked.iter().any(|asked| asked == name);
        Caps {
            history: history_on && asks("history"),
            presence: asks("presence"),
            resume: asks("resume"),
        }
    }

    /// The names granted, for the answer.
    pub(super) fn names(self) -> Vec<String> {
        [
            ("history", self.history),
            ("presence", self.presence),
            ("resume", self.resume),
        ]
        .into_iter()
        .filter(|(_, granted)| *granted)
        .map(|(name, _)| name.to_owned())
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_what_is_known_and_on() {
        let asked = [
            "presence".to_owned(),
            "history".to_owned(),
            "typing".to_owned(),
        ];
        assert_eq!(Caps::grant(&asked, true).names(), ["history", "presence"]);
        assert_eq!(Caps::grant(&asked, false).names(), ["presence"]);
        assert_eq!(Caps::grant(&[], true), Caps::default());
    }
}
