//! Pushes Backend.AI test images into a registry through its HTTP API (no Docker engine):
//!
//! ```text
//! push-test-images URL                          the sample set (multi- and single-arch, Docker
//!                                               and OCI, one without kernelspec, one broken)
//! push-test-images URL --repositories N --tags M   N repositories x M tags, for benchmarks
//!   [--prefix PATH] [--platforms amd64,arm64] [--username U --password P] [--concurrency C]
//! ```
//!
//! Benchmark images are multi-arch (a manifest list, even with one platform) because the
//! reference scanner rejects single-arch images; the comparison would otherwise be one-sided.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Instant;

use bai_registry_scanner::testing::{
    Breakage, MediaTypes, Pusher, Shape, TestImage, TestPlatform, kernel_labels,
};
use futures_util::StreamExt;

const USAGE: &str = "usage: push-test-images URL [--repositories N --tags M] [--prefix PATH] \
[--platforms ARCH,...] [--username U --password P] [--concurrency C]";

#[derive(Debug)]
struct Options {
    url: String,
    bench: Option<(usize, usize)>,
    prefix: String,
    platforms: Vec<String>,
    credentials: Option<(String, String)>,
    concurrency: usize,
}

#[tokio::main]
async fn main() -> ExitCode {
    let options = match parse(std::env::args().skip(1).collect()) {
        Ok(options) => options,
        Err(message) => {
            eprintln!("{message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let mut pusher = Pusher::new(&options.url);
    if let Some((username, password)) = &options.credentials {
        pusher = pusher.with_credentials(username, password);
    }
    let images = match options.bench {
        Some((repositories, tags)) => bench_set(&options, repositories, tags),
        None => sample_set(&options.prefix),
    };
    let started = Instant::now();
    let total = images.len();
    let pusher = &pusher;
    let mut results = futures_util::stream::iter(images)
        .map(|image| async move { (pusher.push(&image).await, image) })
        .buffer_unordered(options.concurrency);
    let mut failed = 0;
    while let Some((result, image)) = results.next().await {
        match result {
            Ok(pushed) => {
                if options.bench.is_none() {
                    println!(
                        "pushed {}:{} ({}, {})",
                        pushed.repository, pushed.tag, pushed.media_type, pushed.digest
                    );
                }
            }
            Err(error) => {
                failed += 1;
                eprintln!("{}:{}: {error}", image.repository, image.tag);
            }
        }
    }
    println!(
        "pushed {} of {total} images into {} in {:.1} s",
        total - failed,
        options.url,
        started.elapsed().as_secs_f64()
    );
    if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn parse(args: Vec<String>) -> Result<Options, String> {
    let mut args = args.into_iter();
    let url = args.next().ok_or("the registry URL is missing")?;
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(format!("{url:?} is not an http:// or https:// URL"));
    }
    let mut options = Options {
        url,
        bench: None,
        prefix: "testing".to_owned(),
        platforms: vec!["amd64".to_owned()],
        credentials: None,
        concurrency: 16,
    };
    let (mut repositories, mut tags, mut username, mut password) = (None, None, None, None);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        let number = |text: String| {
            text.parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or(format!("{flag} takes a positive number, not {text:?}"))
        };
        match flag.as_str() {
            "--repositories" => repositories = Some(number(value()?)?),
            "--tags" => tags = Some(number(value()?)?),
            "--concurrency" => options.concurrency = number(value()?)?,
            "--prefix" => options.prefix = value()?,
            "--platforms" => {
                options.platforms = value()?.split(',').map(str::to_owned).collect();
            }
            "--username" => username = Some(value()?),
            "--password" => password = Some(value()?),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    options.bench = match (repositories, tags) {
        (Some(repositories), Some(tags)) => Some((repositories, tags)),
        (None, None) => None,
        _ => return Err("--repositories and --tags go together".to_owned()),
    };
    options.credentials = match (username, password) {
        (Some(username), Some(password)) => Some((username, password)),
        (None, None) => None,
        _ => return Err("--username and --password go together".to_owned()),
    };
    Ok(options)
}

/// `PREFIX/bench-NNN:M.0-ubuntu20.04`, each a manifest list of the chosen platforms.
fn bench_set(options: &Options, repositories: usize, tags: usize) -> Vec<TestImage> {
    let mut images = Vec::with_capacity(repositories * tags);
    for repository in 0..repositories {
        for tag in 0..tags {
            let platforms = options
                .platforms
                .iter()
                .map(|arch| TestPlatform::linux(arch, kernel_labels()))
                .collect();
            images.push(TestImage::new(
                &format!("{}/bench-{repository:03}", options.prefix),
                &format!("{tag}.0-ubuntu20.04"),
                Shape::MultiArch,
                platforms,
            ));
        }
    }
    images
}

/// One image of each kind the scanner must handle.
fn sample_set(prefix: &str) -> Vec<TestImage> {
    let labels = kernel_labels;
    let with = |key: &str, value: &str| {
        let mut labels = kernel_labels();
        labels.insert(key.to_owned(), value.to_owned());
        labels
    };
    let mut no_kernelspec = kernel_labels();
    no_kernelspec.remove("ai.backend.kernelspec");
    let mut annotated = TestPlatform::linux("arm64", labels());
    annotated.annotations = BTreeMap::from([(
        "org.opencontainers.image.ref.name".to_owned(),
        "3.9-ubuntu20.04".to_owned(),
    )]);
    let attestation = TestPlatform {
        architecture: "unknown".to_owned(),
        os: "unknown".to_owned(),
        labels: BTreeMap::new(),
        annotations: BTreeMap::from([(
            "vnd.docker.reference.type".to_owned(),
            "attestation-manifest".to_owned(),
        )]),
    };
    vec![
        TestImage::new(
            &format!("{prefix}/python"),
            "3.9-ubuntu20.04",
            Shape::MultiArch,
            vec![
                TestPlatform::linux("amd64", labels()),
                TestPlatform::linux("arm64", labels()),
            ],
        ),
        TestImage::new(
            &format!("{prefix}/python-cuda"),
            "3.9-ubuntu20.04-cuda12.1",
            Shape::SingleArch,
            vec![TestPlatform::linux(
                "amd64",
                with("ai.backend.accelerators", "cuda"),
            )],
        ),
        TestImage::new(
            &format!("{prefix}/python-oci"),
            "3.9-ubuntu20.04",
            Shape::MultiArch,
            vec![
                TestPlatform::linux("amd64", labels()),
                annotated,
                attestation,
            ],
        )
        .with_media_types(MediaTypes::Oci),
        TestImage::new(
            &format!("{prefix}/r-oci"),
            "4.3-ubuntu22.04",
            Shape::SingleArch,
            vec![TestPlatform::linux(
                "arm64",
                with("ai.backend.resource.max.mem", "8g"),
            )],
        )
        .with_media_types(MediaTypes::Oci),
        TestImage::new(
            &format!("{prefix}/not-a-kernel"),
            "1.0",
            Shape::MultiArch,
            vec![TestPlatform::linux("amd64", no_kernelspec)],
        ),
        TestImage::new(
            &format!("{prefix}/broken"),
            "1.0",
            Shape::MultiArch,
            vec![TestPlatform::linux("amd64", labels())],
        )
        .broken(Breakage::ConfigNotJson),
    ]
}
