//! The file store: the store-agnostic conformance suite, plus what only files have
//! (reopening, torn journal tails, format versions, compaction, group commit, OS locks).

use occopus_model::{InfraId, InstancePhase, NodeId};
use occopus_state::conformance::{append_from_tasks, run_all, sample_meta, sample_record};
use occopus_state::{FileStore, FileStoreOptions, LockHolder, Record, StateError, StateStore};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tempfile::TempDir;

fn fresh() -> (TempDir, FileStore) {
    let dir = TempDir::new().unwrap();
    let store = FileStore::open(dir.path()).unwrap();
    (dir, store)
}

/// A fresh store holding one new infrastructure.
async fn fresh_infra(id: &str, name: &str) -> (TempDir, FileStore, InfraId) {
    let (dir, store) = fresh();
    store.create_infra(&sample_meta(id, name, 1)).await.unwrap();
    (dir, store, InfraId::new(id))
}

fn journal_file(root: &Path, id: &str) -> std::path::PathBuf {
    let dir = root.join("infras").join(id);
    std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("journal-"))
        })
        .unwrap()
}

#[tokio::test]
async fn conformance() {
    let dirs = Mutex::new(Vec::new());
    run_all(|| {
        let (d, s) = fresh();
        dirs.lock().unwrap().push(d);
        s
    })
    .await;
}

#[tokio::test]
async fn records_survive_reopening_and_torn_tails_are_ignored() {
    let dir = TempDir::new().unwrap();
    let id = InfraId::new("i1");
    {
        let store = FileStore::open(dir.path()).unwrap();
        store
            .create_infra(&sample_meta("i1", "one", 1))
            .await
            .unwrap();
        store
            .append(
                &id,
                &[
                    Record::Instance(sample_record("a", "db", InstancePhase::Creating)),
                    Record::Instance(sample_record("a", "db", InstancePhase::Ready)),
                ],
            )
            .await
            .unwrap();
    }
    // A crash in the middle of an append leaves half a line.
    let path = journal_file(dir.path(), "i1");
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    f.write_all(b"{\"rec\":\"instance\",\"node_id\":\"b\",\"no")
        .unwrap();
    drop(f);

    let store = FileStore::open(dir.path()).unwrap();
    let st = store.load(&id).await.unwrap().unwrap();
    assert_eq!(st.instances.len(), 1);
    assert_eq!(st.instances[0].phase, InstancePhase::Ready);
    // The next append starts on a clean line: nothing is glued to the torn tail.
    store
        .append(
            &id,
            &[Record::Instance(sample_record(
                "c",
                "web",
                InstancePhase::Created,
            ))],
        )
        .await
        .unwrap();
    drop(store);
    let store = FileStore::open(dir.path()).unwrap();
    let st = store.load(&id).await.unwrap().unwrap();
    let ids: Vec<_> = st.instances.iter().map(|r| r.node_id.as_str()).collect();
    assert_eq!(ids, ["a", "c"]);
    let text = std::fs::read_to_string(journal_file(dir.path(), "i1")).unwrap();
    assert!(
        !text.contains("\"node_id\":\"b\""),
        "torn tail was cut: {text}"
    );
    assert!(text.starts_with("{\"format\":1,"), "{text}");
}

#[tokio::test]
async fn damage_in_the_middle_is_an_error_naming_file_and_line() {
    let (dir, store, id) = fresh_infra("i2", "two").await;
    store
        .append(
            &id,
            &[
                Record::Instance(sample_record("a", "db", InstancePhase::Creating)),
                Record::Instance(sample_record("b", "db", InstancePhase::Creating)),
            ],
        )
        .await
        .unwrap();
    drop(store);
    let path = journal_file(dir.path(), "i2");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines[1] = "{not json";
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    let store = FileStore::open(dir.path()).unwrap();
    let e = store.load(&id).await.unwrap_err();
    assert!(
        matches!(e, StateError::Corrupt { line: Some(2), .. }),
        "{e}"
    );
    assert!(e.to_string().contains("journal-1.jsonl"), "{e}");
}

#[tokio::test]
async fn unknown_format_versions_are_refused_clearly() {
    let (dir, store, id) = fresh_infra("i3", "three").await;
    let meta = dir.path().join("infras/i3/meta.json");
    let text = std::fs::read_to_string(&meta).unwrap();
    assert!(text.starts_with("{\"format\":1,"), "{text}");
    std::fs::write(&meta, text.replacen("\"format\":1", "\"format\":2", 1)).unwrap();
    let e = store.load(&id).await.unwrap_err();
    assert_eq!(
        e,
        StateError::UnknownFormat {
            path: meta,
            found: 2,
            supported: 1
        }
    );
    assert!(e.to_string().contains("reads format 1 only"), "{e}");
}

