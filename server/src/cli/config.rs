//! `cutover serve --config cutover.toml`: where to listen, where the data and the plans live.
//! Flags and environment variables win over the file; the file wins over defaults. Unknown
//! keys are errors with the file, line and column, like plan errors. Relative paths in the
//! file are relative to the file's directory.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use cutover_core::plan::Location;
use serde::Deserialize;

pub const DEFAULT_ADDR: &str = "127.0.0.1:8787";
pub const DEFAULT_DATA_DIR: &str = ".data/cutover";

#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub addr: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    /// PostgreSQL URL; SQLite in `data_dir` when absent.
    pub database: Option<String>,
    /// Prometheus HTTP API base URL (credentials come from the environment, not this file).
    pub prometheus: Option<String>,
    /// How often to ask Prometheus, e.g. "10s".
    pub prometheus_interval: Option<HumanDuration>,
    /// Directory of plan files (serve only; the demo has its own).
    pub plans: Option<PathBuf>,
    /// Where people reach the dashboard; `https://...` turns on secure cookies and HSTS.
    pub public_url: Option<String>,
    /// Proxies in front whose forwarding headers name the client (addresses or CIDR ranges).
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// Live streams one token or browser session may hold open.
    pub streams_per_sign_in: Option<usize>,
    /// `[[notify]]` channels for every plan that declares none (checked by
    /// `cutover_core::plan::parse_channels`, which reads them from the same text).
    #[serde(default, rename = "notify")]
    pub notify_tables: Vec<toml::Table>,
    #[serde(skip)]
    pub notify: Vec<cutover_core::plan::Channel>,
    /// Single sign-on through the company's OpenID provider.
    pub sso: Option<SsoConfig>,
}

/// `[sso]`: an OpenID Connect provider people sign in with, and what its groups may do.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SsoConfig {
    /// The provider's issuer URL (its discovery document is under it).
    pub issuer: String,
    /// As the sign-in page names it: "Sign in with <name>".
    pub name: String,
    pub client_id: String,
    /// The environment variable holding the client secret (never the secret itself here).
    pub client_secret_env: Option<String>,
    /// Or a file holding it (relative to this file).
    pub client_secret_file: Option<PathBuf>,
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
    /// The ID token claim listing the person's groups.
    pub groups_claim: Option<String>,
    /// Only people with a verified email at one of these domains (empty: anyone the
    /// provider vouches for).
    #[serde(default)]
    pub email_domains: Vec<String>,
    /// How long a session lasts before the person signs in again ("12h" by default); their
    /// groups are read again then.
    pub session_lifetime: Option<HumanDuration>,
    /// Whom a refused person should ask ("#cutover-admins").
    pub contact: Option<String>,
    /// Roles for a person in no mapped group; without it such a person is refused.
    #[serde(default)]
    pub default_roles: Vec<String>,
    /// Provider group -> roles: `"sre-oncall" = ["operator"]`.
    #[serde(default)]
    pub groups: std::collections::BTreeMap<String, Vec<String>>,
    /// Where the provider sends people back (default: `public_url` + `/auth/sso/callback`,
    /// else this server as the browser reached it).
    pub redirect_url: Option<String>,
}

impl SsoConfig {
    /// The settings the server runs with: the secret read, roles parsed.
    pub fn settle(&self, base: &Path) -> Result<crate::sso::Settings, String> {
        let secret = match (&self.client_secret_env, &self.client_secret_file) {
            (Some(var), None) => std::env::var(var).map_err(|_| {
                format!("sso: the environment variable {var} (client_secret_env) is not set")
            })?,
            (None, Some(file)) => {
                let path = if file.is_relative() {
                    base.join(file)
                } else {
                    file.clone()
                };
                std::fs::read_to_string(&path)
                    .map_err(|e| format!("sso: client_secret_file {}: {e}", path.display()))?
                    .trim()
                    .to_string()
            }
            _ => return Err("sso: name one of client_secret_env or client_secret_file".into()),
        };
        let role = |r: &String| -> Result<cutover_core::role::Role, String> {
            r.parse::<cutover_core::role::Role>()
                .map_err(|e| format!("sso: {e}"))
                .and_then(|role| match role {
                    cutover_core::role::Role::Ingest | cutover_core::role::Role::Flags => {
                        Err(format!(
                            "sso: {role} is a machine role: give it with a token, not to people"
                        ))
                    }
                    role => Ok(role),
                })
        };
        let mut groups = std::collections::BTreeMap::new();
        for (group, roles) in &self.groups {
            groups.insert(
                group.clone(),
                roles.iter().map(role).collect::<Result<Vec<_>, _>>()?,
            );
        }
        Ok(crate::sso::Settings {
            issuer: self.issuer.clone(),
            name: self.name.clone(),
            client_id: self.client_id.clone(),
            client_secret: secret,
            scopes: self.scopes.clone().unwrap_or_else(|| {
                ["openid", "email", "profile", "groups"]
                    .map(String::from)
                    .to_vec()
            }),
            groups_claim: self.groups_claim.clone().unwrap_or_else(|| "groups".into()),
            email_domains: self.email_domains.clone(),
            session_lifetime: self
                .session_lifetime
                .map_or(crate::sso::SESSION_LIFETIME, |d| {
                    d.0.as_millis() as cutover_core::time::Millis
                }),
            contact: self.contact.clone(),
            default_roles: self
                .default_roles
                .iter()
                .map(role)
                .collect::<Result<Vec<_>, _>>()?,
            groups,
            redirect_url: self.redirect_url.clone(),
            jwks_refresh: std::time::Duration::from_secs(10),
        })
    }
}

