//! `msgr`: serve, ping, bench and dump.

fn main() {}
