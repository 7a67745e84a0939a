//! Meaning: [`Args`] + the function → a [`Model`] that expand can trust.
//! Every refusal is a `syn::Error` at the span of what is wrong.

use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::spanned::Spanned;
use syn::{Expr, GenericArgument, PathArguments, ReturnType, Signature, Type, TypeParamBound};

use crate::args::{AmountArg, Args, Keyed, LedgerArg, LedgersArg, OnError};
use crate::literal::{Amount, WindowLit};

/// Which attribute.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Guard,
    GuardBounded,
    GuardResult,
    RateLimit,
    RateLimitResult,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Guard => "guard",
            Kind::GuardBounded => "guard_bounded",
            Kind::GuardResult => "guard_result",
            Kind::RateLimit => "rate_limit",
            Kind::RateLimitResult => "rate_limit_result",
        }
    }

    /// The keys this attribute takes.
    pub fn keys(self) -> &'static [&'static str] {
        const BUDGET: [&str; 4] = ["max_spend", "window", "engine", "crate"];
        match self {
            Kind::Guard => &[
                "ledger", "ledgers", "cost", BUDGET[0], BUDGET[1], BUDGET[2], BUDGET[3],
            ],
            Kind::GuardBounded => &[
                "ledger",
                "ledgers",
                "estimate",
                "actual",
                "stream",
                "on_error",
                "cache",
                "cache_key",
                BUDGET[0],
                BUDGET[1],
                BUDGET[2],
                BUDGET[3],
            ],
            Kind::GuardResult => &[
                "ledger", "ledgers", "cost", "estimate", "actual", "on_error", BUDGET[0],
                BUDGET[1], BUDGET[2], BUDGET[3],
            ],
            Kind::RateLimit | Kind::RateLimitResult => &[
                "gate",
                "max_calls",
                "window",
                "cooldown",
                "capacity",
                "refill",
                "engine",
                "crate",
            ],
        }
    }

    pub fn is_rate(self) -> bool {
        matches!(self, Kind::RateLimit | Kind::RateLimitResult)
    }
}

/// A rate policy from literals: calls per window (ms), cooldown (ms), bucket
/// (capacity, tokens, period ms).
pub struct RateLit {
    pub max_calls: Option<(u64, u64)>,
    pub cooldown_ms: Option<u64>,
    pub bucket: Option<(u64, u64, u64)>,
}

/// How the cost is known.
#[allow(clippy::large_enum_variant)] // built once per attribute
pub enum Cost {
    Fixed(AmountArg),
    Bounded {
        estimate: AmountArg,
        actual: Expr,
        on_error: OnError,
    },
    Rate(RateLit),
    /// `#[guard_bounded(estimate = …, stream = METER)]`: the estimate is
    /// reserved before the body, and the stream the body returns holds the
    /// reservation for its life (`budgetgate::stream`).
    Stream {
        estimate: AmountArg,
        meter: Expr,
        on_error: OnError,
    },
}

/// The ledger(s) of a spend guard, or the gate of a rate limit.
pub enum Ledgers {
    One(LedgerArg),
    /// A hierarchy, charged all or nothing.
    Many(LedgersArg),
}

/// A validated attribute on a validated function.
pub struct Model {
    pub kind: Kind,
    pub soft: bool,
    pub ledgers: Ledgers,
    pub hierarchy: bool,
    pub cost: Cost,
    pub budget: Option<(Amount, WindowLit)>,
    pub engine: Option<Expr>,
    /// `cache = …, cache_key = …`: the cache and the key expressions.
    pub cache: Option<(Expr, Expr)>,
    pub krate: TokenStream,
    /// The value the body produces (for async_trait methods: the future's output).
    pub output: Type,
    /// Soft mode only: whether `output` is spelled as a `Result` (last path
    /// segment `Result`). Hard mode needs a `Result` and checks it by type.
    pub output_is_result: bool,
}

fn err<T>(span: Span, msg: impl std::fmt::Display) -> syn::Result<T> {
    Err(syn::Error::new(span, msg))
}

