use std::path::PathBuf;

use crate::server::ServerArgs;

/// Where the counter files live. Shared by the server and `counter init`.
#[derive(clap::Args, Debug, Clone)]
pub struct FilesArgs {
    /// Directory holding the counter files (created if missing; the container image uses /data)
    #[arg(long, env = "DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// File name of the counter of POST /increment, inside --data-dir (seed 003: counter.txt)
    #[arg(long, env = "COUNTER_FILE", default_value = "counter.txt", value_parser = file_name)]
    pub counter_file: String,

    /// File name of the visit counter of GET /, inside --data-dir (seed 002: visits.txt,
    /// seed 004: visits)
    #[arg(long, env = "VISITS_FILE", default_value = "visits.txt", value_parser = file_name)]
    pub visits_file: String,
}

/// `statelab counter`: the per-pod counter and visit counter of seeds 002, 003 and 004.
#[derive(clap::Args, Debug, Clone)]
pub struct Config {
    #[command(flatten)]
    pub server: ServerArgs,

    #[command(flatten)]
    pub files: FilesArgs,

    /// JSON configuration file to load, e.g. a mounted ConfigMap's config.json (its keys and
    /// values are shown by GET /config)
    #[arg(long, env = "CONFIG_FILE")]
    pub config_file: Option<PathBuf>,

    /// A secret from the environment (seed 002's Secret). Only whether it is set is ever shown
    #[arg(long, env = "MY_PASS", hide_env_values = true)]
    pub my_pass: Option<SecretString>,

    /// Directory of secret files, one secret per file (e.g. /vault/secrets written by a Vault
    /// agent). Only the file names are ever shown; a missing directory is reported, not fatal
    #[arg(long, env = "SECRETS_DIR")]
    pub secrets_dir: Option<PathBuf>,
}

/// `statelab counter init`: what seed 003's init container does, without its bugs.
#[derive(clap::Args, Debug, Clone)]
pub struct InitArgs {
    #[command(flatten)]
    pub files: FilesArgs,

    /// Give the data directory and newly created files this owner (needs root; not needed when
    /// the pod runs as the app's UID with fsGroup)
    #[arg(long, env = "INIT_OWNER", value_name = "UID:GID", value_parser = owner)]
    pub owner: Option<(u32, u32)>,
}

/// A secret value: never printed by `Debug` or `Display`.
#[derive(Clone)]
pub struct SecretString(String);

impl SecretString {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SecretString {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretString(<redacted>)")
    }
}

impl std::str::FromStr for SecretString {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(SecretString(s.to_owned()))
    }
}

fn file_name(value: &str) -> Result<String, String> {
    let valid = !value.is_empty()
        && value != "."
        && value != ".."
        && !value.starts_with('.')
        && !value.contains('/')
        && !value.contains('\0');
    if valid {
        Ok(value.to_owned())
    } else {
        Err("must be a plain file name (no '/', not starting with '.')".into())
    }
}

fn owner(value: &str) -> Result<(u32, u32), String> {
    let (uid, gid) = value
        .split_once(':')
        .ok_or_else(|| "expected UID:GID, e.g. 1000:1000".to_owned())?;
    let parse = |s: &str| s.parse::<u32>().map_err(|_| format!("not a number: {s:?}"));
    Ok((parse(uid)?, parse(gid)?))
}
