//! Tables for people: left-aligned columns, the tokens' table, and how a JSON value reads in a
//! cell.

use secure_server::config::edit::TokenInfo;
use serde_json::Value;

/// A table of tokens.
pub fn token_table(rows: &[(TokenInfo, Option<bool>)]) -> String {
    table(
        &[
            "KIND",
            "LABEL/NAME",
            "ROLE",
            "TOKEN",
            "FINGERPRINT",
            "IN USE",
        ],
        rows.iter()
            .map(|(info, in_use)| {
                vec![
                    info.kind.as_str().to_owned(),
                    info.title().unwrap_or("-").to_owned(),
                    info.role.as_str().to_owned(),
                    info.masked.clone(),
                    info.fingerprint.clone(),
                    yes_no(*in_use).to_owned(),
                ]
            })
            .collect(),
    )
}

pub(super) fn yes_no(in_use: Option<bool>) -> &'static str {
    match in_use {
        Some(true) => "yes",
        Some(false) => "no",
        None => "?",
    }
}

/// Left-aligned columns, two spaces apart; widths count characters (the mask's `…` is one).
pub(super) fn table(headers: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let header = headers.iter().map(|h| (*h).to_owned()).collect();
    let mut text = String::new();
    for row in std::iter::once(header).chain(rows) {
        let last = row.len().saturating_sub(1);
        for (i, (cell, width)) in row.iter().zip(&widths).enumerate() {
            if i == last {
                text.push_str(cell);
            } else {
                let pad = width - cell.chars().count() + 2;
                text.push_str(cell);
                text.push_str(&" ".repeat(pad));
            }
        }
        text.push('\n');
    }
    text
}

/// A JSON value in a table cell or message: strings bare, `null` as `-`.
pub(super) fn cell(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "-".to_owned(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_by_characters() {
        let text = table(
            &["A", "B", "C"],
            vec![
                vec!["abcd…".into(), "x".into(), "1".into()],
                vec!["-".into(), "longer".into(), "2".into()],
            ],
        );
        assert_eq!(
            text,
            "A      B       C\nabcd…  x       1\n-      longer  2\n"
        );
    }
}
