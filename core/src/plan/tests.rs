//! Plan parsing: the example plans validate, and broken plans give compiler-style errors.

use super::*;

use crate::fixtures;

fn errors(text: &str) -> Vec<String> {
    match parse("bad.toml", text) {
        Ok(_) => vec![],
        Err(errs) => errs.iter().map(|e| e.to_string()).collect(),
    }
}

fn minimal() -> String {
    fixtures::two_stage_plan("demo", "Demo", "")
}

#[test]
fn a_minimal_plan_gets_defaults() {
    let plan = parse("min.toml", &minimal()).unwrap();
    assert_eq!(plan.id, "demo");
    assert_eq!(plan.stages.len(), 2);
    assert_eq!(plan.stages[0].title, "canary");
    assert_eq!(plan.permissions, Permissions::default());
}

#[test]
fn unknown_keys_are_errors_with_their_position() {
    let text = minimal().replace("traffic = 10", "traffic = 10\ntrafic = 20");
    let errs = errors(&text);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].starts_with("bad.toml:9:1: unknown field \"trafic\""),
        "{}",
        errs[0]
    );
}

#[test]
fn traffic_must_not_decrease_and_a_stage_must_change_something() {
    let text = minimal().replace("traffic = 100", "traffic = 5");
    assert_eq!(
        errors(&text),
        [
            "bad.toml:12:11: traffic must not decrease from stage to stage: 5% is less than the previous stage's 10%"
        ]
    );
    let same = minimal().replace("traffic = 100", "traffic = 10");
    assert_eq!(
        errors(&same),
        [
            "bad.toml:12:11: stage \"ga\" keeps 10% traffic and the same flags as the previous stage: it changes nothing"
        ]
    );
    let flagged = same.replace(
        "traffic = 10\n\n[[metric]]",
        "traffic = 10\nflags = { gates_enforced = true }\n\n[[metric]]",
    );
    assert_eq!(errors(&flagged), Vec::<String>::new());
}

#[test]
fn duplicate_ids_point_at_the_second() {
    let text = minimal().replace("id = \"ga\"", "id = \"canary\"");
    assert_eq!(
        errors(&text),
        ["bad.toml:11:6: duplicate stage id \"canary\""]
    );
}

#[test]
fn hold_shorter_than_window_is_refused() {
    let text = format!(
        "{}\n[[gate]]\nid = \"p95\"\nexpr = \"p95(latency_ms) <= 700ms\"\nwindow = \"10m\"\nhold = \"5m\"\n",
        minimal()
    );
    let errs = errors(&text);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].starts_with("bad.toml:23:8: hold 5m is shorter than the window 10m"),
        "{}",
        errs[0]
    );
}

#[test]
fn bad_durations_roles_and_references_are_all_reported() {
    let text = format!(
        "{}\n[[gate]]\nid = \"p95\"\nexpr = \"x\"\nwindow = \"5 min\"\nhold = \"1h\"\nstages = [\"prod\"]\n\n[[checklist]]\nid = \"pre\"\ntitle = \"Pre\"\nitems = [{{ id = \"a\", text = \"A\", role = \"boss\", gate = \"nope\" }}]\n",
        minimal()
    );
    let errs = errors(&text);
    let expected = [
        ":21:9: in this gate's expression: unknown flag \"x\"",
        ":22:10: `5 min` is not a duration",
        ":24:10: unknown stage \"prod\"",
        ":29:41: unknown role \"boss\"",
        ":29:56: unknown gate \"nope\"",
    ];
    assert_eq!(errs.len(), expected.len(), "{errs:?}");
    for (err, want) in errs.iter().zip(expected) {
        assert!(err.contains(want), "{err} should contain {want}");
    }
}

