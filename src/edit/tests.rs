//! Unit tests of the editor: one `check` helper, raw-string inputs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

fn update(r: &str) -> Update {
    Update::parse(r).unwrap()
}

fn helm(path: &str, field: HelmField) -> Target {
    Target::Helm {
        path: parse_value_path(path).unwrap(),
        field,
    }
}

/// Apply and compare with the expected text byte for byte.
#[track_caller]
fn check(input: &str, target: Target, update: Update, expected: &str) {
    let edited = apply(input.as_bytes(), &target, &update).unwrap();
    let got = String::from_utf8(edited.bytes).unwrap();
    assert_eq!(
        got, expected,
        "\n--- got ---\n{got}\n--- want ---\n{expected}"
    );
    assert_eq!(edited.changes.is_empty(), input == expected);
}

#[track_caller]
fn refuse(input: &str, target: Target, update: Update) -> EditError {
    apply(input.as_bytes(), &target, &update).unwrap_err()
}

#[test]
fn kustomize_updates_new_tag_keeping_everything_else() {
    check(
        r#"# overlay
images:
  - name: nginx   # web
    newTag: 1.25.0

  - name: ghcr.io/org/app2
    newTag: "1.0"
"#,
        Target::Kustomize,
        update("docker.io/library/nginx:1.27.1"),
        r#"# overlay
images:
  - name: nginx   # web
    newTag: 1.27.1

  - name: ghcr.io/org/app2
    newTag: "1.0"
"#,
    );
}

#[test]
fn kustomize_matches_new_name_and_inserts_missing_new_tag() {
    check(
        "images:\r\n- name: app\r\n  newName: ghcr.io/org/app # x\r\nresources: [a.yaml]\r\n",
        Target::Kustomize,
        update("ghcr.io/org/app:1.10"),
        "images:\r\n- name: app\r\n  newName: ghcr.io/org/app # x\r\n  newTag: \"1.10\"\r\nresources: [a.yaml]\r\n",
    );
}

#[test]
fn kustomize_insert_at_end_without_final_newline_and_in_flow_mapping() {
    check(
        "images:\n  - name: app",
        Target::Kustomize,
        update("app:v2"),
        "images:\n  - name: app\n    newTag: v2",
    );
    check(
        "images: [{name: app, newName: x.io/app}]\n",
        Target::Kustomize,
        update("x.io/app:v2"),
        "images: [{name: app, newName: x.io/app, newTag: v2}]\n",
    );
}

#[test]
fn kustomize_digest_and_stale_digest() {
    let input = format!("images:\n- name: app\n  newTag: v1\n  digest: {D1}\n");
    check(
        &input,
        Target::Kustomize,
        update(&format!("app:v2@{D2}")),
        &format!("images:\n- name: app\n  newTag: v2\n  digest: {D2}\n"),
    );
    let err = refuse(&input, Target::Kustomize, update("app:v2"));
    assert!(
        matches!(err, EditError::Unsupported { line: 4, .. }),
        "{err}"
    );
}

#[test]
fn kustomize_duplicate_entries_are_ambiguous() {
    let err = refuse(
        "images:\n- name: nginx\n  newTag: a\n- name: docker.io/nginx\n  newTag: b\n",
        Target::Kustomize,
        update("nginx:c"),
    );
    assert!(matches!(err, EditError::Ambiguous { line: 4, .. }), "{err}");
}

#[test]
fn manifest_updates_every_container_in_every_document() {
    check(
        r#"---
apiVersion: apps/v1
kind: Deployment
spec:
  template:
    spec:
      initContainers:
        - name: init
          image: "localhost:5000/app"
      containers:
        - name: app
          image: localhost:5000/app:1.0.0 # pinned
        - name: other
          image: localhost:5000/app2:1.0.0
...
---
apiVersion: batch/v1
kind: CronJob
spec:
  jobTemplate:
    spec:
      template:
        spec:
          containers: [{name: c, image: 'localhost:5000/app:0.9'}]
"#,
        Target::Manifest,
        update("localhost:5000/app:1.2.0"),
        r#"---
apiVersion: apps/v1
kind: Deployment
spec:
  template:
    spec:
      initContainers:
        - name: init
          image: "localhost:5000/app:1.2.0"
      containers:
        - name: app
          image: localhost:5000/app:1.2.0 # pinned
        - name: other
          image: localhost:5000/app2:1.0.0
...
---
apiVersion: batch/v1
kind: CronJob
spec:
  jobTemplate:
    spec:
      template:
        spec:
          containers: [{name: c, image: 'localhost:5000/app:0.9'}]
"#
        .replace("'localhost:5000/app:0.9'", "'localhost:5000/app:1.2.0'")
        .as_str(),
    );
}

