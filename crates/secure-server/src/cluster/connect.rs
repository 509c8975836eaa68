//! Where the cluster's Redis is: one Redis at a URL (TLS for `rediss://`), or the master a set
//! of Redis Sentinels names, asked again at every connection so that a node follows a failover.
//! Either way the Redis connected to must say it is a master (`ROLE`): a replica, or a master
//! that a failover demoted, is not written to.

use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{AsyncConnectionConfig, ConnectionAddr, TlsCertificates, TlsMode};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use crate::config::ClusterConfig;
use crate::secrets::url_without_password;
use crate::tls::TlsError;

/// How long asking the sentinels for the master may take: a sentinel that does not answer
/// must not hold up the node's reconnection for long.
const ASK_TIMEOUT: Duration = Duration::from_secs(3);

/// Where the node connects.
pub(super) enum Target {
    /// One Redis, and its URL without the password (for logs).
    Redis(redis::Client, String),
    /// The master the sentinels name.
    Sentinel(Box<Sentinels>),
}

/// How to ask the sentinels.
struct Spec {
    addrs: Vec<(String, u16)>,
    master: String,
    password: Option<String>,
    sentinel_password: Option<String>,
    db: i64,
    /// `Some` when TLS is spoken to the sentinels and to Redis (with the CA, if not the
    /// system's).
    tls: Option<Option<Vec<u8>>>,
}

/// Redis Sentinel: how to ask, and the client that asks.
pub(super) struct Sentinels {
    spec: Spec,
    /// Keeps its connections to the sentinels between questions.
    client: SentinelClient,
    /// Which sentinel is asked first ([`Target::failed`] moves on).
    first: usize,
    /// The master the sentinels named last (`HOST:PORT`).
    named: Option<String>,
    /// A connection to a sentinel, to ask whether it still names that master.
    watch: Option<MultiplexedConnection>,
}

impl Target {
    /// The target `config` names. Reads the CA file, if any.
    ///
    /// # Errors
    /// The CA file cannot be read or holds no certificate; or (only if validation was
    /// skipped) the keys make no sense.
    pub(super) fn new(config: &ClusterConfig) -> Result<Target, TlsError> {
        let ca = config
            .ca_file
            .as_ref()
            .map(|path| read_ca(path))
            .transpose()?;
        if config.uses_tls() {
            // The redis crate builds its rustls configs with the process's default provider;
            // this server uses ring everywhere.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let invalid = |reason: String| TlsError::File {
            path: "cluster".into(),
            reason,
        };
        if let Some(url) = &config.redis {
            let client = match &ca {
                Some(ca) => redis::Client::build_with_tls(
                    url.as_str(),
                    TlsCertificates {
                        client_tls: None,
                        root_cert: Some(ca.clone()),
                    },
                ),
                None => redis::Client::open(url.as_str()),
            };
            return client
                .map(|client| Target::Redis(client, url_without_password(url)))
                .map_err(|error| invalid(format!("redis: {}", error.category())));
        }
        let spec = Spec {
            addrs: config.sentinel_addrs(),
            master: config.master.clone().unwrap_or_default(),
            password: config.password.clone(),
            sentinel_password: config.sentinel_password.clone(),
            db: config.db.unwrap_or(0).into(),
            tls: config.tls.then_some(ca),
        };
        let client = spec
            .build(0)
            .map_err(|error| invalid(format!("sentinels: {}", error.category())))?;
        Ok(Target::Sentinel(Box::new(Sentinels {
            spec,
            client,
            first: 0,
            named: None,
            watch: None,
        })))
    }

    /// A client for the Redis to use now: the URL's, or the master the sentinels name (which
    /// the redis crate has checked says it is one).
    pub(super) async fn master(&mut self) -> redis::RedisResult<redis::Client> {
        match self {
            Target::Redis(client, _) => Ok(client.clone()),
            Target::Sentinel(sentinels) => {
                let asked =
                    tokio::time::timeout(ASK_TIMEOUT, sentinels.client.async_get_client()).await;
                let client = asked.unwrap_or_else(|_| Err(too_slow()))?;
                sentinels.named = Some(client.get_connection_info().addr.to_string());
                Ok(client)
            }
        }
    }

    /// Whether the sentinels still name the master they named last: a master can be replaced
    /// while it still answers (a failover asked for, or one that a partition hid from the
    /// sentinels), and a node must not go on writing to it. `true` without sentinels, and when
    /// they cannot be asked within `within`: that is no reason to leave a master that answers.
    pub(super) async fn still_named(&mut self, within: Duration) -> bool {
        let Target::Sentinel(sentinels) = self else {
            return true;
        };
        let asked = tokio::time::timeout(within, sentinels.ask()).await;
        match asked.unwrap_or_else(|_| Err(too_slow())) {
            Ok(Some((host, port))) => {
                sentinels.named.as_deref() == Some(format!("{host}:{port}").as_str())
            }
            Ok(None) => true,
            Err(_) => {
                sentinels.watch = None;
                true
            }
        }
    }

    /// After a failed attempt to connect: with sentinels, the next attempt asks the next
    /// sentinel first, so that one that hangs, or names a master that is not one any more,
    /// does not fail every attempt.
    pub(super) fn failed(&mut self) {
        if let Target::Sentinel(sentinels) = self {
            sentinels.ask_another_first();
        }
    }

    /// Whether this target asks sentinels (and may then retry sooner: asking is cheap).
    pub(super) fn is_sentinel(&self) -> bool {
        matches!(self, Target::Sentinel(_))
    }

