//! Shaped calls: one per changed flag, with JSON and URL escaping done by the template's own
//! filters, the removed flag told, and every template error caught before a call is made.

use super::*;
use crate::rollout::Phase;

fn desired(flags: &[(&str, FlagValue)]) -> Desired {
    Desired {
        rollout: "search".into(),
        version: 7,
        phase: Phase::Running,
        stage: Some("beta".into()),
        traffic: 25.0,
        killed: false,
        flags: flags
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
    }
}

fn shape(per_flag: bool, body: &str) -> Shape {
    Shape {
        method: "PATCH".into(),
        body: Some(body.into()),
        per_flag,
        headers: [(
            "X-Rollout".to_string(),
            "{{ rollout }}@{{ version }}".to_string(),
        )]
        .into(),
        headers_env: BTreeMap::new(),
    }
}

#[test]
fn one_call_per_changed_flag_escaped_by_its_filters() {
    let url = "https://flags.example/api/flags/{{ flag | segment }}";
    let s = shape(
        true,
        r#"{"on": {{ value | tojson }}, "note": {{ ("stage " ~ stage) | tojson }}}"#,
    );
    let want = desired(&[
        ("a b/c", FlagValue::Text("say \"hi\"".into())),
        ("batch", FlagValue::Number(50.0)),
        ("same", FlagValue::Bool(true)),
    ]);
    let known: BTreeMap<String, FlagValue> = [
        ("same".to_string(), FlagValue::Bool(true)),
        ("gone".to_string(), FlagValue::Bool(true)),
    ]
    .into();
    let calls = calls(&s, url, &want, &known).unwrap();
    let flags: Vec<_> = calls.iter().map(|c| c.flag.clone().unwrap()).collect();
    assert_eq!(
        flags,
        ["a b/c", "batch", "gone"],
        "unchanged flags are not sent"
    );
    assert_eq!(calls[0].url, "https://flags.example/api/flags/a%20b%2Fc");
    let body: serde_json::Value = serde_json::from_str(calls[0].body.as_ref().unwrap()).unwrap();
    assert_eq!(body["on"], "say \"hi\"");
    assert_eq!(body["note"], "stage beta");
    let body: serde_json::Value = serde_json::from_str(calls[1].body.as_ref().unwrap()).unwrap();
    assert_eq!(
        body["on"],
        serde_json::json!(50),
        "a whole number reads as an integer"
    );
    let body: serde_json::Value = serde_json::from_str(calls[2].body.as_ref().unwrap()).unwrap();
    assert_eq!(
        body["on"],
        serde_json::Value::Null,
        "a removed flag has no value"
    );
    assert_eq!(
        calls[0].headers,
        [("X-Rollout".to_string(), "search@7".to_string())]
    );
    assert_eq!(calls[0].method, "PATCH");
}

#[test]
fn one_call_for_all_sees_every_flag() {
    let s = shape(
        false,
        r#"{"killed": {{ killed | tojson }}, "flags": {{ flags | tojson }}}"#,
    );
    let calls = calls(
        &s,
        "https://x.example/state",
        &desired(&[("A", FlagValue::Bool(false))]),
        &BTreeMap::new(),
    )
    .unwrap();
    assert_eq!(calls.len(), 1);
    let body: serde_json::Value = serde_json::from_str(calls[0].body.as_ref().unwrap()).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"killed": false, "flags": {"A": false}})
    );
}

/// `plan check`'s look at a shape, over a plan that sets flag A.
fn check(shape: &Shape, url: &str, sample: &Desired) -> Result<(), TemplateError> {
    crate::template::check(
        shape,
        url,
        &sample.rollout,
        sample.stage.as_deref(),
        &sample.flags,
    )
}

#[test]
fn template_mistakes_are_caught_by_the_check() {
    let sample = desired(&[("A", FlagValue::Bool(true))]);
    let e = check(&shape(false, "{{ value }}"), "https://x.example", &sample).unwrap_err();
    assert_eq!(e.what, "body");
    assert!(e.message.contains("undefined"), "{e}");
    let e = check(&shape(true, "{{ value "), "https://x.example", &sample).unwrap_err();
    assert!(e.message.contains("syntax"), "{e}");
    let e = check(
        &shape(
            true,
            "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
        ),
        "https://x.example",
        &sample,
    )
    .unwrap_err();
    assert!(
        e.message.contains("fuel") || e.message.contains("range"),
        "{e}"
    );
    check(
        &shape(true, "{{ value | tojson }}"),
        "https://x.example/{{ flag }}",
        &sample,
    )
    .unwrap();
}

#[test]
fn an_undefined_name_in_a_filter_is_caught() {
    let sample = desired(&[("A", FlagValue::Bool(true))]);
    let e = check(
        &shape(true, "{{ valu | tojson }}"),
        "https://x.example",
        &sample,
    );
    assert!(e.is_err(), "{e:?}");
}