#[test]
fn manifest_digest_rules() {
    let pod = |image: &str| format!("kind: Pod\nspec:\n  containers:\n  - image: {image}\n");
    // New tag, no digest: refused, the digest would pin the old image (issue 20 item 4).
    let err = refuse(
        &pod(&format!("app:1@{D1}")),
        Target::Manifest,
        update("app:2"),
    );
    assert!(err.to_string().contains("pins a digest"), "{err}");
    // Same tag, no digest: nothing changes.
    check(
        &pod(&format!("app:1@{D1}")),
        Target::Manifest,
        update("app:1"),
        &pod(&format!("app:1@{D1}")),
    );
    // Digest only: what follows the name is replaced, the tag goes (issue 13).
    check(
        &pod(&format!("app:1@{D1}")),
        Target::Manifest,
        update(&format!("app@{D2}")),
        &pod(&format!("app@{D2}")),
    );
    // Tag and digest.
    check(
        &pod("docker.io/app"),
        Target::Manifest,
        update(&format!("app:3@{D2}")),
        &pod(&format!("docker.io/app:3@{D2}")),
    );
}

#[test]
fn helm_paths_fields_and_quoting() {
    let values = r#"image:
  repository: bitnami/nginx
  tag: 1.25.0  # the tag
  digest: ""
api:
  image: {repository: ghcr.io/org/api, tag: '1.0'}
sidecars:
  - image: {tag: a}
  - image:
      tag: b
"a.b":
  tag: x
"#;
    check(
        values,
        helm("image.tag", HelmField::Tag),
        update("nginx:1.27.0"),
        &values.replace("tag: 1.25.0", "tag: 1.27.0"),
    );
    check(
        values,
        helm("api.image.tag", HelmField::Tag),
        update("ghcr.io/org/api:1.10"),
        &values.replace("tag: '1.0'", "tag: '1.10'"),
    );
    check(
        values,
        helm("sidecars[1].image.tag", HelmField::Tag),
        update("x:1.10"),
        &values.replace("tag: b", "tag: \"1.10\""),
    );
    check(
        values,
        helm("\"a.b\".tag", HelmField::Tag),
        update("x:yes"),
        &values.replace("tag: x", "tag: \"yes\""),
    );
    check(
        values,
        helm("image.digest", HelmField::Digest),
        update(&format!("nginx@{D1}")),
        &values.replace("digest: \"\"", &format!("digest: \"{D1}\"")),
    );
    check(
        values,
        helm("image.repository", HelmField::Repository),
        update("docker.io/bitnami/nginx:1"),
        values,
    );
    check(
        values,
        helm("image.repository", HelmField::Repository),
        update("ghcr.io/x/nginx:1"),
        &values.replace("bitnami/nginx", "ghcr.io/x/nginx"),
    );
}

#[test]
fn helm_ref_field() {
    check(
        "image: nginx:1.0 # x\n",
        helm("image", HelmField::Ref),
        update("docker.io/library/nginx:1.1"),
        "image: nginx:1.1 # x\n",
    );
}

#[test]
fn helm_refusals_leave_nothing() {
    let values = "image:\n  tag: 1.0.0\n  list: [a]\n  block: |\n    x\ndup: 1\ndup: 2\n";
    let cases = [
        ("image.nope", "PathNotFound"),
        ("image.tag.x", "PathNotFound"),
        ("image.list", "NotScalar"),
        ("image.list[3]", "PathNotFound"),
        ("image.block", "Unsupported"),
        ("dup", "Ambiguous"),
    ];
    for (path, want) in cases {
        let err = refuse(values, helm(path, HelmField::Tag), update("x:2"));
        assert!(format!("{err:?}").starts_with(want), "{path}: {err:?}");
    }
    let err = refuse("a: [\n", helm("a", HelmField::Tag), update("x:2"));
    assert!(matches!(err, EditError::Parse { .. }), "{err:?}");
}

