//! The catalog: names and versions, the chunks each version is made of,
//! the stored blob each chunk is, and which servers hold each blob, in
//! SQLite (WAL, synchronous FULL) so that it survives a crash.
//!
//! Chunks belong to one client's namespace (their ids are keyed per
//! namespace), so dedup never reaches across clients. A chunk no version
//! uses is kept for a grace period (an upload records its chunks before the
//! versions that use them), then forgotten; a blob no chunk refers to is
//! garbage.

use std::path::Path;
use std::rc::Rc;

use arca_shared::BlobHash;
use arca_shared::keys::Nonce;
use arca_shared::meta::FileMeta;
use arca_shared::protocol::{NewChunk, Part, content_digest};
use arca_shared::types::{ServerId, now_ms};
use arca_shared::vault::{ChunkId, WrappedKey};
use rusqlite::{Connection, OptionalExtension, params};

/// The catalog's file name in the manager's data folder.
pub const FILE: &str = "catalog.db";

pub struct Catalog {
    db: Connection,
}

/// A version to record: its name, size and chunks, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct NewVersion {
    pub name: String,
    pub size: u64,
    pub meta: FileMeta,
    pub chunks: Vec<ChunkId>,
}

/// What recording a version did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// A new version with this number.
    New(u32),
    /// The newest version already had this content.
    Unchanged(u32),
}

/// One version of one name, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct FileRow {
    pub name: String,
    pub version: u32,
    pub size: u64,
    /// The content's identity: the digest of its chunk ids (for a version
    /// stored before chunks, its one blob's hash).
    pub hash: BlobHash,
    pub created_ms: u64,
    /// Stored before chunks: a plain whole-file blob.
    pub plain: bool,
    /// Type, mode, time and owner (none before chunks).
    pub meta: Option<FileMeta>,
}

/// One child of a folder: a folder, with the count, bytes and newest
/// commit of the newest versions under it, or a file's name.
#[derive(Debug, Clone, PartialEq)]
pub enum ChildRow {
    Folder {
        name: String,
        files: u64,
        size: u64,
        newest_ms: u64,
    },
    File(String),
}

/// A stored blob and the servers holding it.
pub type Held = (BlobHash, Vec<ServerId>);

/// A stored blob's size and the servers holding it.
pub type SizeHeld = (u64, Vec<ServerId>);

/// A client credential as the catalog keeps it (never its key).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CredentialRow {
    /// The hash of its certificate (see `arca_shared::link::CredentialId`).
    pub id: String,
    pub client: String,
    pub created_ms: u64,
    pub expires_ms: u64,
    pub revoked_ms: Option<u64>,
}

const SELECT_CREDENTIALS: &str =
    "SELECT id, client, created_ms, expires_ms, revoked_ms FROM credentials";

fn credential_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<CredentialRow> {
    Ok(CredentialRow {
        id: row.get(0)?,
        client: row.get(1)?,
        created_ms: row.get(2)?,
        expires_ms: row.get(3)?,
        revoked_ms: row.get(4)?,
    })
}

/// Which catalog format this code reads and writes (SQLite's `user_version`).
/// Format 3 added `names`, `damaged` and `history` to format 2; format 4
/// made versions lists of chunks, and added `keys`.
const FORMAT: i64 = 4;

/// Blobs, chunks and versions get small sequential ids, and the tables that
/// point at them use those: a batch's inserts then land at the ends of their
/// indexes, and only the hash and chunk-id indexes take them at random places.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS servers (
    id   INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid TEXT NOT NULL UNIQUE,
    addr TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS blobs (
    id   INTEGER PRIMARY KEY,
    hash BLOB    NOT NULL UNIQUE,
    size INTEGER NOT NULL
);
-- A chunk of one namespace: its keyed id there, the blob it is stored as.
-- A version stored before chunks is one unsealed chunk whose id is its
-- blob's hash.
CREATE TABLE IF NOT EXISTS chunks (
    id         INTEGER PRIMARY KEY,
    client     TEXT    NOT NULL,
    key        BLOB    NOT NULL,
    blob       INTEGER NOT NULL REFERENCES blobs (id),
    plain_size INTEGER NOT NULL,
    sealed     INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,
    UNIQUE (client, key)
);
CREATE INDEX IF NOT EXISTS chunks_by_blob ON chunks (blob);
CREATE TABLE IF NOT EXISTS files (
    client     TEXT    NOT NULL,
    name       TEXT    NOT NULL,
    version    INTEGER NOT NULL,
    size       INTEGER NOT NULL,
    content    BLOB    NOT NULL,
    -- FileMeta as MessagePack; NULL for versions from before chunks.
    meta       BLOB,
    created_ms INTEGER NOT NULL,
    PRIMARY KEY (client, name, version)
) WITHOUT ROWID;
-- Each version's chunks, in order.
CREATE TABLE IF NOT EXISTS parts (
    client  TEXT    NOT NULL,
    name    TEXT    NOT NULL,
    version INTEGER NOT NULL,
    seq     INTEGER NOT NULL,
    chunk   INTEGER NOT NULL REFERENCES chunks (id),
    PRIMARY KEY (client, name, version, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS parts_by_chunk ON parts (chunk);
CREATE TABLE IF NOT EXISTS holders (
    blob   INTEGER NOT NULL REFERENCES blobs (id),
    server INTEGER NOT NULL,
    PRIMARY KEY (blob, server)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS holders_by_server ON holders (server, blob);
-- The highest version each name ever had, so numbers never repeat after
-- the versions themselves are removed.
CREATE TABLE IF NOT EXISTS names (
    client       TEXT    NOT NULL,
    name         TEXT    NOT NULL,
    last_version INTEGER NOT NULL,
    PRIMARY KEY (client, name)
) WITHOUT ROWID;
-- Copies that failed their hash, set aside on their server rather than
-- deleted while no good copy exists.
CREATE TABLE IF NOT EXISTS damaged (
    blob   INTEGER NOT NULL REFERENCES blobs (id),
    server INTEGER NOT NULL,
    PRIMARY KEY (blob, server)
) WITHOUT ROWID;
-- One row per change to names and versions: its number (the catalog's
-- generation) and a random token. A snapshot carries both, so a catalog
-- that is behind a snapshot, or went its own way from it, shows.
CREATE TABLE IF NOT EXISTS history (
    generation INTEGER PRIMARY KEY,
    token      BLOB    NOT NULL
);
-- Tokens of snapshots an operator's recovery chose against: histories this
-- catalog deliberately is not part of.
CREATE TABLE IF NOT EXISTS superseded (
    token BLOB PRIMARY KEY
) WITHOUT ROWID;
-- Each namespace's master key, wrapped once per passphrase (MessagePack).
CREATE TABLE IF NOT EXISTS keys (
    client  TEXT NOT NULL,
    id      TEXT NOT NULL,
    wrapped BLOB NOT NULL,
    PRIMARY KEY (client, id)
) WITHOUT ROWID;
-- Client credentials by the hash of their certificate: whose each is, and
-- whether it was revoked (see `daemon client`).
CREATE TABLE IF NOT EXISTS credentials (
    id         TEXT    PRIMARY KEY,
    client     TEXT    NOT NULL,
    created_ms INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL,
    revoked_ms INTEGER
) WITHOUT ROWID;
";

/// Formats 2 and 3 kept one whole-file blob per version; their `files`
/// table is set aside for [`FROM_FORMAT_3`].
const SET_ASIDE_FORMAT_3: &str = "
ALTER TABLE files RENAME TO files_3;
DROP INDEX IF EXISTS files_by_blob;
";

/// Carries whole-file versions over as versions of one unsealed chunk, so
/// they restore as they were (and `ls` marks them); fills `names` for a
/// format 2 catalog.
const FROM_FORMAT_3: &str = "
INSERT INTO chunks (client, key, blob, plain_size, sealed, created_ms)
    SELECT f.client, b.hash, b.id, b.size, 0, MIN(f.created_ms)
    FROM files_3 f JOIN blobs b ON b.id = f.blob GROUP BY f.client, b.id;
INSERT INTO files (client, name, version, size, content, created_ms)
    SELECT f.client, f.name, f.version, b.size, b.hash, f.created_ms
    FROM files_3 f JOIN blobs b ON b.id = f.blob;
INSERT INTO parts (client, name, version, seq, chunk)
    SELECT f.client, f.name, f.version, 0, c.id
    FROM files_3 f JOIN chunks c ON c.client = f.client AND c.blob = f.blob;
INSERT OR IGNORE INTO names (client, name, last_version)
    SELECT client, name, MAX(version) FROM files_3 GROUP BY client, name;
DROP TABLE files_3;
";

/// Forgets a blob that no chunk, copy or damaged copy refers to any more.
const FORGET_UNUSED_BLOB: &str = "
DELETE FROM blobs WHERE hash = ?1
AND NOT EXISTS (SELECT 1 FROM holders WHERE blob = blobs.id)
AND NOT EXISTS (SELECT 1 FROM damaged WHERE blob = blobs.id)
AND NOT EXISTS (SELECT 1 FROM chunks WHERE blob = blobs.id)";

/// Moves a format 1 catalog (files and holders keyed by hash) to the shape
/// format 3 had, as `files_3`.
const FROM_FORMAT_1: &str = "
ALTER TABLE files RENAME TO files_1;
ALTER TABLE holders RENAME TO holders_1;
DROP INDEX IF EXISTS files_by_hash;
DROP INDEX IF EXISTS holders_by_server;
";
const FROM_FORMAT_1_COPY: &str = "
INSERT INTO blobs (hash, size) SELECT hash, MAX(size) FROM files_1 GROUP BY hash;
INSERT OR IGNORE INTO blobs (hash, size) SELECT hash, 0 FROM holders_1;
CREATE TABLE files_3 AS
    SELECT f.client, f.name, f.version, b.id AS blob, f.created_ms
    FROM files_1 f JOIN blobs b ON b.hash = f.hash;
INSERT INTO holders (blob, server)
    SELECT b.id, h.server FROM holders_1 h JOIN blobs b ON b.hash = h.hash;
DROP TABLE files_1;
DROP TABLE holders_1;
";

/// A version's columns, from `files f`.
const FILE_COLUMNS: &str = "f.name, f.version, f.size, f.content, f.created_ms,
    EXISTS (SELECT 1 FROM parts p JOIN chunks c ON c.id = p.chunk
            WHERE p.client = f.client AND p.name = f.name AND p.version = f.version
            AND c.sealed = 0),
    f.meta";

fn file_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<FileRow> {
    Ok(FileRow {
        name: row.get(0)?,
        version: row.get(1)?,
        size: row.get::<_, i64>(2)? as u64,
        hash: hash_column(row, 3)?,
        created_ms: row.get::<_, i64>(4)? as u64,
        plain: row.get(5)?,
        meta: row
            .get::<_, Option<Vec<u8>>>(6)?
            .map(|bytes| decode(6, &bytes))
            .transpose()?,
    })
}

/// A value stored as MessagePack in column `index`.
fn decode<T: serde::de::DeserializeOwned>(index: usize, bytes: &[u8]) -> rusqlite::Result<T> {
    rmp_serde::from_slice(bytes).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(index, rusqlite::types::Type::Blob, e.into())
    })
}

/// A value to store as MessagePack.
fn encode<T: serde::Serialize>(value: &T) -> rusqlite::Result<Vec<u8>> {
    rmp_serde::to_vec_named(value).map_err(|e| rusqlite::Error::ToSqlConversionFailure(e.into()))
}

fn has_table(db: &Connection, name: &str) -> rusqlite::Result<bool> {
    db.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1)",
        params![name],
        |row| row.get(0),
    )
}

