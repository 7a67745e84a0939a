//! What the attributes require of the functions they guard, as traits — so
//! that a misuse is reported in the attribute's own words. A hard-mode guard
//! (`#[guard]`, `#[guard_bounded]`, `#[rate_limit]`) needs a return type that
//! is a `Result` (checked by type: aliases such as `io::Result<T>` or
//! `type ToolResult<T> = Result<T, ToolError>` are `Result`s), whose error
//! can hold the blocking error ([`HoldsBlock`]). You never implement these:
//! they exist so the compiler can say what is missing. The others say
//! what the attributes' keys accept: an engine ([`AsEngine`]), ledger parts
//! ([`LedgerPart`]), ledgers ([`IntoLedger`], [`IntoLedgers`]), gates
//! ([`IntoGate`]) and amounts ([`IntoAmount`]).

use std::sync::Arc;

use rust_decimal::Decimal;

use crate::engine::Engine;
use crate::ledger::Ledger;
use crate::rate::Gate;

/// The return types of the hard-mode attributes, one trait per attribute so
/// that a wrong return type is explained in that attribute's words. They are
/// implemented for `Result<T, E>` only, and are checked by type, not by
/// spelling: an alias (`io::Result<T>`, `type ToolResult<T> = Result<T,
/// ToolError>`, an `anyhow`-style `Result<T>`) is a `Result`.
macro_rules! hard_return {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        pub trait $name {
            /// The success value (what `actual` receives, by reference).
            type Ok;
            /// The error.
            type Err;
            /// `Err(error)`.
            fn from_err(error: Self::Err) -> Self;
            /// `Ok(value)`.
            fn from_ok(value: Self::Ok) -> Self;
            /// The value, by reference.
            fn split(&self) -> Result<&Self::Ok, &Self::Err>;
            /// The value, owned.
            fn into_result(self) -> Result<Self::Ok, Self::Err>;
        }

        #[diagnostic::do_not_recommend]
        impl<T, E> $name for Result<T, E> {
            type Ok = T;
            type Err = E;
            #[inline]
            fn from_err(error: E) -> Self {
                Err(error)
            }
            #[inline]
            fn from_ok(value: T) -> Self {
                Ok(value)
            }
            #[inline]
            fn split(&self) -> Result<&T, &E> {
                self.as_ref()
            }
            #[inline]
            fn into_result(self) -> Result<T, E> {
                self
            }
        }
    };
}

hard_return!(
    /// `#[guard]`'s return type.
    #[diagnostic::on_unimplemented(
        message = "#[guard] needs a function returning `Result<T, E>`, but it returns `{Self}`",
        label = "a blocked call returns `Err(BudgetExceeded.into())`, so this must be a `Result`",
        note = "for other return types use #[guard_result], which returns `budgetgate::Guarded<{Self}>`"
    )]
    GuardReturn
);

hard_return!(
    /// `#[guard_bounded]`'s return type.
    #[diagnostic::on_unimplemented(
        message = "#[guard_bounded] needs a function returning `Result<T, E>`, but it returns `{Self}`",
        label = "a blocked call returns `Err(BudgetExceeded.into())`, so this must be a `Result`",
        note = "for other return types use #[guard_result], which returns `budgetgate::Guarded<{Self}>`"
    )]
    GuardBoundedReturn
);

hard_return!(
    /// `#[rate_limit]`'s return type.
    #[diagnostic::on_unimplemented(
        message = "#[rate_limit] needs a function returning `Result<T, E>`, but it returns `{Self}`",
        label = "a limited call returns `Err(RateLimited.into())`, so this must be a `Result`",
        note = "for other return types use #[rate_limit_result], which returns `budgetgate::Guarded<{Self}, RateDecision>`"
    )]
    RateLimitReturn
);

