//! [`MessengerBuilder`]: settings, policies and dispatchers, then `start`, which validates
//! the configuration, binds, and assembles the layers: the identity, the policy set, the
//! dispatch queue over the dispatcher chain, the sessions' host (with its registry, calls
//! and loopback), the facade, and the first accepter.
//!
//! What it does not do: run anything itself (the queue, the accepter and the sessions have
//! their tasks), or read configuration files (`config` does).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, Weak};

use msgr_dispatch::{DispatchQueue, Throttle};
use msgr_pipe::{Authorizer, HandshakeHook, Policy};
use msgr_wire::{EntityAddr, EntityName, EntityType};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{Inner, Messenger};
use crate::accepter::{self, Accepter, ConnLimit};
use crate::config::MessengerConfig;
use crate::dispatcher::{Chain, Dispatcher};
use crate::error::{ConfigError, CoreError};
use crate::host::SessionHost;
use crate::identity::Identity;
use crate::loopback::{LocalHost, Loopback};
use crate::policies::{self, Policies};
use crate::queue::QueueHandler;
use crate::registry::Registry;

/// Configures and starts a [`Messenger`]; made by [`Messenger::builder`].
#[must_use = "a builder does nothing until started"]
pub struct MessengerBuilder {
    name: EntityName,
    config: MessengerConfig,
    bind: Option<SocketAddr>,
    policies: HashMap<EntityType, Policy>,
    default_policy: Option<Policy>,
    chain: Chain,
    hook: Option<Arc<dyn HandshakeHook>>,
    authorizer: Option<Arc<dyn Authorizer>>,
    msgr2: Option<bool>,
    /// Whether `start` binds a listening socket (false: [`MessengerBuilder::no_listener`]).
    listen: bool,
}

impl MessengerBuilder {
    pub(crate) fn new(name: EntityName) -> Self {
        MessengerBuilder {
            name,
            config: MessengerConfig::default(),
            bind: None,
            policies: HashMap::new(),
            default_policy: None,
            chain: Chain::default(),
            hook: None,
            authorizer: None,
            msgr2: None,
            listen: true,
        }
    }

    /// Replaces the whole configuration (settings made by the other methods still win).
    pub fn config(mut self, config: MessengerConfig) -> Self {
        self.config = config;
        self
    }

