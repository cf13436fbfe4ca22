//! `users.lookupByEmail`.

use serde_json::json;

use super::{ApiError, Ctx, MethodResult};
use crate::params::Params;

pub(super) fn users_lookup_by_email(p: &Params, ctx: &mut Ctx<'_>) -> MethodResult {
    let email = p.str("email")?.unwrap_or_default();
    if email.is_empty() {
        return Err(ApiError::new("invalid_arguments"));
    }
    ctx.workspace
        .user_by_email(email)
        .map(|u| json!({"ok": true, "user": u.to_json()}))
        .ok_or(ApiError::new("users_not_found"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::SlackMethod;
    use super::super::testing::{call, code, ws};
    use crate::slack::journal::Stats;
    use crate::slack::workspace::User;

    #[test]
    fn looks_up_users() {
        let (mut w, mut s) = (ws(), Stats::default());
        let lookup = SlackMethod::UsersLookupByEmail;
        let ok = call(
            &mut w,
            &mut s,
            lookup,
            json!({"email": "Dana.Seller@example.com"}),
        )
        .unwrap();
        assert_eq!(ok["user"]["id"], "U0DANA0001");
        assert_eq!(ok["user"]["profile"]["email"], "dana.seller@example.com");
        assert_eq!(
            code(call(
                &mut w,
                &mut s,
                lookup,
                json!({"email": "x@example.com"})
            )),
            "users_not_found"
        );
        assert_eq!(
            code(call(&mut w, &mut s, lookup, json!({}))),
            "invalid_arguments"
        );
    }

    #[test]
    fn looks_up_emails_stored_in_any_case() {
        let (mut w, mut s) = (ws(), Stats::default());
        w.upsert_user(User::new("U0ELODIE01", "Élodie.Dupont@Example.com"));
        let lookup = SlackMethod::UsersLookupByEmail;
        for email in ["élodie.dupont@example.com", "ÉLODIE.DUPONT@EXAMPLE.COM"] {
            let ok = call(&mut w, &mut s, lookup, json!({"email": email})).unwrap();
            assert_eq!(ok["user"]["id"], "U0ELODIE01", "{email}");
            assert_eq!(ok["user"]["profile"]["email"], "Élodie.Dupont@Example.com");
        }
        let ok = call(
            &mut w,
            &mut s,
            lookup,
            json!({"email": "SAM.ENGINEER@EXAMPLE.COM"}),
        )
        .unwrap();
        assert_eq!(ok["user"]["id"], "U0SAM00001");
    }
}
