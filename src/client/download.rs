//! The resumable download behind [`Registry::download_blob`]: network on the async side,
//! writing and hashing on a blocking thread, hash state checkpointed beside the partial file.
//!
//! Crash rule: the state file is written only after the bytes it covers were written to the
//! partial file, so on restart `state.len() <= partial length` and the partial file is cut back
//! to the state's length. A state claiming more than the file holds (a power cut lost data
//! the state outlived) is discarded and the download starts over.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::header::RANGE;
use hyper::{Method, StatusCode};
use tokio::sync::mpsc;

use super::blobs::{
    check_digest, partial_paths, pull, repo_path, verifier, DOWNLOAD_CHECKPOINT_BYTES,
};
use super::error::ClientError;
use super::registry::{Call, Registry};
use super::transport::error_chain;
use crate::digest::Digest;
use crate::hash::Hasher;

/// Pieces in flight between the socket and the writer thread.
const PIECES_IN_FLIGHT: usize = 32;

pub(crate) async fn download(
    registry: &Registry,
    repo: &str,
    digest: &Digest,
    path: &Path,
    progress: &(dyn Fn(u64) + Send + Sync),
) -> Result<u64, ClientError> {
    let (partial_path, state_path) = partial_paths(path);
    let fresh = verifier(digest)?;
    let (file, hasher) = {
        let (partial_path, state_path) = (partial_path.clone(), state_path.clone());
        blocking(move || open_partial(&partial_path, &state_path, fresh))
            .await?
            .map_err(|e| ClientError::io(partial_path_text(path), e))?
    };
    let mut offset = hasher.len();
    let mut call = Call::new(
        Method::GET,
        repo_path(repo, &format!("blobs/{digest}"))?,
        pull(repo),
    );
    if offset > 0 {
        call = call.header(RANGE, format!("bytes={offset}-"));
    }
    let ok = [
        StatusCode::OK,
        StatusCode::PARTIAL_CONTENT,
        StatusCode::RANGE_NOT_SATISFIABLE,
    ];
    let response = registry.send(call, &ok).await?;
    let mut writer = Writer {
        file,
        hasher,
        state_path: state_path.clone(),
        since_checkpoint: 0,
    };
    match response.status() {
        StatusCode::PARTIAL_CONTENT => {}
        StatusCode::RANGE_NOT_SATISFIABLE if offset > 0 => {
            // The partial file already holds the whole blob: finish with what we have.
            drop(response);
            return finish(writer, digest, &partial_path, &state_path, path).await;
        }
        StatusCode::RANGE_NOT_SATISFIABLE => {
            return Err(ClientError::Protocol(format!(
                "{digest}: 416 for a whole-blob GET"
            )));
        }
        _ if offset > 0 => {
            // The registry ignored the range: start over.
            writer
                .restart(verifier(digest)?)
                .map_err(|e| ClientError::io(partial_path.display().to_string(), e))?;
            offset = 0;
        }
        _ => {}
    }
    progress(offset);
    let (tx, rx) = mpsc::channel::<Bytes>(PIECES_IN_FLIGHT);
    let write_task = tokio::task::spawn_blocking(move || writer.consume(rx).map(|()| writer));
    let mut body = response.into_body();
    let mut received = offset;
    let mut network_error = None;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => {
                if let Ok(data) = frame.into_data() {
                    received += data.len() as u64;
                    if tx.send(data).await.is_err() {
                        break; // the writer failed; its error is reported below
                    }
                    progress(received);
                }
            }
            Err(e) => {
                network_error = Some(ClientError::Transport {
                    method: "GET".into(),
                    url: digest.to_string(),
                    reason: error_chain(&e),
                });
                break;
            }
        }
    }
    drop(tx);
    let writer = write_task
        .await
        .map_err(|e| ClientError::Protocol(format!("writer thread: {e}")))?
        .map_err(|e| ClientError::io(partial_path.display().to_string(), e))?;
    if let Some(error) = network_error {
        // What arrived is kept (checkpointed on drop of the writer); a rerun continues.
        return Err(error);
    }
    finish(writer, digest, &partial_path, &state_path, path).await
}

fn partial_path_text(path: &Path) -> String {
    partial_paths(path).0.display().to_string()
}

/// Opens (or creates) the partial file and the hash state that matches its start.
fn open_partial(partial: &Path, state: &Path, fresh: Hasher) -> std::io::Result<(File, Hasher)> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(partial)?;
    let on_disk = file.metadata()?.len();
    let saved = std::fs::read(state)
        .ok()
        .and_then(|bytes| Hasher::decode(&bytes).ok())
        .filter(|h| h.algorithm() == fresh.algorithm() && h.len() <= on_disk);
    let hasher = saved.unwrap_or(fresh);
    file.set_len(hasher.len())?;
    Ok((file, hasher))
}

struct Writer {
    file: File,
    hasher: Hasher,
    state_path: std::path::PathBuf,
    since_checkpoint: u64,
}

impl Writer {
    fn consume(&mut self, mut rx: mpsc::Receiver<Bytes>) -> std::io::Result<()> {
        use std::io::{Seek, SeekFrom};
        self.file.seek(SeekFrom::Start(self.hasher.len()))?;
        while let Some(piece) = rx.blocking_recv() {
            self.file.write_all(&piece)?;
            self.hasher.update(&piece);
            self.since_checkpoint += piece.len() as u64;
            if self.since_checkpoint >= DOWNLOAD_CHECKPOINT_BYTES {
                self.checkpoint()?;
            }
        }
        self.checkpoint()
    }

    /// Saves the hash state of the bytes written so far (after them, see the module docs).
    fn checkpoint(&mut self) -> std::io::Result<()> {
        self.since_checkpoint = 0;
        let mut temp = self.state_path.as_os_str().to_owned();
        temp.push(".tmp");
        std::fs::write(&temp, self.hasher.encode())?;
        std::fs::rename(&temp, &self.state_path)
    }

    fn restart(&mut self, fresh: Hasher) -> std::io::Result<()> {
        self.file.set_len(0)?;
        self.hasher = fresh;
        Ok(())
    }
}

/// Verifies the finished partial file and moves it into place.
async fn finish(
    writer: Writer,
    digest: &Digest,
    partial: &Path,
    state: &Path,
    path: &Path,
) -> Result<u64, ClientError> {
    let (partial, state, path) = (partial.to_owned(), state.to_owned(), path.to_owned());
    let digest = digest.clone();
    blocking(move || {
        let size = writer.hasher.len();
        if let Err(e) = check_digest(&writer.hasher, &digest) {
            let _ = std::fs::remove_file(&partial);
            let _ = std::fs::remove_file(&state);
            return Err(e);
        }
        let io = |e| ClientError::io(path.display().to_string(), e);
        writer.file.sync_all().map_err(io)?;
        std::fs::rename(&partial, &path).map_err(io)?;
        let _ = std::fs::remove_file(&state);
        Ok(size)
    })
    .await?
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ClientError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ClientError::Protocol(format!("blocking task: {e}")))
}
