//! `users.info`: one person's profile, with `profile.email` only where the user has one (Slack
//! shows it only with `users:read.email`, which the emulated token always holds).

use serde_json::json;

use super::super::methods::{ApiError, Ctx, MethodResult};
use super::super::workspace::{BOT_ID, BOT_USER_ID, TEAM_ID};
use crate::params::Params;

/// `users.info {user}` → `{ok, user}`; an unknown id is `user_not_found`.
pub fn users_info(p: &Params, ctx: &mut Ctx<'_>) -> MethodResult {
    let user = p.str("user")?.unwrap_or_default();
    if user == BOT_USER_ID {
        return Ok(json!({"ok": true, "user": {
            "id": BOT_USER_ID,
            "team_id": TEAM_ID,
            "name": "sfrelay",
            "real_name": "sfrelay",
            "deleted": false,
            "is_bot": true,
            "profile": {"real_name": "sfrelay", "display_name": "sfrelay", "bot_id": BOT_ID},
        }}));
    }
    ctx.workspace
        .user(user)
        .map(|u| json!({"ok": true, "user": u.to_json()}))
        .ok_or(ApiError::new("user_not_found"))
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::super::super::journal::Stats;
    use super::super::super::methods::{SlackMethod, run};
    use super::super::super::workspace::{User, Workspace};
    use super::super::Interactive;
    use super::*;

    #[test]
    fn shows_email_only_for_people_that_have_one() {
        let mut gone = User::new("U0GONE0001", "gone@example.com");
        gone.deleted = true;
        let mut no_email = User::new("U0NOMAIL01", "");
        no_email.name = "nomail".into();
        let mut ws = Workspace::new(
            vec![],
            vec![
                User::new("U0DANA0001", "dana.seller@example.com"),
                gone,
                no_email,
            ],
        );
        let (mut stats, mut state) = (Stats::default(), Interactive::default());
        let mut info = |user: &str| {
            let params = Params::from_query(Some(&format!("user={user}"))).unwrap();
            let mut ctx = Ctx {
                workspace: &mut ws,
                stats: &mut stats,
                page_size: 100,
                now_micros: 0,
                interactive: &mut state,
            };
            run(SlackMethod::UsersInfo, &params, &mut ctx)
        };
        let dana = info("U0DANA0001").unwrap();
        assert_eq!(dana["user"]["id"], "U0DANA0001");
        assert_eq!(dana["user"]["team_id"], TEAM_ID);
        assert_eq!(dana["user"]["name"], "dana.seller");
        assert_eq!(dana["user"]["deleted"], false);
        assert_eq!(dana["user"]["is_bot"], false);
        assert_eq!(dana["user"]["profile"]["email"], "dana.seller@example.com");
        assert_eq!(dana["user"]["profile"]["display_name"], "dana.seller");

        let gone = info("U0GONE0001").unwrap();
        assert_eq!(gone["user"]["deleted"], true);
        let no_email = info("U0NOMAIL01").unwrap();
        assert_eq!(no_email["user"]["profile"].get("email"), None);
        assert_eq!(no_email["user"]["name"], "nomail");
        let bot = info(BOT_USER_ID).unwrap();
        assert_eq!(bot["user"]["is_bot"], true);
        assert_eq!(bot["user"]["profile"].get("email"), None::<&Value>);

        for unknown in ["U0GHOST001", ""] {
            assert_eq!(info(unknown).unwrap_err().code, "user_not_found");
        }
    }
}
