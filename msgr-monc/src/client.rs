//! [`MonClient`]: the public face; the session work (hunting, MAuth rounds, waiting for
//! replies, keepalives, renewal) is in `session.rs`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use msgr_auth::provider::{AuthClient, ClientAuthorizer};
use msgr_auth::{
    CryptoKey, EntityName, Keyring, CEPH_AUTH_CEPHX, ENTITY_MDS, ENTITY_MGR, ENTITY_MON, ENTITY_OSD,
};
use msgr_ceph::{
    MMonCommand, MMonCommandAck, MMonGetVersion, MMonGetVersionReply, MMonSubscribe, MonMap,
    SubscribeItem,
};
use msgr_core::{Messenger, MessengerConfig, Policy};
use msgr_wire::{EntityType, Message};
use tokio::sync::{mpsc, watch, MappedMutexGuard, MutexGuard};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::clock::Clock;
use crate::router::Router;
use crate::session::{Lost, State};
use crate::{ClientOptions, MonClientError};

/// The services a client wants tickets for by default: mon, osd, mgr, mds (Ceph's
/// `CEPH_ENTITY_TYPE_MON | OSD | MGR | MDS` for a librados client).
pub const DEFAULT_WANT: u32 = ENTITY_MON | ENTITY_OSD | ENTITY_MGR | ENTITY_MDS;

/// How a [`MonClient`] is set up.
#[derive(Debug, Clone)]
pub struct MonClientConfig {
    /// Name, mons, auth methods, keyring paths, timeouts.
    pub options: ClientOptions,
    /// The secret; `None`: read from the first keyring of `options.keyring` that exists, when
    /// cephx is allowed.
    pub key: Option<CryptoKey>,
    /// Services to get tickets for ([`DEFAULT_WANT`]).
    pub want: u32,
    /// The messenger's settings (its `ms_*` options).
    pub messenger: MessengerConfig,
    /// Seed of the cephx challenges and nonces (`None`: from the OS), for replayable tests.
    pub seed: Option<u64>,
}

impl MonClientConfig {
    /// Defaults around `options`.
    pub fn new(options: ClientOptions) -> Self {
        MonClientConfig {
            options,
            key: None,
            want: DEFAULT_WANT,
            messenger: MessengerConfig::default(),
            seed: None,
        }
    }

    /// Finds the key and the auth methods to offer: cephx only with a key. As Ceph, a
    /// missing keyring drops cephx when `none` is also allowed ("disabling cephx"), and is an
    /// error otherwise.
    fn resolve_auth(&self) -> Result<(Option<CryptoKey>, Vec<u32>), MonClientError> {
        let o = &self.options;
        let mut methods = o.auth_client_required.clone();
        if !methods.contains(&CEPH_AUTH_CEPHX) {
            return Ok((None, methods));
        }
        if let Some(k) = &self.key {
            return Ok((Some(k.clone()), methods));
        }
        let entity = o.name.to_string();
        match o.keyring.iter().find(|p| p.exists()) {
            Some(path) => {
                let ring = Keyring::load(path).map_err(|source| MonClientError::Keyring {
                    path: path.clone(),
                    source,
                })?;
                let key = ring.key(&o.name).ok_or_else(|| MonClientError::NoKey {
                    entity,
                    path: path.clone(),
                })?;
                Ok((Some(key.clone()), methods))
            }
            None if methods.len() > 1 => {
                tracing::warn!(%entity, tried = ?o.keyring, "no keyring found, disabling cephx");
                methods.retain(|m| *m != CEPH_AUTH_CEPHX);
                Ok((None, methods))
            }
            None => Err(MonClientError::NoKeyring {
                entity,
                tried: o.keyring.clone(),
            }),
        }
    }
}

/// What a mon command answered: Ceph's `(r, rs, outbl)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandReply {
    /// 0 or a negative errno.
    pub errno: i32,
    /// The status string (`rs`).
    pub status: String,
    /// The output (`outbl`).
    pub output: Bytes,
}

