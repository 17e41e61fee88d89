//! The real `arca demo` in a real terminal (tmux): a file is selected and
//! uploaded with keys, the screen shows it committed with both replica bars
//! full, and quitting leaves no process and no data behind.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output};
use std::time::{Duration, Instant};

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

    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.run(&["capture-pane", "-p", "-t", "demo"]).stdout)
            .into_owned()
    }

    fn keys(&self, keys: &[&str]) {
        for key in keys {
            self.run(&["send-keys", "-t", "demo", key]);
            std::thread::sleep(Duration::from_millis(150));
        }
    }

    /// Waits until the screen satisfies `ready`, and returns it.
    fn wait_for(&self, what: &str, ready: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let screen = self.screen();
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

fn demo_processes() -> usize {
    let binary = env!("CARGO_BIN_EXE_arca");
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(Result::ok)
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .filter(|cmdline| {
            let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
            args.first() == Some(&binary.as_bytes()) && args.get(1) == Some(&b"demo".as_slice())
        })
        .count()
}

#[test]
fn demo_uploads_a_file_chosen_with_keys_and_cleans_up_on_quit() {
    let tmux = Tmux {
        socket: format!("arca-test-{}", std::process::id()),
    };
    let command = format!(
        "{} demo; echo ARCA-EXITED $?; sleep 600",
        env!("CARGO_BIN_EXE_arca")
    );
    let started = tmux.run(&[
        "new-session",
        "-d",
        "-s",
        "demo",
        "-x",
        "120",
        "-y",
        "40",
        &command,
    ]);
    assert!(started.status.success(), "{started:?}");

    // The demo backs up two samples by itself; wait for the cluster and them.
    let screen = tmux.wait_for("four live servers and the first uploads", |s| {
        s.contains("4 of 4 alive") && s.matches("committed v1").count() >= 2
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
                && line.contains("replica 1 ██████████ 100%")
                && lines
                    .get(i + 1)
                    .is_some_and(|next| next.contains("replica 2 ██████████ 100%"))
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
