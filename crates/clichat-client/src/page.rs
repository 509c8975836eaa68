//! Reading the temporary token off a SAUTH2 token page, for tools and tests that play the
//! person's part (load generators, end-to-end tests). A real client never does this: a person
//! opens the page, which is the point of SAUTH2.

/// The temporary token shown on a token page's HTML, from this project's server (a
/// `<textarea id="token">`) or the original Node server (`your token is TOKEN`). `None` when the
/// page shows no token (a used, refused or unknown page).
pub fn token_from_page(html: &str) -> Option<&str> {
    if let Some(field) = html.find("id=\"token\"") {
        let start = field + html[field..].find('>')? + 1;
        let end = start + html[start..].find("</textarea>")?;
        return Some(html[start..end].trim()).filter(|token| !token.is_empty());
    }
    let start = html.find("your token is")? + "your token is".len();
    let rest = html[start..].trim_start();
    let end = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '.'))
        .unwrap_or(rest.len());
    Some(&rest[..end]).filter(|token| !token.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_token_on_both_servers_pages() {
        let ours = "<p>your token is</p>\n<textarea id=\"token\" readonly>Ab.9</textarea>";
        assert_eq!(token_from_page(ours), Some("Ab.9"));
        assert_eq!(
            token_from_page("your token is Gl8I.Mow5"),
            Some("Gl8I.Mow5")
        );
        assert_eq!(
            token_from_page("<h1>your token is <b>Xy.1</b></h1>"),
            None,
            "markup right after the words is not a token"
        );
        for page in [
            "shut up",
            "<h1>Gone</h1>",
            "<textarea id=\"token\"></textarea>",
            "",
        ] {
            assert_eq!(token_from_page(page), None, "{page}");
        }
    }
}