/// Counters of a mon client's work.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MonClientStats {
    /// Mon sessions authenticated (the first one and every reconnect).
    pub sessions: u64,
    /// Mon attempts that failed while hunting (no answer, session lost).
    pub hunt_failures: u64,
    /// Ticket renewals completed on an open session.
    pub renewals: u64,
}

pub(crate) struct Shared {
    pub(crate) options: ClientOptions,
    pub(crate) want: u32,
    pub(crate) key: Option<CryptoKey>,
    pub(crate) methods: Vec<u32>,
    pub(crate) seed: Option<u64>,
    pub(crate) clock: Clock,
    pub(crate) messenger: Messenger,
    pub(crate) state: tokio::sync::Mutex<State>,
    pub(crate) global_id: AtomicU64,
    pub(crate) monmap: watch::Sender<Option<MonMap>>,
    pub(crate) stats: Mutex<MonClientStats>,
    pub(crate) cancel: CancellationToken,
    /// A daemon's rotating secrets of its own type, as the mon last gave them: what its
    /// authorizer verifier reads.
    pub(crate) service_keys: Arc<std::sync::RwLock<msgr_auth::provider::ServiceKeyStore>>,
    /// Where a msgr2 mon session's handshake leaves its auth client (`MonModeAuth`).
    pub(crate) v2_auth: Arc<std::sync::Mutex<Option<crate::auth::Auth>>>,
}

impl Shared {
    /// Keeps the verifier's secrets current after an authentication or renewal.
    pub(crate) fn publish_rotating(&self, auth: &dyn msgr_auth::provider::AuthClient) {
        if let Some(r) = auth.rotating_secrets() {
            let ty = auth.name().ty;
            let mut keys = self
                .service_keys
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            keys.rotating.insert(ty, r);
        }
    }

    pub(crate) fn count(&self, f: impl FnOnce(&mut MonClientStats)) {
        f(&mut self.stats.lock().unwrap_or_else(|p| p.into_inner()));
    }
}

/// Ceph's MonClient over msgr v1: one session with one mon at a time, authenticated with
/// MAuth (none or cephx), kept alive with keepalives, its tickets renewed before they
/// expire, and re-established on another mon when it fails (see the crate docs).
///
/// Requests are served one at a time, in the order they are made: a caller waits while
/// another's request is out.
pub struct MonClient {
    shared: Arc<Shared>,
    tracker: TaskTracker,
}

impl std::fmt::Debug for MonClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MonClient")
            .field("name", &self.shared.options.name)
            .field("global_id", &self.global_id())
            .finish_non_exhaustive()
    }
}

impl MonClient {
    /// Starts the client's messenger (`client.-1`, the lossy client policy toward mons)
    /// and its tick task; nothing is sent before [`authenticate`](Self::authenticate). Fails
    /// when cephx is required and no key is found, or when no mon is configured.
    pub async fn new(config: MonClientConfig) -> Result<Self, MonClientError> {
        if config.options.mon_host.is_empty() {
            return Err(MonClientError::NoMonAddress);
        }
        let (key, methods) = config.resolve_auth()?;
        let (tx, rx) = mpsc::unbounded_channel();
        let name = &config.options.name;
        let ty: EntityType = msgr_auth::entity_type_name(name.ty)
            .and_then(|t| t.parse().ok())
            .unwrap_or(EntityType::CLIENT);
        let v2_auth = Arc::new(std::sync::Mutex::new(None));
        let mon_mode = crate::authorizer::MonModeAuth {
            name: name.clone(),
            key: key.clone(),
            methods: methods.clone(),
            want: config.want,
            seed: config.seed,
            slot: Arc::clone(&v2_auth),
        };
        let messenger = Messenger::builder(msgr_wire::EntityName::new(ty, -1))
            .config(config.messenger.clone())
            .policy(EntityType::MON, Policy::lossy_client(0))
            .dispatcher(Arc::new(Router(tx)))
            .authorizer(Arc::new(mon_mode))
            .start()
            .await?;
        let shared = Arc::new(Shared {
            options: config.options,
            want: config.want,
            key,
            methods,
            seed: config.seed,
            clock: Clock::new(),
            messenger,
            state: tokio::sync::Mutex::new(State::new(rx)),
            global_id: AtomicU64::new(0),
            monmap: watch::channel(None).0,
            stats: Mutex::new(MonClientStats::default()),
            cancel: CancellationToken::new(),
            service_keys: Arc::default(),
            v2_auth,
        });
        let tracker = TaskTracker::new();
        tracker.spawn(crate::tick::ticks(Arc::clone(&shared)));
        tracker.close();
        Ok(MonClient { shared, tracker })
    }

