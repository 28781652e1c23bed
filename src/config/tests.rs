use super::*;

#[test]
fn defaults_match_the_design() {
    let c = Config::parse_from(["hourtally"]);
    assert_eq!(c.listen, "127.0.0.1:8080");
    assert_eq!(c.retention_hours, 48);
    assert_eq!(c.queue_capacity, 1 << 20);
    assert_eq!(c.max_future_hours, 1);
    assert_eq!(c.limits(), Limits::default());
    assert_eq!(c.max_range_hours, 168);
    assert_eq!(c.data_dir, std::path::PathBuf::from("./hourtally-data"));
    assert!(!c.ephemeral);
    assert_eq!(
        c.fsync_policy(),
        FsyncPolicy::Interval(Duration::from_millis(100))
    );
}

#[test]
fn the_writer_parks_at_once_when_it_cannot_have_a_core_of_its_own() {
    assert_eq!(Idle::auto(1, 1), Idle::Park);
    assert_eq!(Idle::auto(2, 2), Idle::Park);
    assert_eq!(Idle::auto(4, 2), Idle::Park);
    assert_eq!(Idle::auto(1, 2), Idle::Spin);
    assert_eq!(Idle::auto(7, 8), Idle::Spin);
    let idle = |args: &[&str]| {
        let mut all = vec!["hourtally"];
        all.extend_from_slice(args);
        Config::parse_from(all).writer_idle()
    };
    // The default, one worker per CPU, leaves no core to the writer.
    assert_eq!(idle(&[]), Idle::Park);
    assert_eq!(idle(&["--workers", "256"]), Idle::Park);
    assert_eq!(
        idle(&["--workers", "256", "--writer-idle", "spin"]),
        Idle::Spin
    );
    assert_eq!(idle(&["--writer-idle", "park"]), Idle::Park);
    let spare = cpus() > 1;
    assert_eq!(idle(&["--workers", "1"]) == Idle::Spin, spare);
}

#[test]
fn out_of_range_values_are_refused() {
    assert!(Config::try_parse_from(["hourtally", "--retention-hours", "0"]).is_err());
    assert!(Config::try_parse_from(["hourtally", "--max-headers", "129"]).is_err());
    assert!(Config::try_parse_from(["hourtally", "--queue-capacity", "x"]).is_err());
    assert!(Config::try_parse_from(["hourtally", "--workers", "100000"]).is_err());
    assert!(Config::try_parse_from(["hourtally", "--max-connections", "0"]).is_err());
    assert!(Config::try_parse_from(["hourtally", "--log-format", "xml"]).is_err());
    assert!(Config::try_parse_from(["hourtally", "--writer-idle", "nap"]).is_err());
    assert!(Config::try_parse_from(["hourtally", "--max-range-hours", "0"]).is_err());
    // The dashboard's 48 hours must be one range.
    assert!(Config::try_parse_from(["hourtally", "--max-range-hours", "47"]).is_err());
    assert!(Config::try_parse_from(["hourtally", "--max-range-hours", "48"]).is_ok());
    assert!(Config::try_parse_from(["hourtally", "--max-range-hours", "10001"]).is_err());
}

/// `validate` of these flags (after the program's name), parsed as the binary parses them.
fn validate(args: &[&str]) -> Result<Admission, String> {
    let mut all = vec!["hourtally"];
    all.extend_from_slice(args);
    Config::try_from_args(all).expect("flags parse").validate()
}

#[test]
fn a_cold_retention_shorter_than_the_ring_is_refused() {
    let err = validate(&["--retention-hours", "48", "--cold-retention-hours", "47"])
        .expect_err("shorter than the ring");
    assert!(
        err.starts_with("--cold-retention-hours (47) must be 0 or at least"),
        "{err}"
    );
    assert!(!err.contains('\n'), "{err}");
    for ok in ["0", "48", "720"] {
        assert!(validate(&["--retention-hours", "48", "--cold-retention-hours", ok]).is_ok());
    }
    // With no cold tier the flag does not matter.
    assert!(validate(&["--ephemeral", "--cold-retention-hours", "5"]).is_ok());
}

#[test]
fn an_empty_nats_url_is_refused() {
    for nats in ["", " ", "nats://127.0.0.1:4222,", ",nats://127.0.0.1:4222"] {
        let err = validate(&["--nats", nats]).expect_err(nats);
        assert!(err.starts_with("--nats: an empty URL"), "{nats:?}: {err}");
        assert!(!err.contains('\n'), "{err}");
    }
    assert!(validate(&["--nats", "nats://a:4222,nats://b:4222"]).is_ok());
    assert!(validate(&[]).is_ok());
}

#[test]
fn ephemeral_with_a_given_data_dir_is_refused_but_not_with_the_default() {
    let err = validate(&["--ephemeral", "--data-dir", "/tmp/x"]).expect_err("refused");
    assert!(
        err.contains("--ephemeral") && err.contains("--data-dir") && err.contains("/tmp/x"),
        "{err}"
    );
    // Given as its default's value: still given.
    assert!(validate(&["--data-dir", "./hourtally-data", "--ephemeral"]).is_err());
    assert!(validate(&["--ephemeral"]).is_ok());
    assert!(validate(&["--data-dir", "/tmp/x"]).is_ok());
    let c = Config::try_from_args(["hourtally"]).expect("parses");
    assert!(!c.data_dir_given);
    assert_eq!(c.data_dir, std::path::PathBuf::from("./hourtally-data"));
}

#[test]
fn ack_local_without_nats_is_refused() {
    let err = validate(&["--ack", "local"]).expect_err("refused");
    assert!(
        err.contains("--ack local") && err.contains("--nats"),
        "{err}"
    );
    assert!(validate(&["--ack", "local", "--nats", "nats://a:4222"]).is_ok());
    // The default needs no cluster.
    assert!(validate(&["--ack", "log"]).is_ok());
}

#[test]
fn a_retention_that_a_future_post_could_seal_is_refused() {
    let parse = |r: &str, f: &str| {
        Config::parse_from(["hourtally", "--retention-hours", r, "--max-future-hours", f])
            .validate()
    };
    for (r, f) in [("2", "2"), ("1", "0"), ("2", "1"), ("48", "47")] {
        let err = parse(r, f).expect_err("refused");
        assert!(err.contains("--retention-hours"), "{err}");
    }
    // By default a server keeps a cold tier of 720 hours: late events reach back 717
    // hours, events with an id the ring's window.
    let windows = |a: Admission| (a.max_past_hours, a.max_past_with_id);
    assert_eq!(parse("3", "1").map(windows), Ok((717, 0)));
    assert_eq!(parse("48", "1").map(windows), Ok((717, 45)));
    let ephemeral = Config::parse_from(["hourtally", "--ephemeral"]).validate();
    assert_eq!(ephemeral.map(windows), Ok((45, 45)));
    // A cluster's server with a data directory keeps one too (the stream records it); an
    // --ephemeral one keeps none.
    let cluster = |extra: &[&str]| {
        let mut args = vec!["hourtally", "--nats", "nats://a:4222"];
        args.extend_from_slice(extra);
        let c = Config::parse_from(args);
        (c.keeps_cold_tier(), c.validate().map(windows))
    };
    assert_eq!(cluster(&[]), (true, Ok((717, 45))));
    assert_eq!(cluster(&["--ephemeral"]), (false, Ok((45, 45))));
    assert_eq!(
        cluster(&["--cold-retention-hours", "0"]),
        (false, Ok((45, 45)))
    );
}
