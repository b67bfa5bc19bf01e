//! `okring report`'s arguments, as typed, and the front door: the table on
//! stdout, `merged.hgrm`, the spectrum plot and `report.html` where the user asked.

use std::path::PathBuf;

use crate::error::Error;
use crate::gate::Gates;
use crate::stats::write_hgrm;

/// Arguments of `okring report`.
#[derive(clap::Args, Debug, Clone)]
pub struct ReportArgs {
    /// Inputs: .hlog interval logs, `okring load --json` results
    /// (okring.load/1), bench results.json (okring.bench/1).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Directory for merged.hgrm, report.html (the tables and the plot in
    /// one self-contained page) and spectrum.svg unless --plot is given;
    /// created if missing [default: report-out/<UTC timestamp>].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Where to write the percentile-spectrum plot [default: DIR/spectrum.svg].
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,
    /// Compare with this earlier run (same input kinds as FILE): print each
    /// percentile and the rate, old and new, with the change and the ratio.
    #[arg(long, value_name = "OLD")]
    pub baseline: Option<PathBuf>,
    /// Fail (exit 3) when a budget is broken: absolute ('p99>2ms',
    /// 'errors>0.1%', 'rps<50000'; errors and rps need okring load --json
    /// inputs) or relative to --baseline ('p99>+10%', 'rps<-5%').
    #[arg(long, value_name = "GATES")]
    pub fail_if: Option<String>,
}

/// `okring report`: merge ([`crate::report::merge_files`]), print the table,
/// write `DIR/merged.hgrm` and the plot (`--plot`, else `DIR/spectrum.svg`)
/// into `--out` or a new timestamped directory, as `okring bench` does.
/// Errors: any input's, or an output that cannot be written (the message
/// names the path).
pub fn run(args: &ReportArgs) -> Result<(), Error> {
    let gates = match &args.fail_if {
        Some(list) => Some(Gates::parse(list).map_err(Error::Usage)?),
        None => None,
    };
    let m = crate::report::merge_files(&args.files)?;
    for w in &m.warnings {
        crate::say!("okring: report: warning: {w}");
    }
    let mut text = m.table();
    if let Some(t) = crate::report::timeline(&m.inputs)? {
        text.push_str(&format!(
            "\nper {} s interval, lined up on the wall clock\n{}",
            t.slot_s,
            t.table()
        ));
    }
    if let Some(c) = crate::report::combined(&m.inputs) {
        text.push_str(&format!("\n{}", c.line()));
    }
    let base = match &args.baseline {
        Some(old) => Some(crate::report::merge_files(std::slice::from_ref(old))?),
        None => None,
    };
    let (fig, counted) = m.figures();
    let base_fig = base.as_ref().map(|b| b.figures());
    if let Some((bf, base_counted)) = &base_fig {
        text.push_str(&format!(
            "\n{}",
            crate::report::delta_table(bf, &fig, counted && *base_counted)
        ));
    }
    print!("{text}");
    let dir = args
        .out
        .clone()
        .unwrap_or_else(|| super::timestamped_dir("report-out"));
    std::fs::create_dir_all(&dir)
        .map_err(|e| format!("cannot create --out {}: {e}", dir.display()))?;
    let hgrm = dir.join("merged.hgrm");
    let mut buf = Vec::new();
    write_hgrm(&mut buf, &m.merged, 5).map_err(|e| format!("formatting merged.hgrm: {e}"))?;
    std::fs::write(&hgrm, buf).map_err(|e| format!("cannot write {}: {e}", hgrm.display()))?;
    let plot = args
        .plot
        .clone()
        .unwrap_or_else(|| dir.join("spectrum.svg"));
    let series: Vec<(String, &hdrhistogram::Histogram<u64>)> = m
        .rows()
        .into_iter()
        .map(|(l, h)| (l.to_string(), h))
        .collect();
    crate::plot::spectrum_svg(&plot, "latency by percentile", &series)?;
    let html = dir.join("report.html");
    write_html(&html, args, &text, &plot)?;
    crate::say!(
        "okring: report: wrote {}, {} and {}",
        hgrm.display(),
        plot.display(),
        html.display()
    );
    match gates {
        None => Ok(()),
        Some(g) => {
            let base_counted = base_fig.as_ref().is_none_or(|b| b.1);
            if g.needs_counts() && !(counted && base_counted) {
                return Err(Error::Usage(
                    "--fail-if: errors and rps gates need okring load --json inputs (interval logs carry latency only)".into(),
                ));
            }
            g.check_against(&fig, base_fig.as_ref().map(|b| &b.0))
        }
    }
}

/// report.html: the inputs, the tables as printed and the spectrum inline.
fn write_html(
    path: &std::path::Path,
    args: &ReportArgs,
    text: &str,
    plot: &std::path::Path,
) -> Result<(), Error> {
    use crate::html::{escape, figure, page};
    let mut body = String::from("<h1>okring report</h1>\n<ul>\n");
    for f in &args.files {
        body.push_str(&format!(
            "<li>input: <code>{}</code></li>\n",
            escape(&f.display().to_string())
        ));
    }
    if let Some(b) = &args.baseline {
        body.push_str(&format!(
            "<li>baseline: <code>{}</code></li>\n",
            escape(&b.display().to_string())
        ));
    }
    body.push_str(&format!(
        "<li>written: {}</li>\n</ul>\n<h2>Percentiles, merged exactly</h2>\n<pre>{}</pre>\n<h2>Plot</h2>\n",
        humantime::format_rfc3339_seconds(std::time::SystemTime::now()),
        escape(text)
    ));
    if let Ok(svg) = std::fs::read_to_string(plot) {
        body.push_str(&figure(
            &svg,
            "latency by percentile, every input and the merge",
        ));
    }
    std::fs::write(path, page("okring report", &body))
        .map_err(|e| Error::Failed(format!("cannot write {}: {e}", path.display())))
}
