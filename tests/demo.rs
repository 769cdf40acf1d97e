//! `servicewatch demo` runs with nothing else installed, and its scenario shows a switchover.

use std::io::{BufRead, BufReader};

use base64ct::Encoding;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn demo_serves_and_shows_a_switchover() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_servicewatch"))
        .args([
            "demo",
            "--listen",
            "127.0.0.1:0",
            "--admin",
            "127.0.0.1:0",
            "--step",
            "3s",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = out
        .find_map(|l| l.ok().filter(|l| l.contains("Services API:")))
        .expect("the demo prints its URLs");
    let url = line.split_whitespace().last().unwrap().to_string();
    assert!(
        url.starts_with("http://127.0.0.1:") && url.ends_with("/api/v2/services?fields=*"),
        "{url}"
    );
    let addr = url
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let login = out
        .find_map(|l| l.ok().filter(|l| l.contains("Login:")))
        .expect("the demo prints its login");
    let words: Vec<&str> = login.split_whitespace().collect();
    assert_eq!(&words[..3], ["Login:", "user", "demo,"], "{login}");
    let password = words[4];
    assert!(password.len() >= 12, "a made-up password: {login}");
    let credentials = base64ct::Base64::encode_string(format!("demo:{password}").as_bytes());

    // Every command the demo prints works as pasted.
    let commands: Vec<String> = out
        .by_ref()
        .map_while(Result::ok)
        .take_while(|l| !l.contains("Ctrl-C"))
        .map(|l| l.trim().to_string())
        .filter(|l| l.starts_with("curl "))
        .collect();
    assert_eq!(commands.len(), 3, "{commands:?}");
    for command in &commands {
        let run = Command::new("sh").arg("-c").arg(command).output().unwrap();
        assert!(run.status.success(), "{command}: {run:?}");
        let answer = String::from_utf8_lossy(&run.stdout);
        assert!(
            answer.contains(r#""statusCode":0"#) || answer.contains(r#""successful":true"#),
            "{command} answered {answer}"
        );
    }

    // The first step stops SIPS1's primary: the service must switch over to its backup.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let body = get(&addr, "/api/v2/services/sips1", &credentials);
        if body.contains(r#""state":"Active","servingInstance":"backup""#) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no switchover; last answer: {body}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The history has it, and the status page is there.
    let history = get(
        &addr,
        "/api/v2/services/sips1/history?limit=1",
        &credentials,
    );
    assert!(
        history.contains(r#""servingInstance":"backup""#),
        "{history}"
    );
    assert!(get(&addr, "/", "").starts_with("HTTP/1.0 200"));
    let history_dir = std::env::temp_dir().join(format!("servicewatch-demo-{}", child.id()));
    assert!(history_dir.join("history.sqlite").exists());
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the demo did not stop on SIGINT");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(child.wait().unwrap().success());
    assert!(!history_dir.exists(), "the demo's history goes with it");
}

fn get(addr: &str, path: &str, credentials: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: {addr}\r\nAuthorization: Basic {credentials}\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}
