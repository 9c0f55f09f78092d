//! A scripted handshake hook: [`Script`] records every handshake step of both sides of a
//! messenger and applies rules (fail the socket at a step, pause it until a [`Gate`] opens,
//! or both), counting each failure it injects so that a test can prove the fault fired where
//! it meant it to. Without rules it only records (which step a connection reached, READY or
//! SEQ). It decides nothing else: the handshake itself is msgr-pipe's.

use std::sync::{Arc, Mutex, MutexGuard};

use msgr_core::ConnId;
use msgr_pipe::{BoxFuture, HandshakeHook, HookAction, Side, Step};
use tokio::sync::{watch, Notify};

use crate::fixture::WAIT;

/// A gate a paused step waits on; cheap to clone, opened once for every waiter.
#[derive(Clone)]
pub struct Gate(Arc<watch::Sender<bool>>);

impl Gate {
    /// A closed gate.
    pub fn new() -> Gate {
        Gate(Arc::new(watch::channel(false).0))
    }

    /// Opens the gate: every step paused on it goes on.
    pub fn open(&self) {
        self.0.send_replace(true);
    }

    async fn passed(&self) {
        let mut rx = self.0.subscribe();
        // An error means the sender is gone: nothing to wait for any more.
        let _ = rx.wait_for(|open| *open).await;
    }
}

impl Default for Gate {
    fn default() -> Self {
        Gate::new()
    }
}

/// What a rule does at its step.
#[derive(Clone)]
pub enum Act {
    /// Fail the socket there.
    Fail,
    /// Wait until the gate opens, then go on.
    Pause(Gate),
    /// Wait until the gate opens, then fail the socket.
    PauseThenFail(Gate),
}

struct Rule {
    side: Side,
    step: Step,
    times: u32,
    act: Act,
}

/// Records every step; applies the first matching rule that has uses left. See the module
/// docs.
#[derive(Default)]
pub struct Script {
    history: Mutex<Vec<(ConnId, Side, Step)>>,
    failed: Arc<Mutex<Vec<(ConnId, Side, Step)>>>,
    rules: Mutex<Vec<Rule>>,
    changed: Notify,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Script {
    /// A script with no rules yet.
    pub fn new() -> Arc<Script> {
        Arc::new(Script::default())
    }

    /// Adds a rule: the next `times` times `side` reaches `step`, do `act`.
    pub fn on(&self, side: Side, step: Step, times: u32, act: Act) {
        lock(&self.rules).push(Rule {
            side,
            step,
            times,
            act,
        });
    }

    /// How many times `side` reached `step`.
    pub fn count(&self, side: Side, step: Step) -> usize {
        lock(&self.history)
            .iter()
            .filter(|(_, s, st)| *s == side && *st == step)
            .count()
    }

    /// How many times a rule failed the socket at `step` of `side` (counted when the hook
    /// answers [`HookAction::Fail`], after any pause).
    pub fn failed(&self, side: Side, step: Step) -> usize {
        lock(&self.failed)
            .iter()
            .filter(|(_, s, st)| *s == side && *st == step)
            .count()
    }

    /// Every step so far, in order, with its connection.
    pub fn history(&self) -> Vec<(ConnId, Side, Step)> {
        lock(&self.history).clone()
    }

    /// The steps of one connection, in order.
    pub fn steps_of(&self, conn: ConnId) -> Vec<Step> {
        lock(&self.history)
            .iter()
            .filter(|(c, _, _)| *c == conn)
            .map(|(_, _, s)| *s)
            .collect()
    }

    /// Waits until `side` has reached `step` at least `n` times; panics after [`WAIT`].
    pub async fn reached(&self, side: Side, step: Step, n: usize) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.count(side, step) >= n {
                return;
            }
            assert!(
                tokio::time::timeout_at(deadline, notified).await.is_ok(),
                "{side} never reached {step:?} {n} times; history {:?}",
                self.history()
            );
        }
    }
}

impl HandshakeHook for Script {
    fn step(&self, conn: ConnId, side: Side, step: Step) -> BoxFuture<'static, HookAction> {
        // Take the rule before the step becomes visible: a test woken by the step must not
        // be able to make another connection take this one's rule.
        let act = {
            let mut rules = lock(&self.rules);
            rules
                .iter_mut()
                .find(|r| r.times > 0 && r.side == side && r.step == step)
                .map(|r| {
                    r.times -= 1;
                    r.act.clone()
                })
        };
        lock(&self.history).push((conn, side, step));
        self.changed.notify_waiters();
        let failed = Arc::clone(&self.failed);
        Box::pin(async move {
            match act {
                None => HookAction::Continue,
                Some(Act::Fail) => {
                    lock(&failed).push((conn, side, step));
                    HookAction::Fail
                }
                Some(Act::Pause(g)) => {
                    g.passed().await;
                    HookAction::Continue
                }
                Some(Act::PauseThenFail(g)) => {
                    g.passed().await;
                    lock(&failed).push((conn, side, step));
                    HookAction::Fail
                }
            }
        })
    }
}
