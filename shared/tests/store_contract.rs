//! The document store contract: every behaviour is one test body, run against both the
//! embedded `MemoryStore` and `FirestoreStore` on the Firestore emulator
//! (`FIRESTORE_EMULATOR_HOST`; without it the Firestore half fails, it does not skip).
//! Then what only Firestore has: HTTP call counts, failure mapping, and service-account
//! tokens against a loopback stand-in for Google.

mod support;

use std::time::Duration;

use adsync::store::memory::MemoryStore;
use adsync::store::{
    CollectionPath, DocPath, Document, DocumentStore, Fields, Listing, Precondition, StoreError,
    Write,
};
use serde_json::json;
use support::{business, fields, product, uid};

// ---------------------------------------------------------------------------------------
// Behaviours, each written once against the trait.
// ---------------------------------------------------------------------------------------

/// The fields of the document at `path`, if it is there.
/// A create of `path` with `value`'s fields.
fn create(path: &DocPath, value: serde_json::Value) -> Write {
    Write::Create {
        path: path.clone(),
        fields: fields(value),
    }
}

/// A delete of `path` under `precondition`.
fn delete(path: &DocPath, precondition: Precondition) -> Write {
    Write::Delete {
        path: path.clone(),
        precondition,
    }
}

async fn got(store: &dyn DocumentStore, path: &DocPath) -> Option<Fields> {
    store.get(path).await.expect("get").map(|d| d.fields)
}

async fn create_then_get(store: &dyn DocumentStore) {
    let path = business("alice", "b1");
    let doc = fields(json!({
        "name": "Bakery", "count": 3, "negative": -12, "ratio": 0.25, "open": true,
        "closed": null, "tags": ["a", "b"], "none": [], "empty": {},
        "metadata": {"nested": {"deep": [1, {"x": "y"}]}, "createdAt": "2024-05-01T10:00:00Z"},
    }));
    let stored = store.create(&path, doc.clone()).await.expect("create");
    assert_eq!(stored.fields, doc, "create returns the document as stored");
    assert_eq!(got(store, &path).await, Some(doc));
    assert_eq!(got(store, &business("alice", "missing")).await, None);
}

async fn create_twice_is_already_exists(store: &dyn DocumentStore) {
    let path = business("alice", "b1");
    store
        .create(&path, fields(json!({"name": "first"})))
        .await
        .expect("create");
    let err = store
        .create(&path, fields(json!({"name": "second"})))
        .await
        .expect_err("second create");
    assert_eq!(err, StoreError::AlreadyExists(path.as_str().into()));
    let kept = got(store, &path).await.expect("doc");
    assert_eq!(kept["name"], "first");
}

async fn update_merges_and_returns_the_whole_document(store: &dyn DocumentStore) {
    let path = business("alice", "b1");
    store
        .create(
            &path,
            fields(json!({"name": "old", "caption": "gone soon", "keep": 1})),
        )
        .await
        .expect("create");
    let mask = ["name".to_owned(), "caption".to_owned(), "added".to_owned()];
    let updated = store
        .update(
            &path,
            // `caption` is masked but absent: removed. `ignored` is not masked: not written.
            fields(json!({"name": "new", "added": {"k": [1, 2]}, "ignored": true})),
            &mask,
        )
        .await
        .expect("update");
    let expected = fields(json!({"name": "new", "keep": 1, "added": {"k": [1, 2]}}));
    assert_eq!(updated.fields, expected);
    assert_eq!(got(store, &path).await, Some(expected));
}

async fn update_quotes_field_names_that_are_not_identifiers(store: &dyn DocumentStore) {
    let path = business("alice", "b1");
    store
        .create(&path, fields(json!({"a": {"b": 1}})))
        .await
        .expect("create");
    let mask = ["a.b", "with space", "1st", "dash-ed", "back`tick"].map(str::to_owned);
    let updated = store
        .update(
            &path,
            fields(json!({"a.b": 2, "with space": 3, "1st": 4, "dash-ed": 5, "back`tick": 6})),
            &mask,
        )
        .await
        .expect("update");
    // `a.b` is one top-level field, not the nested `b` of `a`.
    assert_eq!(
        updated.fields,
        fields(json!({
            "a": {"b": 1}, "a.b": 2, "with space": 3, "1st": 4, "dash-ed": 5, "back`tick": 6
        }))
    );
}

async fn update_of_a_missing_document_is_not_found_and_creates_nothing(store: &dyn DocumentStore) {
    let path = business("alice", "missing");
    let err = store
        .update(&path, fields(json!({"name": "x"})), &["name".to_owned()])
        .await
        .expect_err("update");
    assert_eq!(err, StoreError::NotFound(path.as_str().into()));
    assert_eq!(got(store, &path).await, None);
}

async fn versions_increase_with_every_change_and_only_then(store: &dyn DocumentStore) {
    let path = business("alice", "b1");
    let created = store
        .create(&path, fields(json!({"name": "a"})))
        .await
        .expect("create");
    let name = ["name".to_owned()];
    let changed = store
        .update(&path, fields(json!({"name": "b"})), &name)
        .await
        .expect("update");
    assert!(
        changed.version > created.version,
        "a change is a later version"
    );
    // Firestore keeps the update time of a write that changes nothing.
    let same = store
        .update(&path, fields(json!({"name": "b"})), &name)
        .await
        .expect("update");
    assert_eq!(same.version, changed.version);
    let read = store.get(&path).await.expect("get").expect("doc");
    assert_eq!(read.version, changed.version);
    // Fixed width: string order is time order.
    assert_eq!(
        read.version.as_str().len(),
        "2026-01-01T00:00:00.000000000Z".len()
    );
    let listed = store
        .list(&CollectionPath::businesses(&uid("alice")))
        .await
        .expect("list");
    assert_eq!(listed[0].version, changed.version);
}

