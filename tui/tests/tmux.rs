//! The real `arca demo` in a real terminal (tmux): a file is selected and
//! uploaded with keys, the screen shows it committed with both replica bars
//! full, and quitting leaves no process and no data behind.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One demo at a time: each test counts the demo processes.
static ONE_DEMO: Mutex<()> = Mutex::new(());

/// A private tmux server, killed when the test ends.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn run(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("tmux is needed for this test: apt-get install tmux")
    }

    /// A window running `command` in a terminal of this size.
    fn start(&self, window: &str, width: u16, height: u16, command: &str) {
        let (width, height) = (width.to_string(), height.to_string());
        let started = self.run(&[
            "new-session",
            "-d",
            "-s",
            window,
            "-x",
            &width,
            "-y",
            &height,
            command,
        ]);
        assert!(started.status.success(), "{started:?}");
    }

    fn screen_of(&self, window: &str) -> String {
        String::from_utf8_lossy(&self.run(&["capture-pane", "-p", "-t", window]).stdout)
            .into_owned()
    }

    fn keys(&self, keys: &[&str]) {
        for key in keys {
            self.run(&["send-keys", "-t", "demo", key]);
            std::thread::sleep(Duration::from_millis(150));
        }
    }

    /// What a tmux format says of the demo's pane.
    fn pane_format(&self, format: &str) -> String {
        let out = self.run(&["display-message", "-p", "-t", "demo", format]);
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Waits until the screen satisfies `ready`, and returns it.
    fn wait_for(&self, what: &str, ready: impl Fn(&str) -> bool) -> String {
        self.wait_for_in("demo", what, ready)
    }

    fn wait_for_in(&self, window: &str, what: &str, ready: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let screen = self.screen_of(window);
            if ready(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        self.run(&["kill-server"]);
    }
}

/// The pids of running `arca demo` processes.
fn demo_pids() -> Vec<String> {
    let binary = env!("CARGO_BIN_EXE_arca");
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(Result::ok)
        .filter_map(|e| {
            let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
            let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
            (args.first() == Some(&binary.as_bytes()) && args.get(1) == Some(&b"demo".as_slice()))
                .then(|| e.file_name().to_string_lossy().into_owned())
        })
        .collect()
}

fn demo_processes() -> usize {
    demo_pids().len()
}

#[test]
fn demo_uploads_a_file_chosen_with_keys_and_cleans_up_on_quit() {
    let _one = ONE_DEMO.lock().unwrap_or_else(|e| e.into_inner());
    let tmux = Tmux {
        socket: format!("arca-test-{}", std::process::id()),
    };
    let command = format!(
        "{} demo; echo ARCA-EXITED $?; sleep 600",
        env!("CARGO_BIN_EXE_arca")
    );
    tmux.start("demo", 120, 40, &command);

    // The demo backs up two samples by itself; wait for the cluster and them.
    let screen = tmux.wait_for("four live servers and the first uploads", |s| {
        s.contains("4/4 alive") && s.matches("committed v1").count() >= 2
    });
    let files_dir = screen
        .lines()
        .find_map(|line| {
            let start = line.find("Files ")? + "Files ".len();
            line[start..].split_whitespace().next().map(str::to_owned)
        })
        .expect("the Files pane names its folder");
    assert!(std::path::Path::new(&files_dir).is_dir(), "{files_dir}");

    // The first entry is data/: open it, select archive.bin, upload it.
    tmux.keys(&["Home", "Enter"]);
    tmux.wait_for("the data folder", |s| {
        s.contains("archive.bin") && s.contains("measurements.csv")
    });
    tmux.keys(&["Home", "Space", "u"]);
    let screen = tmux.wait_for("archive.bin committed with both replicas full", |s| {
        let lines: Vec<&str> = s.lines().collect();
        lines.iter().enumerate().any(|(i, line)| {
            line.contains("data/archive.bin")
                && line.contains("committed v1")
                && line.contains("sent ██████████ 100%")
                && line.contains("copy 1 ██████████ 100%")
                && lines
                    .get(i + 1)
                    .is_some_and(|next| next.contains("copy 2 ██████████ 100%"))
        })
    });
    assert!(
        screen.contains("✓ archive.bin") || screen.contains("archive.bin"),
        "{screen}"
    );

    tmux.keys(&["q"]);
    tmux.wait_for("the demo to exit cleanly", |s| s.contains("ARCA-EXITED 0"));
    assert_eq!(demo_processes(), 0, "the demo process is still running");
    assert!(
        !std::path::Path::new(&files_dir).exists(),
        "the demo left {files_dir} behind"
    );
}

/// `arca demo` at 80x24 on a tmux server named after `test`, then `after`
/// in its shell; its folder is the only one in the temp folder returned.
fn demo_at_80x24(test: &str, after: &str) -> (Tmux, tempfile::TempDir) {
    let tmux = Tmux {
        socket: format!("arca-test-{test}-{}", std::process::id()),
    };
    let tmp = tempfile::tempdir().unwrap();
    let command = format!(
        "TMPDIR={} {} demo{after}",
        tmp.path().display(),
        env!("CARGO_BIN_EXE_arca")
    );
    tmux.start("demo", 80, 24, &command);
    (tmux, tmp)
}

/// At 80x24 the servers show their load and score and the samples their
/// names; a paste into the filter is text (it neither quits nor deletes);
/// the demo's CLI settings reach its cluster, and another cluster's
/// credential is shown as such; 2,000 files back up as one row, and are one folder in Backups
/// that a filter finds and a restore brings back whole; SIGTERM restores
/// the terminal and removes the demo's folder.
#[test]
fn demo_at_80x24_takes_pastes_as_text_and_cleans_up_on_sigterm() {
    let _one = ONE_DEMO.lock().unwrap_or_else(|e| e.into_inner());
    let (tmux, tmp) = demo_at_80x24("small", "; echo ARCA-EXITED $?; sleep 600");
    let screen = tmux.wait_for("four live servers and the first uploads", |s| {
        s.contains("4/4 alive") && s.matches("committed v1").count() >= 2
    });
    for server in ["s1", "s2", "s3", "s4"] {
        let row = screen
            .lines()
            .find(|line| line.contains(&format!(" {server}  ●")))
            .unwrap_or_else(|| panic!("no row for {server}:\n{screen}"));
        assert!(row.contains('%'), "{server} shows no load: {row}");
        assert!(
            row.split_whitespace()
                .any(|w| w.parse::<f64>().is_ok_and(|v| (0.0..=1.0).contains(&v))),
            "{server} shows no score: {row}"
        );
    }
    assert!(screen.contains("notes.txt"), "{screen}");

    let demo_dir = std::fs::read_dir(tmp.path())
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    assert!(demo_dir.join("files").is_dir());
    tmux.keys(&["/"]);
    tmux.run(&["set-buffer", "-b", "paste", "zz\nq"]);
    tmux.run(&["paste-buffer", "-p", "-b", "paste", "-t", "demo"]);
    tmux.wait_for("the pasted filter", |s| s.contains("/zzq"));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(demo_processes(), 1, "a paste quit the demo");
    assert!(
        demo_dir.join("files").is_dir(),
        "a paste removed the demo folder"
    );
    tmux.keys(&["Escape"]);

    // The CLI, pointed at the demo by the file it wrote, lists its backups.
    let env = demo_dir.join("env");
    let ls = Command::new("sh")
        .arg("-c")
        .arg(format!(
            ". '{}' && '{}' ls",
            env.display(),
            env!("CARGO_BIN_EXE_arca")
        ))
        .env("XDG_CACHE_HOME", tmp.path().join("cache"))
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&ls.stdout);
    assert!(
        ls.status.success() && listed.contains("notes.txt"),
        "{ls:?}"
    );

    // A dashboard with another cluster's credential says so, in so many words.
    let wrong = tmp.path().join("wrong-credential");
    let (other, _) = arca_shared::keys::ClusterKey::random().unwrap();
    let far = std::time::SystemTime::now() + Duration::from_secs(3600);
    let stranger = other.authority().unwrap().issue("demo", far).unwrap();
    stranger.save(&wrong).unwrap();
    let command = format!(
        ". '{}' && ARCA_CREDENTIAL='{}' XDG_CACHE_HOME='{}' '{}'",
        env.display(),
        wrong.display(),
        tmp.path().join("cache").display(),
        env!("CARGO_BIN_EXE_arca")
    );
    tmux.start("wrong", 80, 24, &command);
    tmux.wait_for_in("wrong", "the reason of the refusal", |s| {
        s.contains("no link") && s.contains("different clusters")
    });

    // 2,000 files backed up from the dashboard are one summary row.
    let many = demo_dir.join("files").join("many");
    std::fs::create_dir(&many).unwrap();
    for i in 0..2000 {
        std::fs::write(many.join(format!("f{i:04}")), format!("file {i}")).unwrap();
    }
    tmux.wait_for("the new folder", |s| s.contains("many/"));
    tmux.keys(&["Home", "Down", "Down"]);
    tmux.keys(&["u"]);
    let screen = tmux.wait_for("2000 files backed up", |s| {
        s.contains("2000 files backed up")
    });
    let rows = screen.lines().filter(|l| l.contains("many")).count();
    assert_eq!(
        rows, 2,
        "the folder's row and the job's, no more:\n{screen}"
    );

    // In Backups they are one folder, found by the filter, opened, and
    // restored whole.
    for gone in ["f0007", "f1999"] {
        std::fs::remove_file(many.join(gone)).unwrap();
    }
    tmux.keys(&["Tab", "/", "m", "a", "n", "y", "Enter"]);
    tmux.wait_for("the folder in Backups", |s| {
        s.lines()
            .any(|l| l.contains("▸ many/") && l.contains("2000"))
    });
    tmux.keys(&["Enter"]);
    tmux.wait_for("inside the folder", |s| {
        s.contains("2000 items in many/") && s.contains("f0000")
    });
    tmux.keys(&["/", "1", "9", "9", "9"]);
    tmux.wait_for("the filtered folder", |s| {
        s.contains("1 item in many/") && s.contains("f1999")
    });
    tmux.keys(&["Escape", "BSpace", "r"]);
    tmux.wait_for("the folder restore to ask", |s| {
        s.contains("Restore the 2000 files under many/")
    });
    tmux.keys(&["y"]);
    tmux.wait_for("the folder restored", |s| s.contains("2000 files restored"));
    assert!(many.join("f0007").is_file() && many.join("f1999").is_file());
    assert_eq!(
        std::fs::read_to_string(many.join("f1999")).unwrap(),
        "file 1999"
    );

    let pid = demo_pids().pop().expect("the demo runs");
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    tmux.wait_for("the demo to exit", |s| s.contains("ARCA-EXITED"));
    assert_eq!(
        tmux.pane_format("#{alternate_on}"),
        "0",
        "still in the alternate screen"
    );
    assert_eq!(
        tmux.pane_format("#{mouse_any_flag}"),
        "0",
        "mouse capture still on"
    );
    assert_eq!(demo_processes(), 0);
    assert!(
        !demo_dir.exists(),
        "SIGTERM left {} behind",
        demo_dir.display()
    );
}

/// A closed terminal window (the pane killed, SIGHUP and a terminal that
/// is gone) still ends the demo cleanly: no process and no folder left.
#[test]
fn closing_the_window_removes_the_demo_folder() {
    let _one = ONE_DEMO.lock().unwrap_or_else(|e| e.into_inner());
    let (tmux, tmp) = demo_at_80x24("close", "");
    tmux.wait_for("four live servers", |s| s.contains("4/4 alive"));
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 1);
    tmux.run(&["kill-pane", "-t", "demo"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while demo_processes() > 0 || std::fs::read_dir(tmp.path()).unwrap().count() > 0 {
        assert!(
            Instant::now() < deadline,
            "the closed demo left a process or its folder behind"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
