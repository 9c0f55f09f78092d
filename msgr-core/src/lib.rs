//! The Messenger: Accepter, Connection, Dispatcher and policies.
