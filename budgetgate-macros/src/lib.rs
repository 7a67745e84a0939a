//! Attributes for [`budgetgate`](https://docs.rs/budgetgate): `#[guard]`,
//! `#[guard_bounded]` and `#[guard_result]`. Depend on `budgetgate`, which
//! re-exports them and documents them with examples.
//!
//! Pipeline: `args` (parse the attribute) → `validate` (check it against the
//! function, each error at its span) → `expand` (emit calls into
//! `budgetgate::__private`). On an error the original item is emitted beside
//! the error, so the user sees one error rather than a cascade.

mod args;
mod expand;
mod literal;
mod validate;

use proc_macro::TokenStream;
use proc_macro2::TokenStream as TokenStream2;
use syn::spanned::Spanned;
use syn::{Expr, Stmt};

use expand::{Body, Func};
use validate::Kind;

/// Fixed cost, hard mode: the cost is checked and recorded before the body
/// runs; a blocked call returns `Err(BudgetExceeded.into())` and the body
/// does not run.
///
/// The function must return a `Result<T, E>` (an alias such as
/// `io::Result<T>` or `type ToolResult<T> = Result<T, ToolError>` is fine)
/// with `E: From<budgetgate::BudgetExceeded>`; for other return types use
/// `#[guard_result]`.
///
/// # Keys
///
/// - `ledger = (namespace, resource, principal)` — each part a string
///   (`&str`, `String`, `Cow<str>`, …) or an integer, evaluated before the
///   body with the arguments and `self` in scope; or `ledger = EXPR`, any
///   expression of type `Ledger` / `&Ledger` (`ledger = user_ledger(id)`).
/// - `ledgers = [(..), (..), ..]` — a hierarchy, charged all or nothing (each
///   ledger's budget registered on the engine); items may be tuples or
///   `Ledger` expressions; or `ledgers = EXPR`, any
///   `IntoIterator<Item = Ledger>` (`ledgers = org_chain(id)`, a `Vec`, an
///   array), each distinct ledger charged once.
/// - `cost = "0.01"` — required: a literal (string or integer, ≤ 9 decimal
///   places, checked at compile time) or an expression of type `Decimal` or
///   `Result<Decimal, E>` (an `Err` blocks the call, reason `InvalidAmount`).
/// - `max_spend = "10.00"` — a call-site budget (a literal, checked at compile
///   time); it wins over a budget registered on the engine. Not with `ledgers`.
/// - `window = "1h"` — with `max_spend`: `"30s"`, `"15m"`, `"1h"`, `"7d"`,
///   `"daily"`, `"monthly"` or `"unbounded"` (the default).
/// - `engine = EXPR` — an `Engine`, `&Engine` or `Arc<Engine>`; default
///   `budgetgate::global()`.
/// - `crate = PATH` — where `budgetgate` is, for a renamed dependency.
///
/// # Example
///
/// ```ignore
/// use budgetgate::{guard, BudgetExceeded};
///
/// #[derive(Debug)]
/// enum ToolError { Budget(BudgetExceeded) }
/// impl From<BudgetExceeded> for ToolError {
///     fn from(e: BudgetExceeded) -> Self { ToolError::Budget(e) }
/// }
///
/// #[guard(ledger = ("search", "web", user), cost = "0.01", max_spend = "1.00", window = "1h")]
/// fn web_search(user: u64, query: &str) -> Result<String, ToolError> {
///     Ok(format!("results for {query}"))
/// }
/// ```
#[proc_macro_attribute]
pub fn guard(args: TokenStream, item: TokenStream) -> TokenStream {
    entry(Kind::Guard, args, item)
}

