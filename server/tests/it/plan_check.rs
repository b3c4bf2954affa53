//! `cutover plan check`: every example plan passes; a broken one fails with file:line:col.

use std::process::Command;

fn cutover() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cutover"))
}

#[test]
fn every_example_plan_checks_clean() {
    let plans = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../plans");
    let mut files: Vec<_> = std::fs::read_dir(&plans)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    let names: Vec<String> = files
        .iter()
        .map(|f| f.file_stem().unwrap().to_string_lossy().to_string())
        .collect();
    assert_eq!(
        names,
        [
            "hal9-shadow",
            "lens-v1",
            "pags-cutover",
            "semantic-mirror",
            "spiralogic"
        ],
        "one plan per runbook"
    );
    let out = cutover()
        .args(["plan", "check"])
        .args(&files)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout.lines().filter(|l| l.contains(": ok (")).count(),
        5,
        "{stdout}"
    );
}

#[test]
fn a_broken_plan_fails_with_its_position() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("broken.toml");
    std::fs::write(
        &file,
        "[rollout]\nid = \"b\"\ntitle = \"B\"\n\n[[stage]]\nid = \"canary\"\ntraffic = 50\n\n[[stage]]\nid = \"ga\"\ntraffic = 20\n",
    )
    .unwrap();
    let out = cutover()
        .args(["plan", "check"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let expected = format!(
        "{}:11:11: traffic must not decrease from stage to stage: 20% is less than the previous stage's 50%",
        file.display()
    );
    assert_eq!(stderr.trim(), expected);
}

/// `cutover serve --config`: a config with a typo stops start-up with its position; a good one
/// serves the plans it names.
#[test]
fn serve_reads_a_config_file_and_refuses_a_bad_one() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "addr = \"127.0.0.1:0\"\nplan = \"plans\"\n").unwrap();
    let out = cutover()
        .args(["serve", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("bad.toml:2:1: unknown field `plan`"),
        "{stderr}"
    );

    let plans = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../plans");
    let good = dir.path().join("cutover.toml");
    std::fs::write(
        &good,
        format!(
            "addr = \"127.0.0.1:0\"\ndata_dir = \"data\"\nplans = \"{}\"\n",
            plans.display()
        ),
    )
    .unwrap();
    let mut child = cutover()
        .args(["serve", "--config"])
        .arg(&good)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut first = String::new();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    std::io::BufRead::read_line(&mut stdout, &mut first).unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        first.starts_with("cutover is serving 5 rollout(s) at http://127.0.0.1:"),
        "{first}"
    );
    assert!(
        dir.path().join("data").is_dir(),
        "data_dir is relative to the config file"
    );
}
