//! Snapshot files of the embedded stores (local mode): written so that a crash leaves the old
//! file or the new one, never half of one.

use std::path::Path;

use tokio::io::AsyncWriteExt;

/// Writes `bytes` to a temporary file next to `path`, flushes it, and renames it over `path`.
pub async fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut temp_name = path.file_name().unwrap_or_default().to_os_string();
    temp_name.push(".tmp");
    let temp = path.with_file_name(temp_name);
    let mut file = tokio::fs::File::create(&temp).await?;
    file.write_all(bytes).await?;
    file.sync_all().await?;
    drop(file);
    tokio::fs::rename(&temp, path).await
}