async fn delete_removes_and_a_missing_document_is_not_found(store: &dyn DocumentStore) {
    let path = business("alice", "b1");
    store
        .create(&path, fields(json!({"name": "x"})))
        .await
        .expect("create");
    store.delete(&path).await.expect("delete");
    assert_eq!(got(store, &path).await, None);
    let err = store.delete(&path).await.expect_err("second delete");
    assert_eq!(err, StoreError::NotFound(path.as_str().into()));
}

async fn commit_applies_every_write(store: &dyn DocumentStore) {
    let (a, b, c) = (
        business("alice", "a"),
        business("alice", "b"),
        business("alice", "c"),
    );
    store
        .create(&b, fields(json!({"name": "b", "n": 1})))
        .await
        .expect("create b");
    store
        .create(&c, fields(json!({"name": "c"})))
        .await
        .expect("create c");
    let versions = store
        .commit(vec![
            create(&a, json!({"name": "a"})),
            Write::Update {
                path: b.clone(),
                fields: fields(json!({"name": "b2"})),
                mask: vec!["name".into(), "n".into()],
                precondition: Precondition::Exists,
            },
            delete(&c, Precondition::Exists),
        ])
        .await
        .expect("commit");
    let [Some(va), Some(vb), None] = versions.as_slice() else {
        panic!("a version per write, none for the delete: {versions:?}");
    };
    assert_eq!(store.get(&a).await.expect("get").expect("a").version, *va);
    assert_eq!(store.get(&b).await.expect("get").expect("b").version, *vb);
    assert_eq!(got(store, &a).await, Some(fields(json!({"name": "a"}))));
    assert_eq!(got(store, &b).await, Some(fields(json!({"name": "b2"}))));
    assert_eq!(got(store, &c).await, None);
    store.commit(Vec::new()).await.expect("an empty commit");
}

async fn a_failed_commit_applies_nothing(store: &dyn DocumentStore) {
    let existing = business("alice", "existing");
    let fresh = business("alice", "fresh");
    let original = fields(json!({"name": "original"}));
    store
        .create(&existing, original.clone())
        .await
        .expect("create");

    // The second write fails its precondition: the first must not be applied.
    let err = store
        .commit(vec![
            create(&fresh, json!({"name": "fresh"})),
            create(&existing, json!({"name": "clobbered"})),
        ])
        .await
        .expect_err("commit");
    assert_eq!(err, StoreError::AlreadyExists(existing.as_str().into()));
    assert_eq!(got(store, &fresh).await, None);
    assert_eq!(got(store, &existing).await, Some(original.clone()));

    let missing = business("alice", "missing");
    let err = store
        .commit(vec![
            Write::Update {
                path: existing.clone(),
                fields: fields(json!({"name": "changed"})),
                mask: vec!["name".into()],
                precondition: Precondition::Exists,
            },
            delete(&missing, Precondition::Exists),
        ])
        .await
        .expect_err("commit");
    assert_eq!(err, StoreError::NotFound(missing.as_str().into()));
    assert_eq!(got(store, &existing).await, Some(original));
    assert_eq!(got(store, &missing).await, None);
}

async fn version_preconditions_compare_and_set(store: &dyn DocumentStore) {
    let path = product("alice", "b1", "p1");
    let first = store
        .create(&path, fields(json!({"name": "p", "status": "draft"})))
        .await
        .expect("create");
    let set = |status: &str, at: &Document| Write::Update {
        path: path.clone(),
        fields: fields(json!({"status": status})),
        mask: vec!["status".into()],
        precondition: Precondition::At(at.version.clone()),
    };
    let versions = store
        .commit(vec![set("processing", &first)])
        .await
        .expect("at the version read: applied");
    let second = store.get(&path).await.expect("get").expect("doc");
    assert_eq!(versions, vec![Some(second.version.clone())]);
    assert_eq!(second.fields["status"], "processing");
    // A second writer that read the first version loses.
    let err = store
        .commit(vec![set("enriched", &first)])
        .await
        .expect_err("stale version");
    assert_eq!(err, StoreError::PreconditionFailed(path.as_str().into()));
    assert_eq!(
        got(store, &path).await.expect("doc")["status"],
        "processing"
    );

    // Delete without a precondition: fine whether or not the document is there.
    let other = product("alice", "b1", "never");
    store
        .commit(vec![delete(&other, Precondition::None)])
        .await
        .expect("deleting a missing document without a precondition");
    let err = store
        .commit(vec![delete(&path, Precondition::At(first.version.clone()))])
        .await
        .expect_err("stale delete");
    assert_eq!(err, StoreError::PreconditionFailed(path.as_str().into()));
    store
        .commit(vec![delete(&path, Precondition::At(second.version))])
        .await
        .expect("delete at the current version");
    assert_eq!(got(store, &path).await, None);
}