#[tokio::test]
async fn compaction_keeps_the_state_and_bounds_the_journal() {
    let dir = TempDir::new().unwrap();
    let opts = FileStoreOptions {
        sync: true,
        compact_min_bytes: 8 << 10,
    };
    let id = InfraId::new("i4");
    {
        let store = FileStore::open_with(dir.path(), opts).unwrap();
        store
            .create_infra(&sample_meta("i4", "four", 1))
            .await
            .unwrap();
        for round in 0..40 {
            let mut recs = Vec::new();
            for n in 0..10 {
                let phase = if round % 2 == 0 {
                    InstancePhase::Created
                } else {
                    InstancePhase::Ready
                };
                recs.push(Record::Instance(sample_record(
                    &format!("n{n}"),
                    "w",
                    phase,
                )));
            }
            recs.push(Record::Instance(sample_record(
                &format!("tmp{round}"),
                "t",
                InstancePhase::Creating,
            )));
            recs.push(Record::Dropped {
                node_id: NodeId::new(format!("tmp{round}")),
            });
            store.append(&id, &recs).await.unwrap();
        }
        assert!(store.stats().compactions >= 2, "{:?}", store.stats());
        let st = store.load(&id).await.unwrap().unwrap();
        assert_eq!(st.instances.len(), 10);
        assert!(st.instances.iter().all(|r| r.phase == InstancePhase::Ready));
    }
    let journal = journal_file(dir.path(), "i4");
    assert!(std::fs::metadata(&journal).unwrap().len() < 16 << 10);
    // A journal of an older generation (compaction interrupted after the snapshot was in
    // place) is ignored and cleaned up.
    let stale = dir.path().join("infras/i4/journal-1.jsonl");
    std::fs::write(
        &stale,
        "{\"format\":1,\"kind\":\"journal\",\"gen\":1}\n{\"rec\":\"dropped\",\"node_id\":\"n1\"}\n",
    )
    .unwrap();
    let store = FileStore::open_with(dir.path(), opts).unwrap();
    let st = store.load(&id).await.unwrap().unwrap();
    let ids: Vec<_> = st.instances.iter().map(|r| r.node_id.as_str()).collect();
    assert_eq!(
        ids,
        ["n0", "n1", "n2", "n3", "n4", "n5", "n6", "n7", "n8", "n9"]
    );
    store.append(&id, &[]).await.unwrap();
    assert!(!stale.exists());
}

