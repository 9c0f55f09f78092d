//! Arbitrary bytes into every decoder of msgr-ceph, as the front of each message type at header versions 0 to 4
//! and as the structures inside (monmap, mon_info_t, addresses, the auth payload). Nothing may panic; whatever
//! decodes must re-encode to something that decodes to the same value (the round trip is checked for the types
//! whose encoding is canonical).
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use msgr_ceph::*;

fuzz_target!(|input: &[u8]| {
    let front = Bytes::copy_from_slice(input);
    for version in 0u16..5 {
        if let Ok(sub) = MMonSubscribe::decode(&mut front.clone(), version) {
            let again = MMonSubscribe::decode(&mut sub.to_front(), MMonSubscribe::VERSION);
            if version >= 3 {
                assert_eq!(again.ok(), Some(sub));
            }
        }
        let _ = MMonGetVersion::decode(&mut front.clone(), version);
        let _ = MMonGetVersionReply::decode(&mut front.clone(), version);
    }
    if let Ok(map) = MMonMap::decode(&mut front.clone()) {
        assert_eq!(MMonMap::decode(&mut map.to_front()).ok(), Some(map));
    }
    let _ = MonMap::decode(&mut front.clone());
    let _ = MonInfo::decode(&mut front.clone());
    let _ = EntityAddr::decode(&mut front.clone());
    let _ = EntityAddrVec::decode(&mut front.clone());
    let _ = MMonSubscribeAck::decode(&mut front.clone());
    if let Ok(auth) = MAuth::decode(&mut front.clone()) {
        assert_eq!(auth.to_front(), front);
        let _ = auth.negotiation();
    }
    if let Ok(reply) = MAuthReply::decode(&mut front.clone()) {
        assert_eq!(reply.to_front(), front);
    }
    let _ = AuthNegotiation::decode(&mut front.clone());
    if let Ok(cmd) = MMonCommand::decode(&mut front.clone()) {
        assert_eq!(cmd.to_front(), front);
    }
    if let Ok(ack) = MMonCommandAck::decode(&mut front.clone(), Bytes::new()) {
        assert_eq!(ack.to_front(), front);
    }
    if let Ok(config) = MConfig::decode(&mut front.clone()) {
        assert_eq!(MConfig::decode(&mut config.to_front()).ok(), Some(config));
    }
    if let Ok(ping) = MPing::decode(&mut front.clone()) {
        let _ = ping.text();
    }
    if let Ok(text) = std::str::from_utf8(input) {
        let _ = text.parse::<Fsid>();
    }
});