    /// Hunts for a mon and authenticates with it (every MAuth round, tickets for the wanted
    /// services), then waits for the monmap. Returns at once when a session is already
    /// authenticated. A refusal (wrong key, unknown entity) is
    /// [`MonClientError::AuthRefused`] as soon as the mon answers; no mon answering within
    /// `client_mount_timeout` is [`MonClientError::NoMonReachable`].
    pub async fn authenticate(&self) -> Result<(), MonClientError> {
        let mut st = self.lock().await?;
        crate::session::ensure_session(&self.shared, &mut st).await?;
        Ok(())
    }

    /// Runs a mon command (`{"prefix": "status", "format": "json"}`) with input `inbuf`
    /// (Ceph's `-i FILE`; empty for most commands), and returns its errno, status string and
    /// output. A session lost meanwhile is re-established (on another mon if need be) and the
    /// command sent again, as Ceph's MonClient does.
    pub async fn command(&self, json: &str, inbuf: Bytes) -> Result<CommandReply, MonClientError> {
        let mut st = self.lock().await?;
        loop {
            let conn = crate::session::ensure_session(&self.shared, &mut st).await?;
            let fsid = st.monmap_fsid();
            let tid = st.next_tid();
            let cmd = MMonCommand::new(fsid, json);
            let msg = Message::new(MMonCommand::TYPE, cmd.to_front())
                .with_version(MMonCommand::VERSION, MMonCommand::VERSION)
                .with_tid(tid)
                .with_data(inbuf.clone());
            if conn.send(msg).await.is_err() {
                st.drop_session();
                continue;
            }
            let got = crate::session::wait_for(&self.shared, &mut st, &conn, None, |m| {
                m.header.ty == MMonCommandAck::TYPE && m.header.tid == tid
            })
            .await;
            match got {
                Ok(m) => {
                    let mon = st.mon_addr();
                    let ack = MMonCommandAck::decode(&mut m.front.clone(), m.data.clone())
                        .map_err(|source| MonClientError::Malformed {
                            what: "MMonCommandAck",
                            mon,
                            source,
                        })?;
                    return Ok(CommandReply {
                        errno: ack.r,
                        status: ack.rs,
                        output: ack.data,
                    });
                }
                Err(Lost::Shutdown) => return Err(MonClientError::Shutdown),
                Err(_) => st.drop_session(),
            }
        }
    }

    /// The newest and oldest versions the mon has of map `what` (`osdmap`, `monmap`, ...).
    pub async fn get_version(&self, what: &str) -> Result<(u64, u64), MonClientError> {
        let mut st = self.lock().await?;
        loop {
            let conn = crate::session::ensure_session(&self.shared, &mut st).await?;
            let handle = st.next_tid();
            let req = MMonGetVersion {
                handle,
                what: what.to_owned(),
            };
            let msg = Message::new(MMonGetVersion::TYPE, req.to_front())
                .with_version(MMonGetVersion::VERSION, MMonGetVersion::VERSION)
                .with_tid(handle);
            if conn.send(msg).await.is_err() {
                st.drop_session();
                continue;
            }
            let got = crate::session::wait_for(&self.shared, &mut st, &conn, None, |m| {
                m.header.ty == MMonGetVersionReply::TYPE && m.header.tid == handle
            })
            .await;
            match got {
                Ok(m) => {
                    let mon = st.mon_addr();
                    let r = MMonGetVersionReply::decode(&mut m.front.clone(), m.header.version)
                        .map_err(|source| MonClientError::Malformed {
                            what: "MMonGetVersionReply",
                            mon,
                            source,
                        })?;
                    return Ok((r.version, r.oldest_version));
                }
                Err(Lost::Shutdown) => return Err(MonClientError::Shutdown),
                Err(_) => st.drop_session(),
            }
        }
    }

