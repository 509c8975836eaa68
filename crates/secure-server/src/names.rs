//! Usernames people can trust: what shape a name must have, and the key names are compared by.
//!
//! Two names that look alike must not both be in the room, or one person can pass for another
//! (`alice` and `аlice` with a Cyrillic `а`, `ａｌｉｃｅ`, `alice` with an invisible mark after
//! it). Unicode's security mechanisms for identifiers (UTS #39) decide both questions, with the
//! tables of the `unicode-security` crate:
//!
//! - **The keys** ([`keys`]): the confusable skeleton of the name's NFKC case-folded form
//!   ([`key`], so that `Alice` and `ALICE` share it), and the skeleton taken before case
//!   folding (so that capitals that pass for other scripts' capitals, `НОМЕ` in Cyrillic for
//!   `HOME`, or `aIice` with a capital `I` for `alice`, share one too). Names that share a key
//!   look alike ([`look_alike`]), and only one of them may be taken. Names are reserved, found
//!   for `kick`, `ban` and `who`, and unbanned by their keys.
//! - **The shape** ([`check`]): no control, format, private-use, unassigned or default-ignorable
//!   code point (zero-width characters, variation selectors, bidirectional controls, Hangul
//!   fillers), no space but U+0020, no combining mark at the start; every letter, mark and digit
//!   must be one UTS #39 allows in identifiers (so no fullwidth, mathematical or small-capital
//!   look-alikes of Latin letters), and the letters must not mix scripts beyond the "moderately
//!   restrictive" level (a name in one script, Latin with digits, or CJK with Latin is fine;
//!   Latin with Cyrillic or Greek is not).
//! - **The bot prefix** ([`is_reserved`]): a user's name may not start with anything whose keys
//!   start as `[BOT]`'s do (`[B0T]`, `［BOT］`, `[BОT]` with a Cyrillic `О`, `[ВОТ]` all in
//!   Cyrillic).
//!
//! Punctuation is allowed as it is (`x_y`); symbols only when they are ASCII or emoji (`bob🎉`),
//! since others may render as nothing (the blank Braille pattern, a null notehead, the object
//! replacement character).

use unicode_normalization::UnicodeNormalization;
use unicode_properties::{GeneralCategoryGroup, UnicodeEmoji, UnicodeGeneralCategory};
use unicode_security::general_security_profile::IdentifierType;
use unicode_security::{GeneralSecurityProfile, RestrictionLevel, RestrictionLevelDetection};

/// The prefix that marks bots; users may not start their names with it (or with a look-alike).
pub const BOT_PREFIX: &str = "[BOT]";

/// The main key a name is compared by, and found by on other nodes: the UTS #39 skeleton of its
/// NFKC case-folded form, lower-cased (some prototypes are capitals).
pub fn key(name: &str) -> String {
    let folded: String = name
        .nfkc()
        .collect::<String>()
        .to_lowercase()
        .nfkc()
        .collect();
    skeleton_lowered(&folded)
}

/// Every key of a name, the main one first: names that share any key look alike.
pub fn keys(name: &str) -> Vec<String> {
    let main = key(name);
    // The skeleton before case folding: a capital's confusables are capitals (Cyrillic `В` is
    // Latin `B`, capital `I` is `l`), which folding first would lose.
    let cased = skeleton_lowered(&name.nfkc().collect::<String>());
    if cased == main {
        vec![main]
    } else {
        vec![main, cased]
    }
}

/// Whether names `a` and `b` look alike: they share a key.
pub fn look_alike(a: &str, b: &str) -> bool {
    let b = keys(b);
    keys(a).iter().any(|key| b.contains(key))
}

fn skeleton_lowered(text: &str) -> String {
    unicode_security::skeleton(text)
        .collect::<String>()
        .to_lowercase()
}

