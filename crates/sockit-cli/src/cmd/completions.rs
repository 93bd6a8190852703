//! `sockit completions SHELL`: the shell completion script, generated from the same clap
//! definition as `--help`, so it never falls behind the commands.

use std::io::Write;
use std::process::ExitCode;

use clap_complete::Shell;

/// Print a shell completion script for sockit.
///
/// The script completes commands, subcommands and options (and the values of options that
/// take a fixed set). Load it once per shell, or install it where the shell looks:
///
/// Examples:
///   source <(sockit completions bash)
///   sockit completions bash > ~/.local/share/bash-completion/completions/sockit
///   sockit completions zsh > ~/.zfunc/_sockit
///   sockit completions fish > ~/.config/fish/completions/sockit.fish
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The shell to write the script for.
    shell: Shell,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut cmd = crate::command();
    // Into a buffer first: a closed stdout is one error, not a panic inside the generator.
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "sockit", &mut script);
    std::io::stdout().write_all(&script)?;
    Ok(ExitCode::SUCCESS)
}
