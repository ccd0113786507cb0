//! Secrets a function reads at cold start from AWS Secrets Manager and keeps fresh while it
//! is warm, or values given as they are (local mode, `sam local`, tests).
//!
//! A deployed function's configuration holds only the secrets' names: the values never sit
//! in plain text in a function's settings, and rotating one needs no redeploy. Every value
//! is fetched during init (a function that cannot read its secrets does not start), then
//! re-read when it is older than the refresh interval, by the first request that needs it
//! after that: so a new value reaches every warm function within one interval. A failed
//! re-read keeps the value in hand (stale-if-error) and is tried again a little later.
//!
//! A secret read "with its previous version" also keeps the version Secrets Manager labels
//! `AWSPREVIOUS`: the service key accepts both, so that callers can switch to a new key
//! after it is stored, without a window in which some functions refuse it.

use std::sync::{Arc, OnceLock, PoisonError, RwLock};
use std::time::{Duration, Instant};

use aws_sdk_secretsmanager::error::{DisplayErrorContext, ProvideErrorMetadata};
use secrecy::SecretString;

use crate::config::ConfigError;

/// How long a fetched value is used before it is read again (`SECRETS_REFRESH_SECONDS`).
pub const DEFAULT_REFRESH: Duration = Duration::from_secs(300);
/// After a failed re-read, the value in hand is used this long (or the refresh interval,
/// if shorter) before the next try.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(30);
/// The longest one call to Secrets Manager may take (less if the invocation has less left).
const CALL_TIMEOUT: Duration = Duration::from_secs(3);
/// The version label Secrets Manager gives the value a rotation replaced.
const PREVIOUS_STAGE: &str = "AWSPREVIOUS";

/// The values of a secret in hand.
#[derive(Clone, Debug)]
pub struct Versions {
    pub current: SecretString,
    /// The value before the last rotation, for secrets read with their previous version.
    pub previous: Option<SecretString>,
    /// Secrets Manager's version id of `current` (empty for a value given as is): what
    /// consumers compare to know the value changed.
    pub version: String,
}

/// A secret: a value given as is, or a Secrets Manager secret, read by [`Secret::load`]
/// during init and refreshed by [`Secret::versions`].
#[derive(Clone)]
pub struct Secret(Arc<Inner>);

enum Inner {
    Given(Arc<Versions>),
    Managed {
        /// The secret's name or ARN.
        id: String,
        with_previous: bool,
        loaded: OnceLock<Loaded>,
    },
}

struct Loaded {
    client: aws_sdk_secretsmanager::Client,
    refresh_after: Duration,
    held: RwLock<Held>,
    /// Held while one caller re-reads; the others wait, then use what it read.
    refresh: tokio::sync::Mutex<()>,
}

#[derive(Clone)]
struct Held {
    versions: Arc<Versions>,
    /// When the value is next read again.
    due: Instant,
}

impl std::fmt::Debug for Secret {
    // Hand-written: the name of a secret may be shown, never its value.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &*self.0 {
            Inner::Given(_) => f.write_str("Secret(given)"),
            Inner::Managed { id, .. } => f.debug_tuple("Secret").field(id).finish(),
        }
    }
}

impl From<SecretString> for Secret {
    fn from(value: SecretString) -> Self {
        Self(Arc::new(Inner::Given(Arc::new(Versions {
            current: value,
            previous: None,
            version: String::new(),
        }))))
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self::from(SecretString::from(value))
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self::from(SecretString::from(value))
    }
}

/// The Secrets Manager client of a function, and how often it re-reads.
#[derive(Clone, Debug)]
pub struct SecretsManager {
    pub client: aws_sdk_secretsmanager::Client,
    pub refresh_after: Duration,
}

impl Secret {
    /// The Secrets Manager secret `id` (a name or an ARN), to be read by [`Secret::load`];
    /// with its previous version too when `with_previous`.
    pub fn managed(id: String, with_previous: bool) -> Self {
        Self(Arc::new(Inner::Managed {
            id,
            with_previous,
            loaded: OnceLock::new(),
        }))
    }

    /// Whether `other` is this very secret (a clone of it), not merely an equal one.
    pub fn is_same(&self, other: &Secret) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// Whether the value comes from Secrets Manager.
    pub fn is_managed(&self) -> bool {
        matches!(&*self.0, Inner::Managed { .. })
    }

