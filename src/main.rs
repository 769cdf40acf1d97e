//! The `servicewatch` command: parses the command line, sets up logging, and runs the daemon
//! or validates a configuration. Errors end here, as one line on stderr and a non-zero exit.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use tracing::error;

use std::io::IsTerminal;

use servicewatch::{Daemon, DisplayToken, cli, config, demo, lifecycle, logging, password};

/// Supervises contact-center backend servers and serves their state as the Genesys Web
/// Services Services API.
#[derive(Parser)]
#[command(
    version,
    about,
    after_help = "\
Examples:
  servicewatch demo
  servicewatch --config /etc/servicewatch/servicewatch.toml
  servicewatch check-config config/servicewatch.toml
  servicewatch hash-password
  servicewatch display-token lobby --contact-center voice
  SERVICEWATCH_SERVER__LISTEN=0.0.0.0:8080 servicewatch -c servicewatch.toml
  sudo servicewatch status
  sudo servicewatch maintenance set sips1 --reason \"upgrade\" --for 2h

Exit codes of run and check-config: 0 stopped cleanly or configuration valid; 1 runtime
failure; 2 bad command line; 3 configuration refused.
Exit codes of the commands that talk to the daemon (status, maintenance, history, instances,
alerts, availability, reload, tokens, audit): 0 ok; 1 the daemon answered an error; 2 bad
command line; 3 cannot reach the daemon; 4 refused (401/403)."
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
    /// Run a demonstration: the daemon with stand-in backends on loopback that fail and
    /// recover on a schedule. Needs nothing else.
    Demo {
        /// Address of the Services API.
        #[arg(long, default_value = config::server::DEFAULT_LISTEN)]
        listen: std::net::SocketAddr,
        /// Address of /metrics, /healthz and /readyz.
        #[arg(long, default_value = config::server::DEFAULT_ADMIN_LISTEN)]
        admin: std::net::SocketAddr,
        /// Time between two steps of the failure scenario: long enough to read the output
        /// and query the API between changes.
        #[arg(long, default_value = "12s", value_parser = humantime::parse_duration)]
        step: std::time::Duration,
    },
    /// Print the Argon2id hash of a password for the users configuration. Asks twice
    /// (without echo) on a terminal; otherwise reads one line from standard input.
    HashPassword,
    /// Print a new display token for a wall screen, the [[auth.display]] entry to add to
    /// the configuration, and the address to open on the screen's kiosk browser.
    DisplayToken {
        /// The display's name: 1 to 64 letters, digits, '.', '_' or '-'.
        #[arg(value_parser = display_name)]
        name: String,
        /// The id of the [[contact_center]] whose services the display shows.
        #[arg(long)]
        contact_center: Option<String>,
    },
    /// Validate a configuration file and exit: 0 if valid, 3 if not.
    CheckConfig {
        /// The file to check; defaults to --config.
        file: Option<PathBuf>,
    },
    #[command(flatten)]
    Control(cli::ControlCommand),
}

