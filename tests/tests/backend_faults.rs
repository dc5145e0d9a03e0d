//! Backups through a faulty store: the fault-injection decorator fails well over
//! 10% of the requests (errors before the store, delays past the timeout, writes
//! cut before anything is stored, writes whose answer is lost), under the timeout
//! and retry decorators, over a local directory restic can check.

use std::{path::Path, sync::Arc, time::Duration};

use stash_agent::{
    backend::{
        fault::FaultStats, open_location_with, Backend, FaultBackend, FaultConfig, OpenOptions,
        RetryPolicy, TimeoutPolicy, Wrapping,
    },
    backup::{backup, BackupOptions, Counters},
    repository::{self, InitOptions},
};

use crate::backend_support::*;

/// The local directory without decorators.
fn raw_local(repo: &Path, create: bool) -> Arc<dyn Backend> {
    open_location_with(
        repo.to_str().unwrap(),
        create,
        &OpenOptions {
            wrapping: Some(Wrapping::none()),
            ..OpenOptions::default()
        },
    )
    .unwrap()
}

/// retry(timeout(fault(local))), the order `open_location` uses for real stores.
fn faulty(
    repo: &Path,
    create: bool,
    cfg: FaultConfig,
    attempts: u32,
) -> (Arc<dyn Backend>, Arc<FaultBackend>) {
    let fault = Arc::new(FaultBackend::new(raw_local(repo, create), cfg));
    let wrapped = Wrapping {
        timeout: Some(TimeoutPolicy {
            base: Duration::from_millis(400),
            min_rate: 0,
            assumed_read_size: 0,
            list: Duration::from_millis(400),
        }),
        retry: Some(RetryPolicy {
            max_attempts: attempts,
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(100),
        }),
        connections: Some(8),
    }
    .wrap(fault.clone());
    (wrapped, fault)
}

fn faults(seed: u64, error_rate: f64, cut_write_rate: f64) -> FaultConfig {
    FaultConfig {
        error_rate,
        delay_rate: 0.04,
        delay: Duration::from_secs(2),
        cut_write_rate,
        lost_answer_rate: 0.08,
        seed,
    }
}

fn pack_count(repo: &Path) -> usize {
    let mut n = 0;
    for d in std::fs::read_dir(repo.join("data")).unwrap() {
        n += std::fs::read_dir(d.unwrap().path()).unwrap().count();
    }
    n
}

fn opts(src: &Path) -> BackupOptions {
    BackupOptions {
        targets: vec![src.to_path_buf()],
        // Small packs: many writes to disturb.
        pack_size: Some(1 << 20),
        ..BackupOptions::default()
    }
}

fn restic_check(repo: &Path) {
    run_ok(
        &restic_bin(),
        &[
            "-r",
            repo.to_str().unwrap(),
            "--no-lock",
            "check",
            "--read-data",
        ],
        &[],
    );
}

fn assert_disturbed(s: FaultStats) {
    assert!(
        s.disturbed() * 10 >= s.requests,
        "fewer than 10% of requests disturbed: {s:?}"
    );
}

#[test]
fn backup_through_faults_completes_by_retrying() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    make_tree(&src, 41, 40 << 20);
    let repo = tmp.path().join("repo");
    let rt = rt();
    let stats = rt.block_on(async {
        let (b, fault) = faulty(&repo, true, faults(1, 0.1, 0.08), 12);
        let r = repository::init(b, PASSWORD.as_bytes(), InitOptions::default())
            .await
            .expect("init through faults");
        let res = backup(&r, &opts(&src), Arc::new(Counters::default()))
            .await
            .expect("backup through faults with retries");
        assert!(res.summary.data_blobs > 0);
        // Reruns through faults, each with new data, until every kind of fault has
        // hit at least once (the draws depend on scheduling).
        let mut round = 0;
        while round < 2 || {
            let s = fault.stats();
            s.errors == 0 || s.delays == 0 || s.cut_writes == 0 || s.lost_answers == 0
        } {
            assert!(round < 8, "faults did not all occur: {:?}", fault.stats());
            let r = repository::open(r.backend().clone(), PASSWORD.as_bytes())
                .await
                .expect("open through faults");
            let mut extra = vec![0u8; 3 << 20];
            rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut extra);
            std::fs::write(src.join(format!("added-{round}")), extra).unwrap();
            backup(&r, &opts(&src), Arc::new(Counters::default()))
                .await
                .expect("rerun through faults");
            round += 1;
        }
        fault.stats()
    });
    eprintln!("faults injected: {stats:?}");
    assert_disturbed(stats);
    restic_check(&repo);
    let t = tmp.path().join("t");
    run_ok(
        &restic_bin(),
        &[
            "-r",
            repo.to_str().unwrap(),
            "--no-lock",
            "restore",
            "latest",
            "--target",
            t.to_str().unwrap(),
        ],
        &[],
    );
    assert_same_tree(&src, &restored(&t, &src));
}

#[test]
fn backup_failing_through_faults_leaves_a_valid_repository_and_a_rerun_completes() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    make_tree(&src, 42, 16 << 20);
    let repo = tmp.path().join("repo");
    let rt = rt();
    // A clean repository with one snapshot, so the check has something to verify.
    rt.block_on(async {
        let r = repository::init(
            raw_local(&repo, true),
            PASSWORD.as_bytes(),
            InitOptions::default(),
        )
        .await
        .unwrap();
        let first = src.join("d0");
        backup(&r, &opts(&first), Arc::new(Counters::default()))
            .await
            .unwrap();
    });
    // Writes are cut often and only two attempts are allowed: the backup fails,
    // mid-way (after some packs were stored; runs failing earlier, at the lock or
    // the index, are repeated).
    let packs_before = pack_count(&repo);
    let (err, stats) = rt.block_on(async {
        let (b, fault) = faulty(&repo, false, faults(2, 0.03, 0.35), 2);
        let mut err = None;
        for _ in 0..10 {
            let Ok(r) = repository::open(b.clone(), PASSWORD.as_bytes()).await else {
                continue;
            };
            if let Err(e) = backup(&r, &opts(&src), Arc::new(Counters::default())).await {
                if pack_count(&repo) > packs_before {
                    err = Some(e.to_string());
                    break;
                }
            }
        }
        (err, fault.stats())
    });
    let err = err.expect("the backup failed mid-way under heavy faults");
    assert!(pack_count(&repo) > packs_before);
    eprintln!("failed as expected: {err}\nfaults: {stats:?}");
    assert!(
        err.contains("injected fault") || err.contains("timed out"),
        "the error names the failure: {err}"
    );
    assert!(err.contains("gave up after 2 attempts"), "{err}");
    assert_disturbed(stats);
    restic_check(&repo);
    // A rerun without faults completes, and restic restores it.
    rt.block_on(async {
        let r = repository::open(raw_local(&repo, false), PASSWORD.as_bytes())
            .await
            .unwrap();
        backup(&r, &opts(&src), Arc::new(Counters::default()))
            .await
            .expect("rerun");
    });
    restic_check(&repo);
    let t = tmp.path().join("t");
    run_ok(
        &restic_bin(),
        &[
            "-r",
            repo.to_str().unwrap(),
            "--no-lock",
            "restore",
            "latest",
            "--target",
            t.to_str().unwrap(),
        ],
        &[],
    );
    assert_same_tree(&src, &restored(&t, &src));
}
