//! `arca`, Arca's client: a full-screen dashboard by default, headless
//! subcommands for scripts and cron.

pub mod bench;
pub mod cli;
pub mod client;
pub mod commands;
pub mod dashboard;
pub mod demo;
pub mod format;
pub mod names;
pub mod out;
