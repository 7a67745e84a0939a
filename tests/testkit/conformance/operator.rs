//! What operators do to a store: reset a ledger, store budgets as shared data.

use super::*;
use budgetgate::shared::SharedBudget;

/// A reset forgets committed spend and holds in every window of the ledger
/// (and no other), is reported with who and how much, and a reservation
/// made before it still commits (late, at the commit's time).
pub fn reset_forgets_spend(f: &dyn StoreFactory) {
    let resets = Arc::new(Mutex::new(Vec::new()));
    let seen = resets.clone();
    let clock = ManualClock::new(T0);
    let store = f.store(&clock);
    let engine = Engine::builder()
        .shared_store(store.clone())
        .listener(move |e: &Event<'_>| {
            if let Event::Reset {
                ledger,
                by,
                committed,
                reserved,
            } = e
            {
                seen.lock().unwrap().push((
                    ledger.to_string(),
                    by.to_string(),
                    *committed,
                    *reserved,
                ));
            }
        })
        .build();
    let a = fresh_ledger("a");
    let b = Ledger::new(a.namespace(), a.resource(), "b");
    engine.set_budgets(&a, [rolling(dec!(10), 60), lifetime(dec!(20))]);
    engine.set_budget(&b, lifetime(dec!(10)));
    assert!(engine.check(&a, dec!(3)).is_allowed());
    assert!(engine.check(&b, dec!(4)).is_allowed());
    let running = engine.reserve(&a, dec!(2)).expect("fits");

    let before = engine
        .reset_ledger(&a, "tester")
        .expect("reset")
        .expect("a has a budget");
    assert_eq!((before.committed(), before.reserved()), (dec!(3), dec!(2)));
    assert_eq!(
        resets.lock().unwrap().as_slice(),
        &[(a.to_string(), "tester".to_owned(), dec!(3), dec!(2))]
    );
    let after = engine.status(&a).expect("status");
    for cap in after.caps() {
        assert_eq!(
            (cap.committed(), cap.reserved()),
            (dec!(0), dec!(0)),
            "{cap:?}"
        );
    }
    assert_eq!(
        engine.status(&b).expect("status").committed(),
        dec!(4),
        "b untouched"
    );
    assert!(
        engine.check(&a, dec!(10)).is_allowed(),
        "the whole rolling cap is back"
    );
    clock.advance(Duration::from_secs(1));
    let commit = running.commit(dec!(1)).expect("commit");
    assert!(
        commit.is_late(),
        "its hold was forgotten; the actual is still recorded"
    );
    assert_eq!(
        engine.status(&a).expect("status").caps()[1].committed(),
        dec!(11)
    );
    // A ledger without a budget can be reset too (nothing to report).
    let c = fresh_ledger("c");
    assert_eq!(engine.reset_ledger(&c, "tester").expect("reset"), None);
}

/// Operator budgets stored through one engine apply in every engine with
/// shared budgets on the store, within a second, over call-site and code
/// budgets; removing one hands the ledger back to the code.
pub fn shared_budgets_apply_everywhere(f: &dyn StoreFactory) {
    let clock = ManualClock::new(T0);
    let store = f.store(&clock);
    let writer = Engine::builder().shared_store(store.clone()).build();
    let reader = Engine::builder()
        .shared_store(store.clone())
        .shared_budgets_every(Duration::from_millis(20))
        .build();
    let a = fresh_ledger("user:1");
    reader.set_budget(&a, lifetime(dec!(100)));
    let v1 = writer
        .put_shared_budget(&SharedBudget::new(
            a.namespace(),
            a.resource(),
            "user:*",
            vec![lifetime(dec!(2))],
        ))
        .expect("stored");
    let applied = |max: Decimal| {
        let start = std::time::Instant::now();
        while start.elapsed() < Duration::from_secs(1) {
            if reader.budget_for(&a).map(|b| b.max_spend()) == Some(max) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        false
    };
    assert!(
        applied(dec!(2)),
        "the pattern beats the code's budget, within 1 s"
    );
    let d = reader.check_with(&a, Some(&lifetime(dec!(50))), dec!(3));
    assert_eq!(
        d.reason(),
        Some(BlockReason::BudgetExceeded),
        "and the call site's: {d}"
    );
    assert!(reader.check(&a, dec!(2)).is_allowed());

    let v2 = writer
        .put_shared_budget(&SharedBudget::new(
            a.namespace(),
            a.resource(),
            a.principal(),
            vec![lifetime(dec!(5)), rolling(dec!(4), 60)],
        ))
        .expect("stored");
    assert!(v2 > v1, "the version moves: {v1} then {v2}");
    assert!(applied(dec!(5)), "the exact ledger beats the pattern");
    assert_eq!(
        reader.caps_for(&a).expect("caps").budgets().len(),
        2,
        "stacked caps"
    );
    let listed = writer.shared_budgets().expect("list");
    assert_eq!(listed.len(), 2);
    assert_eq!(
        listed[0].principal, "user:*",
        "sorted by principal ('*' < '1')"
    );
    assert_eq!(listed[1].principal, a.principal());

    writer
        .remove_shared_budget(a.namespace(), a.resource(), a.principal())
        .expect("removed");
    writer
        .remove_shared_budget(a.namespace(), a.resource(), "user:*")
        .expect("removed");
    assert!(applied(dec!(100)), "back to the code's budget");
    assert!(writer.shared_budgets().expect("list").is_empty());
    assert!(matches!(
        writer.put_shared_budget(&SharedBudget::new("n", "r", "p", vec![])),
        Err(budgetgate::shared::SharedBudgetError::NoCaps)
    ));
}

/// Records: what is put is read back (any text), replaced by a later put,
/// and a key never put reads as none.
pub fn records_round_trip(f: &dyn StoreFactory) {
    let s = setup(f);
    let key = format!("res:{}", fresh_ledger("r").namespace());
    assert_eq!(s.store.get_record(&key).expect("get"), None);
    let text = r#"{"id":"00ff","ledgers":[{"principal":"user:{1}\n*"}]}"#;
    s.store
        .put_record(&key, text, Duration::from_secs(60))
        .expect("put");
    assert_eq!(
        s.store.get_record(&key).expect("get").as_deref(),
        Some(text)
    );
    s.store
        .put_record(&key, "second", Duration::from_secs(60))
        .expect("put");
    assert_eq!(
        s.store.get_record(&key).expect("get").as_deref(),
        Some("second")
    );
    assert_eq!(s.store.get_record(&format!("{key}x")).expect("get"), None);
}
