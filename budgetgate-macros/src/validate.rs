//! Meaning: [`Args`] + the function → a [`Model`] that expand can trust.
//! Every refusal is a `syn::Error` at the span of what is wrong.

use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::spanned::Spanned;
use syn::{Expr, GenericArgument, PathArguments, ReturnType, Signature, Type, TypeParamBound};

use crate::args::{AmountArg, Args, Keyed, OnError};
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

    fn is_rate(self) -> bool {
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
}

/// A validated attribute on a validated function.
pub struct Model {
    pub soft: bool,
    /// One ledger, or several (a hierarchy, charged all or nothing).
    pub ledgers: Vec<[Expr; 3]>,
    pub hierarchy: bool,
    pub cost: Cost,
    pub budget: Option<(Amount, WindowLit)>,
    pub engine: Option<Expr>,
    pub krate: TokenStream,
    /// The value the body produces (for async_trait methods: the future's output).
    pub output: Type,
    /// Whether `output` is a `Result` (last path segment `Result`).
    pub output_is_result: bool,
}

fn err<T>(span: Span, msg: impl std::fmt::Display) -> syn::Result<T> {
    Err(syn::Error::new(span, msg))
}

/// The checks. `output` is the body's value type (see [`Model::output`]).
pub fn validate(
    kind: Kind,
    args: Args,
    sig: &Signature,
    output: Option<&Type>,
) -> syn::Result<Model> {
    let name = kind.name();
    if let Some(constness) = &sig.constness {
        return err(
            constness.span(),
            format!("#[{name}] cannot be used on a `const fn`: budgets are checked at run time"),
        );
    }
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
        (Some(one), None) => (vec![one.value], false),
        (None, Some(many)) => {
            for (key, span) in [
                ("max_spend", args.max_spend.as_ref().map(|k| k.key)),
                ("window", args.window.as_ref().map(|k| k.key)),
            ] {
                if let Some(span) = span {
                    return err(span, format!("`{key}` cannot go with `ledgers`: each ledger of a hierarchy has its own budget, registered on the engine"));
                }
            }
            (many.value, true)
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

    let cost = match (kind, args.cost, args.estimate, args.actual) {
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
    let (output, output_span, output_is_result) = check_output(kind, soft, sig, output)?;
    if let Cost::Bounded {
        on_error: OnError::Closure(_) | OnError::Estimate,
        ..
    } = &cost
    {
        if !output_is_result {
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

    let krate = args.krate.map_or_else(
        || quote!(::budgetgate),
        |k| {
            let path = k.value;
            quote!(#path)
        },
    );
    Ok(Model {
        soft,
        ledgers,
        hierarchy,
        cost,
        budget,
        engine: args.engine.map(|e| e.value),
        krate,
        output,
        output_is_result,
    })
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
) -> syn::Result<(Type, Span, bool)> {
    let name = kind.name();
    let (output, output_span) = match output {
        Some(t) => (t.clone(), t.span()),
        None => match &sig.output {
            ReturnType::Type(_, t) => ((**t).clone(), t.span()),
            ReturnType::Default => (syn::parse_quote!(()), sig.ident.span()),
        },
    };
    let output_is_result = is_result(&output);
    if !soft && !output_is_result {
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
    let (output, _, output_is_result) = check_output(kind, soft, sig, output)?;
    Ok(Model {
        soft,
        krate,
        ledgers: vec![gate.value],
        hierarchy: false,
        cost: Cost::Rate(RateLit {
            max_calls,
            cooldown_ms,
            bucket,
        }),
        budget: None,
        engine: args.engine.map(|e| e.value),
        output,
        output_is_result,
    })
}

/// `Result<..>`, `io::Result<..>`, `anyhow::Result<..>`: judged by the last
/// path segment, as a macro cannot resolve aliases.
pub fn is_result(ty: &Type) -> bool {
    match ty {
        Type::Path(p) => p.path.segments.last().is_some_and(|s| s.ident == "Result"),
        Type::Paren(p) => is_result(&p.elem),
        Type::Group(g) => is_result(&g.elem),
        _ => false,
    }
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
