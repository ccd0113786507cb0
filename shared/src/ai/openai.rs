//! An OpenAI-compatible provider: the image from `POST {base}/images/generations` (as
//! base64 `b64_json` or as a `url` it then downloads), the caption from
//! `POST {base}/chat/completions`, both at once.
//!
//! Time: the two calls and the download share one budget (`AI_TIMEOUT_SECONDS`, inside API
//! Gateway's 29 s); when it runs out the generation fails as a timeout (504).
//! Retries: only where the request cannot have been acted on, so a retry never pays for a
//! second image: a connection that could not be opened, or a 429 / 503 answer (the provider
//! says it did not take the request), once, after a short pause. The download is a GET and
//! is retried once on any failure but a timeout.

use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use bytes::Bytes;
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, HeaderValue, RETRY_AFTER};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use tokio::time::Instant;

use super::{AdCreative, AdRequest, AiError, AiProvider, ProductFacts, truncate};
use crate::config::{ConfigError, OpenAiConfig};
use crate::images::{Image, ImageKind};
use crate::outbound::describe;

/// Largest API answer read (a base64 image of a large PNG is a few MB).
const MAX_ANSWER_BYTES: usize = 32 * 1024 * 1024;
/// Largest image downloaded from a `url` answer.
const MAX_IMAGE_BYTES: usize = 20 * 1024 * 1024;
/// Pause before the one retry, unless `Retry-After` asks for less.
const RETRY_PAUSE: Duration = Duration::from_millis(500);
/// A `Retry-After` longer than this is not waited for: the request fails instead.
const MAX_RETRY_PAUSE: Duration = Duration::from_secs(2);
/// Longest piece of a provider's error message kept.
const MAX_MESSAGE: usize = 300;
/// Longest caption (the product's `caption` limit).
/// The warm-up probe must not hold up a cold start.
const WARM_UP_TIMEOUT: Duration = Duration::from_secs(3);

const CAPTION_INSTRUCTIONS: &str = "You write social media captions for product ads. Answer \
with the caption only, no quotes: one or two short, vivid sentences, then at most three \
hashtags. Keep prices exactly as given.";

/// The OpenAI-compatible [`AiProvider`].
pub struct OpenAiProvider {
    http: reqwest::Client,
    config: OpenAiConfig,
}

impl std::fmt::Debug for OpenAiProvider {
    // Hand-written so the key can never be printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiProvider")
            .field("base_url", &self.config.base_url)
            .field("image_model", &self.config.image_model)
            .field("chat_model", &self.config.chat_model)
            .finish_non_exhaustive()
    }
}

/// Which call failed, for messages.
#[derive(Clone, Copy)]
enum Call {
    Image,
    Caption,
    Download,
}

impl Call {
    fn label(self) -> &'static str {
        match self {
            Self::Image => "image generation",
            Self::Caption => "caption",
            Self::Download => "image download",
        }
    }
}

impl OpenAiProvider {
    /// A provider for `config`; its own client, whose connect timeout is `connect_timeout`
    /// and whose request timeout is the generation budget.
    pub fn new(config: OpenAiConfig, connect_timeout: Duration) -> Result<Self, ConfigError> {
        let http = reqwest::Client::builder()
            .connect_timeout(connect_timeout)
            .timeout(config.timeout)
            .pool_idle_timeout(Duration::from_secs(300))
            .build()
            .map_err(|e| ConfigError(format!("building the AI HTTP client: {e}")))?;
        // The key in hand is checked now, at cold start; a rotated one at its first use.
        if let Some(key) = config.api_key.as_ref().and_then(|k| k.in_hand()) {
            authorization(&key.current)
                .ok_or_else(|| ConfigError("AI_API_KEY is not a valid header value".into()))?;
        }
        Ok(Self { http, config })
    }

    /// The API key to send now (a rotated one once it is read).
    async fn api_key(&self) -> Option<SecretString> {
        let key = self.config.api_key.as_ref()?;
        key.versions().await.map(|v| v.current.clone())
    }

    fn timed_out(&self) -> AiError {
        AiError::TimedOut(format!(
            "the AI provider did not answer within {} s",
            self.config.timeout.as_secs()
        ))
    }

