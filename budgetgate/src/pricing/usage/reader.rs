//! The strict field reader every usage parser is built on: counts that
//! must be integers, `null` refused where a count is required, parts checked
//! against wholes, and another provider's fields named when they appear.

use super::*;

pub(super) struct Reader<'a> {
    parser: &'static str,
    obj: &'a serde_json::Map<String, serde_json::Value>,
}

impl<'a> Reader<'a> {
    pub(super) fn new(
        parser: &'static str,
        usage: &'a serde_json::Value,
    ) -> Result<Self, UsageError> {
        let obj = usage.as_object().ok_or_else(|| UsageError::NotAnObject {
            parser,
            found: abbreviate(usage),
        })?;
        Ok(Reader { parser, obj })
    }

    pub(super) fn refuse(&self, keys: &[(&'static str, &'static str)]) -> Result<(), UsageError> {
        match keys.iter().find(|(k, _)| self.obj.contains_key(*k)) {
            Some((key, looks_like)) => Err(UsageError::WrongShape {
                parser: self.parser,
                key,
                looks_like,
            }),
            None => Ok(()),
        }
    }

    pub(super) fn has(&self, field: &str) -> bool {
        self.obj.contains_key(field)
    }

    /// The value at a dotted path; `None` if it or a parent is absent or null.
    pub(super) fn optional_raw(&self, path: &str) -> Option<&'a serde_json::Value> {
        let mut parts = path.split('.');
        let mut v = self.obj.get(parts.next()?)?;
        for p in parts {
            v = v.as_object()?.get(p)?;
        }
        (!v.is_null()).then_some(v)
    }

    pub(super) fn count(&self, path: &str, v: &serde_json::Value) -> Result<u64, UsageError> {
        v.as_u64().ok_or_else(|| UsageError::NotACount {
            parser: self.parser,
            field: path.to_owned(),
            value: abbreviate(v),
        })
    }

    /// An optional count: absent or null is 0; a parent that is not an
    /// object, or a value that is not a count, is an error.
    pub(super) fn optional(&self, path: &str) -> Result<u64, UsageError> {
        if let Some((parent, _)) = path.rsplit_once('.') {
            if let Some(p) = self.optional_raw(parent) {
                if !p.is_object() {
                    return Err(UsageError::NotACount {
                        parser: self.parser,
                        field: parent.to_owned(),
                        value: abbreviate(p),
                    });
                }
            }
        }
        self.optional_raw(path)
            .map_or(Ok(0), |v| self.count(path, v))
    }

    /// A required top-level count: absent is [`UsageError::Missing`], null
    /// [`UsageError::NotACount`].
    pub(super) fn required(&self, field: &'static str) -> Result<u64, UsageError> {
        match self.obj.get(field) {
            None => Err(self.missing(field)),
            Some(v) => self.count(field, v),
        }
    }

    /// The `tokenCount` of `modality` in a `[{modality, tokenCount}]` list.
    pub(super) fn modality(&self, list: &str, modality: &str) -> Result<u64, UsageError> {
        let Some(items) = self.optional_raw(list) else {
            return Ok(0);
        };
        let bad = || UsageError::NotACount {
            parser: self.parser,
            field: list.to_owned(),
            value: abbreviate(items),
        };
        let mut total = 0u64;
        for item in items.as_array().ok_or_else(bad)? {
            if item.get("modality").and_then(|m| m.as_str()) == Some(modality) {
                let n = match item.get("tokenCount") {
                    None | Some(serde_json::Value::Null) => 0,
                    Some(v) => v.as_u64().ok_or_else(bad)?,
                };
                total = total.checked_add(n).ok_or_else(bad)?;
            }
        }
        Ok(total)
    }

    /// An optional string field (absent or null: `None`); another JSON type
    /// is [`UsageError::UnknownValue`].
    pub(super) fn text(&self, field: &str) -> Result<Option<&'a str>, UsageError> {
        match self.optional_raw(field) {
            None => Ok(None),
            Some(v) => v.as_str().map(Some).ok_or_else(|| self.unknown(field)),
        }
    }

    /// [`UsageError::UnknownValue`] for `field`'s value.
    pub(super) fn unknown(&self, field: &str) -> UsageError {
        UsageError::UnknownValue {
            parser: self.parser,
            field: field.to_owned(),
            value: self.optional_raw(field).map_or("null".into(), abbreviate),
        }
    }

    pub(super) fn missing(&self, field: &'static str) -> UsageError {
        UsageError::Missing {
            parser: self.parser,
            field,
            keys: self.obj.keys().cloned().collect(),
        }
    }

    pub(super) fn part_of(
        &self,
        part: u64,
        name: &str,
        whole: u64,
        of: &str,
    ) -> Result<(), UsageError> {
        if part > whole {
            return Err(UsageError::Exceeds {
                parser: self.parser,
                part: name.to_owned(),
                part_tokens: part,
                whole: of.to_owned(),
                whole_tokens: whole,
            });
        }
        Ok(())
    }

    pub(super) fn sum(&self, counts: &[u64], what: &str) -> Result<u64, UsageError> {
        counts
            .iter()
            .try_fold(0u64, |a, b| a.checked_add(*b))
            .ok_or_else(|| UsageError::NotACount {
                parser: self.parser,
                field: what.to_owned(),
                value: format!("{counts:?} add up past u64"),
            })
    }
}