/// Bounded cost, hard mode: `estimate` is reserved before the body runs;
/// afterwards `actual` computes the true cost from the `Ok` value and it is
/// committed. A blocked call returns `Err(BudgetExceeded.into())` and the body
/// does not run.
///
/// The function must return a `Result<T, E>` (aliases are fine) with
/// `E: From<budgetgate::BudgetExceeded>`; for other return types use
/// `#[guard_result]`. If the body returns `Err`, panics or its future is
/// dropped, the reservation is released (unless `on_error` says otherwise).
/// If `actual` returns an `Err` or panics, the estimate is committed (the
/// call ran) and the panic is resumed.
///
/// # Keys
///
/// - `ledger = (namespace, resource, principal)` — each part a string
///   (`&str`, `String`, `Cow<str>`, …) or an integer, evaluated before the
///   body with the arguments and `self` in scope; or `ledger = EXPR`, any
///   expression of type `Ledger` / `&Ledger` (`ledger = user_ledger(id)`).
/// - `ledgers = [(..), (..), ..]` — a hierarchy, charged all or nothing (each
///   ledger's budget registered on the engine); items may be tuples or
///   `Ledger` expressions; or `ledgers = EXPR`, any
///   `IntoIterator<Item = Ledger>` (`ledgers = org_chain(id)`, a `Vec`, an
///   array), each distinct ledger charged once.
/// - `estimate = "0.50"` — required: the worst case, a literal or a
///   `Decimal` / `Result<Decimal, E>` expression.
/// - `actual = |value: &T| …` — required: a closure over the `Ok` value
///   returning a `Decimal` or `Result<Decimal, E>`.
/// - `on_error = release | estimate | |e: &E| …` — what an `Err` costs:
///   nothing (the default), the estimate, or what the closure returns.
/// - `max_spend = "10.00"` — a call-site budget (a literal, checked at compile
///   time); it wins over a budget registered on the engine. Not with `ledgers`.
/// - `window = "1h"` — with `max_spend`: `"30s"`, `"15m"`, `"1h"`, `"7d"`,
///   `"daily"`, `"monthly"` or `"unbounded"` (the default).
/// - `cache = EXPR, cache_key = EXPR` — answer from a response cache
///   (feature `cache`; `async fn` only, not with `stream`): `cache` is a
///   `ResponseCache<K, T>` (`K: Hash + Eq + Clone`, `T: Clone`) or a
///   `SharedCache<K, T>` (`K: Serialize`, `T: Serialize + DeserializeOwned`),
///   or a reference, `Arc` or `LazyLock` of one, `T` being the `Ok` type;
///   `cache_key` is the request, a `K` evaluated before the body
///   (`(model.to_string(), prompt.to_string())`; clone what the body still
///   uses). See below.
/// - `engine = EXPR` — an `Engine`, `&Engine` or `Arc<Engine>`; default
///   `budgetgate::global()`.
/// - `crate = PATH` — where `budgetgate` is, for a renamed dependency.
///
/// # A response cache
///
/// With `cache` and `cache_key`, a call whose key is in the cache returns
/// `Ok(cached value)`: the body does not run and nothing is charged (not
/// even reserved, so a hit succeeds when the budget is exhausted), and the
/// cache counts the saving in `stats()`. A miss is the guarded call above —
/// the estimate reserved under every budget that applies (`max_spend`, the
/// engine's, a hierarchy's, the run budgets in scope), the body run, the
/// actual committed — and its `Ok` value is cached with the cost committed
/// for it. A blocked call, an `Err` (settled per `on_error`) or a panic
/// caches nothing. Identical calls that miss at the same time run the body
/// once (single-flight): the others wait, reserving nothing, and are hits.
///
/// ```ignore
/// use budgetgate::cache::ResponseCache;
/// use std::sync::LazyLock;
/// use std::time::Duration;
///
/// static CACHE: LazyLock<ResponseCache<(String, String), Completion>> =
///     LazyLock::new(|| ResponseCache::new(Duration::from_secs(3600)));
///
/// #[guard_bounded(ledger = ("llm", "chat", user), estimate = "0.05", actual = |c| c.cost(),
///                 cache = &*CACHE, cache_key = (model.to_string(), prompt.to_string()))]
/// async fn chat(user: &str, model: &str, prompt: &str) -> Result<Completion, ChatError> {
///     client.complete(model, prompt).await
/// }
/// ```
///
/// On a `&mut self` method, give an owned handle (`engine =
/// self.engine.clone()`), not `&self.engine`: the reservation holds the
/// engine for the whole call. The same for a cache: keep it in an `Arc`
/// and give `cache = self.cache.clone()`.
///
/// # Example
///
/// ```ignore
/// use budgetgate::{guard_bounded, dec, BudgetExceeded, Decimal};
///
/// struct Completion { tokens: u64 }
/// #[derive(Debug)]
/// struct Blocked(BudgetExceeded);
/// impl From<BudgetExceeded> for Blocked {
///     fn from(e: BudgetExceeded) -> Self { Blocked(e) }
/// }
///
/// #[guard_bounded(
///     ledger = ("openai", "gpt-4o", user),
///     estimate = "0.50",
///     actual = |c| Decimal::from(c.tokens) * dec!(0.00001),
///     on_error = estimate,
///     max_spend = "10.00", window = "daily",
/// )]
/// async fn ask(user: u64, prompt: &str) -> Result<Completion, Blocked> {
///     Ok(Completion { tokens: 2_000 })
/// }
/// ```
#[proc_macro_attribute]
pub fn guard_bounded(args: TokenStream, item: TokenStream) -> TokenStream {
    entry(Kind::GuardBounded, args, item)
}

