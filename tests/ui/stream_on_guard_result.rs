use budgetgate::guard_result;
#[guard_result(ledger = ("a", "b", "c"), estimate = "0.5", stream = |_: &u8| None)]
fn f() -> Vec<u8> { Vec::new() }
fn main() {}
