//! The REST handlers. They know nothing of Lambda or HTTP: a caller, parsed input, and a
//! result. Each mutation reserves its event's seq, makes one Firestore write and no read
//! (a product create reads its business), then records and pushes the event.

use std::time::Duration;

use serde_json::{Map, Value, json};

use crate::app::App;
use crate::auth::Principal;
use crate::domain::{self, Resource};
use crate::error::AppError;
use crate::events::{self, Control, DocEvent, Outbox, replay};
use crate::ids::{BusinessId, ProductId, Uid};
use crate::images::{Image, ObjectName};
use crate::limits::{self, Budget};
use crate::registry::RegistryError;
use crate::store::{CollectionPath, DocPath, Document, Fields, Listing, StoreError};

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
        StoreError::PreconditionFailed(_) => {
            AppError::Conflict(format!("the {missing} changed meanwhile; try again"))
        }
        StoreError::Unavailable(why) => AppError::internal("document store", why),
        // Sent, and no answer in time: the caller must not assume either outcome.
        StoreError::Indeterminate(why) => {
            tracing::error!(detail = why, "a write of unknown outcome");
            crate::http::out_of_time()
        }
    }
}

/// Documents as clients see them, oldest first.
fn by_created_at(mut docs: Vec<Document>) -> Vec<Value> {
    docs.sort_by(|a, b| {
        let key = |d: &Document| {
            (
                d.fields
                    .get("createdAt")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                d.fields
                    .get("id")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
            )
        };
        key(a).cmp(&key(b))
    });
    docs.iter().map(Document::to_json).collect()
}

/// The most bytes of documents or events one answer carries, counted as Lambda carries
/// them (the JSON body escaped inside the response envelope, which Lambda refuses past
/// 6 MB), leaving room for the rest of the answer.
pub const MAX_ANSWER_BYTES: usize = 4 * 1024 * 1024;
/// Documents read per store query while an answer is filled.
const FILL_PAGE: usize = 100;

/// What `json` (a serialized value) adds to an answer as Lambda carries it: escaped once
/// more inside the response envelope.
pub fn carried_bytes(json: &str) -> usize {
    json.len() + json.bytes().filter(|b| matches!(b, b'"' | b'\\')).count()
}

/// `GET /me`: `{uid, email}` of the caller, from its verified credentials alone: no document
/// is read or written. A service call answers for the user it acts for, with no email (the
/// service key carries none).
pub fn me(who: &Principal) -> Value {
    let email = match who {
        Principal::User(token) => token.email.as_deref(),
        Principal::Service { .. } => None,
    };
    json!({"uid": who.uid(), "email": email})
}

/// `POST /auth/login`: the user's state and the `seq` to resume from, creating `users/{uid}`
/// from the token's claims on first login. The businesses, then the products, come in
/// answers of at most [`MAX_ANSWER_BYTES`]: `next`, when not null, is passed back as
/// `{"after": next}` for the rest (without `user` and `seq`, which the first answer has).
pub async fn login(app: &App, who: &Principal, after: Option<&str>) -> Result<Value, AppError> {
    let uid = who.uid();
    if let Some(after) = after {
        let start = BootstrapCursor::parse(uid, after)?;
        let mut budget = MAX_ANSWER_BYTES;
        let part = bootstrap_part(app, uid, start, &mut budget).await?;
        return Ok(part.to_json());
    }
    // The mark is read before the data: every event after it is replayed on resume (those
    // the data already has are harmless: clients compare versions), and it stays below every
    // write still in flight, whose commit may land after the data is read.
    let seq = bootstrap_mark(app, uid).await?;
    let (user, part) = tokio::join!(get_or_create_user(app, who), async {
        let mut budget = MAX_ANSWER_BYTES;
        bootstrap_part(app, uid, BootstrapCursor::Businesses(None), &mut budget).await
    });
    let mut answer = part?.to_json();
    answer["user"] = user?.to_json();
    answer["seq"] = json!(seq);
    Ok(answer)
}

/// Where a bootstrap answer starts: after this business, or after this product.
#[derive(Clone, Debug, PartialEq)]
enum BootstrapCursor {
    Businesses(Option<DocPath>),
    Products(Option<DocPath>),
}

