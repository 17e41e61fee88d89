//! The real binaries as a person runs them: a manager and servers started
//! with `daemon`, files backed up and restored with `arca`, a server killed
//! with SIGKILL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::real::{Env, Processes, daemon_binary, free_port, text};

#[test]
fn real_daemons_and_client_back_up_restore_and_survive_a_killed_server() {
    let dir = tempfile::tempdir().unwrap();
    let env = Env {
        manager: format!("127.0.0.1:{}", free_port()),
        dir,
    };
    let root = env.dir.path();
    let init = Command::new(daemon_binary())
        .arg("init-secret")
        .arg(env.secret())
        .output()
        .unwrap();
    assert!(init.status.success());

    let mut procs = Processes(Vec::new());
    procs.0.push(env.spawn_daemon(&[
        "--role",
        "manager",
        "--listen",
        &env.manager,
        "--dead-after",
        "1s",
        "--data",
        root.join("manager").to_str().unwrap(),
    ]));
    for _ in 0..3 {
        let port = free_port().to_string();
        let data = root.join(format!("server-{port}"));
        procs.0.push(env.spawn_daemon(&[
            "--role",
            "server",
            "--port",
            &port,
            "--manager",
            &env.manager,
            "--dead-after",
            "1s",
            "--data",
            data.to_str().unwrap(),
        ]));
    }
    env.wait_for_alive(3);

    let files = root.join("files");
    std::fs::create_dir_all(files.join("photos/2026")).unwrap();
    std::fs::write(files.join("notes.txt"), "remember the milk\n").unwrap();
    let photo: Vec<u8> = (0..2_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(files.join("photos/2026/beach.jpg"), &photo).unwrap();

    let out = env.arca(&["put", files.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("committed  notes.txt  v1  2 replicas"),
        "{stdout}"
    );
    assert!(
        stdout.contains("committed  photos/2026/beach.jpg  v1"),
        "{stdout}"
    );

    let out = env.arca(&["ls", "--json"]);
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<_> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["notes.txt", "photos/2026/beach.jpg"]);
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["replicas"] == 2)
    );

    // Kill one server outright; restores still work from the other copy.
    procs.0[1].kill().unwrap();
    procs.0[1].wait().unwrap();
    env.wait_for_alive(2);
    let restored = root.join("restored");
    let out = env.arca(&["get", "photos/", "-o", restored.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        std::fs::read(restored.join("photos/2026/beach.jpg")).unwrap(),
        photo
    );

    // A folder goes only with --all, and then all of it.
    let out = env.arca(&["rm", "photos/"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("--all"), "{}", text(&out.stderr));
    let out = env.arca(&["rm", "photos/", "--all"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "removed photos/2026/beach.jpg v1\n");
    let out = env.arca(&["ls", "--json"]);
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed[0]["name"], "notes.txt");

    // Errors: one line, non-zero exit, no hang.
    let out = env.arca(&["put", root.join("missing").to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).starts_with("arca: cannot back up"),
        "{}",
        text(&out.stderr)
    );
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_arca"))
        .args(["ls", "--manager", &format!("127.0.0.1:{}", free_port())])
        .env("ARCA_CREDENTIAL", env.credential("tester"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("cannot reach the manager"),
        "{}",
        text(&out.stderr)
    );
    assert!(started.elapsed() < Duration::from_secs(10));

    // Credentials: listed, revoked, refused; and none runs a daemon.
    let daemon = |args: &[&str]| {
        Command::new(daemon_binary())
            .args(args)
            .arg("--data")
            .arg(env.manager_data())
            .env("ARCA_SECRET_FILE", env.secret())
            .output()
            .unwrap()
    };
    let listed = text(&daemon(&["client", "list"]).stdout);
    assert!(
        listed.contains("active") && listed.contains("tester"),
        "{listed}"
    );
    let credential = env.credential("tester");
    let out = Command::new(daemon_binary())
        .args(["--role", "server", "--port", &free_port().to_string()])
        .arg("--secret-file")
        .arg(&credential)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("is a client credential, not the cluster secret"),
        "{}",
        text(&out.stderr)
    );
    let out = daemon(&["client", "revoke", "tester"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = env.arca(&["ls"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("revoked"),
        "{}",
        text(&out.stderr)
    );
    let listed = text(&daemon(&["client", "list"]).stdout);
    assert!(listed.contains("revoked"), "{listed}");
    let out = daemon(&["client", "revoke", "tester"]);
    assert!(!out.status.success(), "revoking twice said nothing");
}

#[test]
fn a_client_without_a_credential_says_where_to_get_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_arca"))
        .args(["ls"])
        .env_remove("ARCA_CREDENTIAL")
        .env("XDG_CONFIG_HOME", dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("no client credential") && stderr.contains("daemon client add NAME"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

#[test]
fn the_bench_runs_every_case_against_real_daemons() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_arca"))
        .args([
            "bench",
            "--runs",
            "1",
            "--big-mib",
            "3",
            "--small-files",
            "40",
            "--medium-files",
            "3",
            "--json",
        ])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let cases = report["cases"].as_array().unwrap();
    let names: Vec<_> = cases.iter().map(|c| c["case"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "backup, 2 replicas",
            "restore",
            "restore",
            "small files backup",
            "unchanged re-backup",
            "small files restore",
            "1 MiB files backup",
            "dashboard upload"
        ]
    );
    for case in cases {
        assert!(case["median_s"].as_f64().unwrap() > 0.0, "{case}");
    }
    // The changed MiB is stored again, at most a few chunks around it.
    let changed = &report["changed_mib"];
    let grown = changed["arca_bytes"].as_u64().unwrap();
    assert!(grown > 0 && grown <= 2 * (6 << 20), "{changed}");
    for process in ["client", "manager", "server 1", "server 4"] {
        assert!(
            report["peak_rss_kib"][process].as_u64().unwrap() > 0,
            "{process}"
        );
    }
    // Nothing is left behind in the folder it ran in.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}
