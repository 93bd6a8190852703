//! `sockit man [COMMAND]...`: roff manual pages generated from the same clap definition as
//! `--help`, one page per command and subcommand, named as git names its pages:
//! `sockit(1)`, `sockit-exec(1)`, `sockit-exec-serve(1)`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap_mangen::Man;
use clap_mangen::roff::{Roff, roman};

use crate::usage;

/// Print the manual page of sockit or of one of its commands, in roff.
///
/// COMMAND is the words you would type after `sockit` (`exec serve`), or the page's
/// name (`exec-serve`, `sockit-exec-serve`); none gives sockit(1), which lists the
/// commands. With --dir, every page is written into DIR as NAME.1 instead.
///
/// Examples:
///   sockit man | man -l -
///   sockit man exec serve | man -l -
///   sockit man --dir ~/.local/share/man/man1
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The command whose page to print (default: sockit itself).
    #[arg(value_name = "COMMAND")]
    command: Vec<String>,
    /// Write every page (sockit.1, sockit-echo.1, ...) into this directory.
    #[arg(long, value_name = "DIR", conflicts_with = "command")]
    dir: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut root = crate::command().disable_help_subcommand(true);
    // Gives every subcommand its page name (display name `sockit-exec-serve`) and its
    // synopsis name (bin name `sockit exec serve`).
    root.build();
    if let Some(dir) = &args.dir {
        std::fs::create_dir_all(dir).with_context(|| format!("{}", dir.display()))?;
        let mut pages = Vec::new();
        collect(&root, &mut pages);
        for cmd in pages {
            let path = dir.join(format!("{}.1", page_name(cmd)));
            std::fs::write(&path, render(cmd)?).with_context(|| format!("{}", path.display()))?;
            println!("{}", path.display());
        }
        return Ok(ExitCode::SUCCESS);
    }
    let words = words(&args.command);
    let mut cmd = &root;
    for (i, word) in words.iter().enumerate() {
        cmd = cmd
            .get_subcommands()
            .find(|c| c.get_name() == word)
            .ok_or_else(|| {
                usage(format!(
                    "no manual page for `{}`: {} has the commands {}",
                    words.join(" "),
                    std::iter::once("sockit")
                        .chain(words[..i].iter().map(String::as_str))
                        .collect::<Vec<_>>()
                        .join(" "),
                    cmd.get_subcommands()
                        .map(|c| c.get_name())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })?;
    }
    std::io::stdout().write_all(&render(cmd)?)?;
    Ok(ExitCode::SUCCESS)
}

/// The command's path below `sockit`: `["exec", "serve"]` from `exec serve`, `exec-serve`
/// or `sockit-exec-serve` (no command name has a hyphen, so a hyphen separates words).
fn words(args: &[String]) -> Vec<String> {
    let mut words: Vec<String> = args
        .iter()
        .flat_map(|a| a.split('-'))
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect();
    if words.first().is_some_and(|w| w == "sockit") {
        words.remove(0);
    }
    words
}

/// The command and every command below it, each before its subcommands.
fn collect<'a>(cmd: &'a clap::Command, pages: &mut Vec<&'a clap::Command>) {
    pages.push(cmd);
    for sub in cmd.get_subcommands().filter(|c| !c.is_hide_set()) {
        collect(sub, pages);
    }
}

fn page_name(cmd: &clap::Command) -> &str {
    cmd.get_display_name().unwrap_or_else(|| cmd.get_name())
}

/// clap_mangen's page, but for the description: clap_mangen writes each line of the help
/// text as a roff text line, and roff fills those into one paragraph, so a list of
/// examples would run together as one sentence. Here indented lines (examples, lists) are
/// set without filling, line for line as `--help` shows them; prose is filled as usual.
fn render(cmd: &clap::Command) -> anyhow::Result<Vec<u8>> {
    let man = Man::new(cmd.clone())
        .title(page_name(cmd).to_uppercase())
        .source(format!("sockit {}", env!("CARGO_PKG_VERSION")))
        .manual("sockit manual");
    let mut out = Vec::new();
    man.render_title(&mut out)?;
    man.render_name_section(&mut out)?;
    man.render_synopsis_section(&mut out)?;
    description(cmd).to_writer(&mut out)?;
    if cmd
        .get_arguments()
        .any(|a| !a.is_hide_set() && !matches!(a.get_id().as_str(), "help" | "version"))
    {
        man.render_options_section(&mut out)?;
    }
    if cmd.has_subcommands() {
        man.render_subcommands_section(&mut out)?;
    }
    man.render_version_section(&mut out)?;
    Ok(out)
}

fn description(cmd: &clap::Command) -> Roff {
    let mut roff = Roff::new();
    roff.control("SH", ["DESCRIPTION"]);
    let text = cmd
        .get_long_about()
        .or_else(|| cmd.get_about())
        .map(ToString::to_string)
        .unwrap_or_default();
    let mut filling = true;
    for line in text.lines() {
        let indented = line.starts_with(char::is_whitespace);
        if line.trim().is_empty() {
            if !filling {
                roff.control("fi", []);
                filling = true;
            }
            roff.control("PP", []);
            continue;
        }
        if indented == filling {
            roff.control(if indented { "nf" } else { "fi" }, []);
            filling = !indented;
        }
        roff.text([roman(line)]);
    }
    if !filling {
        roff.control("fi", []);
    }
    roff
}
