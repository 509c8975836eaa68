//! `secureconfig.json`: the server's one configuration file.
//!
//! Every key is optional; [`Config::default`] holds the embedded defaults. Loading is strict
//! (unknown keys and wrong types are errors that name the file and the key) because a typo in a
//! security setting must not silently fall back to a default.
//!
//! Its parts:
//! - `schema`: [`Config`] and its parts, every key with its default.
//! - `cluster`: the `cluster` object ([`ClusterConfig`]) and how its keys fit together.
//! - `load`: reading, parsing and validating a file ([`Config::load`]), and [`ConfigError`].
//! - `create`: the first run's file, with the defaults and a new token ([`load_or_create`]).
//! - [`edit`]: changing the file in place, atomically, as the owner's `tokens` commands and
//!   the owner API do.

mod cluster;
mod create;
pub mod edit;
mod load;
mod schema;

pub use cluster::{ClusterConfig, valid_node_id};
pub use create::{Created, load_or_create};
pub use load::ConfigError;
pub use schema::{
    BotEntry, BotSpec, Config, HistoryConfig, Limits, MetricsConfig, Role, TlsFiles, TokenEntry,
};
