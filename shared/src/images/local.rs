//! The image store of local mode: a folder, served by the local gateway at `/media/{name}`.

use std::path::{Path, PathBuf};

use async_trait::async_trait;

use super::{Image, ImageKind, ImageStore, ObjectName, StorageError};

/// The [`ImageStore`] over a local folder.
pub struct LocalFolder {
    root: PathBuf,
    public_base: String,
}

impl LocalFolder {
    /// Images under `root`, served at `{public_base}/media/{name}`.
    pub fn new(root: impl Into<PathBuf>, public_base: &str) -> Self {
        Self {
            root: root.into(),
            public_base: public_base.trim_end_matches('/').to_owned(),
        }
    }

    /// The folder the images are in.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file a `/media/{path}` request may read, with its kind; `None` for any path that
    /// is not an object name this store could have made (no `..`, no hidden files, no
    /// unknown extension), so a request can never reach outside the folder.
    pub fn file_for(&self, path: &str) -> Option<(PathBuf, ImageKind)> {
        let segments: Vec<&str> = path.split('/').collect();
        let safe = segments.iter().all(|s| {
            !s.is_empty()
                && !s.starts_with('.')
                && s.len() <= 128
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        });
        if !safe {
            return None;
        }
        let (_, extension) = segments.last()?.rsplit_once('.')?;
        let kind = ImageKind::from_extension(extension)?;
        Some((
            segments.iter().fold(self.root.clone(), |p, s| p.join(s)),
            kind,
        ))
    }
}

#[async_trait]
impl ImageStore for LocalFolder {
    async fn put(&self, name: &ObjectName, image: &Image) -> Result<String, StorageError> {
        let path = self.root.join(name.as_str());
        let fail = |e: std::io::Error| StorageError(format!("{}: {e}", path.display()));
        if let Some(dir) = path.parent() {
            tokio::fs::create_dir_all(dir).await.map_err(fail)?;
        }
        // Written aside and renamed, so the gateway never serves half an image.
        let temp = path.with_extension("part");
        tokio::fs::write(&temp, &image.bytes).await.map_err(fail)?;
        tokio::fs::rename(&temp, &path).await.map_err(fail)?;
        Ok(format!("{}/media/{}", self.public_base, name.as_str()))
    }

    async fn delete(&self, name: &ObjectName) -> Result<(), StorageError> {
        let path = self.root.join(name.as_str());
        match tokio::fs::remove_file(&path).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(StorageError(format!("{}: {e}", path.display())))
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_object_names_map_to_files() {
        let store = LocalFolder::new("/data/media", "http://127.0.0.1:3000/");
        let (path, kind) = store
            .file_for("users/alice/products/p1/AbC123.png")
            .unwrap();
        assert_eq!(
            path,
            Path::new("/data/media/users/alice/products/p1/AbC123.png")
        );
        assert_eq!(kind, ImageKind::Png);
        for bad in [
            "../etc/passwd.png",
            "users/../../x.png",
            "users/alice/.hidden.png",
            "users//x.png",
            "/abs.png",
            "users/alice/x.txt",
            "users/alice/x",
            "users/al ice/x.png",
            "users/alice/x.part",
        ] {
            assert!(store.file_for(bad).is_none(), "{bad}");
        }
    }
}
