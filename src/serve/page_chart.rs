//! The status page's chart: the last runs' changes and durations as inline SVG, one column
//! per run, oldest on the left. Each bar carries a `<title>`, which browsers show as a tooltip
//! without any script.

use std::fmt::Write as _;

use super::html::escape;

/// One run on the chart.
#[derive(Debug, Clone, PartialEq)]
pub struct ChartRun {
    /// The run's id.
    pub id: i64,
    /// `run`, `rebuild`, … and how it ended, for the tooltip.
    pub label: String,
    /// Members added and removed and groups created.
    pub changes: u64,
    /// How long it took, in seconds (0 while it has not ended).
    pub seconds: f64,
    /// The CSS class of its outcome: `ok`, `held`, `bad` or `other`.
    pub class: &'static str,
}

const WIDTH: f64 = 720.0;
const PANEL: f64 = 110.0;
const GAP: f64 = 34.0;
const LEFT: f64 = 64.0;
const TOP: f64 = 20.0;

/// The SVG of `runs` (oldest first); a note instead when there are none.
pub fn chart(runs: &[ChartRun]) -> String {
    if runs.is_empty() {
        return "<p class=\"none\">No runs yet.</p>".to_owned();
    }
    let height = TOP + 2.0 * PANEL + GAP + 24.0;
    let mut svg = String::new();
    let _ = write!(
        svg,
        "<svg id=\"runs-chart\" xmlns=\"http://www.w3.org/2000/svg\" role=\"img\" \
         viewBox=\"0 0 {WIDTH} {height}\" width=\"{WIDTH}\" height=\"{height}\">\
         <title>Changes and durations of the last {} runs</title>",
        runs.len()
    );
    let changes: Vec<f64> = runs.iter().map(|r| r.changes as f64).collect();
    let seconds: Vec<f64> = runs.iter().map(|r| r.seconds).collect();
    panel(&mut svg, runs, &changes, TOP, "changes", |v| {
        format!("{v:.0} changes")
    });
    panel(
        &mut svg,
        runs,
        &seconds,
        TOP + PANEL + GAP,
        "duration (s)",
        |v| format!("{v:.1} s"),
    );
    // Run ids under the lower panel: the first, the last, and every fifth between.
    let step = column(runs.len());
    for (i, run) in runs.iter().enumerate() {
        if i == 0 || i + 1 == runs.len() || i % 5 == 0 {
            let x = LEFT + step * (i as f64 + 0.5);
            let y = TOP + 2.0 * PANEL + GAP + 16.0;
            let _ = write!(
                svg,
                "<text class=\"axis\" x=\"{x:.1}\" y=\"{y}\" text-anchor=\"middle\">{}</text>",
                run.id
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

fn column(runs: usize) -> f64 {
    (WIDTH - LEFT - 8.0) / runs.max(1) as f64
}

/// One panel: a bar per run scaled to the panel's largest value, with its axis label.
fn panel(
    svg: &mut String,
    runs: &[ChartRun],
    values: &[f64],
    top: f64,
    name: &str,
    tooltip: impl Fn(f64) -> String,
) {
    let max = values.iter().copied().fold(0.0_f64, f64::max);
    let scale = if max > 0.0 { PANEL / max } else { 0.0 };
    let bottom = top + PANEL;
    let _ = write!(
        svg,
        "<g class=\"panel\" data-name=\"{name}\">\
         <text class=\"axis\" x=\"4\" y=\"{:.1}\">{name}</text>\
         <text class=\"axis\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\
         <line class=\"base\" x1=\"{LEFT}\" y1=\"{bottom}\" x2=\"{WIDTH}\" y2=\"{bottom}\"/>",
        top - 6.0,
        LEFT - 6.0,
        top + 10.0,
        trim(max),
    );
    let step = column(runs.len());
    for (i, (run, &value)) in runs.iter().zip(values).enumerate() {
        // A run with nothing still shows as a hairline, so that every run has its column.
        let h = (value * scale).max(1.0);
        let x = LEFT + step * i as f64 + step * 0.15;
        let _ = write!(
            svg,
            "<rect class=\"{}\" x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{h:.1}\">\
             <title>run {}: {}, {}</title></rect>",
            run.class,
            bottom - h,
            step * 0.7,
            run.id,
            escape(&run.label),
            tooltip(value),
        );
    }
    svg.push_str("</g>");
}

/// A scale's top value without needless decimals.
fn trim(value: f64) -> String {
    if value >= 10.0 || value.fract() == 0.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.1}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(id: i64, changes: u64, seconds: f64) -> ChartRun {
        ChartRun {
            id,
            label: "run <succeeded>".to_owned(),
            changes,
            seconds,
            class: "ok",
        }
    }

    #[test]
    fn each_run_has_a_bar_in_each_panel_scaled_to_the_largest() {
        let svg = chart(&[run(1, 10, 2.0), run(2, 40, 0.5), run(3, 0, 1.0)]);
        assert!(svg.starts_with("<svg"), "{svg}");
        assert_eq!(svg.matches("<rect ").count(), 6);
        // The largest value fills the panel.
        assert!(svg.contains(&format!("height=\"{PANEL:.1}\"")), "{svg}");
        assert!(
            svg.contains("run 2: run &lt;succeeded&gt;, 40 changes"),
            "{svg}"
        );
        assert!(svg.contains("run 1: run &lt;succeeded&gt;, 2.0 s"), "{svg}");
        assert!(!svg.contains("<succeeded>"), "labels are escaped");
    }

    #[test]
    fn nothing_to_chart_says_so() {
        assert!(chart(&[]).contains("No runs yet"));
        // All-zero runs still draw (hairlines), without dividing by zero.
        let svg = chart(&[run(1, 0, 0.0)]);
        assert!(svg.contains("height=\"1.0\""), "{svg}");
        assert!(!svg.contains("NaN") && !svg.contains("inf"), "{svg}");
    }
}
