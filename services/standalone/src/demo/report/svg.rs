//! A few SVG primitives and a plot panel (axes, ticks, grid, lines, legend), written by hand
//! so the report needs no plotting library.

use std::fmt::Write;

/// Colours of the report's series.
pub const TREATMENT: &str = "#1f77b4";
/// The holdout's colour.
pub const HOLDOUT: &str = "#ff7f0e";
/// A third series.
pub const THIRD: &str = "#2ca02c";
/// Reference lines.
pub const GREY: &str = "#888888";
/// Better than the holdout.
pub const GOOD: &str = "#2ca02c";
/// Worse than the holdout.
pub const BAD: &str = "#d62728";

/// The SVG namespace name: an identifier every stand-alone SVG file must declare (viewers
/// need it to render the file); nothing is fetched from it.
const SVG_NAMESPACE: &str = "http://www.w3.org/2000/svg";

/// An SVG document being written.
pub struct Svg {
    out: String,
}

impl Svg {
    /// A `width` × `height` document with a white background and a title for screen readers.
    pub fn new(width: f64, height: f64, title: &str) -> Self {
        let mut out = String::new();
        let _ = write!(
            out,
            "<svg xmlns=\"{SVG_NAMESPACE}\" width=\"{width}\" height=\"{height}\" \
             viewBox=\"0 0 {width} {height}\" font-family=\"sans-serif\" font-size=\"12\">\
             <title>{}</title><rect width=\"100%\" height=\"100%\" fill=\"white\"/>",
            escape(title)
        );
        Self { out }
    }

    /// Text at (x, y); `anchor` is `start`, `middle` or `end`.
    pub fn text(&mut self, x: f64, y: f64, size: f64, anchor: &str, text: &str) {
        let _ = write!(
            self.out,
            "<text x=\"{x:.1}\" y=\"{y:.1}\" font-size=\"{size}\" text-anchor=\"{anchor}\">{}</text>",
            escape(text)
        );
    }

    /// Bold text; `anchor` is `start`, `middle` or `end`.
    pub fn title(&mut self, x: f64, y: f64, anchor: &str, text: &str) {
        let _ = write!(
            self.out,
            "<text x=\"{x:.1}\" y=\"{y:.1}\" font-size=\"13\" font-weight=\"bold\" \
             text-anchor=\"{anchor}\">{}</text>",
            escape(text)
        );
    }

    /// Text turned 90° counter-clockwise around (x, y).
    pub fn vertical_text(&mut self, x: f64, y: f64, text: &str) {
        let _ = write!(
            self.out,
            "<text x=\"{x:.1}\" y=\"{y:.1}\" text-anchor=\"middle\" \
             transform=\"rotate(-90 {x:.1} {y:.1})\">{}</text>",
            escape(text)
        );
    }

    /// A straight line; `dash` like `4 3`.
    pub fn line(&mut self, a: (f64, f64), b: (f64, f64), stroke: &str, width: f64, dash: &str) {
        let _ = write!(
            self.out,
            "<line x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"{stroke}\" \
             stroke-width=\"{width}\"{}/>",
            a.0,
            a.1,
            b.0,
            b.1,
            dash_attr(dash)
        );
    }

    /// A line through `points` (pixels).
    pub fn polyline(&mut self, points: &[(f64, f64)], stroke: &str, width: f64, dash: &str) {
        if points.is_empty() {
            return;
        }
        let mut pts = String::new();
        for (x, y) in points {
            let _ = write!(pts, "{x:.1},{y:.1} ");
        }
        let _ = write!(
            self.out,
            "<polyline points=\"{}\" fill=\"none\" stroke=\"{stroke}\" stroke-width=\"{width}\" \
             stroke-linejoin=\"round\"{}/>",
            pts.trim_end(),
            dash_attr(dash)
        );
    }

    /// A rectangle.
    pub fn rect(&mut self, x: f64, y: f64, w: f64, h: f64, fill: &str, stroke: &str) {
        let _ = write!(
            self.out,
            "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{h:.1}\" fill=\"{fill}\" \
             stroke=\"{stroke}\"/>"
        );
    }

    /// A filled circle.
    pub fn circle(&mut self, cx: f64, cy: f64, r: f64, fill: &str) {
        let _ = write!(
            self.out,
            "<circle cx=\"{cx:.1}\" cy=\"{cy:.1}\" r=\"{r}\" fill=\"{fill}\"/>"
        );
    }

    /// A legend: one short line and a label per entry, left to right from (x, y).
    pub fn legend(&mut self, x: f64, y: f64, entries: &[(&str, &str, &str)]) {
        let mut at = x;
        for (label, colour, dash) in entries {
            self.line((at, y - 4.0), (at + 22.0, y - 4.0), colour, 2.5, dash);
            self.text(at + 27.0, y, 11.0, "start", label);
            at += 37.0 + 6.5 * label.chars().count() as f64;
        }
    }

    /// The finished document.
    pub fn finish(mut self) -> String {
        self.out.push_str("</svg>\n");
        self.out
    }
}

