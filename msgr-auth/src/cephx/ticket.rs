//! Ticket replies (`cephx_build_service_ticket_reply` and the client's
//! `verify_service_ticket_reply`), and the tickets a client keeps per service.
//!
//! ```text
//! u8 1, u32 n, n × { u32 service_id, u8 1, encrypt(K, CephXServiceTicket),
//!                    u8 ticket_enc, ticket_enc ? encrypt(OLD, bufferlist TB) : bufferlist TB }
//! ```
//! K is the client's secret (GET_AUTH_SESSION_KEY) or the AUTH session key (service tickets);
//! OLD is the previous AUTH session key, used only when a global id is reclaimed.

use bytes::{Buf, BufMut, Bytes};

use crate::codec::{
    get_blob, get_count, get_struct_v, get_u32, get_u8, len_u32, put_blob, Decode, Encode, UTime,
};
use crate::envelope::{decode_decrypt, encode_encrypt, BlobBody};
use crate::key::CryptoKey;
use crate::AuthError;

use super::types::{CephXServiceTicket, CephXTicketBlob};

/// A ticket for one service as the client keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceTicket {
    /// The service (`ENTITY_*`).
    pub service_id: u32,
    /// Session key shared with the service.
    pub session_key: CryptoKey,
    /// The blob to present in authorizers.
    pub ticket: CephXTicketBlob,
    /// Validity granted.
    pub validity: UTime,
    /// `now + validity` when received.
    pub expires: UTime,
    /// `expires − validity/4`: renew from then on.
    pub renew_after: UTime,
}

impl ServiceTicket {
    /// Whether the ticket is still usable at `now`.
    pub fn is_valid(&self, now: UTime) -> bool {
        now < self.expires
    }

    /// Whether the ticket should be renewed at `now`.
    pub fn needs_renewal(&self, now: UTime) -> bool {
        now >= self.renew_after
    }
}

/// What a mon grants for one service, to be encoded into a ticket reply.
#[derive(Debug, Clone)]
pub struct TicketGrant {
    /// The service.
    pub service_id: u32,
    /// The new session key.
    pub session_key: CryptoKey,
    /// Validity.
    pub validity: UTime,
    /// The ticket blob (already encrypted with the service secret).
    pub ticket: CephXTicketBlob,
}

/// Appends a ticket reply: each ticket's `CephXServiceTicket` encrypted with `key`, each blob
/// in clear or, when `ticket_enc_key` is given (global id reclaim), encrypted with it.
pub fn encode_ticket_reply(
    key: &CryptoKey,
    grants: &[TicketGrant],
    ticket_enc_key: Option<&CryptoKey>,
    buf: &mut impl BufMut,
) -> Result<(), AuthError> {
    buf.put_u8(1);
    buf.put_u32_le(len_u32(grants.len()));
    for g in grants {
        buf.put_u32_le(g.service_id);
        buf.put_u8(1);
        encode_encrypt(
            key,
            &CephXServiceTicket {
                session_key: g.session_key.clone(),
                validity: g.validity,
            },
            buf,
        )?;
        let tb = g.ticket.to_bytes();
        match ticket_enc_key {
            Some(old) => {
                buf.put_u8(1);
                encode_encrypt(old, &BlobBody(tb), buf)?;
            }
            None => {
                buf.put_u8(0);
                put_blob(buf, &tb);
            }
        }
    }
    Ok(())
}

/// Reads a ticket reply, decrypting each ticket with `key` (and a reclaimed blob with
/// `old_session_key`); expiry is counted from `now`.
pub fn decode_ticket_reply(
    buf: &mut impl Buf,
    key: &CryptoKey,
    old_session_key: Option<&CryptoKey>,
    now: UTime,
) -> Result<Vec<ServiceTicket>, AuthError> {
    get_struct_v(buf, "ticket reply", 1)?;
    // service_id (4) + v (1) + encrypted ticket (4 + 16) + ticket_enc (1) + blob (4) at least.
    let n = get_count(buf, "ticket reply count", 30)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let service_id = get_u32(buf, "ticket reply service_id")?;
        get_struct_v(buf, "service ticket", 1)?;
        let t: CephXServiceTicket = decode_decrypt(key, buf)?;
        let tb: Bytes = if get_u8(buf, "ticket_enc")? != 0 {
            let old = old_session_key.ok_or(AuthError::OutOfOrder {
                what: "encrypted ticket without an old session key",
            })?;
            decode_decrypt::<BlobBody>(old, buf)?.0
        } else {
            get_blob(buf, "service ticket blob")?
        };
        let ticket = CephXTicketBlob::from_slice(&tb)?;
        let expires = now.saturating_add(t.validity);
        out.push(ServiceTicket {
            service_id,
            session_key: t.session_key,
            ticket,
            validity: t.validity,
            expires,
            renew_after: expires.saturating_sub(t.validity.quarter()),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entity::{ENTITY_AUTH, ENTITY_OSD};

    fn grant(service_id: u32, k: u8) -> TicketGrant {
        TicketGrant {
            service_id,
            session_key: CryptoKey::aes([k; 16]),
            validity: UTime::from_secs(3600),
            ticket: CephXTicketBlob {
                secret_id: 2,
                blob: Bytes::from(vec![k; 48]),
            },
        }
    }

    #[test]
    fn reply_round_trips_in_clear_and_reclaimed_forms() {
        let secret = CryptoKey::aes([1; 16]);
        let old = CryptoKey::aes([2; 16]);
        let grants = [grant(ENTITY_AUTH, 5), grant(ENTITY_OSD, 6)];
        for enc in [None, Some(&old)] {
            let mut b = Vec::new();
            encode_ticket_reply(&secret, &grants, enc, &mut b).unwrap();
            let now = UTime::from_secs(100);
            let got = decode_ticket_reply(&mut &b[..], &secret, Some(&old), now).unwrap();
            assert_eq!(got.len(), 2);
            assert_eq!(got[1].service_id, ENTITY_OSD);
            assert_eq!(got[1].session_key, grants[1].session_key);
            assert_eq!(got[1].ticket, grants[1].ticket);
            assert_eq!((got[0].expires.sec, got[0].renew_after.sec), (3700, 2800));
        }
    }

    #[test]
    fn wrong_key_is_a_decrypt_error() {
        let mut b = Vec::new();
        encode_ticket_reply(
            &CryptoKey::aes([1; 16]),
            &[grant(ENTITY_AUTH, 5)],
            None,
            &mut b,
        )
        .unwrap();
        let r = decode_ticket_reply(
            &mut &b[..],
            &CryptoKey::aes([9; 16]),
            None,
            UTime::default(),
        );
        assert_eq!(r, Err(AuthError::Decrypt));
    }
}
