//! `imagebump completions SHELL` and `imagebump man`: generated from the clap definitions and
//! checked by the tools that read them (bash itself, zsh when installed, `man -l`).

use std::path::Path;
use std::process::{Command, Output};

use crate::support::imagebump::{BIN, Imagebump};

fn imagebump(args: &[&str]) -> Output {
    Imagebump::new(args).output()
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// Every subcommand `--help` lists, read from the help text itself.
fn subcommands() -> Vec<String> {
    let help = stdout(&imagebump(&["--help"]));
    let commands = help
        .split("Commands:\n")
        .nth(1)
        .unwrap()
        .split("\n\n")
        .next()
        .unwrap();
    let names: Vec<String> = commands
        .lines()
        .filter_map(|l| l.strip_prefix("  "))
        .filter(|l| !l.starts_with(' '))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| *n != "help")
        .map(String::from)
        .collect();
    assert!(names.len() >= 8, "{help}");
    names
}

/// Source the bash script and ask it to complete `imagebump <words>`.
fn bash_complete(script: &Path, words: &[&str]) -> Vec<String> {
    let words_literal = words
        .iter()
        .map(|w| format!("'{w}'"))
        .collect::<Vec<_>>()
        .join(" ");
    let program = format!(
        "source '{}'\nCOMP_WORDS=(imagebump {words_literal})\nCOMP_CWORD={}\nCOMP_LINE=\"${{COMP_WORDS[*]}}\"\nCOMP_POINT=${{#COMP_LINE}}\n_imagebump imagebump \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"\nprintf '%s\\n' \"${{COMPREPLY[@]}}\"\n",
        script.display(),
        words.len()
    );
    let out = Command::new("bash")
        .args(["--norc", "--noprofile", "-c", &program])
        .output()
        .unwrap();
    stdout(&out).lines().map(String::from).collect()
}

#[test]
fn bash_completions_parse_and_complete_every_subcommand() {
    let script = stdout(&imagebump(&["completions", "bash"]));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("imagebump.bash");
    std::fs::write(&file, &script).unwrap();
    let check = Command::new("bash").arg("-n").arg(&file).output().unwrap();
    assert!(check.status.success(), "bash -n: {check:?}");
    let offered = bash_complete(&file, &[""]);
    for command in subcommands() {
        assert!(offered.contains(&command), "{command} not in {offered:?}");
    }
    assert_eq!(bash_complete(&file, &["valid"]), ["validate"]);
    let flags = bash_complete(&file, &["once", "--dry"]);
    assert_eq!(flags, ["--dry-run"]);
}

#[test]
fn every_shell_gets_a_script_that_names_every_subcommand() {
    let commands = subcommands();
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let script = stdout(&imagebump(&["completions", shell]));
        for command in &commands {
            assert!(script.contains(command.as_str()), "{shell}: no {command}");
        }
    }
    // zsh checks the syntax of its script where it is installed (.ci/run installs it).
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("_imagebump");
    std::fs::write(&file, stdout(&imagebump(&["completions", "zsh"]))).unwrap();
    let check = Command::new("zsh").arg("-n").arg(&file).output();
    match check {
        Ok(out) => assert!(out.status.success(), "zsh -n: {out:?}"),
        Err(e) => panic!("zsh is needed to check the zsh script (apt install zsh): {e}"),
    }
}

#[test]
fn an_unknown_shell_is_refused() {
    let out = imagebump(&["completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("tcsh"));
}

/// Render a man page with `man -l` (man-db) as plain text.
fn man(page: &Path) -> String {
    let out = Command::new("man")
        .arg("-l")
        .arg(page)
        .env("MANPAGER", "cat")
        .env("MANWIDTH", "100")
        .env("MAN_KEEP_FORMATTING", "0")
        .output()
        .expect("man (apt install man-db)");
    // Off a terminal, man marks bold and underline by overstriking (`X\bX`, `_\bX`): drop it.
    let text = regex::Regex::new(".\x08")
        .unwrap()
        .replace_all(&stdout(&out), "")
        .into_owned();
    assert!(
        out.stderr.is_empty(),
        "man -l {}: {}",
        page.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

#[test]
fn the_man_page_renders_and_lists_every_subcommand() {
    let page = stdout(&imagebump(&["man"]));
    assert!(
        page.starts_with(".ie") || page.contains(".TH imagebump 1"),
        "{page}"
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("imagebump.1");
    std::fs::write(&file, page).unwrap();
    let text = man(&file);
    assert!(text.contains("NAME"), "{text}");
    assert!(text.contains("imagebump"), "{text}");
    for command in subcommands() {
        assert!(text.contains(&command), "the page lacks {command}:\n{text}");
    }
}

#[test]
fn man_dir_writes_one_page_per_subcommand() {
    let dir = tempfile::tempdir().unwrap();
    let out = imagebump(&["man", "--dir", dir.path().to_str().unwrap()]);
    let listed = stdout(&out);
    let main_page = dir.path().join("imagebump.1");
    assert!(
        listed.contains(&main_page.display().to_string()),
        "{listed}"
    );
    man(&main_page);
    for command in subcommands() {
        let page = dir.path().join(format!("imagebump-{command}.1"));
        assert!(page.is_file(), "{} missing", page.display());
        let text = man(&page);
        assert!(text.contains(&format!("imagebump-{command}")), "{text}");
    }
    let once = man(&dir.path().join("imagebump-once.1"));
    assert!(once.contains("--dry-run"), "{once}");
}

#[test]
fn man_dir_refuses_a_missing_directory() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    let out = imagebump(&["man", "--dir", missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("nope"),
        "{out:?}"
    );
}

#[test]
fn the_readmes_install_commands_work_as_written() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let block = readme
        .split("Shell completions and man pages")
        .nth(1)
        .and_then(|rest| rest.split("```sh\n").nth(1))
        .and_then(|rest| rest.split("```").next())
        .expect("the README's completions block");
    let home = tempfile::tempdir().unwrap();
    let bin = Path::new(BIN).parent().unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let out = Command::new("bash")
        .args(["--norc", "--noprofile", "-euo", "pipefail", "-c", block])
        .env("HOME", home.path())
        .env("PATH", path)
        .output()
        .unwrap();
    stdout(&out);
    let h = home.path();
    for file in [
        ".local/share/bash-completion/completions/imagebump",
        ".zfunc/_imagebump",
        ".config/fish/completions/imagebump.fish",
        ".local/share/man/man1/imagebump.1",
        ".local/share/man/man1/imagebump-once.1",
    ] {
        let meta = std::fs::metadata(h.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert!(meta.len() > 100, "{file} is nearly empty");
    }
    // man finds the installed page by name through the man1 directory.
    let out = Command::new("man")
        .arg("-M")
        .arg(h.join(".local/share/man"))
        .args(["-w", "imagebump-once"])
        .output()
        .unwrap();
    assert!(stdout(&out).contains("imagebump-once.1"));
}
