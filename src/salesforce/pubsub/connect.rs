//! The channel to the Pub/Sub API and the three headers every call carries.

use std::time::Duration;

use sfrelay_pubsub_wire::headers;
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};

use crate::event::SalesforceId;
use crate::salesforce::AccessToken;

/// A lazily connected channel: `https://` is TLS with the public web roots, `http://`
/// (loopback only, checked by the configuration) is plaintext HTTP/2 for a local emulator.
pub fn channel(endpoint: &str) -> Result<Channel, String> {
    let mut builder = Endpoint::from_shared(endpoint.to_owned())
        .map_err(|e| format!("pubsub_endpoint {endpoint:?}: {e}"))?
        .connect_timeout(Duration::from_secs(10))
        .http2_keep_alive_interval(Duration::from_secs(60))
        .keep_alive_timeout(Duration::from_secs(20))
        .keep_alive_while_idle(true);
    if endpoint.starts_with("https://") {
        builder = builder
            .tls_config(ClientTlsConfig::new().with_webpki_roots())
            .map_err(|e| format!("pubsub_endpoint {endpoint:?}: TLS: {e}"))?;
    }
    Ok(builder.connect_lazy())
}

/// `message` with `accesstoken`, `instanceurl` and `tenantid`.
pub fn authed<T>(
    message: T,
    token: &AccessToken,
    org: &SalesforceId,
) -> Result<tonic::Request<T>, String> {
    let mut request = tonic::Request::new(message);
    let meta = request.metadata_mut();
    let value = |text: &str, what: &str| {
        MetadataValue::try_from(text).map_err(|_| format!("the {what} is not a valid header value"))
    };
    meta.insert(
        headers::ACCESS_TOKEN,
        value(token.token.expose(), "access token")?,
    );
    meta.insert(
        headers::INSTANCE_URL,
        value(&token.instance_url, "instance URL")?,
    );
    meta.insert(headers::TENANT_ID, value(org.as_str(), "org Id")?);
    Ok(request)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn https_gets_tls_and_http_stays_plaintext() {
        assert!(channel("https://api.pubsub.salesforce.com:7443").is_ok());
        assert!(channel("http://127.0.0.1:7443").is_ok());
        assert!(channel("not a url").is_err());
    }
}
