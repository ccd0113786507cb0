//! The Firebase Storage bucket through Cloud Storage's JSON API, with the service account's
//! access token (the same cached [`GoogleTokenSource`] Firestore uses).
//!
//! Uploads are one `POST .../upload/storage/v1/b/{bucket}/o?uploadType=media&name=...`.
//! The URL handed to browsers is Firebase's download form,
//! `https://firebasestorage.googleapis.com/v0/b/{bucket}/o/{name}?alt=media`, whose access is
//! decided by the bucket's Firebase Storage rules (`docs/ai.md` has the rule that makes
//! product images readable), so the bucket itself never needs to be public.

use std::sync::Arc;

use async_trait::async_trait;
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use secrecy::ExposeSecret;

use super::{Image, ImageStore, ObjectName, StorageError};
use crate::config::StorageConfig;
use crate::google::GoogleTokenSource;
use crate::outbound::{describe, percent_encode};

/// The [`ImageStore`] over Cloud Storage (or the Firebase Storage emulator, which speaks its
/// API).
pub struct CloudStorage {
    http: reqwest::Client,
    api_url: String,
    download_url: String,
    bucket: String,
    /// The service account's tokens; `None` for the emulator, which takes `Bearer owner` (as
    /// the Admin SDK sends it) for an administrator.
    tokens: Option<Arc<GoogleTokenSource>>,
}

impl CloudStorage {
    /// A store for `config.bucket`, authenticated by `tokens`; `http` carries the timeouts.
    pub fn new(
        config: &StorageConfig,
        tokens: Option<Arc<GoogleTokenSource>>,
        http: reqwest::Client,
    ) -> Self {
        Self {
            http,
            api_url: config.api_url.trim_end_matches('/').to_owned(),
            download_url: config.download_url.trim_end_matches('/').to_owned(),
            bucket: config.bucket.clone(),
            tokens,
        }
    }

    /// The URL browsers load `name` from.
    pub fn public_url(&self, name: &ObjectName) -> String {
        format!(
            "{}/v0/b/{}/o/{}?alt=media",
            self.download_url,
            self.bucket,
            percent_encode(name.as_str())
        )
    }

    async fn authorization(&self) -> Result<HeaderValue, StorageError> {
        let Some(tokens) = &self.tokens else {
            return Ok(HeaderValue::from_static("Bearer owner"));
        };
        let token = tokens
            .access_token()
            .await
            .map_err(|e| StorageError(e.to_string()))?;
        let mut value = HeaderValue::try_from(format!("Bearer {}", token.expose_secret()))
            .map_err(|_| StorageError("the access token is not a valid header".into()))?;
        value.set_sensitive(true);
        Ok(value)
    }

    /// Sends a request built by `build` once, and once more after a failure that is safe to
    /// repeat (both calls name one object, so a repeat cannot duplicate anything).
    async fn send(
        &self,
        what: &str,
        build: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<StatusCode, StorageError> {
        let mut last = String::new();
        for _attempt in 0..2 {
            let request = build()
                .header(AUTHORIZATION, self.authorization().await?)
                .timeout(crate::deadline::budget(
                    crate::config::Timeouts::default().request,
                ));
            match request.send().await {
                Ok(response) => {
                    let status = response.status();
                    if let Some(tokens) = self
                        .tokens
                        .as_ref()
                        .filter(|_| status == StatusCode::UNAUTHORIZED)
                    {
                        // Refused before it was due to expire: the next call gets a new one.
                        tokens.forget();
                    }
                    let retry = status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS;
                    if !retry {
                        return Ok(status);
                    }
                    last = format!("HTTP {}", status.as_u16());
                }
                Err(e) if e.is_timeout() => {
                    return Err(StorageError(format!("{what}: timed out")));
                }
                Err(e) => last = describe(&e),
            }
        }
        Err(StorageError(format!("{what}: {last}")))
    }
}

#[async_trait]
impl ImageStore for CloudStorage {
    async fn put(&self, name: &ObjectName, image: &Image) -> Result<String, StorageError> {
        let url = format!(
            "{}/upload/storage/v1/b/{}/o?uploadType=media&name={}",
            self.api_url,
            percent_encode(&self.bucket),
            percent_encode(name.as_str())
        );
        let status = self
            .send("upload", || {
                self.http
                    .post(&url)
                    .header(CONTENT_TYPE, image.kind.content_type())
                    .body(image.bytes.clone())
            })
            .await?;
        if !status.is_success() {
            return Err(StorageError(format!("upload: HTTP {}", status.as_u16())));
        }
        Ok(self.public_url(name))
    }

    async fn delete(&self, name: &ObjectName) -> Result<(), StorageError> {
        let url = format!(
            "{}/storage/v1/b/{}/o/{}",
            self.api_url,
            percent_encode(&self.bucket),
            percent_encode(name.as_str())
        );
        let status = self.send("delete", || self.http.delete(&url)).await?;
        if status.is_success() || status == StatusCode::NOT_FOUND {
            Ok(())
        } else {
            Err(StorageError(format!("delete: HTTP {}", status.as_u16())))
        }
    }

    /// Opens the connection (and gets a token) ahead of the first request; failures are
    /// logged, the first request tries again.
    async fn warm_up(&self) {
        let connect = async {
            if let Err(e) = self.http.get(format!("{}/", self.api_url)).send().await {
                tracing::warn!(error = %describe(&e), "storage warm-up: connecting failed");
            }
        };
        let token = async {
            if let Some(tokens) = &self.tokens
                && let Err(e) = tokens.access_token().await
            {
                tracing::warn!(error = %e, "storage warm-up: no access token");
            }
        };
        tokio::join!(connect, token);
    }
}
