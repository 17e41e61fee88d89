//! Arca's daemons: the manager, which decides, records and instructs, and the
//! storage server, which holds blobs and moves their bytes.
//!
//! Both take a bound listener and a shutdown token (as tokio's mini-redis
//! does), so tests run whole clusters in one process on port 0.

pub mod cli;
pub mod cluster;
pub mod credentials;
pub mod error;
pub mod listener;
pub mod manager;
pub mod storage;

pub use manager::{ManagerConfig, run_manager};
pub use storage::{ServerConfig, run_server};
