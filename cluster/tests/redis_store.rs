//! The cluster store against a real `redis-server`: registration and expiry, one owner per room
//! under racing claims, epochs that fence a node that lost its room, releases that never touch
//! another node's room, and a Redis that goes away and comes back.

#![deny(unsafe_code)]

#[path = "../../tests/common/redis.rs"]
mod redis_server;

use std::time::{Duration, Instant};

use redis_server::RedisServer;
use sluice_cluster::keys::Keys;
use sluice_cluster::{ClusterStore, Deleted, Held, Load, NodeInfo, NodeState, Ownership, Put};

const TIMEOUT: Duration = Duration::from_millis(500);

fn node(id: &str, region: &str) -> NodeInfo {
    NodeInfo {
        id: id.into(),
        region: region.into(),
        url: format!("http://{id}.example:7880"),
        state: NodeState::Serving,
        load: Load::default(),
        max_members: 0,
    }
}

fn store(r: &RedisServer) -> ClusterStore {
    ClusterStore::open(&r.url(), Keys::new("test:"), TIMEOUT).expect("a valid URL")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

#[test]
fn a_node_is_listed_while_its_record_lives_and_dropped_when_it_expires() {
    let r = RedisServer::start();
    runtime().block_on(async {
        let s = store(&r);
        s.register(&node("eu-1", "eu"), Duration::from_secs(5))
            .await
            .unwrap();
        s.register(&node("us-1", "us"), Duration::from_millis(300))
            .await
            .unwrap();
        let ids: Vec<String> = s.nodes().await.unwrap().into_iter().map(|n| n.id).collect();
        assert_eq!(ids, ["eu-1", "us-1"]);
        tokio::time::sleep(Duration::from_millis(500)).await;
        let nodes = s.nodes().await.unwrap();
        assert_eq!(nodes, [node("eu-1", "eu")], "us-1 stopped refreshing");
        s.deregister("eu-1").await.unwrap();
        assert!(s.nodes().await.unwrap().is_empty());
    });
}

#[test]
fn sixteen_nodes_claiming_one_room_at_once_give_it_exactly_one_owner() {
    let r = RedisServer::start();
    runtime().block_on(async {
        let s = store(&r);
        for i in 0..16 {
            s.register(&node(&format!("n{i}"), "eu"), Duration::from_secs(10))
                .await
                .unwrap();
        }
        let claims = (0..16).map(|i| {
            let s = s.clone();
            tokio::spawn(async move { s.claim_room("lobby", &format!("n{i}")).await.unwrap() })
        });
        let mut results = Vec::new();
        for c in claims {
            results.push(c.await.unwrap());
        }
        let winners: Vec<&Ownership> = results
            .iter()
            .filter(|(_, won)| *won)
            .map(|(o, _)| o)
            .collect();
        assert_eq!(winners.len(), 1, "{results:?}");
        let owner = winners[0].clone();
        assert_eq!(owner.epoch, 1);
        assert!(
            results.iter().all(|(o, _)| *o == owner),
            "everyone sees the one owner"
        );
        assert_eq!(s.owner("lobby").await.unwrap(), Some(owner));
    });
}

#[test]
fn a_room_whose_owner_died_moves_with_a_new_epoch_and_the_old_owner_is_fenced() {
    let r = RedisServer::start();
    runtime().block_on(async {
        let s = store(&r);
        s.register(&node("a", "eu"), Duration::from_millis(300))
            .await
            .unwrap();
        s.register(&node("b", "eu"), Duration::from_secs(10))
            .await
            .unwrap();
        let (first, won) = s.claim_room("room", "a").await.unwrap();
        assert!(won);
        assert_eq!(
            first,
            Ownership {
                node: "a".into(),
                epoch: 1
            }
        );
        // While a lives, b cannot take the room, and a release by b does nothing.
        let (seen, won) = s.claim_room("room", "b").await.unwrap();
        assert!(!won);
        assert_eq!(seen, first);
        assert!(!s.release_room("room", "b", 1).await.unwrap());
        // a stops refreshing (killed, or paused past its expiry): b takes the room, epoch 2.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (second, won) = s.claim_room("room", "b").await.unwrap();
        assert!(won);
        assert_eq!(
            second,
            Ownership {
                node: "b".into(),
                epoch: 2
            }
        );
        // a comes back: it finds it lost the room, and its release cannot remove b's.
        let rooms = [("room".to_string(), 1)];
        assert_eq!(s.held("a", &rooms).await.unwrap(), [Held::Lost]);
        assert!(!s.release_room("room", "a", 1).await.unwrap());
        assert_eq!(
            s.held("b", &[("room".to_string(), 2)]).await.unwrap(),
            [Held::Yes]
        );
        // b gives it up cleanly; the epoch is remembered, so the next owner's is larger.
        assert!(s.release_room("room", "b", 2).await.unwrap());
        assert_eq!(s.owner("room").await.unwrap(), None);
        s.register(&node("a", "eu"), Duration::from_secs(10))
            .await
            .unwrap();
        let (third, won) = s.claim_room("room", "a").await.unwrap();
        assert!(won);
        assert_eq!(third.epoch, 3);
        // A node restarted under the same id claims its own room anew: the epoch moves on, which
        // fences whatever the previous process still held.
        let (fourth, won) = s.claim_room("room", "a").await.unwrap();
        assert!(won);
        assert_eq!(fourth.epoch, 4);
    });
}

#[test]
fn while_redis_is_away_calls_fail_fast_and_the_store_reconnects_by_itself() {
    let mut r = RedisServer::start();
    let rt = runtime();
    let s = rt.block_on(async { store(&r) });
    rt.block_on(async {
        s.register(&node("a", "eu"), Duration::from_secs(10))
            .await
            .unwrap();
    });
    r.kill();
    rt.block_on(async {
        let t = Instant::now();
        assert!(s.nodes().await.is_err());
        assert!(s.claim_room("room", "a").await.is_err());
        assert!(
            t.elapsed() < Duration::from_secs(3),
            "failed in {:?}",
            t.elapsed()
        );
    });
    r.restart();
    rt.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match s.register(&node("a", "eu"), Duration::from_secs(10)).await {
                Ok(()) => break,
                Err(e) => assert!(Instant::now() < deadline, "not back: {e}"),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(s.nodes().await.unwrap().len(), 1);
    });
}

