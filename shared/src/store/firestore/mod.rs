//! Firestore through its REST API (v1), over reqwest.
//!
//! Every operation is one HTTP call (a listing longer than a page follows its page tokens).
//! Writes carry `currentDocument` preconditions and use the document the write returns, so
//! a create, update or delete costs one write and no read. Every document comes back with
//! its `updateTime` as its [`Version`].
//!
//! Error statuses (checked against the emulator; production Firestore answers the same):
//! a failed `exists: true` precondition is `404 NOT_FOUND`, a failed `exists: false` one is
//! `409 ALREADY_EXISTS`, a failed `updateTime` one `400 FAILED_PRECONDITION`, for single
//! writes and in a commit alike. Only such a status in a Firestore error body maps to
//! `NotFound`/`AlreadyExists`/`PreconditionFailed`; a bare 404 from something that is not
//! Firestore (a wrong base URL) is `Unavailable`, like every other refusal.
//!
//! Failures are told apart by what they leave: a request that never reached Firestore, or
//! that it refused (429, 4xx), wrote nothing (`Unavailable`); a write that was sent and got no
//! usable answer (a timeout, a dropped connection, a 5xx) may have been applied
//! (`Indeterminate`). Transient failures are retried within the invocation's budget
//! ([`crate::deadline`]) when a repeat cannot do harm: reads, updates, and creates and
//! deletes whose repeat recognises its own earlier success. A multi-write commit is only
//! repeated when the first attempt certainly wrote nothing.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::{AUTHORIZATION, HeaderValue};
use secrecy::ExposeSecret;
use serde_json::{Value, json};

use super::{
    CollectionPath, DocPath, Document, DocumentStore, Fields, Listing, Precondition, StoreError,
    Version, Write,
};
use crate::config::{ConfigError, FirestoreConfig};
use crate::google::GoogleTokenSource;
use crate::outbound::{describe, percent_encode};

mod codec;

use crate::deadline;
use codec::{commit_versions, decode_document, encode_fields, masked, quote_field_path};

/// Documents per page of a listing (Firestore's maximum is 300).
const PAGE_SIZE: &str = "300";
/// Longest piece of an upstream error message kept in a `StoreError`.
const MAX_MESSAGE: usize = 200;
/// Most attempts of one operation (the budget usually ends retries first).
const MAX_ATTEMPTS: u32 = 4;
/// Below this much time left, a write is not even sent: it could not be answered in time.
const MIN_CALL_TIME: Duration = Duration::from_millis(50);

/// The [`DocumentStore`] over Firestore's REST API, or the Firestore emulator.
pub struct FirestoreStore {
    http: reqwest::Client,
    /// The longest one call may take (the invocation's budget may cut it shorter).
    call_timeout: Duration,
    base_url: String,
    /// `{base}/v1/projects/{project}/databases/(default)/documents`.
    documents_url: String,
    /// `projects/{project}/databases/(default)/documents`: the prefix of document names.
    documents_name: String,
    auth: Auth,
}

enum Auth {
    /// The emulator takes `Bearer owner` as an admin credential (rules bypassed).
    Emulator,
    Google(Arc<GoogleTokenSource>),
}

/// How a Firestore call failed, before the operation decides what that means.
#[derive(Debug)]
enum Failure {
    NotFound(String),
    AlreadyExists(String),
    PreconditionFailed(String),
    /// Nothing was written: the request was not sent, or Firestore refused it.
    Refused {
        why: String,
        transient: bool,
    },
    /// Sent, with no usable answer: a write may have been applied. Always transient.
    Unknown(String),
}

impl Failure {
    fn transient(&self) -> bool {
        match self {
            Self::Refused { transient, .. } => *transient,
            Self::Unknown(_) => true,
            _ => false,
        }
    }
}

