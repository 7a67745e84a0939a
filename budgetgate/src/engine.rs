//! [`Engine`]: decides, records and reports — the API the attributes call.
//!
//! An engine owns one [`Store`], the registered budgets, the default policy
//! for ledgers without a budget, and the listeners. Sync and async methods
//! go to the same store.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use std::time::Duration;

use rust_decimal::Decimal;

use crate::amount::{self, from_nanos};
use crate::budget::{Budget, StoreErrorMode};
use crate::caps::Caps;
use crate::decision::{BlockReason, BudgetExceeded, Decision, Status};
use crate::event::{Event, Listener};
use crate::ledger::Ledger;
use crate::pause::PauseScope;
use crate::rate::{Gate, Policy, RateDecision, RateOutcome, RateReason, RateRequest};
use crate::registry::{Budgets, Registry};
use crate::reservation::Reservation;
use crate::settler::Settler;
use crate::store::{
    ChargeOutcome, ChargeRequest, Hold, ManyOutcome, MemoryStore, Nanos, ReservationId, Store,
    StoreError,
};

/// Default time a reservation is held if nobody commits or releases it.
pub const DEFAULT_RESERVATION_TTL: Duration = Duration::from_secs(600);

/// How long a commit keeps trying in the foreground by default.
pub const DEFAULT_COMMIT_DEADLINE: Duration = Duration::from_secs(2);

/// The shortest reservation TTL an engine uses (shorter settings are raised
/// to it).
pub const MIN_RESERVATION_TTL: Duration = Duration::from_secs(1);

/// What applies to a ledger that has no registered budget and no budget in
/// the attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DefaultPolicy {
    /// Block with reason `NoBudget`: money nobody budgeted is not spent. The default.
    #[default]
    Deny,
    /// Apply this budget to every such ledger (each ledger counts separately).
    Budget(Budget),
}

/// The decision engine. Cheap to clone (an `Arc`); clones share everything.
///
/// ```
/// use budgetgate::{Budget, Engine, Ledger};
/// use budgetgate::dec;
///
/// let engine = Engine::in_memory();
/// let ledger = Ledger::new("openai", "gpt-4o", "user:42");
/// engine.set_budget(&ledger, Budget::lifetime(dec!(1.00))?);
///
/// // Fixed cost: checked and recorded in one step.
/// assert!(engine.check(&ledger, dec!(0.30)).is_allowed());
///
/// // Bounded cost: reserve the worst case, commit the truth.
/// let reservation = engine.reserve(&ledger, dec!(0.50)).expect("fits");
/// let commit = reservation.commit(dec!(0.20)).expect("recorded");
/// assert!(!commit.is_late());
/// assert_eq!(engine.status(&ledger)?.committed(), dec!(0.50));
///
/// // 0.50 + 0.60 > 1.00: blocked, nothing recorded.
/// assert!(engine.check(&ledger, dec!(0.60)).is_blocked());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Store>,
    /// Read on every call, written rarely.
    budgets: Registry,
    default_policy: DefaultPolicy,
    listeners: Vec<Box<dyn Listener>>,
    listener_panics: AtomicU64,
    reservation_ttl: Duration,
    commit_deadline: Duration,
    /// Finishes writes whose outcome was unknown (see [`crate::settler`]).
    settler: Settler,
}

impl crate::settler::Reporter for Inner {
    fn report(&self, event: &Event<'_>) {
        emit_to(&self.listeners, &self.listener_panics, event);
    }
}

/// Delivers an event to every listener, catching and counting panics.
fn emit_to(listeners: &[Box<dyn Listener>], panics: &AtomicU64, event: &Event<'_>) {
    for listener in listeners {
        if catch_unwind(AssertUnwindSafe(|| listener.on_event(event))).is_err() {
            panics.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("store", &self.inner.store)
            .field("default_policy", &self.inner.default_policy)
            .field("listeners", &self.inner.listeners.len())
            .field("reservation_ttl", &self.inner.reservation_ttl)
            .finish_non_exhaustive()
    }
}

/// Builds an [`Engine`]. What it is not told — the store, the default
/// policy, the reservation TTL — comes from the environment when it is
/// built (`BUDGETGATE_REDIS_URL` and friends, see [`crate::global`](mod@crate::global)), so the
/// same code shares its budgets through Redis when that variable is set.
#[must_use]
#[derive(Default)]
pub struct EngineBuilder {
    store: Option<Arc<dyn Store>>,
    budgets: Budgets,
    default_policy: Option<DefaultPolicy>,
    listeners: Vec<Box<dyn Listener>>,
    reservation_ttl: Option<Duration>,
    commit_deadline: Option<Duration>,
    settle_horizon: Option<Duration>,
}

impl std::fmt::Debug for EngineBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineBuilder")
            .field("store", &self.store)
            .field("default_policy", &self.default_policy)
            .field("listeners", &self.listeners.len())
            .field("reservation_ttl", &self.reservation_ttl)
            .field("commit_deadline", &self.commit_deadline)
            .finish_non_exhaustive()
    }
}

impl EngineBuilder {
    /// The store (default: a new [`MemoryStore`]).
    pub fn store(mut self, store: impl Store) -> Self {
        self.store = Some(Arc::new(store));
        self
    }

    /// A shared store.
    pub fn shared_store(mut self, store: Arc<dyn Store>) -> Self {
        self.store = Some(store);
        self
    }

    /// A budget for one ledger.
    pub fn budget(mut self, ledger: &Ledger, budget: Budget) -> Self {
        self.budgets
            .by_ledger
            .insert(ledger.clone(), Caps::one(budget));
        self
    }

    /// Several budgets (stacked caps) for one ledger: a call must fit all.
    pub fn budgets(mut self, ledger: &Ledger, budgets: impl IntoIterator<Item = Budget>) -> Self {
        if let Some(caps) = Caps::new(budgets) {
            self.budgets.by_ledger.insert(ledger.clone(), caps);
        }
        self
    }

    /// A budget for every principal of `namespace:resource` — the pattern
    /// `"*"`, which covers *every* principal, an `org` ledger included (each
    /// principal counts separately). To cover only users, use
    /// [`EngineBuilder::budget_matching`] with `"user:*"`.
    pub fn budget_per_principal(mut self, namespace: &str, resource: &str, budget: Budget) -> Self {
        self.budgets
            .insert_per_principal(namespace, resource, Caps::one(budget));
        self
    }

    /// A budget for the principals of `namespace:resource` that match
    /// `pattern` (`*` matches any run of characters: `"user:*"`); see
    /// [`Engine::set_budget_matching`].
    pub fn budget_matching(
        mut self,
        namespace: &str,
        resource: &str,
        pattern: &str,
        budget: Budget,
    ) -> Self {
        self.budgets
            .insert_pattern(namespace, resource, pattern, Caps::one(budget));
        self
    }

