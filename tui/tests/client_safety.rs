//! The client against what its own machine and its manager may throw at
//! it: FIFOs, links swapped in mid-backup, names that cannot be catalog
//! names, files that keep changing, a reader that leaves early, and names
//! that would restore outside the target.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::TestCluster;
use common::real::text;

/// Longest any one command may take here.
const PATIENCE: Duration = Duration::from_secs(60);

/// The real `arca` as client "laptop" of `manager`, not yet started.
fn arca(t: &TestCluster, manager: &str, args: &[&str]) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_arca"));
    command
        .args(args)
        .env("ARCA_MANAGER", manager)
        .env("ARCA_SECRET_FILE", t.secret_file())
        .env("ARCA_CLIENT", "laptop")
        .env("ARCA_FILES", t.files())
        .env("XDG_CACHE_HOME", t.dir.path().join("cache"))
        .env("RUST_BACKTRACE", "1")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    command
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_output_ends_quietly_and_the_work_is_done() {
    let t = TestCluster::with_servers(3).await;
    let mut session = t.session("laptop").await;
    for i in 0..20 {
        let name = format!("photos/{i}.jpg");
        let path = t.write(&name, &common::content(i, 1000));
        common::put(&mut session, &path, &name).await;
    }
    let manager = t.cluster.manager_addr.clone();
    let restored = t.dir.path().join("restored");
    for args in [
        vec!["ls"],
        vec!["ls", "--json"],
        vec!["get", "photos/", "-o", restored.to_str().unwrap()],
    ] {
        let mut child = arca(&t, &manager, &args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The reader leaves before the first line, as `head` would after it.
        drop(child.stdout.take());
        let out = tokio::time::timeout(PATIENCE, child.wait_with_output())
            .await
            .expect("arca hung on a closed output")
            .unwrap();
        let stderr = text(&out.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(stderr.is_empty(), "{args:?}: {stderr}");
        assert!(out.status.success(), "{args:?}: {:?}", out.status);
    }
    // The restore went on to the end with nobody reading.
    assert_eq!(
        std::fs::read_dir(restored.join("photos")).unwrap().count(),
        20
    );
    t.cluster.shutdown().await;
}
