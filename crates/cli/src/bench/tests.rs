//! Smoke tests: a tiny run of every target produces numbers and a report. No timing assertion.

use std::time::Duration;

use super::recovery;
use super::report::{self, PointResult, Report};
use super::runner::{run_point, PointLimits};
use super::target::TargetKind;
use super::wal::payload_of;

const TINY: PointLimits = PointLimits {
    warmup: Duration::from_millis(5),
    measure: Duration::from_millis(30),
    records_max: 200,
};

#[test]
fn every_target_appends_and_reports() {
    let dir = tempfile::tempdir().unwrap();
    let payload = payload_of(256);
    let mut points = Vec::new();
    for kind in TargetKind::ALL {
        let target = kind.open(&dir.path().join(format!("{kind:?}"))).unwrap();
        let measured = run_point(target.as_ref(), 3, &payload, TINY).unwrap();
        assert!(measured.records > 0, "{kind} measured no append");
        assert!(
            measured.records <= TINY.records_max,
            "{kind} ignored the record bound"
        );
        assert_eq!(measured.latency_ns.len(), measured.records);
        points.push(PointResult::new(
            kind,
            256,
            3,
            &measured,
            target.records_per_sync(),
        ));
    }
    let steward = points
        .iter()
        .find(|p| p.target == TargetKind::Steward)
        .unwrap();
    assert!(steward.records_per_sync.is_some_and(|r| r >= 1.0));
    let report = Report {
        quick: true,
        dir: dir.path().display().to_string(),
        rounds: 1,
        warmup_seconds: 0.0,
        measure_seconds: 0.0,
        load_average: ("0 0 0".to_owned(), "0 0 0".to_owned()),
        verdicts: report::verdicts(&points, None),
        points,
        recovery: None,
    };
    let text = report::render(&report, &[]);
    for kind in TargetKind::ALL {
        assert!(
            text.contains(&kind.to_string()),
            "{kind} missing from:\n{text}"
        );
    }
    let json = dir.path().join("report.json");
    report::write_json(&report, &json).unwrap();
    let value: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(
        value["points"].as_array().unwrap().len(),
        TargetKind::ALL.len()
    );
}

#[test]
fn steward_points_continue_one_log() {
    let dir = tempfile::tempdir().unwrap();
    let payload = payload_of(100);
    for _ in 0..2 {
        let target = TargetKind::Steward.open(dir.path()).unwrap();
        run_point(target.as_ref(), 2, &payload, TINY).unwrap();
    }
    let (wal, _) = steward_log::Wal::open(dir.path(), steward_log::WalOptions::default()).unwrap();
    let last = wal.last_index().unwrap().0;
    assert!(last > 0);
    assert_eq!(wal.range(1..last + 1).unwrap().len() as u64, last);
}

#[test]
fn recovery_measures_a_small_log_as_reduced() {
    let dir = tempfile::tempdir().unwrap();
    let result = recovery::measure(&dir.path().join("log"), 1 << 20).unwrap();
    assert!(result.reduced);
    assert!(result.record_bytes >= 1 << 20);
    assert!(
        result.records * 256 < result.record_bytes,
        "frames carry headers"
    );
    assert!(result.file_bytes >= result.record_bytes);
    let verdicts = report::verdicts(&[], Some(&result));
    assert_eq!(
        verdicts.last().unwrap().met,
        None,
        "a reduced run must not claim the target"
    );
}

#[test]
fn payloads_are_deterministic_and_sized() {
    assert_eq!(payload_of(256).len(), 256);
    assert_eq!(payload_of(4096), payload_of(4096));
    assert_ne!(payload_of(256)[..8], [0u8; 8]);
}
