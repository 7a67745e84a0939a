//! `budgetgate doctor`: checks a Redis for what budgets need.
//!
//! | check | fails when |
//! |---|---|
//! | `reachable` | no connection, or `AUTH` refused |
//! | `version` | older than 7.0 (the scripts need it) |
//! | `maxmemory-policy` | anything but `noeviction`: an evicting Redis forgets spend |
//! | `persistence` | warns when neither AOF nor RDB snapshots are on: a restart forgets spend |
//! | `latency` | warns when the median `PING` exceeds 5 ms |
//!
//! Exit code 1 when a check fails (a warning alone exits 0). It speaks RESP
//! itself over TCP (`redis://` URLs; `rediss://` is not supported here).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::table::grid;
use super::CliError;

enum Reply {
    Str(String),
    Int,
    Nil,
    Arr(Vec<Reply>),
    Err(String),
}

struct Conn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Conn {
    fn command(&mut self, args: &[&str]) -> std::io::Result<Reply> {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            out.extend_from_slice(a.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        self.writer.write_all(&out)?;
        read(&mut self.reader)
    }
}

fn bad(m: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_owned())
}

fn read(r: &mut BufReader<TcpStream>) -> std::io::Result<Reply> {
    let mut line = String::new();
    r.read_line(&mut line)?;
    let line = line.trim_end_matches("\r\n");
    // Byte 0 is the RESP type; `get` (not indexing) so no reply can panic.
    let (kind, rest) = (line.get(..1).unwrap_or(""), line.get(1..).unwrap_or(""));
    match kind {
        "+" => Ok(Reply::Str(rest.to_owned())),
        "-" => Ok(Reply::Err(rest.to_owned())),
        ":" => rest
            .parse::<i64>()
            .map(|_| Reply::Int)
            .map_err(|_| bad("bad integer")),
        "$" => {
            let n: i64 = rest.parse().map_err(|_| bad("bad length"))?;
            if n < 0 {
                return Ok(Reply::Nil);
            }
            let mut buf = vec![0u8; usize::try_from(n).unwrap_or(0) + 2];
            r.read_exact(&mut buf)?;
            buf.truncate(buf.len() - 2);
            Ok(Reply::Str(String::from_utf8_lossy(&buf).into_owned()))
        }
        "*" => {
            let n: i64 = rest.parse().map_err(|_| bad("bad length"))?;
            let mut items = Vec::new();
            for _ in 0..n.max(0) {
                items.push(read(r)?);
            }
            Ok(Reply::Arr(items))
        }
        _ => Err(bad("unexpected reply")),
    }
}

struct Url {
    host: String,
    port: u16,
    user: Option<String>,
    password: Option<String>,
}

fn parse_url(url: &str) -> Result<Url, String> {
    let rest = url
        .strip_prefix("redis://")
        .ok_or("doctor checks redis:// URLs (not rediss:// or unix sockets)")?;
    let (auth, hostpart) = match rest.rsplit_once('@') {
        Some((a, h)) => (Some(a), h),
        None => (None, rest),
    };
    let hostport = hostpart.split('/').next().unwrap_or("");
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) => (
            h,
            p.parse::<u16>()
                .map_err(|_| "invalid port in the Redis URL")?,
        ),
        None => (hostport, 6379),
    };
    let (user, password) = match auth {
        Some(a) => match a.split_once(':') {
            Some((u, p)) => ((!u.is_empty()).then(|| u.to_owned()), Some(p.to_owned())),
            None => (None, Some(a.to_owned())),
        },
        None => (None, None),
    };
    Ok(Url {
        host: if host.is_empty() {
            "127.0.0.1".into()
        } else {
            host.into()
        },
        port,
        user,
        password,
    })
}

fn field<'a>(info: &'a str, name: &str) -> Option<&'a str> {
    info.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(':')))
        .map(str::trim)
}

/// Runs the checks; prints a table or JSON.
pub fn run(url: &str, json_out: bool) -> Result<(), CliError> {
    let checks = checks(url);
    let failed = checks.iter().any(|c| c["status"] == "fail");
    if json_out {
        println!("{}", json!({"ok": !failed, "checks": checks}));
    } else {
        let rows: Vec<Vec<String>> = checks
            .iter()
            .map(|c| {
                vec![
                    c["check"].as_str().unwrap_or("").to_owned(),
                    c["status"].as_str().unwrap_or("").to_uppercase(),
                    c["detail"].as_str().unwrap_or("").to_owned(),
                ]
            })
            .collect();
        print!("{}", grid(&["CHECK", "STATUS", "DETAIL"], &rows));
    }
    if failed {
        Err(CliError {
            code: 1,
            message: "the Redis is not fit for budgets (see the failed checks)".into(),
        })
    } else {
        Ok(())
    }
}

