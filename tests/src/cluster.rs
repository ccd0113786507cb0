//! Local gateways as separate processes over shared real stores, arranged as the cloud is:
//! one `front` holds the WebSockets (API Gateway's part), `worker`s serve the REST calls and
//! push through the front's Management API (the functions' part), and a worker can be killed
//! mid-request while the sockets live on. All of them reach the Firestore emulator and the
//! DynamoDB server through [`FaultProxy`]s, so a test can fail, slow down or hold any call.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;

use crate::faults::FaultProxy;

/// The stores the cluster shares, behind fault proxies, and the names that isolate a test.
pub struct Stores {
    pub firestore: FaultProxy,
    pub dynamodb: FaultProxy,
    /// The Firestore emulator itself (`host:port`), for reading the truth around the proxy.
    pub firestore_host: String,
    pub project_id: String,
    pub table: String,
}

impl Stores {
    /// Proxies in front of the emulator and the DynamoDB server that the test command
    /// started (`FIRESTORE_EMULATOR_HOST`, and `DYNAMODB_SERIAL_ENDPOINT`: a server that
    /// handles one request at a time, since moto's threaded server races on concurrent
    /// transactions), with a fresh project and table.
    pub async fn start() -> Self {
        let firestore_host = required("FIRESTORE_EMULATOR_HOST");
        let dynamodb = required("DYNAMODB_SERIAL_ENDPOINT");
        let suffix = adsync::ids::Uid::generate().as_str().to_lowercase();
        Self {
            firestore: FaultProxy::start(&firestore_host).await,
            dynamodb: FaultProxy::start(&dynamodb).await,
            firestore_host,
            project_id: format!("demo-cluster-{suffix}"),
            table: format!("cluster-{suffix}"),
        }
    }
}

fn required(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: run the tests with scripts/test, which starts the Firestore \
             emulator and moto (threaded and single-threaded) and exports their addresses"
        )
    })
}

/// The service key every gateway of a cluster accepts (`X-Service-Key`).
pub const SERVICE_KEY: &str = "cluster-service-key-0123456789";

/// Timing of a cluster: short, so that a lost seq is given up within seconds.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    pub writer_lease_secs: u64,
    pub processing_timeout_secs: u64,
    pub sweep_interval_secs: u64,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            writer_lease_secs: 3,
            processing_timeout_secs: 5,
            sweep_interval_secs: 1,
        }
    }
}

/// One `local-gateway` process.
pub struct Gateway {
    child: tokio::process::Child,
    /// `http://127.0.0.1:port`.
    pub base: String,
    /// Where its output goes (JSON logs and the banner).
    pub log: PathBuf,
}

impl Gateway {
    /// Starts `binary` on a free port over `stores`; pushes go to `management_url` (a
    /// worker) or to itself (a front). Returns once it is serving.
    pub async fn start(
        binary: &Path,
        stores: &Stores,
        timing: Timing,
        management_url: Option<&str>,
        name: &str,
    ) -> Self {
        let log = std::env::temp_dir().join(format!("{}-{name}.log", stores.project_id));
        let out = std::fs::File::create(&log).expect("gateway log file");
        let err = out.try_clone().expect("gateway log file");
        let mut args = vec![
            "--memory".to_owned(),
            "--port".into(),
            "0".into(),
            "--firestore-emulator".into(),
            stores.firestore.host(),
            "--dynamodb-endpoint".into(),
            stores.dynamodb.url(),
            "--table".into(),
            stores.table.clone(),
            "--project-id".into(),
            stores.project_id.clone(),
            "--writer-lease-secs".into(),
            timing.writer_lease_secs.to_string(),
            "--processing-timeout-secs".into(),
            timing.processing_timeout_secs.to_string(),
            "--sweep-interval-secs".into(),
            timing.sweep_interval_secs.to_string(),
        ];
        if let Some(url) = management_url {
            args.extend(["--management-url".into(), url.to_owned()]);
        }
        let child = tokio::process::Command::new(binary)
            .args(&args)
            .env("RUST_LOG", "info")
            .env("SERVICE_KEY", SERVICE_KEY)
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", binary.display()));
        let base = wait_for_banner(&log).await;
        Self { child, base, log }
    }

    /// Kills the process at once (SIGKILL): whatever it was doing stops between two steps.
    pub async fn kill(&mut self) {
        self.child.kill().await.expect("kill the gateway");
    }

    /// The process's output so far (for failure messages).
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// The REST base URL from the banner, once the gateway printed it (it prints it after it has
/// bound its port).
async fn wait_for_banner(log: &Path) -> String {
    for _ in 0..300 {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(url) = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("REST API"))
            .map(|rest| rest.trim().to_owned())
        {
            return url;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "the gateway printed no banner in 15 s:\n{}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

/// What Firestore holds for `uid` in `stores`' project, read around the proxies: the
/// profile, the businesses and the products, by path, as plain fields.
pub async fn firestore_truth(
    stores: &Stores,
    uid: &str,
) -> std::collections::BTreeMap<String, Value> {
    use adsync::store::DocumentStore;
    let config = adsync::config::FirestoreConfig {
        base_url: format!("http://{}", stores.firestore_host),
        emulator: true,
        service_account: None,
        token_url: None,
    };
    let store = adsync::store::firestore::FirestoreStore::new(
        &config,
        &stores.project_id,
        reqwest::Client::new(),
        Duration::from_secs(10),
    )
    .expect("a store on the emulator");
    let user = adsync::ids::Uid::parse(uid).expect("uid");
    let user_path = adsync::store::DocPath::user(&user);
    let mut truth = std::collections::BTreeMap::new();
    if let Some(doc) = store.get(&user_path).await.expect("read the profile") {
        truth.insert("user".to_owned(), Value::Object(doc.fields));
    }
    let businesses = store
        .list(&adsync::store::CollectionPath::businesses(&user))
        .await
        .expect("list the businesses");
    for doc in businesses {
        let id = doc.fields["id"].as_str().expect("business id").to_owned();
        truth.insert(format!("business/{id}"), Value::Object(doc.fields));
    }
    let products = store
        .list_descendants(&user_path, "products")
        .await
        .expect("query the products");
    for doc in products {
        let id = doc.fields["id"].as_str().expect("product id").to_owned();
        truth.insert(format!("product/{id}"), Value::Object(doc.fields));
    }
    truth
}