impl BootstrapCursor {
    /// `businesses[:<businessId>]` or `products[:<businessId>/<productId>]`, ids checked.
    fn parse(uid: &Uid, raw: &str) -> Result<Self, AppError> {
        let bad = || AppError::BadRequest("field `after` is not a `next` this API gave".into());
        let (phase, position) = raw
            .split_once(':')
            .map_or((raw, None), |(p, r)| (p, Some(r)));
        match (phase, position) {
            ("businesses", None) => Ok(Self::Businesses(None)),
            ("businesses", Some(business)) => {
                let business = BusinessId::parse(business).map_err(|_| bad())?;
                Ok(Self::Businesses(Some(DocPath::business(uid, &business))))
            }
            ("products", None) => Ok(Self::Products(None)),
            ("products", Some(ids)) => {
                let (business, product) = ids.split_once('/').ok_or_else(bad)?;
                let business = BusinessId::parse(business).map_err(|_| bad())?;
                let product = ProductId::parse(product).map_err(|_| bad())?;
                Ok(Self::Products(Some(DocPath::product(
                    uid, &business, &product,
                ))))
            }
            _ => Err(bad()),
        }
    }

    fn token(&self) -> String {
        match self {
            Self::Businesses(None) => "businesses".into(),
            Self::Businesses(Some(path)) => format!("businesses:{}", path.id()),
            Self::Products(None) => "products".into(),
            Self::Products(Some(path)) => {
                let business = path.parent().map(|b| b.id().to_owned()).unwrap_or_default();
                format!("products:{business}/{}", path.id())
            }
        }
    }
}

/// One bootstrap answer's documents and where the next one starts.
struct BootstrapPart {
    businesses: Vec<Document>,
    products: Vec<Document>,
    next: Option<BootstrapCursor>,
}

impl BootstrapPart {
    fn to_json(&self) -> Value {
        json!({
            "businesses": by_created_at(self.businesses.clone()),
            "products": by_created_at(self.products.clone()),
            "next": self.next.as_ref().map(BootstrapCursor::token),
        })
    }
}

/// The businesses, then the products, of `uid` from `start`, as many as `budget` holds.
async fn bootstrap_part(
    app: &App,
    uid: &Uid,
    start: BootstrapCursor,
    budget: &mut usize,
) -> Result<BootstrapPart, AppError> {
    let businesses = Listing::Collection(CollectionPath::businesses(uid));
    let products = Listing::Descendants {
        parent: DocPath::user(uid),
        collection_id: "products",
    };
    let mut part = BootstrapPart {
        businesses: Vec::new(),
        products: Vec::new(),
        next: None,
    };
    let from_product = match start {
        BootstrapCursor::Businesses(after) => {
            // Both first pages at once: most users' whole state is one round trip.
            let store = app.store()?;
            let (first_businesses, first_products) = tokio::join!(
                store.list_page(&businesses, after.as_ref(), FILL_PAGE),
                store.list_page(&products, None, FILL_PAGE),
            );
            let first = first_businesses.map_err(|e| store_error(e, "businesses"))?;
            let filled = fill(app, &businesses, after, first, budget).await?;
            part.businesses = filled.docs;
            if let Some(rest) = filled.rest {
                part.next = Some(BootstrapCursor::Businesses(rest));
                return Ok(part);
            }
            let first = first_products.map_err(|e| store_error(e, "products"))?;
            let filled = fill(app, &products, None, first, budget).await?;
            part.products = filled.docs;
            part.next = filled.rest.map(BootstrapCursor::Products);
            return Ok(part);
        }
        BootstrapCursor::Products(after) => after,
    };
    let first = app
        .store()?
        .list_page(&products, from_product.as_ref(), FILL_PAGE)
        .await
        .map_err(|e| store_error(e, "products"))?;
    let filled = fill(app, &products, from_product, first, budget).await?;
    part.products = filled.docs;
    part.next = filled.rest.map(BootstrapCursor::Products);
    Ok(part)
}

/// Documents of a listing that fit an answer, and where the rest starts (after this
/// document; `Some(None)`: from the start), when some are left.
struct Filled {
    docs: Vec<Document>,
    rest: Option<Option<DocPath>>,
}

