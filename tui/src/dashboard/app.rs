//! The dashboard's whole state, and how keys and messages change it.
//! Nothing here does I/O: changes that need the outside world come back as
//! [`Effect`]s for the event loop to run.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use arca_shared::name;
use arca_shared::protocol::{Child, ClusterStatus, FileEntry, FolderEntry};
use crossterm::event::{Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers, MouseEventKind};

use super::event::{Effect, Kind, Link, LocalEntry, Msg, Secret, View, Window};
use crate::client::{Phase, TransferProgress};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tab {
    Files,
    Backups,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    Normal,
    /// Typing a filter for the file list.
    Filter,
    /// Asking before a restore, a delete, or quitting with work running.
    Confirm {
        prompt: String,
        on_yes: OnYes,
    },
    Help,
    /// The whole story of one transfer.
    Details(u64),
    /// Typing this client's passphrase; why the last one was refused.
    Passphrase {
        typed: Secret,
        refused: Option<String>,
    },
}

/// What a confirmation does once the user says yes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OnYes {
    Run(Effect),
    Quit,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Transfer {
    pub id: u64,
    pub name: String,
    pub kind: Kind,
    pub progress: TransferProgress,
    /// When this attempt's first bytes were seen and how many had moved
    /// then, and the attempt's speed since.
    pub started: Option<(Instant, u64)>,
    pub bytes_per_sec: f64,
    /// Why each failed attempt failed, oldest first.
    pub retries: Vec<String>,
    /// The job it is a part of.
    pub job: Option<u64>,
    /// When its bytes last moved (or it started).
    pub moved_at: Instant,
}

/// Without a byte moving this long, a running transfer says so.
const STALLED_AFTER: Duration = Duration::from_secs(5);

/// Many files backed up at once, shown as one summary row that expands
/// into its transfers.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub id: u64,
    pub name: String,
    pub kind: Kind,
    pub files: usize,
    pub bytes: u64,
    pub files_done: usize,
    /// Its files that failed, each with why.
    pub failures: Vec<String>,
    /// Bytes done: those of its finished transfers, and those every copy
    /// of the running ones confirmed.
    pub bytes_done: u64,
    pub started: Instant,
    pub bytes_per_sec: f64,
    /// Set once it ended: why it stopped early, if it did.
    pub ended: Option<Option<String>>,
    pub expanded: bool,
}

impl Job {
    pub fn eta_secs(&self) -> Option<u64> {
        let left = self.bytes.saturating_sub(self.bytes_done);
        eta(left, self.bytes_per_sec).filter(|_| self.ended.is_none())
    }
}

/// Seconds `left` bytes take at this speed, once there is one.
fn eta(left: u64, bytes_per_sec: f64) -> Option<u64> {
    (bytes_per_sec > 0.0).then(|| (left as f64 / bytes_per_sec).ceil() as u64)
}

/// One row of the Transfers pane.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TransferRow<'a> {
    Job(&'a Job),
    /// A transfer; `in_job` when it is shown under its job's row.
    Transfer {
        transfer: &'a Transfer,
        in_job: bool,
    },
}

/// Finished transfers and jobs kept on screen, at most: the oldest go.
const KEEP_DONE: usize = 100;

impl Transfer {
    /// Seconds since its bytes last moved, once that is long enough to
    /// tell, while they should be moving (not while queued or hashing).
    pub fn stalled_secs(&self, now: Instant) -> Option<u64> {
        let moving = matches!(
            self.progress.phase,
            Phase::Uploading | Phase::Replicating | Phase::Restoring
        );
        let still = now.saturating_duration_since(self.moved_at);
        (moving && still >= STALLED_AFTER).then_some(still.as_secs())
    }

    /// Seconds left at the current speed, once there is one.
    pub fn eta_secs(&self) -> Option<u64> {
        let left = self.progress.total.saturating_sub(self.durable());
        eta(left, self.bytes_per_sec).filter(|_| !self.progress.phase.is_done())
    }

    /// Bytes every replica has confirmed (or received, for a restore).
    pub fn durable(&self) -> u64 {
        match self.kind {
            Kind::Upload => self.progress.replicas.iter().copied().min().unwrap_or(0),
            Kind::Restore => self.progress.sent,
        }
    }
}

/// How many names the Backups window holds, how far before the cursor it
/// starts, and the step it moves by: scrolling fetches a new window only
/// every `WINDOW_STEP` names, and the rows on screen are always in it. The
/// files whose backup state is asked for are chosen the same way.
const WINDOW: u32 = 256;
const WINDOW_BEFORE: u64 = 96;
const WINDOW_STEP: u64 = 64;

/// Where a window around `cursor` starts.
fn window_start(cursor: u64) -> u64 {
    cursor.saturating_sub(WINDOW_BEFORE) / WINDOW_STEP * WINDOW_STEP
}