#[tokio::test]
async fn records_nobody_waits_for_are_written_at_once_and_synced_lazily() {
    let (_dir, store, id) = fresh_infra("lazy", "lazy").await;
    // Settle: the first append opens the journal.
    store.append(&id, &[]).await.unwrap();
    let before = store.stats();
    for i in 0..500 {
        let rec = sample_record(&format!("n{i}"), "web", InstancePhase::Ready);
        store.append_unawaited(&id, &[Record::Instance(rec)]);
    }
    // Nobody awaits anything: the writer syncs them on its own within its deferral
    // window (50 ms; allow a slow machine), in one go rather than one sync per record.
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.stats().syncs == before.syncs || store.stats().records - before.records < 500 {
        assert!(
            Instant::now() < deadline,
            "the unawaited records were never synced"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let synced = store.stats();
    assert_eq!(synced.records - before.records, 500);
    assert!(
        synced.syncs - before.syncs <= 3,
        "500 unawaited records must not cost a sync each: {} syncs",
        synced.syncs - before.syncs
    );
    let st = store.load(&id).await.unwrap().unwrap();
    assert_eq!(st.instances.len(), 500);
    // An awaited record syncs together with anything still unsynced.
    let s0 = store.stats().syncs;
    store.append_unawaited(
        &id,
        &[Record::Instance(sample_record(
            "late",
            "web",
            InstancePhase::Ready,
        ))],
    );
    store
        .append(
            &id,
            &[Record::Instance(sample_record(
                "awaited",
                "web",
                InstancePhase::Ready,
            ))],
        )
        .await
        .unwrap();
    assert!(store.stats().syncs - s0 <= 1);
    let st = store.load(&id).await.unwrap().unwrap();
    assert_eq!(st.instances.len(), 502);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn group_commit_batches_syncs() {
    let (_dir, store) = fresh();
    let store = Arc::new(store);
    let id = InfraId::new("gc");
    store
        .create_infra(&sample_meta("gc", "gc", 1))
        .await
        .unwrap();
    let before = store.stats();
    let start = Instant::now();
    append_from_tasks(store.clone(), &id, 10_000).await;
    let stats = store.stats();
    let syncs = stats.syncs - before.syncs;
    eprintln!(
        "10,000 creates (20,000 awaited records): {syncs} syncs, {} commits, {:?}",
        stats.commits - before.commits,
        start.elapsed()
    );
    assert_eq!(stats.records - before.records, 20_000);
    assert!(syncs < 2_000, "group commit should batch: {syncs} syncs");
    let st = store.load(&id).await.unwrap().unwrap();
    assert_eq!(st.instances.len(), 10_000);
}

#[tokio::test]
async fn removing_state_ignores_node_working_directories() {
    let (dir, store, id) = fresh_infra("i5", "five").await;
    store
        .append(
            &id,
            &[Record::Instance(sample_record(
                "a",
                "db",
                InstancePhase::Ready,
            ))],
        )
        .await
        .unwrap();
    let _lock = store
        .lock(
            &id,
            &LockHolder::this_process("occopus destroy"),
            Duration::ZERO,
        )
        .await
        .unwrap();
    let work = dir.path().join("infras/i5/nodes/a/data");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::write(work.join("log.txt"), "hello").unwrap();
    assert!(store.remove(&id).await.unwrap());
    assert!(!dir.path().join("infras/i5").exists());
    assert!(store.list().await.unwrap().is_empty());
}

/// A build's first records are written with its metadata; records left in a directory
/// without `meta.json` (a create that never finished, so no plugin was called for them)
/// are not an infrastructure, and are removed when the id is created again.
#[tokio::test]
async fn records_created_with_the_metadata_and_orphans_removed() {
    let (dir, store) = fresh();
    let id = InfraId::new("i9");
    let infra_dir = dir.path().join("infras/i9");
    std::fs::create_dir_all(&infra_dir).unwrap();
    std::fs::write(
        infra_dir.join("journal-1.jsonl"),
        format!(
            "{{\"format\":1,\"kind\":\"journal\",\"gen\":1}}\n{}\n",
            serde_json::to_string(&Record::Instance(sample_record(
                "orphan",
                "web",
                InstancePhase::Creating
            )))
            .unwrap()
        ),
    )
    .unwrap();
    std::fs::write(infra_dir.join("snapshot.jsonl"), "not even json\n").unwrap();
    assert_eq!(store.load(&id).await.unwrap(), None);
    assert!(store.list().await.unwrap().is_empty());

    let first = [Record::Instance(sample_record(
        "n1",
        "web",
        InstancePhase::Creating,
    ))];
    store
        .create_infra_with(&sample_meta("i9", "nine", 1), &first)
        .await
        .unwrap();
    assert!(!infra_dir.join("snapshot.jsonl").exists());
    store
        .append(
            &id,
            &[Record::Instance(sample_record(
                "n2",
                "web",
                InstancePhase::Creating,
            ))],
        )
        .await
        .unwrap();
    drop(store);
    let store = FileStore::open(dir.path()).unwrap();
    let st = store.load(&id).await.unwrap().unwrap();
    let ids: Vec<&str> = st.instances.iter().map(|r| r.node_id.as_str()).collect();
    assert_eq!(ids, ["n1", "n2"]);
    // One journal, its header first, no temporary file left.
    let names: Vec<String> = std::fs::read_dir(&infra_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "lock")
        .collect();
    let mut names = names;
    names.sort();
    assert_eq!(names, ["journal-1.jsonl", "meta.json"]);
}

/// Builds killed before their metadata was durable leave an early metadata file beside
/// the infrastructure directories, or a directory with records and a lock but no
/// `meta.json`. The next create removes them, and nothing else: not a file of a live
/// process, not a directory locked or touched within the minute, not one holding
/// anything but records.
#[tokio::test]
async fn leftovers_of_killed_creates_are_swept_and_nothing_else() {
    let (dir, store) = fresh();
    let infras = dir.path().join("infras");
    let minute_ago = std::time::SystemTime::now() - Duration::from_secs(120);
    let leftover = |name: &str, extra: &[&str], aged: bool| {
        let d = infras.join(name);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("journal-1.jsonl"), "").unwrap();
        for e in extra {
            std::fs::create_dir_all(d.join(e)).unwrap();
        }
        let lock = std::fs::File::create(d.join("lock")).unwrap();
        if aged {
            lock.set_modified(minute_ago).unwrap();
        }
        lock
    };
    drop(leftover("killed", &[], true));
    drop(leftover("just-made", &[], false));
    let held = leftover("held", &[], true);
    held.try_lock().unwrap();
    drop(leftover("with-node-dirs", &["nodes"], true));
    // pid_max is at most 2^22: this process cannot exist.
    std::fs::write(infras.join(".gone.meta.json.tmp-99999999"), "{}").unwrap();
    let mine = format!(".mine.meta.json.tmp-{}", std::process::id());
    std::fs::write(infras.join(&mine), "{}").unwrap();

    store
        .create_infra_with(&sample_meta("i10", "ten", 1), &[])
        .await
        .unwrap();
    let mut left: Vec<String> = std::fs::read_dir(&infras)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(
        left,
        [mine.as_str(), "held", "i10", "just-made", "with-node-dirs"]
    );
    drop(held);
}

#[tokio::test]
async fn bad_infra_ids_are_refused() {
    let (_dir, store) = fresh();
    let e = store.load(&InfraId::new("../etc")).await.unwrap_err();
    assert!(matches!(e, StateError::InvalidId { .. }), "{e}");
}

const CHILD_ENV: &str = "OCCOPUS_STATE_LOCK_CHILD_ROOT";

/// Not a test on its own: the child process of `a_dead_holder_never_blocks`. It takes the
/// lock, says so, and waits to be killed.
#[tokio::test]
async fn lock_child_helper() {
    let Ok(root) = std::env::var(CHILD_ENV) else {
        return;
    };
    let store = FileStore::open(root).unwrap();
    let _lock = store
        .lock(
            &InfraId::new("shared"),
            &LockHolder::this_process("occopus build"),
            Duration::ZERO,
        )
        .await
        .unwrap();
    println!("LOCKED");
    std::io::stdout().flush().unwrap();
    tokio::time::sleep(Duration::from_secs(600)).await;
}

#[tokio::test]
async fn a_dead_holder_never_blocks() {
    let (dir, store) = fresh();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "lock_child_helper",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, dir.path())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    loop {
        match lines.next() {
            Some(Ok(l)) if l.contains("LOCKED") => break,
            Some(Ok(_)) => continue,
            other => panic!("child did not take the lock: {other:?}"),
        }
    }
    let me = LockHolder::this_process("occopus destroy");
    let id = InfraId::new("shared");
    let e = store
        .lock(&id, &me, Duration::from_millis(100))
        .await
        .unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains(&format!(
            "is being changed by pid {} (`occopus build`) since ",
            child.id()
        )),
        "{msg}"
    );
    // The holder dies without releasing anything: the OS releases the lock.
    child.kill().unwrap();
    child.wait().unwrap();
    let got = store.lock(&id, &me, Duration::from_secs(5)).await.unwrap();
    assert_eq!(got.holder().pid, std::process::id());
}

