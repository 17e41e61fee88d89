//! `arca bench --scale`: a catalog of many entries across many clients, and
//! what must stay quick on it: a name's versions, the cluster's status, one
//! client's whole listing, the manager's memory, and the dashboard's key
//! presses and window fetches.
//!
//! One client backs up a real tree of 10,000 files with `arca put`; the
//! rest of the entries are versions of one small file under many names,
//! recorded by the client library in the batches `arca put` sends, so the
//! catalog grows without the disks filling.

use std::time::Instant;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use serde_json::json;
use tokio::sync::watch;

use super::{Bench, BenchResult, Options, io, median, path_str, peak_rss_kib, write_tree};
use crate::client::{ClientError, LocalFile, Session, TransferProgress};
use crate::dashboard::app::{App, Tab};
use crate::dashboard::event::{Effect, Msg, Window};
use crate::dashboard::ui;
use crate::out;

/// The client with a real tree, and how many files it holds.
const TREE_CLIENT: &str = "scale-tree";
const TREE_FILES: usize = 10_000;
/// Clients that share the other entries.
const FILLERS: u64 = 20;
/// Versions recorded per batch, as `arca put` sends small files.
const BATCH: u64 = 512;
/// Key presses timed on the dashboard.
const PRESSES: usize = 300;

/// A timed case and the figure it must stay under.
struct Timed {
    name: &'static str,
    runs: Vec<f64>,
    target_secs: f64,
}

pub async fn run(bench: &Bench, entries: u64, options: &Options) -> BenchResult<()> {
    let tree = bench.dir.join("tree");
    write_tree(&tree, TREE_FILES, 4096, 1)?;
    out::error(format_args!("backing up {TREE_FILES} files with arca put"));
    bench.arca_as(TREE_CLIENT, &["put", path_str(&tree)?], &bench.dir)?;
    let filled = Instant::now();
    let per_client = entries.saturating_sub(TREE_FILES as u64).div_ceil(FILLERS);
    for client in 0..FILLERS {
        out::error(format_args!(
            "recording {per_client} versions as client {}/{FILLERS}",
            client + 1
        ));
        fill(bench, &filler(client), per_client).await?;
    }
    let fill_secs = filled.elapsed().as_secs_f64();

    let mut timed = vec![
        Timed {
            name: "arca ls NAME",
            runs: Vec::new(),
            target_secs: 0.5,
        },
        Timed {
            name: "arca status",
            runs: Vec::new(),
            target_secs: 0.5,
        },
        Timed {
            name: "arca ls, 10000 files",
            runs: Vec::new(),
            target_secs: 1.0,
        },
    ];
    let one_name = name_of(per_client / 2);
    for run in 0..options.runs {
        out::error(format_args!("timing, run {}/{}", run + 1, options.runs));
        let cases: [(&str, Vec<&str>); 3] = [
            (&filler(0), vec!["ls", &one_name]),
            (TREE_CLIENT, vec!["status"]),
            (TREE_CLIENT, vec!["ls"]),
        ];
        for (case, (client, args)) in timed.iter_mut().zip(cases) {
            let (secs, _) = bench.arca_as(client, &args, &bench.dir)?;
            case.runs.push(secs);
        }
    }
    let dashboard = dashboard(bench, &filler(0)).await?;
    let manager = bench
        .daemons
        .iter()
        .find(|(name, _)| name == "manager")
        .map_or(0, |(_, child)| child.id());
    let rss = (peak_rss_kib(manager), current_rss_kib(manager));
    let total = entries.max(TREE_FILES as u64 + per_client * FILLERS);
    report(options, total, fill_secs, &timed, &dashboard, rss);
    Ok(())
}

fn filler(client: u64) -> String {
    format!("scale-{client}")
}

fn name_of(index: u64) -> String {
    format!("d{:03}/f{index:07}", index / 1000)
}

/// Records `count` versions of one small file under as many names.
async fn fill(bench: &Bench, client: &str, count: u64) -> BenchResult<()> {
    let mut session = Session::connect(bench.settings(client)?).await?;
    let keys = session.chunk_keys(true).await?;
    let path = bench.dir.join("one-small-file");
    std::fs::write(&path, b"the same few bytes under many names").map_err(io("fill"))?;
    let file = LocalFile::read(&path, "seed", 1 << 20, &keys)
        .map_err(|skip| ClientError::local(path.display(), skip))?;
    let (progress, _) = watch::channel(TransferProgress::default());
    let mut next = 0;
    while next < count {
        let end = count.min(next + BATCH);
        let batch: Vec<LocalFile> = (next..end)
            .map(|i| LocalFile {
                name: name_of(i),
                ..file.clone()
            })
            .collect();
        session.put_batch(&batch, &progress).await?;
        next = end;
    }
    Ok(())
}

