//! Stored images, locally: the folder the image store writes (`{data dir}/media`, or a
//! temporary folder with `--memory`), served at `GET /media/{name}` as Cloud Storage would
//! serve the bucket.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use adsync::images::ImageKind;
use adsync::images::local::LocalFolder;
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, X_CONTENT_TYPE_OPTIONS,
};
use axum::response::{IntoResponse, Response};

use crate::{Gateway, StartError};

/// The media folder and its store; a temporary folder is removed when the gateway stops.
pub(crate) struct Media {
    store: Arc<LocalFolder>,
    temporary: bool,
}

impl Media {
    /// `{data_dir}/media`, or a fresh temporary folder in memory mode.
    pub fn new(data_dir: &Path, memory: bool, public_base: &str) -> Result<Self, StartError> {
        let dir = if memory {
            let unique = adsync::ids::Uid::generate();
            std::env::temp_dir().join(format!("local-gateway-media-{unique}"))
        } else {
            data_dir.join("media")
        };
        // A temporary folder is made by the first image stored, so runs that store none
        // (most tests) leave nothing behind.
        if !memory {
            std::fs::create_dir_all(&dir)
                .map_err(|e| StartError(format!("media folder {}: {e}", dir.display())))?;
        }
        Ok(Self {
            store: Arc::new(LocalFolder::new(dir, public_base)),
            temporary: memory,
        })
    }

    /// Where the images are.
    pub fn dir(&self) -> &Path {
        self.store.root()
    }

    /// The folder the handlers store images in.
    pub fn folder(&self) -> Arc<LocalFolder> {
        self.store.clone()
    }

    fn file_for(&self, path: &str) -> Option<(PathBuf, ImageKind)> {
        self.store.file_for(path)
    }
}

impl Drop for Media {
    fn drop(&mut self) {
        if self.temporary {
            let _ = std::fs::remove_dir_all(self.store.root());
        }
    }
}

/// `GET /media/{name}`: the stored bytes with their content type. Names are random and never
/// reused, so a browser may keep them for good.
pub(crate) async fn serve(State(gw): State<Gateway>, UrlPath(path): UrlPath<String>) -> Response {
    let Some((file, kind)) = gw.media.file_for(&path) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    match tokio::fs::read(&file).await {
        Ok(bytes) => (
            [
                (CONTENT_TYPE, kind.content_type()),
                (CACHE_CONTROL, "public, max-age=31536000, immutable"),
                (X_CONTENT_TYPE_OPTIONS, "nosniff"),
                // An SVG opened on its own is a document: it may not run or load anything.
                (
                    CONTENT_SECURITY_POLICY,
                    "default-src 'none'; style-src 'unsafe-inline'; sandbox",
                ),
            ],
            bytes,
        )
            .into_response(),
        Err(_) => StatusCode::NOT_FOUND.into_response(),
    }
}
