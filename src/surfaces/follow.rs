//! `follow <record>` and `unfollow`: a person asks for a DM whenever a record changes. Following
//! is only a list kept in the store (who follows each record, and what each person follows);
//! the DMs themselves are sent by routes with a `followers` action, so the admin decides which
//! objects can be followed, when a change is worth a DM and what it says, and the DMs go
//! through the same queue, ledger and rate limits as every other message.

use serde_json::Value;

use super::account::person;
use super::ask;
use super::command::{named_record, not_visible};
use super::links::RecordRef;
use crate::event::SalesforceId;
use crate::jobs::{JobError, Jobs};
use crate::keys::Key;
use crate::render::mrkdwn::escape;
use crate::slack::inbound::SlashCommand;
use crate::store::StoreError;

/// How many records one person may follow: enough for a working set, few enough that the
/// lists stay small.
pub const FOLLOW_LIMIT: usize = 100;

/// One record a person follows.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Followed {
    org: SalesforceId,
    object: String,
    record: SalesforceId,
}

impl Followed {
    fn member(&self) -> String {
        format!("{}:{}:{}", self.org, self.object, self.record)
    }

    fn read(member: &str) -> Option<Followed> {
        let mut parts = member.splitn(3, ':');
        Some(Followed {
            org: SalesforceId::parse(parts.next()?).ok()?,
            object: parts.next()?.to_owned(),
            record: SalesforceId::parse(parts.next()?).ok()?,
        })
    }
}

fn later(e: StoreError) -> JobError {
    JobError::later(format!("follows: {e}"))
}

/// The store's key of what `command`'s person follows, and how they appear in followers lists.
fn keys_of(command: &SlashCommand) -> (Key, String) {
    let who = person(command);
    (
        Key::following(&who.team, &who.user),
        format!("{}:{}", who.team, who.user),
    )
}

async fn followed(jobs: &Jobs, command: &SlashCommand) -> Result<Vec<Followed>, JobError> {
    let (following, _) = keys_of(command);
    let members = jobs
        .store
        .members(following.as_str())
        .await
        .map_err(later)?;
    Ok(members.iter().filter_map(|m| Followed::read(m)).collect())
}

/// `follow [record]`.
pub async fn follow(
    jobs: &Jobs,
    command: &SlashCommand,
    text: Option<&str>,
) -> Result<Value, JobError> {
    let Some(text) = text else {
        return list(jobs, command).await;
    };
    let (org, found) = match named_record(jobs, command, text).await? {
        Ok(named) => named,
        Err(reply) => return Ok(reply),
    };
    if !jobs.routes.load_full().followable(&found.object, &org) {
        return Ok(ask::ephemeral(&format!(
            "{} records cannot be followed here: no route sends their followers a DM. \
             An admin can add one (an action of type \"followers\").",
            found.object
        )));
    }
    // Only a record the person can see is followed (their own connection decides, when they
    // have one), and its name goes in the answer.
    let actor = match super::find::reader(jobs, command, &org).await? {
        Ok(actor) => actor,
        Err(reply) => return Ok(reply),
    };
    let row = super::card::read(jobs, &org, &actor, &found, &[])
        .await
        .map_err(|e| JobError::of("record lookup", e))?;
    let Some(row) = row else {
        return Ok(not_visible(&found));
    };
    let title = row
        .get(super::card::title_field(&found.object))
        .and_then(Value::as_str)
        .unwrap_or(found.id.as_str())
        .to_owned();
    let this = Followed {
        org: org.clone(),
        object: found.object.clone(),
        record: found.id.clone(),
    };
    let (following, follower) = keys_of(command);
    let count = jobs
        .store
        .add_member(following.as_str(), &this.member())
        .await
        .map_err(later)?;
    if count > FOLLOW_LIMIT {
        jobs.store
            .remove_member(following.as_str(), &this.member())
            .await
            .map_err(later)?;
        return Ok(ask::ephemeral(&format!(
            "You already follow {FOLLOW_LIMIT} records, the most one person can: unfollow one first \
             (`{} follow` lists them).",
            command.command
        )));
    }
    jobs.store
        .add_member(Key::followers(&org, &found.id).as_str(), &follower)
        .await
        .map_err(later)?;
    tracing::info!(%org, object = %found.object, record = %found.id, "a person follows a record");
    Ok(ask::ephemeral_mrkdwn(format!(
        "You follow *{}* now: I will DM you when it changes. `{} unfollow {}` stops that.",
        escape(&title),
        command.command,
        found.id
    )))
}

