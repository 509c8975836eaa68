//! Frames a client sends to a server.

use std::fmt;

use serde_json::{Map, Value, json};

use crate::{DecodeError, encode_tuple, split, str_arg, str_field};

/// A frame sent by a client.
///
/// Fields that the sender left out or gave the wrong JSON type decode to `None`; the server
/// decides what such a frame means (usually a refusal or nothing at all).
///
/// Its `Debug` output redacts every token, so that logging a frame never logs a secret.
#[derive(Clone, PartialEq, Eq)]
pub enum ClientFrame {
    /// `["auth", {"username": U, "token": T}]`: user login. Plain (non-secure) CLIChat servers
    /// take it without a token; Secure Servers answer with `authmsg` (SAUTH2).
    Auth {
        /// The username asked for.
        username: Option<String>,
        /// The generic token the owner handed out.
        token: Option<String>,
    },
    /// `["tokenauth", TEMP]`: the temporary token read off the SAUTH2 web page.
    TokenAuth(Option<String>),
    /// `["botauth", {"botusername": N, "bottoken": T}]`: bot login with owner-set name and token.
    BotAuth {
        /// The bot's name (shown to others as `[BOT] name`).
        name: Option<String>,
        /// The bot token.
        token: Option<String>,
    },
    /// `["msg", {"id": ID, "msg": TEXT}]`: a chat message; `ID` is the number the server gave
    /// in its `id` frame.
    Msg {
        /// The sender's id, as the server gave it (`None` if missing or not an unsigned integer).
        id: Option<u64>,
        /// The message text.
        text: Option<String>,
    },
    /// `["kick", {"username": N, "reason": R}]` (APIv2, mods and admins): remove N from the
    /// room.
    Kick {
        /// Who to remove.
        username: Option<String>,
        /// Why, shown to them.
        reason: Option<String>,
    },
    /// `["ban", {"username": N, "reason": R, "minutes": M}]` (APIv2): remove N and refuse its
    /// token at login for M minutes, or until lifted when `minutes` is absent.
    Ban {
        /// Who to ban.
        username: Option<String>,
        /// Why, shown to them.
        reason: Option<String>,
        /// How long; `None`: until lifted.
        minutes: Option<u64>,
    },
    /// `["unban", {"username": N}]` or `["unban", {"token_label": L}]` (APIv2): lift bans.
    Unban {
        /// The banned user's name.
        username: Option<String>,
        /// The label of the banned token.
        token_label: Option<String>,
    },
    /// `["who"]` (APIv2): asks for `["users", [names...]]`.
    Who,
    /// `["caps", [NAME, ...]]` (extension): asks for protocol extensions, as the first frame.
    /// Elements that are not strings are left out.
    Caps(Vec<String>),
    /// `["members"]` (extension `presence`): asks for `["members", [names...]]`.
    Members,
    /// `["resume", {"token": T, "since": SEQ}]` (extension `resume`): takes back a held session
    /// instead of logging in, with every message numbered after `since`.
    Resume {
        /// The resume token of the last `session` frame.
        token: Option<String>,
        /// The newest message number the client saw.
        since: Option<u64>,
    },
    /// A frame type this crate does not know; the type is kept.
    Unknown(String),
}

