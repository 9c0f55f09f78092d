//! The connector's handling of a `ceph_msg_connect_reply` (spec §5.1), as a pure function.

use msgr_wire::{ConnectReply, Tag};

use crate::error::PipeError;

/// The connector's per-attempt counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attempt {
    /// Global seq sent in the connect.
    pub global_seq: u32,
    /// Connect seq sent in the connect.
    pub connect_seq: u32,
    /// A BADAUTHORIZER was already answered by rebuilding the authorizer.
    pub auth_retried: bool,
}

/// What the connector does with a reply.
#[derive(Debug)]
pub enum ReplyAction {
    /// Send a new connect on the same socket (counters already adjusted).
    Retry,
    /// RETRY_GLOBAL: take a global seq above this one, then retry.
    RetryGlobal {
        /// The acceptor's recorded peer global seq.
        at_least: u32,
    },
    /// BADAUTHORIZER for the first time: rebuild the authorizer (forcing a new one) and retry.
    RetryAuthorizer,
    /// CHALLENGE_AUTHORIZER: answer the challenge (the reply's authorizer bytes) and send the
    /// connect again.
    Challenge,
    /// RESETSESSION: reset the session (discard queues, RemoteReset), then retry with cseq 0.
    ResetSession,
    /// WAIT: we lost a connection race.
    Wait,
    /// READY / SEQ: the handshake is done (`seq`: the 8-byte exchange follows).
    Ready {
        /// A SEQ reply.
        seq: bool,
    },
    /// Give up on this socket; [`PipeError::is_fatal`] says whether to give up the session.
    Fail(PipeError),
}

/// Evaluates the reply for attempt `at` (spec §5.1 table). `supported` / `required` are our
/// policy's feature sets.
pub fn on_reply(
    at: &mut Attempt,
    reply: &ConnectReply,
    supported: u64,
    required: u64,
) -> ReplyAction {
    match reply.tag {
        Tag::Features => ReplyAction::Fail(PipeError::MissingFeatures {
            missing: reply.features & !supported,
        }),
        Tag::BadProtoVer => ReplyAction::Fail(PipeError::BadProtoVer {
            ours: 0,
            peer: reply.protocol_version,
        }),
        Tag::BadAuthorizer => {
            if at.auth_retried {
                ReplyAction::Fail(PipeError::AuthorizerRefused)
            } else {
                at.auth_retried = true;
                ReplyAction::RetryAuthorizer
            }
        }
        Tag::ResetSession => {
            at.connect_seq = 0;
            ReplyAction::ResetSession
        }
        Tag::RetryGlobal => ReplyAction::RetryGlobal {
            at_least: reply.global_seq,
        },
        Tag::RetrySession => {
            if reply.connect_seq <= at.connect_seq {
                tracing::warn!(
                    ours = at.connect_seq,
                    theirs = reply.connect_seq,
                    "RETRY_SESSION does not raise connect_seq"
                );
            }
            at.connect_seq = reply.connect_seq;
            ReplyAction::Retry
        }
        Tag::Wait => ReplyAction::Wait,
        Tag::ChallengeAuthorizer => ReplyAction::Challenge,
        Tag::Ready | Tag::Seq => {
            let missing = required & !reply.features;
            if missing != 0 {
                return ReplyAction::Fail(PipeError::MissingFeatures { missing });
            }
            ReplyAction::Ready {
                seq: reply.tag == Tag::Seq,
            }
        }
        other => ReplyAction::Fail(PipeError::UnexpectedTag {
            tag: other.byte(),
            context: "connect reply",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at() -> Attempt {
        Attempt {
            global_seq: 3,
            connect_seq: 1,
            auth_retried: false,
        }
    }

    #[test]
    fn each_tag() {
        let mut a = at();
        let mut r = ConnectReply::new(Tag::Features);
        r.features = 0b110;
        assert!(matches!(
            on_reply(&mut a, &r, 0b010, 0),
            ReplyAction::Fail(PipeError::MissingFeatures { missing: 0b100 })
        ));
        assert!(matches!(
            on_reply(&mut a, &ConnectReply::new(Tag::BadProtoVer), 0, 0),
            ReplyAction::Fail(PipeError::BadProtoVer { .. })
        ));
        let bad = ConnectReply::new(Tag::BadAuthorizer);
        assert!(matches!(
            on_reply(&mut a, &bad, 0, 0),
            ReplyAction::RetryAuthorizer
        ));
        assert!(matches!(
            on_reply(&mut a, &bad, 0, 0),
            ReplyAction::Fail(PipeError::AuthorizerRefused)
        ));
        let mut a = at();
        assert!(matches!(
            on_reply(&mut a, &ConnectReply::new(Tag::ResetSession), 0, 0),
            ReplyAction::ResetSession
        ));
        assert_eq!(a.connect_seq, 0);
        let mut r = ConnectReply::new(Tag::RetryGlobal);
        r.global_seq = 40;
        assert!(matches!(
            on_reply(&mut a, &r, 0, 0),
            ReplyAction::RetryGlobal { at_least: 40 }
        ));
        let mut r = ConnectReply::new(Tag::RetrySession);
        r.connect_seq = 7;
        assert!(matches!(on_reply(&mut a, &r, 0, 0), ReplyAction::Retry));
        assert_eq!(a.connect_seq, 7);
        assert!(matches!(
            on_reply(&mut a, &ConnectReply::new(Tag::Wait), 0, 0),
            ReplyAction::Wait
        ));
        assert!(matches!(
            on_reply(&mut a, &ConnectReply::new(Tag::ChallengeAuthorizer), 0, 0),
            ReplyAction::Challenge
        ));
        let mut r = ConnectReply::new(Tag::Seq);
        r.features = 0b1;
        assert!(matches!(
            on_reply(&mut a, &r, 0, 0b1),
            ReplyAction::Ready { seq: true }
        ));
        assert!(matches!(
            on_reply(&mut a, &r, 0, 0b10),
            ReplyAction::Fail(PipeError::MissingFeatures { missing: 0b10 })
        ));
        assert!(matches!(
            on_reply(&mut a, &ConnectReply::new(Tag::Ready), 0, 0),
            ReplyAction::Ready { seq: false }
        ));
        assert!(matches!(
            on_reply(&mut a, &ConnectReply::new(Tag::Msg), 0, 0),
            ReplyAction::Fail(PipeError::UnexpectedTag { tag: 7, .. })
        ));
    }
}
