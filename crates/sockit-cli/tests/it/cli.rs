//! The command line itself, for every command and subcommand found by walking `--help`:
//! examples one per line, shell completion scripts that load in bash, zsh and fish,
//! manual pages that groff renders without a warning, and NO_COLOR.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::util::{TempDir, sockit};

/// `sockit ARGS...` run to its end: exit code, stdout, stderr.
fn run(args: &[&str]) -> (Option<i32>, String, String) {
    let out = sockit().args(args).output().unwrap();
    (
        out.status.code(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn help(path: &[String]) -> String {
    let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
    args.push("--help");
    let (code, out, err) = run(&args);
    assert_eq!(code, Some(0), "sockit {path:?} --help: {err}");
    out
}

/// The names under `Commands:` in a help text (clap's own `help` left out). Each entry
/// must be one line: a summary that wraps onto a second line reads as a command named
/// after its first word.
fn subcommands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| *l != "Commands:")
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .inspect(|l| {
            assert!(
                l.starts_with("  ") && !l.starts_with("   "),
                "a command's summary takes more than one line: {l:?}"
            )
        })
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_owned)
        .collect()
}

/// Every command path, `[]` (sockit itself) first, found from the help texts: a command
/// added tomorrow is checked without anyone listing it here.
fn command_paths() -> Vec<Vec<String>> {
    let mut paths = vec![Vec::new()];
    let mut i = 0;
    while i < paths.len() {
        let path = paths[i].clone();
        for name in subcommands(&help(&path)) {
            let mut sub = path.clone();
            sub.push(name);
            paths.push(sub);
        }
        i += 1;
    }
    // The walk itself must work: it found the nested ones too.
    for nested in [
        ["exec", "serve"],
        ["http", "get"],
        ["bench", "chat"],
        ["chat", "join"],
    ] {
        assert!(
            paths.iter().any(|p| p == &nested),
            "{nested:?} not in {paths:?}"
        );
    }
    assert!(paths.len() >= 20, "{paths:?}");
    paths
}