/// Whether `name` is well-formed (see the module's documentation): not blank, no space at
/// either end, no invisible or control characters, no look-alike letters, no mixed scripts.
pub fn check(name: &str) -> bool {
    if name.trim().is_empty() || name.trim() != name {
        return false;
    }
    let mut letters = String::new();
    for (index, c) in name.chars().enumerate() {
        if c == ' ' {
            continue;
        }
        if c.identifier_type() == Some(IdentifierType::Default_Ignorable) {
            return false;
        }
        match c.general_category_group() {
            // Controls, format characters, surrogates, private use, unassigned; and every
            // space, line or paragraph separator but U+0020.
            GeneralCategoryGroup::Other | GeneralCategoryGroup::Separator => return false,
            group @ (GeneralCategoryGroup::Letter
            | GeneralCategoryGroup::Mark
            | GeneralCategoryGroup::Number) => {
                if (index == 0 && group == GeneralCategoryGroup::Mark) || !c.identifier_allowed() {
                    return false;
                }
                letters.push(c);
            }
            GeneralCategoryGroup::Punctuation => {}
            // Symbols that are not emoji may render as nothing (a blank Braille pattern, a
            // null notehead, the object replacement character).
            GeneralCategoryGroup::Symbol if c.is_ascii() || c.is_emoji_char() => {}
            GeneralCategoryGroup::Symbol => return false,
        }
    }
    letters.as_str().detect_restriction_level() <= RestrictionLevel::ModeratelyRestrictive
}

/// Whether a user's `name` passes for a bot's: one of its keys starts as `[BOT]`'s does.
pub fn is_reserved(name: &str) -> bool {
    let prefixes = keys(BOT_PREFIX);
    keys(name).iter().any(|key| {
        prefixes
            .iter()
            .any(|prefix| key.starts_with(prefix.as_str()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each of these passed for `alice` (or a bot) in the room, or for nobody at all.
    const LOOK_ALIKES: &[&str] = &[
        "alice\u{fe0f}",
        "\u{0430}lice",
        "ａｌｉｃｅ",
        "𝐚𝐥𝐢𝐜𝐞",
        "ᴀlice",
        "ali\u{600}ce",
        "alice\u{1bca0}",
        "\u{2800}",
        "al\u{200b}ice",
        "\u{202e}ecila",
        "alice\u{e0041}",
        "\u{3164}",
        "a\u{a0}lice",
        "\u{3000}alice",
        "alic\u{0435}",
        "\u{300}alice",
        "\u{1d159}",
        "\u{fffc}x",
        "\u{1d159}[BOT] echo",
    ];

    #[test]
    fn look_alikes_are_refused_or_collide() {
        for name in LOOK_ALIKES {
            assert!(
                !check(name) || key(name) == key("alice"),
                "{name:?} is well-formed and does not collide with alice"
            );
            assert!(!check(name), "{name:?} is refused outright");
        }
    }

    #[test]
    fn real_names_in_many_scripts_are_fine() {
        for name in [
            "alice",
            "José",
            "山田",
            "Ωμέγα",
            "Дмитрий",
            "two words",
            "x_y-z.1",
            "tanaka田中",
            "bob🎉",
            "👍🏽",
            "ß",
            "İstanbul",
        ] {
            assert!(check(name), "{name:?}");
        }
    }

    #[test]
    fn keys_fold_case_width_and_confusables() {
        let alice = key("alice");
        for name in [
            "ALICE",
            "Alice",
            "ａｌｉｃｅ",
            "𝐚𝐥𝐢𝐜𝐞",
            "\u{0430}lice",
            "a1ice",
        ] {
            assert_eq!(key(name), alice, "{name:?}");
        }
        assert_eq!(key("José"), key("Jose\u{301}"), "composed or not");
        assert_ne!(key("José"), key("Jose"));
        assert_ne!(key("bob"), alice);
    }

    #[test]
    fn capitals_that_pass_for_other_scripts_capitals_share_a_key() {
        for (a, b) in [
            ("HOME", "\u{041d}\u{041e}\u{041c}\u{0415}"),
            ("alice", "aIice"),
            ("BOB", "\u{0412}\u{041e}\u{0412}"),
            ("KATE", "\u{039a}\u{0391}\u{03a4}\u{0395}"),
            ("bill", "biII"),
            ("Alice", "aLICE"),
        ] {
            assert!(look_alike(a, b), "{a:?} and {b:?}");
        }
        assert!(!look_alike("alice", "bob"));
    }

    #[test]
    fn the_bot_prefix_and_its_look_alikes_are_reserved() {
        for name in [
            "[BOT] echo",
            "[bot]x",
            "[B0T] echo",
            "［BOT］ echo",
            "[B\u{041e}T] echo",
            "[\u{0412}\u{041e}\u{0422}] \u{0435}\u{0441}\u{04bb}\u{043e}",
            "[\u{0392}\u{039f}\u{03a4}] 42",
            "[BOT]",
        ] {
            assert!(is_reserved(name), "{name:?}");
        }
        assert!(!check("\u{300}[BOT] echo"), "a leading combining mark");
        assert!(!is_reserved("BOT echo"));
        assert!(!is_reserved("[bat] x"));
    }
}
