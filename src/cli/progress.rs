//! Progress bars for image transfers: one per blob and a total, on a terminal only.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Arc;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use parking_lot::Mutex;

use layerstore::client::{BlobOutcome, NoProgress, Progress};
use layerstore::digest::Digest;

/// Bars when stderr is a terminal and `quiet` is off, else nothing.
pub fn for_terminal(quiet: bool, total_hint: u64) -> Arc<dyn Progress> {
    if quiet || !std::io::stderr().is_terminal() {
        return Arc::new(NoProgress);
    }
    Arc::new(Bars::new(total_hint))
}

struct Bars {
    multi: MultiProgress,
    total: ProgressBar,
    blobs: Mutex<HashMap<Digest, (ProgressBar, u64)>>,
}

impl Bars {
    fn new(total_hint: u64) -> Self {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let total = multi.add(ProgressBar::new(total_hint));
        total.set_style(style("total       "));
        Bars {
            multi,
            total,
            blobs: Mutex::new(HashMap::new()),
        }
    }
}

fn style(prefix: &str) -> ProgressStyle {
    ProgressStyle::with_template(&format!(
        "{prefix}{{msg:12}} [{{bar:30}}] {{bytes:>10}}/{{total_bytes:10}} {{bytes_per_sec:>12}}"
    ))
    .expect("a valid template")
    .progress_chars("=> ")
}

impl Progress for Bars {
    fn start(&self, digest: &Digest, size: u64) {
        let bar = self
            .multi
            .insert_before(&self.total, ProgressBar::new(size));
        bar.set_style(style(""));
        bar.set_message(digest.hex()[..12].to_owned());
        self.total.inc_length(size);
        self.blobs.lock().insert(digest.clone(), (bar, 0));
    }

    fn advance(&self, digest: &Digest, done: u64) {
        if let Some((bar, last)) = self.blobs.lock().get_mut(digest) {
            self.total.inc(done.saturating_sub(*last));
            *last = done;
            bar.set_position(done);
        }
    }

    fn finish(&self, digest: &Digest, outcome: BlobOutcome) {
        if let Some((bar, last)) = self.blobs.lock().remove(digest) {
            let size = bar.length().unwrap_or(0);
            self.total.inc(size.saturating_sub(last));
            let note = match outcome {
                BlobOutcome::Present => "exists",
                BlobOutcome::Mounted => "mounted",
                BlobOutcome::Transferred { resumed_from: 0 } => "done",
                BlobOutcome::Transferred { .. } => "resumed",
            };
            bar.finish_with_message(format!("{} {note}", &digest.hex()[..12]));
        }
    }
}