#[test]
fn invalid_values_are_refused() {
    assert!(Update::parse("app:-bad").is_err());
    assert!(Update::new("app", Some(".x"), None).is_err());
    assert!(Update::new("app", None, Some("sha256:12")).is_err());
    assert!(Update::new("app", None, None).is_err());
    let p = parse_value_path("image.tag").unwrap();
    assert!(set_value(b"image: {tag: a}\n", &p, HelmField::Tag, "bad tag").is_err());
    assert!(set_value(b"image: {tag: a}\n", &p, HelmField::Digest, "sha256:zz").is_err());
}

#[test]
fn set_value_writes_exactly_the_value() {
    let p = parse_value_path("image.tag").unwrap();
    let out = set_value(b"image: {tag: a}\n", &p, HelmField::Tag, "012").unwrap();
    assert_eq!(out.bytes, b"image: {tag: \"012\"}\n");
    assert_eq!(
        out.changes,
        vec![Change {
            line: 1,
            column: 14,
            old: "a".into(),
            new: "012".into(),
            inserted: false,
        }]
    );
}

#[test]
fn a_path_through_an_alias_is_refused_and_the_anchor_itself_is_edited() {
    // Issue 20 item 2: editing through the alias would change every user of the anchor.
    let err = refuse(
        "defaults: &tag 1.0.0\nimage:\n  tag: *tag\nother:\n  tag: *tag\n",
        helm("image.tag", HelmField::Tag),
        update("x:1.1.0"),
    );
    let message = err.to_string();
    assert!(
        message.contains("through an alias")
            && message.contains("(line 1)")
            && message.contains("line 5"),
        "{message}"
    );
    // Addressing the anchor is how to change them all.
    check(
        "defaults: &tag 1.0.0\nimage:\n  tag: *tag\n",
        helm("defaults", HelmField::Tag),
        update("x:1.1.0"),
        "defaults: &tag 1.1.0\nimage:\n  tag: *tag\n",
    );
}

#[test]
fn flux_markers() {
    let src = r#"spec:
  containers:
  - image: ghcr.io/org/app:1.0.0 # {"$imagepolicy": "flux-system:app"}
values:
  image:
    repository: ghcr.io/org/app # {"$imagepolicy": "flux-system:app:name"}
    tag: 1.0.0 # {"$imagepolicy": "flux-system:app:tag"}
    other: 1.0.0 # {"$imagepolicy": "flux-system:other:tag"}
    digest: none # {"$imagepolicy": "flux-system:app:digest"}
note: |
  tag: 1.0.0 # {"$imagepolicy": "flux-system:app:tag"}
"#;
    let marker = Target::Marker {
        policy: "flux-system:app".into(),
    };
    check(
        src,
        marker,
        update(&format!("ghcr.io/org/app:1.1.0@{D1}")),
        &src.replacen("app:1.0.0 #", &format!("app:1.1.0@{D1} #"), 1)
            .replacen(
                "tag: 1.0.0 # {\"$imagepolicy\": \"flux-system:app:tag\"}\n    other",
                "tag: 1.1.0 # {\"$imagepolicy\": \"flux-system:app:tag\"}\n    other",
                1,
            )
            .replace("digest: none", &format!("digest: {D1}")),
    );
}

#[test]
fn auto_covers_kustomize_manifests_and_whole_ref_markers() {
    let kust = "images:\n- name: app\n  newTag: v1\n";
    check(
        kust,
        Target::Auto,
        update("app:v2"),
        "images:\n- name: app\n  newTag: v2\n",
    );
    let helm_values = "image: ghcr.io/o/app:v1 # {\"$imagepolicy\": \"ns:app\"}\ntag: v1 # {\"$imagepolicy\": \"ns:app:tag\"}\n";
    check(
        helm_values,
        Target::Auto,
        update("ghcr.io/o/app:v2"),
        &helm_values.replacen("app:v1", "app:v2", 1),
    );
}