/// `unfollow [record | all]`.
pub async fn unfollow(
    jobs: &Jobs,
    command: &SlashCommand,
    text: Option<&str>,
) -> Result<Value, JobError> {
    let all = followed(jobs, command).await?;
    let chosen: Vec<Followed> = match text {
        None if all.len() > 1 => {
            return Ok(ask::ephemeral_mrkdwn(format!(
                "You follow {} records. Say which to unfollow (`{} unfollow <record link or Id>`), \
                 or `{} unfollow all`:\n{}",
                all.len(),
                command.command,
                command.command,
                lines(jobs, &all)
            )));
        }
        None => all,
        Some(word) if word.eq_ignore_ascii_case("all") => all,
        Some(text) => {
            let named = match super::links::parse(text, &super::links::OrgHosts::of(&jobs.orgs)) {
                Ok(named) => named,
                Err(why) => return Ok(ask::ephemeral(&why)),
            };
            all.into_iter().filter(|f| names(&named, f)).collect()
        }
    };
    if chosen.is_empty() {
        return Ok(ask::ephemeral(match text {
            Some(_) => "You do not follow that record.",
            None => "You follow no records.",
        }));
    }
    let (following, follower) = keys_of(command);
    for f in &chosen {
        // The followers list first: once it is gone no DM is sent, whatever happens next.
        jobs.store
            .remove_member(Key::followers(&f.org, &f.record).as_str(), &follower)
            .await
            .map_err(later)?;
        jobs.store
            .remove_member(following.as_str(), &f.member())
            .await
            .map_err(later)?;
    }
    Ok(ask::ephemeral_mrkdwn(format!(
        "You no longer follow:\n{}",
        lines(jobs, &chosen)
    )))
}

/// Whether a typed link or Id names a followed record (a bare Id names it in any org).
fn names(named: &RecordRef, followed: &Followed) -> bool {
    named.id == followed.record && named.org.as_ref().is_none_or(|org| *org == followed.org)
}

/// `follow` with nothing named: what the person follows.
async fn list(jobs: &Jobs, command: &SlashCommand) -> Result<Value, JobError> {
    let all = followed(jobs, command).await?;
    if all.is_empty() {
        return Ok(ask::ephemeral(&format!(
            "You follow no records. `{} follow <record link or Id>` sends you a DM whenever one changes.",
            command.command
        )));
    }
    Ok(ask::ephemeral_mrkdwn(format!(
        "You follow {} record{}:\n{}",
        all.len(),
        if all.len() == 1 { "" } else { "s" },
        lines(jobs, &all)
    )))
}

/// One line per record, linked where the org's address is known.
fn lines(jobs: &Jobs, records: &[Followed]) -> String {
    records
        .iter()
        .map(|f| {
            let org = jobs.people.org_name(&f.org).unwrap_or(f.org.as_str());
            let shown = format!("{} {}", f.object, f.record);
            let url = jobs
                .orgs
                .instance_url(&f.org)
                .and_then(|base| crate::render::record_url(base, &f.object, f.record.as_str()));
            match url {
                Some(url) => format!("• <{url}|{shown}> in {}", escape(org)),
                None => format!("• {shown} in {}", escape(org)),
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_followed_record_reads_back_and_matches_what_names_it() {
        let f = Followed {
            org: SalesforceId::parse("00D5g000004ABCdEAO").unwrap(),
            object: "Opportunity".into(),
            record: SalesforceId::parse("006000000000001AAA").unwrap(),
        };
        assert_eq!(Followed::read(&f.member()), Some(f.clone()));
        assert_eq!(Followed::read("nonsense"), None);
        let bare = RecordRef {
            org: None,
            object: "Opportunity".into(),
            id: f.record.clone(),
        };
        assert!(names(&bare, &f));
        let elsewhere = RecordRef {
            org: Some(SalesforceId::parse("00D5g000007QRSt").unwrap()),
            ..bare.clone()
        };
        assert!(!names(&elsewhere, &f));
    }
}
