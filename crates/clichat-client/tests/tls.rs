//! HTTPS and WSS: a server with a self-signed certificate, and this library trusting it.

use std::path::{Path, PathBuf};

use clichat_client::page::token_from_page;
use clichat_client::{ConnectOptions, Error, Event, LoginStep, ServerAddress, connect_with};
use serde_json::json;
use test_support::{TOKENS, TestServer, WAIT, config_json, eventually};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const TOKEN: &str = TOKENS[0];
const SECOND_TOKEN: &str = TOKENS[1];

/// Writes a self-signed pair for `localhost` as `NAME.crt` and `NAME.key`.
fn certificate(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let (cert, key) = secure_server::tls::self_signed(&["localhost".to_owned()]).unwrap();
    let (cert_path, key_path) = (
        dir.join(format!("{name}.crt")),
        dir.join(format!("{name}.key")),
    );
    std::fs::write(&cert_path, cert).unwrap();
    std::fs::write(&key_path, key).unwrap();
    (cert_path, key_path)
}

/// A TLS server started from a config file in `dir` (the test config, whose `tls` names
/// `server.crt`/`.key`), watching it as the binary does. Dropping it shuts the server down.
async fn start(dir: &Path) -> TestServer {
    let config = config_json(json!({
        "tls": { "cert": "server.crt", "key": "server.key" },
    }));
    let path = dir.join("secureconfig.json");
    std::fs::write(&path, config.to_string()).unwrap();
    TestServer::start_from_file(&path).await
}

fn https_client(trust: &Path) -> reqwest::Client {
    let cert = reqwest::Certificate::from_pem(&std::fs::read(trust).unwrap()).unwrap();
    reqwest::Client::builder()
        .add_root_certificate(cert)
        .build()
        .unwrap()
}

/// A full SAUTH2 login over WSS, the page read over HTTPS, trusting `trust`.
async fn login(
    port: u16,
    name: &str,
    token: &str,
    trust: &Path,
) -> Result<clichat_client::Client, Error> {
    let address = ServerAddress::parse(&format!("wss://localhost:{port}")).unwrap();
    // The classic protocol: the events below are the room's, without history or members.
    let options = ConnectOptions::default()
        .extensions(false)
        .trust_pem_file(trust)?;
    let connection = connect_with(&address, &options).await?;
    let LoginStep::TokenNeeded(pending) = connection.login(name, Some(token)).await? else {
        panic!("a Secure Server asks for the page");
    };
    assert!(
        pending
            .link()
            .starts_with(&format!("https://localhost:{port}/")),
        "{}",
        pending.link()
    );
    let page = https_client(trust)
        .get(pending.link())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let token = token_from_page(&page).expect("the page shows the token");
    pending.token_auth(token).await
}

#[tokio::test]
async fn sauth2_over_https_and_wss_with_a_trusted_self_signed_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = certificate(dir.path(), "server");
    let server = start(dir.path()).await;
    let port = server.addr.port();
    let mut alice = tokio::time::timeout(WAIT, login(port, "alice", TOKEN, &cert))
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(
        alice.next_event().await,
        Some(Event::Joined { .. })
    ));

    // Without trusting it, the certificate is refused.
    let address = ServerAddress::parse(&format!("wss://localhost:{port}")).unwrap();
    let untrusted = connect_with(&address, &ConnectOptions::default()).await;
    assert!(matches!(untrusted, Err(Error::Connect(_))));

    // The certificate is replaced while alice chats: new connections get the new one, alice
    // stays.
    let (new_cert, new_key) = certificate(dir.path(), "next");
    std::fs::rename(&new_key, &key).unwrap();
    std::fs::rename(&new_cert, &cert).unwrap();
    let new_trust = dir.path().join("trust-next.crt");
    std::fs::copy(&cert, &new_trust).unwrap();
    let bob = eventually("new connections getting the new certificate", async || {
        login(port, "bob", SECOND_TOKEN, &new_trust).await
    })
    .await;
    assert_eq!(
        alice.next_event().await,
        Some(Event::Join("bob".into())),
        "the session opened under the old certificate goes on"
    );
    bob.send("over the new certificate").await.unwrap();
    assert_eq!(
        alice.next_event().await,
        Some(Event::Message {
            from: "bob".into(),
            text: "over the new certificate".into()
        })
    );
}

#[tokio::test]
async fn plaintext_on_the_tls_port_is_refused_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    certificate(dir.path(), "server");
    let server = start(dir.path()).await;
    let port = server.addr.port();

    let mut tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    tokio::time::timeout(WAIT, tcp.read_to_string(&mut answer))
        .await
        .expect("an answer and a close, not a hang")
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.ends_with("use https:// or wss://\n"), "{answer}");

    let address = ServerAddress::parse(&format!("ws://localhost:{port}")).unwrap();
    let refused = tokio::time::timeout(WAIT, clichat_client::connect(&address))
        .await
        .expect("a ws:// client is refused at once");
    assert!(matches!(refused, Err(Error::Connect(_))));
}

#[test]
fn a_missing_or_empty_trust_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    for path in [empty, dir.path().join("missing.pem")] {
        let err = ConnectOptions::default()
            .trust_pem_file(&path)
            .unwrap_err()
            .to_string();
        assert!(err.contains(&*path.to_string_lossy()), "{err}");
    }
}