async fn find_in_group_searches_every_user(store: &dyn DocumentStore) {
    let docs = [
        (product("alice", "b1", "p1"), "processing"),
        (product("alice", "b2", "p2"), "draft"),
        (product("bob", "b3", "p3"), "processing"),
        // Same field in another collection: not included.
        (business("carol", "b4"), "processing"),
    ];
    for (path, status) in &docs {
        store
            .create(path, fields(json!({"name": "x", "status": status})))
            .await
            .expect("create");
    }
    let mut found: Vec<String> = store
        .find_in_group("products", "status", "processing")
        .await
        .expect("query")
        .into_iter()
        .map(|(path, doc)| {
            assert_eq!(doc.fields["status"], "processing");
            path.as_str().to_owned()
        })
        .collect();
    found.sort();
    assert_eq!(
        found,
        [
            "users/alice/businesses/b1/products/p1",
            "users/bob/businesses/b3/products/p3"
        ]
    );
}

fn names(mut docs: Vec<Document>) -> Vec<String> {
    let mut names: Vec<String> = docs
        .drain(..)
        .map(|d| d.fields["name"].as_str().expect("name").to_owned())
        .collect();
    names.sort();
    names
}

async fn list_returns_one_collection_of_one_user(store: &dyn DocumentStore) {
    for (user, id) in [("alice", "b1"), ("alice", "b2"), ("bob", "b3")] {
        store
            .create(&business(user, id), fields(json!({"name": id})))
            .await
            .expect("create");
    }
    store
        .create(&product("alice", "b1", "p1"), fields(json!({"name": "p1"})))
        .await
        .expect("create product");
    let alice = store
        .list(&CollectionPath::businesses(&uid("alice")))
        .await
        .expect("list");
    assert_eq!(names(alice), ["b1", "b2"]);
    let nobody = store
        .list(&CollectionPath::businesses(&uid("carol")))
        .await
        .expect("list");
    assert!(nobody.is_empty());
}

async fn list_follows_pages(store: &dyn DocumentStore) {
    // More than one page (300) of Firestore's listing.
    let writes = (0..301)
        .map(|i| {
            create(
                &product("alice", "b1", &format!("p{i:03}")),
                json!({"name": format!("p{i:03}")}),
            )
        })
        .collect();
    store.commit(writes).await.expect("commit");
    let all = store
        .list(&CollectionPath::products(
            &uid("alice"),
            &adsync::ids::BusinessId::parse("b1").expect("id"),
        ))
        .await
        .expect("list");
    let names = names(all);
    assert_eq!(names.len(), 301);
    assert_eq!(names.first().map(String::as_str), Some("p000"));
    assert_eq!(names.last().map(String::as_str), Some("p300"));
}

async fn list_descendants_is_scoped_to_the_parent(store: &dyn DocumentStore) {
    let docs = [
        (product("alice", "b1", "p1"), "alice-p1"),
        (product("alice", "b2", "p2"), "alice-p2"),
        (product("bob", "b3", "p3"), "bob-p3"),
        // Same collection id directly under the user: a descendant too.
        (
            DocPath::user(&uid("alice")).child("products", "p4"),
            "alice-p4",
        ),
        // Another collection id: not included.
        (business("alice", "b1"), "alice-b1"),
    ];
    for (path, name) in &docs {
        store
            .create(path, fields(json!({"name": name})))
            .await
            .expect("create");
    }
    let alice = store
        .list_descendants(&DocPath::user(&uid("alice")), "products")
        .await
        .expect("query");
    assert_eq!(names(alice), ["alice-p1", "alice-p2", "alice-p4"]);
    let bob = store
        .list_descendants(&DocPath::user(&uid("bob")), "products")
        .await
        .expect("query");
    assert_eq!(names(bob), ["bob-p3"]);
    let carol = store
        .list_descendants(&DocPath::user(&uid("carol")), "products")
        .await
        .expect("query");
    assert!(carol.is_empty());
}

async fn values_firestore_cannot_store_are_refused(store: &dyn DocumentStore) {
    let path = business("alice", "b1");
    for bad in [json!({"m": [[1]]}), json!({"": 1}), json!({"__x__": 1})] {
        let err = store
            .create(&path, fields(bad.clone()))
            .await
            .expect_err("refused");
        assert!(matches!(err, StoreError::Unavailable(_)), "{bad}: {err}");
    }
    assert_eq!(got(store, &path).await, None);
}

/// Every document of `listing`, read in pages of `limit`.
async fn all_pages(store: &dyn DocumentStore, listing: &Listing, limit: usize) -> Vec<String> {
    let mut after: Option<DocPath> = None;
    let mut names = Vec::new();
    loop {
        let page = store
            .list_page(listing, after.as_ref(), limit)
            .await
            .expect("page");
        assert!(page.len() <= limit, "{} > {limit}", page.len());
        let Some((last, _)) = page.last() else {
            return names;
        };
        after = Some(last.clone());
        for (path, doc) in &page {
            assert_eq!(path.id(), doc.fields["name"], "the path is the document's");
            names.push(path.id().to_owned());
        }
    }
}

