//! Parsing: attribute arguments → [`Args`], a plain model with spans.
//! Syntax only; meaning is checked in `validate`.

use proc_macro2::Span;
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, Ident, Lit, LitStr, Path, Token};

use crate::literal::{self, Amount, WindowLit};

/// The parsed attribute.
#[derive(Default)]
pub struct Args {
    pub ledger: Option<Keyed<LedgerArg>>,
    pub ledgers: Option<Keyed<LedgersArg>>,
    pub gate: Option<Keyed<LedgerArg>>,
    pub max_calls: Option<Keyed<u64>>,
    pub cooldown: Option<Keyed<WindowLit>>,
    pub capacity: Option<Keyed<u64>>,
    pub refill: Option<Keyed<(u64, u64)>>,
    pub cost: Option<Keyed<AmountArg>>,
    pub estimate: Option<Keyed<AmountArg>>,
    pub actual: Option<Keyed<Expr>>,
    /// `stream = METER`: the body returns a stream, guarded for its life.
    pub stream: Option<Keyed<Expr>>,
    pub on_error: Option<Keyed<OnError>>,
    pub max_spend: Option<Keyed<Amount>>,
    pub window: Option<Keyed<WindowLit>>,
    pub engine: Option<Keyed<Expr>>,
    /// `cache = &CACHE`: a response cache a hit is answered from.
    pub cache: Option<Keyed<Expr>>,
    /// `cache_key = (..)`: the request, the cache's key.
    pub cache_key: Option<Keyed<Expr>>,
    pub krate: Option<Keyed<Path>>,
}

/// A value and the span of the key that introduced it.
pub struct Keyed<T> {
    pub key: Span,
    pub value: T,
}

/// `ledger = …` / `gate = …`.
pub enum LedgerArg {
    /// `(namespace, resource, principal)`: three parts (strings or integers).
    Parts(Box<[Expr; 3]>),
    /// Any expression of type `Ledger` / `&Ledger` (`Gate` / `&Gate`).
    Expr(Expr),
}

/// `ledgers = …`.
pub enum LedgersArg {
    /// `[(ns, res, principal), other_ledger, ..]`.
    List(Vec<LedgerArg>),
    /// Any expression that iterates over ledgers (`Vec<Ledger>`, …).
    Expr(Expr),
}

/// `cost = …` / `estimate = …`.
pub enum AmountArg {
    /// A literal, validated at compile time.
    Literal(Amount),
    /// An expression of type `Decimal`, checked at run time.
    Expr(Expr),
}

/// `on_error = release | estimate | <closure over &E>`.
pub enum OnError {
    Release,
    Estimate,
    Closure(Expr),
}

struct Pair {
    key: Ident,
    value: Expr,
}

impl Parse for Pair {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        // `Ident::parse_any` accepts the keyword `crate`.
        let key = Ident::parse_any(input)?;
        input
            .parse::<Token![=]>()
            .map_err(|e| syn::Error::new(e.span(), format!("expected `{key} = <value>`")))?;
        let value = input.parse()?;
        Ok(Pair { key, value })
    }
}

/// Parses the attribute's arguments; `keys` are the keys of this attribute
/// (named in the error for an unknown key).
pub fn parse_args(
    tokens: proc_macro2::TokenStream,
    attr: &str,
    keys: &[&str],
) -> syn::Result<Args> {
    syn::parse::Parser::parse2(|input: ParseStream| Args::parse(input, attr, keys), tokens)
}

impl Args {
    fn parse(input: ParseStream, attr: &str, keys: &[&str]) -> syn::Result<Self> {
        let pairs = Punctuated::<Pair, Token![,]>::parse_terminated(input)?;
        let mut args = Args::default();
        for Pair { key, value } in pairs {
            let name = key.to_string();
            let span = key.span();
            macro_rules! set {
                ($field:ident, $value:expr) => {{
                    if args.$field.is_some() {
                        return Err(syn::Error::new(span, format!("duplicate key `{name}`")));
                    }
                    args.$field = Some(Keyed {
                        key: span,
                        value: $value,
                    });
                }};
            }
            match name.as_str() {
                "ledger" => set!(ledger, parse_ledger(value, "ledger")?),
                "ledgers" => set!(ledgers, parse_ledgers(value)?),
                "gate" => set!(gate, parse_ledger(value, "gate")?),
                "max_calls" => set!(max_calls, parse_count(value, "max_calls")?),
                "capacity" => set!(capacity, parse_count(value, "capacity")?),
                "cooldown" => set!(cooldown, parse_window(value)?),
                "refill" => set!(refill, parse_refill(value)?),
                "cost" => set!(cost, parse_amount_arg(value)?),
                "estimate" => set!(estimate, parse_amount_arg(value)?),
                "actual" => set!(actual, value),
                "stream" => set!(stream, value),
                "on_error" => set!(on_error, parse_on_error(value)),
                "max_spend" => set!(max_spend, parse_max_spend(value)?),
                "window" => set!(window, parse_window(value)?),
                "engine" => set!(engine, value),
                "cache" => set!(cache, value),
                "cache_key" => set!(cache_key, value),
                "crate" => set!(krate, parse_path(value)?),
                _ => return Err(unknown_key(&name, span, attr, keys)),
            }
        }
        Ok(args)
    }
}

/// "unknown key `x`", the keys of this attribute, and the nearest of them.
fn unknown_key(name: &str, span: Span, attr: &str, keys: &[&str]) -> syn::Error {
    let list = keys
        .iter()
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ");
    let nearest = keys
        .iter()
        .map(|k| (distance(name, k), *k))
        .filter(|(d, k)| *d <= (k.len().max(name.len()) / 3).max(1))
        .min_by_key(|(d, _)| *d);
    let hint = match nearest {
        Some((_, k)) => format!("; did you mean `{k}`?"),
        None => String::new(),
    };
    syn::Error::new(
        span,
        format!("unknown key `{name}`{hint}\n#[{attr}] takes: {list}"),
    )
}

