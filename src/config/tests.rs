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

/// A public listen address with one org holding an API key.
const PUBLIC_ORG: &str =
    "listen = \"0.0.0.0:8080\"\n[[orgs]]\nid = \"00D5g000004ABCdEAO\"\napi_key_env = \"K\"";
const KEY: (&str, &str) = ("K", "0123456789abcdef0123");

#[test]
fn shutdown_grace_must_be_shorter_than_the_visibility_timeout() {
    let err = load(
        "[queue]\nvisibility_timeout_secs = 20\n[workers]\nshutdown_grace_secs = 20",
        &[],
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("workers.shutdown_grace_secs")
            && err.contains("queue.visibility_timeout_secs"),
        "{err}"
    );
    assert!(
        load(
            "[queue]\nvisibility_timeout_secs = 20\n[workers]\nshutdown_grace_secs = 19",
            &[]
        )
        .is_ok()
    );
}

#[test]
fn outbound_message_token_needs_32_characters() {
    let toml = "[[orgs]]\nid = \"00D5g000004ABCdEAO\"\noutbound_message_token_env = \"T\"";
    let err = load(toml, &[("T", "om-token-0123456789abcdef")])
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("orgs[0].outbound_message_token_env") && err.contains("32"),
        "{err}"
    );
    assert!(load(toml, &[("T", "om-token-0123456789abcdef0123456789")]).is_ok());
}

#[test]
fn public_listen_with_an_empty_redis_url_is_refused_naming_it() {
    let err = load(
        PUBLIC_ORG,
        &[KEY, ("REDIS_URL", ""), ("SLACK_BOT_TOKEN", "xoxb-1")],
    )
    .unwrap_err()
    .to_string();
    assert!(err.starts_with("REDIS_URL:"), "{err}");
}

#[test]
fn public_listen_with_an_empty_slack_token_is_refused_naming_it() {
    let err = load(
        PUBLIC_ORG,
        &[
            KEY,
            ("REDIS_URL", "redis://127.0.0.1:6390"),
            ("SLACK_BOT_TOKEN", ""),
        ],
    )
    .unwrap_err()
    .to_string();
    assert!(err.starts_with("SLACK_BOT_TOKEN:"), "{err}");
}

#[test]
fn an_empty_named_secret_is_refused_naming_the_variable() {
    let err = load(PUBLIC_ORG, &[("K", "")]).unwrap_err().to_string();
    assert!(
        err.starts_with("orgs[0].api_key_env") && err.contains("K"),
        "{err}"
    );
}

#[test]
fn on_loopback_empty_values_mean_unset() {
    let c = load(
        "",
        &[
            ("REDIS_URL", ""),
            ("SLACK_BOT_TOKEN", ""),
            ("SFRELAY_LISTEN", ""),
            ("SLACK_API_BASE", ""),
        ],
    )
    .unwrap();
    assert!(c.redis_url.is_none());
    assert!(c.slack.bot_token.is_none());
    assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(c.slack.api_base, "https://slack.com/api");
}

#[test]
fn redis_backend_needs_redis_url_anywhere() {
    let err = load("[queue]\nbackend = \"redis\"", &[])
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("queue.backend:") && err.contains("REDIS_URL"),
        "{err}"
    );
}

#[test]
fn public_listen_takes_memory_and_dry_run_when_configured_explicitly() {
    let toml = format!("{PUBLIC_ORG}\n[queue]\nbackend = \"memory\"\n[slack]\ndry_run = true");
    let c = load(&toml, &[KEY, ("REDIS_URL", ""), ("SLACK_BOT_TOKEN", "")]).unwrap();
    assert!(c.redis_url.is_none());
}

#[test]
fn public_jwt_org_needs_issuer_and_audience() {
    let jwt =
        "listen = \"0.0.0.0:8080\"\n[[orgs]]\nid = \"00D5g000004ABCdEAO\"\njwt_secret_env = \"J\"";
    let secret = ("J", "jwt-secret-jwt-secret-jwt-secret-1234");
    let err = load(jwt, &[secret]).unwrap_err().to_string();
    assert!(err.starts_with("orgs[0].jwt_issuer:"), "{err}");
    let err = load(&format!("{jwt}\njwt_issuer = \"sf\""), &[secret])
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("orgs[0].jwt_audience:"), "{err}");
    // On loopback both stay optional.
    let loopback = jwt.replace("0.0.0.0", "127.0.0.1");
    assert!(load(&loopback, &[secret]).is_ok());
}

#[test]
fn http_limits_are_checked_and_named() {
    let err = load("[http]\nheader_read_timeout_secs = 0", &[])
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("http.header_read_timeout_secs:"), "{err}");
    let err = load(
        "[http]\nbody_timeout_secs = 30\nrequest_timeout_secs = 10",
        &[],
    )
    .unwrap_err()
    .to_string();
    assert!(err.starts_with("http.body_timeout_secs:"), "{err}");
    let err = load("[http]\nmax_concurrent_requests = 0", &[])
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("http.max_concurrent_requests:"), "{err}");
}

