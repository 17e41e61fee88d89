//! What the dashboard fetches instead of the whole catalog, on a real
//! cluster: windows of a folder's children, lookups of a few names, and a
//! stamp that moves only when the catalog does.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use arca_shared::protocol::{Child, FileEntry, FolderEntry};
use arca_shared::{FrameError, Message};
use common::{TestCluster, put, put_numbered};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windows_and_lookups_page_the_newest_versions() {
    let t = TestCluster::with_servers(3).await;
    let mut session = t.session("laptop").await;
    let files: Vec<Vec<u8>> = (0..12).map(|i| format!("file {i}").into_bytes()).collect();
    put_numbered(&t, &mut session, &files).await;
    // A second version of f3 is still one name.
    put_numbered(
        &t,
        &mut session,
        &files[..4]
            .iter()
            .map(|f| [f, &b"!"[..]].concat())
            .collect::<Vec<_>>(),
    )
    .await;
    let all = session.list(None).await.unwrap();
    assert_eq!(all.len(), 12);

    let files = |children: Vec<Child>| -> Vec<FileEntry> {
        children
            .into_iter()
            .map(|c| match c {
                Child::File(f) => f,
                Child::Folder(f) => panic!("no folders here: {f:?}"),
            })
            .collect()
    };
    let (total, window) = session.browse("", "", 5, 4).await.unwrap();
    assert_eq!(total, 12);
    assert_eq!(files(window), all[5..9]);
    let (total, past_the_end) = session.browse("", "", 10, 100).await.unwrap();
    assert_eq!((total, past_the_end.len()), (12, 2));
    let (total, far_past) = session.browse("", "", 50, 100).await.unwrap();
    assert_eq!((total, far_past.len()), (12, 0));

    // Names with no backup are left out; lookups of many names are split.
    let mut names: Vec<String> = (0..300).map(|i| format!("none/{i}")).collect();
    names.push("f3".into());
    names.push("f11".into());
    let found = session.lookup(&names).await.unwrap();
    let by_name: Vec<(&str, u32)> = found.iter().map(|f| (f.name.as_str(), f.version)).collect();
    assert_eq!(by_name, [("f11", 1), ("f3", 2)]);
    // Another client sees none of them.
    let mut other = t.session("desktop").await;
    assert_eq!(other.browse("", "", 0, 10).await.unwrap(), (0, Vec::new()));
    assert!(other.lookup(&names).await.unwrap().is_empty());
    t.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lookup_of_too_many_names_is_refused_and_the_link_lives_on() {
    let t = TestCluster::with_servers(2).await;
    let mut conn =
        arca_shared::handshake::connect(&t.cluster.manager_addr, &t.cluster.key.links().connector)
            .await
            .unwrap();
    let names = (0..=arca_shared::limits::LOOKUP_MAX)
        .map(|i| format!("f{i}"))
        .collect();
    conn.send(&Message::Lookup {
        client: "laptop".into(),
        names,
    })
    .await
    .unwrap();
    let refused = conn.recv().await.unwrap_err();
    assert!(
        matches!(&refused, FrameError::Refused(why) if why.contains("at most 128 names")),
        "{refused:?}"
    );
    conn.send(&Message::Browse {
        client: "laptop".into(),
        folder: String::new(),
        filter: String::new(),
        offset: 0,
        limit: 10,
    })
    .await
    .unwrap();
    assert_eq!(conn.recv().await.unwrap(), Message::Browsed { total: 0 });
    t.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_catalog_stamp_moves_with_the_catalog_only() {
    let t = TestCluster::with_servers(3).await;
    let mut session = t.session("laptop").await;
    put_numbered(&t, &mut session, &[b"one".to_vec()]).await;
    let before = session.status().await.unwrap().catalog_changes;
    // Heartbeats and status questions do not touch the catalog.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    session.list(None).await.unwrap();
    assert_eq!(session.status().await.unwrap().catalog_changes, before);
    put_numbered(&t, &mut session, &[b"two".to_vec()]).await;
    assert!(session.status().await.unwrap().catalog_changes > before);
    t.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_folder_lists_its_subfolders_then_its_files_with_what_is_under_them() {
    let t = TestCluster::with_servers(3).await;
    let mut session = t.session("laptop").await;
    for (name, data) in [
        ("top.txt", &b"top"[..]),
        ("photos/a.jpg", b"aaaa"),
        ("photos/2024/b.jpg", b"bb"),
        ("photos/2024/c.JPG", b"c"),
        ("photos/raw/d.cr2", b"dddddd"),
        ("photosynthesis.txt", b"not in photos/"),
        ("music/e.flac", b"eeeee"),
    ] {
        put(&mut session, &t.write(name, data), name).await;
    }
    // A second version counts once, with its own size.
    put(
        &mut session,
        &t.write("photos/a.jpg", b"aaaaaaa"),
        "photos/a.jpg",
    )
    .await;
    let names = |children: &[Child]| -> Vec<String> {
        children.iter().map(|c| c.name().to_owned()).collect()
    };

    let (total, top) = session.browse("", "", 0, 100).await.unwrap();
    assert_eq!(total, 4);
    assert_eq!(
        names(&top),
        ["music/", "photos/", "photosynthesis.txt", "top.txt"]
    );
    let Child::Folder(photos) = &top[1] else {
        panic!("{top:?}")
    };
    assert_eq!(
        (photos.files, photos.size, photos.short),
        (4, 7 + 2 + 1 + 6, 0)
    );

    let (total, inside) = session.browse("photos/", "", 0, 100).await.unwrap();
    assert_eq!(total, 3);
    assert_eq!(
        names(&inside),
        ["photos/2024/", "photos/raw/", "photos/a.jpg"]
    );
    assert!(matches!(&inside[2], Child::File(f) if f.version == 2 && f.replicas == 2));
    let (_, window) = session.browse("photos/", "", 1, 1).await.unwrap();
    assert_eq!(names(&window), ["photos/raw/"]);

    // The filter matches a child's own name, ignoring case.
    let (total, matching) = session.browse("photos/2024/", "jpg", 0, 100).await.unwrap();
    assert_eq!(total, 2);
    assert_eq!(names(&matching), ["photos/2024/b.jpg", "photos/2024/c.JPG"]);
    let (total, matching) = session.browse("", "PHOTO", 0, 100).await.unwrap();
    assert_eq!(
        (total, names(&matching)),
        (
            2,
            vec!["photos/".to_owned(), "photosynthesis.txt".to_owned()]
        )
    );
    let (total, none) = session.browse("", "zz", 0, 100).await.unwrap();
    assert_eq!((total, none.len()), (0, 0));
    let (total, none) = session.browse("nothing/", "", 0, 100).await.unwrap();
    assert_eq!((total, none.len()), (0, 0));

    // A folder name that is not one is refused, and the link lives on.
    let refused = session.browse("photos", "", 0, 10).await.unwrap_err();
    assert!(refused.to_string().contains("ends in '/'"), "{refused}");
    let refused = session.browse("../", "", 0, 10).await.unwrap_err();
    assert!(refused.to_string().contains("bad folder"), "{refused}");
    assert_eq!(session.browse("music/", "", 0, 10).await.unwrap().0, 1);
    t.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_folder_counts_the_versions_under_it_short_of_copies() {
    let mut t = TestCluster::with_servers(2).await;
    let mut session = t.session("laptop").await;
    for name in ["docs/a", "docs/b", "other/c"] {
        put(&mut session, &t.write(name, name.as_bytes()), name).await;
    }
    // With one of two servers gone, every version is short of a copy.
    t.cluster.kill_server(0).await;
    let short = |children: &[Child]| -> Vec<(String, u64)> {
        children
            .iter()
            .filter_map(|c| match c {
                Child::Folder(FolderEntry { name, short, .. }) => Some((name.clone(), *short)),
                Child::File(_) => None,
            })
            .collect()
    };
    common::poll(Duration::from_secs(30), "healing to count", async || {
        let (_, top) = session.browse("", "", 0, 10).await.unwrap();
        (short(&top) == [("docs/".to_owned(), 2), ("other/".to_owned(), 1)]).then_some(())
    })
    .await;
    t.cluster.shutdown().await;
}
