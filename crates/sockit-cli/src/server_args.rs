//! Options every server command shares, and the glue that runs a bound server until
//! SIGINT/SIGTERM after printing the `listening on ...` line.

use std::time::Duration;

use anyhow::Context;
use sockit::Endpoint;
use sockit::server::{Config, Model, Server};
use sockit::socket::{AccessList, Network, Shutdown};

/// Server options: model, workers, limits, access lists.
#[derive(Debug, clap::Args)]
pub struct ServerArgs {
    /// Concurrency model: blocking, threads, fork, select, poll, epoll, epoll-et, async.
    #[arg(long, short = 'm', default_value = "epoll", value_parser = parse_model)]
    pub model: Model,
    /// Event loops (select/poll/epoll/epoll-et, one SO_REUSEPORT listener each), runtime
    /// threads (async) or datagram receivers (threads/fork). Default: 1 loop; one per CPU.
    #[arg(long, short = 'w')]
    pub workers: Option<usize>,
    /// Connections served at once; more are refused (closed at once). Default per model.
    #[arg(long)]
    pub max_conns: Option<usize>,
    /// Close a connection that sends nothing for this long (e.g. 30s, 5m).
    #[arg(long, value_parser = parse_duration)]
    pub idle_timeout: Option<Duration>,
    /// Only clients in these networks (CIDR or address; repeatable). Deny wins when both match.
    #[arg(long, value_name = "CIDR")]
    pub allow: Vec<Network>,
    /// Refuse clients in these networks (CIDR or address; repeatable). Deny wins over --allow.
    #[arg(long, value_name = "CIDR")]
    pub deny: Vec<Network>,
}

impl ServerArgs {
    /// The library configuration these options describe.
    pub fn config(&self) -> Config {
        Config {
            model: self.model,
            workers: self.workers,
            max_conns: self.max_conns,
            idle_timeout: self.idle_timeout,
            access: AccessList::new(self.allow.clone(), self.deny.clone()),
        }
    }

    /// Binds, prints `listening on ...`, and arranges for SIGINT/SIGTERM to stop the server.
    pub fn bind(&self, endpoint: &Endpoint) -> anyhow::Result<Server> {
        let server = Server::bind(endpoint, self.config())
            .with_context(|| format!("cannot listen on {endpoint}"))?;
        announce(&server)?;
        Ok(server)
    }
}

/// Prints the `listening on` line and stops `server` on SIGINT/SIGTERM.
pub fn announce(server: &Server) -> anyhow::Result<()> {
    // Handlers first: a script may send SIGTERM the moment it reads the line, and the
    // default action would kill the server without its clean shutdown.
    stop_on_signals(server.shutdown_handle())?;
    eprintln!("listening on {}", server.local_endpoint());
    Ok(())
}

/// Triggers `shutdown` on SIGINT or SIGTERM (from a thread of its own).
pub fn stop_on_signals(shutdown: Shutdown) -> anyhow::Result<()> {
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
    ])
    .context("cannot install signal handlers")?;
    std::thread::spawn(move || {
        if signals.forever().next().is_some() {
            shutdown.trigger();
        }
    });
    Ok(())
}

/// `--model` values, with the list of models in the error.
pub fn parse_model(s: &str) -> Result<Model, String> {
    s.parse().map_err(|e: sockit::Error| e.to_string())
}

/// Durations as `500ms`, `5s`, `2m`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (expected e.g. 500ms, 5s, 2m)"))
}