#[test]
fn expression_errors_point_into_the_toml_string() {
    let text = format!(
        "{}\n[[gate]]\nid = \"p95\"\nexpr = \"p95(latency_ms{{variant=\\\"canary\\\"}}) <= 700xs\"\nwindow = \"5m\"\nhold = \"1h\"\n\n[[trigger]]\nid = \"t\"\nexpr = \"rate(latency_ms) > 1%\"\nfor = \"5m\"\naction = \"kill\"\n",
        minimal()
    );
    assert_eq!(
        errors(&text),
        [
            "bad.toml:21:51: in this gate's expression: unknown unit \"xs\": use ms, s, m, h, d or %",
            "bad.toml:27:9: in this trigger's expression: \"latency_ms\" is a distribution metric: use a quantile, mean, max, sum or last",
        ]
    );
}

#[test]
fn malformed_toml_names_line_and_column() {
    let errs = errors("[rollout]\nid = \"x\"\ntitle = \n");
    assert_eq!(errs.len(), 1);
    assert!(errs[0].starts_with("bad.toml:3:9: "), "{}", errs[0]);
}

#[test]
fn location_counts_characters_not_bytes() {
    assert_eq!(
        Location::of_offset("é\nab", 4),
        Location { line: 2, column: 2 }
    );
    assert_eq!(
        Location::of_offset("abc", 99),
        Location { line: 1, column: 4 }
    );
}

#[test]
fn the_example_plans_validate() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../plans");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let text = std::fs::read_to_string(&path).unwrap();
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            let plan = parse(&name, &text).unwrap_or_else(|e| panic!("{e:?}"));
            assert_eq!(
                format!("{}.toml", plan.id),
                name,
                "rollout id is the file name"
            );
            seen += 1;
        }
    }
    assert!(seen >= 1);
}

#[test]
fn actuators_are_checked_and_never_serialised() {
    let good = format!(
        "{}\n[[actuator]]\nid = \"hook\"\nkind = \"webhook\"\nurl = \"http://127.0.0.1:9/h\"\nsecret_env = \"HOOK_SECRET\"\n\n[[actuator]]\nid = \"env\"\nkind = \"env_file\"\npath = \".env.demo\"\n",
        minimal()
    );
    let plan = parse("a.toml", &good).unwrap();
    assert_eq!(plan.actuators.len(), 2);
    assert_eq!(plan.actuators[1].id(), "env");
    let json = serde_json::to_string(&plan).unwrap();
    assert!(
        !json.contains("127.0.0.1:9"),
        "the webhook url stays on the server"
    );

    let bad = format!(
        "{}\n[[actuator]]\nid = \"hook\"\nkind = \"webhook\"\nurl = \"ftp://x\"\npath = \"p\"\n\n[[actuator]]\nid = \"hook\"\nkind = \"carrier-pigeon\"\n\n[[actuator]]\nid = \"env\"\nkind = \"env_file\"\n",
        minimal()
    );
    let errs = errors(&bad);
    let want = [
        "bad.toml:22:7: url \"ftp://x\" must start with http:// or https://",
        "bad.toml:23:8: path does not apply to a webhook actuator",
        "bad.toml:26:6: duplicate actuator id \"hook\"",
        "bad.toml:27:8: unknown actuator kind \"carrier-pigeon\" (webhook or env_file)",
        "bad.toml:30:6: env_file actuator \"env\" needs a path",
    ];
    assert_eq!(errs, want);
}

#[test]
fn a_prometheus_metric_is_a_gauge_with_a_query() {
    let ok = format!(
        "{}\n[[metric]]\nid = \"err\"\nkind = \"gauge\"\nsource = \"prometheus\"\nquery = \"sum(rate(errors_total[1m]))\"\n",
        minimal()
    );
    assert_eq!(errors(&ok), Vec::<String>::new());
    let ratio = ok.replace("kind = \"gauge\"", "kind = \"ratio\"");
    let errs = errors(&ratio);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].contains(":20:6: metric \"err\" comes from Prometheus, so its kind is \"gauge\""),
        "{errs:?}"
    );
    let no_query = ok.replace("query = \"sum(rate(errors_total[1m]))\"\n", "");
    assert!(errors(&no_query)[0].contains("has source = \"prometheus\" but no query"));
}

