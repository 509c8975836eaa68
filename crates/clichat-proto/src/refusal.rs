//! Refusal texts, sent as `["refusal", TEXT]`.
//!
//! The first group is the original CLIChat's, byte for byte: existing bots match on them. The
//! second group is this implementation's, for cases the original did not refuse.

/// The username is used by someone connected or logging in (compared case-insensitively).
pub const USERNAME_TAKEN: &str = "Username already taken.";
/// A filtered word is in the username or the message.
pub const PROFANITY: &str = "No profanity allowed!";
/// The username is longer than the server's limit.
pub const USERNAME_TOO_LONG: &str = "username is too long";
/// The generic token is unknown, missing, or held by another connection under 1UPT.
pub const TOKEN_REFUSED: &str = "Token refused";
/// The temporary token was wrong, or another frame came instead of `tokenauth`.
pub const TEMP_TOKEN_REFUSED: &str = "refused";
/// The bot name and token do not match the server's list.
pub const BOT_REFUSED: &str = "bot refused";
/// The message is empty or only white space.
pub const EMPTY_MESSAGE: &str = "No Empty Messages allowed!";

/// The text for a message longer than `max` (counted in Unicode scalar values); the connection
/// stays open.
pub fn message_too_long(len: usize, max: usize) -> String {
    format!("message is too long [{len}/{max}]")
}

/// Not in the original: the username is missing, blank, holds control characters, or starts
/// with the `[BOT]` prefix reserved for bots.
pub const INVALID_USERNAME: &str = "Invalid username.";
/// Not in the original: no `tokenauth` arrived in time after `authmsg`.
pub const TOKENAUTH_TIMEOUT: &str = "Token authentication timed out.";
/// Not in the original: too many login attempts from one address (the connection is closed).
pub const TOO_MANY_LOGINS: &str = "Too many login attempts; try again later.";
/// Not in the original: no `auth` or `botauth` arrived in time after connecting (the connection is
/// closed).
pub const AUTH_TIMEOUT: &str = "Authentication timed out.";
/// Not in the original: messages sent faster than the server's rate; this one was dropped and the
/// connection stays.
pub const SLOW_DOWN: &str = "You are sending messages too fast; slow down.";
/// Not in the original: messages sent far faster than the server's rate, again and again (the
/// connection is closed).
pub const FLOOD: &str = "Flooding; disconnected.";
/// APIv2: a moderation frame from a connection whose role does not allow it, or against a
/// member of equal or higher role (the connection stays).
pub const NOT_PERMITTED: &str = "not permitted";
/// The generic or bot token this connection logged in with was revoked by the owner (the
/// connection is closed).
pub const TOKEN_REVOKED: &str = "Your token was revoked.";
/// Cluster mode: this server has lost touch with the cluster's other servers, so a login cannot
/// be checked against them (the connection is closed; try again shortly).
pub const CLUSTER_UNAVAILABLE: &str =
    "The chat is reconnecting to its other servers; try again shortly.";
/// Cluster mode: a message sent while this server has lost touch with the others was delivered
/// to nobody (the connection stays; send it again shortly).
pub const MESSAGE_NOT_SENT: &str =
    "Message not sent: the chat is reconnecting to its other servers; send it again shortly.";
/// Cluster mode: while this server was out of touch with the others, the connection's name or
/// token was given to someone else (the connection is closed).
pub const CLUSTER_CONFLICT: &str =
    "Your name or token was taken while the chat was reconnecting; log in again.";

/// Extension `resume`: the resume token is unknown, used or expired, or its session's token was
/// revoked or banned meanwhile (the connection is closed; log in afresh).
pub const RESUME_REFUSED: &str = "Resume refused; log in again.";

/// APIv2: what a kicked member is told before it is closed.
pub fn kicked(reason: &str) -> String {
    format!("kicked: {reason}")
}

/// APIv2: what a banned member is told, at the ban and at each login attempt while it lasts;
/// `until` is a UTC time (RFC 3339) or `None` for a ban until lifted.
pub fn banned(reason: &str, until: Option<&str>) -> String {
    match until {
        Some(until) => format!("banned until {until}: {reason}"),
        None => format!("banned until lifted: {reason}"),
    }
}
