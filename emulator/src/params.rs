//! Arguments of one emulated API call, read from a query string, a form body or a JSON body.
//!
//! Real Slack accepts the same arguments in all three encodings, so the emulator folds them
//! into one JSON object and lets each method read typed values from it.

use serde_json::{Map, Value};

/// Why a request's arguments could not be read; mapped to Slack-style error codes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamError {
    /// The body said JSON but was not a JSON object.
    #[error("body is not a JSON object")]
    InvalidJson,
    /// The body or query string was not valid `application/x-www-form-urlencoded` UTF-8.
    #[error("body is not valid form data")]
    InvalidForm,
    /// An argument was present but had the wrong type.
    #[error("argument `{0}` has the wrong type")]
    WrongType(String),
}

impl ParamError {
    /// The `error` code Slack answers for this problem.
    pub fn code(&self) -> &'static str {
        match self {
            ParamError::InvalidJson | ParamError::WrongType(_) => "invalid_arguments",
            ParamError::InvalidForm => "invalid_form_data",
        }
    }
}

/// The arguments of one call as a JSON object (form values become strings).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Params(Map<String, Value>);

impl Params {
    /// Reads a query string such as `channel=C1&limit=2` (no leading `?`).
    pub fn from_query(query: Option<&str>) -> Result<Self, ParamError> {
        match query {
            Some(q) => decode_form(q.as_bytes()).map(Params),
            None => Ok(Params::default()),
        }
    }

    /// Reads a request body according to its content type; anything not JSON is read as a form,
    /// which is what Slack does too.
    pub fn from_body(content_type: Option<&str>, body: &[u8]) -> Result<Self, ParamError> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Params::default());
        }
        let is_json = content_type.is_some_and(|ct| ct.to_ascii_lowercase().contains("json"));
        if is_json {
            match serde_json::from_slice::<Value>(body) {
                Ok(Value::Object(map)) => Ok(Params(map)),
                _ => Err(ParamError::InvalidJson),
            }
        } else {
            decode_form(body).map(Params)
        }
    }

    /// Adds `other`'s arguments, keeping this call's own value when both have one.
    pub fn merge_missing(&mut self, other: Params) {
        for (key, value) in other.0 {
            self.0.entry(key).or_insert(value);
        }
    }

    /// Drops an argument, e.g. a `token` that must never be recorded.
    pub fn remove(&mut self, key: &str) {
        self.0.remove(key);
    }

    /// The raw value of an argument.
    pub fn value(&self, key: &str) -> Option<&Value> {
        self.0.get(key).filter(|v| !v.is_null())
    }

    /// A string argument; numbers and other JSON types are refused like Slack does.
    pub fn str(&self, key: &str) -> Result<Option<&str>, ParamError> {
        match self.value(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(_) => Err(ParamError::WrongType(key.to_owned())),
        }
    }

    /// A boolean argument, given as JSON `true`/`false` or as the strings `true`/`false`/`1`/`0`.
    pub fn bool(&self, key: &str) -> Result<Option<bool>, ParamError> {
        match self.value(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) => match s.as_str() {
                "true" | "1" => Ok(Some(true)),
                "false" | "0" | "" => Ok(Some(false)),
                _ => Err(ParamError::WrongType(key.to_owned())),
            },
            Some(_) => Err(ParamError::WrongType(key.to_owned())),
        }
    }

    /// A non-negative integer argument, given as a JSON number or a decimal string.
    pub fn u64(&self, key: &str) -> Result<Option<u64>, ParamError> {
        match self.value(key) {
            None => Ok(None),
            Some(Value::Number(n)) => n
                .as_u64()
                .map(Some)
                .ok_or_else(|| ParamError::WrongType(key.to_owned())),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => s
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| ParamError::WrongType(key.to_owned())),
            Some(_) => Err(ParamError::WrongType(key.to_owned())),
        }
    }

    /// The arguments as a JSON object, for the request log.
    pub fn to_json(&self) -> Value {
        Value::Object(self.0.clone())
    }
}

/// Decodes `application/x-www-form-urlencoded` data; a repeated key keeps its last value.
fn decode_form(data: &[u8]) -> Result<Map<String, Value>, ParamError> {
    let mut map = Map::new();
    for pair in data.split(|b| *b == b'&').filter(|p| !p.is_empty()) {
        let (key, value) = match pair.iter().position(|b| *b == b'=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &[][..]),
        };
        map.insert(percent_decode(key)?, Value::String(percent_decode(value)?));
    }
    Ok(map)
}

/// Decodes one form component: `+` is a space and `%XX` is a byte; the result must be UTF-8.
fn percent_decode(input: &[u8]) -> Result<String, ParamError> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        match input[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = input.get(i + 1..i + 3).ok_or(ParamError::InvalidForm)?;
                let hex = std::str::from_utf8(hex).map_err(|_| ParamError::InvalidForm)?;
                out.push(u8::from_str_radix(hex, 16).map_err(|_| ParamError::InvalidForm)?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| ParamError::InvalidForm)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn decodes_form_bodies() {
        let p = Params::from_body(
            Some("application/x-www-form-urlencoded"),
            b"channel=C1&text=hello+w%C3%B6rld%21&blocks=%5B%5D&flag",
        )
        .unwrap();
        assert_eq!(p.str("channel").unwrap(), Some("C1"));
        assert_eq!(p.str("text").unwrap(), Some("hello wörld!"));
        assert_eq!(p.str("blocks").unwrap(), Some("[]"));
        assert_eq!(p.str("flag").unwrap(), Some(""));
    }

    #[test]
    fn rejects_malformed_bodies() {
        assert_eq!(
            Params::from_body(None, b"text=%ZZ"),
            Err(ParamError::InvalidForm)
        );
        assert_eq!(
            Params::from_body(None, b"text=%E"),
            Err(ParamError::InvalidForm)
        );
        assert_eq!(
            Params::from_body(None, b"text=%FF%FE"),
            Err(ParamError::InvalidForm)
        );
        assert_eq!(
            Params::from_body(Some("application/json"), b"{not json"),
            Err(ParamError::InvalidJson)
        );
        assert_eq!(
            Params::from_body(Some("application/json; charset=utf-8"), b"[1]"),
            Err(ParamError::InvalidJson)
        );
    }

    #[test]
    fn reads_typed_values() {
        let p = Params::from_body(
            Some("application/json"),
            br#"{"limit":5,"cursor":"7","archived":"true","is_private":false,"text":3}"#,
        )
        .unwrap();
        assert_eq!(p.u64("limit").unwrap(), Some(5));
        assert_eq!(p.u64("cursor").unwrap(), Some(7));
        assert_eq!(p.bool("archived").unwrap(), Some(true));
        assert_eq!(p.bool("is_private").unwrap(), Some(false));
        assert!(p.str("text").is_err());
        assert_eq!(p.str("missing").unwrap(), None);
        assert_eq!(
            ParamError::WrongType("x".into()).code(),
            "invalid_arguments"
        );
    }

    #[test]
    fn merges_query_under_body() {
        let mut body = Params::from_body(None, b"channel=C1").unwrap();
        body.merge_missing(Params::from_query(Some("channel=C2&limit=3")).unwrap());
        assert_eq!(body.to_json(), json!({"channel": "C1", "limit": "3"}));
        assert_eq!(Params::from_body(None, b"  ").unwrap(), Params::default());
    }
}
