//! `POST /ai/generate-ad-image`: the product goes `processing`, the AI provider makes an ad
//! image and a caption, the image is stored, and the product goes `enriched` (or `failed`
//! with an `error`), each step pushed as `product:updated`.
//!
//! The product's own `status` is the lock, taken without an extra read: the product is read
//! first (the prompt needs it anyway), a product already `processing` is refused (409), and
//! the `processing` write carries the version that read returned as its precondition, so of
//! two generations started at once only one gets through (the other one's write finds the
//! version changed: 409). It does not matter how the product became `processing` (another
//! generation, a PATCH from n8n, a create): it is refused until its `processingUntil` has
//! passed. A generation sets `processingUntil` to the writer lease, which outlasts the
//! function's timeout; [`sweep_stuck`] marks any product still `processing` past its
//! `processingUntil` as `failed`, so none stays stuck.
//!
//! Cost of a generation: 1 read (the product) and 2 writes (`processing`, then the result).

use std::time::Instant;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use crate::ai::{AdRequest, AiProvider};
use crate::app::App;
use crate::auth::Principal;
use crate::domain::{self, Patch, ProductStatus};
use crate::error::AppError;
use crate::events::{DocEvent, Outbox};
use crate::handlers::{changes, processing_until, store_error};
use crate::ids::{BusinessId, ProductId, Uid};
use crate::images::{ImageStore, ObjectName};
use crate::limits::Budget;
use crate::store::{DocPath, Document, Fields, Precondition, StoreError, Write};

/// Longest `prompt`, in characters.
pub const MAX_PROMPT_CHARS: usize = 1000;

/// A validated request body: `{businessId, productId, prompt?}`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenerateRequest {
    /// The product's business.
    #[serde(rename = "businessId")]
    pub business: BusinessId,
    /// The product.
    #[serde(rename = "productId")]
    pub product: ProductId,
    /// The user's direction; a blank prompt is none.
    #[serde(default)]
    pub prompt: Option<String>,
}

impl GenerateRequest {
    /// 400 for an unknown field, a missing or malformed id, or a prompt that is not a string
    /// of at most [`MAX_PROMPT_CHARS`] characters.
    pub fn parse(body: Map<String, Value>) -> Result<Self, AppError> {
        let mut request: Self = serde_json::from_value(Value::Object(body))
            .map_err(|e| AppError::BadRequest(format!("request body: {e}")))?;
        if let Some(prompt) = &request.prompt
            && prompt.chars().count() > MAX_PROMPT_CHARS
        {
            return Err(AppError::BadRequest(format!(
                "field `prompt` must be a string of at most {MAX_PROMPT_CHARS} characters"
            )));
        }
        request.prompt = request
            .prompt
            .map(|p| p.trim().to_owned())
            .filter(|p| !p.is_empty());
        Ok(request)
    }
}

/// The product a generation works on.
struct Target<'a> {
    uid: &'a Uid,
    business: &'a BusinessId,
    product: &'a ProductId,
    path: DocPath,
}

impl Target<'_> {
    fn ids(&self) -> [(&str, &str); 2] {
        [
            ("id", self.product.as_str()),
            ("businessId", self.business.as_str()),
        ]
    }
}

/// A patch that sets `status` (with the fields `set`) and clears `clear`.
fn status_patch(status: ProductStatus, mut set: Fields, clear: &[&str]) -> Patch {
    set.insert("status".into(), json!(status.as_str()));
    let mut mask: Vec<String> = set.keys().cloned().collect();
    mask.extend(clear.iter().map(|c| (*c).to_owned()));
    Patch { set, mask }
}

/// When a `processing` product's deadline passes: its `processingUntil`, or, for a product
/// that has none (set before this field existed), its `updatedAt` plus `timeout`.
fn processing_deadline(product: &Fields, timeout: std::time::Duration) -> Option<DateTime<Utc>> {
    let parse = |name: &str| {
        product
            .get(name)
            .and_then(Value::as_str)
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
            .map(|t| t.with_timezone(&Utc))
    };
    parse("processingUntil").or_else(|| {
        parse("updatedAt").map(|t| t + chrono::Duration::from_std(timeout).unwrap_or_default())
    })
}

