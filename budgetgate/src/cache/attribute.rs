//! What `#[guard_bounded(cache = …, cache_key = …)]` needs of a cache: the
//! cache's part of a call (look up, single-flight, count, insert) around a
//! miss the attribute guards itself — with its call-site budget, its
//! `on_error`, its hierarchy, the run budgets in scope.

use std::future::Future;
use std::hash::Hash;

use rust_decimal::Decimal;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{ResponseCache, SharedCache};
use crate::Engine;

/// A cache an attribute can answer from: a [`ResponseCache<K, V>`] (`V:
/// Clone`) or a [`SharedCache<K, V>`] (`K: Serialize`, `V: Serialize +
/// DeserializeOwned`), or a reference, `Arc` or `LazyLock` of one. You never
/// implement this.
#[diagnostic::on_unimplemented(
    message = "`cache = …` needs a `ResponseCache<K, V>` or a `SharedCache<K, V>` keyed by the `cache_key` (`{K}`) and holding the function's `Ok` type (`{V}`), found `{Self}`",
    label = "expected a cache of `{K}` → `{V}`",
    note = "a `ResponseCache` needs `{K}: Hash + Eq + Clone` and `{V}: Clone`; a `SharedCache` needs `{K}: Serialize` and `{V}: Serialize + DeserializeOwned`"
)]
pub trait AttributeCache<K, V> {
    /// A hit's value, or what `miss` returned (its value cached with the
    /// cost recorded for it). `miss` is only polled on a miss.
    fn call_cached<E, Fut>(
        &self,
        engine: &Engine,
        key: K,
        miss: Fut,
    ) -> impl Future<Output = Result<V, E>>
    where
        Fut: Future<Output = Result<(V, Decimal), E>>;
}

#[diagnostic::do_not_recommend]
impl<K: Hash + Eq + Clone, V: Clone> AttributeCache<K, V> for ResponseCache<K, V> {
    async fn call_cached<E, Fut>(&self, _engine: &Engine, key: K, miss: Fut) -> Result<V, E>
    where
        Fut: Future<Output = Result<(V, Decimal), E>>,
    {
        self.call_with(key, miss)
            .await
            .map(super::Cached::into_value)
    }
}

#[diagnostic::do_not_recommend]
impl<K: Serialize, V: Serialize + DeserializeOwned> AttributeCache<K, V> for SharedCache<K, V> {
    async fn call_cached<E, Fut>(&self, engine: &Engine, key: K, miss: Fut) -> Result<V, E>
    where
        Fut: Future<Output = Result<(V, Decimal), E>>,
    {
        self.call_with(engine, &key, miss)
            .await
            .map(super::Cached::into_value)
    }
}

/// A handle on a cache is that cache: `&C`, `Arc<C>`, `LazyLock<C>`.
macro_rules! forward {
    ($($unsized:ident)? : $handle:ty) => {
        #[diagnostic::do_not_recommend]
        impl<K, V, C: AttributeCache<K, V> $(+ ?$unsized)?> AttributeCache<K, V> for $handle {
            fn call_cached<E, Fut>(
                &self,
                engine: &Engine,
                key: K,
                miss: Fut,
            ) -> impl Future<Output = Result<V, E>>
            where
                Fut: Future<Output = Result<(V, Decimal), E>>,
            {
                (**self).call_cached(engine, key, miss)
            }
        }
    };
}

forward!(Sized: &C);
forward!(Sized: std::sync::Arc<C>);
forward!(: std::sync::LazyLock<C>);
