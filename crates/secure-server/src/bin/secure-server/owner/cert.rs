//! `secure-server cert self-signed`: a certificate and key for trying TLS out.

use std::path::{Path, PathBuf};

use clap::Subcommand;

use super::OwnerError;

/// `secure-server cert ...`.
#[derive(Debug, Subcommand)]
pub enum CertCommand {
    /// Write a self-signed certificate and key, for testing TLS (clients must be told to trust
    /// it; use a certificate from a real authority for a public server)
    SelfSigned {
        /// A name (or IP address) the certificate is for; repeat for several. Default:
        /// localhost.
        #[arg(long = "host", value_name = "NAME")]
        hosts: Vec<String>,
        /// Where to write cert.pem and key.pem.
        #[arg(long, value_name = "DIR", default_value = ".")]
        out_dir: PathBuf,
    },
}

/// Writes `cert.pem` and `key.pem` (new files only, the key readable by its owner alone) and
/// says how to use and trust them.
pub(super) fn self_signed(mut hosts: Vec<String>, dir: &Path) -> Result<(), OwnerError> {
    if hosts.is_empty() {
        hosts.push("localhost".to_owned());
    }
    let (cert, key) = secure_server::tls::self_signed(&hosts)
        .map_err(|e| OwnerError::Certificate(e.to_string()))?;
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    for (path, text) in [(&cert_path, &cert), (&key_path, &key)] {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        options
            .open(path)
            .and_then(|mut file| std::io::Write::write_all(&mut file, text.as_bytes()))
            .map_err(|e| OwnerError::Certificate(format!("{}: {e}", path.display())))?;
    }
    let host = &hosts[0];
    let mut out = std::io::stdout();
    std::io::Write::write_all(
        &mut out,
        format!(
            "Wrote {cert} and {key} for {names}.\n\n\
             Use them in secureconfig.json:\n    \"tls\": {{\"cert\": \"{cert}\", \"key\": \"{key}\"}}\n\n\
             They are self-signed: clients must be told to trust {cert}, e.g.\n    \
             secure-client --trust-cert {cert} wss://{host}:70\n    \
             curl --cacert {cert} https://{host}:70/\n\
             For a public server, use a certificate from a real authority (e.g. Let's Encrypt).\n",
            cert = cert_path.display(),
            key = key_path.display(),
            names = hosts.join(", "),
        )
        .as_bytes(),
    )
    .map_err(|e| OwnerError::Terminal("write to stdout", e))
}
