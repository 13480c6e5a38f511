//! Configuration and secrets as Kubernetes injects them: a mounted JSON file (a ConfigMap's
//! `config.json`), a secret in the environment (`MY_PASS`), and secret files in a directory
//! (what a Vault agent writes to `/vault/secrets`). What is shown of them: config keys and
//! values (a ConfigMap is not secret), and only the names of secrets.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Serialize;
use serde_json::{Map, Value};

use super::config::{Config, SecretString};

/// Largest config file accepted.
const MAX_CONFIG_BYTES: u64 = 1024 * 1024;
/// Largest secret file read; larger ones are reported, not loaded.
const MAX_SECRET_BYTES: u64 = 64 * 1024;
/// Most secret files listed.
const MAX_SECRET_FILES: usize = 256;

pub struct Settings {
    config: Option<LoadedConfig>,
    my_pass: Option<SecretString>,
    secrets_dir: Option<PathBuf>,
}

struct LoadedConfig {
    path: PathBuf,
    values: Map<String, Value>,
}

#[derive(Serialize)]
pub struct ConfigView {
    pub config_file: Option<ConfigFileView>,
    pub secrets: Vec<SecretView>,
    pub secrets_dir: Option<SecretsDirView>,
}

#[derive(Serialize)]
pub struct ConfigFileView {
    pub path: String,
    pub keys: Vec<String>,
    pub values: Map<String, Value>,
}

/// A secret's name and where it came from: never its value.
#[derive(Serialize)]
pub struct SecretView {
    pub name: String,
    pub source: &'static str,
    pub loaded: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Serialize)]
pub struct SecretsDirView {
    pub path: String,
    pub present: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Settings {
    /// Loads the config file (a bad one stops startup with a clear message: it is this
    /// replica's own configuration, not a backend that may come back).
    pub fn load(config: &Config) -> anyhow::Result<Settings> {
        let loaded = match &config.config_file {
            None => None,
            Some(path) => Some(LoadedConfig {
                values: read_config(path)?,
                path: path.clone(),
            }),
        };
        if let Some(loaded) = &loaded {
            let keys: Vec<&String> = loaded.values.keys().collect();
            tracing::info!(path = %loaded.path.display(), ?keys, "config file loaded");
        }
        Ok(Settings {
            config: loaded,
            my_pass: config.my_pass.clone().filter(|s| !s.expose().is_empty()),
            secrets_dir: config.secrets_dir.clone(),
        })
    }

    /// What GET /config shows. The secrets directory is listed afresh each time, since an
    /// agent may write or rotate its files while the app runs.
    pub fn view(&self) -> ConfigView {
        let mut secrets = vec![SecretView {
            name: "MY_PASS".into(),
            source: "environment",
            loaded: self.my_pass.is_some(),
            error: None,
        }];
        let secrets_dir = self.secrets_dir.as_ref().map(|dir| {
            let (present, error) = match list_secret_files(dir) {
                Ok(files) => {
                    secrets.extend(files);
                    (true, None)
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => (false, None),
                Err(e) => (false, Some(e.to_string())),
            };
            SecretsDirView {
                path: dir.display().to_string(),
                present,
                error,
            }
        });
        ConfigView {
            config_file: self.config.as_ref().map(|c| ConfigFileView {
                path: c.path.display().to_string(),
                keys: c.values.keys().cloned().collect(),
                values: c.values.clone(),
            }),
            secrets,
            secrets_dir,
        }
    }

    pub fn config_value(&self, key: &str) -> Option<&Value> {
        self.config.as_ref().and_then(|c| c.values.get(key))
    }
}

fn read_config(path: &Path) -> anyhow::Result<Map<String, Value>> {
    let meta = std::fs::metadata(path)
        .with_context(|| format!("cannot read the config file {}", path.display()))?;
    if meta.len() > MAX_CONFIG_BYTES {
        anyhow::bail!(
            "the config file {} is larger than {MAX_CONFIG_BYTES} bytes",
            path.display()
        );
    }
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the config file {}", path.display()))?;
    let value: Value = serde_json::from_str(&text)
        .with_context(|| format!("the config file {} is not valid JSON", path.display()))?;
    match value {
        Value::Object(map) => Ok(map),
        _ => anyhow::bail!(
            "the config file {} must hold a JSON object, like {{\"featureFlag\": true}}",
            path.display()
        ),
    }
}

/// Regular files in `dir`, skipping hidden entries (a mounted Secret's `..data` links).
/// The values are read (to prove they load) and dropped at once.
fn list_secret_files(dir: &Path) -> std::io::Result<Vec<SecretView>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if name.starts_with('.') {
            continue;
        }
        names.push(name);
    }
    names.sort();
    names.truncate(MAX_SECRET_FILES);
    Ok(names
        .into_iter()
        .filter_map(|name| {
            let path = dir.join(&name);
            let meta = std::fs::metadata(&path).ok()?;
            if !meta.is_file() {
                return None;
            }
            let error = if meta.len() > MAX_SECRET_BYTES {
                Some(format!("larger than {MAX_SECRET_BYTES} bytes; not loaded"))
            } else {
                std::fs::read(&path).err().map(|e| e.to_string())
            };
            Some(SecretView {
                name,
                source: "file",
                loaded: error.is_none(),
                error,
            })
        })
        .collect())
}
