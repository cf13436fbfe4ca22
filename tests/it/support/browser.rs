//! A person's browser for the sign-in pages, and what tests look for in what sfrelay keeps:
//! sign-in links in Slack texts, their `state`, every value in Redis, and the emulator's tokens.

use super::Redis;

/// The sign-in link in a Slack mrkdwn text (`<https://…/start?state=…|Connect …>`).
pub fn link_in(text: &str, public: &str) -> Option<String> {
    let start = text.find(&format!("<{public}/oauth/salesforce/start?"))? + 1;
    let end = start + text[start..].find('|')?;
    Some(text[start..end].to_owned())
}

/// The `state` of a start link or callback address.
pub fn state_of(url: &str) -> String {
    reqwest::Url::parse(url)
        .expect("a URL")
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .expect("a state")
}

/// A person's browser: follows nothing by itself, keeps sfrelay's cookie.
pub struct Browser {
    http: reqwest::Client,
    app: String,
    /// sfrelay's configured `public_url`: links under it are opened at `app`.
    public: String,
    cookie: Option<String>,
}

/// What a page answered.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub location: Option<String>,
    pub body: String,
}

impl Browser {
    /// A browser reaching sfrelay at `app` (its listening address), configured with the
    /// public URL `public`.
    pub fn new(app: &str, public: &str) -> Browser {
        Browser {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            app: app.to_owned(),
            public: public.to_owned(),
            cookie: None,
        }
    }

    /// Opens `url`; sfrelay's own addresses (under its public URL) are sent to the app.
    pub async fn open(&mut self, url: &str) -> Answer {
        let url = url.replacen(&self.public, &self.app, 1);
        let mut request = self.http.get(&url);
        if url.starts_with(&self.app)
            && let Some(cookie) = &self.cookie
        {
            request = request.header("Cookie", cookie);
        }
        let response = request.send().await.expect("the page answers");
        if let Some(set) = response.headers().get("set-cookie") {
            let pair = set.to_str().expect("text").split(';').next().expect("pair");
            self.cookie = Some(pair.to_owned());
        }
        Answer {
            status: response.status().as_u16(),
            location: response
                .headers()
                .get("location")
                .map(|l| l.to_str().expect("text").to_owned()),
            body: response.text().await.unwrap_or_default(),
        }
    }

    /// Opens the start link and signs in at Salesforce as `login_as`: the callback address
    /// Salesforce sends the browser back to (not opened yet).
    pub async fn sign_in(&mut self, link: &str, login_as: &str) -> String {
        let start = self.open(link).await;
        assert_eq!(start.status, 302, "{start:?}");
        let authorize = start.location.expect("to Salesforce");
        let login = self.open(&format!("{authorize}&login_as={login_as}")).await;
        assert_eq!(login.status, 302, "{login:?}");
        let back = login.location.expect("back to sfrelay");
        let callback = format!("{}/oauth/salesforce/callback", self.public);
        assert!(back.starts_with(&callback), "{back}");
        back
    }

    /// The whole sign-in; answers the callback's page.
    pub async fn connect(&mut self, link: &str, login_as: &str) -> Answer {
        let back = self.sign_in(link, login_as).await;
        self.open(&back).await
    }
}

/// Every value under the app's keys in Redis, as text.
pub async fn redis_values(redis: &Redis) -> Vec<(String, String)> {
    let client = redis::Client::open(redis.url()).expect("client");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("connection");
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut conn)
        .await
        .expect("KEYS");
    let mut values = Vec::new();
    for key in keys {
        let kind: String = redis::cmd("TYPE")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .expect("TYPE");
        let text: Vec<Vec<u8>> = match kind.as_str() {
            "string" => vec![
                redis::cmd("GET")
                    .arg(&key)
                    .query_async(&mut conn)
                    .await
                    .expect("GET"),
            ],
            "list" => redis::cmd("LRANGE")
                .arg(&key)
                .arg(0)
                .arg(-1)
                .query_async(&mut conn)
                .await
                .expect("LRANGE"),
            "zset" => redis::cmd("ZRANGE")
                .arg(&key)
                .arg(0)
                .arg(-1)
                .query_async(&mut conn)
                .await
                .expect("ZRANGE"),
            "hash" => redis::cmd("HGETALL")
                .arg(&key)
                .query_async(&mut conn)
                .await
                .expect("HGETALL"),
            "set" => redis::cmd("SMEMBERS")
                .arg(&key)
                .query_async(&mut conn)
                .await
                .expect("SMEMBERS"),
            _ => Vec::new(),
        };
        for value in text {
            values.push((key.clone(), String::from_utf8_lossy(&value).into_owned()));
        }
    }
    values
}

/// Whether `text` holds one of the emulator's tokens: access tokens are `<org Id>!<hex>`,
/// refresh tokens `5Aep<hex>`.
pub fn holds_a_token(text: &str) -> bool {
    let hex_after = |at: usize| {
        text[at..]
            .chars()
            .take(24)
            .filter(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
            .count()
            == 24
    };
    text.match_indices("00D000000000001!")
        .any(|(i, m)| hex_after(i + m.len()))
        || text
            .match_indices("5Aep")
            .any(|(i, m)| hex_after(i + m.len()))
}