impl FirestoreStore {
    /// A store for `project_id` at `config.base_url`. Outside emulator mode the service
    /// account key is required and checked here (a bad key fails the cold start).
    pub fn new(
        config: &FirestoreConfig,
        project_id: &str,
        http: reqwest::Client,
        call_timeout: Duration,
    ) -> Result<Self, ConfigError> {
        let valid_project = !project_id.is_empty()
            && project_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
        if !valid_project {
            return Err(ConfigError(format!(
                "`{project_id}` is not a valid Firestore project id"
            )));
        }
        let base_url = config.base_url.trim_end_matches('/').to_owned();
        reqwest::Url::parse(&base_url).map_err(|_| {
            ConfigError(format!("the Firestore base URL `{base_url}` is not a URL"))
        })?;
        let auth = if config.emulator {
            Auth::Emulator
        } else {
            let key = config.service_account.as_ref().ok_or_else(|| {
                ConfigError("a service account key is required outside the emulator".into())
            })?;
            Auth::Google(Arc::new(GoogleTokenSource::new(
                key,
                config.token_url.as_deref(),
                http.clone(),
            )?))
        };
        let documents_name = format!("projects/{project_id}/databases/(default)/documents");
        Ok(Self {
            documents_url: format!("{base_url}/v1/{documents_name}"),
            base_url,
            documents_name,
            http,
            call_timeout,
            auth,
        })
    }

    /// The service account's token source (none in emulator mode), for other Google APIs
    /// of the same account to share its cached token.
    pub fn token_source(&self) -> Option<Arc<GoogleTokenSource>> {
        match &self.auth {
            Auth::Emulator => None,
            Auth::Google(tokens) => Some(tokens.clone()),
        }
    }

    /// Opens the connection to Firestore (and, for real Firestore, fetches the access
    /// token) ahead of the first request. Failures are logged, never fatal: the first
    /// request will try again.
    pub async fn warm_up(&self) {
        // Any answer means the connection (and its TLS session) is open; the root path is
        // not a Firestore operation, so this costs no read.
        let connect = async {
            if let Err(e) = self.http.get(format!("{}/", self.base_url)).send().await {
                tracing::warn!(error = %describe(&e), "firestore warm-up: connecting failed");
            }
        };
        let token = async {
            if let Auth::Google(tokens) = &self.auth
                && let Err(e) = tokens.access_token().await
            {
                tracing::warn!(error = %e, "firestore warm-up: no access token");
            }
        };
        tokio::join!(connect, token);
    }

    fn doc_url(&self, path: &str) -> String {
        let mut url = self.documents_url.clone();
        for segment in path.split('/') {
            url.push('/');
            url.push_str(&encode_segment(segment));
        }
        url
    }

    fn doc_name(&self, path: &DocPath) -> String {
        format!("{}/{}", self.documents_name, path.as_str())
    }

    async fn authorization(&self) -> Result<HeaderValue, Failure> {
        let refused = |why: String| Failure::Refused {
            why,
            transient: true,
        };
        let mut value = match &self.auth {
            Auth::Emulator => HeaderValue::from_static("Bearer owner"),
            Auth::Google(tokens) => {
                let token = tokens
                    .access_token()
                    .await
                    .map_err(|e| refused(e.to_string()))?;
                HeaderValue::try_from(format!("Bearer {}", token.expose_secret()))
                    .map_err(|_| refused("the access token is not a valid header".into()))?
            }
        };
        value.set_sensitive(true);
        Ok(value)
    }

