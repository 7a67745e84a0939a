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
    /// A charge's script and the kill switch's read in one round trip on a
    /// sync connection: the script's reply, and which ledger is paused.
    fn script_and_pause(
        &self,
        call: &Call,
        pause: &PauseRead,
    ) -> Result<(Vec<String>, Option<usize>), StoreError> {
        let (mut replies, read) =
            self.eval_pipeline_blocking_with(std::slice::from_ref(call), Some(pause))?;
        let paused = pause.paused(read.ok_or_else(no_pause_reply)?)?;
        Ok((replies.pop().unwrap_or_default(), paused))
    }

    /// [`RedisStore::script_and_pause`] on the async connection.
    async fn script_and_pause_async(
        &self,
        call: Call,
        pause: PauseRead,
    ) -> Result<(Vec<String>, Option<usize>), StoreError> {
        let con = self.async_con.clone();
        let wait = self.wait_for(std::slice::from_ref(&call)).cloned();
        let op = async move {
            let calls = std::slice::from_ref(&call);
            let (mut replies, read) =
                eval_async_with(&con, calls, wait.as_ref(), Some(&pause)).await?;
            let paused = pause.paused(read.ok_or_else(no_pause_reply)?)?;
            Ok((replies.pop().unwrap_or_default(), paused))
        };
        self.run_async(op).await
    }

    /// Takes back what `requests` charged, in one round trip.
    fn take_back_now(&self, requests: &[ChargeRequest<'_>]) -> Result<(), StoreError> {
        let undo: Vec<Call> = requests
            .iter()
            .map(|r| self.settle_call(&take_back(r)))
            .collect();
        self.eval_pipeline_blocking(&undo)
            .and_then(all_settled)
            .map_err(|e| not_taken_back(requests, e))
    }

    /// [`RedisStore::take_back_now`] on the async connection.
    async fn take_back_later(&self, requests: &[ChargeRequest<'_>]) -> Result<(), StoreError> {
        let undo = requests
            .iter()
            .map(|r| self.settle_call(&take_back(r)))
            .collect();
        self.run_async(self.eval_pipeline(undo))
            .await
            .and_then(all_settled)
            .map_err(|e| not_taken_back(requests, e))
    }

    /// [`Store::charge`]: the script and the kill switch in one round trip.
    pub(super) fn charge_now(
        &self,
        request: &ChargeRequest<'_>,
    ) -> Result<ChargeOutcome, StoreError> {
        let request = with_id(request);
        let (call, pause) = self.charge_call(&request);
        let (reply, paused) = self.script_and_pause(&call, &pause)?;
        let outcome = parse_charge(reply, &Packing::of(request.limits))?;
        if paused.is_none() {
            return Ok(outcome);
        }
        if outcome.admitted {
            self.take_back_now(&[request])?;
        }
        Ok(ChargeOutcome::paused(outcome.at))
    }

    /// [`Store::charge_async`]'s work.
    pub(super) async fn charge_later(
        &self,
        request: ChargeRequest<'_>,
    ) -> Result<ChargeOutcome, StoreError> {
        let request = with_id(&request);
        let (call, pause) = self.charge_call(&request);
        let (reply, paused) = self.script_and_pause_async(call, pause).await?;
        let outcome = parse_charge(reply, &Packing::of(request.limits))?;
        if paused.is_none() {
            return Ok(outcome);
        }
        if outcome.admitted {
            self.take_back_later(&[request]).await?;
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
        let (call, pause) = self.charge_many_call(&requests)?;
        let (reply, paused) = self.script_and_pause(&call, &pause)?;
        let outcome = parse_many(reply, &packings(&requests))?;
        let Some(index) = paused else {
            return Ok(outcome);
        };
        if let ManyOutcome::Admitted(_) = outcome {
            self.take_back_now(&requests)?;
        }
        Ok(refused_paused(index, &outcome))
    }

    /// [`Store::charge_many_async`]'s work.
    pub(super) async fn charge_many_later(
        &self,
        requests: Vec<ChargeRequest<'_>>,
    ) -> Result<ManyOutcome, StoreError> {
        let requests: Vec<ChargeRequest<'_>> = requests.iter().map(with_id).collect();
        let (call, pause) = self.charge_many_call(&requests)?;
        let (reply, paused) = self.script_and_pause_async(call, pause).await?;
        let outcome = parse_many(reply, &packings(&requests))?;
        let Some(index) = paused else {
            return Ok(outcome);
        };
        if let ManyOutcome::Admitted(_) = outcome {
            self.take_back_later(&requests).await?;
        }
        Ok(refused_paused(index, &outcome))
    }
}

/// A pipeline that carried the kill switch's read but gave no reply for it.
fn no_pause_reply() -> StoreError {
    StoreError::Backend("no reply to the kill switch's HMGET".to_owned())
}

/// Each request's packing of its limits.
fn packings(requests: &[ChargeRequest<'_>]) -> Vec<Packing> {
    requests.iter().map(|r| Packing::of(r.limits)).collect()
}

/// Every take-back's reply is a settle outcome (any: what was charged is
/// gone, or never was).
fn all_settled(replies: Vec<Vec<String>>) -> Result<(), StoreError> {
    for reply in replies {
        parse_settle(reply)?;
    }
    Ok(())
}

/// A hierarchy's refusal by the kill switch: ledger `index` is paused.
fn refused_paused(index: usize, outcome: &ManyOutcome) -> ManyOutcome {
    ManyOutcome::Refused {
        index,
        outcome: ChargeOutcome::paused(many_at(outcome)),
    }
}

/// The store's time of a hierarchy's charge.
fn many_at(outcome: &ManyOutcome) -> i64 {
    match outcome {
        ManyOutcome::Admitted(outcomes) => outcomes.first().map_or(0, |o| o.at),
        ManyOutcome::Refused { outcome, .. } => outcome.at,
    }
}
