//! Which files a run reads: files as given, folders searched for `*.yaml` and `*.yml`, and `-`
//! for standard input.
//!
//! Inside a folder given, these are skipped with a note: folders named `exercise` (unfinished
//! on purpose; name one directly to check it), hidden folders, and the `templates` folder of a
//! Helm chart (not YAML until rendered: lint `helm template`'s output instead).

use std::io::Read;
use std::path::{Path, PathBuf};

use super::source::Source;
use super::{Options, Run};

pub fn read_all(paths: &[PathBuf], options: &Options, run: &mut Run) -> Vec<Source> {
    let mut sources = Vec::new();
    for path in paths {
        if path.as_os_str() == "-" {
            let mut text = String::new();
            match std::io::stdin().read_to_string(&mut text) {
                Ok(_) => sources.push(Source::new("<stdin>", &text)),
                Err(error) => {
                    run.unreadable("<stdin>", &format!("cannot read standard input: {error}"))
                }
            }
        } else if path.is_dir() {
            let mut files = Vec::new();
            walk(path, options, run, &mut files);
            sources.extend(files.iter().filter_map(|file| read_file(file, run)));
        } else {
            sources.extend(read_file(path, run));
        }
    }
    sources
}

fn read_file(path: &Path, run: &mut Run) -> Option<Source> {
    let name = path.display().to_string();
    match std::fs::read(path) {
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(text) => Some(Source::new(name, &text)),
            Err(_) => {
                run.unreadable(&name, "not UTF-8 text");
                None
            }
        },
        Err(error) => {
            run.unreadable(&name, &format!("cannot read: {error}"));
            None
        }
    }
}

fn walk(dir: &Path, options: &Options, run: &mut Run, files: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries.flatten().map(|e| e.path()).collect(),
        Err(error) => {
            run.unreadable(
                &dir.display().to_string(),
                &format!("cannot read folder: {error}"),
            );
            return;
        }
    };
    entries.sort();
    let is_chart = dir.join("Chart.yaml").is_file();
    for entry in entries {
        let name = entry.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if entry.is_dir() {
            if name.starts_with('.') {
                continue;
            }
            if name == "exercise" && !options.include_exercises {
                run.skip(
                    &entry.display().to_string(),
                    None,
                    "an exercise folder, unfinished on purpose: name it directly to check it",
                );
            } else if name == "templates" && is_chart {
                run.skip(
                    &entry.display().to_string(),
                    None,
                    "Helm chart templates: lint the output of `helm template` instead",
                );
            } else {
                walk(&entry, options, run, files);
            }
        } else if name.ends_with(".yaml") || name.ends_with(".yml") {
            files.push(entry);
        }
    }
}
