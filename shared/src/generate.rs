//! `POST /ai/generate-ad-image`: the product goes `processing`, the AI provider makes an ad
//! image and a caption, the image is stored, and the product goes `enriched` (or `failed`
//! with an `error`), each step pushed as `product:updated`.
//!
//! One generation per product at a time, decided by Firestore without a read: the first
//! commit creates the lock document `.../products/{id}/locks/generation` (a second request
//! fails that create: 409) and sets `processing` on the product (a missing product fails
//! that update: 404), atomically. The last commit writes the result and deletes the lock.
//!
//! A function that dies mid-way leaves its lock behind. The lock carries `expiresAt`, a
//! lease ([`LOCK_LEASE`]) longer than the function can run, so an expired lock's holder is
//! certainly gone. A request that meets an expired lock takes it over in one commit that also
//! creates `locks/takeover-{old token}`: of two requests taking over the same lock, only one
//! can create that marker, so the takeover is as exclusive as the first lock. The markers
//! stay (one small document per crash), so a late taker of an old lock still loses.
//!
//! Cost of a generation: 2 writes (the two commits) and 1 read (the product, after the
//! lock, to build the prompt). A conflict costs the failed commit plus 1 read of the lock.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rand::Rng;
use serde_json::{Map, Value, json};

use crate::ai::{AdRequest, AiProvider};
use crate::app::App;
use crate::auth::Principal;
use crate::domain::{self, Patch};
use crate::error::AppError;
use crate::events;
use crate::handlers::{changes, store_error};
use crate::ids::{BusinessId, ProductId, Uid};
use crate::images::{ImageStore, ObjectName};
use crate::store::{DocPath, Fields, StoreError, Write};

/// Longest `prompt`, in characters.
pub const MAX_PROMPT_CHARS: usize = 1000;
/// How long a generation lock holds. It must exceed the generation function's timeout
/// (`template.yaml`), so that a lock is only ever taken over from a function that is gone.
pub const LOCK_LEASE: Duration = Duration::from_secs(120);
/// Longest `error` stored on a failed product (the field's limit).
const MAX_ERROR_CHARS: usize = 1000;
const LOCKS: &str = "locks";
const GENERATION_LOCK: &str = "generation";

/// A validated request body: `{businessId, productId, prompt?}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GenerateRequest {
    /// The product's business (`businessId`).
    pub business: BusinessId,
    /// The product (`productId`).
    pub product: ProductId,
    /// The user's direction; a blank prompt is none.
    pub prompt: Option<String>,
}

impl GenerateRequest {
    /// 400 for an unknown field, a missing or malformed id, or a prompt that is not a string
    /// of at most [`MAX_PROMPT_CHARS`] characters.
    pub fn parse(body: Map<String, Value>) -> Result<Self, AppError> {
        if let Some(key) = body
            .keys()
            .find(|k| !matches!(k.as_str(), "businessId" | "productId" | "prompt"))
        {
            return Err(AppError::BadRequest(format!("unknown field `{key}`")));
        }
        let id = |key: &str| match body.get(key) {
            Some(Value::String(s)) => Ok(s.as_str()),
            _ => Err(AppError::BadRequest(format!(
                "field `{key}` is required and must be a string"
            ))),
        };
        let business = BusinessId::parse(id("businessId")?)?;
        let product = ProductId::parse(id("productId")?)?;
        let prompt = match body.get("prompt") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.chars().count() <= MAX_PROMPT_CHARS => {
                Some(s.trim().to_owned()).filter(|s| !s.is_empty())
            }
            Some(_) => {
                return Err(AppError::BadRequest(format!(
                    "field `prompt` must be a string of at most {MAX_PROMPT_CHARS} characters"
                )));
            }
        };
        Ok(Self {
            business,
            product,
            prompt,
        })
    }
}

/// The product a generation works on, and its lock.
struct Target<'a> {
    uid: &'a Uid,
    business: &'a BusinessId,
    product: &'a ProductId,
    path: DocPath,
    lock: DocPath,
}

impl Target<'_> {
    /// An update of the product (plus `updatedAt`) and the payload of its event.
    fn update(&self, set: Fields, clear: &[&str]) -> (Write, Value) {
        let now = domain::now_timestamp();
        let mut mask: Vec<String> = set.keys().cloned().collect();
        mask.extend(clear.iter().map(|c| (*c).to_owned()));
        let patch = Patch { set, mask };
        let ids = [
            ("id", self.product.as_str()),
            ("businessId", self.business.as_str()),
        ];
        let event = changes(&patch, &ids, &now);
        let Patch { mut set, mut mask } = patch;
        set.insert("updatedAt".into(), json!(now));
        mask.push("updatedAt".into());
        let write = Write::Update {
            path: self.path.clone(),
            fields: set,
            mask,
        };
        (write, event)
    }
}

