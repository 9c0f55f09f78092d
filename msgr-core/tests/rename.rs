//! [`Messenger::set_name`] over real loopback sockets: a client renamed after its first
//! message is seen under the new name by its peer from the next message on, on the same
//! session, and a change of entity type is refused.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use msgr_core::testing::stop;
use msgr_core::{BoxFuture, CoreError, Dispatched, Dispatcher, Messenger, Policy, Received};
use msgr_wire::{EntityName, EntityType, Message};
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(10);

/// A message type of our own.
const TY: u16 = 0x7101;

/// Forwards every message's header `src` and front, with the connection id it came on.
struct Collect(mpsc::UnboundedSender<(EntityName, Bytes, msgr_core::ConnId)>);

impl Dispatcher for Collect {
    fn dispatch(&self, m: Received) -> BoxFuture<'_, Dispatched> {
        Box::pin(async move {
            let _ = self
                .0
                .send((m.msg.header.src, m.msg.front.clone(), m.conn.id()));
            Dispatched::Handled
        })
    }
}

/// Takes nothing.
struct Ignore;

impl Dispatcher for Ignore {
    fn dispatch(&self, m: Received) -> BoxFuture<'_, Dispatched> {
        Box::pin(async move { Dispatched::Pass(m) })
    }
}

async fn start(name: EntityName, policy: Policy, d: Arc<dyn Dispatcher>) -> Messenger {
    Messenger::builder(name)
        .bind("127.0.0.1:0".parse().expect("literal"))
        .default_policy(policy)
        .dispatcher(d)
        .start()
        .await
        .expect("start")
}

/// The next message the collector saw: its `src`, front and connection.
async fn next(
    rx: &mut mpsc::UnboundedReceiver<(EntityName, Bytes, msgr_core::ConnId)>,
) -> (EntityName, Bytes, msgr_core::ConnId) {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("a message within WAIT")
        .expect("the receiver is alive")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renamed_client_sends_under_its_new_name() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let server = start(
        EntityName::osd(0),
        Policy::stateless_server(0),
        Arc::new(Collect(tx)),
    )
    .await;
    let client = start(
        EntityName::client(EntityName::NEW),
        Policy::lossy_client(0),
        Arc::new(Ignore),
    )
    .await;
    assert_eq!(client.name(), EntityName::client(-1));

    let conn = client
        .connect_lazy(server.addr(), EntityType::OSD)
        .expect("connect");
    conn.send(Message::new(TY, Bytes::from_static(b"first")))
        .await
        .expect("send first");
    let (src, front, first_conn) = next(&mut rx).await;
    assert_eq!(&front[..], b"first");
    assert_eq!(src, EntityName::client(-1));

    // The monitor gave us global id 4242.
    client
        .set_name(EntityName::client(4242))
        .expect("same type: accepted");
    assert_eq!(client.name(), EntityName::client(4242));

    // Same session, next write batch: the new name.
    conn.send(Message::new(TY, Bytes::from_static(b"second")))
        .await
        .expect("send second");
    let (src, front, second_conn) = next(&mut rx).await;
    assert_eq!(&front[..], b"second");
    assert_eq!(second_conn, first_conn, "the same session carried both");
    assert_eq!(src, EntityName::client(4242));

    // A client stays a client: a type change is refused and the name is unchanged.
    let err = client
        .set_name(EntityName::osd(4242))
        .expect_err("type change refused");
    match err {
        CoreError::NameType { current, requested } => {
            assert_eq!(current, EntityName::client(4242));
            assert_eq!(requested, EntityName::osd(4242));
        }
        other => panic!("expected CoreError::NameType, got {other:?}"),
    }
    assert_eq!(client.name(), EntityName::client(4242));
    conn.send(Message::new(TY, Bytes::from_static(b"third")))
        .await
        .expect("send third");
    let (src, front, _) = next(&mut rx).await;
    assert_eq!(&front[..], b"third");
    assert_eq!(
        src,
        EntityName::client(4242),
        "the refused rename changed nothing"
    );

    stop(&client).await;
    stop(&server).await;
}

#[tokio::test]
async fn rename_keeps_the_type_and_takes_any_number() {
    let m = start(
        EntityName::mon(0),
        Policy::stateless_server(0),
        Arc::new(Ignore),
    )
    .await;
    m.set_name(EntityName::mon(3)).expect("mon.0 -> mon.3");
    assert_eq!(m.name(), EntityName::mon(3));
    m.set_name(EntityName::mon(EntityName::NEW))
        .expect("back to mon.-1");
    assert_eq!(m.name(), EntityName::mon(-1));
    for other in [EntityName::client(3), EntityName::osd(3)] {
        assert!(
            matches!(m.set_name(other), Err(CoreError::NameType { .. })),
            "{other} refused"
        );
    }
    assert_eq!(m.name(), EntityName::mon(-1));
    let err = m.set_name(EntityName::osd(3)).expect_err("refused");
    assert_eq!(
        err.to_string(),
        "cannot rename mon.-1 to osd.3: the entity type is fixed"
    );
    stop(&m).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_loopback_follows_the_rename() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let m = start(
        EntityName::client(-1),
        Policy::lossless_client(0),
        Arc::new(Collect(tx)),
    )
    .await;
    let lb = m.loopback();
    lb.send(Message::new(TY, Bytes::from_static(b"before")))
        .await
        .expect("send");
    let (src, front, _) = next(&mut rx).await;
    assert_eq!((src, &front[..]), (EntityName::client(-1), &b"before"[..]));
    m.set_name(EntityName::client(77)).expect("same type");
    assert_eq!(lb.peer_name(), Some(EntityName::client(77)));
    lb.send(Message::new(TY, Bytes::from_static(b"after")))
        .await
        .expect("send");
    let (src, front, _) = next(&mut rx).await;
    assert_eq!((src, &front[..]), (EntityName::client(77), &b"after"[..]));
    stop(&m).await;
}