    /// What applies to ledgers with no budget (default: [`DefaultPolicy::Deny`],
    /// or `BUDGETGATE_DEFAULT_MAX_SPEND`).
    pub fn default_policy(mut self, policy: DefaultPolicy) -> Self {
        self.default_policy = Some(policy);
        self
    }

    /// Adds a listener.
    pub fn listener(mut self, listener: impl Listener) -> Self {
        self.listeners.push(Box::new(listener));
        self
    }

    /// How long an unsettled reservation is held (default 10 minutes). Applies
    /// to every window, unbounded ones included. At least one second (a hold
    /// that lapses before its call can finish lets concurrent calls spend
    /// past the budget) and at most [`MAX_DURATION`](crate::budget::MAX_DURATION):
    /// other values are clamped.
    pub fn reservation_ttl(mut self, ttl: Duration) -> Self {
        self.reservation_ttl = Some(crate::budget::clamp_duration(ttl, MIN_RESERVATION_TTL));
        self
    }

    /// How long a commit keeps trying before it returns when the store
    /// fails (default 2 s; at most 1 minute). Attempts are spread over it
    /// with backoff (10 ms doubling); a commit still unconfirmed then
    /// returns [`CommitError::Unknown`](crate::CommitError::Unknown) and is
    /// retried in the background (by id: a commit that did land is never
    /// recorded twice) — its final outcome is an [`Event::Committed`] or
    /// [`Event::UnrecordedSpend`].
    pub fn commit_deadline(mut self, deadline: Duration) -> Self {
        self.commit_deadline = Some(deadline.min(Duration::from_secs(60)));
        self
    }

    /// How long writes whose outcome is unknown (commits, releases,
    /// reservations that timed out or were dropped mid-flight) are retried
    /// in the background (default [`SETTLE_HORIZON`](crate::settler::SETTLE_HORIZON),
    /// 10 minutes; at most an hour, which a store's memory of settled ids
    /// must exceed).
    pub fn settle_horizon(mut self, horizon: Duration) -> Self {
        self.settle_horizon = Some(horizon.min(Duration::from_secs(3600)));
        self
    }

    /// Fills what was not set from the environment (see [`crate::global`](mod@crate::global)).
    pub(crate) fn with_env(mut self, strict: bool) -> Result<Self, crate::env::ConfigError> {
        let wanted = crate::env::Wanted {
            store: self.store.is_none(),
            default_policy: self.default_policy.is_none(),
            reservation_ttl: self.reservation_ttl.is_none(),
        };
        if !(wanted.store || wanted.default_policy || wanted.reservation_ttl) {
            return Ok(self);
        }
        let env = crate::env::read_env(wanted, strict)?;
        self.store = self.store.or(env.store);
        self.default_policy = self
            .default_policy
            .or(env.default_budget.map(DefaultPolicy::Budget));
        self.reservation_ttl = self.reservation_ttl.or(env
            .reservation_ttl
            .map(|ttl| crate::budget::clamp_duration(ttl, MIN_RESERVATION_TTL)));
        Ok(self)
    }

    /// The engine. Settings not given come from the environment; an unusable
    /// variable is logged and the safe choice made (see [`crate::global`](mod@crate::global)).
    /// [`EngineBuilder::try_build`] refuses it instead.
    pub fn build(self) -> Engine {
        match self.with_env(false) {
            Ok(builder) => builder.finish(),
            // Not reached: the lenient reading does not fail.
            Err(_) => Engine::in_memory_with(DefaultPolicy::Deny),
        }
    }

    /// The engine, or the first environment variable that cannot be used
    /// (a Redis URL that does not parse, a default budget that is not a
    /// decimal, …). Use it at start-up.
    pub fn try_build(self) -> Result<Engine, crate::env::ConfigError> {
        Ok(self.with_env(true)?.finish())
    }

    fn finish(self) -> Engine {
        let store = self.store.unwrap_or_else(|| Arc::new(MemoryStore::new()));
        let horizon = self
            .settle_horizon
            .unwrap_or(crate::settler::SETTLE_HORIZON);
        Engine {
            inner: Arc::new(Inner {
                settler: Settler::new(store.clone(), horizon),
                store,
                budgets: Registry::new(self.budgets),
                default_policy: self.default_policy.unwrap_or_default(),
                listeners: self.listeners,
                listener_panics: AtomicU64::new(0),
                reservation_ttl: self.reservation_ttl.unwrap_or(DEFAULT_RESERVATION_TTL),
                commit_deadline: self.commit_deadline.unwrap_or(DEFAULT_COMMIT_DEADLINE),
            }),
        }
    }
}

/// The ledgers of a hierarchy, each once, in the order first listed: a
/// ledger listed twice (`[user, user]`, or a user who is also the team) is
/// one spend stream and is charged once.
fn distinct(ledgers: &[Ledger]) -> std::borrow::Cow<'_, [Ledger]> {
    let repeated = if ledgers.len() <= 16 {
        (1..ledgers.len()).any(|i| ledgers[..i].contains(&ledgers[i]))
    } else {
        let mut seen = std::collections::HashSet::with_capacity(ledgers.len());
        !ledgers.iter().all(|l| seen.insert(l))
    };
    if !repeated {
        return std::borrow::Cow::Borrowed(ledgers);
    }
    let mut once: Vec<Ledger> = Vec::with_capacity(ledgers.len());
    for ledger in ledgers {
        if !once.contains(ledger) {
            once.push(ledger.clone());
        }
    }
    std::borrow::Cow::Owned(once)
}

/// Cancels a reservation request in flight if the future waiting for it is
/// dropped (see [`Engine::reserve_async`]).
struct CancelOnDrop<'a> {
    engine: &'a Engine,
    ledgers: &'a [Ledger],
    preps: &'a [Prepared],
    armed: bool,
}

impl<'a> CancelOnDrop<'a> {
    fn new(engine: &'a Engine, ledgers: &'a [Ledger], preps: &'a [Prepared]) -> Self {
        CancelOnDrop {
            engine,
            ledgers,
            preps,
            armed: true,
        }
    }

    /// The store answered: whoever holds the answer settles.
    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for CancelOnDrop<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.engine.cancel_holds(self.ledgers, self.preps);
        }
    }
}

/// A request that passed validation, ready for the store.
#[derive(Clone)]
pub(crate) struct Prepared {
    pub(crate) caps: Caps,
    pub(crate) nanos: Nanos,
    pub(crate) requested: Decimal,
    pub(crate) hold: Option<Hold>,
}

impl Prepared {
    /// The reservation's id (the default id for a check).
    fn hold_id(&self) -> ReservationId {
        self.hold.map(|h| h.id).unwrap_or_default()
    }
}

/// Spend of one ledger under one of its budgets.
#[derive(Debug, Clone, PartialEq)]
pub struct CapStatus {
    budget: Budget,
    committed: Decimal,
    reserved: Decimal,
    resets_at: Option<std::time::SystemTime>,
}

