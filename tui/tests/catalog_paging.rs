//! What the dashboard fetches instead of the whole catalog, on a real
//! cluster: windows of names, lookups of a few, and a stamp that moves only
//! when the catalog does.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use arca_shared::{FrameError, Message};
use common::{TestCluster, put_numbered};

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

    let (total, window) = session.browse(5, 4).await.unwrap();
    assert_eq!(total, 12);
    assert_eq!(window, all[5..9]);
    let (total, past_the_end) = session.browse(10, 100).await.unwrap();
    assert_eq!((total, past_the_end.len()), (12, 2));

    // Names with no backup are left out; lookups of many names are split.
    let mut names: Vec<String> = (0..300).map(|i| format!("none/{i}")).collect();
    names.push("f3".into());
    names.push("f11".into());
    let found = session.lookup(&names).await.unwrap();
    let by_name: Vec<(&str, u32)> = found.iter().map(|f| (f.name.as_str(), f.version)).collect();
    assert_eq!(by_name, [("f11", 1), ("f3", 2)]);
    // Another client sees none of them.
    let mut other = t.session("desktop").await;
    assert_eq!(other.browse(0, 10).await.unwrap(), (0, Vec::new()));
    assert!(other.lookup(&names).await.unwrap().is_empty());
    t.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lookup_of_too_many_names_is_refused_and_the_link_lives_on() {
    let t = TestCluster::with_servers(2).await;
    let mut conn = arca_shared::handshake::connect(&t.cluster.manager_addr, &t.cluster.key)
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
