//! `cutover user add | list | revoke` against a server's data directory: a token is printed
//! once, the list shows names and roles but never a token, and a revoked token stops working.

use std::process::{Command, Output};

use cutover_server::store::Storage;

fn cutover(data: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cutover"))
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .env_remove("CUTOVER_DATABASE")
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[tokio::test]
async fn users_are_added_listed_and_revoked() {
    let data = tempfile::tempdir().unwrap();
    let added = cutover(data.path(), &["user", "add", "alice", "--role", "operator"]);
    assert!(added.status.success(), "{added:?}");
    let token = stdout(&added).trim().to_string();
    assert!(token.starts_with("cut_"), "{token}");
    assert!(
        cutover(data.path(), &["user", "add", "bob", "--role", "viewer"])
            .status
            .success()
    );

    let list = cutover(data.path(), &["user", "list"]);
    assert!(list.status.success(), "{list:?}");
    let lines: Vec<Vec<String>> = stdout(&list)
        .lines()
        .map(|l| l.split_whitespace().take(2).map(str::to_string).collect())
        .collect();
    assert_eq!(lines, [["alice", "operator"], ["bob", "viewer"]]);
    assert!(
        !stdout(&list).contains(&token),
        "the list never shows a token"
    );

    let storage = Storage::open_sqlite(data.path()).await.unwrap();
    assert!(storage.user_by_token(&token).await.unwrap().is_some());
    let revoked = cutover(data.path(), &["user", "revoke", "alice"]);
    assert!(revoked.status.success(), "{revoked:?}");
    assert_eq!(storage.user_by_token(&token).await.unwrap(), None);

    let again = cutover(data.path(), &["user", "revoke", "alice"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("there is no user \"alice\""),
        "{again:?}"
    );
    let list = stdout(&cutover(data.path(), &["user", "list"]));
    assert_eq!(list.lines().count(), 1, "{list}");
}
