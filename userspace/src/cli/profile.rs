//! `cgwarden profile from-oci|from-compose`: a profile from a container definition
//! users already have.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

#[derive(clap::Subcommand)]
pub enum ProfileCommand {
    /// From an OCI runtime config (runc's config.json).
    FromOci {
        config: PathBuf,
        #[arg(long, default_value = "container")]
        name: String,
    },
    /// From one service of a Compose file.
    FromCompose {
        compose: PathBuf,
        service: String,
        /// The Compose project (`docker-compose -p`); default: the file's `name:`,
        /// `COMPOSE_PROJECT_NAME`, or the file's directory, as Compose decides it.
        #[arg(long, short = 'p')]
        project: Option<String>,
    },
}

pub fn run(what: ProfileCommand) -> anyhow::Result<i32> {
    match what {
        ProfileCommand::FromOci { config, name } => from_oci(&config, &name),
        ProfileCommand::FromCompose {
            compose,
            service,
            project,
        } => from_compose(&compose, &service, project.as_deref()),
    }
}

/// Prints a profile made from an OCI runtime config.
fn from_oci(config: &Path, name: &str) -> anyhow::Result<i32> {
    let text =
        std::fs::read_to_string(config).with_context(|| format!("reading {}", config.display()))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", config.display()))?;
    let h = cgwarden::policy::import::from_oci(&value);
    print!(
        "{}",
        cgwarden::policy::import::profile_yaml(
            name,
            &format!("{} (OCI runtime config)", config.display()),
            &h
        )
    );
    Ok(0)
}

/// Prints a profile made from a Compose service.
fn from_compose(compose: &Path, service: &str, project: Option<&str>) -> anyhow::Result<i32> {
    let text = std::fs::read_to_string(compose)
        .with_context(|| format!("reading {}", compose.display()))?;
    let value: serde_json::Value = cgwarden::yaml::from_foreign_str(&text)
        .map_err(|e| anyhow::anyhow!("{}:{e}", compose.display()))?;
    let project = cgwarden::policy::import::compose_project(compose, &value, project);
    let h = cgwarden::policy::import::from_compose(&value, &project, service)
        .map_err(anyhow::Error::msg)?;
    print!(
        "{}",
        cgwarden::policy::import::profile_yaml(
            service,
            &format!("service `{service}` of {}", compose.display()),
            &h
        )
    );
    Ok(0)
}
