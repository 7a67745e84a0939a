//! The command line: `budgetgate serve` and the operator's commands, which
//! talk to the store directly (`--redis-url`, or `BUDGETGATE_REDIS_URL`) or
//! to a running service (`--server URL --api-key KEY`).
//!
//! Exit codes: 0 done; 1 the operation failed (store or service error,
//! `doctor` found a problem); 2 bad usage or configuration; 3 not found;
//! 4 refused (401/403: no key, wrong key, role too low).

use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use serde_json::{json, Value};

use crate::error::ApiError;

pub mod doctor;
pub mod remote;
pub mod table;

/// `budgetgate`: spend budgets as a service, and the operator's tools.
#[derive(Debug, Parser)]
#[command(name = "budgetgate", version, about, long_about = None)]
pub struct Cli {
    /// Where budgets live, for the operator commands.
    #[command(flatten)]
    pub target: Target,
    /// Print JSON (for scripts) instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Where the operator commands act.
#[derive(Debug, Clone, Args)]
pub struct Target {
    /// Talk to the store directly: a Redis URL (the password is never printed).
    #[arg(
        long,
        env = "BUDGETGATE_REDIS_URL",
        global = true,
        hide_env_values = true
    )]
    pub redis_url: Option<String>,
    /// The store's key prefix.
    #[arg(long, env = "BUDGETGATE_REDIS_PREFIX", global = true)]
    pub redis_prefix: Option<String>,
    /// Talk to a running service instead (`http://host:8080`).
    #[arg(long, env = "BUDGETGATE_SERVER", global = true)]
    pub server: Option<String>,
    /// The service's API key (with --server).
    #[arg(
        long,
        env = "BUDGETGATE_API_KEY",
        global = true,
        hide_env_values = true
    )]
    pub api_key: Option<String>,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP/JSON service.
    Serve(ServeArgs),
    /// One ledger's spend, reservations, remaining and reset time
    /// (`namespace:resource@principal`); without one, the busiest ledgers
    /// and what is paused.
    Status {
        /// The ledger.
        ledger: Option<String>,
    },
    /// Ledgers the store holds, most utilised first.
    Ledgers {
        /// Most ledgers listed.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Operator budgets, stored in the store and applied by every engine on it.
    Budgets {
        /// What to do.
        #[command(subcommand)]
        action: BudgetsAction,
    },
    /// Pause a scope (kill switch): `all`, a namespace, or a ledger `ns:res@principal`.
    Pause {
        /// The scope.
        scope: String,
    },
    /// Resume a paused scope.
    Resume {
        /// The scope.
        scope: String,
    },
    /// Every paused scope.
    Paused,
    /// Forget a ledger's spend and holds (recorded with who did it and how much).
    Reset {
        /// The ledger (`namespace:resource@principal`).
        ledger: String,
    },
    /// A live table of the busiest ledgers.
    Watch {
        /// Seconds between refreshes.
        #[arg(long, default_value_t = 2.0)]
        interval: f64,
        /// Ledgers shown.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Stop after this many refreshes (default: until interrupted).
        #[arg(long)]
        count: Option<u64>,
    },
    /// Check a Redis for what budgets need: noeviction, persistence, version ≥ 7, latency.
    Doctor,
    /// Print the SHA-256 of an API key (what the configuration holds).
    HashKey {
        /// The key.
        key: String,
    },
}

/// `budgetgate serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// The TOML configuration file.
    #[arg(long, short, env = "BUDGETGATE_CONFIG")]
    pub config: Option<String>,
    /// Address to listen on (overrides the file; `127.0.0.1:0`: a free port).
    #[arg(long)]
    pub listen: Option<String>,
}

/// `budgets …`.
#[derive(Debug, Subcommand)]
pub enum BudgetsAction {
    /// Every operator budget.
    List,
    /// Store (or replace) a budget for `namespace:resource@principal`; the
    /// principal may be a pattern (`user:*`). Give one or more caps.
    Set {
        /// `namespace:resource@principal-or-pattern`.
        target: String,
        /// A cap `MAX/WINDOW`, e.g. `10/daily`, `2.5/1h`, `100/unbounded`; repeat to stack caps.
        #[arg(long = "cap", required = true)]
        caps: Vec<String>,
    },
    /// Remove an operator budget.
    Rm {
        /// `namespace:resource@principal-or-pattern`.
        target: String,
    },
}

/// A command's failure: its message and exit code.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct CliError {
    /// The exit code.
    pub code: i32,
    /// What went wrong.
    pub message: String,
}

impl CliError {
    /// Exit code 2.
    pub fn usage(message: impl Into<String>) -> Self {
        CliError {
            code: 2,
            message: message.into(),
        }
    }
}

impl From<ApiError> for CliError {
    fn from(e: ApiError) -> Self {
        CliError {
            code: exit_code(e.status.as_u16()),
            message: e.message,
        }
    }
}

