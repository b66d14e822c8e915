//! The store on its own, no HTTP: push a blob, resume an upload after its writer went away,
//! read a byte range, and check the whole store.
//!
//! ```sh
//! cargo run --example store [DIR]   # a temporary directory when DIR is not given
//! ```

use std::io::Read;

use layerstore::names::RepositoryName;
use layerstore::store::{ByteRange, Store};
use layerstore::Digest;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let temporary = tempfile::tempdir()?;
    let root = std::env::args_os()
        .nth(1)
        .map_or_else(|| temporary.path().to_owned(), Into::into);
    // The same layout as distribution's storage: either registry can serve what the other wrote.
    let store = Store::filesystem(&root);
    let repo = RepositoryName::parse("team-a/app")?;

    // 1. A blob in one go: upload, then commit under the digest the client claims.
    let config = br#"{"architecture":"amd64","os":"linux"}"#;
    let mut upload = store.create_upload(&repo)?;
    upload.append(config)?;
    let info = upload.commit(&Digest::sha256(config), None)?;
    println!("pushed {} ({} bytes)", info.digest, info.size);

    // 2. An upload cut short: its first half is made durable, then its writer is dropped, as
    //    when a server restarts. A new writer resumes at the saved offset without re-reading
    //    what was stored (the SHA-256 state was saved with it).
    let layer: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
    let mut upload = store.create_upload(&repo)?;
    upload.append(&layer[..500_000])?;
    upload.checkpoint()?;
    let id = upload.id().clone();
    drop(upload);
    let mut upload = store.resume_upload(&repo, &id)?;
    println!("resumed upload {id} at offset {}", upload.offset());
    upload.append(&layer[upload.offset() as usize..])?;
    let layer_digest = Digest::sha256(&layer);
    upload.commit(&layer_digest, Some(layer.len() as u64))?;
    println!("pushed {layer_digest} ({} bytes)", layer.len());

    // 3. A byte range of it, as a ranged GET would serve it.
    let (_, blob) = store.open_blob(Some(&repo), &layer_digest)?;
    let range = ByteRange {
        start: 1_000,
        end: 1_015,
    };
    let mut bytes = Vec::new();
    blob.reader(Some(range))?.read_to_end(&mut bytes)?;
    assert_eq!(bytes, layer[1_000..=1_015]);
    println!("bytes 1000-1015: {bytes:?}");

    // 4. fsck: every blob re-hashed, every link checked.
    let report = store.fsck(&|_| {})?;
    println!(
        "fsck: {} blobs, {} links, {} problems",
        report.blobs_checked,
        report.links_checked,
        report.problems.len()
    );
    if !report.is_clean() {
        return Err("fsck found problems".into());
    }
    Ok(())
}
