// `dec!` reads a decimal number exactly; exponents and type suffixes are
// refused at the literal.
fn main() {
    let _ = budgetgate::dec!(1e3);
    let _ = budgetgate::dec!(1.5f64);
    let _ = budgetgate::dec!(1, 2);
}
