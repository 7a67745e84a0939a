//! Building each script's call for a request: its keys (the ledger's hash
//! tag) and its arguments, numbers packed as the scripts read them.

use super::*;

impl RedisStore {
    /// The scripts' time argument: empty for the server's `TIME`.
    pub(super) fn now_arg(&self) -> String {
        match &self.time {
            TimeSource::Server => String::new(),
            TimeSource::Clock(c) => c.now_micros().to_string(),
        }
    }

    /// `prefix:{ns:res:principal}`: every key of the ledger starts with it.
    pub(super) fn base(&self, ledger: &Ledger) -> String {
        let mut base = String::with_capacity(self.prefix.len() + 64);
        base.push_str(&self.prefix);
        base.push_str(":{");
        encode_part(&mut base, ledger.namespace());
        base.push(':');
        encode_part(&mut base, ledger.resource());
        base.push(':');
        encode_part(&mut base, ledger.principal());
        base.push('}');
        base
    }

    /// [`keep_arg`] for this store.
    pub(super) fn keep_arg(&self, margin_ms: u128) -> Vec<u8> {
        if margin_ms == self::margin_ms(Duration::ZERO) {
            return self.keep_default.clone();
        }
        keep_arg(self.idle_ttl, margin_ms)
    }

    /// A budget script's call on one ledger: keys `[meta]` (the scripts
    /// find the ledger's other keys from it), arguments `[now, keep]`; the
    /// caller appends its own.
    pub(super) fn call(
        &self,
        script: &'static Lua,
        ledger: &Ledger,
        ttl: Duration,
    ) -> (Call, String) {
        let base = self.base(ledger);
        let mut keys = Vec::with_capacity(2);
        keys.push(key(&base, ":meta"));
        let mut args = Vec::with_capacity(16);
        args.extend([self.now_arg().into_bytes(), self.keep_arg(margin_ms(ttl))]);
        (
            Call {
                script,
                keys,
                args,
                records_spend: false,
            },
            base,
        )
    }

