//! Images: what an upload may be (checked by its bytes), where it is stored (the image store
//! port: Cloud Storage in the cloud, a folder the local gateway serves), and the names it is
//! stored under.

pub mod gcs;
pub mod local;

use async_trait::async_trait;
use bytes::Bytes;
use http::HeaderMap;
use http::header::CONTENT_TYPE;
use rand::Rng;

use crate::error::AppError;
use crate::ids::{ProductId, Uid};

/// Largest accepted upload: 4 MiB. One byte more is 413. Deployed, the body reaches the
/// function base64-encoded inside an event of at most 6 MB (Lambda's limit): 4 MiB is what
/// passes with room for the headers, so the limit is the same locally and in the cloud.
pub const MAX_UPLOAD_BYTES: usize = 4 * 1024 * 1024;

/// The image formats the backend stores. Uploads may be PNG, JPEG or WebP; SVG is only
/// made by the offline AI provider.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageKind {
    /// `image/png`.
    Png,
    /// `image/jpeg`.
    Jpeg,
    /// `image/webp`.
    Webp,
    /// `image/svg+xml` (offline ads only).
    Svg,
}

impl ImageKind {
    /// The formats an upload may have.
    pub const UPLOADABLE: [ImageKind; 3] = [ImageKind::Png, ImageKind::Jpeg, ImageKind::Webp];

    /// The MIME type it is stored and served with.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Png => "image/png",
            Self::Jpeg => "image/jpeg",
            Self::Webp => "image/webp",
            Self::Svg => "image/svg+xml",
        }
    }

    /// The file extension of its object names.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Png => "png",
            Self::Jpeg => "jpg",
            Self::Webp => "webp",
            Self::Svg => "svg",
        }
    }

    /// The kind of an object name's extension (the local gateway serves by it).
    pub fn from_extension(extension: &str) -> Option<Self> {
        [Self::Png, Self::Jpeg, Self::Webp, Self::Svg]
            .into_iter()
            .find(|k| k.extension() == extension)
    }

    /// The raster format these bytes are, by their magic numbers; `None` for anything else.
    pub fn sniff(bytes: &[u8]) -> Option<Self> {
        if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
            Some(Self::Png)
        } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
            Some(Self::Jpeg)
        } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
            Some(Self::Webp)
        } else {
            None
        }
    }
}

/// An image and its (checked) format.
#[derive(Clone, Debug, PartialEq)]
pub struct Image {
    /// The file's bytes.
    pub bytes: Bytes,
    /// Its format.
    pub kind: ImageKind,
}

/// An uploaded body as an image: 413 over [`MAX_UPLOAD_BYTES`], 400 when empty, 415 unless
/// the `Content-Type` is `image/png`, `image/jpeg` or `image/webp` and the bytes are that
/// format.
pub fn parse_upload(headers: &HeaderMap, body: &Bytes) -> Result<Image, AppError> {
    if body.len() > MAX_UPLOAD_BYTES {
        return Err(AppError::PayloadTooLarge {
            limit: MAX_UPLOAD_BYTES,
        });
    }
    if body.is_empty() {
        return Err(AppError::BadRequest(
            "the request body must be the image's bytes".into(),
        ));
    }
    let essence = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let declared = ImageKind::UPLOADABLE
        .into_iter()
        .find(|k| k.content_type() == essence)
        .ok_or_else(|| {
            AppError::UnsupportedMediaType(
                "send the image as Content-Type: image/png, image/jpeg or image/webp".into(),
            )
        })?;
    match ImageKind::sniff(body) {
        Some(actual) if actual == declared => Ok(Image {
            bytes: body.clone(),
            kind: actual,
        }),
        Some(actual) => Err(AppError::UnsupportedMediaType(format!(
            "the body is {} but Content-Type says {}",
            actual.content_type(),
            declared.content_type()
        ))),
        None => Err(AppError::UnsupportedMediaType(
            "the body is not a PNG, JPEG or WebP image".into(),
        )),
    }
}

/// An object name, built only from parsed ids and a random part:
/// `users/{uid}/products/{productId}/{random}.{ext}`. Random, so a new image never
/// overwrites (or reveals the URL of) another.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectName(String);

/// Length of the random part of an object name.
const RANDOM_LEN: usize = 20;