/// The checks. `output` is the body's value type (see [`Model::output`]).
pub fn validate(
    kind: Kind,
    mut args: Args,
    sig: &Signature,
    output: Option<&Type>,
) -> syn::Result<Model> {
    let name = kind.name();
    let krate = crate_path(&args);
    if let Some(constness) = &sig.constness {
        return err(
            constness.span(),
            format!("#[{name}] cannot be used on a `const fn`: budgets are checked at run time"),
        );
    }
    let cached = check_cache(kind, &mut args, sig, output.is_some())?;
    if kind.is_rate() {
        return validate_rate(kind, args, sig, output);
    }
    reject_foreign(
        [
            ("gate", args.gate.as_ref().map(|k| k.key)),
            ("max_calls", args.max_calls.as_ref().map(|k| k.key)),
            ("cooldown", args.cooldown.as_ref().map(|k| k.key)),
            ("capacity", args.capacity.as_ref().map(|k| k.key)),
            ("refill", args.refill.as_ref().map(|k| k.key)),
        ],
        |key| format!("`{key}` belongs to #[rate_limit]; put a #[rate_limit(..)] beside #[{name}]"),
    )?;
    let (ledgers, hierarchy) = match (args.ledger, args.ledgers) {
        (Some(one), None) => (Ledgers::One(one.value), false),
        (None, Some(many)) => {
            for (key, span) in [
                ("max_spend", args.max_spend.as_ref().map(|k| k.key)),
                ("window", args.window.as_ref().map(|k| k.key)),
            ] {
                if let Some(span) = span {
                    return err(span, format!("`{key}` cannot go with `ledgers`: each ledger of a hierarchy has its own budget, registered on the engine"));
                }
            }
            (Ledgers::Many(many.value), true)
        }
        (Some(_), Some(many)) => {
            return err(
                many.key,
                "give `ledger = (..)` or `ledgers = [..]`, not both",
            );
        }
        (None, None) => {
            return err(
                Span::call_site(),
                format!("#[{name}] needs `ledger = (namespace, resource, principal)` (or `ledgers = [..]` for a hierarchy)"),
            );
        }
    };

    if let Some(window) = &args.window {
        if args.max_spend.is_none() {
            return err(
                window.key,
                "`window` needs `max_spend`: a call-site budget is `max_spend = \"10.00\", window = \"1h\"`",
            );
        }
    }
    let budget = args.max_spend.map(|max| {
        let window = args.window.map_or(WindowLit::Unbounded, |w| w.value);
        (max.value, window)
    });

    let stream = match args.stream {
        None => None,
        Some(stream) if kind != Kind::GuardBounded => {
            return err(
                stream.key,
                format!("`stream` belongs to #[guard_bounded]; #[{name}] does not guard streams"),
            );
        }
        Some(stream) => {
            if let Some(actual) = &args.actual {
                return err(actual.key, "give `stream = METER` or `actual = |value| …`, not both: a guarded stream commits what its meter read");
            }
            if let Some(cost) = &args.cost {
                return err(
                    cost.key,
                    "#[guard_bounded] takes `estimate = …`; for a fixed cost use #[guard]",
                );
            }
            Some(stream)
        }
    };
    let cost = match (kind, args.cost, args.estimate, args.actual) {
        (Kind::GuardBounded, None, Some(estimate), None) if stream.is_some() => Cost::Stream {
            estimate: estimate.value,
            meter: stream
                .map(|s| s.value)
                .unwrap_or_else(|| syn::parse_quote!(())),
            on_error: args.on_error.map_or(OnError::Release, |o| o.value),
        },
        (Kind::GuardBounded, None, None, None) if stream.is_some() => {
            return err(
                Span::call_site(),
                "`stream = METER` needs `estimate = …`: the estimate is reserved for the stream's life",
            );
        }
        (Kind::Guard, Some(cost), None, None) => {
            if let Some(on_error) = &args.on_error {
                return err(on_error.key, "`on_error` applies to bounded costs (`estimate` + `actual`); a fixed cost is charged when the call is admitted");
            }
            Cost::Fixed(cost.value)
        }
        (Kind::GuardResult, Some(cost), None, None) => {
            if let Some(on_error) = &args.on_error {
                return err(on_error.key, "`on_error` applies to bounded costs (`estimate` + `actual`); a fixed cost is charged when the call is admitted");
            }
            Cost::Fixed(cost.value)
        }
        (Kind::GuardBounded | Kind::GuardResult, None, Some(estimate), Some(actual)) => {
            Cost::Bounded {
                estimate: estimate.value,
                actual: actual.value,
                on_error: args.on_error.map_or(OnError::Release, |o| o.value),
            }
        }
        (_, Some(cost), Some(estimate), _) => {
            let _ = cost;
            return err(
                estimate.key,
                "give either `cost` (fixed) or `estimate` + `actual` (bounded), not both",
            );
        }
        (Kind::GuardBounded, Some(cost), None, _) => {
            return err(cost.key, "#[guard_bounded] takes `estimate = …` and `actual = …`; for a fixed cost use #[guard]");
        }
        (Kind::Guard, _, Some(estimate), _) => {
            return err(estimate.key, "#[guard] takes a fixed `cost`; for an estimate committed as an actual use #[guard_bounded]");
        }
        (_, _, None, Some(actual)) => {
            return err(actual.key, "`actual` needs `estimate`: the estimate is reserved before the call, the actual committed after");
        }
        (_, None, Some(estimate), None) => {
            return err(
                estimate.key,
                "`estimate` needs `actual = |value| …` returning the true cost as a Decimal",
            );
        }
        (Kind::Guard, None, None, None) => {
            return err(
                Span::call_site(),
                "#[guard] needs `cost = \"0.01\"` (or a Decimal expression)",
            );
        }
        (Kind::GuardBounded, None, None, None) => {
            return err(
                Span::call_site(),
                "#[guard_bounded] needs `estimate = …` and `actual = |value| …`",
            );
        }
        (Kind::GuardResult, None, None, None) => {
            return err(
                Span::call_site(),
                "#[guard_result] needs `cost = …`, or `estimate = …` and `actual = …`",
            );
        }
        // Rate limits were handed to `validate_rate` above.
        (Kind::RateLimit | Kind::RateLimitResult, ..) => {
            return err(Span::call_site(), "rate limits are validated separately");
        }
    };

    let soft = kind == Kind::GuardResult;
    let streamed = matches!(cost, Cost::Stream { .. });
    let (output, output_span, output_is_result) = check_output(kind, soft, sig, output, streamed)?;
    if let Cost::Bounded {
        on_error: OnError::Closure(_) | OnError::Estimate,
        ..
    } = &cost
    {
        if soft && !output_is_result {
            return err(
                output_span,
                "`on_error` needs a function returning `Result<T, E>`: it says what an `Err` costs",
            );
        }
    }
    if contains_impl_trait(&output) {
        return err(
            output_span,
            format!("#[{name}] does not support `impl Trait` in the return type"),
        );
    }

    if let (Cost::Bounded { .. } | Cost::Stream { .. }, Some(engine)) = (&cost, &args.engine) {
        check_engine_borrow(sig, &engine.value)?;
    }
    Ok(Model {
        kind,
        soft,
        ledgers,
        hierarchy,
        cost,
        budget,
        engine: args.engine.map(|e| e.value),
        cache: cached,
        krate,
        output,
        output_is_result,
    })
}

