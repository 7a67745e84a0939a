//! Which budgets apply to a ledger: registered per ledger, per principal
//! pattern (the most specific wins), or the default policy.

use super::*;

impl Engine {
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
        if let Some(caps) = self.inner.shared.lookup(ledger) {
            return Some(caps);
        }
        let registered = self.inner.budgets.lookup(ledger);
        registered.or_else(|| match self.inner.default_policy {
            DefaultPolicy::Deny => None,
            DefaultPolicy::Budget(b) => Some(Caps::one(b)),
        })
    }

    pub(super) fn update_budgets(&self, f: impl FnOnce(&mut Budgets)) {
        self.inner.budgets.update(f);
    }
}
