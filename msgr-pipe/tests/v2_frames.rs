//! The msgr2.1 frame layer on real traffic: streams of Ceph's own client and ceph-mon 16.2.15
//! (copied from `../shared/vectors/ceph-pacific-cephx-v2`, one file per direction of each TCP
//! connection) decode frame by frame with every CRC checked, in crc mode with auth none and
//! cephx, and in secure mode after AUTH_DONE with the connection secret cephx hands the
//! client (derived here from the capture's throw-away client.admin key), every GCM frame
//! authenticating; and our encoder's frames equal the real ones byte for byte.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::{Buf, BytesMut};
use msgr_auth::connection_secret::split_connection_secret;
use msgr_auth::provider::{AuthClient, CephxClient};
use msgr_auth::{EntityName, Keyring, UTime, ENTITY_MON};
use msgr_pipe::v2::frame::{Banner, Decoder, Encoder, Frame, FrameLimits, Gcm, Tag};
use rand::SeedableRng;

fn data(name: &str) -> BytesMut {
    let path = format!("{}/tests/data/v2/{name}", env!("CARGO_MANIFEST_DIR"));
    BytesMut::from(&std::fs::read(&path).expect(&path)[..])
}

/// Banner, then every frame of a crc-mode stream; the stream ends on a frame boundary.
fn crc_frames(name: &str) -> Vec<Frame> {
    let mut buf = data(name);
    Banner::decode(&mut buf).unwrap().expect("a banner");
    let mut dec = Decoder::new(FrameLimits::default());
    let mut out = Vec::new();
    while let Some(f) = dec
        .decode(&mut buf)
        .unwrap_or_else(|e| panic!("{name}: {e}"))
    {
        out.push(f);
    }
    assert!(buf.is_empty(), "{name}: {} bytes left", buf.len());
    out
}

fn tags(frames: &[Frame]) -> Vec<Tag> {
    frames.iter().map(|f| f.tag).collect()
}

#[test]
fn crc_mode_streams_of_the_real_client_and_mon_decode_with_every_crc() {
    for capture in ["v2-crc-authnone-status", "v2-crc-cephx-status"] {
        let client = crc_frames(&format!("{capture}.conn0.client"));
        let server = crc_frames(&format!("{capture}.conn0.server"));
        assert_eq!(client[0].tag, Tag::Hello, "{capture}");
        assert_eq!(client[1].tag, Tag::AuthRequest, "{capture}");
        assert_eq!(server[0].tag, Tag::Hello, "{capture}");
        assert!(
            tags(&server).contains(&Tag::AuthDone),
            "{capture}: {:?}",
            tags(&server)
        );
        assert!(tags(&server).contains(&Tag::ServerIdent), "{capture}");
        assert!(tags(&client).contains(&Tag::ClientIdent), "{capture}");
        // Messages carry the 41-byte ceph_msg_header2 in segment 0.
        let msgs: Vec<_> = server.iter().filter(|f| f.tag == Tag::Message).collect();
        assert!(!msgs.is_empty(), "{capture}");
        assert!(msgs.iter().all(|f| f.segment(0).len() == 41));
        // Our encoder writes the same bytes.
        let mut enc = Encoder::default();
        let mut again = BytesMut::new();
        Banner::decode(&mut data(&format!("{capture}.conn0.server"))).unwrap();
        for f in &server {
            enc.encode(f, &mut again);
        }
        let mut wire = data(&format!("{capture}.conn0.server"));
        wire.advance(26);
        assert_eq!(again, wire, "{capture}: re-encoded frames differ");
    }
    let big = crc_frames("v2-crc-cephx-status.conn1.server");
    assert!(big.iter().filter(|f| f.tag == Tag::Message).count() > 3);
    assert!(
        big.iter().any(|f| f.segments.len() > 1),
        "messages with a front"
    );
}

