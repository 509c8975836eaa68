//! The owner API under `/admin/`, for scripts and `secure-server admin ...`.
//!
//! Off unless the config sets `admin_key` (every endpoint answers 404 then). Each request must
//! carry `Authorization: Bearer <admin_key>`, compared in constant time; without it, 401.
//! Bodies and answers are JSON; errors are `{"error": TEXT}`.
//!
//! | endpoint | body | answer |
//! |---|---|---|
//! | `GET /admin/connections` | | `[{"node", "id", "name", "kind", "role", "label", "peer"}]`, every node's members |
//! | `POST /admin/kick` | `{"username", "reason"}` | `{"kicked": NAME}` |
//! | `POST /admin/ban` | `{"username", "reason", "minutes"?}` | `{"banned": NAME, "until": RFC3339 or null}` |
//! | `POST /admin/unban` | `{"username"}` or `{"token_label"}` | `{"unbanned": COUNT}` |
//! | `GET /admin/tokens` | | `[TokenInfo + "in_use"]` (in use on any node) |
//! | `POST /admin/tokens` | `{"label"?, "role"?, "bot"?}` | 201 `{"token": TOKEN, ...TokenInfo}` |
//! | `POST /admin/tokens/revoke` | `{"token_or_label"}` | `{"revoked": COUNT}` |
//! | `POST /admin/history/clear` | | `{"cleared": true}`, or 409 when history is off |
//!
//! The owner acts with full authority: kicks and bans reach admins too. Token changes are
//! written to the config file (atomically, refusing with 409 if it changed underneath) and put
//! in force at once, as a reload would.

use std::collections::HashSet;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use clichat_proto::refusal;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::config::Role;
use crate::config::edit::{self, ConfigFile, EditError};
use crate::{Server, names, reload, secrets};

/// The target of this file's events: its path before it moved into `http/`, so that log lines
/// and `RUST_LOG` filters stay as they were.
const LOG_TARGET: &str = "secure_server::admin";

/// The owner API's routes.
pub(crate) fn routes(server: Arc<Server>) -> Router<Arc<Server>> {
    Router::new()
        .route("/admin/connections", get(connections))
        .route("/admin/kick", post(kick))
        .route("/admin/ban", post(ban))
        .route("/admin/unban", post(unban))
        .route("/admin/tokens", get(tokens).post(add_token))
        .route("/admin/tokens/revoke", post(revoke))
        .route("/admin/history/clear", post(clear_history))
        .route_layer(middleware::from_fn_with_state(server, authorize))
}

/// An API error: a status and a text.
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.0, Json(json!({ "error": self.1 }))).into_response();
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, "no-store".parse().expect("valid"));
        response
    }
}

impl From<EditError> for ApiError {
    fn from(error: EditError) -> ApiError {
        let status = match &error {
            EditError::Changed { .. } => StatusCode::CONFLICT,
            EditError::NotFound(_) => StatusCode::NOT_FOUND,
            EditError::Ambiguous(_)
            | EditError::DuplicateLabel(_)
            | EditError::DuplicateBot(_)
            | EditError::Invalid(_) => StatusCode::BAD_REQUEST,
            EditError::Config(_) | EditError::Io { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError(status, error.to_string())
    }
}

type ApiResult = Result<Response, ApiError>;

/// Lets a request through only with the configured key.
async fn authorize(State(server): State<Arc<Server>>, request: Request, next: Next) -> Response {
    let Some(key) = server.settings().config.admin_key.clone() else {
        return ApiError(
            StatusCode::NOT_FOUND,
            "the owner API is off; set admin_key in the config".to_owned(),
        )
        .into_response();
    };
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    if !presented.is_some_and(|presented| secrets::secret_eq(presented, &key)) {
        let mut response = ApiError(
            StatusCode::UNAUTHORIZED,
            "missing or wrong admin key".to_owned(),
        )
        .into_response();
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, "Bearer".parse().expect("valid"));
        return response;
    }
    next.run(request).await
}

/// The JSON body, or a 400 saying what is wrong with it.
fn body<T: DeserializeOwned>(bytes: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.to_string()))
}

/// Every member on every node (this node's alone, with a 503, while the others cannot be
/// asked), with the node each is connected to (`null` for a single server).
async fn connections(State(server): State<Arc<Server>>) -> ApiResult {
    let here = server
        .hub
        .node_status()
        .map(|status| status.node.to_owned());
    let everyone = server.hub.everyone().await.map_err(|_| {
        ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            refusal::CLUSTER_UNAVAILABLE.to_owned(),
        )
    })?;
    let members = everyone.into_iter().map(|member| {
        json!({
            "node": member.node.or_else(|| here.clone()),
            "id": member.id,
            "name": member.name,
            "kind": member.profile.kind,
            "role": server.role_of(&member.profile),
            "label": member.profile.label,
            "peer": member.profile.peer.map(|peer| peer.to_string()),
        })
    });
    Ok(Json(Value::Array(members.collect())).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Target {
    username: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    minutes: Option<u64>,
}

/// The member called `username`, on any node of a cluster.
async fn find(server: &Server, username: &str) -> Result<crate::hub::MemberInfo, ApiError> {
    let found = server.hub.find(username).await.map_err(|_| {
        ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            "the cluster cannot be reached; try again shortly".to_owned(),
        )
    })?;
    found.ok_or_else(|| {
        ApiError(
            StatusCode::NOT_FOUND,
            format!("nobody called {username:?} is connected"),
        )
    })
}