    /// What to call the target in logs: the URL without its password, or the master's name
    /// and the sentinels.
    pub(super) fn describe(&self) -> String {
        match self {
            Target::Redis(_, url) => url.clone(),
            Target::Sentinel(sentinels) => {
                let spec = &sentinels.spec;
                let addrs: Vec<String> = spec
                    .addrs
                    .iter()
                    .map(|(host, port)| match host.contains(':') {
                        true => format!("[{host}]:{port}"),
                        false => format!("{host}:{port}"),
                    })
                    .collect();
                format!(
                    "master {:?} of the sentinels {}",
                    spec.master,
                    addrs.join(", ")
                )
            }
        }
    }
}

impl Spec {
    /// A client that asks the sentinels in order, from the one at `first`.
    fn build(&self, first: usize) -> redis::RedisResult<SentinelClient> {
        let count = self.addrs.len().max(1);
        let addrs = (0..self.addrs.len()).map(|i| {
            let (host, port) = self.addrs[(first + i) % count].clone();
            match self.tls {
                Some(_) => ConnectionAddr::TcpTls {
                    host,
                    port,
                    insecure: false,
                    tls_params: None,
                },
                None => ConnectionAddr::Tcp(host, port),
            }
        });
        let mut builder =
            SentinelClientBuilder::new(addrs, self.master.clone(), SentinelServerType::Master)?
                .set_client_to_redis_db(self.db);
        if let Some(password) = &self.password {
            builder = builder.set_client_to_redis_password(password.clone());
        }
        if let Some(password) = &self.sentinel_password {
            builder = builder.set_client_to_sentinel_password(password.clone());
        }
        if let Some(ca) = &self.tls {
            builder = builder
                .set_client_to_sentinel_tls_mode(TlsMode::Secure)
                .set_client_to_redis_tls_mode(TlsMode::Secure);
            if let Some(ca) = ca {
                let certificates = TlsCertificates {
                    client_tls: None,
                    root_cert: Some(ca.clone()),
                };
                builder = builder
                    .set_client_to_sentinel_certificates(certificates.clone())
                    .set_client_to_redis_certificates(certificates);
            }
        }
        builder.build()
    }
}

impl Sentinels {
    /// Which master a sentinel names now (`SENTINEL get-master-addr-by-name`).
    async fn ask(&mut self) -> redis::RedisResult<Option<(String, u16)>> {
        let watch = match &mut self.watch {
            Some(watch) => watch,
            None => {
                let sentinel = self.client.async_get_sentinel_client().await?;
                let config = AsyncConnectionConfig::new()
                    .set_connection_timeout(ASK_TIMEOUT)
                    .set_response_timeout(ASK_TIMEOUT);
                let connection = sentinel
                    .get_multiplexed_async_connection_with_config(&config)
                    .await?;
                self.watch.insert(connection)
            }
        };
        redis::cmd("SENTINEL")
            .arg("get-master-addr-by-name")
            .arg(&self.spec.master)
            .query_async(watch)
            .await
    }

    /// The next attempt starts with the next sentinel.
    fn ask_another_first(&mut self) {
        if self.spec.addrs.len() < 2 {
            return;
        }
        self.first = (self.first + 1) % self.spec.addrs.len();
        if let Ok(client) = self.spec.build(self.first) {
            self.client = client;
            self.watch = None;
        }
    }
}

/// The PEM text of the CA file at `path`, once it is known to hold a certificate.
fn read_ca(path: &std::path::Path) -> Result<Vec<u8>, TlsError> {
    let fail = |reason: String| TlsError::File {
        path: path.to_owned(),
        reason,
    };
    let pem = std::fs::read(path).map_err(|error| fail(error.to_string()))?;
    let certificates = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| fail(format!("not PEM certificates: {error}")))?;
    if certificates.is_empty() {
        return Err(fail("holds no PEM certificate".to_owned()));
    }
    Ok(pem)
}

fn too_slow() -> redis::RedisError {
    redis::RedisError::from((
        redis::ErrorKind::IoError,
        "the sentinels did not answer in time",
    ))
}

/// The error a Redis that is not a master answers with: the link is restarted, and with
/// sentinels the next connection asks them again.
pub(super) fn not_a_master() -> redis::RedisError {
    redis::RedisError::from((
        redis::ErrorKind::ReadOnly,
        "this Redis is not a master (a replica, or a master demoted by a failover)",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_ca(path: &std::path::Path) -> ClusterConfig {
        ClusterConfig {
            ca_file: Some(path.to_owned()),
            ..ClusterConfig::on_redis("rediss://127.0.0.1:6380/")
        }
    }

    #[test]
    fn a_ca_file_that_holds_no_certificate_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let error = Target::new(&with_ca(&missing)).err().unwrap().to_string();
        assert!(error.contains("missing.pem"), "{error}");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "no certificate here\n").unwrap();
        let error = Target::new(&with_ca(&empty)).err().unwrap().to_string();
        assert!(
            error.contains("empty.pem") && error.contains("no PEM"),
            "{error}"
        );
    }

    #[test]
    fn logs_name_the_target_without_its_password() {
        let target = Target::new(&ClusterConfig::on_redis("redis://:hunter2@db:6379/2")).unwrap();
        assert_eq!(target.describe(), "redis://:****@db:6379/2");
        let sentinels = ClusterConfig {
            redis: None,
            sentinels: Some(vec!["10.0.0.1:26379".into(), "[::1]:26380".into()]),
            master: Some("clichat".into()),
            password: Some("hunter2".into()),
            sentinel_password: Some("s3cret".into()),
            ..ClusterConfig::on_redis("")
        };
        let target = Target::new(&sentinels).unwrap();
        assert!(target.is_sentinel());
        let shown = target.describe();
        assert_eq!(
            shown,
            "master \"clichat\" of the sentinels 10.0.0.1:26379, [::1]:26380"
        );
    }
}