#[test]
fn metrics_listen_must_be_an_address() {
    let err = load("metrics_listen = \"metrics:9090\"", &[])
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("metrics_listen:"), "{err}");
    let err = load("", &[("SFRELAY_METRICS_LISTEN", "nope")])
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("metrics_listen:"), "{err}");
}

#[test]
fn serving_publicly_refuses_the_in_process_queue_and_the_log_sink_unless_asked_for() {
    let unset = load(PUBLIC_ORG, &[KEY, ("SLACK_BOT_TOKEN", "xoxb-1")]).unwrap();
    let err = unset.refuse_silent_fallbacks().unwrap_err().to_string();
    assert!(
        err.starts_with("REDIS_URL:") && err.contains("queue.backend"),
        "{err}"
    );
    let no_token = load(PUBLIC_ORG, &[KEY, ("REDIS_URL", "redis://127.0.0.1:6390")]).unwrap();
    let err = no_token.refuse_silent_fallbacks().unwrap_err().to_string();
    assert!(
        err.starts_with("SLACK_BOT_TOKEN:") && err.contains("slack.dry_run"),
        "{err}"
    );
    let explicit = load(
        &format!("{PUBLIC_ORG}\n[queue]\nbackend = \"memory\"\n[slack]\ndry_run = true"),
        &[KEY],
    )
    .unwrap();
    assert!(explicit.refuse_silent_fallbacks().is_ok());
    assert!(explicit.slack.dry_run);
    assert_eq!(explicit.queue.backend, QueueBackend::Memory);
    // On loopback the embedded defaults serve.
    assert!(load("", &[]).unwrap().refuse_silent_fallbacks().is_ok());
}

#[test]
fn memory_backend_with_a_redis_url_is_ambiguous() {
    let err = load(
        "[queue]\nbackend = \"memory\"",
        &[("REDIS_URL", "redis://127.0.0.1:6390")],
    )
    .unwrap_err()
    .to_string();
    assert!(err.starts_with("queue.backend:"), "{err}");
}

#[test]
fn jwt_max_lifetime_is_configurable_within_bounds() {
    let org = "[[orgs]]\nid = \"00D5g000004ABCdEAO\"\njwt_secret_env = \"J\"";
    let secret = ("J", "jwt-secret-jwt-secret-jwt-secret-1234");
    let c = load(&format!("{org}\njwt_max_lifetime_secs = 300"), &[secret]).unwrap();
    assert_eq!(c.orgs[0].jwt_max_lifetime, Duration::from_secs(300));
    assert_eq!(
        load(org, &[secret]).unwrap().orgs[0].jwt_max_lifetime,
        Duration::from_secs(3600)
    );
    let err = load(&format!("{org}\njwt_max_lifetime_secs = 0"), &[secret])
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("orgs[0].jwt_max_lifetime_secs:"), "{err}");
}

#[test]
fn http_defaults_fit_salesforce_callouts() {
    let c = load("", &[]).unwrap();
    assert_eq!(c.http.header_read_timeout, Duration::from_secs(10));
    assert_eq!(c.http.body_timeout, Duration::from_secs(30));
    assert_eq!(c.http.request_timeout, Duration::from_secs(60));
    assert_eq!(c.http.max_concurrent_requests, 1024);
    assert!(c.metrics_listen.is_none());
    let c = load("metrics_listen = \"\"", &[("SFRELAY_METRICS_LISTEN", "")]).unwrap();
    assert!(c.metrics_listen.is_none());
}

#[test]
fn dry_run_can_be_asked_for_in_the_environment() {
    let public = [
        ("SFRELAY_LISTEN", "0.0.0.0:8080"),
        ("REDIS_URL", "redis://r:6379"),
    ];
    let org = "[[orgs]]\nid = \"00D5g000004ABCdEAO\"\napi_key_env = \"K\"\n";
    let mut vars = public.to_vec();
    vars.push(("K", "0123456789abcdef0123"));
    let refused = load(org, &vars).and_then(|c| c.refuse_silent_fallbacks());
    assert!(
        matches!(refused, Err(ConfigError::Invalid { ref key, .. }) if key == "SLACK_BOT_TOKEN")
    );
    vars.push(("SFRELAY_SLACK_DRY_RUN", "true"));
    let config = load(org, &vars).expect("dry run asked for");
    assert!(config.slack.dry_run);
    config
        .refuse_silent_fallbacks()
        .expect("explicit dry run is allowed");
    vars.pop();
    vars.push(("SFRELAY_SLACK_DRY_RUN", "yes please"));
    let bad = load(org, &vars);
    assert!(
        matches!(bad, Err(ConfigError::Invalid { ref key, .. }) if key == "SFRELAY_SLACK_DRY_RUN")
    );
}