/// The error type of a hard-mode guarded function: it must hold the blocking
/// error `B` ([`BudgetExceeded`](crate::BudgetExceeded) or [`RateLimited`](crate::RateLimited)).
#[diagnostic::on_unimplemented(
    message = "the error type `{Self}` cannot hold a `{B}`",
    label = "a blocked call returns `Err({B}.into())`: `{Self}` needs `impl From<{B}>`",
    note = "add `impl From<{B}> for {Self}` (or use an error type that has one, e.g. `Box<dyn Error>`)"
)]
pub trait HoldsBlock<B> {
    /// The blocking error as `Self`.
    fn hold(blocked: B) -> Self;
}

#[diagnostic::do_not_recommend]
impl<E: From<B>, B> HoldsBlock<B> for E {
    #[inline]
    fn hold(blocked: B) -> Self {
        blocked.into()
    }
}

/// Anything an `engine = …` expression may name.
#[diagnostic::on_unimplemented(
    message = "`engine = …` needs a `budgetgate::Engine`, found `{Self}`",
    label = "expected an `Engine`, a `&Engine` or an `Arc<Engine>`"
)]
pub trait AsEngine {
    /// The engine.
    fn as_engine(&self) -> &Engine;
}

#[diagnostic::do_not_recommend]
impl AsEngine for Engine {
    fn as_engine(&self) -> &Engine {
        self
    }
}

#[diagnostic::do_not_recommend]
impl AsEngine for Arc<Engine> {
    fn as_engine(&self) -> &Engine {
        self
    }
}

#[diagnostic::do_not_recommend]
impl<T: AsEngine + ?Sized> AsEngine for &T {
    fn as_engine(&self) -> &Engine {
        (**self).as_engine()
    }
}

#[diagnostic::do_not_recommend]
impl<T: AsEngine> AsEngine for std::sync::LazyLock<T> {
    fn as_engine(&self) -> &Engine {
        (**self).as_engine()
    }
}

/// One part of a ledger or gate tuple: a string (moved, not copied, when it
/// is an owned `String`) or an integer. There is no blanket impl over
/// `Display` (it would overlap the string impls without specialization): for
/// other types write `format!(..)` or `.to_string()`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a part of a ledger",
    label = "expected a string or an integer",
    note = "ledger parts are strings (`&str`, `String`, `Cow<str>`, …) or integers; for another type write `format!(\"user:{{id}}\")` or `id.to_string()`"
)]
pub trait LedgerPart {
    /// The part as an owned string.
    fn into_part(self) -> String;
}

#[diagnostic::do_not_recommend]
impl LedgerPart for String {
    #[inline]
    fn into_part(self) -> String {
        self
    }
}

#[diagnostic::do_not_recommend]
impl LedgerPart for &str {
    #[inline]
    fn into_part(self) -> String {
        self.to_owned()
    }
}

#[diagnostic::do_not_recommend]
impl LedgerPart for &String {
    #[inline]
    fn into_part(self) -> String {
        self.clone()
    }
}

#[diagnostic::do_not_recommend]
impl LedgerPart for &&str {
    #[inline]
    fn into_part(self) -> String {
        (*self).to_owned()
    }
}

#[diagnostic::do_not_recommend]
impl LedgerPart for std::borrow::Cow<'_, str> {
    #[inline]
    fn into_part(self) -> String {
        self.into_owned()
    }
}

#[diagnostic::do_not_recommend]
impl LedgerPart for Box<str> {
    #[inline]
    fn into_part(self) -> String {
        self.into_string()
    }
}

#[diagnostic::do_not_recommend]
impl LedgerPart for Arc<str> {
    #[inline]
    fn into_part(self) -> String {
        (*self).to_owned()
    }
}

#[diagnostic::do_not_recommend]
impl LedgerPart for char {
    #[inline]
    fn into_part(self) -> String {
        self.to_string()
    }
}

