//! From the command line to a logged-in [`Client`]: asking for what is missing, the server's
//! announced limits, connecting, and SAUTH2's link-and-token step.
//!
//! With a person at the terminal (full screen), a slip is asked about again instead of ending
//! the run: a wrong generic token asks for the token, a wrong or late token from the page
//! starts a fresh login with a new link (same name, same generic token), a name the server
//! refuses (too long, not allowed, taken, filtered) asks for the name, and a server that cannot
//! be reached asks for the server. Scripts (line mode) get what they always got: the first
//! refusal ends the run with exit code 3, an unreachable server with 1.

use std::io::{IsTerminal, Write};

use clichat_client::{
    Client, ConnectOptions, Error, LoginStep, ServerAddress, connect_with, message_length, refusal,
};
use crossterm::style::Stylize;

use crate::format::{closed_text, connect_failure, explain_refusal, login_refusal};
use crate::prompt::{NoAnswer, ask};
use crate::server_info::ServerInfo;
use crate::{Args, End};

/// How to log in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    /// A Secure Server: `auth` with this generic token, then the token page (SAUTH2).
    Secure(String),
    /// A plain CLIChat server, or an open room: `auth` without a token.
    Insecure,
    /// `botauth` with this bot token.
    Bot(String),
}

/// A login that worked.
#[derive(Debug)]
pub struct LoggedIn {
    /// The chat.
    pub client: Client,
    /// Where.
    pub address: ServerAddress,
    /// What the server announced of itself (or the defaults).
    pub info: ServerInfo,
}

/// What a refusal at login lets a person fix.
enum Fix {
    /// Another name.
    Name,
    /// The generic (or bot) token.
    Token,
    /// A fresh login: a new link and the token from its page.
    Page,
    /// Nothing: the run ends.
    Nothing,
}

impl Fix {
    fn of(reason: &str) -> Fix {
        match reason {
            refusal::USERNAME_TOO_LONG
            | refusal::INVALID_USERNAME
            | refusal::USERNAME_TAKEN
            | refusal::PROFANITY => Fix::Name,
            refusal::TOKEN_REFUSED | refusal::BOT_REFUSED => Fix::Token,
            refusal::TEMP_TOKEN_REFUSED | refusal::TOKENAUTH_TIMEOUT => Fix::Page,
            _ => Fix::Nothing,
        }
    }
}

/// The login: what the command line gave, the rest asked for in the original client's order
/// (username, server, secure Y/N, token), then connecting and logging in. `forgiving` (a
/// person at a terminal) asks again after a slip; otherwise the first failure ends the run.
///
/// On a Secure Server the link is shown and the person pastes the token the page shows; this
/// client never fetches the page itself, since a person doing that step is the point of SAUTH2.
///
/// # Errors
/// [`End::Usage`] for a bad address or certificate file on the command line,
/// [`End::Interrupted`] or [`End::Failed`] when a question gets no answer, [`End::Failed`]
/// when the server cannot be reached, [`End::Refused`] with the refusal explained,
/// [`End::Closed`] when the server closes the connection during the login.
pub async fn login(args: &Args, forgiving: bool) -> Result<LoggedIn, End> {
    let options = match &args.trust_cert {
        Some(path) => ConnectOptions::default()
            .trust_pem_file(path)
            .map_err(|e| End::Usage(e.to_string()))?,
        None => ConnectOptions::default(),
    };
    let mut attempt = Attempt {
        args,
        forgiving,
        options,
        fallback: ServerInfo::fallback(args.max_length),
        info: ServerInfo::fallback(args.max_length),
        name: String::new(),
    };
    // An address on the command line is asked about first, so that the question for the name
    // can say the server's own limit.
    let mut address = match &args.address {
        Some(text) => {
            let address = ServerAddress::parse(text).map_err(|e| End::Usage(e.to_string()))?;
            attempt.learn(&address).await;
            Some(address)
        }
        None => None,
    };
    attempt.name = match &args.username {
        Some(name) => name.clone(),
        None => attempt.ask_name().await?,
    };
    let mut address = match address.take() {
        Some(address) => address,
        None => {
            let address = ask_address().await?;
            attempt.learn(&address).await;
            address
        }
    };
    attempt.check_name().await?;
    let mut credentials = attempt.credentials().await?;
    loop {
        let connection = match connect_with(&address, &attempt.options).await {
            Ok(connection) => connection,
            Err(error) => {
                let text = connect_failure(&address.authority(), &error, args.verbose);
                if !forgiving {
                    return Err(End::Failed(anyhow::anyhow!(text)));
                }
                say(&format!("{}.", capitalized(&text)));
                address = ask_address().await?;
                attempt.learn(&address).await;
                attempt.check_name().await?;
                continue;
            }
        };
        let name = attempt.name.as_str();
        let step = match &credentials {
            Credentials::Bot(token) => connection
                .login_bot(name, token)
                .await
                .map(LoginStep::Joined),
            Credentials::Secure(token) => connection.login(name, Some(token)).await,
            Credentials::Insecure => connection.login(name, None).await,
        };
        let refused = match step {
            Ok(LoginStep::Joined(client)) => return Ok(attempt.done(client, address)),
            Ok(LoginStep::TokenNeeded(pending)) => {
                show_link(pending.link());
                let temporary = ask_nonblank(
                    "Token from the page (hidden): ",
                    "the token from the page",
                    true,
                )
                .await?;
                match pending.token_auth(&temporary).await {
                    Ok(client) => return Ok(attempt.done(client, address)),
                    Err(error) => error,
                }
            }
            Err(error) => error,
        };
        let Error::Refused(reason) = refused else {
            return Err(login_error(refused, &address, args.verbose));
        };
        if !forgiving {
            return Err(End::Refused(script_refusal(&reason, &credentials)));
        }
        let sentence = login_refusal(&reason, attempt.info.max_username_length, args.verbose);
        match Fix::of(&reason) {
            Fix::Name => {
                say(&sentence);
                attempt.name = attempt.ask_name().await?;
                attempt.check_name().await?;
            }
            Fix::Token => {
                match credentials {
                    Credentials::Insecure => {
                        say("This is a Secure Server: logging in takes a token.");
                    }
                    _ => say(&sentence),
                }
                credentials = match credentials {
                    Credentials::Bot(_) => Credentials::Bot(
                        ask_nonblank("Bot token (hidden): ", "the bot token", true).await?,
                    ),
                    _ => Credentials::Secure(
                        ask_nonblank("Token (hidden): ", "the token", true).await?,
                    ),
                };
            }
            Fix::Page => {
                say(&format!(
                    "{sentence} Starting again, with a new link (the old one no longer works)."
                ));
            }
            Fix::Nothing => return Err(End::Refused(sentence)),
        }
    }
}