    /// Subscribes to map `what` from epoch `start` (0: the current one), once or for every
    /// new epoch. Lasting subscriptions are renewed on every new mon session. The monmap is
    /// always subscribed to and followed ([`monmap`](Self::monmap)); other maps' messages
    /// are not decoded here and are dropped.
    pub async fn subscribe(
        &self,
        what: &str,
        start: u64,
        onetime: bool,
    ) -> Result<(), MonClientError> {
        let mut st = self.lock().await?;
        let item = SubscribeItem {
            start,
            flags: if onetime {
                msgr_ceph::SUBSCRIBE_ONETIME
            } else {
                0
            },
        };
        if !onetime {
            st.subs.insert(what.to_owned(), item);
        }
        let conn = crate::session::ensure_session(&self.shared, &mut st).await?;
        let sub = MMonSubscribe {
            what: BTreeMap::from([(what.to_owned(), item)]),
            hostname: String::new(),
        };
        let msg = Message::new(MMonSubscribe::TYPE, sub.to_front())
            .with_version(MMonSubscribe::VERSION, MMonSubscribe::COMPAT_VERSION);
        if conn.send(msg).await.is_err() {
            st.drop_session();
        }
        Ok(())
    }

    /// The latest monmap received (none before the first authentication).
    pub fn monmap(&self) -> Option<MonMap> {
        self.shared.monmap.borrow().clone()
    }

    /// A watch of the monmap, updated as the mon sends new epochs.
    pub fn watch_monmap(&self) -> watch::Receiver<Option<MonMap>> {
        self.shared.monmap.subscribe()
    }

    /// Our global id (0 before the first authentication).
    pub fn global_id(&self) -> u64 {
        self.shared.global_id.load(Ordering::Acquire)
    }

    /// Who we authenticate as.
    pub fn name(&self) -> &EntityName {
        &self.shared.options.name
    }

    /// The options the client runs with (the signing options are carried here for the
    /// connections to services).
    pub fn options(&self) -> &ClientOptions {
        &self.shared.options
    }

    /// The auth methods offered to the mons, in preference order: `auth_client_required`,
    /// less cephx when no keyring was found and `none` is allowed.
    pub fn auth_methods(&self) -> &[u32] {
        &self.shared.methods
    }

    /// The mon of the current session, if one is open.
    pub async fn current_mon(&self) -> Option<SocketAddr> {
        let st = self.shared.state.lock().await;
        st.conn.as_ref().filter(|c| c.is_connected())?;
        st.mon
    }

    /// The auth client (its tickets, authorizers for services, signing), locked: hold it
    /// briefly, as no request is served meanwhile. [`MonClientError::NotAuthenticated`]
    /// before the first authentication.
    pub async fn auth_client(
        &self,
    ) -> Result<MappedMutexGuard<'_, dyn AuthClient + 'static>, MonClientError> {
        let st = self.lock().await?;
        MutexGuard::try_map(st, |s| s.auth.as_mut().map(|a| a.client_mut()))
            .map_err(|_| MonClientError::NotAuthenticated)
    }

    /// An authorizer for a connection to a service of type `service_id` (`ENTITY_OSD`, ...),
    /// from the current ticket.
    pub async fn build_authorizer(
        &self,
        service_id: u32,
    ) -> Result<Box<dyn ClientAuthorizer>, MonClientError> {
        let now = self.shared.clock.now();
        let mut auth = self.auth_client().await?;
        Ok(auth.build_authorizer(service_id, now)?)
    }

    /// The messenger hook that gives connections to services (OSD, MGR, MDS) an authorizer
    /// from this client's tickets, and signs their messages (for a daemon entity, it also
    /// verifies its clients' authorizers with the rotating secrets the mon gave it): pass it to
    /// [`MessengerBuilder::authorizer`](msgr_core::MessengerBuilder::authorizer) of the
    /// messenger that talks to them. Connections to mons and clients get none. Once the
    /// client is dropped, no authorizer is built.
    pub fn authorizer(&self) -> Arc<dyn msgr_core::Authorizer> {
        Arc::new(crate::authorizer::TicketAuthorizer::new(Arc::clone(
            &self.shared,
        )))
    }

