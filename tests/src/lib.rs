//! Shared helpers for msgr's integration tests.
//!
//! - [`ceph`]: a real `ceph-mon` on loopback per test ([`ceph::CephMon`]) and the real `ceph` command-line client.
//! - [`cluster`]: a one-node cluster per test, the cephx mon and a real memstore `ceph-osd` ([`cluster::CephCluster`]).
//! - [`ceph_msgs`]: the bodies of the Ceph messages those tests exchange (MAuth, MAuthReply, MMonCommand, ...).
//! - [`capture`]: frames of the captured Pacific sessions (`msgr-wire/tests/data/`, the one copy), as golden bytes.
//! - [`fixture`]: the recording dispatcher, messengers on loopback, the checked stop.
//! - [`hostile`]: raw msgr v1 peers that misbehave.
//! - [`netns`]: two hosts in network namespaces joined by a veth pair, and the `msgr-netns-peer` program run there.
//! - [`steps`]: a handshake hook that records, pauses and fails handshake steps.

pub mod capture;
pub mod ceph;
pub mod ceph_msgs;
pub mod cluster;
pub mod fixture;
pub mod hostile;
pub mod netns;
pub mod steps;
pub mod synthetic;