/// The name expanded in the Backups tab: its place among all names, and
/// its versions (newest first) once fetched.
#[derive(Debug, Clone, PartialEq)]
pub struct Expanded {
    pub index: u64,
    pub name: String,
    pub versions: Vec<FileEntry>,
}

/// One row of the Backups tab.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum BackupRow<'a> {
    Folder(&'a FolderEntry),
    /// A name, showing its newest version.
    Name(&'a FileEntry),
    /// One version of the expanded name.
    Version(&'a FileEntry),
}

/// The local file browser.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Browser {
    /// The folder shown, relative to the files folder ("" is the top).
    pub dir: String,
    pub entries: Vec<LocalEntry>,
    pub cursor: usize,
    /// Selected paths, relative to the files folder.
    pub selected: BTreeSet<String>,
    pub filter: String,
    /// The entry the cursor goes to once the folder is listed: the folder
    /// just left, going up.
    pub land_on: Option<String>,
}

impl Browser {
    /// The entries that match the filter (case-insensitive).
    pub fn visible(&self) -> Vec<&LocalEntry> {
        let filter = self.filter.to_lowercase();
        self.entries
            .iter()
            .filter(|e| e.name.to_lowercase().contains(&filter))
            .collect()
    }

    pub fn path_of(&self, entry: &LocalEntry) -> String {
        join(&self.dir, &entry.name)
    }

    fn current(&self) -> Option<&LocalEntry> {
        self.visible().get(self.cursor).copied()
    }
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_owned()
    } else {
        format!("{dir}/{name}")
    }
}

/// How a local file compares with its newest backup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileState {
    BackedUp,
    Changed,
    New,
    /// Not hashed yet.
    Unknown,
    /// Its name cannot be a backup's (a backslash, a control character).
    BadName,
}

pub struct App {
    pub manager: String,
    pub client: String,
    pub files_root: PathBuf,
    pub link: Link,
    pub cluster: Option<ClusterStatus>,
    /// The Backups folder shown ("" is the top, else it ends in '/'), and
    /// the filter on its children's names.
    pub backup_folder: String,
    pub backup_filter: String,
    /// The child the cursor goes to once the folder is listed: the folder
    /// just left, going up.
    backup_land_on: Option<String>,
    /// The children of the Backups folder around its cursor, files with
    /// their newest version; `listed` once they are those of the folder and
    /// filter now shown.
    pub backups: Window,
    pub listed: bool,
    pub expanded: Option<Expanded>,
    pub browser: Browser,
    /// The selected row of the whole Backups list, versions included.
    pub backups_cursor: u64,
    /// The local names whose backup state was asked for, and the newest
    /// backup of those that have one.
    pub asked: HashSet<String>,
    pub backed_up: HashMap<String, FileEntry>,
    /// What the poller was last asked to fetch.
    view: View,
    pub transfers: Vec<Transfer>,
    pub jobs: Vec<Job>,
    /// Whether the keys move through the Transfers pane, and which transfer
    /// is chosen there.
    pub in_transfers: bool,
    pub transfer_cursor: usize,
    pub tab: Tab,
    pub mode: Mode,
    pub flash: Option<String>,
    /// The time as of the last message: how long things have been still.
    pub now: Instant,
    /// Rows a page of the list on screen holds, as last drawn.
    pub page: u16,
    /// Whether the mouse is captured (scrolling) or left to the terminal
    /// (selecting text).
    pub mouse: bool,
    /// A line for the help, about where this dashboard runs.
    pub help_note: Option<String>,
    pub quit: bool,
}

impl App {
    pub fn new(manager: String, client: String, files_root: PathBuf) -> Self {
        Self {
            manager,
            client,
            files_root,
            link: Link::Connecting,
            cluster: None,
            backup_folder: String::new(),
            backup_filter: String::new(),
            backup_land_on: None,
            backups: Window::default(),
            listed: false,
            expanded: None,
            browser: Browser::default(),
            backups_cursor: 0,
            asked: HashSet::new(),
            backed_up: HashMap::new(),
            view: View::default(),
            transfers: Vec::new(),
            jobs: Vec::new(),
            in_transfers: false,
            transfer_cursor: 0,
            tab: Tab::Files,
            mode: Mode::Normal,
            flash: None,
            now: Instant::now(),
            page: 10,
            mouse: true,
            help_note: None,
            quit: false,
        }
    }

    /// Opens the passphrase popup, saying why the last try was refused.
    pub fn ask_passphrase(&mut self, refused: Option<String>) {
        self.mode = Mode::Passphrase {
            typed: Secret::default(),
            refused,
        };
    }

    /// What the app needs when it starts.
    pub fn start(&self) -> Vec<Effect> {
        vec![Effect::ListDir(self.browser.dir.clone())]
    }