/// `POST /ai/generate-ad-image`: the final product (200), or the provider's error mapped to
/// 502/504 once the product is marked `failed`; 404 for a missing product (no event), 409
/// while the product is `processing`.
pub async fn generate_ad_image(
    app: &App,
    who: &Principal,
    request: GenerateRequest,
) -> Result<Value, AppError> {
    let missing = |what: &str| AppError::internal("configuration", format!("no {what}"));
    let ai = app.ai.as_deref().ok_or_else(|| missing("AI provider"))?;
    let images = app
        .images
        .as_deref()
        .ok_or_else(|| missing("image store (STORAGE_BUCKET)"))?;
    let target = Target {
        uid: who.uid(),
        business: &request.business,
        product: &request.product,
        path: DocPath::product(who.uid(), &request.business, &request.product),
    };
    let started = Instant::now();
    let product = take(app, &target).await?;
    let made = make(ai, images, &target, &product, request.prompt.as_deref()).await;
    let result = match made {
        Ok(made) => finish(app, images, &target, made).await,
        Err(err) => fail(app, &target, err).await,
    };
    let outcome = match &result {
        Ok(_) => "enriched",
        Err(e) => e.code(),
    };
    crate::telemetry::emit_generation(result.is_ok());
    tracing::info!(
        product = %target.product,
        outcome,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "ad generation"
    );
    result
}

fn busy() -> AppError {
    AppError::Conflict("an ad is already being made for this product".into())
}

/// Reads the product and sets it `processing` if it is not already: the write carries the
/// version read as its precondition. Pushes the `processing` event; returns the product as
/// read (for the prompt).
async fn take(app: &App, t: &Target<'_>) -> Result<Fields, AppError> {
    let Document { fields, version } = app
        .store()?
        .get(&t.path)
        .await
        .map_err(|e| store_error(e, "product"))?
        .ok_or_else(|| AppError::NotFound("product not found".into()))?;
    if ProductStatus::of(&fields) == Some(ProductStatus::Processing)
        && processing_deadline(&fields, app.timing.processing_timeout)
            .is_some_and(|deadline| deadline > Utc::now())
    {
        return Err(busy());
    }
    let mut set = Fields::new();
    set.insert(
        "processingUntil".into(),
        json!(processing_until(app.timing.writer_lease)),
    );
    set.insert("updatedAt".into(), json!(domain::now_timestamp()));
    let patch = status_patch(ProductStatus::Processing, set, &["error"]);
    let outbox = Outbox::open_spending(app, t.uid, Some(Budget::Generations)).await?;
    let write = Write::Update {
        path: t.path.clone(),
        fields: patch.set.clone(),
        mask: patch.mask.clone(),
        precondition: Precondition::At(version),
    };
    let written = match app.store()?.commit(vec![write]).await {
        Ok(versions) => match versions.into_iter().next().flatten() {
            Some(version) => {
                let mut doc = Document { fields, version };
                for name in &patch.mask {
                    match patch.set.get(name) {
                        Some(value) => doc.fields.insert(name.clone(), value.clone()),
                        None => doc.fields.remove(name),
                    };
                }
                let event = changes(&patch, &t.ids(), &doc);
                Ok((doc.fields, DocEvent::ProductUpdated, event))
            }
            None => Err(StoreError::Indeterminate(
                "the commit returned no version".into(),
            )),
        },
        Err(err) => Err(err),
    };
    match outbox.finish(written).await {
        Ok(product) => Ok(product),
        // Someone changed the product since it was read: most likely another generation.
        Err(StoreError::PreconditionFailed(_)) => Err(busy()),
        Err(err) => Err(store_error(err, "product")),
    }
}

/// What a successful provider call left: the caption and the stored image.
struct Made {
    caption: String,
    url: String,
    object: ObjectName,
}

/// Asks the provider, stores the image.
async fn make(
    ai: &dyn AiProvider,
    images: &dyn ImageStore,
    t: &Target<'_>,
    product: &Fields,
    prompt: Option<&str>,
) -> Result<Made, AppError> {
    let creative = ai.generate(AdRequest { product, prompt }).await?;
    let object = ObjectName::new(t.uid, t.product, creative.image.kind);
    let url = images.put(&object, &creative.image).await?;
    Ok(Made {
        caption: creative.caption,
        url,
        object,
    })
}

