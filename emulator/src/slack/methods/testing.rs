//! What the method tests share: a small workspace and a way to call one method on it.

use serde_json::{Value, json};

use super::super::journal::Stats;
use super::super::workspace::{Channel, User, Workspace};
use super::{ApiError, Ctx, Interactive, MethodResult, SlackMethod, run};
use crate::params::Params;

pub(super) fn ws() -> Workspace {
    let mut archived = Channel::new("C0ARCHIVED", "old", false);
    archived.is_archived = true;
    let mut outside = Channel::new("C0OUTSIDE1", "outside", false);
    outside.members.clear();
    Workspace::new(
        vec![
            Channel::new("C0DEALDESK", "deal-desk", false),
            Channel::new("C0SECRET01", "secret", true),
            archived,
            outside,
        ],
        vec![
            User::new("U0DANA0001", "dana.seller@example.com"),
            User::new("U0SAM00001", "sam.engineer@example.com"),
        ],
    )
}

pub(super) fn call(
    ws: &mut Workspace,
    stats: &mut Stats,
    method: SlackMethod,
    args: Value,
) -> MethodResult {
    let params = Params::from_body(Some("application/json"), args.to_string().as_bytes())
        .map_err(ApiError::from)?;
    let mut interactive = Interactive::default();
    let mut ctx = Ctx {
        workspace: ws,
        stats,
        page_size: 2,
        now_micros: 1_700_000_000_000_000,
        interactive: &mut interactive,
    };
    run(method, &params, &mut ctx)
}

pub(super) fn code(r: MethodResult) -> &'static str {
    r.err().map_or("ok", |e| e.code)
}

/// Posts `texts` to `channel` one after another and returns their ts, oldest first.
pub(super) fn post_all(
    w: &mut Workspace,
    s: &mut Stats,
    channel: &str,
    texts: &[&str],
) -> Vec<String> {
    texts
        .iter()
        .map(|text| {
            let args = json!({"channel": channel, "text": text});
            let ok = call(w, s, SlackMethod::PostMessage, args).unwrap();
            ok["ts"].as_str().unwrap().to_owned()
        })
        .collect()
}

pub(super) fn texts(history: &Value) -> Vec<&str> {
    history["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect()
}
