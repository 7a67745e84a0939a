//! Human tables for the CLI's answers.

use serde_json::Value;

use super::Request;

fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

/// Columns padded to their widest cell.
pub fn grid(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<String>| {
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            let pad = widths[i].saturating_sub(cell.chars().count());
            out.push_str(cell);
            if i + 1 < cells.len() {
                out.push_str(&" ".repeat(pad + 2));
            }
        }
        out.push('\n');
        out
    };
    let mut out = line(header.iter().map(|h| (*h).to_owned()).collect());
    for row in rows {
        out.push_str(&line(row.clone()));
    }
    out
}

/// The ledgers table.
pub fn ledgers(rows: &Value) -> String {
    let empty = Vec::new();
    let rows = rows.as_array().unwrap_or(&empty);
    if rows.is_empty() {
        return "no ledgers\n".into();
    }
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let util = r["utilisation"]
                .as_str()
                .and_then(|u| u.parse::<rust_decimal::Decimal>().ok())
                .map_or("-".to_owned(), |u| {
                    format!(
                        "{}%",
                        (u * rust_decimal::Decimal::ONE_HUNDRED)
                            .round_dp(1)
                            .normalize()
                    )
                });
            vec![
                s(&r["ledger"]["display"]),
                s(&r["spent_in_window"]),
                s(&r["reserved"]),
                s(&r["remaining"]),
                s(&r["max_spend"]),
                s(&r["window"]),
                util,
                s(&r["resets_at"]),
            ]
        })
        .collect();
    grid(
        &[
            "LEDGER",
            "SPENT",
            "RESERVED",
            "REMAINING",
            "MAX",
            "WINDOW",
            "USED",
            "RESETS",
        ],
        &cells,
    )
}

/// The paused scopes.
pub fn paused(rows: &Value) -> String {
    let empty = Vec::new();
    let rows = rows.as_array().unwrap_or(&empty);
    if rows.is_empty() {
        return "nothing is paused\n".into();
    }
    let mut out = String::from("PAUSED\n");
    for r in rows {
        out.push_str(&scope(r));
        out.push('\n');
    }
    out
}

fn scope(v: &Value) -> String {
    if v["all"].as_bool() == Some(true) {
        "all".into()
    } else if let Some(ns) = v["namespace"].as_str() {
        format!("namespace {ns}")
    } else {
        format!("ledger {}", s(&v["ledger"]["display"]))
    }
}

fn caps(budgets: &Value) -> String {
    budgets
        .as_array()
        .map(|b| {
            b.iter()
                .map(|c| format!("{}/{}", s(&c["max_spend"]), s(&c["window"])))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

/// The table of a request's answer.
pub fn render(request: &Request, answer: &Value) -> String {
    match request {
        Request::Status(_) => {
            let mut out = format!(
                "ledger     {}\nspent      {} (committed {}, reserved {})\nremaining  {}\nmax        {} per {}\nused       {}\nresets     {}\n",
                s(&answer["ledger"]["display"]),
                s(&answer["spent_in_window"]),
                s(&answer["committed"]),
                s(&answer["reserved"]),
                s(&answer["remaining"]),
                s(&answer["max_spend"]),
                s(&answer["window"]),
                s(&answer["utilisation"]),
                s(&answer["resets_at"]),
            );
            let empty = Vec::new();
            let cap_rows = answer["caps"].as_array().unwrap_or(&empty);
            if cap_rows.len() > 1 {
                let cells: Vec<Vec<String>> = cap_rows
                    .iter()
                    .map(|c| {
                        vec![
                            format!(
                                "{}/{}",
                                s(&c["budget"]["max_spend"]),
                                s(&c["budget"]["window"])
                            ),
                            s(&c["committed"]),
                            s(&c["reserved"]),
                            s(&c["remaining"]),
                            s(&c["resets_at"]),
                        ]
                    })
                    .collect();
                out.push_str(&grid(
                    &["CAP", "COMMITTED", "RESERVED", "REMAINING", "RESETS"],
                    &cells,
                ));
            }
            out
        }
        Request::Ledgers(_) => ledgers(answer),
        Request::BudgetsList => {
            let empty = Vec::new();
            let rows = answer.as_array().unwrap_or(&empty);
            if rows.is_empty() {
                return "no operator budgets\n".into();
            }
            let cells: Vec<Vec<String>> = rows
                .iter()
                .map(|b| {
                    vec![
                        format!(
                            "{}:{}@{}",
                            s(&b["namespace"]),
                            s(&b["resource"]),
                            s(&b["principal"])
                        ),
                        caps(&b["budgets"]),
                    ]
                })
                .collect();
            grid(&["TARGET", "CAPS"], &cells)
        }
        Request::BudgetsSet(_) => format!(
            "stored {}:{}@{} = {} (version {})\n",
            s(&answer["budget"]["namespace"]),
            s(&answer["budget"]["resource"]),
            s(&answer["budget"]["principal"]),
            caps(&answer["budget"]["budgets"]),
            s(&answer["version"])
        ),
        Request::BudgetsRm(_) => format!(
            "removed {}:{}@{} (version {})\n",
            s(&answer["removed"]["namespace"]),
            s(&answer["removed"]["resource"]),
            s(&answer["removed"]["principal"]),
            s(&answer["version"])
        ),
        Request::Paused(_, on) => format!(
            "{} {}\n",
            if *on { "paused" } else { "resumed" },
            scope(&answer["scope"])
        ),
        Request::ListPaused => paused(answer),
        Request::Reset(_) => format!(
            "reset {}: forgot {} committed and {} reserved (by {})\n",
            s(&answer["ledger"]["display"]),
            s(&answer["committed"]),
            s(&answer["reserved"]),
            s(&answer["reset_by"])
        ),
    }
}