#[test]
fn a_mutating_permission_for_viewer_is_an_error() {
    let text = format!(
        "{}\n[permissions]\nkill = [\"operator\", \"viewer\"]\n",
        minimal()
    );
    let errs = errors(&text);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].contains("kill cannot be given to viewer: viewer is the read-only role"),
        "{}",
        errs[0]
    );
}

#[test]
fn an_action_for_the_ingest_token_is_an_error() {
    for (action, role) in [
        ("kill", "ingest"),
        ("progress", "ingest"),
        ("resume", "system"),
    ] {
        let text = format!(
            "{}\n[permissions]\n{action} = [\"operator\", \"{role}\"]\n",
            minimal()
        );
        let errs = errors(&text);
        assert!(
            errs.iter()
                .any(|e| e.contains(&format!("{action} cannot be given to ingest or system"))),
            "{errs:?}"
        );
    }
}

/// The rollback fields' mistakes point at their place: a misspelt key in `[rollback]`, a
/// trigger action that does not exist, step back given to viewers.
#[test]
fn rollback_mistakes_are_errors_with_their_position() {
    let text = format!("{}\n[rollback]\nflag = {{ X = 1 }}\n", minimal());
    let errs = errors(&text);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].starts_with("bad.toml:20:1: unknown field \"flag\""),
        "{}",
        errs[0]
    );
    let text = format!(
        "{}\n[[trigger]]\nid = \"t\"\nexpr = \"p95(latency_ms) > 1s\"\nfor = \"1m\"\naction = \"step-back\"\n",
        minimal()
    );
    let errs = errors(&text);
    assert!(
        errs.iter()
            .any(|e| e.starts_with("bad.toml:23:10: unknown variant \"step-back\"")),
        "{errs:?}"
    );
    let text = format!("{}\n[permissions]\nstep_back = [\"viewer\"]\n", minimal());
    let errs = errors(&text);
    assert!(
        errs.iter()
            .any(|e| e.contains("step_back cannot be given to viewer")),
        "{errs:?}"
    );
    // Written right, they parse; the kill publishes them.
    let text = format!("{}\n[rollback]\nflags = {{ SHADOW = true }}\n", minimal());
    let plan = parse("ok.toml", &text).unwrap();
    assert_eq!(plan.rollback_flags(Some(0)).len(), 1);
}

/// A gate's runbook response is kept; a runbook link with a scheme other than http(s) is
/// refused at its place (it is shown as a link to every viewer).
#[test]
fn guidance_is_kept_and_a_runbook_link_must_be_http() {
    let gate = "\n[[gate]]\nid = \"p95\"\nexpr = \"p95(latency_ms) <= 700ms\"\nwindow = \"5m\"\nhold = \"5m\"\n\
                cause = \"cold cache\"\ncheck = \"curl /health\"\naction = \"step back\"\nowner = \"on-call\"\n";
    let text = format!("{}{gate}runbook = \"https://wiki/p95\"\n", minimal());
    let plan = parse("ok.toml", &text).unwrap();
    let g = &plan.gates[0].guidance;
    assert_eq!(
        (g.cause.as_deref(), g.check.as_deref(), g.action.as_deref()),
        (Some("cold cache"), Some("curl /health"), Some("step back"))
    );
    assert_eq!(g.runbook.as_deref(), Some("https://wiki/p95"));
    let text = format!("{}{gate}runbook = \"javascript:alert(1)\"\n", minimal());
    let errs = errors(&text);
    assert!(
        errs.iter().any(|e| e.starts_with(
            "bad.toml:28:11: runbook \"javascript:alert(1)\" must be an http(s) link"
        )),
        "{errs:?}"
    );
}

