//! The baseline of `benches/cyoda.py`: a plain HTTP client reading every
//! entity of a model from a Cyoda service by the read path tsql uses (GET
//! /entity pages at one pointInTime, striped over concurrent readers, a few
//! pages in flight each) and, unless `--fetch-only`, parsing each page with
//! serde_json. Prints `entities seconds`.
//!
//! cargo run --release --example cyoda_plain_client -- URL MODEL VERSION PAGE_SIZE READERS IN_FLIGHT [--fetch-only]

use std::time::Instant;

use futures::StreamExt;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 7 {
        eprintln!(
            "usage: cyoda_plain_client URL MODEL VERSION PAGE_SIZE READERS IN_FLIGHT [--fetch-only]"
        );
        std::process::exit(2);
    }
    let (base, model, version) = (args[1].clone(), args[2].clone(), args[3].clone());
    let size: usize = args[4].parse().expect("PAGE_SIZE is a number");
    let readers: usize = args[5].parse().expect("READERS is a number");
    let in_flight: usize = args[6].parse().expect("IN_FLIGHT is a number");
    let parse = !args.iter().any(|a| a == "--fetch-only");
    // The TLS provider tsql uses too (reqwest is built without one).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .tcp_nodelay(true)
        .build()
        .expect("a client");
    let at = chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string();
    let started = Instant::now();
    let tasks: Vec<_> = (0..readers)
        .map(|k| {
            let (client, base, model, version, at) =
                (client.clone(), base.clone(), model.clone(), version.clone(), at.clone());
            tokio::spawn(async move {
                let pages = futures::stream::iter((0..).map(move |i| k + i * readers))
                    .map(|page| {
                        let (client, base, model, version, at) =
                            (client.clone(), base.clone(), model.clone(), version.clone(), at.clone());
                        async move {
                            let url = format!(
                                "{base}/entity/{model}/{version}?pageSize={size}&pageNumber={page}&pointInTime={at}"
                            );
                            let body = client.get(url).send().await.expect("an answer").bytes().await.expect("a body");
                            let n = if parse {
                                let v: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
                                v.as_array().map_or(0, Vec::len)
                            } else {
                                // Count envelopes without parsing: one "meta" per entity.
                                body.windows(7).filter(|w| w == b"\"meta\":").count()
                            };
                            n
                        }
                    })
                    .buffered(in_flight);
                futures::pin_mut!(pages);
                let mut total = 0;
                while let Some(n) = pages.next().await {
                    total += n;
                    if n < size {
                        break;
                    }
                }
                total
            })
        })
        .collect();
    let mut entities = 0;
    for t in tasks {
        entities += t.await.expect("a reader");
    }
    println!("{entities} {:.3}", started.elapsed().as_secs_f64());
}
