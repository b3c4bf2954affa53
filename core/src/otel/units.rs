//! Unit conversion between what a sender states (UCUM, as OpenTelemetry writes units) and
//! what a plan's metric is in.

/// Seconds per unit of time, for the names OpenTelemetry and plans use.
fn seconds(unit: &str) -> Option<f64> {
    Some(match unit {
        "ns" => 1e-9,
        "us" | "µs" => 1e-6,
        "ms" => 1e-3,
        "s" => 1.0,
        "min" => 60.0,
        "h" => 3600.0,
        "d" => 86400.0,
        _ => return None,
    })
}

/// Bytes per unit of size (UCUM's `By`, `KiBy`, ...; plans may write `B`, `KiB`, ...).
fn bytes(unit: &str) -> Option<f64> {
    Some(match unit.trim_end_matches('y').trim_end_matches('B') {
        "" => 1.0,
        "K" | "k" => 1e3,
        "Ki" => 1024.0,
        "M" => 1e6,
        "Mi" => 1024.0 * 1024.0,
        "G" => 1e9,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    })
    .filter(|_| unit.ends_with("By") || unit.ends_with('B'))
}

/// Dimensionless: UCUM's `1`, a ratio, and percentage points.
fn fraction(unit: &str) -> Option<f64> {
    Some(match unit {
        "1" | "ratio" => 1.0,
        "%" => 0.01,
        _ => return None,
    })
}

/// The factor that turns a value in `from` into one in `to`; `None` when they measure
/// different things. An empty `from` (the sender stated none) or an equal one is taken as
/// already in `to`, and so is any `{annotation}` unit (UCUM's `{request}`: a count); a
/// metric whose plan states no unit takes values as they come.
pub fn unit_factor(from: &str, to: Option<&str>) -> Option<f64> {
    let from = from.trim();
    let to = to.map(str::trim).unwrap_or("");
    if from.is_empty()
        || to.is_empty()
        || from == to
        || (from.starts_with('{') && from.ends_with('}'))
    {
        return Some(1.0);
    }
    for family in [seconds, bytes, fraction] {
        if let (Some(a), Some(b)) = (family(from), family(to)) {
            return Some(a / b);
        }
    }
    None
}
