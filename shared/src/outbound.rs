//! Outbound HTTP: the one way a client is built, and the helpers every caller of a web API
//! uses (Google's, the AI provider's).

use crate::config::{ConfigError, Timeouts};

/// One HTTP client with the timeouts of the configuration, its connections kept warm
/// between invocations.
pub fn client(timeouts: &Timeouts) -> Result<reqwest::Client, ConfigError> {
    reqwest::Client::builder()
        .connect_timeout(timeouts.connect)
        .timeout(timeouts.request)
        .pool_idle_timeout(std::time::Duration::from_secs(300))
        .build()
        .map_err(|e| ConfigError(format!("building the HTTP client: {e}")))
}

/// Percent-encodes everything but RFC 3986 unreserved characters: right for a form value,
/// a query value and a path segment alike (a space is `%20`, never `+`, which some Google
/// front ends, the Firestore emulator among them, would keep as a plus).
pub fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A short description of a transport failure, without the request's URL or body.
pub fn describe(err: &reqwest::Error) -> String {
    if err.is_timeout() {
        "timed out".into()
    } else if err.is_connect() {
        "could not connect".into()
    } else if err.is_decode() || err.is_body() {
        "the response body could not be read".into()
    } else {
        "the request failed".into()
    }
}

/// Whether `host` (an address, or a URL's host) is this machine only.
pub fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Whether a URL points at this machine.
pub fn is_loopback_url(url: &str) -> bool {
    url::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(is_loopback_host))
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_encoding_escapes_reserved_characters() {
        assert_eq!(percent_encode("a.b-c_d~e"), "a.b-c_d~e");
        assert_eq!(percent_encode("a b+/="), "a%20b%2B%2F%3D");
        assert_eq!(percent_encode("urn:x"), "urn%3Ax");
    }
}
