//! Hierarchies without a multi-ledger script: [`Store::charge_many`]'s
//! default, and the Redis store's path when a script may touch only one
//! ledger's hash tag (a Redis Cluster). Every ledger is held in one global
//! order (so two callers never wait on each other in a circle), one
//! operation each; a refusal releases the holds already made; fixed costs'
//! holds become spend once every ledger fitted. No ledger is ever
//! overspent. A fixed cost's temporary hold carries the request's id, so a
//! lost answer can be settled by that id like any other charge.

use std::time::Duration;

use super::{ChargeOutcome, ChargeRequest, Hold, ManyOutcome, SettleRequest, Store, StoreError};
use crate::ledger::Ledger;

/// How long a fixed cost's temporary hold lives if the process dies
/// between charging and committing it.
const TEMPORARY_HOLD: Duration = Duration::from_secs(60);

/// The order in which ledgers are charged: the same for every caller.
fn ledger_order(a: &Ledger, b: &Ledger) -> std::cmp::Ordering {
    (a.namespace(), a.resource(), a.principal()).cmp(&(b.namespace(), b.resource(), b.principal()))
}

fn order(requests: &[ChargeRequest<'_>]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..requests.len()).collect();
    order.sort_by(|&a, &b| ledger_order(requests[a].ledger, requests[b].ledger));
    order
}

/// The hold a request is charged with: its own, or (a fixed cost) a
/// temporary one under its id.
fn hold_of(r: &ChargeRequest<'_>) -> Hold {
    r.hold.unwrap_or(Hold {
        id: r.id.unwrap_or_default(),
        ttl: TEMPORARY_HOLD,
    })
}

fn held<'a>(r: &ChargeRequest<'a>, hold: Hold) -> ChargeRequest<'a> {
    ChargeRequest {
        hold: Some(hold),
        id: None,
        ..*r
    }
}

fn release<'a>(r: &ChargeRequest<'a>, hold: Hold) -> SettleRequest<'a> {
    SettleRequest {
        ledger: r.ledger,
        limits: r.limits,
        id: hold.id,
        reserved: r.amount,
        actual: None,
        record_if_missing: false,
        cancel: false,
    }
}

fn spend<'a>(r: &ChargeRequest<'a>, hold: Hold) -> SettleRequest<'a> {
    SettleRequest {
        actual: Some(r.amount),
        record_if_missing: true,
        ..release(r, hold)
    }
}

/// [`Store::charge_many`]'s default: holds in a fixed order, rolled back on
/// a refusal.
pub fn charge_in_order<S: Store + ?Sized>(
    store: &S,
    requests: &[ChargeRequest<'_>],
) -> Result<ManyOutcome, StoreError> {
    let mut outcomes: Vec<Option<ChargeOutcome>> = vec![None; requests.len()];
    let mut holds: Vec<(usize, Hold)> = Vec::with_capacity(requests.len());
    let release_all = |holds: &[(usize, Hold)]| {
        let releases: Vec<SettleRequest<'_>> = holds
            .iter()
            .map(|&(i, hold)| release(&requests[i], hold))
            .collect();
        let _expire_anyway = store.settle_many(&releases);
    };
    for i in order(requests) {
        let hold = hold_of(&requests[i]);
        match store.charge(&held(&requests[i], hold)) {
            Ok(outcome) if outcome.admitted => {
                outcomes[i] = Some(outcome);
                holds.push((i, hold));
            }
            Ok(outcome) => {
                release_all(&holds);
                return Ok(ManyOutcome::Refused { index: i, outcome });
            }
            Err(error) => {
                release_all(&holds);
                return Err(error);
            }
        }
    }
    // Fixed costs: the temporary holds become spend, in one batch.
    let commits: Vec<SettleRequest<'_>> = holds
        .iter()
        .filter(|&&(i, _)| requests[i].hold.is_none())
        .map(|&(i, hold)| spend(&requests[i], hold))
        .collect();
    if !commits.is_empty() {
        store.settle_many(&commits)?;
    }
    Ok(ManyOutcome::Admitted(
        outcomes.into_iter().flatten().collect(),
    ))
}

/// Async [`charge_in_order`].
pub async fn charge_in_order_async<S: Store + ?Sized>(
    store: &S,
    requests: Vec<ChargeRequest<'_>>,
) -> Result<ManyOutcome, StoreError> {
    let mut outcomes: Vec<Option<ChargeOutcome>> = vec![None; requests.len()];
    let mut holds: Vec<(usize, Hold)> = Vec::with_capacity(requests.len());
    let mut refused = None;
    for i in order(&requests) {
        let hold = hold_of(&requests[i]);
        match store.charge_async(held(&requests[i], hold)).await {
            Ok(outcome) if outcome.admitted => {
                outcomes[i] = Some(outcome);
                holds.push((i, hold));
            }
            other => {
                refused = Some(other.map(|outcome| ManyOutcome::Refused { index: i, outcome }));
                break;
            }
        }
    }
    if let Some(result) = refused {
        let releases = holds
            .iter()
            .map(|&(i, hold)| release(&requests[i], hold))
            .collect();
        let _expire_anyway = store.settle_many_async(releases).await;
        return result;
    }
    let commits: Vec<SettleRequest<'_>> = holds
        .iter()
        .filter(|&&(i, _)| requests[i].hold.is_none())
        .map(|&(i, hold)| spend(&requests[i], hold))
        .collect();
    if !commits.is_empty() {
        store.settle_many_async(commits).await?;
    }
    Ok(ManyOutcome::Admitted(
        outcomes.into_iter().flatten().collect(),
    ))
}
