//! The authentication roles of `msgr serve` (`-n NAME -k KEYRING [-m MON] [-c CONF]`):
//!
//! * named `mon.N` with a keyring: the mon role (msgr-monc's `MonService`): a cephx auth
//!   server for the entities of the keyring, so Ceph's own clients (and msgr's) authenticate
//!   to it and get tickets; it serves the monmap, `status`, `auth get` and MMonGetVersion;
//! * named as a daemon (`osd.N`, `mgr.X`, `mds.X`) with a keyring and mons: it
//!   authenticates to the mons as that entity, fetches the rotating keys of its type and
//!   verifies its clients' authorizers with them, signing their sessions;
//! * without `-k` or `-m`: no authentication (every connector accepted).
//!
//! Not here: the messages `serve` answers (`serve.rs`).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context};
use msgr_auth::provider::{CephxAuthServer, TicketTtls};
use msgr_auth::{EntityName, Keyring, ENTITY_MON};
use msgr_core::Authorizer;
use msgr_monc::{MonClient, MonService};
use rand::SeedableRng;

/// How `serve` authenticates its peers.
pub enum Role {
    /// No authentication.
    Open,
    /// The mon role.
    Mon(MonService),
    /// A daemon verifying its clients with the rotating keys its mon client fetched.
    Daemon {
        /// Kept alive for renewals (dropping it stops them).
        client: MonClient,
        /// The messenger hook.
        authorizer: Arc<dyn Authorizer>,
    },
}

impl Role {
    /// `"none"` or `"cephx"`, for the startup line.
    pub fn label(&self) -> &'static str {
        match self {
            Role::Open => "auth none",
            Role::Mon(_) => "mon role, cephx",
            Role::Daemon { .. } => "cephx, verified with the mon's rotating keys",
        }
    }
}

/// The role `name` (as given to `-n`) takes with these options; `bind` is the address the
/// messenger will listen on (a mon's monmap names it).
pub async fn role(
    name: &str,
    keyring: Option<&Path>,
    mon: Option<&str>,
    conf: Option<&Path>,
    bind: SocketAddr,
) -> anyhow::Result<Role> {
    if keyring.is_none() && mon.is_none() {
        return Ok(Role::Open);
    }
    let entity: EntityName = name
        .parse()
        .with_context(|| format!("bad name {name:?} (expected TYPE.ID)"))?;
    if entity.ty == ENTITY_MON {
        let path = keyring.context("the mon role needs -k KEYRING (its entities' keys)")?;
        let ring = Keyring::load(path)?;
        let server = CephxAuthServer::new(
            ring.clone(),
            TicketTtls::default(),
            4096,
            Box::new(rand::rngs::StdRng::from_entropy()),
        );
        let fsid = random_fsid().parse()?;
        let service = MonService::new(Arc::new(server), ring, fsid, &entity.id, bind);
        return Ok(Role::Mon(service));
    }
    if !entity.needs_rotating_keys() {
        bail!("{entity} cannot serve with authentication: name a mon (mon.N) or a daemon (osd.N, mgr.X, mds.X)");
    }
    let config = crate::ceph_opts::mon_client_config(name, conf, keyring, mon)?;
    let client = MonClient::new(config).await?;
    client
        .authenticate()
        .await
        .with_context(|| format!("authenticating as {entity}"))?;
    let authorizer = client.authorizer();
    Ok(Role::Daemon { client, authorizer })
}

/// A random cluster fsid (UUID form) for a stand-alone mon.
fn random_fsid() -> String {
    let b: [u8; 16] = rand::random();
    let h = |r: std::ops::Range<usize>| b[r].iter().map(|x| format!("{x:02x}")).collect::<String>();
    format!(
        "{}-{}-{}-{}-{}",
        h(0..4),
        h(4..6),
        h(6..8),
        h(8..10),
        h(10..16)
    )
}
