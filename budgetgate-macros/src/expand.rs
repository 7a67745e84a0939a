//! Codegen: a validated [`Model`] + the function → the guarded function.
//!
//! The generated body is a short sequence of calls into
//! `budgetgate::__private`; locals use `Span::mixed_site()` so they can never
//! collide with the user's names. The user's block runs unchanged: inline for
//! fixed costs, inside a closure (sync) or an `async` block (async) when its
//! value must be inspected afterwards, so `return` and `?` in it keep their
//! meaning.

use proc_macro2::{Ident, Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Attribute, Block, ReturnType, Signature, Visibility};

use crate::args::{AmountArg, LedgerArg, LedgersArg, OnError};
use crate::literal::WindowLit;
use crate::validate::{Cost, Kind, Ledgers, Model, RateLit};

/// The function being guarded.
pub struct Func {
    pub attrs: Vec<Attribute>,
    pub vis: Visibility,
    pub sig: Signature,
    pub body: Body,
}

/// Where the user's code is.
pub enum Body {
    /// A function's own block.
    Plain(Box<Block>),
    /// An `#[async_trait]` method: the block of its `Box::pin(async move { … })`.
    AsyncTrait(Box<Block>),
}

struct Names {
    engine_owner: Ident,
    engine: Ident,
    ledger: Ident,
    budget: Ident,
    amount: Ident,
    reservation: Ident,
    decision: Ident,
    output: Ident,
    value: Ident,
    error: Ident,
    blocked: Ident,
}

impl Names {
    fn new() -> Self {
        // Readable names (they can appear in compiler messages), kept apart
        // from the user's by `mixed_site` hygiene.
        let n = |s: &str| Ident::new(s, Span::mixed_site());
        Names {
            engine_owner: n("engine_owner"),
            engine: n("engine"),
            ledger: n("ledger"),
            budget: n("budget"),
            amount: n("amount"),
            reservation: n("reservation"),
            decision: n("decision"),
            output: n("output"),
            value: n("value"),
            error: n("error"),
            blocked: n("blocked"),
        }
    }
}

