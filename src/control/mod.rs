//! The control socket: protocol types ([`proto`]), the daemon side ([`server`]), the
//! blocking client used by supctl ([`client`]) and human rendering ([`render`]).

pub mod access;
pub mod client;
pub mod proto;
pub mod render;
pub mod server;
pub mod socket_path;