/// "Same time last week" reads 10 min buckets: with a 10 min window it is a plan, with a 5 min
/// one it is refused; a week and a day is the reach, or the hypercare and a day if longer.
#[test]
fn an_offset_reaches_a_week_and_as_far_as_the_hypercare() {
    let gate = |offset: &str, window: &str| {
        format!(
            "\n[[gate]]\nid = \"p95\"\nexpr = \"p95(latency_ms) <= p95(latency_ms offset {offset})\"\nwindow = \"{window}\"\nhold = \"{window}\"\n"
        )
    };
    let with_hypercare = |hypercare: &str, rest: &str| {
        fixtures::two_stage_plan("demo", "Demo", rest).replace(
            "title = \"Demo\"\n",
            &format!("title = \"Demo\"\nhypercare = \"{hypercare}\"\n"),
        )
    };
    let plan = |rest: &str| fixtures::two_stage_plan("demo", "Demo", rest);
    assert_eq!(errors(&plan(&gate("7d", "10m"))), Vec::<String>::new());
    assert_eq!(errors(&plan(&gate("24h", "5m"))), Vec::<String>::new());
    let errs = errors(&plan(&gate("7d", "5m")));
    assert!(
        errs.len() == 1 && errs[0].contains("offset 168h 00m reads data kept in 10m buckets"),
        "{errs:?}"
    );
    // Fifteen minutes is one ten-minute bucket or two, depending on the second it is read.
    let errs = errors(&plan(&gate("7d", "15m")));
    assert!(
        errs.len() == 1 && errs[0].contains("a whole number of them"),
        "{errs:?}"
    );
    let errs = errors(&plan(&gate("8d", "10m")));
    assert!(
        errs.len() == 1 && errs[0].contains("reaches past the 192h 00m of data the store keeps"),
        "{errs:?}"
    );
    // A 14 day hypercare keeps 15 days.
    assert_eq!(
        errors(&with_hypercare("14d", &gate("14d", "10m"))),
        Vec::<String>::new()
    );
    let long = parse("p.toml", &with_hypercare("14d", "")).unwrap();
    assert_eq!(long.lookback(), 15 * crate::time::DAY);
    // A plan that does not promote itself says nothing about it: its stored JSON, and the
    // hash that tells a changed plan, stay what they were.
    let json = serde_json::to_string(&long).unwrap();
    assert!(!json.contains("auto_progress"), "{json}");
    assert_eq!(
        parse("p.toml", &plan("")).unwrap().lookback(),
        8 * crate::time::DAY
    );
    let errs = errors(&with_hypercare("31d", ""));
    assert!(
        errs.len() == 1 && errs[0].contains("hypercare is at most 720h 00m"),
        "{errs:?}"
    );
}

/// Every new field's mistakes, each at its file:line:col: a role nobody defined, an offset
/// past what the store keeps, cycles where they mean nothing, a phase that is almost a time.
#[test]
fn clock_baseline_cycle_and_role_mistakes_point_at_the_value() {
    let text = format!(
        "{}\n[[role]]\nid = \"security_lead\"\n\n[[gate]]\nid = \"p95\"\nexpr = \"p95(latency_ms) <= p95(latency_ms offset 25h)\"\nwindow = \"5m\"\ncycles = 2\nhold = \"10m\"\n\n[[trigger]]\nid = \"t\"\nexpr = \"fired(nope) > 0\"\nfor = \"1m\"\naction = \"alert\"\n\n[[signoff]]\nstage = \"ga\"\neach = true\nroles = [\"lead\", \"db_lead\"]\n\n[[checklist]]\nid = \"pre\"\ntitle = \"Pre\"\nitems = [{{ id = \"a\", text = \"A\", phase = \"T+15x\" }}, {{ id = \"b\", text = \"B\", days = 40, role = \"security_lead\" }}]\n",
        minimal()
    );
    let errs = errors(&text);
    let expected = [
        ":24:8: offset 25h 00m reads data kept in 10m buckets: give it a window of at least 10m",
        ":27:8: a gate takes hold (a continuous pass) or cycles",
        ":31:9: in this trigger's expression: unknown trigger \"nope\"",
        ":38:9: unknown role \"db_lead\"",
        ":43:17: phase \"T+15x\" is not a time from T-0",
        ":43:84: days must be 1 to 31",
    ];
    assert_eq!(errs.len(), expected.len(), "{errs:#?}");
    for (err, want) in errs.iter().zip(expected) {
        assert!(err.contains(want), "{err} should contain {want}");
    }
    let on_trigger = format!(
        "{}\n[[trigger]]\nid = \"t\"\nexpr = \"rate(error) > 1%\"\nfor = \"1m\"\naction = \"alert\"\ncycles = 2\n",
        minimal()
    );
    let errs = errors(&on_trigger);
    assert!(
        errs.len() == 1 && errs[0].contains("unknown field \"cycles\""),
        "{errs:?}"
    );
}

