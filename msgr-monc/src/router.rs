//! The mon client's dispatcher: every message and session event of its messenger goes, in
//! order, into one channel that the client reads while it waits for replies.

use msgr_core::{BoxFuture, ConnId, Connection, Dispatched, Dispatcher, Received};
use msgr_wire::Message;
use tokio::sync::mpsc;

/// What the messenger hands the client.
#[derive(Debug)]
pub(crate) enum Inbound {
    /// A message on a session.
    Msg(ConnId, Message),
    /// The session ended (lossy fault, mark down) or was reset by the mon.
    Reset(ConnId),
    /// The mon's host refused the TCP connection.
    Refused(ConnId),
}

/// Forwards to the client's channel.
pub(crate) struct Router(pub(crate) mpsc::UnboundedSender<Inbound>);

impl Dispatcher for Router {
    fn dispatch(&self, msg: Received) -> BoxFuture<'_, Dispatched> {
        let _ = self.0.send(Inbound::Msg(msg.conn.id(), msg.msg));
        Box::pin(async { Dispatched::Handled })
    }
    fn handle_reset(&self, conn: &Connection) {
        let _ = self.0.send(Inbound::Reset(conn.id()));
    }
    fn handle_remote_reset(&self, conn: &Connection) {
        let _ = self.0.send(Inbound::Reset(conn.id()));
    }
    fn handle_refused(&self, conn: &Connection) {
        let _ = self.0.send(Inbound::Refused(conn.id()));
    }
}