    pub fn file_state(&self, entry: &LocalEntry) -> FileState {
        let name = self.browser.path_of(entry);
        if name::validate(&name).is_err() {
            return FileState::BadName;
        }
        if !self.asked.contains(&name) {
            return FileState::Unknown;
        }
        match (self.backed_up.get(&name), entry.hash) {
            (None, _) => FileState::New,
            (Some(_), None) => FileState::Unknown,
            (Some(backup), Some(hash)) if backup.hash == hash => FileState::BackedUp,
            (Some(_), Some(_)) => FileState::Changed,
        }
    }

    /// The rows of the Backups window: its folders, then its names with
    /// the expanded one's versions after it.
    pub fn backup_rows(&self) -> Vec<BackupRow<'_>> {
        let mut rows = Vec::new();
        for child in &self.backups.entries {
            let entry = match child {
                Child::Folder(folder) => {
                    rows.push(BackupRow::Folder(folder));
                    continue;
                }
                Child::File(entry) => entry,
            };
            rows.push(BackupRow::Name(entry));
            if let Some(expanded) = &self.expanded
                && expanded.name == entry.name
            {
                rows.extend(expanded.versions.iter().map(BackupRow::Version));
            }
        }
        rows
    }

    /// Rows in the whole Backups list.
    pub fn backup_rows_total(&self) -> u64 {
        self.backups.total + self.expanded_rows()
    }

    /// The cursor's place in [`App::backup_rows`], once the window holds it.
    pub fn backups_selected(&self) -> Option<usize> {
        let first = self.row_of_name(self.backups.offset);
        let at = usize::try_from(self.backups_cursor.checked_sub(first)?).ok()?;
        (at < self.backup_rows().len()).then_some(at)
    }

    fn expanded_rows(&self) -> u64 {
        self.expanded
            .as_ref()
            .map_or(0, |e| e.versions.len() as u64)
    }

    /// The row the `index`-th name is on.
    fn row_of_name(&self, index: u64) -> u64 {
        match &self.expanded {
            Some(e) if e.index < index => index + self.expanded_rows(),
            _ => index,
        }
    }

    /// The `index`-th name, if the window holds it.
    fn name_at(&self, index: u64) -> Option<&str> {
        let at = usize::try_from(index.checked_sub(self.backups.offset)?).ok()?;
        self.backups.entries.get(at).map(Child::name)
    }

    /// The name a row is on, or belongs to for a version.
    fn name_of_row(&self, row: u64) -> u64 {
        match &self.expanded {
            Some(e) if row > e.index => e.index.max(row - self.expanded_rows()),
            _ => row,
        }
    }

    /// Folds the expanded name's versions away, the cursor staying on its name.
    fn collapse(&mut self) {
        self.keeping_cursor(|app| app.expanded = None);
    }

    /// Applies `change` to the Backups list, the cursor staying on the name
    /// it was on (and on the same version of the expanded one, while it
    /// stays expanded), within the list's rows: names that come or go
    /// before it move its row, not it.
    fn keeping_cursor(&mut self, change: impl FnOnce(&mut Self)) {
        let on_name = self.name_of_row(self.backups_cursor);
        let on_version = self.backups_cursor - self.row_of_name(on_name);
        let on_expanded = self.expanded.as_ref().is_some_and(|e| e.index == on_name);
        let named = self.name_at(on_name).map(str::to_owned);
        change(self);
        let on_name = named
            .and_then(|name| {
                let place = self.backups.entries.iter().position(|e| e.name() == name)?;
                Some(self.backups.offset + place as u64)
            })
            .unwrap_or(on_name);
        let (name, version) = match &self.expanded {
            Some(e) if on_expanded => (e.index, on_version.min(self.expanded_rows())),
            _ => (on_name, 0),
        };
        self.backups_cursor =
            (self.row_of_name(name) + version).min(self.backup_rows_total().saturating_sub(1));
    }

    /// The part of the catalog to fetch for what is on screen.
    fn wanted_view(&self) -> View {
        let files = self.browser.visible();
        let first = window_start(self.browser.cursor as u64) as usize;
        View {
            folder: self.backup_folder.clone(),
            filter: self.backup_filter.clone(),
            offset: window_start(self.name_of_row(self.backups_cursor)),
            limit: WINDOW,
            expanded: self.expanded.as_ref().map(|e| e.name.clone()),
            names: files
                .iter()
                .skip(first)
                .take(WINDOW as usize)
                .filter(|e| !e.is_dir)
                .map(|e| self.browser.path_of(e))
                // Asking about one the manager must refuse would break the link.
                .filter(|name| name::validate(name).is_ok())
                .collect(),
        }
    }

    /// Asks the poller for what is now on screen, when that changed.
    pub fn view_effect(&mut self) -> Option<Effect> {
        let wanted = self.wanted_view();
        (wanted != self.view).then(|| {
            self.view = wanted.clone();
            Effect::View(wanted)
        })
    }

    fn on_window(&mut self, window: Window) {
        if (&window.folder, &window.filter) != (&self.backup_folder, &self.backup_filter) {
            // Asked for before the folder or filter changed.
            return;
        }
        self.listed = true;
        if let Some(name) = self.backup_land_on.take()
            && let Some(place) = window.entries.iter().position(|e| e.name() == name)
        {
            self.backups_cursor = window.offset + place as u64;
        }
        self.keeping_cursor(|app| {
            app.backups = window;
            if let Some(e) = &app.expanded {
                match app.backups.entries.iter().position(|f| f.name() == e.name) {
                    Some(place) => {
                        let index = app.backups.offset + place as u64;
                        app.expanded = app.expanded.take().map(|e| Expanded { index, ..e });
                    }
                    // Scrolled away from it, or it is gone.
                    None => app.expanded = None,
                }
            }
        });
    }

    fn on_versions(&mut self, name: String, mut versions: Vec<FileEntry>) {
        if self.expanded.as_ref().is_none_or(|e| e.name != name) {
            return;
        }
        versions.reverse();
        self.keeping_cursor(|app| {
            if let Some(e) = app.expanded.as_mut() {
                e.versions = versions;
            }
        });
    }

    /// A message from a task.
    pub fn on_msg(&mut self, msg: Msg, now: Instant) -> Vec<Effect> {
        self.now = now;
        match msg {
            Msg::Link(link) => self.link = link,
            Msg::Cluster(status) => {
                self.link = Link::Connected;
                self.cluster = Some(status);
            }
            Msg::Catalog(window) => self.on_window(window),
            Msg::Versions(name, versions) => self.on_versions(name, versions),
            Msg::States { names, found } => {
                self.asked = names.into_iter().collect();
                self.backed_up = found.into_iter().map(|f| (f.name.clone(), f)).collect();
            }
            Msg::Dir(dir, entries) if dir == self.browser.dir => {
                // The cursor stays on its entry while others come and go.
                let on = (self.browser.land_on.take())
                    .or_else(|| self.browser.current().map(|e| e.name.clone()));
                self.browser.entries = entries;
                let visible = self.browser.visible();
                self.browser.cursor =
                    match on.and_then(|on| visible.iter().position(|e| e.name == on)) {
                        Some(at) => at,
                        None => clamp(self.browser.cursor, visible.len()),
                    };
            }
            Msg::Dir(..) => {}
            Msg::Unlocked => {
                self.flash = Some("key opened".into());
                return vec![Effect::ListDir(self.browser.dir.clone())];
            }
            Msg::PassphraseRefused(why) => self.ask_passphrase(Some(why)),
            Msg::Queued {
                id,
                name,
                kind,
                job,
            } => self.transfers.push(Transfer {
                id,
                name,
                kind,
                progress: TransferProgress::default(),
                started: None,
                bytes_per_sec: 0.0,
                retries: Vec::new(),
                job,
                moved_at: now,
            }),
            Msg::Job {
                id,
                name,
                kind,
                files,
                bytes,
            } => self.jobs.push(Job {
                id,
                name,
                kind,
                files,
                bytes,
                files_done: 0,
                failures: Vec::new(),
                bytes_done: 0,
                started: now,
                bytes_per_sec: 0.0,
                ended: None,
                expanded: false,
            }),
            Msg::FileDone { job, failure } => {
                if let Some(job) = self.job_mut(job) {
                    job.files_done += 1;
                    job.failures.extend(failure);
                }
            }
            Msg::JobEnded { job, stopped } => {
                let ended = self.job_mut(job).map(|job| {
                    job.ended = Some(stopped.clone());
                    job.name.clone()
                });
                if let (Some(name), Some(why)) = (ended, stopped) {
                    self.flash = Some(format!("{name} stopped: {why}"));
                }
                self.forget_old();
                return vec![Effect::ListDir(self.browser.dir.clone())];
            }
            Msg::Progress { id, progress } => return self.on_progress(id, progress, now),
            Msg::Flash(text) => self.flash = Some(text),
        }
        Vec::new()
    }

    fn on_progress(&mut self, id: u64, progress: TransferProgress, now: Instant) -> Vec<Effect> {
        let Some(transfer) = self.transfers.iter_mut().find(|t| t.id == id) else {
            return Vec::new();
        };
        let finished = progress.phase.is_done() && !transfer.progress.phase.is_done();
        if let Phase::Retrying { attempt, reason } = &progress.phase
            && transfer.retries.len() < *attempt as usize
        {
            // A new attempt: its speed counts from its own start.
            transfer.retries.push(reason.clone());
            transfer.started = None;
            transfer.bytes_per_sec = 0.0;
        } else if progress.sent > 0 {
            let (started, before) = *transfer.started.get_or_insert((now, progress.sent));
            let secs = now.duration_since(started).as_secs_f64();
            if secs > 0.05 {
                transfer.bytes_per_sec = progress.sent.saturating_sub(before) as f64 / secs;
            }
        }
        let moved = (progress.sent, &progress.replicas, &progress.phase)
            != (
                transfer.progress.sent,
                &transfer.progress.replicas,
                &transfer.progress.phase,
            );
        if moved {
            transfer.moved_at = now;
        }
        if let (true, Phase::Failed(reason)) = (finished, &progress.phase) {
            self.flash = Some(format!("{} failed: {reason}", transfer.name));
        }
        transfer.progress = progress;
        if let Some(job) = transfer.job {
            self.count_job(job, now);
        }
        if finished {
            self.forget_old();
            // The folder view shows backup state: refresh it.
            return vec![Effect::ListDir(self.browser.dir.clone())];
        }
        Vec::new()
    }

    fn job_mut(&mut self, id: u64) -> Option<&mut Job> {
        self.jobs.iter_mut().find(|j| j.id == id)
    }

    /// A job's bytes done and speed, from its transfers.
    fn count_job(&mut self, id: u64, now: Instant) {
        let done: u64 = self
            .transfers
            .iter()
            .filter(|t| t.job == Some(id))
            .map(|t| match t.progress.phase.is_done() {
                true => t.progress.total,
                false => t.durable(),
            })
            .sum();
        if let Some(job) = self.job_mut(id) {
            job.bytes_done = done.min(job.bytes);
            let secs = now.duration_since(job.started).as_secs_f64();
            if secs > 0.05 {
                job.bytes_per_sec = job.bytes_done as f64 / secs;
            }
        }
    }

    /// Drops the oldest finished transfers and jobs beyond what is kept.
    fn forget_old(&mut self) {
        let done_jobs: Vec<u64> = self
            .jobs
            .iter()
            .filter(|j| j.ended.is_some())
            .map(|j| j.id)
            .collect();
        let gone_jobs = &done_jobs[..done_jobs.len().saturating_sub(KEEP_DONE)];
        self.jobs.retain(|j| !gone_jobs.contains(&j.id));
        let done = self
            .transfers
            .iter()
            .filter(|t| t.job.is_none() && t.progress.phase.is_done())
            .count();
        let mut extra = done.saturating_sub(KEEP_DONE);
        self.transfers.retain(|t| match t.job {
            Some(job) => !gone_jobs.contains(&job),
            None if extra > 0 && t.progress.phase.is_done() => {
                extra -= 1;
                false
            }
            None => true,
        });
        self.transfer_cursor = clamp(self.transfer_cursor, self.transfer_rows().len());
    }

    /// A job's row, and its transfers' when it is expanded.
    fn job_rows<'a>(&'a self, job: &'a Job) -> impl Iterator<Item = TransferRow<'a>> {
        let parts = self
            .transfers
            .iter()
            .filter(move |t| job.expanded && t.job == Some(job.id))
            .map(|transfer| TransferRow::Transfer {
                transfer,
                in_job: true,
            });
        std::iter::once(TransferRow::Job(job)).chain(parts)
    }

    /// The rows of the Transfers pane, oldest first: transfers on their
    /// own, and each job of many files as one row, its transfers under it
    /// when expanded.
    pub fn transfer_rows(&self) -> Vec<TransferRow<'_>> {
        let summed = |job: Option<u64>| {
            job.and_then(|id| self.jobs.iter().find(|j| j.id == id))
                .filter(|j| j.files > 1)
        };
        let mut rows = Vec::new();
        let mut jobs = self.jobs.iter().filter(|j| j.files > 1).peekable();
        for transfer in &self.transfers {
            while let Some(job) = jobs.next_if(|j| j.id < transfer.id) {
                rows.extend(self.job_rows(job));
            }
            if summed(transfer.job).is_none() {
                rows.push(TransferRow::Transfer {
                    transfer,
                    in_job: false,
                });
            }
        }
        for job in jobs {
            rows.extend(self.job_rows(job));
        }
        rows
    }

    /// A terminal event.
    pub fn on_event(&mut self, event: &Event) -> Vec<Effect> {
        match event {
            Event::Key(key) if key.kind != KeyEventKind::Release => self.on_key(*key),
            Event::Paste(text) => {
                self.on_paste(text);
                Vec::new()
            }
            Event::Mouse(mouse) => {
                match mouse.kind {
                    MouseEventKind::ScrollDown => self.move_cursor(3),
                    MouseEventKind::ScrollUp => self.move_cursor(-3),
                    _ => {}
                }
                Vec::new()
            }
            _ => Vec::new(),
        }
    }

    pub fn on_key(&mut self, key: KeyEvent) -> Vec<Effect> {
        if key.code == KeyCode::Char('c') && key.modifiers.contains(KeyModifiers::CONTROL) {
            self.quit = true;
            return Vec::new();
        }
        match std::mem::replace(&mut self.mode, Mode::Normal) {
            Mode::Help | Mode::Details(_) => Vec::new(),
            Mode::Passphrase { mut typed, refused } => match key.code {
                KeyCode::Enter if !typed.0.is_empty() => vec![Effect::Unlock(typed)],
                KeyCode::Esc => Vec::new(),
                KeyCode::Backspace => {
                    typed.0.pop();
                    self.mode = Mode::Passphrase { typed, refused };
                    Vec::new()
                }
                KeyCode::Char(c) => {
                    typed.0.push(c);
                    self.mode = Mode::Passphrase { typed, refused };
                    Vec::new()
                }
                _ => {
                    self.mode = Mode::Passphrase { typed, refused };
                    Vec::new()
                }
            },
            // Only `y` says yes: an Enter typed by reflex must not delete.
            Mode::Confirm { prompt, on_yes } => match key.code {
                KeyCode::Char('y' | 'Y') => match on_yes {
                    OnYes::Run(effect) => vec![effect],
                    OnYes::Quit => {
                        self.quit = true;
                        Vec::new()
                    }
                },
                KeyCode::Char('n' | 'N') | KeyCode::Esc => Vec::new(),
                _ => {
                    self.mode = Mode::Confirm { prompt, on_yes };
                    Vec::new()
                }
            },
            Mode::Filter => {
                match key.code {
                    KeyCode::Esc => self.edit_filter(String::clear),
                    KeyCode::Enter => {}
                    KeyCode::Backspace => {
                        self.edit_filter(|f| {
                            f.pop();
                        });
                        self.mode = Mode::Filter;
                    }
                    KeyCode::Char(c) => {
                        self.edit_filter(|f| f.push(c));
                        self.mode = Mode::Filter;
                    }
                    _ => self.mode = Mode::Filter,
                }
                Vec::new()
            }
            Mode::Normal => self.on_normal_key(key.code),
        }
    }

    /// Pasted text is text: it goes into what is being typed, and is never
    /// taken as keys (a pasted `q` must not quit).
    fn on_paste(&mut self, text: &str) {
        let text = text.chars().filter(|c| !c.is_control());
        match &mut self.mode {
            Mode::Passphrase { typed, .. } => typed.0.extend(text),
            Mode::Filter => self.edit_filter(|f| f.extend(text)),
            _ => {}
        }
    }

    /// Changes the filter of the tab shown; its cursor goes to the top.
    fn edit_filter(&mut self, edit: impl FnOnce(&mut String)) {
        match self.tab {
            Tab::Files => {
                edit(&mut self.browser.filter);
                self.browser.cursor = 0;
            }
            Tab::Backups => {
                edit(&mut self.backup_filter);
                self.expanded = None;
                self.backups_cursor = 0;
                self.listed = false;
            }
        }
    }

    /// Jobs not ended, and transfers of no job not done.
    pub fn running(&self) -> usize {
        let jobs = self.jobs.iter().filter(|j| j.ended.is_none()).count();
        let alone = self
            .transfers
            .iter()
            .filter(|t| t.job.is_none() && !t.progress.phase.is_done())
            .count();
        jobs + alone
    }

    /// Quits, asking first while transfers are running.
    fn ask_quit(&mut self) {
        let running = self.running();
        if running == 0 {
            self.quit = true;
            return;
        }
        let (transfers, them) = match running {
            1 => ("transfer is", "it"),
            _ => ("transfers are", "them"),
        };
        self.mode = Mode::Confirm {
            prompt: format!("{running} {transfers} still running. Quit and stop {them}?"),
            on_yes: OnYes::Quit,
        };
    }

    fn on_normal_key(&mut self, code: KeyCode) -> Vec<Effect> {
        self.flash = None;
        match code {
            KeyCode::Char('q') => self.ask_quit(),
            KeyCode::Char('?') => self.mode = Mode::Help,
            KeyCode::Char('p') => self.ask_passphrase(None),
            KeyCode::Tab | KeyCode::BackTab => {
                self.tab = match self.tab {
                    Tab::Files => Tab::Backups,
                    Tab::Backups => Tab::Files,
                };
            }
            KeyCode::Up | KeyCode::Char('k') => self.move_cursor(-1),
            KeyCode::Down | KeyCode::Char('j') => self.move_cursor(1),
            KeyCode::PageUp => self.move_cursor(-i64::from(self.page.max(1))),
            KeyCode::PageDown => self.move_cursor(i64::from(self.page.max(1))),
            KeyCode::Home | KeyCode::Char('g') => self.move_cursor(i64::MIN / 2),
            KeyCode::End | KeyCode::Char('G') => self.move_cursor(i64::MAX / 2),
            KeyCode::Char('c') => self.clear_done(),
            KeyCode::Char('m') => {
                self.mouse = !self.mouse;
                self.flash = Some(match self.mouse {
                    true => "mouse: scrolls the lists (m lets the terminal select text)".into(),
                    false => "mouse: the terminal's, to select text (m to scroll again)".into(),
                });
            }
            KeyCode::Char('t') => {
                let rows = self.transfer_rows().len();
                self.in_transfers = !self.in_transfers && rows > 0;
                self.transfer_cursor = rows.saturating_sub(1);
            }
            _ if self.in_transfers => self.on_transfers_key(code),
            _ => {
                return match self.tab {
                    Tab::Files => self.on_files_key(code),
                    Tab::Backups => self.on_backups_key(code),
                };
            }
        }
        Vec::new()
    }

    fn on_files_key(&mut self, code: KeyCode) -> Vec<Effect> {
        match code {
            KeyCode::Enter | KeyCode::Right | KeyCode::Char('l') => {
                if let Some(entry) = self.browser.current().filter(|e| e.is_dir) {
                    let dir = self.browser.path_of(entry);
                    return self.open_dir(dir);
                }
            }
            KeyCode::Backspace | KeyCode::Left | KeyCode::Char('h')
                if !self.browser.dir.is_empty() =>
            {
                let (parent, left) = match self.browser.dir.rsplit_once('/') {
                    Some((parent, left)) => (parent.to_owned(), left.to_owned()),
                    None => (String::new(), self.browser.dir.clone()),
                };
                let effects = self.open_dir(parent);
                self.browser.land_on = Some(left);
                return effects;
            }
            KeyCode::Char(' ') => {
                if let Some(entry) = self.browser.current() {
                    let path = self.browser.path_of(entry);
                    if !self.browser.selected.remove(&path) {
                        self.browser.selected.insert(path);
                    }
                    self.move_cursor(1);
                }
            }
            KeyCode::Char('a') => {
                let all: Vec<String> = self
                    .browser
                    .visible()
                    .iter()
                    .map(|e| self.browser.path_of(e))
                    .collect();
                self.browser.selected.extend(all);
            }
            KeyCode::Esc if self.browser.selected.is_empty() => self.edit_filter(String::clear),
            KeyCode::Esc => self.browser.selected.clear(),
            KeyCode::Char('/') => self.mode = Mode::Filter,
            KeyCode::Char('u') => return self.upload(),
            _ => {}
        }
        Vec::new()
    }

    /// Clears finished transfers, and finished jobs with theirs; a running
    /// job keeps its parts.
    fn clear_done(&mut self) {
        self.jobs.retain(|j| j.ended.is_none());
        let running: HashSet<u64> = self.jobs.iter().map(|j| j.id).collect();
        self.transfers.retain(|t| match t.job {
            Some(job) => running.contains(&job),
            None => !t.progress.phase.is_done(),
        });
        let rows = self.transfer_rows().len();
        self.transfer_cursor = clamp(self.transfer_cursor, rows);
        self.in_transfers &= rows > 0;
    }

    fn on_transfers_key(&mut self, code: KeyCode) {
        let chosen = match self.transfer_rows().get(self.transfer_cursor) {
            Some(TransferRow::Job(job)) => Err(job.id),
            Some(TransferRow::Transfer { transfer, .. }) => Ok(transfer.id),
            None => return,
        };
        match code {
            KeyCode::Enter => match chosen {
                Ok(transfer) => self.mode = Mode::Details(transfer),
                Err(job) => {
                    if let Some(job) = self.job_mut(job) {
                        job.expanded = !job.expanded;
                    }
                }
            },
            KeyCode::Esc => self.in_transfers = false,
            _ => {}
        }
    }

    fn open_dir(&mut self, dir: String) -> Vec<Effect> {
        self.browser.dir = dir.clone();
        self.browser.land_on = None;
        self.browser.entries.clear();
        self.browser.cursor = 0;
        self.browser.filter.clear();
        vec![Effect::ListDir(dir)]
    }

    /// Uploads the selection, or the entry under the cursor.
    fn upload(&mut self) -> Vec<Effect> {
        let names: Vec<String> = if self.browser.selected.is_empty() {
            self.browser
                .current()
                .map(|e| self.browser.path_of(e))
                .into_iter()
                .collect()
        } else {
            std::mem::take(&mut self.browser.selected)
                .into_iter()
                .collect()
        };
        if names.is_empty() {
            self.flash = Some("nothing to upload here".into());
            return Vec::new();
        }
        let paths = names
            .iter()
            .map(|n| crate::names::local_path(&self.files_root, n))
            .collect();
        vec![Effect::Upload(paths)]
    }

    fn on_backups_key(&mut self, code: KeyCode) -> Vec<Effect> {
        let rows = self.backup_rows();
        let row = self.backups_selected().and_then(|at| rows.get(at).copied());
        let folds = match row {
            Some(BackupRow::Name(e)) => self.is_expanded(&e.name),
            Some(BackupRow::Version(_)) => true,
            _ => false,
        };
        let up = matches!(
            code,
            KeyCode::Backspace | KeyCode::Left | KeyCode::Char('h')
        );
        match row {
            _ if code == KeyCode::Char('/') => self.mode = Mode::Filter,
            _ if code == KeyCode::Esc => self.edit_filter(String::clear),
            _ if up && !folds && !self.backup_folder.is_empty() => self.go_up_backups(),
            Some(BackupRow::Folder(folder)) => {
                let (name, files) = (folder.name.clone(), folder.files);
                self.on_backup_folder_key(code, name, files);
            }
            Some(BackupRow::Name(e)) => {
                let name = e.name.clone();
                self.on_backup_key(code, name, None);
            }
            Some(BackupRow::Version(e)) => {
                let (name, version) = (e.name.clone(), e.version);
                self.on_backup_key(code, name, Some(version));
            }
            None => {}
        }
        Vec::new()
    }

    fn is_expanded(&self, name: &str) -> bool {
        self.expanded.as_ref().is_some_and(|e| e.name == name)
    }

    /// A key on a folder of the Backups tree.
    fn on_backup_folder_key(&mut self, code: KeyCode, name: String, files: u64) {
        let them = match files {
            1 => "the file".to_owned(),
            n => format!("the {n} files"),
        };
        match code {
            KeyCode::Enter | KeyCode::Right | KeyCode::Char('l') => {
                self.open_backup_folder(name, None);
            }
            KeyCode::Char('r') => {
                self.mode = Mode::Confirm {
                    prompt: format!(
                        "Restore {them} under {name} (newest versions) into the files folder, \
                         replacing local copies that differ?"
                    ),
                    on_yes: OnYes::Run(Effect::Restore {
                        name,
                        version: None,
                    }),
                };
            }
            KeyCode::Char('d') => {
                self.mode = Mode::Confirm {
                    prompt: format!(
                        "Delete every version of {them} under {name} from the backups? \
                         This cannot be undone."
                    ),
                    on_yes: OnYes::Run(Effect::Delete {
                        name,
                        version: None,
                    }),
                };
            }
            _ => {}
        }
    }

    /// A key on a name of the Backups tree, or on one of its versions.
    fn on_backup_key(&mut self, code: KeyCode, name: String, version: Option<u32>) {
        let which = version.map_or("newest version".to_owned(), |v| format!("version {v}"));
        match code {
            KeyCode::Enter
            | KeyCode::Right
            | KeyCode::Char('l')
            | KeyCode::Left
            | KeyCode::Char('h')
            | KeyCode::Backspace => {
                let open = self.is_expanded(&name);
                self.collapse();
                let wants_open =
                    matches!(code, KeyCode::Enter | KeyCode::Right | KeyCode::Char('l'));
                if !open && wants_open {
                    self.expanded = Some(Expanded {
                        index: self.backups_cursor,
                        name,
                        versions: Vec::new(),
                    });
                }
            }
            KeyCode::Char('r') => {
                self.mode = Mode::Confirm {
                    prompt: format!(
                        "Restore {name} ({which}) into the files folder, replacing the local copy?"
                    ),
                    on_yes: OnYes::Run(Effect::Restore { name, version }),
                };
            }
            KeyCode::Char('d') => {
                let what = version.map_or("every version".to_owned(), |v| format!("version {v}"));
                self.mode = Mode::Confirm {
                    prompt: format!(
                        "Delete {what} of {name} from the backups? This cannot be undone."
                    ),
                    on_yes: OnYes::Run(Effect::Delete { name, version }),
                };
            }
            _ => {}
        }
    }

    /// Shows another folder of the Backups tree, its filter cleared; the
    /// cursor goes to `land_on` once it is listed, or to the top.
    fn open_backup_folder(&mut self, folder: String, land_on: Option<String>) {
        self.backup_folder = folder;
        self.backup_filter.clear();
        self.backup_land_on = land_on;
        self.expanded = None;
        self.backups = Window::default();
        self.listed = false;
        self.backups_cursor = 0;
    }

    /// Goes up a folder of the Backups tree, to the folder left.
    fn go_up_backups(&mut self) {
        let stem = self.backup_folder.trim_end_matches('/');
        let parent = match stem.rsplit_once('/') {
            Some((parent, _)) => format!("{parent}/"),
            None => String::new(),
        };
        let left = self.backup_folder.clone();
        self.open_backup_folder(parent, Some(left));
    }

    fn move_cursor(&mut self, by: i64) {
        let moved =
            |cursor: u64, len: u64| cursor.saturating_add_signed(by).min(len.saturating_sub(1));
        if self.in_transfers {
            let len = self.transfer_rows().len() as u64;
            self.transfer_cursor = moved(self.transfer_cursor as u64, len) as usize;
            return;
        }
        match self.tab {
            Tab::Files => {
                let len = self.browser.visible().len() as u64;
                self.browser.cursor = moved(self.browser.cursor as u64, len) as usize;
            }
            Tab::Backups => {
                self.backups_cursor = moved(self.backups_cursor, self.backup_rows_total());
            }
        }
    }
}

fn clamp(cursor: usize, len: usize) -> usize {
    cursor.min(len.saturating_sub(1))
}