    /// Sends one request, within the invocation's budget, and returns its JSON body, or how
    /// it failed.
    async fn call(&self, request: reqwest::RequestBuilder) -> Result<Value, Failure> {
        let timeout = deadline::budget(self.call_timeout);
        if timeout < MIN_CALL_TIME {
            return Err(Failure::Refused {
                why: "no time left in the invocation".into(),
                transient: false,
            });
        }
        let request = request
            .header(AUTHORIZATION, self.authorization().await?)
            .timeout(timeout);
        let response = request.send().await.map_err(|e| {
            if e.is_connect() {
                Failure::Refused {
                    why: describe(&e),
                    transient: true,
                }
            } else {
                Failure::Unknown(describe(&e))
            }
        })?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| Failure::Unknown(describe(&e)))?;
        let body: Option<Value> = serde_json::from_slice(&bytes).ok();
        if status.is_success() {
            return body.ok_or_else(|| Failure::Unknown("unexpected response body".into()));
        }
        if status == reqwest::StatusCode::UNAUTHORIZED {
            // The token was refused before it was due to expire: the next call gets a new one.
            if let Auth::Google(tokens) = &self.auth {
                tokens.forget();
            }
        }
        // `{"error": {...}}`, or for a streamed query `[{"error": {...}}]`.
        let error = body.as_ref().and_then(|b| match b {
            Value::Array(items) => items.iter().find_map(|i| i.get("error")),
            other => other.get("error"),
        });
        let text = |name: &str| {
            error
                .and_then(|e| e.get(name))
                .and_then(Value::as_str)
                .unwrap_or_default()
        };
        let message = text("message").to_owned();
        let kind = text("status");
        let why = if kind.is_empty() {
            format!("HTTP {}", status.as_u16())
        } else {
            format!("HTTP {} {kind}: {}", status.as_u16(), shorten(&message))
        };
        Err(match kind {
            "NOT_FOUND" => Failure::NotFound(message),
            "ALREADY_EXISTS" => Failure::AlreadyExists(message),
            "FAILED_PRECONDITION" => Failure::PreconditionFailed(message),
            // A server error may come after the write was taken.
            _ if status.is_server_error() => Failure::Unknown(why),
            _ => Failure::Refused {
                why,
                transient: matches!(status.as_u16(), 401 | 408 | 429),
            },
        })
    }

    /// Runs `attempt` until it succeeds, fails for good, or the budget ends. A failure that
    /// may have been applied is only repeated when `repeatable`.
    async fn with_retries<T, F, Fut>(&self, repeatable: bool, attempt: F) -> Retried<T>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<T, Failure>>,
    {
        let mut maybe_applied = false;
        let mut tries = 0;
        loop {
            tries += 1;
            let failure = match attempt().await {
                Ok(value) => {
                    return Retried {
                        result: Ok(value),
                        maybe_applied,
                    };
                }
                Err(failure) => failure,
            };
            let is_unknown = matches!(failure, Failure::Unknown(_));
            let again = failure.transient() && (repeatable || !is_unknown) && tries < MAX_ATTEMPTS;
            let pause = if again {
                deadline::backoff(tries, MIN_CALL_TIME)
            } else {
                None
            };
            maybe_applied |= is_unknown;
            match pause {
                Some(pause) => {
                    tracing::warn!(error = ?failure, tries, "firestore call failed; retrying");
                    tokio::time::sleep(pause).await;
                }
                None => {
                    return Retried {
                        result: Err(failure),
                        maybe_applied,
                    };
                }
            }
        }
    }

    /// The path named by a failed commit's error message, if it is one of `candidates`;
    /// otherwise the only candidate, or all of them.
    fn failed_path(&self, message: &str, candidates: &[&DocPath]) -> String {
        let named = path_in_message(message, &self.documents_name);
        if let Some(found) = candidates
            .iter()
            .find(|c| named.as_deref() == Some(c.as_str()))
        {
            return found.as_str().to_owned();
        }
        match candidates {
            [one] => one.as_str().to_owned(),
            many => {
                let names: Vec<&str> = many.iter().map(|c| c.as_str()).collect();
                format!("one of {}", names.join(", "))
            }
        }
    }
}

/// The outcome of [`FirestoreStore::with_retries`]: whether an earlier attempt may have been
/// applied tells a repeat's `AlreadyExists` or `NotFound` apart from someone else's.
struct Retried<T> {
    result: Result<T, Failure>,
    maybe_applied: bool,
}

