//! Ceph's MonClient for msgr: the client side of a session with the monitors over msgr v1.
//!
//! What it does:
//! * [`MonClient`] hunts for a mon among those of `mon_host` (every form Ceph accepts, see
//!   [`parse_mon_host`]; the v1 address of each), one at a time, each given
//!   `mon_client_hunt_interval` (3 s) to authenticate us, until `client_mount_timeout` (300 s).
//! * It authenticates inside the session with MAuth, as Ceph's v1 MonClient does (the
//!   connection to a mon carries no authorizer): negotiation with the methods of
//!   `auth_client_required`, then the rounds of the auth client the mon chose (msgr-auth's
//!   `NoneClient` or `CephxClient`): the AUTH ticket and service tickets for mon, osd, mgr,
//!   mds. A refusal (wrong key, unknown entity: EACCES) ends the hunt at once with
//!   [`MonClientError::AuthRefused`] naming the entity.
//! * It keeps the session: keepalives every `mon_client_ping_interval` (10 s), another mon
//!   when one is silent for `mon_client_ping_timeout` (30 s) or the session drops, with the
//!   same global id reclaimed with the old AUTH ticket; tickets renewed on the open session
//!   once three quarters of their validity have passed (a timer on tokio's clock).
//! * Requests: [`MonClient::command`] (errno, status, output), [`MonClient::get_version`],
//!   [`MonClient::subscribe`]; the monmap is followed ([`MonClient::monmap`]); the auth client
//!   is reachable ([`MonClient::auth_client`], [`MonClient::build_authorizer`]) for
//!   connections to OSDs and other services.
//! * The client's options from a ceph.conf with Ceph's names and section precedence
//!   ([`ClientOptions`]: `mon_host`, `keyring` with its default paths and `$name`
//!   expansion, `auth_client_required`, `cephx_sign_messages`, `cephx_require_signatures`).
//!
//! What it does not do: msgr v2 (v2 addresses are skipped), several mon sessions at once
//! while hunting (Ceph tries three in parallel), message signing (the options are carried;
//! there are no signatures on a v1 mon session anyway), rotating service keys for daemons
//! (a daemon entity's cephx client fetches them, but nothing here serves them), maps other
//! than the monmap (their messages are dropped), command targets other than the mon
//! (`tell`), or pending requests across sessions other than the one being served.
//!
//! ```no_run
//! # async fn demo() -> Result<(), msgr_monc::MonClientError> {
//! use msgr_monc::{ClientOptions, MonClient, MonClientConfig};
//! let name = "client.admin".parse().expect("a name");
//! let options = ClientOptions::from_ceph_conf_file("/etc/ceph/ceph.conf".as_ref(), &name)?;
//! let client = MonClient::new(MonClientConfig::new(options)).await?;
//! client.authenticate().await?;
//! let reply = client.command(r#"{"prefix": "status", "format": "json"}"#, Default::default()).await?;
//! println!("{} {}", reply.errno, String::from_utf8_lossy(&reply.output));
//! client.shutdown().await;
//! # Ok(()) }
//! ```

mod auth;
mod authorizer;
mod client;
mod clock;
mod conf;
mod error;
mod mon_host;
mod router;
pub mod service;
mod session;
mod tick;

pub use client::{CommandReply, MonClient, MonClientConfig, MonClientStats, DEFAULT_WANT};
pub use conf::{parse_auth_methods, ClientOptions, DEFAULT_AUTH_CLIENT_REQUIRED, DEFAULT_KEYRING};
pub use error::{errno_text, MonClientError};
pub use mon_host::{parse_mon_addrs, parse_mon_host, MON_PORT_V1, MON_PORT_V2};
pub use service::{AuthSeen, MonService};