    /// The address to listen on (overrides `bind_addr` of the configuration).
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.bind = Some(addr);
        self
    }

    /// The address to listen on and its protocol: a `v2:` address makes the listener speak
    /// msgr2 (overrides `bind_addr` and `bind_msgr2` of the configuration; the nonce stays
    /// the configuration's).
    pub fn bind_entity(mut self, addr: msgr_wire::EntityAddr) -> Self {
        self.bind = Some(addr.addr);
        self.msgr2 = Some(addr.is_v2());
        self
    }

    /// A client messenger, as Ceph's clients are: no listening socket (no port, no
    /// descriptor, no accept task). Its address is a blank IP with port 0 and its nonce
    /// (`0.0.0.0:0/nonce`, a `v2:` one with `bind_msgr2`), and it learns its IP from the
    /// first peer it connects to, as Ceph's `learned_addr`; the port stays 0. It connects as
    /// any messenger does, but no peer can connect to it: a session it opened that breaks is
    /// reconnected from this side only, so the `lossless_client` (or `lossy_client`) policy is
    /// the one that fits, as in Ceph. `bind_addr`, `bind_v1_addr` and the port range are
    /// ignored, and [`Messenger::rebind`] is refused ([`CoreError::NoListener`]).
    pub fn no_listener(mut self) -> Self {
        self.listen = false;
        self
    }

    /// The policy for peers of `peer_type`, used as given (overrides the configuration's).
    pub fn policy(mut self, peer_type: EntityType, policy: Policy) -> Self {
        self.policies.insert(peer_type, policy);
        self
    }

    /// The policy for peer types without their own (overrides the configuration's).
    pub fn default_policy(mut self, policy: Policy) -> Self {
        self.default_policy = Some(policy);
        self
    }

    /// Adds a dispatcher after those already added: messages go through them in order.
    pub fn dispatcher(mut self, d: Arc<dyn Dispatcher>) -> Self {
        self.chain.push(d);
        self
    }

    /// A handshake hook for deterministic tests (see `msgr_pipe::HandshakeHook`); replaces
    /// the configuration's `pipe.hook`.
    pub fn handshake_hook(mut self, hook: Arc<dyn HandshakeHook>) -> Self {
        self.hook = Some(hook);
        self
    }

    /// Builds and verifies authorizers (none by default: nothing sent, everything accepted).
    pub fn authorizer(mut self, authorizer: Arc<dyn Authorizer>) -> Self {
        self.authorizer = Some(authorizer);
        self
    }

    /// Validates the configuration, binds the listening socket (unless
    /// [`no_listener`](Self::no_listener)), and starts the dispatch queue and the accepter. Must be called inside a tokio runtime.
    pub async fn start(self) -> Result<Messenger, CoreError> {
        let mut config = self.config;
        if let Some(addr) = self.bind {
            config.bind_addr = addr;
        }
        if let Some(v2) = self.msgr2 {
            config.bind_msgr2 = v2;
        }
        config.validate()?;
        let name = match &config.name {
            Some(n) => n.parse().map_err(|_| ConfigError::EntityName(n.clone()))?,
            None => self.name,
        };
        if let Some(hook) = self.hook {
            config.pipe.hook = Some(hook);
        }
        let pipe = Arc::new(config.pipe.clone());
        let mut policies = HashMap::new();
        for (ty, pc) in &config.policies {
            let ty: EntityType = ty
                .parse()
                .map_err(|_| ConfigError::EntityType(ty.clone()))?;
            policies.insert(ty, policies::from_config(pc, &config));
        }
        policies.extend(self.policies);
        let default_policy = self
            .default_policy
            .unwrap_or_else(|| policies::from_config(&config.default_policy, &config));

        let listeners = match self.listen {
            true => Some(bind_listeners(&config)?),
            false => None,
        };
        // A client messenger announces a blank IP and port 0 (Ceph's unbound messenger).
        let blank = match config.bind_addr {
            SocketAddr::V4(_) => SocketAddr::from(([0, 0, 0, 0], 0)),
            SocketAddr::V6(_) => SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 0)),
        };
        let local_addr = listeners.as_ref().map_or(blank, |l| l.local);
        let nonce = config.nonce.unwrap_or_else(|| rand::random::<u32>() | 1);
        let handler = Arc::new(QueueHandler::new(self.chain, &config.pipe.inject));
        let queue = DispatchQueue::new(config.dispatch.clone(), handler.clone());
        let limit =
            (config.max_connections > 0).then(|| Arc::new(ConnLimit::new(config.max_connections)));
        let features = default_policy.features_supported;
        let host = Arc::new_cyclic(|me: &Weak<SessionHost>| {
            let local: Weak<dyn LocalHost> = me.clone();
            SessionHost {
                me: me.clone(),
                identity: Identity::new(
                    name,
                    if config.bind_msgr2 {
                        EntityAddr::v2(local_addr, nonce)
                    } else {
                        EntityAddr::new(local_addr, nonce)
                    },
                ),
                global_seq: Mutex::new(0),
                policies: Policies::new(policies, default_policy),
                dispatch_throttle: Throttle::new(config.dispatch_throttle_bytes),
                authorizer: self.authorizer,
                pipe,
                registry: Registry::default(),
                queue,
                handler,
                calls: Arc::default(),
                loopback: Arc::new(Loopback::new(name, features, local)),
                cancel: CancellationToken::new(),
                tracker: TaskTracker::new(),
                span: tracing::debug_span!("msgr", %name),
            }
        });
        if let Some((_, local)) = listeners.as_ref().and_then(|l| l.v1.as_ref()) {
            host.identity
                .set_v1_addr(Some(EntityAddr::new(*local, nonce)));
        }
        let v2 = config.bind_msgr2;
        let messenger = Messenger {
            inner: Arc::new(Inner {
                host,
                config,
                accepter: tokio::sync::Mutex::new(None),
                accepter_v1: tokio::sync::Mutex::new(None),
                limit,
                listens: listeners.is_some(),
            }),
        };
        if let Some(Listeners { main, v1, .. }) = listeners {
            let cancel = messenger.inner.host.cancel.child_token();
            let accepter = Accepter::spawn(messenger.accept_context(v2), main, cancel);
            *messenger.inner.accepter.lock().await = Some(accepter);
            if let Some((l, _)) = v1 {
                let cancel = messenger.inner.host.cancel.child_token();
                let accepter = Accepter::spawn(messenger.accept_context(false), l, cancel);
                *messenger.inner.accepter_v1.lock().await = Some(accepter);
            }
        }
        tracing::debug!(%name, addr = %messenger.addr(), "messenger started");
        Ok(messenger)
    }
}

/// The listening sockets of a messenger that listens: the main one (msgr2's with
/// `bind_msgr2`) and the msgr v1 one beside it (`bind_v1_addr`).
struct Listeners {
    main: tokio::net::TcpListener,
    local: SocketAddr,
    v1: Option<(tokio::net::TcpListener, SocketAddr)>,
}

/// Binds what `config` asks to listen on.
fn bind_listeners(config: &MessengerConfig) -> Result<Listeners, CoreError> {
    let main = accepter::bind(
        config.bind_addr,
        config.bind_port_min,
        config.bind_port_max,
        &config.bind_avoid_ports,
    )?;
    let local = main.local_addr().map_err(|source| CoreError::Bind {
        addr: config.bind_addr,
        source,
    })?;
    // A second listener, msgr v1, beside a msgr2 one.
    let v1 = match config.bind_v1_addr.filter(|_| config.bind_msgr2) {
        Some(at) => {
            let l = accepter::bind(at, 0, 0, &[])?;
            let local = l
                .local_addr()
                .map_err(|source| CoreError::Bind { addr: at, source })?;
            Some((l, local))
        }
        None => None,
    };
    Ok(Listeners { main, local, v1 })
}