/// The u32-length-prefixed bufferlist at the front of `p`.
fn bufferlist(p: &mut &[u8]) -> Vec<u8> {
    let n = p.get_u32_le() as usize;
    let b = p[..n].to_vec();
    p.advance(n);
    b
}

#[test]
fn secure_mode_frames_of_the_real_mon_and_client_open_with_the_cephx_connection_secret() {
    // The handshake, in crc mode on both sides, up to AUTH_DONE.
    let mut server = data("v2-secure-cephx-status.conn1.server");
    let mut client = data("v2-secure-cephx-status.conn1.client");
    Banner::decode(&mut server).unwrap().unwrap();
    Banner::decode(&mut client).unwrap().unwrap();
    let mut sdec = Decoder::new(FrameLimits::default());
    let mut cdec = Decoder::new(FrameLimits::default());
    let ring = Keyring::parse(std::str::from_utf8(&data("v2-cephx.client.admin.keyring")).unwrap())
        .unwrap();
    let admin = EntityName::client("admin");
    let mut cephx = CephxClient::new(
        admin.clone(),
        ring.key(&admin).unwrap().clone(),
        ENTITY_MON,
        Box::new(rand::rngs::StdRng::seed_from_u64(1)),
    );
    let now = UTime::now();
    let con_mode = loop {
        let f = sdec.decode(&mut server).unwrap().expect("AUTH_DONE comes");
        let mut p = f.segment(0);
        match f.tag {
            Tag::AuthReplyMore => {
                // The server challenge, as the first MAuthReply of v1 carries it.
                cephx.handle_reply(now, 0, &bufferlist(&mut p)).unwrap();
                cephx.build_request(now).unwrap();
            }
            Tag::AuthDone => {
                let global_id = p.get_u64_le();
                let mode = p.get_u32_le();
                cephx.set_global_id(global_id);
                cephx.handle_reply(now, 0, &bufferlist(&mut p)).unwrap();
                break mode;
            }
            _ => {}
        }
    };
    assert_eq!(con_mode, 2, "secure mode");
    let secret = cephx
        .connection_secret()
        .expect("secure mode hands out a secret");
    assert_eq!(secret.len(), 64);
    let keys = split_connection_secret(secret, false).unwrap();
    // The client's frames: crc mode up to its AUTH_REQUEST_MORE, then sealed with B.
    while let Some(f) = cdec.decode(&mut client).unwrap() {
        if f.tag == Tag::AuthRequestMore {
            break;
        }
    }
    sdec.secure(Gcm::new(&keys.key, &keys.rx_nonce));
    cdec.secure(Gcm::new(&keys.key, &keys.tx_nonce));
    let mut s = Vec::new();
    while let Some(f) = sdec.decode(&mut server).unwrap() {
        s.push(f);
    }
    let mut c = Vec::new();
    while let Some(f) = cdec.decode(&mut client).unwrap() {
        c.push(f);
    }
    assert!(server.is_empty() && client.is_empty());
    assert_eq!(s[0].tag, Tag::AuthSignature);
    assert_eq!(s[0].segment(0).len(), 32);
    assert_eq!(c[0].tag, Tag::AuthSignature);
    assert_eq!(s[1].tag, Tag::ServerIdent);
    assert_eq!(c[1].tag, Tag::ClientIdent);
    assert!(s.iter().filter(|f| f.tag == Tag::Message).count() > 3);
    // And a byte changed in a sealed frame does not open.
    let mut server = data("v2-secure-cephx-status.conn1.server");
    let n = server.len();
    server[n - 20] ^= 1;
    Banner::decode(&mut server).unwrap();
    let mut dec = Decoder::new(FrameLimits::default());
    let mut switched = false;
    let mut failed = false;
    loop {
        match dec.decode(&mut server) {
            Ok(Some(f)) if f.tag == Tag::AuthDone && !switched => {
                dec.secure(Gcm::new(&keys.key, &keys.rx_nonce));
                switched = true;
            }
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(_) => {
                failed = true;
                break;
            }
        }
    }
    assert!(switched && failed, "the altered frame was refused");
}