impl CapStatus {
    /// The budget.
    pub fn budget(&self) -> &Budget {
        &self.budget
    }
    /// Committed spend in the window (what was charged or committed).
    pub fn committed(&self) -> Decimal {
        self.committed
    }
    /// Open reservations in the window (held, not yet committed).
    pub fn reserved(&self) -> Decimal {
        self.reserved
    }
    /// What the budget counts: committed plus reserved — the same figure
    /// as [`Decision::spent_in_window`](crate::Decision::spent_in_window).
    pub fn spent_in_window(&self) -> Decimal {
        self.committed + self.reserved
    }
    /// `max_spend − spent − reserved`, never below zero.
    pub fn remaining(&self) -> Decimal {
        (self.budget.max_spend() - self.committed - self.reserved).max(Decimal::ZERO)
    }
    /// When a calendar window next resets (rolling windows release spend
    /// continuously and unbounded ones never: `None`).
    pub fn resets_at(&self) -> Option<std::time::SystemTime> {
        self.resets_at
    }
}

/// Spend state of one ledger under each of its budgets, from
/// [`Engine::status`]. The shortcut accessors describe the tightest cap (the
/// one with the least remaining).
#[derive(Debug, Clone, PartialEq)]
pub struct LedgerStatus {
    ledger: Ledger,
    caps: Vec<CapStatus>,
    tightest: usize,
}

impl LedgerStatus {
    /// The ledger.
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }
    /// Every cap, in registration order.
    pub fn caps(&self) -> &[CapStatus] {
        &self.caps
    }
    /// The tightest cap.
    pub fn tightest(&self) -> &CapStatus {
        &self.caps[self.tightest]
    }
    /// The tightest cap's budget.
    pub fn budget(&self) -> &Budget {
        self.tightest().budget()
    }
    /// Committed spend in the tightest cap's window.
    pub fn committed(&self) -> Decimal {
        self.tightest().committed()
    }
    /// Committed plus reserved in the tightest cap's window (what the
    /// budget counts).
    pub fn spent_in_window(&self) -> Decimal {
        self.tightest().spent_in_window()
    }
    /// Open reservations in the tightest cap's window.
    pub fn reserved(&self) -> Decimal {
        self.tightest().reserved()
    }
    /// What the tightest cap leaves, never below zero.
    pub fn remaining(&self) -> Decimal {
        self.tightest().remaining()
    }
}