/// Takes documents of `listing` from `page` (read after `after`), reading further pages,
/// while `budget` holds them.
async fn fill(
    app: &App,
    listing: &Listing,
    mut after: Option<DocPath>,
    mut page: Vec<(DocPath, Document)>,
    budget: &mut usize,
) -> Result<Filled, AppError> {
    let mut docs = Vec::new();
    loop {
        let last_page = page.len() < FILL_PAGE;
        for (path, doc) in page {
            // The separator and the version the answer adds to each document.
            let bytes = carried_bytes(&doc.to_json().to_string()) + 1;
            if bytes > *budget {
                return Ok(Filled {
                    docs,
                    rest: Some(after),
                });
            }
            *budget -= bytes;
            docs.push(doc);
            after = Some(path);
        }
        if last_page {
            return Ok(Filled { docs, rest: None });
        }
        page = app
            .store()?
            .list_page(listing, after.as_ref(), FILL_PAGE)
            .await
            .map_err(|e| store_error(e, "documents"))?;
    }
}

/// Entries read per page while looking for the bootstrap mark.
const BOOTSTRAP_PAGE: usize = 100;

/// Where a fresh bootstrap resumes from: see [`replay::bootstrap_mark`].
async fn bootstrap_mark(app: &App, uid: &Uid) -> Result<u64, AppError> {
    let now = chrono::Utc::now().timestamp_millis();
    let mut entries = Vec::new();
    let mut before = None;
    loop {
        let page = app.events.before(uid, before, BOOTSTRAP_PAGE).await?;
        before = page.entries.last().map(|e| e.seq);
        entries.extend(page.entries);
        let exhausted = !page.has_more;
        let lease = app.timing.writer_lease;
        if let Some(mark) = replay::bootstrap_mark(page.head, &entries, exhausted, now, lease) {
            return Ok(mark);
        }
    }
}

async fn get_or_create_user(app: &App, who: &Principal) -> Result<Document, AppError> {
    let path = DocPath::user(who.uid());
    if let Some(user) = app
        .store()?
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
    match app.store()?.create(&path, user).await {
        Ok(user) => Ok(user),
        // Two first logins raced: the other one created it.
        Err(StoreError::AlreadyExists(_)) => app
            .store()?
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
        .store()?
        .list(&CollectionPath::businesses(who.uid()))
        .await
        .map_err(|e| store_error(e, "businesses"))?;
    Ok(Value::Array(by_created_at(docs)))
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
    let fields = domain::validate_new(Resource::Business, body, app.urls)?;
    let id = BusinessId::generate();
    let path = DocPath::business(who.uid(), &id);
    let outbox = Outbox::open_spending(app, who.uid(), Some(Budget::Mutations)).await?;
    let written = app
        .store()?
        .create(&path, stamp(fields, id.as_str()))
        .await
        .map(|doc| {
            let json = doc.to_json();
            (json.clone(), DocEvent::BusinessCreated, json)
        });
    outbox
        .finish(written)
        .await
        .map_err(|e| store_error(e, "business"))
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
        app.store()?.get(&business_path),
        app.store()?.list(&products_path),
    );
    if exists.map_err(|e| store_error(e, "business"))?.is_none() {
        return Err(AppError::NotFound("business not found".into()));
    }
    let products = products.map_err(|e| store_error(e, "products"))?;
    Ok(Value::Array(by_created_at(products)))
}

