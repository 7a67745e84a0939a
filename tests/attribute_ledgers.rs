//! Which ledgers an attribute charges: a hierarchy (`ledgers = [...]`, all
//! or nothing, sync, async and soft mode) and ledgers computed by
//! expressions (a function's `Ledger`, a `Vec<Ledger>`, typed parts).

use std::sync::LazyLock;

use budgetgate::{guard, guard_bounded, guard_result, Budget, Decimal, Engine, Ledger};
use rust_decimal_macros::dec;
use testkit::attr::{lifetime, spent_on, ToolError};

static ENGINE: LazyLock<Engine> = LazyLock::new(Engine::in_memory);

fn spent(ns: &str, res: &str, principal: &str, budget: Budget) -> (Decimal, Decimal) {
    spent_on(&ENGINE, ns, res, principal, budget)
}

// ----- hierarchies ------------------------------------------------------------------

#[guard(ledgers = [("hier", "llm", format!("user:{user}")), ("hier", "llm", "project:a"), ("hier", "llm", "global")],
        cost = "1", engine = &*ENGINE)]
fn hier_fixed(user: u32) -> Result<u32, ToolError> {
    Ok(user)
}

#[guard_bounded(ledgers = [("hier", "llm", format!("user:{user}")), ("hier", "llm", "project:a")],
                estimate = "2", actual = |_| dec!(0.5), engine = &*ENGINE)]
async fn hier_bounded(user: u32) -> Result<(), ToolError> {
    Ok(())
}

#[test]
fn hierarchy_in_the_attribute() {
    for p in ["user:1", "user:2"] {
        ENGINE.set_budget(&Ledger::new("hier", "llm", p), lifetime(dec!(3)));
    }
    ENGINE.set_budget(&Ledger::new("hier", "llm", "project:a"), lifetime(dec!(5)));
    ENGINE.set_budget(&Ledger::new("hier", "llm", "global"), lifetime(dec!(100)));
    let spent = |p: &str| {
        ENGINE
            .status(&Ledger::new("hier", "llm", p))
            .unwrap()
            .committed()
    };
    for _ in 0..3 {
        hier_fixed(1).unwrap();
    }
    let Err(ToolError::Budget(e)) = hier_fixed(1) else {
        panic!("user:1 is out")
    };
    assert_eq!(
        e.decision().ledger().principal(),
        "user:1",
        "the blocking ledger is named"
    );
    hier_fixed(2).unwrap();
    hier_fixed(2).unwrap();
    let Err(ToolError::Budget(e)) = hier_fixed(2) else {
        panic!("the project is out")
    };
    assert_eq!(e.decision().ledger().principal(), "project:a");
    assert_eq!(
        (
            spent("user:1"),
            spent("user:2"),
            spent("project:a"),
            spent("global")
        ),
        (dec!(3), dec!(2), dec!(5), dec!(5))
    );

    ENGINE.set_budget(&Ledger::new("hier", "llm", "project:a"), lifetime(dec!(7)));
    ENGINE.set_budget(&Ledger::new("hier", "llm", "user:2"), lifetime(dec!(5)));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(hier_bounded(2)).unwrap(); // reserves 2 on both, commits 0.5 on both
    assert_eq!(
        (spent("user:2"), spent("project:a")),
        (dec!(2.5), dec!(5.5))
    );
}

#[guard_result(ledgers = [("hier-soft", "llm", "user:1"), ("hier-soft", "llm", "project:a")], cost = "2",
               engine = &*ENGINE)]
fn hier_soft() -> u32 {
    7
}

#[test]
fn hierarchy_in_soft_mode() {
    ENGINE.set_budget(
        &Ledger::new("hier-soft", "llm", "user:1"),
        lifetime(dec!(10)),
    );
    ENGINE.set_budget(
        &Ledger::new("hier-soft", "llm", "project:a"),
        lifetime(dec!(3)),
    );
    assert_eq!(hier_soft().into_value(), Some(7));
    let blocked = hier_soft();
    assert!(!blocked.is_allowed());
    assert_eq!(blocked.decision().ledger().principal(), "project:a");
    let user = ENGINE
        .status(&Ledger::new("hier-soft", "llm", "user:1"))
        .unwrap();
    assert_eq!(
        user.committed(),
        dec!(2),
        "the blocked call charged no ledger"
    );
}

// ----- ledgers from expressions --------------------------------------------------------

fn user_ledger(id: u64) -> Ledger {
    Ledger::new("expr", "tool", format!("user:{id}"))
}

fn org_chain(id: u64) -> Vec<Ledger> {
    vec![user_ledger(id), Ledger::new("expr", "tool", "org:a")]
}

#[guard(ledger = user_ledger(id), cost = "1", max_spend = "2", engine = &*ENGINE)]
fn by_expression(id: u64) -> Result<u64, ToolError> {
    Ok(id)
}

#[guard(ledger = &shared, cost = "1", max_spend = "1", engine = &*ENGINE)]
fn by_reference(shared: Ledger) -> Result<(), ToolError> {
    Ok(())
}

#[guard(ledger = ("expr", "int", id), cost = "1", max_spend = "1", engine = &*ENGINE)]
fn integer_principal(id: u64) -> Result<(), ToolError> {
    Ok(())
}

#[guard(ledgers = org_chain(id), cost = "1", engine = &*ENGINE)]
fn chain(id: u64) -> Result<(), ToolError> {
    Ok(())
}

#[guard_bounded(ledgers = [user_ledger(id), ("expr", "tool", "org:a")], estimate = "1",
                actual = |_| dec!(0.5), engine = &*ENGINE)]
fn mixed_list(id: u64) -> Result<(), ToolError> {
    Ok(())
}

#[guard(ledgers = vec![user_ledger(id), Ledger::new("expr", "tool", "org:a"), user_ledger(id)], cost = "1", engine = &*ENGINE)]
fn twice(id: u64) -> Result<(), ToolError> {
    Ok(())
}

#[test]
fn ledgers_from_expressions() {
    by_expression(1).unwrap();
    by_expression(1).unwrap();
    assert!(matches!(by_expression(1), Err(ToolError::Budget(_))));
    assert_eq!(
        spent("expr", "tool", "user:1", lifetime(dec!(2))).0,
        dec!(2)
    );

    let shared = Ledger::new("expr", "shared", "p");
    by_reference(shared.clone()).unwrap();
    assert!(by_reference(shared).is_err());

    integer_principal(42).unwrap();
    assert!(integer_principal(42).is_err());
    assert_eq!(spent("expr", "int", "42", lifetime(dec!(1))).0, dec!(1));

    ENGINE.set_budget(&user_ledger(7), lifetime(dec!(10)));
    ENGINE.set_budget(&Ledger::new("expr", "tool", "org:a"), lifetime(dec!(10)));
    chain(7).unwrap();
    mixed_list(7).unwrap();
    let status = |l: &Ledger| ENGINE.status(l).unwrap().committed();
    assert_eq!(status(&user_ledger(7)), dec!(1.5));
    assert_eq!(status(&Ledger::new("expr", "tool", "org:a")), dec!(1.5));

    // A hierarchy that names one ledger twice still runs.
    ENGINE.set_budget(&user_ledger(8), lifetime(dec!(10)));
    twice(8).unwrap();
    assert_eq!(status(&user_ledger(8)), dec!(1), "charged once");
    assert_eq!(status(&Ledger::new("expr", "tool", "org:a")), dec!(2.5));
}
