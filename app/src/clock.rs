//! Local wall-clock times, as every part of the page writes them. A time on another day than
//! today carries its day ("Mon 8 Dec 09:00"): a week of hypercare, a daily item's next
//! occurrence or a zoomed week of chart would otherwise read the same for every day.

const WEEKDAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

fn date(ms: i64) -> js_sys::Date {
    js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(ms as f64))
}

/// The local calendar day `ms` falls on, comparable between times.
fn day_of(ms: i64) -> (u32, u32, u32) {
    let d = date(ms);
    (d.get_full_year(), d.get_month(), d.get_date())
}

/// Whether `a` and `b` fall on the same local day.
pub fn same_day(a: i64, b: i64) -> bool {
    day_of(a) == day_of(b)
}

fn today(ms: i64) -> bool {
    same_day(ms, js_sys::Date::now() as i64)
}

/// `Mon 8 Dec`.
fn day(ms: i64) -> String {
    let d = date(ms);
    format!(
        "{} {} {}",
        WEEKDAYS[d.get_day() as usize % 7],
        d.get_date(),
        MONTHS[d.get_month() as usize % 12]
    )
}

/// `HH:MM`, bare: for places that say the day elsewhere (an axis within one day).
pub fn bare_hm(ms: i64) -> String {
    let d = date(ms);
    format!("{:02}:{:02}", d.get_hours(), d.get_minutes())
}

/// `Mon 14:05`: an axis label on a range across days (the range note says which week).
pub fn weekday_hm(ms: i64) -> String {
    let d = date(ms);
    format!("{} {}", WEEKDAYS[d.get_day() as usize % 7], bare_hm(ms))
}

/// `8 Dec 14:05`: an axis label on a range of a week or more, where weekdays repeat.
pub fn date_hm(ms: i64) -> String {
    let d = date(ms);
    format!(
        "{} {} {}",
        d.get_date(),
        MONTHS[d.get_month() as usize % 12],
        bare_hm(ms)
    )
}

/// `HH:MM` today, `Mon 8 Dec HH:MM` on any other day.
pub fn hm(ms: i64) -> String {
    if today(ms) {
        bare_hm(ms)
    } else {
        format!("{} {}", day(ms), bare_hm(ms))
    }
}

/// `HH:MM:SS` today, `Mon 8 Dec HH:MM:SS` on any other day.
pub fn hms(ms: i64) -> String {
    let d = date(ms);
    let time = format!(
        "{:02}:{:02}:{:02}",
        d.get_hours(),
        d.get_minutes(),
        d.get_seconds()
    );
    if today(ms) {
        time
    } else {
        format!("{} {time}", day(ms))
    }
}