async fn pages_list_every_document_once_in_order(store: &dyn DocumentStore) {
    let docs = [
        product("alice", "b1", "p1"),
        product("alice", "b1", "p2"),
        product("alice", "b1", "p3"),
        product("alice", "b2", "p4"),
        product("alice", "b2", "p5"),
        product("bob", "b3", "p6"),
        business("alice", "b1"),
    ];
    for path in &docs {
        store
            .create(path, fields(json!({"name": path.id()})))
            .await
            .expect("create");
    }
    let alice = DocPath::user(&uid("alice"));
    let every_product = Listing::Descendants {
        parent: alice.clone(),
        collection_id: "products",
    };
    for limit in [1, 2, 10] {
        assert_eq!(
            all_pages(store, &every_product, limit).await,
            ["p1", "p2", "p3", "p4", "p5"],
            "pages of {limit}"
        );
    }
    let one_business = Listing::Collection(CollectionPath::products(
        &uid("alice"),
        &adsync::ids::BusinessId::parse("b1").expect("id"),
    ));
    assert_eq!(all_pages(store, &one_business, 2).await, ["p1", "p2", "p3"]);
    let businesses = Listing::Collection(CollectionPath::businesses(&uid("alice")));
    assert_eq!(all_pages(store, &businesses, 2).await, ["b1"]);
    let nobody = Listing::Descendants {
        parent: DocPath::user(&uid("carol")),
        collection_id: "products",
    };
    assert!(all_pages(store, &nobody, 2).await.is_empty());
}

/// `depth` maps nested in one another, around a string.
fn nested(depth: usize) -> serde_json::Value {
    (0..depth).fold(json!("x"), |inner, _| json!({ "a": inner }))
}

async fn nesting_and_field_paths_are_limited_as_firestore_limits_them(store: &dyn DocumentStore) {
    use adsync::store::{MAX_FIELD_DEPTH, MAX_FIELD_PATH_BYTES};
    let path = business("alice", "b1");
    // `metadata.<key>` is the field path: the key may take what the prefix leaves.
    let longest_key = "k".repeat(MAX_FIELD_PATH_BYTES - "metadata.".len());
    let longest_nested_key = "k".repeat(MAX_FIELD_PATH_BYTES - "metadata.ab.".len());
    let accepted = [
        json!({ "metadata": nested(MAX_FIELD_DEPTH) }),
        json!({ "metadata": { longest_key.clone(): 1 } }),
        json!({ "metadata": { "ab": { longest_nested_key.clone(): 1 } } }),
        json!({ "metadata": [nested(MAX_FIELD_DEPTH - 1)] }),
    ];
    let refused = [
        json!({ "metadata": nested(MAX_FIELD_DEPTH + 1) }),
        json!({ "metadata": { format!("{longest_key}k"): 1 } }),
        json!({ "metadata": { "ab": { format!("{longest_nested_key}k"): 1 } } }),
        json!({ "metadata": [nested(MAX_FIELD_DEPTH)] }),
    ];
    for good in accepted {
        store
            .create(&path, fields(good.clone()))
            .await
            .unwrap_or_else(|e| panic!("refused {}…: {e}", &good.to_string()[..60]));
        store.delete(&path).await.expect("delete");
    }
    for bad in refused {
        let err = store
            .create(&path, fields(bad.clone()))
            .await
            .expect_err("refused");
        assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
        assert_eq!(got(store, &path).await, None);
    }
}

/// One test per behaviour and backend: `memory::name` and `firestore::name`.
macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(&adsync::store::memory::MemoryStore::new()).await;
                }
            )*
        }
        mod firestore {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(&crate::support::emulator_store()).await;
                }
            )*
        }
    };
}

contract!(
    pages_list_every_document_once_in_order,
    nesting_and_field_paths_are_limited_as_firestore_limits_them,
    create_then_get,
    create_twice_is_already_exists,
    update_merges_and_returns_the_whole_document,
    update_quotes_field_names_that_are_not_identifiers,
    update_of_a_missing_document_is_not_found_and_creates_nothing,
    versions_increase_with_every_change_and_only_then,
    delete_removes_and_a_missing_document_is_not_found,
    commit_applies_every_write,
    a_failed_commit_applies_nothing,
    version_preconditions_compare_and_set,
    find_in_group_searches_every_user,
    list_returns_one_collection_of_one_user,
    list_follows_pages,
    list_descendants_is_scoped_to_the_parent,
    values_firestore_cannot_store_are_refused,
);

// ---------------------------------------------------------------------------------------
// MemoryStore only: the snapshot of local mode.
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_persistent_memory_store_survives_a_reopen() {
    let dir = support::temp_dir();
    let file = dir.join("nested").join("store.json");
    let kept = business("alice", "kept");
    let gone = business("alice", "gone");
    {
        let store = MemoryStore::persistent(&file).expect("open");
        store
            .create(&kept, fields(json!({"name": "kept", "n": 1})))
            .await
            .expect("create");
        store
            .create(&gone, fields(json!({"name": "gone"})))
            .await
            .expect("create");
        store
            .update(&kept, fields(json!({"n": 2})), &["n".to_owned()])
            .await
            .expect("update");
        store.delete(&gone).await.expect("delete");
        // A failed commit must not reach the file either.
        store
            .commit(vec![
                Write::Create {
                    path: business("alice", "never"),
                    fields: Fields::new(),
                },
                delete(&gone, Precondition::Exists),
            ])
            .await
            .expect_err("commit");
    }
    assert!(file.exists());
    assert!(
        !file.with_file_name("store.json.tmp").exists(),
        "the temporary file was renamed"
    );

    let reopened = MemoryStore::persistent(&file).expect("reopen");
    assert_eq!(
        got(&reopened, &kept).await,
        Some(fields(json!({"name": "kept", "n": 2})))
    );
    assert_eq!(got(&reopened, &gone).await, None);
    assert_eq!(got(&reopened, &business("alice", "never")).await, None);
    // The reopened store keeps working and keeps saving.
    reopened
        .create(&gone, fields(json!({"name": "back"})))
        .await
        .expect("create");
    let again = MemoryStore::persistent(&file).expect("reopen");
    assert!(again.get(&gone).await.expect("get").is_some());

    std::fs::write(&file, b"{ not json").expect("corrupt");
    assert!(matches!(
        MemoryStore::persistent(&file),
        Err(StoreError::Unavailable(_))
    ));
    let _ = std::fs::remove_dir_all(dir);
}