/// Refuses a damaged database file at once, rather than at the first
/// request that reads the damaged pages.
fn check_integrity(db: &Connection) -> rusqlite::Result<()> {
    let verdict: String = db.query_row("PRAGMA quick_check", [], |row| row.get(0))?;
    if verdict == "ok" {
        return Ok(());
    }
    Err(rusqlite::Error::SqliteFailure(
        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CORRUPT),
        Some(format!("the integrity check failed: {verdict}")),
    ))
}

/// The two kinds of copy the catalog records: counted, and set aside.
#[derive(Clone, Copy)]
enum Copies {
    Holders,
    Damaged,
}

fn delete_copy(
    tx: &rusqlite::Transaction<'_>,
    copies: Copies,
    hash: &BlobHash,
    server: ServerId,
) -> rusqlite::Result<()> {
    let table = match copies {
        Copies::Holders => "holders",
        Copies::Damaged => "damaged",
    };
    tx.execute(
        &format!(
            "DELETE FROM {table} WHERE server = ?2
             AND blob = (SELECT id FROM blobs WHERE hash = ?1)"
        ),
        params![hash.0, server],
    )?;
    Ok(())
}

/// A catalog's place in its history: how many changes it has recorded,
/// and the token of the last one (zeros before any).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Generation {
    pub number: u64,
    pub token: [u8; 32],
}

fn generation(db: &Connection) -> rusqlite::Result<Generation> {
    let last = db
        .query_row(
            "SELECT generation, token FROM history ORDER BY generation DESC LIMIT 1",
            [],
            |row| {
                Ok(Generation {
                    number: row.get(0)?,
                    token: row.get(1)?,
                })
            },
        )
        .optional()?;
    Ok(last.unwrap_or(Generation {
        number: 0,
        token: [0; 32],
    }))
}

fn bump_generation(tx: &rusqlite::Transaction<'_>) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO history (generation, token)
         VALUES ((SELECT COALESCE(MAX(generation), 0) + 1 FROM history), ?1)",
        params![Nonce::fresh().0],
    )?;
    Ok(())
}

fn hash_column(row: &rusqlite::Row<'_>, index: usize) -> rusqlite::Result<BlobHash> {
    let bytes: [u8; 32] = row.get(index)?;
    Ok(BlobHash(bytes))
}