    /// One POST with the retry policy of the module; the answer's JSON.
    async fn post(&self, call: Call, path: &str, body: &Value) -> Result<Value, AiError> {
        let url = format!("{}/{path}", self.config.base_url);
        let key = self.api_key().await;
        let auth = match &key {
            None => None,
            Some(key) => Some(authorization(key).ok_or_else(|| {
                AiError::Failed("the AI API key is not a valid header value".into())
            })?),
        };
        let mut retried = false;
        loop {
            let mut request = self
                .http
                .post(&url)
                .json(body)
                .timeout(crate::deadline::budget(self.config.timeout));
            if let Some(auth) = &auth {
                request = request.header(AUTHORIZATION, auth.clone());
            }
            let response = match request.send().await {
                Ok(response) => response,
                Err(e) if e.is_timeout() => return Err(self.timed_out()),
                Err(e) if e.is_connect() && !retried => {
                    retried = true;
                    tokio::time::sleep(RETRY_PAUSE).await;
                    continue;
                }
                Err(e) => {
                    return Err(AiError::Failed(format!(
                        "AI provider {}: {}",
                        call.label(),
                        describe(&e)
                    )));
                }
            };
            let status = response.status();
            let not_taken = matches!(
                status,
                StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
            );
            if not_taken
                && !retried
                && let Some(pause) = retry_pause(response.headers().get(RETRY_AFTER))
            {
                retried = true;
                tokio::time::sleep(pause).await;
                continue;
            }
            let bytes = self.read(call, response, MAX_ANSWER_BYTES).await?;
            if !status.is_success() {
                return Err(AiError::Failed(self.error_message(
                    call,
                    status,
                    &bytes,
                    key.as_ref(),
                )));
            }
            return serde_json::from_slice(&bytes).map_err(|_| {
                AiError::Failed(format!(
                    "AI provider {}: the answer is not JSON",
                    call.label()
                ))
            });
        }
    }

    /// The body, refusing one over `limit` bytes.
    async fn read(
        &self,
        call: Call,
        mut response: reqwest::Response,
        limit: usize,
    ) -> Result<Bytes, AiError> {
        let too_big = || {
            AiError::Failed(format!(
                "AI provider {}: the answer is larger than {} MB",
                call.label(),
                limit / (1024 * 1024)
            ))
        };
        if response.content_length().is_some_and(|n| n > limit as u64) {
            return Err(too_big());
        }
        let mut body = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    if body.len() + chunk.len() > limit {
                        return Err(too_big());
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => return Ok(Bytes::from(body)),
                Err(e) if e.is_timeout() => return Err(self.timed_out()),
                Err(e) => {
                    return Err(AiError::Failed(format!(
                        "AI provider {}: {}",
                        call.label(),
                        describe(&e)
                    )));
                }
            }
        }
    }

    /// What went wrong, from the provider's error body (`{"error": {"message"}}`), never
    /// quoting a key: a refused key is described, not echoed (OpenAI's message repeats part
    /// of it), and the configured key is blanked out of any message.
    fn error_message(
        &self,
        call: Call,
        status: StatusCode,
        body: &[u8],
        key: Option<&SecretString>,
    ) -> String {
        let code = status.as_u16();
        if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
            return format!("the AI provider refused the API key (HTTP {code})");
        }
        let detail = serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|b| {
                b.pointer("/error/message")
                    .or_else(|| b.get("message"))
                    .or_else(|| b.get("error"))
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
            .map(|m| {
                let m = match key {
                    Some(key) if !key.expose_secret().is_empty() => {
                        m.replace(key.expose_secret(), "[key]")
                    }
                    _ => m,
                };
                format!(": {}", truncate(m.trim(), MAX_MESSAGE))
            })
            .unwrap_or_default();
        format!("AI provider {} failed (HTTP {code}){detail}", call.label())
    }

    async fn image(&self, facts: &ProductFacts, prompt: Option<&str>) -> Result<Image, AiError> {
        let body = json!({
            "model": self.config.image_model,
            "prompt": image_prompt(facts, prompt),
            "n": 1,
            "size": self.config.image_size,
        });
        let answer = self.post(Call::Image, "images/generations", &body).await?;
        let first = answer.pointer("/data/0");
        let fail = |why: &str| AiError::Failed(format!("AI provider image generation: {why}"));
        let bytes = if let Some(b64) = first
            .and_then(|d| d.get("b64_json"))
            .and_then(Value::as_str)
        {
            base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .map(Bytes::from)
                .map_err(|_| fail("b64_json is not base64"))?
        } else if let Some(url) = first.and_then(|d| d.get("url")).and_then(Value::as_str) {
            self.download(url).await?
        } else {
            return Err(fail("the answer has neither b64_json nor url"));
        };
        let kind =
            ImageKind::sniff(&bytes).ok_or_else(|| fail("the image is not a PNG, JPEG or WebP"))?;
        Ok(Image { bytes, kind })
    }

    /// Fetches an image the provider answered with by URL (such URLs expire within hours,
    /// so the image is copied to our bucket).
    async fn download(&self, url: &str) -> Result<Bytes, AiError> {
        let url = reqwest::Url::parse(url)
            .ok()
            .filter(|u| matches!(u.scheme(), "https" | "http"))
            .ok_or_else(|| {
                AiError::Failed("AI provider image generation: the image URL is not http(s)".into())
            })?;
        let mut last = String::new();
        for _attempt in 0..2 {
            let request = self
                .http
                .get(url.clone())
                .timeout(crate::deadline::budget(self.config.timeout));
            match request.send().await {
                Ok(response) if response.status().is_success() => {
                    return self.read(Call::Download, response, MAX_IMAGE_BYTES).await;
                }
                Ok(response) => last = format!("HTTP {}", response.status().as_u16()),
                Err(e) if e.is_timeout() => return Err(self.timed_out()),
                Err(e) => last = describe(&e),
            }
        }
        Err(AiError::Failed(format!(
            "AI provider {}: {last}",
            Call::Download.label()
        )))
    }

    async fn caption(&self, facts: &ProductFacts, prompt: Option<&str>) -> Result<String, AiError> {
        let body = json!({
            "model": self.config.chat_model,
            "messages": [
                {"role": "system", "content": CAPTION_INSTRUCTIONS},
                {"role": "user", "content": caption_prompt(facts, prompt)},
            ],
        });
        let answer = self.post(Call::Caption, "chat/completions", &body).await?;
        let text = answer
            .pointer("/choices/0/message/content")
            .and_then(Value::as_str)
            .map(|t| t.trim().trim_matches('"').trim())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| AiError::Failed("AI provider caption: the answer has no text".into()))?;
        Ok(truncate(text, crate::ai::max_caption_chars()))
    }
}

