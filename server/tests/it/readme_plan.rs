//! The README's "Your first plan, step by step": the assembled plan, read from the README, is
//! a valid plan, and every fragment the walk-through shows on the way is a piece of it.

const ASSEMBLED: &str = "# checkout-v2.toml: the README's walk-through, assembled\n";

fn readme() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap()
}

/// Every ```toml block of `text`, in order, without its fences.
fn toml_blocks(text: &str) -> Vec<&str> {
    text.split("```toml\n")
        .skip(1)
        .map(|rest| rest.split("\n```").next().unwrap_or(rest))
        .collect()
}

/// The walk-through's section, from its heading to the next heading of its level.
fn walk_through(readme: &str) -> &str {
    let start = readme
        .find("### Your first plan, step by step")
        .expect("the walk-through's heading in the README");
    let rest = &readme[start..];
    let end = rest[4..].find("\n### ").map_or(rest.len(), |i| i + 4);
    &rest[..end]
}

#[test]
fn the_readme_walk_through_plan_is_valid() {
    let readme = readme();
    let assembled: Vec<&str> = toml_blocks(&readme)
        .into_iter()
        .filter(|b| b.starts_with(ASSEMBLED))
        .collect();
    assert_eq!(
        assembled.len(),
        1,
        "one assembled checkout-v2 block in the README"
    );
    let text = format!("{}\n", assembled[0]);
    let plan = match cutover_core::plan::parse("checkout-v2.toml", &text) {
        Ok(plan) => plan,
        Err(errors) => panic!(
            "the README's checkout-v2 plan does not check:\n{}",
            errors
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        ),
    };
    assert_eq!(plan.id, "checkout-v2");
    let stages: Vec<&str> = plan.stages.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(stages, ["pilot", "canary", "quarter", "full"]);
    assert_eq!(plan.stages.len(), 4);
    assert!(!plan.gates.is_empty(), "at least one gate");
    assert!(!plan.triggers.is_empty(), "at least one trigger");
}

#[test]
fn every_readme_fragment_is_a_piece_of_the_assembled_plan() {
    let readme = readme();
    let section = walk_through(&readme);
    let blocks = toml_blocks(section);
    let (assembled, fragments): (Vec<&str>, Vec<&str>) =
        blocks.into_iter().partition(|b| b.starts_with(ASSEMBLED));
    assert_eq!(
        assembled.len(),
        1,
        "the assembled block is in the walk-through"
    );
    assert!(fragments.len() >= 5, "{} fragments", fragments.len());
    let whole = &assembled[0][ASSEMBLED.len()..];
    for fragment in &fragments {
        assert!(
            whole.contains(fragment),
            "a fragment the README shows is not in the assembled plan:\n{fragment}"
        );
    }
    // Together they are the whole file: nothing is in it that no step showed.
    assert_eq!(fragments.join("\n\n"), whole);
}