/// Writes `patch` (plus `updatedAt`) to the product and pushes its event; the product as
/// stored.
async fn conclude(app: &App, t: &Target<'_>, patch: Patch) -> Result<Document, StoreError> {
    let mut patch = patch;
    patch
        .set
        .insert("updatedAt".into(), json!(domain::now_timestamp()));
    patch.mask.push("updatedAt".into());
    let outbox = Outbox::open(app, t.uid)
        .await
        .map_err(|e| StoreError::Unavailable(e.to_string()))?;
    let store = app
        .store()
        .map_err(|e| StoreError::Unavailable(e.to_string()))?;
    let written = store
        .update(&t.path, patch.set.clone(), &patch.mask)
        .await
        .map(|doc| {
            let event = changes(&patch, &t.ids(), &doc);
            (doc, DocEvent::ProductUpdated, event)
        });
    outbox.finish(written).await
}

fn deleted() -> AppError {
    AppError::NotFound("the product was deleted during generation".into())
}

/// Sets `enriched` with the image and caption; pushes the event.
async fn finish(
    app: &App,
    images: &dyn ImageStore,
    t: &Target<'_>,
    made: Made,
) -> Result<Value, AppError> {
    let mut set = Fields::new();
    set.insert("generatedImageUrl".into(), json!(made.url));
    set.insert("caption".into(), json!(made.caption));
    let patch = status_patch(ProductStatus::Enriched, set, &["error", "processingUntil"]);
    match conclude(app, t, patch).await {
        Ok(doc) => Ok(doc.to_json()),
        Err(StoreError::NotFound(_)) => {
            if let Err(e) = images.delete(&made.object).await {
                tracing::warn!(object = made.object.as_str(), error = %e, "orphan image not deleted");
            }
            Err(deleted())
        }
        Err(err) => Err(store_error(err, "product")),
    }
}

/// Sets `failed` with the error's message; pushes the event; returns the error.
async fn fail(app: &App, t: &Target<'_>, err: AppError) -> Result<Value, AppError> {
    let message = match &err {
        // Our own dependencies' details stay in the logs.
        AppError::Internal(_) => "the ad could not be made (internal error); try again".to_owned(),
        other => other.to_string(),
    };
    let mut set = Fields::new();
    set.insert(
        "error".into(),
        json!(crate::ai::truncate(
            &message,
            domain::max_chars(domain::Resource::Product, "error")
        )),
    );
    let patch = status_patch(ProductStatus::Failed, set, &["processingUntil"]);
    match conclude(app, t, patch).await {
        Ok(_) => Err(err),
        Err(StoreError::NotFound(_)) => Err(deleted()),
        Err(store_err) => {
            // The sweeper marks it failed once its processingUntil passes.
            tracing::error!(product = %t.product, error = %store_err, "failed generation not recorded");
            Err(err)
        }
    }
}

/// What one sweep did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sweep {
    /// Products found `processing`.
    pub processing: usize,
    /// Of those, the ones past their deadline, marked `failed`.
    pub failed: usize,
}

/// Marks every product still `processing` past its `processingUntil` as `failed`, with its
/// event: its job died (a generation whose function was killed, an n8n run that never
/// reported back). One collection-group query; each write carries the version it read, so a
/// job finishing at the same moment wins.
pub async fn sweep_stuck(app: &App) -> Result<Sweep, AppError> {
    let found = app
        .store()?
        .find_in_group("products", "status", ProductStatus::Processing.as_str())
        .await
        .map_err(|e| store_error(e, "products"))?;
    let mut sweep = Sweep {
        processing: found.len(),
        failed: 0,
    };
    let now = Utc::now();
    for (path, doc) in found {
        let overdue = processing_deadline(&doc.fields, app.timing.processing_timeout)
            .is_none_or(|deadline| deadline <= now);
        if !overdue {
            continue;
        }
        let ids = (|| {
            let uid = Uid::parse(path.segment_after("users")?).ok()?;
            let business = BusinessId::parse(path.segment_after("businesses")?).ok()?;
            let product = ProductId::parse(path.segment_after("products")?).ok()?;
            Some((uid, business, product))
        })();
        let Some((uid, business, product)) = ids else {
            tracing::warn!(
                path = path.as_str(),
                "a product outside the user tree; skipped"
            );
            continue;
        };
        if mark_failed(app, &uid, &business, &product, doc).await? {
            sweep.failed += 1;
        }
    }
    if sweep.failed > 0 {
        crate::telemetry::emit_stuck(sweep.failed);
    }
    if sweep.processing > 0 {
        tracing::info!(
            processing = sweep.processing,
            failed = sweep.failed,
            "sweep"
        );
    }
    Ok(sweep)
}