macro_rules! integer_parts {
    ($($t:ty),*) => {$(
        #[diagnostic::do_not_recommend]
        impl LedgerPart for $t {
            #[inline]
            fn into_part(self) -> String {
                self.to_string()
            }
        }
        #[diagnostic::do_not_recommend]
        impl LedgerPart for &$t {
            #[inline]
            fn into_part(self) -> String {
                self.to_string()
            }
        }
    )*};
}

integer_parts!(u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize);

/// What `ledger = EXPR` may name: a [`Ledger`] or a `&Ledger`.
#[diagnostic::on_unimplemented(
    message = "`ledger = …` needs a `budgetgate::Ledger`, found `{Self}`",
    label = "expected a `Ledger`, a `&Ledger`, or a tuple `(namespace, resource, principal)`"
)]
pub trait IntoLedger {
    /// The ledger.
    fn into_ledger(self) -> Ledger;
}

#[diagnostic::do_not_recommend]
impl IntoLedger for Ledger {
    #[inline]
    fn into_ledger(self) -> Ledger {
        self
    }
}

#[diagnostic::do_not_recommend]
impl IntoLedger for &Ledger {
    #[inline]
    fn into_ledger(self) -> Ledger {
        self.clone()
    }
}

/// What `ledgers = EXPR` may name: anything iterable over ledgers
/// (`Vec<Ledger>`, `[Ledger; N]`, `&[Ledger]`, an iterator).
#[diagnostic::on_unimplemented(
    message = "`ledgers = …` needs ledgers to iterate over, found `{Self}`",
    label = "expected an `IntoIterator<Item = Ledger>` (a `Vec<Ledger>`, an array, …) or a list of tuples `[(ns, res, principal), ..]`"
)]
pub trait IntoLedgers {
    /// The ledgers, in order.
    fn into_ledgers(self) -> Vec<Ledger>;
}

#[diagnostic::do_not_recommend]
impl<I> IntoLedgers for I
where
    I: IntoIterator,
    I::Item: IntoLedger,
{
    /// In order. A ledger named twice is charged once: the engine keeps
    /// each distinct ledger of a hierarchy once.
    #[inline]
    fn into_ledgers(self) -> Vec<Ledger> {
        self.into_iter().map(IntoLedger::into_ledger).collect()
    }
}

/// What `gate = EXPR` may name: a [`Gate`] or a `&Gate`.
#[diagnostic::on_unimplemented(
    message = "`gate = …` needs a `budgetgate::Gate`, found `{Self}`",
    label = "expected a `Gate`, a `&Gate`, or a tuple `(namespace, action, principal)`"
)]
pub trait IntoGate {
    /// The gate.
    fn into_gate(self) -> Gate;
}

#[diagnostic::do_not_recommend]
impl IntoGate for Gate {
    #[inline]
    fn into_gate(self) -> Gate {
        self
    }
}

#[diagnostic::do_not_recommend]
impl IntoGate for &Gate {
    #[inline]
    fn into_gate(self) -> Gate {
        self.clone()
    }
}

/// What an amount expression may produce: a `Decimal`, or a `Result` whose
/// error explains why there is none (an unknown model's price). An error
/// blocks the call (reason `InvalidAmount`) — it is never read as zero.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an amount",
    label = "expected a `Decimal` or a `Result<Decimal, E>`",
    note = "write a literal amount as a string (\"0.05\"), or convert with `Decimal::from(..)` / `Decimal::new(..)`"
)]
pub trait IntoAmount {
    /// The amount, or why there is none.
    fn into_amount(self) -> Result<Decimal, String>;
}

#[diagnostic::do_not_recommend]
impl IntoAmount for Decimal {
    fn into_amount(self) -> Result<Decimal, String> {
        Ok(self)
    }
}

#[diagnostic::do_not_recommend]
impl<E: std::fmt::Display> IntoAmount for Result<Decimal, E> {
    fn into_amount(self) -> Result<Decimal, String> {
        self.map_err(|e| e.to_string())
    }
}