    /// The messenger the client talks to the mons with.
    pub fn messenger(&self) -> &Messenger {
        &self.shared.messenger
    }

    /// The client's counters.
    pub fn stats(&self) -> MonClientStats {
        *self.shared.stats.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Ends the session, the tick task and the messenger, and waits for all of them.
    pub async fn shutdown(&self) {
        self.shared.cancel.cancel();
        self.tracker.wait().await;
        self.shared.messenger.shutdown();
        self.shared.messenger.wait().await;
    }

    async fn lock(&self) -> Result<MutexGuard<'_, State>, MonClientError> {
        if self.shared.cancel.is_cancelled() {
            return Err(MonClientError::Shutdown);
        }
        Ok(self.shared.state.lock().await)
    }
}

impl Drop for MonClient {
    fn drop(&mut self) {
        self.shared.cancel.cancel();
        self.shared.messenger.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use msgr_auth::{KeyringEntry, CEPH_AUTH_NONE};

    fn ring_file(dir: &std::path::Path, file: &str, name: &str, secret: u8) -> std::path::PathBuf {
        let mut ring = Keyring::new();
        ring.insert(
            name.parse().unwrap(),
            KeyringEntry {
                key: CryptoKey::aes([secret; 16]),
                caps: Default::default(),
            },
        );
        let path = dir.join(file);
        std::fs::write(&path, ring.to_text()).unwrap();
        path
    }

    fn conf(dir: &std::path::Path, text: &str, name: &str) -> MonClientConfig {
        let text = text.replace("DIR", &dir.display().to_string());
        let o = ClientOptions::from_ceph_conf_str(&text, "t.conf", &name.parse().unwrap()).unwrap();
        MonClientConfig::new(o)
    }

    #[test]
    fn the_first_keyring_that_exists_gives_the_key() {
        let dir = tempfile::tempdir().unwrap();
        ring_file(dir.path(), "ceph.client.admin.keyring", "client.admin", 7);
        let c = conf(
            dir.path(),
            "[global]\nkeyring = DIR/none.keyring, DIR/$cluster.$name.keyring\n",
            "client.admin",
        );
        let (key, methods) = c.resolve_auth().unwrap();
        assert_eq!(key, Some(CryptoKey::aes([7; 16])));
        assert_eq!(methods, vec![CEPH_AUTH_CEPHX, CEPH_AUTH_NONE]);
    }

    #[test]
    fn no_keyring_disables_cephx_only_when_none_is_allowed() {
        let dir = tempfile::tempdir().unwrap();
        let c = conf(
            dir.path(),
            "[global]\nkeyring = DIR/absent\n",
            "client.admin",
        );
        assert_eq!(c.resolve_auth().unwrap(), (None, vec![CEPH_AUTH_NONE]));
        let c = conf(
            dir.path(),
            "[global]\nkeyring = DIR/absent\nauth_client_required = cephx\n",
            "client.admin",
        );
        match c.resolve_auth() {
            Err(MonClientError::NoKeyring { entity, tried }) => {
                assert_eq!(entity, "client.admin");
                assert_eq!(tried, vec![dir.path().join("absent")]);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_keyring_without_our_entity_or_unreadable_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        ring_file(dir.path(), "k", "client.other", 1);
        let c = conf(dir.path(), "[global]\nkeyring = DIR/k\n", "client.admin");
        assert!(matches!(
            c.resolve_auth(),
            Err(MonClientError::NoKey { .. })
        ));
        std::fs::write(dir.path().join("bad"), "[client.admin]\nkey = !!\n").unwrap();
        let c = conf(dir.path(), "[global]\nkeyring = DIR/bad\n", "client.admin");
        assert!(matches!(
            c.resolve_auth(),
            Err(MonClientError::Keyring { .. })
        ));
        // auth none only: no keyring is read at all.
        let c = conf(
            dir.path(),
            "[global]\nkeyring = DIR/bad\nauth_client_required = none\n",
            "client.admin",
        );
        assert_eq!(c.resolve_auth().unwrap(), (None, vec![CEPH_AUTH_NONE]));
    }
}
