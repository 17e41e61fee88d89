//! The real binaries, started as a person would start them.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Kills every process it started when the test ends, pass or fail.
pub struct Processes(pub Vec<Child>);

impl Drop for Processes {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub fn daemon_binary() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_arca")).with_file_name("daemon")
}

pub fn free_port() -> u16 {
    arca_daemon::cluster::free_port().unwrap()
}

pub struct Env {
    pub dir: tempfile::TempDir,
    pub manager: String,
}

impl Env {
    pub fn secret(&self) -> PathBuf {
        self.dir.path().join("secret")
    }

    /// The manager's data folder, where credentials are issued.
    pub fn manager_data(&self) -> PathBuf {
        self.dir.path().join("manager")
    }

    /// `client`'s credential file, issued with `daemon client add` the
    /// first time it is asked for (once the manager made its catalog).
    pub fn credential(&self, client: &str) -> PathBuf {
        let path = self.dir.path().join("credentials").join(client);
        let deadline = Instant::now() + Duration::from_secs(20);
        while !path.exists() {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            let out = Command::new(daemon_binary())
                .args(["client", "add", client, "--out"])
                .arg(&path)
                .arg("--data")
                .arg(self.manager_data())
                .env("ARCA_SECRET_FILE", self.secret())
                .output()
                .unwrap();
            assert!(
                out.status.success() || Instant::now() < deadline,
                "daemon client add failed: {}",
                text(&out.stderr)
            );
            if !out.status.success() {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        path
    }

    pub fn arca(&self, args: &[&str]) -> Output {
        self.arca_command("tester", &self.dir.path().join("files"), args)
            .output()
            .unwrap()
    }

    /// `arca` as client `client` with files folder `files`, not yet started.
    pub fn arca_command(&self, client: &str, files: &Path, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_arca"));
        command
            .args(args)
            .env("ARCA_MANAGER", &self.manager)
            .env("ARCA_CREDENTIAL", self.credential(client))
            .env("ARCA_PASSWORD", "test passphrase")
            .env("ARCA_FILES", files)
            .env("XDG_CACHE_HOME", self.dir.path().join("cache"))
            .stdin(Stdio::null());
        command
    }

    /// Every daemon's log, appended to one file so a failure can show it.
    pub fn daemon_log(&self) -> PathBuf {
        self.dir.path().join("daemons.log")
    }

    pub fn spawn_daemon(&self, args: &[&str]) -> Child {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.daemon_log())
            .unwrap();
        Command::new(daemon_binary())
            .args(args)
            .env("ARCA_SECRET_FILE", self.secret())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap()
    }

    pub fn status(&self) -> serde_json::Value {
        let out = self.arca(&["status", "--json"]);
        serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
    }

    pub fn wait_for_alive(&self, count: usize) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let status = self.status();
            let alive = status["servers"]
                .as_array()
                .map_or(0, |s| s.iter().filter(|s| s["alive"] == true).count());
            if alive == count {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "never saw {count} servers alive: {status}\ndaemons' log:\n{}",
                std::fs::read_to_string(self.daemon_log()).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