/// Each frame of a crc-mode stream with the stream offset just after it.
fn crc_frames_at(name: &str) -> Vec<(Frame, usize)> {
    let mut buf = data(name);
    let total = buf.len();
    Banner::decode(&mut buf).unwrap().unwrap();
    let mut dec = Decoder::new(FrameLimits::default());
    let mut out = Vec::new();
    while let Some(f) = dec.decode(&mut buf).unwrap() {
        out.push((f, total - buf.len()));
    }
    out
}

#[test]
fn auth_signatures_of_the_real_client_and_mon_are_hmacs_of_what_each_received() {
    let client_wire = data("v2-crc-cephx-status.conn1.client");
    let server_wire = data("v2-crc-cephx-status.conn1.server");
    let client = crc_frames_at("v2-crc-cephx-status.conn1.client");
    let server = crc_frames_at("v2-crc-cephx-status.conn1.server");
    let ring = Keyring::parse(std::str::from_utf8(&data("v2-cephx.client.admin.keyring")).unwrap())
        .unwrap();
    let admin = EntityName::client("admin");
    let mut cephx = CephxClient::new(
        admin.clone(),
        ring.key(&admin).unwrap().clone(),
        ENTITY_MON,
        Box::new(rand::rngs::StdRng::seed_from_u64(1)),
    );
    let now = UTime::now();
    let mut auth_done_end = 0;
    for (f, end) in &server {
        let mut p = f.segment(0);
        match f.tag {
            Tag::AuthReplyMore => {
                cephx.handle_reply(now, 0, &bufferlist(&mut p)).unwrap();
                cephx.build_request(now).unwrap();
            }
            Tag::AuthDone => {
                cephx.set_global_id(p.get_u64_le());
                p.get_u32_le();
                cephx.handle_reply(now, 0, &bufferlist(&mut p)).unwrap();
                auth_done_end = *end;
                break;
            }
            _ => {}
        }
    }
    let key = cephx
        .ticket(msgr_auth::ENTITY_AUTH)
        .unwrap()
        .session_key
        .clone();
    // The client signs what it received: the mon's stream up to and including AUTH_DONE.
    let client_sig = client
        .iter()
        .find(|(f, _)| f.tag == Tag::AuthSignature)
        .unwrap();
    let want = msgr_auth::signature::auth_signature(Some(&key), &server_wire[..auth_done_end]);
    assert_eq!(client_sig.0.segment(0), &want[..]);
    // The mon signs what it received: the client's stream before its AUTH_SIGNATURE.
    let req_more_end = client
        .iter()
        .find(|(f, _)| f.tag == Tag::AuthRequestMore)
        .unwrap()
        .1;
    let server_sig = server
        .iter()
        .find(|(f, _)| f.tag == Tag::AuthSignature)
        .unwrap();
    let want = msgr_auth::signature::auth_signature(Some(&key), &client_wire[..req_more_end]);
    assert!(msgr_auth::signature::auth_signature_matches(
        &want,
        server_sig.0.segment(0)
    ));
}

/// A crc-mode, auth-none client connector configured as the real client of the
/// `v2-crc-authnone-status` capture was (its mon's address, cookie 7), with our nonce `nonce`.
fn capture_client_connector(nonce: u32) -> msgr_pipe::v2::connect::Connector {
    use msgr_pipe::v2::connect::{Connector, ConnectorConfig, CON_MODE_CRC};
    let cfg = ConnectorConfig {
        entity_type: msgr_wire::EntityType::CLIENT,
        peer: "127.0.0.1:33319".parse().unwrap(),
        peer_nonce: 0,
        nonce,
        features_supported: msgr_wire::features::ALL_PACIFIC,
        features_required: 0,
        modes: vec![CON_MODE_CRC],
        global_seq: 1,
        client_cookie: 7,
        limits: FrameLimits::default(),
        lossy: false,
        my_addr: None,
        resume: None,
    };
    Connector::new(
        cfg,
        Box::new(msgr_auth::provider::NoneClient::new(EntityName::client(
            "admin",
        ))),
    )
}