    /// Reads a Secrets Manager secret for the first time (a given value has nothing to do).
    /// `what` names the setting in errors.
    pub async fn load(&self, manager: &SecretsManager, what: &str) -> Result<(), ConfigError> {
        let Inner::Managed {
            id,
            with_previous,
            loaded,
        } = &*self.0
        else {
            return Ok(());
        };
        if loaded.get().is_some() {
            return Ok(());
        }
        let versions = read(&manager.client, id, *with_previous)
            .await
            .map_err(|e| ConfigError(format!("{what}: {e}")))?;
        // Two loads of one secret at once (a clone shared by two ports) keep the first.
        let _ = loaded.set(Loaded {
            client: manager.client.clone(),
            refresh_after: manager.refresh_after,
            held: RwLock::new(Held {
                versions: Arc::new(versions),
                due: Instant::now() + manager.refresh_after,
            }),
            refresh: tokio::sync::Mutex::new(()),
        });
        Ok(())
    }

    /// The values to use now: the ones in hand, or freshly read ones when those are due.
    /// `None` for a Secrets Manager secret that was never loaded.
    pub async fn versions(&self) -> Option<Arc<Versions>> {
        let (id, with_previous, loaded) = match &*self.0 {
            Inner::Given(versions) => return Some(versions.clone()),
            Inner::Managed {
                id,
                with_previous,
                loaded,
            } => (id, *with_previous, loaded.get()?),
        };
        if let Some(fresh) = loaded.fresh() {
            return Some(fresh);
        }
        let _flight = loaded.refresh.lock().await;
        if let Some(fresh) = loaded.fresh() {
            return Some(fresh);
        }
        let (versions, due) = match read(&loaded.client, id, with_previous).await {
            Ok(versions) => (Arc::new(versions), loaded.refresh_after),
            Err(error) => {
                tracing::warn!(secret = %id, %error, "secret re-read failed; the value in hand stays");
                (
                    loaded.held().versions,
                    RETRY_AFTER_FAILURE.min(loaded.refresh_after),
                )
            }
        };
        *loaded.held.write().unwrap_or_else(PoisonError::into_inner) = Held {
            versions: versions.clone(),
            due: Instant::now() + due,
        };
        Some(versions)
    }

    /// The values in hand, without re-reading (for checks during init); `None` for a
    /// Secrets Manager secret that was never loaded.
    pub fn in_hand(&self) -> Option<Arc<Versions>> {
        match &*self.0 {
            Inner::Given(versions) => Some(versions.clone()),
            Inner::Managed { loaded, .. } => loaded.get().map(|l| l.held().versions),
        }
    }
}

impl Loaded {
    fn held(&self) -> Held {
        self.held
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn fresh(&self) -> Option<Arc<Versions>> {
        let held = self.held();
        (Instant::now() < held.due).then_some(held.versions)
    }
}

/// Reads secret `id` (and its previous version when `with_previous`): one call, two
/// concurrent calls with the previous.
async fn read(
    client: &aws_sdk_secretsmanager::Client,
    id: &str,
    with_previous: bool,
) -> Result<Versions, String> {
    let (current, previous) = tokio::join!(get(client, id, None), async {
        if with_previous {
            get(client, id, Some(PREVIOUS_STAGE)).await.map(Some)
        } else {
            Ok(None)
        }
    });
    let (current, version) = current?.ok_or_else(|| format!("secret `{id}` does not exist"))?;
    Ok(Versions {
        current,
        previous: previous?.flatten().map(|(value, _)| value),
        version,
    })
}

/// One `GetSecretValue` of `id` at `stage` (the current version by default): its value and
/// version id, `None` if there is no such secret or version.
async fn get(
    client: &aws_sdk_secretsmanager::Client,
    id: &str,
    stage: Option<&str>,
) -> Result<Option<(SecretString, String)>, String> {
    let call = client
        .get_secret_value()
        .secret_id(id)
        .set_version_stage(stage.map(str::to_owned))
        .send();
    let answer = match crate::deadline::limit(CALL_TIMEOUT, call).await {
        Err(_) => return Err(format!("reading secret `{id}` timed out")),
        Ok(Err(e)) if e.code() == Some("ResourceNotFoundException") => return Ok(None),
        // The SDK's error names the call and the cause, never the value.
        Ok(Err(e)) => {
            return Err(format!(
                "reading secret `{id}` failed: {}",
                DisplayErrorContext(&e)
            ));
        }
        Ok(Ok(answer)) => answer,
    };
    let value = answer.secret_string.ok_or_else(|| {
        format!("secret `{id}` has no SecretString (binary secrets are not supported)")
    })?;
    Ok(Some((
        SecretString::from(value),
        answer.version_id.unwrap_or_default(),
    )))
}
