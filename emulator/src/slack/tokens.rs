//! Bot tokens besides the one on the command line (another Slack app's), and tokens refused on
//! demand with one of Slack's credential errors (revoked, expired, an inactive account, a
//! missing scope), set through `POST /_emulator/tokens`.

use std::collections::{HashMap, HashSet};

/// The credential errors a token can be made to answer.
pub const REFUSALS: [&str; 6] = [
    "invalid_auth",
    "token_revoked",
    "token_expired",
    "account_inactive",
    "missing_scope",
    "not_authed",
];

/// Tokens accepted besides the primary one, and tokens refused with a code.
#[derive(Debug, Default)]
pub struct TokenStates {
    accepted: HashSet<String>,
    refused: HashMap<String, &'static str>,
}

impl TokenStates {
    /// Makes `token` answer `refuse` (one of [`REFUSALS`]) from now on, or, with `None`,
    /// accepts it again (adding it when it is not the primary token).
    pub fn set(&mut self, token: &str, refuse: Option<&str>) -> Result<(), String> {
        if token.trim().is_empty() {
            return Err("token must not be empty".into());
        }
        match refuse {
            None => {
                self.refused.remove(token);
                self.accepted.insert(token.to_owned());
            }
            Some(code) => {
                let code = REFUSALS
                    .iter()
                    .find(|c| **c == code)
                    .ok_or_else(|| format!("refuse must be one of {REFUSALS:?}, not {code:?}"))?;
                self.refused.insert(token.to_owned(), code);
            }
        }
        Ok(())
    }

    /// How a presented token is answered: `Ok` when it is the primary or an added one and
    /// not refused.
    pub fn check(&self, presented: &str, primary: &str) -> Result<(), &'static str> {
        if let Some(code) = self.refused.get(presented) {
            return Err(code);
        }
        if presented == primary || self.accepted.contains(presented) {
            Ok(())
        } else {
            Err("invalid_auth")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_added_refused_and_restored() {
        let mut tokens = TokenStates::default();
        assert_eq!(tokens.check("xoxb-a", "xoxb-a"), Ok(()));
        assert_eq!(tokens.check("xoxb-b", "xoxb-a"), Err("invalid_auth"));
        tokens.set("xoxb-b", None).unwrap();
        assert_eq!(tokens.check("xoxb-b", "xoxb-a"), Ok(()));
        tokens.set("xoxb-a", Some("token_revoked")).unwrap();
        assert_eq!(tokens.check("xoxb-a", "xoxb-a"), Err("token_revoked"));
        assert_eq!(tokens.check("xoxb-b", "xoxb-a"), Ok(()));
        tokens.set("xoxb-a", None).unwrap();
        assert_eq!(tokens.check("xoxb-a", "xoxb-a"), Ok(()));
        assert!(tokens.set("xoxb-a", Some("channel_not_found")).is_err());
        assert!(tokens.set(" ", None).is_err());
    }
}
