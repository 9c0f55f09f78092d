//! Moved: the bodies of Ceph's mon-facing messages now live in the published `msgr-ceph` crate. This re-export
//! keeps `msgr_tests::ceph_msgs::X` working for the tests that use it.

pub use msgr_ceph::*;