#[test]
fn stages_inherit_flags_when_the_plan_says_so() {
    let text = minimal()
        .replace("title = \"Demo\"", "title = \"Demo\"\ninherit_flags = true")
        .replace(
            "traffic = 10\n",
            "traffic = 10\nflags = { new_stack = true, canary_header = \"x\" }\n",
        )
        .replace(
            "traffic = 100\n",
            "traffic = 100\nflags = { canary_header = \"y\" }\n",
        );
    let plan = parse("inherit.toml", &text).unwrap();
    let ga = &plan.stages[1].flags;
    assert_eq!(
        ga.get("new_stack"),
        Some(&FlagValue::Bool(true)),
        "kept from canary"
    );
    assert_eq!(ga.get("canary_header"), Some(&FlagValue::Text("y".into())));
    let off = text.replace("traffic = 100\n", "traffic = 100\ninherit_flags = false\n");
    let plan = parse("inherit.toml", &off).unwrap();
    assert!(!plan.stages[1].flags.contains_key("new_stack"));
}

/// People read a plan's own role by its title; a built-in role by its word.
#[test]
fn a_plan_role_reads_as_its_title() {
    let text = format!(
        "{}\n[[role]]\nid = \"db_lead\"\ntitle = \"Database lead\"\n",
        minimal()
    );
    let plan = parse("roles.toml", &text).unwrap();
    use crate::role::{Role, RoleName};
    let named = Role::Named(RoleName::new("db_lead").unwrap());
    assert_eq!(plan.role_title(&named), "Database lead");
    assert_eq!(plan.role_title(&Role::Lead), "lead");
    let other = Role::Named(RoleName::new("security").unwrap());
    assert_eq!(plan.role_title(&other), "security");
}

#[test]
fn adjustable_flags_name_real_stages_and_bounds_that_fit() {
    let with = |extra: &str| errors(&format!("{}\n{extra}", minimal()));
    assert!(
        with("[[adjust]]\nflag = \"rate\"\nmin = 0\nmax = 1\n").is_empty(),
        "a plain bounded number"
    );
    let errs = with("[[adjust]]\nflag = \"rate\"\nmin = 2\nmax = 1\nstages = [\"nope\"]\n");
    assert!(
        errs.iter().any(|e| e.contains("min 2 is above max 1")),
        "{errs:?}"
    );
    assert!(
        errs.iter().any(|e| e.contains("unknown stage \"nope\"")),
        "{errs:?}"
    );
    let errs = with("[[adjust]]\nflag = \"m\"\nmin = 0\nvalues = [\"a\"]\n");
    assert!(
        errs.iter().any(|e| e.contains("one or the other")),
        "{errs:?}"
    );
    let errs = with("[[adjust]]\nflag = \"r\"\n[[adjust]]\nflag = \"r\"\n");
    assert!(
        errs.iter().any(|e| e.contains("declared twice")),
        "{errs:?}"
    );
    // A stage that sets the flag to a text cannot take numeric bounds.
    let text = minimal().replacen(
        "traffic = 10",
        "traffic = 10\nflags = { MODE = \"full\" }",
        1,
    ) + "\n[[adjust]]\nflag = \"MODE\"\nmin = 0\n";
    let errs = errors(&text);
    assert!(
        errs.iter().any(|e| e.contains("sets it to full")),
        "{errs:?}"
    );
}