/// Soft mode, fixed (`cost`) or bounded (`estimate` + `actual`): the return
/// type `R` becomes `budgetgate::Guarded<R>`, which carries the decision and,
/// unless the call was blocked, the value. Any return type works.
///
/// # Keys
///
/// - `ledger = (namespace, resource, principal)` — each part a string
///   (`&str`, `String`, `Cow<str>`, …) or an integer, evaluated before the
///   body with the arguments and `self` in scope; or `ledger = EXPR`, any
///   expression of type `Ledger` / `&Ledger` (`ledger = user_ledger(id)`).
/// - `ledgers = [(..), (..), ..]` — a hierarchy, charged all or nothing (each
///   ledger's budget registered on the engine); items may be tuples or
///   `Ledger` expressions; or `ledgers = EXPR`, any
///   `IntoIterator<Item = Ledger>` (`ledgers = org_chain(id)`, a `Vec`, an
///   array), each distinct ledger charged once.
/// - `cost = …` — a fixed cost (as in `#[guard]`); or
/// - `estimate = …` and `actual = |value: &R| …` — a bounded cost (as in
///   `#[guard_bounded]`; `actual` receives the whole return value, or the
///   `Ok` value when the return type is spelled `Result<..>`).
/// - `on_error = release | estimate | |e: &E| …` — bounded, with a return type
///   spelled `Result<T, E>` only.
/// - `max_spend = "10.00"` — a call-site budget (a literal, checked at compile
///   time); it wins over a budget registered on the engine. Not with `ledgers`.
/// - `window = "1h"` — with `max_spend`: `"30s"`, `"15m"`, `"1h"`, `"7d"`,
///   `"daily"`, `"monthly"` or `"unbounded"` (the default).
/// - `engine = EXPR` — an `Engine`, `&Engine` or `Arc<Engine>`; default
///   `budgetgate::global()`.
/// - `crate = PATH` — where `budgetgate` is, for a renamed dependency.
///
/// # Example
///
/// ```ignore
/// use budgetgate::guard_result;
///
/// #[guard_result(ledger = ("embed", "small", "team:a"), cost = "0.5", max_spend = "1")]
/// fn embed(text: &str) -> Vec<f32> {
///     vec![text.len() as f32]
/// }
///
/// let guarded = embed("ab");
/// if guarded.is_allowed() { /* … */ }
/// println!("{}", guarded.decision().message());
/// ```
#[proc_macro_attribute]
pub fn guard_result(args: TokenStream, item: TokenStream) -> TokenStream {
    entry(Kind::GuardResult, args, item)
}

/// Call-rate limit, hard mode: the call is checked and recorded before the
/// body runs; a limited call returns `Err(RateLimited.into())`.
///
/// The function must return a `Result<T, E>` (aliases are fine) with
/// `E: From<budgetgate::RateLimited>`; for other return types use
/// `#[rate_limit_result]`.
///
/// # Keys
///
/// - `gate = (namespace, action, principal)` — required; parts as for a
///   ledger (strings or integers), or `gate = EXPR` of type `Gate` / `&Gate`.
/// - `max_calls = 100, window = "1m"` — at most that many calls per rolling
///   window;
/// - `cooldown = "2s"` — a minimum gap between calls;
/// - `capacity = 10, refill = "5/s"` — a token bucket (`"10/1m"`, `"1/500ms"`).
///
///   At least one limit is required; several combine (all must allow).
/// - `engine = EXPR` — an `Engine`, `&Engine` or `Arc<Engine>`; default
///   `budgetgate::global()`.
/// - `crate = PATH` — where `budgetgate` is, for a renamed dependency.
///
/// # Example
///
/// ```ignore
/// use budgetgate::{rate_limit, RateLimited};
///
/// #[derive(Debug)]
/// struct Limited(RateLimited);
/// impl From<RateLimited> for Limited {
///     fn from(e: RateLimited) -> Self { Limited(e) }
/// }
///
/// #[rate_limit(gate = ("tools", "fetch", agent), capacity = 2, refill = "1/s")]
/// fn fetch(agent: u64, url: &str) -> Result<usize, Limited> {
///     Ok(url.len())
/// }
/// ```
#[proc_macro_attribute]
pub fn rate_limit(args: TokenStream, item: TokenStream) -> TokenStream {
    entry(Kind::RateLimit, args, item)
}

