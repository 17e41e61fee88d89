//! The dashboard without a terminal: drawing is a pure function of state
//! (insta snapshots at 80x24, 120x40, 200x50 and 40x12), and keys and messages change
//! state as a user expects.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use arca_shared::BlobHash;
use arca_shared::protocol::{Child, ClusterStatus, FileEntry, FolderEntry, ServerStatus};
use arca_tui::client::{Phase, TransferProgress};
use arca_tui::dashboard::app::{App, BackupRow, FileState, Mode, OnYes, Tab};
use arca_tui::dashboard::event::{Effect, Kind, Link, LocalEntry, Msg, Secret, View, Window};
use arca_tui::dashboard::ui;
use crossterm::event::{Event, KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;
use ratatui::backend::TestBackend;

const T0: u64 = 1_795_800_000_000;

fn server(id: u64, alive: bool, latency_ms: f64, stored: u64, score: Option<f64>) -> ServerStatus {
    ServerStatus {
        id,
        addr: format!("127.0.0.1:900{id}"),
        zone: None,
        alive,
        silent_ms: if alive { 200 } else { 12_400 },
        latency_ms,
        latency_history_ms: (0..12)
            .map(|i| latency_ms * (1.0 + (i % 4) as f64 / 4.0))
            .collect(),
        stored_bytes: stored,
        capacity_bytes: 1 << 30,
        free_bytes: (1 << 30) - stored,
        read_only: false,
        blobs: stored / 1000,
        score,
    }
}

fn entry(name: &str, version: u32, content: &[u8], replicas: u32) -> FileEntry {
    FileEntry {
        name: name.into(),
        version,
        size: content.len() as u64,
        hash: BlobHash::of(content),
        replicas,
        created_ms: T0 + u64::from(version) * 60_000,
        plain: false,
        meta: None,
    }
}

fn local(name: &str, content: Option<&[u8]>) -> LocalEntry {
    LocalEntry {
        name: name.into(),
        is_dir: content.is_none(),
        size: content.map_or(4096, |c| c.len() as u64),
        modified_ms: T0,
        hash: content.map(BlobHash::of),
    }
}

/// A transfer starting, as the tasks tell it.
fn queued(id: u64, name: impl Into<String>, kind: Kind, job: Option<u64>) -> Msg {
    Msg::Queued {
        id,
        name: name.into(),
        kind,
        job,
    }
}

fn transfer(
    app: &mut App,
    id: u64,
    name: &str,
    kind: Kind,
    progress: TransferProgress,
    t: Instant,
) {
    app.on_msg(queued(id, name, kind, None), t);
    app.on_msg(
        Msg::Progress {
            id,
            progress: TransferProgress {
                sent: 1,
                ..TransferProgress::default()
            },
        },
        t,
    );
    app.on_msg(Msg::Progress { id, progress }, t + Duration::from_secs(2));
}

/// A dashboard in the middle of its work, the same on every run.
fn busy_app() -> App {
    let mut app = App::new(
        "10.0.0.5:9000".into(),
        "laptop".into(),
        PathBuf::from("/home/me/files"),
    );
    let t = Instant::now();
    app.on_msg(
        Msg::Cluster(ClusterStatus {
            replicas: 2,
            servers: vec![
                server(1, true, 0.4, 650_000_000, Some(0.42)),
                server(2, true, 0.2, 190_000_000, Some(0.05)),
                server(3, false, 0.0, 0, None),
                server(4, true, 0.5, 430_000_000, Some(0.33)),
            ],
            under_replicated: 1,
            healing: 1,
            moving: 0,
            stale_catalog: false,
            catalog_changes: 0,
        }),
        t,
    );
    let backups = vec![
        entry("budget.ods", 2, b"old budget", 1),
        entry("notes.txt", 3, b"notes", 2),
        entry("report.pdf", 1, b"report", 2),
    ];
    app.on_msg(
        Msg::States {
            names: ["budget.ods", "new-idea.md", "notes.txt", "report.pdf"]
                .map(String::from)
                .to_vec(),
            found: backups.clone(),
        },
        t,
    );
    app.on_msg(
        Msg::Catalog(Window {
            total: 3,
            entries: backups.into_iter().map(Child::File).collect(),
            ..Window::default()
        }),
        t,
    );
    app.on_msg(
        Msg::Dir(
            String::new(),
            vec![
                local("docs", None),
                local("photos", None),
                local("budget.ods", Some(b"new budget")),
                local("new-idea.md", Some(b"idea")),
                local("notes.txt", Some(b"notes")),
                local("report.pdf", Some(b"report")),
            ],
        ),
        t,
    );
    let total = 40_000_000;
    transfer(
        &mut app,
        1,
        "report.pdf",
        Kind::Upload,
        TransferProgress {
            phase: Phase::Committed { version: 1 },
            total,
            sent: total,
            replicas: vec![total, total],
        },
        t,
    );
    transfer(
        &mut app,
        2,
        "budget.ods",
        Kind::Upload,
        TransferProgress {
            phase: Phase::Replicating,
            total,
            sent: total,
            replicas: vec![total * 7 / 10, total * 6 / 10],
        },
        t,
    );
    transfer(
        &mut app,
        3,
        "archive.tar",
        Kind::Upload,
        TransferProgress {
            phase: Phase::Failed("not enough live servers: 2 needed, 1 of 1 alive".into()),
            total,
            sent: 0,
            replicas: vec![],
        },
        t,
    );
    transfer(
        &mut app,
        4,
        "old/photo.jpg",
        Kind::Restore,
        TransferProgress {
            phase: Phase::Restoring,
            total,
            sent: total / 4,
            replicas: vec![],
        },
        t,
    );
    app.on_key(key(KeyCode::Down));
    app.on_key(key(KeyCode::Down));
    app.on_key(key(KeyCode::Char(' ')));
    app.on_key(key(KeyCode::Char(' ')));
    app
}

fn key(code: KeyCode) -> KeyEvent {
    KeyEvent::new(code, KeyModifiers::NONE)
}

fn render(app: &App, width: u16, height: u16) -> String {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    terminal.draw(|frame| ui::draw(frame, app)).unwrap();
    terminal.backend().to_string()
}

/// Each screen at the default terminal size, a roomy one and a wide one.
fn snapshot_sizes(name: &str, app: &App) {
    insta::assert_snapshot!(format!("{name}_80x24"), render(app, 80, 24));
    insta::assert_snapshot!(format!("{name}_120x40"), render(app, 120, 40));
    insta::assert_snapshot!(format!("{name}_200x50"), render(app, 200, 50));
}

#[test]
fn too_small_screen() {
    insta::assert_snapshot!("too_small_40x12", render(&busy_app(), 40, 12));
}

#[test]
fn files_screen() {
    snapshot_sizes("files", &busy_app());
}

#[test]
fn backups_screen_with_versions() {
    let mut app = busy_app();
    app.on_key(key(KeyCode::Tab));
    app.on_key(key(KeyCode::Down));
    app.view_effect();
    assert!(app.on_key(key(KeyCode::Enter)).is_empty());
    assert!(matches!(
        app.view_effect(),
        Some(Effect::View(View { expanded: Some(name), .. })) if name == "notes.txt"
    ));
    app.on_msg(
        Msg::Versions(
            "notes.txt".into(),
            (1..=3)
                .map(|v| entry("notes.txt", v, format!("v{v}").as_bytes(), 2))
                .collect(),
        ),
        Instant::now(),
    );
    snapshot_sizes("backups", &app);
}

#[test]
fn help_screen() {
    let mut app = busy_app();
    app.on_key(key(KeyCode::Char('?')));
    assert_eq!(app.mode, Mode::Help);
    snapshot_sizes("help", &app);
    app.on_key(key(KeyCode::Char('x')));
    assert_eq!(app.mode, Mode::Normal);
}

#[test]
fn confirm_screen() {
    let mut app = busy_app();
    app.on_key(key(KeyCode::Tab));
    app.on_key(key(KeyCode::Char('d')));
    snapshot_sizes("confirm_delete", &app);
}

#[test]
fn filter_screen() {
    let mut app = busy_app();
    for c in "/not".chars() {
        app.on_key(key(KeyCode::Char(c)));
    }
    assert_eq!(app.mode, Mode::Filter);
    snapshot_sizes("filter", &app);
}

#[test]
fn disconnected_screen() {
    let mut app = App::new(
        "10.0.0.5:9000".into(),
        "laptop".into(),
        PathBuf::from("/home/me/files"),
    );
    app.on_msg(
        Msg::Link(Link::Down("cannot reach the manager".into())),
        Instant::now(),
    );
    snapshot_sizes("disconnected", &app);
}

#[test]
fn keys_select_and_upload_the_selection() {
    let mut app = busy_app();
    // busy_app selected budget.ods and new-idea.md.
    assert_eq!(app.browser.selected.len(), 2);
    let effects = app.on_key(key(KeyCode::Char('u')));
    assert_eq!(
        effects,
        [Effect::Upload(vec![
            PathBuf::from("/home/me/files/budget.ods"),
            PathBuf::from("/home/me/files/new-idea.md"),
        ])]
    );
    assert!(app.browser.selected.is_empty());
    // With nothing selected, u uploads what is under the cursor.
    app.on_key(key(KeyCode::Home));
    assert_eq!(
        app.on_key(key(KeyCode::Char('u'))),
        [Effect::Upload(vec![PathBuf::from("/home/me/files/docs")])]
    );
}

#[test]
fn folders_open_and_close() {
    let mut app = busy_app();
    app.on_key(key(KeyCode::Home));
    assert_eq!(
        app.on_key(key(KeyCode::Enter)),
        [Effect::ListDir("docs".into())]
    );
    assert_eq!(app.browser.dir, "docs");
    // A late listing of the old folder is ignored.
    app.on_msg(
        Msg::Dir(String::new(), vec![local("stale", None)]),
        Instant::now(),
    );
    assert!(app.browser.entries.is_empty());
    app.on_msg(
        Msg::Dir("docs".into(), vec![local("a.txt", Some(b"a"))]),
        Instant::now(),
    );
    assert_eq!(app.browser.entries.len(), 1);
    assert_eq!(
        app.on_key(key(KeyCode::Backspace)),
        [Effect::ListDir(String::new())]
    );
    assert_eq!(app.browser.dir, "");
}

#[test]
fn restore_and_delete_ask_first() {
    let mut app = busy_app();
    app.on_key(key(KeyCode::Tab));
    assert_eq!(app.tab, Tab::Backups);
    assert!(app.on_key(key(KeyCode::Char('r'))).is_empty());
    assert!(matches!(app.mode, Mode::Confirm { .. }));
    assert!(app.on_key(key(KeyCode::Char('n'))).is_empty());
    assert_eq!(app.mode, Mode::Normal);
    app.on_key(key(KeyCode::Char('r')));
    assert_eq!(
        app.on_key(key(KeyCode::Char('y'))),
        [Effect::Restore {
            name: "budget.ods".into(),
            version: None
        }]
    );
    app.on_key(key(KeyCode::Char('d')));
    assert!(
        app.on_key(key(KeyCode::Enter)).is_empty(),
        "an Enter by reflex deletes nothing"
    );
    assert!(matches!(app.mode, Mode::Confirm { .. }));
    assert_eq!(
        app.on_key(key(KeyCode::Char('y'))),
        [Effect::Delete {
            name: "budget.ods".into(),
            version: None
        }]
    );
}

#[test]
fn a_paste_is_text_never_keys() {
    let mut app = busy_app();
    app.on_event(&Event::Paste("zz\nq".into()));
    assert!(!app.quit, "a paste outside a text field does nothing");
    assert_eq!(app.mode, Mode::Normal);
    app.on_key(key(KeyCode::Char('/')));
    app.on_event(&Event::Paste("zz\nq".into()));
    assert!(!app.quit);
    assert_eq!(app.mode, Mode::Filter);
    assert_eq!(app.browser.filter, "zzq");
    app.on_key(key(KeyCode::Esc));
    app.on_key(key(KeyCode::Char('p')));
    app.on_event(&Event::Paste("hunter22\r".into()));
    assert!(matches!(&app.mode, Mode::Passphrase { typed, .. } if typed.0 == "hunter22"));
}

#[test]
fn quitting_with_transfers_running_asks_first() {
    let mut app = busy_app();
    app.on_key(key(KeyCode::Char('q')));
    assert!(!app.quit);
    assert!(
        matches!(&app.mode, Mode::Confirm { on_yes: OnYes::Quit, prompt } if prompt.contains("2 transfers"))
    );
    app.on_key(key(KeyCode::Char('n')));
    assert!(!app.quit);
    app.on_key(key(KeyCode::Char('q')));
    app.on_key(key(KeyCode::Char('y')));
    assert!(app.quit);
}

#[test]
fn filter_narrows_and_escape_clears() {
    let mut app = busy_app();
    for c in "/REP".chars() {
        app.on_key(key(KeyCode::Char(c)));
    }
    let names: Vec<_> = app
        .browser
        .visible()
        .iter()
        .map(|e| e.name.clone())
        .collect();
    assert_eq!(names, ["report.pdf"]);
    app.on_key(key(KeyCode::Esc));
    assert_eq!(app.browser.visible().len(), 6);
}

#[test]
fn quit_on_q_and_ctrl_c() {
    let mut app = App::new("m".into(), "c".into(), PathBuf::from("/f"));
    app.on_key(key(KeyCode::Char('q')));
    assert!(app.quit, "nothing running: q quits at once");
    let mut app = busy_app();
    app.on_event(&Event::Key(KeyEvent::new(
        KeyCode::Char('c'),
        KeyModifiers::CONTROL,
    )));
    assert!(app.quit);
}

#[test]
fn progress_never_passes_a_hundred_percent() {
    let mut app = App::new("m".into(), "c".into(), PathBuf::from("/f"));
    let t = Instant::now();
    app.on_msg(queued(1, "x", Kind::Upload, None), t);
    app.on_msg(
        Msg::Progress {
            id: 1,
            progress: TransferProgress {
                phase: Phase::Replicating,
                total: 100,
                sent: 100,
                replicas: vec![100, 100],
            },
        },
        t,
    );
    let screen = render(&app, 120, 40);
    assert!(screen.contains("100%"));
    assert!(!screen.contains("101%"));
    assert_eq!(app.transfers[0].durable(), 100);
}

#[test]
fn a_finished_transfer_refreshes_the_folder_and_failures_are_shown() {
    let mut app = App::new("m".into(), "c".into(), PathBuf::from("/f"));
    let t = Instant::now();
    app.on_msg(queued(1, "x", Kind::Upload, None), t);
    let failed = TransferProgress {
        phase: Phase::Failed("disk full".into()),
        ..TransferProgress::default()
    };
    let effects = app.on_msg(
        Msg::Progress {
            id: 1,
            progress: failed,
        },
        t,
    );
    assert_eq!(effects, [Effect::ListDir(String::new())]);
    assert_eq!(app.flash.as_deref(), Some("x failed: disk full"));
    app.on_key(key(KeyCode::Char('c')));
    assert!(app.transfers.is_empty());
}

#[test]
fn the_link_state_follows_the_poller() {
    let mut app = App::new("m".into(), "c".into(), PathBuf::from("/f"));
    assert_eq!(app.link, Link::Connecting);
    let why = "the peer does not know this cluster's secret";
    app.on_msg(Msg::Link(Link::Down(why.into())), Instant::now());
    let screen = render(&app, 80, 24);
    assert!(screen.contains("no link"), "{screen}");
    assert!(screen.contains("the peer does not know this"), "{screen}");
    app.on_msg(
        Msg::Cluster(ClusterStatus {
            replicas: 2,
            servers: vec![],
            under_replicated: 0,
            healing: 0,
            moving: 0,
            stale_catalog: false,
            catalog_changes: 0,
        }),
        Instant::now(),
    );
    assert_eq!(app.link, Link::Connected);
}

#[test]
fn the_passphrase_is_typed_in_a_popup_and_never_shown() {
    let mut app = busy_app();
    app.on_key(key(KeyCode::Char('p')));
    for c in "hunter22".chars() {
        app.on_key(key(KeyCode::Char(c)));
    }
    app.on_key(key(KeyCode::Backspace));
    // A refusal opens it again, empty, and says why.
    assert_eq!(
        app.on_key(key(KeyCode::Enter)),
        [Effect::Unlock(Secret("hunter2".into()))]
    );
    assert_eq!(app.mode, Mode::Normal);
    app.on_msg(
        Msg::PassphraseRefused("wrong passphrase: it opens none of this client's keys".into()),
        Instant::now(),
    );
    for c in "abc".chars() {
        app.on_key(key(KeyCode::Char(c)));
    }
    let screen = render(&app, 80, 24);
    assert!(
        !screen.contains("abc") && !screen.contains("hunter"),
        "{screen}"
    );
    insta::assert_snapshot!("passphrase_refused_80x24", screen);
    // Nothing typed, enter does nothing; esc leaves it for later.
    app.ask_passphrase(None);
    assert!(app.on_key(key(KeyCode::Enter)).is_empty());
    app.on_key(key(KeyCode::Esc));
    assert_eq!(app.mode, Mode::Normal);
    assert!(format!("{:?}", Secret("x".into())).contains(".."));
}

/// A window of a catalog of numbered names, as the poller sends it.
fn window(total: u64, offset: u64, limit: u64) -> Msg {
    Msg::Catalog(Window {
        total,
        offset,
        entries: (offset..total.min(offset + limit))
            .map(|i| Child::File(entry(&format!("f{i:07}"), 1, b"x", 2)))
            .collect(),
        ..Window::default()
    })
}

fn view_offset(effect: Option<Effect>) -> Option<u64> {
    match effect {
        Some(Effect::View(view)) => Some(view.offset),
        _ => None,
    }
}

#[test]
fn the_backups_list_fetches_only_the_window_around_the_cursor() {
    let mut app = App::new("m".into(), "c".into(), PathBuf::from("/f"));
    app.on_key(key(KeyCode::Tab));
    let Some(Effect::View(first)) = app.view_effect() else {
        panic!("the first view is asked for");
    };
    assert_eq!((first.offset, first.limit, first.expanded), (0, 256, None));
    app.on_msg(window(1_000_000, 0, 256), Instant::now());
    assert_eq!(app.backup_rows().len(), 256);
    assert_eq!(app.backups_selected(), Some(0));

    // Scrolling inside the window asks for nothing new.
    for _ in 0..100 {
        app.on_key(key(KeyCode::Down));
    }
    assert_eq!(app.view_effect(), None);
    assert_eq!(app.backups_selected(), Some(100));
    // Near its end, the window moves on by steps.
    for _ in 0..10 {
        app.on_key(key(KeyCode::PageDown));
    }
    assert_eq!(view_offset(app.view_effect()), Some(64));

    // The last name: nothing is selected until its window arrives.
    app.on_key(key(KeyCode::End));
    assert_eq!(app.backups_cursor, 999_999);
    assert_eq!(view_offset(app.view_effect()), Some(999_872));
    assert_eq!(app.backups_selected(), None);
    app.on_msg(window(1_000_000, 999_872, 256), Instant::now());
    assert_eq!(app.backups_selected(), Some(127));
    let text = render(&app, 120, 40);
    assert!(text.contains("1000000 items"), "{text}");
    assert!(text.contains("f0999999"), "{text}");

    // The catalog shrinks under the cursor: it stays on the last row.
    app.on_msg(window(999_900, 999_872, 256), Instant::now());
    assert_eq!(app.backups_cursor, 999_899);
}

#[test]
fn versions_open_inside_the_window_and_fold_when_it_moves_away() {
    let mut app = App::new("m".into(), "c".into(), PathBuf::from("/f"));
    app.on_key(key(KeyCode::Tab));
    app.on_msg(window(1000, 0, 256), Instant::now());
    app.on_key(key(KeyCode::Down));
    app.on_key(key(KeyCode::Enter));
    let versions = (1..=3).map(|v| entry("f0000001", v, b"x", 2)).collect();
    app.on_msg(Msg::Versions("f0000001".into(), versions), Instant::now());
    assert_eq!(app.backup_rows_total(), 1003);
    app.on_key(key(KeyCode::Down));
    app.on_key(key(KeyCode::Char('d')));
    assert!(matches!(
        app.on_key(key(KeyCode::Char('y')))[..],
        [Effect::Delete {
            version: Some(3),
            ..
        }]
    ));
    // Past the versions, the cursor is on the next names.
    for _ in 0..4 {
        app.on_key(key(KeyCode::Down));
    }
    assert_eq!(app.backups_cursor, 6);
    assert_eq!(app.backups_selected(), Some(6));

    // Far down, the window no longer holds the expanded name: it folds, and
    // the cursor stays on the name it was on.
    for _ in 0..40 {
        app.on_key(key(KeyCode::PageDown));
    }
    let cursor = app.backups_cursor;
    let offset = view_offset(app.view_effect()).unwrap();
    app.on_msg(window(1000, offset, 256), Instant::now());
    assert_eq!(app.expanded, None);
    assert_eq!(app.backups_cursor, cursor - 3);
    assert_eq!(app.backup_rows_total(), 1000);
}

#[test]
fn a_file_not_yet_looked_up_is_checking_not_new() {
    let mut app = App::new("m".into(), "c".into(), PathBuf::from("/f"));
    let t = Instant::now();
    let files = vec![local("a.txt", Some(b"a")), local("b.txt", Some(b"b"))];
    app.on_msg(Msg::Dir(String::new(), files.clone()), t);
    let Some(Effect::View(view)) = app.view_effect() else {
        panic!("the folder's files are looked up");
    };
    assert_eq!(view.names, ["a.txt", "b.txt"]);
    assert_eq!(app.file_state(&files[0]), FileState::Unknown);
    app.on_msg(
        Msg::States {
            names: view.names,
            found: vec![entry("a.txt", 1, b"a", 2)],
        },
        t,
    );
    assert_eq!(app.file_state(&files[0]), FileState::BackedUp);
    assert_eq!(app.file_state(&files[1]), FileState::New);
}

#[test]
fn the_cursor_stays_on_its_version_when_names_arrive_before_it() {
    let mut app = App::new("m".into(), "c".into(), PathBuf::from("/f"));
    app.on_key(key(KeyCode::Tab));
    app.on_msg(window(10, 0, 256), Instant::now());
    app.on_key(key(KeyCode::Down));
    app.on_key(key(KeyCode::Enter));
    let versions = (1..=3).map(|v| entry("f0000001", v, b"x", 2)).collect();
    app.on_msg(Msg::Versions("f0000001".into(), versions), Instant::now());
    app.on_key(key(KeyCode::Down));
    app.on_key(key(KeyCode::Down));
    // On the expanded name's second row: its version 2.
    assert_eq!(app.backups_cursor, 3);

    let Msg::Catalog(mut grown) = window(10, 0, 256) else {
        unreachable!()
    };
    grown
        .entries
        .insert(1, Child::File(entry("f0000000a", 1, b"x", 2)));
    grown.total = 11;
    app.on_msg(Msg::Catalog(grown), Instant::now());
    assert_eq!(app.expanded.as_ref().map(|e| e.index), Some(2));
    assert_eq!(app.backups_cursor, 4);
    assert!(matches!(app.on_key(key(KeyCode::Char('r')))[..], []));
    assert!(matches!(
        &app.mode,
        Mode::Confirm { on_yes: OnYes::Run(Effect::Restore { name, version: Some(2) }), .. }
            if name == "f0000001"
    ));
}

/// A transfer in each state that moves no bytes, and one retried.
fn states_app() -> App {
    let mut app = App::new("m".into(), "laptop".into(), PathBuf::from("/f"));
    let t = Instant::now();
    let states = [
        ("waiting.txt", Phase::Queued, 0),
        ("big-one.iso", Phase::Hashing, 0),
        ("same.txt", Phase::Unchanged { version: 1 }, 0),
        ("copy-of-known.bin", Phase::Committed { version: 4 }, 0),
        (
            "flaky.mov",
            Phase::Retrying {
                attempt: 1,
                reason: "server 3 stopped answering mid-way".into(),
            },
            0,
        ),
    ];
    for (id, (name, phase, sent)) in states.into_iter().enumerate() {
        let id = id as u64;
        app.on_msg(queued(id, name, Kind::Upload, None), t);
        let progress = TransferProgress {
            phase,
            total: 1000,
            sent,
            replicas: vec![],
        };
        app.on_msg(Msg::Progress { id, progress }, t);
    }
    app
}

#[test]
fn states_that_move_no_bytes_show_no_bars() {
    let app = states_app();
    let screen = render(&app, 80, 24);
    insta::assert_snapshot!("transfer_states_80x24", screen);
    assert!(!screen.contains("sent"), "{screen}");
    assert!(screen.contains("retry 2: server 3 stopped answering"));
    assert!(screen.contains("already stored"));
}

#[test]
fn a_chosen_transfer_tells_everything_in_a_popup() {
    let mut app = states_app();
    app.on_key(key(KeyCode::Char('t')));
    assert!(app.in_transfers);
    assert_eq!(app.transfer_cursor, 4, "the newest is chosen first");
    app.on_key(key(KeyCode::Enter));
    assert_eq!(app.mode, Mode::Details(4));
    let screen = render(&app, 80, 24);
    insta::assert_snapshot!("transfer_details_80x24", screen);
    assert!(screen.contains("attempt 1 failed: server 3 stopped answering mid-way"));
    app.on_key(key(KeyCode::Char('x')));
    assert_eq!(app.mode, Mode::Normal);
    app.on_key(key(KeyCode::Up));
    assert_eq!(app.transfer_cursor, 3);
    app.on_key(key(KeyCode::Esc));
    assert!(!app.in_transfers);
}

#[test]
fn speed_counts_from_the_attempt_not_the_first_one() {
    let mut app = App::new("m".into(), "c".into(), PathBuf::from("/f"));
    let t = Instant::now();
    let at = |secs: u64| t + Duration::from_secs(secs);
    app.on_msg(queued(1, "x", Kind::Upload, None), t);
    let progress = |phase: Phase, sent: u64| Msg::Progress {
        id: 1,
        progress: TransferProgress {
            phase,
            total: 2_000_000_000,
            sent,
            replicas: vec![],
        },
    };
    app.on_msg(progress(Phase::Uploading, 1_000), at(0));
    app.on_msg(progress(Phase::Uploading, 10_000_000), at(100));
    let retrying = Phase::Retrying {
        attempt: 1,
        reason: "the manager went away".into(),
    };
    app.on_msg(progress(retrying.clone(), 0), at(100));
    assert_eq!(app.transfers[0].bytes_per_sec, 0.0);
    app.on_msg(progress(Phase::Uploading, 1_000), at(101));
    app.on_msg(progress(Phase::Uploading, 1_000_001_000), at(103));
    let speed = app.transfers[0].bytes_per_sec;
    assert!((speed - 500_000_000.0).abs() < 1.0, "{speed}");
    // What is left counts until both copies confirm it.
    assert_eq!(app.transfers[0].eta_secs(), Some(4));
    assert_eq!(app.transfers[0].retries, ["the manager went away"]);
}

#[test]
fn a_lost_link_marks_the_servers_shown_as_old() {
    let mut app = busy_app();
    app.on_msg(
        Msg::Link(Link::Down("connection refused".into())),
        Instant::now(),
    );
    let screen = render(&app, 80, 24);
    assert!(screen.contains("from before"), "{screen}");
    assert!(screen.contains("connection refused"), "{screen}");
}

#[test]
fn the_readme_lists_every_key_and_mark_the_help_shows() {
    let readme = include_str!("../../README.md");
    for (key, what) in ui::KEYS.iter().chain(ui::LEGEND) {
        let row = format!("| `{key}` | {what} |");
        assert!(readme.contains(&row), "README.md lacks the row {row}");
    }
}

#[test]
fn a_job_of_many_files_is_one_row_that_expands() {
    let mut app = App::new("m".into(), "c".into(), PathBuf::from("/f"));
    let t = Instant::now();
    app.on_msg(
        Msg::Job {
            id: 1,
            name: "photos".into(),
            kind: Kind::Upload,
            files: 2000,
            bytes: 4000,
        },
        t,
    );
    for (id, name) in [(2, "photos/a +999 more"), (3, "photos/b +999 more")] {
        app.on_msg(queued(id, name, Kind::Upload, Some(1)), t);
    }
    let progress = |phase, sent, replicas: u64| TransferProgress {
        phase,
        total: 2000,
        sent,
        replicas: vec![replicas, replicas],
    };
    app.on_msg(
        Msg::Progress {
            id: 2,
            progress: progress(Phase::Committed { version: 1 }, 2000, 2000),
        },
        t + Duration::from_secs(1),
    );
    app.on_msg(
        Msg::Progress {
            id: 3,
            progress: progress(Phase::Replicating, 2000, 1000),
        },
        t + Duration::from_secs(2),
    );
    for _ in 0..1000 {
        app.on_msg(
            Msg::FileDone {
                job: 1,
                failure: None,
            },
            t,
        );
    }
    assert_eq!(app.transfer_rows().len(), 1, "one row for the whole job");
    assert_eq!(app.jobs[0].bytes_done, 3000);
    assert_eq!(app.jobs[0].eta_secs(), Some(1));
    let screen = render(&app, 80, 24);
    insta::assert_snapshot!("transfer_job_80x24", screen);
    assert!(screen.contains("1000/2000 files"), "{screen}");
    assert!(!screen.contains("photos/a"), "{screen}");
    assert_eq!(app.running(), 1);

    app.on_key(key(KeyCode::Char('t')));
    app.on_key(key(KeyCode::Enter));
    assert_eq!(
        app.transfer_rows().len(),
        3,
        "expanded: the job and its parts"
    );
    let screen = render(&app, 80, 24);
    assert!(screen.contains("9 more"), "{screen}");

    app.on_msg(
        Msg::JobEnded {
            job: 1,
            stopped: Some("the manager went away".into()),
        },
        t,
    );
    assert!(render(&app, 80, 24).contains("stopped: the manager went away"));
    assert_eq!(app.running(), 0);
    app.on_key(key(KeyCode::Char('c')));
    assert!(app.transfer_rows().is_empty());
    assert!(app.transfers.is_empty() && app.jobs.is_empty());
}

#[test]
fn finished_transfers_are_not_kept_forever() {
    let mut app = App::new("m".into(), "c".into(), PathBuf::from("/f"));
    let t = Instant::now();
    for id in 0..300 {
        app.on_msg(queued(id, format!("f{id}"), Kind::Restore, None), t);
        let progress = TransferProgress {
            phase: Phase::Restored { version: 1 },
            ..TransferProgress::default()
        };
        app.on_msg(Msg::Progress { id, progress }, t);
    }
    assert_eq!(app.transfers.len(), 100);
    assert_eq!(app.transfers[0].name, "f200", "the oldest went first");
}

#[test]
fn going_up_a_folder_lands_on_the_folder_left_and_refreshes_keep_the_cursor_on_its_file() {
    let mut app = busy_app();
    app.on_key(key(KeyCode::Home));
    app.on_key(key(KeyCode::Down));
    app.on_key(key(KeyCode::Enter));
    assert_eq!(app.browser.dir, "photos");
    app.on_key(key(KeyCode::Backspace));
    let top = vec![
        local("docs", None),
        local("photos", None),
        local("notes.txt", Some(b"notes")),
    ];
    app.on_msg(Msg::Dir(String::new(), top.clone()), Instant::now());
    assert_eq!(app.browser.cursor, 1, "on photos/, the folder left");
    app.on_key(key(KeyCode::Down));
    // A file appears before the cursor's: the cursor stays on notes.txt.
    let mut grown = top;
    grown.insert(2, local("a-new-file", Some(b"new")));
    app.on_msg(Msg::Dir(String::new(), grown), Instant::now());
    assert_eq!(app.browser.cursor, 3);
}

#[test]
fn the_backups_cursor_follows_its_name_when_names_come_before_it() {
    let mut app = App::new("m".into(), "c".into(), PathBuf::from("/f"));
    app.on_key(key(KeyCode::Tab));
    app.on_msg(window(20, 0, 256), Instant::now());
    for _ in 0..5 {
        app.on_key(key(KeyCode::Down));
    }
    let on = |app: &App| match app.backup_rows()[app.backups_selected().unwrap()] {
        BackupRow::Name(e) => e.name.clone(),
        BackupRow::Version(e) => format!("{} v{}", e.name, e.version),
        BackupRow::Folder(f) => f.name.clone(),
    };
    assert_eq!(on(&app), "f0000005");
    let Msg::Catalog(mut grown) = window(20, 0, 256) else {
        unreachable!()
    };
    grown
        .entries
        .insert(0, Child::File(entry("a-first", 1, b"x", 2)));
    grown.entries.remove(3);
    grown.total = 20;
    app.on_msg(Msg::Catalog(grown), Instant::now());
    assert_eq!(on(&app), "f0000005");
}

#[test]
fn page_keys_move_by_the_rows_on_screen_and_versions_on_the_last_row_show() {
    let mut app = App::new("m".into(), "c".into(), PathBuf::from("/f"));
    app.on_key(key(KeyCode::Tab));
    app.on_msg(window(100, 0, 256), Instant::now());
    app.page = ui::list_rows(&app, 80, 24);
    assert!(app.page > 10, "{}", app.page);
    app.on_key(key(KeyCode::PageDown));
    assert_eq!(app.backups_cursor, u64::from(app.page));

    // The name on the last row shown opens its versions in view.
    app.on_key(key(KeyCode::Home));
    for _ in 1..app.page {
        app.on_key(key(KeyCode::Down));
    }
    app.on_key(key(KeyCode::Enter));
    let name = format!("f{:07}", app.page - 1);
    let versions = (1..=3).map(|v| entry(&name, v, b"x", 2)).collect();
    app.on_msg(Msg::Versions(name, versions), Instant::now());
    let screen = render(&app, 80, 24);
    assert!(screen.contains("└ version 1"), "{screen}");
}

#[test]
fn m_gives_the_mouse_to_the_terminal_and_back() {
    let mut app = busy_app();
    assert!(app.mouse);
    app.on_key(key(KeyCode::Char('m')));
    assert!(!app.mouse);
    assert!(app.flash.as_deref().unwrap().contains("select text"));
    app.on_key(key(KeyCode::Char('m')));
    assert!(app.mouse);
}

#[test]
fn any_screen_size_draws_without_a_panic() {
    let app = busy_app();
    for (width, height) in [
        (1, 1),
        (20, 6),
        (80, 10),
        (59, 15),
        (60, 15),
        (60, 16),
        (300, 100),
    ] {
        let screen = render(&app, width, height);
        assert!(!screen.is_empty());
        ui::list_rows(&app, width, height);
    }
    assert!(render(&app, 80, 10).contains("too small"));
}

#[test]
fn a_filter_that_matches_nothing_says_so() {
    let mut app = busy_app();
    for c in "/zzz".chars() {
        app.on_key(key(KeyCode::Char(c)));
    }
    assert!(render(&app, 80, 24).contains("nothing here matches /zzz"));
}

#[test]
fn a_transfer_whose_bytes_stop_says_it_stalled() {
    let mut app = App::new("m".into(), "c".into(), PathBuf::from("/f"));
    let t = Instant::now();
    app.on_msg(queued(1, "big.bin", Kind::Upload, None), t);
    let uploading = TransferProgress {
        phase: Phase::Uploading,
        total: 100,
        sent: 55,
        replicas: vec![50, 50],
    };
    app.on_msg(
        Msg::Progress {
            id: 1,
            progress: uploading.clone(),
        },
        t,
    );
    app.on_msg(
        Msg::Progress {
            id: 1,
            progress: uploading,
        },
        t + Duration::from_secs(3),
    );
    assert!(!render(&app, 80, 24).contains("stalled"));
    // Any message moves the clock: here the poller's.
    app.on_msg(Msg::Link(Link::Connected), t + Duration::from_secs(12));
    let screen = render(&app, 80, 24);
    assert!(screen.contains("stalled 12 s"), "{screen}");
}

fn folder(name: &str, files: u64, short: u64) -> Child {
    Child::Folder(FolderEntry {
        name: name.into(),
        files,
        size: files * 1000,
        short,
        newest_ms: T0,
    })
}

/// The Backups window of `folder` the poller would send for `children`.
fn children(folder: &str, filter: &str, children: Vec<Child>) -> Msg {
    Msg::Catalog(Window {
        folder: folder.into(),
        filter: filter.into(),
        total: children.len() as u64,
        offset: 0,
        entries: children,
    })
}

fn wanted_place(app: &mut App) -> Option<(String, String)> {
    match app.view_effect() {
        Some(Effect::View(view)) => Some((view.folder, view.filter)),
        _ => None,
    }
}

fn on_row(app: &App) -> String {
    match app.backup_rows()[app.backups_selected().unwrap()] {
        BackupRow::Folder(f) => f.name.clone(),
        BackupRow::Name(e) => e.name.clone(),
        BackupRow::Version(e) => format!("{} v{}", e.name, e.version),
    }
}

#[test]
fn backups_are_a_tree_of_folders_with_their_state() {
    let mut app = busy_app();
    app.on_key(key(KeyCode::Tab));
    let top = vec![
        folder("music/", 1, 0),
        folder("photos/", 1200, 3),
        Child::File(entry("notes.txt", 3, b"notes", 2)),
    ];
    app.on_msg(children("", "", top.clone()), Instant::now());
    snapshot_sizes("backups_tree", &app);

    // Into a folder: its children are asked for, the cursor at the top.
    app.on_key(key(KeyCode::Down));
    app.on_key(key(KeyCode::Enter));
    assert_eq!(app.backup_folder, "photos/");
    assert_eq!(
        wanted_place(&mut app),
        Some(("photos/".into(), String::new()))
    );
    // A window of the folder left, arriving late, is not shown here.
    app.on_msg(children("", "", top.clone()), Instant::now());
    assert!(app.backup_rows().is_empty());
    app.on_msg(
        children(
            "photos/",
            "",
            vec![
                folder("photos/2024/", 1000, 0),
                Child::File(entry("photos/cat.jpg", 1, b"meow", 2)),
            ],
        ),
        Instant::now(),
    );
    assert_eq!(on_row(&app), "photos/2024/");
    let screen = render(&app, 80, 24);
    assert!(
        screen.contains("in photos/"),
        "the title names the folder:\n{screen}"
    );
    assert!(
        screen.contains("cat.jpg") && !screen.contains("photos/cat.jpg"),
        "{screen}"
    );

    // A file's versions fold with ←; on a name that is folded, ← goes up.
    app.on_key(key(KeyCode::Down));
    app.on_key(key(KeyCode::Enter));
    assert!(app.expanded.is_some());
    app.on_key(key(KeyCode::Left));
    assert!(app.expanded.is_none());
    assert_eq!(app.backup_folder, "photos/");
    app.on_key(key(KeyCode::Left));
    assert_eq!(app.backup_folder, "");
    app.on_msg(children("", "", top.clone()), Instant::now());
    assert_eq!(on_row(&app), "photos/", "on the folder left");
    app.on_key(key(KeyCode::Backspace));
    assert_eq!(app.backup_folder, "", "the top has no parent");
}

#[test]
fn a_folder_restores_and_deletes_whole_and_asks_first() {
    let mut app = busy_app();
    app.on_key(key(KeyCode::Tab));
    app.on_msg(
        children("", "", vec![folder("photos/", 1200, 0)]),
        Instant::now(),
    );
    app.on_key(key(KeyCode::Char('r')));
    assert!(
        matches!(&app.mode, Mode::Confirm { prompt, .. } if prompt.contains("the 1200 files under photos/"))
    );
    assert_eq!(
        app.on_key(key(KeyCode::Char('y'))),
        [Effect::Restore {
            name: "photos/".into(),
            version: None
        }]
    );
    app.on_key(key(KeyCode::Char('d')));
    assert!(app.on_key(key(KeyCode::Enter)).is_empty());
    assert!(
        matches!(&app.mode, Mode::Confirm { prompt, .. } if prompt.contains("every version of the 1200 files"))
    );
    assert_eq!(
        app.on_key(key(KeyCode::Char('y'))),
        [Effect::Delete {
            name: "photos/".into(),
            version: None
        }]
    );
}

#[test]
fn the_backups_filter_is_asked_of_the_manager_and_kept_apart_from_the_files_one() {
    let mut app = busy_app();
    app.on_key(key(KeyCode::Tab));
    app.view_effect();
    for c in "/pho".chars() {
        app.on_key(key(KeyCode::Char(c)));
    }
    app.on_event(&Event::Paste("to\n".into()));
    assert_eq!(app.backup_filter, "photo");
    assert_eq!(app.browser.filter, "", "the Files filter is its own");
    assert_eq!(
        wanted_place(&mut app),
        Some((String::new(), "photo".into()))
    );
    app.on_msg(children("", "photo", vec![]), Instant::now());
    let screen = render(&app, 80, 24);
    assert!(screen.contains("nothing here matches /photo"), "{screen}");
    app.on_key(key(KeyCode::Esc));
    assert_eq!(app.backup_filter, "");
    assert_eq!(wanted_place(&mut app), Some((String::new(), String::new())));
}

#[test]
fn a_local_name_no_backup_can_have_is_marked_and_never_asked_about() {
    let mut app = App::new("m".into(), "c".into(), PathBuf::from("/f"));
    let entries = vec![
        local("back\\slash.txt", Some(b"x")),
        local("esc\u{1b}[31mred.txt", Some(b"y")),
        local("fine.txt", Some(b"z")),
    ];
    app.on_msg(Msg::Dir(String::new(), entries.clone()), Instant::now());
    assert_eq!(app.file_state(&entries[0]), FileState::BadName);
    let Some(Effect::View(view)) = app.view_effect() else {
        panic!("no view asked for")
    };
    assert_eq!(
        view.names,
        ["fine.txt"],
        "the manager would refuse the others"
    );
    let screen = render(&app, 80, 24);
    assert!(screen.contains("bad name"), "{screen}");
    assert!(
        screen.contains("esc\u{FFFD}[") && !screen.contains('\u{1b}'),
        "{screen}"
    );
}

#[test]
fn a_folder_not_listed_yet_says_so_and_why() {
    let mut app = busy_app();
    app.on_key(key(KeyCode::Tab));
    app.on_msg(
        children("", "", vec![folder("photos/", 3, 0)]),
        Instant::now(),
    );
    app.on_key(key(KeyCode::Enter));
    assert!(render(&app, 80, 24).contains("listing…"));
    app.on_msg(
        Msg::Link(Link::Down("connection refused".into())),
        Instant::now(),
    );
    let screen = render(&app, 80, 24);
    assert!(
        screen.contains("not listed: no link to the manager") && !screen.contains("0 items"),
        "{screen}"
    );
}

#[test]
fn esc_clears_a_filter_kept_with_enter() {
    let mut app = busy_app();
    app.on_key(key(KeyCode::Tab));
    for c in "/zz".chars() {
        app.on_key(key(KeyCode::Char(c)));
    }
    app.on_key(key(KeyCode::Enter));
    assert_eq!(
        (app.backup_filter.as_str(), &app.mode),
        ("zz", &Mode::Normal)
    );
    app.on_key(key(KeyCode::Esc));
    assert_eq!(app.backup_filter, "");
    app.on_key(key(KeyCode::Tab));
    app.browser.selected.clear();
    for c in "/no".chars() {
        app.on_key(key(KeyCode::Char(c)));
    }
    app.on_key(key(KeyCode::Enter));
    app.on_key(key(KeyCode::Esc));
    assert_eq!(
        app.browser.filter, "",
        "with nothing selected, esc clears the filter"
    );
}

#[test]
fn a_job_tells_which_of_its_files_failed_and_why() {
    let mut app = App::new("m".into(), "c".into(), PathBuf::from("/f"));
    let t = Instant::now();
    app.on_msg(
        Msg::Job {
            id: 1,
            name: "deep/".into(),
            kind: Kind::Restore,
            files: 3,
            bytes: 30,
        },
        t,
    );
    app.on_msg(queued(2, "deep/", Kind::Restore, Some(1)), t);
    for failure in [None, Some("deep/a/b/k.bin: File exists".to_owned()), None] {
        app.on_msg(Msg::FileDone { job: 1, failure }, t);
    }
    app.on_msg(
        Msg::JobEnded {
            job: 1,
            stopped: None,
        },
        t,
    );
    let screen = render(&app, 120, 40);
    assert!(
        screen.contains("2 of 3 files restored, 1 failed"),
        "{screen}"
    );
    app.on_key(key(KeyCode::Char('t')));
    app.on_key(key(KeyCode::Enter));
    app.on_key(key(KeyCode::Down));
    app.on_key(key(KeyCode::Enter));
    assert_eq!(app.mode, Mode::Details(2));
    let screen = render(&app, 120, 40);
    assert!(
        screen.contains("failed deep/a/b/k.bin: File exists"),
        "{screen}"
    );
}