#[test]
fn find_reports_what_is_deployed() {
    let src = "# c\nimages:\n  - name: nginx\n    newName: ghcr.io/org/nginx\n    newTag: '1.0'\n";
    let image = ImageRef::parse("ghcr.io/org/nginx").unwrap();
    let found = find(src.as_bytes(), &Target::Auto, &image).unwrap();
    assert_eq!(
        found,
        vec![Found {
            line: 3,
            column: 11,
            name: Some("ghcr.io/org/nginx".into()),
            tag: Some("1.0".into()),
            digest: None
        }]
    );
    let pod = format!("kind: Pod\nspec:\n  containers:\n  - image: app@{D1}\n");
    let found = find(
        pod.as_bytes(),
        &Target::Manifest,
        &ImageRef::parse("app").unwrap(),
    )
    .unwrap();
    assert_eq!(
        found,
        vec![Found {
            line: 4,
            column: 12,
            name: Some("app".into()),
            tag: None,
            digest: Some(D1.into())
        }]
    );
}

#[test]
fn preserves_bom_unicode_tabs_and_comments() {
    let src = "\u{feff}# ünïcode ✓\nimage:\t# tab\n  tag: \"1.0\"\t# é\n";
    check(
        src,
        helm("image.tag", HelmField::Tag),
        update("x:2.0"),
        "\u{feff}# ünïcode ✓\nimage:\t# tab\n  tag: \"2.0\"\t# é\n",
    );
}

#[test]
fn already_up_to_date_is_no_change() {
    let src = "image:\n  tag: v1\n";
    let out = apply(
        src.as_bytes(),
        &helm("image.tag", HelmField::Tag),
        &update("x:v1"),
    )
    .unwrap();
    assert!(out.changes.is_empty());
    assert_eq!(out.bytes, src.as_bytes());
}

