//! `cutover user add|list|revoke`: manage users and tokens straight in the server's database,
//! so the first admin token can exist before anyone can sign in.

use std::path::PathBuf;
use std::process::ExitCode;

use cutover_core::role::Role;

use crate::clock::now;
use crate::store::Storage;

/// Users and their tokens.
#[derive(clap::Args)]
pub(super) struct UserArgs {
    #[command(subcommand)]
    command: UserCommand,
}

#[derive(clap::Subcommand)]
enum UserCommand {
    /// Create a user (or give an existing one a new token) and print the token once. Giving
    /// a user another role ends their browser sessions under the old one.
    ///
    /// Example: cutover user add alice --role operator
    Add {
        name: String,
        #[arg(long)]
        role: Role,
        /// Limit the user to one rollout (e.g. a service's ingest token): it can neither see
        /// nor push to any other.
        #[arg(long, value_name = "ROLLOUT")]
        rollout: Option<String>,
        /// Where the plans are: a role that is not built in must be one a plan defines.
        #[arg(long, env = "CUTOVER_PLANS", default_value = "plans")]
        plans: PathBuf,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// List users with their roles (never tokens).
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Delete a user: their token and browser sessions stop working at once.
    ///
    /// Example: cutover user revoke alice
    Revoke {
        name: String,
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// Where the server keeps its data: its data directory, or its PostgreSQL.
#[derive(clap::Args)]
pub(super) struct StoreArgs {
    #[arg(long, env = "CUTOVER_DATA_DIR", default_value = ".data/cutover")]
    data_dir: PathBuf,
    /// The server's PostgreSQL URL, when it runs on one.
    #[arg(long, env = "CUTOVER_DATABASE", value_name = "URL")]
    database: Option<String>,
}

impl StoreArgs {
    pub(super) async fn open(&self) -> anyhow::Result<Storage> {
        Storage::open(self.database.as_deref(), &self.data_dir).await
    }

    /// Opens an existing database to read only: no file made, no migration, nothing sealed.
    pub(super) async fn open_read_only(&self) -> anyhow::Result<Storage> {
        Storage::open_read_only(self.database.as_deref(), &self.data_dir).await
    }
}

pub(super) async fn run(args: UserArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        UserCommand::Add {
            name,
            role,
            rollout,
            plans,
            store,
        } => {
            if role.is_named() {
                let defined: Vec<String> = match super::serve::load_plan_dir(&plans)? {
                    Ok(plans) => plans
                        .iter()
                        .flat_map(|p| p.roles.iter().map(|r| r.role.to_string()))
                        .collect(),
                    Err(errors) => {
                        errors.iter().for_each(|e| eprintln!("{e}"));
                        return Ok(ExitCode::FAILURE);
                    }
                };
                if !defined.contains(&role.to_string()) {
                    eprintln!(
                        "error: role \"{role}\" is neither built in (viewer, operator, product, lead, admin, ingest, flags) nor defined by a plan in {} (plan roles: {})",
                        plans.display(),
                        if defined.is_empty() {
                            "none".to_string()
                        } else {
                            defined.join(", ")
                        }
                    );
                    return Ok(ExitCode::FAILURE);
                }
            }
            let token = store
                .open()
                .await?
                .upsert_user_for(&name, role, rollout.as_deref(), now())
                .await?;
            println!("{token}");
        }
        UserCommand::List { store } => {
            for user in store.open().await?.users().await? {
                let created = humantime::format_rfc3339_seconds(
                    std::time::UNIX_EPOCH
                        + std::time::Duration::from_millis(user.created_at.max(0) as u64),
                );
                println!("{:<24} {:<9} created {created}", user.name, user.role);
            }
        }
        UserCommand::Revoke { name, store } => {
            if !store.open().await?.revoke_user(&name).await? {
                eprintln!("error: there is no user {name:?}");
                return Ok(ExitCode::FAILURE);
            }
            println!("revoked {name}: their token and sessions no longer work");
        }
    }
    Ok(ExitCode::SUCCESS)
}
