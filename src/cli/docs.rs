//! `kubecert completions SHELL` and `kubecert man --out DIR`: shell completions
//! and man pages generated from the clap definitions (clap_complete, clap_mangen), one page
//! per (sub)command: kubecert.1, kubecert-renew.1, kubecert-ca-rotate.1, ...

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::CommandFactory;

use super::Cli;

/// The command tree as the pages and completions see it (no `help` subcommand).
fn command() -> clap::Command {
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    cmd
}

/// Print the completion script of `shell` on stdout.
pub(super) fn completions(shell: clap_complete::Shell) -> Result<()> {
    let mut cmd = command();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, "kubecert", &mut out);
    std::io::stdout()
        .write_all(&out)
        .context("writing the completion script to stdout")
}

/// Write a man page (section 1) for kubecert and each visible subcommand into `out`;
/// returns the files written. The page date is the build date (reproducible with
/// SOURCE_DATE_EPOCH).
pub(super) fn man_pages(out: &Path) -> Result<Vec<PathBuf>> {
    fn walk(cmd: &clap::Command, out: &Path, written: &mut Vec<PathBuf>) -> Result<()> {
        let man = clap_mangen::Man::new(cmd.clone())
            .date(&kubecert::build_info::BUILD_DATE[..10])
            .source(format!("kubecert {}", kubecert::build_info::VERSION))
            .manual("kubecert manual");
        let path = out.join(man.get_filename());
        let mut page = Vec::new();
        man.render(&mut page)
            .with_context(|| format!("rendering {}", path.display()))?;
        std::fs::write(&path, page).with_context(|| format!("writing {}", path.display()))?;
        written.push(path);
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            walk(sub, out, written)?;
        }
        Ok(())
    }
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let mut written = Vec::new();
    walk(&command(), out, &mut written)?;
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every visible (sub)command's page name: kubecert, kubecert-ca, kubecert-ca-rotate, ...
    fn page_names(cmd: &clap::Command, prefix: &str, names: &mut Vec<String>) {
        let name = if prefix.is_empty() {
            cmd.get_name().to_string()
        } else {
            format!("{prefix}-{}", cmd.get_name())
        };
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            page_names(sub, &name, names);
        }
        names.push(name);
    }

    #[test]
    fn every_subcommand_has_a_man_page() {
        let dir = tempfile::tempdir().unwrap();
        let written = man_pages(dir.path()).unwrap();
        let mut expected = Vec::new();
        // Walked on the raw definition, not the one the pages are generated from.
        page_names(&Cli::command(), "", &mut expected);
        expected.retain(|n| n != "kubecert-help");
        assert!(expected.len() > 20, "{expected:?}");
        for must in [
            "kubecert",
            "kubecert-check",
            "kubecert-renew",
            "kubecert-ca-rotate",
        ] {
            assert!(expected.iter().any(|n| n == must), "{must} in {expected:?}");
        }
        let mut files: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        files.sort();
        let mut want: Vec<String> = expected.iter().map(|n| format!("{n}.1")).collect();
        want.sort();
        assert_eq!(files, want);
        assert_eq!(written.len(), want.len());
        for f in &files {
            let page = std::fs::read_to_string(dir.path().join(f)).unwrap();
            let title = f.trim_end_matches(".1");
            assert!(page.starts_with(".ie \\n(.g .ds Aq"), "{f}: {page:.80}");
            assert!(page.contains(&format!(".TH {title} 1 ")), "{f}");
            assert!(page.contains(".SH NAME"), "{f}");
        }
        // The options of a subcommand are on its page.
        let renew = std::fs::read_to_string(dir.path().join("kubecert-renew.1")).unwrap();
        assert!(renew.contains("\\-\\-within"), "{renew}");
    }
}