// ---------------------------------------------------------------------------------------
// FirestoreStore only: what it costs, and how failures map.
// ---------------------------------------------------------------------------------------

mod firestore_calls {
    use super::*;
    use crate::support::{CountingProxy, emulator_config, http_client, random_suffix};
    use adsync::store::firestore::FirestoreStore;

    #[tokio::test]
    async fn every_operation_is_one_http_call_and_writes_never_read() {
        let proxy = CountingProxy::start().await;
        let project = format!("demo-test-{}", random_suffix());
        let store = FirestoreStore::new(
            &emulator_config(proxy.base_url.clone()),
            &project,
            http_client(),
            Duration::from_secs(5),
        )
        .expect("store");
        let root = format!("/v1/projects/{project}/databases/(default)/documents");
        let path = product("alice", "b1", "p1");

        store
            .create(&path, fields(json!({"name": "p"})))
            .await
            .expect("create");
        assert_eq!(
            proxy.take(),
            [format!("POST {root}/users/alice/businesses/b1/products")]
        );

        store
            .update(&path, fields(json!({"name": "q"})), &["name".to_owned()])
            .await
            .expect("update");
        assert_eq!(proxy.take(), [format!("PATCH {root}/{}", path.as_str())]);

        let _ = store
            .update(
                &product("alice", "b1", "nope"),
                fields(json!({"name": "q"})),
                &["name".to_owned()],
            )
            .await
            .expect_err("update missing");
        assert_eq!(proxy.take().len(), 1, "a failed update is one call too");

        store
            .commit(vec![Write::Update {
                path: path.clone(),
                fields: fields(json!({"name": "r"})),
                mask: vec!["name".into()],
                precondition: Precondition::Exists,
            }])
            .await
            .expect("commit");
        assert_eq!(proxy.take(), [format!("POST {root}:commit")]);

        store.get(&path).await.expect("get");
        assert_eq!(proxy.take(), [format!("GET {root}/{}", path.as_str())]);

        store
            .list(&CollectionPath::businesses(&uid("alice")))
            .await
            .expect("list");
        assert_eq!(proxy.take(), [format!("GET {root}/users/alice/businesses")]);

        store
            .list_descendants(&DocPath::user(&uid("alice")), "products")
            .await
            .expect("query");
        assert_eq!(proxy.take(), [format!("POST {root}/users/alice:runQuery")]);

        store.delete(&path).await.expect("delete");
        assert_eq!(proxy.take(), [format!("DELETE {root}/{}", path.as_str())]);

        store.commit(Vec::new()).await.expect("empty commit");
        assert!(proxy.take().is_empty(), "an empty commit makes no call");

        // A listing longer than a page follows the page tokens: one GET per page (the
        // emulator answers at most 150 documents a page, whatever pageSize asks).
        let writes = (0..301)
            .map(|i| {
                create(
                    &business("alice", &format!("b{i:03}")),
                    json!({"name": "b"}),
                )
            })
            .collect();
        store.commit(writes).await.expect("commit");
        proxy.take();
        let listed = store
            .list(&CollectionPath::businesses(&uid("alice")))
            .await
            .expect("list");
        assert_eq!(listed.len(), 301);
        let calls = proxy.take();
        assert!(calls.len() >= 2, "{calls:?}");
        assert!(
            calls
                .iter()
                .all(|c| *c == format!("GET {root}/users/alice/businesses")),
            "{calls:?}"
        );
    }

    #[tokio::test]
    async fn warm_up_opens_the_connection_without_a_firestore_operation() {
        let proxy = CountingProxy::start().await;
        let store = FirestoreStore::new(
            &emulator_config(proxy.base_url.clone()),
            "demo-warm",
            http_client(),
            Duration::from_secs(5),
        )
        .expect("store");
        store.warm_up().await;
        assert_eq!(proxy.take(), ["GET /"]);
    }
}

mod firestore_failures {
    use super::*;
    use crate::support::{emulator_config, http_client, serve};
    use adsync::store::firestore::FirestoreStore;
    use axum::Router;
    use axum::http::StatusCode;
    use axum::response::IntoResponse;

    async fn store_answered_by(status: StatusCode, body: &'static str) -> FirestoreStore {
        let router = Router::new().fallback(move || async move { (status, body).into_response() });
        let addr = serve(router).await;
        FirestoreStore::new(
            &emulator_config(format!("http://{addr}")),
            "demo-fail",
            http_client(),
            Duration::from_secs(5),
        )
        .expect("store")
    }

    /// How a failed write is reported: as certainly not applied, or as maybe applied.
    #[derive(Clone, Copy, Debug, PartialEq)]
    enum Writes {
        Unavailable,
        Indeterminate,
    }

