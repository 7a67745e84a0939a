//! [`EngineBuilder`]: an engine's store, budgets, policies, listeners and
//! timings; what it is not told comes from the environment.

use super::*;

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
    shared_budgets: Option<Duration>,
    /// Whether `shared_budgets` was chosen (else the environment decides).
    shared_set: bool,
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

    /// Whether the engine applies operator-stored budgets ([`crate::shared`]),
    /// polling the store for changes every
    /// [`SHARED_BUDGETS_POLL`](crate::shared::SHARED_BUDGETS_POLL) from a
    /// background thread. Default: on when the store comes from
    /// `BUDGETGATE_REDIS_URL` or `BUDGETGATE_SHARED_BUDGETS=1` is set.
    pub fn shared_budgets(mut self, on: bool) -> Self {
        self.shared_budgets = on.then_some(crate::shared::SHARED_BUDGETS_POLL);
        self.shared_set = true;
        self
    }

    /// Applies operator-stored budgets, polling every `every` (at least 10 ms).
    pub fn shared_budgets_every(mut self, every: Duration) -> Self {
        self.shared_budgets = Some(every.max(Duration::from_millis(10)));
        self.shared_set = true;
        self
    }

    /// Fills what was not set from the environment (see [`crate::global`](mod@crate::global)).
    pub(crate) fn with_env(mut self, strict: bool) -> Result<Self, crate::env::ConfigError> {
        let wanted = crate::env::Wanted {
            store: self.store.is_none(),
            default_policy: self.default_policy.is_none(),
            reservation_ttl: self.reservation_ttl.is_none(),
        };
        if !self.shared_set {
            let from_env = wanted.store && std::env::var_os("BUDGETGATE_REDIS_URL").is_some();
            let asked = std::env::var("BUDGETGATE_SHARED_BUDGETS")
                .is_ok_and(|v| matches!(v.trim(), "1" | "true" | "on" | "yes"));
            if from_env || asked {
                self.shared_budgets = Some(crate::shared::SHARED_BUDGETS_POLL);
            }
        }
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

    pub(super) fn finish(self) -> Engine {
        let store = self.store.unwrap_or_else(|| Arc::new(MemoryStore::new()));
        let horizon = self
            .settle_horizon
            .unwrap_or(crate::settler::SETTLE_HORIZON);
        let poll = self.shared_budgets;
        let engine = Engine {
            inner: Arc::new(Inner {
                settler: Settler::new(store.clone(), horizon),
                store,
                budgets: Registry::new(self.budgets),
                default_policy: self.default_policy.unwrap_or_default(),
                listeners: self.listeners,
                listener_panics: AtomicU64::new(0),
                reservation_ttl: self.reservation_ttl.unwrap_or(DEFAULT_RESERVATION_TTL),
                commit_deadline: self.commit_deadline.unwrap_or(DEFAULT_COMMIT_DEADLINE),
                shared: crate::shared::SharedState::new(),
            }),
        };
        if let Some(every) = poll {
            // The first load before the engine is used; a store that fails
            // now is retried by the poller.
            if let Err(error) = engine.refresh_shared_budgets() {
                tracing::warn!(%error, "could not read the shared budgets yet");
            }
            super::shared_budgets::spawn_poller(engine.downgrade(), every);
        }
        engine
    }
}