impl ClientFrame {
    /// Decodes one text frame.
    ///
    /// # Errors
    /// A [`DecodeError`] when the text is not a JSON array whose first element is a string.
    /// Anything with that shape decodes, unknown types to [`ClientFrame::Unknown`].
    pub fn decode(text: &str) -> Result<Self, DecodeError> {
        let (kind, args) = split(text)?;
        let arg = args.first();
        Ok(match kind.as_str() {
            "auth" => ClientFrame::Auth {
                username: str_field(arg, "username"),
                token: str_field(arg, "token"),
            },
            "tokenauth" => ClientFrame::TokenAuth(str_arg(&args, 0)),
            "botauth" => ClientFrame::BotAuth {
                name: str_field(arg, "botusername"),
                token: str_field(arg, "bottoken"),
            },
            "msg" => ClientFrame::Msg {
                id: arg.and_then(|a| a.get("id")).and_then(Value::as_u64),
                text: str_field(arg, "msg"),
            },
            "kick" => ClientFrame::Kick {
                username: str_field(arg, "username"),
                reason: str_field(arg, "reason"),
            },
            "ban" => ClientFrame::Ban {
                username: str_field(arg, "username"),
                reason: str_field(arg, "reason"),
                minutes: arg.and_then(|a| a.get("minutes")).and_then(Value::as_u64),
            },
            "unban" => ClientFrame::Unban {
                username: str_field(arg, "username"),
                token_label: str_field(arg, "token_label"),
            },
            "who" => ClientFrame::Who,
            "caps" => ClientFrame::Caps(
                arg.and_then(Value::as_array)
                    .map(|names| {
                        names
                            .iter()
                            .filter_map(|name| name.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default(),
            ),
            "members" => ClientFrame::Members,
            "resume" => ClientFrame::Resume {
                token: str_field(arg, "token"),
                since: arg.and_then(|a| a.get("since")).and_then(Value::as_u64),
            },
            _ => ClientFrame::Unknown(kind),
        })
    }

    /// The frame's type as it appears on the wire (`"auth"`, `"msg"`, ...). Safe to log: unlike
    /// the frame itself, it never holds a token.
    pub fn kind(&self) -> &str {
        match self {
            ClientFrame::Auth { .. } => "auth",
            ClientFrame::TokenAuth(_) => "tokenauth",
            ClientFrame::BotAuth { .. } => "botauth",
            ClientFrame::Msg { .. } => "msg",
            ClientFrame::Kick { .. } => "kick",
            ClientFrame::Ban { .. } => "ban",
            ClientFrame::Unban { .. } => "unban",
            ClientFrame::Who => "who",
            ClientFrame::Caps(_) => "caps",
            ClientFrame::Members => "members",
            ClientFrame::Resume { .. } => "resume",
            ClientFrame::Unknown(kind) => kind,
        }
    }

    /// Encodes the frame as the JSON text to send. `None` fields are left out.
    ///
    /// [`ClientFrame::Unknown`] encodes as a one-element array holding its type.
    pub fn encode(&self) -> String {
        match self {
            ClientFrame::Auth { username, token } => {
                encode_tuple(&("auth", object(&[("username", username), ("token", token)])))
            }
            ClientFrame::TokenAuth(token) => encode_tuple(&("tokenauth", token)),
            ClientFrame::BotAuth { name, token } => encode_tuple(&(
                "botauth",
                object(&[("botusername", name), ("bottoken", token)]),
            )),
            ClientFrame::Msg { id, text } => {
                let mut args = Map::new();
                if let Some(id) = id {
                    args.insert("id".into(), json!(id));
                }
                if let Some(text) = text {
                    args.insert("msg".into(), json!(text));
                }
                encode_tuple(&("msg", args))
            }
            ClientFrame::Kick { username, reason } => encode_tuple(&(
                "kick",
                object(&[("username", username), ("reason", reason)]),
            )),
            ClientFrame::Ban {
                username,
                reason,
                minutes,
            } => {
                let mut args = object(&[("username", username), ("reason", reason)]);
                if let Some(minutes) = minutes {
                    args.insert("minutes".into(), json!(minutes));
                }
                encode_tuple(&("ban", args))
            }
            ClientFrame::Unban {
                username,
                token_label,
            } => encode_tuple(&(
                "unban",
                object(&[("username", username), ("token_label", token_label)]),
            )),
            ClientFrame::Who => encode_tuple(&("who",)),
            ClientFrame::Caps(names) => encode_tuple(&("caps", names)),
            ClientFrame::Members => encode_tuple(&("members",)),
            ClientFrame::Resume { token, since } => {
                let mut args = object(&[("token", token)]);
                if let Some(since) = since {
                    args.insert("since".into(), json!(since));
                }
                encode_tuple(&("resume", args))
            }
            ClientFrame::Unknown(kind) => encode_tuple(&(kind,)),
        }
    }
}

impl fmt::Debug for ClientFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redacted = |token: &Option<String>| token.as_ref().map(|_| "<redacted>");
        match self {
            ClientFrame::Auth { username, token } => f
                .debug_struct("Auth")
                .field("username", username)
                .field("token", &redacted(token))
                .finish(),
            ClientFrame::TokenAuth(token) => {
                f.debug_tuple("TokenAuth").field(&redacted(token)).finish()
            }
            ClientFrame::BotAuth { name, token } => f
                .debug_struct("BotAuth")
                .field("name", name)
                .field("token", &redacted(token))
                .finish(),
            ClientFrame::Msg { id, text } => f
                .debug_struct("Msg")
                .field("id", id)
                .field("text", text)
                .finish(),
            ClientFrame::Kick { username, reason } => f
                .debug_struct("Kick")
                .field("username", username)
                .field("reason", reason)
                .finish(),
            ClientFrame::Ban {
                username,
                reason,
                minutes,
            } => f
                .debug_struct("Ban")
                .field("username", username)
                .field("reason", reason)
                .field("minutes", minutes)
                .finish(),
            ClientFrame::Unban {
                username,
                token_label,
            } => f
                .debug_struct("Unban")
                .field("username", username)
                .field("token_label", token_label)
                .finish(),
            ClientFrame::Who => f.write_str("Who"),
            ClientFrame::Caps(names) => f.debug_tuple("Caps").field(names).finish(),
            ClientFrame::Members => f.write_str("Members"),
            ClientFrame::Resume { token, since } => f
                .debug_struct("Resume")
                .field("token", &redacted(token))
                .field("since", since)
                .finish(),
            ClientFrame::Unknown(kind) => f.debug_tuple("Unknown").field(kind).finish(),
        }
    }
}

/// A JSON object of the fields that are present.
fn object(fields: &[(&str, &Option<String>)]) -> Map<String, Value> {
    fields
        .iter()
        .filter_map(|(k, v)| {
            v.as_ref()
                .map(|v| ((*k).to_owned(), Value::from(v.as_str())))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn some(s: &str) -> Option<String> {
        Some(s.to_owned())
    }

    #[test]
    fn decodes_each_frame() {
        assert_eq!(
            ClientFrame::decode(r#"["auth",{"username":"alice","token":"T"}]"#),
            Ok(ClientFrame::Auth {
                username: some("alice"),
                token: some("T")
            })
        );
        assert_eq!(
            ClientFrame::decode(r#"["tokenauth","abc"]"#),
            Ok(ClientFrame::TokenAuth(some("abc")))
        );
        assert_eq!(
            ClientFrame::decode(r#"["botauth",{"botusername":"b","bottoken":"x"}]"#),
            Ok(ClientFrame::BotAuth {
                name: some("b"),
                token: some("x")
            })
        );
        assert_eq!(
            ClientFrame::decode(r#"["msg",{"id":7,"msg":"hi"}]"#),
            Ok(ClientFrame::Msg {
                id: Some(7),
                text: some("hi")
            })
        );
    }

    #[test]
    fn spacing_key_order_and_extra_fields_do_not_matter() {
        assert_eq!(
            ClientFrame::decode(" [ \"tokenauth\" ,\n \"abc\" ] "),
            Ok(ClientFrame::TokenAuth(some("abc")))
        );
        assert_eq!(
            ClientFrame::decode(r#"["auth",{"token":"T","ip":"1.2.3.4","username":"a"},"extra"]"#),
            Ok(ClientFrame::Auth {
                username: some("a"),
                token: some("T")
            })
        );
    }

    #[test]
    fn wrong_argument_types_decode_to_none() {
        assert_eq!(
            ClientFrame::decode(r#"["auth"]"#),
            Ok(ClientFrame::Auth {
                username: None,
                token: None
            })
        );
        assert_eq!(
            ClientFrame::decode(r#"["auth",{"username":5,"token":["T"]}]"#),
            Ok(ClientFrame::Auth {
                username: None,
                token: None
            })
        );
        assert_eq!(
            ClientFrame::decode(r#"["tokenauth",5]"#),
            Ok(ClientFrame::TokenAuth(None))
        );
        assert_eq!(
            ClientFrame::decode(r#"["msg",{"id":"7","msg":1}]"#),
            Ok(ClientFrame::Msg {
                id: None,
                text: None
            })
        );
        assert_eq!(
            ClientFrame::decode(r#"["msg",{"id":-1,"msg":"x"}]"#),
            Ok(ClientFrame::Msg {
                id: None,
                text: some("x")
            })
        );
        assert_eq!(
            ClientFrame::decode(r#"["msg",{"id":1.5,"msg":"x"}]"#),
            Ok(ClientFrame::Msg {
                id: None,
                text: some("x")
            })
        );
    }

    #[test]
    fn shapeless_frames_are_errors() {
        assert!(matches!(
            ClientFrame::decode("not json"),
            Err(DecodeError::Json(_))
        ));
        assert!(matches!(
            ClientFrame::decode(r#"["msg""#),
            Err(DecodeError::Json(_))
        ));
        assert_eq!(
            ClientFrame::decode(r#"{"a":1}"#),
            Err(DecodeError::NotArray)
        );
        assert_eq!(ClientFrame::decode("\"auth\""), Err(DecodeError::NotArray));
        assert_eq!(ClientFrame::decode("[]"), Err(DecodeError::Empty));
        assert_eq!(
            ClientFrame::decode("[1,2]"),
            Err(DecodeError::TypeNotString)
        );
        assert_eq!(
            ClientFrame::decode("[null]"),
            Err(DecodeError::TypeNotString)
        );
    }

    #[test]
    fn caps_keeps_only_strings() {
        assert_eq!(
            ClientFrame::decode(r#"["caps",["history",5,{"a":1},"presence"]]"#),
            Ok(ClientFrame::Caps(vec!["history".into(), "presence".into()]))
        );
        assert_eq!(
            ClientFrame::decode(r#"["caps"]"#),
            Ok(ClientFrame::Caps(vec![]))
        );
    }

    #[test]
    fn unknown_types_are_kept() {
        assert_eq!(
            ClientFrame::decode(r#"["typing"]"#),
            Ok(ClientFrame::Unknown("typing".to_owned()))
        );
    }

    #[test]
    fn encode_round_trips() {
        let frames = [
            ClientFrame::Auth {
                username: some("al\"ice"),
                token: some("T"),
            },
            ClientFrame::Auth {
                username: some("bob"),
                token: None,
            },
            ClientFrame::TokenAuth(some("x.y")),
            ClientFrame::BotAuth {
                name: some("b"),
                token: some("t"),
            },
            ClientFrame::Msg {
                id: Some(u64::MAX),
                text: some("hé \n <b>"),
            },
            ClientFrame::Caps(vec!["history".into(), "presence".into()]),
            ClientFrame::Members,
            ClientFrame::Resume {
                token: some("r"),
                since: Some(9),
            },
            ClientFrame::Unknown("future".to_owned()),
        ];
        for frame in frames {
            assert_eq!(ClientFrame::decode(&frame.encode()), Ok(frame));
        }
    }

    #[test]
    fn debug_output_never_shows_a_token() {
        let frames = [
            ClientFrame::Auth {
                username: some("alice"),
                token: some("SECRET1"),
            },
            ClientFrame::TokenAuth(some("SECRET2")),
            ClientFrame::BotAuth {
                name: some("b"),
                token: some("SECRET3"),
            },
            ClientFrame::Resume {
                token: some("SECRET4"),
                since: None,
            },
        ];
        for frame in frames {
            let debug = format!("{frame:?}");
            assert!(!debug.contains("SECRET"), "{debug}");
            assert!(debug.contains("<redacted>"), "{debug}");
        }
    }

    #[test]
    fn encodes_the_original_shape() {
        let auth = ClientFrame::Auth {
            username: some("alice"),
            token: some("T"),
        };
        assert_eq!(
            auth.encode(),
            r#"["auth",{"token":"T","username":"alice"}]"#
        );
        let msg = ClientFrame::Msg {
            id: Some(3),
            text: some("hi"),
        };
        assert_eq!(msg.encode(), r#"["msg",{"id":3,"msg":"hi"}]"#);
    }
}
