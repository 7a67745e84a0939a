//! The kill switch beside the charge scripts. The scripts touch only their
//! ledgers' keys (one hash tag per ledger), so the pause hash is read in
//! the same round trip, after the script; a charge made by a request that
//! finds its ledger paused is taken back by id before the call returns.
//!
//! A pause set before a request was sent is always seen: the read runs
//! after the script, on the same connection. A request concurrent with the
//! pause may go either way. While a ledger is paused each of its calls
//! costs a second round trip when its charge fitted (the take-back). If the
//! take-back itself fails, the call gets a store error naming the amount:
//! a fail-closed engine then cancels the charge by id in the background,
//! as for any lost outcome; a fail-open one admits the call (the store
//! failed) and records it by id — the money stays exact, but the pause is
//! not honoured for that one call.

use super::*;
use crate::store::{Nanos, ReservationId};

/// The kill switch, read beside a charge in the same round trip (`HMGET`
/// of the pause hash's fields that cover the charge's ledgers, after the
/// script): the charge scripts touch only their ledgers' keys, so every
/// key a single-ledger script touches shares that ledger's hash tag. A
/// pause set before the request was sent is always seen (the read runs
/// after it); a charge the script made meanwhile is taken back by id.
pub(super) struct PauseRead {
    pub(super) key: String,
    /// `*`, then each ledger's namespace and ledger fields.
    pub(super) fields: Vec<String>,
}

impl PauseRead {
    pub(super) fn pack(&self, request: &mut Request) {
        request
            .command(2 + self.fields.len())
            .arg("HMGET")
            .arg(&self.key);
        for field in &self.fields {
            request.arg(field);
        }
    }

    pub(super) fn add(&self, pipe: &mut ::redis::Pipeline) {
        pipe.cmd("HMGET").arg(&self.key).arg(&self.fields);
    }

    /// Which ledger the reply says is paused: `Some(j)` for the `j`-th
    /// (everything paused: the first), `None` if none is.
    pub(super) fn paused(&self, reply: Reply) -> Result<Option<usize>, StoreError> {
        match reply {
            Reply::Array(values) => Ok(values
                .iter()
                .position(|v| !matches!(v, Reply::Nil))
                .map(|i| i.saturating_sub(1) / 2)),
            Reply::Error(message) => Err(StoreError::Backend(format!(
                "reading the kill switch failed: {message}"
            ))),
            other => Err(StoreError::Backend(format!(
                "unexpected reply to the kill switch's HMGET: {other:?}"
            ))),
        }
    }
}

/// A fixed cost without an id gets one, so a charge made before the
/// pause was seen can be taken back by it.
pub(super) fn with_id<'a>(request: &ChargeRequest<'a>) -> ChargeRequest<'a> {
    let mut request = *request;
    if request.hold.is_none() && request.id.is_none() {
        request.id = Some(ReservationId::new());
    }
    request
}

/// The settle that takes back what `request` charged (a hold or a fixed
/// cost, by its id); a late copy of the charge is refused after it.
pub(super) fn take_back<'a>(request: &ChargeRequest<'a>) -> SettleRequest<'a> {
    SettleRequest {
        ledger: request.ledger,
        limits: request.limits,
        id: request
            .hold
            .map(|h| h.id)
            .or(request.id)
            .unwrap_or_default(),
        reserved: request.amount,
        actual: None,
        record_if_missing: false,
        cancel: true,
    }
}