impl Catalog {
    pub fn open(path: &Path) -> rusqlite::Result<Self> {
        let db = Connection::open(path)?;
        db.pragma_update(None, "journal_mode", "WAL")?;
        db.pragma_update(None, "synchronous", "FULL")?;
        // Up to 32 MiB of pages (the default is 2 MiB): a batch's inserts
        // touch index pages all over, which otherwise come back from the
        // operating system one read at a time.
        db.pragma_update(None, "cache_size", -32 * 1024)?;
        db.busy_timeout(std::time::Duration::from_secs(5))?;
        rusqlite::vtab::array::load_module(&db)?;
        check_integrity(&db)?;
        let format: i64 = db.query_row("PRAGMA user_version", [], |row| row.get(0))?;
        if format > FORMAT {
            return Err(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CANTOPEN),
                Some(format!(
                    "the catalog is format {format}, newer than this manager reads \
                     ({FORMAT}); run the newer Arca it was written by"
                )),
            ));
        }
        // Immediate: `daemon client` opens the catalog under a running
        // manager, and a deferred transaction that read first could not
        // wait for the manager's writes to end.
        let tx =
            rusqlite::Transaction::new_unchecked(&db, rusqlite::TransactionBehavior::Immediate)?;
        if format < FORMAT && has_table(&tx, "files")? {
            if format < 2 {
                tx.execute_batch(FROM_FORMAT_1)?;
                tx.execute_batch(SCHEMA)?;
                tx.execute_batch(FROM_FORMAT_1_COPY)?;
            } else {
                tx.execute_batch(SET_ASIDE_FORMAT_3)?;
                tx.execute_batch(SCHEMA)?;
            }
            tx.execute_batch(FROM_FORMAT_3)?;
        } else {
            tx.execute_batch(SCHEMA)?;
        }
        tx.pragma_update(None, "user_version", FORMAT)?;
        tx.commit()?;
        Ok(Self { db })
    }

    /// Writes a consistent copy of the whole catalog to `path`, while it
    /// stays in use (SQLite's online backup), as one self-contained file.
    pub fn backup_to(&self, path: &Path) -> rusqlite::Result<()> {
        self.db.backup(
            rusqlite::MAIN_DB,
            path,
            None::<fn(rusqlite::backup::Progress)>,
        )?;
        // Without a write-ahead log, opening the copy to check it leaves no
        // side files; the manager turns the log back on when it opens it.
        Connection::open(path)?.pragma_update(None, "journal_mode", "DELETE")
    }

    /// Opens a catalog file only to check it, as a recovery does.
    pub fn check_file(path: &Path) -> rusqlite::Result<Generation> {
        let db = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        check_integrity(&db)?;
        generation(&db)
    }

    /// The stable id of the server with this identity, recording its address.
    pub fn server_id(&mut self, uuid: &str, addr: &str) -> rusqlite::Result<ServerId> {
        self.db.execute(
            "INSERT INTO servers (uuid, addr) VALUES (?1, ?2)
             ON CONFLICT (uuid) DO UPDATE SET addr = excluded.addr",
            params![uuid, addr],
        )?;
        self.db.query_row(
            "SELECT id FROM servers WHERE uuid = ?1",
            params![uuid],
            |row| row.get(0),
        )
    }

    /// Every server ever registered: id and last address.
    pub fn servers(&self) -> rusqlite::Result<Vec<(ServerId, String, String)>> {
        let mut stmt = self
            .db
            .prepare("SELECT id, uuid, addr FROM servers ORDER BY id")?;
        let rows = stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?;
        rows.collect()
    }

    /// The given version of a name, or its newest.
    pub fn find(
        &self,
        client: &str,
        name: &str,
        version: Option<u32>,
    ) -> rusqlite::Result<Option<FileRow>> {
        let sql = format!(
            "SELECT {FILE_COLUMNS} FROM files f WHERE f.client = ?1 AND f.name = ?2
             AND (?3 IS NULL OR f.version = ?3) ORDER BY f.version DESC LIMIT 1"
        );
        self.db
            .prepare_cached(&sql)?
            .query_row(params![client, name, version], file_row)
            .optional()
    }

    /// Every version of this client's names that uses one of the blobs
    /// `hashes`, by name and version.
    pub fn versions_of(&self, client: &str, hashes: &[BlobHash]) -> rusqlite::Result<Vec<FileRow>> {
        let sql = format!(
            "SELECT {FILE_COLUMNS} FROM files f WHERE f.client = ?1 AND EXISTS (
                SELECT 1 FROM parts p JOIN chunks c ON c.id = p.chunk
                JOIN blobs b ON b.id = c.blob
                WHERE p.client = f.client AND p.name = f.name AND p.version = f.version
                AND b.hash IN rarray(?2))
             ORDER BY f.name, f.version"
        );
        let wanted: Vec<rusqlite::types::Value> = hashes
            .iter()
            .map(|h| rusqlite::types::Value::Blob(h.0.to_vec()))
            .collect();
        let mut stmt = self.db.prepare_cached(&sql)?;
        let rows = stmt.query_map(params![client, Rc::new(wanted)], file_row)?;
        rows.collect()
    }

    /// Every version of a name, oldest first.
    pub fn versions(&self, client: &str, name: &str) -> rusqlite::Result<Vec<FileRow>> {
        let sql = format!(
            "SELECT {FILE_COLUMNS} FROM files f WHERE f.client = ?1 AND f.name = ?2
             ORDER BY f.version"
        );
        let mut stmt = self.db.prepare(&sql)?;
        let rows = stmt.query_map(params![client, name], file_row)?;
        rows.collect()
    }

    /// The newest version of every name starting with `prefix`, by name.
    pub fn latest(&self, client: &str, prefix: &str) -> rusqlite::Result<Vec<FileRow>> {
        let sql = format!(
            "SELECT {FILE_COLUMNS} FROM files f WHERE f.client = ?1
             AND substr(f.name, 1, length(?2)) = ?2
             AND f.version = (SELECT MAX(version) FROM files g
                              WHERE g.client = f.client AND g.name = f.name)
             ORDER BY f.name"
        );
        let mut stmt = self.db.prepare_cached(&sql)?;
        let rows = stmt.query_map(params![client, prefix], file_row)?;
        rows.collect()
    }

    /// A window of a folder's children (see `Message::Browse`): `limit`
    /// of them from the `offset`-th, and how many match in all.
    pub fn children(
        &self,
        client: &str,
        folder: &str,
        filter: &str,
        offset: u64,
        limit: u32,
    ) -> rusqlite::Result<(u64, Vec<ChildRow>)> {
        // Names under "a/b/" sort from it up to "a/b0" ('0' follows '/'),
        // so the primary key finds them.
        let below = folder.strip_suffix('/').map(|stem| format!("{stem}0"));
        let mut stmt = self.db.prepare_cached(
            "WITH newest AS (
                SELECT substr(f.name, ?4) AS rest, f.size, f.created_ms FROM files f
                WHERE f.client = ?1 AND f.name >= ?2 AND (?3 IS NULL OR f.name < ?3)
                AND f.version = (SELECT MAX(version) FROM files g
                                 WHERE g.client = f.client AND g.name = f.name)
             ), kids AS (
                SELECT CASE instr(rest, '/') WHEN 0 THEN rest
                       ELSE substr(rest, 1, instr(rest, '/')) END AS child,
                       size, created_ms FROM newest
             )
             SELECT child, COUNT(*), SUM(size), MAX(created_ms), COUNT(*) OVER () FROM kids
             WHERE instr(lower(rtrim(child, '/')), lower(?5)) > 0
             GROUP BY child
             ORDER BY substr(child, -1) = '/' DESC, child
             LIMIT ?6 OFFSET ?7",
        )?;
        let mut window = |offset: u64, limit: u32| -> rusqlite::Result<Vec<(u64, ChildRow)>> {
            let rows = stmt.query_map(
                params![
                    client,
                    folder,
                    below,
                    folder.chars().count() as i64 + 1,
                    filter,
                    i64::from(limit),
                    offset as i64
                ],
                |row| {
                    let child: String = row.get(0)?;
                    let name = format!("{folder}{child}");
                    let kid = match child.ends_with('/') {
                        true => ChildRow::Folder {
                            name,
                            files: row.get(1)?,
                            size: row.get(2)?,
                            newest_ms: row.get(3)?,
                        },
                        false => ChildRow::File(name),
                    };
                    Ok((row.get(4)?, kid))
                },
            )?;
            rows.collect()
        };
        let rows = window(offset, limit)?;
        if rows.is_empty() && offset > 0 {
            // Past the end: the first row still tells how many there are.
            let total = window(0, 1)?.first().map_or(0, |(total, _)| *total);
            return Ok((total, Vec::new()));
        }
        let total = rows.first().map_or(0, |(total, _)| *total);
        Ok((total, rows.into_iter().map(|(_, kid)| kid).collect()))
    }

    /// The newest version of each of `names` that has one, by name.
    pub fn newest_of(&self, client: &str, names: &[String]) -> rusqlite::Result<Vec<FileRow>> {
        let sql = format!(
            "SELECT {FILE_COLUMNS} FROM files f WHERE f.client = ?1
             AND f.name IN rarray(?2)
             AND f.version = (SELECT MAX(version) FROM files g
                              WHERE g.client = f.client AND g.name = f.name)
             ORDER BY f.name"
        );
        let wanted: Vec<rusqlite::types::Value> = names
            .iter()
            .map(|n| rusqlite::types::Value::Text(n.clone()))
            .collect();
        let mut stmt = self.db.prepare_cached(&sql)?;
        let rows = stmt.query_map(params![client, Rc::new(wanted)], file_row)?;
        rows.collect()
    }

    /// Rows changed on this connection since it opened: it grows with
    /// every write, so readers can tell when to look again.
    pub fn changes(&self) -> u64 {
        self.db.total_changes()
    }

    /// A version's chunks, in order, as a restore needs them.
    pub fn parts(&self, client: &str, name: &str, version: u32) -> rusqlite::Result<Vec<Part>> {
        let mut stmt = self.db.prepare_cached(
            "SELECT c.key, b.hash, b.size, c.plain_size, c.sealed
             FROM parts p JOIN chunks c ON c.id = p.chunk JOIN blobs b ON b.id = c.blob
             WHERE p.client = ?1 AND p.name = ?2 AND p.version = ?3 ORDER BY p.seq",
        )?;
        let rows = stmt.query_map(params![client, name, version], |row| {
            Ok(Part {
                id: ChunkId(row.get(0)?),
                hash: hash_column(row, 1)?,
                size: row.get::<_, i64>(2)? as u64,
                plain_size: row.get::<_, i64>(3)? as u64,
                sealed: row.get(4)?,
            })
        })?;
        rows.collect()
    }

    /// The distinct blobs a version is stored in, each with its holders.
    pub fn blobs_of(&self, client: &str, name: &str, version: u32) -> rusqlite::Result<Vec<Held>> {
        let mut stmt = self.db.prepare_cached(
            "SELECT b.hash, (SELECT group_concat(server) FROM holders h WHERE h.blob = b.id)
             FROM blobs b WHERE b.id IN (
                SELECT c.blob FROM parts p JOIN chunks c ON c.id = p.chunk
                WHERE p.client = ?1 AND p.name = ?2 AND p.version = ?3)",
        )?;
        let rows = stmt.query_map(params![client, name, version], |row| {
            Ok((hash_column(row, 0)?, server_list(row.get(1)?)))
        })?;
        rows.collect()
    }

    /// For each of `ids`, the blob this namespace keeps it as and its
    /// holders, if the namespace has it.
    pub fn chunks_of(&self, client: &str, ids: &[ChunkId]) -> rusqlite::Result<Vec<Option<Held>>> {
        let mut stmt = self.db.prepare_cached(
            "SELECT b.hash, (SELECT group_concat(server) FROM holders h WHERE h.blob = b.id)
             FROM chunks c JOIN blobs b ON b.id = c.blob WHERE c.client = ?1 AND c.key = ?2",
        )?;
        self.in_one_read(|| {
            ids.iter()
                .map(|id| {
                    stmt.query_row(params![client, id.0], |row| {
                        Ok((hash_column(row, 0)?, server_list(row.get(1)?)))
                    })
                    .optional()
                })
                .collect()
        })
    }

    /// Runs the lookups of a batch in one read transaction: one lock of
    /// the file for the batch, not two system calls per lookup.
    fn in_one_read<T>(&self, lookups: impl FnOnce() -> rusqlite::Result<T>) -> rusqlite::Result<T> {
        let read = self.db.unchecked_transaction()?;
        let found = lookups()?;
        read.commit()?;
        Ok(found)
    }

    /// For each of `hashes`, its size and holders if one of this client's
    /// chunks is stored as it: what a client may fetch.
    pub fn owned_blobs(
        &self,
        client: &str,
        hashes: &[BlobHash],
    ) -> rusqlite::Result<Vec<Option<SizeHeld>>> {
        let mut stmt = self.db.prepare_cached(
            "SELECT b.size, (SELECT group_concat(server) FROM holders h WHERE h.blob = b.id)
             FROM blobs b WHERE b.hash = ?2
             AND EXISTS (SELECT 1 FROM chunks c WHERE c.blob = b.id AND c.client = ?1)",
        )?;
        self.in_one_read(|| {
            hashes
                .iter()
                .map(|hash| {
                    stmt.query_row(params![client, hash.0], |row| {
                        Ok((row.get::<_, i64>(0)? as u64, server_list(row.get(1)?)))
                    })
                    .optional()
                })
                .collect()
        })
    }

    /// Records sealed chunks every one of `holders` has confirmed. A chunk
    /// the namespace already had now points at its new blob (an upload that
    /// healed a chunk short of copies); the old blob is garbage then.
    pub fn record_chunks(
        &mut self,
        client: &str,
        chunks: &[NewChunk],
        holders: &[ServerId],
    ) -> rusqlite::Result<()> {
        let tx = self.db.transaction()?;
        {
            let mut blob_id = tx.prepare_cached(
                "INSERT INTO blobs (hash, size) VALUES (?1, ?2)
                 ON CONFLICT (hash) DO UPDATE SET size = excluded.size RETURNING id",
            )?;
            let mut insert_chunk = tx.prepare_cached(
                "INSERT INTO chunks (client, key, blob, plain_size, sealed, created_ms)
                 VALUES (?1, ?2, ?3, ?4, 1, ?5)
                 ON CONFLICT (client, key) DO UPDATE
                 SET blob = excluded.blob, sealed = 1, created_ms = excluded.created_ms",
            )?;
            let mut insert_holder =
                tx.prepare_cached("INSERT OR IGNORE INTO holders (blob, server) VALUES (?1, ?2)")?;
            let now = now_ms() as i64;
            for chunk in chunks {
                let blob: i64 = blob_id
                    .query_row(params![chunk.hash.0, chunk.size as i64], |row| row.get(0))?;
                insert_chunk.execute(params![
                    client,
                    chunk.id.0,
                    blob,
                    chunk.plain_size as i64,
                    now
                ])?;
                for server in holders {
                    insert_holder.execute(params![blob, server])?;
                }
            }
        }
        tx.commit()
    }

    /// Records new versions made of chunks the namespace has, in one
    /// transaction. A name whose newest version already has this content
    /// gets no new version. `Err` names the first file with a chunk the
    /// namespace does not have (forgotten since the client asked).
    pub fn commit(
        &mut self,
        client: &str,
        versions: &[NewVersion],
    ) -> rusqlite::Result<Result<Vec<Recorded>, String>> {
        let tx = self.db.transaction()?;
        let mut recorded = Vec::with_capacity(versions.len());
        {
            // Prepared once per connection: a batch runs them thousands of times.
            let mut newest = tx.prepare_cached(
                "SELECT version, content, meta FROM files WHERE client = ?1 AND name = ?2
                 ORDER BY version DESC LIMIT 1",
            )?;
            let mut last_ever = tx
                .prepare_cached("SELECT last_version FROM names WHERE client = ?1 AND name = ?2")?;
            let mut chunk_row =
                tx.prepare_cached("SELECT id FROM chunks WHERE client = ?1 AND key = ?2")?;
            let mut insert_file = tx.prepare_cached(
                "INSERT INTO files (client, name, version, size, content, meta, created_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?;
            let mut insert_part = tx.prepare_cached(
                "INSERT INTO parts (client, name, version, seq, chunk) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            let mut record_name = tx.prepare_cached(
                "INSERT INTO names (client, name, last_version) VALUES (?1, ?2, ?3)
                 ON CONFLICT (client, name) DO UPDATE
                 SET last_version = MAX(last_version, excluded.last_version)",
            )?;
            // A used chunk needs no grace any more: once no version uses
            // it, it goes at once.
            let mut mark_used =
                tx.prepare_cached("UPDATE chunks SET created_ms = 0 WHERE id = ?1")?;
            for new in versions {
                let content = content_digest(&new.chunks);
                let meta = encode(&new.meta)?;
                let newest: Option<(u32, [u8; 32], Option<Vec<u8>>)> = newest
                    .query_row(params![client, new.name], |row| {
                        Ok((row.get(0)?, row.get(1)?, row.get(2)?))
                    })
                    .optional()?;
                // The same bytes and the same type, mode, time and owner.
                if let Some((version, newest, newest_meta)) = &newest
                    && *newest == content.0
                    && newest_meta.as_ref() == Some(&meta)
                {
                    recorded.push(Recorded::Unchanged(*version));
                    continue;
                }
                let mut rows = Vec::with_capacity(new.chunks.len());
                for id in &new.chunks {
                    let row: Option<i64> = chunk_row
                        .query_row(params![client, id.0], |row| row.get(0))
                        .optional()?;
                    match row {
                        Some(row) => rows.push(row),
                        None => return Ok(Err(new.name.clone())),
                    }
                }
                let last: Option<u32> = last_ever
                    .query_row(params![client, new.name], |row| row.get(0))
                    .optional()?;
                let version = last.max(newest.map(|n| n.0)).unwrap_or(0) + 1;
                insert_file.execute(params![
                    client,
                    new.name,
                    version,
                    new.size as i64,
                    content.0,
                    meta,
                    now_ms() as i64
                ])?;
                for (seq, chunk) in rows.into_iter().enumerate() {
                    insert_part.execute(params![client, new.name, version, seq as i64, chunk])?;
                    mark_used.execute(params![chunk])?;
                }
                record_name.execute(params![client, new.name, version])?;
                recorded.push(Recorded::New(version));
            }
        }
        if recorded.iter().any(|r| matches!(r, Recorded::New(_))) {
            bump_generation(&tx)?;
        }
        tx.commit()?;
        Ok(Ok(recorded))
    }

    /// The namespace's wrapped master keys, oldest first.
    /// Records a credential issued to `row.client`.
    pub fn add_credential(&mut self, row: &CredentialRow) -> rusqlite::Result<()> {
        let tx = self.db.transaction()?;
        tx.execute(
            "INSERT INTO credentials (id, client, created_ms, expires_ms, revoked_ms)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                row.id,
                row.client,
                row.created_ms,
                row.expires_ms,
                row.revoked_ms
            ],
        )?;
        bump_generation(&tx)?;
        tx.commit()
    }

    /// Every credential issued, oldest first.
    pub fn credentials(&self) -> rusqlite::Result<Vec<CredentialRow>> {
        let mut stmt = self
            .db
            .prepare(&format!("{SELECT_CREDENTIALS} ORDER BY created_ms, client"))?;
        stmt.query_map([], credential_row)?.collect()
    }

    /// The credential known by `id`, if it was issued here.
    pub fn credential(&self, id: &str) -> rusqlite::Result<Option<CredentialRow>> {
        self.db
            .query_row(
                &format!("{SELECT_CREDENTIALS} WHERE id = ?1"),
                params![id],
                credential_row,
            )
            .optional()
    }

    /// Revokes every live credential of `client`; returns how many.
    pub fn revoke_credentials(&mut self, client: &str, now_ms: u64) -> rusqlite::Result<usize> {
        let tx = self.db.transaction()?;
        let revoked = tx.execute(
            "UPDATE credentials SET revoked_ms = ?2 WHERE client = ?1 AND revoked_ms IS NULL",
            params![client, now_ms],
        )?;
        bump_generation(&tx)?;
        tx.commit()?;
        Ok(revoked)
    }

    pub fn keys(&self, client: &str) -> rusqlite::Result<Vec<WrappedKey>> {
        let mut stmt = self
            .db
            .prepare("SELECT wrapped FROM keys WHERE client = ?1")?;
        let rows = stmt.query_map(params![client], |row| {
            let bytes: Vec<u8> = row.get(0)?;
            decode(0, &bytes)
        })?;
        let mut keys = rows.collect::<rusqlite::Result<Vec<WrappedKey>>>()?;
        keys.sort_by_key(|k| k.created_ms);
        Ok(keys)
    }

    /// Keeps one more wrapping of the namespace's master key; with `first`,
    /// only if it has none. Returns whether it was kept.
    pub fn add_key(
        &mut self,
        client: &str,
        key: &WrappedKey,
        first: bool,
    ) -> rusqlite::Result<bool> {
        let bytes = encode(key)?;
        let tx = self.db.transaction()?;
        let has: bool = tx.query_row(
            "SELECT EXISTS (SELECT 1 FROM keys WHERE client = ?1)",
            params![client],
            |row| row.get(0),
        )?;
        if first && has {
            return Ok(false);
        }
        tx.execute(
            "INSERT OR REPLACE INTO keys (client, id, wrapped) VALUES (?1, ?2, ?3)",
            params![client, key.id(), bytes],
        )?;
        bump_generation(&tx)?;
        tx.commit()?;
        Ok(true)
    }

    /// Forgets one wrapping. `Err` says why not: no such key, or it is the
    /// last (without it nothing could be restored).
    pub fn remove_key(&mut self, client: &str, id: &str) -> rusqlite::Result<Result<(), String>> {
        let tx = self.db.transaction()?;
        let count: i64 = tx.query_row(
            "SELECT COUNT(*) FROM keys WHERE client = ?1",
            params![client],
            |row| row.get(0),
        )?;
        let exists: bool = tx.query_row(
            "SELECT EXISTS (SELECT 1 FROM keys WHERE client = ?1 AND id = ?2)",
            params![client, id],
            |row| row.get(0),
        )?;
        if !exists {
            return Ok(Err(format!("no key {id}; `arca key list` shows them")));
        }
        if count == 1 {
            return Ok(Err(format!(
                "key {id} is the last one: without it nothing could be restored; \
                 add another first (`arca key add`)"
            )));
        }
        tx.execute(
            "DELETE FROM keys WHERE client = ?1 AND id = ?2",
            params![client, id],
        )?;
        bump_generation(&tx)?;
        tx.commit()?;
        Ok(Ok(()))
    }

    /// How many changes to names and versions this catalog has recorded; a
    /// snapshot carries it, so a catalog older than a snapshot shows.
    pub fn generation(&self) -> rusqlite::Result<Generation> {
        generation(&self.db)
    }

    /// Records snapshot tokens of histories this catalog is not part of.
    pub fn supersede(&mut self, tokens: &[[u8; 32]]) -> rusqlite::Result<()> {
        let tx = self.db.transaction()?;
        for token in tokens {
            tx.execute(
                "INSERT OR IGNORE INTO superseded (token) VALUES (?1)",
                params![token],
            )?;
        }
        tx.commit()
    }

    /// Whether a recovery chose against the history with this token.
    pub fn is_superseded(&self, token: &[u8; 32]) -> rusqlite::Result<bool> {
        self.db.query_row(
            "SELECT EXISTS (SELECT 1 FROM superseded WHERE token = ?1)",
            params![token],
            |row| row.get(0),
        )
    }

    /// The token this catalog recorded at generation `number`, if it got there.
    pub fn token_at(&self, number: u64) -> rusqlite::Result<Option<[u8; 32]>> {
        self.db
            .query_row(
                "SELECT token FROM history WHERE generation = ?1",
                params![number],
                |row| row.get(0),
            )
            .optional()
    }

    pub fn holders(&self, hash: &BlobHash) -> rusqlite::Result<Vec<ServerId>> {
        let mut stmt = self.db.prepare_cached(
            "SELECT h.server FROM holders h JOIN blobs b ON b.id = h.blob
             WHERE b.hash = ?1 ORDER BY h.server",
        )?;
        let rows = stmt.query_map(params![hash.0], |row| row.get(0))?;
        rows.collect()
    }

    /// The holders of each of `hashes`, in their order.
    pub fn holders_of(&self, hashes: &[BlobHash]) -> rusqlite::Result<Vec<Vec<ServerId>>> {
        self.in_one_read(|| hashes.iter().map(|h| self.holders(h)).collect())
    }

    /// Counts a copy of a content the catalog knows.
    pub fn add_holder(&mut self, hash: &BlobHash, server: ServerId) -> rusqlite::Result<()> {
        self.db.execute(
            "INSERT OR IGNORE INTO holders (blob, server)
             SELECT id, ?2 FROM blobs WHERE hash = ?1",
            params![hash.0, server],
        )?;
        Ok(())
    }

    /// Every blob the catalog records on one server.
    pub fn held_by(&self, server: ServerId) -> rusqlite::Result<Vec<BlobHash>> {
        let mut stmt = self.db.prepare(
            "SELECT b.hash FROM holders h JOIN blobs b ON b.id = h.blob WHERE h.server = ?1",
        )?;
        let rows = stmt.query_map(params![server], |row| hash_column(row, 0))?;
        rows.collect()
    }

    /// Up to `limit` blobs `from` holds and `to` does not, each with its
    /// size and holders: what could move from one to the other.
    pub fn movable(
        &self,
        from: ServerId,
        to: ServerId,
        limit: usize,
    ) -> rusqlite::Result<Vec<(BlobHash, u64, Vec<ServerId>)>> {
        let mut stmt = self.db.prepare_cached(
            "SELECT b.hash, b.size, (SELECT group_concat(server) FROM holders a WHERE a.blob = b.id)
             FROM holders h JOIN blobs b ON b.id = h.blob
             WHERE h.server = ?1
             AND NOT EXISTS (SELECT 1 FROM holders t WHERE t.blob = b.id AND t.server = ?2)
             LIMIT ?3",
        )?;
        let rows = stmt.query_map(params![from, to, limit as i64], |row| {
            Ok((
                hash_column(row, 0)?,
                row.get::<_, i64>(1)? as u64,
                server_list(row.get(2)?),
            ))
        })?;
        rows.collect()
    }

    /// Every blob some chunk is stored as: its size and its holders.
    pub fn referenced(&self) -> rusqlite::Result<Vec<(BlobHash, u64, Vec<ServerId>)>> {
        let mut stmt = self.db.prepare(
            "SELECT b.hash, b.size, h.server FROM blobs b
             LEFT JOIN holders h ON h.blob = b.id
             WHERE EXISTS (SELECT 1 FROM chunks c WHERE c.blob = b.id)
             ORDER BY b.id",
        )?;
        let mut rows = stmt.query([])?;
        let mut out: Vec<(BlobHash, u64, Vec<ServerId>)> = Vec::new();
        while let Some(row) = rows.next()? {
            let hash = hash_column(row, 0)?;
            let size = row.get::<_, i64>(1)? as u64;
            let server: Option<ServerId> = row.get(2)?;
            match out.last_mut() {
                Some(last) if last.0 == hash => last.2.extend(server),
                _ => out.push((hash, size, server.into_iter().collect())),
            }
        }
        Ok(out)
    }

    /// Stops counting a copy; a content nothing refers to any more is forgotten.
    pub fn remove_holder(&mut self, hash: &BlobHash, server: ServerId) -> rusqlite::Result<()> {
        self.forget_copy(Copies::Holders, hash, server)
    }

    /// Stops counting a copy that failed its hash and records it as
    /// damaged: its server keeps it aside until a good copy exists.
    pub fn set_aside(&mut self, hash: &BlobHash, server: ServerId) -> rusqlite::Result<()> {
        let tx = self.db.transaction()?;
        delete_copy(&tx, Copies::Holders, hash, server)?;
        tx.execute(
            "INSERT OR IGNORE INTO damaged (blob, server)
             SELECT id, ?2 FROM blobs WHERE hash = ?1",
            params![hash.0, server],
        )?;
        tx.commit()
    }

    /// Every damaged copy set aside: its blob, its server, and whether any
    /// chunk is still stored as that blob.
    pub fn damaged(&self) -> rusqlite::Result<Vec<(BlobHash, ServerId, bool)>> {
        let mut stmt = self.db.prepare(
            "SELECT b.hash, d.server, EXISTS (SELECT 1 FROM chunks c WHERE c.blob = d.blob)
             FROM damaged d JOIN blobs b ON b.id = d.blob ORDER BY d.blob",
        )?;
        let rows = stmt.query_map([], |row| {
            Ok((hash_column(row, 0)?, row.get(1)?, row.get(2)?))
        })?;
        rows.collect()
    }

    /// The servers holding a damaged copy of each of `hashes`, in their order.
    pub fn damaged_of(&self, hashes: &[BlobHash]) -> rusqlite::Result<Vec<Vec<ServerId>>> {
        let mut stmt = self.db.prepare_cached(
            "SELECT d.server FROM damaged d JOIN blobs b ON b.id = d.blob
             WHERE b.hash = ?1 ORDER BY d.server",
        )?;
        self.in_one_read(|| {
            hashes
                .iter()
                .map(|h| stmt.query_map(params![h.0], |row| row.get(0))?.collect())
                .collect()
        })
    }

    /// Forgets a damaged copy its server has deleted.
    pub fn drop_damaged(&mut self, hash: &BlobHash, server: ServerId) -> rusqlite::Result<()> {
        self.forget_copy(Copies::Damaged, hash, server)
    }

    /// Forgets one copy, and the content too once nothing refers to it.
    fn forget_copy(
        &mut self,
        copies: Copies,
        hash: &BlobHash,
        server: ServerId,
    ) -> rusqlite::Result<()> {
        let tx = self.db.transaction()?;
        delete_copy(&tx, copies, hash, server)?;
        tx.execute(FORGET_UNUSED_BLOB, params![hash.0])?;
        tx.commit()
    }

    /// Removes one version of a name, or all of them; returns the versions
    /// removed. Their chunks stay until nothing uses them (see
    /// [`Catalog::forget_unused_chunks`]).
    pub fn remove(
        &mut self,
        client: &str,
        name: &str,
        version: Option<u32>,
    ) -> rusqlite::Result<Vec<u32>> {
        let tx = self.db.transaction()?;
        let removed = {
            let mut stmt = tx.prepare(
                "DELETE FROM files WHERE client = ?1 AND name = ?2
                 AND (?3 IS NULL OR version = ?3) RETURNING version",
            )?;
            let rows = stmt.query_map(params![client, name, version], |row| row.get(0))?;
            let mut removed = rows.collect::<rusqlite::Result<Vec<u32>>>()?;
            removed.sort_unstable();
            removed
        };
        tx.execute(
            "DELETE FROM parts WHERE client = ?1 AND name = ?2 AND (?3 IS NULL OR version = ?3)",
            params![client, name, version],
        )?;
        // Removing nothing changes nothing: no new generation, no snapshot.
        if !removed.is_empty() {
            bump_generation(&tx)?;
        }
        tx.commit()?;
        Ok(removed)
    }

    /// Forgets chunks no version uses that were stored before `before_ms`
    /// or were used once (a chunk stored later may be about to be used by
    /// the upload that stored it); returns how many.
    pub fn forget_unused_chunks(&mut self, before_ms: u64) -> rusqlite::Result<usize> {
        self.db.execute(
            "DELETE FROM chunks WHERE created_ms < ?1
             AND NOT EXISTS (SELECT 1 FROM parts p WHERE p.chunk = chunks.id)",
            params![before_ms as i64],
        )
    }

    /// Whether any chunk is stored as this blob.
    pub fn is_referenced(&self, hash: &BlobHash) -> rusqlite::Result<bool> {
        self.db.query_row(
            "SELECT EXISTS (SELECT 1 FROM chunks c JOIN blobs b ON b.id = c.blob
                            WHERE b.hash = ?1)",
            params![hash.0],
            |row| row.get(0),
        )
    }

    /// Copies of blobs that no chunk is stored as any more.
    pub fn unreferenced(&self) -> rusqlite::Result<Vec<(BlobHash, ServerId)>> {
        let mut stmt = self.db.prepare(
            "SELECT b.hash, h.server FROM holders h JOIN blobs b ON b.id = h.blob
             WHERE NOT EXISTS (SELECT 1 FROM chunks c WHERE c.blob = h.blob)",
        )?;
        let rows = stmt.query_map([], |row| Ok((hash_column(row, 0)?, row.get(1)?)))?;
        rows.collect()
    }
}

