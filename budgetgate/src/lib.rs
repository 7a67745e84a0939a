//! # budgetgate
//!
//! Stop AI agents and services from spending money they were not given.
//!
//! Every call that costs money — an agent's tool, an LLM request — is
//! admitted against a [`Budget`] *before* it runs:
//!
//! - **fixed cost** ([`Engine::check`]): the cost is checked and recorded in
//!   one atomic step;
//! - **bounded cost** ([`Engine::reserve`]): the worst case is reserved, the
//!   call runs, and [`Reservation::commit`] replaces the hold by the true cost.
//!   Dropping the reservation (an error, a panic, a cancelled future) releases it.
//!
//! ```
//! use budgetgate::{Budget, Engine, Ledger};
//! use rust_decimal_macros::dec;
//! use std::time::Duration;
//!
//! let engine = Engine::in_memory();
//! let ledger = Ledger::new("openai", "gpt-4o", "user:42");
//! engine.set_budget(&ledger, Budget::rolling(dec!(1.00), Duration::from_secs(3600))?);
//!
//! let reservation = engine.reserve(&ledger, dec!(0.50))?;   // worst case
//! // ... call the model ...
//! reservation.commit(dec!(0.12))?;                         // what it really cost
//!
//! let status = engine.status(&ledger)?;
//! assert_eq!(status.remaining(), dec!(0.88));
//! assert!(engine.check(&ledger, dec!(0.89)).is_blocked()); // 0.12 + 0.89 > 1.00
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Guarantees
//!
//! - **Exact**: amounts are [`rust_decimal::Decimal`] in the API and integer
//!   nano-units (10⁻⁹) in every store ([`amount`]). An amount finer than 10⁻⁹
//!   or negative is refused with its value, never rounded.
//! - **Atomic**: check-and-record and check-and-reserve are one atomic step
//!   per ledger, so concurrent callers can never push committed + reserved
//!   spend past `max_spend` (only an actual cost above its estimate can, and
//!   that overrun is recorded in full and reported).
//! - **Deterministic** (SPEC §3): `spent` is committed spend plus open
//!   reservations within the window; `spent + requested > max_spend` blocks,
//!   equality allows.
//! - **Fail-closed** by default: a store that errors blocks with reason
//!   [`BlockReason::StoreError`]; [`StoreErrorMode::FailOpen`] allows instead.
//! - **Never drops spent money**: a commit after the reservation expired is
//!   recorded at the commit's time and reported as late; a commit the store
//!   cannot record after retries is returned as [`CommitError::Unrecorded`] and
//!   logged at error level.
//! - **Observable**: every decision goes to [`Listener`]s and `tracing`.
//!
//! ## Choices where the contract is silent
//!
//! - A ledger with no budget is **denied** ([`BlockReason::NoBudget`]) unless
//!   the engine has a [`DefaultPolicy::Budget`].
//! - Reservations are held for [`DEFAULT_RESERVATION_TTL`] (10 minutes) unless
//!   configured otherwise; the TTL applies to unbounded windows too.
//! - An invalid *actual* cost commits the estimate and returns
//!   [`CommitError::InvalidActual`].
//! - A ledger keeps one running total per window it is used with; a window
//!   first used on a ledger counts spend from that moment on.
//!
//! ## Modules
//!
//! [`ledger`], [`budget`], [`decision`], [`engine`], [`reservation`],
//! [`event`], [`store`] (with [`store::memory`]), [`clock`], [`amount`], [`global`].

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod amount;
pub mod budget;
pub mod clock;
pub mod decision;
pub mod engine;
pub mod event;
pub mod global;
pub mod ledger;
pub mod reservation;
pub mod store;

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;

pub use budgetgate_macros::{guard, guard_bounded, guard_result};

pub use budget::{Budget, BudgetError, Limit, Mode, StoreErrorMode, Window, WindowParseError};
pub use decision::{BlockReason, BudgetExceeded, Decision, Guarded, Status};
pub use engine::{
    DefaultPolicy, Engine, EngineBuilder, LedgerStatus, StatusError, DEFAULT_RESERVATION_TTL,
};
pub use event::{Event, Listener};
pub use global::{global, install};
pub use ledger::Ledger;
pub use reservation::{Commit, CommitError, Reservation};
pub use rust_decimal::Decimal;
pub use store::{MemoryStore, ReservationId, Store, StoreError};