    /// Every operation fails; reads as `Unavailable` (a read writes nothing), writes as
    /// `writes` says; no message is long or carries a credential.
    async fn assert_failures(store: &FirestoreStore, writes: Writes) {
        let path = business("alice", "b1");
        let reads = [
            store.get(&path).await.map(|_| ()),
            store
                .list(&CollectionPath::businesses(&uid("alice")))
                .await
                .map(|_| ()),
            store
                .list_descendants(&DocPath::user(&uid("alice")), "products")
                .await
                .map(|_| ()),
            store
                .find_in_group("products", "status", "processing")
                .await
                .map(|_| ()),
        ];
        let written = [
            store.create(&path, Fields::new()).await.map(|_| ()),
            store
                .update(&path, Fields::new(), &["a".to_owned()])
                .await
                .map(|_| ()),
            store.delete(&path).await,
            store
                .commit(vec![delete(&path, Precondition::Exists)])
                .await
                .map(|_| ()),
        ];
        let short = |message: &str| {
            assert!(message.len() < 400, "short: {message}");
            assert!(!message.contains("owner"), "no credentials: {message}");
        };
        for result in reads {
            match result {
                Err(StoreError::Unavailable(message)) => short(&message),
                other => panic!("a read: expected Unavailable, got {other:?}"),
            }
        }
        for result in written {
            match (writes, result) {
                (Writes::Unavailable, Err(StoreError::Unavailable(message)))
                | (Writes::Indeterminate, Err(StoreError::Indeterminate(message))) => {
                    short(&message);
                }
                (_, other) => panic!("a write: expected {writes:?}, got {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn each_kind_of_failed_answer_says_whether_a_write_may_have_applied() {
        let cases = [
            // A server error may come after the write was applied.
            (
                StatusCode::SERVICE_UNAVAILABLE,
                r#"{"error":{"code":503,"message":"try later","status":"UNAVAILABLE"}}"#,
                Writes::Indeterminate,
            ),
            // A 404 that is not from Firestore (a proxy's) is no answer about the document.
            (StatusCode::NOT_FOUND, "Not Found", Writes::Unavailable),
            // A refusal writes nothing.
            (
                StatusCode::TOO_MANY_REQUESTS,
                r#"{"error":{"code":429,"message":"slow down","status":"RESOURCE_EXHAUSTED"}}"#,
                Writes::Unavailable,
            ),
            // A success that is not Firestore's may have applied the write.
            (StatusCode::OK, "<html>hello</html>", Writes::Indeterminate),
        ];
        for (status, body, writes) in cases {
            let store = store_answered_by(status, body).await;
            assert_failures(&store, writes).await;
        }
        // A document that is not one, from the calls that return documents.
        let store = store_answered_by(StatusCode::OK, r#"{"fields": 7}"#).await;
        let path = business("alice", "b1");
        assert!(matches!(
            store.get(&path).await,
            Err(StoreError::Unavailable(_))
        ));
        let written = [
            store.create(&path, Fields::new()).await.map(|_| ()),
            store
                .update(&path, Fields::new(), &["a".to_owned()])
                .await
                .map(|_| ()),
        ];
        for result in written {
            assert!(
                matches!(result, Err(StoreError::Indeterminate(_))),
                "{result:?}"
            );
        }
    }

    #[tokio::test]
    async fn an_unreachable_server_is_unavailable() {
        // Bind then drop a listener: nothing answers on that port any more.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        drop(listener);
        let store = FirestoreStore::new(
            &emulator_config(format!("http://{addr}")),
            "demo-fail",
            http_client(),
            Duration::from_secs(5),
        )
        .expect("store");
        // Nothing was sent: nothing was written.
        assert_failures(&store, Writes::Unavailable).await;
        // Warm-up logs and carries on.
        store.warm_up().await;
    }
}

// ---------------------------------------------------------------------------------------
// Service-account tokens against a loopback stand-in for Google's token endpoint.
// ---------------------------------------------------------------------------------------

mod google_token {
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use adsync::config::FirestoreConfig;
    use adsync::google::{CLOUD_PLATFORM_SCOPE, GoogleTokenSource};
    use adsync::secrets::Secret;
    use adsync::store::firestore::FirestoreStore;
    use adsync::store::{DocPath, DocumentStore, StoreError};
    use axum::extract::{Request, State};
    use axum::http::StatusCode;
    use axum::response::{IntoResponse, Response};
    use axum::routing::post;
    use axum::{Form, Json, Router};
    use jsonwebtoken::{Algorithm, DecodingKey, Validation};
    use secrecy::ExposeSecret;
    use serde_json::{Value, json};

    use crate::support::{fields, fixture, http_client, serve, uid};

    const EMAIL: &str = "sync-backend@demo-test.iam.gserviceaccount.com";
    const GOOGLE_AUDIENCE: &str = "https://oauth2.googleapis.com/token";

    /// The stand-in: `/token` checks the assertion like Google does and hands out numbered
    /// tokens; anything else plays Firestore and records the `Authorization` it got.
    #[derive(Clone)]
    struct Google {
        exchanges: Arc<AtomicUsize>,
        authorizations: Arc<Mutex<Vec<String>>>,
        expires_in: u64,
        delay: Duration,
        /// The `aud` it accepts: Google's own token URI unless a test says otherwise.
        audience: Arc<Mutex<String>>,
        /// An access token the stand-in Firestore refuses with 401.
        revoked: Arc<Mutex<Option<String>>>,
    }

    /// The access token `tokens` gives now, as text.
    async fn token_of(tokens: &GoogleTokenSource) -> String {
        let token = tokens.access_token().await.expect("token");
        token.expose_secret().to_owned()
    }

    impl Google {
        fn new(expires_in: u64, delay: Duration) -> Self {
            Self {
                exchanges: Arc::new(AtomicUsize::new(0)),
                authorizations: Arc::new(Mutex::new(Vec::new())),
                expires_in,
                delay,
                audience: Arc::new(Mutex::new(GOOGLE_AUDIENCE.to_owned())),
                revoked: Arc::new(Mutex::new(None)),
            }
        }

        /// A stand-in answering tokens that live `expires_in` s after `delay`, serving; and
        /// its URL.
        async fn serving(expires_in: u64, delay: Duration) -> (Self, String) {
            let google = Self::new(expires_in, delay);
            let base = google.start().await;
            (google, base)
        }

        async fn start(&self) -> String {
            let router = Router::new()
                .route("/token", post(token))
                .fallback(firestore)
                .with_state(self.clone());
            format!("http://{}", serve(router).await)
        }

        fn exchanges(&self) -> usize {
            self.exchanges.load(Ordering::SeqCst)
        }
    }

    async fn token(
        State(google): State<Google>,
        Form(form): Form<HashMap<String, String>>,
    ) -> Response {
        tokio::time::sleep(google.delay).await;
        if form.get("grant_type").map(String::as_str)
            != Some("urn:ietf:params:oauth:grant-type:jwt-bearer")
        {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": "unsupported_grant_type"})),
            )
                .into_response();
        }
        let key = DecodingKey::from_rsa_pem(fixture("test-key-1.pub.pem").as_bytes())
            .expect("public key");
        let mut validation = Validation::new(Algorithm::RS256);
        let audience = google.audience.lock().expect("audience").clone();
        validation.set_audience(&[audience]);
        validation.set_issuer(&[EMAIL]);
        validation.set_required_spec_claims(&["exp", "iat", "aud", "iss"]);
        let assertion = form.get("assertion").cloned().unwrap_or_default();
        let claims = match jsonwebtoken::decode::<Value>(&assertion, &key, &validation) {
            Ok(data) => data.claims,
            Err(_) => {
                return (
                    StatusCode::BAD_REQUEST,
                    Json(json!({"error": "invalid_grant", "error_description": "Invalid JWT Signature."})),
                )
                    .into_response();
            }
        };
        let (iat, exp) = (claims["iat"].as_i64(), claims["exp"].as_i64());
        let lifetime_ok = matches!((iat, exp), (Some(i), Some(e)) if e - i == 3600);
        if claims["scope"] != CLOUD_PLATFORM_SCOPE || !lifetime_ok {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": "invalid_scope"})),
            )
                .into_response();
        }
        let n = google.exchanges.fetch_add(1, Ordering::SeqCst) + 1;
        Json(json!({
            "access_token": format!("ya29.test-token-{n}"),
            "expires_in": google.expires_in,
            "token_type": "Bearer",
        }))
        .into_response()
    }

    async fn firestore(State(google): State<Google>, request: Request) -> Response {
        let authorization = request
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        google
            .authorizations
            .lock()
            .expect("authorizations")
            .push(authorization.clone());
        let revoked = google.revoked.lock().expect("revoked").clone();
        if revoked.is_some_and(|token| authorization == format!("Bearer {token}")) {
            let body = json!({"error": {"code": 401, "status": "UNAUTHENTICATED",
                "message": "Request had invalid authentication credentials."}});
            return (StatusCode::UNAUTHORIZED, Json(body)).into_response();
        }
        Json(json!({
            "name": "projects/demo-real/databases/(default)/documents/users/alice",
            "fields": {"name": {"stringValue": "Alice"}},
            "updateTime": "2026-01-02T03:04:05.678901Z",
        }))
        .into_response()
    }

    fn key_json(pem_file: &str, token_uri: &str) -> Secret {
        Secret::from(
            json!({
                "type": "service_account",
                "project_id": "demo-real",
                "private_key_id": "test-key",
                "private_key": fixture(pem_file),
                "client_email": EMAIL,
                "token_uri": token_uri,
            })
            .to_string(),
        )
    }

    fn source(base: &str, pem_file: &str) -> GoogleTokenSource {
        GoogleTokenSource::new(
            &key_json(pem_file, GOOGLE_AUDIENCE),
            Some(&format!("{base}/token")),
            http_client(),
        )
        .expect("token source")
    }

    #[tokio::test]
    async fn the_signed_assertion_is_exchanged_once_and_the_token_cached() {
        let (google, base) = Google::serving(3599, Duration::ZERO).await;
        let tokens = source(&base, "test-key-1.pem");
        let first = tokens.access_token().await.expect("token");
        let second = tokens.access_token().await.expect("token");
        assert_eq!(first.expose_secret(), "ya29.test-token-1");
        assert_eq!(second.expose_secret(), "ya29.test-token-1");
        assert_eq!(google.exchanges(), 1, "one exchange for two calls");
        assert!(
            !format!("{tokens:?}").contains("ya29"),
            "Debug never shows a token"
        );
    }

    #[tokio::test]
    async fn concurrent_callers_share_one_refresh() {
        let (google, base) = Google::serving(3599, Duration::from_millis(200)).await;
        let tokens = Arc::new(source(&base, "test-key-1.pem"));
        let calls: Vec<_> = (0..8)
            .map(|_| {
                let tokens = tokens.clone();
                tokio::spawn(async move { tokens.access_token().await })
            })
            .collect();
        for call in calls {
            let token = call.await.expect("join").expect("token");
            assert_eq!(token.expose_secret(), "ya29.test-token-1");
        }
        assert_eq!(google.exchanges(), 1);
    }

    #[tokio::test]
    async fn a_token_is_refreshed_before_it_expires() {
        // A 2 s token is refreshed after half its life (the margin is at most 5 minutes).
        let (google, base) = Google::serving(2, Duration::ZERO).await;
        let tokens = source(&base, "test-key-1.pem");
        assert_eq!(token_of(&tokens).await, "ya29.test-token-1");
        tokio::time::sleep(Duration::from_millis(1100)).await;
        assert_eq!(token_of(&tokens).await, "ya29.test-token-2");
        assert_eq!(google.exchanges(), 2);
    }

    #[tokio::test]
    async fn the_key_files_token_uri_is_used_when_not_overridden() {
        let (google, base) = Google::serving(3599, Duration::ZERO).await;
        // The key file names the stand-in as its token URI: assertions go there, with it
        // as their audience.
        *google.audience.lock().expect("audience") = format!("{base}/token");
        let tokens = GoogleTokenSource::new(
            &key_json("test-key-1.pem", &format!("{base}/token")),
            None,
            http_client(),
        )
        .expect("token source");
        assert_eq!(token_of(&tokens).await, "ya29.test-token-1");
        assert_eq!(google.exchanges(), 1);
    }

    #[tokio::test]
    async fn a_refused_assertion_is_an_error_without_secrets() {
        let (_google, base) = Google::serving(3599, Duration::ZERO).await;
        // Signed with the other key: the stand-in's signature check refuses it.
        let tokens = source(&base, "test-key-2.pem");
        let err = tokens.access_token().await.expect_err("refused");
        assert!(err.0.contains("HTTP 400"), "{err}");
        assert!(err.0.contains("Invalid JWT Signature"), "{err}");
        assert!(!err.0.contains("eyJ"), "no assertion in errors: {err}");
        assert!(!err.0.contains("PRIVATE KEY"), "{err}");
    }

    /// A store of real Firestore at `base`, whose tokens come from `base`'s token endpoint
    /// for the service account of `key`.
    fn real_store(base: &str, key: &str) -> FirestoreStore {
        let config = FirestoreConfig {
            base_url: base.to_owned(),
            emulator: false,
            service_account: Some(key_json(key, GOOGLE_AUDIENCE)),
            token_url: Some(format!("{base}/token")),
        };
        FirestoreStore::new(&config, "demo-real", http_client(), Duration::from_secs(5))
            .expect("store")
    }

    #[tokio::test]
    async fn firestore_outside_the_emulator_sends_the_access_token() {
        let (google, base) = Google::serving(3599, Duration::ZERO).await;
        let store = real_store(&base, "test-key-1.pem");
        store.warm_up().await;
        assert_eq!(google.exchanges(), 1, "the token is fetched during warm-up");

        let alice = DocPath::user(&uid("alice"));
        for _ in 0..2 {
            let doc = store.get(&alice).await.expect("get").expect("doc");
            assert_eq!(doc.fields, fields(json!({"name": "Alice"})));
            assert_eq!(doc.version.as_str(), "2026-01-02T03:04:05.678901000Z");
        }
        let authorizations = google
            .authorizations
            .lock()
            .expect("authorizations")
            .clone();
        // The warm-up's bare connection carries no credentials; the reads carry the token.
        assert_eq!(
            authorizations,
            ["", "Bearer ya29.test-token-1", "Bearer ya29.test-token-1"]
        );
        assert_eq!(google.exchanges(), 1, "the cached token is reused");
    }

    #[tokio::test]
    async fn a_refused_token_is_replaced_and_the_call_retried() {
        let (google, base) = Google::serving(3599, Duration::ZERO).await;
        let store = real_store(&base, "test-key-1.pem");
        *google.revoked.lock().expect("revoked") = Some("ya29.test-token-1".into());
        let alice = DocPath::user(&uid("alice"));
        assert!(store.get(&alice).await.expect("get").is_some());
        assert_eq!(
            google.exchanges(),
            2,
            "the refused token was exchanged again"
        );
        let authorizations = google
            .authorizations
            .lock()
            .expect("authorizations")
            .clone();
        assert_eq!(
            authorizations,
            ["Bearer ya29.test-token-1", "Bearer ya29.test-token-2"]
        );
    }

    #[tokio::test]
    async fn firestore_without_a_token_is_unavailable() {
        let (google, base) = Google::serving(3599, Duration::ZERO).await;
        let store = real_store(&base, "test-key-2.pem");
        store.warm_up().await; // logs a warning, does not panic
        let err = store
            .get(&DocPath::user(&uid("alice")))
            .await
            .expect_err("no token");
        assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
        // Only the warm-up's bare connection reached the stand-in Firestore.
        assert_eq!(*google.authorizations.lock().expect("authorizations"), [""]);
    }

    #[test]
    fn an_invalid_key_is_a_configuration_error() {
        for key in [
            "{",
            "[]",
            r#"{"client_email": "x@y", "private_key": "nope"}"#,
        ] {
            let config = FirestoreConfig {
                base_url: "https://firestore.googleapis.com".into(),
                emulator: false,
                service_account: Some(Secret::from(key)),
                token_url: None,
            };
            assert!(
                FirestoreStore::new(&config, "demo-real", http_client(), Duration::from_secs(5))
                    .is_err()
            );
        }
    }
}
