//! Crash simulation and damage: a torn tail at every byte offset recovers to the last whole
//! record; damage a crash cannot explain is `Corruption` naming the segment and offset; repair
//! moves damage aside and says what it did.
#![allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use steward_log::testing::FaultyFs;
use steward_log::{
    read_dir_records, scan_dir, Error, LogIndex, ProblemKind, Record, RecoveryMode, Wal, WalOptions,
};

use common::{all_records, copy_dir, fast_tempdir, record, segment_paths, small_segments};

/// Appends `count` records one by one (varying sizes) and returns them.
fn build(dir: &Path, options: WalOptions, count: u64) -> Vec<Record> {
    let (wal, _) = Wal::open(dir, options).unwrap();
    let records: Vec<Record> = (1..=count)
        .map(|i| record(i, 1 + i / 10, (i as usize * 37) % 300))
        .collect();
    for r in &records {
        wal.append(vec![r.clone()]).unwrap();
    }
    records
}

/// (segment path, frame offset, frame bytes) of every record, from the offline reader.
fn frames(dir: &Path) -> Vec<(PathBuf, u64, u64)> {
    read_dir_records(dir, 0..u64::MAX)
        .unwrap()
        .map(|r| {
            let r = r.unwrap();
            (dir.join(&r.segment), r.offset, r.frame_bytes)
        })
        .collect()
}

fn flip_bit(path: &Path, offset: u64) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[offset as usize] ^= 0x10;
    std::fs::write(path, bytes).unwrap();
}

fn big_segments() -> WalOptions {
    WalOptions {
        segment_bytes_max: 64 << 10,
        ..WalOptions::default()
    }
}

/// Cuts the active segment at every byte offset of the last four records, filling the rest
/// with `fill`, and checks recovery keeps exactly the whole records before the cut.
fn cut_everywhere(fill: u8) {
    let base = fast_tempdir();
    let records = build(base.path(), big_segments(), 12);
    let frames = frames(base.path());
    let segment = &frames[0].0;
    let original = std::fs::read(segment).unwrap();
    let work = fast_tempdir();
    let work_segment = work.path().join(segment.file_name().unwrap());
    let first_cut = frames[frames.len() - 4].1;
    let end = frames[frames.len() - 1].1 + frames[frames.len() - 1].2;
    for cut in first_cut..=end {
        let mut bytes = original.clone();
        bytes[cut as usize..end as usize].fill(fill);
        std::fs::write(&work_segment, &bytes).unwrap();
        let (wal, report) = Wal::open(work.path(), big_segments()).unwrap();
        // A record stays whole if the cut spares its header and payload; with a zero fill the
        // padding after the payload is zero anyway, with garbage it is damaged too.
        let whole = (0..frames.len())
            .take_while(|&k| {
                let (_, offset, frame_bytes) = frames[k];
                let kept_up_to = if fill == 0 {
                    offset + 32 + records[k].payload.len() as u64
                } else {
                    offset + frame_bytes
                };
                kept_up_to <= cut
            })
            .count();
        let got = all_records(&wal);
        assert_eq!(got, records[..whole], "cut at {cut}, fill {fill:#x}");
        if let Some(torn) = &report.torn_tail {
            assert_eq!(torn.offset, frames[whole].1, "cut at {cut}");
        }
        // The cut is durable and the log accepts the next record.
        wal.append(vec![record(whole as u64 + 1, 9, 10)]).unwrap();
        drop(wal);
        let (wal, report) = Wal::open(work.path(), big_segments()).unwrap();
        assert_eq!(report.torn_tail, None);
        assert_eq!(wal.last_index(), Some(LogIndex(whole as u64 + 1)));
    }
}

#[test]
fn cut_at_every_offset_with_zeroes_recovers_to_last_whole_record() {
    cut_everywhere(0);
}

#[test]
fn cut_at_every_offset_with_garbage_recovers_to_last_whole_record() {
    cut_everywhere(0xA5);
}

#[test]
fn crash_at_every_byte_of_a_batch_keeps_a_whole_prefix() {
    let base = fast_tempdir();
    let records = build(base.path(), big_segments(), 5);
    let batch: Vec<Record> = (6..=9).map(|i| record(i, 2, 50 + i as usize)).collect();
    let batch_bytes: u64 = batch
        .iter()
        .map(|r| steward_log::format::frame_bytes(r.payload.len() as u64))
        .sum();
    for keep in (0..batch_bytes).step_by(3) {
        let work = fast_tempdir();
        copy_dir(base.path(), work.path());
        let (fs, faults) = FaultyFs::new();
        let options = WalOptions {
            prepare_segments_in_background: false,
            ..big_segments()
        };
        let (wal, _) = Wal::open_with_fs(work.path(), options, Arc::new(fs)).unwrap();
        faults.crash_after_bytes(keep);
        assert!(wal.append(batch.clone()).is_err());
        drop(wal);
        let (wal, _) = Wal::open(work.path(), big_segments()).unwrap();
        let got = all_records(&wal);
        assert_eq!(
            got[..records.len()],
            records[..],
            "acknowledged records lost (keep {keep})"
        );
        let survivors = &got[records.len()..];
        assert_eq!(survivors, &batch[..survivors.len()], "keep {keep}");
    }
}