    /// A charge: keys `[meta]`; arguments `[now, keep]` and the charge as
    /// `read_charge` in common.lua reads it; and the kill-switch read sent
    /// beside it.
    pub(super) fn charge_call(&self, request: &ChargeRequest<'_>) -> (Call, PauseRead) {
        let ttl = request.hold.map_or(Duration::ZERO, |h| h.ttl);
        let script: &'static Lua = if self.fast_paths {
            &CHARGE
        } else {
            &CHARGE_GENERAL
        };
        let (mut call, base) = self.call(script, request.ledger, ttl);
        self.charge_args(request, &mut call.args);
        call.records_spend = request.hold.is_none();
        (call, self.pause_read([base.as_str()]))
    }

    /// One charge's arguments: its numbers, amount, id and window ids.
    pub(super) fn charge_args(&self, request: &ChargeRequest<'_>, args: &mut Vec<Vec<u8>>) {
        let mut numbers = Packed::with_room(5 + 5 * request.limits.len());
        // A limit with several soft-limit thresholds travels as one packed
        // limit per threshold (same window and maximum; see `Packing`).
        let packed: usize = request.limits.iter().map(packed_count).sum();
        numbers.push(count(packed));
        for limit in request.limits {
            if !limit.warns() {
                numbers
                    .push(window_us(limit.window()))
                    .amount(limit.max_nanos())
                    .push(-1)
                    .push(0);
            }
            for (_, warn) in limit.warn_thresholds() {
                numbers
                    .push(window_us(limit.window()))
                    .amount(limit.max_nanos())
                    .amount(warn);
            }
        }
        // hold: 1 a reservation (its TTL), 2 a fixed cost remembered by id
        // for the settled retention (every charge has one: `with_id`).
        let (id, kind, ttl_us) = match request.hold {
            Some(h) => (h.id, 1, micros(h.ttl)),
            None => (request.id.unwrap_or_default(), 2, self.retention_us),
        };
        numbers.amount(request.amount).push(kind).push(ttl_us);
        args.extend([numbers.0, amount_text(request.amount), id.hex().to_vec()]);
        for limit in request.limits {
            let wid = wid(limit.window()).into_bytes();
            for _ in 1..packed_count(limit) {
                args.push(wid.clone());
            }
            args.push(wid);
        }
    }

    /// The kill-switch read sent after a charge of the ledgers whose
    /// `bases` are given, in the same round trip: `HMGET` of the pause
    /// hash's fields that cover them (`*`, then each ledger's namespace and
    /// ledger fields).
    fn pause_read<'b>(&self, bases: impl IntoIterator<Item = &'b str>) -> PauseRead {
        let mut fields = vec!["*".to_owned()];
        for base in bases {
            let (ns, l) = self.pause_fields_of(base);
            fields.extend([ns, l]);
        }
        PauseRead {
            key: self.pause_key.clone(),
            fields,
        }
    }

    /// The pause-hash fields that cover a ledger: `n:<ns>` and
    /// `l:<ns>:<resource>:<principal>` (parts percent-encoded).
    pub(super) fn pause_fields(&self, ledger: &Ledger) -> (String, String) {
        self.pause_fields_of(&self.base(ledger))
    }

    /// [`RedisStore::pause_fields`] from a ledger's `base` (which holds its
    /// encoded parts).
    pub(super) fn pause_fields_of(&self, base: &str) -> (String, String) {
        // base = prefix + ":{" + ns:res:principal + "}"; parts contain no ':'.
        let inner = base
            .get(self.prefix.len() + 2..base.len().saturating_sub(1))
            .unwrap_or_default();
        let ns = inner.split(':').next().unwrap_or_default();
        (format!("n:{ns}"), format!("l:{inner}"))
    }

    /// A settle: keys `[meta, tombstone]`; arguments as settle.lua reads
    /// them.
    pub(super) fn settle_call(&self, request: &SettleRequest<'_>) -> Call {
        let script: &'static Lua = if self.fast_paths {
            &SETTLE
        } else {
            &SETTLE_GENERAL
        };
        let (mut call, base) = self.call(script, request.ledger, Duration::ZERO);
        let mut tombstone = key(&base, ":d:");
        tombstone.push_str(std::str::from_utf8(&request.id.hex()).unwrap_or_default());
        call.keys.push(tombstone);
        call.records_spend = request.actual.is_some();
        let mut numbers = Packed::with_room(7 + request.limits.len());
        numbers.push(count(request.limits.len()));
        for limit in request.limits {
            numbers.push(window_us(limit.window()));
        }
        let actual = request.actual.unwrap_or(0);
        numbers
            .amount(request.reserved)
            .amount(actual)
            .push(match (request.actual, request.cancel) {
                (Some(_), _) => 1,
                (None, false) => 0,
                (None, true) => 2,
            })
            .push(i64::from(request.record_if_missing));
        call.args.extend([
            numbers.0,
            request.id.hex().to_vec(),
            amount_text(request.reserved),
            amount_text(actual),
            self.retention_ms.clone(),
        ]);
        call.args
            .extend(request.limits.iter().map(|l| wid(l.window()).into_bytes()));
        call
    }

    /// A hierarchy's charge, and the kill-switch read sent beside it.
    pub(super) fn charge_many_call(
        &self,
        requests: &[ChargeRequest<'_>],
    ) -> Result<(Call, PauseRead), StoreError> {
        for (i, a) in requests.iter().enumerate() {
            if requests[..i].iter().any(|b| b.ledger == a.ledger) {
                return Err(StoreError::Backend(format!(
                    "ledger {} is listed twice in one charge",
                    a.ledger
                )));
            }
        }
        let mut keys = Vec::with_capacity(requests.len());
        // The widest margin of the requests' reservation TTLs.
        let margin = requests
            .iter()
            .map(|r| margin_ms(r.hold.map_or(Duration::ZERO, |h| h.ttl)))
            .max()
            .unwrap_or_else(|| margin_ms(Duration::ZERO));
        let mut args = vec![
            self.now_arg().into_bytes(),
            self.keep_arg(margin),
            requests.len().to_string().into_bytes(),
        ];
        let mut bases = Vec::with_capacity(requests.len());
        for r in requests {
            let base = self.base(r.ledger);
            keys.push(key(&base, ":meta"));
            self.charge_args(r, &mut args);
            bases.push(base);
        }
        let call = Call {
            script: &CHARGE_MANY,
            keys,
            args,
            records_spend: requests.iter().any(|r| r.hold.is_none()),
        };
        Ok((call, self.pause_read(bases.iter().map(String::as_str))))
    }

    pub(super) fn rate_call(&self, request: &RateRequest<'_>) -> Call {
        let base = self.base(request.gate.key());
        let policy = request.policy;
        let now = self.now_arg();
        let us = |d: Duration| d.as_micros().to_string();
        let (max, window) = policy
            .max_calls_limit()
            .map_or(("0".to_owned(), "0".to_owned()), |(m, w)| {
                (m.to_string(), us(w))
            });
        let cooldown = policy.cooldown_limit().map_or("-1".to_owned(), us);
        let (cap, k, period) = policy
            .bucket_limit()
            .map_or(("0".to_owned(), "1".to_owned(), "1".to_owned()), |b| {
                (b.capacity.to_string(), b.tokens.to_string(), us(b.period))
            });
        // Kept while a window, cooldown or bucket could still matter.
        let longest = [
            policy.max_calls_limit().map(|(_, w)| w),
            policy.cooldown_limit(),
            policy.bucket_limit().map(|b| {
                b.period
                    .saturating_mul(u32::try_from(b.capacity).unwrap_or(u32::MAX))
            }),
        ]
        .into_iter()
        .flatten()
        .max()
        .unwrap_or_default();
        let keep_ms = (longest.as_millis() + 3_600_000).to_string();
        Call {
            script: &RATE,
            keys: vec![format!("{base}:rlog"), format!("{base}:rstate")],
            args: [
                now,
                max,
                window,
                cooldown,
                cap,
                k,
                period,
                request.call_id.to_string(),
                keep_ms,
                if request.record { "1" } else { "0" }.to_owned(),
            ]
            .map(String::into_bytes)
            .into(),
            records_spend: false,
        }
    }

    /// A status: keys `[meta]`; arguments as status.lua reads them.
    pub(super) fn status_call(&self, ledger: &Ledger, limits: &[Limit]) -> Call {
        let (mut call, _) = self.call(&STATUS, ledger, Duration::ZERO);
        let mut numbers = Packed::with_room(1 + limits.len());
        numbers.push(count(limits.len()));
        for limit in limits {
            numbers.push(window_us(limit.window()));
        }
        call.args.push(numbers.0);
        call.args
            .extend(limits.iter().map(|l| wid(l.window()).into_bytes()));
        call
    }
}
