//! Line charts as SVG text: axes with labels and units, ticks, a legend and
//! a title, with nothing to install (no fonts, no plotting library); any
//! browser and GitHub's README renderer show them.

use std::fmt::Write;

/// One series: its name in the legend, its colour, `y` per `x`, and an
/// optional band (`lo`, `hi` per point) drawn under the line.
pub struct Series<'a> {
    pub name: &'a str,
    pub color: &'a str,
    pub x: &'a [f64],
    pub y: &'a [f64],
    pub band: Option<(&'a [f64], &'a [f64])>,
}

/// A chart's title and axis labels (with units).
pub struct Labels<'a> {
    pub title: &'a str,
    pub x: &'a str,
    pub y: &'a str,
}

const W: f64 = 720.0;
const H: f64 = 420.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 55.0;

/// About five round tick values covering `[lo, hi]`.
fn ticks(lo: f64, hi: f64) -> Vec<f64> {
    let span = (hi - lo).max(1e-12);
    let raw = span / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| span / s <= 6.0)
        .unwrap_or(10.0 * mag);
    let first = (lo / step).ceil() * step;
    (0..)
        .map(|i| first + i as f64 * step)
        .take_while(|v| *v <= hi + step * 1e-9)
        .collect()
}

fn fmt_tick(v: f64) -> String {
    if v.abs() >= 1000.0 || v == v.trunc() {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The chart as an SVG document; the y axis starts at 0 when every value is
/// non-negative.
pub fn line_chart(series: &[Series], labels: &Labels) -> String {
    let all_x = series.iter().flat_map(|s| s.x.iter().copied());
    let (x0, x1) = all_x.fold((f64::MAX, f64::MIN), |(a, b), v| (a.min(v), b.max(v)));
    let all_y = series.iter().flat_map(|s| {
        let band = s.band.map_or(&[][..], |(_, hi)| hi);
        s.y.iter().chain(band).copied().filter(|v| v.is_finite())
    });
    let (mut y0, y1) = all_y.fold((f64::MAX, f64::MIN), |(a, b), v| (a.min(v), b.max(v)));
    if y0 >= 0.0 {
        y0 = 0.0;
    }
    let y1 = if y1 > y0 { y1 } else { y0 + 1.0 };
    let x1 = if x1 > x0 { x1 } else { x0 + 1.0 };
    let (pw, ph) = (W - LEFT - RIGHT, H - TOP - BOTTOM);
    let px = |x: f64| LEFT + (x - x0) / (x1 - x0) * pw;
    let py = |y: f64| TOP + ph - (y - y0) / (y1 - y0) * ph;
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(out, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
    let _ = writeln!(
        out,
        r#"<text x="{}" y="22" text-anchor="middle" font-size="15">{}</text>"#,
        W / 2.0,
        escape(labels.title)
    );
    for t in ticks(y0, y1) {
        let y = py(t);
        let _ = writeln!(
            out,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#e4e4e4"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            W - RIGHT,
            LEFT - 6.0,
            y + 4.0,
            fmt_tick(t)
        );
    }
    for t in ticks(x0, x1) {
        let x = px(t);
        let _ = writeln!(
            out,
            r##"<line x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{:.1}" stroke="#444"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            TOP + ph,
            TOP + ph + 5.0,
            TOP + ph + 19.0,
            fmt_tick(t)
        );
    }
    let _ = writeln!(
        out,
        r##"<path d="M{LEFT},{TOP} V{:.1} H{:.1}" fill="none" stroke="#444"/>"##,
        TOP + ph,
        W - RIGHT
    );
    let _ = writeln!(
        out,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
        LEFT + pw / 2.0,
        H - 12.0,
        escape(labels.x)
    );
    let _ = writeln!(
        out,
        r#"<text transform="translate(18,{:.1}) rotate(-90)" text-anchor="middle">{}</text>"#,
        TOP + ph / 2.0,
        escape(labels.y)
    );
    for s in series {
        if let Some((lo, hi)) = s.band {
            let mut d = String::new();
            for (i, (&x, &v)) in s.x.iter().zip(hi).enumerate() {
                let _ = write!(
                    d,
                    "{}{:.1},{:.1} ",
                    if i == 0 { "M" } else { "L" },
                    px(x),
                    py(v)
                );
            }
            for (&x, &v) in s.x.iter().zip(lo).rev() {
                let _ = write!(d, "L{:.1},{:.1} ", px(x), py(v));
            }
            let _ = writeln!(
                out,
                r#"<path d="{d}Z" fill="{}" fill-opacity="0.18" stroke="none"/>"#,
                s.color
            );
        }
        let points: Vec<String> =
            s.x.iter()
                .zip(s.y)
                .filter(|(_, y)| y.is_finite())
                .map(|(&x, &y)| format!("{:.1},{:.1}", px(x), py(y)))
                .collect();
        let _ = writeln!(
            out,
            r#"<polyline points="{}" fill="none" stroke="{}" stroke-width="2"/>"#,
            points.join(" "),
            s.color
        );
    }
    for (i, s) in series.iter().enumerate() {
        let y = TOP + 14.0 + 18.0 * i as f64;
        let x = LEFT + 14.0;
        let _ = writeln!(
            out,
            r#"<line x1="{x}" y1="{y}" x2="{}" y2="{y}" stroke="{}" stroke-width="3"/><text x="{}" y="{}">{}</text>"#,
            x + 22.0,
            s.color,
            x + 28.0,
            y + 4.0,
            escape(s.name)
        );
    }
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        assert_eq!(ticks(0.0, 10.0), [0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
        assert_eq!(
            ticks(0.0, 1.0),
            [0.0, 0.2, 0.4, 0.6000000000000001, 0.8, 1.0]
        );
        let t = ticks(1.0, 50.0);
        assert_eq!((t[0], *t.last().unwrap()), (10.0, 50.0));
    }

    #[test]
    fn the_chart_has_title_labels_legend_and_one_line_per_series() {
        let x = [1.0, 2.0, 3.0];
        let svg = line_chart(
            &[
                Series {
                    name: "EBM",
                    color: "#1f77b4",
                    x: &x,
                    y: &[1.0, 2.0, 3.0],
                    band: Some((&[0.5, 1.5, 2.5], &[1.5, 2.5, 3.5])),
                },
                Series {
                    name: "FC <baseline>",
                    color: "#d62728",
                    x: &x,
                    y: &[2.0, 3.0, 4.0],
                    band: None,
                },
            ],
            &Labels {
                title: "FD over the horizon",
                x: "step",
                y: "Frechet distance (normalised units)",
            },
        );
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert_eq!(svg.matches("fill-opacity").count(), 1);
        for text in [
            "FD over the horizon",
            "step",
            "Frechet distance (normalised units)",
            "EBM",
            "FC &lt;baseline&gt;",
        ] {
            assert!(svg.contains(&format!(">{text}</text>")), "{text}");
        }
        // The highest point (4 at x = 3) is at the plot's top right corner.
        assert!(
            svg.contains(&format!("{:.1},{:.1}", W - RIGHT, TOP)),
            "{svg}"
        );
    }
}
