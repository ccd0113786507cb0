//! The REST handlers. They know nothing of Lambda or HTTP: a caller, parsed input, and a
//! result. Each mutation is one Firestore write and no read, then one event.

use serde_json::{Map, Value, json};

use crate::app::App;
use crate::auth::Principal;
use crate::domain::{self, Resource};
use crate::error::AppError;
use crate::events::{self, CONTROL_EVENTS};
use crate::ids::{BusinessId, ProductId, Uid};
use crate::images::{Image, ObjectName};
use crate::registry::RegistryError;
use crate::store::{CollectionPath, DocPath, Fields, StoreError, Write};

/// Most events `GET /events` returns in one page.
pub const MAX_EVENTS_PAGE: usize = 500;

impl From<RegistryError> for AppError {
    fn from(err: RegistryError) -> Self {
        AppError::internal("connection registry", err)
    }
}

/// A store failure as the caller sees it; `missing` names what a `NotFound` was.
pub(crate) fn store_error(err: StoreError, missing: &str) -> AppError {
    match err {
        StoreError::NotFound(_) => AppError::NotFound(format!("{missing} not found")),
        StoreError::AlreadyExists(path) => {
            AppError::Conflict(format!("document already exists: {path}"))
        }
        StoreError::Unavailable(why) => AppError::internal("document store", why),
    }
}

fn by_created_at(mut docs: Vec<Fields>) -> Vec<Fields> {
    docs.sort_by(|a, b| {
        let key = |d: &Fields| {
            (
                d.get("createdAt")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                d.get("id").and_then(Value::as_str).map(str::to_owned),
            )
        };
        key(a).cmp(&key(b))
    });
    docs
}

/// `POST /auth/login`: the user's whole state and current `seq`, creating `users/{uid}`
/// from the token's claims on first login.
pub async fn login(app: &App, who: &Principal) -> Result<Value, AppError> {
    let uid = who.uid();
    // The seq is read before the data: an event recorded after this read is replayed on
    // resume even if the data already has it (harmless), and none can fall in between.
    let seq = app.events.head(uid).await?;
    let (businesses_path, user_path) = (CollectionPath::businesses(uid), DocPath::user(uid));
    let (user, businesses, products) = tokio::join!(
        get_or_create_user(app, who),
        app.store.list(&businesses_path),
        app.store.list_descendants(&user_path, "products"),
    );
    Ok(json!({
        "user": user?,
        "businesses": by_created_at(businesses.map_err(|e| store_error(e, "businesses"))?),
        "products": by_created_at(products.map_err(|e| store_error(e, "products"))?),
        "seq": seq,
    }))
}

async fn get_or_create_user(app: &App, who: &Principal) -> Result<Fields, AppError> {
    let path = DocPath::user(who.uid());
    if let Some(user) = app
        .store
        .get(&path)
        .await
        .map_err(|e| store_error(e, "user"))?
    {
        return Ok(user);
    }
    let now = domain::now_timestamp();
    let mut user = Fields::new();
    user.insert("uid".into(), json!(who.uid()));
    if let Principal::User(token) = who {
        if let Some(email) = &token.email {
            user.insert("email".into(), json!(email));
        }
        if let Some(name) = &token.name {
            user.insert("displayName".into(), json!(name));
        }
        if let Some(picture) = &token.picture {
            user.insert("photoURL".into(), json!(picture));
        }
    }
    user.insert("createdAt".into(), json!(now));
    user.insert("updatedAt".into(), json!(now));
    match app.store.create(&path, user).await {
        Ok(user) => Ok(user),
        // Two first logins raced: the other one created it.
        Err(StoreError::AlreadyExists(_)) => app
            .store
            .get(&path)
            .await
            .map_err(|e| store_error(e, "user"))?
            .ok_or_else(|| AppError::internal("login", "user vanished after create")),
        Err(err) => Err(store_error(err, "user")),
    }
}

/// `GET /businesses`.
pub async fn list_businesses(app: &App, who: &Principal) -> Result<Value, AppError> {
    let docs = app
        .store
        .list(&CollectionPath::businesses(who.uid()))
        .await
        .map_err(|e| store_error(e, "businesses"))?;
    Ok(Value::Array(
        by_created_at(docs).into_iter().map(Value::Object).collect(),
    ))
}

fn stamp(mut fields: Fields, id: &str) -> Fields {
    let now = domain::now_timestamp();
    fields.insert("id".into(), json!(id));
    fields.insert("createdAt".into(), json!(now));
    fields.insert("updatedAt".into(), json!(now));
    fields
}

/// `POST /businesses`: one write; emits `business:created`.
pub async fn create_business(
    app: &App,
    who: &Principal,
    body: Map<String, Value>,
) -> Result<Value, AppError> {
    let fields = domain::validate_new(Resource::Business, body)?;
    let id = BusinessId::generate();
    let doc = app
        .store
        .create(
            &DocPath::business(who.uid(), &id),
            stamp(fields, id.as_str()),
        )
        .await
        .map_err(|e| store_error(e, "business"))?;
    let doc = Value::Object(doc);
    events::publish(app, who.uid(), events::BUSINESS_CREATED, doc.clone()).await;
    Ok(doc)
}