/// The dashboard's costs on a client with many names, on a real session.
struct Dashboard {
    names: u64,
    /// A key press that stays inside the window: the app's update and a
    /// full redraw.
    press: Vec<f64>,
    /// Fetching a window, as the poller does when the view moves.
    window: Vec<f64>,
    /// Listing the client's whole catalog, which the dashboard did every
    /// second before it paged.
    whole: f64,
}

async fn dashboard(bench: &Bench, client: &str) -> BenchResult<Dashboard> {
    let mut session = Session::connect(bench.settings(client)?).await?;
    let mut app = App::new(bench.manager.clone(), client.into(), bench.dir.clone());
    app.tab = Tab::Backups;
    let mut terminal =
        Terminal::new(TestBackend::new(120, 40)).map_err(|e| ClientError::local("terminal", e))?;
    let mut press = Vec::new();
    let mut window = Vec::new();
    let mut names = 0;
    for i in 0..PRESSES {
        if let Some(Effect::View(view)) = app.view_effect() {
            let start = Instant::now();
            let (total, entries) = session
                .browse(&view.folder, &view.filter, view.offset, view.limit)
                .await?;
            window.push(start.elapsed().as_secs_f64());
            names = total;
            let offset = view.offset;
            app.on_msg(
                Msg::Catalog(Window {
                    folder: view.folder,
                    filter: view.filter,
                    total,
                    offset,
                    entries,
                }),
                Instant::now(),
            );
        }
        let start = Instant::now();
        // Into the first folder, then down through it.
        let key = if i == 0 {
            KeyCode::Enter
        } else {
            KeyCode::PageDown
        };
        app.on_key(KeyEvent::new(key, KeyModifiers::NONE));
        terminal
            .draw(|frame| ui::draw(frame, &app))
            .map_err(|e| ClientError::local("drawing", e))?;
        press.push(start.elapsed().as_secs_f64());
    }
    let start = Instant::now();
    session.list(None).await?;
    Ok(Dashboard {
        names,
        press,
        window,
        whole: start.elapsed().as_secs_f64(),
    })
}

/// A process's resident memory now, in KiB (0 if gone).
fn current_rss_kib(pid: u32) -> u64 {
    super::proc_status_kib(pid, "VmRSS:")
}

fn report(
    options: &Options,
    entries: u64,
    fill_secs: f64,
    timed: &[Timed],
    dashboard: &Dashboard,
    (peak_kib, now_kib): (u64, u64),
) {
    let mib = |kib: u64| kib as f64 / 1024.0;
    let ms = |values: &[f64]| median(values) * 1000.0;
    if options.json {
        let cases: Vec<_> = timed
            .iter()
            .map(|t| {
                json!({ "case": t.name, "median_s": median(&t.runs), "runs_s": t.runs,
                             "target_s": t.target_secs })
            })
            .collect();
        out::line(json!({
            "entries": entries, "clients": FILLERS + 1, "fill_s": fill_secs, "cases": cases,
            "dashboard": { "names": dashboard.names, "key_press_ms": ms(&dashboard.press),
                           "window_fetch_ms": ms(&dashboard.window),
                           "whole_listing_s": dashboard.whole },
            "manager_rss_kib": { "peak": peak_kib, "now": now_kib },
        }));
        return;
    }
    out::line(format_args!(
        "Arca bench --scale: {entries} catalog entries over {} clients (recorded in {fill_secs:.0} \
         s); 4 servers; medians of {} runs",
        FILLERS + 1,
        options.runs
    ));
    out::line(format_args!(
        "{:<34} {:>10} {:>10}",
        "case", "time (s)", "target"
    ));
    for t in timed {
        out::line(format_args!(
            "{:<34} {:>10.3} {:>9}s",
            t.name,
            median(&t.runs),
            format!("< {}", t.target_secs)
        ));
    }
    out::line(format_args!(
        "dashboard in a folder of {} names: a key press redraws in {:.2} ms (target < 100); a \
         window of names arrives in {:.2} ms; the whole listing it fetched each second before \
         paging takes {:.3} s",
        dashboard.names,
        ms(&dashboard.press),
        ms(&dashboard.window),
        dashboard.whole
    ));
    out::line(format_args!(
        "manager RSS: peak {:.1} MiB, now {:.1} MiB (target < 200)",
        mib(peak_kib),
        mib(now_kib)
    ));
}