/// Exit status when the configuration is refused.
const EXIT_CONFIG: u8 = 3;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Run) {
        Command::Control(command) => cli::run(command, &cli.config),
        Command::HashPassword => match read_password().and_then(|p| Ok(password::hash(&p)?)) {
            Ok(hash) => {
                println!("{hash}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("servicewatch hash-password: {e:#}");
                ExitCode::FAILURE
            }
        },
        Command::DisplayToken {
            name,
            contact_center,
        } => {
            print_display_token(&name, contact_center.as_deref());
            ExitCode::SUCCESS
        }
        Command::Demo {
            listen,
            admin,
            step,
        } => {
            logging::init(&Default::default());
            let system = actix_rt::System::new();
            match system.block_on(demo::run(listen, admin, step)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("servicewatch demo: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::CheckConfig { file } => {
            let path = file.unwrap_or(cli.config);
            match load(&path) {
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
            let settings = match load(&cli.config) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::from(EXIT_CONFIG);
                }
            };
            logging::init(&settings.log);
            match run(cli.config, settings) {
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

/// Loads and validates the configuration, and reads the TLS and credential files it names: what
/// `check-config` checks is exactly what stops `run` with exit status 3.
fn load(path: &std::path::Path) -> Result<config::Settings, String> {
    let settings = config::load(path).map_err(|e| e.to_string())?;
    if let Some(tls) = &settings.tls {
        servicewatch::tls::server_config(tls).map_err(|e| e.to_string())?;
    }
    if let Some(cluster) = &settings.cluster {
        servicewatch::cluster::credentials::Credentials::load(cluster)
            .map_err(|e| e.to_string())?;
    }
    Ok(settings)
}

fn run(config_path: PathBuf, settings: config::Settings) -> anyhow::Result<()> {
    raise_open_files_limit();
    let system = actix_rt::System::new();
    system.block_on(async move {
        let signals = lifecycle::Signals::take().context("cannot take the signals")?;
        let daemon = match activated_listener()? {
            Some(listener) => Daemon::start_on(settings.clone(), listener),
            None => Daemon::start(settings.clone()),
        }
        .context("cannot start")?;
        lifecycle::run(daemon, signals, config_path, settings)
            .await
            .context("the HTTP server failed")
    })
}

/// A display name as the configuration accepts it.
fn display_name(name: &str) -> Result<String, String> {
    if servicewatch::is_display_name(name) {
        Ok(name.to_string())
    } else {
        Err("must be 1 to 64 letters, digits, '.', '_' or '-'".into())
    }
}

/// Prints a new token, its configuration entry and the kiosk's address. The token is shown
/// this once: the configuration keeps only its SHA-256.
fn print_display_token(name: &str, contact_center: Option<&str>) {
    let token = DisplayToken::generate();
    eprintln!(
        "servicewatch display-token: the token is shown once; only its SHA-256 is kept, so keep it now or make a new one"
    );
    println!("Display token for \"{name}\":");
    println!("  {}", token.token());
    println!();
    println!(
        "Open on the wall screen (HOST: the status page's address; the part after # never leaves the browser):"
    );
    println!("  {}", token.kiosk_url("https://HOST"));
    println!();
    println!("Add to the configuration, then reload (systemctl reload servicewatch):");
    println!();
    let center = contact_center.unwrap_or("ID-OF-A-CONTACT-CENTER");
    print!("{}", token.config_entry(name, center));
}

/// Reads the password to hash: twice without echo on a terminal, else one line of stdin.
fn read_password() -> anyhow::Result<String> {
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ").context("cannot read the password")?;
        let again = rpassword::prompt_password("Again: ").context("cannot read the password")?;
        anyhow::ensure!(first == again, "the two passwords differ");
        Ok(first)
    } else {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .context("cannot read standard input")?;
        Ok(line.trim_end_matches(['\r', '\n']).to_string())
    }
}

/// The API listener systemd passed (socket activation, `servicewatch.socket`), if any;
/// `[server] listen` is then not used.
fn activated_listener() -> anyhow::Result<Option<std::net::TcpListener>> {
    use std::os::fd::FromRawFd;
    let mut fds = sd_notify::listen_fds().context("cannot read LISTEN_FDS")?;
    let Some(fd) = fds.next() else {
        return Ok(None);
    };
    if fds.len() > 0 {
        anyhow::bail!(
            "systemd passed {} sockets; servicewatch takes one (the API)",
            fds.len() + 1
        );
    }
    // SAFETY: systemd passed this descriptor to this process (LISTEN_PID is ours) and
    // nothing else in the process uses it; the listener becomes its only owner.
    let listener = unsafe { std::net::TcpListener::from_raw_fd(fd) };
    listener
        .set_nonblocking(true)
        .context("cannot use the socket systemd passed")?;
    let addr = listener
        .local_addr()
        .context("systemd passed a socket that is not a TCP listener")?;
    tracing::info!(%addr, "using the listening socket passed by systemd");
    Ok(Some(listener))
}

/// Lifts the soft limit on open files to the hard limit: every client connection is a file,
/// and the soft default (1024 under systemd) is far below what the notification endpoint is
/// built for.
fn raise_open_files_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed to them.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}
