//! Request parsing: JSON bodies (with the offending field named as a path), query strings
//! (unknown parameters refused), durations, and the body size limit.
//!
//! It deliberately does not validate values beyond their types; see `validate`.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::error::Category;

use super::error::{ApiError, ApiResult, ErrorCode};

/// Largest request body accepted, in bytes. Default: 1 MiB.
pub const BODY_BYTES_MAX: usize = 1024 * 1024;

/// Reads a whole body, refusing more than [`BODY_BYTES_MAX`] bytes with `413 body_too_large`.
pub async fn read_body(headers: &HeaderMap, body: Body) -> ApiResult<Bytes> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > BODY_BYTES_MAX as u64) {
        return Err(too_large());
    }
    axum::body::to_bytes(body, BODY_BYTES_MAX)
        .await
        .map_err(|err| {
            let err = err.into_inner();
            if err.is::<http_body_util::LengthLimitError>() {
                too_large()
            } else {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    ErrorCode::InvalidJson,
                    format!("could not read the request body: {err}"),
                )
            }
        })
}

fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::BodyTooLarge,
        format!("request body exceeds {BODY_BYTES_MAX} bytes"),
    )
}

/// Refuses a `Content-Type` other than JSON; an absent one is accepted (curl-friendly).
pub fn require_json_content_type(headers: &HeaderMap) -> ApiResult<()> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let essence = value
        .to_str()
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if essence == "application/json" || essence.ends_with("+json") {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::UnsupportedMediaType,
            format!("Content-Type must be application/json, got `{essence}`"),
        ))
    }
}

/// Parses a JSON body into `T`, naming the offending field on failure.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> ApiResult<T> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(json_error)?;
    deserializer.end().map_err(|err| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidJson,
            format!("malformed JSON: {err}"),
        )
    })?;
    Ok(value)
}

/// Like [`parse_json`], but an empty (or all-whitespace) body yields `T::default()`.
pub fn parse_optional_json<T: DeserializeOwned + Default>(bytes: &[u8]) -> ApiResult<T> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        Ok(T::default())
    } else {
        parse_json(bytes)
    }
}

fn json_error(err: serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let path = err.path().to_string();
    let inner = err.into_inner();
    let message = inner.to_string();
    match inner.classify() {
        Category::Syntax | Category::Eof | Category::Io => ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidJson,
            format!("malformed JSON: {message}"),
        ),
        Category::Data => {
            let named = |prefix: &str| {
                message
                    .strip_prefix(prefix)
                    .and_then(|rest| rest.split('`').next())
                    .map(str::to_owned)
            };
            if let Some(name) = named("unknown field `") {
                ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::UnknownField, message)
                    .with_field(join_path(&path, &name))
            } else if let Some(name) = named("missing field `") {
                ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::MissingField, message)
                    .with_field(join_path(&path, &name))
            } else {
                ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidField, message)
                    .with_field(path)
            }
        }
    }
}

/// Joins a parent path with a field name; serde_path_to_error reports the parent of a missing
/// field, and sometimes already the unknown field itself.
fn join_path(parent: &str, name: &str) -> String {
    if parent == "." || parent.is_empty() {
        name.to_owned()
    } else if parent == name || parent.ends_with(&format!(".{name}")) {
        parent.to_owned()
    } else {
        format!("{parent}.{name}")
    }
}

/// Query-string parameters of one request, checked against the names a route accepts.
#[derive(Debug, Default)]
pub struct QueryParams {
    pairs: Vec<(String, String)>,
}