fn check(name: &str, status: &str, detail: impl Into<String>) -> Value {
    json!({"check": name, "status": status, "detail": detail.into()})
}

fn checks(url: &str) -> Vec<Value> {
    let u = match parse_url(url) {
        Ok(u) => u,
        Err(e) => return vec![check("reachable", "fail", e)],
    };
    let where_ = format!("{}:{}", u.host, u.port);
    let addr = match std::net::ToSocketAddrs::to_socket_addrs(&(u.host.as_str(), u.port))
        .ok()
        .and_then(|mut a| a.next())
    {
        Some(a) => a,
        None => {
            return vec![check(
                "reachable",
                "fail",
                format!("cannot resolve {where_}"),
            )]
        }
    };
    let stream = match TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
        Ok(s) => s,
        Err(e) => return vec![check("reachable", "fail", format!("{where_}: {e}"))],
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let Ok(writer) = stream.try_clone() else {
        return vec![check("reachable", "fail", "cannot use the connection")];
    };
    let mut c = Conn {
        reader: BufReader::new(stream),
        writer,
    };
    let mut out = Vec::new();
    if let Some(p) = &u.password {
        let reply = match &u.user {
            Some(user) => c.command(&["AUTH", user, p]),
            None => c.command(&["AUTH", p]),
        };
        match reply {
            Ok(Reply::Err(e)) => {
                // Never the password itself.
                return vec![check(
                    "reachable",
                    "fail",
                    format!("{where_}: AUTH refused: {e}"),
                )];
            }
            Err(e) => return vec![check("reachable", "fail", format!("{where_}: {e}"))],
            Ok(_) => {}
        }
    }
    match c.command(&["PING"]) {
        Ok(Reply::Str(p)) if p == "PONG" => out.push(check("reachable", "ok", where_.clone())),
        Ok(Reply::Err(e)) => return vec![check("reachable", "fail", format!("{where_}: {e}"))],
        Ok(_) => {
            return vec![check(
                "reachable",
                "fail",
                format!("{where_}: unexpected PING reply"),
            )]
        }
        Err(e) => return vec![check("reachable", "fail", format!("{where_}: {e}"))],
    }
    let info = match c.command(&["INFO"]) {
        Ok(Reply::Str(s)) => s,
        _ => String::new(),
    };
    match field(&info, "redis_version") {
        Some(v) => {
            let major: u32 = v
                .split('.')
                .next()
                .and_then(|m| m.parse().ok())
                .unwrap_or(0);
            if major >= 7 {
                out.push(check("version", "ok", v));
            } else {
                out.push(check(
                    "version",
                    "fail",
                    format!("{v}: budgetgate needs Redis 7.0 or newer"),
                ));
            }
        }
        None => out.push(check("version", "fail", "INFO did not say the version")),
    }
    let config_get = |c: &mut Conn, name: &str| -> Option<String> {
        match c.command(&["CONFIG", "GET", name]) {
            Ok(Reply::Arr(items)) => match items.get(1) {
                Some(Reply::Str(v)) => Some(v.clone()),
                _ => None,
            },
            _ => None,
        }
    };
    let policy = field(&info, "maxmemory_policy")
        .map(str::to_owned)
        .or_else(|| config_get(&mut c, "maxmemory-policy"));
    match policy.as_deref() {
        Some("noeviction") => out.push(check("maxmemory-policy", "ok", "noeviction")),
        Some(p) => out.push(check(
            "maxmemory-policy",
            "fail",
            format!("{p}: Redis may evict budget keys and forget spend; set maxmemory-policy noeviction"),
        )),
        None => out.push(check("maxmemory-policy", "fail", "cannot read maxmemory-policy")),
    }
    let aof = field(&info, "aof_enabled") == Some("1");
    let save = config_get(&mut c, "save").unwrap_or_default();
    if aof {
        out.push(check("persistence", "ok", "AOF on"));
    } else if !save.trim().is_empty() {
        out.push(check(
            "persistence",
            "ok",
            format!("RDB snapshots (save {save})"),
        ));
    } else {
        out.push(check(
            "persistence",
            "warn",
            "neither AOF nor RDB snapshots: a restart forgets every ledger (appendonly yes)",
        ));
    }
    let mut samples = Vec::new();
    for _ in 0..10 {
        let t = Instant::now();
        if c.command(&["PING"]).is_err() {
            break;
        }
        samples.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    samples.sort_by(|a, b| a.total_cmp(b));
    match samples.get(samples.len() / 2) {
        Some(&median) => {
            let max = samples.last().copied().unwrap_or(median);
            let detail = format!("PING median {median:.3} ms, max {max:.3} ms");
            out.push(check(
                "latency",
                if median > 5.0 { "warn" } else { "ok" },
                detail,
            ));
        }
        None => out.push(check("latency", "fail", "PING failed")),
    }
    out
}