/// Call-rate limit, soft mode: the return type `R` becomes
/// `budgetgate::Guarded<R, budgetgate::RateDecision>`. Takes the keys of
/// `#[rate_limit]`: `gate`, `max_calls` + `window`, `cooldown`, `capacity` +
/// `refill`, `engine`, `crate`.
///
/// # Example
///
/// ```ignore
/// use budgetgate::rate_limit_result;
///
/// #[rate_limit_result(gate = ("tools", "ping", "agent:1"), max_calls = 10, window = "1m")]
/// fn ping() -> u32 { 1 }
///
/// assert!(ping().is_allowed());
/// ```
#[proc_macro_attribute]
pub fn rate_limit_result(args: TokenStream, item: TokenStream) -> TokenStream {
    entry(Kind::RateLimitResult, args, item)
}

fn entry(kind: Kind, args: TokenStream, item: TokenStream) -> TokenStream {
    let item = TokenStream2::from(item);
    match try_expand(kind, args.into(), item.clone()) {
        Ok(tokens) => tokens.into(),
        Err(error) => {
            let mut out = error.to_compile_error();
            out.extend(item);
            out.into()
        }
    }
}

fn try_expand(kind: Kind, args: TokenStream2, item: TokenStream2) -> syn::Result<TokenStream2> {
    let func = parse_fn(kind, item)?;
    let args = args::parse_args(args, kind.name(), kind.keys())?;
    let output = match &func.body {
        Body::AsyncTrait(_) => {
            if matches!(kind, Kind::GuardResult | Kind::RateLimitResult) {
                return Err(syn::Error::new(
                    func.sig.output.span(),
                    format!("#[{}] changes the return type, which an #[async_trait] method cannot; use the hard form", kind.name()),
                ));
            }
            match &func.sig.output {
                syn::ReturnType::Type(_, ty) => validate::future_output(ty),
                syn::ReturnType::Default => None,
            }
        }
        Body::Plain(_) => None,
    };
    let model = validate::validate(kind, args, &func.sig, output.as_ref())?;
    Ok(expand::expand(&model, func))
}

/// The function, as a free function or a method (same shape), recognising
/// the `Box::pin(async move { … })` body `#[async_trait]` leaves.
fn parse_fn(kind: Kind, item: TokenStream2) -> syn::Result<Func> {
    let name = kind.name();
    let parsed: syn::Result<syn::ItemFn> = syn::parse2(item.clone());
    let item_fn = match parsed {
        Ok(f) => f,
        Err(_) => {
            if let Ok(decl) = syn::parse2::<syn::TraitItemFn>(item.clone()) {
                return Err(syn::Error::new(
                    decl.sig.span(),
                    format!("#[{name}] needs a function body; put it on the implementation, not the trait declaration"),
                ));
            }
            let span = syn::parse2::<syn::Item>(item)
                .map(|i| i.span())
                .unwrap_or_else(|_| proc_macro2::Span::call_site());
            return Err(syn::Error::new(
                span,
                format!("#[{name}] can only be applied to functions and methods"),
            ));
        }
    };
    let body = match async_trait_block(&item_fn) {
        Some(inner) => Body::AsyncTrait(Box::new(inner)),
        None => Body::Plain(item_fn.block),
    };
    Ok(Func {
        attrs: item_fn.attrs,
        vis: item_fn.vis,
        sig: item_fn.sig,
        body,
    })
}

/// `fn f(..) -> Pin<Box<dyn Future<..>>> { Box::pin(async move { .. }) }`
fn async_trait_block(f: &syn::ItemFn) -> Option<syn::Block> {
    if f.sig.asyncness.is_some() || f.block.stmts.len() != 1 {
        return None;
    }
    let Stmt::Expr(Expr::Call(call), None) = &f.block.stmts[0] else {
        return None;
    };
    let Expr::Path(func) = &*call.func else {
        return None;
    };
    let segments: Vec<String> = func
        .path
        .segments
        .iter()
        .map(|s| s.ident.to_string())
        .collect();
    if !segments.ends_with(&["Box".to_owned(), "pin".to_owned()]) || call.args.len() != 1 {
        return None;
    }
    match call.args.first() {
        Some(Expr::Async(block)) if block.capture.is_some() => Some(block.block.clone()),
        _ => None,
    }
}

/// The parts of a decimal literal, for `budgetgate::dec!` (which builds the
/// `Decimal` from them). Not for direct use.
#[doc(hidden)]
#[proc_macro]
pub fn __dec_parts(input: TokenStream) -> TokenStream {
    literal::decimal_parts(input.into())
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}