/// The error of a charge refused by the kill switch whose take-back
/// failed: the charge may still count, so the caller settles it by id.
pub(super) fn not_taken_back(requests: &[ChargeRequest<'_>], error: StoreError) -> StoreError {
    let ledgers: Vec<String> = requests.iter().map(|r| r.ledger.to_string()).collect();
    let amount: Nanos = requests.iter().map(|r| r.amount).sum();
    StoreError::Unavailable(format!(
        "{} is paused, and the {} charged before the pause was seen could not be taken back yet: {error}",
        ledgers.join(", "),
        crate::amount::from_nanos(amount)
    ))
}

impl RedisStore {
    /// A charge script and the kill switch's read, in one round trip on a
    /// sync connection.
    fn script_and_pause(
        &self,
        call: &Call,
        pause: &PauseRead,
    ) -> Result<(Vec<Vec<String>>, Option<Reply>), StoreError> {
        self.eval_pipeline_blocking_with(std::slice::from_ref(call), Some(pause))
    }

    /// [`RedisStore::script_and_pause`] on the async connection (the read
    /// comes back too, to judge the reply).
    async fn script_and_pause_async(
        &self,
        call: Call,
        pause: PauseRead,
    ) -> Result<(Vec<Vec<String>>, Option<Reply>, PauseRead), StoreError> {
        let con = self.async_con.clone();
        let wait = self.wait_for(std::slice::from_ref(&call)).cloned();
        let op = async move {
            eval_async_with(
                &con,
                std::slice::from_ref(&call),
                wait.as_ref(),
                Some(&pause),
            )
            .await
            .map(|(replies, paused)| (replies, paused, pause))
        };
        self.run_async(op).await
    }

    /// [`Store::charge`]: the script and the kill switch in one round trip.
    pub(super) fn charge_now(
        &self,
        request: &ChargeRequest<'_>,
    ) -> Result<ChargeOutcome, StoreError> {
        let request = with_id(request);
        let call = self.charge_call(&request);
        let packing = Packing::of(request.limits);
        let pause = self.pause_read([request.ledger]);
        let (mut replies, paused) = self.script_and_pause(&call, &pause)?;
        let outcome = parse_charge(replies.pop().unwrap_or_default(), &packing)?;
        let paused = pause.paused(paused.unwrap_or(Reply::Nil))?;
        if paused.is_none() {
            return Ok(outcome);
        }
        if outcome.admitted {
            let undo = self.settle_call(&take_back(&request));
            self.eval_blocking(undo)
                .and_then(parse_settle)
                .map_err(|e| not_taken_back(&[request], e))?;
        }
        Ok(ChargeOutcome::paused(outcome.at))
    }

    /// [`Store::charge_async`]'s work.
    pub(super) async fn charge_later(
        &self,
        request: ChargeRequest<'_>,
    ) -> Result<ChargeOutcome, StoreError> {
        let request = with_id(&request);
        let call = self.charge_call(&request);
        let packing = Packing::of(request.limits);
        let pause = self.pause_read([request.ledger]);
        let (mut replies, paused, pause) = self.script_and_pause_async(call, pause).await?;
        let outcome = parse_charge(replies.pop().unwrap_or_default(), &packing)?;
        let paused = pause.paused(paused.unwrap_or(Reply::Nil))?;
        if paused.is_none() {
            return Ok(outcome);
        }
        if outcome.admitted {
            let undo = self.eval(self.settle_call(&take_back(&request)));
            self.run_async(undo)
                .await
                .and_then(parse_settle)
                .map_err(|e| not_taken_back(&[request], e))?;
        }
        Ok(ChargeOutcome::paused(outcome.at))
    }

    /// [`Store::charge_many`]: the hierarchy's script and the kill switch
    /// in one round trip.
    pub(super) fn charge_many_now(
        &self,
        requests: &[ChargeRequest<'_>],
    ) -> Result<ManyOutcome, StoreError> {
        let requests: Vec<ChargeRequest<'_>> = requests.iter().map(with_id).collect();
        let call = self.charge_many_call(&requests)?;
        let packings: Vec<Packing> = requests.iter().map(|r| Packing::of(r.limits)).collect();
        let pause = self.pause_read(requests.iter().map(|r| r.ledger));
        let (mut replies, paused) = self.script_and_pause(&call, &pause)?;
        let outcome = parse_many(replies.pop().unwrap_or_default(), &packings)?;
        let Some(index) = pause.paused(paused.unwrap_or(Reply::Nil))? else {
            return Ok(outcome);
        };
        let at = many_at(&outcome);
        if let ManyOutcome::Admitted(_) = outcome {
            let undo: Vec<Call> = requests
                .iter()
                .map(|r| self.settle_call(&take_back(r)))
                .collect();
            self.eval_pipeline_blocking(&undo)
                .and_then(|replies| {
                    replies
                        .into_iter()
                        .map(parse_settle)
                        .collect::<Result<Vec<_>, _>>()
                })
                .map_err(|e| not_taken_back(&requests, e))?;
        }
        Ok(ManyOutcome::Refused {
            index,
            outcome: ChargeOutcome::paused(at),
        })
    }

    /// [`Store::charge_many_async`]'s work.
    pub(super) async fn charge_many_later(
        &self,
        requests: Vec<ChargeRequest<'_>>,
    ) -> Result<ManyOutcome, StoreError> {
        let requests: Vec<ChargeRequest<'_>> = requests.iter().map(with_id).collect();
        let call = self.charge_many_call(&requests)?;
        let packings: Vec<Packing> = requests.iter().map(|r| Packing::of(r.limits)).collect();
        let pause = self.pause_read(requests.iter().map(|r| r.ledger));
        let (mut replies, paused, pause) = self.script_and_pause_async(call, pause).await?;
        let outcome = parse_many(replies.pop().unwrap_or_default(), &packings)?;
        let Some(index) = pause.paused(paused.unwrap_or(Reply::Nil))? else {
            return Ok(outcome);
        };
        let at = many_at(&outcome);
        if let ManyOutcome::Admitted(_) = outcome {
            let undo = self.eval_pipeline(
                requests
                    .iter()
                    .map(|r| self.settle_call(&take_back(r)))
                    .collect(),
            );
            self.run_async(undo)
                .await
                .and_then(|replies| {
                    replies
                        .into_iter()
                        .map(parse_settle)
                        .collect::<Result<Vec<_>, _>>()
                })
                .map_err(|e| not_taken_back(&requests, e))?;
        }
        Ok(ManyOutcome::Refused {
            index,
            outcome: ChargeOutcome::paused(at),
        })
    }
}

/// The store's time of a hierarchy's charge.
fn many_at(outcome: &ManyOutcome) -> i64 {
    match outcome {
        ManyOutcome::Admitted(outcomes) => outcomes.first().map_or(0, |o| o.at),
        ManyOutcome::Refused { outcome, .. } => outcome.at,
    }
}
