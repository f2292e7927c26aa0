//! Editor benchmark: scan (`find`) and edit (`apply`) 10,000 in-memory files of the shapes a
//! config repo holds (Kustomize overlays, Helm values, multi-document manifests), then print a
//! table (plus find + apply on one parsed `Document`). Run with `cargo bench --bench edit` (target: under 1 s for both in release).
#![allow(clippy::expect_used)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use imagebump::edit::{self, HelmField, Target, Update};
use imagebump::reference::ImageRef;

const FILES: usize = 10_000;

fn kustomization(i: usize) -> String {
    format!(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n# overlay {i}\nnamespace: team-{i}\nresources:\n  - ../../base\nimages:\n  - name: ghcr.io/acme/app\n    newTag: 1.{i}.0 # bumped by CI\n  - name: nginx\n    newName: mirror.acme.io/nginx\n    newTag: \"1.25\"\n  - name: redis\n    newTag: 7.2.{i}\n"
    )
}

fn values(i: usize) -> String {
    let mut s = format!(
        "# values {i}\nreplicaCount: 2\nimage:\n  registry: docker.io\n  repository: bitnami/nginx\n  tag: 1.{i}.0-debian-12-r1\n  digest: \"\"\n  pullPolicy: IfNotPresent\n"
    );
    for j in 0..20 {
        s.push_str(&format!(
            "service{j}:\n  enabled: true\n  port: {}\n  annotations:\n    note: \"service {j}\"\n  resources: {{limits: {{cpu: 100m, memory: 128Mi}}}}\n",
            8000 + j
        ));
    }
    s
}

fn manifests(i: usize) -> String {
    let mut s = String::new();
    for d in 0..3 {
        s.push_str(&format!("---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app-{i}-{d}\n  labels: {{app: app-{d}}}\nspec:\n  replicas: 2\n  template:\n    spec:\n      initContainers:\n        - name: init\n          image: ghcr.io/acme/app:1.{i}.0\n      containers:\n        - name: app\n          image: ghcr.io/acme/app:1.{i}.0 # main\n          ports: [{{containerPort: 8080}}]\n        - name: proxy\n          image: envoyproxy/envoy:v1.28.0\n"));
    }
    s
}

fn main() {
    let files: Vec<(String, Target)> = (0..FILES)
        .map(|i| match i % 3 {
            0 => (kustomization(i), Target::Auto),
            1 => (
                values(i),
                Target::Helm {
                    path: edit::parse_value_path("image.tag").expect("path"),
                    field: HelmField::Tag,
                },
            ),
            _ => (manifests(i), Target::Auto),
        })
        .collect();
    let bytes: usize = files.iter().map(|(s, _)| s.len()).sum();
    let image_for = |t: &Target| match t {
        Target::Helm { .. } => "docker.io/bitnami/nginx",
        _ => "ghcr.io/acme/app",
    };

    let start = Instant::now();
    let mut found = 0;
    for (src, target) in &files {
        let image = ImageRef::parse(image_for(target)).expect("image");
        found += black_box(edit::find(src.as_bytes(), target, &image).expect("find")).len();
    }
    let scan = start.elapsed();

    let start = Instant::now();
    let mut changes = 0;
    for (src, target) in &files {
        let update = Update::new(image_for(target), Some("2.0.0"), None).expect("update");
        changes += black_box(edit::apply(src.as_bytes(), target, &update).expect("apply"))
            .changes
            .len();
    }
    let apply = start.elapsed();

    // The engine's pattern, parsing each file once: find, then apply on the same Document.
    let start = Instant::now();
    let mut both = 0;
    for (src, target) in &files {
        let update = Update::new(image_for(target), Some("2.0.0"), None).expect("update");
        let doc = edit::Document::parse(src.as_bytes()).expect("parse");
        both += black_box(doc.find(target, &update.image).expect("find")).len();
        black_box(doc.apply(target, &update).expect("apply"));
    }
    let once = start.elapsed();

    // For comparison: reading every file with the full parser alone (what every read cost
    // before the quick reader; files outside its subset still cost this).
    let start = Instant::now();
    let mut nodes = 0;
    for (src, _) in &files {
        nodes += black_box(edit::scan::parse_full(src).expect("parse"))
            .nodes
            .len();
    }
    let full = start.elapsed();
    let start = Instant::now();
    let mut quick_nodes = 0;
    for (src, _) in &files {
        quick_nodes += black_box(edit::read::parse(src).expect("parse"))
            .nodes
            .len();
    }
    let quick = start.elapsed();
    assert_eq!(nodes, quick_nodes, "both readers build the same trees");

    let per = |d: Duration| d.as_secs_f64() * 1e6 / FILES as f64;
    println!(
        "files: {FILES}, {:.1} MiB in memory",
        bytes as f64 / 1048576.0
    );
    let mib_s = |d: Duration| bytes as f64 / 1048576.0 / d.as_secs_f64();
    println!(
        "{:<8} {:>10} {:>12} {:>8} {:>10}",
        "step", "total ms", "µs per file", "MiB/s", "results"
    );
    // find parses each file once; apply twice (the input, then the edited text as a check);
    // `both` is find + apply on one Document: two parses (the input once, the check). `read` is
    // one parse (the quick reader, the full parser where it gives up), `read-full` one parse by
    // the full parser alone; their results column counts tree nodes.
    for (step, d, n) in [
        ("find", scan, found),
        ("apply", apply, changes),
        ("both", once, both),
        ("read", quick, quick_nodes),
        ("read-full", full, nodes),
    ] {
        println!(
            "{:<8} {:>10.1} {:>12.1} {:>8.1} {:>10}",
            step,
            d.as_secs_f64() * 1e3,
            per(d),
            mib_s(d),
            n
        );
    }
    let total = scan + apply;
    println!(
        "find + apply {:.3} s ({} the 1 s target); on one Document {:.3} s",
        total.as_secs_f64(),
        if total < Duration::from_secs(1) {
            "within"
        } else {
            "over"
        },
        once.as_secs_f64()
    );
}
