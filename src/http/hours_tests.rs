//! Tests of `hours`: the rows of both formats, and which format an `Accept` asks for.

use super::*;

fn counts(hour: u32) -> Counts {
    // Every hour its own numbers, and the fourth hour empty.
    if hour % 4 == 3 {
        return Counts::default();
    }
    Counts {
        unique_users: u64::from(hour) * 10,
        clicks: u64::from(hour) * 10 + 1,
        impressions: u64::from(hour) * 10 + 2,
    }
}

fn range(first: u32, last: u32) -> HourRange {
    HourRange { first, last }
}

#[test]
fn json_has_one_object_per_hour_in_order_zero_hours_included() {
    let body = render(range(1, 3), Format::Json, counts);
    assert_eq!(
        body,
        "[{\"hour_start_ms\":3600000,\"unique_users\":10,\"clicks\":11,\"impressions\":12},\n\
         {\"hour_start_ms\":7200000,\"unique_users\":20,\"clicks\":21,\"impressions\":22},\n\
         {\"hour_start_ms\":10800000,\"unique_users\":0,\"clicks\":0,\"impressions\":0}]\n"
    );
    let rows: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(rows.as_array().map(Vec::len), Some(3));
    let one = render(range(0, 0), Format::Json, counts);
    assert_eq!(
        one,
        "[{\"hour_start_ms\":0,\"unique_users\":0,\"clicks\":1,\"impressions\":2}]\n"
    );
}

#[test]
fn csv_has_its_header_then_one_line_per_hour() {
    let body = render(range(2, 3), Format::Csv, counts);
    assert_eq!(
        body,
        "hour_start_ms,unique_users,clicks,impressions\n\
         7200000,20,21,22\n\
         10800000,0,0,0\n"
    );
}

#[test]
fn the_longest_counts_and_the_last_hour_render() {
    let max = Counts {
        unique_users: u64::MAX,
        clicks: u64::MAX,
        impressions: u64::MAX,
    };
    let last = crate::event::hour_of(crate::event::MAX_TIMESTAMP_MS);
    let body = render(range(last, last), Format::Json, |_| max);
    let rows: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(rows[0]["hour_start_ms"], 253_402_300_800_000u64 - 3_600_000);
    assert_eq!(rows[0]["clicks"], u64::MAX);
}

#[test]
fn every_hour_is_read_once_in_order() {
    let mut asked = Vec::new();
    render(range(5, 9), Format::Csv, |h| {
        asked.push(h);
        Counts::default()
    });
    assert_eq!(asked, [5, 6, 7, 8, 9]);
}

#[test]
fn accept_picks_csv_only_when_it_is_preferred() {
    let pick = |values: &[&str]| Format::negotiate(values.iter().map(|v| v.as_bytes()));
    use Format::*;
    assert_eq!(pick(&[]), Json);
    assert_eq!(pick(&["*/*"]), Json);
    assert_eq!(pick(&["text/html"]), Json);
    assert_eq!(pick(&["text/csv"]), Csv);
    assert_eq!(pick(&["TEXT/CSV; charset=utf-8"]), Csv);
    assert_eq!(pick(&["text/csv;q=0.9, */*;q=0.8"]), Csv);
    assert_eq!(pick(&["application/json", "text/csv"]), Json);
    assert_eq!(pick(&["text/csv, application/json"]), Json);
    assert_eq!(pick(&["application/json;q=0.5, text/csv"]), Csv);
    assert_eq!(pick(&["text/csv;q=0.5, application/json;q=0.8"]), Json);
    assert_eq!(pick(&["text/csv;q=0"]), Json);
    assert_eq!(pick(&["text/csv; q=0.001"]), Csv);
    assert_eq!(pick(&["text/csv;q=oops"]), Json);
    assert_eq!(pick(&["text/csv;q=1.5"]), Json);
    assert_eq!(pick(&["text/csv;q=0.0001"]), Json);
    assert_eq!(pick(&["text/csvx"]), Json);
    assert_eq!(pick(&["text/*"]), Json);
}

#[test]
fn a_malformed_or_repeated_weight_never_picks_csv() {
    let pick = |values: &[&str]| Format::negotiate(values.iter().map(|v| v.as_bytes()));
    use Format::*;
    // A `q` without a value, or with an empty one, is no weight.
    assert_eq!(pick(&["text/csv;q"]), Json);
    assert_eq!(pick(&["text/csv; q"]), Json);
    assert_eq!(pick(&["text/csv;q="]), Json);
    assert_eq!(pick(&["text/csv;Q"]), Json);
    // Not qvalues (RFC 9110 §12.4.2): signs, spaces inside, more than three decimals.
    assert_eq!(pick(&["text/csv;q=+1"]), Json);
    assert_eq!(pick(&["text/csv;q=0. 5"]), Json);
    assert_eq!(pick(&["text/csv;q=1.0001"]), Json);
    // A range that gives its weight twice is malformed, whichever comes last.
    assert_eq!(pick(&["text/csv;q=0;q=1"]), Json);
    assert_eq!(pick(&["text/csv;q=1;q=0.5"]), Json);
    assert_eq!(pick(&["text/csv;q=1;q"]), Json);
    // A malformed range of one header does not spoil a good one.
    assert_eq!(pick(&["text/csv;q", "text/csv;q=0.5"]), Csv);
    // Well-formed edges of the grammar still read.
    assert_eq!(pick(&["text/csv;q=1."]), Csv);
    assert_eq!(pick(&["text/csv;q=0.5;charset=utf-8"]), Csv);
}

#[test]
fn weights_read_as_thousandths() {
    assert_eq!(weight(b"1"), Some(1000));
    assert_eq!(weight(b"1.000"), Some(1000));
    assert_eq!(weight(b"1."), Some(1000));
    assert_eq!(weight(b"0.5"), Some(500));
    assert_eq!(weight(b"0.125"), Some(125));
    assert_eq!(weight(b"0"), Some(0));
    assert_eq!(weight(b"1.5"), None);
    assert_eq!(weight(b"2"), None);
    assert_eq!(weight(b""), None);
    assert_eq!(weight(b".5"), None);
    assert_eq!(weight(b"0.1234"), None);
    assert_eq!(weight(b"-0"), None);
}