/// A failure the operation has no special meaning for, as a `StoreError`.
fn unavailable(operation: &str, target: &str, failure: Failure) -> StoreError {
    let context = |reason: String| format!("firestore {operation} {target}: {reason}");
    match failure {
        Failure::Unknown(reason) => StoreError::Indeterminate(context(reason)),
        Failure::Refused { why, .. } => StoreError::Unavailable(context(why)),
        // Statuses the operation did not expect (e.g. NOT_FOUND from a listing).
        Failure::NotFound(m) => {
            StoreError::Unavailable(context(format!("NOT_FOUND: {}", shorten(&m))))
        }
        Failure::AlreadyExists(m) => {
            StoreError::Unavailable(context(format!("ALREADY_EXISTS: {}", shorten(&m))))
        }
        Failure::PreconditionFailed(m) => {
            StoreError::Unavailable(context(format!("FAILED_PRECONDITION: {}", shorten(&m))))
        }
    }
}

/// A read's failure: a read writes nothing, whatever happened to it.
fn read_failed(operation: &str, target: &str, failure: Failure) -> StoreError {
    match unavailable(operation, target, failure) {
        StoreError::Indeterminate(why) => StoreError::Unavailable(why),
        other => other,
    }
}

pub(super) fn shorten(message: &str) -> String {
    let line = message.lines().next().unwrap_or_default();
    line.chars().take(MAX_MESSAGE).collect()
}

/// Percent-encodes a path segment; ids are `[A-Za-z0-9_-]` already, this only guards
/// segments built some other way.
fn encode_segment(segment: &str) -> String {
    percent_encode(segment)
}

/// `url?k=v&...`, percent-encoded by hand: reqwest's `query` writes a space as `+`, which
/// the emulator does not decode (a field named `with space` would not match its mask).
fn with_query(url: &str, pairs: &[(&str, &str)]) -> String {
    let mut out = url.to_owned();
    for (i, (key, value)) in pairs.iter().enumerate() {
        out.push(if i == 0 { '?' } else { '&' });
        out.push_str(&percent_encode(key));
        out.push('=');
        out.push_str(&percent_encode(value));
    }
    out
}

#[async_trait]
impl DocumentStore for FirestoreStore {
    async fn get(&self, path: &DocPath) -> Result<Option<Document>, StoreError> {
        let url = self.doc_url(path.as_str());
        let attempt = self
            .with_retries(true, || self.call(self.http.get(&url)))
            .await;
        match attempt.result {
            Ok(doc) => decode_document(&doc)
                .map(Some)
                .map_err(|e| read_failed("get", path.as_str(), Failure::Unknown(e))),
            Err(Failure::NotFound(_)) => Ok(None),
            Err(other) => Err(read_failed("get", path.as_str(), other)),
        }
    }

    async fn list(&self, collection: &CollectionPath) -> Result<Vec<Document>, StoreError> {
        let fail = |f| read_failed("list", collection.as_str(), f);
        let url = self.doc_url(collection.as_str());
        let mut docs = Vec::new();
        let mut page_token: Option<String> = None;
        loop {
            let mut query = vec![("pageSize", PAGE_SIZE)];
            if let Some(token) = &page_token {
                query.push(("pageToken", token));
            }
            let page_url = with_query(&url, &query);
            let page = self
                .with_retries(true, || self.call(self.http.get(&page_url)))
                .await
                .result
                .map_err(fail)?;
            if let Some(items) = page.get("documents") {
                let items = items
                    .as_array()
                    .ok_or_else(|| fail(Failure::Unknown("documents is not a list".into())))?;
                for item in items {
                    docs.push(decode_document(item).map_err(|e| fail(Failure::Unknown(e)))?);
                }
            }
            match page.get("nextPageToken").and_then(Value::as_str) {
                Some(token) if !token.is_empty() => page_token = Some(token.to_owned()),
                _ => return Ok(docs),
            }
        }
    }

