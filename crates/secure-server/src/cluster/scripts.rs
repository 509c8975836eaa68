//! The Lua scripts that make the cluster's claims and reaping atomic in Redis. Each lives in
//! `lua/` as a file of its own, prefixed with the helpers every script shares
//! (`lua/prelude.lua`), and is loaded once per connection.

/// A Lua script: its text and SHA-1.
pub(super) struct Script {
    pub(super) code: &'static str,
    pub(super) hash: &'static str,
}

pub(super) struct Scripts {
    pub(super) claim: Script,
    pub(super) release: Script,
    pub(super) depart: Script,
    pub(super) heartbeat: Script,
    pub(super) leave: Script,
    pub(super) sync: Script,
    pub(super) open_page: Script,
    pub(super) view_page: Script,
    pub(super) who: Script,
    pub(super) find: Script,
    pub(super) say: Script,
    pub(super) take_held: Script,
    pub(super) raise_seq: Script,
}

impl Scripts {
    pub(super) fn get() -> &'static Scripts {
        static SCRIPTS: std::sync::LazyLock<Scripts> = std::sync::LazyLock::new(|| {
            let make = |body: &str| {
                let prelude = include_str!("lua/prelude.lua");
                let code: &'static str = Box::leak(format!("{prelude}{body}").into_boxed_str());
                let hash: &'static str = Box::leak(
                    redis::Script::new(code)
                        .get_hash()
                        .to_owned()
                        .into_boxed_str(),
                );
                Script { code, hash }
            };
            Scripts {
                claim: make(include_str!("lua/claim.lua")),
                release: make(include_str!("lua/release.lua")),
                depart: make(include_str!("lua/depart.lua")),
                heartbeat: make(include_str!("lua/heartbeat.lua")),
                leave: make(include_str!("lua/leave.lua")),
                sync: make(include_str!("lua/sync.lua")),
                open_page: make(include_str!("lua/open_page.lua")),
                view_page: make(include_str!("lua/view_page.lua")),
                who: make(include_str!("lua/who.lua")),
                find: make(include_str!("lua/find.lua")),
                say: make(include_str!("lua/say.lua")),
                take_held: make(include_str!("lua/take_held.lua")),
                raise_seq: make(include_str!("lua/raise_seq.lua")),
            }
        });
        &SCRIPTS
    }

    pub(super) fn all(&self) -> [&Script; 13] {
        [
            &self.claim,
            &self.release,
            &self.depart,
            &self.heartbeat,
            &self.leave,
            &self.sync,
            &self.open_page,
            &self.view_page,
            &self.who,
            &self.find,
            &self.say,
            &self.take_held,
            &self.raise_seq,
        ]
    }
}