/// The `stroke-dasharray` attribute, or nothing for a solid line.
fn dash_attr(dash: &str) -> String {
    if dash.is_empty() {
        String::new()
    } else {
        format!(" stroke-dasharray=\"{dash}\"")
    }
}

/// Escapes text for SVG and HTML.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A plot area: a pixel box and the data ranges it shows.
#[derive(Debug, Clone, Copy)]
pub struct Panel {
    /// Left edge of the plot area, in pixels.
    pub left: f64,
    /// Top edge.
    pub top: f64,
    /// Width.
    pub width: f64,
    /// Height.
    pub height: f64,
    /// Data range along x.
    pub x: (f64, f64),
    /// Data range along y.
    pub y: (f64, f64),
}

impl Panel {
    /// The pixel column of data `x`.
    pub fn px(&self, x: f64) -> f64 {
        let (a, b) = self.x;
        self.left + (x - a) / (b - a).max(1e-12) * self.width
    }

    /// The pixel row of data `y`.
    pub fn py(&self, y: f64) -> f64 {
        let (a, b) = self.y;
        self.top + self.height - (y - a) / (b - a).max(1e-12) * self.height
    }

    /// Draws the frame, the grid with y ticks labelled by `fmt`, x ticks (when there is an x
    /// label), the title and the axis labels.
    pub fn frame(
        &self,
        svg: &mut Svg,
        title: &str,
        x_label: &str,
        y_label: &str,
        fmt: &dyn Fn(f64) -> String,
    ) {
        svg.title(self.left, self.top - 10.0, "start", title);
        for t in nice_ticks(self.y.0, self.y.1, 5) {
            let y = self.py(t);
            svg.line(
                (self.left, y),
                (self.left + self.width, y),
                "#e5e5e5",
                1.0,
                "",
            );
            svg.text(self.left - 6.0, y + 4.0, 11.0, "end", &fmt(t));
        }
        // A panel without an x label has no x scale either (the uplift plot).
        if !x_label.is_empty() {
            for t in nice_ticks(self.x.0, self.x.1, 6) {
                let x = self.px(t);
                let bottom = self.top + self.height;
                svg.line((x, bottom), (x, bottom + 4.0), "#444", 1.0, "");
                svg.text(x, bottom + 16.0, 11.0, "middle", &format!("{t}"));
            }
        }
        svg.rect(self.left, self.top, self.width, self.height, "none", "#444");
        svg.text(
            self.left + self.width / 2.0,
            self.top + self.height + 32.0,
            11.0,
            "middle",
            x_label,
        );
        svg.vertical_text(self.left - 48.0, self.top + self.height / 2.0, y_label);
    }

    /// A line through the data points, broken where a value is missing.
    pub fn series(&self, svg: &mut Svg, points: &[(f64, Option<f64>)], colour: &str, dash: &str) {
        let mut run = Vec::new();
        for (x, y) in points {
            match y {
                Some(y) if y.is_finite() => run.push((self.px(*x), self.py(*y))),
                _ => {
                    draw_run(svg, &run, colour, dash);
                    run.clear();
                }
            }
        }
        draw_run(svg, &run, colour, dash);
    }
}

/// An unbroken part of a series: a line, or a dot for a single point.
fn draw_run(svg: &mut Svg, run: &[(f64, f64)], colour: &str, dash: &str) {
    match run {
        [] => {}
        [(x, y)] => svg.circle(*x, *y, 2.5, colour),
        _ => svg.polyline(run, colour, 2.0, dash),
    }
}

/// About `n` round tick values covering [min, max] (steps of 1, 2 or 5 times a power of ten).
pub fn nice_ticks(min: f64, max: f64, n: usize) -> Vec<f64> {
    if !(min.is_finite() && max.is_finite()) || max <= min || n == 0 {
        return vec![min];
    }
    let raw = (max - min) / n as f64;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * magnitude);
    let first = (min / step).ceil() as i64;
    let last = (max / step).floor() as i64;
    (first..=last).map(|i| i as f64 * step).collect()
}

/// A data range covering `values` and `extra`, padded by a twentieth on each side.
pub fn range(values: impl Iterator<Item = f64>, extra: &[f64]) -> (f64, f64) {
    let (lo, hi) = values
        .chain(extra.iter().copied())
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(v), b.max(v))
        });
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let pad = ((hi - lo) / 20.0).max(1e-9);
    if hi - lo < 1e-9 {
        return (lo - 1.0, hi + 1.0);
    }
    (lo - pad, hi + pad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_inside_the_range() {
        assert_eq!(
            nice_ticks(0.0, 1.0, 5),
            vec![0.0, 0.2, 0.4, 0.6000000000000001, 0.8, 1.0]
        );
        let t = nice_ticks(-37.0, 52.0, 5);
        assert!(t.iter().all(|v| (-37.0..=52.0).contains(v)));
        assert!(t.contains(&0.0));
    }

    #[test]
    fn text_is_escaped() {
        let mut svg = Svg::new(10.0, 10.0, "a<b");
        svg.text(0.0, 0.0, 10.0, "start", "x & y");
        let s = svg.finish();
        assert!(s.contains("a&lt;b") && s.contains("x &amp; y"));
    }
}
