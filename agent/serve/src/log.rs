//! Log lines that a client cannot forge: its text (a model name, a field, an error quoting the
//! body) goes into a line with every control character escaped, so it can neither start a new
//! line nor send a terminal escape, and with its length bounded.

use std::fmt::Write;

/// `text` with control characters (C0, DEL, C1, and the bidirectional overrides that reorder
/// what a terminal shows) written as `\u{..}` escapes (`\n`, `\r`, `\t` as themselves escaped),
/// cut to at most `max` characters with `…` marking the cut.
pub fn escape(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max + 8));
    for (n, c) in text.chars().enumerate() {
        if n >= max {
            out.push('…');
            break;
        }
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() || is_bidi_control(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_cannot_forge_lines_or_move_the_cursor() {
        assert_eq!(
            escape("a\nPOST /v1 200\u{1b}[2J\u{9b}x\u{202e}", 100),
            "a\\nPOST /v1 200\\u{1b}[2J\\u{9b}x\\u{202e}"
        );
        assert_eq!(escape("héllo", 2), "hé…");
        assert_eq!(escape("plain text", 100), "plain text");
    }
}
