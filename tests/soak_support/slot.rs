//! The server the clients talk to now. The soak's driver opens the slot once a (re)started
//! server has passed its checks, and closes it before the SIGKILL: a client whose request found
//! no server waits here for the next one, so nothing it sends races the checks.

use std::net::SocketAddr;
use std::sync::{Condvar, Mutex};
use std::time::Instant;

#[derive(Debug, Default, Clone, Copy)]
struct State {
    /// Bumped at every opening.
    generation: u64,
    addr: Option<SocketAddr>,
    /// The server process and when it started, for the sampler (set while it runs, open or not).
    process: Option<(u32, Instant)>,
    done: bool,
}

#[derive(Debug, Default)]
pub struct Slot {
    state: Mutex<State>,
    changed: Condvar,
}

impl Slot {
    /// A server process now runs (not yet open to the clients).
    pub fn started(&self, pid: u32) {
        self.state.lock().unwrap().process = Some((pid, Instant::now()));
    }

    /// Lets the clients in to the server at `addr`.
    pub fn open(&self, addr: SocketAddr) {
        let mut state = self.state.lock().unwrap();
        state.generation += 1;
        state.addr = Some(addr);
        self.changed.notify_all();
    }

    /// The server is about to be killed: clients that lose it wait.
    pub fn close(&self) {
        let mut state = self.state.lock().unwrap();
        state.addr = None;
        state.process = None;
    }

    /// The soak is over: waiting clients return.
    pub fn finish(&self) {
        let mut state = self.state.lock().unwrap();
        state.done = true;
        state.addr = None;
        state.process = None;
        self.changed.notify_all();
    }

    pub fn is_done(&self) -> bool {
        self.state.lock().unwrap().done
    }

    /// The server process, its generation (the next opening's) and when it started.
    pub fn process(&self) -> Option<(u32, u64, Instant)> {
        let state = self.state.lock().unwrap();
        let (pid, at) = state.process?;
        Some((pid, state.generation + u64::from(state.addr.is_none()), at))
    }

    /// Waits for a server opened after `generation`; `None` once the soak is over.
    pub fn wait_past(&self, generation: u64) -> Option<(u64, SocketAddr)> {
        let state = self.state.lock().unwrap();
        let state = self
            .changed
            .wait_while(state, |s| {
                !s.done && (s.addr.is_none() || s.generation <= generation)
            })
            .unwrap();
        if state.done {
            return None;
        }
        Some((state.generation, state.addr?))
    }
}
