//! Frames a server sends to a client.

use serde_json::Value;

use crate::{DecodeError, encode_tuple, split, str_arg};

/// A frame sent by a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerFrame {
    /// `["authmsg", LINK]`: open LINK in a browser to read the temporary token (SAUTH2).
    AuthMsg(String),
    /// `["id", ID, VERSION]`: you are in. The original sent bots `["id", ID]` without a version.
    Id {
        /// The connection's id, to be sent back in every `msg`.
        id: u64,
        /// The server's version text, when the server sent one.
        version: Option<String>,
    },
    /// `["join", NAME]`: someone joined (bots appear as `[BOT] name`).
    Join(String),
    /// `["message", NAME, TEXT]`: someone said TEXT; `["message", NAME, TEXT, SEQ, TIME_MS]`
    /// to a client that asked for `history` in `caps`.
    Message {
        /// Who said it.
        from: String,
        /// What they said.
        text: String,
        /// Where it stands in the room's history, when the server says.
        stamp: Option<Stamp>,
    },
    /// `["disconnect", NAME]`: someone left.
    Disconnect(String),
    /// `["refusal", REASON]`: the server refused something; see [`crate::refusal`].
    Refusal(String),
    /// `["users", [NAME, ...]]` (APIv2): who is in the room, the answer to `["who"]`.
    Users(Vec<String>),
    /// `["caps", [NAME, ...]]` (extension): the capabilities the server granted, the answer to
    /// a client's `caps`.
    Caps(Vec<String>),
    /// `["history", [[SEQ, TIME_MS, NAME, TEXT], ...]]` (extension `history`): recent messages,
    /// oldest first. A third element `{"complete": false}` says that older messages asked for
    /// are no longer kept.
    History {
        /// The messages, oldest first.
        messages: Vec<HistoryEntry>,
        /// `false` when messages asked for were no longer kept; `true` when the frame says
        /// nothing (it is complete).
        complete: bool,
    },
    /// `["members", [NAME, ...]]` (extension `presence`): everyone in the room now, the
    /// receiver included.
    Members(Vec<String>),
    /// `["session", {"resume": TOKEN, "expires_in": SECS, "seq": SEQ}]` (extension `resume`):
    /// the token that takes this session back after its connection is lost, once, within
    /// `expires_in` seconds of the loss; `seq` is the newest message number the client has been
    /// given so far (in `history`), when there is one.
    Session {
        /// The resume token.
        resume: ResumeToken,
        /// How long a lost session is held, in seconds.
        expires_in: u64,
        /// The newest message number in what the client was given before this frame.
        seq: Option<u64>,
    },
    /// A frame type this crate does not know, or a known type whose arguments have the wrong
    /// shape; the type and arguments are kept so that callers can pass it on.
    Unknown {
        /// The frame type.
        kind: String,
        /// The elements after the type.
        args: Vec<Value>,
    },
}

/// Where a message stands in the room's history (extension `history`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Stamp {
    /// The message's number: it grows with every message of the room, in the order the room
    /// delivers them.
    pub seq: u64,
    /// When the server accepted it, in Unix milliseconds.
    pub time_ms: u64,
}

/// One message of a `history` frame: `[SEQ, TIME_MS, NAME, TEXT]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    /// Its number and time.
    pub stamp: Stamp,
    /// Who said it.
    pub from: String,
    /// What they said.
    pub text: String,
}

impl HistoryEntry {
    fn decode(value: &Value) -> Option<HistoryEntry> {
        let items = value.as_array()?;
        Some(HistoryEntry {
            stamp: Stamp {
                seq: items.first()?.as_u64()?,
                time_ms: items.get(1)?.as_u64()?,
            },
            from: str_arg(items, 2)?,
            text: str_arg(items, 3)?,
        })
    }

    fn value(&self) -> Value {
        Value::Array(vec![
            self.stamp.seq.into(),
            self.stamp.time_ms.into(),
            self.from.as_str().into(),
            self.text.as_str().into(),
        ])
    }
}

/// A resume token: a secret, so its `Debug` output never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct ResumeToken(pub String);

impl std::fmt::Debug for ResumeToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ResumeToken(<redacted>)")
    }
}

/// The strings of an array argument, if it is an array of strings.
fn strings(arg: Option<&Value>) -> Option<Vec<String>> {
    arg?.as_array()?
        .iter()
        .map(|name| name.as_str().map(str::to_owned))
        .collect()
}