/// Drops the room's history everywhere it is kept; numbers go on from where they were.
async fn clear_history(State(server): State<Arc<Server>>) -> ApiResult {
    if !server.hub.keeps_history() {
        let off = "history is off (\"history\": null in the config)".to_owned();
        return Err(ApiError(StatusCode::CONFLICT, off));
    }
    server.hub.clear_history();
    tracing::info!(target: LOG_TARGET, "history cleared by the owner");
    Ok(Json(json!({ "cleared": true })).into_response())
}

async fn kick(State(server): State<Arc<Server>>, bytes: Bytes) -> ApiResult {
    let target: Target = body(&bytes)?;
    let member = find(&server, &target.username).await?;
    server.hub.remove(&member, &refusal::kicked(&target.reason));
    tracing::info!(
        target: LOG_TARGET,
        target = ?member.name,
        reason = ?target.reason,
        "kicked by the owner"
    );
    Ok(Json(json!({ "kicked": member.name })).into_response())
}

async fn ban(State(server): State<Arc<Server>>, bytes: Bytes) -> ApiResult {
    let target: Target = body(&bytes)?;
    let member = find(&server, &target.username).await?;
    let banned = server.ban_member(&member, &target.reason, target.minutes);
    tracing::info!(
        target: LOG_TARGET,
        target = ?member.name,
        reason = ?target.reason,
        "banned by the owner"
    );
    let until = banned.map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(Json(json!({ "banned": member.name, "until": until })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Unban {
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    token_label: Option<String>,
}

async fn unban(State(server): State<Arc<Server>>, bytes: Bytes) -> ApiResult {
    let Unban {
        username,
        token_label,
    } = body(&bytes)?;
    if username.is_none() && token_label.is_none() {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            "give username or token_label".to_owned(),
        ));
    }
    let lifted = server
        .lift_bans(|ban| {
            username
                .as_deref()
                .is_some_and(|n| names::look_alike(n, &ban.username))
                || token_label.is_some() && token_label == ban.label
        })
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(Json(json!({ "unbanned": lifted })).into_response())
}

async fn tokens(State(server): State<Arc<Server>>) -> Json<Value> {
    let held: HashSet<String> = server
        .hub
        .tokens_in_use()
        .await
        .iter()
        .map(secrets::TokenKey::fingerprint)
        .collect();
    let tokens = edit::list(&server.settings().config)
        .into_iter()
        .map(|info| {
            let in_use = held.contains(&info.fingerprint);
            let mut value = serde_json::to_value(info).unwrap_or_default();
            value["in_use"] = json!(in_use);
            value
        });
    Json(Value::Array(tokens.collect()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewToken {
    #[serde(default)]
    label: Option<String>,
    #[serde(default)]
    role: Role,
    #[serde(default)]
    bot: Option<String>,
}

/// Saves an edit (a blocking file lock, writes and fsyncs) off the async threads.
async fn save(file: ConfigFile, value: Value) -> Result<(), ApiError> {
    tokio::task::spawn_blocking(move || file.save(&value))
        .await
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .map_err(ApiError::from)
}

/// Opens the server's config file for an edit; 409 when the server runs without one.
fn open_config(server: &Server) -> Result<(ConfigFile, Value), ApiError> {
    let path = server.config_file.as_deref().ok_or_else(|| {
        ApiError(
            StatusCode::CONFLICT,
            "this server runs without a config file".to_owned(),
        )
    })?;
    Ok(ConfigFile::open(path)?)
}

async fn add_token(State(server): State<Arc<Server>>, bytes: Bytes) -> ApiResult {
    let new: NewToken = body(&bytes)?;
    let (file, mut value) = open_config(&server)?;
    let (token, info) = match &new.bot {
        Some(name) => {
            let token = edit::add_bot(&mut value, name, new.role)?;
            let info = edit::TokenInfo::bot(&token, name, new.role);
            (token, info)
        }
        None => {
            let token = edit::add_token(&mut value, new.label.as_deref(), new.role)?;
            let info = edit::TokenInfo::user(&token, new.label.as_deref(), new.role);
            (token, info)
        }
    };
    save(file, value).await?;
    reload::reload_now(&server);
    let mut answer = serde_json::to_value(info).unwrap_or_default();
    answer["token"] = json!(token);
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Revoke {
    token_or_label: String,
}

async fn revoke(State(server): State<Arc<Server>>, bytes: Bytes) -> ApiResult {
    let Revoke { token_or_label } = body(&bytes)?;
    let (file, mut value) = open_config(&server)?;
    let revoked = edit::revoke(&mut value, &token_or_label)?;
    save(file, value).await?;
    reload::reload_now(&server);
    Ok(Json(json!({ "revoked": revoked.len() })).into_response())
}