/// `cache` + `cache_key`: both or neither, on an async `#[guard_bounded]`
/// function that does not return a stream. Taken out of `args`.
fn check_cache(
    kind: Kind,
    args: &mut Args,
    sig: &Signature,
    async_trait: bool,
) -> syn::Result<Option<(Expr, Expr)>> {
    let name = kind.name();
    let Some((cache, key)) = together(
        args.cache.take(),
        args.cache_key.take(),
        ("cache", "cache_key"),
        "`cache = &*CACHE, cache_key = (model.to_string(), prompt.to_string())`",
    )?
    else {
        return Ok(None);
    };
    if kind != Kind::GuardBounded {
        let what = if kind.is_rate() {
            "a rate limit counts every call, answered from a cache or not"
        } else {
            "a cached call is a bounded one: reserved, run and committed on a miss"
        };
        return err(
            cache.key,
            format!("`cache` belongs to #[guard_bounded]; #[{name}] does not take it ({what})"),
        );
    }
    if let Some(stream) = &args.stream {
        return err(
            stream.key,
            "`cache` cannot go with `stream`: a stream is consumed as it is read, so there is no response to cache",
        );
    }
    if sig.asyncness.is_none() && !async_trait {
        return err(
            cache.key,
            "`cache` needs an `async fn`: identical calls that miss at the same time wait for the first one's answer",
        );
    }
    let mut_self = sig.inputs.first().is_some_and(|arg| {
        matches!(arg, syn::FnArg::Receiver(r) if r.mutability.is_some() && r.reference.is_some())
    });
    if mut_self && borrows_self(&cache.value) {
        return Err(syn::Error::new_spanned(
            &cache.value,
            "this `cache` borrows `self` for the whole call (a miss runs the body inside the cache's call), but this method takes `&mut self`; keep the cache in an `Arc` and give a clone (`cache = self.cache.clone()`), or a `static`",
        ));
    }
    Ok(Some((cache.value, key.value)))
}