impl ServerFrame {
    /// Decodes one text frame.
    ///
    /// # Errors
    /// A [`DecodeError`] when the text is not a JSON array whose first element is a string.
    pub fn decode(text: &str) -> Result<Self, DecodeError> {
        let (kind, args) = split(text)?;
        let known = match kind.as_str() {
            "authmsg" => str_arg(&args, 0).map(ServerFrame::AuthMsg),
            "id" => args
                .first()
                .and_then(Value::as_u64)
                .map(|id| ServerFrame::Id {
                    id,
                    version: str_arg(&args, 1),
                }),
            "join" => str_arg(&args, 0).map(ServerFrame::Join),
            "message" => str_arg(&args, 0)
                .zip(str_arg(&args, 1))
                .map(|(from, text)| {
                    let seq = args.get(2).and_then(Value::as_u64);
                    let time_ms = args.get(3).and_then(Value::as_u64);
                    ServerFrame::Message {
                        from,
                        text,
                        stamp: seq
                            .zip(time_ms)
                            .map(|(seq, time_ms)| Stamp { seq, time_ms }),
                    }
                }),
            "disconnect" => str_arg(&args, 0).map(ServerFrame::Disconnect),
            "refusal" => str_arg(&args, 0).map(ServerFrame::Refusal),
            "users" => strings(args.first()).map(ServerFrame::Users),
            "caps" => strings(args.first()).map(ServerFrame::Caps),
            "members" => strings(args.first()).map(ServerFrame::Members),
            "session" => args.first().and_then(|session| {
                Some(ServerFrame::Session {
                    resume: ResumeToken(session.get("resume")?.as_str()?.to_owned()),
                    expires_in: session.get("expires_in")?.as_u64()?,
                    seq: session.get("seq").and_then(Value::as_u64),
                })
            }),
            "history" => args
                .first()
                .and_then(Value::as_array)
                .and_then(|entries| entries.iter().map(HistoryEntry::decode).collect())
                .map(|messages| ServerFrame::History {
                    messages,
                    complete: args
                        .get(1)
                        .and_then(|more| more.get("complete"))
                        .and_then(Value::as_bool)
                        .unwrap_or(true),
                }),
            _ => None,
        };
        Ok(known.unwrap_or(ServerFrame::Unknown { kind, args }))
    }

