//! The recorder installed for this test process, `GET /metrics` served on a real listener and
//! parsed as the Prometheus text format.

#![cfg(feature = "exporter")]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bai_metrics::record::{self, Decision, RoundOutcome};
use openmetrics_parser::PrometheusValue;
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn metrics_are_served_described_and_sampled_per_scrape() {
    let handle = bai_metrics::exporter::install().expect("the first recorder");
    assert!(
        bai_metrics::exporter::install().is_err(),
        "a second recorder must be refused"
    );

    record::http_request(
        "GET",
        Some("/session/{session_name}"),
        404,
        Duration::from_millis(3),
    );
    record::http_request("BREW", None, 404, Duration::from_millis(1));
    record::scheduler_round(RoundOutcome::Scheduled);
    record::scheduler_decisions(Decision::Scheduled, 3);
    record::scheduler_decisions(Decision::Cancelled, 0);
    let scrapes = Arc::new(AtomicUsize::new(0));
    let sampler: bai_metrics::exporter::Sampler = {
        let scrapes = Arc::clone(&scrapes);
        Arc::new(move || {
            let scrapes = Arc::clone(&scrapes);
            Box::pin(async move {
                let seen = scrapes.fetch_add(1, Ordering::SeqCst) + 1;
                record::agents("ALIVE", u64::try_from(seen).unwrap_or(0));
            })
        })
    };

    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let port = listener.local_addr().expect("address").port();
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(bai_metrics::exporter::serve(
        listener,
        bai_metrics::exporter::router(handle, sampler),
        shutdown.clone(),
    ));
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let url = format!("http://127.0.0.1:{port}/metrics");
    let mut body = String::new();
    for _ in 0..2 {
        let response = client.get(&url).send().await.expect("scrape");
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers()["content-type"],
            bai_metrics::exporter::CONTENT_TYPE
        );
        body = response.text().await.expect("body");
    }
    let other = client
        .get(format!("http://127.0.0.1:{port}/"))
        .send()
        .await
        .expect("request");
    assert_eq!(other.status(), 404);
    shutdown.cancel();
    server.await.expect("join").expect("served");

    let parsed = openmetrics_parser::prometheus::parse_prometheus(&body)
        .unwrap_or_else(|error| panic!("{error:?}:\n{body}"));
    for metric in [
        bai_metrics::HTTP_REQUESTS,
        bai_metrics::HTTP_REQUEST_DURATION,
        bai_metrics::SCHEDULER_ROUNDS,
        bai_metrics::SCHEDULER_DECISIONS,
        bai_metrics::AGENTS,
    ] {
        let family = parsed
            .families
            .get(metric)
            .unwrap_or_else(|| panic!("{metric} missing:\n{body}"));
        let described = bai_metrics::CATALOGUE
            .iter()
            .find(|entry| entry.name == metric)
            .expect("in the catalogue");
        assert_eq!(family.help, described.help);
    }
    let requests = &parsed.families[bai_metrics::HTTP_REQUESTS];
    let labels: Vec<Vec<(String, String)>> = requests
        .iter_samples()
        .map(|sample| {
            let mut labels: Vec<(String, String)> = sample
                .get_labelset()
                .expect("labels")
                .iter()
                .map(|(name, value)| (name.clone(), value.clone()))
                .collect();
            labels.sort();
            labels
        })
        .collect();
    let pair = |name: &str, value: &str| (name.to_owned(), value.to_owned());
    assert!(labels.contains(&vec![
        pair("method", "GET"),
        pair("route", "/session/{session_name}"),
        pair("status", "404"),
    ]));
    // An unknown method and no route: bounded labels.
    assert!(labels.contains(&vec![
        pair("method", "other"),
        pair("route", "unmatched"),
        pair("status", "404"),
    ]));
    let decisions = &parsed.families[bai_metrics::SCHEDULER_DECISIONS];
    assert_eq!(decisions.iter_samples().count(), 1, "no zero increments");
    let histogram = requests_histogram(&parsed);
    assert_eq!(histogram, 2);
    // The sampler ran once per scrape, before the render.
    let agents = &parsed.families[bai_metrics::AGENTS];
    let alive = agents.iter_samples().next().expect("a sample");
    assert!(matches!(&alive.value, PrometheusValue::Gauge(value) if value.as_f64() == 2.0));
    assert_eq!(scrapes.load(Ordering::SeqCst), 2);
}

/// How many requests the latency histogram holds, over all its series.
fn requests_histogram(
    parsed: &openmetrics_parser::MetricsExposition<
        openmetrics_parser::PrometheusType,
        PrometheusValue,
    >,
) -> u64 {
    parsed.families[bai_metrics::HTTP_REQUEST_DURATION]
        .iter_samples()
        .map(|sample| match &sample.value {
            PrometheusValue::Histogram(histogram) => histogram.count.unwrap_or(0),
            other => panic!("not a histogram: {other:?}"),
        })
        .sum()
}
