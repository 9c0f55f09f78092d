//! The one-byte tags (`CEPH_MSGR_TAG_*`, spec §2.2).

use crate::error::WireError;

/// A msgr v1 tag: either a `connect_reply.tag` or the first byte of a stream frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Tag {
    /// Reply: handshake finished.
    Ready = 1,
    /// Reply: the acceptor has no record of the session; retry with connect_seq 0.
    ResetSession = 2,
    /// Reply: connection race lost by the connector.
    Wait = 3,
    /// Reply: retry with `reply.connect_seq`.
    RetrySession = 4,
    /// Reply: retry with a global_seq above `reply.global_seq`.
    RetryGlobal = 5,
    /// Stream: the peer closes.
    Close = 6,
    /// Stream: a message frame.
    Msg = 7,
    /// Stream: cumulative acknowledgement, le64 seq.
    Ack = 8,
    /// Stream: bare keepalive.
    Keepalive = 9,
    /// Reply: protocol version mismatch.
    BadProtoVer = 10,
    /// Reply: authorizer refused.
    BadAuthorizer = 11,
    /// Reply: required features missing.
    Features = 12,
    /// Reply: like READY, then an 8-byte in_seq each way.
    Seq = 13,
    /// Stream: keepalive with the sender's timestamp.
    Keepalive2 = 14,
    /// Stream: echo of a KEEPALIVE2 timestamp.
    Keepalive2Ack = 15,
    /// Reply: cephx v2 authorizer challenge.
    ChallengeAuthorizer = 16,
}

impl Tag {
    /// Every tag, in numeric order.
    pub const ALL: [Tag; 16] = [
        Tag::Ready,
        Tag::ResetSession,
        Tag::Wait,
        Tag::RetrySession,
        Tag::RetryGlobal,
        Tag::Close,
        Tag::Msg,
        Tag::Ack,
        Tag::Keepalive,
        Tag::BadProtoVer,
        Tag::BadAuthorizer,
        Tag::Features,
        Tag::Seq,
        Tag::Keepalive2,
        Tag::Keepalive2Ack,
        Tag::ChallengeAuthorizer,
    ];

    /// True for tags that start a stream frame (CLOSE, MSG, ACK, KEEPALIVE, KEEPALIVE2(_ACK)).
    pub const fn is_stream(self) -> bool {
        matches!(
            self,
            Tag::Close
                | Tag::Msg
                | Tag::Ack
                | Tag::Keepalive
                | Tag::Keepalive2
                | Tag::Keepalive2Ack
        )
    }

    /// True for tags valid as `connect_reply.tag`.
    pub const fn is_reply(self) -> bool {
        !self.is_stream()
    }

    /// The tag byte.
    pub const fn byte(self) -> u8 {
        self as u8
    }

    /// Ceph's name of the tag, in lowercase (`ready`, `msg`, `keepalive2_ack`, …).
    pub const fn name(self) -> &'static str {
        match self {
            Tag::Ready => "ready",
            Tag::ResetSession => "resetsession",
            Tag::Wait => "wait",
            Tag::RetrySession => "retry_session",
            Tag::RetryGlobal => "retry_global",
            Tag::Close => "close",
            Tag::Msg => "msg",
            Tag::Ack => "ack",
            Tag::Keepalive => "keepalive",
            Tag::BadProtoVer => "badprotover",
            Tag::BadAuthorizer => "badauthorizer",
            Tag::Features => "features",
            Tag::Seq => "seq",
            Tag::Keepalive2 => "keepalive2",
            Tag::Keepalive2Ack => "keepalive2_ack",
            Tag::ChallengeAuthorizer => "challenge_authorizer",
        }
    }
}

impl TryFrom<u8> for Tag {
    type Error = WireError;

    fn try_from(tag: u8) -> Result<Self, WireError> {
        match tag {
            1..=16 => Tag::ALL
                .get(usize::from(tag) - 1)
                .copied()
                .ok_or(WireError::UnknownTag { tag }),
            _ => Err(WireError::UnknownTag { tag }),
        }
    }
}

impl From<Tag> for u8 {
    fn from(tag: Tag) -> u8 {
        tag as u8
    }
}

impl std::fmt::Display for Tag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_byte_round_trips_or_fails() {
        for b in 0..=255u8 {
            match Tag::try_from(b) {
                Ok(t) => assert_eq!(t as u8, b),
                Err(e) => {
                    assert!(b == 0 || b > 16);
                    assert_eq!(e, WireError::UnknownTag { tag: b });
                }
            }
        }
        assert_eq!(Tag::ALL.iter().filter(|t| t.is_stream()).count(), 6);
    }
}
