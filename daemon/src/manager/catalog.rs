//! The catalog: names, versions, hashes and which servers hold each blob, in
//! SQLite (WAL, synchronous FULL) so that it survives a crash.

use std::path::Path;

use arca_shared::BlobHash;
use arca_shared::protocol::ServerId;
use arca_shared::ticket::now_ms;
use rusqlite::{Connection, OptionalExtension, params};

pub struct Catalog {
    db: Connection,
}

/// A version to record: its name, content and the servers holding it.
#[derive(Debug, Clone, PartialEq)]
pub struct NewVersion {
    pub name: String,
    pub size: u64,
    pub hash: BlobHash,
    pub holders: Vec<ServerId>,
}

/// One version of one name, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct FileRow {
    pub name: String,
    pub version: u32,
    pub size: u64,
    pub hash: BlobHash,
    pub created_ms: u64,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS servers (
    id   INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid TEXT NOT NULL UNIQUE,
    addr TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS files (
    client     TEXT    NOT NULL,
    name       TEXT    NOT NULL,
    version    INTEGER NOT NULL,
    size       INTEGER NOT NULL,
    hash       BLOB    NOT NULL,
    created_ms INTEGER NOT NULL,
    PRIMARY KEY (client, name, version)
);
CREATE INDEX IF NOT EXISTS files_by_hash ON files (hash);
CREATE TABLE IF NOT EXISTS holders (
    hash   BLOB    NOT NULL,
    server INTEGER NOT NULL,
    PRIMARY KEY (hash, server)
);
CREATE INDEX IF NOT EXISTS holders_by_server ON holders (server);
";

const FILE_COLUMNS: &str = "name, version, size, hash, created_ms";

fn file_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<FileRow> {
    Ok(FileRow {
        name: row.get(0)?,
        version: row.get(1)?,
        size: row.get::<_, i64>(2)? as u64,
        hash: hash_column(row, 3)?,
        created_ms: row.get::<_, i64>(4)? as u64,
    })
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
        db.busy_timeout(std::time::Duration::from_secs(5))?;
        db.execute_batch(SCHEMA)?;
        Ok(Self { db })
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
            "SELECT {FILE_COLUMNS} FROM files WHERE client = ?1 AND name = ?2
             AND (?3 IS NULL OR version = ?3) ORDER BY version DESC LIMIT 1"
        );
        self.db
            .prepare_cached(&sql)?
            .query_row(params![client, name, version], file_row)
            .optional()
    }

    /// Every version of a name, oldest first.
    pub fn versions(&self, client: &str, name: &str) -> rusqlite::Result<Vec<FileRow>> {
        let sql = format!(
            "SELECT {FILE_COLUMNS} FROM files WHERE client = ?1 AND name = ?2 ORDER BY version"
        );
        let mut stmt = self.db.prepare(&sql)?;
        let rows = stmt.query_map(params![client, name], file_row)?;
        rows.collect()
    }

    /// The newest version of every name starting with `prefix`, by name.
    pub fn latest(&self, client: &str, prefix: &str) -> rusqlite::Result<Vec<FileRow>> {
        let sql = format!(
            "SELECT {FILE_COLUMNS} FROM files f WHERE client = ?1
             AND substr(name, 1, length(?2)) = ?2
             AND version = (SELECT MAX(version) FROM files g
                            WHERE g.client = f.client AND g.name = f.name)
             ORDER BY name"
        );
        let mut stmt = self.db.prepare(&sql)?;
        let rows = stmt.query_map(params![client, prefix], file_row)?;
        rows.collect()
    }

    /// Records new versions, each of whose blob every one of its holders
    /// has confirmed, in one transaction; returns their version numbers.
    pub fn commit(&mut self, client: &str, versions: &[NewVersion]) -> rusqlite::Result<Vec<u32>> {
        let tx = self.db.transaction()?;
        let mut numbers = Vec::with_capacity(versions.len());
        for new in versions {
            let version: u32 = tx.query_row(
                "SELECT COALESCE(MAX(version), 0) + 1 FROM files WHERE client = ?1 AND name = ?2",
                params![client, new.name],
                |row| row.get(0),
            )?;
            tx.execute(
                "INSERT INTO files (client, name, version, size, hash, created_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    client,
                    new.name,
                    version,
                    new.size as i64,
                    new.hash.0,
                    now_ms() as i64
                ],
            )?;
            for server in &new.holders {
                tx.execute(
                    "INSERT OR IGNORE INTO holders (hash, server) VALUES (?1, ?2)",
                    params![new.hash.0, server],
                )?;
            }
            numbers.push(version);
        }
        tx.commit()?;
        Ok(numbers)
    }

    pub fn holders(&self, hash: &BlobHash) -> rusqlite::Result<Vec<ServerId>> {
        let mut stmt = self
            .db
            .prepare_cached("SELECT server FROM holders WHERE hash = ?1 ORDER BY server")?;
        let rows = stmt.query_map(params![hash.0], |row| row.get(0))?;
        rows.collect()
    }

    pub fn add_holder(&mut self, hash: &BlobHash, server: ServerId) -> rusqlite::Result<()> {
        self.db.execute(
            "INSERT OR IGNORE INTO holders (hash, server) VALUES (?1, ?2)",
            params![hash.0, server],
        )?;
        Ok(())
    }

    /// Every blob the catalog records on one server.
    pub fn held_by(&self, server: ServerId) -> rusqlite::Result<Vec<BlobHash>> {
        let mut stmt = self
            .db
            .prepare("SELECT hash FROM holders WHERE server = ?1")?;
        let rows = stmt.query_map(params![server], |row| hash_column(row, 0))?;
        rows.collect()
    }

    /// Every content some version references: its size and its holders.
    pub fn referenced(&self) -> rusqlite::Result<Vec<(BlobHash, u64, Vec<ServerId>)>> {
        let mut stmt = self.db.prepare(
            "SELECT f.hash, f.size, h.server FROM
                 (SELECT hash, MAX(size) AS size FROM files GROUP BY hash) f
             LEFT JOIN holders h ON h.hash = f.hash
             ORDER BY f.hash",
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

    pub fn remove_holder(&mut self, hash: &BlobHash, server: ServerId) -> rusqlite::Result<()> {
        self.db.execute(
            "DELETE FROM holders WHERE hash = ?1 AND server = ?2",
            params![hash.0, server],
        )?;
        Ok(())
    }

    /// Removes one version of a name, or all of them; returns the versions removed.
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
        tx.commit()?;
        Ok(removed)
    }

    /// Whether any version of any name has this content.
    pub fn is_referenced(&self, hash: &BlobHash) -> rusqlite::Result<bool> {
        self.db.query_row(
            "SELECT EXISTS (SELECT 1 FROM files WHERE hash = ?1)",
            params![hash.0],
            |row| row.get(0),
        )
    }

    /// Copies that no version of any name references any more.
    pub fn unreferenced(&self) -> rusqlite::Result<Vec<(BlobHash, ServerId)>> {
        let mut stmt = self.db.prepare(
            "SELECT hash, server FROM holders h
             WHERE NOT EXISTS (SELECT 1 FROM files f WHERE f.hash = h.hash)",
        )?;
        let rows = stmt.query_map([], |row| Ok((hash_column(row, 0)?, row.get(1)?)))?;
        rows.collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Commits one version, as a single-file backup does.
    fn commit(
        c: &mut Catalog,
        client: &str,
        name: &str,
        size: u64,
        hash: &BlobHash,
        holders: &[ServerId],
    ) -> rusqlite::Result<u32> {
        let new = NewVersion {
            name: name.into(),
            size,
            hash: *hash,
            holders: holders.to_vec(),
        };
        Ok(c.commit(client, &[new])?[0])
    }

    fn catalog() -> (tempfile::TempDir, Catalog) {
        let dir = tempfile::tempdir().unwrap();
        let catalog = Catalog::open(&dir.path().join("catalog.db")).unwrap();
        (dir, catalog)
    }

    #[test]
    fn versions_count_up_per_client_and_name() {
        let (_dir, mut c) = catalog();
        let (a, b) = (BlobHash::of(b"a"), BlobHash::of(b"b"));
        assert_eq!(commit(&mut c, "laptop", "x", 1, &a, &[1, 2]).unwrap(), 1);
        assert_eq!(commit(&mut c, "laptop", "x", 1, &b, &[2, 3]).unwrap(), 2);
        assert_eq!(commit(&mut c, "desktop", "x", 1, &a, &[1, 2]).unwrap(), 1);
        assert_eq!(c.find("laptop", "x", None).unwrap().unwrap().hash, b);
        assert_eq!(c.find("laptop", "x", Some(1)).unwrap().unwrap().hash, a);
        assert_eq!(c.find("laptop", "x", Some(3)).unwrap(), None);
        assert_eq!(c.versions("laptop", "x").unwrap().len(), 2);
        assert_eq!(c.holders(&a).unwrap(), [1, 2]);
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
        assert_eq!(c.unreferenced().unwrap(), [(a, 1), (a, 2)]);
    }

    #[test]
    fn latest_lists_newest_versions_under_a_prefix() {
        let (_dir, mut c) = catalog();
        let h = BlobHash::of(b"h");
        commit(&mut c, "me", "photos/a", 1, &h, &[1]).unwrap();
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
}
