//! From the command line to a logged-in [`Client`]: asking for what is missing, connecting,
//! and SAUTH2's link-and-token step.

use std::io::{IsTerminal, Write};

use clichat_client::{Client, ConnectOptions, Connection, LoginStep, ServerAddress, connect_with};
use crossterm::style::Stylize;

use crate::format::{closed_text, explain_refusal};
use crate::prompt::{NoAnswer, ask};
use crate::{Args, End};

/// How to log in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    /// A Secure Server: `auth` with this generic token, then the token page (SAUTH2).
    Secure(String),
    /// A plain CLIChat server: `auth` without a token.
    Insecure,
    /// `botauth` with this bot token.
    Bot(String),
}

/// Everything needed to log in.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The username, or the bot's name.
    pub name: String,
    /// Where the server is.
    pub address: ServerAddress,
    /// How to log in.
    pub credentials: Credentials,
    /// Certificates to trust, for wss://.
    pub options: ConnectOptions,
}

/// Takes what the command line gave and asks for the rest, in the original client's order:
/// username, server, secure Y/N, token.
///
/// # Errors
/// [`End::Usage`] for an address given on the command line that cannot be parsed,
/// [`End::Interrupted`] or [`End::Failed`] when a question gets no answer.
pub async fn settings(args: &Args) -> Result<Settings, End> {
    let name = match &args.username {
        Some(name) => name.clone(),
        None if args.bot => ask_nonblank("Bot name: ", "the bot name", false).await?,
        None => ask_nonblank("Username: ", "the username", false).await?,
    };
    let address = match &args.address {
        Some(text) => ServerAddress::parse(text).map_err(|e| End::Usage(e.to_string()))?,
        None => ask_address().await?,
    };
    let credentials = if args.bot {
        Credentials::Bot(token(args, "Bot token (hidden): ", "the bot token").await?)
    } else if args.insecure {
        Credentials::Insecure
    } else if args.secure || args.token.is_some() || ask_secure().await? {
        Credentials::Secure(token(args, "Token (hidden): ", "the token").await?)
    } else {
        Credentials::Insecure
    };
    let options = match &args.trust_cert {
        Some(path) => ConnectOptions::default()
            .trust_pem_file(path)
            .map_err(|e| End::Usage(e.to_string()))?,
        None => ConnectOptions::default(),
    };
    Ok(Settings {
        name,
        address,
        credentials,
        options,
    })
}

/// Connects and logs in. On a Secure Server the link is shown and the person pastes the token
/// the page shows; this client never fetches the page itself, since a person doing that step is
/// the point of SAUTH2.
///
/// # Errors
/// [`End::Refused`] with the server's words explained, [`End::Closed`], [`End::Failed`] when the
/// server cannot be reached, or [`End::Interrupted`] at the token prompt.
pub async fn login(settings: &Settings) -> Result<Client, End> {
    let connection: Connection = connect_with(&settings.address, &settings.options)
        .await
        .map_err(|e| End::Failed(anyhow::anyhow!("{e} ({})", settings.address.as_str())))?;
    let name = settings.name.as_str();
    let step = match &settings.credentials {
        Credentials::Bot(token) => {
            return connection
                .login_bot(name, token)
                .await
                .map_err(|e| login_error(e, &settings.credentials));
        }
        Credentials::Secure(token) => connection.login(name, Some(token)).await,
        Credentials::Insecure => connection.login(name, None).await,
    }
    .map_err(|e| login_error(e, &settings.credentials))?;
    match step {
        LoginStep::Joined(client) => Ok(client),
        LoginStep::TokenNeeded(pending) => {
            show_link(pending.link());
            let temporary = ask_nonblank(
                "Token from the page (hidden): ",
                "the token from the page",
                true,
            )
            .await?;
            pending
                .token_auth(&temporary)
                .await
                .map_err(|e| login_error(e, &settings.credentials))
        }
    }
}

/// Shows the token page's link on stderr, on a line of its own so it can be clicked or copied
/// (and, in line mode, found by a script: the first line starting with `http`).
fn show_link(link: &str) {
    let link = crate::format::sanitize(link);
    let mut stderr = std::io::stderr();
    let styled = std::io::stderr().is_terminal();
    let heading = "This is a Secure Server: a person must open this link in a browser";
    let _ = if styled {
        writeln!(
            stderr,
            "\n{}\n\n{}\n\nThe page shows a temporary token. Copy it and paste it here.",
            heading.bold(),
            link.as_str().bold().underlined()
        )
    } else {
        writeln!(
            stderr,
            "{heading}:\n{link}\nThe page shows a temporary token: send it as the next line."
        )
    };
}

fn login_error(error: clichat_client::Error, credentials: &Credentials) -> End {
    use clichat_client::Error;
    match error {
        Error::Refused(reason) => {
            let mut text = explain_refusal(&reason);
            if *credentials == Credentials::Insecure
                && reason == clichat_client::refusal::TOKEN_REFUSED
            {
                text.push_str("; this looks like a Secure Server: leave out --insecure");
            }
            End::Refused(text)
        }
        Error::Closed(closed) => End::Closed(closed_text(&closed)),
        other => End::Failed(other.into()),
    }
}

async fn token(args: &Args, question: &str, what: &str) -> Result<String, End> {
    match &args.token {
        Some(token) => Ok(token.clone()),
        None => ask_nonblank(question, what, true).await,
    }
}

async fn ask_nonblank(question: &str, what: &str, hidden: bool) -> Result<String, End> {
    loop {
        let answer = ask(question, what, hidden).await.map_err(no_answer)?;
        let answer = answer.trim();
        if !answer.is_empty() {
            return Ok(answer.to_owned());
        }
    }
}

async fn ask_address() -> Result<ServerAddress, End> {
    loop {
        let text = ask_nonblank(
            "Server (host, host:port or ws:// URL; port 70 if none): ",
            "the server",
            false,
        )
        .await?;
        match ServerAddress::parse(&text) {
            Ok(address) => return Ok(address),
            Err(e) => eprintln!("{e}"),
        }
    }
}

async fn ask_secure() -> Result<bool, End> {
    loop {
        let answer = ask(
            "Secure Server (a token, and a link to open)? [Y/n]: ",
            "Y or N",
            false,
        )
        .await
        .map_err(no_answer)?;
        match answer.trim().to_lowercase().as_str() {
            "" | "y" | "yes" => return Ok(true),
            "n" | "no" => return Ok(false),
            _ => eprintln!("Please answer Y or N."),
        }
    }
}

fn no_answer(error: NoAnswer) -> End {
    match error {
        NoAnswer::Interrupted => End::Interrupted,
        other => End::Failed(other.into()),
    }
}
