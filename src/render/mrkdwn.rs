//! Slack mrkdwn escaping for record data we do not control.

use std::borrow::Cow;

/// Escapes text for Slack mrkdwn so user data can never form a control sequence (<!channel>, <@U…>, links).
///
/// Slack asks for exactly these three and nothing more: encoding anything else would show up
/// literally in the message. Borrows when there is nothing to escape, which is the usual case.
pub fn escape(s: &str) -> Cow<'_, str> {
    if !s.contains(['&', '<', '>']) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            _ => out.push(c),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_control_sequences_and_ampersands() {
        assert_eq!(
            escape("<!channel> free money <https://evil.example|click> & more"),
            "&lt;!channel&gt; free money &lt;https://evil.example|click&gt; &amp; more"
        );
    }

    #[test]
    fn leaves_everything_else_alone_and_borrows() {
        let s = "Acme \"Corp\" 'Q3' *bold* _it_ ~x~ `code` 😀 漢字";
        assert!(matches!(escape(s), Cow::Borrowed(b) if b == s));
    }

    #[test]
    fn escapes_already_escaped_text_again() {
        assert_eq!(escape("&amp;"), "&amp;amp;");
    }
}
