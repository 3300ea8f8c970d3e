//! Photos and knowledge entries on the PostgreSQL store that replicas
//! share: a photo uploaded through one replica is served (whole and as a
//! thumbnail) by another, an admin's deletion is seen by both and leaves
//! another ticket's identical photo, the unreferenced-photo sweep and
//! concurrent uploads of the same bytes during a deletion; a knowledge
//! entry published on one replica is found on another within seconds, and
//! unpublishing it removes it there too. Skipped without PostgreSQL.

use std::{
    collections::HashSet,
    sync::Arc,
    time::{Duration, Instant},
};

use tonic::{transport::Channel, Code};
use xingweinong::{
    pb,
    photos::{clean::fixtures, Blobs, PhotoLimits, Photos},
    store::postgres::{PgPhotos, PgStore},
};

use crate::{
    common::*,
    replicas::{apple, start_replicas, stop, until_roster, Replica, ROSTER},
};

type PhotoClient = pb::photo_service_client::PhotoServiceClient<Channel>;
type Match = pb::match_service_client::MatchServiceClient<Channel>;

/// Two replicas on `url`, a channel to each, the roster imported
/// through the first and seen by both.
async fn two_replicas(url: &str) -> (Vec<Replica>, Channel, Channel) {
    let replicas = start_replicas(url, 2, "");
    let a = connect(replicas[0].port).await;
    let b = connect(replicas[1].port).await;
    import_rows(&a, ROSTER).await;
    until_roster(&[a.clone(), b.clone()], 2, 5).await;
    (replicas, a, b)
}