fn status(value: &str) -> Fields {
    let mut set = Fields::new();
    set.insert("status".into(), json!(value));
    set
}

/// A random lock token: 20 letters and digits.
fn lock_token() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..20)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}

fn lock_fields(token: &str, taken_over: Option<&str>) -> Fields {
    let now = Utc::now();
    let lease = chrono::Duration::from_std(LOCK_LEASE).unwrap_or_default();
    let stamp = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let mut lock = Fields::new();
    lock.insert("token".into(), json!(token));
    lock.insert("startedAt".into(), json!(stamp(now)));
    lock.insert("expiresAt".into(), json!(stamp(now + lease)));
    if let Some(old) = taken_over {
        lock.insert("takenOverFrom".into(), json!(old));
    }
    lock
}

/// `POST /ai/generate-ad-image`: the final product (200), or the provider's error mapped to
/// 502/504 once the product is marked `failed`; 404 for a missing product (no event), 409
/// while another generation of it runs.
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
    let path = DocPath::product(who.uid(), &request.business, &request.product);
    let target = Target {
        uid: who.uid(),
        business: &request.business,
        product: &request.product,
        lock: path.child(LOCKS, GENERATION_LOCK),
        path,
    };
    let started = Instant::now();
    take_lock(app, &target).await?;
    let made = make(app, ai, images, &target, request.prompt.as_deref()).await;
    let result = match made {
        Ok(made) => finish(app, images, &target, made).await,
        Err(err) => fail(app, &target, err).await,
    };
    let outcome = match &result {
        Ok(_) => "enriched",
        Err(e) => e.code(),
    };
    tracing::info!(
        product = %target.product,
        outcome,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "ad generation"
    );
    result
}

/// Creates the lock and sets `processing` in one commit (or takes over an expired lock),
/// then pushes the `processing` event.
async fn take_lock(app: &App, t: &Target<'_>) -> Result<(), AppError> {
    let (processing, event) = t.update(status("processing"), &["error"]);
    let acquire = |processing: Write| {
        vec![
            Write::Create {
                path: t.lock.clone(),
                fields: lock_fields(&lock_token(), None),
            },
            processing,
        ]
    };
    match app.store.commit(acquire(processing.clone())).await {
        Ok(()) => {}
        Err(StoreError::AlreadyExists(_)) => match app.store.get(&t.lock).await {
            Ok(Some(lock)) => take_over(app, t, &lock, processing).await?,
            // Released between the commit and the read: one more try.
            Ok(None) => app
                .store
                .commit(acquire(processing))
                .await
                .map_err(lock_error)?,
            Err(e) => return Err(store_error(e, "product")),
        },
        Err(e) => return Err(lock_error(e)),
    }
    events::publish(app, t.uid, events::PRODUCT_UPDATED, event).await;
    Ok(())
}

fn lock_error(err: StoreError) -> AppError {
    match err {
        StoreError::AlreadyExists(_) => busy(),
        other => store_error(other, "product"),
    }
}

fn busy() -> AppError {
    AppError::Conflict("an ad is already being generated for this product".into())
}

/// Takes over `lock` if its lease has run out; 409 otherwise.
async fn take_over(
    app: &App,
    t: &Target<'_>,
    lock: &Fields,
    processing: Write,
) -> Result<(), AppError> {
    let expires_at = lock
        .get("expiresAt")
        .and_then(Value::as_str)
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok());
    if expires_at.is_some_and(|at| at > Utc::now()) {
        return Err(busy());
    }
    // An unreadable lock is treated as expired; its marker is then shared by every such lock
    // of this product, which only makes a second takeover of it a 409.
    let old = lock
        .get("token")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty() && t.len() <= 64 && t.bytes().all(|b| b.is_ascii_alphanumeric()))
        .unwrap_or("unknown");
    let new_lock = lock_fields(&lock_token(), Some(old));
    let mut marker = Fields::new();
    marker.insert("takenOverAt".into(), json!(domain::now_timestamp()));
    let writes = vec![
        Write::Create {
            path: t.path.child(LOCKS, &format!("takeover-{old}")),
            fields: marker,
        },
        Write::Update {
            path: t.lock.clone(),
            mask: new_lock.keys().cloned().collect(),
            fields: new_lock,
        },
        processing,
    ];
    app.store.commit(writes).await.map_err(lock_error)?;
    tracing::warn!(product = %t.product, "took over an expired generation lock");
    Ok(())
}

/// What a successful provider call left: the product as read, and the stored image.
struct Made {
    product: Fields,
    caption: String,
    url: String,
    object: ObjectName,
}

