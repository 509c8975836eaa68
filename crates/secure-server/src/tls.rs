//! TLS for the one port (rustls, no OpenSSL): with `"tls": {"cert", "key"}` in the config, it
//! speaks HTTPS and WSS only.
//!
//! The certificate lives behind a resolver that can be swapped while the server runs: a reload
//! (file change, SIGHUP) reads the files again, and new connections get the new certificate
//! while open ones keep theirs. A new pair that cannot be read, or whose key does not match, is
//! logged and the old one kept.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio_rustls::TlsAcceptor;

use crate::config::TlsFiles;

/// The first byte of every TLS connection (a handshake record).
pub(crate) const HANDSHAKE_RECORD: u8 = 0x16;

/// Why a certificate and key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or holds no usable PEM item.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The key is not the certificate's.
    #[error("{key} is not the private key of the certificate in {cert}")]
    Mismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads a certificate chain and its key, and checks that they belong together.
///
/// # Errors
/// [`TlsError`] naming the file that cannot be used.
pub fn load(files: &TlsFiles) -> Result<CertifiedKey, TlsError> {
    let file_error = |path: &Path, reason: String| TlsError::File {
        path: path.to_owned(),
        reason,
    };
    let chain = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| file_error(&files.cert, e.to_string()))?;
    if chain.is_empty() {
        return Err(file_error(
            &files.cert,
            "no PEM certificate in it".to_owned(),
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| file_error(&files.key, e.to_string()))?;
    match CertifiedKey::from_der(chain, key, &provider()) {
        Ok(certified) => Ok(certified),
        Err(rustls::Error::InconsistentKeys(_)) => Err(TlsError::Mismatch {
            cert: files.cert.clone(),
            key: files.key.clone(),
        }),
        Err(e) => Err(file_error(&files.key, e.to_string())),
    }
}

/// The server's TLS side: an acceptor whose certificate can be replaced.
pub(crate) struct Tls {
    acceptor: TlsAcceptor,
    current: Arc<Current>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").finish_non_exhaustive()
    }
}

#[derive(Debug)]
struct Current(ArcSwap<CertifiedKey>);

impl ResolvesServerCert for Current {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.load_full())
    }
}

impl Tls {
    /// TLS with the certificate and key in `files`.
    ///
    /// # Errors
    /// As [`load`].
    pub(crate) fn new(files: &TlsFiles) -> Result<Tls, TlsError> {
        let current = Arc::new(Current(ArcSwap::from_pointee(load(files)?)));
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::File {
                path: files.cert.clone(),
                reason: e.to_string(),
            })?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(&current) as Arc<dyn ResolvesServerCert>);
        // HTTP/1.1 only: WebSocket upgrades need it.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Tls {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            current,
        })
    }

    /// Reads the files again; new connections get the new certificate. On failure the old one
    /// stays.
    ///
    /// # Errors
    /// As [`load`].
    pub(crate) fn reload(&self, files: &TlsFiles) -> Result<(), TlsError> {
        self.current.0.store(Arc::new(load(files)?));
        Ok(())
    }

    pub(crate) fn acceptor(&self) -> &TlsAcceptor {
        &self.acceptor
    }
}

/// A self-signed certificate for `hosts` (names or IP addresses), as PEM: `(cert, key)`.
///
/// # Errors
/// When a host is neither a DNS name nor an IP address.
pub fn self_signed(hosts: &[String]) -> Result<(String, String), rcgen::Error> {
    let certified = rcgen::generate_simple_self_signed(hosts.to_vec())?;
    Ok((certified.cert.pem(), certified.key_pair.serialize_pem()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_pair(dir: &Path, name: &str, hosts: &[&str]) -> TlsFiles {
        let hosts: Vec<String> = hosts.iter().map(|h| (*h).to_owned()).collect();
        let (cert, key) = self_signed(&hosts).unwrap();
        let files = TlsFiles {
            cert: dir.join(format!("{name}.crt")),
            key: dir.join(format!("{name}.key")),
        };
        std::fs::write(&files.cert, cert).unwrap();
        std::fs::write(&files.key, key).unwrap();
        files
    }

    #[test]
    fn a_pair_loads_and_mismatches_and_garbage_name_their_file() {
        let dir = tempfile::tempdir().unwrap();
        let one = write_pair(dir.path(), "one", &["localhost"]);
        let two = write_pair(dir.path(), "two", &["127.0.0.1"]);
        assert!(load(&one).is_ok());

        let crossed = TlsFiles {
            cert: one.cert.clone(),
            key: two.key.clone(),
        };
        let err = load(&crossed).unwrap_err().to_string();
        assert!(err.contains("two.key") && err.contains("one.crt"), "{err}");

        std::fs::write(dir.path().join("empty.crt"), "not a certificate").unwrap();
        let empty = TlsFiles {
            cert: dir.path().join("empty.crt"),
            key: one.key.clone(),
        };
        assert!(load(&empty).unwrap_err().to_string().contains("empty.crt"));

        let missing = TlsFiles {
            cert: dir.path().join("missing.crt"),
            key: one.key,
        };
        assert!(
            load(&missing)
                .unwrap_err()
                .to_string()
                .contains("missing.crt")
        );
    }

    #[test]
    fn a_bad_reload_keeps_the_old_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let one = write_pair(dir.path(), "one", &["localhost"]);
        let tls = Tls::new(&one).unwrap();
        let before = tls.current.0.load_full();
        std::fs::write(&one.cert, "garbage").unwrap();
        assert!(tls.reload(&one).is_err());
        assert!(Arc::ptr_eq(&before, &tls.current.0.load_full()));
        let two = write_pair(dir.path(), "two", &["localhost"]);
        tls.reload(&two).unwrap();
        assert!(!Arc::ptr_eq(&before, &tls.current.0.load_full()));
    }
}
