//! The live status page (`GET /`), driven in headless Chromium as a person or a wall screen
//! would: it logs in through its form, shows every service, follows a real backend's death
//! and return within a second, shows a pair on its backup and since when, opens a
//! service's detail and closes it without leaving a focus ring, breaks no rule of its
//! Content-Security-Policy, recovers by itself from a servicewatch restart (asking a person
//! to log in again, dimming every tile meanwhile), fills screens of every size, and passes
//! axe-core. Screenshots land in `target/status-page/`.

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::interop::{chromium, ready, root};
use common::{ADMIN, Backend, Mode, PASSWORD, SUPERVISOR, TestDaemon, USER};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// A watched check: the page's second is the page's, not the probe schedule's.
const CHECK: &str =
    r#"check = { interval = "200ms", timeout = "500ms", rise = 1, fall = 1, watch = true }"#;

/// The page in a browser, driven through tests/interop/status-page.mjs.
struct Page {
    browser: Child,
    ask: ChildStdin,
    said: Lines<BufReader<ChildStdout>>,
}

impl Page {
    /// Opens `url` at `size` (`WIDTHxHEIGHT`), logging in as `user` (`-`: a display link,
    /// which logs in by itself); returns the page and its `READY` line.
    async fn open(url: &str, user: &str, size: &str, no_websocket: bool) -> (Page, String) {
        let mut browser = Command::new("node")
            .arg(root().join("tests/interop/status-page.mjs"))
            .arg(url)
            .arg(user)
            .arg(PASSWORD)
            .arg(shots().join("status-page.png"))
            .arg(size)
            .current_dir(root().join("tests/interop"))
            .env("CHROMIUM", chromium())
            .env("NO_WEBSOCKET", if no_websocket { "1" } else { "" })
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("run node");
        let ask = browser.stdin.take().unwrap();
        let said = BufReader::new(browser.stdout.take().unwrap()).lines();
        let mut page = Page { browser, ask, said };
        let ready = page.next().await;
        (page, ready)
    }

    async fn next(&mut self) -> String {
        tokio::time::timeout(Duration::from_secs(30), self.said.next_line())
            .await
            .expect("the page answers within 30 s")
            .unwrap()
            .expect("the driver is running")
    }

    /// Sends `command`; returns the driver's answer.
    async fn ask(&mut self, command: &str) -> String {
        self.ask
            .write_all(format!("{command}\n").as_bytes())
            .await
            .unwrap();
        self.next().await
    }

    /// The layout after resizing to `width` x `height`.
    async fn resize(&mut self, width: u32, height: u32) -> Value {
        let answer = self.ask(&format!("VIEWPORT {width} {height}")).await;
        serde_json::from_str(answer.trim_start_matches("LAYOUT ")).unwrap()
    }

    /// A screenshot of the screen, saved as `name` under `target/status-page/`.
    async fn shot(&mut self, name: &str) -> PathBuf {
        let path = shots().join(name);
        let _ = std::fs::remove_file(&path);
        let answer = self.ask(&format!("SHOT {}", path.display())).await;
        assert!(answer.starts_with("SHOT "), "{answer}");
        let png = std::fs::read(&path).expect("the screenshot");
        assert!(
            png.starts_with(b"\x89PNG") && png.len() > 5_000,
            "a real screenshot"
        );
        path
    }

    /// axe-core's serious and critical violations on the page as it is.
    async fn accessibility_violations(&mut self) -> Value {
        let answer = self.ask("AXE").await;
        serde_json::from_str(answer.trim_start_matches("AXE ")).unwrap()
    }

    /// Closes the browser; fails if the page logged an error (a CSP refusal, a script
    /// error).
    async fn quit(mut self) {
        self.ask.write_all(b"QUIT\n").await.unwrap();
        drop(self.ask);
        let mut rest = Vec::new();
        while let Ok(Some(line)) = self.said.next_line().await {
            rest.push(line);
        }
        assert!(rest.is_empty(), "the page logged errors: {rest:?}");
        assert!(self.browser.wait().await.unwrap().success());
    }
}