    async fn list_descendants(
        &self,
        parent: &DocPath,
        collection_id: &str,
    ) -> Result<Vec<Document>, StoreError> {
        let url = format!("{}:runQuery", self.doc_url(parent.as_str()));
        let found = self
            .group_query(&url, collection_id, None)
            .await
            .map_err(|f| read_failed("query", parent.as_str(), f))?;
        Ok(found.into_iter().map(|(_, doc)| doc).collect())
    }

    async fn list_page(
        &self,
        listing: &Listing,
        after: Option<&DocPath>,
        limit: usize,
    ) -> Result<Vec<(DocPath, Document)>, StoreError> {
        let (parent, collection_id, all_descendants) = match listing {
            Listing::Collection(collection) => {
                let (parent, id) = collection
                    .as_str()
                    .rsplit_once('/')
                    .unwrap_or(("", collection.as_str()));
                (parent.to_owned(), id, false)
            }
            Listing::Descendants {
                parent,
                collection_id,
            } => (parent.as_str().to_owned(), *collection_id, true),
        };
        let url = if parent.is_empty() {
            format!("{}:runQuery", self.documents_url)
        } else {
            format!("{}:runQuery", self.doc_url(&parent))
        };
        // Ordered by name, the order with no index to declare (also for collection groups).
        let mut query = json!({
            "structuredQuery": {
                "from": [{ "collectionId": collection_id, "allDescendants": all_descendants }],
                "orderBy": [{ "field": { "fieldPath": "__name__" }, "direction": "ASCENDING" }],
                "limit": limit.clamp(1, i32::MAX as usize),
            }
        });
        if let Some(after) = after {
            query["structuredQuery"]["startAt"] = json!({
                "values": [{ "referenceValue": self.doc_name(after) }],
                "before": false,
            });
        }
        let found = self
            .run_query(&url, &query)
            .await
            .map_err(|f| read_failed("query", &parent, f))?;
        Ok(self.with_paths(found))
    }

    async fn find_in_group(
        &self,
        collection_id: &str,
        field: &str,
        value: &str,
    ) -> Result<Vec<(DocPath, Document)>, StoreError> {
        let url = format!("{}:runQuery", self.documents_url);
        let filter = json!({
            "fieldFilter": {
                "field": { "fieldPath": quote_field_path(field) },
                "op": "EQUAL",
                "value": { "stringValue": value },
            }
        });
        let found = self
            .group_query(&url, collection_id, Some(filter))
            .await
            .map_err(|f| read_failed("query", collection_id, f))?;
        Ok(self.with_paths(found))
    }

    async fn create(&self, path: &DocPath, fields: Fields) -> Result<Document, StoreError> {
        let (collection, id) = path
            .as_str()
            .rsplit_once('/')
            .ok_or_else(|| StoreError::Unavailable(format!("not a document path: {path:?}")))?;
        let body = json!({ "fields": encode_fields(&fields) });
        let url = with_query(&self.doc_url(collection), &[("documentId", id)]);
        let attempt = self
            .with_retries(true, || self.call(self.http.post(&url).json(&body)))
            .await;
        match attempt.result {
            Ok(doc) => decode_document(&doc)
                .map_err(|e| unavailable("create", path.as_str(), Failure::Unknown(e))),
            // A repeat that finds the document: if it holds what was sent, it is this
            // create's own earlier attempt, which did get through.
            Err(Failure::AlreadyExists(_)) if attempt.maybe_applied => match self.get(path).await {
                Ok(Some(doc)) if doc.fields == fields => Ok(doc),
                Ok(_) => Err(StoreError::AlreadyExists(path.as_str().into())),
                Err(e) => Err(StoreError::Indeterminate(e.to_string())),
            },
            Err(Failure::AlreadyExists(_)) => Err(StoreError::AlreadyExists(path.as_str().into())),
            Err(other) => Err(unavailable("create", path.as_str(), other)),
        }
    }

