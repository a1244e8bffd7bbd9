//! Integration tests of the plugin runtime against the fixture plugins in
//! `plugins/fixtures/` and the built-in plugins `sim` and `basic`, each copied into a
//! fresh plugin directory (built on first use; see `support/fixtures.rs`).

#[path = "../support/fixtures.rs"]
mod fixtures;

mod basic;
mod cache;
mod common;
mod faults;
mod loading;
mod network;
mod process;
mod routing;
mod sim;
mod staging;