/// The deadline a product set `processing` now carries, `timeout` from now: past it, the
/// sweeper marks the product `failed`.
pub(crate) fn processing_until(timeout: Duration) -> String {
    let timeout = chrono::Duration::from_std(timeout).unwrap_or(chrono::Duration::MAX);
    (chrono::Utc::now() + timeout).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// `POST /products/{businessId}`: reads the business (404 if missing), then creates the
/// product with one write; emits `product:created`.
pub async fn create_product(
    app: &App,
    who: &Principal,
    business: &BusinessId,
    body: Map<String, Value>,
) -> Result<Value, AppError> {
    let mut fields = domain::validate_new(Resource::Product, body, app.urls)?;
    let status = fields
        .entry("status")
        .or_insert_with(|| json!(domain::ProductStatus::Draft.as_str()));
    if status == domain::ProductStatus::Processing.as_str() {
        fields.insert(
            "processingUntil".into(),
            json!(processing_until(app.timing.processing_timeout)),
        );
    }
    let id = ProductId::generate();
    let mut fields = stamp(fields, id.as_str());
    fields.insert("businessId".into(), json!(business));
    // Businesses are never deleted, so a business read before the create is still there.
    let business_path = DocPath::business(who.uid(), business);
    let (outbox, found) = tokio::join!(
        Outbox::open_spending(app, who.uid(), Some(Budget::Mutations)),
        app.store()?.get(&business_path),
    );
    let outbox = outbox?;
    match found {
        Ok(Some(_)) => {}
        Ok(None) => {
            outbox.abandon(true).await;
            return Err(AppError::NotFound("business not found".into()));
        }
        Err(err) => {
            outbox.abandon(true).await;
            return Err(store_error(err, "business"));
        }
    }
    let written = app
        .store()?
        .create(&DocPath::product(who.uid(), business, &id), fields)
        .await
        .map(|doc| {
            let json = doc.to_json();
            (json.clone(), DocEvent::ProductCreated, json)
        });
    outbox
        .finish(written)
        .await
        .map_err(|e| store_error(e, "business"))
}

/// The payload of an update event: the changed fields (cleared ones as `null`) plus ids,
/// `updatedAt` and the version the write left.
pub(crate) fn changes(patch: &domain::Patch, ids: &[(&str, &str)], doc: &Document) -> Value {
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
    if let Some(updated_at) = doc.fields.get("updatedAt") {
        data.insert("updatedAt".into(), updated_at.clone());
    }
    data.insert("version".into(), json!(doc.version));
    Value::Object(data)
}

/// A patch with `updatedAt` (and, for a product whose `status` it sets, `processingUntil`)
/// added by the server.
pub(crate) fn stamped(app: &App, mut patch: domain::Patch) -> domain::Patch {
    fn add(patch: &mut domain::Patch, name: &str, value: Option<Value>) {
        if let Some(value) = value {
            patch.set.insert(name.into(), value);
        }
        if !patch.mask.iter().any(|m| m == name) {
            patch.mask.push(name.into());
        }
    }
    if let Some(status) = patch.set.get("status").and_then(Value::as_str) {
        let until = (status == domain::ProductStatus::Processing.as_str())
            .then(|| json!(processing_until(app.timing.processing_timeout)));
        add(&mut patch, "processingUntil", until);
    }
    add(
        &mut patch,
        "updatedAt",
        Some(json!(domain::now_timestamp())),
    );
    patch
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
    let patch = domain::validate_patch(Resource::Product, body, app.urls)?;
    update_product_fields(app, who.uid(), business, product, patch).await
}

/// The write + event of a product update, shared with uploads.
pub async fn update_product_fields(
    app: &App,
    uid: &Uid,
    business: &BusinessId,
    product: &ProductId,
    patch: domain::Patch,
) -> Result<Value, AppError> {
    let ids = [("id", product.as_str()), ("businessId", business.as_str())];
    let patch = stamped(app, patch);
    let outbox = Outbox::open_spending(app, uid, Some(Budget::Mutations)).await?;
    let written = app
        .store()?
        .update(
            &DocPath::product(uid, business, product),
            patch.set.clone(),
            &patch.mask,
        )
        .await
        .map(|doc| {
            let event = changes(&patch, &ids, &doc);
            (doc.to_json(), DocEvent::ProductUpdated, event)
        });
    outbox
        .finish(written)
        .await
        .map_err(|e| store_error(e, "product"))
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
    let data = json!({"id": product, "businessId": business});
    let outbox = Outbox::open_spending(app, who.uid(), Some(Budget::Mutations)).await?;
    let written = app
        .store()?
        .delete(&DocPath::product(who.uid(), business, product))
        .await
        .map(|()| (data.clone(), DocEvent::ProductDeleted, data.clone()));
    outbox
        .finish(written)
        .await
        .map_err(|e| store_error(e, "product"))
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
    let patch = stamped(app, domain::validate_patch(Resource::User, body, app.urls)?);
    let outbox = Outbox::open_spending(app, uid, Some(Budget::Mutations)).await?;
    let written = app
        .store()?
        .update(&DocPath::user(uid), patch.set.clone(), &patch.mask)
        .await
        .map(|doc| {
            let event = changes(&patch, &[("uid", uid.as_str())], &doc);
            (doc.to_json(), DocEvent::UserUpdated, event)
        });
    outbox
        .finish(written)
        .await
        .map_err(|e| store_error(e, "user (log in first)"))
}

/// `GET /events?since=N&limit=L`: recorded events after `since`, as frames, in pages that
/// stay well inside Lambda's response limit. `seq` is where the next page starts; `complete`
/// is false when the caller must bootstrap again; `hasMore` asks for the next page (after
/// `retryAfterMs` when a write is still in flight).
pub async fn list_events(
    app: &App,
    who: &Principal,
    since: u64,
    limit: usize,
) -> Result<Value, AppError> {
    let limit = limit.clamp(1, MAX_EVENTS_PAGE);
    limits::spend(app, Budget::EventPages, who.uid().as_str()).await?;
    let page = app.events.after(who.uid(), since, limit).await?;
    let replayed = replay::replay_page(since, &page, app.timing.writer_lease);
    let mut frames = Vec::with_capacity(replayed.events.len());
    let mut bytes = 0;
    let mut mark = replayed.mark;
    let mut cut = false;
    for event in &replayed.events {
        let frame = events::event_frame(event);
        let size = carried_bytes(&frame) + 1;
        if bytes + size > MAX_ANSWER_BYTES && !frames.is_empty() {
            // The next page starts right before this event.
            mark = event.seq - 1;
            cut = true;
            break;
        }
        bytes += size;
        frames.push(
            serde_json::from_str::<Value>(&frame)
                .map_err(|e| AppError::internal("event frame", e))?,
        );
    }
    let (complete, has_more, retry_after) = match replayed.ending {
        _ if cut => (true, true, Duration::ZERO),
        replay::Ending::Done => (true, false, Duration::ZERO),
        replay::Ending::More { retry_after } => (true, true, retry_after),
        replay::Ending::Resync => (false, false, Duration::ZERO),
    };
    let mut answer = json!({
        "events": frames,
        "seq": mark,
        "head": replayed.head,
        "complete": complete,
        "hasMore": has_more,
    });
    if !retry_after.is_zero() {
        answer["retryAfterMs"] = json!(retry_after.as_millis() as u64);
    }
    Ok(answer)
}

/// The body of `POST /broadcast`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BroadcastRequest {
    /// Defaults to, and must equal, the service's `X-On-Behalf-Of`.
    #[serde(default)]
    pub uid: Option<Uid>,
    /// A name like `ai:progress` (see [`is_event_name`]).
    pub event: String,
    #[serde(default)]
    pub data: Value,
}

