//! Events: what the registry did (a blob or manifest pushed, pulled, mounted, deleted, a tag
//! set), delivered to an [`EventSink`] of the embedder's after the operation is durable. The base
//! for webhooks and audit logs.
//!
//! Handlers only describe what happened: they attach a `Happened` list to their response.
//! The pipeline ([`super::app`]) fills in who asked and which request it was, and queues the
//! events. A dedicated thread hands them to the sink one by one, in order, so a slow sink never
//! holds a request: when the queue is full, new events are dropped (and counted in the log and in
//! `layerstore_events_dropped_total`) rather than making a client wait.

use std::fmt;
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::Arc;

use serde::Serialize;

use crate::digest::Digest;
use crate::metrics::Metrics;
use crate::names::RepositoryName;

/// Events waiting for the sink; beyond this, new ones are dropped.
pub const QUEUE_CAPACITY: usize = 4096;

/// What kind of thing happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EventAction {
    /// A blob upload was committed (201) or a manifest stored.
    Push,
    /// A blob or manifest was served by `GET` (not `HEAD`).
    Pull,
    /// A blob was linked from another repository (`POST ?mount=`).
    Mount,
    /// A manifest, a tag or a blob link was deleted.
    Delete,
    /// A tag now names a manifest (a `PUT` by tag, or `?tag=` on a `PUT` by digest).
    Tag,
}

/// What an event is about, in distribution's notification field names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventTarget {
    /// The repository.
    pub repository: String,
    /// The blob's or manifest's digest (`None` for the deletion of a tag by name).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// The manifest's media type (`None` for blobs: the registry does not know it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// Size in bytes, where the operation knows it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// The tag, for tag events, pushes by tag, and deletions of a tag.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// The repository a mounted blob came from (`None`: the registry looked everywhere).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from_repository: Option<String>,
}

/// The request that caused an event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventRequest {
    /// The request's id (its `X-Request-Id`, as in the access log).
    pub id: String,
    /// The client's address, when the server knows it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub addr: Option<String>,
    /// The HTTP method.
    pub method: String,
    /// The client's `User-Agent`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
}

/// One thing the registry did. Serializes to one JSON object (see `examples/events.rs`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Event {
    /// Unique: the request's id, a dash and the event's place among the request's events.
    pub id: String,
    /// When the operation completed (RFC 3339, UTC).
    pub timestamp: String,
    /// What happened.
    pub action: EventAction,
    /// To what.
    pub target: EventTarget,
    /// Because of which request.
    pub request: EventRequest,
    /// Who asked: the htpasswd user or the token's subject (`None` on an open registry).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
}

/// Receives the registry's events. [`deliver`](EventSink::deliver) runs on the event thread, one
/// event at a time in the order the operations completed; it may block (write a file, call a
/// webhook) without slowing requests, but while it blocks, events queue up and, past
/// [`QUEUE_CAPACITY`], are dropped.
///
/// ```
/// use layerstore::http::{Event, EventSink};
///
/// /// Prints every push as a JSON line.
/// #[derive(Debug)]
/// struct PrintPushes;
///
/// impl EventSink for PrintPushes {
///     fn deliver(&self, event: &Event) {
///         if event.action == layerstore::http::EventAction::Push {
///             println!("{}", serde_json::to_string(event).unwrap());
///         }
///     }
/// }
/// ```
pub trait EventSink: Send + Sync + fmt::Debug + 'static {
    /// Handles one event.
    fn deliver(&self, event: &Event);
}

/// What a handler did, attached to its response for the pipeline to turn into [`Event`]s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Happened {
    pub(crate) action: EventAction,
    pub(crate) repository: RepositoryName,
    pub(crate) digest: Option<Digest>,
    pub(crate) media_type: Option<String>,
    pub(crate) size: Option<u64>,
    pub(crate) tag: Option<String>,
    pub(crate) from_repository: Option<String>,
}

impl Happened {
    /// `action` on the blob or manifest `digest` of `repository`; the other fields empty.
    pub(crate) fn new(action: EventAction, repository: &RepositoryName, digest: &Digest) -> Self {
        Happened {
            digest: Some(digest.clone()),
            ..Happened::bare(action, repository)
        }
    }

    /// `action` on the tag `tag` of `repository` alone (a tag deleted by name).
    pub(crate) fn of_tag(action: EventAction, repository: &RepositoryName, tag: String) -> Self {
        Happened::bare(action, repository).tag(tag)
    }

    /// `action` in `repository`, naming nothing yet.
    fn bare(action: EventAction, repository: &RepositoryName) -> Self {
        Happened {
            action,
            repository: repository.clone(),
            digest: None,
            media_type: None,
            size: None,
            tag: None,
            from_repository: None,
        }
    }

    pub(crate) fn size(mut self, size: u64) -> Self {
        self.size = Some(size);
        self
    }

    pub(crate) fn media_type(mut self, media_type: impl Into<String>) -> Self {
        self.media_type = Some(media_type.into());
        self
    }

