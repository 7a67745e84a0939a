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

/// Fixed cost, hard mode. See `budgetgate`'s crate docs.
#[proc_macro_attribute]
pub fn guard(args: TokenStream, item: TokenStream) -> TokenStream {
    entry(Kind::Guard, args, item)
}

/// Bounded cost (reserve the estimate, commit the actual), hard mode.
#[proc_macro_attribute]
pub fn guard_bounded(args: TokenStream, item: TokenStream) -> TokenStream {
    entry(Kind::GuardBounded, args, item)
}

/// Soft mode: the function returns `budgetgate::Guarded<R>`.
#[proc_macro_attribute]
pub fn guard_result(args: TokenStream, item: TokenStream) -> TokenStream {
    entry(Kind::GuardResult, args, item)
}

/// Call-rate limit, hard mode: `Err(RateLimited.into())` when limited.
#[proc_macro_attribute]
pub fn rate_limit(args: TokenStream, item: TokenStream) -> TokenStream {
    entry(Kind::RateLimit, args, item)
}

/// Call-rate limit, soft mode: the function returns
/// `budgetgate::Guarded<R, budgetgate::RateDecision>`.
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