/// Where the screenshots go.
fn shots() -> PathBuf {
    let dir = root().join("target/status-page");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_logs_in_shows_the_services_and_follows_a_change_within_a_second() {
    drive(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_proxy_that_drops_websockets_the_page_goes_on_with_long_polling() {
    drive(true).await;
}

/// Logs in, watches a backend die and come back, sees a pair on its backup, opens a
/// detail; `no_websocket`: behind a proxy that accepts WebSocket upgrades and drops them.
async fn drive(no_websocket: bool) {
    if !ready() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut sips = Backend::start(Mode::Accept).await;
    let (stat, ixn_a, ixn_b) = (
        Backend::start(Mode::Accept).await,
        Backend::start(Mode::Accept).await,
        Backend::start(Mode::Accept).await,
    );
    let d = TestDaemon::start(&format!(
        "[history]\npath = \"{}\"\n\
         [[service]]\nid = \"sips1\"\nname = \"SIPS1\"\ntype = \"Voice\"\nprimary = {}\n{CHECK}\n\
         [[service]]\nid = \"stat\"\nname = \"StatServer\"\ntype = \"Reporting\"\nprimary = {}\n{CHECK}\n\
         [[service]]\nid = \"ixn\"\nname = \"InteractionServer\"\ntype = \"Media\"\nprimary = {}\nbackup = {}\n{CHECK}\n\
         [[service]]\nid = \"tserver\"\nname = \"TServer_East\"\ntype = \"Voice\"\nprimary = {{ host = \"127.0.0.1\", port = 1 }}\n{CHECK}\n",
        dir.path().join("h.sqlite").display(),
        sips.toml(),
        stat.toml(),
        ixn_a.toml(),
        ixn_b.toml(),
    ));
    let (status, _) = d
        .call_as(
            ADMIN,
            reqwest::Method::PUT,
            "/api/v2/services/ixn/instances/primary/maintenance",
            Some(json!({"reason": "upgrade to 8.5.2"})),
        )
        .await;
    assert_eq!(status, 200);
    policy_and_challenge(&d).await;

    // An agent, and (behind the proxy) a supervisor, who sees the instance detail too.
    let user = if no_websocket { SUPERVISOR } else { USER };
    let (mut page, ready) = Page::open(&d.url("/"), user, "1600x900", no_websocket).await;
    let link = if no_websocket {
        "live (long-polling)"
    } else {
        "live"
    };
    assert_eq!(
        ready,
        format!("READY 4 {link}"),
        "every service shown, and how the page listens"
    );

    // A backend dies: the page shows it within a second, from the notification.
    sips.close().await;
    let died = Instant::now();
    let seen = page.ask("EXPECT sips1 Inactive").await;
    assert!(seen.starts_with("SEEN sips1 Inactive"), "{seen}");
    let took = died.elapsed();
    assert!(took < Duration::from_secs(1), "shown after {took:?}");
    // The pair runs on its backup, its primary in maintenance: the tile says so, and since
    // when the backup serves (24-hour time), not since when the state holds.
    let ixn = page
        .ask("TEXT ixn on backup since")
        .await
        .trim_start_matches("TEXT ixn ")
        .to_string();
    assert!(ixn.contains("primary in maintenance"), "{ixn}");
    assert!(
        ixn.contains("Maintenance: primary: upgrade to 8.5.2"),
        "{ixn}"
    );
    let time = ixn.split("since ").nth(1).unwrap_or_default();
    assert!(
        time.len() >= 5
            && time.as_bytes()[2] == b':'
            && !time.contains("AM")
            && !time.contains("PM"),
        "a 24-hour time: {ixn}"
    );
    let suffix = if no_websocket { "-long-polling" } else { "" };
    page.shot(&format!("follows{suffix}.png")).await;
    sips.reopen().await;
    let seen = page.ask("EXPECT sips1 Active").await;
    assert!(seen.starts_with("SEEN sips1 Active"), "{seen}");

    // One click away: the detail, with the history in 24-hour times with the time zone.
    let history = page.ask("HISTORY sips1").await;
    let entries: usize = history.trim_start_matches("HISTORY ").parse().unwrap();
    assert!(entries >= 3, "assessed, died, back: {history}");
    let servers = page.ask("SERVERS").await;
    if no_websocket {
        assert!(
            servers.starts_with("SERVERS primary (serving): up, 127.0.0.1:"),
            "{servers}"
        );
    } else {
        assert_eq!(servers, "SERVERS primary: up");
    }
    page.shot(&format!("detail{suffix}.png")).await;
    // Closed with its button, the tile that opened it is focused again, with no ring (the
    // mouse was used).
    assert_eq!(page.ask("CLOSE").await, "CLOSE none");
    page.quit().await;
}

/// The page's own answers carry the strict policy it is written for, and the API refuses
/// the page's script without a Basic challenge (the page shows its own login form).
async fn policy_and_challenge(d: &TestDaemon) {
    let page = reqwest::get(d.url("/")).await.unwrap();
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert!(page.text().await.unwrap().contains(r#"content="/api/v2""#));
    let client = reqwest::Client::new();
    let by_script = client
        .get(d.url("/api/v2/services"))
        .header("X-Requested-With", "XMLHttpRequest")
        .send()
        .await
        .unwrap();
    assert_eq!(by_script.status(), 401);
    assert!(by_script.headers().get("www-authenticate").is_none());
    let by_program = client.get(d.url("/api/v2/services")).send().await.unwrap();
    assert!(by_program.headers().get("www-authenticate").is_some());
}

/// `[[service]]` entries: `count` services named like a contact center's (long names
/// with underscores among them), every one on `backend`.
fn services(count: usize, backend: &Backend) -> String {
    const NAMES: [&str; 6] = [
        "InteractionServer",
        "TServer_East_Reporting",
        "StatServer",
        "SIP Server Cluster North",
        "UniversalContactServer",
        "ConfigurationServer_Proxy",
    ];
    (0..count)
        .map(|i| {
            let name = NAMES[i % NAMES.len()];
            format!(
                "[[service]]\nid = \"s{i}\"\nname = \"{name} {i}\"\ntype = \"Voice\"\nprimary = {}\n{CHECK}\n",
                backend.toml()
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tiles_fill_every_screen_readably_and_the_page_passes_axe() {
    if !ready() {
        return;
    }
    let backend = Backend::start(Mode::Accept).await;
    let mut down = Backend::start(Mode::Accept).await;
    for count in [4, 200] {
        let mut toml = services(count - 1, &backend);
        toml.push_str(&format!(
            "[[service]]\nid = \"down\"\nname = \"Outbound_Contact_Server\"\ntype = \"Voice\"\nprimary = {}\n{CHECK}\n",
            down.toml()
        ));
        let d = TestDaemon::start(&toml);
        let (mut page, ready) = Page::open(&d.url("/"), USER, "1920x1080", false).await;
        assert_eq!(ready, format!("READY {count} live"));
        down.close().await;
        let seen = page.ask("EXPECT down Inactive").await;
        assert!(seen.starts_with("SEEN down Inactive"), "{seen}");
        for (width, height) in [(1920, 1080), (3840, 2160), (390, 844)] {
            let layout = page.resize(width, height).await;
            page.shot(&format!("{count}-services-{width}x{height}.png"))
                .await;
            assert_eq!(layout["tiles"], count, "{layout}");
            assert_eq!(
                layout["brokenNames"],
                json!([]),
                "names wrap at word boundaries: {layout}"
            );
            let smallest = layout["smallestFont"].as_f64().unwrap();
            assert!(smallest >= 12.0, "readable text: {layout}");
            let covered = layout["covered"].as_f64().unwrap();
            if count == 4 && width > 1000 {
                // Four services fill a wall screen, in big letters.
                assert!(covered > 0.85, "the screen is filled: {layout}");
                assert!(smallest >= 40.0, "readable across a room: {layout}");
                assert_eq!(layout["scrolls"], false, "{layout}");
            }
            if count == 200 && width > 1000 {
                // Two hundred still fit one wall screen: nobody scrolls a TV.
                assert_eq!(layout["scrolls"], false, "{layout}");
            }
            if count == 4 && width < 1000 {
                assert_eq!(layout["columns"], 1, "a phone shows one column: {layout}");
            }
        }
        page.resize(1920, 1080).await;
        assert_eq!(
            page.accessibility_violations().await,
            json!([]),
            "axe-core finds no serious or critical violation with {count} services"
        );
        page.quit().await;
        down.reopen().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_restart_a_logged_in_page_dims_its_tiles_then_asks_to_log_in_again() {
    if !ready() {
        return;
    }
    let backend = Backend::start(Mode::Accept).await;
    let toml = services(3, &backend);
    let d = TestDaemon::start(&toml);
    let addr: SocketAddr = d.addr;
    let (mut page, ready) = Page::open(&d.url("/"), USER, "1920x1080", false).await;
    assert_eq!(ready, "READY 3 live");
    drop(d);
    // Out of reach: every tile dimmed and saying as of when, the link's state large.
    let dimmed = page.ask("DIMMED").await;
    assert!(
        dimmed.contains("NOT CONNECTED") || dimmed.contains("Not connected"),
        "{dimmed}"
    );
    assert!(dimmed.contains("Showing the states as of"), "{dimmed}");
    assert!(dimmed.contains("| as of "), "{dimmed}");
    assert!(dimmed.contains("grayscale"), "{dimmed}");
    let offline = page.ask("LINK offline").await;
    assert!(offline.contains("retrying"), "{offline}");
    page.shot("offline.png").await;
    // Back on the same address: the old cookie means nothing to the new process, so the
    // page shows its login (and no stale tile) within 5 s, by itself.
    let _again = TestDaemon::start_at(&toml, addr);
    let back = Instant::now();
    let login = page.ask("LOGIN").await;
    assert_eq!(login, "LOGIN 0 ", "the login, and no tile left");
    assert!(
        back.elapsed() < Duration::from_secs(5),
        "the login shown {:?} after the restart",
        back.elapsed()
    );
    page.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wall_screen_with_a_display_link_is_live_again_within_5_s_of_a_restart() {
    if !ready() {
        return;
    }
    const TOKEN: &str = "swd_wallwallwallwallwallwallwallwallwallwallw";
    let digest = ring::digest::digest(&ring::digest::SHA256, TOKEN.as_bytes());
    let hash: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    let backend = Backend::start(Mode::Accept).await;
    let mut changing = Backend::start(Mode::Accept).await;
    let toml = format!(
        "{}[[service]]\nid = \"changing\"\nname = \"StatServer\"\ntype = \"Voice\"\nprimary = {}\n{CHECK}\n\
         [[auth.display]]\nname = \"floor-2\"\ncontact_center = \"all\"\ntoken_sha256 = \"{hash}\"\n",
        services(2, &backend),
        changing.toml(),
    );
    let d = TestDaemon::start(&toml);
    let addr = d.addr;
    // Nobody types anything: the display link logs in.
    let (mut page, ready) = Page::open(
        &d.url(&format!("/#display={TOKEN}")),
        "-",
        "1920x1080",
        false,
    )
    .await;
    assert_eq!(ready, "READY 3 live");
    let url = page.ask("URL").await;
    assert!(
        !url.contains("swd_"),
        "the token is taken out of the address bar: {url}"
    );
    drop(d);
    let dimmed = page.ask("DIMMED").await;
    assert!(dimmed.contains("as of"), "{dimmed}");
    // What changes while the page is away is what it shows once back.
    changing.close().await;
    let _again = TestDaemon::start_at(&toml, addr);
    let back = Instant::now();
    let live = page.ask("LINK live").await;
    assert_eq!(live, "LINK live live");
    assert!(
        back.elapsed() < Duration::from_secs(5),
        "live again {:?} after the restart",
        back.elapsed()
    );
    let seen = page.ask("EXPECT changing Inactive").await;
    assert!(seen.starts_with("SEEN changing Inactive"), "{seen}");
    page.shot("display-after-restart.png").await;
    page.quit().await;
}