#[async_trait]
impl AiProvider for OpenAiProvider {
    async fn generate(&self, request: AdRequest<'_>) -> Result<AdCreative, AiError> {
        let facts = ProductFacts::of(request.product);
        let deadline = Instant::now() + self.config.timeout;
        let both = async {
            tokio::try_join!(
                self.image(&facts, request.prompt),
                self.caption(&facts, request.prompt)
            )
        };
        // One deadline for everything, waits between retries included.
        let (image, caption) = tokio::time::timeout_at(deadline, both)
            .await
            .map_err(|_| self.timed_out())??;
        Ok(AdCreative { image, caption })
    }

    async fn warm_up(&self) {
        // Any answer means the connection (and its TLS session) is open; no credentials are
        // sent, so nothing is billed.
        let probe = self
            .http
            .get(&self.config.base_url)
            .timeout(WARM_UP_TIMEOUT);
        if let Err(e) = probe.send().await {
            tracing::warn!(error = %describe(&e), "AI provider warm-up: connecting failed");
        }
    }
}

/// How long to pause before retrying a 429 / 503: `Retry-After` seconds if given and short,
/// a fixed pause otherwise; `None` when the provider asks for a longer wait than is worth it.
fn retry_pause(retry_after: Option<&HeaderValue>) -> Option<Duration> {
    match retry_after.and_then(|v| v.to_str().ok()).map(str::trim) {
        None => Some(RETRY_PAUSE),
        Some(value) => value
            .parse::<f64>()
            .ok()
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(Duration::from_secs_f64)
            .filter(|d| *d <= MAX_RETRY_PAUSE),
    }
}

