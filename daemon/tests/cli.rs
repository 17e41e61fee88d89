//! The real `daemon` binary: secrets, start-up errors and clean shutdown.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn daemon() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_daemon"));
    cmd.env_remove("ARCA_SECRET_FILE").env("RUST_LOG", "info");
    cmd
}

fn free_port() -> u16 {
    arca_daemon::cluster::free_port().unwrap()
}

#[test]
fn init_secret_writes_a_private_file_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/secret");
    let out = daemon().arg("init-secret").arg(&path).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.trim().len(), 64);
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let again = daemon().arg("init-secret").arg(&path).output().unwrap();
    assert!(!again.status.success());
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
}

#[test]
fn a_server_without_the_secret_says_where_to_get_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = daemon()
        .env("XDG_CONFIG_HOME", dir.path())
        .args(["--role", "server", "--port", &free_port().to_string()])
        .arg("--data")
        .arg(dir.path().join("data"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no cluster secret") && stderr.contains("copy"),
        "{stderr}"
    );
}

#[test]
fn a_role_is_required() {
    let out = daemon().output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--role"));
}

/// Starts a manager with `extra` flags, waits until it listens, stops it
/// with SIGTERM and returns what it logged.
fn run_manager_until_sigterm(dir: &std::path::Path, extra: &[&str]) -> String {
    let port = free_port();
    let mut child = daemon()
        .env("XDG_CONFIG_HOME", dir)
        .args([
            "--role",
            "manager",
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .args(extra)
        .arg("--data")
        .arg(dir.join("manager"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "manager never listened");
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        assert!(Instant::now() < deadline, "manager ignored SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(exit.success(), "{exit:?}");
    let mut logs = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut logs).unwrap();
    logs
}

#[test]
fn the_manager_creates_a_secret_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let logs = run_manager_until_sigterm(dir.path(), &[]);
    assert!(dir.path().join("arca/secret").is_file());
    assert!(dir.path().join("manager/catalog.db").is_file());
    assert!(logs.contains("manager running"), "{logs}");
    // Not a terminal: no colour codes in the file or pipe.
    assert!(!logs.contains('\u{1b}'), "{logs}");
}

#[test]
fn logs_can_be_json_for_collectors() {
    let dir = tempfile::tempdir().unwrap();
    let logs = run_manager_until_sigterm(dir.path(), &["--log-format", "json"]);
    assert!(logs.lines().count() >= 2, "{logs}");
    for line in logs.lines() {
        assert!(
            line.starts_with('{') && line.ends_with('}') && line.contains("\"level\""),
            "{line}"
        );
    }
}

#[test]
fn recover_with_no_server_to_ask_says_so_and_touches_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    let made = daemon().arg("init-secret").arg(&secret).output().unwrap();
    assert!(made.status.success());
    let data = dir.path().join("manager");
    let out = daemon()
        .arg("recover")
        .arg("--data")
        .arg(&data)
        .args(["--server", &format!("127.0.0.1:{}", free_port())])
        .arg("--secret-file")
        .arg(&secret)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no server named keeps"), "{stderr}");
    assert!(!data.join("catalog.db").exists());
}
