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
    /// `["message", NAME, TEXT]`: someone said TEXT.
    Message {
        /// Who said it.
        from: String,
        /// What they said.
        text: String,
    },
    /// `["disconnect", NAME]`: someone left.
    Disconnect(String),
    /// `["refusal", REASON]`: the server refused something; see [`crate::refusal`].
    Refusal(String),
    /// `["users", [NAME, ...]]` (APIv2): who is in the room, the answer to `["who"]`.
    Users(Vec<String>),
    /// A frame type this crate does not know, or a known type whose arguments have the wrong
    /// shape; the type and arguments are kept so that callers can pass it on.
    Unknown {
        /// The frame type.
        kind: String,
        /// The elements after the type.
        args: Vec<Value>,
    },
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
                .map(|(from, text)| ServerFrame::Message { from, text }),
            "disconnect" => str_arg(&args, 0).map(ServerFrame::Disconnect),
            "refusal" => str_arg(&args, 0).map(ServerFrame::Refusal),
            "users" => args.first().and_then(Value::as_array).and_then(|names| {
                names
                    .iter()
                    .map(|name| name.as_str().map(str::to_owned))
                    .collect::<Option<Vec<_>>>()
                    .map(ServerFrame::Users)
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
            ServerFrame::Message { from, text } => encode_tuple(&("message", from, text)),
            ServerFrame::Disconnect(name) => encode_tuple(&("disconnect", name)),
            ServerFrame::Refusal(reason) => encode_tuple(&("refusal", reason)),
            ServerFrame::Users(names) => encode_tuple(&("users", names)),
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
                text: "say \"hi\"".into()
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