async fn upload(channel: &Channel, data: Vec<u8>) -> String {
    PhotoClient::new(channel.clone())
        .upload_photo(pb::UploadPhotoRequest {
            data,
            idempotency_key: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .photo_id
}

async fn photo(
    channel: &Channel,
    t: &pb::Ticket,
    photo_id: &str,
    thumbnail: bool,
) -> Result<Vec<u8>, tonic::Status> {
    let request = pb::GetPhotoRequest {
        ticket_id: t.id.clone(),
        photo_id: photo_id.into(),
        ticket_secret: t.ticket_secret.clone(),
        thumbnail,
    };
    let reply = PhotoClient::new(channel.clone()).get_photo(request).await?;
    Ok(reply.into_inner().data)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_photo_uploaded_on_one_replica_is_served_and_deleted_on_all() {
    let Some(url) = postgres_db("photos").await else {
        return;
    };
    let (mut replicas, a, b) = two_replicas(&url).await;

    // The same picture sent for two reports, once through each replica.
    let sent = fixtures::png(64, 48);
    let on_a = upload(&a, sent.clone()).await;
    let on_b = upload(&b, sent).await;
    assert_ne!(on_a, on_b, "each upload is a photo of its own");
    let first = submit_with_photo(&a, apple("photo-1"), &on_a).await;
    let second = submit_with_photo(&b, apple("photo-2"), &on_b).await;

    // Uploaded through A, read through B: whole and thumbnail.
    let full = photo(&b, &first, &on_a, false).await.unwrap();
    assert!(full.starts_with(&[0xFF, 0xD8]), "a JPEG");
    assert_eq!(photo(&a, &first, &on_a, false).await.unwrap(), full);
    let thumb = photo(&b, &first, &on_a, true).await.unwrap();
    assert!(thumb.starts_with(&[0xFF, 0xD8]) && thumb != full);

    // Deleted by an admin through A: gone on both replicas, and the
    // identical photo of the other ticket stays.
    let delete = pb::DeletePhotoRequest {
        ticket_id: first.id.clone(),
        photo_id: on_a.clone(),
    };
    PhotoClient::new(a.clone())
        .delete_photo(admin(delete.clone()))
        .await
        .unwrap();
    for replica in [&a, &b] {
        for thumbnail in [false, true] {
            let gone = photo(replica, &first, &on_a, thumbnail).await.unwrap_err();
            assert_eq!(gone.code(), Code::NotFound, "{gone:?}");
        }
    }
    assert_eq!(photo(&a, &second, &on_b, false).await.unwrap(), full);
    assert_eq!(photo(&b, &second, &on_b, true).await.unwrap(), thumb);
    let again = PhotoClient::new(b.clone())
        .delete_photo(admin(delete))
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::NotFound);
    stop(&mut replicas);
}

/// The photo service over the PostgreSQL store directly, as a replica
/// runs it, with no TTL.
async fn pg_photos(tag: &str) -> Option<(Arc<PgPhotos>, Photos)> {
    let url = postgres_db(tag).await?;
    let store = Arc::new(PgPhotos::new(PgStore::connect(&url).await.unwrap(), None));
    let photos = Photos::new(store.clone(), PhotoLimits::default(), 0);
    Some((store, photos))
}

#[tokio::test]
async fn the_sweep_removes_old_uploads_no_ticket_names_on_postgres() {
    let Some((store, photos)) = pg_photos("sweep").await else {
        return;
    };
    let kept = photos.upload(fixtures::png(8, 8), "").await.unwrap().id;
    let gone = photos.upload(fixtures::png(9, 9), "").await.unwrap().id;
    // The same bytes as the one kept, named by no ticket.
    let twin = photos.upload(fixtures::png(8, 8), "").await.unwrap().id;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let referenced = HashSet::from([kept.clone()]);
    assert_eq!(photos.sweep(&referenced).await.unwrap(), 2);
    assert!(store.get(&kept, false).await.unwrap().is_some());
    assert!(store.get(&kept, true).await.unwrap().is_some());
    assert_eq!(store.get(&gone, false).await.unwrap(), None);
    assert_eq!(store.get(&twin, false).await.unwrap(), None);
    let listed: Vec<String> = store
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(listed, vec![kept.clone()]);
    // Named again, an upload is not swept, whatever its age was.
    assert!(store
        .touch(std::slice::from_ref(&kept), i64::MAX / 2)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(photos.sweep(&HashSet::new()).await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn uploads_of_the_same_bytes_during_a_deletion_keep_their_bytes_on_postgres() {
    let Some((store, photos)) = pg_photos("race").await else {
        return;
    };
    let photos = Arc::new(photos);
    let png = fixtures::png(12, 12);
    for round in 0..20 {
        let doomed = photos.upload(png.clone(), "").await.unwrap().id;
        let uploads: Vec<_> = (0..3)
            .map(|_| {
                let (photos, png) = (photos.clone(), png.clone());
                tokio::spawn(async move { photos.upload(png, "").await.unwrap().id })
            })
            .collect();
        assert!(store.delete(&doomed).await.unwrap());
        for u in uploads {
            let id = u.await.unwrap();
            assert!(
                store.get(&id, false).await.unwrap().is_some(),
                "round {round}: upload {id}, acknowledged, lost its bytes"
            );
            assert!(store.delete(&id).await.unwrap());
        }
    }
}

fn search(text: &str) -> pb::SearchKnowledgeRequest {
    pb::SearchKnowledgeRequest {
        text: text.into(),
        ..Default::default()
    }
}

/// Waits (at most 10 s) until SearchKnowledge on `channel` finds entry
/// `id` for `text`, or (`found` false) no longer does; returns how long.
async fn until_found(channel: &Channel, text: &str, id: &str, found: bool) -> Duration {
    let started = Instant::now();
    loop {
        let hits = Match::new(channel.clone())
            .search_knowledge(search(text))
            .await
            .unwrap()
            .into_inner()
            .hits;
        let has = hits
            .iter()
            .any(|h| h.entry.as_ref().is_some_and(|e| e.id == id));
        if has == found {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "entry {id} {} on the other replica after 10 s",
            if found { "not found" } else { "still found" }
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_knowledge_entry_published_on_one_replica_is_found_on_another() {
    let Some(url) = postgres_db("knowledge").await else {
        return;
    };
    let (mut replicas, a, b) = two_replicas(&url).await;
    let mut r1 = Responder::new(&a, "r1").await;
    r1.online().await;
    let t = TicketClient::new(a.clone())
        .submit_problem(apple("knowledge-1"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(t.assignee.as_ref().map(|x| x.id.as_str()), Some("r1"));
    r1.accept(&t.id).await.unwrap();
    r1.resolve_sharing(&t.id, "这是苹果斑点落叶病，喷多抗霉素", true)
        .await
        .unwrap();
    let question = "苹果叶子发黄长斑点";
    let shown = until_found(&b, question, &t.id, true).await;
    eprintln!("shared on replica A → found on replica B: {shown:?}");

    let removed = RosterClient::new(a.clone())
        .unpublish_knowledge(admin(pb::UnpublishKnowledgeRequest {
            ticket_id: t.id.clone(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(removed.removed);
    let hidden = until_found(&b, question, &t.id, false).await;
    eprintln!("unpublished on replica A → gone on replica B: {hidden:?}");
    // Published again by an admin on B: found on A.
    RosterClient::new(b.clone())
        .publish_knowledge(admin(pb::PublishKnowledgeRequest {
            ticket_id: t.id.clone(),
        }))
        .await
        .unwrap();
    until_found(&a, question, &t.id, true).await;
    stop(&mut replicas);
}
