//! `budgetgate` as a service and an operator's command line (issue 16,
//! SPEC §12). The binary is `budgetgate` (`src/main.rs`); this library
//! holds its parts so the tests can start the service in-process too.
//!
//! - [`config`]: the TOML file and `BUDGETGATE_*` variables;
//! - [`auth`]: API keys (SHA-256 hashes, constant-time comparison) and roles;
//! - [`amount`] and [`body`]: exact amounts and strict JSON bodies;
//! - [`ops`]: operator operations on an engine (shared by the admin API and
//!   the CLI's direct mode);
//! - [`reservations`]: reservations held by id between reserve and settle;
//! - [`api`]: the HTTP routes (`/v1` spend and admin, coreason-compatible
//!   routes, health and metrics) and [`api::serve`];
//! - [`cli`]: the command line.

pub mod amount;
pub mod api;
pub mod auth;
pub mod body;
pub mod cli;
pub mod config;
pub mod error;
pub mod ops;
pub mod reservations;