#[test]
fn slack_signing_secrets_come_from_the_named_variables_and_empty_means_off() {
    let public = [
        KEY,
        ("REDIS_URL", "redis://127.0.0.1:6390"),
        ("SLACK_BOT_TOKEN", "xoxb-1"),
    ];
    let mut vars = public.to_vec();
    vars.push(("SLACK_SIGNING_SECRET", ""));
    let off = load(PUBLIC_ORG, &vars).unwrap();
    assert!(
        off.slack.signing_secret.is_none(),
        "empty is off, not an error"
    );

    let toml = "listen = \"0.0.0.0:8080\"\n[slack]\nsigning_secret_env = \"APP_SIGNING\"\n\
                [[orgs]]\nid = \"00D5g000004ABCdEAO\"\napi_key_env = \"K\"\n\
                [orgs.slack]\nsigning_secret_env = \"ORG_SIGNING\"";
    let mut vars = public.to_vec();
    vars.extend([
        ("SLACK_SIGNING_SECRET", "ignored"),
        ("APP_SIGNING", "app-secret"),
        ("ORG_SIGNING", "org-secret"),
    ]);
    let on = load(toml, &vars).unwrap();
    assert_eq!(on.slack.signing_secret.unwrap().expose(), "app-secret");
    assert_eq!(
        on.orgs[0].slack_signing_secret.as_ref().unwrap().expose(),
        "org-secret"
    );

    vars.retain(|(name, _)| *name != "ORG_SIGNING");
    let err = load(toml, &vars).unwrap_err().to_string();
    assert!(err.contains("orgs[0].slack.signing_secret_env"), "{err}");
}

#[test]
fn act_as_defaults_to_the_integration_user_and_user_needs_the_jwt_bearer_flow() {
    let org = "[[orgs]]\nid = \"00D5g000004ABCdEAO\"\n[orgs.salesforce]\nclient_id = \"3MVG9\"\n";
    let jwt = format!(
        "{org}username = \"integration@acme.example\"\n\
         private_key_file = \"tests/fixtures/keys/rsa-private.pem\"\n"
    );
    let refresh = format!("{org}refresh_token_env = \"SF_REFRESH\"\n");
    let vars = [("SF_REFRESH", "5Aep-refresh")];

    let c = load(&jwt, &vars).unwrap();
    assert_eq!(c.orgs[0].act_as, ActAs::Integration);
    let c = load(&format!("{jwt}act_as = \"integration\"\n"), &vars).unwrap();
    assert_eq!(c.orgs[0].act_as, ActAs::Integration);
    let c = load(&format!("{jwt}act_as = \"user\"\n"), &vars).unwrap();
    assert_eq!(c.orgs[0].act_as, ActAs::User);
    let c = load(&format!("{refresh}act_as = \"integration\"\n"), &vars).unwrap();
    assert_eq!(c.orgs[0].act_as, ActAs::Integration);

    let err = load(&format!("{jwt}act_as = \"admin\"\n"), &vars)
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("orgs[0].salesforce.act_as:"), "{err}");
    assert!(
        err.contains("\"admin\"") && err.contains("\"integration\", \"user\""),
        "{err}"
    );

    for (what, toml) in [
        ("refresh token", format!("{refresh}act_as = \"user\"\n")),
        (
            "no API access",
            "[[orgs]]\nid = \"00D5g000004ABCdEAO\"\n[orgs.salesforce]\nact_as = \"user\"\n".into(),
        ),
    ] {
        let err = load(&toml, &vars).unwrap_err().to_string();
        assert!(
            err.starts_with("orgs[0].salesforce.act_as:"),
            "{what}: {err}"
        );
        assert!(err.contains("JWT bearer"), "{what}: {err}");
    }
}