pub fn expand(model: &Model, func: Func) -> TokenStream {
    let Func {
        attrs,
        vis,
        mut sig,
        body,
    } = func;
    let krate = &model.krate;
    let (is_async, block) = match body {
        Body::Plain(block) => (sig.asyncness.is_some(), block),
        Body::AsyncTrait(block) => (true, block),
    };
    let async_trait = sig.asyncness.is_none() && is_async;
    let inner = guarded_body(model, is_async, &block);

    if model.soft && !async_trait {
        let output = &model.output;
        let guarded: syn::Type = match model.cost {
            Cost::Rate(_) => {
                syn::parse_quote_spanned!(output.span()=> #krate::Guarded<#output, #krate::RateDecision>)
            }
            _ => syn::parse_quote_spanned!(output.span()=> #krate::Guarded<#output>),
        };
        sig.output = ReturnType::Type(Default::default(), Box::new(guarded));
    }
    let body = if async_trait {
        quote!(::std::boxed::Box::pin(async move { #inner }))
    } else {
        inner
    };
    quote! {
        #(#attrs)*
        #vis #sig {
            #body
        }
    }
}

/// `let __bg_engine: &Engine = …;` — the `engine = …` expression or `global()`.
fn engine_stmt(model: &Model, n: &Names) -> TokenStream {
    let krate = &model.krate;
    let (owner, engine) = (&n.engine_owner, &n.engine);
    match &model.engine {
        Some(expr) => {
            let as_engine =
                quote_spanned!(expr.span()=> #krate::__private::AsEngine::as_engine(#owner));
            quote! {
                let #owner = &(#expr);
                let #engine: &#krate::Engine = #as_engine;
            }
        }
        None => quote! {
            let #engine: &#krate::Engine = #krate::__private::global();
        },
    }
}

/// One part of a ledger tuple, as a `String` (see `__private::LedgerPart`).
fn part(krate: &TokenStream, e: &syn::Expr) -> TokenStream {
    quote_spanned!(e.span()=> #krate::__private::LedgerPart::into_part(#e))
}

/// A `Ledger` (or, for `gate`, a `Gate`) from a tuple or an expression.
fn ledger_value(krate: &TokenStream, arg: &LedgerArg, gate: bool) -> TokenStream {
    match arg {
        LedgerArg::Parts(parts) => {
            let [a, b, c] = &**parts;
            let (a, b, c) = (part(krate, a), part(krate, b), part(krate, c));
            if gate {
                quote!(#krate::__private::gate(#a, #b, #c))
            } else {
                quote!(#krate::__private::ledger(#a, #b, #c))
            }
        }
        LedgerArg::Expr(e) if gate => {
            quote_spanned!(e.span()=> #krate::__private::IntoGate::into_gate(#e))
        }
        LedgerArg::Expr(e) => {
            quote_spanned!(e.span()=> #krate::__private::IntoLedger::into_ledger(#e))
        }
    }
}

/// The hard-mode return-type trait of this attribute (`__private::GuardReturn` & co.).
fn hard_trait(model: &Model) -> TokenStream {
    let krate = &model.krate;
    let name = match model.kind {
        Kind::GuardBounded => "GuardBoundedReturn",
        Kind::RateLimit | Kind::RateLimitResult => "RateLimitReturn",
        Kind::Guard | Kind::GuardResult => "GuardReturn",
    };
    let name = Ident::new(name, Span::call_site());
    quote!(#krate::__private::#name)
}

/// `return Err(blocked.into())`, through the return type's trait, spanned at
/// the return type: a non-`Result` or an error type without `From<B>` is
/// reported there, in the attribute's words.
fn hard_block(model: &Model, block_ty: TokenStream, blocked: &Ident) -> TokenStream {
    let krate = &model.krate;
    let output_ty = &model.output;
    let tr = hard_trait(model);
    quote_spanned! {output_ty.span()=>
        return <#output_ty as #tr>::from_err(
            <<#output_ty as #tr>::Err as #krate::__private::HoldsBlock<#block_ty>>::hold(#blocked))
    }
}

/// Calls an `actual` / `on_error` closure on `value` with its parameter type
/// fixed (so `|c| c.cost()` needs no annotation), catching a panic. The
/// helper is local and spanned at the closure: a closure of the wrong type
/// is reported at the closure, with no reference to budgetgate's sources.
fn call_cost_closure(
    krate: &TokenStream,
    helper: &str,
    closure: &syn::Expr,
    value: TokenStream,
) -> TokenStream {
    // The call runs from the closure's first token to its last, so that a
    // mismatch underlines the whole closure.
    let first = closure.span();
    let last = quote!(#closure)
        .into_iter()
        .last()
        .map_or(first, |t| t.span());
    let krate = respan(krate, first);
    let helper = Ident::new(helper, first);
    let mut args = proc_macro2::Group::new(
        proc_macro2::Delimiter::Parenthesis,
        quote!(#value, #closure),
    );
    args.set_span(last);
    quote_spanned! {first=>
        {
            #[inline(always)]
            fn #helper<T: ?::core::marker::Sized, A: #krate::__private::IntoAmount, F: ::core::ops::FnOnce(&T) -> A>(
                value: &T,
                f: F,
            ) -> ::core::result::Result<
                ::core::result::Result<#krate::Decimal, ::std::string::String>,
                #krate::__private::Panic,
            > {
                ::std::panic::catch_unwind(::std::panic::AssertUnwindSafe(move || {
                    #krate::__private::IntoAmount::into_amount(f(value))
                }))
            }
            #helper #args
        }
    }
}

/// `tokens` with every span set to `span`.
fn respan(tokens: &TokenStream, span: Span) -> TokenStream {
    tokens
        .clone()
        .into_iter()
        .map(|mut t| {
            if let proc_macro2::TokenTree::Group(g) = &t {
                let mut group = proc_macro2::Group::new(g.delimiter(), respan(&g.stream(), span));
                group.set_span(span);
                t = proc_macro2::TokenTree::Group(group);
            } else {
                t.set_span(span);
            }
            t
        })
        .collect()
}

/// Rate limits return early from `guarded_body` (see `amount_arg`).
fn unreachable_rate() -> TokenStream {
    quote!(::core::compile_error!(
        "budgetgate: internal error expanding a rate limit"
    ))
}

/// The user's block run as a closure / async block, so its value can be used.
fn run_body(model: &Model, is_async: bool, block: &Block) -> TokenStream {
    let output_ty = &model.output;
    let fake = Ident::new("unreachable_return", Span::mixed_site());
    let stmts = &block.stmts;
    let fake_return = quote! {
        #[allow(unknown_lints, unreachable_code, clippy::diverging_sub_expression,
                clippy::let_unit_value, clippy::unreachable, clippy::empty_loop,
                clippy::needless_return)]
        if false {
            let #fake: #output_ty = loop {};
            return #fake;
        }
    };
    if is_async {
        quote!(async { #fake_return #(#stmts)* }.await)
    } else {
        quote!((|| { #fake_return #(#stmts)* })())
    }
}

/// `#[rate_limit]` / `#[rate_limit_result]`: check and record the call first.
fn rate_body(
    model: &Model,
    rate: &RateLit,
    is_async: bool,
    block: &Block,
    n: &Names,
) -> TokenStream {
    let krate = &model.krate;
    let output_ty = &model.output;
    let Names {
        engine,
        ledger: gate,
        budget: policy,
        decision,
        output,
        blocked,
        ..
    } = n;
    let engine_stmt = engine_stmt(model, n);
    let gate_value = match &model.ledgers {
        Ledgers::One(arg) => ledger_value(krate, arg, true),
        Ledgers::Many(_) => unreachable_rate(),
    };
    let (max_calls, window_ms) = rate.max_calls.unwrap_or((0, 0));
    let cooldown_ms = rate.cooldown_ms.unwrap_or(0);
    let (capacity, tokens, period_ms) = rate.bucket.unwrap_or((0, 0, 0));
    let soft = model.soft;
    let rate_fn = Ident::new(
        if is_async { "rate_async" } else { "rate" },
        Span::call_site(),
    );
    let await_ = if is_async { quote!(.await) } else { quote!() };
    let prelude = quote! {
        #engine_stmt
        let #gate: #krate::Gate = #gate_value;
        const POLICY: #krate::Policy = #krate::__private::policy(
            #max_calls, #window_ms, #cooldown_ms, #capacity, #tokens, #period_ms, #soft);
        let #policy: &#krate::Policy = &POLICY;
    };
    let check = quote!(#krate::__private::#rate_fn(#engine, &#gate, #policy)#await_);
    let stmts = &block.stmts;
    if soft {
        let run = run_body(model, is_async, block);
        quote! {
            let #decision = {
                #prelude
                match #check {
                    ::core::result::Result::Ok(d) => d,
                    ::core::result::Result::Err(#blocked) => return #krate::__private::rate_blocked(#blocked),
                }
            };
            let #output: #output_ty = #run;
            #krate::__private::rate_allowed(#decision, #output)
        }
    } else {
        let on_block = hard_block(model, quote!(#krate::RateLimited), blocked);
        quote! {
            {
                #prelude
                if let ::core::result::Result::Err(#blocked) = #check {
                    #on_block;
                }
            }
            #(#stmts)*
        }
    }
}

/// The statements of the guarded body (a block's contents).
fn guarded_body(model: &Model, is_async: bool, block: &Block) -> TokenStream {
    let n = Names::new();
    let krate = &model.krate;
    let output_ty = &model.output;
    let Names {
        engine,
        ledger,
        budget,
        amount,
        reservation,
        decision,
        output,
        value,
        error,
        blocked,
        ..
    } = &n;

    // --- prelude: engine, ledger, budget, amount (evaluated before the body) ---
    let engine_stmt = engine_stmt(model, &n);
    let ledger_stmt = match &model.ledgers {
        Ledgers::One(arg) => {
            let value = ledger_value(krate, arg, false);
            quote!(let #ledger: #krate::Ledger = #value;)
        }
        Ledgers::Many(LedgersArg::List(items)) => {
            let parts = items.iter().map(|arg| ledger_value(krate, arg, false));
            quote!(let #ledger = [#(#parts),*];)
        }
        Ledgers::Many(LedgersArg::Expr(e)) => {
            let value = quote_spanned!(e.span()=> #krate::__private::IntoLedgers::into_ledgers(#e));
            quote!(let #ledger: ::std::vec::Vec<#krate::Ledger> = #value;)
        }
    };
    let budget_stmt = match &model.budget {
        _ if model.hierarchy => quote!(),
        Some((max, window)) => {
            let max_tokens = max.decimal_tokens(krate);
            let nanos = max.nanos;
            let window = match window {
                WindowLit::Unbounded => quote!(#krate::Window::Unbounded),
                WindowLit::RollingMillis(ms) => quote!(#krate::__private::rolling_millis(#ms)),
                WindowLit::Daily => quote!(#krate::Window::daily()),
                WindowLit::Monthly => quote!(#krate::Window::monthly()),
            };
            quote! {
                let #budget: ::core::option::Option<&#krate::Budget> = {
                    const BUDGET: #krate::Budget = #krate::__private::budget(#max_tokens, #nanos, #window);
                    ::core::option::Option::Some(&BUDGET)
                };
            }
        }
        None => quote! {
            let #budget: ::core::option::Option<&#krate::Budget> = ::core::option::Option::None;
        },
    };
    let amount_arg = match &model.cost {
        Cost::Fixed(a) => a,
        Cost::Bounded { estimate, .. } | Cost::Stream { estimate, .. } => estimate,
        Cost::Rate(rate) => return rate_body(model, rate, is_async, block, &n),
    };
    // A `Decimal`, or a `Result<Decimal, E>` whose error blocks the call.
    let amount_value = match amount_arg {
        AmountArg::Literal(lit) => {
            let lit = lit.decimal_tokens(krate);
            quote!(::core::result::Result::Ok(#lit))
        }
        AmountArg::Expr(expr) => {
            quote_spanned!(expr.span()=> #krate::__private::IntoAmount::into_amount(#expr))
        }
    };
    let amount_stmt = quote! {
        let #amount: ::core::result::Result<#krate::Decimal, ::std::string::String> =
            #amount_value;
    };
    let prelude = quote!(#engine_stmt #ledger_stmt #budget_stmt #amount_stmt);

    let await_ = |call: TokenStream| {
        if is_async {
            quote!(#call.await)
        } else {
            call
        }
    };
    // `check` / `reserve`, `_all` for a hierarchy, `_async` for async fns.
    let all = if model.hierarchy { "_all" } else { "" };
    let sfx = |name: &str| {
        let name = if matches!(name, "check" | "reserve") {
            format!("{name}{all}")
        } else {
            name.to_owned()
        };
        let name = if is_async {
            format!("{name}_async")
        } else {
            name
        };
        Ident::new(&name, Span::call_site())
    };
    // The single-ledger calls take the call-site budget; hierarchies use
    // the registry.
    let budget_arg = if model.hierarchy {
        quote!()
    } else {
        quote!(#budget,)
    };

    // What a block returns: hard mode → the function's `Err`; soft → Guarded::blocked.
    let on_block = if model.soft {
        quote!(return #krate::__private::blocked(#blocked))
    } else {
        hard_block(model, quote!(#krate::BudgetExceeded), blocked)
    };

    // The user's statements, spliced without their braces (a block as a
    // tail expression would trip `unused_braces` in user code).
    let stmts = &block.stmts;
    let user = quote!(#(#stmts)*);

    // The user's block, run so that its value can be inspected.
    let run_body = run_body(model, is_async, block);

    if let (
        Cost::Bounded {
            actual, on_error, ..
        },
        Some((cache, key)),
    ) = (&model.cost, &model.cache)
    {
        // A response cache (async, hard mode): the guarded call below is
        // the miss, run by the cache (single-flight) only if it has no
        // answer; its `Ok` value is cached with the cost committed for it.
        let reserve = {
            let f = sfx("reserve");
            await_(quote!(#krate::__private::#f(#engine, &#ledger, #budget_arg #amount)))
        };
        let tr = hard_trait(model);
        let output_span = output_ty.span();
        let on_block = quote_spanned! {output_span=>
            return ::core::result::Result::Err(
                <<#output_ty as #tr>::Err as #krate::__private::HoldsBlock<#krate::BudgetExceeded>>::hold(#blocked))
        };
        let cost = call_cost_closure(krate, "actual_cost", actual, quote!(&#value));
        let commit =
            quote!(#krate::__private::commit_caught_recorded_async(#reservation, #cost).await);
        let settle_error = match on_error {
            OnError::Release | OnError::Estimate => {
                let cost = if matches!(on_error, OnError::Release) {
                    quote!(#krate::__private::ErrorCost::Release)
                } else {
                    quote!(#krate::__private::ErrorCost::Estimate)
                };
                quote!(#krate::__private::settle_error_async(#reservation, #cost).await)
            }
            OnError::Closure(f) => {
                let cost = call_cost_closure(krate, "error_cost", f, quote!(&#error));
                quote!(#krate::__private::settle_error_caught_async(#reservation, #krate::__private::error_cost_caught(#cost)).await)
            }
        };
        let into_result = quote_spanned!(output_span=> <#output_ty as #tr>::into_result(#output));
        let cache_owner = Ident::new("cache", Span::mixed_site());
        let committed = Ident::new("committed", Span::mixed_site());
        let miss = quote! {
            async {
                let #reservation = match #reserve {
                    ::core::result::Result::Ok(r) => r,
                    ::core::result::Result::Err(#blocked) => #on_block,
                };
                let #output: #output_ty = #run_body;
                match #into_result {
                    ::core::result::Result::Ok(#value) => {
                        let #committed = #commit;
                        ::core::result::Result::Ok((#value, #committed))
                    }
                    ::core::result::Result::Err(#error) => {
                        #settle_error;
                        ::core::result::Result::Err(#error)
                    }
                }
            }
        };
        // The call is spanned at the `cache` expression: a cache of the
        // wrong types (a key that is not the `cache_key`'s, a value that is
        // not `Clone`) is reported there.
        let cache_span = cache.span();
        let cache_last = quote!(#cache)
            .into_iter()
            .last()
            .map_or(cache_span, |t| t.span());
        let mut args = proc_macro2::Group::new(
            proc_macro2::Delimiter::Parenthesis,
            quote!(#cache_owner, #engine, #key, #miss),
        );
        args.set_span(cache_last);
        let krate_at_cache = respan(krate, cache_span);
        let call = quote_spanned!(cache_span=> #krate_at_cache::__private::cached #args.await);
        let let_output = quote_spanned!(cache_span=> let #output: #output_ty = #call;);
        return quote! {
            #prelude
            let #cache_owner = &(#cache);
            #let_output
            #output
        };
    }

    match &model.cost {
        Cost::Fixed(_) => {
            let check = {
                let f = sfx("check");
                await_(quote!(#krate::__private::#f(#engine, &#ledger, #budget_arg #amount)))
            };
            if model.soft {
                quote! {
                    let #decision = {
                        #prelude
                        match #check {
                            ::core::result::Result::Ok(d) => d,
                            ::core::result::Result::Err(#blocked) => #on_block,
                        }
                    };
                    let #output: #output_ty = #run_body;
                    #krate::__private::allowed(#decision, #output)
                }
            } else {
                // The engine and ledger go out of scope before the body: an
                // `engine = &self.engine` borrow does not outlive the check.
                quote! {
                    {
                        #prelude
                        if let ::core::result::Result::Err(#blocked) = #check {
                            #on_block;
                        }
                    }
                    #user
                }
            }
        }
        Cost::Rate(_) => unreachable_rate(),
        Cost::Stream {
            meter, on_error, ..
        } => {
            let reserve = {
                let f = sfx("reserve");
                await_(quote!(#krate::__private::#f(#engine, &#ledger, #budget_arg #amount)))
            };
            let settle_error = match on_error {
                OnError::Release | OnError::Estimate => {
                    let f = sfx("settle_error");
                    let cost = if matches!(on_error, OnError::Release) {
                        quote!(#krate::__private::ErrorCost::Release)
                    } else {
                        quote!(#krate::__private::ErrorCost::Estimate)
                    };
                    await_(quote!(#krate::__private::#f(#reservation, #cost)))
                }
                OnError::Closure(f) => {
                    let settle = sfx("settle_error_caught");
                    let cost = call_cost_closure(krate, "error_cost", f, quote!(#error));
                    await_(
                        quote!(#krate::__private::#settle(#reservation, #krate::__private::error_cost_caught(#cost))),
                    )
                }
            };
            // The return type's `Ok` is an `impl Stream`: the block is
            // returned as `Err(E::from(..))`, `E` inferred from it.
            let output_span = output_ty.span();
            let on_block = quote_spanned! {output_span=>
                return ::core::result::Result::Err(
                    #krate::__private::HoldsBlock::<#krate::BudgetExceeded>::hold(#blocked))
            };
            // The body's stream, wrapped: the reservation lives as long as
            // the stream and is committed from what its meter read.
            quote! {
                #prelude
                let #reservation = match #reserve {
                    ::core::result::Result::Ok(r) => r,
                    ::core::result::Result::Err(#blocked) => #on_block,
                };
                let #output: #output_ty = #run_body;
                match #output {
                    ::core::result::Result::Ok(#value) => ::core::result::Result::Ok(
                        #krate::__private::guard_stream(#reservation, #value, #meter),
                    ),
                    ::core::result::Result::Err(#value) => {
                        {
                            #[allow(unused_variables)]
                            let #error = &#value;
                            #settle_error;
                        }
                        ::core::result::Result::Err(#value)
                    }
                }
            }
        }
        Cost::Bounded {
            actual, on_error, ..
        } => {
            let reserve = {
                let f = sfx("reserve");
                await_(quote!(#krate::__private::#f(#engine, &#ledger, #budget_arg #amount)))
            };
            let commit_fn = sfx("commit_caught");
            let commit = |value: TokenStream| {
                let cost = call_cost_closure(krate, "actual_cost", actual, value);
                await_(quote!(#krate::__private::#commit_fn(#reservation, #cost)))
            };
            let settle_error = || match on_error {
                OnError::Release | OnError::Estimate => {
                    let f = sfx("settle_error");
                    let cost = if matches!(on_error, OnError::Release) {
                        quote!(#krate::__private::ErrorCost::Release)
                    } else {
                        quote!(#krate::__private::ErrorCost::Estimate)
                    };
                    (
                        quote!(_),
                        await_(quote!(#krate::__private::#f(#reservation, #cost))),
                    )
                }
                OnError::Closure(f) => {
                    let settle = sfx("settle_error_caught");
                    let cost = call_cost_closure(krate, "error_cost", f, quote!(#error));
                    (
                        quote!(#error),
                        await_(
                            quote!(#krate::__private::#settle(#reservation, #krate::__private::error_cost_caught(#cost))),
                        ),
                    )
                }
            };
            let settle = if !model.soft {
                // Hard mode: a `Result` by type (aliases included).
                let tr = hard_trait(model);
                let split = quote_spanned!(output_ty.span()=> <#output_ty as #tr>::split(&#output));
                let (err_pat, settle_error) = settle_error();
                let commit = commit(quote!(#value));
                quote! {
                    match #split {
                        ::core::result::Result::Ok(#value) => #commit,
                        ::core::result::Result::Err(#err_pat) => #settle_error,
                    }
                }
            } else if model.output_is_result {
                let (err_pat, settle_error) = settle_error();
                let commit = commit(quote!(#value));
                quote! {
                    match &#output {
                        ::core::result::Result::Ok(#value) => #commit,
                        ::core::result::Result::Err(#err_pat) => #settle_error,
                    }
                }
            } else {
                let commit = commit(quote!(&#output));
                quote!(#commit;)
            };
            let finish = if model.soft {
                quote!(#krate::__private::allowed(#decision, #output))
            } else {
                quote!(#output)
            };
            let keep_decision = if model.soft {
                quote!(let #decision = #krate::__private::decision_of(&#reservation);)
            } else {
                quote!()
            };
            quote! {
                #prelude
                let #reservation = match #reserve {
                    ::core::result::Result::Ok(r) => r,
                    ::core::result::Result::Err(#blocked) => #on_block,
                };
                #keep_decision
                let #output: #output_ty = #run_body;
                #settle
                #finish
            }
        }
    }
}
