//! The msgr2 connection secret a cephx exchange hands out (CephXAuthorizeReply v2, or the
//! `cbl` of GET_AUTH_SESSION_KEY in secure mode), split into the AES-128-GCM key and the two
//! 12-byte nonces of each direction (crypto_onwire.cc `create_handler_pair`): key = bytes
//! 0..16, A = 16..28, B = 28..40; a client receives with A and sends with B, a server the
//! other way round. Not here: the GCM frames themselves (msgr2 is not implemented).

use std::fmt;

use crate::{AuthError, Secret};

/// Bytes a connection secret needs (the rest, 40..64, is unused).
pub const CONNECTION_SECRET_MIN: usize = 40;
/// Length Ceph generates in secure mode.
pub const CONNECTION_SECRET_LEN: usize = 64;

/// The AES-GCM key and nonces of one side of a secure msgr2 connection.
#[derive(Clone, PartialEq, Eq)]
pub struct GcmKeys {
    /// AES-128-GCM key.
    pub key: [u8; 16],
    /// Initial nonce of what this side receives.
    pub rx_nonce: [u8; 12],
    /// Initial nonce of what this side sends.
    pub tx_nonce: [u8; 12],
}

impl fmt::Debug for GcmKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("GcmKeys(<redacted>)")
    }
}

/// Splits a connection secret for the client (`server == false`) or the server side.
pub fn split_connection_secret(secret: &Secret, server: bool) -> Result<GcmKeys, AuthError> {
    let s = secret.expose();
    let part = |r: std::ops::Range<usize>| s.get(r).ok_or(AuthError::ShortSecret { len: s.len() });
    let mut key = [0u8; 16];
    let (mut a, mut b) = ([0u8; 12], [0u8; 12]);
    key.copy_from_slice(part(0..16)?);
    a.copy_from_slice(part(16..28)?);
    b.copy_from_slice(part(28..CONNECTION_SECRET_MIN)?);
    let (rx_nonce, tx_nonce) = if server { (b, a) } else { (a, b) };
    Ok(GcmKeys {
        key,
        rx_nonce,
        tx_nonce,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::hex;
    use aes_gcm::aead::{Aead, KeyInit};

    #[test]
    fn spec_g4_the_mons_first_secure_frame_decrypts_with_the_client_split() {
        let secret = Secret::new(hex(
            "695fd88c5bbb57a36df9ff3b28c58ad0e9e16cd498076fb469c349c6802fb35e6f6a2a67010d5c1e5418d132823b3e849360bc6fd875337e777e690d6fe75732",
        ));
        let frame = hex("607d48d691eea39380fe309d72783f9db586af55e579317fc1a4ab9c8371b3e7bcade8e3b76de23afcb40973c387f34712f4f55f643649342eef1bbdcbc8eea10e683481f4262949b0ccfbcde497479d23c59c143b4891aaba16434a3ff0a07a");
        let client = split_connection_secret(&secret, false).unwrap();
        let gcm = aes_gcm::Aes128Gcm::new_from_slice(&client.key).unwrap();
        let plain = gcm
            .decrypt(&aes_gcm::Nonce::from(client.rx_nonce), &frame[..])
            .unwrap();
        // preamble: tag 7 (AUTH_SIGNATURE), 1 segment of 32 bytes aligned 8, 3 unused
        // segments, 2 reserved bytes, crc.
        let preamble = hex("07012000000008000000000000000000000000000000000000000000a80c9872");
        assert_eq!(plain.len(), 80);
        assert_eq!(&plain[..32], &preamble[..]);
        assert_eq!(
            &plain[32..64],
            &hex("ba26f0fa6522699e0af3cc67abca6eaf610d3958d45fa593a07036d5b8ff8ef6")[..]
        );
        assert_eq!(&plain[64..], &[0u8; 16]);
        // The server sends with the nonce the client receives with.
        let server = split_connection_secret(&secret, true).unwrap();
        assert_eq!(
            (server.tx_nonce, server.rx_nonce),
            (client.rx_nonce, client.tx_nonce)
        );
        assert!(format!("{server:?}").contains("redacted"));
        assert!(split_connection_secret(&Secret::new(vec![0; 39]), false).is_err());
    }
}
