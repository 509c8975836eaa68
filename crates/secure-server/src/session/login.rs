//! Login: the first `auth` or `botauth` within the time allowed, then SAUTH2 (username rules,
//! the generic token, then the temporary token from the token page), an open room's login (the
//! username rules only, with `"SAUTH2": false`), or a bot's name and token.
//! Whatever a login claims in the hub (name, token hold, page) is a lease it gives back on
//! every way out.

use std::sync::Arc;

use clichat_proto::{ClientFrame, ServerFrame, refusal};
use tokio::time::timeout;
use tracing::debug;

use super::caps::Caps;
use super::{Exit, Frame, LOG_TARGET, Session, refuse};
use crate::auth::Grant;
use crate::hub::{Kind, Leases, PageLease, Profile, Refused, ResumeRefused, Resumed};
use crate::names;
use crate::secrets;

/// The frame that starts a login.
enum LoginFrame {
    User {
        username: Option<String>,
        token: Option<String>,
    },
    Bot {
        name: Option<String>,
        token: Option<String>,
    },
    Resume {
        token: Option<String>,
        since: Option<u64>,
    },
}

/// How a client that passed login comes into the room.
pub(super) enum Entry {
    /// Joining afresh.
    Join(LoggedIn),
    /// Taking back a held session.
    Resume(Resumed),
}

/// A client that passed login, with what it holds until it leaves.
pub(super) struct LoggedIn {
    /// The display name (`[BOT] name` for bots).
    pub(super) name: String,
    pub(super) leases: Leases,
    pub(super) profile: Profile,
}

/// A user login waiting for `tokenauth`. Fields drop in declaration order: the name and token
/// are free before the page turns 410.
struct Pending {
    leases: Leases,
    page: PageLease,
}

impl Session {
    /// Waits for `auth` or `botauth` (other frames are ignored until one comes, for at most
    /// `limits.auth_timeout_secs`), then logs in, if the address has login attempts left.
    pub(super) async fn login(&mut self) -> Result<Entry, Exit> {
        let settings = self.server.settings();
        let first = timeout(settings.config.auth_timeout(), self.first_login_frame())
            .await
            .map_err(|_elapsed| refuse(refusal::AUTH_TIMEOUT))??;
        if !settings.rates.login_attempt(self.peer.ip()) {
            return Err(refuse(refusal::TOO_MANY_LOGINS));
        }
        drop(settings);
        let logged_in = match first {
            LoginFrame::User { username, .. } if !self.server.settings().config.sauth2 => {
                self.open_login(username).await
            }
            LoginFrame::User { username, token } => self.user_login(username, token).await,
            LoginFrame::Bot { name, token } => self.bot_login(name, token).await,
            LoginFrame::Resume { token, since } => return self.resume(token, since),
        };
        logged_in.map(Entry::Join)
    }

    /// A wrong token (generic, bot or temporary): charged extra, so that guessing is slow.
    fn wrong_token(&self, reason: &'static str) -> Exit {
        self.server.settings().rates.login_failed(self.peer.ip());
        refuse(reason)
    }

    /// The first `auth` or `botauth` frame; everything before it is ignored, but for a `caps`
    /// as the very first frame, which is answered.
    async fn first_login_frame(&mut self) -> Result<LoginFrame, Exit> {
        let mut first = true;
        loop {
            let Frame::Text(text) = self.next_frame().await? else {
                debug!(target: LOG_TARGET, peer = %self.peer, "ignored binary frame before login");
                first = false;
                continue;
            };
            let frame = ClientFrame::decode(&text);
            if let (true, Ok(ClientFrame::Caps(asked))) = (first, &frame) {
                self.caps = Caps::grant(asked, self.server.hub.keeps_history());
                self.send(&ServerFrame::Caps(self.caps.names())).await?;
                first = false;
                continue;
            }
            first = false;
            match frame {
                Ok(ClientFrame::Auth { username, token }) => {
                    return Ok(LoginFrame::User { username, token });
                }
                Ok(ClientFrame::BotAuth { name, token }) => {
                    return Ok(LoginFrame::Bot { name, token });
                }
                Ok(ClientFrame::Resume { token, since }) => {
                    return Ok(LoginFrame::Resume { token, since });
                }
                Ok(other) => {
                    debug!(
                        target: LOG_TARGET,
                        peer = %self.peer,
                        kind = other.kind(),
                        "ignored frame before login"
                    )
                }
                Err(error) => {
                    debug!(target: LOG_TARGET, peer = %self.peer, ?error, "ignored malformed frame")
                }
            }
        }
    }