/// What one login run knows so far.
struct Attempt<'a> {
    args: &'a Args,
    forgiving: bool,
    options: ConnectOptions,
    /// What is assumed of a server that announces nothing.
    fallback: ServerInfo,
    /// What the server announced (or the fallback).
    info: ServerInfo,
    name: String,
}

impl Attempt<'_> {
    /// Reads what the server at `address` announces.
    async fn learn(&mut self, address: &ServerAddress) {
        self.info =
            ServerInfo::fetch(address, self.args.trust_cert.as_deref(), self.fallback).await;
    }

    /// Asks for the name (a bot's, with `--bot`), saying how long it may be.
    async fn ask_name(&self) -> Result<String, End> {
        if self.args.bot {
            return ask_nonblank("Bot name: ", "the bot name", false).await;
        }
        let question = format!(
            "Username (at most {} characters): ",
            self.info.max_username_length
        );
        ask_nonblank(&question, "the username", false).await
    }

    /// Refuses a username longer than the server takes, as the server would; a person is asked
    /// for another.
    async fn check_name(&mut self) -> Result<(), End> {
        let max = self.info.max_username_length;
        while !self.args.bot && message_length(&self.name) > max {
            if !self.forgiving {
                return Err(End::Refused(explain_refusal(refusal::USERNAME_TOO_LONG)));
            }
            say(&login_refusal(refusal::USERNAME_TOO_LONG, max, false));
            self.name = self.ask_name().await?;
        }
        Ok(())
    }

    /// How to log in: from the flags, else from what the server announced (a person is not
    /// asked what the server has said), else asked.
    async fn credentials(&self) -> Result<Credentials, End> {
        let args = self.args;
        if args.bot {
            return Ok(Credentials::Bot(
                token(args, "Bot token (hidden): ", "the bot token").await?,
            ));
        }
        if args.insecure {
            return Ok(Credentials::Insecure);
        }
        let secure = if args.secure || args.token.is_some() {
            true
        } else {
            match self.info.sauth2 {
                // Scripts answer the question whatever the server says: keep asking it.
                Some(sauth2) if self.forgiving => sauth2,
                _ => ask_secure().await?,
            }
        };
        Ok(if secure {
            Credentials::Secure(token(args, "Token (hidden): ", "the token").await?)
        } else {
            Credentials::Insecure
        })
    }

    fn done(self, client: Client, address: ServerAddress) -> LoggedIn {
        LoggedIn {
            client,
            address,
            info: self.info,
        }
    }
}

/// A line for the person at the prompts, on stderr with them.
fn say(text: &str) {
    let mut stderr = std::io::stderr();
    let _ = if stderr.is_terminal() {
        writeln!(stderr, "{}", text.bold())
    } else {
        writeln!(stderr, "{text}")
    };
}

/// `text` with its first letter a capital, to stand as a sentence.
fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
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

/// A refusal as line mode has always reported it: the server's words and what they mean.
fn script_refusal(reason: &str, credentials: &Credentials) -> String {
    let mut text = explain_refusal(reason);
    if *credentials == Credentials::Insecure && reason == refusal::TOKEN_REFUSED {
        text.push_str("; this looks like a Secure Server: leave out --insecure");
    }
    text
}

/// Any other failure of the login.
fn login_error(error: Error, address: &ServerAddress, verbose: bool) -> End {
    match error {
        Error::Closed(closed) => End::Closed(closed_text(&closed, verbose)),
        other => End::Failed(anyhow::anyhow!(connect_failure(
            &address.authority(),
            &other,
            verbose
        ))),
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
