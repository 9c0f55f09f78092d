//! Ceph's MessageTest (spec `ceph-test-suite.md` §1.1): a front of about 0.9 MB and a data
//! segment of about 0.8 MB go through a lossless session and come back byte for byte.

use bytes::{BufMut, Bytes, BytesMut};
use msgr_core::Policy;
use msgr_tests::fixture::{Fixture, MSG_PING};
use msgr_wire::Message;
use rand::{RngCore, SeedableRng};

/// `MSG_COMMAND`.
const MSG_COMMAND: u16 = 97;
/// Strings in the command vector, and their length: 30,720 × 26 = 798,720 bytes.
const STRINGS: usize = 30_720;
const STRING_LEN: usize = 26;

/// The front of Ceph's big MCommand: a `vector<string>` of 30,720 strings of 26 bytes
/// (u32 count, then u32 length + bytes each): 921,604 bytes.
fn command_front() -> Bytes {
    let mut b = BytesMut::with_capacity(4 + STRINGS * (4 + STRING_LEN));
    b.put_u32_le(STRINGS as u32);
    for i in 0..STRINGS {
        b.put_u32_le(STRING_LEN as u32);
        for j in 0..STRING_LEN {
            b.put_u8(b'a' + ((i + j) % 26) as u8);
        }
    }
    b.freeze()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_test() {
    let f = Fixture::new(
        Some(Policy::stateful_server(0)),
        Some(Policy::lossless_peer(0)),
    )
    .await;
    let conn = f.connect();

    // 1. A ~0.9 MB front.
    let front = command_front();
    assert!(front.len() > 900_000);
    let before = f.cli.messages();
    conn.send(Message::new(MSG_COMMAND, front.clone()))
        .await
        .expect("queued");
    assert!(f.cli.wait_until(|s| s.messages > before).await, "no reply");
    {
        let seen = f.cli.seen();
        let reply = seen.last.as_ref().expect("reply");
        assert_eq!(reply.header.ty, MSG_COMMAND);
        assert_eq!(reply.front.len(), front.len());
        assert!(reply.front == front, "front echoed byte for byte");
    }

    // 2. A ping with a 798,720-byte data segment (and a middle, as the 2015 test).
    let mut data = vec![0u8; STRINGS * STRING_LEN];
    rand::rngs::StdRng::seed_from_u64(7).fill_bytes(&mut data);
    let data = Bytes::from(data);
    let middle = Bytes::from_static(b"seq=2");
    let before = f.cli.messages();
    conn.send(
        Message::new(MSG_PING, Bytes::new())
            .with_middle(middle.clone())
            .with_data(data.clone()),
    )
    .await
    .expect("queued");
    assert!(f.cli.wait_until(|s| s.messages > before).await, "no reply");
    {
        let seen = f.cli.seen();
        let reply = seen.last.as_ref().expect("reply");
        assert_eq!(reply.header.ty, MSG_PING);
        assert_eq!(reply.middle, middle);
        assert_eq!(reply.data.len(), data.len());
        assert!(reply.data == data, "data echoed byte for byte");
    }
    assert_eq!(f.cli.count(&conn), 2);
    let st = conn.stats();
    assert_eq!(st.msgs_out, 2);
    assert!(st.bytes_out >= (front.len() + data.len()) as u64);
    f.teardown().await;
}