/// `GET /products/{businessId}`: 404 when the business is not the caller's.
pub async fn list_products(
    app: &App,
    who: &Principal,
    business: &BusinessId,
) -> Result<Value, AppError> {
    let business_path = DocPath::business(who.uid(), business);
    let products_path = CollectionPath::products(who.uid(), business);
    let (exists, products) = tokio::join!(
        app.store.get(&business_path),
        app.store.list(&products_path),
    );
    if exists.map_err(|e| store_error(e, "business"))?.is_none() {
        return Err(AppError::NotFound("business not found".into()));
    }
    let products = products.map_err(|e| store_error(e, "products"))?;
    Ok(Value::Array(
        by_created_at(products)
            .into_iter()
            .map(Value::Object)
            .collect(),
    ))
}

/// `POST /products/{businessId}`: one atomic commit that creates the product only if the
/// business exists (no read); emits `product:created`.
pub async fn create_product(
    app: &App,
    who: &Principal,
    business: &BusinessId,
    body: Map<String, Value>,
) -> Result<Value, AppError> {
    let mut fields = domain::validate_new(Resource::Product, body)?;
    fields
        .entry("status")
        .or_insert_with(|| json!(domain::STATUSES[0]));
    let id = ProductId::generate();
    let mut fields = stamp(fields, id.as_str());
    fields.insert("businessId".into(), json!(business));
    app.store
        .commit(vec![
            Write::RequireExists {
                path: DocPath::business(who.uid(), business),
            },
            Write::Create {
                path: DocPath::product(who.uid(), business, &id),
                fields: fields.clone(),
            },
        ])
        .await
        .map_err(|e| store_error(e, "business"))?;
    let doc = Value::Object(fields);
    events::publish(app, who.uid(), events::PRODUCT_CREATED, doc.clone()).await;
    Ok(doc)
}

/// The payload of an update event: the changed fields (cleared ones as `null`) plus ids and
/// `updatedAt`.
pub(crate) fn changes(patch: &domain::Patch, ids: &[(&str, &str)], updated_at: &str) -> Value {
    let mut data = Map::new();
    for name in &patch.mask {
        data.insert(
            name.clone(),
            patch.set.get(name).cloned().unwrap_or(Value::Null),
        );
    }
    for (key, value) in ids {
        data.insert((*key).into(), json!(value));
    }
    data.insert("updatedAt".into(), json!(updated_at));
    Value::Object(data)
}

/// Applies a validated patch (plus `updatedAt`) with one write; returns the whole document
/// and the event payload.
async fn apply_patch(
    app: &App,
    path: &DocPath,
    patch: domain::Patch,
    ids: &[(&str, &str)],
    missing: &str,
) -> Result<(Value, Value), AppError> {
    let now = domain::now_timestamp();
    let event = changes(&patch, ids, &now);
    let mut set = patch.set;
    let mut mask = patch.mask;
    set.insert("updatedAt".into(), json!(now));
    mask.push("updatedAt".into());
    let doc = app
        .store
        .update(path, set, &mask)
        .await
        .map_err(|e| store_error(e, missing))?;
    Ok((Value::Object(doc), event))
}

/// `PATCH /products/update/{businessId}/{productId}`: merge, one write, 404 if missing;
/// emits `product:updated` with the changed fields.
pub async fn update_product(
    app: &App,
    who: &Principal,
    business: &BusinessId,
    product: &ProductId,
    body: Map<String, Value>,
) -> Result<Value, AppError> {
    let patch = domain::validate_patch(Resource::Product, body)?;
    update_product_fields(app, who.uid(), business, product, patch).await
}

/// The write + event of a product update, shared with AI generation.
pub async fn update_product_fields(
    app: &App,
    uid: &Uid,
    business: &BusinessId,
    product: &ProductId,
    patch: domain::Patch,
) -> Result<Value, AppError> {
    let ids = [("id", product.as_str()), ("businessId", business.as_str())];
    let (doc, event) = apply_patch(
        app,
        &DocPath::product(uid, business, product),
        patch,
        &ids,
        "product",
    )
    .await?;
    events::publish(app, uid, events::PRODUCT_UPDATED, event).await;
    Ok(doc)
}

/// Which product field an uploaded image becomes (`?field=` of the upload route).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ImageField {
    /// The product's own photo (the default).
    #[default]
    ImageUrl,
    /// The ad image, for a workflow (n8n) that generates it elsewhere.
    GeneratedImageUrl,
}

impl ImageField {
    /// Parses the `field` query parameter.
    pub fn parse(raw: Option<&str>) -> Result<Self, AppError> {
        match raw {
            None | Some("imageUrl") => Ok(Self::ImageUrl),
            Some("generatedImageUrl") => Ok(Self::GeneratedImageUrl),
            Some(_) => Err(AppError::BadRequest(
                "query parameter `field` must be `imageUrl` or `generatedImageUrl`".into(),
            )),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::ImageUrl => "imageUrl",
            Self::GeneratedImageUrl => "generatedImageUrl",
        }
    }
}