#[test]
fn room_documents_are_written_only_by_compare_and_set_and_never_deleted_under_a_live_owner() {
    let r = RedisServer::start();
    runtime().block_on(async {
        let s = store(&r);
        s.register(&node("a", "eu"), Duration::from_secs(10))
            .await
            .unwrap();
        s.register(&node("b", "us"), Duration::from_millis(400))
            .await
            .unwrap();
        assert_eq!(s.room_doc("lobby").await.unwrap(), None);
        assert_eq!(
            s.put_room_doc("lobby", None, "{1}", None).await.unwrap(),
            Put::Written(1)
        );
        assert_eq!(
            s.put_room_doc("lobby", None, "{again}", None)
                .await
                .unwrap(),
            Put::Stale,
            "a room is created once"
        );
        // Two writers that both read version 1: the first wins, the second must read again.
        assert_eq!(
            s.put_room_doc("lobby", Some(1), "{2}", None).await.unwrap(),
            Put::Written(2)
        );
        assert_eq!(
            s.put_room_doc("lobby", Some(1), "{2'}", None)
                .await
                .unwrap(),
            Put::Stale
        );
        let doc = s.room_doc("lobby").await.unwrap().unwrap();
        assert_eq!((doc.version, doc.doc.as_str(), doc.owner), (2, "{2}", None));
        assert_eq!(s.room_docs().await.unwrap(), [("{2}".to_string(), None)]);

        // b owns it: a may not delete it while b's record lives.
        let placed = |nodes: Vec<NodeInfo>, id: &str| {
            nodes
                .iter()
                .find(|n| n.id == id)
                .map_or(0, |n| n.load.rooms)
        };
        assert!(s.claim_room("lobby", "b").await.unwrap().1);
        assert_eq!(
            placed(s.nodes().await.unwrap(), "b"),
            1,
            "counted where placed"
        );
        let doc = s.room_doc("lobby").await.unwrap().unwrap();
        assert_eq!(
            doc.owner,
            Some(Ownership {
                node: "b".into(),
                epoch: 1
            })
        );
        assert_eq!(
            s.delete_room_doc("lobby", "a").await.unwrap(),
            Deleted::OwnedBy("b".into())
        );
        assert!(s.room_doc("lobby").await.unwrap().is_some());
        // b died (its port refuses): a takes the room over at once, with a new epoch; a stale
        // take-over (the epoch moved on) does nothing.
        let dead = Ownership {
            node: "b".into(),
            epoch: 1,
        };
        let (now, moved) = s.take_over("lobby", &dead, "a").await.unwrap();
        assert!(moved);
        assert_eq!(
            now,
            Ownership {
                node: "a".into(),
                epoch: 2
            }
        );
        let (still, moved) = s.take_over("lobby", &dead, "b").await.unwrap();
        assert!(!moved);
        assert_eq!(still, now);
        // b comes back from a pause: its own bookkeeping (as owner at epoch 1) is fenced off, the
        // new owner's goes through.
        let doc = s.room_doc("lobby").await.unwrap().unwrap();
        assert_eq!(
            s.put_room_doc("lobby", Some(doc.version), "{b's}", Some(&dead))
                .await
                .unwrap(),
            Put::Fenced
        );
        assert_eq!(
            s.put_room_doc("lobby", Some(doc.version), "{a's}", Some(&now))
                .await
                .unwrap(),
            Put::Written(doc.version + 1)
        );
        // Its owner deletes it; the epoch is remembered for the next owner.
        assert_eq!(
            s.delete_room_doc("lobby", "a").await.unwrap(),
            Deleted::Deleted
        );
        assert_eq!(s.room_doc("lobby").await.unwrap(), None);
        assert!(s.room_docs().await.unwrap().is_empty());
        assert_eq!(
            s.delete_room_doc("lobby", "a").await.unwrap(),
            Deleted::NotFound
        );
        assert_eq!(
            s.put_room_doc("lobby", Some(3), "{x}", None).await.unwrap(),
            Put::Stale
        );
        assert_eq!(
            s.put_room_doc("lobby", None, "{new}", None).await.unwrap(),
            Put::Written(1)
        );
        let (again, _) = s.claim_room("lobby", "a").await.unwrap();
        assert_eq!(again.epoch, 3, "epochs never go back");
    });
}