#[test]
fn bit_flip_in_sealed_segment_is_corruption_naming_segment_and_offset() {
    let dir = fast_tempdir();
    build(dir.path(), small_segments(), 60);
    let frames = frames(dir.path());
    let (segment, offset, _) = frames[3].clone();
    assert_ne!(
        &segment,
        segment_paths(dir.path()).last().unwrap(),
        "must be sealed"
    );
    flip_bit(&segment, offset + 40);
    let err = Wal::open(dir.path(), small_segments()).unwrap_err();
    match err {
        Error::Corruption {
            segment: s,
            offset: o,
            ..
        } => assert_eq!((s, o), (segment.clone(), offset)),
        other => panic!("expected corruption, got {other}"),
    }
    let report = scan_dir(dir.path()).unwrap();
    assert!(report.has_corruption());
    assert_eq!(report.problems[0].file, segment);
    assert_eq!(report.problems[0].offset, offset);
}

#[test]
fn bit_flip_in_last_record_of_active_segment_is_a_torn_tail() {
    let dir = fast_tempdir();
    let records = build(dir.path(), big_segments(), 10);
    let (segment, offset, _) = frames(dir.path())[9].clone();
    flip_bit(&segment, offset + 36);
    let report = scan_dir(dir.path()).unwrap();
    assert!(!report.has_corruption());
    assert!(matches!(
        report.problems[0].kind,
        ProblemKind::TornTail { .. }
    ));
    let (wal, report) = Wal::open(dir.path(), big_segments()).unwrap();
    let torn = report.torn_tail.unwrap();
    assert_eq!((torn.segment, torn.offset), (segment, offset));
    assert_eq!(all_records(&wal), records[..9]);
}

#[test]
fn bit_flip_before_a_valid_record_fails_open_and_repair_moves_it_aside() {
    let dir = fast_tempdir();
    let records = build(dir.path(), big_segments(), 10);
    let (segment, offset, _) = frames(dir.path())[6].clone();
    flip_bit(&segment, offset + 33);
    assert!(matches!(
        Wal::open(dir.path(), big_segments()),
        Err(Error::Corruption { .. })
    ));
    let repair = WalOptions {
        recovery_mode: RecoveryMode::Repair,
        ..big_segments()
    };
    let (wal, report) = Wal::open(dir.path(), repair).unwrap();
    let action = report.repair.unwrap();
    assert_eq!(
        (action.segment.clone(), action.offset),
        (segment.clone(), offset)
    );
    let copy = action.copied_to.unwrap();
    assert_eq!(copy, PathBuf::from(format!("{}.broken", segment.display())));
    assert!(copy.exists());
    assert_eq!(all_records(&wal), records[..6]);
    drop(wal);
    let (wal, report) = Wal::open(dir.path(), big_segments()).unwrap();
    assert_eq!(report.repair, None);
    assert_eq!(wal.last_index(), Some(LogIndex(6)));
}

#[test]
fn damaged_sealed_header_and_later_segments_are_moved_aside_by_repair() {
    let dir = fast_tempdir();
    let records = build(dir.path(), small_segments(), 100);
    let segments = segment_paths(dir.path());
    assert!(segments.len() >= 3);
    flip_bit(&segments[1], 3);
    let err = Wal::open(dir.path(), small_segments()).unwrap_err();
    assert!(
        matches!(err, Error::Corruption { ref segment, offset: 0, .. } if *segment == segments[1])
    );
    let report = steward_log::repair_dir(dir.path()).unwrap();
    let action = report.repair.unwrap();
    assert_eq!(action.moved.len(), segments.len() - 1);
    assert_eq!(segment_paths(dir.path()), segments[..1]);
    let (wal, _) = Wal::open(dir.path(), small_segments()).unwrap();
    let kept = all_records(&wal);
    assert_eq!(kept, records[..kept.len()]);
}

#[test]
fn missing_middle_segment_is_corruption() {
    let dir = fast_tempdir();
    build(dir.path(), small_segments(), 60);
    let segments = segment_paths(dir.path());
    std::fs::remove_file(&segments[1]).unwrap();
    let err = Wal::open(dir.path(), small_segments()).unwrap_err();
    assert!(
        matches!(err, Error::Corruption { ref segment, .. } if *segment == segments[0]),
        "{err}"
    );
}

#[test]
fn interrupted_purge_and_temp_files_are_finished_on_open() {
    let dir = fast_tempdir();
    build(dir.path(), small_segments(), 30);
    // What purge_before(100) leaves when it crashes after creating the new empty segment.
    let other = fast_tempdir();
    let (wal, _) = Wal::open(other.path(), small_segments()).unwrap();
    wal.purge_before(LogIndex(100)).unwrap();
    drop(wal);
    copy_dir(other.path(), dir.path());
    std::fs::write(dir.path().join("00000000000000000200.wal.tmp"), b"half").unwrap();
    let (wal, report) = Wal::open(dir.path(), small_segments()).unwrap();
    assert!(!report.removed_purge_leftovers.is_empty());
    assert_eq!(report.removed_temp_files.len(), 1);
    assert_eq!(wal.last_index(), None);
    assert_eq!(wal.next_index(), Some(LogIndex(100)));
    assert_eq!(segment_paths(dir.path()).len(), 1);
}

#[test]
fn damaged_vote_is_corruption() {
    let dir = fast_tempdir();
    let (wal, _) = Wal::open(dir.path(), small_segments()).unwrap();
    wal.save_vote(b"some vote").unwrap();
    flip_bit(&dir.path().join("vote"), 26);
    assert!(matches!(wal.read_vote(), Err(Error::Corruption { .. })));
    assert!(scan_dir(dir.path()).unwrap().has_corruption());
}