    async fn update(
        &self,
        path: &DocPath,
        fields: Fields,
        mask: &[String],
    ) -> Result<Document, StoreError> {
        if mask.is_empty() {
            // A PATCH without a mask would replace the whole document.
            return Err(StoreError::Unavailable(format!(
                "firestore update {}: an update needs a field mask",
                path.as_str()
            )));
        }
        let quoted: Vec<String> = mask.iter().map(|name| quote_field_path(name)).collect();
        let mut query: Vec<(&str, &str)> = quoted
            .iter()
            .map(|path| ("updateMask.fieldPaths", path.as_str()))
            .collect();
        query.push(("currentDocument.exists", "true"));
        let body = json!({ "fields": encode_fields(&masked(&fields, mask)) });
        let url = with_query(&self.doc_url(path.as_str()), &query);
        // Setting the same fields again is harmless: the repeat's result is the final state.
        let attempt = self
            .with_retries(true, || self.call(self.http.patch(&url).json(&body)))
            .await;
        match attempt.result {
            Ok(doc) => decode_document(&doc)
                .map_err(|e| unavailable("update", path.as_str(), Failure::Unknown(e))),
            Err(Failure::NotFound(_)) => Err(StoreError::NotFound(path.as_str().into())),
            Err(other) => Err(unavailable("update", path.as_str(), other)),
        }
    }

    async fn delete(&self, path: &DocPath) -> Result<(), StoreError> {
        let url = with_query(
            &self.doc_url(path.as_str()),
            &[("currentDocument.exists", "true")],
        );
        let attempt = self
            .with_retries(true, || self.call(self.http.delete(&url)))
            .await;
        match attempt.result {
            Ok(_) => Ok(()),
            // A repeat finding it gone: gone it is, by this delete's earlier attempt or not.
            Err(Failure::NotFound(_)) if attempt.maybe_applied => Ok(()),
            Err(Failure::NotFound(_)) => Err(StoreError::NotFound(path.as_str().into())),
            Err(other) => Err(unavailable("delete", path.as_str(), other)),
        }
    }

    async fn commit(&self, writes: Vec<Write>) -> Result<Vec<Option<Version>>, StoreError> {
        if writes.is_empty() {
            return Ok(Vec::new());
        }
        let body = json!({
            "writes": writes.iter().map(|w| self.encode_write(w)).collect::<Vec<_>>()
        });
        let url = format!("{}:commit", self.documents_url);
        let attempt = self
            .with_retries(false, || self.call(self.http.post(&url).json(&body)))
            .await;
        let candidates = |keep: fn(&Write) -> bool| -> Vec<&DocPath> {
            writes.iter().filter(|w| keep(w)).map(Write::path).collect()
        };
        match attempt.result {
            Ok(answer) => commit_versions(&answer, &writes)
                .map_err(|e| unavailable("commit", "", Failure::Unknown(e))),
            Err(Failure::NotFound(message)) => Err(StoreError::NotFound(self.failed_path(
                &message,
                &candidates(|w| !matches!(w, Write::Create { .. })),
            ))),
            Err(Failure::AlreadyExists(message)) => Err(StoreError::AlreadyExists(
                self.failed_path(&message, &candidates(|w| matches!(w, Write::Create { .. }))),
            )),
            Err(Failure::PreconditionFailed(message)) => {
                Err(StoreError::PreconditionFailed(self.failed_path(
                    &message,
                    &candidates(|w| !matches!(w, Write::Create { .. })),
                )))
            }
            Err(other) => Err(unavailable(
                "commit",
                &format!("({} writes)", writes.len()),
                other,
            )),
        }
    }
}

impl FirestoreStore {
    /// A collection-group query of `collection_id` (with an optional `where` filter) under the
    /// document whose `:runQuery` URL is `url`: every document found, with its full name.
    async fn group_query(
        &self,
        url: &str,
        collection_id: &str,
        filter: Option<Value>,
    ) -> Result<Vec<(String, Document)>, Failure> {
        // No orderBy: a collection-group order needs a composite index in production.
        let mut query = json!({
            "structuredQuery": {
                "from": [{ "collectionId": collection_id, "allDescendants": true }]
            }
        });
        if let Some(filter) = filter {
            query["structuredQuery"]["where"] = filter;
        }
        self.run_query(url, &query).await
    }

