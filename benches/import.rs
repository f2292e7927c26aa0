//! Import benchmark: `imagebump import flux` reading and translating 1,000 Flux objects (499
//! ImageRepository + ImagePolicy pairs, a GitRepository and the ImageUpdateAutomation that
//! selects every policy), as one multi-document stream and as one `kind: List`, then a table:
//! the time of each stage and of each of the passes that read a document (the parser's events
//! that split the stream, `yaml_serde`'s values, the configuration loader's tree of positions),
//! each the median of seven runs. Run with `cargo bench --bench import`.
#![allow(clippy::expect_used)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use imagebump::config::yaml;
use imagebump::import::{flux, read_objects};

const PAIRS: usize = 499;
const RUNS: usize = 7;

fn documents() -> Vec<String> {
    let mut docs = vec![
        "apiVersion: source.toolkit.fluxcd.io/v1\nkind: GitRepository\nmetadata:\n  name: fleet\n  namespace: flux-system\nspec:\n  interval: 1m0s\n  ref:\n    branch: main\n  url: https://github.com/acme/fleet\n".to_string(),
        "apiVersion: image.toolkit.fluxcd.io/v1beta2\nkind: ImageUpdateAutomation\nmetadata:\n  name: fleet\n  namespace: flux-system\nspec:\n  interval: 30m0s\n  sourceRef:\n    kind: GitRepository\n    name: fleet\n  git:\n    commit:\n      author: {email: bot@acme.io, name: bot}\n    push:\n      branch: main\n  update:\n    path: ./clusters\n    strategy: Setters\n".to_string(),
    ];
    for i in 0..PAIRS {
        docs.push(format!(
            "apiVersion: image.toolkit.fluxcd.io/v1beta2\nkind: ImageRepository\nmetadata:\n  name: app-{i}\n  namespace: flux-system\n  labels: {{team: team-{t}}}\nspec:\n  image: ghcr.io/acme/app-{i}\n  interval: 5m0s\n",
            t = i % 7
        ));
        docs.push(format!(
            "apiVersion: image.toolkit.fluxcd.io/v1beta2\nkind: ImagePolicy\nmetadata:\n  name: app-{i}\n  namespace: flux-system\nspec:\n  imageRepositoryRef:\n    name: app-{i}\n  filterTags:\n    pattern: '^v(?P<version>[0-9.]+)$'\n    extract: '$version'\n  policy:\n    semver:\n      range: '>=1.{i}.0 <2.0.0'\n"
        ));
    }
    docs
}

fn median(mut f: impl FnMut()) -> Duration {
    let mut times: Vec<Duration> = (0..RUNS)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    times.sort();
    times[RUNS / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

fn main() {
    let docs = documents();
    let stream: String = docs.iter().map(|d| format!("---\n{d}")).collect();
    let list = {
        let mut s = String::from("apiVersion: v1\nkind: List\nitems:\n");
        for d in &docs {
            for (n, line) in d.lines().enumerate() {
                s.push_str(if n == 0 { "- " } else { "  " });
                s.push_str(line);
                s.push('\n');
            }
        }
        s
    };
    let objects = read_objects("flux.yaml", &stream, "default").expect("read");
    assert_eq!(objects.len(), docs.len());
    assert_eq!(
        read_objects("list.yaml", &list, "default")
            .expect("list")
            .len(),
        docs.len()
    );
    let options = flux::Options::default();
    let imported = flux::translate(&objects, &options).expect("translate");
    assert_eq!(imported.apps.len(), 1);
    assert_eq!(imported.apps[0].images.len(), PAIRS);

    let read = median(|| {
        black_box(read_objects("flux.yaml", &stream, "default").expect("read"));
    });
    let read_list = median(|| {
        black_box(read_objects("list.yaml", &list, "default").expect("list"));
    });
    let translate = median(|| {
        black_box(flux::translate(&objects, &options).expect("translate"));
    });
    // The passes over the text that reading makes, each alone.
    let events = median(|| {
        for event in saphyr_parser::Parser::new_from_str(&stream) {
            black_box(event.expect("event"));
        }
    });
    let values = median(|| {
        for d in &docs {
            black_box(yaml_serde::from_str::<yaml_serde::Value>(d).expect("value"));
        }
    });
    let trees = median(|| {
        for d in &docs {
            black_box(yaml::parse(d).expect("tree"));
        }
    });
    let report = median(|| {
        black_box(imported.report());
    });

    println!(
        "import flux, {} objects ({} KiB as a stream), median of {RUNS} runs:",
        docs.len(),
        stream.len() / 1024
    );
    println!("| stage | ms |");
    println!("|---|---:|");
    println!("| read_objects, multi-document stream | {} |", ms(read));
    println!("| read_objects, one kind: List | {} |", ms(read_list));
    println!(
        "| - parser events over the stream (split into documents) | {} |",
        ms(events)
    );
    println!("| - yaml_serde values, every document | {} |", ms(values));
    println!(
        "| - loader trees (positions), every document | {} |",
        ms(trees)
    );
    println!("| translate | {} |", ms(translate));
    println!("| report text | {} |", ms(report));
}