    pub(crate) fn tag(mut self, tag: impl Into<String>) -> Self {
        self.tag = Some(tag.into());
        self
    }

    fn into_event(self, id: String, request: EventRequest, actor: Option<String>) -> Event {
        Event {
            id,
            timestamp: crate::store::rfc3339::format(std::time::SystemTime::now()),
            action: self.action,
            target: EventTarget {
                repository: self.repository.to_string(),
                digest: self.digest.map(|d| d.to_string()),
                media_type: self.media_type,
                size: self.size,
                tag: self.tag,
                from_repository: self.from_repository,
            },
            request,
            actor,
        }
    }
}

/// The events a response carries (a response extension): several for a manifest pushed with
/// tags.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Occurred(pub(crate) Vec<Happened>);

/// Attaches `happened` to `response`, after any events already there.
pub(crate) fn record<B>(response: &mut hyper::Response<B>, happened: Happened) {
    let extensions = response.extensions_mut();
    match extensions.get_mut::<Occurred>() {
        Some(occurred) => occurred.0.push(happened),
        None => {
            extensions.insert(Occurred(vec![happened]));
        }
    }
}

/// The sending end of the event thread's queue. Cloning shares the thread.
#[derive(Clone)]
pub(crate) struct EventQueue {
    sender: SyncSender<Event>,
    metrics: Arc<Metrics>,
}

impl fmt::Debug for EventQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventQueue").finish_non_exhaustive()
    }
}

impl EventQueue {
    /// Starts the thread that delivers to `sink`; it ends when every queue handle is dropped,
    /// after delivering what was queued.
    pub(crate) fn start(sink: Arc<dyn EventSink>, metrics: Arc<Metrics>) -> std::io::Result<Self> {
        let (sender, receiver) = sync_channel::<Event>(QUEUE_CAPACITY);
        std::thread::Builder::new()
            .name("layerstore-events".into())
            .spawn(move || {
                for event in receiver {
                    deliver_one(sink.as_ref(), &event);
                }
            })?;
        Ok(EventQueue { sender, metrics })
    }

    /// Queues the events of one request; never waits.
    pub(crate) fn send(&self, occurred: Occurred, request: &EventRequest, actor: Option<&str>) {
        for (index, happened) in occurred.0.into_iter().enumerate() {
            let id = format!("{}-{index}", request.id);
            let event = happened.into_event(id, request.clone(), actor.map(str::to_owned));
            match self.sender.try_send(event) {
                Ok(()) => {}
                Err(TrySendError::Full(event)) => {
                    self.metrics.event_dropped();
                    tracing::warn!(id = %event.id, "event queue full: event dropped");
                }
                Err(TrySendError::Disconnected(_)) => return,
            }
        }
    }
}

/// Hands one event to the sink; a sink that panics loses that event, not the thread.
fn deliver_one(sink: &dyn EventSink, event: &Event) {
    let delivered = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| sink.deliver(event)));
    if delivered.is_err() {
        tracing::error!(id = %event.id, "event sink panicked: event lost");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parking_lot::Mutex;

    #[derive(Debug, Default)]
    struct Collect(Mutex<Vec<Event>>);

    impl EventSink for Collect {
        fn deliver(&self, event: &Event) {
            if event.target.tag.as_deref() == Some("boom") {
                panic!("a sink bug");
            }
            self.0.lock().push(event.clone());
        }
    }

    fn digest() -> Digest {
        Digest::parse("sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
            .unwrap()
    }

    #[test]
    fn events_arrive_in_order_with_their_request_and_survive_a_panicking_sink() {
        let sink = Arc::new(Collect::default());
        let queue = EventQueue::start(sink.clone(), Arc::new(Metrics::new())).unwrap();
        let repo = RepositoryName::parse("team-a/app").unwrap();
        let request = EventRequest {
            id: "r1".into(),
            addr: None,
            method: "PUT".into(),
            user_agent: Some("skopeo".into()),
        };
        let occurred = Occurred(vec![
            Happened::new(EventAction::Push, &repo, &digest()).size(0),
            Happened::new(EventAction::Tag, &repo, &digest()).tag("boom"),
            Happened::new(EventAction::Tag, &repo, &digest()).tag("v1"),
        ]);
        queue.send(occurred, &request, Some("alice"));
        drop(queue);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while sink.0.lock().len() < 2 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let events = sink.0.lock();
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].id, "r1-0");
        assert_eq!(events[1].id, "r1-2");
        assert_eq!(events[1].actor.as_deref(), Some("alice"));
        let json = serde_json::to_value(&events[0]).unwrap();
        assert_eq!(json["action"], "push");
        assert_eq!(json["target"]["repository"], "team-a/app");
        assert_eq!(json["target"]["size"], 0);
        assert_eq!(json["request"]["userAgent"], "skopeo");
        assert!(json["target"].get("tag").is_none());
    }
}