/// Server ids from SQLite's `group_concat`.
fn server_list(list: Option<String>) -> Vec<ServerId> {
    list.iter()
        .flat_map(|list| list.split(','))
        .filter_map(|id| id.parse().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A chunk of `client` whose stored blob is `hash`, held by `holders`.
    fn chunk(c: &mut Catalog, client: &str, hash: &BlobHash, holders: &[ServerId]) -> ChunkId {
        let id = ChunkId(*blake3::hash(&[client.as_bytes(), &hash.0].concat()).as_bytes());
        let new = NewChunk {
            id,
            hash: *hash,
            size: 1,
            plain_size: 1,
        };
        c.record_chunks(client, &[new], holders).unwrap();
        id
    }

    /// Commits one version of one chunk, as a single small file's backup does.
    fn commit(
        c: &mut Catalog,
        client: &str,
        name: &str,
        size: u64,
        hash: &BlobHash,
        holders: &[ServerId],
    ) -> rusqlite::Result<u32> {
        let id = chunk(c, client, hash, holders);
        let new = NewVersion {
            name: name.into(),
            size,
            meta: file_meta(),
            chunks: vec![id],
        };
        match c.commit(client, &[new])?.unwrap()[0] {
            Recorded::New(v) | Recorded::Unchanged(v) => Ok(v),
        }
    }

    fn file_meta() -> FileMeta {
        FileMeta {
            kind: arca_shared::meta::FileKind::File,
            mode: 0o644,
            mtime_ns: 7,
            owner: None,
        }
    }

    fn catalog() -> (tempfile::TempDir, Catalog) {
        let dir = tempfile::tempdir().unwrap();
        let catalog = Catalog::open(&dir.path().join("catalog.db")).unwrap();
        (dir, catalog)
    }

    fn content(c: &Catalog, client: &str, hash: &BlobHash) -> BlobHash {
        let id = ChunkId(*blake3::hash(&[client.as_bytes(), &hash.0].concat()).as_bytes());
        assert!(c.chunks_of(client, &[id]).unwrap()[0].is_some());
        content_digest(&[id])
    }

    #[test]
    fn versions_count_up_per_client_and_name() {
        let (_dir, mut c) = catalog();
        let (a, b) = (BlobHash::of(b"a"), BlobHash::of(b"b"));
        assert_eq!(commit(&mut c, "laptop", "x", 1, &a, &[1, 2]).unwrap(), 1);
        assert_eq!(commit(&mut c, "laptop", "x", 1, &b, &[2, 3]).unwrap(), 2);
        assert_eq!(commit(&mut c, "desktop", "x", 1, &a, &[1, 2]).unwrap(), 1);
        let b_content = content(&c, "laptop", &b);
        let a_content = content(&c, "laptop", &a);
        assert_eq!(
            c.find("laptop", "x", None).unwrap().unwrap().hash,
            b_content
        );
        assert_eq!(
            c.find("laptop", "x", Some(1)).unwrap().unwrap().hash,
            a_content
        );
        assert_eq!(c.find("laptop", "x", Some(3)).unwrap(), None);
        assert_eq!(c.versions("laptop", "x").unwrap().len(), 2);
        assert_eq!(c.blobs_of("laptop", "x", 2).unwrap(), [(b, vec![2, 3])]);
        assert_eq!(c.parts("laptop", "x", 1).unwrap()[0].hash, a);
        assert_eq!(c.holders(&a).unwrap(), [1, 2]);
    }

    #[test]
    fn chunks_never_reach_across_namespaces() {
        let (_dir, mut c) = catalog();
        let a = BlobHash::of(b"a");
        let id = chunk(&mut c, "laptop", &a, &[1, 2]);
        assert!(c.chunks_of("laptop", &[id]).unwrap()[0].is_some());
        assert!(c.chunks_of("desktop", &[id]).unwrap()[0].is_none());
        assert!(c.owned_blobs("laptop", &[a]).unwrap()[0].is_some());
        assert!(c.owned_blobs("desktop", &[a]).unwrap()[0].is_none());
        let stolen = NewVersion {
            name: "x".into(),
            size: 1,
            meta: file_meta(),
            chunks: vec![id],
        };
        assert_eq!(
            c.commit("desktop", &[stolen]).unwrap(),
            Err("x".to_string())
        );
    }

    #[test]
    fn unused_chunks_are_forgotten_after_their_grace_and_then_their_blobs_are_garbage() {
        let (_dir, mut c) = catalog();
        let (a, b) = (BlobHash::of(b"a"), BlobHash::of(b"b"));
        commit(&mut c, "me", "x", 1, &a, &[1]).unwrap();
        chunk(&mut c, "me", &b, &[1]);
        assert_eq!(c.forget_unused_chunks(now_ms() - 60_000).unwrap(), 0);
        assert!(c.unreferenced().unwrap().is_empty());
        assert_eq!(c.forget_unused_chunks(now_ms() + 1).unwrap(), 1);
        assert_eq!(c.unreferenced().unwrap(), [(b, 1)]);
        c.remove("me", "x", None).unwrap();
        c.forget_unused_chunks(now_ms() + 1).unwrap();
        assert_eq!(c.unreferenced().unwrap().len(), 2);
    }

    #[test]
    fn keys_are_kept_per_namespace_and_the_last_one_stays() {
        let (_dir, mut c) = catalog();
        let master = arca_shared::vault::MasterKey::fresh().unwrap();
        let one = master.wrap("me", b"one").unwrap();
        let two = master.wrap("me", b"two").unwrap();
        assert!(c.add_key("me", &one, true).unwrap());
        assert!(
            !c.add_key("me", &two, true).unwrap(),
            "a second first key is refused"
        );
        assert!(c.add_key("me", &two, false).unwrap());
        assert_eq!(c.keys("me").unwrap().len(), 2);
        assert!(c.keys("other").unwrap().is_empty());
        assert!(c.remove_key("me", "nope").unwrap().is_err());
        c.remove_key("me", &one.id()).unwrap().unwrap();
        assert!(
            c.remove_key("me", &two.id()).unwrap().is_err(),
            "the last key stays"
        );
        assert_eq!(c.keys("me").unwrap(), [two]);
    }

    #[test]
    fn version_numbers_never_repeat_after_removal() {
        let (_dir, mut c) = catalog();
        let (a, b) = (BlobHash::of(b"a"), BlobHash::of(b"b"));
        assert_eq!(commit(&mut c, "me", "x", 1, &a, &[1]).unwrap(), 1);
        assert_eq!(commit(&mut c, "me", "x", 1, &b, &[1]).unwrap(), 2);
        assert_eq!(c.remove("me", "x", None).unwrap(), [1, 2]);
        assert_eq!(commit(&mut c, "me", "x", 1, &a, &[1]).unwrap(), 3);
        // The newest version's own content again: no new version.
        assert_eq!(commit(&mut c, "me", "x", 1, &a, &[2]).unwrap(), 3);
        assert_eq!(c.holders(&a).unwrap(), [1, 2]);
    }

    #[test]
    fn each_change_has_a_token_and_other_histories_can_be_set_aside() {
        let (_dir, mut c) = catalog();
        assert_eq!(c.generation().unwrap().number, 0);
        commit(&mut c, "me", "x", 1, &BlobHash::of(b"a"), &[1]).unwrap();
        c.remove("me", "x", None).unwrap();
        let now = c.generation().unwrap();
        assert_eq!(now.number, 2);
        assert_eq!(c.token_at(2).unwrap(), Some(now.token));
        assert_ne!(c.token_at(1).unwrap(), Some(now.token));
        assert_eq!(c.token_at(3).unwrap(), None);
        let other = [9u8; 32];
        assert!(!c.is_superseded(&other).unwrap());
        c.supersede(&[other]).unwrap();
        assert!(c.is_superseded(&other).unwrap());
    }

    #[test]
    fn removal_leaves_shared_blobs_referenced() {
        let (_dir, mut c) = catalog();
        let a = BlobHash::of(b"a");
        commit(&mut c, "me", "one", 1, &a, &[1, 2]).unwrap();
        commit(&mut c, "me", "two", 1, &a, &[1, 2]).unwrap();
        assert_eq!(c.remove("me", "one", None).unwrap(), [1]);
        assert!(c.unreferenced().unwrap().is_empty());
        assert_eq!(c.remove("me", "two", Some(1)).unwrap(), [1]);
        assert!(c.unreferenced().unwrap().is_empty(), "within the grace");
        c.forget_unused_chunks(now_ms() + 1).unwrap();
        assert_eq!(c.unreferenced().unwrap(), [(a, 1), (a, 2)]);
    }

    #[test]
    fn latest_lists_newest_versions_under_a_prefix() {
        let (_dir, mut c) = catalog();
        let (h, g) = (BlobHash::of(b"h"), BlobHash::of(b"g"));
        commit(&mut c, "me", "photos/a", 1, &g, &[1]).unwrap();
        commit(&mut c, "me", "photos/a", 1, &h, &[1]).unwrap();
        commit(&mut c, "me", "photos/b", 1, &h, &[1]).unwrap();
        commit(&mut c, "me", "notes", 1, &h, &[1]).unwrap();
        let rows = c.latest("me", "photos/").unwrap();
        let got: Vec<_> = rows.iter().map(|r| (r.name.as_str(), r.version)).collect();
        assert_eq!(got, [("photos/a", 2), ("photos/b", 1)]);
        assert_eq!(c.latest("me", "").unwrap().len(), 3);
    }

    #[test]
    fn referenced_blobs_list_their_holders() {
        let (_dir, mut c) = catalog();
        let (a, b) = (BlobHash::of(b"a"), BlobHash::of(b"b"));
        commit(&mut c, "me", "one", 1, &a, &[1, 2]).unwrap();
        commit(&mut c, "me", "two", 1, &a, &[3]).unwrap();
        commit(&mut c, "me", "three", 1, &b, &[]).unwrap();
        let mut got = c.referenced().unwrap();
        got.sort();
        let mut want = vec![(a, 1, vec![1, 2, 3]), (b, 1, vec![])];
        want.sort();
        assert_eq!(got, want);
        c.add_holder(&b, 2).unwrap();
        assert_eq!(c.held_by(2).unwrap().len(), 2);
    }

    #[test]
    fn servers_keep_their_ids() {
        let (_dir, mut c) = catalog();
        let one = c.server_id("uuid-1", "127.0.0.1:1").unwrap();
        let two = c.server_id("uuid-2", "127.0.0.1:2").unwrap();
        assert_ne!(one, two);
        assert_eq!(c.server_id("uuid-1", "127.0.0.1:9").unwrap(), one);
        assert_eq!(c.servers().unwrap()[0].2, "127.0.0.1:9");
    }

    #[test]
    fn a_content_with_no_name_and_no_copy_is_forgotten() {
        let (_dir, mut c) = catalog();
        let a = BlobHash::of(b"a");
        commit(&mut c, "me", "one", 1, &a, &[1, 2]).unwrap();
        c.remove_holder(&a, 1).unwrap();
        assert_eq!(c.holders(&a).unwrap(), [2]);
        c.remove("me", "one", None).unwrap();
        c.forget_unused_chunks(now_ms() + 1).unwrap();
        c.remove_holder(&a, 2).unwrap();
        let blobs: i64 =
            c.db.query_row("SELECT COUNT(*) FROM blobs", [], |row| row.get(0))
                .unwrap();
        assert_eq!(blobs, 0);
    }

    #[test]
    fn a_format_1_catalog_is_carried_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("catalog.db");
        let (a, b) = (BlobHash::of(b"a"), BlobHash::of(b"b"));
        {
            let old = Connection::open(&path).unwrap();
            old.execute_batch(
                "CREATE TABLE servers (id INTEGER PRIMARY KEY AUTOINCREMENT,
                     uuid TEXT NOT NULL UNIQUE, addr TEXT NOT NULL);
                 CREATE TABLE files (client TEXT NOT NULL, name TEXT NOT NULL,
                     version INTEGER NOT NULL, size INTEGER NOT NULL, hash BLOB NOT NULL,
                     created_ms INTEGER NOT NULL, PRIMARY KEY (client, name, version));
                 CREATE INDEX files_by_hash ON files (hash);
                 CREATE TABLE holders (hash BLOB NOT NULL, server INTEGER NOT NULL,
                     PRIMARY KEY (hash, server));
                 CREATE INDEX holders_by_server ON holders (server);",
            )
            .unwrap();
            for (name, version, hash) in [("x", 1, &a), ("x", 2, &b), ("y", 1, &a)] {
                old.execute(
                    "INSERT INTO files VALUES ('me', ?1, ?2, 5, ?3, 7)",
                    params![name, version, hash.0],
                )
                .unwrap();
            }
            for (hash, server) in [(&a, 1), (&a, 2), (&b, 2)] {
                old.execute(
                    "INSERT INTO holders VALUES (?1, ?2)",
                    params![hash.0, server],
                )
                .unwrap();
            }
        }
        let mut c = Catalog::open(&path).unwrap();
        let x = c.versions("me", "x").unwrap();
        assert_eq!((x[1].version, x[1].size, x[1].hash), (2, 5, b));
        assert!(x[1].plain, "carried over as one unsealed chunk");
        let parts = c.parts("me", "x", 2).unwrap();
        assert_eq!((parts.len(), parts[0].hash, parts[0].sealed), (1, b, false));
        assert_eq!(c.holders(&a).unwrap(), [1, 2]);
        assert_eq!(c.latest("me", "").unwrap().len(), 2);
        assert_eq!(commit(&mut c, "me", "x", 5, &a, &[1]).unwrap(), 3);
        assert!(!c.find("me", "x", None).unwrap().unwrap().plain);
        drop(c);
        // Opening again finds the current format and changes nothing.
        let c = Catalog::open(&path).unwrap();
        assert_eq!(c.versions("me", "x").unwrap().len(), 3);
    }
}