#[test]
fn our_connector_sends_what_the_real_client_sends_up_to_auth() {
    let server = data("v2-crc-authnone-status.conn0.server");
    let client = data("v2-crc-authnone-status.conn0.client");
    let mut c = capture_client_connector(1);
    let mut sent = BytesMut::new();
    while let Some(b) = c.poll_transmit() {
        sent.extend_from_slice(&b);
    }
    // The mon's banner and HELLO.
    let hello_end = crc_frames_at("v2-crc-authnone-status.conn0.server")[0].1;
    c.handle_input(UTime::now(), &server[..hello_end]).unwrap();
    while let Some(b) = c.poll_transmit() {
        sent.extend_from_slice(&b);
    }
    let auth_end = crc_frames_at("v2-crc-authnone-status.conn0.client")[1].1;
    assert_eq!(
        hex(&sent),
        hex(&client[..auth_end]),
        "banner, HELLO and AUTH_REQUEST"
    );
}

/// A client without a listener announces in CLIENT_IDENT what Ceph's own client does
/// (`AsyncMessenger::learned_addr` on a messenger that never bound): type ANY, the IP the
/// mon's HELLO saw, port 0, our nonce; never the socket's port the HELLO carried (43630
/// here). Our connector, run on the real mon's stream with the real client's nonce, sends
/// an address vector byte for byte equal to the real client's.
#[test]
fn a_client_without_listener_announces_any_ip_port_0_as_the_real_client() {
    use msgr_ceph::{EntityAddrVec, ADDR_TYPE_ANY};
    let server = data("v2-crc-authnone-status.conn0.server");
    let real = crc_frames("v2-crc-authnone-status.conn0.client");
    let real_ident = real
        .iter()
        .find(|f| f.tag == Tag::ClientIdent)
        .expect("the real client's CLIENT_IDENT");
    let mut p = real_ident.segment(0);
    let real_addrs = EntityAddrVec::decode(&mut p).unwrap();
    let real_addrs_len = real_ident.segment(0).len() - p.len();
    assert_eq!(real_addrs.0.len(), 1);
    assert_eq!(real_addrs.0[0].ty, ADDR_TYPE_ANY);
    assert_eq!(
        real_addrs.0[0].addr,
        Some("127.0.0.1:0".parse().unwrap()),
        "the capture itself"
    );
    let mut c = capture_client_connector(real_addrs.0[0].nonce);
    let mut sent = BytesMut::new();
    // The mon's stream up to (not including) SERVER_IDENT: banner, HELLO, AUTH_DONE,
    // AUTH_SIGNATURE.
    let mon = crc_frames_at("v2-crc-authnone-status.conn0.server");
    let ident_at = mon
        .iter()
        .position(|(f, _)| f.tag == Tag::ServerIdent)
        .expect("SERVER_IDENT");
    let before_ident = mon[ident_at - 1].1;
    c.handle_input(UTime::now(), &server[..before_ident])
        .unwrap();
    while let Some(b) = c.poll_transmit() {
        sent.extend_from_slice(&b);
    }
    Banner::decode(&mut sent).unwrap().expect("our banner");
    let mut dec = Decoder::new(FrameLimits::default());
    let mut ours = Vec::new();
    while let Some(f) = dec.decode(&mut sent).unwrap() {
        ours.push(f);
    }
    let ident = ours
        .iter()
        .find(|f| f.tag == Tag::ClientIdent)
        .expect("our CLIENT_IDENT");
    let mut q = ident.segment(0);
    let addrs = EntityAddrVec::decode(&mut q).unwrap();
    assert_eq!(addrs, real_addrs);
    assert_eq!(
        hex(&ident.segment(0)[..real_addrs_len]),
        hex(&real_ident.segment(0)[..real_addrs_len]),
        "CLIENT_IDENT's addrs, byte for byte"
    );
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
