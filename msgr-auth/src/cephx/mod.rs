//! cephx: its structures, the challenge key, ticket replies, rotating secrets and authorizers.
//! The state machines that use them (client, mon, service) are in `crate::provider`.

mod authorizer;
mod challenge;
mod rotating;
mod ticket;
mod types;

pub(crate) use authorizer::verify_authorizer_from;
pub use authorizer::{
    general_service_ticket, verify_authorizer, verify_authorizer_with_secret, AuthorizerHead,
    CephXAuthorizer, ChallengeState, ServiceSecrets, Verification, GENERAL_SECRET_ID,
};
pub use challenge::challenge_key;
pub(crate) use challenge::xor_words;
pub use rotating::{ExpiringCryptoKey, RotatingSecrets, KEY_ROTATE_NUM};
pub use ticket::{decode_ticket_reply, encode_ticket_reply, ServiceTicket, TicketGrant};
pub use types::*;