impl QueryParams {
    /// Parses a raw query string; an unknown parameter name is `400 unknown_field`.
    pub fn parse(raw: Option<&str>, allowed: &[&str]) -> ApiResult<Self> {
        let pairs: Vec<(String, String)> = serde_urlencoded_pairs(raw.unwrap_or_default())?;
        if let Some((name, _)) = pairs
            .iter()
            .find(|(name, _)| !allowed.contains(&name.as_str()))
        {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::UnknownField,
                format!("unknown query parameter `{name}`; expected one of {allowed:?}"),
            )
            .with_field(name.clone()));
        }
        Ok(Self { pairs })
    }

    /// The single value of `name`; repeating a single-valued parameter is refused.
    pub fn one<'a>(&'a self, name: &'a str) -> ApiResult<Option<&'a str>> {
        let mut values = self.all(name);
        match (values.next(), values.next()) {
            (first, None) => Ok(first),
            (Some(_), Some(_)) => Err(ApiError::invalid_field(
                name,
                format!("query parameter `{name}` given more than once"),
            )),
            (None, Some(_)) => Ok(None),
        }
    }

    /// Every value of a repeatable parameter, in order.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.pairs
            .iter()
            .filter(move |(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// `?consistency=linearizable|stale`; default linearizable (returns true for stale).
    pub fn stale(&self) -> ApiResult<bool> {
        match self.one("consistency")? {
            None | Some("linearizable") => Ok(false),
            Some("stale") => Ok(true),
            Some(other) => Err(ApiError::invalid_field(
                "consistency",
                format!("consistency must be `linearizable` or `stale`, got `{other}`"),
            )),
        }
    }
}

fn serde_urlencoded_pairs(raw: &str) -> ApiResult<Vec<(String, String)>> {
    // axum's `Query` extractor is serde_urlencoded underneath; going through it keeps one
    // parser for every route without a direct dependency.
    let uri: axum::http::Uri = format!("/?{raw}")
        .parse()
        .map_err(|_| ApiError::invalid_field("query", "the query string is not valid"))?;
    axum::extract::Query::<Vec<(String, String)>>::try_from_uri(&uri)
        .map(|query| query.0)
        .map_err(|err| ApiError::invalid_field("query", format!("bad query string: {err}")))
}

/// Parses a duration: `250ms`, `30s`, `5m`, `2h`; a bare number means seconds. Must be
/// positive; `field` is named in the error.
pub fn parse_duration(field: &str, text: &str) -> ApiResult<Duration> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().map_err(|_| {
        ApiError::invalid_field(
            field,
            format!("`{text}` is not a duration (e.g. 30s, 250ms)"),
        )
    })?;
    let scale_ms = match unit.trim() {
        "ms" => 1.0,
        "" | "s" => 1_000.0,
        "m" => 60_000.0,
        "h" => 3_600_000.0,
        other => {
            return Err(ApiError::invalid_field(
                field,
                format!("unknown duration unit `{other}` (use ms, s, m or h)"),
            ))
        }
    };
    let millis = number * scale_ms;
    if !millis.is_finite() || millis < 1.0 {
        return Err(ApiError::invalid_field(
            field,
            format!("duration must be positive (at least 1ms), got `{text}`"),
        ));
    }
    if millis > u64::MAX as f64 / 2.0 {
        return Err(ApiError::invalid_field(field, "duration is too large"));
    }
    Ok(Duration::from_millis(millis as u64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::types::SubmitJobRequest;

    fn field(body: &str) -> (ErrorCode, Option<String>) {
        let err = parse_json::<SubmitJobRequest>(body.as_bytes()).unwrap_err();
        (err.code(), err.detail.field)
    }

    #[test]
    fn json_errors_name_the_field() {
        assert_eq!(field("{").0, ErrorCode::InvalidJson);
        assert_eq!(field("").0, ErrorCode::InvalidJson);
        assert_eq!(field(r#"{"workflows":[]} x"#).0, ErrorCode::InvalidJson);
        assert_eq!(
            field(r#"{"workflows":[], "colour":1}"#),
            (ErrorCode::UnknownField, Some("colour".into()))
        );
        assert_eq!(
            field(r#"{"workflows":[{"name":"a","command":["x"],"colour":1}]}"#),
            (ErrorCode::UnknownField, Some("workflows[0].colour".into()))
        );
        assert_eq!(
            field("{}"),
            (ErrorCode::MissingField, Some("workflows".into()))
        );
        assert_eq!(
            field(r#"{"workflows":[{"name":"a"}]}"#),
            (ErrorCode::MissingField, Some("workflows[0].command".into()))
        );
        assert_eq!(
            field(r#"{"workflows":[{"name":"a","command":"x"}]}"#),
            (ErrorCode::InvalidField, Some("workflows[0].command".into()))
        );
        assert_eq!(
            field(r#"{"workflows":[{"name":"a","command":["x"],"cores":1.5}]}"#),
            (ErrorCode::InvalidField, Some("workflows[0].cores".into()))
        );
    }

    #[test]
    fn durations() {
        assert_eq!(
            parse_duration("t", "250ms").unwrap(),
            Duration::from_millis(250)
        );
        assert_eq!(parse_duration("t", "30").unwrap(), Duration::from_secs(30));
        assert_eq!(
            parse_duration("t", "1.5s").unwrap(),
            Duration::from_millis(1500)
        );
        assert_eq!(parse_duration("t", "2m").unwrap(), Duration::from_secs(120));
        for bad in ["0", "-1s", "abc", "5x", "0ms", ""] {
            let err = parse_duration("timeout", bad).unwrap_err();
            assert_eq!(err.detail.field.as_deref(), Some("timeout"), "{bad}");
        }
    }

    #[test]
    fn query_params() {
        let q = QueryParams::parse(
            Some("status=running&label=a%3Db&label=c=d"),
            &["status", "label"],
        )
        .unwrap();
        assert_eq!(q.one("status").unwrap(), Some("running"));
        assert_eq!(q.all("label").collect::<Vec<_>>(), vec!["a=b", "c=d"]);
        assert!(q.one("label").is_err());
        let err = QueryParams::parse(Some("bogus=1"), &["status"]).unwrap_err();
        assert_eq!(err.detail.field.as_deref(), Some("bogus"));
    }
}
