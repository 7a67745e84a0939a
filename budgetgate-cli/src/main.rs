//! `budgetgate`: the service (`serve`) and the operator's commands. See
//! `budgetgate --help` and the crate docs of `budgetgate_cli`.

use clap::Parser;

fn main() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("BUDGETGATE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let cli = budgetgate_cli::cli::Cli::parse();
    std::process::exit(budgetgate_cli::cli::run(cli));
}