/// The exit code of an HTTP status.
pub fn exit_code(status: u16) -> i32 {
    match status {
        200..=299 => 0,
        401 | 403 => 4,
        404 => 3,
        400..=499 => 2,
        _ => 1,
    }
}

/// Parses a pause scope.
pub fn parse_scope(text: &str) -> Result<budgetgate::PauseScope, CliError> {
    if text == "all" {
        Ok(budgetgate::PauseScope::All)
    } else if text.contains('@') {
        crate::ops::parse_ledger(text)
            .map(budgetgate::PauseScope::Ledger)
            .map_err(CliError::usage)
    } else if text.is_empty() {
        Err(CliError::usage(
            "the scope is empty: give all, a namespace or ns:res@principal",
        ))
    } else {
        Ok(budgetgate::PauseScope::Namespace(text.to_owned()))
    }
}

/// Parses `MAX/WINDOW` into a budget.
pub fn parse_cap(text: &str) -> Result<budgetgate::Budget, CliError> {
    let (max, window) = text.split_once('/').unwrap_or((text, "unbounded"));
    let max = crate::amount::parse(max).map_err(CliError::usage)?;
    let window = window
        .parse::<budgetgate::Window>()
        .map_err(|e| CliError::usage(e.to_string()))?;
    budgetgate::Budget::new(max, window).map_err(|e| CliError::usage(e.to_string()))
}

/// A request the operator commands make, in either mode.
#[derive(Debug, Clone)]
pub enum Request {
    /// One ledger.
    Status(budgetgate::Ledger),
    /// Ledgers.
    Ledgers(usize),
    /// Budgets list.
    BudgetsList,
    /// Budgets set.
    BudgetsSet(budgetgate::shared::SharedBudget),
    /// Budgets rm.
    BudgetsRm(budgetgate::Ledger),
    /// Pause or resume.
    Paused(budgetgate::PauseScope, bool),
    /// Paused scopes.
    ListPaused,
    /// Reset.
    Reset(budgetgate::Ledger),
}

/// Runs the CLI; returns the exit code.
pub fn run(cli: Cli) -> i32 {
    match dispatch(cli) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("budgetgate: {}", e.message);
            e.code
        }
    }
}

fn dispatch(cli: Cli) -> Result<(), CliError> {
    let json_out = cli.json;
    let request = match cli.command {
        Command::Serve(args) => return serve(args),
        Command::HashKey { key } => {
            println!("{}", crate::auth::hash_key(&key));
            return Ok(());
        }
        Command::Doctor => {
            let url = cli.target.redis_url.ok_or_else(|| {
                CliError::usage("doctor needs --redis-url (or BUDGETGATE_REDIS_URL)")
            })?;
            return doctor::run(&url, json_out);
        }
        Command::Watch {
            interval,
            limit,
            count,
        } => {
            let conn = Conn::open(&cli.target)?;
            let mut n = 0u64;
            loop {
                let rows = conn.call(Request::Ledgers(limit))?;
                if json_out {
                    println!("{}", json!({"ledgers": rows}));
                } else {
                    print!("\x1b[2J\x1b[H");
                    println!("budgetgate watch — every {interval}s — {}", conn.describe());
                    print!("{}", table::ledgers(&rows));
                }
                n += 1;
                if count.is_some_and(|c| n >= c) {
                    return Ok(());
                }
                std::thread::sleep(Duration::from_secs_f64(interval.max(0.1)));
            }
        }
        Command::Status { ledger: None } => {
            let conn = Conn::open(&cli.target)?;
            let rows = conn.call(Request::Ledgers(20))?;
            let paused = conn.call(Request::ListPaused)?;
            if json_out {
                println!("{}", json!({"ledgers": rows, "paused": paused}));
            } else {
                print!("{}", table::ledgers(&rows));
                print!("{}", table::paused(&paused));
            }
            return Ok(());
        }
        Command::Status { ledger: Some(l) } => {
            Request::Status(crate::ops::parse_ledger(&l).map_err(CliError::usage)?)
        }
        Command::Ledgers { limit } => Request::Ledgers(limit),
        Command::Budgets { action } => match action {
            BudgetsAction::List => Request::BudgetsList,
            BudgetsAction::Set { target, caps } => {
                let l = crate::ops::parse_ledger(&target).map_err(CliError::usage)?;
                let budgets = caps
                    .iter()
                    .map(|c| parse_cap(c))
                    .collect::<Result<Vec<_>, _>>()?;
                Request::BudgetsSet(budgetgate::shared::SharedBudget::new(
                    l.namespace(),
                    l.resource(),
                    l.principal(),
                    budgets,
                ))
            }
            BudgetsAction::Rm { target } => {
                Request::BudgetsRm(crate::ops::parse_ledger(&target).map_err(CliError::usage)?)
            }
        },
        Command::Pause { scope } => Request::Paused(parse_scope(&scope)?, true),
        Command::Resume { scope } => Request::Paused(parse_scope(&scope)?, false),
        Command::Paused => Request::ListPaused,
        Command::Reset { ledger } => {
            Request::Reset(crate::ops::parse_ledger(&ledger).map_err(CliError::usage)?)
        }
    };
    let conn = Conn::open(&cli.target)?;
    let answer = conn.call(request.clone())?;
    if json_out {
        println!("{answer}");
    } else {
        print!("{}", table::render(&request, &answer));
    }
    Ok(())
}

