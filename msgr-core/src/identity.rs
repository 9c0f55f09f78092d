//! [`Identity`]: who a messenger is — its entity name and the address it announces.
//!
//! The entity type is fixed when the messenger is built; the number changes with
//! `Messenger::set_name` (Ceph's `set_myname`). The address is bound once, may have its IP
//! learned from the first peer when bound to "any", and gets a new port and nonce on rebind.
//!
//! What it does not do: bind sockets (the accepter does), or decide when to rename or rebind
//! (the messenger facade does). It imports no other module of the crate.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Mutex;

use msgr_dispatch::lock;
use msgr_wire::{EntityAddr, EntityName, EntityType};

/// A messenger's entity name and address, shared by its facade, its sessions' host and its
/// loopback.
pub(crate) struct Identity {
    /// Our entity type: fixed when the messenger is built.
    ty: EntityType,
    /// Our entity number: [`Identity::rename`] changes it; read by every writer batch (see
    /// [`Identity::name`]), so one atomic load and no lock.
    num: AtomicI64,
    addr: Mutex<EntityAddr>,
    /// A second address, msgr v1's, when the messenger listens with both protocols.
    v1_addr: Mutex<Option<EntityAddr>>,
}

impl Identity {
    /// `name` at `addr`.
    pub(crate) fn new(name: EntityName, addr: EntityAddr) -> Self {
        Identity {
            ty: name.ty,
            num: AtomicI64::new(name.num),
            addr: Mutex::new(addr),
            v1_addr: Mutex::new(None),
        }
    }

    /// Also listens with msgr v1 at `addr` (same nonce as the first address).
    pub(crate) fn set_v1_addr(&self, addr: Option<EntityAddr>) {
        *lock(&self.v1_addr) = addr;
    }

    /// Every address we listen on: the first (msgr2's when bound to both), then v1's.
    pub(crate) fn addrs(&self) -> Vec<EntityAddr> {
        let mut out = vec![self.addr()];
        out.extend(*lock(&self.v1_addr));
        out
    }

    /// Our entity name now: the fixed type and the current number.
    pub(crate) fn name(&self) -> EntityName {
        EntityName::new(self.ty, self.num.load(Ordering::Acquire))
    }

    /// Takes `name`'s number; refused (with the current name) when its type is not ours.
    pub(crate) fn rename(&self, name: EntityName) -> Result<EntityName, EntityName> {
        let current = self.name();
        if name.ty != current.ty {
            return Err(current);
        }
        self.num.store(name.num, Ordering::Release);
        Ok(current)
    }

    /// Our address as announced to peers.
    pub(crate) fn addr(&self) -> EntityAddr {
        *lock(&self.addr)
    }

    /// Takes the IP a peer saw us at, if ours is still blank (bound to "any").
    pub(crate) fn learn_addr(&self, seen: &EntityAddr) {
        let mut a = lock(&self.addr);
        if a.is_blank_ip() && !seen.is_blank_ip() {
            let port = a.addr.port();
            a.addr = SocketAddr::new(seen.addr.ip(), port);
            tracing::debug!(addr = %*a, "learned our address");
        }
        if let Some(v1) = lock(&self.v1_addr).as_mut() {
            if v1.is_blank_ip() && !seen.is_blank_ip() {
                v1.addr = SocketAddr::new(seen.addr.ip(), v1.addr.port());
            }
        }
    }

    /// Whether `addr` is ours: equal, or equal but for the IP while ours is still blank.
    pub(crate) fn is_self(&self, addr: &EntityAddr) -> bool {
        self.addrs().iter().any(|mine| {
            addr == mine
                || (mine.is_blank_ip()
                    && addr.nonce == mine.nonce
                    && addr.addr.port() == mine.addr.port()
                    && addr.ty == mine.ty)
        })
    }

    /// Moves to `port` with a new nonce (as Ceph's rebind, so peers see a new instance);
    /// the new address.
    pub(crate) fn rebind(&self, port: u16) -> EntityAddr {
        let mut a = lock(&self.addr);
        a.addr.set_port(port);
        a.nonce = a.nonce.wrapping_add(1_000_000);
        if let Some(v1) = lock(&self.v1_addr).as_mut() {
            v1.nonce = a.nonce;
        }
        *a
    }

    /// The v1 listener of a dual-bound messenger moved to `port` (after [`Identity::rebind`]).
    pub(crate) fn rebind_v1(&self, port: u16) {
        if let Some(v1) = lock(&self.v1_addr).as_mut() {
            v1.addr.set_port(port);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn any_addr(port: u16, nonce: u32) -> EntityAddr {
        EntityAddr::new(SocketAddr::from(([0, 0, 0, 0], port)), nonce)
    }

    #[test]
    fn rename_keeps_the_type() {
        let id = Identity::new(EntityName::client(-1), any_addr(6800, 7));
        assert_eq!(
            id.rename(EntityName::client(4123)),
            Ok(EntityName::client(-1))
        );
        assert_eq!(id.name(), EntityName::client(4123));
        assert_eq!(id.rename(EntityName::osd(1)), Err(EntityName::client(4123)));
        assert_eq!(id.name(), EntityName::client(4123));
    }

    #[test]
    fn learns_the_ip_once_and_matches_itself_while_blank() {
        let id = Identity::new(EntityName::osd(0), any_addr(6800, 7));
        let peer_view = EntityAddr::new(SocketAddr::from(([10, 0, 0, 5], 6800)), 7);
        assert!(id.is_self(&peer_view), "blank IP: port and nonce decide");
        id.learn_addr(&peer_view);
        assert_eq!(id.addr(), peer_view);
        id.learn_addr(&EntityAddr::new(SocketAddr::from(([10, 0, 0, 6], 1)), 9));
        assert_eq!(id.addr(), peer_view, "an IP once learned stays");
        let other_ip = EntityAddr::new(SocketAddr::from(([10, 0, 0, 6], 6800)), 7);
        assert!(!id.is_self(&other_ip));
    }

    #[test]
    fn rebind_moves_port_and_nonce() {
        let id = Identity::new(EntityName::osd(0), any_addr(6800, 7));
        let new = id.rebind(6801);
        assert_eq!(new.addr.port(), 6801);
        assert_eq!(new.nonce, 1_000_007);
        assert_eq!(id.addr(), new);
    }
}