/// Reads the product, asks the provider, stores the image.
async fn make(
    app: &App,
    ai: &dyn AiProvider,
    images: &dyn ImageStore,
    t: &Target<'_>,
    prompt: Option<&str>,
) -> Result<Made, AppError> {
    let product = app
        .store
        .get(&t.path)
        .await
        .map_err(|e| store_error(e, "product"))?
        .ok_or_else(deleted)?;
    let creative = ai
        .generate(AdRequest {
            product: &product,
            prompt,
        })
        .await?;
    let object = ObjectName::new(t.uid, t.product, creative.image.kind);
    let url = images.put(&object, &creative.image).await?;
    Ok(Made {
        product,
        caption: creative.caption,
        url,
        object,
    })
}

fn deleted() -> AppError {
    AppError::NotFound("the product was deleted during generation".into())
}

/// Sets `enriched` and releases the lock in one commit; pushes the event.
async fn finish(
    app: &App,
    images: &dyn ImageStore,
    t: &Target<'_>,
    made: Made,
) -> Result<Value, AppError> {
    let mut set = status("enriched");
    set.insert("generatedImageUrl".into(), json!(made.url));
    set.insert("caption".into(), json!(made.caption));
    let (write, event) = t.update(set, &["error"]);
    let mut doc = made.product;
    if let Write::Update { fields, .. } = &write {
        doc.extend(fields.clone());
    }
    doc.remove("error");
    match release(app, t, write).await {
        Ok(Some(stored)) => doc = stored,
        Ok(None) => {}
        Err(err) => {
            if matches!(err, AppError::NotFound(_)) {
                if let Err(e) = images.delete(&made.object).await {
                    tracing::warn!(object = made.object.as_str(), error = %e, "orphan image not deleted");
                }
            }
            return Err(err);
        }
    }
    events::publish(app, t.uid, events::PRODUCT_UPDATED, event).await;
    Ok(Value::Object(doc))
}

/// Sets `failed` with the error's message and releases the lock; pushes the event; returns
/// the error.
async fn fail(app: &App, t: &Target<'_>, err: AppError) -> Result<Value, AppError> {
    let message = match &err {
        // Our own dependencies' details stay in the logs.
        AppError::Internal(_) => "the ad could not be made (internal error); try again".to_owned(),
        other => other.to_string(),
    };
    let mut set = status("failed");
    set.insert(
        "error".into(),
        json!(crate::ai::truncate(&message, MAX_ERROR_CHARS)),
    );
    let (write, event) = t.update(set, &[]);
    match release(app, t, write).await {
        Ok(_) => events::publish(app, t.uid, events::PRODUCT_UPDATED, event).await,
        Err(release_err) => {
            tracing::error!(product = %t.product, error = %release_err, "failed generation not recorded");
            return Err(if matches!(release_err, AppError::NotFound(_)) {
                release_err
            } else {
                err
            });
        }
    };
    Err(err)
}

/// Applies `update` to the product and deletes the lock, in one commit. `Ok(None)`: done as
/// planned. When that commit finds something missing, the update alone tells what: if it
/// works, the lock was gone and the stored document is returned; if not, the product was
/// deleted during the generation (404) and its lock is removed on a best-effort basis.
async fn release(app: &App, t: &Target<'_>, update: Write) -> Result<Option<Fields>, AppError> {
    let writes = vec![
        update.clone(),
        Write::Delete {
            path: t.lock.clone(),
        },
    ];
    match app.store.commit(writes).await {
        Ok(()) => Ok(None),
        Err(StoreError::NotFound(_)) => {
            let Write::Update { path, fields, mask } = update else {
                return Err(AppError::internal(
                    "generation",
                    "release without an update",
                ));
            };
            match app.store.update(&path, fields, &mask).await {
                Ok(doc) => Ok(Some(doc)),
                Err(StoreError::NotFound(_)) => {
                    if let Err(e) = app.store.delete(&t.lock).await {
                        tracing::warn!(product = %t.product, error = %e, "lock of a deleted product left");
                    }
                    Err(deleted())
                }
                Err(e) => Err(store_error(e, "product")),
            }
        }
        Err(e) => Err(store_error(e, "product")),
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
    fn the_lease_outlasts_api_gateway() {
        assert!(LOCK_LEASE > Duration::from_secs(29));
        let lock = lock_fields("tok", Some("old"));
        let at = |k: &str| DateTime::parse_from_rfc3339(lock[k].as_str().unwrap()).unwrap();
        assert_eq!((at("expiresAt") - at("startedAt")).num_seconds(), 120);
        assert_eq!(lock["takenOverFrom"], "old");
        assert_eq!(lock_token().len(), 20);
    }
}
