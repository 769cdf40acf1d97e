//! The `servicewatch` command: parses the command line, sets up logging, and runs the daemon
//! or validates a configuration. Errors end here, as one line on stderr and a non-zero exit.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use tracing::{error, info};
use tracing_subscriber::EnvFilter;

use servicewatch::{Daemon, config};

/// Supervises contact-center backend servers and serves their state as the Genesys Web
/// Services Services API.
#[derive(Parser)]
#[command(
    version,
    about,
    after_help = "\
Examples:
  servicewatch --config /etc/servicewatch/servicewatch.toml
  servicewatch check-config config/servicewatch.toml
  SERVICEWATCH_SERVER__LISTEN=0.0.0.0:8080 servicewatch -c servicewatch.toml

Exit codes: 0 stopped cleanly or configuration valid; 1 runtime failure; 2 bad command line;
3 configuration refused."
)]
struct Cli {
    /// The configuration file.
    #[arg(short, long, global = true, default_value = config::DEFAULT_PATH)]
    config: PathBuf,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon (the default).
    Run,
    /// Validate a configuration file and exit: 0 if valid, 3 if not.
    CheckConfig {
        /// The file to check; defaults to --config.
        file: Option<PathBuf>,
    },
}

/// Exit status when the configuration is refused.
const EXIT_CONFIG: u8 = 3;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    match cli.command.unwrap_or(Command::Run) {
        Command::CheckConfig { file } => {
            let path = file.unwrap_or(cli.config);
            match config::load(&path) {
                Ok(settings) => {
                    println!(
                        "{}: ok ({} services)",
                        path.display(),
                        settings.services.len()
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("{e}");
                    ExitCode::from(EXIT_CONFIG)
                }
            }
        }
        Command::Run => {
            let settings = match config::load(&cli.config) {
                Ok(s) => s,
                Err(e) => {
                    error!("configuration refused: {e}");
                    eprintln!("{e}");
                    return ExitCode::from(EXIT_CONFIG);
                }
            };
            match run(settings) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    error!("{e:#}");
                    eprintln!("servicewatch: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// Logs go to stderr, level from `RUST_LOG` (default `info`).
fn init_logging() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
}

fn run(settings: config::Settings) -> anyhow::Result<()> {
    let system = actix_rt::System::new();
    system.block_on(async move {
        let daemon = Daemon::start(settings).context("cannot start")?;
        let handle = daemon.handle();
        actix_rt::spawn(async move {
            let signal = wait_for_stop_signal().await;
            info!(signal, "stopping");
            handle.stop(true).await;
        });
        daemon.wait().await.context("the HTTP server failed")
    })
}

/// Waits for SIGTERM or SIGINT.
async fn wait_for_stop_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        // Without signal handlers the process still stops on the default action.
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    }
}