    /// Runs one structured query; the documents it found, with their full names.
    async fn run_query(
        &self,
        url: &str,
        query: &Value,
    ) -> Result<Vec<(String, Document)>, Failure> {
        let answer = self
            .with_retries(true, || self.call(self.http.post(url).json(query)))
            .await
            .result?;
        // A stream of results, each with a `document` except the bookkeeping ones.
        let results = answer
            .as_array()
            .ok_or_else(|| Failure::Unknown("the query answer is not a list".into()))?;
        results
            .iter()
            .filter_map(|r| r.get("document"))
            .map(|d| {
                let name = d
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                decode_document(d)
                    .map(|doc| (name, doc))
                    .map_err(Failure::Unknown)
            })
            .collect()
    }
}

impl FirestoreStore {
    /// Found documents with their paths (names outside this database, or not built of ids,
    /// cannot be ours and are passed over).
    fn with_paths(&self, found: Vec<(String, Document)>) -> Vec<(DocPath, Document)> {
        let root = format!("{}/", self.documents_name);
        found
            .into_iter()
            .filter_map(|(name, doc)| Some((DocPath::parse(name.strip_prefix(&root)?)?, doc)))
            .collect()
    }

    fn encode_write(&self, write: &Write) -> Value {
        let condition_of = |p: &Precondition| match p {
            Precondition::Exists => Some(json!({ "exists": true })),
            Precondition::At(version) => Some(json!({ "updateTime": version.as_str() })),
            Precondition::None => None,
        };
        let mut encoded = match write {
            Write::Create { path, fields } => json!({
                "update": { "name": self.doc_name(path), "fields": encode_fields(fields) },
                "currentDocument": { "exists": false },
            }),
            Write::Update {
                path, fields, mask, ..
            } => json!({
                "update": {
                    "name": self.doc_name(path),
                    "fields": encode_fields(&masked(fields, mask)),
                },
                "updateMask": {
                    "fieldPaths": mask.iter().map(|m| quote_field_path(m)).collect::<Vec<_>>(),
                },
            }),
            Write::Delete { path, .. } => json!({ "delete": self.doc_name(path) }),
        };
        let condition = match write {
            Write::Update { precondition, .. } | Write::Delete { precondition, .. } => {
                condition_of(precondition)
            }
            Write::Create { .. } => None,
        };
        if let (Some(condition), Some(object)) = (condition, encoded.as_object_mut()) {
            object.insert("currentDocument".into(), condition);
        }
        encoded
    }
}

