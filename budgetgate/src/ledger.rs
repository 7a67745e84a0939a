//! [`Ledger`]: the identity of one spend stream.

use std::fmt;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::Arc;

use std::sync::LazyLock;

/// One spend stream: `(namespace, resource, principal)`, for example
/// `("openai", "gpt-4o", "user:42")`.
///
/// Two ledgers are equal iff all three parts are equal; distinct ledgers share
/// no state. Any UTF-8 is legal in every part — stores encode the parts so
/// that distinct ledgers can never map to the same key.
///
/// A `Ledger` is cheap to clone (one reference count) and caches its hash, so
/// it can be built once and used on a hot path.
///
/// ```
/// use budgetgate::Ledger;
/// let ledger = Ledger::new("openai", "gpt-4o", "user:42");
/// assert_eq!(ledger.to_string(), "openai:gpt-4o@user:42");
/// assert_eq!(ledger, Ledger::new("openai", "gpt-4o", "user:42"));
/// assert_ne!(ledger, Ledger::new("openai", "gpt-4o", "user:43"));
/// ```
#[derive(Clone)]
pub struct Ledger {
    inner: Arc<Parts>,
}

struct Parts {
    namespace: Box<str>,
    resource: Box<str>,
    principal: Box<str>,
    hash: u64,
}

/// One random hasher seed per process: ledger hashes are not predictable by
/// whoever chooses principal names.
static SEED: LazyLock<std::collections::hash_map::RandomState> =
    LazyLock::new(std::collections::hash_map::RandomState::new);

impl Ledger {
    /// Builds a ledger from its three parts.
    pub fn new(
        namespace: impl Into<String>,
        resource: impl Into<String>,
        principal: impl Into<String>,
    ) -> Self {
        let namespace = namespace.into().into_boxed_str();
        let resource = resource.into().into_boxed_str();
        let principal = principal.into().into_boxed_str();
        let mut hasher = SEED.build_hasher();
        // Length-prefixed parts: ("a:b", "c") and ("a", "b:c") hash apart.
        for part in [&namespace, &resource, &principal] {
            hasher.write_usize(part.len());
            hasher.write(part.as_bytes());
        }
        let hash = hasher.finish();
        Ledger {
            inner: Arc::new(Parts {
                namespace,
                resource,
                principal,
                hash,
            }),
        }
    }

    /// The provider or domain, e.g. `"openai"`.
    pub fn namespace(&self) -> &str {
        &self.inner.namespace
    }

    /// The billable resource, e.g. `"gpt-4o"`.
    pub fn resource(&self) -> &str {
        &self.inner.resource
    }

    /// The scope of enforcement, e.g. `"user:42"`.
    pub fn principal(&self) -> &str {
        &self.inner.principal
    }

    /// The cached 64-bit hash (process-local; used by in-memory maps).
    pub(crate) fn cached_hash(&self) -> u64 {
        self.inner.hash
    }
}

impl PartialEq for Ledger {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
            || (self.inner.hash == other.inner.hash
                && self.inner.namespace == other.inner.namespace
                && self.inner.resource == other.inner.resource
                && self.inner.principal == other.inner.principal)
    }
}

impl Eq for Ledger {}

impl Hash for Ledger {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.inner.hash);
    }
}

impl fmt::Display for Ledger {
    /// `namespace:resource@principal`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}@{}",
            self.namespace(),
            self.resource(),
            self.principal()
        )
    }
}

impl fmt::Debug for Ledger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Ledger")
            .field(&self.namespace())
            .field(&self.resource())
            .field(&self.principal())
            .finish()
    }
}

impl<A: Into<String>, B: Into<String>, C: Into<String>> From<(A, B, C)> for Ledger {
    fn from((namespace, resource, principal): (A, B, C)) -> Self {
        Ledger::new(namespace, resource, principal)
    }
}

impl serde::Serialize for Ledger {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// A `Hasher` for keys that already carry a good hash ([`Ledger`], random
/// reservation ids): it passes the `u64` through instead of hashing it again.
#[derive(Default, Clone, Copy)]
pub(crate) struct PrehashedHasher(u64);

impl Hasher for PrehashedHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only reached for keys that do not write a single u64; fold them in.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 ^= n;
    }
}

pub(crate) type Prehashed = std::hash::BuildHasherDefault<PrehashedHasher>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_do_not_run_together() {
        assert_ne!(Ledger::new("a:b", "c", "d"), Ledger::new("a", "b:c", "d"));
        assert_ne!(Ledger::new("a", "b@c", "d"), Ledger::new("a", "b", "c@d"));
    }

    #[test]
    fn equal_ledgers_hash_equal() {
        let a = Ledger::new("n", "r", "p");
        let b = Ledger::new(String::from("n"), "r", "p");
        assert_eq!(a.cached_hash(), b.cached_hash());
        assert_eq!(a, b);
    }
}
