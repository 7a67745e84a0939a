//! Meaning: [`Args`] + the function → a [`Model`] that expand can trust.
//! Every refusal is a `syn::Error` at the span of what is wrong.

use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::spanned::Spanned;
use syn::{Expr, GenericArgument, PathArguments, ReturnType, Signature, Type, TypeParamBound};

use crate::args::{AmountArg, Args, OnError};
use crate::literal::{Amount, WindowLit};

/// Which attribute.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Guard,
    GuardBounded,
    GuardResult,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Guard => "guard",
            Kind::GuardBounded => "guard_bounded",
            Kind::GuardResult => "guard_result",
        }
    }
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
}

/// A validated attribute on a validated function.
pub struct Model {
    pub soft: bool,
    pub ledger: [Expr; 3],
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
    let Some(ledger) = args.ledger else {
        return err(
            Span::call_site(),
            format!("#[{name}] needs `ledger = (namespace, resource, principal)`"),
        );
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
    };

    let (output, output_span) = match output {
        Some(t) => (t.clone(), t.span()),
        None => match &sig.output {
            ReturnType::Type(_, t) => ((**t).clone(), t.span()),
            ReturnType::Default => (syn::parse_quote!(()), sig.ident.span()),
        },
    };
    let output_is_result = is_result(&output);
    let soft = kind == Kind::GuardResult;
    if !soft && !output_is_result {
        return err(
            output_span,
            format!(
                "#[{name}] needs a function returning `Result<T, E>` with `E: From<budgetgate::BudgetExceeded>`, so a blocked call can return `Err`; for other return types use #[guard_result], which returns `budgetgate::Guarded<T>`"
            ),
        );
    }
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
        ledger: ledger.value,
        cost,
        budget,
        engine: args.engine.map(|e| e.value),
        krate,
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