/// The path after `documents/` in a Firestore error message, in any of the forms seen:
/// production (`No document to update: projects/p/databases/(default)/documents/a/b`), the
/// emulator's ALREADY_EXISTS (`EntityRef{..., path=/a/b}`) and its NOT_FOUND (a protobuf
/// dump of `Element { type: "a" name: "b" }` entries).
fn path_in_message(message: &str, documents_name: &str) -> Option<String> {
    let take_path = |rest: &str| {
        let end = rest
            .find(|c: char| c.is_whitespace() || matches!(c, '}' | ')' | ',' | '"' | '\'' | '>'))
            .unwrap_or(rest.len());
        let path = rest[..end].trim_end_matches(['.', '/']);
        (!path.is_empty()).then(|| path.to_owned())
    };
    let prefix = format!("{documents_name}/");
    if let Some(at) = message.find(&prefix) {
        return take_path(&message[at + prefix.len()..]);
    }
    if let Some(at) = message.find("path=/") {
        return take_path(&message[at + "path=/".len()..]);
    }
    let quoted_after = |key: &str, from: &str| -> Option<(String, usize)> {
        let at = from.find(key)? + key.len();
        let len = from[at..].find('"')?;
        Some((from[at..at + len].to_owned(), at + len + 1))
    };
    let mut segments = Vec::new();
    let mut rest = message.split_once("path <")?.1;
    while let Some((kind, next)) = quoted_after("type: \"", rest) {
        let (name, after) = quoted_after("name: \"", &rest[next..])?;
        segments.push(kind);
        segments.push(name);
        rest = &rest[next + after..];
    }
    (!segments.is_empty()).then(|| segments.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> FirestoreStore {
        let config = FirestoreConfig {
            base_url: "http://127.0.0.1:1/".into(),
            emulator: true,
            service_account: None,
            token_url: None,
        };
        FirestoreStore::new(
            &config,
            "demo-p",
            reqwest::Client::new(),
            Duration::from_secs(1),
        )
        .expect("store")
    }

    #[test]
    fn paths_are_found_in_every_error_message_form() {
        let root = "projects/demo-p/databases/(default)/documents";
        let production = "No document to update: projects/demo-p/databases/(default)/documents/users/u1/businesses/b1";
        assert_eq!(
            path_in_message(production, root).as_deref(),
            Some("users/u1/businesses/b1")
        );
        let exists = "entity already exists: EntityRef{partitionRef=dev~demo-p, path=/users/u2/businesses/b1}";
        assert_eq!(
            path_in_message(exists, root).as_deref(),
            Some("users/u2/businesses/b1")
        );
        let missing = "no entity to update: app: \"dev~demo-p\"\npath <\n  Element {\n    type: \"users\"\n    name: \"u2\"\n  }\n  Element {\n    type: \"businesses\"\n    name: \"nope\"\n  }\n>\n";
        assert_eq!(
            path_in_message(missing, root).as_deref(),
            Some("users/u2/businesses/nope")
        );
        assert_eq!(path_in_message("something else", root), None);
    }

    #[test]
    fn urls_and_names() {
        let s = store();
        assert_eq!(
            s.doc_url("users/u1"),
            "http://127.0.0.1:1/v1/projects/demo-p/databases/(default)/documents/users/u1"
        );
        assert_eq!(
            s.doc_url("users/a b/x"),
            "http://127.0.0.1:1/v1/projects/demo-p/databases/(default)/documents/users/a%20b/x"
        );
        let path = DocPath::user(&crate::ids::Uid::parse("u1").expect("uid"));
        assert_eq!(
            s.doc_name(&path),
            "projects/demo-p/databases/(default)/documents/users/u1"
        );
        let one = [&path];
        assert_eq!(s.failed_path("unrelated", &one), "users/u1");
        assert_eq!(
            with_query(
                "http://h/d",
                &[("updateMask.fieldPaths", "`a b`"), ("x", "1")]
            ),
            "http://h/d?updateMask.fieldPaths=%60a%20b%60&x=1"
        );
    }

    #[test]
    fn bad_configuration_is_an_error_not_a_panic() {
        let config = FirestoreConfig {
            base_url: "https://firestore.googleapis.com".into(),
            emulator: false,
            service_account: None,
            token_url: None,
        };
        assert!(
            FirestoreStore::new(&config, "p", reqwest::Client::new(), Duration::from_secs(1))
                .is_err()
        );
        let config = FirestoreConfig {
            service_account: Some("{not json".into()),
            ..config
        };
        assert!(
            FirestoreStore::new(&config, "p", reqwest::Client::new(), Duration::from_secs(1))
                .is_err()
        );
        let emulator = FirestoreConfig {
            base_url: "http://127.0.0.1:8080".into(),
            emulator: true,
            service_account: None,
            token_url: None,
        };
        assert!(
            FirestoreStore::new(
                &emulator,
                "a/b",
                reqwest::Client::new(),
                Duration::from_secs(1)
            )
            .is_err()
        );
        assert!(
            FirestoreStore::new(
                &emulator,
                "",
                reqwest::Client::new(),
                Duration::from_secs(1)
            )
            .is_err()
        );
    }
}
