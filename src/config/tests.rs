use super::*;
use std::collections::HashMap;

struct MapEnv(HashMap<&'static str, &'static str>);
impl Env for MapEnv {
    fn var(&self, name: &str) -> Option<String> {
        self.0.get(name).map(|v| v.to_string())
    }
}

fn load(toml_text: &str, vars: &[(&'static str, &'static str)]) -> Result<Config, ConfigError> {
    let file: FileConfig = toml::from_str(toml_text).map_err(|e| ConfigError::Parse {
        path: "sfrelay.toml".into(),
        message: e.to_string(),
    })?;
    Config::from_file(file, Path::new(""), &MapEnv(vars.iter().copied().collect()))
}

#[test]
fn empty_file_gives_the_embedded_defaults() {
    let c = load("", &[]).unwrap();
    assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
    assert!(c.redis_url.is_none());
    assert!(c.slack.bot_token.is_none());
    assert_eq!(c.slack.api_base, "https://slack.com/api");
    assert_eq!(c.max_body_bytes, 1 << 20);
    assert_eq!(c.dedupe_window, Duration::from_secs(86400));
}

#[test]
fn environment_overrides_the_file() {
    let c = load(
        "listen = \"127.0.0.1:9000\"\n[slack]\napi_base = \"http://a\"",
        &[
            ("SFRELAY_LISTEN", "127.0.0.1:9100"),
            ("SLACK_API_BASE", "http://127.0.0.1:1/api/"),
            ("SLACK_BOT_TOKEN", "xoxb-1"),
            ("REDIS_URL", "redis://127.0.0.1:6390"),
        ],
    )
    .unwrap();
    assert_eq!(c.listen.port(), 9100);
    assert_eq!(c.slack.api_base, "http://127.0.0.1:1/api");
    assert_eq!(c.slack.bot_token.unwrap().expose(), "xoxb-1");
    assert!(c.redis_url.is_some());
}

#[test]
fn unknown_key_is_named() {
    let err = load("[queue]\nhigh_watermark = 3", &[])
        .unwrap_err()
        .to_string();
    assert!(err.contains("high_watermark"), "{err}");
}

#[test]
fn missing_secret_env_is_named() {
    let err = load(
        "[[orgs]]\nid = \"00D5g000004ABCdEAO\"\napi_key_env = \"NOPE\"",
        &[],
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("orgs[0].api_key_env") && err.contains("NOPE"),
        "{err}"
    );
}

#[test]
fn bad_org_id_is_named() {
    let err = load("[[orgs]]\nid = \"006Hs00000BkXyzIAF\"", &[])
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("orgs[0].id"), "{err}");
}

#[test]
fn public_listen_without_credentials_is_refused() {
    let err = load("listen = \"0.0.0.0:8080\"", &[])
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("listen:"), "{err}");
    let ok = load(
        "listen = \"0.0.0.0:8080\"\n[[orgs]]\nid = \"00D5g000004ABCd\"\napi_key_env = \"K\"",
        &[("K", "0123456789abcdef0123")],
    )
    .unwrap();
    assert_eq!(ok.orgs[0].id.as_str(), "00D5g000004ABCdEAO");
    assert_eq!(ok.orgs[0].api_key.as_ref().unwrap().header, "X-Api-Key");
}

#[test]
fn secrets_do_not_show_in_debug() {
    let c = load(
        "[[orgs]]\nid = \"00D5g000004ABCdEAO\"\napi_key_env = \"K\"\njwt_secret_env = \"J\"",
        &[
            ("K", "super-secret-api-key-1"),
            ("J", "jwt-secret-jwt-secret-jwt-secret-1234"),
            ("SLACK_BOT_TOKEN", "xoxb-very-secret"),
            ("REDIS_URL", "redis://:pw-secret@127.0.0.1"),
        ],
    )
    .unwrap();
    let debug = format!("{c:?}");
    for s in ["super-secret", "jwt-secret", "xoxb-very", "pw-secret"] {
        assert!(!debug.contains(s), "{s} leaked: {debug}");
    }
}

#[test]
fn channel_ids() {
    assert!(is_channel_id("C0DEALDESK"));
    assert!(is_channel_id("G01234567"));
    assert!(!is_channel_id("#deal-desk"));
    assert!(!is_channel_id("deal-desk"));
}
