//! `secure-server check`: validates a config file as the server would load it, and prints the
//! settings in force (the file, `--port` and `--bind`, and every default) as JSON, with every
//! secret masked: tokens are shown by their fingerprint (the first 16 hex digits of their
//! SHA-256, as `tokens list` shows them), keys and passwords only as set (a Redis URL's password as `****`). Exit status 0 when the server would start on it, 1 (and the error, naming the file
//! and the key or line) when it would not.

use secure_server::config::Config;
use secure_server::secrets::{fingerprint, url_without_password};
use serde_json::{Map, Value};

use super::output::print;
use super::{Context, OwnerError};

pub(super) fn check(context: &Context) -> Result<(), OwnerError> {
    let mut config = Config::load(&context.config).map_err(|error| match &error {
        secure_server::config::ConfigError::Io { source, .. }
            if source.kind() == std::io::ErrorKind::NotFound =>
        {
            OwnerError::NoConfig(context.config.clone())
        }
        _ => OwnerError::Edit(error.into()),
    })?;
    if let Some(port) = context.port {
        config.port = port;
    }
    if let Some(bind) = context.bind {
        config.bind = bind;
    }
    let shown = masked(&config);
    let text = serde_json::to_string_pretty(&shown).expect("settings serialize");
    print(&format!("{text}\n"))?;
    let _ = std::io::Write::write_all(
        &mut std::io::stderr(),
        format!(
            "{}: the server would start on it.\n",
            context.config.display()
        )
        .as_bytes(),
    );
    Ok(())
}

/// The settings as JSON, with the secrets masked.
fn masked(config: &Config) -> Value {
    let mut value = serde_json::to_value(config).expect("settings serialize");
    let rekey = |object: &mut Value| {
        if let Some(map) = object.as_object_mut() {
            let masked: Map<String, Value> = std::mem::take(map)
                .into_iter()
                .map(|(token, entry)| (format!("sha256:{}", fingerprint(&token)), entry))
                .collect();
            *map = masked;
        }
    };
    rekey(&mut value["tokens"]);
    rekey(&mut value["bots"]);
    for pointer in [
        "/admin_key",
        "/metrics/key",
        "/cluster/password",
        "/cluster/sentinel_password",
    ] {
        if let Some(key) = value.pointer_mut(pointer).filter(|key| key.is_string()) {
            *key = Value::from("<set>");
        }
    }
    if let Some(url) = value["cluster"]["redis"].as_str() {
        value["cluster"]["redis"] = Value::from(url_without_password(url));
    }
    value
}