/// Levenshtein distance (keys are short ASCII).
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = if ca == *cb {
                prev
            } else {
                1 + prev.min(cur).min(row[j])
            };
            prev = cur;
        }
    }
    row[b.len()]
}

fn parse_ledger(value: Expr, key: &str) -> syn::Result<LedgerArg> {
    let middle = if key == "gate" { "action" } else { "resource" };
    let arity_error = |span| {
        syn::Error::new(
            span,
            format!("`{key}` takes three parts: `{key} = (namespace, {middle}, principal)`"),
        )
    };
    match value {
        Expr::Tuple(tuple) => {
            let span = tuple.span();
            let parts: Vec<Expr> = tuple.elems.into_iter().collect();
            <[Expr; 3]>::try_from(parts)
                .map(|parts| LedgerArg::Parts(Box::new(parts)))
                .map_err(|_| arity_error(span))
        }
        Expr::Paren(paren) => Err(arity_error(paren.span())),
        other => Ok(LedgerArg::Expr(other)),
    }
}

fn parse_amount_arg(value: Expr) -> syn::Result<AmountArg> {
    match value {
        Expr::Lit(lit) => Ok(AmountArg::Literal(literal::amount(&lit.lit)?)),
        Expr::Unary(syn::ExprUnary {
            op: syn::UnOp::Neg(_),
            ref expr,
            ..
        }) if matches!(**expr, Expr::Lit(_)) => Err(syn::Error::new(
            value.span(),
            "amounts must be >= 0: a cost, estimate or budget cannot be negative",
        )),
        other => Ok(AmountArg::Expr(other)),
    }
}

fn parse_max_spend(value: Expr) -> syn::Result<Amount> {
    match &value {
        Expr::Lit(lit) => literal::amount(&lit.lit),
        _ => Err(syn::Error::new(
            value.span(),
            "`max_spend` must be a literal such as \"10.00\"; register computed budgets on the engine",
        )),
    }
}

fn parse_window(value: Expr) -> syn::Result<WindowLit> {
    match &value {
        Expr::Lit(syn::ExprLit {
            lit: Lit::Str(s), ..
        }) => literal::window(s),
        _ => Err(syn::Error::new(
            value.span(),
            "`window` must be a string literal: \"30s\", \"15m\", \"1h\", \"7d\", \"daily\", \"monthly\" or \"unbounded\"",
        )),
    }
}

/// `ledgers = [(ns, res, principal), (..), ..]` or an expression: a hierarchy.
fn parse_ledgers(value: Expr) -> syn::Result<LedgersArg> {
    match value {
        Expr::Array(array) if array.elems.is_empty() => Err(syn::Error::new(
            array.span(),
            "`ledgers` takes a list of ledgers: `ledgers = [(ns, res, \"user:1\"), (ns, res, \"project:a\")]`",
        )),
        Expr::Array(array) => array
            .elems
            .into_iter()
            .map(|e| parse_ledger(e, "ledgers"))
            .collect::<syn::Result<_>>()
            .map(LedgersArg::List),
        other => Ok(LedgersArg::Expr(other)),
    }
}

fn parse_count(value: Expr, key: &str) -> syn::Result<u64> {
    match &value {
        Expr::Lit(syn::ExprLit {
            lit: Lit::Int(i), ..
        }) => match i.base10_parse::<u64>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(syn::Error::new(
                i.span(),
                format!("`{key}` must be a whole number of at least 1"),
            )),
        },
        _ => Err(syn::Error::new(
            value.span(),
            format!("`{key}` must be an integer literal, e.g. `{key} = 10`"),
        )),
    }
}

/// `"5/s"`, `"10/1m"`, `"1/500ms"`: tokens per period (ms).
fn parse_refill(value: Expr) -> syn::Result<(u64, u64)> {
    let Expr::Lit(syn::ExprLit {
        lit: Lit::Str(s), ..
    }) = &value
    else {
        return Err(syn::Error::new(
            value.span(),
            "`refill` must be a string such as \"5/s\", \"10/1m\" or \"1/500ms\"",
        ));
    };
    let text = s.value();
    let err = || {
        syn::Error::new(
            s.span(),
            format!("invalid refill {text:?}: expected tokens per period, e.g. \"5/s\", \"10/1m\", \"1/500ms\""),
        )
    };
    let (tokens, period) = text.split_once('/').ok_or_else(err)?;
    let tokens: u64 = tokens
        .trim()
        .parse()
        .ok()
        .filter(|t| *t > 0)
        .ok_or_else(err)?;
    let period = period.trim();
    let period = if period.starts_with(|c: char| c.is_ascii_digit()) {
        period.to_owned()
    } else {
        format!("1{period}")
    };
    match literal::window(&LitStr::new(&period, s.span())) {
        Ok(WindowLit::RollingMillis(ms)) => Ok((tokens, ms)),
        _ => Err(err()),
    }
}

fn parse_on_error(value: Expr) -> OnError {
    if let Expr::Path(p) = &value {
        if p.path.is_ident("release") {
            return OnError::Release;
        }
        if p.path.is_ident("estimate") {
            return OnError::Estimate;
        }
    }
    OnError::Closure(value)
}

fn parse_path(value: Expr) -> syn::Result<Path> {
    match value {
        Expr::Path(p) => Ok(p.path),
        other => Err(syn::Error::new(
            other.span(),
            "`crate` takes a path, e.g. `crate = ::my_budgetgate`",
        )),
    }
}