impl ObjectName {
    /// A fresh name for an image of `product`.
    pub fn new(uid: &Uid, product: &ProductId, kind: ImageKind) -> Self {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        let mut rng = rand::rng();
        let random: String = (0..RANDOM_LEN)
            .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
            .collect();
        Self(format!(
            "users/{uid}/products/{product}/{random}.{}",
            kind.extension()
        ))
    }

    /// The name, as the bucket (or the media folder) has it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Why an image could not be stored or deleted (the detail is logged, never returned).
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("image store: {0}")]
pub struct StorageError(pub String);

impl From<StorageError> for AppError {
    fn from(err: StorageError) -> Self {
        AppError::internal("image store", err)
    }
}

/// Where images are kept; each call is one round trip.
#[async_trait]
pub trait ImageStore: Send + Sync {
    /// Stores `image` under `name` and returns the URL a browser loads it from.
    async fn put(&self, name: &ObjectName, image: &Image) -> Result<String, StorageError>;

    /// Deletes an object (one that turned out to belong to no product); a missing one is
    /// not an error.
    async fn delete(&self, name: &ObjectName) -> Result<(), StorageError>;

    /// Opens connections ahead of the first request; never fails (the first request retries).
    async fn warm_up(&self) {}
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
    const JPEG: &[u8] = &[0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10, b'J', b'F', b'I', b'F'];
    const WEBP: &[u8] = b"RIFF\x24\0\0\0WEBPVP8 ";

    fn upload(content_type: &str, body: &[u8]) -> Result<Image, AppError> {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_str(content_type).unwrap());
        parse_upload(&headers, &Bytes::copy_from_slice(body))
    }

    #[test]
    fn formats_are_recognised_by_their_bytes() {
        assert_eq!(ImageKind::sniff(PNG), Some(ImageKind::Png));
        assert_eq!(ImageKind::sniff(JPEG), Some(ImageKind::Jpeg));
        assert_eq!(ImageKind::sniff(WEBP), Some(ImageKind::Webp));
        assert_eq!(ImageKind::sniff(b"RIFF\0\0\0\0WAVEfmt "), None);
        assert_eq!(ImageKind::sniff(b"<svg xmlns="), None);
        assert_eq!(ImageKind::sniff(b""), None);
        assert_eq!(ImageKind::from_extension("jpg"), Some(ImageKind::Jpeg));
        assert_eq!(ImageKind::from_extension("exe"), None);
    }

    #[test]
    fn uploads_must_be_what_they_claim() {
        assert_eq!(upload("image/png", PNG).unwrap().kind, ImageKind::Png);
        assert_eq!(
            upload("IMAGE/JPEG; q=1", JPEG).unwrap().kind,
            ImageKind::Jpeg
        );
        assert_eq!(upload("image/webp", WEBP).unwrap().kind, ImageKind::Webp);
        let status = |r: Result<Image, AppError>| r.unwrap_err().status().as_u16();
        assert_eq!(status(upload("image/png", b"just text, named .png")), 415);
        assert_eq!(status(upload("image/jpeg", PNG)), 415);
        assert_eq!(status(upload("image/svg+xml", PNG)), 415);
        assert_eq!(status(upload("text/plain", PNG)), 415);
        assert_eq!(status(upload("image/png", b"")), 400);
        let mut big = PNG.to_vec();
        big.resize(MAX_UPLOAD_BYTES + 1, 0);
        assert_eq!(status(upload("image/png", &big)), 413);
        big.truncate(MAX_UPLOAD_BYTES);
        assert!(upload("image/png", &big).is_ok());
    }

    #[test]
    fn object_names_are_built_from_ids() {
        let uid = Uid::parse("alice").unwrap();
        let product = ProductId::parse("p1").unwrap();
        let a = ObjectName::new(&uid, &product, ImageKind::Webp);
        let b = ObjectName::new(&uid, &product, ImageKind::Webp);
        assert_ne!(a, b);
        let name = a.as_str();
        assert!(name.starts_with("users/alice/products/p1/"), "{name}");
        assert!(name.ends_with(".webp"), "{name}");
        assert_eq!(
            name.len(),
            "users/alice/products/p1/".len() + RANDOM_LEN + 5
        );
    }
}