#[test]
fn value_paths_parse_and_print() {
    for (input, printed) in [
        ("image.tag", "image.tag"),
        ("sidecars[1].image.tag", "sidecars[1].image.tag"),
        ("a.\"b.c\".d", "a.\"b.c\".d"),
        ("[0].a", "[0].a"),
    ] {
        assert_eq!(parse_value_path(input).unwrap().to_string(), printed);
    }
    for bad in ["", "a.", "a..b", "a[x]", "a.\"b"] {
        assert!(parse_value_path(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn alias_bomb_is_bounded() {
    let mut src = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..40 {
        let p = i - 1;
        src.push_str(&format!(
            "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
        ));
    }
    src.push_str("image:\n  tag: v1\n");
    check(
        &src,
        helm("image.tag", HelmField::Tag),
        update("x:v2"),
        &src.replace("tag: v1", "tag: v2"),
    );
}

#[test]
fn non_utf8_and_huge_inputs_are_refused() {
    let t = helm("a", HelmField::Tag);
    assert_eq!(
        apply(b"a: \xff\n", &t, &update("x:1")).unwrap_err(),
        EditError::NotUtf8
    );
    let huge = vec![b'#'; tree::MAX_BYTES + 1];
    assert!(matches!(
        apply(&huge, &t, &update("x:1")).unwrap_err(),
        EditError::TooLarge { .. }
    ));
}

#[test]
fn empty_values_get_a_value_after_the_colon() {
    let t = || helm("image.tag", HelmField::Tag);
    check(
        "image:\n  tag:\n  x: 1\n",
        t(),
        update("x:1.10"),
        "image:\n  tag: \"1.10\"\n  x: 1\n",
    );
    check(
        "image:\n  tag:   # c\n",
        t(),
        update("x:v2"),
        "image:\n  tag: v2   # c\n",
    );
    check(
        "image: {tag: , x: 1}\n",
        t(),
        update("x:v2"),
        "image: {tag: v2 , x: 1}\n",
    );
    check("image:\n  tag:", t(), update("x:v2"), "image:\n  tag: v2");
    check(
        "image:\n  tag: !!str 1.9\n",
        t(),
        update("x:v2"),
        "image:\n  tag: !!str v2\n",
    );
}

#[test]
fn safety_net_refuses_an_edit_that_changes_other_data() {
    // Splice a value that would swallow the rest of the line into the scalar.
    let src = "a: x\nb: y\n";
    let tree = read::parse(src).unwrap();
    let a = tree.get(tree.roots[0], "a").unwrap();
    let mut expect = verify::Expectations::default();
    expect.values.insert(a, "v2".into());
    assert!(verify::check(src, &tree, "a: v2\nb: z\n", &expect).is_err());
    assert!(verify::check(src, &tree, "a: v2 #\nb: y\n", &expect).is_ok());
    assert!(verify::check(src, &tree, "a: 1.10\nb: y\n", &expect).is_err());
    assert!(verify::check(src, &tree, "a: [v2]\nb: y\n", &expect).is_err());
}

#[test]
fn find_for_helm_and_markers() {
    let src = "image:\n  repository: ghcr.io/o/app\n  tag: \"1.0\" # {\"$imagepolicy\": \"ns:app:tag\"}\n";
    let image = ImageRef::parse("ghcr.io/o/app").unwrap();
    let found = find(src.as_bytes(), &helm("image.tag", HelmField::Tag), &image).unwrap();
    assert_eq!(
        found,
        vec![Found {
            line: 3,
            column: 8,
            name: None,
            tag: Some("1.0".into()),
            digest: None
        }]
    );
    let found = find(
        src.as_bytes(),
        &Target::Marker {
            policy: "ns:app".into(),
        },
        &image,
    )
    .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].tag.as_deref(), Some("1.0"));
    let found = find(
        src.as_bytes(),
        &Target::Marker {
            policy: "ns:other".into(),
        },
        &image,
    )
    .unwrap();
    assert!(found.is_empty());
}

fn renamed(r: &str, new_name: &str) -> Update {
    update(r).with_new_name(new_name).unwrap()
}

#[test]
fn kustomize_new_name_is_replaced_or_inserted_before_new_tag() {
    // Replaced, keeping the quotes and the comment.
    check(
        "images:\n  - name: nginx\n    newName: 'old.io/nginx' # mirror\n    newTag: 1.25.0\n",
        Target::Kustomize,
        renamed("nginx:1.27.1", "mirror.acme.io/nginx"),
        "images:\n  - name: nginx\n    newName: 'mirror.acme.io/nginx' # mirror\n    newTag: 1.27.1\n",
    );
    // Inserted with the siblings' indentation and the file's line ending, newName then newTag.
    check(
        "images:\r\n    - name: nginx\r\n      digest: sha256:1111111111111111111111111111111111111111111111111111111111111111\r\nx: 1\r\n",
        Target::Kustomize,
        renamed(&format!("nginx:1.27.1@{D2}"), "mirror.acme.io/nginx"),
        &format!(
            "images:\r\n    - name: nginx\r\n      digest: {D2}\r\n      newName: mirror.acme.io/nginx\r\n      newTag: 1.27.1\r\nx: 1\r\n"
        ),
    );
    // A new name alone keeps a pinned digest; flow entries get the key too.
    check(
        &format!("images: [{{name: nginx, digest: {D1}}}]\n"),
        Target::Kustomize,
        renamed("nginx", "mirror.acme.io/nginx"),
        &format!("images: [{{name: nginx, digest: {D1}, newName: mirror.acme.io/nginx}}]\n"),
    );
}

#[test]
fn kustomize_new_name_is_idempotent_and_matches_the_renamed_entry() {
    let done = "images:\n- name: nginx\n  newName: mirror.acme.io/nginx\n  newTag: 1.27.1\n";
    check(
        done,
        Target::Kustomize,
        renamed("nginx:1.27.1", "mirror.acme.io/nginx"),
        done,
    );
    // Already named so: nothing inserted.
    check(
        "images:\n- name: docker.io/library/nginx\n  newTag: 1.27.1\n",
        Target::Kustomize,
        renamed("nginx:1.27.1", "nginx"),
        "images:\n- name: docker.io/library/nginx\n  newTag: 1.27.1\n",
    );
}

#[test]
fn new_name_rewrites_the_name_part_of_manifests_and_markers() {
    check(
        "spec:\n  containers:\n  - image: nginx:1.25 # web\n  - image: \"nginx\"\n",
        Target::Manifest,
        renamed("nginx:1.27.1", "mirror.acme.io/nginx"),
        "spec:\n  containers:\n  - image: mirror.acme.io/nginx:1.27.1 # web\n  - image: \"mirror.acme.io/nginx:1.27.1\"\n",
    );
    check(
        "image:\n  repository: nginx # {\"$imagepolicy\": \"ns:web:name\"}\n  tag: \"1.25\" # {\"$imagepolicy\": \"ns:web:tag\"}\n",
        Target::Marker {
            policy: "ns:web".into(),
        },
        renamed("nginx:1.27.1", "mirror.acme.io/nginx"),
        "image:\n  repository: mirror.acme.io/nginx # {\"$imagepolicy\": \"ns:web:name\"}\n  tag: \"1.27.1\" # {\"$imagepolicy\": \"ns:web:tag\"}\n",
    );
}

#[test]
fn invalid_new_names_are_refused_with_a_reason() {
    for bad in [
        "mirror.acme.io/nginx:1.0",
        "Mirror/Nginx",
        "nginx@sha256:x",
        "",
        "a b",
    ] {
        let err = update("nginx:1.0").with_new_name(bad).unwrap_err();
        assert!(
            matches!(&err, EditError::InvalidValue { value, .. } if value == bad),
            "{bad}: {err:?}"
        );
    }
    let err = update("nginx:1.0")
        .with_new_name("mirror.acme.io/nginx:1.0")
        .unwrap_err();
    assert!(err.to_string().contains("repository alone"), "{err}");
}

#[test]
fn a_document_parsed_once_finds_and_applies_like_the_free_functions() {
    let src = "images:\n  - name: nginx # web\n    newTag: 1.25.0\n";
    let up = update("nginx:1.27.1");
    let doc = Document::parse(src.as_bytes()).unwrap();
    assert_eq!(
        doc.find(&Target::Auto, &up.image).unwrap(),
        find(src.as_bytes(), &Target::Auto, &up.image).unwrap()
    );
    let edited = doc.apply(&Target::Auto, &up).unwrap();
    assert_eq!(edited, apply(src.as_bytes(), &Target::Auto, &up).unwrap());
    assert_eq!(
        String::from_utf8(edited.bytes).unwrap(),
        src.replace("1.25.0", "1.27.1")
    );
    assert!(matches!(
        Document::parse(b"a: [\n"),
        Err(EditError::Parse { .. })
    ));
}

#[test]
fn a_helm_tag_path_writes_a_pinned_digest_into_its_sibling_or_inline_never_drops_it() {
    let t = || helm("image.tag", HelmField::Tag);
    // Bitnami layout: the sibling `digest` key gets it, quoting kept.
    check(
        "image:\n  repository: bitnami/nginx\n  tag: 1.0.0\n  digest: \"\"\n",
        t(),
        update(&format!("nginx:1.1.0@{D1}")),
        &format!("image:\n  repository: bitnami/nginx\n  tag: 1.1.0\n  digest: \"{D1}\"\n"),
    );
    // No sibling: `TAG@DIGEST` in the tag value.
    check(
        "image:\n  repository: nginx\n  tag: '1.0.0'\n",
        t(),
        update(&format!("nginx:1.1.0@{D1}")),
        &format!("image:\n  repository: nginx\n  tag: '1.1.0@{D1}'\n"),
    );
    // Read back: the inline form and the sibling are the deployed tag and digest.
    let inline = format!("image:\n  tag: 1.1.0@{D1}\n");
    let found = find(inline.as_bytes(), &t(), &ImageRef::parse("nginx").unwrap()).unwrap();
    assert_eq!(found[0].tag.as_deref(), Some("1.1.0"));
    assert_eq!(found[0].digest.as_deref(), Some(D1));
    // A tag-only bump of a tag whose sibling pins a digest would leave the old image running.
    let err = refuse(
        &format!("image:\n  tag: 1.0.0\n  digest: {D1}\n"),
        t(),
        update("nginx:1.1.0"),
    );
    assert!(err.to_string().contains("pins a digest"), "{err}");
    // The same tag again (nothing to do) is fine; an empty sibling is no pin.
    check(
        &format!("image:\n  tag: 1.0.0\n  digest: {D1}\n"),
        t(),
        update("nginx:1.0.0"),
        &format!("image:\n  tag: 1.0.0\n  digest: {D1}\n"),
    );
    check(
        "image:\n  tag: 1.0.0\n  digest: \"\"\n",
        t(),
        update("nginx:1.1.0"),
        "image:\n  tag: 1.1.0\n  digest: \"\"\n",
    );
}

/// Issue 13's guard: whatever a registry answered, an empty (or otherwise invalid) tag or digest
/// never becomes an update, so it can never be written.
#[test]
fn an_empty_tag_or_digest_is_never_an_update() {
    for (tag, digest) in [
        (Some(""), None),
        (Some("1.0.0"), Some("")),
        (None, Some("")),
        (Some(" "), None),
        (Some("1.0.0"), Some("sha256:")),
    ] {
        assert!(
            Update::new("ghcr.io/acme/api", tag, digest).is_err(),
            "{tag:?} {digest:?}"
        );
    }
    assert!(
        set_value(
            b"image: {tag: a}\n",
            &parse_value_path("image.tag").unwrap(),
            HelmField::Tag,
            ""
        )
        .is_err()
    );
}

/// Issue 20 item 1: two targets reaching one scalar with the same new value are one edit; with
/// different values they are refused, naming both values.
#[test]
fn two_targets_on_one_scalar_are_one_edit_or_a_conflict() {
    let src = "image:\n  tag: 1.0.0 # {\"$imagepolicy\": \"ns:app:tag\"}\n";
    let marker = Target::Marker {
        policy: "ns:app".into(),
    };
    let same = apply_all(
        src.as_bytes(),
        &[helm("image.tag", HelmField::Tag), marker.clone()],
        &update("ghcr.io/acme/app:1.1.0"),
    )
    .unwrap();
    assert_eq!(
        String::from_utf8(same.bytes).unwrap(),
        "image:\n  tag: 1.1.0 # {\"$imagepolicy\": \"ns:app:tag\"}\n"
    );
    assert_eq!(same.changes.len(), 1);
    // A Kustomize entry's newTag marked as the policy's digest: the entry wants the tag there,
    // the marker the digest.
    let src = "images:\n- name: ghcr.io/acme/app\n  newTag: 1.0.0 # {\"$imagepolicy\": \"ns:app:digest\"}\n";
    let err = apply_all(
        src.as_bytes(),
        &[Target::Auto, marker],
        &update(&format!("ghcr.io/acme/app:1.1.0@{D1}")),
    )
    .unwrap_err();
    assert!(err.to_string().contains("want different values"), "{err}");
}

#[test]
fn apply_each_equals_one_update_after_another_with_changes_per_update() {
    let input = "images:\n- name: ghcr.io/a/one\n  newTag: 1.0.0 # keep\n- name: ghcr.io/a/two\n  newTag: 1.0.0\n- name: ghcr.io/a/three\n";
    let targets = [Target::Kustomize, Target::Kustomize, Target::Kustomize];
    let updates = [
        update("ghcr.io/a/one:1.1.0"),
        update("ghcr.io/a/two:1.0.0"),
        update("ghcr.io/a/three:2.0.0"),
    ];
    let mut one_by_one = input.as_bytes().to_vec();
    let mut expected_changes = Vec::new();
    for (target, update) in targets.iter().zip(&updates) {
        let edited = apply(&one_by_one, target, update).unwrap();
        one_by_one = edited.bytes;
        expected_changes.push(edited.changes);
    }
    let items: Vec<(&Target, &Update)> = targets.iter().zip(&updates).collect();
    let together = Document::parse(input.as_bytes())
        .unwrap()
        .apply_each(&items)
        .unwrap();
    assert_eq!(
        String::from_utf8(together.bytes).unwrap(),
        String::from_utf8(one_by_one).unwrap()
    );
    // The second update is already deployed: no change of its own.
    assert_eq!(together.changes[1], Vec::new());
    assert_eq!(together.changes[0], expected_changes[0]);
    assert_eq!(together.changes[0][0].line, 3);
    assert_eq!(together.changes[2].len(), 1);
    assert!(together.changes[2][0].inserted);
    assert_eq!(together.changes[2][0].new, "2.0.0");
}

#[test]
fn apply_each_refuses_two_updates_that_want_different_values_in_one_scalar() {
    let input = "image:\n  repository: ghcr.io/a/one\n  tag: 1.0.0\n";
    let target = helm("image.tag", HelmField::Tag);
    let (a, b) = (update("ghcr.io/a/one:1.1.0"), update("ghcr.io/a/one:1.2.0"));
    let document = Document::parse(input.as_bytes()).unwrap();
    let err = document
        .apply_each(&[(&target, &a), (&target, &b)])
        .unwrap_err();
    assert!(matches!(err, EditError::Ambiguous { .. }), "{err}");
    // The same value twice is one edit, told to the first update.
    let same = document
        .apply_each(&[(&target, &a), (&target, &a)])
        .unwrap();
    assert_eq!((same.changes[0].len(), same.changes[1].len()), (1, 0));
}