#[test]
fn a_confirm_metric_is_a_gauge_of_the_plan() {
    let with = |extra: &str| errors(&format!("{}\n{extra}", minimal()));
    let errs = with("[confirm]\nmetric = \"nope\"\n");
    assert!(
        errs.iter().any(|e| e.contains("unknown metric \"nope\"")),
        "{errs:?}"
    );
    let errs =
        with("[[metric]]\nid = \"hits\"\nkind = \"ratio\"\n\n[confirm]\nmetric = \"hits\"\n");
    assert!(
        errs.iter().any(|e| e.contains("must be a gauge")),
        "{errs:?}"
    );
    let ok = parse(
        "c.toml",
        &format!("{}\n[[metric]]\nid = \"applied\"\nkind = \"gauge\"\n\n[confirm]\nmetric = \"applied\"\nwithin = \"30s\"\n", minimal()),
    )
    .unwrap();
    assert_eq!(ok.confirm.metric.as_deref(), Some("applied"));
    assert_eq!(ok.confirm.instance_label, "instance");
    assert_eq!(ok.confirm.within, crate::time::Span(30_000));
}

/// A gate's or trigger's `assumption` (a number its runbook does not give) is kept and
/// found by id; the PAGS plan marks its SLO, pool and deadlock numbers so.
#[test]
fn assumptions_are_kept_with_their_gate_or_trigger() {
    let text = fixtures::two_stage_plan(
        "demo",
        "Demo",
        r#"
[[gate]]
id = "p95"
expr = "p95(latency_ms) <= 300ms"
window = "5m"
hold = "10m"
assumption = "300ms is the SLO; the runbook never gives it."

[[trigger]]
id = "slow"
expr = "p95(latency_ms) > 600ms"
for = "5m"
action = "kill"
assumption = "Twice the assumed SLO."
"#,
    );
    let plan = parse("demo.toml", &text).unwrap();
    assert_eq!(
        plan.assumption("p95"),
        Some("300ms is the SLO; the runbook never gives it.")
    );
    assert_eq!(plan.assumption("slow"), Some("Twice the assumed SLO."));
    assert_eq!(plan.assumption("nothing"), None);
    let pags = parse(
        "pags-cutover.toml",
        include_str!("../../../plans/pags-cutover.toml"),
    )
    .unwrap();
    for id in ["p95-slo", "latency", "db-pool", "db-deadlocks"] {
        assert!(pags.assumption(id).is_some(), "{id}");
    }
}

/// An env_file actuator writes a file: a call's shape on it is a mistake, said, not ignored.
#[test]
fn an_env_file_actuator_refuses_a_calls_shape() {
    let text = fixtures::two_stage_plan(
        "demo",
        "Demo",
        r#"
[[actuator]]
id = "file"
kind = "env_file"
path = ".data/.env.demo"
per_flag = true
headers = { "X-Team" = "search" }
"#,
    );
    let errs = errors(&text);
    assert!(
        errs.iter()
            .any(|e| e.contains("per_flag does not apply to an env_file actuator")),
        "{errs:?}"
    );
    assert!(
        errs.iter()
            .any(|e| e.contains("headers does not apply to an env_file actuator")),
        "{errs:?}"
    );
}

#[test]
fn tolerate_on_a_cycle_gate_is_refused_in_words() {
    let text = fixtures::two_stage_plan(
        "demo",
        "Demo",
        "\n[[gate]]\nid = \"kpi\"\nexpr = \"p95(latency_ms) <= 700ms\"\nwindow = \"5m\"\ncycles = 2\ntolerate = 1\n",
    );
    let errs = errors(&text);
    assert!(
        errs.len() == 1 && errs[0].contains("a cycle gate judges whole windows"),
        "{errs:?}"
    );
}