impl BroadcastRequest {
    pub fn parse(body: Map<String, Value>) -> Result<Self, AppError> {
        let request: Self = serde_json::from_value(Value::Object(body))
            .map_err(|e| AppError::BadRequest(format!("request body: {e}")))?;
        if !is_event_name(&request.event) {
            return Err(AppError::BadRequest(
                "field `event` must be a name like `ai:progress` (lowercase, digits, `-`, `_`, `:`; at most 64; not a control frame name)".into(),
            ));
        }
        Ok(request)
    }
}

/// `POST /broadcast` (services only): records and pushes `{uid, event, data}` to `uid`,
/// which defaults to, and must equal, the service's `X-On-Behalf-Of`.
pub async fn broadcast(
    app: &App,
    on_behalf_of: &Uid,
    request: BroadcastRequest,
) -> Result<Value, AppError> {
    let uid = match request.uid {
        None => on_behalf_of.clone(),
        Some(uid) if &uid == on_behalf_of => uid,
        Some(_) => {
            // A service acting for one user cannot address another.
            return Err(AppError::Forbidden(
                "field `uid` must equal X-On-Behalf-Of".into(),
            ));
        }
    };
    let event = request.event;
    let seq = Outbox::open_spending(app, &uid, Some(Budget::Broadcasts))
        .await?
        .publish(&event, request.data)
        .await;
    Ok(json!({"uid": uid, "event": event, "seq": seq}))
}

/// A broadcast event name: lowercase letters, digits, `-`, `_`, `:`, at most 64, starting
/// with a letter, and not a control frame's.
fn is_event_name(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b':')
        })
        && !Control::is_control(s)
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
