//! Numbers as people read them on the board and in reasons: a leaf, so gates and describe
//! can both use it.

/// A value as the gate board shows it: whole numbers from 100, more digits below.
pub fn number(v: Option<f64>) -> String {
    match v {
        None => "no data".into(),
        Some(v) if v.abs() >= 100.0 => format!("{v:.0}"),
        Some(v) if v.abs() >= 1.0 => format!("{v:.2}"),
        Some(v) => format!("{v:.4}"),
    }
}

/// A value in its unit: `612ms`, `0.4%` (ratios are 0..1), `3.20 GiB`, or a bare number.
pub fn quantity(v: Option<f64>, unit: Option<&str>) -> String {
    match (v, unit) {
        (None, _) => "no data".into(),
        (Some(v), Some("%")) => {
            let p = v * 100.0;
            let text = if p.abs() >= 100.0 {
                format!("{p:.0}")
            } else if p.abs() >= 10.0 {
                format!("{p:.1}")
            } else {
                format!("{p:.2}")
            };
            let text = if text.contains('.') {
                text.trim_end_matches('0').trim_end_matches('.').to_string()
            } else {
                text
            };
            format!("{text}%")
        }
        (Some(v), Some("ms")) if v.abs() >= 10.0 => format!("{v:.0}ms"),
        (Some(v), Some("ms")) => format!("{v:.2}ms"),
        (Some(v), None | Some("count")) => number(Some(v)),
        (Some(v), Some(unit)) => format!("{} {unit}", number(Some(v))),
    }
}
