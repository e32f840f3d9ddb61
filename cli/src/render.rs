//! Plain-text rendering: values in brief, times, side-by-side columns.

use serde_dynamo::AttributeValue;

/// Longest value shown in a column; longer ones end in `…`.
const MAX_CELL: usize = 40;

/// One value, briefly: strings quoted, numbers bare, sets in `<>`, lists in
/// `[]`, maps in `{}`.
pub fn show_value(v: &AttributeValue) -> String {
    clip(&full_value(v), MAX_CELL)
}

fn full_value(v: &AttributeValue) -> String {
    match v {
        AttributeValue::S(s) => format!("{s:?}"),
        AttributeValue::N(n) => n.clone(),
        AttributeValue::Bool(b) => b.to_string(),
        AttributeValue::Null(_) => "null".into(),
        AttributeValue::B(b) => format!("<{} bytes>", b.len()),
        AttributeValue::Ss(v) => {
            let mut v: Vec<String> = v.iter().map(|s| format!("{s:?}")).collect();
            v.sort();
            format!("<{}>", v.join(","))
        }
        AttributeValue::Ns(v) => {
            let mut v = v.clone();
            v.sort();
            format!("<{}>", v.join(","))
        }
        AttributeValue::Bs(v) => format!("<{} binaries>", v.len()),
        AttributeValue::L(l) => {
            let parts: Vec<String> = l.iter().map(full_value).collect();
            format!("[{}]", parts.join(", "))
        }
        AttributeValue::M(m) => {
            let mut parts: Vec<String> = m
                .iter()
                .map(|(k, v)| format!("{k}={}", full_value(v)))
                .collect();
            parts.sort();
            format!("{{{}}}", parts.join(", "))
        }
    }
}

/// At most `max` characters, the last one `…` when cut.
pub fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Epoch milliseconds as RFC 3339 UTC with milliseconds
/// (`2026-12-01T15:40:01.123Z`).
pub fn time_ms(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60,
        ms % 1000
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian
/// (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Rows of cells laid out in columns: the first column is the row's label,
/// padded to the widest label; the others to the widest cell of their
/// column. A trailing `note` cell is appended unpadded.
pub struct Columns {
    rows: Vec<(Vec<String>, String)>,
}

impl Columns {
    pub fn new() -> Self {
        Columns { rows: Vec::new() }
    }

    pub fn row(&mut self, cells: Vec<String>, note: &str) {
        self.rows.push((cells, note.to_owned()));
    }

    pub fn render(&self, indent: &str) -> String {
        let columns = self.rows.iter().map(|(c, _)| c.len()).max().unwrap_or(0);
        let widths: Vec<usize> = (0..columns)
            .map(|i| {
                self.rows
                    .iter()
                    .filter_map(|(c, _)| c.get(i))
                    .map(|c| c.chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        for (cells, note) in &self.rows {
            let mut line = indent.to_owned();
            for (i, cell) in cells.iter().enumerate() {
                line.push_str(cell);
                let pad = widths[i].saturating_sub(cell.chars().count());
                if i + 1 < cells.len() || !note.is_empty() {
                    line.push_str(&" ".repeat(pad + 2));
                }
            }
            line.push_str(note);
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

impl Default for Columns {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_values() {
        assert_eq!(time_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(time_ms(1_764_032_401_123), "2025-11-25T01:00:01.123Z");
        assert_eq!(time_ms(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(show_value(&AttributeValue::S("x".into())), "\"x\"");
        assert_eq!(
            show_value(&AttributeValue::Ss(vec!["b".into(), "a".into()])),
            "<\"a\",\"b\">"
        );
        let long = AttributeValue::S("y".repeat(100));
        assert_eq!(show_value(&long).chars().count(), MAX_CELL);
        assert!(show_value(&long).ends_with('…'));
    }

    #[test]
    fn columns_line_up() {
        let mut c = Columns::new();
        c.row(vec!["a".into(), "xx".into(), "y".into()], "");
        c.row(vec!["long".into(), "x".into(), "yyy".into()], "*");
        assert_eq!(c.render(""), "a     xx  y\nlong  x   yyy  *\n");
    }
}