/// Where operator requests go.
pub enum Conn {
    /// The store itself.
    Direct {
        /// An engine on it (with its operator budgets).
        engine: budgetgate::Engine,
        /// A runtime for the async operations.
        runtime: tokio::runtime::Runtime,
        /// The URL without its password.
        shown: String,
    },
    /// A service.
    Remote(remote::Client),
}

impl Conn {
    /// Opens the connection `target` names.
    pub fn open(target: &Target) -> Result<Conn, CliError> {
        if let Some(server) = &target.server {
            return Ok(Conn::Remote(remote::Client::new(
                server,
                target.api_key.clone(),
            )));
        }
        let Some(url) = &target.redis_url else {
            return Err(CliError::usage(
                "say where the budgets are: --redis-url URL (or BUDGETGATE_REDIS_URL) or --server URL",
            ));
        };
        let mut b = budgetgate::store::redis::RedisStore::builder(url);
        if let Some(p) = &target.redis_prefix {
            b = b.prefix(p.clone());
        }
        let store = b.build().map_err(|e| CliError {
            code: 2,
            message: format!("the Redis store: {e}"),
        })?;
        let shown = store.url().to_owned();
        let engine = budgetgate::Engine::builder()
            .store(store)
            .shared_budgets(true)
            .build();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| CliError {
                code: 1,
                message: format!("cannot start a runtime: {e}"),
            })?;
        Ok(Conn::Direct {
            engine,
            runtime,
            shown,
        })
    }

    /// What it talks to (no secrets).
    pub fn describe(&self) -> String {
        match self {
            Conn::Direct { shown, .. } => shown.clone(),
            Conn::Remote(c) => c.base().to_owned(),
        }
    }

    /// Runs a request.
    pub fn call(&self, request: Request) -> Result<Value, CliError> {
        match self {
            Conn::Remote(c) => c.call(&request),
            Conn::Direct {
                engine, runtime, ..
            } => {
                let who = std::env::var("USER").unwrap_or_else(|_| "cli".into());
                let e = engine;
                runtime
                    .block_on(async move {
                        use crate::ops;
                        match request {
                            Request::Status(l) => ops::status(e, &l).await,
                            Request::Ledgers(n) => ops::ledgers(e, n).await,
                            Request::BudgetsList => ops::budgets_list(e).await,
                            Request::BudgetsSet(b) => ops::budgets_set(e, b).await,
                            Request::BudgetsRm(l) => {
                                ops::budgets_rm(
                                    e,
                                    crate::ops::LedgerRef {
                                        namespace: l.namespace().into(),
                                        resource: l.resource().into(),
                                        principal: l.principal().into(),
                                    },
                                )
                                .await
                            }
                            Request::Paused(scope, on) => ops::set_paused(e, scope, on).await,
                            Request::ListPaused => ops::paused(e).await,
                            Request::Reset(l) => ops::reset(e, l, format!("cli:{who}")).await,
                        }
                    })
                    .map_err(CliError::from)
            }
        }
    }
}

fn serve(args: ServeArgs) -> Result<(), CliError> {
    let mut config = crate::config::Config::load(args.config.as_deref())
        .map_err(|e| CliError::usage(e.to_string()))?;
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError {
            code: 1,
            message: format!("cannot start a runtime: {e}"),
        })?;
    runtime.block_on(async move {
        let state = crate::api::build_state(&config).map_err(CliError::usage)?;
        let listener = tokio::net::TcpListener::bind(&config.listen)
            .await
            .map_err(|e| CliError {
                code: 1,
                message: format!("cannot listen on {}: {e}", config.listen),
            })?;
        let addr = listener.local_addr().map_err(|e| CliError {
            code: 1,
            message: e.to_string(),
        })?;
        let store = state
            .redis
            .as_ref()
            .map_or_else(|| "memory".to_owned(), |r| r.url().to_owned());
        // The first line of stdout: scripts and tests read the address from it.
        println!("budgetgate listening on http://{addr} (store: {store})");
        use std::io::Write;
        let _ = std::io::stdout().flush();
        crate::api::serve(state, &config, listener, crate::api::shutdown_signal())
            .await
            .map_err(|e| CliError {
                code: 1,
                message: format!("the service failed: {e}"),
            })
    })
}