impl Config {
    /// Reads and checks `path`; the error is `file:line:col: message`.
    pub fn load(path: &Path) -> Result<Config, String> {
        let name = path.display().to_string();
        let text =
            std::fs::read_to_string(path).map_err(|e| format!("{name}: cannot read: {e}"))?;
        let mut config = Config::parse(&name, &text)?;
        config.notify = cutover_core::plan::parse_channels(&name, &text).map_err(|errors| {
            errors
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        })?;
        let base = path.parent().unwrap_or(Path::new(""));
        for p in [&mut config.data_dir, &mut config.plans]
            .into_iter()
            .flatten()
        {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        Ok(config)
    }

    pub fn parse(name: &str, text: &str) -> Result<Config, String> {
        toml::from_str(text).map_err(|e| {
            let at = e.span().map_or(0, |s| s.start);
            let Location { line, column } = Location::of_offset(text, at);
            format!("{name}:{line}:{column}: {}", e.message())
        })
    }
}

/// A duration written the way people write them: "10s", "1m 30s".
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HumanDuration(pub std::time::Duration);

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text)
            .map(HumanDuration)
            .map_err(|e| serde::de::Error::custom(format!("`{text}` is not a duration: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_reads_its_keys_and_refuses_unknown_ones() {
        let c = Config::parse("c.toml", "addr = \"0.0.0.0:9000\"\nplans = \"p\"\n").unwrap();
        assert_eq!(c.addr, Some("0.0.0.0:9000".parse().unwrap()));
        assert_eq!(c.plans, Some(PathBuf::from("p")));
        let e = Config::parse("c.toml", "addr = \"0.0.0.0:9000\"\nadr = 1\n").unwrap_err();
        assert!(e.starts_with("c.toml:2:1: unknown field `adr`"), "{e}");
        let e = Config::parse("c.toml", "addr = \"nowhere\"\n").unwrap_err();
        assert!(e.starts_with("c.toml:1:8: "), "{e}");
        let c = Config::parse("c.toml", "prometheus_interval = \"15s\"\n").unwrap();
        assert_eq!(
            c.prometheus_interval,
            Some(HumanDuration(std::time::Duration::from_secs(15)))
        );
        let e = Config::parse("c.toml", "prometheus_interval = \"often\"\n").unwrap_err();
        assert!(
            e.starts_with("c.toml:1:23: `often` is not a duration"),
            "{e}"
        );
    }

    /// `[[notify]]` in the config file: checked like a plan's, with the line of a mistake;
    /// plans without channels of their own get them, plans with some keep theirs.
    #[test]
    fn notify_channels_in_the_config_are_checked_and_are_the_plans_default() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cutover.toml");
        std::fs::write(
            &path,
            "addr = \"127.0.0.1:9000\"\n\n[[notify]]\nid = \"ops\"\nkind = \"slack\"\nurl_env = \"OPS_SLACK\"\n",
        )
        .unwrap();
        let config = Config::load(&path).unwrap();
        assert_eq!(config.notify.len(), 1);
        assert_eq!(config.notify[0].id, "ops");
        let defaults = config.notify.clone();
        std::fs::write(
            &path,
            "[[notify]]\nid = \"ops\"\nkind = \"pager\"\nurl = \"http://h\"\n",
        )
        .unwrap();
        let e = Config::load(&path).unwrap_err();
        assert!(
            e.ends_with(":3:8: unknown notify kind \"pager\" (slack, webhook, pagerduty or email)"),
            "{e}"
        );

        let plan = |rest: &str| {
            cutover_core::plan::parse(
                "p.toml",
                &format!("[rollout]\nid = \"p\"\ntitle = \"P\"\n[[stage]]\nid = \"s\"\ntraffic = 10\n{rest}"),
            )
            .unwrap()
        };
        let own = "[[notify]]\nid = \"mine\"\nkind = \"slack\"\nurl = \"http://h\"\n";
        let mut plans = vec![plan(""), plan(own)];
        crate::cli::serve::with_default_channels(&mut plans, &defaults);
        assert_eq!(plans[0].channels[0].id, "ops");
        assert_eq!(plans[1].channels[0].id, "mine");
    }

    #[test]
    fn relative_paths_are_relative_to_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("cutover.toml");
        std::fs::write(&file, "data_dir = \"data\"\nplans = \"/etc/plans\"\n").unwrap();
        let c = Config::load(&file).unwrap();
        assert_eq!(c.data_dir, Some(dir.path().join("data")));
        assert_eq!(c.plans, Some(PathBuf::from("/etc/plans")));
    }
}