/// The lines of the `Examples:` block of a help text, as printed (indented).
fn examples(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| *l != "Examples:")
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_help_lists_its_examples_one_per_line() {
    for path in command_paths() {
        let text = help(&path);
        let name = ["sockit"]
            .into_iter()
            .chain(path.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(" ");
        // Rewrapped help runs the examples into the heading's line ("Examples: sockit ...").
        for line in text.lines() {
            let t = line.trim_start();
            assert!(
                !(t.starts_with("Example:") || t.starts_with("Examples:")) || t == "Examples:",
                "{name} --help: examples run into one paragraph:\n{line}"
            );
        }
        let examples = examples(&text);
        assert!(
            examples.iter().any(|e| e.contains(&format!("{name} "))),
            "{name} --help has no `Examples:` block showing `{name}`:\n{text}"
        );
        for example in &examples {
            assert!(example.starts_with("  "), "{name}: {example:?}");
            assert!(
                example.matches("sockit ").count() <= 1,
                "{name} --help: two examples on one line: {example:?}"
            );
        }
    }
}

#[test]
fn bash_completion_loads_and_completes_nested_commands() {
    let script = r#"
        source <("$SOCKIT" completions bash) || exit 1
        complete -p sockit || exit 1
        fn=$(complete -p sockit | sed -n 's/.* -F \([^ ]*\) .*/\1/p')
        for line in "sockit ex" "sockit exec se" "sockit subnet --js"; do
            read -ra COMP_WORDS <<<"$line"
            COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
            COMP_LINE=$line COMP_POINT=${#line}
            COMPREPLY=()
            "$fn" sockit "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
            echo "$line => ${COMPREPLY[*]}"
        done
    "#;
    let out = Command::new("bash")
        .args(["--norc", "--noprofile", "-c", script])
        .env("SOCKIT", env!("CARGO_BIN_EXE_sockit"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.is_empty(),
        "{stdout}{stderr}"
    );
    assert!(stdout.contains("-F _sockit"), "{stdout}");
    assert!(stdout.contains("sockit ex => exec\n"), "{stdout}");
    assert!(stdout.contains("sockit exec se => serve\n"), "{stdout}");
    assert!(
        stdout.contains("sockit subnet --js => --json\n"),
        "{stdout}"
    );
}

#[test]
fn zsh_completion_registers_itself() {
    let script = r#"
        autoload -U compinit && compinit -u -D || exit 1
        source <("$SOCKIT" completions zsh) || exit 1
        print -r -- "registered: ${_comps[sockit]}"
        (( $+functions[_sockit] )) && print -r -- "defined"
    "#;
    let out = Command::new("zsh")
        .args(["-f", "-c", script])
        .env("SOCKIT", env!("CARGO_BIN_EXE_sockit"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.is_empty(),
        "{stdout}{stderr}"
    );
    assert_eq!(stdout, "registered: _sockit\ndefined\n");
}

#[test]
fn fish_completion_completes_nested_commands() {
    let script = r#"
        $SOCKIT completions fish | source; or exit 1
        complete -C'sockit exec se'
        complete -C'sockit subnet --js'
    "#;
    let out = Command::new("fish")
        .args(["--no-config", "-c", script])
        .env("SOCKIT", env!("CARGO_BIN_EXE_sockit"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.is_empty(),
        "{stdout}{stderr}"
    );
    let firsts: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.split('\t').next())
        .collect();
    assert_eq!(firsts, ["serve", "--json"], "{stdout}");
}

#[test]
fn elvish_and_powershell_scripts_are_produced() {
    for (shell, needle) in [
        ("elvish", "edit:completion:arg-completer[sockit]"),
        (
            "powershell",
            "Register-ArgumentCompleter -Native -CommandName 'sockit'",
        ),
    ] {
        let (code, out, err) = run(&["completions", shell]);
        assert_eq!((code, err.as_str()), (Some(0), ""), "{shell}");
        assert!(out.contains(needle), "{shell}: {out}");
        assert!(out.contains("serve"), "{shell}: nested commands missing");
    }
    let (code, out, err) = run(&["completions", "tcsh"]);
    assert_eq!(code, Some(2));
    assert!(out.is_empty());
    assert_eq!(err.lines().count(), 1, "{err}");
}

/// `groff -ww -man` of a page: everything it says on stderr is a warning.
fn render_man(roff: &[u8]) -> String {
    let mut groff = Command::new("groff")
        .args(["-ww", "-man", "-Tutf8", "-P-cbou", "-rLL=100n"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    groff.stdin.take().unwrap().write_all(roff).unwrap();
    let out = groff.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stderr.is_empty(), "groff: {stderr}");
    // groff's typographic hyphens, minus signs and quotes back to ASCII for comparing.
    String::from_utf8(out.stdout)
        .unwrap()
        .replace(['\u{2010}', '\u{2212}'], "-")
        .replace(['\u{2018}', '\u{2019}'], "'")
}

#[test]
fn every_man_page_renders_without_warnings_and_keeps_examples_apart() {
    for path in command_paths() {
        let mut args = vec!["man"];
        args.extend(path.iter().map(String::as_str));
        let out = sockit().args(&args).output().unwrap();
        assert!(out.status.success(), "{args:?}");
        assert!(out.stderr.is_empty(), "{args:?}");
        let text = render_man(&out.stdout);
        let page = ["sockit"]
            .into_iter()
            .chain(path.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join("-");
        assert!(
            text.starts_with(&page.to_uppercase()),
            "{page}: {}",
            &text[..80]
        );
        for section in ["NAME", "SYNOPSIS", "DESCRIPTION"] {
            assert!(
                text.contains(&format!("\n{section}\n")),
                "{page}: {section}"
            );
        }
        // Each example of --help is a line of its own in the page too.
        let lines: Vec<&str> = text.lines().map(str::trim).collect();
        for example in examples(&help(&path)) {
            assert!(
                lines.contains(&example.trim()),
                "{page}: example {example:?} not on its own line:\n{text}"
            );
        }
    }
}

#[test]
fn man_accepts_words_or_page_names_and_writes_every_page() {
    let (_, by_words, _) = run(&["man", "exec", "serve"]);
    for other in [&["exec-serve"][..], &["sockit-exec-serve"]] {
        let mut args = vec!["man"];
        args.extend(other);
        assert_eq!(run(&args).1, by_words, "{other:?}");
    }
    assert!(by_words.contains(".TH SOCKIT-EXEC-SERVE 1"), "{by_words}");

    let (code, out, err) = run(&["man", "exec", "nope"]);
    assert_eq!(code, Some(2));
    assert!(out.is_empty());
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("serve"), "{err}");

    let dir = TempDir::new("man-dir");
    let target = dir.path("man1");
    let (code, listed, err) = run(&["man", "--dir", target.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    let mut written: Vec<String> = std::fs::read_dir(&target)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    written.sort();
    let mut expected: Vec<String> = command_paths()
        .iter()
        .map(|p| {
            let mut name = vec!["sockit".to_owned()];
            name.extend(p.iter().cloned());
            format!("{}.1", name.join("-"))
        })
        .collect();
    expected.sort();
    assert_eq!(written, expected);
    assert_eq!(listed.lines().count(), expected.len());
    let page = std::fs::read(target.join("sockit-exec-serve.1")).unwrap();
    assert_eq!(page, by_words.as_bytes());
}

#[test]
fn man_l_reads_the_page_from_a_pipe() {
    let script = r#""$SOCKIT" man | MANWIDTH=80 man -l -"#;
    let out = Command::new("sh")
        .args(["-c", script])
        .env("SOCKIT", env!("CARGO_BIN_EXE_sockit"))
        .env_remove("MANPAGER")
        .env("PAGER", "cat")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stderr.is_empty(), "{stderr}");
    assert!(stdout.contains("SYNOPSIS"), "{stdout}");
    assert!(stdout.contains("sockit-exec(1)"), "{stdout}");
}

/// `sockit ARGS...` on a pseudo-terminal of its own (`script`), stdout and stderr both on
/// it, with `env` set: everything it wrote.
fn on_a_terminal(args: &[&str], env: &[(&str, &str)]) -> String {
    assert!(
        Command::new("script").arg("--version").output().is_ok(),
        "script(1) is not installed (./test.sh installs it)"
    );
    let command = std::iter::once(env!("CARGO_BIN_EXE_sockit"))
        .chain(args.iter().copied())
        .map(|a| format!("'{a}'"))
        .collect::<Vec<_>>()
        .join(" ");
    let mut script = Command::new("script");
    script
        .args(["-q", "-e", "-c", &command, "/dev/null"])
        .stdin(Stdio::null())
        // A colour-capable terminal unless the test says otherwise.
        .env("TERM", "xterm")
        .env_remove("NO_COLOR")
        .env_remove("CLICOLOR")
        .env_remove("CLICOLOR_FORCE")
        .env_remove("SOCKIT_LOG");
    for (k, v) in env {
        script.env(k, v);
    }
    let out = script.output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn colour_only_on_a_terminal_and_never_with_no_color() {
    // A token file others may read: `sockit exec` logs a warning (coloured on a terminal)
    // before it finds nobody listening.
    let dir = TempDir::new("no-color");
    let token = dir.path("token");
    std::fs::write(&token, "secret").unwrap();
    let port = crate::util::free_port().to_string();
    let addr = format!("127.0.0.1:{port}");
    let exec = [
        "exec",
        &addr,
        "--token-file",
        token.to_str().unwrap(),
        "--",
        "true",
    ];
    let help = ["subnet", "--help"];
    for args in [&exec[..], &help] {
        let coloured = on_a_terminal(args, &[]);
        assert!(
            coloured.contains("\x1b["),
            "{args:?}: no colour on a terminal: {coloured:?}"
        );
        let no_color = on_a_terminal(args, &[("NO_COLOR", "1")]);
        assert!(
            !no_color.contains('\x1b'),
            "{args:?}: colour despite NO_COLOR: {no_color:?}"
        );
        // The same text, only plain.
        assert!(
            no_color.contains("chmod 600 it") || no_color.contains("Usage: sockit subnet"),
            "{args:?}: {no_color:?}"
        );
        // Into pipes: never.
        let out = sockit()
            .args(args)
            .env_remove("NO_COLOR")
            .env("TERM", "xterm")
            .output()
            .unwrap();
        let all = [out.stdout, out.stderr].concat();
        assert!(
            !all.contains(&0x1b),
            "{args:?}: {}",
            String::from_utf8_lossy(&all)
        );
    }
    // An empty NO_COLOR does not count (no-color.org).
    let empty = on_a_terminal(&exec, &[("NO_COLOR", "")]);
    assert!(empty.contains("\x1b["), "{empty:?}");
}

#[test]
fn bench_quiet_drops_the_progress_line_but_not_the_report() {
    let server = crate::util::Server::start(&["echo", "127.0.0.1:0"]);
    let addr = server.addr();
    let args = ["bench", "echo", &addr, "--secs", "0.3"];
    let loud = on_a_terminal(&args, &[]);
    assert!(
        loud.contains("\x1b[K"),
        "no progress line on a terminal: {loud:?}"
    );
    let quiet = on_a_terminal(&[&args[..], &["-q"]].concat(), &[]);
    assert!(!quiet.contains('\x1b'), "progress despite -q: {quiet:?}");
    assert!(quiet.contains("\n  messages "), "{quiet:?}");
    assert!(quiet.contains("\n  errors    0"), "{quiet:?}");
}