fn crate_path(args: &Args) -> TokenStream {
    args.krate.as_ref().map_or_else(
        || quote!(::budgetgate),
        |k| {
            let path = &k.value;
            quote!(#path)
        },
    )
}

/// The body's value type, its span, and whether it is a `Result`; hard mode
/// requires one.
fn check_output(
    kind: Kind,
    soft: bool,
    sig: &Signature,
    output: Option<&Type>,
    streamed: bool,
) -> syn::Result<(Type, Span, bool)> {
    let name = kind.name();
    let has_output = output.is_some();
    let (output, output_span) = match output {
        Some(t) => (t.clone(), t.span()),
        None => match &sig.output {
            ReturnType::Type(_, t) => ((**t).clone(), t.span()),
            ReturnType::Default => (syn::parse_quote!(()), sig.ident.span()),
        },
    };
    // Hard mode: whether the type is a `Result` is left to the type checker
    // (`GuardReturn` & co.), so aliases work; `()` is certainly not one.
    let output_is_result = is_result(&output);
    if !soft && matches!(sig.output, ReturnType::Default) && !has_output {
        let (error, soft_name) = if kind.is_rate() {
            ("RateLimited", "rate_limit_result")
        } else {
            ("BudgetExceeded", "guard_result")
        };
        return err(
            output_span,
            format!(
                "#[{name}] needs a function returning `Result<T, E>` with `E: From<budgetgate::{error}>`, so a blocked call can return `Err`; for other return types use #[{soft_name}], which returns `budgetgate::Guarded<T>`"
            ),
        );
    }
    if streamed {
        // The stream returned is wrapped: the body's own stream type is
        // inferred (`Result<_, E>`), and the function's `impl Stream`
        // becomes the guarded stream.
        return match stream_output(&output) {
            Some(inferred) if !contains_impl_trait(&inferred) => {
                Ok((inferred, output_span, output_is_result))
            }
            _ => err(
                output_span,
                format!("#[{name}] with `stream = …` needs a function returning `Result<impl Stream<Item = …>, E>`: the stream it returns is wrapped in a guarded stream"),
            ),
        };
    }
    if contains_impl_trait(&output) {
        return err(
            output_span,
            format!("#[{name}] does not support `impl Trait` in the return type"),
        );
    }
    Ok((output, output_span, output_is_result))
}

/// Refuses, at the first one given, keys that belong to the other kind of
/// attribute.
fn reject_foreign<const N: usize>(
    keys: [(&str, Option<Span>); N],
    message: impl Fn(&str) -> String,
) -> syn::Result<()> {
    match keys
        .into_iter()
        .find_map(|(key, span)| span.map(|s| (key, s)))
    {
        Some((key, span)) => err(span, message(key)),
        None => Ok(()),
    }
}

/// Two keys that only mean something together: both, or neither.
fn together<A, B>(
    a: Option<Keyed<A>>,
    b: Option<Keyed<B>>,
    (a_name, b_name): (&str, &str),
    example: &str,
) -> syn::Result<Option<(Keyed<A>, Keyed<B>)>> {
    match (a, b) {
        (Some(a), Some(b)) => Ok(Some((a, b))),
        (Some(a), None) => err(
            a.key,
            format!("`{a_name}` needs `{b_name}`, e.g. {example}"),
        ),
        (None, Some(b)) => err(
            b.key,
            format!("`{b_name}` needs `{a_name}`, e.g. {example}"),
        ),
        (None, None) => Ok(None),
    }
}

fn validate_rate(
    kind: Kind,
    args: Args,
    sig: &Signature,
    output: Option<&Type>,
) -> syn::Result<Model> {
    let name = kind.name();
    reject_foreign(
        [
            ("ledger", args.ledger.as_ref().map(|k| k.key)),
            ("ledgers", args.ledgers.as_ref().map(|k| k.key)),
            ("cost", args.cost.as_ref().map(|k| k.key)),
            ("estimate", args.estimate.as_ref().map(|k| k.key)),
            ("actual", args.actual.as_ref().map(|k| k.key)),
            ("on_error", args.on_error.as_ref().map(|k| k.key)),
            ("max_spend", args.max_spend.as_ref().map(|k| k.key)),
        ],
        |key| format!("`{key}` belongs to the spend guards; put a #[guard(..)] beside #[{name}]"),
    )?;
    let krate = crate_path(&args);
    let Some(gate) = args.gate else {
        return err(
            Span::call_site(),
            format!("#[{name}] needs `gate = (namespace, action, principal)`"),
        );
    };
    let max_calls = match together(
        args.max_calls,
        args.window,
        ("max_calls", "window"),
        "`max_calls = 100, window = \"1m\"`",
    )? {
        Some((m, w)) => match w.value {
            WindowLit::RollingMillis(ms) => Some((m.value, ms)),
            _ => return err(w.key, "a call window must be a duration such as \"1m\""),
        },
        None => None,
    };
    let cooldown_ms = match args.cooldown {
        Some(c) => match c.value {
            WindowLit::RollingMillis(ms) => Some(ms),
            _ => return err(c.key, "a cooldown must be a duration such as \"2s\""),
        },
        None => None,
    };
    let bucket = together(
        args.capacity,
        args.refill,
        ("capacity", "refill"),
        "`capacity = 10, refill = \"5/s\"`",
    )?
    .map(|(c, r)| (c.value, r.value.0, r.value.1));
    if max_calls.is_none() && cooldown_ms.is_none() && bucket.is_none() {
        return err(
            Span::call_site(),
            format!("#[{name}] needs a limit: `max_calls` + `window`, `cooldown`, or `capacity` + `refill`"),
        );
    }
    let soft = kind == Kind::RateLimitResult;
    let (output, _, output_is_result) = check_output(kind, soft, sig, output, false)?;
    Ok(Model {
        soft,
        krate,
        kind,
        ledgers: Ledgers::One(gate.value),
        hierarchy: false,
        cost: Cost::Rate(RateLit {
            max_calls,
            cooldown_ms,
            bucket,
        }),
        budget: None,
        engine: args.engine.map(|e| e.value),
        cache: None,
        output,
        output_is_result,
    })
}

/// `engine = &self.engine` on a `&mut self` method: the reservation holds
/// that borrow of `self` while the body needs `self` mutably. Refused here,
/// with the fix, rather than as a borrow error inside the expansion.
fn check_engine_borrow(sig: &Signature, engine: &Expr) -> syn::Result<()> {
    let mut_self = sig.inputs.first().is_some_and(|arg| {
        matches!(arg, syn::FnArg::Receiver(r) if r.mutability.is_some() && r.reference.is_some())
    });
    if !mut_self || !borrows_self(engine) {
        return Ok(());
    }
    let text = quote!(#engine)
        .to_string()
        .replace(" . ", ".")
        .replace("& ", "&");
    let owned = field_path(engine).unwrap_or_else(|| "self.engine".to_owned());
    Err(syn::Error::new_spanned(
        engine,
        format!("`engine = {text}` borrows `self` for the whole call (the reservation holds it), but this method takes `&mut self`; use an owned handle: `engine = {owned}.clone()` (an `Engine` or `Arc<Engine>` clone is cheap)"),
    ))
}

/// `self.a.b`, `&self.a`, `&*self.a`, `(self.a)`: a place inside `self`.
fn borrows_self(expr: &Expr) -> bool {
    match expr {
        Expr::Reference(r) => borrows_self(&r.expr),
        Expr::Unary(syn::ExprUnary {
            op: syn::UnOp::Deref(_),
            expr,
            ..
        }) => borrows_self(expr),
        Expr::Paren(p) => borrows_self(&p.expr),
        Expr::Field(f) => field_path(&f.base).is_some(),
        _ => false,
    }
}

/// `self.a.b` as text, if `expr` is such a field path rooted at `self`.
fn field_path(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Path(p) if p.path.is_ident("self") => Some("self".to_owned()),
        Expr::Field(f) => {
            let member = match &f.member {
                syn::Member::Named(i) => i.to_string(),
                syn::Member::Unnamed(i) => i.index.to_string(),
            };
            field_path(&f.base).map(|base| format!("{base}.{member}"))
        }
        Expr::Reference(r) => field_path(&r.expr),
        Expr::Unary(syn::ExprUnary {
            op: syn::UnOp::Deref(_),
            expr,
            ..
        }) => field_path(expr),
        Expr::Paren(p) => field_path(&p.expr),
        _ => None,
    }
}

/// `Result<..>`, `io::Result<..>`, `anyhow::Result<..>`: judged by the last
/// path segment (soft mode, where a non-`Result` is also allowed).
pub fn is_result(ty: &Type) -> bool {
    match ty {
        Type::Path(p) => p.path.segments.last().is_some_and(|s| s.ident == "Result"),
        Type::Paren(p) => is_result(&p.elem),
        Type::Group(g) => is_result(&g.elem),
        _ => false,
    }
}

/// `…Result<impl Trait, E>` with the `impl Trait` replaced by `_`.
fn stream_output(ty: &Type) -> Option<Type> {
    let Type::Path(p) = ty else { return None };
    let mut inferred = p.clone();
    let last = inferred.path.segments.last_mut()?;
    if last.ident != "Result" {
        return None;
    }
    let PathArguments::AngleBracketed(a) = &mut last.arguments else {
        return None;
    };
    match a.args.first_mut() {
        Some(GenericArgument::Type(t @ Type::ImplTrait(_))) => {
            *t = syn::parse_quote!(_);
        }
        _ => return None,
    }
    Some(Type::Path(inferred))
}

fn contains_impl_trait(ty: &Type) -> bool {
    match ty {
        Type::ImplTrait(_) => true,
        Type::Path(p) => p.path.segments.iter().any(|s| match &s.arguments {
            PathArguments::AngleBracketed(a) => a.args.iter().any(|arg| match arg {
                GenericArgument::Type(t) => contains_impl_trait(t),
                _ => false,
            }),
            _ => false,
        }),
        Type::Reference(r) => contains_impl_trait(&r.elem),
        Type::Tuple(t) => t.elems.iter().any(contains_impl_trait),
        Type::Paren(p) => contains_impl_trait(&p.elem),
        _ => false,
    }
}

/// For `#[async_trait]` output: the `R` of
/// `Pin<Box<dyn Future<Output = R> + Send + 'async_trait>>`.
pub fn future_output(ty: &Type) -> Option<Type> {
    let Type::Path(p) = ty else { return None };
    let pin = p.path.segments.last()?;
    let PathArguments::AngleBracketed(a) = &pin.arguments else {
        return None;
    };
    let Some(GenericArgument::Type(Type::Path(boxed))) = a.args.first() else {
        return None;
    };
    let boxed = boxed.path.segments.last()?;
    let PathArguments::AngleBracketed(a) = &boxed.arguments else {
        return None;
    };
    let Some(GenericArgument::Type(Type::TraitObject(dyn_))) = a.args.first() else {
        return None;
    };
    dyn_.bounds.iter().find_map(|b| match b {
        TypeParamBound::Trait(t) => {
            let future = t.path.segments.last()?;
            let PathArguments::AngleBracketed(a) = &future.arguments else {
                return None;
            };
            a.args.iter().find_map(|arg| match arg {
                GenericArgument::AssocType(assoc) if assoc.ident == "Output" => {
                    Some(assoc.ty.clone())
                }
                _ => None,
            })
        }
        _ => None,
    })
}