#[test]
fn an_owner_puts_back_its_rooms_after_redis_lost_its_data_and_never_over_another_owner() {
    let mut r = RedisServer::start();
    runtime().block_on(async {
        let s = store(&r);
        s.register(&node("a", "eu"), Duration::from_secs(10))
            .await
            .unwrap();
        s.put_room_doc("talk", None, "{talk}", None).await.unwrap();
        let (mine, _) = s.claim_room("talk", "a").await.unwrap();
        let served = [("talk".to_string(), mine.epoch)];
        assert_eq!(s.held("a", &served).await.unwrap(), [Held::Yes]);

        // Redis restarts empty: the room vanished, and its owner puts it back at its epoch.
        r.restart();
        let deadline = Instant::now() + Duration::from_secs(5);
        let held = loop {
            match s.held("a", &served).await {
                Ok(h) => break h,
                Err(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await
                }
                Err(e) => panic!("redis did not come back: {e}"),
            }
        };
        assert_eq!(held, [Held::Vanished]);
        assert_eq!(s.room_doc("talk").await.unwrap(), None);
        let (back, restored) = s
            .restore_room("talk", "a", mine.epoch, "{talk}")
            .await
            .unwrap();
        assert!(restored);
        assert_eq!(back, mine);
        let doc = s.room_doc("talk").await.unwrap().unwrap();
        assert_eq!(
            (doc.doc.as_str(), doc.owner),
            ("{talk}", Some(mine.clone()))
        );
        assert_eq!(s.room_docs().await.unwrap(), [("{talk}".to_string(), None)]);
        assert_eq!(s.held("a", &served).await.unwrap(), [Held::Yes]);
        // The owner's live summary is read with the document until it expires.
        s.put_live(
            &[("talk".to_string(), "{live}".to_string())],
            Duration::from_millis(300),
        )
        .await
        .unwrap();
        let doc = s.room_doc("talk").await.unwrap().unwrap();
        assert_eq!(doc.live.as_deref(), Some("{live}"));
        assert_eq!(
            s.room_docs().await.unwrap(),
            [("{talk}".to_string(), Some("{live}".to_string()))]
        );
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(s.room_doc("talk").await.unwrap().unwrap().live, None);

        // A node that lost the room (released, or taken) never puts it back over its new owner.
        assert!(s.release_room("talk", "a", mine.epoch).await.unwrap());
        assert_eq!(s.held("a", &served).await.unwrap(), [Held::Lost]);
        s.register(&node("b", "eu"), Duration::from_secs(10))
            .await
            .unwrap();
        let (theirs, _) = s.claim_room("talk", "b").await.unwrap();
        let (owner, restored) = s
            .restore_room("talk", "a", mine.epoch, "{old}")
            .await
            .unwrap();
        assert!(!restored);
        assert_eq!(owner, theirs);
        assert_eq!(s.room_doc("talk").await.unwrap().unwrap().doc, "{talk}");
    });
}
