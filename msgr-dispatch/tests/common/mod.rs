//! A recording handler for the DispatchQueue tests.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use msgr_dispatch::{BoxFuture, ConnId, DispatchConfig, DispatchQueue, Handler};
use tokio::sync::{mpsc, Semaphore};

/// A test message: which connection sent it, its number there, and whether it may be fast
/// dispatched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Msg {
    pub conn: ConnId,
    pub seq: u32,
    pub fast: bool,
}

pub fn msg(conn: ConnId, seq: u32) -> Msg {
    Msg {
        conn,
        seq,
        fast: false,
    }
}

/// What the handler saw, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Seen {
    Preprocess(Msg),
    Fast(Msg),
    Started(Msg),
    Done(Msg),
    Event(ConnId, u32),
}

pub struct Recorder {
    log: mpsc::UnboundedSender<Seen>,
    /// When set, each `dispatch` takes one permit before returning.
    gate: Option<Arc<Semaphore>>,
}

impl Handler<Msg, u32> for Recorder {
    fn fast_preprocess(&self, m: &Msg) {
        let _ = self.log.send(Seen::Preprocess(*m));
    }
    fn can_fast_dispatch(&self, m: &Msg) -> bool {
        m.fast
    }
    fn fast_dispatch(&self, m: Msg) {
        let _ = self.log.send(Seen::Fast(m));
    }
    fn dispatch(&self, m: Msg) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let _ = self.log.send(Seen::Started(m));
            if let Some(g) = &self.gate {
                g.acquire().await.expect("gate open").forget();
            }
            let _ = self.log.send(Seen::Done(m));
        })
    }
    fn event(&self, conn: ConnId, e: u32) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let _ = self.log.send(Seen::Event(conn, e));
        })
    }
}

pub struct Rig {
    pub q: DispatchQueue<Msg, u32>,
    pub log: mpsc::UnboundedReceiver<Seen>,
    pub gate: Arc<Semaphore>,
}

/// A queue with a recorder; `gated` makes every dispatch wait for `gate.add_permits`.
pub fn rig(gated: bool) -> Rig {
    rig_with(DispatchConfig::default(), gated)
}

pub fn rig_with(config: DispatchConfig, gated: bool) -> Rig {
    let (tx, log) = mpsc::unbounded_channel();
    let gate = Arc::new(Semaphore::new(0));
    let handler = Recorder {
        log: tx,
        gate: gated.then(|| gate.clone()),
    };
    Rig {
        q: DispatchQueue::new(config, Arc::new(handler)),
        log,
        gate,
    }
}

impl Rig {
    /// The next thing the handler saw. Under paused time a missing delivery fails the test
    /// after a virtual hour instead of hanging it.
    pub async fn next(&mut self) -> Seen {
        let next = tokio::time::timeout(Duration::from_secs(3600), self.log.recv()).await;
        next.expect("delivered in time").expect("handler alive")
    }

    /// The next `n` completed dispatches and events, skipping `Started` and `Preprocess`.
    pub async fn delivered(&mut self, n: usize) -> Vec<Seen> {
        let mut out = Vec::new();
        while out.len() < n {
            match self.next().await {
                Seen::Started(_) | Seen::Preprocess(_) => {}
                s => out.push(s),
            }
        }
        out
    }

    /// Everything logged so far, without waiting.
    pub fn logged(&mut self) -> Vec<Seen> {
        std::iter::from_fn(|| self.log.try_recv().ok()).collect()
    }
}