/// Why [`Engine::status`] has no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StatusError {
    /// No budget is registered for the ledger and the default policy
    /// denies. A budget written in an attribute (`max_spend = …`) belongs
    /// to that call site, not to the engine: read it with
    /// [`Engine::status_with`].
    #[error("no budget is registered for {0} and the default policy denies (for a budget given in an attribute, use Engine::status_with(&ledger, &budget))")]
    NoBudget(Ledger),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Engine {
    /// A builder.
    pub fn builder() -> EngineBuilder {
        EngineBuilder::default()
    }

    /// An engine on a fresh [`MemoryStore`] with default settings; reads
    /// no environment variable.
    pub fn in_memory() -> Engine {
        Engine::in_memory_with(DefaultPolicy::Deny)
    }

    fn in_memory_with(policy: DefaultPolicy) -> Engine {
        EngineBuilder {
            store: Some(Arc::new(MemoryStore::new())),
            default_policy: Some(policy),
            reservation_ttl: Some(DEFAULT_RESERVATION_TTL),
            ..EngineBuilder::default()
        }
        .finish()
    }

    /// An engine on `store` with default settings (the default policy and
    /// reservation TTL from the environment, if set).
    pub fn new(store: impl Store) -> Engine {
        Engine::builder().store(store).build()
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    /// The reservation TTL.
    pub fn reservation_ttl(&self) -> Duration {
        self.inner.reservation_ttl
    }

    /// Registers (or replaces) the budget of one ledger.
    pub fn set_budget(&self, ledger: &Ledger, budget: Budget) {
        self.update_budgets(|b| {
            b.by_ledger.insert(ledger.clone(), Caps::one(budget));
        });
    }

    /// Registers (or replaces) several budgets — stacked caps — on one
    /// ledger: a call must fit every one, and a block names the cap that
    /// blocked. An empty list removes the ledger's registration.
    ///
    /// ```
    /// use budgetgate::{Budget, Engine, Ledger, Window};
    /// use budgetgate::dec;
    ///
    /// let engine = Engine::in_memory();
    /// let ledger = Ledger::new("openai", "gpt-4o", "user:1");
    /// engine.set_budgets(&ledger, [
    ///     Budget::new(dec!(10), Window::daily())?,
    ///     Budget::new(dec!(200), Window::monthly())?,
    ///     Budget::lifetime(dec!(15))?,
    /// ]);
    /// assert!(engine.check(&ledger, dec!(10)).is_allowed());
    /// let blocked = engine.check(&ledger, dec!(1));
    /// assert_eq!(blocked.budget().unwrap().window(), Window::daily()); // the daily cap blocked
    /// # Ok::<(), budgetgate::BudgetError>(())
    /// ```
    pub fn set_budgets(&self, ledger: &Ledger, budgets: impl IntoIterator<Item = Budget>) {
        let caps = Caps::new(budgets);
        self.update_budgets(|b| match caps {
            Some(caps) => {
                b.by_ledger.insert(ledger.clone(), caps);
            }
            None => {
                b.by_ledger.remove(ledger);
            }
        });
    }

    /// Registers (or replaces) a budget for the principals of
    /// `namespace:resource` that match `pattern`, each principal counting
    /// separately: `"user:*"` gives every user their own cap and leaves
    /// `"org"` alone. `*` matches any run of characters; everything else
    /// matches itself.
    ///
    /// Which budget applies to a ledger: its own ([`Engine::set_budget`]),
    /// else the most specific matching pattern (the one with the most
    /// characters other than `*`; equally specific, the first registered),
    /// else the default policy (deny, unless
    /// [`DefaultPolicy::Budget`]).
    ///
    /// ```
    /// use budgetgate::{dec, BlockReason, Budget, Engine, Ledger};
    /// let engine = Engine::in_memory();
    /// engine.set_budget_matching("llm", "chat", "user:*", Budget::daily(dec!(1))?);
    /// engine.set_budget_matching("llm", "chat", "user:vip-*", Budget::daily(dec!(20))?);
    /// engine.set_budget(&Ledger::new("llm", "chat", "org"), Budget::monthly(dec!(500))?);
    ///
    /// let max = |p: &str| engine.budget_for(&Ledger::new("llm", "chat", p)).map(|b| b.max_spend());
    /// assert_eq!(max("user:42"), Some(dec!(1)));
    /// assert_eq!(max("user:vip-7"), Some(dec!(20)));
    /// assert_eq!(max("org"), Some(dec!(500)));
    /// assert_eq!(max("team:a"), None); // no match: the default policy denies
    /// let d = engine.check(&Ledger::new("llm", "chat", "team:a"), dec!(0.1));
    /// assert_eq!(d.reason(), Some(BlockReason::NoBudget));
    /// # Ok::<(), budgetgate::BudgetError>(())
    /// ```
    pub fn set_budget_matching(
        &self,
        namespace: &str,
        resource: &str,
        pattern: &str,
        budget: Budget,
    ) {
        self.update_budgets(|b| b.insert_pattern(namespace, resource, pattern, Caps::one(budget)));
    }

    /// Several budgets (stacked caps) for the principals matching
    /// `pattern`; an empty list removes the pattern.
    pub fn set_budgets_matching(
        &self,
        namespace: &str,
        resource: &str,
        pattern: &str,
        budgets: impl IntoIterator<Item = Budget>,
    ) {
        match Caps::new(budgets) {
            Some(caps) => {
                self.update_budgets(|b| b.insert_pattern(namespace, resource, pattern, caps))
            }
            None => self.update_budgets(|b| b.remove_pattern(namespace, resource, pattern)),
        }
    }

    /// Registers a budget for every principal of `namespace:resource`: the
    /// pattern `"*"` (see [`Engine::set_budget_matching`]), which covers
    /// every principal — an `org` ledger of a hierarchy too.
    pub fn set_budget_per_principal(&self, namespace: &str, resource: &str, budget: Budget) {
        self.update_budgets(|b| b.insert_per_principal(namespace, resource, Caps::one(budget)));
    }

    /// Registers several budgets for every principal of `namespace:resource`.
    pub fn set_budgets_per_principal(
        &self,
        namespace: &str,
        resource: &str,
        budgets: impl IntoIterator<Item = Budget>,
    ) {
        if let Some(caps) = Caps::new(budgets) {
            self.update_budgets(|b| b.insert_per_principal(namespace, resource, caps));
        }
    }

    /// The budget that applies to `ledger`: its own, else the most specific
    /// matching principal pattern's, else the default policy's.
    pub fn budget_for(&self, ledger: &Ledger) -> Option<Budget> {
        self.caps_for(ledger).map(|caps| caps.budget(0))
    }

    /// Every budget that applies to `ledger` (see [`Engine::set_budgets`]).
    #[inline]
    pub fn caps_for(&self, ledger: &Ledger) -> Option<Caps> {
        let registered = self.inner.budgets.lookup(ledger);
        registered.or_else(|| match self.inner.default_policy {
            DefaultPolicy::Deny => None,
            DefaultPolicy::Budget(b) => Some(Caps::one(b)),
        })
    }

    fn update_budgets(&self, f: impl FnOnce(&mut Budgets)) {
        self.inner.budgets.update(f);
    }

    /// Writes whose outcome was unknown — commits not confirmed, failed
    /// releases, cancelled reservations, fail-open spend — still being
    /// retried in the background.
    pub fn pending_settles(&self) -> usize {
        self.inner.settler.pending()
    }

    /// Waits until no write is being retried in the background, at most
    /// `limit`; says whether that happened. Call it before a process exits
    /// (a graceful shutdown), so spend whose recording was still being
    /// retried is not left to the reservation TTL or lost.
    ///
    /// ```
    /// let engine = budgetgate::Engine::in_memory();
    /// assert!(engine.wait_settled(std::time::Duration::from_secs(1)));
    /// ```
    pub fn wait_settled(&self, limit: Duration) -> bool {
        let deadline = std::time::Instant::now() + limit.min(Duration::from_secs(3600));
        loop {
            if self.pending_settles() == 0 {
                return true;
            }
            if std::time::Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// How many listener calls panicked (each was caught).
    pub fn listener_panics(&self) -> u64 {
        self.inner.listener_panics.load(Ordering::Relaxed)
    }

    // ----- fixed cost -------------------------------------------------------

    /// Fixed cost under the ledger's registered budget: check `cost` and, if it
    /// fits, record it — in one atomic step.
    pub fn check(&self, ledger: &Ledger, cost: Decimal) -> Decision {
        self.check_with(ledger, None, cost)
    }

    /// [`Engine::check`] with an explicit budget (`None`: the registered one).
    pub fn check_with(&self, ledger: &Ledger, budget: Option<&Budget>, cost: Decimal) -> Decision {
        match self.prepare(ledger, budget, cost, false) {
            Ok(p) => {
                let result = self.inner.store.charge(&Self::request(ledger, &p));
                self.conclude(ledger, p, result)
            }
            Err(blocked) => blocked.into_decision(),
        }
    }

    /// Async [`Engine::check`].
    pub async fn check_async(&self, ledger: &Ledger, cost: Decimal) -> Decision {
        self.check_with_async(ledger, None, cost).await
    }

    /// Async [`Engine::check_with`].
    pub async fn check_with_async(
        &self,
        ledger: &Ledger,
        budget: Option<&Budget>,
        cost: Decimal,
    ) -> Decision {
        match self.prepare(ledger, budget, cost, false) {
            Ok(p) => {
                let result = self
                    .inner
                    .store
                    .charge_async(Self::request(ledger, &p))
                    .await;
                self.conclude(ledger, p, result)
            }
            Err(blocked) => blocked.into_decision(),
        }
    }

    // ----- bounded cost -----------------------------------------------------

    /// Bounded cost under the ledger's registered budget: reserve the worst
    /// case `estimate`. Commit the actual with [`Reservation::commit`];
    /// dropping the reservation releases it.
    pub fn reserve(
        &self,
        ledger: &Ledger,
        estimate: Decimal,
    ) -> Result<Reservation<'_>, BudgetExceeded> {
        self.reserve_with(ledger, None, estimate)
    }

    /// [`Engine::reserve`] with an explicit budget (`None`: the registered one).
    pub fn reserve_with(
        &self,
        ledger: &Ledger,
        budget: Option<&Budget>,
        estimate: Decimal,
    ) -> Result<Reservation<'_>, BudgetExceeded> {
        let p = self.prepare(ledger, budget, estimate, true)?;
        let result = self.inner.store.charge(&Self::request(ledger, &p));
        let backed = result.is_ok();
        if result.as_ref().is_err_and(StoreError::may_have_applied) {
            self.cancel_holds(std::slice::from_ref(ledger), std::slice::from_ref(&p));
        }
        let (nanos, id) = (p.nanos, p.hold_id());
        let decision = self.conclude(ledger, p, result);
        self.reservation(nanos, id, decision, backed)
            .map(Reservation::released_on_this_thread)
    }

    /// Async [`Engine::reserve`].
    pub async fn reserve_async(
        &self,
        ledger: &Ledger,
        estimate: Decimal,
    ) -> Result<Reservation<'_>, BudgetExceeded> {
        self.reserve_with_async(ledger, None, estimate).await
    }

    /// Async [`Engine::reserve_with`].
    pub async fn reserve_with_async(
        &self,
        ledger: &Ledger,
        budget: Option<&Budget>,
        estimate: Decimal,
    ) -> Result<Reservation<'_>, BudgetExceeded> {
        let p = self.prepare(ledger, budget, estimate, true)?;
        // If this future is dropped while the store works, the reservation may
        // still be made; it then expires after the TTL. The id is chosen here,
        // before sending, so stores can make the request idempotent.
        // If this future is dropped while the store works, the hold may
        // still be made: the guard cancels it by id in the background.
        let guard = CancelOnDrop::new(self, std::slice::from_ref(ledger), std::slice::from_ref(&p));
        let result = self
            .inner
            .store
            .charge_async(Self::request(ledger, &p))
            .await;
        guard.disarm();
        let backed = result.is_ok();
        if result.as_ref().is_err_and(StoreError::may_have_applied) {
            self.cancel_holds(std::slice::from_ref(ledger), std::slice::from_ref(&p));
        }
        let (nanos, id) = (p.nanos, p.hold_id());
        let decision = self.conclude(ledger, p, result);
        self.reservation(nanos, id, decision, backed)
    }

    /// Spend, reservations and remaining headroom of `ledger` under the budget
    /// that applies to it.
    pub fn status(&self, ledger: &Ledger) -> Result<LedgerStatus, StatusError> {
        let caps = self
            .caps_for(ledger)
            .ok_or_else(|| StatusError::NoBudget(ledger.clone()))?;
        let usage = self.inner.store.status(ledger, caps.limits())?;
        Ok(Self::ledger_status(ledger, &caps, &usage))
    }

    /// [`Engine::status`] under an explicit budget.
    pub fn status_with(
        &self,
        ledger: &Ledger,
        budget: &Budget,
    ) -> Result<LedgerStatus, StatusError> {
        let caps = Caps::one(*budget);
        let usage = self.inner.store.status(ledger, caps.limits())?;
        Ok(Self::ledger_status(ledger, &caps, &usage))
    }

    /// Async [`Engine::status`].
    pub async fn status_async(&self, ledger: &Ledger) -> Result<LedgerStatus, StatusError> {
        let caps = self
            .caps_for(ledger)
            .ok_or_else(|| StatusError::NoBudget(ledger.clone()))?;
        let usage = self.inner.store.status_async(ledger, caps.limits()).await?;
        Ok(Self::ledger_status(ledger, &caps, &usage))
    }

    fn ledger_status(
        ledger: &Ledger,
        caps: &Caps,
        usage: &[crate::store::WindowUsage],
    ) -> LedgerStatus {
        let caps: Vec<CapStatus> = caps
            .budgets()
            .iter()
            .enumerate()
            .map(|(i, budget)| {
                let (committed, reserved, at) = usage
                    .get(i)
                    .map_or((0, 0, 0), |u| (u.committed, u.reserved, u.at));
                CapStatus {
                    budget: *budget,
                    committed: from_nanos(committed),
                    reserved: from_nanos(reserved),
                    resets_at: budget.window().period_end(at).and_then(|end| {
                        std::time::UNIX_EPOCH
                            .checked_add(Duration::from_micros(u64::try_from(end).ok()?))
                    }),
                }
            })
            .collect();
        let tightest = (0..caps.len())
            .min_by_key(|&i| caps[i].remaining())
            .unwrap_or(0);
        LedgerStatus {
            ledger: ledger.clone(),
            caps,
            tightest,
        }
    }

    // ----- internals shared by sync and async paths ---------------------------

    fn request<'a>(ledger: &'a Ledger, p: &'a Prepared) -> ChargeRequest<'a> {
        ChargeRequest {
            ledger,
            limits: p.caps.limits(),
            amount: p.nanos,
            hold: p.hold,
        }
    }

    /// Resolves the budget and validates the amount; a refusal comes back as
    /// the (already reported) blocking decision, boxed in `BudgetExceeded`.
    #[inline]
    fn prepare(
        &self,
        ledger: &Ledger,
        budget: Option<&Budget>,
        amount: Decimal,
        reserve: bool,
    ) -> Result<Prepared, BudgetExceeded> {
        // Not normalized here (it costs a 96-bit division): decisions
        // normalize `requested` when it is read.
        let caps = match budget
            .map(|b| Caps::one(*b))
            .or_else(|| self.caps_for(ledger))
        {
            Some(caps) => caps,
            None => {
                return Err(BudgetExceeded::new(self.emit_decision(Decision {
                    status: Status::Block,
                    ledger: ledger.clone(),
                    caps: None,
                    cap: 0,
                    reason: Some(BlockReason::NoBudget),
                    spent_nanos: 0,
                    requested: amount,
                    detail: None,
                })))
            }
        };
        let nanos = match amount::to_nanos(amount) {
            Ok(n) => n,
            Err(error) => {
                return Err(BudgetExceeded::new(self.emit_decision(Decision {
                    status: Status::Block,
                    ledger: ledger.clone(),
                    caps: Some(caps),
                    cap: 0,
                    reason: Some(BlockReason::InvalidAmount),
                    spent_nanos: 0,
                    requested: amount,
                    detail: Some(error.to_string().into()),
                })))
            }
        };
        Ok(Prepared {
            caps,
            nanos,
            requested: amount,
            hold: reserve.then(|| Hold {
                id: ReservationId::new(),
                ttl: self.inner.reservation_ttl,
            }),
        })
    }

    /// Up to `limit` ledgers the store holds state for (bounded; `SCAN` on
    /// Redis), e.g. to show each one's [`Engine::status`].
    pub fn active_ledgers(&self, limit: usize) -> Result<Vec<Ledger>, StoreError> {
        self.inner.store.ledgers(limit)
    }

    // ----- kill switch -----------------------------------------------------------

    /// Pauses a ledger, a namespace or everything: covered calls are blocked
    /// with reason `Paused` (in every process sharing the store) until
    /// [`Engine::resume`]. Recorded spend is kept; running calls still commit.
    pub fn pause(&self, scope: &PauseScope) -> Result<(), StoreError> {
        tracing::warn!(%scope, "budget paused");
        self.inner.store.set_paused(scope, true)
    }

    /// Lifts a pause.
    pub fn resume(&self, scope: &PauseScope) -> Result<(), StoreError> {
        tracing::warn!(%scope, "budget resumed");
        self.inner.store.set_paused(scope, false)
    }

    /// Every paused scope.
    pub fn paused(&self) -> Result<Vec<PauseScope>, StoreError> {
        self.inner.store.paused()
    }

    // ----- rate limits ---------------------------------------------------------

    /// Checks a call against a rate policy and records it if admitted, in one
    /// atomic step (see [`crate::rate`]).
    pub fn rate_check(&self, gate: &Gate, policy: &Policy) -> RateDecision {
        match policy.validate() {
            Ok(()) => {
                let request = RateRequest {
                    gate,
                    policy,
                    call_id: ReservationId::new(),
                    record: true,
                };
                let result = self.inner.store.rate(&request);
                self.conclude_rate(gate, policy, result)
            }
            Err(e) => self.invalid_policy(gate, e),
        }
    }

    /// Whether a call on `gate` would be admitted now, without making one:
    /// nothing is recorded and no listener is told (a dashboard's or a
    /// scheduler's question). The answer can change before the next real
    /// [`Engine::rate_check`].
    ///
    /// ```
    /// use budgetgate::{Engine, Gate, Policy};
    /// use std::time::Duration;
    /// let engine = Engine::in_memory();
    /// let gate = Gate::new("tools", "search", "user:1");
    /// let policy = Policy::new().max_calls(1, Duration::from_secs(60));
    /// assert!(engine.rate_status(&gate, &policy).is_allowed());
    /// assert!(engine.rate_status(&gate, &policy).is_allowed()); // nothing consumed
    /// assert!(engine.rate_check(&gate, &policy).is_allowed());
    /// let peek = engine.rate_status(&gate, &policy);
    /// assert!(peek.is_blocked() && peek.retry_after().is_some());
    /// ```
    pub fn rate_status(&self, gate: &Gate, policy: &Policy) -> RateDecision {
        if let Err(e) = policy.validate() {
            return self.invalid_policy(gate, e);
        }
        let request = RateRequest {
            gate,
            policy,
            call_id: ReservationId::new(),
            record: false,
        };
        let result = self.inner.store.rate(&request);
        Self::rate_decision(gate, policy, result)
    }

    /// Async [`Engine::rate_check`].
    pub async fn rate_check_async(&self, gate: &Gate, policy: &Policy) -> RateDecision {
        match policy.validate() {
            Ok(()) => {
                let request = RateRequest {
                    gate,
                    policy,
                    call_id: ReservationId::new(),
                    record: true,
                };
                let result = self.inner.store.rate_async(request).await;
                self.conclude_rate(gate, policy, result)
            }
            Err(e) => self.invalid_policy(gate, e),
        }
    }

    fn invalid_policy(&self, gate: &Gate, error: crate::rate::PolicyError) -> RateDecision {
        self.emit_rate(RateDecision {
            status: Status::Block,
            gate: gate.clone(),
            reason: Some(RateReason::InvalidPolicy),
            calls_in_window: 0,
            since_last: None,
            retry_after: None,
            detail: Some(error.to_string()),
        })
    }

    fn conclude_rate(
        &self,
        gate: &Gate,
        policy: &Policy,
        result: Result<RateOutcome, StoreError>,
    ) -> RateDecision {
        self.emit_rate(Self::rate_decision(gate, policy, result))
    }

    /// The decision for a store's rate answer (no side effects).
    fn rate_decision(
        gate: &Gate,
        policy: &Policy,
        result: Result<RateOutcome, StoreError>,
    ) -> RateDecision {
        let us = |v: i64| Duration::from_micros(u64::try_from(v).unwrap_or(0));
        match result {
            Ok(o) => RateDecision {
                status: if o.admitted {
                    Status::Allow
                } else {
                    Status::Block
                },
                gate: gate.clone(),
                reason: o.reason,
                calls_in_window: o.calls_in_window,
                since_last: o.since_last_us.map(us),
                retry_after: o.retry_after_us.map(us),
                detail: None,
            },
            Err(error) => RateDecision {
                status: match policy.on_store_error() {
                    StoreErrorMode::FailClosed => Status::Block,
                    StoreErrorMode::FailOpen => Status::Allow,
                },
                gate: gate.clone(),
                reason: Some(RateReason::StoreError),
                calls_in_window: 0,
                since_last: None,
                retry_after: Some(crate::rate::STORE_RETRY_AFTER),
                detail: Some(error.to_string()),
            },
        }
    }

    fn emit_rate(&self, decision: RateDecision) -> RateDecision {
        match (decision.status, decision.reason) {
            (Status::Allow, None) => tracing::debug!(gate = %decision.gate, "rate allow"),
            (_, Some(RateReason::StoreError)) => tracing::error!(gate = %decision.gate,
                status = %decision.status, error = decision.detail().unwrap_or(""), "rate store error"),
            (_, reason) => tracing::info!(gate = %decision.gate,
                reason = reason.map_or("", |r| r.as_str()),
                retry_after_ms = decision.retry_after.map_or(0, |d| d.as_millis() as u64), "rate limited"),
        }
        self.emit(&Event::Rate(&decision));
        decision
    }

    /// A call whose amount could not be computed (e.g. no price for its
    /// model): blocked with reason `InvalidAmount`, the error as detail.
    pub fn refuse_amount(
        &self,
        ledger: &Ledger,
        budget: Option<&Budget>,
        detail: impl Into<String>,
    ) -> BudgetExceeded {
        let caps = budget
            .map(|b| Caps::one(*b))
            .or_else(|| self.caps_for(ledger));
        BudgetExceeded::new(self.emit_decision(Decision {
            status: Status::Block,
            ledger: ledger.clone(),
            caps,
            cap: 0,
            reason: Some(BlockReason::InvalidAmount),
            spent_nanos: 0,
            requested: Decimal::ZERO,
            detail: Some(detail.into().into()),
        }))
    }

    /// Turns the store's answer into a decision and reports it.
    #[inline]
    fn conclude(
        &self,
        ledger: &Ledger,
        p: Prepared,
        result: Result<ChargeOutcome, StoreError>,
    ) -> Decision {
        if let Ok(outcome) = &result {
            if outcome.warnings != 0 {
                self.soft_limits(ledger, &p, outcome);
            }
        }
        let failed = result.is_err();
        let fixed = (p.hold.is_none()).then(|| (p.caps.clone(), p.nanos));
        let decision = Self::decide(ledger, p, result);
        if let (true, true, Some((caps, nanos))) = (failed, decision.is_allowed(), fixed) {
            self.record_later(ledger, &caps, nanos);
        }
        self.report(&decision);
        decision
    }

    /// A fixed cost admitted fail-open while the store failed: the call
    /// runs and the money is spent, so it is recorded by id in the
    /// background when the store answers again (reported as
    /// [`Event::Committed`]), or reported as unrecorded spend if it never
    /// does.
    fn record_later(&self, ledger: &Ledger, caps: &Caps, nanos: Nanos) {
        tracing::warn!(%ledger, amount = %from_nanos(nanos),
            "admitted fail-open while the store failed; recording the cost when it answers again");
        self.settle_later(
            crate::settler::Job {
                kind: crate::settler::Kind::Commit,
                ledger: ledger.clone(),
                limits: caps.limits().to_vec(),
                id: ReservationId::new(),
                reserved: nanos,
                actual: Some(nanos),
                record_if_missing: true,
            },
            None,
        );
    }

    /// The decision for a store's answer (no side effects).
    #[inline]
    fn decide(ledger: &Ledger, p: Prepared, result: Result<ChargeOutcome, StoreError>) -> Decision {
        match result {
            Ok(outcome) if outcome.paused => Decision {
                status: Status::Block,
                ledger: ledger.clone(),
                caps: Some(p.caps),
                cap: 0,
                reason: Some(BlockReason::Paused),
                spent_nanos: 0,
                requested: p.requested,
                detail: Some("the ledger is paused (kill switch)".into()),
            },
            Ok(outcome) => {
                let spent = if outcome.admitted {
                    outcome.spent_before + p.nanos
                } else {
                    outcome.spent_before
                };
                Decision {
                    status: if outcome.admitted {
                        Status::Allow
                    } else {
                        Status::Block
                    },
                    ledger: ledger.clone(),
                    caps: Some(p.caps),
                    cap: outcome.limit_index.try_into().unwrap_or(0),
                    reason: (!outcome.admitted).then_some(BlockReason::BudgetExceeded),
                    spent_nanos: spent,
                    requested: p.requested,
                    detail: None,
                }
            }
            Err(error) => {
                let status = match p.caps.on_store_error() {
                    StoreErrorMode::FailClosed => Status::Block,
                    StoreErrorMode::FailOpen => Status::Allow,
                };
                // The store's figures are unknown: report nothing spent and
                // nothing remaining rather than invent numbers.
                Decision {
                    status,
                    ledger: ledger.clone(),
                    caps: Some(p.caps),
                    cap: 0,
                    reason: Some(BlockReason::StoreError),
                    spent_nanos: 0,
                    requested: p.requested,
                    detail: Some(error.to_string().into()),
                }
            }
        }
    }

    // ----- hierarchies ---------------------------------------------------------

    /// A fixed cost charged to several ledgers at once — a hierarchy such as
    /// user, project and global — all or nothing, each under its own
    /// registered budgets. The decision is the blocking ledger's, or (when
    /// allowed) the one with the least room left. A ledger listed more than
    /// once (a user who is also the team) is charged once.
    ///
    /// ```
    /// use budgetgate::{Budget, Engine, Ledger};
    /// use budgetgate::dec;
    ///
    /// let engine = Engine::in_memory();
    /// let user = Ledger::new("llm", "gpt-4o", "user:1");
    /// let project = Ledger::new("llm", "gpt-4o", "project:a");
    /// engine.set_budget(&user, Budget::lifetime(dec!(10))?);
    /// engine.set_budget(&project, Budget::lifetime(dec!(9))?);
    /// let both = [user.clone(), project.clone()];
    /// assert!(engine.check_all(&both, dec!(8)).is_allowed());
    /// let blocked = engine.check_all(&both, dec!(1.5));
    /// assert_eq!(blocked.ledger(), &project); // the user has room; 8 + 1.5 > 9
    /// assert_eq!(engine.status(&user)?.committed(), dec!(8)); // nothing recorded for the user
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn check_all(&self, ledgers: &[Ledger], cost: Decimal) -> Decision {
        let ledgers = &*distinct(ledgers);
        match self.prepare_all(ledgers, cost, false) {
            Ok(preps) => {
                let result = self
                    .inner
                    .store
                    .charge_many(&Self::requests(ledgers, &preps));
                self.conclude_all(ledgers, &preps, result).0
            }
            Err(blocked) => blocked.into_decision(),
        }
    }

    /// A reservation on several ledgers at once, all or nothing; commit and
    /// release settle every one.
    pub fn reserve_all(
        &self,
        ledgers: &[Ledger],
        estimate: Decimal,
    ) -> Result<Reservation<'_>, BudgetExceeded> {
        let ledgers = &*distinct(ledgers);
        let preps = self.prepare_all(ledgers, estimate, true)?;
        let result = self
            .inner
            .store
            .charge_many(&Self::requests(ledgers, &preps));
        let backed = result.is_ok();
        if result.as_ref().is_err_and(StoreError::may_have_applied) {
            self.cancel_holds(ledgers, &preps);
        }
        let (decision, primary) = self.conclude_all(ledgers, &preps, result);
        self.reservation_all(ledgers, preps, primary, decision, backed)
            .map(Reservation::released_on_this_thread)
    }

    /// Async [`Engine::check_all`].
    pub async fn check_all_async(&self, ledgers: &[Ledger], cost: Decimal) -> Decision {
        let ledgers = &*distinct(ledgers);
        match self.prepare_all(ledgers, cost, false) {
            Ok(preps) => {
                let result = self.charge_many_async(ledgers, &preps).await;
                self.conclude_all(ledgers, &preps, result).0
            }
            Err(blocked) => blocked.into_decision(),
        }
    }

    /// Async [`Engine::reserve_all`].
    pub async fn reserve_all_async(
        &self,
        ledgers: &[Ledger],
        estimate: Decimal,
    ) -> Result<Reservation<'_>, BudgetExceeded> {
        let ledgers = &*distinct(ledgers);
        let preps = self.prepare_all(ledgers, estimate, true)?;
        let guard = CancelOnDrop::new(self, ledgers, &preps);
        let result = self.charge_many_async(ledgers, &preps).await;
        guard.disarm();
        let backed = result.is_ok();
        if result.as_ref().is_err_and(StoreError::may_have_applied) {
            self.cancel_holds(ledgers, &preps);
        }
        let (decision, primary) = self.conclude_all(ledgers, &preps, result);
        self.reservation_all(ledgers, preps, primary, decision, backed)
    }

    async fn charge_many_async(
        &self,
        ledgers: &[Ledger],
        preps: &[Prepared],
    ) -> Result<ManyOutcome, StoreError> {
        self.inner
            .store
            .charge_many_async(Self::requests(ledgers, preps))
            .await
    }

    fn requests<'a>(ledgers: &'a [Ledger], preps: &'a [Prepared]) -> Vec<ChargeRequest<'a>> {
        ledgers
            .iter()
            .zip(preps)
            .map(|(ledger, p)| Self::request(ledger, p))
            .collect()
    }

    fn prepare_all(
        &self,
        ledgers: &[Ledger],
        amount: Decimal,
        reserve: bool,
    ) -> Result<Vec<Prepared>, BudgetExceeded> {
        if ledgers.is_empty() {
            return Err(self.refuse_amount(
                &Ledger::new("", "", ""),
                None,
                "a hierarchy needs at least one ledger",
            ));
        }
        ledgers
            .iter()
            .map(|ledger| self.prepare(ledger, None, amount, reserve))
            .collect()
    }

    /// The decision of a hierarchy and the index of the ledger it is about.
    fn conclude_all(
        &self,
        ledgers: &[Ledger],
        preps: &[Prepared],
        result: Result<ManyOutcome, StoreError>,
    ) -> (Decision, usize) {
        match result {
            Ok(ManyOutcome::Refused { index, outcome }) => {
                let index = index.min(ledgers.len() - 1);
                (
                    self.conclude(&ledgers[index], preps[index].clone(), Ok(outcome)),
                    index,
                )
            }
            Ok(ManyOutcome::Admitted(outcomes)) => {
                for (i, outcome) in outcomes.iter().enumerate().take(ledgers.len()) {
                    if outcome.warnings != 0 {
                        self.soft_limits(&ledgers[i], &preps[i], outcome);
                    }
                }
                let decisions: Vec<Decision> = outcomes
                    .into_iter()
                    .zip(ledgers.iter().zip(preps))
                    .map(|(o, (l, p))| Self::decide(l, p.clone(), Ok(o)))
                    .collect();
                let tightest = (0..decisions.len())
                    .min_by_key(|&i| decisions[i].remaining_nanos())
                    .unwrap_or(0);
                let decision = decisions.into_iter().nth(tightest);
                match decision {
                    Some(d) => (self.emit_decision(d), tightest),
                    None => (
                        self.conclude(
                            &ledgers[0],
                            preps[0].clone(),
                            Err(StoreError::Backend(
                                "the store answered a hierarchy with no outcomes".into(),
                            )),
                        ),
                        0,
                    ),
                }
            }
            Err(error) => {
                // Fail closed if any ledger's budgets do.
                let index = preps
                    .iter()
                    .position(|p| p.caps.on_store_error() == StoreErrorMode::FailClosed)
                    .unwrap_or(0);
                let decision = Self::decide(&ledgers[index], preps[index].clone(), Err(error));
                if decision.is_allowed() {
                    for (ledger, p) in ledgers.iter().zip(preps) {
                        if p.hold.is_none() {
                            self.record_later(ledger, &p.caps, p.nanos);
                        }
                    }
                }
                self.report(&decision);
                (decision, index)
            }
        }
    }

    fn reservation_all(
        &self,
        ledgers: &[Ledger],
        preps: Vec<Prepared>,
        primary: usize,
        decision: Decision,
        backed: bool,
    ) -> Result<Reservation<'_>, BudgetExceeded> {
        if decision.is_blocked() {
            return Err(BudgetExceeded::new(decision));
        }
        let mut others = Vec::with_capacity(preps.len().saturating_sub(1));
        let mut main = None;
        for (i, p) in preps.into_iter().enumerate() {
            if i == primary {
                main = Some(p);
            } else {
                others.push(crate::reservation::Part {
                    ledger: ledgers[i].clone(),
                    id: p.hold.map(|h| h.id).unwrap_or_default(),
                    caps: p.caps,
                });
            }
        }
        let main = main.ok_or_else(|| {
            self.refuse_amount(&ledgers[0], None, "internal error: no primary ledger")
        })?;
        Ok(
            Reservation::new(self, main.nanos, main.hold_id(), decision, backed)
                .with_others(others),
        )
    }

    /// Reports the soft-limit thresholds this charge crossed.
    fn soft_limits(&self, ledger: &Ledger, p: &Prepared, outcome: &ChargeOutcome) {
        for (i, budget) in p.caps.budgets().iter().enumerate() {
            for (slot, nanos) in budget.limit_ref().warn_thresholds() {
                let Some(bit) = crate::store::warning_bit(i, slot) else {
                    continue;
                };
                if outcome.warnings & bit == 0 {
                    continue;
                }
                let threshold = from_nanos(nanos);
                // The store reports spend for the binding cap only; for the
                // others the threshold is a true lower bound.
                let spent = if i == outcome.limit_index {
                    from_nanos(outcome.spent_before + p.nanos)
                } else {
                    threshold
                };
                tracing::warn!(%ledger, max_spend = %budget.max_spend(), window = %budget.window(),
                    %threshold, spent_in_window = %spent, "budget soft limit crossed");
                self.emit(&Event::SoftLimit {
                    ledger,
                    budget,
                    spent_in_window: spent,
                    threshold,
                });
            }
        }
    }

    #[inline]
    fn reservation(
        &self,
        nanos: Nanos,
        id: ReservationId,
        decision: Decision,
        backed: bool,
    ) -> Result<Reservation<'_>, BudgetExceeded> {
        if decision.is_blocked() {
            return Err(BudgetExceeded::new(decision));
        }
        Ok(Reservation::new(self, nanos, id, decision, backed))
    }

    fn emit_decision(&self, decision: Decision) -> Decision {
        self.report(&decision);
        decision
    }

    /// Logs a decision and delivers it to the listeners. By reference: a
    /// decision is large, and moving it in and out costs more than deciding.
    fn report(&self, decision: &Decision) {
        match (decision.status, decision.reason) {
            (Status::Allow, None) => tracing::debug!(
                ledger = %decision.ledger, requested = %decision.requested(),
                spent_in_window = %decision.spent_in_window(), "budget allow"),
            (_, Some(BlockReason::StoreError)) => tracing::error!(
                ledger = %decision.ledger, status = %decision.status,
                error = decision.detail().unwrap_or(""), "budget store error"),
            (_, reason) => tracing::info!(
                ledger = %decision.ledger, reason = reason.map_or("", |r| r.as_str()),
                requested = %decision.requested(), spent_in_window = %decision.spent_in_window(),
                "budget block"),
        }
        self.emit(&Event::Decision(decision));
    }

    /// Delivers an event to every listener, catching and counting panics.
    pub(crate) fn emit(&self, event: &Event<'_>) {
        emit_to(&self.inner.listeners, &self.inner.listener_panics, event);
    }

    pub(crate) fn commit_deadline(&self) -> Duration {
        self.inner.commit_deadline
    }

    /// Reservations whose outcome is unknown (the store failed, or the
    /// caller stopped waiting): cancelled by id in the background, so a hold
    /// that was made — or a request that arrives later — does not keep its
    /// money for the whole TTL.
    fn cancel_holds(&self, ledgers: &[Ledger], preps: &[Prepared]) {
        for (ledger, p) in ledgers.iter().zip(preps) {
            if let Some(hold) = p.hold {
                self.settle_later(
                    crate::settler::Job {
                        kind: crate::settler::Kind::Cancel,
                        ledger: ledger.clone(),
                        limits: p.caps.limits().to_vec(),
                        id: hold.id,
                        reserved: p.nanos,
                        actual: None,
                        record_if_missing: false,
                    },
                    None,
                );
            }
        }
    }

    /// Hands a write whose outcome is unknown to the settler; with
    /// `wait_until`, the waiter learns its first outcome by then.
    pub(crate) fn settle_later(
        &self,
        job: crate::settler::Job,
        wait_until: Option<std::time::Instant>,
    ) -> crate::settler::Waiter {
        let reporter: std::sync::Weak<dyn crate::settler::Reporter> =
            Arc::downgrade(&self.inner) as _;
        self.inner.settler.submit(job, wait_until, &reporter)
    }
}