    /// Encodes the frame as the JSON text to send.
    pub fn encode(&self) -> String {
        match self {
            ServerFrame::AuthMsg(link) => encode_tuple(&("authmsg", link)),
            ServerFrame::Id {
                id,
                version: Some(version),
            } => encode_tuple(&("id", id, version)),
            ServerFrame::Id { id, version: None } => encode_tuple(&("id", id)),
            ServerFrame::Join(name) => encode_tuple(&("join", name)),
            ServerFrame::Message {
                from,
                text,
                stamp: None,
            } => encode_tuple(&("message", from, text)),
            ServerFrame::Message {
                from,
                text,
                stamp: Some(stamp),
            } => encode_tuple(&("message", from, text, stamp.seq, stamp.time_ms)),
            ServerFrame::Disconnect(name) => encode_tuple(&("disconnect", name)),
            ServerFrame::Refusal(reason) => encode_tuple(&("refusal", reason)),
            ServerFrame::Users(names) => encode_tuple(&("users", names)),
            ServerFrame::Caps(names) => encode_tuple(&("caps", names)),
            ServerFrame::Members(names) => encode_tuple(&("members", names)),
            ServerFrame::Session {
                resume,
                expires_in,
                seq,
            } => {
                let mut session = serde_json::json!({"resume": resume.0, "expires_in": expires_in});
                if let Some(seq) = seq {
                    session["seq"] = (*seq).into();
                }
                encode_tuple(&("session", session))
            }
            ServerFrame::History { messages, complete } => {
                let messages: Vec<Value> = messages.iter().map(HistoryEntry::value).collect();
                if *complete {
                    encode_tuple(&("history", messages))
                } else {
                    encode_tuple(&("history", messages, serde_json::json!({"complete": false})))
                }
            }
            ServerFrame::Unknown { kind, args } => {
                let mut items = Vec::with_capacity(args.len() + 1);
                items.push(Value::from(kind.as_str()));
                items.extend(args.iter().cloned());
                encode_tuple(&items)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_the_original_texts() {
        assert_eq!(
            ServerFrame::AuthMsg("http://h:70/abc".into()).encode(),
            r#"["authmsg","http://h:70/abc"]"#
        );
        assert_eq!(
            ServerFrame::Id {
                id: 0,
                version: Some("v1".into())
            }
            .encode(),
            r#"["id",0,"v1"]"#
        );
        assert_eq!(
            ServerFrame::Id {
                id: 1,
                version: None
            }
            .encode(),
            r#"["id",1]"#
        );
        assert_eq!(
            ServerFrame::Join("[BOT] botusr".into()).encode(),
            r#"["join","[BOT] botusr"]"#
        );
        assert_eq!(
            ServerFrame::Message {
                from: "a".into(),
                text: "say \"hi\"".into(),
                stamp: None,
            }
            .encode(),
            r#"["message","a","say \"hi\""]"#
        );
        assert_eq!(
            ServerFrame::Disconnect("a".into()).encode(),
            r#"["disconnect","a"]"#
        );
        assert_eq!(
            ServerFrame::Refusal("Token refused".into()).encode(),
            r#"["refusal","Token refused"]"#
        );
    }

    #[test]
    fn round_trips() {
        let frames = [
            ServerFrame::AuthMsg("SERVERIPHERE/320886518076".into()),
            ServerFrame::Id {
                id: 42,
                version: Some("s25032021 - Based on 25032021".into()),
            },
            ServerFrame::Id {
                id: 1,
                version: None,
            },
            ServerFrame::Join("x".into()),
            ServerFrame::Message {
                from: "a".into(),
                text: "<img src=x>".into(),
                stamp: None,
            },
            ServerFrame::Message {
                from: "a".into(),
                text: "b".into(),
                stamp: Some(Stamp {
                    seq: 7,
                    time_ms: 1_764_000_000_000,
                }),
            },
            ServerFrame::Caps(vec!["history".into(), "presence".into()]),
            ServerFrame::Members(vec!["a".into(), "[BOT] b".into()]),
            ServerFrame::Session {
                resume: ResumeToken("r".into()),
                expires_in: 120,
                seq: Some(4),
            },
            ServerFrame::Session {
                resume: ResumeToken("r".into()),
                expires_in: 120,
                seq: None,
            },
            ServerFrame::History {
                messages: vec![HistoryEntry {
                    stamp: Stamp { seq: 1, time_ms: 2 },
                    from: "a".into(),
                    text: "hi".into(),
                }],
                complete: true,
            },
            ServerFrame::History {
                messages: vec![],
                complete: false,
            },
            ServerFrame::Disconnect("x".into()),
            ServerFrame::Refusal("refused".into()),
            ServerFrame::Users(vec!["a".into(), "[BOT] b".into()]),
            ServerFrame::Unknown {
                kind: "typing".into(),
                args: vec![serde_json::json!(["a"])],
            },
        ];
        for frame in frames {
            assert_eq!(ServerFrame::decode(&frame.encode()), Ok(frame));
        }
    }

    #[test]
    fn extension_frames_have_their_documented_text() {
        let history = ServerFrame::History {
            messages: vec![HistoryEntry {
                stamp: Stamp { seq: 3, time_ms: 4 },
                from: "a".into(),
                text: "x".into(),
            }],
            complete: false,
        };
        assert_eq!(
            history.encode(),
            r#"["history",[[3,4,"a","x"]],{"complete":false}]"#
        );
        // A client that reads two arguments of `message` reads a stamped one the same.
        let stamped = r#"["message","a","x",3,4]"#;
        assert!(matches!(
            ServerFrame::decode(stamped),
            Ok(ServerFrame::Message { ref from, ref text, stamp: Some(Stamp { seq: 3, time_ms: 4 }) })
                if from == "a" && text == "x"
        ));
    }

    #[test]
    fn known_type_with_wrong_arguments_is_passed_through() {
        assert_eq!(
            ServerFrame::decode(r#"["id","seven"]"#),
            Ok(ServerFrame::Unknown {
                kind: "id".into(),
                args: vec![Value::from("seven")]
            })
        );
    }

    #[test]
    fn shapeless_frames_are_errors() {
        assert_eq!(ServerFrame::decode("{}"), Err(DecodeError::NotArray));
        assert!(matches!(ServerFrame::decode(""), Err(DecodeError::Json(_))));
    }
}