/// A writer waiting for the lock while the holder removes the infrastructure (lock file
/// included) must not end up holding the removed file while a newcomer locks a fresh one:
/// there is still one writer at a time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiter_never_holds_the_lock_of_a_removed_infrastructure() {
    let (_dir, store, id) = fresh_infra("i9", "nine").await;
    let holder = store
        .lock(
            &id,
            &LockHolder::this_process("occopus destroy"),
            Duration::ZERO,
        )
        .await
        .unwrap();
    let waiter = {
        let store = store.clone();
        let id = id.clone();
        tokio::spawn(async move {
            store
                .lock(
                    &id,
                    &LockHolder::this_process("occopus build"),
                    Duration::from_secs(10),
                )
                .await
        })
    };
    // Let the waiter open the old lock file and start polling it.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(store.remove(&id).await.unwrap());
    drop(holder);
    let waited = waiter.await.unwrap().expect("the waiter gets the lock");
    let newcomer = store
        .lock(
            &id,
            &LockHolder::this_process("occopus status"),
            Duration::ZERO,
        )
        .await;
    assert!(
        matches!(newcomer, Err(StateError::Locked { .. })),
        "two writers at once: {newcomer:?}"
    );
    drop(waited);
}

/// Files beside the infrastructure directories (the local backend keeps its address
/// leases there) are not infrastructures and do not break `list`.
#[tokio::test]
async fn list_ignores_files_beside_the_infrastructures() {
    let (dir, store) = fresh();
    store
        .create_infra(&sample_meta("i10", "ten", 1))
        .await
        .unwrap();
    std::fs::write(dir.path().join("infras/loopback.json"), "{}").unwrap();
    std::fs::write(dir.path().join("infras/.loopback.lock"), "").unwrap();
    let all = store.list().await.unwrap();
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(all[0].infra_id.as_str(), "i10");
}
