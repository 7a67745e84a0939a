//! Attributes for `budgetgate`. Use them through `budgetgate`, which re-exports them.