/// The image prompt: the product's facts, then the user's direction.
pub fn image_prompt(facts: &ProductFacts, prompt: Option<&str>) -> String {
    let mut out = format!(
        "A square advertising image for the product \"{}\"",
        facts.name
    );
    if let Some(category) = &facts.category {
        out.push_str(&format!(" ({category})"));
    }
    out.push('.');
    if let Some(description) = &facts.description {
        out.push_str(&format!(" The product: {description}"));
        if !description.ends_with(['.', '!', '?']) {
            out.push('.');
        }
    }
    if let Some(price) = &facts.price {
        out.push_str(&format!(" Price: {price}."));
    }
    if !facts.colors.is_empty() {
        out.push_str(&format!(" Brand colours: {}.", facts.colors.join(", ")));
    }
    out.push_str(
        " Clean, modern, eye-catching product photography with room for a headline; no other text.",
    );
    if let Some(prompt) = prompt {
        out.push_str(&format!(" Direction from the advertiser: {prompt}"));
    }
    out
}

/// The caption request: the product's facts, one per line, then the user's direction.
pub fn caption_prompt(facts: &ProductFacts, prompt: Option<&str>) -> String {
    let mut lines = vec![format!("Product: {}", facts.name)];
    if let Some(category) = &facts.category {
        lines.push(format!("Category: {category}"));
    }
    if let Some(description) = &facts.description {
        lines.push(format!("Description: {description}"));
    }
    if let Some(price) = &facts.price {
        lines.push(format!("Price: {price}"));
    }
    if !facts.tags.is_empty() {
        lines.push(format!("Tags: {}", facts.tags.join(", ")));
    }
    if let Some(prompt) = prompt {
        lines.push(format!("Direction from the advertiser: {prompt}"));
    }
    lines.join("\n")
}

/// `Authorization: Bearer {key}`, marked sensitive; `None` if the key cannot be a header.
fn authorization(key: &SecretString) -> Option<HeaderValue> {
    let mut value = HeaderValue::try_from(format!("Bearer {}", key.expose_secret())).ok()?;
    value.set_sensitive(true);
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_honoured_only_when_short() {
        assert_eq!(retry_pause(None), Some(RETRY_PAUSE));
        assert_eq!(
            retry_pause(Some(&HeaderValue::from_static("1"))),
            Some(Duration::from_secs(1))
        );
        assert_eq!(retry_pause(Some(&HeaderValue::from_static("30"))), None);
        assert_eq!(retry_pause(Some(&HeaderValue::from_static("soon"))), None);
    }

    #[test]
    fn prompts_carry_the_facts_and_the_direction() {
        let facts = ProductFacts {
            name: "Sunrise Mug".into(),
            description: Some("Stoneware".into()),
            category: Some("Kitchen".into()),
            price: Some("€12.50".into()),
            colors: vec!["#FF8800".into()],
            tags: vec!["tea".into()],
        };
        let image = image_prompt(&facts, Some("autumn"));
        for part in [
            "\"Sunrise Mug\" (Kitchen).",
            "Stoneware.",
            "€12.50",
            "#FF8800",
            "advertiser: autumn",
        ] {
            assert!(image.contains(part), "{part} in {image}");
        }
        let caption = caption_prompt(&facts, None);
        assert_eq!(
            caption,
            "Product: Sunrise Mug\nCategory: Kitchen\nDescription: Stoneware\nPrice: €12.50\nTags: tea"
        );
    }

    #[test]
    fn provider_errors_never_echo_the_key() {
        let provider = OpenAiProvider::new(
            OpenAiConfig {
                base_url: "http://127.0.0.1:9/v1".into(),
                api_key: Some("sk-live-123".into()),
                image_model: "m".into(),
                chat_model: "c".into(),
                image_size: "1024x1024".into(),
                timeout: Duration::from_secs(5),
            },
            Duration::from_secs(1),
        )
        .unwrap();
        let key = SecretString::from("sk-live-123");
        let key = Some(&key);
        let body = br#"{"error": {"message": "Incorrect API key provided: sk-live-123"}}"#;
        let refused = provider.error_message(Call::Image, StatusCode::UNAUTHORIZED, body, key);
        assert_eq!(refused, "the AI provider refused the API key (HTTP 401)");
        let other = provider.error_message(Call::Caption, StatusCode::BAD_REQUEST, body, key);
        assert!(!other.contains("sk-live-123"), "{other}");
        assert!(
            other.starts_with("AI provider caption failed (HTTP 400): Incorrect"),
            "{other}"
        );
        assert!(!format!("{provider:?}").contains("sk-live"));
        let plain = provider.error_message(Call::Image, StatusCode::BAD_GATEWAY, b"<html>", key);
        assert_eq!(plain, "AI provider image generation failed (HTTP 502)");
    }
}
