//! The Pipe: msgr v1 handshake, session state machine, reader and writer tasks.