/// `POST /products/{businessId}/{productId}/image`: stores the (checked) image, then sets
/// the product's URL field with one write, no read; emits `product:updated`. The image is
/// stored first and the update is what tells whether the product exists: when it does not
/// (404), the object just stored is deleted again, so a 404 leaves nothing behind.
pub async fn upload_product_image(
    app: &App,
    who: &Principal,
    business: &BusinessId,
    product: &ProductId,
    image: Image,
    field: ImageField,
) -> Result<Value, AppError> {
    let images = app
        .images
        .as_deref()
        .ok_or_else(|| AppError::internal("configuration", "no image store (STORAGE_BUCKET)"))?;
    let name = ObjectName::new(who.uid(), product, image.kind);
    let url = images.put(&name, &image).await?;
    let mut set = Fields::new();
    set.insert(field.name().into(), json!(url));
    let patch = domain::Patch {
        set,
        mask: vec![field.name().into()],
    };
    match update_product_fields(app, who.uid(), business, product, patch).await {
        Err(err @ AppError::NotFound(_)) => {
            if let Err(e) = images.delete(&name).await {
                tracing::warn!(object = name.as_str(), error = %e, "orphan image not deleted");
            }
            Err(err)
        }
        other => other,
    }
}

/// `DELETE /products/{businessId}/{productId}`: one write, 404 if missing; emits
/// `product:deleted`.
pub async fn delete_product(
    app: &App,
    who: &Principal,
    business: &BusinessId,
    product: &ProductId,
) -> Result<Value, AppError> {
    app.store
        .delete(&DocPath::product(who.uid(), business, product))
        .await
        .map_err(|e| store_error(e, "product"))?;
    let data = json!({"id": product, "businessId": business});
    events::publish(app, who.uid(), events::PRODUCT_DELETED, data.clone()).await;
    Ok(data)
}

/// `PATCH /users/{uid}`: only the caller's own profile (403 otherwise); emits `user:updated`.
pub async fn update_user(
    app: &App,
    who: &Principal,
    uid: &Uid,
    body: Map<String, Value>,
) -> Result<Value, AppError> {
    if uid != who.uid() {
        return Err(AppError::Forbidden(
            "a user can only update their own profile".into(),
        ));
    }
    let patch = domain::validate_patch(Resource::User, body)?;
    let (doc, event) = apply_patch(
        app,
        &DocPath::user(uid),
        patch,
        &[("uid", uid.as_str())],
        "user (log in first)",
    )
    .await?;
    events::publish(app, uid, events::USER_UPDATED, event).await;
    Ok(doc)
}

/// `GET /events?since=N&limit=L`: recorded events after `since`, as frames.
pub async fn list_events(
    app: &App,
    who: &Principal,
    since: u64,
    limit: usize,
) -> Result<Value, AppError> {
    let page = app
        .events
        .since(who.uid(), since, limit.clamp(1, MAX_EVENTS_PAGE))
        .await?;
    let frames = page
        .events
        .iter()
        .map(|e| serde_json::from_str::<Value>(&events::event_frame(e)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| AppError::internal("event frame", e))?;
    Ok(json!({
        "events": frames,
        "seq": page.head,
        "complete": page.complete,
        "hasMore": page.has_more,
    }))
}

/// `POST /broadcast` (services only): records and pushes `{uid, event, data}` to `uid`,
/// which defaults to, and must equal, the service's `X-On-Behalf-Of`.
pub async fn broadcast(
    app: &App,
    on_behalf_of: &Uid,
    body: Map<String, Value>,
) -> Result<Value, AppError> {
    for key in body.keys() {
        if !matches!(key.as_str(), "uid" | "event" | "data") {
            return Err(AppError::BadRequest(format!("unknown field `{key}`")));
        }
    }
    let uid = match body.get("uid") {
        None => on_behalf_of.clone(),
        Some(Value::String(s)) if s == on_behalf_of.as_str() => on_behalf_of.clone(),
        Some(Value::String(_)) => {
            return Err(AppError::BadRequest(
                "field `uid` must equal X-On-Behalf-Of".into(),
            ));
        }
        Some(_) => return Err(AppError::BadRequest("field `uid` must be a string".into())),
    };
    let event = match body.get("event") {
        Some(Value::String(s)) if is_event_name(s) => s.clone(),
        _ => {
            return Err(AppError::BadRequest(
                "field `event` must be a name like `ai:progress` (lowercase, digits, `-`, `_`, `:`; at most 64; not a control frame name)".into(),
            ));
        }
    };
    let data = body.get("data").cloned().unwrap_or(Value::Null);
    let seq = events::publish(app, &uid, &event, data).await;
    Ok(json!({"uid": uid, "event": event, "seq": seq}))
}

fn is_event_name(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b':')
        })
        && !CONTROL_EVENTS.contains(&s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_names() {
        assert!(is_event_name("ai:progress"));
        assert!(is_event_name("product:updated"));
        for bad in [
            "",
            "Ai",
            "pong",
            "resume:done",
            "a b",
            "x/y",
            &"a".repeat(65),
        ] {
            assert!(!is_event_name(bad), "{bad}");
        }
    }
}