/// Sets one overdue product `failed`, if it is still at the version the sweep read.
async fn mark_failed(
    app: &App,
    uid: &Uid,
    business: &BusinessId,
    product: &ProductId,
    doc: Document,
) -> Result<bool, AppError> {
    let mut set = Fields::new();
    set.insert(
        "error".into(),
        json!("the ad was not finished in time; try again"),
    );
    set.insert("updatedAt".into(), json!(domain::now_timestamp()));
    let patch = status_patch(ProductStatus::Failed, set, &["processingUntil"]);
    let path = DocPath::product(uid, business, product);
    let outbox = Outbox::open(app, uid).await?;
    let write = Write::Update {
        path,
        fields: patch.set.clone(),
        mask: patch.mask.clone(),
        precondition: Precondition::At(doc.version),
    };
    let written = match app.store()?.commit(vec![write]).await {
        Ok(versions) => match versions.into_iter().next().flatten() {
            Some(version) => {
                let ids = [("id", product.as_str()), ("businessId", business.as_str())];
                let mut fields = doc.fields;
                fields.extend(patch.set.clone());
                fields.remove("processingUntil");
                let event = changes(&patch, &ids, &Document { fields, version });
                Ok(((), DocEvent::ProductUpdated, event))
            }
            None => Err(StoreError::Indeterminate(
                "the commit returned no version".into(),
            )),
        },
        Err(err) => Err(err),
    };
    match outbox.finish(written).await {
        Ok(()) => {
            tracing::warn!(%uid, product = %product, "a stuck product was marked failed");
            Ok(true)
        }
        // It changed or went away since the query: its job (or its owner) got there first.
        Err(StoreError::PreconditionFailed(_) | StoreError::NotFound(_)) => Ok(false),
        Err(err) => Err(store_error(err, "product")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn requests_are_validated() {
        let ok = GenerateRequest::parse(body(
            json!({"businessId": "b1", "productId": "p1", "prompt": "  warm  "}),
        ))
        .unwrap();
        assert_eq!(ok.prompt.as_deref(), Some("warm"));
        let blank = GenerateRequest::parse(body(
            json!({"businessId": "b1", "productId": "p1", "prompt": " "}),
        ))
        .unwrap();
        assert_eq!(blank.prompt, None);
        let longest = "p".repeat(MAX_PROMPT_CHARS);
        assert!(
            GenerateRequest::parse(body(
                json!({"businessId": "b", "productId": "p", "prompt": longest})
            ))
            .is_ok()
        );
        for bad in [
            json!({"businessId": "b1", "productId": "p1", "extra": 1}),
            json!({"businessId": "b1"}),
            json!({"businessId": "b/1", "productId": "p1"}),
            json!({"businessId": "b1", "productId": 7}),
            json!({"businessId": "b1", "productId": "p1", "prompt": 3}),
            json!({"businessId": "b1", "productId": "p1", "prompt": "p".repeat(MAX_PROMPT_CHARS + 1)}),
        ] {
            let err = GenerateRequest::parse(body(bad.clone())).unwrap_err();
            assert_eq!(err.status(), 400, "{bad}");
        }
    }

    #[test]
    fn the_deadline_of_a_processing_product() {
        let fields = |v: Value| v.as_object().cloned().unwrap_or_default();
        let timeout = std::time::Duration::from_secs(600);
        let until = processing_deadline(
            &fields(
                json!({"processingUntil": "2026-01-01T00:00:10Z", "updatedAt": "2026-01-01T00:00:00Z"}),
            ),
            timeout,
        );
        assert_eq!(until.unwrap().timestamp(), 1_767_225_610);
        // A product set processing before the field existed: its last update plus the timeout.
        let legacy = processing_deadline(
            &fields(json!({"updatedAt": "2026-01-01T00:00:00Z"})),
            timeout,
        );
        assert_eq!(legacy.unwrap().timestamp(), 1_767_225_600 + 600);
        assert_eq!(processing_deadline(&Fields::new(), timeout), None);
    }
}