    /// SAUTH2: username rules, generic token, then the temporary token from the page.
    ///
    /// The token is checked before the name is looked up, so that a client without a valid
    /// token learns nothing of who is online or mid-login.
    async fn user_login(
        &mut self,
        username: Option<String>,
        token: Option<String>,
    ) -> Result<LoggedIn, Exit> {
        let server = Arc::clone(&self.server);
        let settings = server.settings();
        let name = settings.rules.check_username(username).map_err(refuse)?;
        let Some(grant) = token.and_then(|t| settings.tokens.check_user(&t)) else {
            return Err(self.wrong_token(refusal::TOKEN_REFUSED));
        };
        self.check_admitted(&grant)?;
        let name_lease = server
            .hub
            .reserve_name(&name)
            .await
            .map_err(|e| refused(e, refusal::USERNAME_TAKEN))?;
        // A good token in use elsewhere (1UPT) is refused with the same text, but is no guess.
        let hold = server
            .hub
            .hold_token(grant.key)
            .await
            .map_err(|e| refused(e, refusal::TOKEN_REFUSED))?;
        let tokenauth_timeout = settings.config.tokenauth_timeout();
        drop(settings);

        // Field order matters: the leases drop before the page, on every path out of here,
        // so that whoever sees the page closed (410) may log in again at once.
        let leases = Leases {
            name: name_lease,
            token: Some(hold),
        };
        let page = server
            .hub
            .open_page(secrets::generate_temp_token(), tokenauth_timeout)
            .await
            .map_err(|e| refused(e, refusal::CLUSTER_UNAVAILABLE))?;
        let pending = Pending { leases, page };
        // Subscribed before the page is shown: a ban or revocation from now on wakes the wait.
        let mut expulsions = server.expulsions.subscribe();
        let link = format!("{}/{}", self.link_base, pending.page.id());
        self.send(&ServerFrame::AuthMsg(link)).await?;

        // The very next data frame decides, and the page dies whatever it is. Meanwhile a ban
        // or revocation of the token ends the wait at once.
        let deadline = tokio::time::Instant::now() + tokenauth_timeout;
        let frame = loop {
            tokio::select! {
                frame = tokio::time::timeout_at(deadline, self.next_frame()) => {
                    break frame.map_err(|_elapsed| refuse(refusal::TOKENAUTH_TIMEOUT))??;
                }
                Ok(()) = expulsions.changed() => self.check_admitted(&grant)?,
            }
        };
        let accepted = match &frame {
            Frame::Text(text) => matches!(
                ClientFrame::decode(text),
                Ok(ClientFrame::TokenAuth(Some(presented))) if secrets::secret_eq(&presented, pending.page.token())
            ),
            Frame::Binary => false,
        };
        if !accepted {
            return Err(self.wrong_token(refusal::TEMP_TOKEN_REFUSED));
        }
        let Pending { leases, page } = pending;
        drop(page);
        // Checked again at the join, under the room's lock (see `chat`).
        self.check_admitted(&grant)?;
        Ok(LoggedIn {
            name,
            leases,
            profile: self.profile(Kind::User, grant),
        })
    }

    /// An open room's login, as the plain CLIChat server's: the username rules, and the name
    /// free and not banned (nor the address); any token is ignored, and no page is made.
    async fn open_login(&mut self, username: Option<String>) -> Result<LoggedIn, Exit> {
        let name = self
            .server
            .settings()
            .rules
            .check_username(username)
            .map_err(refuse)?;
        let profile = Profile {
            kind: Kind::User,
            peer: Some(self.peer),
            ..Profile::default()
        };
        self.server.admits(&name, &profile).map_err(refuse)?;
        let lease = self.server.hub.reserve_name(&name).await;
        let lease = lease.map_err(|e| refused(e, refusal::USERNAME_TAKEN))?;
        Ok(LoggedIn {
            name,
            leases: Leases {
                name: lease,
                token: None,
            },
            profile,
        })
    }

    /// Bot login: the name and token must match the owner's list.
    async fn bot_login(
        &mut self,
        name: Option<String>,
        token: Option<String>,
    ) -> Result<LoggedIn, Exit> {
        let (Some(name), Some(token)) = (name, token) else {
            return Err(self.wrong_token(refusal::BOT_REFUSED));
        };
        let Some(grant) = self.server.settings().tokens.check_bot(&name, &token) else {
            return Err(self.wrong_token(refusal::BOT_REFUSED));
        };
        self.check_admitted(&grant)?;
        let display = format!("{} {name}", names::BOT_PREFIX);
        let name = self.server.hub.reserve_name(&display).await;
        let name = name.map_err(|e| refused(e, refusal::USERNAME_TAKEN))?;
        Ok(LoggedIn {
            name: display,
            leases: Leases { name, token: None },
            profile: self.profile(Kind::Bot, grant),
        })
    }

    /// A resume: the session held under the token, taken back with what it missed after
    /// `since`. Refused for a client that did not ask for `resume`, and for an unknown, used or
    /// expired token (charged as a wrong token), or a session whose token was revoked or banned
    /// meanwhile.
    fn resume(&mut self, token: Option<String>, since: Option<u64>) -> Result<Entry, Exit> {
        let Some(token) = token.filter(|_| self.caps.resume) else {
            return Err(self.wrong_token(refusal::RESUME_REFUSED));
        };
        let server = Arc::clone(&self.server);
        let admit = |name: &str, profile: &Profile| server.admits(name, profile);
        let key = crate::auth::TokenKey::of(&token);
        let history = self.caps.history;
        match self
            .server
            .hub
            .resume(&key, since.unwrap_or(0), history, admit)
        {
            Ok(resumed) => Ok(Entry::Resume(resumed)),
            Err(ResumeRefused::Unknown) => Err(self.wrong_token(refusal::RESUME_REFUSED)),
            Err(ResumeRefused::Refused(reason)) => {
                debug!(target: LOG_TARGET, peer = %self.peer, ?reason, "resume refused");
                Err(refuse(refusal::RESUME_REFUSED))
            }
        }
    }

    /// Refuses a token revoked or banned now (saying until when).
    fn check_admitted(&self, grant: &Grant) -> Result<(), Exit> {
        self.server.admits_token(&grant.key).map_err(refuse)
    }

    fn profile(&self, kind: Kind, grant: Grant) -> Profile {
        Profile {
            kind,
            role: grant.role,
            token: Some(grant.key),
            label: grant.label,
            peer: Some(self.peer),
        }
    }
}

/// A claim the hub refused: `taken` if someone has it, or the cluster's refusal if it could not
/// be asked.
fn refused(refusal: Refused, taken: &'static str) -> Exit {
    match refusal {
        Refused::Taken => refuse(taken),
        Refused::Unavailable(_) => refuse(refusal::CLUSTER_UNAVAILABLE),
    }
}
