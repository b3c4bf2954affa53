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
        /// The person's email: a token bound to it is the same person as whoever signs in
        /// through single sign-on with that verified email (sign-offs count them once).
        #[arg(long)]
        email: Option<String>,
        /// Where the plans are: a role that is not built in must be one a plan defines.
        #[arg(long, env = "CUTOVER_PLANS", default_value = "plans")]
        plans: PathBuf,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// List token users with their roles (never tokens), then the people who signed in
    /// through single sign-on, with their groups, roles and last sign-in.
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Delete a token user, or revoke a person who signs in through single sign-on (by
    /// email or subject): their token and browser sessions stop working at once, and the
    /// provider's word no longer lets them in.
    ///
    /// Example: cutover user revoke alice; cutover user revoke alice@example.com
    Revoke {
        name: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Let a revoked single sign-on person in again (by email or subject).
    Restore {
        who: String,
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
            email,
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
            let storage = store.open().await?;
            let token = storage
                .upsert_user_for(&name, role, rollout.as_deref(), now())
                .await?;
            storage.set_user_email(&name, email.as_deref()).await?;
            println!("{token}");
        }
        UserCommand::List { store } => {
            let storage = store.open().await?;
            let time = |ms: i64| {
                humantime::format_rfc3339_seconds(
                    std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64),
                )
            };
            for user in storage.users().await? {
                println!(
                    "{:<24} {:<9} created {}",
                    user.name,
                    user.role,
                    time(user.created_at)
                );
            }
            for p in storage.sso_users().await? {
                println!(
                    "{:<24} {:<9} sso {} <{}> groups {} last sign-in {}{}",
                    p.name,
                    p.roles,
                    p.subject,
                    p.email.as_deref().unwrap_or("no email"),
                    if p.groups.is_empty() {
                        "none".to_string()
                    } else {
                        p.groups.join(",")
                    },
                    time(p.last_sign_in),
                    if p.revoked { " REVOKED" } else { "" }
                );
            }
        }
        UserCommand::Revoke { name, store } => {
            let storage = store.open().await?;
            if storage.revoke_user(&name).await? {
                println!("revoked {name}: their token and sessions no longer work");
            } else {
                let people = storage.sso_revoke(&name, true, now()).await?;
                if people.is_empty() {
                    eprintln!(
                        "error: there is no user {name:?} (nor a single sign-on person with that email or subject)"
                    );
                    return Ok(ExitCode::FAILURE);
                }
                println!(
                    "revoked {name} (sso {}): their sessions ended; the provider no longer lets them in",
                    people.join(", ")
                );
            }
        }
        UserCommand::Restore { who, store } => {
            let people = store.open().await?.sso_revoke(&who, false, now()).await?;
            if people.is_empty() {
                eprintln!("error: no single sign-on person {who:?}");
                return Ok(ExitCode::FAILURE);
            }
            println!("restored {who}: they may sign in again");
        }
    }
    Ok(ExitCode::SUCCESS)
}