#[test]
fn default_org_admins_and_public_url_are_checked_naming_the_key() {
    let org = "[[orgs]]\nid = \"00D5g000004ABCdEAO\"\nname = \"production\"\n";
    let c = load(
        &format!(
            "public_url = \"https://sfrelay.example.com/\"\n[slack]\ndefault_org = \"production\"\nadmins = [\"U0123ABCD\"]\n{org}"
        ),
        &[],
    )
    .unwrap();
    assert_eq!(
        c.people.public_url.as_deref(),
        Some("https://sfrelay.example.com")
    );
    assert_eq!(
        c.people.default_org.as_ref().unwrap().as_str(),
        "00D5g000004ABCdEAO"
    );
    assert_eq!(c.people.admins, vec!["U0123ABCD".to_string()]);
    assert_eq!(c.people.state_ttl, DEFAULT_STATE_TTL);
    // By Id, 15 characters, and from the environment.
    let c = load(
        &format!("[slack]\ndefault_org = \"00D5g000004ABCd\"\n{org}"),
        &[("SFRELAY_PUBLIC_URL", "http://127.0.0.1:8080")],
    )
    .unwrap();
    assert!(c.people.default_org.is_some());
    assert_eq!(
        c.people.public_url.as_deref(),
        Some("http://127.0.0.1:8080")
    );
    for (text, key) in [
        (
            format!("[slack]\ndefault_org = \"staging\"\n{org}"),
            "slack.default_org",
        ),
        (
            format!("[slack]\nadmins = [\"U1\", \"alice\"]\n{org}"),
            "slack.admins[0]",
        ),
        (
            format!("public_url = \"http://sfrelay.example.com\"\n{org}"),
            "public_url",
        ),
        (
            format!("[people]\nstate_ttl_secs = 0\n{org}"),
            "people.state_ttl_secs",
        ),
        (
            format!("{org}[orgs.salesforce]\noauth_client_id = \"3MVG9web\"\n"),
            "orgs[0].salesforce.oauth_client_id",
        ),
    ] {
        let err = load(&text, &[]).unwrap_err().to_string();
        assert!(err.starts_with(key), "{key}: {err}");
    }
}

#[test]
fn the_web_server_flow_uses_the_orgs_app_unless_told_otherwise() {
    let org = |extra: &str| {
        format!(
            "[[orgs]]\nid = \"00D5g000004ABCdEAO\"\n[orgs.salesforce]\nclient_id = \"3MVG9jwt\"\nrefresh_token_env = \"RT\"\nclient_secret_env = \"CS\"\n{extra}"
        )
    };
    let vars = [
        ("RT", "5Aep"),
        ("CS", "jwt-app-secret"),
        ("WS", "web-secret"),
    ];
    let c = load(&org(""), &vars).unwrap();
    let app = &c.people.apps[0];
    assert_eq!(app.client_id, "3MVG9jwt");
    assert_eq!(app.login_url, "https://login.salesforce.com");
    assert_eq!(
        app.client_secret.as_ref().unwrap().expose(),
        "jwt-app-secret"
    );
    let c = load(
        &org("oauth_client_id = \"3MVG9web\"\noauth_client_secret_env = \"WS\"\n"),
        &vars,
    )
    .unwrap();
    let app = &c.people.apps[0];
    assert_eq!(app.client_id, "3MVG9web");
    assert_eq!(app.client_secret.as_ref().unwrap().expose(), "web-secret");
    // Another app does not borrow the first one's secret.
    let c = load(&org("oauth_client_id = \"3MVG9web\"\n"), &vars).unwrap();
    assert!(c.people.apps[0].client_secret.is_none());
    let err = load(&org("oauth_client_secret_env = \"NOPE\"\n"), &vars)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("orgs[0].salesforce.oauth_client_secret_env"),
        "{err}"
    );
}

#[test]
fn the_enrichment_batch_window_is_bounded_and_may_be_turned_off() {
    let c = load("", &[]).unwrap();
    assert_eq!(c.workers.enrich_batch_window, Duration::from_millis(10));
    let off = load("[workers]\nenrich_batch_window_ms = 0\n", &[]).unwrap();
    assert!(off.workers.enrich_batch_window.is_zero());
    let err = load("[workers]\nenrich_batch_window_ms = 5000\n", &[])
        .unwrap_err()
        .to_string();
    assert!(err.contains("workers.enrich_batch_window_ms"), "{err}");
}

#[test]
fn an_orgs_api_budget_shares_are_read_and_checked() {
    let org = |extra: &str| {
        format!(
            "[[orgs]]\nid = \"00D5g000004ABCdEAO\"\n[orgs.salesforce]\nclient_id = \"3MVG9\"\nrefresh_token_env = \"RT\"\n{extra}"
        )
    };
    let vars = [("RT", "5Aep")];
    let c = load(&org(""), &vars).unwrap();
    assert_eq!(
        c.salesforce[0].budget,
        crate::salesforce::budget::Budget::default()
    );
    let c = load(
        &org("api_budget_low_share = 0.5\napi_budget_high_share = 0.9\n"),
        &vars,
    )
    .unwrap();
    assert_eq!(c.salesforce[0].budget.low_share, 0.5);
    assert_eq!(c.salesforce[0].budget.high_share, 0.9);
    for (extra, key) in [
        ("api_budget_low_share = 1.5\n", "api_budget_low_share"),
        ("api_budget_high_share = 0\n", "api_budget_high_share"),
        (
            "api_budget_low_share = 0.97\napi_budget_high_share = 0.9\n",
            "api_budget_low_share",
        ),
    ] {
        let err = load(&org(extra), &vars).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("orgs[0].salesforce.{key}")),
            "{extra}: {err}"
        );
    }
}
